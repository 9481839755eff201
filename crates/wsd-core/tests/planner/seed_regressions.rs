//! The field bugs wsd exists to make impossible (README), as plans whose every decision
//! is asserted.

use crate::support::{decisions, env, ok, plan, plan_with_policy, refusal, side_models};
use wsd_core::ErrorCode;
use wsd_core::plan::Policy;

#[test]
fn org_oauth_token_is_stripped_for_minimax_model() {
    let plan = ok(plan("claude-code", "MiniMax-M2.7", &["CLAUDE_CODE_OAUTH_TOKEN", "MINIMAX_API_KEY"], &[], false));
    assert_eq!(plan.provider, "minimax");
    assert_eq!(plan.routing.as_str(), "byok");
    assert_eq!(
        decisions(&plan),
        [
            "ANTHROPIC_AUTH_TOKEN projected projected",
            "ANTHROPIC_BASE_URL injected injected",
            "ANTHROPIC_MODEL injected injected",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC injected injected",
            "CLAUDE_CODE_OAUTH_TOKEN org stripped",
            "DISABLE_TELEMETRY injected injected",
            "MINIMAX_API_KEY org kept",
            "WSD_MODEL injected injected",
        ]
    );
    assert_eq!(
        env(&plan),
        [
            "ANTHROPIC_AUTH_TOKEN <- org secret MINIMAX_API_KEY",
            "ANTHROPIC_BASE_URL <- \"https://api.minimax.io/anthropic\"",
            "ANTHROPIC_MODEL <- \"MiniMax-M2.7\"",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC <- \"1\"",
            "DISABLE_TELEMETRY <- \"1\"",
            "MINIMAX_API_KEY <- org secret MINIMAX_API_KEY",
            "WSD_MODEL <- \"MiniMax-M2.7\"",
        ]
    );
    let stripped = plan.decisions.iter().find(|d| d.key.as_str() == "CLAUDE_CODE_OAUTH_TOKEN").unwrap();
    assert!(stripped.reason.contains("minimax") && stripped.reason.contains("MINIMAX_API_KEY"), "{}", stripped.reason);
}

#[test]
fn org_oauth_token_is_kept_for_opus_on_the_claude_subscription() {
    let plan = ok(plan("claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN"], &[], false));
    assert_eq!(plan.provider, "anthropic-oauth");
    assert_eq!(
        decisions(&plan),
        [
            "ANTHROPIC_BASE_URL injected injected",
            "ANTHROPIC_MODEL injected injected",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC injected injected",
            "CLAUDE_CODE_OAUTH_TOKEN org kept",
            "DISABLE_TELEMETRY injected injected",
            "WSD_MODEL injected injected",
        ]
    );
    assert!(env(&plan).contains(&"CLAUDE_CODE_OAUTH_TOKEN <- org secret CLAUDE_CODE_OAUTH_TOKEN".to_owned()));
}

#[test]
fn kimi_key_is_kept_for_a_kimi_coding_model_and_other_org_credentials_go() {
    let plan = ok(plan(
        "claude-code",
        "kimi-k2.5",
        &["KIMI_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"],
        &[],
        false,
    ));
    assert_eq!(plan.provider, "kimi-coding");
    assert_eq!(
        decisions(&plan),
        [
            "ANTHROPIC_API_KEY org stripped",
            "ANTHROPIC_AUTH_TOKEN projected projected",
            "ANTHROPIC_BASE_URL injected injected",
            "ANTHROPIC_MODEL injected injected",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC injected injected",
            "CLAUDE_CODE_OAUTH_TOKEN org stripped",
            "DISABLE_TELEMETRY injected injected",
            "KIMI_API_KEY org kept",
            "OPENAI_API_KEY org stripped",
            "WSD_MODEL injected injected",
        ]
    );
    assert!(env(&plan).contains(&"ANTHROPIC_AUTH_TOKEN <- org secret KIMI_API_KEY".to_owned()));
}

