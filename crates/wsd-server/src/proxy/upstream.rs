//! The proxy's HTTP client to the providers, and its settings.

use std::time::Duration;

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

#[derive(Debug)]
pub struct UpstreamClient {
    pub(super) client: reqwest::Client,
    pub(super) upstream_timeout: Duration,
    pub(super) default_output_tokens: u64,
    pub(super) rate_limits: super::rate::RateLimits,
}

impl UpstreamClient {
    pub fn new(settings: &ProxySettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.upstream_timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the proxy's HTTP client: {e}"))?;
        Ok(Self {
            client,
            upstream_timeout: settings.upstream_timeout,
            default_output_tokens: settings.default_output_tokens,
            rate_limits: settings.rate_limits,
        })
    }
}
