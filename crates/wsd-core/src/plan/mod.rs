//! The credential planner: a pure function from a workspace, the names and origins of its
//! secrets, the platform settings and the policy, to the exact env and files the workspace
//! gets, with one decision per key and the reason for it. Its steps are listed in
//! ARCHITECTURE.md ("How a plan is made").
//!
//! Architecture invariants: no IO, no clock, no env reads; the planner never sees a secret
//! value; the output is deterministic (sorted maps); an `Ok` plan has passed the parity
//! check, i.e. the runtime's own credential precedence, simulated over the final env, picks
//! the planned credential and sends it to the planned endpoint.

mod codex;
mod config;
mod input;
mod openclaw;
mod output;
mod parity;
mod report;
mod sorted;

use sorted::SortedVecMap;

pub use codex::{CodexConfig, CodexProvider};
pub use input::{
    BUILTIN_FORBIDDEN_KEYS, BUILTIN_FORBIDDEN_PREFIXES, CredentialDelivery, DeliveryChoice, DeliverySetBy, PlatformSettings, Policy,
    SecretNames, SecretOrigin, WorkspaceId, WorkspaceIdError, WorkspaceSpec,
};
pub use openclaw::OpenclawConfig;
pub use output::{
    Action, CredentialUse, Decision, EntryOrigin, EnvEntry, EnvValue, FileContent, MODEL_ENV, PROXY_BASE_URL_ENV, Plan, PlanFile,
    PlannedDelivery, ProxiedCredential, Routing, USAGE_TOKEN_ENV,
};
pub use report::{CredentialReport, EnvReport, ErrorReport, FileReport, PlanReport};

use crate::derive::{Derivation, derive_with};
use crate::env_key::{EnvKey, join_keys};
use crate::error::PlanError;
use crate::registry::{AuthMode, KeyClass, ModelIds, Projection, Provider, Registry, Runtime};
use config::RuntimeConfig;
use output::Reason as DecisionReason;

