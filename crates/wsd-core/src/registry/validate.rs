//! Turns a registry document into a `Registry`, or into every problem it has at once.
//!
//! Invariant: a `Registry` value is only ever built here, after every check passed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use regex::Regex;

use super::raw::{RawCredentialRead, RawProjection, RawProvider, RawRegistry, RawRoute, RawRuntime};
use super::{
    CredentialRead, CredentialSource, KeyClass, NativeProvider, Projection, Protocol, Provider, Registry, Route, Runtime, SCHEMA_VERSION,
};
use crate::env_key::{EnvKey, join_keys};

/// The name reserved for the closed platform arm.
pub const PLATFORM_PROVIDER_NAME: &str = "platform";

/// One problem in a registry document, located by entry and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryIssue {
    /// The entry, e.g. `providers[4] (minimax)` or `runtimes.claude-code`.
    pub entry: String,
    /// The field within the entry, e.g. `model_match`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for RegistryIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.entry, self.message)
        } else {
            write!(f, "{}.{}: {}", self.entry, self.field, self.message)
        }
    }
}

/// Why a registry document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Not YAML, or not the registry's shape (an unknown key, a wrong type).
    #[error("registry is not a valid document: {0}")]
    Parse(String),
    #[error("registry schema_version {found} is not supported (this wsd reads version {SCHEMA_VERSION})")]
    UnsupportedSchemaVersion { found: u32 },
    #[error("registry is invalid:\n{}", render_issues(.0))]
    Invalid(Vec<RegistryIssue>),
}

impl RegistryError {
    /// The stable code of this refusal.
    pub fn code(&self) -> &'static str {
        "INVALID_REGISTRY"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_refusal_has_one_code() {
        assert_eq!(RegistryError::Parse("x".into()).code(), "INVALID_REGISTRY");
        assert_eq!(RegistryError::UnsupportedSchemaVersion { found: 9 }.code(), "INVALID_REGISTRY");
    }

    #[test]
    fn names_are_lower_case_words_joined_by_dashes() {
        for ok in ["a", "anthropic-api", "9x", "claude-code"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "-vendor", "Vendor", "vendor_b", "vendor b", "vendor-B"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}

fn render_issues(issues: &[RegistryIssue]) -> String {
    issues.iter().map(|issue| format!("  - {issue}")).collect::<Vec<_>>().join("\n")
}

#[derive(Default)]
struct Issues(Vec<RegistryIssue>);

impl Issues {
    fn push(&mut self, entry: &str, field: &str, message: impl Into<String>) {
        self.0.push(RegistryIssue { entry: entry.to_owned(), field: field.to_owned(), message: message.into() });
    }
}

pub(super) fn load(text: &str) -> Result<Registry, RegistryError> {
    let version = peek_schema_version(text)?;
    if version != SCHEMA_VERSION {
        return Err(RegistryError::UnsupportedSchemaVersion { found: version });
    }
    let raw: RawRegistry = yaml_serde::from_str(text).map_err(|e| RegistryError::Parse(e.to_string()))?;
    build(raw)
}

/// Reads `schema_version` before the strict parse, so a document of another version is
/// refused for its version and not for the fields that version changed.
fn peek_schema_version(text: &str) -> Result<u32, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        schema_version: Option<u32>,
    }
    let versioned: Versioned = yaml_serde::from_str(text).map_err(|e| RegistryError::Parse(e.to_string()))?;
    versioned.schema_version.ok_or_else(|| RegistryError::Parse("missing field `schema_version`".to_owned()))
}

