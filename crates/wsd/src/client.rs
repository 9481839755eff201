//! The HTTP client the CLI's API commands share: `WSD_URL` and `WSD_TOKEN`, JSON in and
//! out, and the server's error code and message shown as they are.

use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::Failure;

#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The wsd server.
    #[arg(long, env = "WSD_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// The API token (the admin token, or an org token).
    #[arg(long, env = "WSD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(connection: &Connection) -> Result<Self, Failure> {
        let token = connection.token.clone().ok_or_else(|| Failure::Usage("set WSD_TOKEN (or --token) to an API token".into()))?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| Failure::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, base: connection.url.trim_end_matches('/').to_owned(), token })
    }

    /// Sends a request; a non-2xx answer becomes `Failure::Api` with the server's code.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| Failure::Usage(format!("cannot reach wsd at {}: {e}", self.base)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| Failure::Usage(format!("cannot read the answer: {e}")))?;
        let value: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(value);
        }
        let code = value["error"]["code"].as_str().unwrap_or("HTTP_ERROR").to_owned();
        let message = value["error"]["message"].as_str().map(str::to_owned).unwrap_or_else(|| format!("HTTP {status}"));
        Err(Failure::Api { status: status.as_u16(), code, message, planner: status == StatusCode::UNPROCESSABLE_ENTITY })
    }
}
