//! `wsd serve` as a real process on loopback: the first run on defaults creates its state,
//! it answers, and it stops on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    address: String,
    /// Lines printed before the server was ready.
    preamble: Vec<String>,
}

impl Server {
    fn start(data: &Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_wsd"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("WSD_DATA_DIR", data)
            .env_remove("WSD_REGISTRY")
            .env_remove("WSD_DATABASE_URL")
            .env_remove("WSD_MASTER_KEY")
            .env_remove("WSD_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wsd serve");
        // Owned by `server` from here, so that a failed start is still killed and reaped.
        let mut server = Server {
            child,
            address: String::new(),
            preamble: Vec::new(),
        };
        let mut reader = BufReader::new(server.child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "wsd serve exited before listening: {:?}",
                server.preamble
            );
            if let Some(address) = line.trim().strip_prefix("wsd listening on http://") {
                server.address = address.to_owned();
                return server;
            }
            server.preamble.push(line.trim().to_owned());
        }
    }

    fn admin_token(&self) -> String {
        self.preamble[0].rsplit(' ').next().unwrap().to_owned()
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.get_with(path, None)
    }

    fn get_with(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            self.address
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful shutdown exits 0, got {status:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsd-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn first_run_on_defaults_creates_its_state_and_prints_the_admin_token_once() {
    let data = fresh_dir("first-run");
    let server = Server::start(&data);
    assert_eq!(server.preamble.len(), 1, "{:?}", server.preamble);
    assert!(
        server.preamble[0].starts_with("admin token (shown once, store it now): wsd_"),
        "{:?}",
        server.preamble
    );
    assert!(data.join("wsd.db").exists());
    let key_mode = std::fs::metadata(data.join("master.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600);
    let (status, body) = server.get("/readyz");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ready"}"#));
    server.stop();

    let again = Server::start(&data);
    assert!(
        again.preamble.is_empty(),
        "the admin token is printed only once: {:?}",
        again.preamble
    );
    again.stop();
}

#[test]
fn serves_health_and_the_registry_and_stops_on_sigterm() {
    let server = Server::start(&fresh_dir("registry"));
    let (status, body) = server.get("/healthz");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));

    let token = server.admin_token();
    assert_eq!(server.get("/v1/registry/providers").0, 401);
    let (status, body) = server.get_with("/v1/registry/providers", Some(&token));
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["providers"].as_array().unwrap().len(), 14);

    let (status, body) = server.get_with("/v1/registry/runtimes", Some(&token));
    assert_eq!(status, 200);
    assert!(body.contains("claude-code"));

    let (status, body) = server.get("/nope");
    assert_eq!(status, 404);
    assert!(body.contains("NOT_FOUND"));
    server.stop();
}

#[test]
fn a_wrong_master_key_is_refused_at_start() {
    let data = fresh_dir("wrong-key");
    Server::start(&data).stop();
    let out = Command::new(env!("CARGO_BIN_EXE_wsd"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WSD_DATA_DIR", &data)
        .env("WSD_MASTER_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the master key cannot decrypt this database"), "{stderr}");
}
