//! Prometheus metrics: requests by route and status, request latencies, plan outcomes by
//! code, and the metering proxy's requests and tokens by provider. One `Metrics` per server,
//! shared by the API and the proxy (no process-global recorder), rendered in the text format
//! at `GET /metrics`. Recording a request allocates only the first time a series is seen.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    /// route → (method, status) → requests.
    requests: BTreeMap<String, BTreeMap<(&'static str, u16), u64>>,
    latencies: BTreeMap<String, Histogram>,
    plans: BTreeMap<String, u64>,
    /// provider → ledger status → proxied requests.
    proxied: BTreeMap<String, BTreeMap<i64, u64>>,
    /// provider → kind → tokens.
    tokens: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// reason → failed authentications.
    auth_failures: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn record_request(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let by_status = match inner.requests.get_mut(route) {
            Some(by_status) => by_status,
            None => inner.requests.entry(route.to_owned()).or_default(),
        };
        *by_status.entry((method, status)).or_default() += 1;
        let histogram = match inner.latencies.get_mut(route) {
            Some(histogram) => histogram,
            None => inner.latencies.entry(route.to_owned()).or_default(),
        };
        histogram.count += 1;
        histogram.sum += seconds;
        for (bucket, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }

    /// Counts a failed authentication by its reason.
    pub fn record_auth_failure(&self, reason: &'static str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *inner.auth_failures.entry(reason).or_default() += 1;
    }

    /// Counts a plan made (`ok`) or refused (its code).
    pub fn record_plan(&self, outcome: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *inner.plans.entry(outcome.to_owned()).or_default() += 1;
    }

    /// Counts a metered request: its provider, its ledger status, its tokens.
    pub fn record_proxied(&self, record: &wsd_store::UsageRecord) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let proxied = match inner.proxied.get_mut(&record.provider) {
            Some(proxied) => proxied,
            None => inner.proxied.entry(record.provider.clone()).or_default(),
        };
        *proxied.entry(record.status).or_default() += 1;
        let tokens = match inner.tokens.get_mut(&record.provider) {
            Some(tokens) => tokens,
            None => inner.tokens.entry(record.provider.clone()).or_default(),
        };
        for (kind, n) in [
            ("input", record.input_tokens),
            ("output", record.output_tokens),
            ("cache_read", record.cache_read_tokens),
            ("cache_write", record.cache_write_tokens),
        ] {
            *tokens.entry(kind).or_default() += u64::try_from(n).unwrap_or(0);
        }
    }

    pub fn render(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str("# HELP wsd_http_requests_total HTTP requests by method, route and status.\n# TYPE wsd_http_requests_total counter\n");
        for (route, by_status) in &inner.requests {
            for ((method, status), n) in by_status {
                let _ = writeln!(out, "wsd_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}");
            }
        }
        out.push_str(
            "# HELP wsd_http_request_duration_seconds HTTP request latency by route.\n# TYPE wsd_http_request_duration_seconds histogram\n",
        );
        for (route, h) in &inner.latencies {
            for (count, bound) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(out, "wsd_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "wsd_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "wsd_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "wsd_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        out.push_str("# HELP wsd_plan_outcomes_total Plans made (ok) or refused, by code.\n# TYPE wsd_plan_outcomes_total counter\n");
        for (code, n) in &inner.plans {
            let _ = writeln!(out, "wsd_plan_outcomes_total{{outcome=\"{code}\"}} {n}");
        }
        out.push_str(
            "# HELP wsd_proxy_requests_total Metered LLM requests by provider and status (499 client left, 502 broken, 504 upstream silent).\n# TYPE wsd_proxy_requests_total counter\n",
        );
        for (provider, by_status) in &inner.proxied {
            for (status, n) in by_status {
                let _ = writeln!(out, "wsd_proxy_requests_total{{provider=\"{provider}\",status=\"{status}\"}} {n}");
            }
        }
        out.push_str(
            "# HELP wsd_auth_failures_total Failed authentications on the API, by reason.\n# TYPE wsd_auth_failures_total counter\n",
        );
        for (reason, n) in &inner.auth_failures {
            let _ = writeln!(out, "wsd_auth_failures_total{{reason=\"{reason}\"}} {n}");
        }
        out.push_str("# HELP wsd_proxy_tokens_total Metered LLM tokens by provider and kind.\n# TYPE wsd_proxy_tokens_total counter\n");
        for (provider, by_kind) in &inner.tokens {
            for (kind, n) in by_kind {
                let _ = writeln!(out, "wsd_proxy_tokens_total{{provider=\"{provider}\",kind=\"{kind}\"}} {n}");
            }
        }
        out
    }
}

/// A request method as a label. Made-up methods share one label: a client cannot add
/// series at will.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Records every API request. The route is the matched pattern (`/v1/orgs/{org}`), never
/// the raw path, so ids do not become labels.
pub async fn track(State(metrics): State<std::sync::Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.record_request(method, route, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.record_request("GET", "/v1/orgs/{org}", 200, Duration::from_micros(700));
        metrics.record_request("GET", "/v1/orgs/{org}", 200, Duration::from_millis(20));
        metrics.record_plan("ok");
        metrics.record_plan("MISSING_BYOK_CREDENTIAL");
        let record = |status: i64, input: i64| wsd_store::UsageRecord {
            at: 0,
            org_id: "o".into(),
            workspace_id: "w".into(),
            provider: "minimax".into(),
            model: "MiniMax-M2.7".into(),
            input_tokens: input,
            output_tokens: 3,
            cache_read_tokens: 0,
            cache_write_tokens: 1,
            status,
            latency_ms: 1,
            request_id: "r".into(),
            routing: "platform".into(),
            cost_micros: None,
            reservation: None,
        };
        metrics.record_proxied(&record(200, 10));
        metrics.record_proxied(&record(200, 5));
        metrics.record_proxied(&record(499, 2));
        let text = metrics.render();
        for line in [
            "wsd_http_requests_total{method=\"GET\",route=\"/v1/orgs/{org}\",status=\"200\"} 2",
            "wsd_http_request_duration_seconds_bucket{route=\"/v1/orgs/{org}\",le=\"0.0005\"} 0",
            "wsd_http_request_duration_seconds_bucket{route=\"/v1/orgs/{org}\",le=\"0.001\"} 1",
            "wsd_http_request_duration_seconds_bucket{route=\"/v1/orgs/{org}\",le=\"0.025\"} 2",
            "wsd_http_request_duration_seconds_bucket{route=\"/v1/orgs/{org}\",le=\"+Inf\"} 2",
            "wsd_http_request_duration_seconds_count{route=\"/v1/orgs/{org}\"} 2",
            "wsd_plan_outcomes_total{outcome=\"MISSING_BYOK_CREDENTIAL\"} 1",
            "wsd_plan_outcomes_total{outcome=\"ok\"} 1",
            "wsd_proxy_requests_total{provider=\"minimax\",status=\"200\"} 2",
            "wsd_proxy_requests_total{provider=\"minimax\",status=\"499\"} 1",
            "wsd_proxy_tokens_total{provider=\"minimax\",kind=\"input\"} 17",
            "wsd_proxy_tokens_total{provider=\"minimax\",kind=\"output\"} 9",
            "wsd_proxy_tokens_total{provider=\"minimax\",kind=\"cache_write\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
