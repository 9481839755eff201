//! Loading refuses every invalid registry, naming the entry and field at fault.

use wsd_core::Registry;
use wsd_core::registry::{EMBEDDED_REGISTRY_YAML, RegistryError};

const MINIMAL: &str = r#"
schema_version: 1
providers:
  - name: vendor-a
    display_name: Vendor A
    protocol: anthropic
    auth_mode: api_key
    auth_env: [VENDOR_A_KEY, SHARED_KEY]
    base_url_anthropic: https://a.example
    model_match: '^a-'
    upstream_vendor: a
  - name: vendor-b
    display_name: Vendor B
    protocol: anthropic
    auth_mode: api_key
    auth_env: [VENDOR_B_KEY]
    base_url_anthropic: https://b.example
    model_match: '^b-'
  - name: platform
    display_name: Platform
    protocol: anthropic
    auth_mode: platform
    platform: true
    auth_env: [WSD_LLM_USAGE_TOKEN]
    model_match: '^platform/'
runtimes:
  agent:
    display_name: Agent
    protocol: anthropic
    model_ids: vendor
    credential_precedence:
      - - { env: AGENT_KEY, sent_as: "x-api-key" }
    base_url_env: AGENT_BASE_URL
    default_base_url: https://default.example
    projection: { kind: env, key_env: AGENT_KEY, base_url_env: AGENT_BASE_URL }
    providers:
      - name: vendor-a
        models: [a-1]
      - name: vendor-b
      - name: platform
        models: [p/1]
"#;