/// Plans the environment of `workspace`. See the module documentation.
pub fn plan(
    registry: &Registry,
    workspace: &WorkspaceSpec,
    secrets: &SecretNames,
    platform: Option<&PlatformSettings>,
    policy: &Policy,
) -> Result<Plan, PlanError> {
    let (inputs, outputs) = capacity_hints(secrets);
    let mut draft = Draft {
        env: SortedVecMap::with_capacity(outputs),
        files: Vec::new(),
        decisions: Vec::with_capacity(outputs),
        warnings: Vec::new(),
    };

    // Provenance: a workspace secret overrides the org secret of the same key.
    let mut effective: SortedVecMap<EnvKey, SecretOrigin> = SortedVecMap::with_capacity(inputs);
    for key in &secrets.org {
        effective.insert(key.clone(), SecretOrigin::Org);
    }
    for key in &secrets.workspace {
        if effective.insert(key.clone(), SecretOrigin::Workspace).is_some() {
            draft.decide(
                key,
                EntryOrigin::Org,
                Action::Overridden,
                format!("the workspace sets its own {key}, which overrides the org secret"),
            );
        }
    }

    // Step 1: names that steer how programs start may come from no tenant; operator-scope
    // keys may not come from the org.
    let protected: Vec<EnvKey> =
        effective.iter().map(|(key, _)| key).filter(|key| crate::protected_env::protected_reason(key).is_some()).cloned().collect();
    if !protected.is_empty() {
        return Err(PlanError::ProtectedEnvKey { keys: protected });
    }
    let forbidden: Vec<EnvKey> = effective
        .iter()
        .filter(|(key, origin)| **origin == SecretOrigin::Org && policy.is_forbidden_for_org(key))
        .map(|(key, _)| key.clone())
        .collect();
    if !forbidden.is_empty() {
        return Err(PlanError::ForbiddenTenantEnvKey { keys: forbidden });
    }

    // Step 2: derive the provider from the stored model.
    let derivation = derive_with(registry, &workspace.runtime, &workspace.model, |key| effective.contains_key(key))?;
    let provider = derivation.provider;
    // The runtime as it reaches this provider (its own profile, or the provider's route).
    let profile = registry.runtime_for(derivation.runtime, &provider.name);
    let runtime: &Runtime = &profile;
    // Only a pair a real CLI was observed on is proven; any other is refused unless the
    // operator allows it.
    let verified_on = registry.verified_on(derivation.runtime, &provider.name);
    if verified_on.is_empty() && !policy.allow_unverified {
        return Err(PlanError::UnverifiedRuntimeProvider { runtime: runtime.name.clone(), provider: provider.name.clone() });
    }

    let fixed = fixed_settings(runtime, provider, registry.side_model_env(derivation.runtime, &provider.name), &workspace.model);
    let mut planner = Planner { registry, workspace, runtime, provider, effective, fixed, draft };
    planner.route_inputs();

    // Steps 3 and 4: routing, and how the credential is delivered.
    let (routing, intended, config, delivery) = if provider.platform {
        let platform = platform.ok_or_else(|| PlanError::MissingPlatformProxy { model: workspace.model.clone() })?;
        let (intended, config) = planner.project_proxy(platform, "wsd-platform".to_owned(), workspace.model.clone());
        let delivery = PlannedDelivery {
            delivery: CredentialDelivery::Proxy,
            reason: "platform-routed: the workspace holds only its usage token; wsd's metering proxy sends the platform's key".to_owned(),
            proxied: None,
        };
        (Routing::Platform, intended, config, delivery)
    } else {
        let (intended, config, delivery) = planner.route_byok(platform)?;
        (Routing::Byok, intended, config, delivery)
    };

    // Step 5: model env, hardening env, config files.
    planner.inject_fixed();
    if let (Some(config), Some(path)) = (&config, runtime.projection.config_path()) {
        planner.draft.files.push(PlanFile { path: path.to_owned(), content: FileContent::Text(config.render()) });
    }
    // Files that would override the plan from the home are written empty.
    for path in &runtime.blank_files {
        planner.draft.files.push(PlanFile { path: path.clone(), content: FileContent::Text(String::new()) });
    }

    // Step 7: parity.
    let target = match delivery.delivery {
        CredentialDelivery::Proxy => "wsd's metering proxy".to_owned(),
        CredentialDelivery::Direct => format!("provider `{}`", provider.name),
    };
    let mut plan = planner.finish(routing, &derivation, verified_on, delivery);
    plan.credential = Some(parity::check(runtime, provider, &target, &plan, config.as_ref(), &intended)?);
    Ok(plan)
}

/// What the runtime must end up sending, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Intended {
    pub credential: EnvValue,
    /// The endpoint; `None` when the user set the base URL on the workspace.
    pub endpoint: Option<String>,
}

#[derive(Debug)]
struct Draft {
    env: SortedVecMap<EnvKey, EnvEntry>,
    files: Vec<PlanFile>,
    /// In the order taken; a later decision on the same key and origin replaces an earlier.
    decisions: Vec<Decision>,
    warnings: Vec<String>,
}

impl Draft {
    fn decide(&mut self, key: &EnvKey, origin: EntryOrigin, action: Action, reason: impl Into<DecisionReason>) {
        self.decisions.push(Decision { key: key.clone(), origin, action, reason: reason.into() });
    }

    fn inject(&mut self, key: &EnvKey, origin: EntryOrigin, value: EnvValue, reason: DecisionReason) {
        let action = if origin == EntryOrigin::Projected { Action::Projected } else { Action::Injected };
        self.env.insert(key.clone(), EnvEntry { origin, value });
        self.decide(key, origin, action, reason);
    }
}

/// How many input keys, and about how many env entries and decisions, a plan will hold.
/// Only allocation sizes depend on it.
fn capacity_hints(secrets: &SecretNames) -> (usize, usize) {
    let inputs = secrets.org.len() + secrets.workspace.len();
    (inputs, inputs + 16)
}

/// Sorts decisions by key and origin, keeping the last one taken for each.
fn final_decisions(mut decisions: Vec<Decision>) -> Vec<Decision> {
    // Stable: among equal keys, the order taken is kept, so the last is the latest.
    decisions.sort_by(|a, b| (&a.key, a.origin).cmp(&(&b.key, b.origin)));
    let mut out: Vec<Decision> = Vec::with_capacity(decisions.len());
    for decision in decisions {
        match out.last_mut() {
            Some(last) if last.key == decision.key && last.origin == decision.origin => *last = decision,
            _ => out.push(decision),
        }
    }
    out
}

