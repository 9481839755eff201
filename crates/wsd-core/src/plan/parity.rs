//! The parity check (the planner's last step): simulate the runtime's own credential precedence
//! over the final env and files, and refuse the plan unless the runtime would send exactly
//! the planned credential to the planned endpoint.
//!
//! The simulation reads only registry data (the runtime's precedence tiers, base-URL env and
//! default endpoint) and the plan, so it holds for every runtime and every provider.

use super::Intended;
use super::config::RuntimeConfig;
use super::output::{CredentialUse, EnvValue, FileContent, Plan};
use crate::error::PlanError;
use crate::registry::{CredentialRead, CredentialSource, Provider, Runtime};

/// Where the runtime would send its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Url(String),
    /// A base URL the user set on the workspace.
    UserSet(String),
}

struct Sent<'a> {
    read: Option<&'a CredentialRead>,
    via: CredentialSource,
    value: EnvValue,
    /// How the credential travels (a header).
    sent_as: &'a str,
}

struct Simulation<'a> {
    sent: Vec<Sent<'a>>,
    endpoint: Endpoint,
    /// Credentials present but not read because an earlier tier won, for explanations.
    shadowed_by: Option<usize>,
}

fn resolve(plan: &Plan, read: &CredentialRead) -> Option<EnvValue> {
    match &read.source {
        CredentialSource::Env(key) => plan.env.get(key).map(|e| e.value.clone()),
        CredentialSource::File(path) => plan.files.iter().find(|f| &f.path == path).map(|f| match &f.content {
            FileContent::Secret { key, origin } => EnvValue::Secret { key: key.clone(), origin: *origin },
            FileContent::Text(text) => EnvValue::Literal(text.clone()),
        }),
    }
}

fn simulate<'a>(runtime: &'a Runtime, plan: &Plan, config: Option<&RuntimeConfig>) -> Simulation<'a> {
    if let Some(provider) = config.and_then(RuntimeConfig::provider) {
        // A configured provider: the runtime reads its key only from the env var the file
        // names, and sends it only to the file's base URL.
        let sent = plan
            .env
            .get(provider.key_env)
            .map(|entry| Sent {
                read: None,
                via: CredentialSource::Env(provider.key_env.clone()),
                value: entry.value.clone(),
                sent_as: provider.sent_as,
            })
            .into_iter()
            .collect();
        return Simulation { sent, endpoint: Endpoint::Url(provider.base_url.to_owned()), shadowed_by: None };
    }
    for (tier_index, tier) in runtime.credential_precedence.iter().enumerate() {
        let sent: Vec<Sent<'a>> = tier
            .iter()
            .filter_map(|read| {
                Some(Sent { read: Some(read), via: read.source.clone(), value: resolve(plan, read)?, sent_as: &read.sent_as })
            })
            .collect();
        if let Some(first) = sent.first() {
            let configured = runtime.base_url_env.as_ref().and_then(|key| plan.env.get(key));
            let endpoint = match configured.map(|e| &e.value) {
                Some(EnvValue::Literal(url)) => Endpoint::Url(url.clone()),
                Some(other) => Endpoint::UserSet(other.describe()),
                None => Endpoint::Url(first.read.and_then(|r| r.endpoint.clone()).unwrap_or_else(|| runtime.default_base_url.clone())),
            };
            return Simulation { sent, endpoint, shadowed_by: Some(tier_index) };
        }
    }
    Simulation { sent: Vec::new(), endpoint: Endpoint::Url(runtime.default_base_url.clone()), shadowed_by: None }
}

/// "the org secret K", or "the org secret K as T" when it travels under another name.
fn sent_phrase(sent: &Sent<'_>) -> String {
    match &sent.value {
        EnvValue::Secret { key, .. } if sent.via == CredentialSource::Env(key.clone()) => sent.value.describe(),
        value => format!("{} as {}", value.describe(), sent.via),
    }
}

pub(super) fn check(
    runtime: &Runtime,
    provider: &Provider,
    target: &str,
    plan: &Plan,
    config: Option<&RuntimeConfig>,
    intended: &Intended,
) -> Result<CredentialUse, PlanError> {
    let simulation = simulate(runtime, plan, config);
    let rt = &runtime.name;
    let refuse = |explanation: String| Err(PlanError::RoutingParityMismatch { provider: provider.name.clone(), explanation });

    let sent = match simulation.sent.as_slice() {
        [] => {
            return refuse(format!(
                "{rt} would send no credential: none of {} is set in the planned env",
                runtime.credential_precedence.iter().flatten().map(|r| r.source.to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        [one] if one.value == intended.credential => one,
        [one] => {
            let earlier = simulation
                .shadowed_by
                .filter(|_| one.read.is_some())
                .map(|tier| {
                    let winners: Vec<String> = runtime.credential_precedence[tier].iter().map(|r| r.source.to_string()).collect();
                    format!("; {rt} reads {} first", winners.join(" and "))
                })
                .unwrap_or_default();
            let how = format!(" ({})", one.sent_as);
            return refuse(format!(
                "{rt} would send {}{how} instead of {}, the credential planned for {target}{earlier}; remove it from the workspace or choose a model whose provider accepts it",
                sent_phrase(one),
                intended.credential.describe()
            ));
        }
        several => {
            let names: Vec<String> = several.iter().map(|s| format!("{} ({})", sent_phrase(s), s.sent_as)).collect();
            return refuse(format!(
                "{rt} would send {} together on the same request; exactly one credential may reach {target}: remove the extra workspace secret",
                names.join(" and ")
            ));
        }
    };

    let used = CredentialUse { via: sent.via.clone(), sent_as: sent.sent_as.to_owned(), value: sent.value.clone() };
    match (&simulation.endpoint, &intended.endpoint) {
        (Endpoint::Url(actual), Some(expected)) if actual == expected => Ok(used),
        (Endpoint::UserSet(_), None) => Ok(used),
        (actual, expected) => {
            let actual = match actual {
                Endpoint::Url(url) => url.clone(),
                Endpoint::UserSet(source) => format!("the URL in {source}"),
            };
            let expected = expected.clone().unwrap_or_else(|| "the workspace's own base URL".to_owned());
            refuse(format!(
                "{rt} would send {} to {actual} instead of {expected}, the endpoint of {target}",
                intended.credential.describe()
            ))
        }
    }
}
