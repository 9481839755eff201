//! The verdict on one case: what the CLI sent, against what the plan said it would. A pure
//! function of the expectation, the canary values and the recorded requests.

use serde::{Deserialize, Serialize};

use crate::world::Seen;

/// How the planned credential travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Header {
    /// `Authorization: Bearer <credential>`.
    Bearer,
    /// `x-api-key: <credential>`.
    ApiKey,
}

impl Header {
    /// From the registry's `sent_as` (`Authorization: Bearer …`, `x-api-key`).
    pub fn from_sent_as(sent_as: &str) -> Header {
        if sent_as.to_ascii_lowercase().starts_with("x-api-key") { Header::ApiKey } else { Header::Bearer }
    }

    fn carries(self, seen: &Seen, value: &str) -> bool {
        let header = |name: &str| seen.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        match self {
            Header::Bearer => header("authorization").iter().any(|v| v.strip_prefix("Bearer ").is_some_and(|t| t.trim() == value)),
            Header::ApiKey => header("x-api-key").iter().any(|v| v.trim() == value),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Header::Bearer => "Authorization: Bearer",
            Header::ApiKey => "x-api-key",
        }
    }
}

/// A secret value given to the case, by what the plan calls it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    /// `org secret MINIMAX_API_KEY`, `the usage token` …
    pub label: String,
    pub value: String,
}

/// What the plan says the CLI will send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    /// The one credential, by its label in `canaries`.
    pub credential: String,
    pub header: Header,
    /// Every model call goes under this URL.
    pub endpoint: String,
    /// The model every call names; `None` when the plan gives the runtime a short alias
    /// (`sonnet`) that the CLI itself resolves to a model id.
    pub model: Option<String>,
}

/// What one case showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub pass: bool,
    /// Each model call: `URL · credential · model`.
    pub calls: Vec<String>,
    /// What does not match the plan, each naming what was sent where.
    pub problems: Vec<String>,
    /// Requests to other hosts that carried no credential (telemetry, update checks).
    pub side_traffic: Vec<String>,
}

/// Whether a request is a model call.
pub(crate) fn is_model_call(seen: &Seen) -> bool {
    let path = seen.url.split('?').next().unwrap_or_default();
    seen.method == "POST" && (path.ends_with("/messages") || path.ends_with("/chat/completions") || path.ends_with("/responses"))
}

/// The labels of the canaries a request carries, anywhere in its headers or body.
fn carried<'c>(seen: &Seen, canaries: &'c [Canary]) -> Vec<&'c str> {
    canaries
        .iter()
        .filter(|c| seen.headers.iter().any(|(_, v)| v.contains(&c.value)) || seen.body.contains(&c.value))
        .map(|c| c.label.as_str())
        .collect()
}

/// Where a URL is served: a fake provider (`http://127.0.0.1:P/p/minimax`), or a host
/// (`https://api.anthropic.com`). The planned credential may go anywhere there (a models
/// list, a health check), and nowhere else.
fn origin(url: &str) -> &str {
    if let Some(at) = url.find("/p/") {
        let name_end = url[at + 3..].find('/').map_or(url.len(), |end| at + 3 + end);
        return &url[..name_end];
    }
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..].find('/').map_or(url, |end| &url[..after_scheme + end])
}

