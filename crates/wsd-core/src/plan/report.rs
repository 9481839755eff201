//! The plan as JSON: the shape `wsd plan --json` prints and `GET …/plan`
//! answers. Only non-secret settings show a value; secrets show where they come from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::output::{Decision, EntryOrigin, EnvValue, FileContent, Plan, PlannedDelivery, Routing, USAGE_TOKEN_ENV};
use crate::error::{ErrorCode, PlanError};
use crate::registry::PLATFORM_PROVIDER_NAME;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvReport {
    pub origin: EntryOrigin,
    /// The secret (or injected key) the value comes from.
    pub from: Option<String>,
    /// Shown only for non-secret settings.
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    pub path: String,
    /// The rendered text; `null` for a file that holds a secret.
    pub content: Option<String>,
    /// The secret a secret file is written from.
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub code: ErrorCode,
    pub message: String,
}

/// The one credential the runtime sends, as the parity check found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialReport {
    /// Where the runtime reads it: an env var, or a file in its home.
    pub via: String,
    /// How it travels (`x-api-key`, `Authorization: Bearer` …).
    pub sent_as: String,
    /// Where its value comes from (`the org secret K`, `the usage token`).
    pub from: String,
}

/// A plan or a refusal, as one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanReport {
    pub ok: bool,
    pub routing: Option<Routing>,
    pub provider: Option<String>,
    /// How the credential reaches the provider: through wsd's proxy or held by the workspace.
    pub delivery: Option<PlannedDelivery>,
    /// What the runtime sends, proven by the parity check.
    pub credential: Option<CredentialReport>,
    pub env: BTreeMap<String, EnvReport>,
    pub files: Vec<FileReport>,
    pub decisions: Vec<Decision>,
    pub warnings: Vec<String>,
    /// The CLI versions the runtime was verified on with the provider.
    pub verified_on: Vec<String>,
    pub error: Option<ErrorReport>,
}

impl PlanReport {
    pub fn new(result: &Result<Plan, PlanError>) -> Self {
        match result {
            Ok(plan) => Self::from_plan(plan),
            Err(error) => Self::from_error(error),
        }
    }

    pub fn from_plan(plan: &Plan) -> Self {
        let env = plan
            .env
            .iter()
            .map(|(key, entry)| {
                let (from, value) = match &entry.value {
                    EnvValue::Secret { key: source, .. } => (Some(source.to_string()), None),
                    EnvValue::UsageToken if key.as_str() == USAGE_TOKEN_ENV => (None, None),
                    EnvValue::UsageToken => (Some(USAGE_TOKEN_ENV.to_owned()), None),
                    EnvValue::Literal(text) => (None, Some(text.clone())),
                };
                (key.to_string(), EnvReport { origin: entry.origin, from, value })
            })
            .collect();
        let files = plan
            .files
            .iter()
            .map(|file| match &file.content {
                FileContent::Text(text) => FileReport { path: file.path.clone(), content: Some(text.clone()), from: None },
                FileContent::Secret { key, .. } => FileReport { path: file.path.clone(), content: None, from: Some(key.to_string()) },
            })
            .collect();
        Self {
            ok: true,
            routing: Some(plan.routing),
            provider: Some(plan.provider.clone()),
            delivery: Some(plan.delivery.clone()),
            credential: plan.credential.as_ref().map(|used| CredentialReport {
                via: used.via.to_string(),
                sent_as: used.sent_as.clone(),
                from: used.value.describe(),
            }),
            env,
            files,
            decisions: plan.decisions.clone(),
            warnings: plan.warnings.clone(),
            verified_on: plan.verified_on.clone(),
            error: None,
        }
    }

    pub fn from_error(error: &PlanError) -> Self {
        let provider = error.provider().map(str::to_owned);
        let routing = provider.as_deref().map(|p| if p == PLATFORM_PROVIDER_NAME { Routing::Platform } else { Routing::Byok });
        Self {
            ok: false,
            routing,
            provider,
            delivery: None,
            credential: None,
            env: BTreeMap::new(),
            files: Vec::new(),
            decisions: Vec::new(),
            warnings: Vec::new(),
            verified_on: Vec::new(),
            error: Some(ErrorReport { code: error.code(), message: error.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::plan::{PlatformSettings, Policy, SecretNames, WorkspaceId, WorkspaceSpec};
    use crate::{EnvKey, Registry};

    fn report(model: &str, org: &[&str], platform: bool) -> PlanReport {
        let registry = Registry::embedded().unwrap();
        let spec = WorkspaceSpec {
            id: WorkspaceId::new("ws").unwrap(),
            runtime: "claude-code".into(),
            model: model.into(),
            delivery: Default::default(),
        };
        let org: BTreeSet<EnvKey> = org.iter().map(|k| EnvKey::new(k).unwrap()).collect();
        let secrets = SecretNames { org, workspace: BTreeSet::new() };
        let settings = PlatformSettings { proxy_base_url: "http://proxy.test/llm".into() };
        PlanReport::new(&crate::plan(&registry, &spec, &secrets, platform.then_some(&settings), &Policy::default()))
    }

    #[test]
    fn the_usage_token_shows_where_it_is_projected_from() {
        let r = report("anthropic/claude-opus-4-7", &[], true);
        assert_eq!(r.env["WSD_LLM_USAGE_TOKEN"], EnvReport { origin: EntryOrigin::Injected, from: None, value: None });
        assert_eq!(
            r.env["ANTHROPIC_AUTH_TOKEN"],
            EnvReport { origin: EntryOrigin::Projected, from: Some(USAGE_TOKEN_ENV.into()), value: None }
        );
        assert_eq!(r.env["ANTHROPIC_BASE_URL"].value.as_deref(), Some("http://proxy.test/llm/anthropic"));
    }

    #[test]
    fn reports_read_back_what_they_wrote() {
        for report in
            [report("MiniMax-M2.7", &["MINIMAX_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"], true), report("anthropic/claude-opus-4-7", &[], false)]
        {
            let text = serde_json::to_string(&report).unwrap();
            assert_eq!(serde_json::from_str::<PlanReport>(&text).unwrap(), report);
        }
    }

    #[test]
    fn refusals_carry_routing_only_when_a_provider_was_resolved() {
        let r = report("anthropic/claude-opus-4-7", &[], false);
        assert_eq!((r.ok, r.routing, r.provider.as_deref()), (false, Some(Routing::Platform), Some("platform")));
        assert_eq!(r.error.as_ref().map(|e| e.code), Some(ErrorCode::MissingPlatformProxy));
        let r = report("MiniMax-M2.7", &[], true);
        assert_eq!((r.routing, r.provider.as_deref()), (Some(Routing::Byok), Some("minimax")));
        let r = report("nope", &[], true);
        assert_eq!((r.routing, r.provider), (None, None));
        assert!(r.env.is_empty() && r.decisions.is_empty());
    }
}