#[test]
fn a_non_matching_credential_set_on_the_workspace_is_kept() {
    // The user put their own OpenAI key on a MiniMax workspace: user-authored, kept; the
    // runtime does not read it, so parity holds.
    let plan = ok(plan("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"], &["OPENAI_API_KEY"], false));
    assert_eq!(
        decisions(&plan),
        [
            "ANTHROPIC_AUTH_TOKEN projected projected",
            "ANTHROPIC_BASE_URL injected injected",
            "ANTHROPIC_MODEL injected injected",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC injected injected",
            "DISABLE_TELEMETRY injected injected",
            "MINIMAX_API_KEY org kept",
            "OPENAI_API_KEY workspace kept",
            "WSD_MODEL injected injected",
        ]
    );
}

#[test]
fn workspace_auth_token_on_an_opus_workspace_fails_parity() {
    let e = refusal(plan("claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN"], &["ANTHROPIC_AUTH_TOKEN"], false));
    assert_eq!(e.code(), ErrorCode::RoutingParityMismatch);
    let message = e.to_string();
    for needle in [
        "workspace secret ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "anthropic-oauth",
        "reads ANTHROPIC_AUTH_TOKEN and ANTHROPIC_API_KEY first",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
}

#[test]
fn workspace_oauth_token_beside_a_workspace_minimax_key_would_not_be_sent() {
    // Claude Code sends ANTHROPIC_AUTH_TOKEN over CLAUDE_CODE_OAUTH_TOKEN: the projected
    // MiniMax key wins, the user's OAuth token is never read.
    let plan = ok(plan("claude-code", "MiniMax-M2.7", &[], &["MINIMAX_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"], false));
    assert!(env(&plan).contains(&"ANTHROPIC_AUTH_TOKEN <- workspace secret MINIMAX_API_KEY".to_owned()));
}

#[test]
fn two_workspace_credentials_that_claude_code_sends_together_fail_parity() {
    let e = refusal(plan("claude-code", "MiniMax-M2.7", &[], &["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"], false));
    assert_eq!(e.code(), ErrorCode::RoutingParityMismatch);
    assert!(e.to_string().contains("together on the same request"), "{e}");
}

#[test]
fn an_org_anthropic_key_beside_a_minimax_key_never_travels_to_minimax() {
    // minimax accepts ANTHROPIC_API_KEY by name, but Claude Code would send it beside the
    // projected key: exactly one credential reaches the runtime.
    let plan = ok(plan("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"], &[], false));
    assert_eq!(
        decisions(&plan),
        [
            "ANTHROPIC_API_KEY org stripped",
            "ANTHROPIC_AUTH_TOKEN org stripped",
            "ANTHROPIC_AUTH_TOKEN projected projected",
            "ANTHROPIC_BASE_URL injected injected",
            "ANTHROPIC_MODEL injected injected",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC injected injected",
            "DISABLE_TELEMETRY injected injected",
            "MINIMAX_API_KEY org kept",
            "WSD_MODEL injected injected",
        ]
    );
    assert!(env(&plan).contains(&"ANTHROPIC_AUTH_TOKEN <- org secret MINIMAX_API_KEY".to_owned()));
}