fn build(raw: RawRegistry) -> Result<Registry, RegistryError> {
    let mut issues = Issues::default();
    let providers = build_providers(raw.providers, &mut issues);
    let platform = find_platform(&providers, &mut issues);
    let index: BTreeMap<&str, usize> = providers.iter().enumerate().map(|(i, p)| (p.name.as_str(), i)).collect();

    if raw.runtimes.is_empty() {
        issues.push("runtimes", "", "at least one runtime is required");
    }
    let mut runtimes = BTreeMap::new();
    for (name, raw_runtime) in raw.runtimes {
        if let Some(runtime) = build_runtime(name.clone(), raw_runtime, &providers, &index, &mut issues) {
            runtimes.insert(name, runtime);
        }
    }
    check_model_ownership(&providers, &runtimes, &mut issues);
    let prices = crate::prices::PriceBook::new(build_prices(&raw.prices, &mut issues.0));

    match (issues.0.is_empty(), platform) {
        (true, Some(platform)) => {
            let (credential_keys, routing_keys) = llm_keys(&providers, &runtimes);
            // A name that is both (none in the shipped registry) counts as a credential.
            let classes = routing_keys
                .iter()
                .map(|k| (k.clone(), KeyClass::Routing))
                .chain(credential_keys.iter().map(|k| (k.clone(), KeyClass::Credential)))
                .collect();
            Ok(Registry { providers, runtimes, credential_keys, routing_keys, classes, platform, prices })
        }
        _ => Err(RegistryError::Invalid(issues.0)),
    }
}

/// Prices as written (the registry's `prices`, the operator's `[prices]`) → each model's
/// price; every problem, named by its model and field, goes to `issues`.
pub(super) fn build_prices(
    raw: &BTreeMap<String, crate::prices::PriceEntry>,
    issues: &mut Vec<RegistryIssue>,
) -> BTreeMap<String, crate::prices::ModelPrice> {
    let mut models = BTreeMap::new();
    for (model, entry) in raw {
        let entry_name = format!("prices.{model}");
        let mut issue = |field: &str, message: &str| {
            issues.push(RegistryIssue { entry: entry_name.clone(), field: field.to_owned(), message: message.to_owned() })
        };
        if model.trim().is_empty() || model.trim() != model {
            issue("", "a model id must not be empty or have surrounding whitespace");
        }
        match entry.to_price() {
            Ok(price) => {
                models.insert(model.clone(), price);
            }
            Err(problems) => {
                for problem in problems {
                    let (field, message) = problem.split_once(": ").unwrap_or(("", &problem));
                    issue(field, message);
                }
            }
        }
    }
    models
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_url(entry: &str, field: &str, url: Option<&str>, issues: &mut Issues) {
    if let Some(url) = url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        issues.push(entry, field, format!("`{url}` is not an http(s) URL"));
    }
}

fn check_no_duplicate_keys(entry: &str, field: &str, keys: &[EnvKey], issues: &mut Issues) {
    let mut seen = BTreeSet::new();
    for key in keys {
        if !seen.insert(key) {
            issues.push(entry, field, format!("{key} is listed twice"));
        }
    }
}

