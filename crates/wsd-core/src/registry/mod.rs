//! The provider registry: providers, runtimes, and the facts that tie them.
//!
//! A `Registry` only exists validated: every regex compiles, every reference resolves,
//! `upstream_vendor` is unique, there is exactly one platform provider, and no model id of a
//! runtime is owned by two of its providers that auth env cannot tell apart. The set of LLM
//! credential keys is derived from the data, never kept by hand.

mod raw;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::env_key::EnvKey;

pub use validate::{PLATFORM_PROVIDER_NAME, RegistryError, RegistryIssue};

/// The registry schema version this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// The registry shipped inside the binary.
pub const EMBEDDED_REGISTRY_YAML: &str = include_str!("../../registry/registry.yaml");

/// The wire protocol a provider or runtime speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Anthropic,
    Openai,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Anthropic => "anthropic",
            Protocol::Openai => "openai",
        }
    }
}

/// How a provider authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// A vendor API key.
    ApiKey,
    /// A subscription login (OAuth token or login file).
    Oauth,
    /// A third-party vendor key spoken over the Anthropic-compatible surface.
    AnthropicCompatible,
    /// wsd's own per-workspace usage token (the platform arm only).
    Platform,
}

/// One LLM provider.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub display_name: String,
    pub protocol: Protocol,
    pub auth_mode: AuthMode,
    pub platform: bool,
    /// Accepted env-var names, in order of preference (vendor-specific names first).
    pub auth_env: Vec<EnvKey>,
    /// The env-var name the key is projected into when a runtime reads that name.
    pub auth_token_env: Option<EnvKey>,
    pub base_url_openai: Option<String>,
    pub base_url_anthropic: Option<String>,
    pub model_match: Regex,
    pub model_aliases: Vec<String>,
    pub upstream_vendor: Option<String>,
    pub deprecated: bool,
}

impl Provider {
    /// The base URL a runtime speaking `protocol` must use for this provider.
    pub fn base_url(&self, protocol: Protocol) -> Option<&str> {
        match protocol {
            Protocol::Anthropic => self.base_url_anthropic.as_deref(),
            Protocol::Openai => self.base_url_openai.as_deref(),
        }
    }

    pub fn accepts(&self, key: &EnvKey) -> bool {
        self.auth_env.contains(key)
    }

    /// The id this provider knows `model` by: without a leading `NAMESPACE:` or
    /// `NAMESPACE/` when the namespace names this provider (its `name` or its
    /// `upstream_vendor`): `moonshot/kimi-k2.6` → `kimi-k2.6`, `zai:glm-4.6` → `glm-4.6`.
    /// Any other id is the vendor's already (`moonshot-v1-8k`, `MiniMax-M2.7`).
    pub fn vendor_model_id<'m>(&self, model: &'m str) -> &'m str {
        let Some(split) = model.find([':', '/']) else { return model };
        let (namespace, id) = (&model[..split], &model[split + 1..]);
        let names_this = namespace == self.name || self.upstream_vendor.as_deref() == Some(namespace);
        if names_this && !id.is_empty() { id } else { model }
    }
}

/// How a runtime passes the model id on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelIds {
    /// As written, to the provider's API (Claude Code's `ANTHROPIC_MODEL`, Codex's `model`):
    /// wsd writes the vendor's id.
    Vendor,
    /// Read by the runtime, which resolves a `provider:model` id itself: wsd writes the id as
    /// the workspace has it.
    Namespaced,
}

/// Where a runtime reads a credential from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Env(EnvKey),
    /// A file relative to the workspace home.
    File(String),
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Env(key) => write!(f, "{key}"),
            CredentialSource::File(path) => write!(f, "~/{path}"),
        }
    }
}

/// One credential a runtime reads, and how it is sent.
#[derive(Debug, Clone)]
pub struct CredentialRead {
    pub source: CredentialSource,
    /// How the credential travels (a header), for explanations.
    pub sent_as: String,
    /// Where this credential is sent when no base URL is configured; the runtime's
    /// default base URL when absent.
    pub endpoint: Option<String>,
}