#[test]
fn platform_routing_strips_every_vendor_key_and_injects_the_usage_token() {
    let org = ["CLAUDE_CODE_OAUTH_TOKEN", "MINIMAX_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DATABASE_URL"];
    let plan = ok(plan("claude-code", "minimax/MiniMax-M2.7", &org, &["ANTHROPIC_AUTH_TOKEN"], true));
    assert_eq!(plan.provider, "platform");
    assert_eq!(plan.routing.as_str(), "platform");
    assert_eq!(
        decisions(&plan),
        [
            "ANTHROPIC_API_KEY org stripped",
            "ANTHROPIC_AUTH_TOKEN workspace stripped",
            "ANTHROPIC_AUTH_TOKEN projected projected",
            "ANTHROPIC_BASE_URL org stripped",
            "ANTHROPIC_BASE_URL injected injected",
            "ANTHROPIC_CUSTOM_HEADERS injected injected",
            "ANTHROPIC_MODEL injected injected",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC injected injected",
            "CLAUDE_CODE_OAUTH_TOKEN org stripped",
            "DATABASE_URL org kept",
            "DISABLE_TELEMETRY injected injected",
            "MINIMAX_API_KEY org stripped",
            "WSD_LLM_BASE_URL injected injected",
            "WSD_LLM_USAGE_TOKEN injected injected",
            "WSD_MODEL injected injected",
        ]
    );
    assert_eq!(
        env(&plan),
        [
            "ANTHROPIC_AUTH_TOKEN <- usage token",
            "ANTHROPIC_BASE_URL <- \"http://127.0.0.1:8080/llm/anthropic\"",
            "ANTHROPIC_CUSTOM_HEADERS <- \"X-Wsd-Workspace-Id: ws-1\"",
            "ANTHROPIC_MODEL <- \"minimax/MiniMax-M2.7\"",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC <- \"1\"",
            "DATABASE_URL <- org secret DATABASE_URL",
            "DISABLE_TELEMETRY <- \"1\"",
            "WSD_LLM_BASE_URL <- \"http://127.0.0.1:8080/llm\"",
            "WSD_LLM_USAGE_TOKEN <- usage token",
            "WSD_MODEL <- \"minimax/MiniMax-M2.7\"",
        ]
    );
    assert!(plan.decisions.iter().filter(|d| d.action.as_str() == "stripped").all(|d| d.reason.starts_with("platform-managed")));
}

#[test]
fn platform_model_without_proxy_settings_is_refused() {
    let e = refusal(plan("claude-code", "anthropic/claude-opus-4-7", &["ANTHROPIC_API_KEY"], &[], false));
    assert_eq!(e.code(), ErrorCode::MissingPlatformProxy);
    assert_eq!(e.provider(), Some("platform"));
}

#[test]
fn byok_without_an_accepted_credential_is_refused_and_never_falls_back_to_the_platform() {
    let e = refusal(plan("claude-code", "MiniMax-M2.7", &["CLAUDE_CODE_OAUTH_TOKEN"], &[], true));
    assert_eq!(e.code(), ErrorCode::MissingByokCredential);
    let message = e.to_string();
    assert!(message.contains("`minimax`") && message.contains("MINIMAX_API_KEY, ANTHROPIC_AUTH_TOKEN, ANTHROPIC_API_KEY"), "{message}");
}

#[test]
fn org_github_token_is_forbidden_but_the_same_key_on_the_workspace_is_allowed() {
    let e = refusal(plan("claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY"], &[], false));
    assert_eq!(e.code(), ErrorCode::ForbiddenTenantEnvKey);
    assert!(e.to_string().contains("AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN"), "{e}");

    let plan = ok(plan("claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN"], &["GITHUB_TOKEN"], false));
    assert!(decisions(&plan).contains(&"GITHUB_TOKEN workspace kept".to_owned()));
    // A workspace secret overriding an org secret of the same key takes its origin.
    let plan = ok(crate::support::plan("claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN", "GITHUB_TOKEN"], &["GITHUB_TOKEN"], false));
    assert!(decisions(&plan).contains(&"GITHUB_TOKEN org overridden".to_owned()));
    assert!(decisions(&plan).contains(&"GITHUB_TOKEN workspace kept".to_owned()));
}

#[test]
fn policy_forbidden_keys_and_prefixes_apply_to_org_secrets() {
    let policy =
        Policy { forbidden_keys: crate::support::keys(&["MY_DEPLOY_TOKEN"]), forbidden_prefixes: vec!["OPS_".into()], ..Policy::default() };
    let e =
        refusal(plan_with_policy("claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN", "MY_DEPLOY_TOKEN", "OPS_KEY"], &[], false, &policy));
    assert!(e.to_string().contains("MY_DEPLOY_TOKEN, OPS_KEY"), "{e}");
    assert!(plan_with_policy("claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN"], &["MY_DEPLOY_TOKEN"], false, &policy).is_ok());
}

