//! Credential delivery `proxy`: a BYOK workspace's own key stays in wsd. The workspace gets
//! the projection of a platform-routed one (wsd's proxy and its usage token), the plan names
//! the secret the proxy sends upstream, and a subscription login stays direct, saying so.

use wsd_core::ErrorCode;
use wsd_core::plan::{CredentialDelivery, EnvValue, FileContent, Plan, Routing, SecretOrigin};

use wsd_core::registry::KeyClass;

use crate::support::{PROXY, env, ok, plan, plan_proxied, refusal, registry, render};

/// No LLM credential or endpoint of the tenant's reaches the workspace: not in its env,
/// not in a file. Its other secrets (a database URL) do.
fn holds_no_secret(plan: &Plan) {
    for (key, entry) in &plan.env {
        if let EnvValue::Secret { key: source, .. } = &entry.value {
            let class = registry().classify(source);
            assert_eq!(class, KeyClass::Other, "{key} carries {source}:\n{}", render(&Ok(plan.clone())));
        }
    }
    for file in &plan.files {
        assert!(!matches!(file.content, FileContent::Secret { .. }), "{} holds a secret", file.path);
    }
}

fn proxied(plan: &Plan) -> (String, SecretOrigin, String) {
    let proxied = plan.delivery.proxied.as_ref().expect("a proxied credential");
    (proxied.key.to_string(), proxied.origin, proxied.sent_as.clone())
}

#[test]
fn claude_code_on_minimax_holds_only_its_usage_token() {
    let plan = ok(plan_proxied("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "DATABASE_URL"], &[], true));
    assert_eq!((plan.routing, plan.provider.as_str(), plan.delivery.delivery), (Routing::Byok, "minimax", CredentialDelivery::Proxy));
    holds_no_secret(&plan);
    let env = env(&plan);
    for expected in [
        "ANTHROPIC_AUTH_TOKEN <- usage token".to_owned(),
        format!("ANTHROPIC_BASE_URL <- \"{PROXY}/anthropic\""),
        "ANTHROPIC_MODEL <- \"MiniMax-M2.7\"".to_owned(),
        "DATABASE_URL <- org secret DATABASE_URL".to_owned(),
    ] {
        assert!(env.contains(&expected), "{expected} not in {env:#?}");
    }
    // The proxy sends the org's key to MiniMax as MiniMax takes it.
    assert_eq!(proxied(&plan), ("MINIMAX_API_KEY".into(), SecretOrigin::Org, "Authorization: Bearer".into()));
    assert!(plan.delivery.reason.contains("`proxy` (the org's setting)") && plan.delivery.reason.contains("MINIMAX_API_KEY"));
    let used = plan.credential.as_ref().unwrap();
    assert_eq!(used.value, EnvValue::UsageToken);
}

#[test]
fn a_workspace_key_overrides_the_org_key_at_the_proxy() {
    let proxy = ok(plan_proxied("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"], &["MINIMAX_API_KEY"], true));
    holds_no_secret(&proxy);
    assert_eq!(proxied(&proxy).0, "MINIMAX_API_KEY");
    assert_eq!(proxied(&proxy).1, SecretOrigin::Workspace);
    // The key the proxy sends is the one a direct plan would have the runtime send.
    let direct = ok(plan("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"], &["MINIMAX_API_KEY"], true));
    assert_eq!(
        direct.credential.unwrap().value,
        EnvValue::Secret { key: wsd_core::EnvKey::new("MINIMAX_API_KEY").unwrap(), origin: SecretOrigin::Workspace }
    );
    assert_eq!(direct.delivery.delivery, CredentialDelivery::Direct);
    assert!(direct.delivery.reason.contains("`direct` (the platform's default)"), "{}", direct.delivery.reason);
}

#[test]
fn anthropic_keys_go_upstream_as_x_api_key() {
    let plan = ok(plan_proxied("claude-code", "claude-opus-4-7", &["ANTHROPIC_API_KEY"], &[], true));
    assert_eq!(plan.provider, "anthropic-api");
    holds_no_secret(&plan);
    assert_eq!(proxied(&plan), ("ANTHROPIC_API_KEY".into(), SecretOrigin::Org, "x-api-key".into()));
}

#[test]
fn codex_on_the_openai_api_calls_the_proxy_from_its_config_file() {
    let plan = ok(plan_proxied("codex", "gpt-5.5", &["OPENAI_API_KEY", "CODEX_API_KEY"], &[], true));
    assert_eq!(plan.provider, "openai-api");
    holds_no_secret(&plan);
    assert_eq!(proxied(&plan), ("OPENAI_API_KEY".into(), SecretOrigin::Org, "Authorization: Bearer".into()));
    let config = plan.files.iter().find(|f| f.path == ".codex/config.toml").expect("a config file");
    let FileContent::Text(text) = &config.content else { panic!("config is text") };
    assert!(text.contains(&format!("base_url = \"{PROXY}/openai/v1\"")), "{text}");
    assert!(text.contains("env_key = \"WSD_LLM_USAGE_TOKEN\""), "{text}");
    assert!(text.contains("model = \"gpt-5.5\""), "{text}");
}

