//! Derivation on the shipped registry: `(runtime, model, available credential names) →
//! provider`, and every refusal's code.

use crate::support::{keys, registry};
use wsd_core::{DerivationRule, ErrorCode, derive};

fn derived(runtime: &str, model: &str, available: &[&str]) -> Result<(String, DerivationRule), ErrorCode> {
    derive(registry(), runtime, model, &keys(available)).map(|d| (d.provider.name.clone(), d.rule)).map_err(|e| e.code())
}

fn provider(runtime: &str, model: &str, available: &[&str]) -> String {
    match derived(runtime, model, available) {
        Ok((name, _)) => name,
        Err(code) => panic!("{runtime} {model}: {code}"),
    }
}

#[test]
fn exact_ids_resolve_to_their_listed_provider() {
    use DerivationRule::*;
    assert_eq!(derived("claude-code", "opus", &[]), Ok(("anthropic-oauth".into(), ExactModel)));
    assert_eq!(derived("claude-code", "opus", &["ANTHROPIC_API_KEY"]), Ok(("anthropic-oauth".into(), ExactModel)));
    assert_eq!(derived("claude-code", "claude-opus-4-7", &[]), Ok(("anthropic-api".into(), ExactModel)));
    assert_eq!(derived("claude-code", "MiniMax-M2.7", &["MINIMAX_API_KEY"]), Ok(("minimax".into(), ExactModel)));
    assert_eq!(derived("claude-code", "anthropic/claude-opus-4-7", &[]), Ok(("platform".into(), ExactModel)));
    assert_eq!(derived("claude-code", "minimax/MiniMax-M2.7", &["ANTHROPIC_API_KEY"]), Ok(("platform".into(), ExactModel)));
    assert_eq!(derived("hermes", "minimax/MiniMax-M2.7", &[]), Ok(("platform".into(), ExactModel)));
    assert_eq!(derived("hermes", "kimi-k2", &[]), Ok(("kimi-coding".into(), ExactModel)));
    assert_eq!(derived("openclaw", "moonshot/kimi-k2.6", &["KIMI_API_KEY"]), Ok(("moonshot".into(), ExactModel)));
    assert_eq!(derived("openclaw", "kimi-for-coding", &["KIMI_API_KEY"]), Ok(("kimi-coding".into(), ExactModel)));
}

#[test]
fn patterns_resolve_unlisted_ids() {
    use DerivationRule::ModelMatch;
    assert_eq!(derived("claude-code", "claude-haiku-4-5-20251001", &[]), Ok(("anthropic-api".into(), ModelMatch)));
    assert_eq!(derived("claude-code", "kimi-latest", &["KIMI_API_KEY"]), Ok(("kimi-coding".into(), ModelMatch)));
    assert_eq!(derived("claude-code", "GLM-4.6", &[]), Ok(("zai".into(), ModelMatch)));
    assert_eq!(derived("claude-code", "zai:glm-4.6", &[]), Ok(("zai".into(), ModelMatch)));
    assert_eq!(derived("claude-code", "deepseek-reasoner", &[]), Ok(("deepseek".into(), ModelMatch)));
    assert_eq!(provider("openclaw", "openrouter/anthropic/claude-3.5-sonnet", &[]), "openrouter");
    assert_eq!(provider("hermes", "gemini-2.0-flash", &[]), "google");
    assert_eq!(provider("openclaw", "groq:llama-3.3-70b", &[]), "groq");
}

#[test]
fn one_id_under_two_providers_is_decided_by_the_available_credential() {
    use DerivationRule::ExactModelByCredential;
    assert_eq!(derived("codex", "gpt-5.5", &["OPENAI_API_KEY"]), Ok(("openai-api".into(), ExactModelByCredential)));
    assert_eq!(derived("codex", "gpt-5.5", &["CODEX_API_KEY", "MINIMAX_API_KEY"]), Ok(("openai-api".into(), ExactModelByCredential)));
    assert_eq!(derived("codex", "gpt-5.5", &["CODEX_AUTH_JSON"]), Ok(("openai-subscription".into(), ExactModelByCredential)));
    assert_eq!(derived("codex", "gpt-5.5", &[]), Err(ErrorCode::AmbiguousProvider));
    assert_eq!(derived("codex", "gpt-5.5", &["OPENAI_API_KEY", "CODEX_AUTH_JSON"]), Err(ErrorCode::AmbiguousProvider));
}