#[test]
fn stray_org_base_url_is_stripped_on_a_byok_workspace_of_another_provider() {
    let plan = ok(plan("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS"], &[], false));
    let d = decisions(&plan);
    assert!(d.contains(&"ANTHROPIC_BASE_URL org stripped".to_owned()), "{d:?}");
    assert!(d.contains(&"ANTHROPIC_CUSTOM_HEADERS org stripped".to_owned()), "{d:?}");
    assert!(env(&plan).contains(&"ANTHROPIC_BASE_URL <- \"https://api.minimax.io/anthropic\"".to_owned()));
    assert!(!plan.env.keys().any(|k| k.as_str() == "ANTHROPIC_CUSTOM_HEADERS"));
}

#[test]
fn a_workspace_base_url_is_the_users_choice_and_is_warned_about() {
    let plan = ok(plan("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"], &["ANTHROPIC_BASE_URL"], false));
    assert!(env(&plan).contains(&"ANTHROPIC_BASE_URL <- workspace secret ANTHROPIC_BASE_URL".to_owned()));
    assert!(plan.warnings.iter().any(|w| w.contains("ANTHROPIC_BASE_URL")), "{:?}", plan.warnings);
}

#[test]
fn restart_without_a_model_is_refused_never_billed_to_the_platform() {
    for model in ["", "   "] {
        let e = refusal(plan("claude-code", model, &["MINIMAX_API_KEY"], &[], true));
        assert_eq!(e.code(), ErrorCode::ModelRequired);
    }
}

#[test]
fn unknown_runtime_and_unregistered_model_are_refused() {
    let e = refusal(plan("langgraph", "opus", &[], &[], true));
    assert_eq!(e.code(), ErrorCode::UnknownRuntime);
    assert!(e.to_string().contains("claude-code, codex, hermes, openclaw"), "{e}");
    let e = refusal(plan("claude-code", "gpt-5.5", &["OPENAI_API_KEY"], &[], true));
    assert_eq!(e.code(), ErrorCode::UnregisteredModelForRuntime);
}

#[test]
fn codex_gpt_model_needs_a_credential_to_pick_its_provider() {
    let e = refusal(plan("codex", "gpt-5.5", &[], &[], true));
    assert_eq!(e.code(), ErrorCode::AmbiguousProvider);
    let message = e.to_string();
    assert!(message.contains("openai-subscription") && message.contains("OPENAI_API_KEY, CODEX_API_KEY (openai-api)"), "{message}");
}

#[test]
fn secrets_named_like_wsd_settings_cannot_replace_them() {
    let plan = ok(plan(
        "claude-code",
        "opus",
        &["CLAUDE_CODE_OAUTH_TOKEN", "DISABLE_TELEMETRY"],
        &["ANTHROPIC_MODEL", "WSD_LLM_USAGE_TOKEN"],
        false,
    ));
    let d = decisions(&plan);
    for stripped in ["DISABLE_TELEMETRY org stripped", "ANTHROPIC_MODEL workspace stripped", "WSD_LLM_USAGE_TOKEN workspace stripped"] {
        assert!(d.contains(&stripped.to_owned()), "{stripped} not in {d:?}");
    }
    assert!(env(&plan).contains(&"DISABLE_TELEMETRY <- \"1\"".to_owned()));
    assert!(!plan.env.keys().any(|k| k.as_str() == "WSD_LLM_USAGE_TOKEN"));
}

#[test]
fn the_users_own_key_wins_over_the_orgs() {
    // moonshot accepts MOONSHOT_API_KEY and KIMI_API_KEY; the user's KIMI_API_KEY is used.
    let plan = ok(plan("claude-code", "moonshot/kimi-k2", &["MOONSHOT_API_KEY"], &["KIMI_API_KEY"], false));
    assert!(env(&plan).contains(&"ANTHROPIC_AUTH_TOKEN <- workspace secret KIMI_API_KEY".to_owned()), "{:?}", env(&plan));
}