#[test]
fn subscription_logins_stay_direct_and_the_plan_says_so() {
    for (runtime, model, key) in [("claude-code", "opus", "CLAUDE_CODE_OAUTH_TOKEN"), ("codex", "gpt-5.4", "CODEX_AUTH_JSON")] {
        let plan = ok(plan_proxied(runtime, model, &[key], &[], true));
        assert_eq!((plan.routing, plan.delivery.delivery), (Routing::Byok, CredentialDelivery::Direct), "{runtime}");
        assert!(plan.delivery.proxied.is_none());
        assert!(plan.delivery.reason.contains("does not apply to a subscription login"), "{}", plan.delivery.reason);
        assert!(plan.warnings.iter().any(|w| w.contains("subscription login")), "{:?}", plan.warnings);
        assert_eq!(
            plan.credential.unwrap().value,
            EnvValue::Secret { key: wsd_core::EnvKey::new(key).unwrap(), origin: SecretOrigin::Org }
        );
    }
}

#[test]
fn proxy_delivery_needs_the_proxy() {
    let e = refusal(plan_proxied("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"], &[], false));
    assert_eq!(e.code(), ErrorCode::CredentialProxyUnavailable);
    assert_eq!(e.provider(), Some("minimax"));
    assert!(e.to_string().contains("[platform] proxy_base_url"), "{e}");
    // A subscription login needs no proxy: it stays direct.
    ok(plan_proxied("claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN"], &[], false));
}

#[test]
fn a_workspace_endpoint_of_its_own_is_refused_not_ignored() {
    let e = refusal(plan_proxied("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"], &["ANTHROPIC_BASE_URL"], true));
    assert_eq!(e.code(), ErrorCode::EndpointOverrideNotProxied);
    assert!(e.to_string().contains("ANTHROPIC_BASE_URL") && e.to_string().contains("`minimax`"), "{e}");
    // An org-wide base URL is never applied anyway: it is stripped, not refused.
    let plan = ok(plan_proxied("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY", "ANTHROPIC_BASE_URL"], &[], true));
    holds_no_secret(&plan);
}

#[test]
fn every_llm_key_of_the_tenant_is_stripped_with_its_reason() {
    let plan =
        ok(plan_proxied("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY", "ANTHROPIC_API_KEY"], &["ANTHROPIC_CUSTOM_HEADERS"], true));
    holds_no_secret(&plan);
    let reason = |key: &str, origin: &str| {
        plan.decisions
            .iter()
            .find(|d| d.key.as_str() == key && d.origin.as_str() == origin)
            .map(|d| format!("{} {}", d.action.as_str(), d.reason))
            .unwrap_or_default()
    };
    assert!(reason("MINIMAX_API_KEY", "org").starts_with("stripped kept in wsd"), "{}", reason("MINIMAX_API_KEY", "org"));
    assert!(reason("ANTHROPIC_API_KEY", "org").starts_with("stripped"), "{}", reason("ANTHROPIC_API_KEY", "org"));
    assert!(
        reason("ANTHROPIC_CUSTOM_HEADERS", "workspace").contains("no LLM credential or endpoint"),
        "{}",
        reason("ANTHROPIC_CUSTOM_HEADERS", "workspace")
    );
}

#[test]
fn platform_plans_are_delivered_through_the_proxy_whatever_the_org_chose() {
    for result in
        [plan("claude-code", "anthropic/claude-opus-4-7", &[], &[], true), plan_proxied("codex", "openai/gpt-5.4", &[], &[], true)]
    {
        let plan = ok(result);
        assert_eq!((plan.routing, plan.delivery.delivery), (Routing::Platform, CredentialDelivery::Proxy));
        assert!(plan.delivery.proxied.is_none());
    }
}

#[test]
fn rendered_proxy_plans() {
    for (name, runtime, model, org) in [
        ("proxy_claude_code_minimax", "claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"][..]),
        ("proxy_codex_openai_api", "codex", "gpt-5.5", &["OPENAI_API_KEY"][..]),
        ("proxy_hermes_minimax", "hermes", "MiniMax-M2.7", &["MINIMAX_API_KEY", "OPENROUTER_API_KEY"][..]),
        ("proxy_openclaw_minimax", "openclaw", "MiniMax-M2.7", &["MINIMAX_API_KEY"][..]),
    ] {
        insta::assert_snapshot!(name, render(&plan_proxied(runtime, model, org, &[], true)));
    }
}