fn build_providers(raw: Vec<RawProvider>, issues: &mut Issues) -> Vec<Provider> {
    if raw.is_empty() {
        issues.push("providers", "", "at least one provider is required");
    }
    let mut names = BTreeSet::new();
    let mut vendors: BTreeMap<String, String> = BTreeMap::new();
    let mut providers = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let entry = format!("providers[{i}] ({})", p.name);
        if !is_valid_name(&p.name) {
            issues.push(&entry, "name", "must be lower-case letters, digits and '-'");
        }
        if !names.insert(p.name.clone()) {
            issues.push(&entry, "name", format!("provider `{}` is declared twice", p.name));
        }
        if p.display_name.trim().is_empty() {
            issues.push(&entry, "display_name", "must not be empty");
        }
        if p.auth_env.is_empty() {
            issues.push(&entry, "auth_env", "must list at least one env-var name");
        }
        check_no_duplicate_keys(&entry, "auth_env", &p.auth_env, issues);
        check_url(&entry, "base_url_openai", p.base_url_openai.as_deref(), issues);
        check_url(&entry, "base_url_anthropic", p.base_url_anthropic.as_deref(), issues);
        if let Some(vendor) = &p.upstream_vendor {
            if vendor.is_empty() || vendor.contains(['/', ':']) {
                issues.push(&entry, "upstream_vendor", "must be a non-empty token without '/' or ':'");
            }
            if let Some(other) = vendors.insert(vendor.clone(), p.name.clone()) {
                issues.push(&entry, "upstream_vendor", format!("`{vendor}` is already the upstream_vendor of provider `{other}`"));
            }
        }
        let model_match = match Regex::new(&p.model_match) {
            Ok(regex) => regex,
            Err(e) => {
                issues.push(&entry, "model_match", format!("regex does not compile: {e}"));
                continue;
            }
        };
        providers.push(Provider {
            name: p.name,
            display_name: p.display_name,
            protocol: p.protocol,
            auth_mode: p.auth_mode,
            platform: p.platform,
            auth_env: p.auth_env,
            auth_token_env: p.auth_token_env,
            base_url_openai: p.base_url_openai,
            base_url_anthropic: p.base_url_anthropic,
            model_match,
            model_aliases: p.model_aliases,
            upstream_vendor: p.upstream_vendor,
            deprecated: p.deprecated,
        });
    }
    providers
}

fn find_platform(providers: &[Provider], issues: &mut Issues) -> Option<usize> {
    let platforms: Vec<usize> = (0..providers.len()).filter(|&i| providers[i].platform).collect();
    for p in providers {
        let entry = format!("provider `{}`", p.name);
        if p.platform && p.name != PLATFORM_PROVIDER_NAME {
            issues.push(&entry, "platform", format!("the platform arm must be named `{PLATFORM_PROVIDER_NAME}`"));
        }
        if !p.platform && p.name == PLATFORM_PROVIDER_NAME {
            issues.push(
                &entry,
                "platform",
                format!("the name `{PLATFORM_PROVIDER_NAME}` is reserved for the platform arm (set `platform: true`)"),
            );
        }
        if p.platform != (p.auth_mode == super::AuthMode::Platform) {
            issues.push(&entry, "auth_mode", "`auth_mode: platform` is for the platform arm only, and the platform arm must use it");
        }
    }
    match platforms.as_slice() {
        [one] => Some(*one),
        [] => {
            issues.push("providers", "platform", "exactly one provider must be the platform arm; there is none");
            None
        }
        many => {
            let names: Vec<&str> = many.iter().map(|&i| providers[i].name.as_str()).collect();
            issues.push("providers", "platform", format!("exactly one provider must be the platform arm; found {}", names.join(", ")));
            None
        }
    }
}

fn build_credential_read(entry: &str, raw: RawCredentialRead, issues: &mut Issues) -> Option<CredentialRead> {
    check_url(entry, "credential_precedence.endpoint", raw.endpoint.as_deref(), issues);
    let source = match (raw.env, raw.file) {
        (Some(key), None) => CredentialSource::Env(key),
        (None, Some(path)) if is_relative_path(&path) => CredentialSource::File(path),
        (None, Some(path)) => {
            issues.push(entry, "credential_precedence.file", format!("`{path}` must be a relative path inside the workspace home"));
            return None;
        }
        _ => {
            issues.push(entry, "credential_precedence", "each credential names exactly one of `env` or `file`");
            return None;
        }
    };
    Some(CredentialRead { source, sent_as: raw.sent_as, endpoint: raw.endpoint })
}