#[test]
fn an_org_anthropic_key_for_a_kimi_model_is_moved_into_the_auth_token() {
    // Claude Code needs third-party keys in ANTHROPIC_AUTH_TOKEN; the org's key is moved
    // there, not sent a second time as x-api-key.
    let plan = ok(plan("claude-code", "kimi-k2", &["ANTHROPIC_API_KEY"], &[], false));
    assert_eq!(
        decisions(&plan),
        [
            "ANTHROPIC_API_KEY org stripped",
            "ANTHROPIC_AUTH_TOKEN projected projected",
            "ANTHROPIC_BASE_URL injected injected",
            "ANTHROPIC_MODEL injected injected",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC injected injected",
            "DISABLE_TELEMETRY injected injected",
            "WSD_MODEL injected injected",
        ]
    );
    assert!(env(&plan).contains(&"ANTHROPIC_AUTH_TOKEN <- org secret ANTHROPIC_API_KEY".to_owned()));
    let moved = plan.decisions.iter().find(|d| d.key.as_str() == "ANTHROPIC_API_KEY").unwrap();
    assert!(moved.reason.starts_with("moved into ANTHROPIC_AUTH_TOKEN"), "{}", moved.reason);
}

#[test]
fn a_workspace_key_the_runtime_reads_as_is_is_used_as_is() {
    let plan = ok(plan("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"], &["ANTHROPIC_API_KEY"], false));
    let env = env(&plan);
    assert!(env.contains(&"ANTHROPIC_API_KEY <- workspace secret ANTHROPIC_API_KEY".to_owned()), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("ANTHROPIC_AUTH_TOKEN")), "{env:?}");
}

#[test]
fn parity_names_the_credentials_that_would_travel_together() {
    let e = refusal(plan("claude-code", "moonshot-v1-8k", &["MOONSHOT_API_KEY"], &["ANTHROPIC_API_KEY"], false));
    assert_eq!(e.code(), ErrorCode::RoutingParityMismatch);
    assert_eq!(e.provider(), Some("moonshot"));
    assert_eq!(
        e.to_string(),
        "claude-code would send the org secret MOONSHOT_API_KEY as ANTHROPIC_AUTH_TOKEN (Authorization: Bearer) and the workspace secret ANTHROPIC_API_KEY (x-api-key) together on the same request; exactly one credential may reach provider `moonshot`: remove the extra workspace secret"
    );
    let e = refusal(plan("claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN"], &["ANTHROPIC_AUTH_TOKEN"], false));
    assert_eq!(
        e.to_string(),
        "claude-code would send the workspace secret ANTHROPIC_AUTH_TOKEN (Authorization: Bearer) instead of the org secret CLAUDE_CODE_OAUTH_TOKEN, the credential planned for provider `anthropic-oauth`; claude-code reads ANTHROPIC_AUTH_TOKEN and ANTHROPIC_API_KEY first; remove it from the workspace or choose a model whose provider accepts it"
    );
}

#[test]
fn parity_refuses_a_credential_sent_to_another_endpoint_than_the_providers() {
    // A registry whose subscription provider names another endpoint than the one Codex
    // sends its login to: the plan is refused rather than trusted.
    let yaml = wsd_core::registry::EMBEDDED_REGISTRY_YAML
        .replace("base_url_openai: https://chatgpt.com/backend-api/codex", "base_url_openai: https://other.example/v1");
    let registry = wsd_core::Registry::from_yaml(&yaml).unwrap();
    let secrets = wsd_core::plan::SecretNames { org: crate::support::keys(&["CODEX_AUTH_JSON"]), workspace: Default::default() };
    let e = wsd_core::plan(&registry, &crate::support::spec("codex", "gpt-5.5"), &secrets, None, &Policy::default()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::RoutingParityMismatch);
    assert_eq!(
        e.to_string(),
        "codex would send the org secret CODEX_AUTH_JSON to https://chatgpt.com/backend-api/codex instead of https://other.example/v1, the endpoint of provider `openai-subscription`"
    );
}

