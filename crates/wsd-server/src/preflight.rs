//! The liveness preflight: before a BYOK workspace is created, one cheap authenticated
//! call to its provider's models endpoint, with exactly the credential and header the plan
//! says the runtime will send. It never passes silently: a rejected key is
//! `INVALID_BYOK_CREDENTIAL`, an unreachable or slow provider `PROVIDER_UNREACHABLE`, any
//! other answer `PREFLIGHT_FAILED`.

use std::time::Duration;

use axum::http::StatusCode;
use wsd_core::Registry;
use wsd_core::plan::{EnvValue, SecretOrigin};
use wsd_core::registry::{CredentialSource, Protocol};
use wsd_core::{Plan, SecretValue};
use wsd_store::{SecretOwner, Store};

use crate::code;
use crate::error::{ApiError, ApiResult};

#[derive(Debug)]
pub struct Preflight {
    client: reqwest::Client,
}

impl Preflight {
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the preflight HTTP client: {e}"))?;
        Ok(Self { client })
    }
}

fn refuse(code: &'static str, message: String, provider: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with("provider", provider)
}

async fn value_of(store: &Store, org: &str, workspace: Option<&str>, value: &EnvValue) -> ApiResult<Option<SecretValue>> {
    let (key, origin) = match value {
        EnvValue::Secret { key, origin } => (key, origin),
        EnvValue::Literal(text) => return Ok(Some(SecretValue::new(text.clone()))),
        EnvValue::UsageToken => return Ok(None),
    };
    let owner = match (origin, workspace) {
        (SecretOrigin::Workspace, Some(workspace)) => SecretOwner::Workspace { org, workspace },
        _ => SecretOwner::Org { org },
    };
    Ok(store.get_secret(owner, key).await?)
}

/// Checks the credential of a BYOK `plan` against its provider.
pub async fn check(
    store: &Store,
    registry: &Registry,
    preflight: &Preflight,
    org: &str,
    workspace: Option<&str>,
    plan: &Plan,
) -> ApiResult<()> {
    let provider_name = plan.provider.as_str();
    let (Some(provider), Some(runtime)) = (registry.provider(provider_name), registry.runtime(&plan.runtime)) else {
        return Ok(());
    };
    if provider.platform {
        return Ok(());
    }
    let Some(credential) = &plan.credential else {
        return Err(refuse(code::PREFLIGHT_FAILED, "the plan names no credential to check".into(), provider_name));
    };
    // With credential delivery `proxy` the runtime sends its usage token; the key to check
    // is the one wsd's proxy will send, in the header the proxy sends it in.
    let (value, sent_as, via) = match &plan.delivery.proxied {
        Some(proxied) => (
            EnvValue::Secret { key: proxied.key.clone(), origin: proxied.origin },
            proxied.sent_as.as_str(),
            format!("{} (kept in wsd, sent by its proxy)", proxied.key),
        ),
        None => (credential.value.clone(), credential.sent_as.as_str(), credential.via.to_string()),
    };
    if let (None, CredentialSource::File(path)) = (&plan.delivery.proxied, &credential.via) {
        return Err(refuse(
            code::PREFLIGHT_UNSUPPORTED,
            format!(
                "the liveness check cannot test a login file (~/{path}) of provider `{provider_name}`; turn [policy] preflight off to create this workspace"
            ),
            provider_name,
        ));
    }
    let Some(secret) = value_of(store, org, workspace, &value).await? else {
        return Err(refuse(code::PREFLIGHT_FAILED, "the credential to check has no stored value".into(), provider_name));
    };
    // Only the provider's registered endpoint (or the operator's override of it) is ever
    // called: a base URL from a tenant's secret would make wsd fetch a URL of the tenant's
    // choosing, from wsd's network, with the key.
    let configured = runtime.base_url_env.as_ref().and_then(|k| plan.env.get(k));
    if let Some(EnvValue::Secret { key, .. }) = configured.map(|e| &e.value) {
        return Err(refuse(
            code::PREFLIGHT_UNSUPPORTED,
            format!(
                "the workspace sets its own endpoint ({key}); the liveness check calls only provider `{provider_name}`'s registered endpoint; turn [policy] preflight off to create this workspace"
            ),
            provider_name,
        ));
    }
    let Some(base) = provider.base_url(runtime.protocol).map(str::to_owned) else {
        return Err(refuse(code::PREFLIGHT_FAILED, format!("provider `{provider_name}` has no endpoint to check"), provider_name));
    };
    let base = base.trim_end_matches('/');
    let mut request = match runtime.protocol {
        Protocol::Anthropic => preflight.client.get(format!("{base}/v1/models")).header("anthropic-version", "2023-06-01"),
        Protocol::Openai => preflight.client.get(format!("{base}/models")),
    };
    request =
        if sent_as.starts_with("x-api-key") { request.header("x-api-key", secret.expose()) } else { request.bearer_auth(secret.expose()) };
    if sent_as.contains("OAuth") {
        request = request.header("anthropic-beta", "oauth-2025-04-20");
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) if matches!(response.status().as_u16(), 401 | 403) => Err(refuse(
            code::INVALID_BYOK_CREDENTIAL,
            format!("provider `{provider_name}` rejected the credential in {via} (HTTP {}); set a valid key", response.status().as_u16()),
            provider_name,
        )),
        Ok(response) => Err(refuse(
            code::PREFLIGHT_FAILED,
            format!("provider `{provider_name}` answered the liveness check with HTTP {}", response.status().as_u16()),
            provider_name,
        )),
        // The error names the URL, never the credential.
        Err(e) => Err(refuse(
            code::PROVIDER_UNREACHABLE,
            format!(
                "provider `{provider_name}` did not answer the liveness check at {base}: {}",
                if e.is_timeout() { "timed out" } else { "unreachable" }
            ),
            provider_name,
        )),
    }
}
