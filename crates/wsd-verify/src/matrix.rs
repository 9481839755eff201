//! The cases a runtime is verified with, from the registry alone: for each provider the
//! runtime declares, a workspace with the right key among stray org credentials, and one
//! with every credential the profile says the runtime does not read set on the workspace
//! (kept there by design; a CLI that reads one of them sends a credential the plan did not
//! choose); for a provider whose key wsd's proxy can send (any but a subscription login),
//! the first workspace again with credential delivery `proxy` (the CLI must send its usage
//! token to wsd's proxy, nothing else anywhere); for the platform, a workspace among stray
//! org credentials.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use wsd_core::registry::{AuthMode, CredentialSource, Runtime};
use wsd_core::{EnvKey, Registry};

/// One workspace to plan and run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// `minimax`, `minimax + workspace strays`, `platform`.
    pub label: String,
    pub provider: String,
    pub model: String,
    pub platform: bool,
    pub org: Vec<String>,
    pub workspace: Vec<String>,
    /// Planned with credential delivery `proxy`: the key stays in wsd.
    #[serde(default)]
    pub proxied: bool,
}

/// A provider of the runtime no case covers, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uncovered {
    pub provider: String,
    pub reason: String,
}

/// The cases for `runtime`, and the providers left out.
pub fn cases(registry: &Registry, runtime: &Runtime) -> (Vec<Case>, Vec<Uncovered>) {
    let mut cases = Vec::new();
    let mut uncovered = Vec::new();
    for (provider, models) in registry.native_providers(runtime) {
        // What the runtime reads as it reaches this provider.
        let routed = registry.runtime_for(runtime, &provider.name);
        let reads: BTreeSet<EnvKey> = routed.credential_envs().cloned().collect();
        let reads_files = routed.credential_precedence.iter().flatten().any(|r| matches!(r.source, CredentialSource::File(_)));
        let Some(model) = models.first() else {
            uncovered.push(Uncovered { provider: provider.name.clone(), reason: "the runtime lists no model for it".into() });
            continue;
        };
        // Providers that list the same model id: their keys would make the choice the
        // credentials' (the registry's rule), not the model's; they are no strays here.
        let rivals: Vec<_> = registry
            .native_providers(runtime)
            .filter(|(other, listed)| other.name != provider.name && listed.contains(model))
            .map(|(other, _)| other)
            .collect();
        let stray = |key: &EnvKey| !provider.accepts(key) && !key.as_str().starts_with("WSD_") && !rivals.iter().any(|r| r.accepts(key));
        // Stray org credentials: every other provider's first key and every credential the
        // runtime reads, none of which this provider accepts.
        let strays: BTreeSet<&EnvKey> = registry
            .native_providers(runtime)
            .filter(|(other, _)| !other.platform)
            .filter_map(|(other, _)| other.auth_env.first())
            .chain(reads.iter())
            .filter(|key| stray(key))
            .collect();
        let names = |keys: &BTreeSet<&EnvKey>| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        if provider.platform {
            cases.push(Case {
                label: "platform".into(),
                provider: provider.name.clone(),
                model: model.clone(),
                platform: true,
                org: names(&strays),
                workspace: Vec::new(),
                proxied: false,
            });
            continue;
        }
        let Some(key) = provider.auth_env.first() else { continue };
        if reads_files && provider.auth_mode == AuthMode::Oauth {
            uncovered.push(Uncovered {
                provider: provider.name.clone(),
                reason: "its credential is a login file, whose provider cannot be reached offline".into(),
            });
            continue;
        }
        let mut org = names(&strays);
        org.push(key.to_string());
        org.sort();
        cases.push(Case {
            label: provider.name.clone(),
            provider: provider.name.clone(),
            model: model.clone(),
            platform: false,
            org: org.clone(),
            workspace: Vec::new(),
            proxied: false,
        });
        if provider.auth_mode != AuthMode::Oauth {
            cases.push(Case {
                label: format!("{} via proxy", provider.name),
                provider: provider.name.clone(),
                model: model.clone(),
                platform: false,
                org: org.clone(),
                workspace: Vec::new(),
                proxied: true,
            });
        }
        // Credentials the profile says the runtime does not read, set where the planner keeps
        // them: on the workspace.
        let unread: Vec<String> = registry
            .credential_keys()
            .iter()
            .filter(|k| !reads.contains(*k) && stray(k))
            .filter(|k| registry.providers().iter().any(|p| !p.platform && p.auth_env.first() == Some(*k)))
            .map(ToString::to_string)
            .collect();
        if !unread.is_empty() {
            cases.push(Case {
                label: format!("{} + workspace strays", provider.name),
                provider: provider.name.clone(),
                model: model.clone(),
                platform: false,
                org,
                workspace: unread,
                proxied: false,
            });
        }
    }
    (cases, uncovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_provider_gets_its_cases_with_strays_it_does_not_accept() {
        let registry = Registry::embedded().unwrap();
        let claude = registry.runtime("claude-code").unwrap();
        let (cases, uncovered) = cases(&registry, claude);
        let labels: Vec<&str> = cases.iter().map(|c| c.label.as_str()).collect();
        assert!(
            labels.contains(&"minimax") && labels.contains(&"minimax + workspace strays") && labels.contains(&"platform"),
            "{labels:?}"
        );
        assert!(uncovered.is_empty(), "every provider of claude-code lists a model: {uncovered:?}");
        let mut unlisted = claude.clone();
        unlisted.providers.iter_mut().for_each(|native| native.models.clear());
        let (_, uncovered) = super::cases(&registry, &unlisted);
        assert!(uncovered.iter().all(|u| u.reason == "the runtime lists no model for it") && uncovered.len() == unlisted.providers.len());
        let minimax = cases.iter().find(|c| c.label == "minimax").unwrap();
        assert!(
            minimax.org.contains(&"MINIMAX_API_KEY".to_owned()) && minimax.org.contains(&"CLAUDE_CODE_OAUTH_TOKEN".to_owned()),
            "{minimax:?}"
        );
        assert!(!minimax.org.iter().any(|k| k == "ANTHROPIC_AUTH_TOKEN"), "a key minimax accepts is no stray");
        let strays = cases.iter().find(|c| c.label == "minimax + workspace strays").unwrap();
        assert!(strays.workspace.contains(&"OPENAI_API_KEY".to_owned()), "{strays:?}");
        assert!(
            !strays.workspace.iter().any(|k| k.starts_with("ANTHROPIC_") || k == "CLAUDE_CODE_OAUTH_TOKEN"),
            "claude-code reads these: {strays:?}"
        );
        let platform = cases.iter().find(|c| c.platform).unwrap();
        assert_eq!(platform.model, "anthropic/claude-opus-4-7");
        // Each key the proxy can send gets its proxy-delivery case; a subscription login none.
        let proxied = cases.iter().find(|c| c.label == "minimax via proxy").unwrap();
        assert!(proxied.proxied && proxied.org == minimax.org && !minimax.proxied, "{proxied:?}");
        assert!(!labels.contains(&"anthropic-oauth via proxy"), "{labels:?}");
        let direct = cases.iter().filter(|c| !c.platform && !c.proxied && !c.label.contains(" + ")).count();
        assert_eq!(cases.iter().filter(|c| c.proxied).count(), direct - 1, "all but anthropic-oauth: {labels:?}");
        let codex = registry.runtime("codex").unwrap();
        let (_, uncovered) = super::cases(&registry, codex);
        assert!(uncovered.iter().any(|u| u.provider == "openai-subscription" && u.reason.contains("login file")), "{uncovered:?}");
    }
}