/// The model id the runtime is given: the vendor's own id when the runtime passes it to a
/// BYOK provider as written (`moonshot/kimi-k2.6` → `kimi-k2.6`); as stored otherwise — the
/// metering proxy needs the platform's `vendor/` namespace, and some runtimes resolve
/// `provider:model` ids themselves.
pub(crate) fn runtime_model<'m>(runtime: &Runtime, provider: &Provider, model: &'m str) -> &'m str {
    if provider.platform && runtime.bare_model_id {
        // The proxy knows the platform model by the workspace's usage token.
        return model.split_once('/').map_or(model, |(_, id)| id);
    }
    if !provider.platform && runtime.model_ids == ModelIds::Vendor { provider.vendor_model_id(model) } else { model }
}

/// The settings wsd always writes: the model and the runtime's hardening env.
fn fixed_settings(
    runtime: &Runtime,
    provider: &Provider,
    side_model_env: &[EnvKey],
    model: &str,
) -> SortedVecMap<EnvKey, (String, String)> {
    let mut fixed = SortedVecMap::default();
    let model_key = EnvKey::new(MODEL_ENV).expect("MODEL_ENV is a valid env name");
    fixed.insert(model_key, (model.to_owned(), "the workspace's model".to_owned()));
    let given = runtime_model(runtime, provider, model);
    let reason = if given == model {
        format!("the workspace's model, where {} reads it", runtime.name)
    } else {
        format!("the workspace's model as provider `{}` names it, where {} reads it", provider.name, runtime.name)
    };
    for key in &runtime.model_env {
        fixed.insert(key.clone(), (given.to_owned(), reason.clone()));
    }
    if !side_model_env.is_empty() {
        let side = format!(
            "the model of {}'s side requests and model aliases: provider `{}` serves the workspace's model, not {}'s own",
            runtime.name, provider.name, runtime.name
        );
        for key in side_model_env {
            fixed.insert(key.clone(), (given.to_owned(), side.clone()));
        }
    }
    for (key, value) in &runtime.hardening_env {
        fixed.insert(key.clone(), (value.clone(), format!("hardening setting of {}", runtime.name)));
    }
    for (key, value) in &runtime.route_settings {
        fixed.insert(key.clone(), (value.clone(), format!("the setting by which {} reaches provider `{}`", runtime.name, provider.name)));
    }
    fixed
}

struct Planner<'a> {
    registry: &'a Registry,
    workspace: &'a WorkspaceSpec,
    runtime: &'a Runtime,
    provider: &'a Provider,
    effective: SortedVecMap<EnvKey, SecretOrigin>,
    fixed: SortedVecMap<EnvKey, (String, String)>,
    draft: Draft,
}

