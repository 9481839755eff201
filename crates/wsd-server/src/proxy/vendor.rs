//! What the proxy needs of each upstream vendor, computed once from the registry: the
//! provider serving a model namespace (platform traffic) or named by a proxy-delivered
//! workspace's token (BYOK traffic), the platform secret holding its key, and per surface
//! the base URL and whether the key goes as a bearer token (the registry's `key_header`).

use std::collections::HashMap;

use axum::http::Uri;

use wsd_core::registry::{KeyHeader, Protocol, Provider};
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
    urls: Vec<(&'static str, Uri)>,
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
    pub fn url(&self, rest: &str) -> Result<Uri, ApiError> {
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
                    .filter_map(|path| Some((*path, Uri::try_from(join(base, surface, path)).ok()?)))
                    .collect(),
                bearer: registry.key_header(provider, surface) == KeyHeader::Bearer,
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

/// Every provider but the platform by its name, and the provider serving each model
/// namespace (`minimax` in `minimax/MiniMax-M2.7`).
#[derive(Debug, Default)]
pub(super) struct Vendors {
    by_provider: HashMap<String, Vendor>,
    /// Namespace → provider name.
    by_namespace: HashMap<String, String>,
}

impl Vendors {
    pub fn new(registry: &Registry) -> Self {
        let mut vendors = Vendors::default();
        for provider in registry.providers().iter().filter(|p| !p.platform) {
            // The registry holds each `upstream_vendor` once.
            if let Some(namespace) = &provider.upstream_vendor {
                vendors.by_namespace.insert(namespace.clone(), provider.name.clone());
            }
            vendors.by_provider.insert(provider.name.clone(), Vendor::new(registry, provider));
        }
        vendors
    }

    /// The provider named `name` (a proxy-delivered workspace's, from its usage token).
    pub fn provider(&self, name: &str) -> Result<&Vendor, ApiError> {
        self.by_provider.get(name).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                code::UNKNOWN_PROVIDER,
                format!("the workspace was provisioned for provider `{name}`, which the registry no longer has; provision it again"),
            )
        })
    }

    /// The vendor a namespaced model (`minimax/MiniMax-M2.7`) goes to, and the vendor's id.
    pub fn pick<'m>(&self, model: &'m str) -> Result<(&Vendor, &'m str), ApiError> {
        let (namespace, vendor_model) = model.split_once('/').filter(|(ns, m)| !ns.is_empty() && !m.is_empty()).ok_or_else(|| {
            ApiError::bad_request(
                code::UNKNOWN_MODEL_NAMESPACE,
                format!("model `{model}` has no namespace; use vendor/model, e.g. anthropic/claude-opus-4-7"),
            )
        })?;
        let vendor = self.by_namespace.get(namespace).and_then(|name| self.by_provider.get(name)).ok_or_else(|| {
            ApiError::bad_request(code::UNKNOWN_MODEL_NAMESPACE, format!("no provider serves the model namespace `{namespace}`"))
        })?;
        Ok((vendor, vendor_model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_is_known_by_its_name() {
        let vendors = Vendors::new(&Registry::embedded().unwrap());
        let moonshot = vendors.provider("moonshot").unwrap();
        assert!(moonshot.route(Protocol::Anthropic).unwrap().bearer);
        let anthropic = vendors.provider("anthropic-api").unwrap();
        let messages = anthropic.route(Protocol::Anthropic).unwrap();
        assert!(!messages.bearer);
        assert_eq!(messages.url("v1/messages").unwrap().to_string(), "https://api.anthropic.com/v1/messages");
        assert_eq!(vendors.provider("platform").err().unwrap().code, code::UNKNOWN_PROVIDER, "the platform is no upstream");
        assert_eq!(vendors.provider("nobody").err().unwrap().code, code::UNKNOWN_PROVIDER);
    }

    #[test]
    fn a_namespaced_model_picks_its_vendor_and_route() {
        let vendors = Vendors::new(&Registry::embedded().unwrap());
        let (openai, id) = vendors.pick("openai/gpt-5").unwrap();
        assert_eq!((openai.provider.as_str(), openai.key_name.as_str(), id), ("openai-api", "OPENAI_API_KEY", "gpt-5"));
        let route = openai.route(Protocol::Openai).unwrap();
        assert!(route.bearer);
        assert_eq!(route.url("v1/chat/completions").unwrap().to_string(), "https://api.openai.com/v1/chat/completions");
        assert_eq!(route.url("v1/responses/compact").unwrap().to_string(), "https://api.openai.com/v1/responses/compact");
        let (minimax, _) = vendors.pick("minimax/MiniMax-M2.7").unwrap();
        let messages = minimax.route(Protocol::Anthropic).unwrap().url("v1/messages").unwrap();
        assert_eq!(messages.to_string(), "https://api.minimax.io/anthropic/v1/messages");
        assert!(minimax.route(Protocol::Anthropic).unwrap().url("v1/files").is_err(), "only forwarded paths have a URL");
        for bad in ["gpt-5", "/gpt-5", "openai/", "nobody/model"] {
            assert_eq!(vendors.pick(bad).err().unwrap().code, code::UNKNOWN_MODEL_NAMESPACE, "{bad}");
        }
    }
}