fn issues_of(yaml: &str) -> String {
    match Registry::from_yaml(yaml) {
        Ok(_) => panic!("registry was accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

fn with(from: &str, to: &str) -> String {
    assert!(MINIMAL.contains(from), "{from:?} is not in the minimal registry");
    MINIMAL.replacen(from, to, 1)
}

fn assert_refused(yaml: &str, needles: &[&str]) {
    let message = issues_of(yaml);
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in:\n{message}");
    }
}

#[test]
fn the_minimal_registry_is_valid_and_derives_its_llm_keys() {
    let registry = Registry::from_yaml(MINIMAL).unwrap();
    let credential: Vec<&str> = registry.credential_keys().iter().map(|k| k.as_str()).collect();
    assert_eq!(credential, ["AGENT_KEY", "SHARED_KEY", "VENDOR_A_KEY", "VENDOR_B_KEY", "WSD_LLM_USAGE_TOKEN"]);
    let routing: Vec<&str> = registry.routing_keys().iter().map(|k| k.as_str()).collect();
    assert_eq!(routing, ["AGENT_BASE_URL"]);
    assert_eq!(registry.platform_provider().name, "platform");
}

#[test]
fn the_embedded_registry_has_every_promised_provider_and_runtime() {
    let registry = Registry::from_yaml(EMBEDDED_REGISTRY_YAML).unwrap();
    for name in [
        "anthropic-api",
        "anthropic-oauth",
        "openai-api",
        "openai-subscription",
        "minimax",
        "minimax-cn",
        "moonshot",
        "kimi-coding",
        "zai",
        "deepseek",
        "google",
        "openrouter",
        "groq",
        "platform",
    ] {
        assert!(registry.provider(name).is_some(), "provider {name} missing");
    }
    for name in ["claude-code", "codex", "hermes", "openclaw"] {
        assert!(registry.runtime(name).is_some(), "runtime {name} missing");
    }
    let claude = registry.runtime("claude-code").unwrap();
    assert_eq!(claude.hardening_env.get("DISABLE_TELEMETRY").map(String::as_str), Some("1"));
    assert_eq!(claude.hardening_env.get("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC").map(String::as_str), Some("1"));
    // Every provider's keys are LLM credential keys: a new provider can never be forgotten by the strip.
    for provider in registry.providers() {
        for key in &provider.auth_env {
            assert!(registry.is_credential_key(key), "{key}");
        }
    }
}

#[test]
fn unknown_keys_are_refused() {
    assert_refused(
        &with("    upstream_vendor: a\n", "    upstream_vendor: a\n    endpoint_vars: {}\n"),
        &["unknown field `endpoint_vars`"],
    );
    assert_refused(&with("schema_version: 1\n", "schema_version: 1\nwithdrawn_models: []\n"), &["unknown field `withdrawn_models`"]);
}

#[test]
fn an_unknown_schema_version_is_refused_for_its_version() {
    let e = Registry::from_yaml(&with("schema_version: 1", "schema_version: 2\nnew_field: x")).unwrap_err();
    assert_eq!(e, RegistryError::UnsupportedSchemaVersion { found: 2 });
    assert!(e.to_string().contains("schema_version 2 is not supported"));
    assert_refused("providers: []\n", &["missing field `schema_version`"]);
    assert_refused("not: [yaml", &["not a valid document"]);
}

#[test]
fn regexes_must_compile() {
    assert_refused(&with("'^a-'", "'^a-('"), &["providers[0] (vendor-a).model_match: regex does not compile"]);
}

#[test]
fn runtimes_must_refer_to_known_providers_once() {
    assert_refused(
        &with("      - name: vendor-b\n", "      - name: vendor-c\n"),
        &["runtimes.agent.providers.vendor-c: unknown provider `vendor-c`"],
    );
    assert_refused(
        &with("      - name: vendor-b\n", "      - name: vendor-a\n"),
        &["runtimes.agent.providers.vendor-a: provider is listed twice"],
    );
}

#[test]
fn upstream_vendor_is_unique() {
    assert_refused(
        &with("    model_match: '^b-'\n", "    model_match: '^b-'\n    upstream_vendor: a\n"),
        &["providers[1] (vendor-b).upstream_vendor: `a` is already the upstream_vendor of provider `vendor-a`"],
    );
}

#[test]
fn exactly_one_platform_provider() {
    assert_refused(&with("    platform: true\n", ""), &["auth_mode"]);
    let none = with("    auth_mode: platform\n    platform: true\n", "    auth_mode: api_key\n");
    assert_refused(&none, &["exactly one provider must be the platform arm; there is none", "reserved for the platform arm"]);
    let two = with(
        "    auth_mode: api_key\n    auth_env: [VENDOR_B_KEY]",
        "    auth_mode: platform\n    platform: true\n    auth_env: [VENDOR_B_KEY]",
    );
    assert_refused(&two, &["found vendor-b, platform", "provider `vendor-b`.platform: the platform arm must be named `platform`"]);
}

#[test]
fn the_model_overlap_guard_runs_at_load() {
    // Two providers list the same id and share an accepted key: nothing could tell them apart.
    let exact = with("      - name: vendor-b\n", "      - name: vendor-b\n        models: [a-1]\n")
        .replace("[VENDOR_B_KEY]", "[VENDOR_B_KEY, SHARED_KEY]");
    assert_refused(
        &exact,
        &["runtimes.agent.providers: model `a-1` is listed under both `vendor-a` and `vendor-b`, whose auth_env share SHARED_KEY"],
    );
    // Overlapping patterns over a known id.
    let pattern = with("'^b-'", "'^(a|b)-'").replace("[VENDOR_B_KEY]", "[VENDOR_B_KEY, SHARED_KEY]");
    let registry_with_alias = pattern.replacen("    upstream_vendor: a\n", "    upstream_vendor: a\n    model_aliases: [a-2]\n", 1);
    assert_refused(&registry_with_alias, &["model `a-2` is matched by the model_match of both `vendor-a` and `vendor-b`"]);
    // Disjoint auth env separates them: allowed.
    let separated = with("      - name: vendor-b\n", "      - name: vendor-b\n        models: [a-1]\n");
    assert!(Registry::from_yaml(&separated).is_ok());
}

#[test]
fn a_runtime_provider_needs_a_base_url_for_the_runtime_protocol() {
    let yaml = with("    base_url_anthropic: https://b.example\n", "    base_url_openai: https://b.example\n");
    assert_refused(&yaml, &["runtimes.agent.providers.vendor-b: provider `vendor-b` has no base_url_anthropic"]);
}

#[test]
fn projections_must_be_read_by_the_runtime() {
    assert_refused(
        &with("key_env: AGENT_KEY,", "key_env: OTHER_KEY,"),
        &["runtimes.agent.projection.key_env: OTHER_KEY is not in credential_precedence"],
    );
    assert_refused(&with("base_url_env: AGENT_BASE_URL }", "base_url_env: OTHER_URL }"), &["runtimes.agent.projection.base_url_env"]);
}

#[test]
fn field_values_are_checked() {
    assert_refused(&with("auth_env: [VENDOR_B_KEY]", "auth_env: []"), &["providers[1] (vendor-b).auth_env: must list at least one"]);
    assert_refused(&with("auth_env: [VENDOR_B_KEY]", "auth_env: [vendor_b_key]"), &["must match ^[A-Z_][A-Z0-9_]*$"]);
    assert_refused(&with("auth_env: [VENDOR_B_KEY]", "auth_env: [VENDOR_B_KEY, VENDOR_B_KEY]"), &["VENDOR_B_KEY is listed twice"]);
    assert_refused(&with("https://b.example", "ftp://b.example"), &["base_url_anthropic: `ftp://b.example` is not an http(s) URL"]);
    assert_refused(
        &with("name: vendor-b\n    display_name: Vendor B", "name: Vendor_B\n    display_name: ''"),
        &["(Vendor_B).name: must be lower-case", "(Vendor_B).display_name: must not be empty"],
    );
    assert_refused(
        &with("- name: vendor-b\n    display_name", "- name: vendor-a\n    display_name"),
        &["provider `vendor-a` is declared twice"],
    );
    assert_refused(&with("models: [a-1]", "models: [a-1, a-1]"), &["model id `a-1` is listed twice"]);
    assert_refused(&with("models: [a-1]", "models: [' a-1']"), &["surrounding whitespace"]);
    assert_refused(
        &with("protocol: anthropic\n    auth_mode: api_key", "protocol: grpc\n    auth_mode: api_key"),
        &["unknown variant `grpc`"],
    );
    assert_refused(
        &with("      - - { env: AGENT_KEY, sent_as: \"x-api-key\" }\n", "      - []\n"),
        &["credential_precedence: must list at least one tier"],
    );
    assert_refused(&with("{ env: AGENT_KEY, sent_as", "{ file: /etc/passwd, sent_as"), &["must be a relative path"]);
    assert_refused(&with("{ env: AGENT_KEY, sent_as", "{ env: AGENT_KEY, file: x, sent_as"), &["exactly one of `env` or `file`"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = with("'^a-'", "'('").replace("name: vendor-b\n        models", "name: nope\n        models").replacen(
        "      - name: vendor-b\n",
        "      - name: missing\n",
        1,
    );
    let message = issues_of(&yaml);
    assert!(message.contains("model_match") && message.contains("unknown provider `missing`"), "{message}");
}

#[test]
fn upstream_vendor_is_a_single_namespace_token() {
    for bad in ["a/b", "a:b", "''"] {
        assert_refused(
            &with("upstream_vendor: a\n", &format!("upstream_vendor: {bad}\n")),
            &["(vendor-a).upstream_vendor: must be a non-empty token"],
        );
    }
}

#[test]
fn credential_files_stay_inside_the_workspace_home() {
    for bad in ["../secrets", "a/../../b", "a//b", "/etc/x"] {
        let yaml = with("{ env: AGENT_KEY, sent_as", &format!("{{ env: AGENT_KEY, sent_as: x }}\n        - {{ file: '{bad}', sent_as"));
        assert_refused(&yaml, &["must be a relative path inside the workspace home"]);
    }
    let ok = with("{ env: AGENT_KEY, sent_as", "{ env: AGENT_KEY, sent_as: x }\n        - { file: .agent/login.json, sent_as");
    assert!(Registry::from_yaml(&ok).is_ok());
}

#[test]
fn a_config_file_projection_needs_its_login_file_in_the_precedence() {
    let codex_like = |login: &str| {
        with(
            "    projection: { kind: env, key_env: AGENT_KEY, base_url_env: AGENT_BASE_URL }\n",
            &format!("    projection: {{ kind: codex_config, path: .agent/config.toml, login_file: {login} }}\n"),
        )
        .replacen(
            "      - - { env: AGENT_KEY, sent_as: \"x-api-key\" }\n",
            "      - - { env: AGENT_KEY, sent_as: \"x-api-key\" }\n      - - { file: .agent/auth.json, sent_as: login }\n",
            1,
        )
    };
    assert!(Registry::from_yaml(&codex_like(".agent/auth.json")).is_ok());
    assert_refused(
        &codex_like(".agent/other.json"),
        &["runtimes.agent.projection.login_file: `.agent/other.json` is not a file credential"],
    );
    let bad_path = codex_like(".agent/auth.json").replace("path: .agent/config.toml", "path: /etc/config.toml");
    assert_refused(&bad_path, &["runtimes.agent.projection.path: `/etc/config.toml` must be a relative path"]);
}

#[test]
fn fixed_settings_cannot_be_credential_or_base_url_envs() {
    for key in ["AGENT_KEY", "AGENT_BASE_URL"] {
        let yaml =
            with("    base_url_env: AGENT_BASE_URL\n", &format!("    base_url_env: AGENT_BASE_URL\n    hardening_env: {{ {key}: '1' }}\n"));
        assert_refused(&yaml, &[&format!("runtimes.agent.hardening_env: {key} is a credential or base-URL env")]);
        let yaml = with("    base_url_env: AGENT_BASE_URL\n", &format!("    base_url_env: AGENT_BASE_URL\n    model_env: [{key}]\n"));
        assert_refused(&yaml, &[&format!("{key} is a credential or base-URL env")]);
    }
    let yaml = with(
        "    base_url_env: AGENT_BASE_URL\n",
        "    base_url_env: AGENT_BASE_URL\n    hardening_env: { AGENT_TELEMETRY: '0' }\n    model_env: [AGENT_MODEL]\n",
    );
    assert!(Registry::from_yaml(&yaml).is_ok());
}

#[test]
fn operator_overrides_replace_base_urls_of_known_providers_only() {
    use std::collections::BTreeMap;
    use wsd_core::registry::ProviderOverride;
    let registry = Registry::embedded().unwrap();
    let overlay = |openai: Option<&str>, anthropic: Option<&str>| ProviderOverride {
        base_url_openai: openai.map(str::to_owned),
        base_url_anthropic: anthropic.map(str::to_owned),
    };
    let overrides = BTreeMap::from([("minimax".to_owned(), overlay(None, Some("http://127.0.0.1:9000/anthropic")))]);
    let patched = registry.with_overrides(&overrides).unwrap();
    let minimax = patched.provider("minimax").unwrap();
    assert_eq!(minimax.base_url_anthropic.as_deref(), Some("http://127.0.0.1:9000/anthropic"));
    assert_eq!(minimax.base_url_openai.as_deref(), Some("https://api.minimax.io/v1"));
    assert_eq!(registry.provider("minimax").unwrap().base_url_anthropic.as_deref(), Some("https://api.minimax.io/anthropic"));

    let patched = registry.with_overrides(&BTreeMap::from([("groq".to_owned(), overlay(Some("http://127.0.0.1:1/v1"), None))])).unwrap();
    assert_eq!(patched.provider("groq").unwrap().base_url_openai.as_deref(), Some("http://127.0.0.1:1/v1"));

    let bad =
        BTreeMap::from([("nope".to_owned(), overlay(None, None)), ("minimax".to_owned(), overlay(Some("ftp://x"), Some("file:///y")))]);
    let e = registry.with_overrides(&bad).unwrap_err().to_string();
    for needle in [
        "registry.overrides.nope: unknown provider `nope`",
        "registry.overrides.minimax.base_url_openai: `ftp://x`",
        "registry.overrides.minimax.base_url_anthropic: `file:///y`",
    ] {
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
}

/// `docs/registry.md` documents the format: every field the parser accepts is named there.
#[test]
fn the_registry_format_document_names_every_field() {
    let raw = include_str!("../../src/registry/raw.rs");
    let doc = include_str!("../../../../docs/registry.md");
    let field = regex::Regex::new(r"(?m)^\s+(?:pub )?([a-z][a-z_]*): ").unwrap();
    let fields: Vec<&str> = field.captures_iter(raw).map(|c| c.get(1).unwrap().as_str()).collect();
    assert!(fields.len() > 25, "the parser's fields were found: {fields:?}");
    for name in fields {
        assert!(doc.contains(&format!("`{name}`")), "docs/registry.md does not document `{name}`");
    }
    assert!(doc.contains("`schema_version`"));
}

#[test]
fn verified_versions_are_single_words_listed_once() {
    let ok = Registry::from_yaml(&with("        models: [a-1]\n", "        models: [a-1]\n        verified_on: [\"1.2.3\", \"1.3.0\"]\n"))
        .unwrap();
    let agent = ok.runtime("agent").unwrap();
    assert_eq!(ok.verified_on(agent, "vendor-a"), ["1.2.3", "1.3.0"]);
    assert!(ok.verified_on(agent, "vendor-b").is_empty(), "a pair without verified_on is unverified");
    assert!(ok.verified_on(agent, "nobody").is_empty(), "a provider the runtime does not run on is unverified");
    for (versions, needle) in [
        ("[\"\"]", "verified_on version `` is empty or holds whitespace"),
        ("[\"1.2 beta\"]", "verified_on version `1.2 beta` is empty or holds whitespace"),
        ("[\"1.2.3\", \"1.2.3\"]", "verified_on version `1.2.3` is listed twice"),
    ] {
        let yaml = with("        models: [a-1]\n", &format!("        models: [a-1]\n        verified_on: {versions}\n"));
        assert_refused(&yaml, &["runtimes.agent", "providers.vendor-a", needle]);
    }
}

#[test]
fn routes_and_blank_files_are_checked() {
    let route = |body: &str| with("        models: [a-1]\n", &format!("        models: [a-1]\n        route:\n{body}"));
    let ok = Registry::from_yaml(&route(
        "          protocol: anthropic\n          credential_precedence:\n            - - { env: VENDOR_A_KEY, sent_as: \"x-api-key\" }\n          base_url_env: VENDOR_A_BASE\n          key_env: VENDOR_A_KEY\n          settings: { AGENT_PROVIDER: a }\n",
    ))
    .unwrap();
    // The route's variables are credential and routing names like any other.
    assert!(ok.is_routing_key(&wsd_core::EnvKey::new("VENDOR_A_BASE").unwrap()));
    let agent = ok.runtime("agent").unwrap();
    let routed = ok.runtime_for(agent, "vendor-a");
    assert_eq!(routed.base_url_env.as_ref().map(|k| k.as_str()), Some("VENDOR_A_BASE"));
    assert_eq!(routed.route_settings.get(&wsd_core::EnvKey::new("AGENT_PROVIDER").unwrap()).map(String::as_str), Some("a"));
    assert!(!routed.bare_model_id);
    assert_eq!(
        ok.runtime_for(agent, "vendor-b").base_url_env.as_ref().map(|k| k.as_str()),
        Some("AGENT_BASE_URL"),
        "no route: the runtime's own"
    );

    for (body, needle) in [
        (
            "          credential_precedence:\n            - - { env: VENDOR_A_KEY, sent_as: \"x-api-key\" }\n          base_url_env: VENDOR_A_BASE\n          key_env: OTHER_KEY\n",
            "OTHER_KEY is not in the route's credential_precedence",
        ),
        (
            "          credential_precedence:\n            - - { env: VENDOR_A_KEY, sent_as: \"x-api-key\" }\n          base_url_env: VENDOR_A_BASE\n          key_env: VENDOR_A_KEY\n          settings: { VENDOR_A_BASE: x }\n",
            "VENDOR_A_BASE is a credential or the base-URL env of this route",
        ),
        (
            "          credential_precedence:\n            - - { env: VENDOR_A_KEY, sent_as: \"x-api-key\" }\n          base_url_env: VENDOR_A_BASE\n          key_env: VENDOR_A_KEY\n          settings: { VENDOR_A_KEY: x }\n",
            "VENDOR_A_KEY is a credential or the base-URL env of this route",
        ),
        (
            "          credential_precedence: []\n          base_url_env: VENDOR_A_BASE\n          key_env: VENDOR_A_KEY\n",
            "credential_precedence must list at least one tier",
        ),
        (
            "          protocol: openai\n          credential_precedence:\n            - - { env: VENDOR_A_KEY, sent_as: \"x-api-key\" }\n          base_url_env: VENDOR_A_BASE\n          key_env: VENDOR_A_KEY\n",
            "provider `vendor-a` has no base_url_openai",
        ),
    ] {
        assert_refused(&route(body), &["runtimes.agent", needle]);
    }

    let blank = |files: &str| {
        with("    providers:\n      - name: vendor-a\n", &format!("    blank_files: {files}\n    providers:\n      - name: vendor-a\n"))
    };
    let ok = Registry::from_yaml(&blank("[.agent/.env]")).unwrap();
    assert_eq!(ok.runtime("agent").unwrap().blank_files, [".agent/.env"]);
    for (files, needle) in [
        ("[/etc/passwd]", "`/etc/passwd` must be a relative path"),
        ("[../x]", "`../x` must be a relative path"),
        ("[.env, .env]", "`.env` is listed twice"),
    ] {
        assert_refused(&blank(files), &["runtimes.agent", "blank_files", needle]);
    }
    for file in [".codex/auth.json", ".codex/config.toml"] {
        let yaml = EMBEDDED_REGISTRY_YAML.replacen(
            "    projection:
      kind: codex_config",
            &format!(
                "    blank_files: [{file}]
    projection:
      kind: codex_config"
            ),
            1,
        );
        assert_refused(&yaml, &["runtimes.codex", &format!("`{file}` is a credential or configuration file of this runtime")]);
    }
}

#[test]
fn an_openclaw_config_projection_speaks_the_surface_each_provider_has() {
    let openclaw_like = |protocol: &str| {
        with(
            "    projection: { kind: env, key_env: AGENT_KEY, base_url_env: AGENT_BASE_URL }\n",
            "    projection: { kind: openclaw_config, path: .agent/agent.json }\n",
        )
        .replacen("    protocol: anthropic\n    model_ids", &format!("    protocol: {protocol}\n    model_ids"), 1)
    };
    // The providers serve only the Anthropic surface: an OpenAI-speaking runtime that names
    // the API kind in its file reaches them there.
    let registry = Registry::from_yaml(&openclaw_like("openai")).unwrap();
    let agent = registry.runtime("agent").unwrap();
    assert_eq!(registry.runtime_for(agent, "vendor-a").protocol, wsd_core::registry::Protocol::Anthropic);
    assert_eq!(registry.runtime_for(agent, "platform").protocol, wsd_core::registry::Protocol::Openai);
    assert!(matches!(registry.runtime_for(agent, "platform"), std::borrow::Cow::Borrowed(_)));
    // With env projection the same runtime would send the key to its default endpoint.
    let env_only = MINIMAL.replacen("    protocol: anthropic\n    model_ids", "    protocol: openai\n    model_ids", 1);
    assert_refused(&env_only, &["provider `vendor-a` has no base_url_openai for this openai-protocol runtime"]);
    // A provider with no surface at all is refused either way.
    let no_url = openclaw_like("openai").replace("    base_url_anthropic: https://b.example\n", "");
    assert_refused(&no_url, &["runtimes.agent.providers.vendor-b: provider `vendor-b` has no base_url_"]);
    assert_refused(
        &openclaw_like("anthropic").replace("path: .agent/agent.json", "path: ../agent.json"),
        &["runtimes.agent.projection.path: `../agent.json` must be a relative path"],
    );
    let login = openclaw_like("anthropic").replacen(
        "    auth_mode: api_key\n    auth_env: [VENDOR_B_KEY]",
        "    auth_mode: oauth\n    auth_env: [VENDOR_B_KEY]",
        1,
    );
    assert_refused(&login, &["runtimes.agent.providers.vendor-b: provider `vendor-b` authenticates with a login"]);
    // The file it writes cannot also be blanked.
    let blank = openclaw_like("anthropic")
        .replace("    providers:\n      - name: vendor-a", "    blank_files: [.agent/agent.json]\n    providers:\n      - name: vendor-a");
    assert_refused(&blank, &["runtimes.agent.blank_files: `.agent/agent.json` is a credential or configuration file"]);
}

#[test]
fn side_model_settings_are_checked() {
    let side = |list: &str| {
        with("    base_url_env: AGENT_BASE_URL\n", &format!("    base_url_env: AGENT_BASE_URL\n    side_model_env: [{list}]\n"))
    };
    let registry = Registry::from_yaml(&side("AGENT_SMALL_MODEL")).unwrap();
    let agent = registry.runtime("agent").unwrap();
    assert_eq!(registry.side_model_env(agent, "vendor-a"), [wsd_core::EnvKey::new("AGENT_SMALL_MODEL").unwrap()]);
    assert_refused(&side("AGENT_SMALL_MODEL, AGENT_SMALL_MODEL"), &["runtimes.agent.side_model_env"]);
    assert_refused(&side("AGENT_KEY"), &["AGENT_KEY is a credential or base-URL env"]);
    let both = side("AGENT_MODEL").replacen("    side_model_env:", "    model_env: [AGENT_MODEL]\n    side_model_env:", 1);
    assert_refused(&both, &["runtimes.agent.side_model_env: AGENT_MODEL is also in model_env or hardening_env"]);
    let hardened = side("AGENT_MODEL").replacen("    side_model_env:", "    hardening_env: { AGENT_MODEL: x }\n    side_model_env:", 1);
    assert_refused(&hardened, &["AGENT_MODEL is also in model_env or hardening_env"]);

    let own = |yaml: String| {
        yaml.replacen(
            "      - name: vendor-a\n        models: [a-1]\n",
            "      - name: vendor-a\n        models: [a-1]\n        own_side_models: true\n",
            1,
        )
    };
    let registry = Registry::from_yaml(&own(side("AGENT_SMALL_MODEL"))).unwrap();
    let agent = registry.runtime("agent").unwrap();
    assert!(registry.side_model_env(agent, "vendor-a").is_empty());
    assert_eq!(registry.side_model_env(agent, "vendor-b"), [wsd_core::EnvKey::new("AGENT_SMALL_MODEL").unwrap()]);
    assert_refused(
        &own(MINIMAL.to_owned()),
        &["runtimes.agent.providers.vendor-a: own_side_models is set but the runtime has no side_model_env"],
    );
}

#[test]
fn the_price_book_holds_the_cited_prices_and_unknowns_stay_unknown() {
    use wsd_core::prices::{Cost, TokenCounts};
    let registry = Registry::embedded().unwrap();
    let prices = registry.prices();
    let million = |input, output, cache_read, cache_write| TokenCounts { input, output, cache_read, cache_write };
    assert_eq!(prices.cost("claude-opus-4-8", &million(1_000_000, 1_000_000, 1_000_000, 1_000_000)), Cost::Known { micros: 36_750_000 });
    assert_eq!(prices.cost("MiniMax-M2.7", &million(1_000_000, 0, 0, 0)), Cost::Known { micros: 300_000 });
    assert_eq!(prices.cost("gpt-5.4-mini", &million(0, 0, 1_000_000, 0)), Cost::Known { micros: 75_000 });
    // No source gives OpenAI a cache-write price, nor a per-token price for a subscription.
    assert_eq!(prices.cost("gpt-5.5", &million(1, 1, 1, 1)), Cost::Unknown);
    assert_eq!(prices.cost("kimi-for-coding", &million(1, 0, 0, 0)), Cost::Unknown);
    // Long prompts cost more where the vendor says so.
    assert_eq!(prices.cost("gpt-5.5", &million(272_001, 0, 0, 0)), Cost::Known { micros: 2_720_010 });
    assert!(prices.models().count() >= 40);
}

#[test]
fn prices_are_checked_and_every_bad_one_named() {
    let priced = |entry: &str| format!("{MINIMAL}prices:\n  a-1: {entry}\n");
    let registry = Registry::from_yaml(&priced("{ input: 1.5, output: 2 }")).unwrap();
    assert_eq!(registry.prices().get("a-1").unwrap().base.input, Some(1_500_000));
    assert_refused(
        &priced("{ input: -1, long_prompt: { above: 10, output: 1e9 } }"),
        &["prices.a-1.input: -1 is not a price", "prices.a-1.long_prompt.output: 1000000000 is not a price"],
    );
    assert!(issues_of(&priced("{ inptu: 1 }")).contains("unknown field `inptu`"));
    assert!(issues_of(&format!("{MINIMAL}prices:\n  ' a-1': {{ input: 1 }}\n")).contains("prices. a-1: a model id must not be empty"));

    use wsd_core::prices::PriceEntry;
    let overrides = std::collections::BTreeMap::from([
        ("a-1".to_owned(), PriceEntry { output: Some(3.0), ..PriceEntry::default() }),
        ("own-model".to_owned(), PriceEntry { input: Some(0.5), ..PriceEntry::default() }),
    ]);
    let overlaid = registry.with_prices(&overrides).unwrap();
    let a1 = overlaid.prices().get("a-1").unwrap().base;
    assert_eq!((a1.input, a1.output), (Some(1_500_000), Some(3_000_000)));
    assert_eq!(overlaid.prices().get("own-model").unwrap().base.input, Some(500_000));
    let bad = std::collections::BTreeMap::from([("x".to_owned(), PriceEntry { cache_read: Some(-2.0), ..PriceEntry::default() })]);
    let e = registry.with_prices(&bad).unwrap_err().to_string();
    assert!(e.contains("prices.x.cache_read: -2 is not a price"), "{e}");
}

#[test]
fn a_runtime_says_what_its_cli_needs_beside_it() {
    let registry = Registry::embedded().unwrap();
    assert!(registry.runtime("openclaw").unwrap().requires.as_deref().is_some_and(|r| r.starts_with("Node.js >= 24")));
    assert_eq!(registry.runtime("claude-code").unwrap().requires, None);
    let blank = with("    display_name: Agent\n", "    display_name: Agent\n    requires: '  '\n");
    assert_eq!(Registry::from_yaml(&blank).unwrap().runtime("agent").unwrap().requires, None);
}

/// The header a provider takes its key in: the one its runtimes send its `auth_token_env`
/// in, else the protocol's usual one.
#[test]
fn each_provider_takes_its_key_in_the_header_its_runtimes_send_it_in() {
    use wsd_core::registry::{KeyHeader, Protocol};
    let registry = Registry::embedded().unwrap();
    let provider = |name: &str| registry.provider(name).unwrap().clone();
    // claude-code sends ANTHROPIC_AUTH_TOKEN as a bearer token, ANTHROPIC_API_KEY as x-api-key.
    assert_eq!(registry.key_header(&provider("minimax"), Protocol::Anthropic), KeyHeader::Bearer);
    assert_eq!(registry.key_header(&provider("moonshot"), Protocol::Anthropic), KeyHeader::Bearer);
    assert_eq!(registry.key_header(&provider("anthropic-api"), Protocol::Anthropic), KeyHeader::ApiKey);
    assert_eq!(registry.key_header(&provider("openai-api"), Protocol::Openai), KeyHeader::Bearer);
    assert_eq!(registry.key_header(&provider("minimax"), Protocol::Openai), KeyHeader::Bearer);
    // A provider whose token no runtime sends: the protocol's usual header.
    let unsent = wsd_core::registry::Provider { auth_token_env: None, ..provider("minimax") };
    assert_eq!(registry.key_header(&unsent, Protocol::Anthropic), KeyHeader::ApiKey);
    assert_eq!(registry.key_header(&unsent, Protocol::Openai), KeyHeader::Bearer);
    assert_eq!((KeyHeader::Bearer.as_str(), KeyHeader::ApiKey.as_str()), ("Authorization: Bearer", "x-api-key"));
}