/// How a provider's key and base URL reach a runtime.
#[derive(Debug, Clone)]
pub enum Projection {
    /// Through env vars the runtime reads.
    Env {
        key_env: EnvKey,
        base_url_env: EnvKey,
        /// An env var whose `Name: value` header the runtime forwards on every request.
        workspace_header_env: Option<EnvKey>,
    },
    /// Through a Codex `config.toml` naming the provider, its base URL and the env var that
    /// holds its key; subscription logins through the login file.
    CodexConfig { path: String, login_file: String },
    /// Through an OpenClaw `openclaw.json` that defines a provider of wsd's own (its base
    /// URL, its API kind, and its key as a reference to the env var that holds it) and makes
    /// its model the default. The runtime's own providers, and the key names they read, are
    /// not used.
    OpenclawConfig { path: String },
}

impl Projection {
    /// The config file the plan renders, if the projection is one.
    pub fn config_path(&self) -> Option<&str> {
        match self {
            Projection::Env { .. } => None,
            Projection::CodexConfig { path, .. } | Projection::OpenclawConfig { path } => Some(path),
        }
    }
}

/// A provider a runtime runs natively, with the model ids listed for it.
#[derive(Debug, Clone)]
pub struct NativeProvider {
    /// Index into `Registry::providers`.
    pub provider: usize,
    pub models: Vec<String>,
    /// The CLI versions this runtime was observed to send exactly the planned credential to
    /// exactly the planned endpoint with, on this provider. Empty: never verified, and plans
    /// for the pair are refused unless the policy allows unverified pairs.
    pub verified_on: Vec<String>,
    /// How the runtime reaches this provider when that differs from its own profile.
    pub route: Option<Route>,
    /// The provider serves the models the runtime picks for its side requests by itself
    /// (Claude Code's Haiku on Anthropic): its `side_model_env` is left alone.
    pub own_side_models: bool,
}

/// How a runtime reaches one provider when it does so its own way (Hermes: the provider's
/// own key and base-URL variables, and a setting that selects the provider). In a plan for
/// the provider it replaces the runtime's protocol, credential precedence, base-URL
/// variable and projected key, and adds its settings to the hardening env.
#[derive(Debug, Clone)]
pub struct Route {
    pub protocol: Protocol,
    pub credential_precedence: Vec<Vec<CredentialRead>>,
    pub base_url_env: EnvKey,
    pub key_env: EnvKey,
    pub settings: BTreeMap<EnvKey, String>,
    /// On the platform arm: the runtime sends a model's id without its `vendor/` namespace
    /// (it cannot send one), and the proxy knows the model by the usage token.
    pub bare_model_id: bool,
}

/// One agent runtime's profile.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub name: String,
    pub display_name: String,
    pub protocol: Protocol,
    pub model_ids: ModelIds,
    pub model_env: Vec<EnvKey>,
    pub hardening_env: BTreeMap<EnvKey, String>,
    /// Where the runtime reads the models of its side requests (summaries, titles, sub-agents)
    /// and its model aliases. On a provider that does not serve the runtime's own models,
    /// each names the workspace's model, so that no request names a model the provider lacks.
    pub side_model_env: Vec<EnvKey>,
    /// Ordered tiers: the first tier with any credential present wins and every present
    /// credential of that tier is sent.
    pub credential_precedence: Vec<Vec<CredentialRead>>,
    /// The env var the runtime honours as a base-URL override, if any.
    pub base_url_env: Option<EnvKey>,
    pub default_base_url: String,
    pub projection: Projection,
    pub providers: Vec<NativeProvider>,
    /// Files in the home the runtime would read settings or keys from (`.hermes/.env`):
    /// every plan writes them empty, so that nothing left there overrides the plan.
    pub blank_files: Vec<String>,
    /// Set by a route: see [`Route::bare_model_id`].
    pub bare_model_id: bool,
    /// Set by a route: the settings that select its provider.
    pub route_settings: BTreeMap<EnvKey, String>,
    /// What the CLI needs installed beside it (`Node.js >= 24.16`), for operators.
    pub requires: Option<String>,
}

impl Runtime {
    /// Whether the runtime reads `key` as a credential.
    pub fn reads_credential_env(&self, key: &EnvKey) -> bool {
        self.credential_envs().any(|k| k == key)
    }

    /// Every env var the runtime reads as a credential, in precedence order.
    pub fn credential_envs(&self) -> impl Iterator<Item = &EnvKey> {
        self.credential_precedence.iter().flatten().filter_map(|read| match &read.source {
            CredentialSource::Env(key) => Some(key),
            CredentialSource::File(_) => None,
        })
    }
}