/// A runtime's own way to one provider: it must read the key it is given, and its
/// settings may not be a credential or its base URL.
fn build_route(entry: &str, field: &str, raw: RawRoute, runtime_protocol: Protocol, issues: &mut Issues) -> Option<Route> {
    let field = format!("{field}.route");
    if raw.credential_precedence.is_empty() || raw.credential_precedence.iter().any(Vec::is_empty) {
        issues.push(entry, &field, "credential_precedence must list at least one tier, and no tier may be empty");
    }
    let credential_precedence: Vec<Vec<CredentialRead>> = raw
        .credential_precedence
        .into_iter()
        .map(|tier| tier.into_iter().filter_map(|read| build_credential_read(entry, read, issues)).collect())
        .collect();
    let reads_env = |key: &EnvKey| credential_precedence.iter().flatten().any(|read| read.source == CredentialSource::Env(key.clone()));
    if !reads_env(&raw.key_env) {
        issues.push(
            entry,
            &field,
            format!("{} is not in the route's credential_precedence: the runtime would never read the projected key", raw.key_env),
        );
    }
    for key in raw.settings.keys() {
        if reads_env(key) || *key == raw.base_url_env {
            issues.push(entry, &field, format!("{key} is a credential or the base-URL env of this route and cannot be a setting"));
        }
    }
    Some(Route {
        protocol: raw.protocol.unwrap_or(runtime_protocol),
        credential_precedence,
        base_url_env: raw.base_url_env,
        key_env: raw.key_env,
        settings: raw.settings,
        bare_model_id: raw.bare_model_id,
    })
}

fn is_relative_path(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && path.split('/').all(|part| !part.is_empty() && part != "..")
}