#[test]
fn every_plan_names_the_one_credential_and_how_it_travels() {
    use wsd_core::plan::{EnvValue, SecretOrigin};
    use wsd_core::registry::CredentialSource;
    let key = |k: &str| wsd_core::EnvKey::new(k).unwrap();
    let credential = |p: wsd_core::Plan| {
        let c = p.credential.expect("an Ok plan names its credential");
        (c.via, c.sent_as, c.value)
    };
    let org = |k: &str| EnvValue::Secret { key: key(k), origin: SecretOrigin::Org };
    assert_eq!(
        credential(ok(plan("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"], &[], false))),
        (CredentialSource::Env(key("ANTHROPIC_AUTH_TOKEN")), "Authorization: Bearer".to_owned(), org("MINIMAX_API_KEY"))
    );
    assert_eq!(
        credential(ok(plan("claude-code", "claude-opus-4-7", &["ANTHROPIC_API_KEY"], &[], false))),
        (CredentialSource::Env(key("ANTHROPIC_API_KEY")), "x-api-key".to_owned(), org("ANTHROPIC_API_KEY"))
    );
    assert_eq!(
        credential(ok(plan("codex", "gpt-5.5", &["OPENAI_API_KEY"], &[], false))),
        (CredentialSource::Env(key("OPENAI_API_KEY")), "Authorization: Bearer".to_owned(), org("OPENAI_API_KEY"))
    );
    assert_eq!(
        credential(ok(plan("codex", "gpt-5.5", &["CODEX_AUTH_JSON"], &[], false))),
        (CredentialSource::File(".codex/auth.json".into()), "ChatGPT login".to_owned(), org("CODEX_AUTH_JSON"))
    );
    assert_eq!(
        credential(ok(plan("claude-code", "minimax/MiniMax-M3", &[], &[], true))),
        (CredentialSource::Env(key("ANTHROPIC_AUTH_TOKEN")), "Authorization: Bearer".to_owned(), EnvValue::UsageToken)
    );
}

#[test]
fn names_that_steer_how_programs_start_are_refused_from_org_and_workspace() {
    // One name per family: the loader, a shell, an interpreter, the backend's own names.
    for (org, workspace) in [
        (&["CLAUDE_CODE_OAUTH_TOKEN", "LD_PRELOAD"][..], &[][..]),
        (&["CLAUDE_CODE_OAUTH_TOKEN"][..], &["BASH_ENV"][..]),
        (&["CLAUDE_CODE_OAUTH_TOKEN", "NODE_OPTIONS"][..], &[][..]),
        (&["CLAUDE_CODE_OAUTH_TOKEN"][..], &["PATH", "HOME"][..]),
    ] {
        let e = refusal(plan("claude-code", "opus", org, workspace, false));
        assert_eq!(e.code(), ErrorCode::ProtectedEnvKey, "{org:?} {workspace:?}");
        let message = e.to_string();
        let named = org.iter().chain(workspace).filter(|k| **k != "CLAUDE_CODE_OAUTH_TOKEN");
        for key in named {
            assert!(message.contains(key), "{message}");
        }
        assert!(message.contains("steer"), "{message}");
    }
    // Before the operator-scope check: a protected name is reported even beside one.
    let e = refusal(plan("claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN", "GITHUB_TOKEN", "PYTHONPATH"], &[], false));
    assert_eq!(e.code(), ErrorCode::ProtectedEnvKey);
    assert_eq!(e.provider(), None);
}

