//! The container engine the test suites run their container half against: Podman's
//! Docker-compatible API service, which this test process starts itself (once, on first
//! use) on a socket of its own, with storage of its own in a temporary directory, and which
//! a watchdog stops and removes (containers, volumes, images) when the process ends. The
//! settings are those this machine needs (`runc` with the `cgroupfs` manager, explicit
//! ulimits). Images are built from files — a static busybox and the binaries a test names,
//! with the libraries they load — because no registry is reachable.
//!
//! Where Podman is not installed the suites' build scripts mark the container tests
//! ignored, never passed; `WSD_TEST_REQUIRE_ENGINE=1` compiles them in regardless, so that
//! a missing engine fails them.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const PODMAN: &str = "/usr/bin/podman";
const BUSYBOX: &str = "/bin/busybox";

/// Whether the suites can run their container half: Podman and a static busybox installed.
pub fn available() -> bool {
    Path::new(PODMAN).is_file() && Path::new(BUSYBOX).is_file()
}

/// For the suites' build scripts: compiles their container tests in
/// (`cfg(wsd_test_engine)`) when Podman is installed or `WSD_TEST_REQUIRE_ENGINE=1` asks.
pub fn build_script() {
    println!("cargo::rustc-check-cfg=cfg(wsd_test_engine)");
    println!("cargo::rerun-if-env-changed=WSD_TEST_REQUIRE_ENGINE");
    println!("cargo::rerun-if-changed={PODMAN}");
    let required = std::env::var("WSD_TEST_REQUIRE_ENGINE").as_deref() == Ok("1");
    if required || available() {
        println!("cargo::rustc-cfg=wsd_test_engine");
    }
}

/// A running engine of this test process.
#[derive(Debug)]
pub struct Engine {
    /// `unix:///…/podman.sock`: what `[backends.docker] socket` takes.
    pub host: String,
    dir: PathBuf,
}

impl Engine {
    /// `podman` on this engine's storage (for what the API does not do: image import).
    pub fn podman(&self) -> Command {
        let mut command = Command::new(PODMAN);
        command.env("CONTAINERS_CONF", self.dir.join("containers.conf"));
        command.arg("--root").arg(self.dir.join("root")).arg("--runroot").arg(self.dir.join("run"));
        command
    }

    /// Builds (once per name) an image `localhost/<name>:test` holding a static busybox
    /// (`sh`, `cat`, `env`, `sleep` …) and `binaries` under `/usr/local/bin` with the
    /// shared libraries they load at their host paths. Returns its reference.
    pub fn image(&self, name: &str, binaries: &[&Path]) -> String {
        static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        let reference = format!("localhost/{name}:test");
        let rootfs = self.dir.join("images").join(name);
        if rootfs.exists() {
            return reference;
        }
        build_rootfs(&rootfs, binaries).unwrap_or_else(|e| panic!("cannot build the image {reference}: {e}"));
        let tar = rootfs.with_extension("tar");
        run(Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg("."), "tar the image").unwrap();
        let mut import = self.podman();
        import.arg("import").arg(&tar).arg(&reference);
        run(&mut import, "podman import").unwrap_or_else(|e| panic!("{e}"));
        reference
    }
}

fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("{what} failed: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}

fn copy_at(root: &Path, host_path: &Path) -> Result<(), String> {
    let target = root.join(host_path.strip_prefix("/").unwrap_or(host_path));
    std::fs::create_dir_all(target.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::copy(host_path, &target).map_err(|e| format!("{}: {e}", host_path.display()))?;
    Ok(())
}

fn build_rootfs(rootfs: &Path, binaries: &[&Path]) -> Result<(), String> {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    for dir in ["tmp", "home", "etc", "usr/local/bin"] {
        std::fs::create_dir_all(rootfs.join(dir)).map_err(|e| e.to_string())?;
    }
    std::fs::set_permissions(rootfs.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).map_err(|e| e.to_string())?;
    std::fs::copy(BUSYBOX, bin.join("busybox")).map_err(|e| e.to_string())?;
    for applet in
        ["sh", "cat", "env", "sleep", "ls", "id", "mount", "kill", "pkill", "ps", "stat", "wc", "echo", "true", "tr", "grep", "sort"]
    {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).map_err(|e| e.to_string())?;
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/sh\n")
        .map_err(|e| e.to_string())?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nagent:x:1000:\n").map_err(|e| e.to_string())?;
    for binary in binaries {
        let name = binary.file_name().ok_or("a binary without a name")?;
        std::fs::copy(binary, rootfs.join("usr/local/bin").join(name)).map_err(|e| format!("{}: {e}", binary.display()))?;
        // `ldd` lists the libraries and the loader by their host paths.
        let listed = run(Command::new("ldd").arg(binary), "ldd")?;
        for path in listed.split_whitespace().filter(|w| w.starts_with('/')) {
            copy_at(rootfs, Path::new(path))?;
        }
    }
    Ok(())
}

/// The engine of this test process, started on first use. Panics when it cannot be: a
/// test that asks for a container engine must not pass without one.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE.get_or_init(start).as_ref().unwrap_or_else(|e| panic!("no container engine for the tests: {e}"))
}

fn start() -> Result<Engine, String> {
    if !available() {
        return Err(format!("{PODMAN} or {BUSYBOX} is not installed (Debian: apt-get install podman runc busybox-static)"));
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let tag = listener.local_addr().map_err(|e| e.to_string())?.port();
    let dir = std::env::temp_dir().join(format!("wsd-testengine-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // The engine's state of its own too (`tmp_dir`, by default `/run/libpod`, is shared by
    // every Podman on the machine: two test processes' services would see each other's
    // exit files).
    let conf = format!(
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
         [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\ntmp_dir = \"{}\"\n",
        dir.join("tmp").display()
    );
    std::fs::write(dir.join("containers.conf"), conf).map_err(|e| e.to_string())?;
    let socket = dir.join("podman.sock");
    let engine = Engine { host: format!("unix://{}", socket.display()), dir: dir.clone() };
    let mut service = engine.podman();
    service.args(["system", "service", "--time=0"]).arg(&engine.host);
    std::os::unix::process::CommandExt::process_group(&mut service, 0);
    let child = service
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("service.log")).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("podman system service: {e}"))?;
    // Ends the service and removes everything it made once this process is gone.
    let podman = format!(
        "CONTAINERS_CONF='{conf}' {PODMAN} --root '{root}' --runroot '{run}'",
        conf = dir.join("containers.conf").display(),
        root = dir.join("root").display(),
        run = dir.join("run").display()
    );
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {podman} rm -af -t 0 >/dev/null 2>&1; kill {service} 2>/dev/null; \
         {podman} system reset -f >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        service = child.id(),
        dir = dir.display(),
    );
    std::os::unix::process::CommandExt::process_group(
        Command::new("sh").args(["-c", &watchdog]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()),
        0,
    )
    .spawn()
    .map_err(|e| format!("the engine's watchdog: {e}"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("service.log")).unwrap_or_default();
            return Err(format!("the podman service did not answer within 30 s: {log}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(engine)
}
