//! The proxy's HTTP client to the providers, and its settings. It is hyper's own pooled
//! client over rustls (the platform's root certificates), with nothing between: the URL of
//! each upstream call is parsed once per vendor, headers are built once per request, and a
//! request's silence is watched by one timer (see `metered`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// `[proxy]` in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxySettings {
    /// The longest wait for a connection to a provider.
    pub connect_timeout: Duration,
    /// The longest upstream may stay silent: before its answer starts, and between two
    /// pieces of it. Past it the client gets 504 `UPSTREAM_TIMEOUT` (or, mid-stream, an
    /// error event).
    pub upstream_timeout: Duration,
    /// The output tokens a request that names no maximum is estimated at, for budgets.
    pub default_output_tokens: u64,
    /// Each workspace's rate limits where its org has none of its own (`[policy]`).
    pub rate_limits: super::rate::RateLimits,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            upstream_timeout: Duration::from_secs(300),
            default_output_tokens: 4096,
            rate_limits: super::rate::RateLimits::default(),
        }
    }
}

/// An HTTP client to providers over HTTPS (or plain HTTP, for one on loopback).
pub(super) type Upstream = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug)]
pub struct UpstreamClient {
    pub(super) client: Upstream,
    pub(super) upstream_timeout: Duration,
    pub(super) default_output_tokens: u64,
    pub(super) rate_limits: super::rate::RateLimits,
}

impl UpstreamClient {
    pub fn new(settings: &ProxySettings) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(settings.connect_timeout));
        // Small writes (a request, each event of a stream) go out at once.
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|e| format!("cannot build the proxy's TLS client: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).timer(TokioTimer::new()).pool_timer(TokioTimer::new()).build(https);
        Ok(Self {
            client,
            upstream_timeout: settings.upstream_timeout,
            default_output_tokens: settings.default_output_tokens,
            rate_limits: settings.rate_limits,
        })
    }
}