/// Claude Code names models of its own for side requests and behind its aliases: on a
/// provider that serves only the workspace's model, every one of them names that model; on
/// Anthropic's own, they are left to Claude Code.
#[test]
fn side_requests_name_the_workspaces_model_where_the_provider_has_no_other() {
    let names = |model: &str| {
        [
            "ANTHROPIC_DEFAULT_FABLE_MODEL",
            "ANTHROPIC_DEFAULT_HAIKU_MODEL",
            "ANTHROPIC_DEFAULT_OPUS_MODEL",
            "ANTHROPIC_DEFAULT_SONNET_MODEL",
            "ANTHROPIC_SMALL_FAST_MODEL",
            "CLAUDE_CODE_SUBAGENT_MODEL",
        ]
        .map(|key| format!("{key} <- {model:?}"))
    };
    let minimax = ok(plan("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"], &[], false));
    assert_eq!(side_models(&minimax), names("MiniMax-M2.7"));
    // The vendor's own id, as ANTHROPIC_MODEL has it.
    let moonshot = ok(plan("claude-code", "moonshot/kimi-k2.6", &["MOONSHOT_API_KEY"], &[], false));
    assert_eq!(side_models(&moonshot), names("kimi-k2.6"));
    let platform = ok(plan("claude-code", "anthropic/claude-sonnet-4-6", &[], &[], true));
    assert_eq!(side_models(&platform), names("anthropic/claude-sonnet-4-6"));
    let reason = &platform.decisions.iter().find(|d| d.key.as_str() == "ANTHROPIC_DEFAULT_HAIKU_MODEL").unwrap().reason;
    assert!(reason.to_string().contains("provider `platform` serves the workspace's model"), "{reason}");

    for (model, key) in [("claude-opus-4-8", "ANTHROPIC_API_KEY"), ("opus", "CLAUDE_CODE_OAUTH_TOKEN")] {
        let own = ok(plan("claude-code", model, &[key], &[], false));
        assert!(side_models(&own).is_empty(), "{model}: {:?}", side_models(&own));
    }
    // A tenant cannot set them where wsd does.
    let set = ok(plan("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"], &["ANTHROPIC_DEFAULT_HAIKU_MODEL"], false));
    assert_eq!(side_models(&set), names("MiniMax-M2.7"));
    let haiku: Vec<String> = set
        .decisions
        .iter()
        .filter(|d| d.key.as_str() == "ANTHROPIC_DEFAULT_HAIKU_MODEL")
        .map(|d| format!("{} {}", d.origin.as_str(), d.action.as_str()))
        .collect();
    assert_eq!(haiku, ["workspace stripped", "injected injected"]);
}

/// A pair no real CLI was verified on is refused by default and planned, with a warning,
/// only when the operator allows unverified pairs.
#[test]
fn an_unverified_pair_is_refused_unless_the_operator_allows_it() {
    use wsd_core::plan::{SecretNames, WorkspaceId, WorkspaceSpec};
    // The shipped registry with OpenClaw on MiniMax never verified.
    let yaml = wsd_core::registry::EMBEDDED_REGISTRY_YAML;
    let openclaw = yaml.find("  openclaw:\n").unwrap();
    let unverified = format!("{}{}", &yaml[..openclaw], yaml[openclaw..].replacen("        verified_on: [\"2026.9.6\"]\n", "", 1));
    let registry = wsd_core::Registry::from_yaml(&unverified).unwrap();
    let spec = WorkspaceSpec {
        id: WorkspaceId::new("ws-1").unwrap(),
        runtime: "openclaw".into(),
        model: "MiniMax-M2.7".into(),
        delivery: Default::default(),
    };
    let secrets = SecretNames { org: crate::support::keys(&["MINIMAX_API_KEY"]), workspace: Default::default() };
    let refused = wsd_core::plan(&registry, &spec, &secrets, None, &Policy::default()).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::UnverifiedRuntimeProvider);
    assert!(refused.to_string().contains("`openclaw`") && refused.to_string().contains("`minimax`"), "{refused}");
    let allowed = wsd_core::plan(&registry, &spec, &secrets, None, &Policy { allow_unverified: true, ..Policy::default() }).unwrap();
    assert!(allowed.verified_on.is_empty());
    assert!(allowed.warnings.iter().any(|w| w.contains("has not been verified")), "{:?}", allowed.warnings);
    // A verified pair of the same registry plans under the default policy, without the warning.
    let verified = WorkspaceSpec { model: "gpt-5.5".into(), ..spec };
    let secrets = SecretNames { org: crate::support::keys(&["OPENAI_API_KEY"]), workspace: Default::default() };
    let plan = wsd_core::plan(&registry, &verified, &secrets, None, &Policy::default()).unwrap();
    assert_eq!(plan.verified_on, ["2026.9.6"]);
    assert!(!plan.warnings.iter().any(|w| w.contains("has not been verified")));
}