impl Planner<'_> {
    /// Decides every input key by its category; BYOK credential keys are kept tentatively
    /// and may be stripped by the exactly-one-credential rule.
    fn route_inputs(&mut self) {
        let platform = self.provider.platform;
        let p = &self.provider.name;
        // Reasons shared by every key they apply to.
        let user_authored = DecisionReason::from("user-authored: set on the workspace by its user");
        let accepted = DecisionReason::from(format!("accepted by provider `{p}`"));
        let not_accepted = DecisionReason::from(format!(
            "provider `{p}` accepts only {}; an org-wide credential it does not accept must not reach this workspace",
            join_keys(&self.provider.auth_env)
        ));
        let org_routing = DecisionReason::from(format!(
            "org-wide base URLs and headers are never applied: the endpoint of provider `{p}` comes from the registry"
        ));
        for (key, &origin) in self.effective.iter() {
            let class = self.registry.classify(key);
            let (action, reason): (Action, DecisionReason) = if self.fixed.contains_key(key) || key.as_str().starts_with("WSD_") {
                (Action::Stripped, "set by wsd itself; a secret cannot replace it".into())
            } else if platform && class != KeyClass::Other {
                (
                    Action::Stripped,
                    "platform-managed: the workspace reaches LLMs only through wsd's metering proxy with its usage token".into(),
                )
            } else {
                match (class, origin) {
                    (KeyClass::Other, _) => (Action::Kept, "not an LLM credential; passed through unchanged".into()),
                    (_, SecretOrigin::Workspace) => (Action::Kept, user_authored.clone()),
                    (KeyClass::Credential, SecretOrigin::Org) if self.provider.accepts(key) => (Action::Kept, accepted.clone()),
                    (KeyClass::Credential, SecretOrigin::Org) => (Action::Stripped, not_accepted.clone()),
                    (KeyClass::Routing, SecretOrigin::Org) => (Action::Stripped, org_routing.clone()),
                }
            };
            if action == Action::Kept {
                self.draft
                    .env
                    .insert(key.clone(), EnvEntry { origin: origin.into(), value: EnvValue::Secret { key: key.clone(), origin } });
            }
            self.draft.decide(key, origin.into(), action, reason);
        }
    }

    /// Removes a kept input from the env, recording why.
    fn strip_input(&mut self, key: &EnvKey, reason: impl FnOnce() -> String) {
        if let Some(&origin) = self.effective.get(key)
            && self.draft.env.get(key).is_some_and(|e| e.origin == EntryOrigin::from(origin))
        {
            self.draft.env.remove(key);
            self.draft.decide(key, origin.into(), Action::Stripped, reason());
        }
    }

    fn input_origin(&self, key: &EnvKey) -> Option<SecretOrigin> {
        let origin = *self.effective.get(key)?;
        let entry = self.draft.env.get(key)?;
        (entry.origin == EntryOrigin::from(origin)).then_some(origin)
    }

    /// Replaces whatever input sits at `key` by an injected or projected value.
    fn put(&mut self, key: &EnvKey, origin: EntryOrigin, value: EnvValue, reason: impl Into<DecisionReason>) {
        let reason = reason.into();
        self.strip_input(key, || format!("replaced: {reason}"));
        self.draft.inject(key, origin, value, reason);
    }

    /// Points the runtime at wsd's metering proxy with the workspace's usage token as its
    /// key: a platform-routed workspace, or a BYOK one whose key wsd keeps. `provider_id`
    /// and `codex_model` are what a config-file runtime's provider entry is called and runs.
    fn project_proxy(
        &mut self,
        platform: &PlatformSettings,
        provider_id: String,
        codex_model: String,
    ) -> (Intended, Option<RuntimeConfig>) {
        let runtime = self.runtime;
        let usage_key = EnvKey::new(USAGE_TOKEN_ENV).expect("valid env name");
        let base_key = EnvKey::new(PROXY_BASE_URL_ENV).expect("valid env name");
        let proxy_url = platform.base_url(runtime.protocol);
        self.put(
            &base_key,
            EntryOrigin::Injected,
            EnvValue::Literal(platform.proxy_base_url.clone()),
            "the metering proxy's root URL".to_owned(),
        );
        self.put(
            &usage_key,
            EntryOrigin::Injected,
            EnvValue::UsageToken,
            "the workspace's usage token for the metering proxy, minted at provision".to_owned(),
        );
        let config = match &runtime.projection {
            Projection::Env { key_env, base_url_env, workspace_header_env } => {
                self.put(
                    key_env,
                    EntryOrigin::Projected,
                    EnvValue::UsageToken,
                    format!("{} reads its key from {key_env}; it carries the usage token", runtime.name),
                );
                self.put(
                    base_url_env,
                    EntryOrigin::Injected,
                    EnvValue::Literal(proxy_url.clone()),
                    format!("the metering proxy's {} surface", runtime.protocol.as_str()),
                );
                if let Some(header_env) = workspace_header_env {
                    let header = format!("X-Wsd-Workspace-Id: {}", self.workspace.id);
                    self.put(
                        header_env,
                        EntryOrigin::Injected,
                        EnvValue::Literal(header),
                        "attributes the workspace's requests at the metering proxy".to_owned(),
                    );
                }
                None
            }
            Projection::CodexConfig { .. } => Some(RuntimeConfig::Codex(CodexConfig {
                model: codex_model,
                provider: Some(CodexProvider {
                    id: provider_id,
                    display_name: self.provider.display_name.clone(),
                    base_url: proxy_url.clone(),
                    env_key: usage_key,
                }),
            })),
            Projection::OpenclawConfig { .. } => Some(RuntimeConfig::Openclaw(OpenclawConfig {
                provider_id,
                protocol: runtime.protocol,
                base_url: proxy_url.clone(),
                key_env: usage_key,
                model: runtime_model(runtime, self.provider, &self.workspace.model).to_owned(),
            })),
        };
        (Intended { credential: EnvValue::UsageToken, endpoint: Some(proxy_url) }, config)
    }

    /// The credential the workspace uses: a workspace secret the runtime reads as is, else
    /// another workspace secret, else an org secret; each in the provider's `auth_env` order.
    fn choose_credential(&self) -> Option<(EnvKey, SecretOrigin)> {
        let present: Vec<(&EnvKey, SecretOrigin)> =
            self.provider.auth_env.iter().filter_map(|key| Some((key, self.input_origin(key)?))).collect();
        let direct = |(key, origin): &(&EnvKey, SecretOrigin)| *origin == SecretOrigin::Workspace && self.runtime.reads_credential_env(key);
        present
            .iter()
            .find(|c| direct(c))
            .or_else(|| present.iter().find(|(_, origin)| *origin == SecretOrigin::Workspace))
            .or_else(|| present.first())
            .map(|(key, origin)| ((*key).clone(), *origin))
    }

    fn route_byok(&mut self, platform: Option<&PlatformSettings>) -> Result<(Intended, Option<RuntimeConfig>, PlannedDelivery), PlanError> {
        let (runtime, provider) = (self.runtime, self.provider);
        let Some((source, origin)) = self.choose_credential() else {
            return Err(PlanError::MissingByokCredential { provider: provider.name.clone(), accepted: provider.auth_env.clone() });
        };
        let choice = self.workspace.delivery;
        let reason = match choice.delivery {
            CredentialDelivery::Proxy if provider.auth_mode == AuthMode::Oauth => {
                self.draft.warnings.push(format!(
                    "provider `{}` signs in with a subscription login, which wsd cannot exchange exactly at its proxy: the workspace holds it, whatever the credential delivery",
                    provider.name
                ));
                format!(
                    "credential delivery {} does not apply to a subscription login: the workspace holds the {} secret {source} and {} sends it to provider `{}`",
                    choice.describe(),
                    origin.as_str(),
                    runtime.name,
                    provider.name
                )
            }
            CredentialDelivery::Proxy => {
                let platform = platform.ok_or_else(|| PlanError::CredentialProxyUnavailable { provider: provider.name.clone() })?;
                return self.route_byok_proxied(platform, source, origin);
            }
            CredentialDelivery::Direct => format!(
                "credential delivery {}: the workspace holds the {} secret {source} and {} sends it to provider `{}`",
                choice.describe(),
                origin.as_str(),
                runtime.name,
                provider.name
            ),
        };
        let delivery = PlannedDelivery { delivery: CredentialDelivery::Direct, reason, proxied: None };
        let source_value = EnvValue::Secret { key: source.clone(), origin };
        let provider_url = provider.base_url(runtime.protocol).map(str::to_owned);
        let (credential_key, endpoint, config) = match &runtime.projection {
            Projection::Env { key_env, base_url_env, .. } => {
                let target = provider.auth_token_env.as_ref().filter(|t| runtime.reads_credential_env(t)).unwrap_or(key_env);
                let used_directly = origin == SecretOrigin::Workspace && runtime.reads_credential_env(&source);
                let credential_key = if source == *target || used_directly || self.input_origin(target) == Some(SecretOrigin::Workspace) {
                    source.clone()
                } else {
                    if origin == SecretOrigin::Org && runtime.reads_credential_env(&source) {
                        self.strip_input(&source, || {
                            format!(
                                "moved into {target}, where {} reads a {} key; it would otherwise be sent twice",
                                runtime.name, provider.name
                            )
                        });
                    }
                    self.put(
                        target,
                        EntryOrigin::Projected,
                        source_value.clone(),
                        format!("{} reads the {} key from {target}; it carries {source}", runtime.name, provider.name),
                    );
                    target.clone()
                };
                let endpoint = if self.input_origin(base_url_env) == Some(SecretOrigin::Workspace) {
                    self.draft.warnings.push(format!(
                        "the workspace secret {base_url_env} overrides the endpoint of provider `{}`; its credential is sent there",
                        provider.name
                    ));
                    None
                } else {
                    if let Some(url) = &provider_url {
                        self.put(
                            base_url_env,
                            EntryOrigin::Injected,
                            EnvValue::Literal(url.clone()),
                            format!("the {} endpoint of provider `{}`", runtime.protocol.as_str(), provider.name),
                        );
                    }
                    provider_url.clone()
                };
                (credential_key, endpoint, None)
            }
            Projection::CodexConfig { login_file, .. } => {
                let config = if provider.auth_mode == AuthMode::Oauth {
                    self.draft
                        .files
                        .push(PlanFile { path: login_file.clone(), content: FileContent::Secret { key: source.clone(), origin } });
                    CodexConfig { model: runtime_model(runtime, provider, &self.workspace.model).to_owned(), provider: None }
                } else {
                    CodexConfig {
                        model: runtime_model(runtime, provider, &self.workspace.model).to_owned(),
                        provider: Some(CodexProvider {
                            id: provider.name.clone(),
                            display_name: provider.display_name.clone(),
                            base_url: provider_url.clone().unwrap_or_default(),
                            env_key: source.clone(),
                        }),
                    }
                };
                (source.clone(), provider_url.clone(), Some(RuntimeConfig::Codex(config)))
            }
            Projection::OpenclawConfig { .. } => {
                let config = OpenclawConfig {
                    provider_id: format!("wsd-{}", provider.name),
                    protocol: runtime.protocol,
                    base_url: provider_url.clone().unwrap_or_default(),
                    key_env: source.clone(),
                    model: runtime_model(runtime, provider, &self.workspace.model).to_owned(),
                };
                (source.clone(), provider_url.clone(), Some(RuntimeConfig::Openclaw(config)))
            }
        };

        // Exactly one credential reaches the runtime: every other org credential it reads goes.
        let others: Vec<EnvKey> = runtime.credential_envs().filter(|k| **k != credential_key).cloned().collect();
        for key in others {
            if self.input_origin(&key) == Some(SecretOrigin::Org) {
                self.strip_input(&key, || {
                    format!("{} also reads {key}; exactly one credential may reach provider `{}`", runtime.name, provider.name)
                });
            }
        }
        Ok((Intended { credential: source_value, endpoint }, config, delivery))
    }

    /// A BYOK workspace whose key wsd keeps: no LLM credential or endpoint of the tenant's
    /// enters the workspace; it calls wsd's proxy with its usage token, and the proxy sends
    /// `source` to the provider's registered endpoint.
    fn route_byok_proxied(
        &mut self,
        platform: &PlatformSettings,
        source: EnvKey,
        origin: SecretOrigin,
    ) -> Result<(Intended, Option<RuntimeConfig>, PlannedDelivery), PlanError> {
        let (runtime, provider) = (self.runtime, self.provider);
        let p = &provider.name;
        // The proxy never calls a URL a tenant chose: a workspace that sets its own endpoint
        // is refused rather than sent somewhere else than it asked.
        if let Projection::Env { base_url_env, .. } = &runtime.projection
            && self.input_origin(base_url_env) == Some(SecretOrigin::Workspace)
        {
            return Err(PlanError::EndpointOverrideNotProxied { key: base_url_env.clone(), provider: p.clone() });
        }
        let inputs: Vec<EnvKey> = self
            .effective
            .iter()
            .map(|(key, _)| key)
            .filter(|key| self.registry.classify(key) != KeyClass::Other && self.input_origin(key).is_some())
            .cloned()
            .collect();
        for key in inputs {
            self.strip_input(&key, || {
                if key == source {
                    format!(
                        "kept in wsd: with credential delivery `proxy`, wsd's proxy sends it to provider `{p}` on the workspace's behalf"
                    )
                } else {
                    "with credential delivery `proxy`, no LLM credential or endpoint of the tenant's enters the workspace".to_owned()
                }
            });
        }
        let model = runtime_model(runtime, provider, &self.workspace.model).to_owned();
        let provider_id = match runtime.projection {
            Projection::OpenclawConfig { .. } => format!("wsd-{p}"),
            _ => p.clone(),
        };
        let (intended, config) = self.project_proxy(platform, provider_id, model);
        let delivery = PlannedDelivery {
            delivery: CredentialDelivery::Proxy,
            reason: format!(
                "credential delivery {}: the {} secret {source} stays in wsd; the workspace holds a usage token that wsd's proxy exchanges for it on each call to provider `{p}`",
                self.workspace.delivery.describe(),
                origin.as_str()
            ),
            proxied: Some(ProxiedCredential {
                key: source,
                origin,
                sent_as: self.registry.key_header(provider, runtime.protocol).as_str().to_owned(),
            }),
        };
        Ok((intended, config, delivery))
    }

    fn inject_fixed(&mut self) {
        let fixed = std::mem::take(&mut self.fixed);
        for (key, (value, reason)) in fixed.into_entries() {
            self.put(&key, EntryOrigin::Injected, EnvValue::Literal(value), reason);
        }
    }

    fn finish(mut self, routing: Routing, derivation: &Derivation<'_>, verified_on: &[String], delivery: PlannedDelivery) -> Plan {
        if verified_on.is_empty() {
            self.draft.warnings.push(format!(
                "runtime `{}` has not been verified against its real CLI on provider `{}`; the operator allows it",
                self.runtime.name, self.provider.name
            ));
        }
        if self.provider.deprecated {
            self.draft.warnings.push(format!("provider `{}` is deprecated", self.provider.name));
        }
        Plan {
            runtime: self.runtime.name.clone(),
            model: self.workspace.model.clone(),
            routing,
            provider: self.provider.name.clone(),
            derivation: derivation.explain(&self.workspace.model),
            env: self.draft.env.into_btree_map(),
            files: self.draft.files,
            decisions: final_decisions(self.draft.decisions),
            warnings: self.draft.warnings,
            verified_on: verified_on.to_vec(),
            credential: None,
            delivery,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_runtime_gets_the_model_id_it_can_send() {
        let registry = Registry::embedded().unwrap();
        let provider = |name: &str| registry.provider(name).unwrap();
        let claude = registry.runtime("claude-code").unwrap();
        let namespaced = Runtime { model_ids: ModelIds::Namespaced, ..claude.clone() };
        let hermes = registry.runtime("hermes").unwrap();
        // A runtime that sends the id as written gets the vendor's own on a BYOK provider.
        assert_eq!(runtime_model(claude, provider("moonshot"), "moonshot/kimi-k2.6"), "kimi-k2.6");
        // One that resolves `provider:model` ids itself gets the id as stored.
        assert_eq!(runtime_model(&namespaced, provider("groq"), "groq:llama-3.3-70b"), "groq:llama-3.3-70b");
        // The platform's ids keep their namespace for the proxy, even one that names the
        // platform itself.
        assert_eq!(runtime_model(claude, provider("platform"), "anthropic/claude-opus-4-7"), "anthropic/claude-opus-4-7");
        assert_eq!(runtime_model(claude, provider("platform"), "platform/x"), "platform/x");
        // Unless the runtime cannot send a namespaced id: the proxy knows the model by the token.
        let bare = registry.runtime_for(hermes, "platform");
        assert!(bare.bare_model_id);
        assert_eq!(runtime_model(&bare, provider("platform"), "minimax/MiniMax-M2.7"), "MiniMax-M2.7");
        assert_eq!(runtime_model(&bare, provider("platform"), "MiniMax-M2.7"), "MiniMax-M2.7");
        // The bare rule is the platform's only: a BYOK provider keeps the vendor rule.
        assert_eq!(runtime_model(&bare, provider("minimax"), "other/MiniMax-M2.7"), "other/MiniMax-M2.7");
    }
}
