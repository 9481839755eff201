//! The accept loop of the API and the proxy. Anything that answers unauthenticated traffic
//! must not grow with it: a connection that does not send its request headers within
//! `header_read_timeout` (also while it idles between requests) is closed, and past
//! `max_connections` a new connection gets an immediate 503 and is closed, so a flood of
//! idle sockets cannot take the file descriptors the server needs. Every accepted socket
//! sends small writes at once (`TCP_NODELAY`).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::code;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// The longest a connection may take to send a request's headers, or idle between two.
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self { header_read_timeout: Duration::from_secs(15), max_connections: 4096, shutdown_grace: Duration::from_secs(30) }
    }
}

/// The answer to a connection over the limit.
fn over_capacity() -> String {
    let body =
        serde_json::json!({"error": {"code": code::TOO_MANY_CONNECTIONS, "message": "the server is at its connection limit"}}).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (up to the grace period).
pub async fn serve<S>(listener: TcpListener, app: S, limits: ListenerLimits, shutdown: impl Future<Output = ()>)
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(over_capacity().as_bytes())).await;
            });
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight at the end of the shutdown grace period were cut");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use tokio::io::AsyncReadExt;

    async fn start(limits: ListenerLimits) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, limits, async move {
            let _ = stopped.await;
        }));
        (address, stop)
    }

    /// Reads until the peer closes; what it sent.
    async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.expect("the server closed");
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn half_sent_headers_and_idle_connections_are_closed() {
        let limits = ListenerLimits { header_read_timeout: Duration::from_millis(300), ..ListenerLimits::default() };
        let (address, _stop) = start(limits).await;
        // Headers that never end.
        let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        read_to_close(&mut slow).await;
        // A keep-alive connection that idles after its answer.
        let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let answer = read_to_close(&mut idle).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
    }

    #[tokio::test]
    async fn past_the_limit_a_connection_is_told_so_and_the_server_lives() {
        let limits = ListenerLimits { max_connections: 2, header_read_timeout: Duration::from_secs(5), ..ListenerLimits::default() };
        let (address, _stop) = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
            held.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut over = tokio::net::TcpStream::connect(&address).await.unwrap();
        let answer = read_to_close(&mut over).await;
        assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("TOO_MANY_CONNECTIONS"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        assert!(answer.contains(&format!("content-length: {}\r\n", body.len())), "content-length matches: {answer}");
        // A slot frees when a held connection goes.
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut fresh = tokio::net::TcpStream::connect(&address).await.unwrap();
        fresh.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
        assert!(read_to_close(&mut fresh).await.starts_with("HTTP/1.1 200"));
    }
}