/// The protocol a runtime that defines its provider in a config file speaks to `provider`:
/// its own where the provider serves it, else the provider's other surface (the file names
/// the API kind, so the runtime speaks either).
pub(crate) fn openclaw_protocol(own: Protocol, provider: &Provider) -> Protocol {
    if provider.platform || provider.base_url(own).is_some() {
        return own;
    }
    match own {
        Protocol::Anthropic => Protocol::Openai,
        Protocol::Openai => Protocol::Anthropic,
    }
}

/// An operator's overlay on one provider (regional endpoints, self-hosted gateways, test
/// fakes): the base URLs it replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderOverride {
    pub base_url_openai: Option<String>,
    pub base_url_anthropic: Option<String>,
}

/// What an env-var name is to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// Carries an LLM credential.
    Credential,
    /// Steers where LLM traffic goes (a base URL or forwarded header).
    Routing,
    /// Anything else.
    Other,
}

/// A loaded, validated registry.
#[derive(Debug, Clone)]
pub struct Registry {
    providers: Vec<Provider>,
    runtimes: BTreeMap<String, Runtime>,
    credential_keys: BTreeSet<EnvKey>,
    routing_keys: BTreeSet<EnvKey>,
    /// Every credential and routing key with its class: the planner's hot lookup.
    classes: rustc_hash::FxHashMap<EnvKey, KeyClass>,
    platform: usize,
    prices: crate::prices::PriceBook,
}

impl Registry {
    /// The registry shipped in the binary. It is validated by a test, so this cannot fail
    /// in a released build; it still returns the error rather than assuming.
    pub fn embedded() -> Result<Self, RegistryError> {
        Self::from_yaml(EMBEDDED_REGISTRY_YAML)
    }

    /// Parses and validates a registry document.
    pub fn from_yaml(text: &str) -> Result<Self, RegistryError> {
        validate::load(text)
    }

    /// This registry with the operator's overlays applied. Every overlay must name a known
    /// provider and give http(s) URLs; all problems are reported at once.
    pub fn with_overrides(&self, overrides: &BTreeMap<String, ProviderOverride>) -> Result<Registry, RegistryError> {
        let mut registry = self.clone();
        let mut issues = Vec::new();
        for (name, overlay) in overrides {
            let entry = format!("registry.overrides.{name}");
            let Some(provider) = registry.providers.iter_mut().find(|p| &p.name == name) else {
                issues.push(RegistryIssue { entry, field: String::new(), message: format!("unknown provider `{name}`") });
                continue;
            };
            for (field, url, target) in [
                ("base_url_openai", &overlay.base_url_openai, &mut provider.base_url_openai),
                ("base_url_anthropic", &overlay.base_url_anthropic, &mut provider.base_url_anthropic),
            ] {
                let Some(url) = url else { continue };
                if url.starts_with("http://") || url.starts_with("https://") {
                    *target = Some(url.clone());
                } else {
                    issues.push(RegistryIssue {
                        entry: entry.clone(),
                        field: field.to_owned(),
                        message: format!("`{url}` is not an http(s) URL"),
                    });
                }
            }
        }
        if issues.is_empty() { Ok(registry) } else { Err(RegistryError::Invalid(issues)) }
    }

    /// The price book: list prices per model id, with the operator's overrides once
    /// [`Registry::with_prices`] applied them.
    pub fn prices(&self) -> &crate::prices::PriceBook {
        &self.prices
    }

