//! The planner's refusals: each has a stable code, part of the API, and a
//! message that names runtimes, models, providers and env-var names, never values.

use serde::{Deserialize, Serialize};

use crate::env_key::{EnvKey, join_keys};

/// The stable error codes of derivation and planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ModelRequired,
    UnknownRuntime,
    UnregisteredModelForRuntime,
    AmbiguousProvider,
    ForbiddenTenantEnvKey,
    ProtectedEnvKey,
    MissingByokCredential,
    MissingPlatformProxy,
    RoutingParityMismatch,
    UnverifiedRuntimeProvider,
    CredentialProxyUnavailable,
    EndpointOverrideNotProxied,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ModelRequired => "MODEL_REQUIRED",
            ErrorCode::UnknownRuntime => "UNKNOWN_RUNTIME",
            ErrorCode::UnregisteredModelForRuntime => "UNREGISTERED_MODEL_FOR_RUNTIME",
            ErrorCode::AmbiguousProvider => "AMBIGUOUS_PROVIDER",
            ErrorCode::ForbiddenTenantEnvKey => "FORBIDDEN_TENANT_ENV_KEY",
            ErrorCode::ProtectedEnvKey => "PROTECTED_ENV_KEY",
            ErrorCode::MissingByokCredential => "MISSING_BYOK_CREDENTIAL",
            ErrorCode::MissingPlatformProxy => "MISSING_PLATFORM_PROXY",
            ErrorCode::RoutingParityMismatch => "ROUTING_PARITY_MISMATCH",
            ErrorCode::UnverifiedRuntimeProvider => "UNVERIFIED_RUNTIME_PROVIDER",
            ErrorCode::CredentialProxyUnavailable => "CREDENTIAL_PROXY_UNAVAILABLE",
            ErrorCode::EndpointOverrideNotProxied => "ENDPOINT_OVERRIDE_NOT_PROXIED",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a provider could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeriveError {
    #[error("the workspace has no model; choose a model of runtime `{runtime}`")]
    ModelRequired { runtime: String },
    #[error("unknown runtime `{runtime}`; known runtimes: {known}")]
    UnknownRuntime { runtime: String, known: String },
    #[error("model `{model}` is not registered for runtime `{runtime}`: no provider of `{runtime}` lists it or matches it")]
    UnregisteredModelForRuntime { runtime: String, model: String },
    #[error(
        "model `{model}` of runtime `{runtime}` belongs to several providers ({}) and the available credentials do not pick one; set exactly one of: {}",
        .providers.join(", "),
        .hints.iter().map(|(p, keys)| format!("{} ({p})", join_keys(keys))).collect::<Vec<_>>().join("; ")
    )]
    AmbiguousProvider {
        runtime: String,
        model: String,
        providers: Vec<String>,
        /// For each candidate provider, the keys that would select it.
        hints: Vec<(String, Vec<EnvKey>)>,
    },
}

impl DeriveError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DeriveError::ModelRequired { .. } => ErrorCode::ModelRequired,
            DeriveError::UnknownRuntime { .. } => ErrorCode::UnknownRuntime,
            DeriveError::UnregisteredModelForRuntime { .. } => ErrorCode::UnregisteredModelForRuntime,
            DeriveError::AmbiguousProvider { .. } => ErrorCode::AmbiguousProvider,
        }
    }
}

/// Why the planner refused a workspace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Derive(#[from] DeriveError),
    #[error(
        "org secrets {} are operator-scope and may not reach workspaces; remove them from the org, or set them on the workspace itself if they are the user's own",
        join_keys(.keys)
    )]
    ForbiddenTenantEnvKey { keys: Vec<EnvKey> },
    #[error(
        "secrets {} steer how programs start in the workspace ({}) and may never reach it; delete them",
        join_keys(.keys),
        .keys.iter().filter_map(|k| crate::protected_env::protected_reason(k).map(|r| format!("{k} {r}"))).collect::<Vec<_>>().join("; ")
    )]
    ProtectedEnvKey { keys: Vec<EnvKey> },
    #[error(
        "provider `{provider}` needs one of {} and none is set; set one as an org or workspace secret, or choose a platform-managed model",
        join_keys(.accepted)
    )]
    MissingByokCredential { provider: String, accepted: Vec<EnvKey> },
    #[error(
        "model `{model}` is platform-managed but this server has no platform proxy configured ([platform] proxy_base_url); choose a model of your own provider"
    )]
    MissingPlatformProxy { model: String },
    #[error("{explanation}")]
    RoutingParityMismatch { provider: String, explanation: String },
    #[error(
        "runtime `{runtime}` has not been verified against its real CLI on provider `{provider}`: wsd cannot prove which credential it would send where; choose a model of a verified provider, or let the operator allow unverified pairs ([policy] allow_unverified_runtime_providers)"
    )]
    UnverifiedRuntimeProvider { runtime: String, provider: String },
    #[error(
        "credential delivery `proxy` keeps provider `{provider}`'s key in wsd and needs wsd's proxy, but this server has none configured ([platform] proxy_base_url); configure it, or set the org's credential delivery to `direct`"
    )]
    CredentialProxyUnavailable { provider: String },
    #[error(
        "the workspace secret {key} sends provider `{provider}`'s key to an endpoint of its own, but with credential delivery `proxy` wsd calls only the provider's registered endpoint; delete {key}, or set the org's credential delivery to `direct`"
    )]
    EndpointOverrideNotProxied { key: EnvKey, provider: String },
}