pub fn judge(expect: &Expectation, canaries: &[Canary], seen: &[Seen]) -> Verdict {
    let mut problems = Vec::new();
    let mut calls = Vec::new();
    let mut side_traffic = Vec::new();
    let planned = canaries.iter().find(|c| c.label == expect.credential);
    for request in seen {
        let sent = carried(request, canaries);
        let under_endpoint = request.url.starts_with(&expect.endpoint);
        let same_origin = origin(&request.url) == origin(&expect.endpoint);
        for label in &sent {
            if *label != expect.credential {
                problems.push(format!("sent {label} to {}", request.url));
            } else if !same_origin {
                problems.push(format!("sent {label}, the planned credential, to {} instead of {}", request.url, expect.endpoint));
            }
        }
        if is_model_call(request) {
            let model = request.model.as_deref().unwrap_or("(none)");
            calls.push(format!(
                "{} · {} · {model}",
                request.url,
                if sent.is_empty() { "no credential".to_owned() } else { sent.join(" + ") }
            ));
            if !under_endpoint {
                problems.push(format!("model call to {}, not under {}", request.url, expect.endpoint));
            } else if !planned.is_some_and(|c| expect.header.carries(request, &c.value)) {
                problems.push(format!("model call to {} without {} in {}", request.url, expect.credential, expect.header.as_str()));
            }
            if let Some(planned) = expect.model.as_deref().filter(|planned| *planned != model) {
                problems.push(format!("model call to {} asked for model `{model}`, planned `{planned}`", request.url));
            }
        } else if !request.direct && sent.is_empty() {
            side_traffic.push(format!("{} {}", request.method, request.url));
        }
    }
    if calls.is_empty() {
        problems.push(format!("no model call reached {}", expect.endpoint));
    }
    let mut once = std::collections::BTreeSet::new();
    problems.retain(|p| once.insert(p.clone()));
    Verdict { pass: problems.is_empty(), calls, problems, side_traffic }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINT: &str = "http://127.0.0.1:9/p/minimax/anthropic";

    fn expectation() -> Expectation {
        Expectation {
            credential: "org secret MINIMAX_API_KEY".into(),
            header: Header::Bearer,
            endpoint: ENDPOINT.into(),
            model: Some("MiniMax-M2.7".into()),
        }
    }

    fn canaries() -> Vec<Canary> {
        vec![
            Canary { label: "org secret MINIMAX_API_KEY".into(), value: "sk-canary-right".into() },
            Canary { label: "org secret OPENAI_API_KEY".into(), value: "sk-canary-stray".into() },
        ]
    }

    fn call(url: &str, headers: &[(&str, &str)], model: &str) -> Seen {
        Seen {
            url: url.into(),
            method: "POST".into(),
            headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            model: Some(model.into()),
            body: format!(r#"{{"model":"{model}"}}"#),
            direct: url.starts_with("http://127.0.0.1"),
        }
    }

    #[test]
    fn the_planned_credential_to_the_planned_endpoint_with_the_planned_model_passes() {
        let seen = [
            call(&format!("{ENDPOINT}/v1/messages?beta=true"), &[("authorization", "Bearer sk-canary-right")], "MiniMax-M2.7"),
            Seen { method: "GET".into(), model: None, body: String::new(), ..call("https://telemetry.example/v1/events", &[], "") },
        ];
        let verdict = judge(&expectation(), &canaries(), &seen);
        assert!(verdict.pass, "{verdict:?}");
        assert_eq!(verdict.calls, [format!("{ENDPOINT}/v1/messages?beta=true · org secret MINIMAX_API_KEY · MiniMax-M2.7")]);
        assert_eq!(verdict.side_traffic, ["GET https://telemetry.example/v1/events"]);
    }

    #[test]
    fn every_way_of_getting_it_wrong_is_named() {
        let cases: [(Vec<Seen>, &str); 7] = [
            (vec![], "no model call reached"),
            (
                vec![call("https://openrouter.ai/api/v1/chat/completions", &[("authorization", "Bearer sk-canary-right")], "MiniMax-M2.7")],
                "to https://openrouter.ai/api/v1/chat/completions instead of",
            ),
            (
                vec![call(&format!("{ENDPOINT}/v1/messages"), &[("x-api-key", "sk-canary-right")], "MiniMax-M2.7")],
                "without org secret MINIMAX_API_KEY in Authorization: Bearer",
            ),
            (
                vec![call(&format!("{ENDPOINT}/v1/messages"), &[("authorization", "Bearer sk-canary-stray")], "MiniMax-M2.7")],
                "sent org secret OPENAI_API_KEY to",
            ),
            (
                vec![call(&format!("{ENDPOINT}/v1/messages"), &[("authorization", "Bearer sk-canary-right")], "claude-haiku-4-5")],
                "asked for model `claude-haiku-4-5`, planned `MiniMax-M2.7`",
            ),
            (
                vec![
                    call(&format!("{ENDPOINT}/v1/messages"), &[("authorization", "Bearer sk-canary-right")], "MiniMax-M2.7"),
                    Seen {
                        method: "GET".into(),
                        ..call("https://api.anthropic.com/api/bootstrap", &[("authorization", "Bearer sk-canary-stray")], "")
                    },
                ],
                "sent org secret OPENAI_API_KEY to https://api.anthropic.com/api/bootstrap",
            ),
            (
                vec![call("http://127.0.0.1:9/p/openai-api/v1/responses", &[], "MiniMax-M2.7")],
                "model call to http://127.0.0.1:9/p/openai-api/v1/responses, not under",
            ),
        ];
        for (seen, needle) in cases {
            let verdict = judge(&expectation(), &canaries(), &seen);
            assert!(!verdict.pass, "{needle}: {verdict:?}");
            assert!(verdict.problems.iter().any(|p| p.contains(needle)), "{needle} not in {:?}", verdict.problems);
        }
    }

    #[test]
    fn a_credential_in_a_body_counts_and_headers_are_read_as_sent() {
        let mut seen = call(&format!("{ENDPOINT}/v1/messages"), &[("authorization", "Bearer sk-canary-right")], "MiniMax-M2.7");
        seen.body.push_str(" sk-canary-stray");
        assert!(judge(&expectation(), &canaries(), &[seen]).problems.iter().any(|p| p.contains("OPENAI_API_KEY")));
        assert_eq!(Header::from_sent_as("x-api-key"), Header::ApiKey);
        assert_eq!(Header::from_sent_as("Authorization: Bearer (OAuth)"), Header::Bearer);
        let get = Seen { method: "GET".into(), ..call(&format!("{ENDPOINT}/v1/models"), &[], "") };
        assert!(!is_model_call(&get));
        // The planned credential to another path of the provider's own host is no leak.
        let models = Seen {
            method: "GET".into(),
            ..call("http://127.0.0.1:9/p/minimax/api/show", &[("authorization", "Bearer sk-canary-right")], "")
        };
        let messages = call(&format!("{ENDPOINT}/v1/messages"), &[("authorization", "Bearer sk-canary-right")], "MiniMax-M2.7");
        assert!(judge(&expectation(), &canaries(), &[models, messages]).pass);
        assert_eq!(origin("https://api.anthropic.com/v1/messages"), "https://api.anthropic.com");
        assert_eq!(origin("http://127.0.0.1:9/p/minimax"), "http://127.0.0.1:9/p/minimax");
        assert_eq!(origin("https://chatgpt.com"), "https://chatgpt.com");
        // An alias the CLI resolves itself: any model id it sends is its resolution.
        let alias = Expectation { model: None, ..expectation() };
        let resolved = call(&format!("{ENDPOINT}/v1/messages"), &[("authorization", "Bearer sk-canary-right")], "claude-sonnet-5-5");
        assert!(judge(&alias, &canaries(), &[resolved]).pass);
    }
}