    /// This registry with the operator's prices (`WSD_CONFIG`'s `[prices."<model>"]`) laid
    /// over the shipped ones; every problem is reported at once.
    pub fn with_prices(&self, overrides: &BTreeMap<String, crate::prices::PriceEntry>) -> Result<Registry, RegistryError> {
        let mut issues = Vec::new();
        let prices = validate::build_prices(overrides, &mut issues);
        if !issues.is_empty() {
            return Err(RegistryError::Invalid(issues));
        }
        let mut registry = self.clone();
        registry.prices = self.prices.with_overrides(&prices);
        Ok(registry)
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub fn runtimes(&self) -> impl Iterator<Item = &Runtime> {
        self.runtimes.values()
    }

    pub fn runtime(&self, name: &str) -> Option<&Runtime> {
        self.runtimes.get(name)
    }

    /// The closed platform arm.
    pub fn platform_provider(&self) -> &Provider {
        &self.providers[self.platform]
    }

    /// The providers a runtime runs natively, in declared order, with their listed models.
    pub fn native_providers<'a>(&'a self, runtime: &'a Runtime) -> impl Iterator<Item = (&'a Provider, &'a [String])> + 'a {
        runtime.providers.iter().map(|native| (&self.providers[native.provider], native.models.as_slice()))
    }

    /// `runtime`'s profile as it reaches the provider named `provider`: its own, or with the
    /// provider's route applied.
    pub fn runtime_for<'a>(&'a self, runtime: &'a Runtime, provider: &str) -> std::borrow::Cow<'a, Runtime> {
        let native = runtime.providers.iter().find(|native| self.providers[native.provider].name == provider);
        if let (Some(native), Projection::OpenclawConfig { .. }) = (native, &runtime.projection) {
            let protocol = openclaw_protocol(runtime.protocol, &self.providers[native.provider]);
            if protocol != runtime.protocol {
                let mut routed = runtime.clone();
                routed.protocol = protocol;
                return std::borrow::Cow::Owned(routed);
            }
        }
        let Some(route) = native.and_then(|n| n.route.as_ref()) else { return std::borrow::Cow::Borrowed(runtime) };
        let mut routed = runtime.clone();
        routed.protocol = route.protocol;
        routed.credential_precedence = route.credential_precedence.clone();
        routed.base_url_env = Some(route.base_url_env.clone());
        routed.projection =
            Projection::Env { key_env: route.key_env.clone(), base_url_env: route.base_url_env.clone(), workspace_header_env: None };
        routed.route_settings = route.settings.clone();
        routed.bare_model_id = route.bare_model_id;
        std::borrow::Cow::Owned(routed)
    }

    /// The side-model variables a plan for `runtime` on the provider named `provider` sets:
    /// none where the provider serves the runtime's own side models.
    pub fn side_model_env<'a>(&'a self, runtime: &'a Runtime, provider: &str) -> &'a [EnvKey] {
        let native = runtime.providers.iter().find(|native| self.providers[native.provider].name == provider);
        if native.is_some_and(|n| n.own_side_models) { &[] } else { &runtime.side_model_env }
    }

    /// The CLI versions `runtime` was verified on with the provider named `provider`; empty
    /// when never (or when the runtime does not run on it).
    pub fn verified_on<'a>(&'a self, runtime: &'a Runtime, provider: &str) -> &'a [String] {
        runtime.providers.iter().find(|native| self.providers[native.provider].name == provider).map_or(&[], |native| &native.verified_on)
    }

    /// Every env-var name that carries an LLM credential: the union of every provider's
    /// `auth_env` and `auth_token_env`, and every credential env a runtime reads or is
    /// projected into.
    pub fn credential_keys(&self) -> &BTreeSet<EnvKey> {
        &self.credential_keys
    }

    /// Every env-var name that steers where LLM traffic goes: the base-URL and header
    /// env names the runtimes read.
    pub fn routing_keys(&self) -> &BTreeSet<EnvKey> {
        &self.routing_keys
    }

    pub fn is_credential_key(&self, key: &EnvKey) -> bool {
        self.classify(key) == KeyClass::Credential
    }

    pub fn is_routing_key(&self, key: &EnvKey) -> bool {
        self.classify(key) == KeyClass::Routing
    }

    /// Whether `key` carries a credential, steers routing, or neither.
    pub fn classify(&self, key: &EnvKey) -> KeyClass {
        self.classes.get(key).copied().unwrap_or(KeyClass::Other)
    }

    /// The header in which `provider` takes its key on `protocol`: the header a runtime of
    /// that protocol sends the provider's `auth_token_env` in — the registry's record of how
    /// the vendor is really called — else the protocol's usual one. wsd's proxy sends keys
    /// this way.
    pub fn key_header(&self, provider: &Provider, protocol: Protocol) -> KeyHeader {
        let sent_as = provider.auth_token_env.as_ref().and_then(|env| {
            self.runtimes()
                .filter(|runtime| runtime.protocol == protocol)
                .flat_map(|runtime| runtime.credential_precedence.iter().flatten())
                .find(|read| matches!(&read.source, CredentialSource::Env(key) if key == env))
                .map(|read| read.sent_as.as_str())
        });
        let bearer = match sent_as {
            Some(sent_as) => sent_as.starts_with("Authorization: Bearer"),
            None => protocol == Protocol::Openai,
        };
        if bearer { KeyHeader::Bearer } else { KeyHeader::ApiKey }
    }
}

/// The header a provider takes its key in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `x-api-key: <key>`.
    ApiKey,
}

impl KeyHeader {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyHeader::Bearer => "Authorization: Bearer",
            KeyHeader::ApiKey => "x-api-key",
        }
    }
}