impl PlanError {
    pub fn code(&self) -> ErrorCode {
        match self {
            PlanError::Derive(e) => e.code(),
            PlanError::ForbiddenTenantEnvKey { .. } => ErrorCode::ForbiddenTenantEnvKey,
            PlanError::ProtectedEnvKey { .. } => ErrorCode::ProtectedEnvKey,
            PlanError::MissingByokCredential { .. } => ErrorCode::MissingByokCredential,
            PlanError::MissingPlatformProxy { .. } => ErrorCode::MissingPlatformProxy,
            PlanError::RoutingParityMismatch { .. } => ErrorCode::RoutingParityMismatch,
            PlanError::UnverifiedRuntimeProvider { .. } => ErrorCode::UnverifiedRuntimeProvider,
            PlanError::CredentialProxyUnavailable { .. } => ErrorCode::CredentialProxyUnavailable,
            PlanError::EndpointOverrideNotProxied { .. } => ErrorCode::EndpointOverrideNotProxied,
        }
    }

    /// The provider the refusal concerns, when one was resolved.
    pub fn provider(&self) -> Option<&str> {
        match self {
            PlanError::MissingByokCredential { provider, .. }
            | PlanError::RoutingParityMismatch { provider, .. }
            | PlanError::UnverifiedRuntimeProvider { provider, .. }
            | PlanError::CredentialProxyUnavailable { provider }
            | PlanError::EndpointOverrideNotProxied { provider, .. } => Some(provider),
            PlanError::MissingPlatformProxy { .. } => Some(crate::registry::PLATFORM_PROVIDER_NAME),
            PlanError::Derive(_) | PlanError::ForbiddenTenantEnvKey { .. } | PlanError::ProtectedEnvKey { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_stable_strings_of_the_api() {
        let all = [
            (ErrorCode::ModelRequired, "MODEL_REQUIRED"),
            (ErrorCode::UnknownRuntime, "UNKNOWN_RUNTIME"),
            (ErrorCode::UnregisteredModelForRuntime, "UNREGISTERED_MODEL_FOR_RUNTIME"),
            (ErrorCode::AmbiguousProvider, "AMBIGUOUS_PROVIDER"),
            (ErrorCode::ForbiddenTenantEnvKey, "FORBIDDEN_TENANT_ENV_KEY"),
            (ErrorCode::ProtectedEnvKey, "PROTECTED_ENV_KEY"),
            (ErrorCode::MissingByokCredential, "MISSING_BYOK_CREDENTIAL"),
            (ErrorCode::MissingPlatformProxy, "MISSING_PLATFORM_PROXY"),
            (ErrorCode::RoutingParityMismatch, "ROUTING_PARITY_MISMATCH"),
            (ErrorCode::UnverifiedRuntimeProvider, "UNVERIFIED_RUNTIME_PROVIDER"),
            (ErrorCode::CredentialProxyUnavailable, "CREDENTIAL_PROXY_UNAVAILABLE"),
            (ErrorCode::EndpointOverrideNotProxied, "ENDPOINT_OVERRIDE_NOT_PROXIED"),
        ];
        let doc = include_str!("../../../docs/error-codes.md");
        for (code, text) in all {
            assert!(doc.contains(&format!("| `{text}` |")), "docs/error-codes.md does not list {text}");
            assert_eq!(code.as_str(), text);
            assert_eq!(code.to_string(), text);
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::Value::from(text));
        }
    }
}
