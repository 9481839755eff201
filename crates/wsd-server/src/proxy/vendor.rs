//! What the proxy needs of each upstream vendor, computed once from the registry: the
//! provider serving a model namespace, the platform secret holding its key, and per surface
//! the base URL and whether the key goes as a bearer token.

use std::collections::HashMap;

use wsd_core::registry::{CredentialSource, Protocol, Provider};
use wsd_core::{EnvKey, Registry};

use crate::code;
use crate::error::ApiError;

/// One vendor's upstream, as the proxy calls it.
#[derive(Debug)]
pub(super) struct Vendor {
    /// The registry's provider name.
    pub provider: String,
    /// The platform secret that holds the vendor's key.
    pub key_name: EnvKey,
    anthropic: Option<Route>,
    openai: Option<Route>,
}

/// A vendor's endpoint on one surface.
#[derive(Debug)]
pub(super) struct Route {
    /// The upstream URL of each forwarded path, parsed once.
    urls: Vec<(&'static str, reqwest::Url)>,
    /// The key goes as `Authorization: Bearer`, else as `x-api-key`.
    pub bearer: bool,
}

/// The upstream URL of a client's path (`v1/messages`) under `base`.
fn join(base: &str, surface: Protocol, rest: &str) -> String {
    let rest = match surface {
        // OpenAI bases already end in their version (`…/v1`); clients call `{base}/v1/…`.
        Protocol::Openai => rest.strip_prefix("v1/").unwrap_or(rest),
        Protocol::Anthropic => rest,
    };
    format!("{}/{rest}", base.trim_end_matches('/'))
}

impl Route {
    /// The upstream URL of a forwarded path (`v1/messages`) on this route.
    pub fn url(&self, rest: &str) -> Result<reqwest::Url, ApiError> {
        self.urls.iter().find(|(path, _)| *path == rest).map(|(_, url)| url.clone()).ok_or_else(|| {
            ApiError::new(axum::http::StatusCode::BAD_GATEWAY, code::UPSTREAM_INVALID, "the provider's base URL is not a valid URL")
        })
    }
}

impl Vendor {
    fn new(registry: &Registry, provider: &Provider) -> Self {
        let route = |surface: Protocol| {
            provider.base_url(surface).map(|base| Route {
                urls: super::endpoint::forwarded_paths(surface)
                    .iter()
                    .filter_map(|path| Some((*path, reqwest::Url::parse(&join(base, surface, path)).ok()?)))
                    .collect(),
                bearer: key_is_bearer(registry, provider, surface),
            })
        };
        Vendor {
            provider: provider.name.clone(),
            // The vendor-specific name comes first in `auth_env`: MINIMAX_API_KEY, OPENAI_API_KEY …
            key_name: provider.auth_env.first().cloned().unwrap_or_else(|| EnvKey::new("API_KEY").expect("valid")),
            anthropic: route(Protocol::Anthropic),
            openai: route(Protocol::Openai),
        }
    }

    /// The vendor's route on `surface`.
    pub fn route(&self, surface: Protocol) -> Result<&Route, ApiError> {
        let route = match surface {
            Protocol::Anthropic => self.anthropic.as_ref(),
            Protocol::Openai => self.openai.as_ref(),
        };
        route.ok_or_else(|| {
            ApiError::bad_request(code::UNSUPPORTED_SURFACE, format!("provider `{}` has no {} endpoint", self.provider, surface.as_str()))
        })
    }
}

/// Every vendor, by the model namespace it serves (`minimax` in `minimax/MiniMax-M2.7`).
#[derive(Debug, Default)]
pub(super) struct Vendors(HashMap<String, Vendor>);

impl Vendors {
    pub fn new(registry: &Registry) -> Self {
        let mut vendors = HashMap::new();
        for provider in registry.providers() {
            // The registry holds each `upstream_vendor` once.
            if let Some(namespace) = &provider.upstream_vendor {
                vendors.insert(namespace.clone(), Vendor::new(registry, provider));
            }
        }
        Vendors(vendors)
    }

