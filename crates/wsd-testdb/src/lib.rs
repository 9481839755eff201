//! The PostgreSQL server the test suites run their PostgreSQL half against:
//! `WSD_TEST_DATABASE_URL` when it is set, else a throwaway cluster this test process
//! starts itself (once, on first use) from the server binaries under
//! `/usr/lib/postgresql/*/bin` — as the `postgres` user when running as root, on a free
//! loopback port, in a temporary directory — and that a watchdog stops and removes when the
//! process ends. So `cargo test --workspace` runs both halves on any machine with the
//! server installed; where it is not, the suites' build scripts mark the PostgreSQL tests
//! ignored (`server_installed`), never passed.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The directory of the newest installed PostgreSQL server's binaries.
pub fn server_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whether the suites can run their PostgreSQL half: a server is given or installed.
pub fn available() -> bool {
    std::env::var_os("WSD_TEST_DATABASE_URL").is_some() || server_binaries().is_some()
}

/// For the suites' build scripts: compiles their PostgreSQL tests in (`cfg(wsd_test_postgres)`)
/// when a server is given or installed, or when `WSD_TEST_REQUIRE_POSTGRES=1` asks for them
/// (so that a missing server fails them); otherwise they are ignored, with the reason.
pub fn build_script() {
    println!("cargo::rustc-check-cfg=cfg(wsd_test_postgres)");
    println!("cargo::rerun-if-env-changed=WSD_TEST_DATABASE_URL");
    println!("cargo::rerun-if-env-changed=WSD_TEST_REQUIRE_POSTGRES");
    println!("cargo::rerun-if-changed=/usr/lib");
    let required = std::env::var("WSD_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1");
    if required || available() {
        println!("cargo::rustc-cfg=wsd_test_postgres");
    }
}

/// The admin URL of the server to create test databases on. Panics when none can be had:
/// a test that asks for PostgreSQL must not pass without it.
pub fn admin_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("WSD_TEST_DATABASE_URL") {
        Ok(url) => Ok(url),
        Err(_) => {
            let bin = server_binaries().ok_or("no WSD_TEST_DATABASE_URL and no PostgreSQL server under /usr/lib/postgresql")?;
            start(&bin)
        }
    })
    .clone()
    .unwrap_or_else(|e| panic!("no PostgreSQL for the tests: {e}"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `program args…`, as the `postgres` user when this process is root (the server refuses
/// to run as root).
fn as_postgres(root: bool, program: &Path) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() { Ok(()) } else { Err(format!("{what} failed: {}", String::from_utf8_lossy(&output.stderr).trim())) }
}

fn free_port() -> Result<u16, String> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(socket.local_addr().map_err(|e| e.to_string())?.port())
}

fn start(bin: &Path) -> Result<String, String> {
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("wsd-testdb-{}-{}", std::process::id(), free_port()?));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if root {
        run(
            {
                let mut c = Command::new("chown");
                c.arg("postgres:postgres").arg(&dir);
                c
            },
            "chown the cluster's directory",
        )?;
    }
    let data = dir.join("data");
    let mut initdb = as_postgres(root, &bin.join("initdb"));
    initdb.arg("-D").arg(&data).args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
    run(initdb, "initdb")?;
    let port = free_port()?;
    let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300", dir.display());
    let mut pg_ctl = as_postgres(root, &bin.join("pg_ctl"));
    pg_ctl.arg("-D").arg(&data).arg("-l").arg(dir.join("log")).args(["-w", "-t", "30", "-o", &options, "start"]);
    run(pg_ctl, "pg_ctl start")?;
    // Stops and removes the cluster once this process is gone, however it ends.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser} '{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        runuser = if root { "runuser -u postgres --" } else { "" },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    std::os::unix::process::CommandExt::process_group(
        Command::new("sh").args(["-c", &stop]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()),
        0,
    )
    .spawn()
    .map_err(|e| format!("the cluster's watchdog: {e}"))?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}
