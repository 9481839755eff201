//! Rendered plans of realistic workspaces. A change in behaviour shows as a readable diff
//! of the snapshot under `tests/planner/snapshots/`.

use crate::support::{plan, render};

fn check(name: &str, runtime: &str, model: &str, org: &[&str], workspace: &[&str], platform: bool) {
    insta::assert_snapshot!(name, render(&plan(runtime, model, org, workspace, platform)));
}

#[test]
fn claude_code_on_minimax_with_an_org_claude_subscription() {
    check(
        "claude_code_minimax_byok",
        "claude-code",
        "MiniMax-M2.7",
        &["CLAUDE_CODE_OAUTH_TOKEN", "MINIMAX_API_KEY", "DATABASE_URL"],
        &[],
        true,
    );
}

#[test]
fn claude_code_on_opus_with_the_org_claude_subscription() {
    check("claude_code_opus_oauth", "claude-code", "opus", &["CLAUDE_CODE_OAUTH_TOKEN", "MINIMAX_API_KEY"], &["SENTRY_DSN"], true);
}

#[test]
fn claude_code_on_a_platform_model() {
    check(
        "claude_code_platform",
        "claude-code",
        "anthropic/claude-sonnet-4-6",
        &["CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"],
        &["GITHUB_TOKEN"],
        true,
    );
}

#[test]
fn codex_on_the_openai_api() {
    check("codex_openai_api", "codex", "gpt-5.5", &["OPENAI_API_KEY", "CODEX_API_KEY", "MINIMAX_API_KEY"], &[], true);
}

#[test]
fn codex_on_a_chatgpt_subscription() {
    check("codex_chatgpt_login", "codex", "gpt-5.4", &["CODEX_AUTH_JSON", "ANTHROPIC_API_KEY"], &[], true);
}

#[test]
fn codex_on_a_platform_model() {
    check("codex_platform", "codex", "openai/gpt-5.4", &["OPENAI_API_KEY"], &[], true);
}

#[test]
fn hermes_on_minimax() {
    // Hermes would pick OpenRouter for any OPENAI_API_KEY or OPENROUTER_API_KEY it sees: the
    // provider is chosen explicitly and both are stripped.
    check("hermes_minimax_byok", "hermes", "MiniMax-M2.7", &["MINIMAX_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY"], &[], true);
}

#[test]
fn hermes_on_openai_anthropic_openrouter_and_the_platform() {
    check("hermes_openai_byok", "hermes", "gpt-5.5", &["OPENAI_API_KEY", "OPENROUTER_API_KEY"], &[], true);
    check("hermes_anthropic_key", "hermes", "claude-opus-4-8", &["ANTHROPIC_API_KEY"], &[], true);
    check("hermes_openrouter", "hermes", "openrouter/anthropic/claude-sonnet-4", &["OPENROUTER_API_KEY"], &[], true);
    check("hermes_platform", "hermes", "minimax/MiniMax-M2.7", &["MINIMAX_API_KEY", "OPENAI_API_KEY"], &[], true);
}

#[test]
fn openclaw_on_groq_with_the_users_own_key() {
    check("openclaw_groq_workspace_key", "openclaw", "groq/llama-3.3-70b-versatile", &["OPENAI_API_KEY"], &["GROQ_API_KEY"], false);
}

#[test]
fn openclaw_on_minimax_openai_anthropic_openrouter_and_the_platform() {
    // OpenClaw's own MiniMax provider would prefer MINIMAX_CODE_PLAN_KEY: the plan defines a
    // provider of wsd's own that reads the one key it names.
    check(
        "openclaw_minimax_byok",
        "openclaw",
        "MiniMax-M2.7",
        &["MINIMAX_API_KEY", "MINIMAX_CODE_PLAN_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"],
        &[],
        true,
    );
    check("openclaw_openai_byok", "openclaw", "gpt-5.5", &["OPENAI_API_KEY", "CODEX_API_KEY"], &[], true);
    check("openclaw_anthropic_key", "openclaw", "claude-opus-4-8", &["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"], &[], true);
    check("openclaw_openrouter", "openclaw", "openrouter/anthropic/claude-sonnet-4", &["OPENROUTER_API_KEY", "OPENAI_API_KEY"], &[], true);
    check("openclaw_platform", "openclaw", "minimax/MiniMax-M2.7", &["MINIMAX_API_KEY", "OPENAI_API_KEY"], &[], true);
}

#[test]
fn claude_code_on_a_namespaced_moonshot_model() {
    // Claude Code sends ANTHROPIC_MODEL to Moonshot as written: it gets Moonshot's own id.
    check("claude_code_moonshot_namespaced", "claude-code", "moonshot/kimi-k2.6", &["MOONSHOT_API_KEY"], &[], true);
}

#[test]
fn codex_on_a_namespaced_openai_api_model() {
    check("codex_openai_api_namespaced", "codex", "openai-api:gpt-5.4", &["OPENAI_API_KEY"], &[], true);
}
