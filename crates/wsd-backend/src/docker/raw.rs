//! Reads of container state as plain JSON, where the typed client cannot be used: Podman
//! reports states the Docker API does not define (`stopped`, `stopping`), and one such
//! container would fail the typed decoding of a whole inspection or listing. Only the
//! fields wsd reads are taken, and a state it does not know is "not running".

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// How long one read may take: an engine that accepts and then says nothing must not hold a
/// request of wsd's (a workspace's status) forever.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The engine's JSON answer to `GET path` (status and body), within [`TIMEOUT`].
pub async fn get(host: &str, path: &str) -> Result<(u16, serde_json::Value), String> {
    tokio::time::timeout(TIMEOUT, read(host, path)).await.unwrap_or_else(|_| Err(format!("no answer within {} s", TIMEOUT.as_secs())))
}

async fn read(host: &str, path: &str) -> Result<(u16, serde_json::Value), String> {
    let request = hyper::Request::get(path).header("host", "engine").body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let response = if let Some(address) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
        let stream = tokio::net::TcpStream::connect(address.trim_end_matches('/')).await.map_err(|e| e.to_string())?;
        send(TokioIo::new(stream), request).await?
    } else {
        let stream = tokio::net::UnixStream::connect(host.strip_prefix("unix://").unwrap_or(host)).await.map_err(|e| e.to_string())?;
        send(TokioIo::new(stream), request).await?
    };
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

async fn send<S>(io: TokioIo<S>, request: hyper::Request<Empty<Bytes>>) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    sender.send_request(request).await.map_err(|e| e.to_string())
}

/// What an inspection says of a container's process: running, or its exit code.
pub fn running_or_exit(inspected: &serde_json::Value) -> Result<(), Option<i32>> {
    let state = &inspected["State"];
    if state["Running"].as_bool() == Some(true) || matches!(state["Status"].as_str(), Some("created" | "restarting" | "paused")) {
        return Ok(());
    }
    Err(state["ExitCode"].as_i64().and_then(|c| i32::try_from(c).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn podman_states_read_as_running_or_exited() {
        assert_eq!(running_or_exit(&json!({"State": {"Status": "running", "Running": true}})), Ok(()));
        assert_eq!(running_or_exit(&json!({"State": {"Status": "created", "Running": false}})), Ok(()));
        assert_eq!(running_or_exit(&json!({"State": {"Status": "stopped", "Running": false, "ExitCode": 7}})), Err(Some(7)));
        assert_eq!(running_or_exit(&json!({"State": {"Status": "exited", "Running": false, "ExitCode": 0}})), Err(Some(0)));
        assert_eq!(running_or_exit(&json!({"State": {"Status": "dead"}})), Err(None));
    }
}
