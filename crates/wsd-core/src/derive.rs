//! Derivation: `(runtime, model, names of available credentials) → provider`.
//!
//! Only the runtime's native providers are candidates. An exact model id wins over any
//! pattern; ties are broken only by the available credential names, and a tie they cannot
//! break is an error, never a silent first pick.

use std::collections::BTreeSet;

use crate::env_key::EnvKey;
use crate::error::DeriveError;
use crate::registry::{Provider, Registry, Runtime};

/// Which rule selected the provider, for explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerivationRule {
    /// The model id is listed under exactly one of the runtime's providers.
    ExactModel,
    /// Several providers list the id; only this one's `auth_env` has an available key.
    ExactModelByCredential,
    /// Exactly one provider's `model_match` matches.
    ModelMatch,
    /// Several patterns match; only this provider's `auth_env` has an available key.
    ModelMatchByCredential,
}

/// A derived provider and why it was chosen.
#[derive(Debug, Clone)]
pub struct Derivation<'r> {
    pub runtime: &'r Runtime,
    pub provider: &'r Provider,
    pub rule: DerivationRule,
}

impl Derivation<'_> {
    /// One sentence: why this provider.
    pub fn explain(&self, model: &str) -> String {
        let (runtime, provider) = (&self.runtime.name, &self.provider.name);
        match self.rule {
            DerivationRule::ExactModel => format!("`{model}` is listed under provider `{provider}` of runtime `{runtime}`"),
            DerivationRule::ExactModelByCredential => {
                format!("`{model}` is listed under several providers of `{runtime}`; only `{provider}` has a credential set")
            }
            DerivationRule::ModelMatch => format!("`{model}` matches the model pattern of provider `{provider}` of runtime `{runtime}`"),
            DerivationRule::ModelMatchByCredential => {
                format!("`{model}` matches several provider patterns of `{runtime}`; only `{provider}` has a credential set")
            }
        }
    }
}

/// Derives the provider of `model` on `runtime`, given the names of the credentials set.
pub fn derive<'r>(registry: &'r Registry, runtime: &str, model: &str, available: &BTreeSet<EnvKey>) -> Result<Derivation<'r>, DeriveError> {
    derive_with(registry, runtime, model, |key| available.contains(key))
}

/// `derive`, with the available credential names given as a membership test.
pub fn derive_with<'r>(
    registry: &'r Registry,
    runtime: &str,
    model: &str,
    available: impl Fn(&EnvKey) -> bool,
) -> Result<Derivation<'r>, DeriveError> {
    if model.trim().is_empty() {
        return Err(DeriveError::ModelRequired { runtime: runtime.to_owned() });
    }
    let Some(rt) = registry.runtime(runtime) else {
        return Err(DeriveError::UnknownRuntime {
            runtime: runtime.to_owned(),
            known: registry.runtimes().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
        });
    };

    let listed: Vec<&Provider> =
        registry.native_providers(rt).filter(|(_, models)| models.iter().any(|m| m == model)).map(|(p, _)| p).collect();
    if !listed.is_empty() {
        return pick(rt, model, listed, &available, DerivationRule::ExactModel, DerivationRule::ExactModelByCredential);
    }
    let matching: Vec<&Provider> = registry.native_providers(rt).map(|(p, _)| p).filter(|p| p.model_match.is_match(model)).collect();
    if matching.is_empty() {
        return Err(DeriveError::UnregisteredModelForRuntime { runtime: runtime.to_owned(), model: model.to_owned() });
    }
    pick(rt, model, matching, &available, DerivationRule::ModelMatch, DerivationRule::ModelMatchByCredential)
}

fn pick<'r>(
    runtime: &'r Runtime,
    model: &str,
    candidates: Vec<&'r Provider>,
    available: &impl Fn(&EnvKey) -> bool,
    single: DerivationRule,
    by_credential: DerivationRule,
) -> Result<Derivation<'r>, DeriveError> {
    if let [provider] = candidates.as_slice() {
        return Ok(Derivation { runtime, provider, rule: single });
    }
    let with_credential: Vec<&Provider> = candidates.iter().copied().filter(|p| p.auth_env.iter().any(available)).collect();
    if let [provider] = with_credential.as_slice() {
        return Ok(Derivation { runtime, provider, rule: by_credential });
    }
    let named = if with_credential.is_empty() { &candidates } else { &with_credential };
    Err(DeriveError::AmbiguousProvider {
        runtime: runtime.name.clone(),
        model: model.to_owned(),
        providers: named.iter().map(|p| p.name.clone()).collect(),
        hints: named.iter().map(|p| (p.name.clone(), p.auth_env.clone())).collect(),
    })
}