fn build_runtime(
    name: String,
    raw: RawRuntime,
    providers: &[Provider],
    index: &BTreeMap<&str, usize>,
    issues: &mut Issues,
) -> Option<Runtime> {
    let entry = format!("runtimes.{name}");
    if !is_valid_name(&name) {
        issues.push(&entry, "", "runtime names must be lower-case letters, digits and '-'");
    }
    if raw.display_name.trim().is_empty() {
        issues.push(&entry, "display_name", "must not be empty");
    }
    check_url(&entry, "default_base_url", Some(&raw.default_base_url), issues);
    check_no_duplicate_keys(&entry, "model_env", &raw.model_env, issues);
    check_no_duplicate_keys(&entry, "side_model_env", &raw.side_model_env, issues);
    for key in raw.side_model_env.iter().filter(|k| raw.model_env.contains(k) || raw.hardening_env.contains_key(*k)) {
        issues.push(&entry, "side_model_env", format!("{key} is also in model_env or hardening_env"));
    }

    if raw.credential_precedence.is_empty() || raw.credential_precedence.iter().any(Vec::is_empty) {
        issues.push(&entry, "credential_precedence", "must list at least one tier, and no tier may be empty");
    }
    let credential_precedence: Vec<Vec<CredentialRead>> = raw
        .credential_precedence
        .into_iter()
        .map(|tier| tier.into_iter().filter_map(|read| build_credential_read(&entry, read, issues)).collect())
        .collect();
    let reads_env = |key: &EnvKey| credential_precedence.iter().flatten().any(|read| read.source == CredentialSource::Env(key.clone()));
    let reads_file = |path: &str| credential_precedence.iter().flatten().any(|read| read.source == CredentialSource::File(path.to_owned()));

    let projection = match raw.projection {
        RawProjection::Env { key_env, base_url_env, workspace_header_env } => {
            if !reads_env(&key_env) {
                issues.push(
                    &entry,
                    "projection.key_env",
                    format!("{key_env} is not in credential_precedence: the runtime would never read the projected key"),
                );
            }
            if raw.base_url_env.as_ref() != Some(&base_url_env) {
                issues.push(
                    &entry,
                    "projection.base_url_env",
                    format!("{base_url_env} must be the runtime's base_url_env, or the runtime would ignore the projected base URL"),
                );
            }
            Projection::Env { key_env, base_url_env, workspace_header_env }
        }
        RawProjection::CodexConfig { path, login_file } => {
            if !is_relative_path(&path) {
                issues.push(&entry, "projection.path", format!("`{path}` must be a relative path inside the workspace home"));
            }
            if !reads_file(&login_file) {
                issues.push(&entry, "projection.login_file", format!("`{login_file}` is not a file credential in credential_precedence"));
            }
            Projection::CodexConfig { path, login_file }
        }
        RawProjection::OpenclawConfig { path } => {
            if !is_relative_path(&path) {
                issues.push(&entry, "projection.path", format!("`{path}` must be a relative path inside the workspace home"));
            }
            Projection::OpenclawConfig { path }
        }
    };

    for key in raw.hardening_env.keys().chain(&raw.model_env).chain(&raw.side_model_env) {
        if reads_env(key) || raw.base_url_env.as_ref() == Some(key) {
            issues.push(
                &entry,
                "hardening_env",
                format!("{key} is a credential or base-URL env of this runtime and cannot be a fixed setting"),
            );
        }
    }

    if raw.providers.is_empty() {
        issues.push(&entry, "providers", "must list at least one provider");
    }
    let mut seen = BTreeSet::new();
    let mut natives = Vec::with_capacity(raw.providers.len());
    for native in raw.providers {
        let field = format!("providers.{}", native.name);
        let Some(&i) = index.get(native.name.as_str()) else {
            issues.push(&entry, &field, format!("unknown provider `{}`", native.name));
            continue;
        };
        if !seen.insert(i) {
            issues.push(&entry, &field, "provider is listed twice");
        }
        let mut models = BTreeSet::new();
        for model in &native.models {
            if model.trim().is_empty() || model.trim() != model {
                issues.push(&entry, &field, format!("model id `{model}` is empty or has surrounding whitespace"));
            }
            if !models.insert(model) {
                issues.push(&entry, &field, format!("model id `{model}` is listed twice"));
            }
        }
        let route = native.route.and_then(|route| build_route(&entry, &field, route, raw.protocol, issues));
        let provider = &providers[i];
        let protocol = match (&route, &projection) {
            (Some(route), _) => route.protocol,
            (None, Projection::OpenclawConfig { .. }) => super::openclaw_protocol(raw.protocol, provider),
            (None, _) => raw.protocol,
        };
        if matches!(projection, Projection::OpenclawConfig { .. }) && provider.auth_mode == super::AuthMode::Oauth {
            issues.push(
                &entry,
                &field,
                format!("provider `{}` authenticates with a login, which a provider defined in a config file cannot carry", provider.name),
            );
        }
        if !provider.platform && provider.base_url(protocol).is_none() {
            issues.push(
                &entry,
                &field,
                format!(
                    "provider `{}` has no base_url_{} for this {}-protocol runtime: the runtime would send its key to its default endpoint",
                    provider.name,
                    protocol.as_str(),
                    protocol.as_str()
                ),
            );
        }
        let mut versions = BTreeSet::new();
        for version in &native.verified_on {
            if version.is_empty() || version.chars().any(char::is_whitespace) {
                issues.push(&entry, &field, format!("verified_on version `{version}` is empty or holds whitespace"));
            }
            if !versions.insert(version) {
                issues.push(&entry, &field, format!("verified_on version `{version}` is listed twice"));
            }
        }
        if native.own_side_models && raw.side_model_env.is_empty() {
            issues.push(&entry, &field, "own_side_models is set but the runtime has no side_model_env");
        }
        natives.push(NativeProvider {
            provider: i,
            models: native.models,
            verified_on: native.verified_on,
            route,
            own_side_models: native.own_side_models,
        });
    }

    let mut blank_files = Vec::with_capacity(raw.blank_files.len());
    for path in raw.blank_files {
        if !is_relative_path(&path) {
            issues.push(&entry, "blank_files", format!("`{path}` must be a relative path inside the workspace home"));
        } else if reads_file(&path) || projection.config_path() == Some(path.as_str()) {
            issues.push(
                &entry,
                "blank_files",
                format!("`{path}` is a credential or configuration file of this runtime; the plan writes it"),
            );
        } else if blank_files.contains(&path) {
            issues.push(&entry, "blank_files", format!("`{path}` is listed twice"));
        } else {
            blank_files.push(path);
        }
    }
    Some(Runtime {
        name,
        display_name: raw.display_name,
        protocol: raw.protocol,
        model_ids: raw.model_ids,
        model_env: raw.model_env,
        hardening_env: raw.hardening_env,
        side_model_env: raw.side_model_env,
        credential_precedence,
        base_url_env: raw.base_url_env,
        default_base_url: raw.default_base_url,
        projection,
        providers: natives,
        blank_files,
        bare_model_id: false,
        route_settings: BTreeMap::new(),
        requires: raw.requires.filter(|r| !r.trim().is_empty()),
    })
}