#[test]
fn overlapping_patterns_are_decided_by_the_available_credential_or_refused() {
    // A registry where two patterns own the same unlisted id, with disjoint auth env.
    // (Claude Code's own listing of the id is dropped, so that only the patterns own it there.)
    let yaml = wsd_core::registry::EMBEDDED_REGISTRY_YAML
        .replace("model_match: '^kimi-'", "model_match: '^(kimi-|moonshot/kimi)'")
        .replacen("        models: [moonshot/kimi-k2.6]\n", "", 1);
    let registry = wsd_core::Registry::from_yaml(&yaml).unwrap_err();
    // KIMI_API_KEY is accepted by both moonshot and kimi-coding: the guard refuses the overlap.
    assert!(registry.to_string().contains("`kimi-coding` and `moonshot`"), "{registry}");

    let yaml = wsd_core::registry::EMBEDDED_REGISTRY_YAML.replace("model_match: '^groq[:/]'", "model_match: '^(groq[:/]|openrouter/)'");
    let registry = wsd_core::Registry::from_yaml(&yaml).map_err(|e| e.to_string()).unwrap();
    let pick = |available: &[&str]| {
        derive(&registry, "openclaw", "openrouter/x", &keys(available)).map(|d| (d.provider.name.clone(), d.rule)).map_err(|e| e.code())
    };
    assert_eq!(pick(&["GROQ_API_KEY"]), Ok(("groq".into(), DerivationRule::ModelMatchByCredential)));
    assert_eq!(pick(&["OPENROUTER_API_KEY"]), Ok(("openrouter".into(), DerivationRule::ModelMatchByCredential)));
    assert_eq!(pick(&[]), Err(ErrorCode::AmbiguousProvider));
    assert_eq!(pick(&["GROQ_API_KEY", "OPENROUTER_API_KEY"]), Err(ErrorCode::AmbiguousProvider));
}

#[test]
fn refusals_have_stable_codes() {
    assert_eq!(derived("claude-code", "", &[]), Err(ErrorCode::ModelRequired));
    assert_eq!(derived("claude-code", " \t", &[]), Err(ErrorCode::ModelRequired));
    assert_eq!(derived("nope", "opus", &[]), Err(ErrorCode::UnknownRuntime));
    assert_eq!(derived("nope", "", &[]), Err(ErrorCode::ModelRequired));
    for model in ["gpt-5.5", "openai:gpt-4o", "qwen-max", "minimax:MiniMax-M2.7", "Opus", "opus "] {
        assert_eq!(derived("claude-code", model, &[]), Err(ErrorCode::UnregisteredModelForRuntime), "{model}");
    }
    assert_eq!(derived("codex", "kimi-for-coding", &[]), Err(ErrorCode::UnregisteredModelForRuntime));
}

#[test]
fn only_the_runtimes_own_providers_are_candidates() {
    // google's pattern matches, but claude-code does not run google.
    assert_eq!(derived("claude-code", "gemini-2.5-pro", &["GEMINI_API_KEY"]), Err(ErrorCode::UnregisteredModelForRuntime));
    assert_eq!(provider("hermes", "gemini-2.5-pro", &["GEMINI_API_KEY"]), "google");
}

#[test]
fn explanations_name_model_provider_and_runtime() {
    let d = derive(registry(), "codex", "gpt-5.5", &keys(&["OPENAI_API_KEY"])).unwrap();
    assert_eq!(d.explain("gpt-5.5"), "`gpt-5.5` is listed under several providers of `codex`; only `openai-api` has a credential set");
    let d = derive(registry(), "claude-code", "kimi-latest", &keys(&[])).unwrap();
    assert_eq!(d.explain("kimi-latest"), "`kimi-latest` matches the model pattern of provider `kimi-coding` of runtime `claude-code`");
}

#[test]
fn a_namespace_naming_the_provider_is_not_part_of_the_vendors_model_id() {
    let id = |provider: &str, model: &str| registry().provider(provider).unwrap().vendor_model_id(model).to_owned();
    // By the provider's name or its upstream vendor, with `:` or `/`.
    assert_eq!(id("moonshot", "moonshot/kimi-k2.6"), "kimi-k2.6");
    assert_eq!(id("moonshot", "moonshot:kimi-k2.6"), "kimi-k2.6");
    assert_eq!(id("openai-api", "openai-api:gpt-5.4"), "gpt-5.4");
    assert_eq!(id("openai-api", "openai/gpt-5.4"), "gpt-5.4");
    assert_eq!(id("zai", "zai:glm-4.6"), "glm-4.6");
    // Only the first separator splits: the rest is the vendor's (OpenRouter's ids hold a `/`).
    assert_eq!(id("openrouter", "openrouter:anthropic/claude-sonnet-4.5"), "anthropic/claude-sonnet-4.5");
    // Anything else is the vendor's id already.
    assert_eq!(id("moonshot", "moonshot-v1-8k"), "moonshot-v1-8k");
    assert_eq!(id("moonshot", "kimi-k2.6"), "kimi-k2.6");
    assert_eq!(id("moonshot", "minimax/kimi-k2.6"), "minimax/kimi-k2.6");
    assert_eq!(id("moonshot", "moonshot/"), "moonshot/");
    assert_eq!(id("minimax", "MiniMax-M2.7"), "MiniMax-M2.7");
}
