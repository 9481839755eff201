//! A real `wsd serve` process on loopback for the binary's tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Server {
    pub child: Child,
    pub address: String,
    /// Lines printed before the server was ready.
    pub preamble: Vec<String>,
}

impl Server {
    pub fn start(data: &Path) -> Self {
        Self::start_with_config(data, None)
    }

    /// Starts `wsd serve` with `config` as its `WSD_CONFIG` file.
    pub fn start_with_config(data: &Path, config: Option<&str>) -> Self {
        Self::start_with_env(data, config, &[])
    }

    /// Starts `wsd serve` with `config` and the environment `env` set.
    pub fn start_with_env(data: &Path, config: Option<&str>, env: &[(&str, &str)]) -> Self {
        Self::start_logging_to(data, config, env, Stdio::null())
    }

    /// Starts `wsd serve` with its log (stderr) going to `log`.
    pub fn start_logging_to(data: &Path, config: Option<&str>, env: &[(&str, &str)], log: impl Into<Stdio>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsd"));
        if let Some(config) = config {
            std::fs::create_dir_all(data).unwrap();
            let path = data.join("config.toml");
            std::fs::write(&path, config).unwrap();
            command.env("WSD_CONFIG", path);
        } else {
            command.env_remove("WSD_CONFIG");
        }
        let child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("WSD_DATA_DIR", data)
            .env_remove("WSD_REGISTRY")
            .env_remove("WSD_DATABASE_URL")
            .env_remove("WSD_MASTER_KEY")
            .env_remove("WSD_ADMIN_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start wsd serve");
        // Owned by `server` from here, so that a failed start is still killed and reaped.
        let mut server = Server { child, address: String::new(), preamble: Vec::new() };
        let mut reader = BufReader::new(server.child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "wsd serve exited before listening: {:?}", server.preamble);
            if let Some(address) = line.trim().strip_prefix("wsd listening on http://") {
                server.address = address.to_owned();
                return server;
            }
            server.preamble.push(line.trim().to_owned());
        }
    }

    pub fn admin_token(&self) -> String {
        self.preamble[0].rsplit(' ').next().unwrap().to_owned()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.get_with(path, None)
    }

    pub fn get_with(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n", self.address).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }

    pub fn stop(mut self) {
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

pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsd-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An HTTP client for the tests' own calls.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap()
}

/// An API call on `server` as `admin`: the status and the JSON body (null when none).
pub async fn admin_call(
    server: &Server,
    admin: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = http().request(method, format!("http://{}{path}", server.address)).bearer_auth(admin);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

/// The usage token workspace `ws` of the server on `data` left in its home (the tests'
/// process command writes it there), waited for up to 10 s.
pub async fn usage_token(data: &Path, ws: &str) -> String {
    let file = data.join("workspaces").join(ws).join("home").join("usage-token");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(token) = std::fs::read_to_string(&file) {
            return token;
        }
        assert!(std::time::Instant::now() < deadline, "no usage token at {}", file.display());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