    /// The vendor a namespaced model (`minimax/MiniMax-M2.7`) goes to, and the vendor's id.
    pub fn pick<'m>(&self, model: &'m str) -> Result<(&Vendor, &'m str), ApiError> {
        let (namespace, vendor_model) = model.split_once('/').filter(|(ns, m)| !ns.is_empty() && !m.is_empty()).ok_or_else(|| {
            ApiError::bad_request(
                code::UNKNOWN_MODEL_NAMESPACE,
                format!("model `{model}` has no namespace; use vendor/model, e.g. anthropic/claude-opus-4-7"),
            )
        })?;
        let vendor = self.0.get(namespace).ok_or_else(|| {
            ApiError::bad_request(code::UNKNOWN_MODEL_NAMESPACE, format!("no provider serves the model namespace `{namespace}`"))
        })?;
        Ok((vendor, vendor_model))
    }
}

/// Whether `provider` takes its key as a bearer token on `surface` (else as `x-api-key`):
/// the header a runtime of that protocol sends the provider's `auth_token_env` as — the
/// registry's record of how the vendor is really called — or the protocol's usual one.
fn key_is_bearer(registry: &Registry, provider: &Provider, surface: Protocol) -> bool {
    let sent_as = provider.auth_token_env.as_ref().and_then(|env| {
        registry
            .runtimes()
            .filter(|runtime| runtime.protocol == surface)
            .flat_map(|runtime| runtime.credential_precedence.iter().flatten())
            .find(|read| matches!(&read.source, CredentialSource::Env(key) if key == env))
            .map(|read| read.sent_as.as_str())
    });
    match sent_as {
        Some(sent_as) => sent_as.starts_with("Authorization: Bearer"),
        None => surface == Protocol::Openai,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vendor_gets_its_key_the_way_its_runtimes_send_it() {
        let registry = Registry::embedded().unwrap();
        let provider = |name: &str| registry.provider(name).unwrap();
        // claude-code sends ANTHROPIC_AUTH_TOKEN as a bearer token, ANTHROPIC_API_KEY as x-api-key.
        assert!(key_is_bearer(&registry, provider("minimax"), Protocol::Anthropic));
        assert!(key_is_bearer(&registry, provider("moonshot"), Protocol::Anthropic));
        assert!(!key_is_bearer(&registry, provider("anthropic-api"), Protocol::Anthropic));
        assert!(key_is_bearer(&registry, provider("openai-api"), Protocol::Openai));
        assert!(key_is_bearer(&registry, provider("minimax"), Protocol::Openai));
    }

    #[test]
    fn a_namespaced_model_picks_its_vendor_and_route() {
        let vendors = Vendors::new(&Registry::embedded().unwrap());
        let (openai, id) = vendors.pick("openai/gpt-5").unwrap();
        assert_eq!((openai.provider.as_str(), openai.key_name.as_str(), id), ("openai-api", "OPENAI_API_KEY", "gpt-5"));
        let route = openai.route(Protocol::Openai).unwrap();
        assert!(route.bearer);
        assert_eq!(route.url("v1/chat/completions").unwrap().as_str(), "https://api.openai.com/v1/chat/completions");
        assert_eq!(route.url("v1/responses/compact").unwrap().as_str(), "https://api.openai.com/v1/responses/compact");
        let (minimax, _) = vendors.pick("minimax/MiniMax-M2.7").unwrap();
        let messages = minimax.route(Protocol::Anthropic).unwrap().url("v1/messages").unwrap();
        assert_eq!(messages.as_str(), "https://api.minimax.io/anthropic/v1/messages");
        assert!(minimax.route(Protocol::Anthropic).unwrap().url("v1/files").is_err(), "only forwarded paths have a URL");
        for bad in ["gpt-5", "/gpt-5", "openai/", "nobody/model"] {
            assert_eq!(vendors.pick(bad).err().unwrap().code, code::UNKNOWN_MODEL_NAMESPACE, "{bad}");
        }
    }
}