/// The model-overlap guard: no model id of a runtime may be owned by two of its providers
/// unless their `auth_env` lists are disjoint, so that the available credentials can tell
/// them apart. Exact ids are checked exactly; `model_match` patterns are checked over every
/// model id and alias the registry names anywhere.
fn check_model_ownership(providers: &[Provider], runtimes: &BTreeMap<String, Runtime>, issues: &mut Issues) {
    let corpus: BTreeSet<&str> = runtimes
        .values()
        .flat_map(|r| r.providers.iter().flat_map(|n| n.models.iter().map(String::as_str)))
        .chain(providers.iter().flat_map(|p| p.model_aliases.iter().map(String::as_str)))
        .collect();
    for runtime in runtimes.values() {
        let entry = format!("runtimes.{}", runtime.name);
        let mut exact_owners: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for native in &runtime.providers {
            for model in &native.models {
                exact_owners.entry(model).or_default().push(native.provider);
            }
        }
        for (model, owners) in &exact_owners {
            report_overlap(&entry, "listed under", model, owners, providers, issues);
        }
        for model in &corpus {
            if exact_owners.contains_key(model) {
                continue;
            }
            let owners: Vec<usize> =
                runtime.providers.iter().map(|n| n.provider).filter(|&i| providers[i].model_match.is_match(model)).collect();
            report_overlap(&entry, "matched by the model_match of", model, &owners, providers, issues);
        }
    }
}

fn report_overlap(entry: &str, how: &str, model: &str, owners: &[usize], providers: &[Provider], issues: &mut Issues) {
    for (n, &a) in owners.iter().enumerate() {
        for &b in &owners[n + 1..] {
            let (pa, pb) = (&providers[a], &providers[b]);
            let shared: Vec<&EnvKey> = pa.auth_env.iter().filter(|k| pb.auth_env.contains(k)).collect();
            if !shared.is_empty() {
                issues.push(entry, "providers", format!(
                    "model `{model}` is {how} both `{}` and `{}`, whose auth_env share {}: the available credentials could not tell them apart",
                    pa.name, pb.name, join_keys(shared)
                ));
            }
        }
    }
}

fn llm_keys(providers: &[Provider], runtimes: &BTreeMap<String, Runtime>) -> (BTreeSet<EnvKey>, BTreeSet<EnvKey>) {
    let mut credential = BTreeSet::new();
    let mut routing = BTreeSet::new();
    for p in providers {
        credential.extend(p.auth_env.iter().cloned());
        credential.extend(p.auth_token_env.iter().cloned());
    }
    for r in runtimes.values() {
        credential.extend(r.credential_envs().cloned());
        for route in r.providers.iter().filter_map(|n| n.route.as_ref()) {
            credential.extend(route.credential_precedence.iter().flatten().filter_map(|read| match &read.source {
                CredentialSource::Env(key) => Some(key.clone()),
                CredentialSource::File(_) => None,
            }));
            credential.insert(route.key_env.clone());
            routing.insert(route.base_url_env.clone());
        }
        routing.extend(r.base_url_env.iter().cloned());
        if let Projection::Env { key_env, base_url_env, workspace_header_env } = &r.projection {
            credential.insert(key_env.clone());
            routing.insert(base_url_env.clone());
            routing.extend(workspace_header_env.iter().cloned());
        }
    }
    (credential, routing)
}
