//! The `wsd` binary as users and scripts run it: `wsd plan` and `wsd registry …`, their
//! JSON contract (the same as `GET …/plan`), exit codes, and that no secret value is ever printed.

use std::process::{Command, Output};

use serde_json::Value;

const CANARY_OAUTH: &str = "canary-oauth-5f2c1e";
const CANARY_MINIMAX: &str = "canary-minimax-81ad0b";
const CANARY_WORKSPACE: &str = "canary-workspace-3e77aa";

fn wsd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsd")).args(args).env_remove("WSD_REGISTRY").output().expect("run wsd")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn assert_no_canary(output: &Output) {
    let all = text(output);
    for canary in [CANARY_OAUTH, CANARY_MINIMAX, CANARY_WORKSPACE] {
        assert!(!all.contains(canary), "canary {canary} printed:\n{all}");
    }
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(output)))
}

fn oauth() -> String {
    format!("CLAUDE_CODE_OAUTH_TOKEN={CANARY_OAUTH}")
}

fn minimax() -> String {
    format!("MINIMAX_API_KEY={CANARY_MINIMAX}")
}

#[test]
fn plan_json_for_the_minimax_seed_case() {
    let out = wsd(&[
        "plan",
        "--runtime",
        "claude-code",
        "--model",
        "MiniMax-M2.7",
        "--org-secret",
        &oauth(),
        "--org-secret",
        &minimax(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_canary(&out);
    let v = json(&out);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["credential", "decisions", "delivery", "env", "error", "files", "ok", "provider", "routing", "verified_on", "warnings"]
    );
    assert_eq!(v["verified_on"], serde_json::json!(["2.1.197", "2.1.332"]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["routing"], "byok");
    assert_eq!(v["provider"], "minimax");
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["env"]["ANTHROPIC_AUTH_TOKEN"], serde_json::json!({"origin": "projected", "from": "MINIMAX_API_KEY", "value": null}));
    assert_eq!(v["env"]["MINIMAX_API_KEY"], serde_json::json!({"origin": "org", "from": "MINIMAX_API_KEY", "value": null}));
    assert_eq!(
        v["env"]["ANTHROPIC_BASE_URL"],
        serde_json::json!({"origin": "injected", "from": null, "value": "https://api.minimax.io/anthropic"})
    );
    assert!(v["env"].get("CLAUDE_CODE_OAUTH_TOKEN").is_none());
    let stripped: Vec<&Value> = v["decisions"].as_array().unwrap().iter().filter(|d| d["action"] == "stripped").collect();
    assert_eq!(stripped.len(), 1);
    assert_eq!(stripped[0]["key"], "CLAUDE_CODE_OAUTH_TOKEN");
    assert_eq!(stripped[0]["origin"], "org");
}

#[test]
fn plan_json_for_a_platform_workspace() {
    let out = wsd(&[
        "plan",
        "--runtime",
        "claude-code",
        "--model",
        "anthropic/claude-opus-4-7",
        "--org-secret",
        &minimax(),
        "--platform-proxy",
        "http://127.0.0.1:8080/llm",
        "--workspace-id",
        "ws-42",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_canary(&out);
    let v = json(&out);
    assert_eq!(v["routing"], "platform");
    assert_eq!(v["env"]["WSD_LLM_USAGE_TOKEN"], serde_json::json!({"origin": "injected", "from": null, "value": null}));
    assert_eq!(v["env"]["ANTHROPIC_AUTH_TOKEN"]["from"], "WSD_LLM_USAGE_TOKEN");
    assert_eq!(v["env"]["ANTHROPIC_CUSTOM_HEADERS"]["value"], "X-Wsd-Workspace-Id: ws-42");
}

#[test]
fn refused_plan_exits_3_and_says_why() {
    let out = wsd(&[
        "plan",
        "--runtime",
        "claude-code",
        "--model",
        "opus",
        "--org-secret",
        &oauth(),
        "--workspace-secret",
        &format!("ANTHROPIC_AUTH_TOKEN={CANARY_WORKSPACE}"),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_no_canary(&out);
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "ROUTING_PARITY_MISMATCH");
    assert_eq!(v["provider"], "anthropic-oauth");
    assert!(v["error"]["message"].as_str().unwrap().contains("ANTHROPIC_AUTH_TOKEN"));

    for (args, code) in [
        (vec!["--model", "MiniMax-M2.7"], "MISSING_BYOK_CREDENTIAL"),
        (vec!["--model", "anthropic/claude-opus-4-7"], "MISSING_PLATFORM_PROXY"),
        (vec!["--model", "gpt-5.5"], "UNREGISTERED_MODEL_FOR_RUNTIME"),
        (vec!["--model", ""], "MODEL_REQUIRED"),
    ] {
        let mut full = vec!["plan", "--runtime", "claude-code", "--org-secret", "CLAUDE_CODE_OAUTH_TOKEN=x", "--json"];
        full.extend(args);
        let out = wsd(&full);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert_eq!(json(&out)["error"]["code"], code);
    }
    let out = wsd(&["plan", "--runtime", "claude-code", "--model", "opus", "--org-secret", "GITHUB_TOKEN=x", "--json"]);
    assert_eq!(json(&out)["error"]["code"], "FORBIDDEN_TENANT_ENV_KEY");
}

#[test]
fn human_output_shows_routing_provider_and_decisions_without_values() {
    let out = wsd(&["plan", "--runtime", "claude-code", "--model", "MiniMax-M2.7", "--org-secret", &oauth(), "--org-secret", &minimax()]);
    assert_eq!(out.status.code(), Some(0));
    assert_no_canary(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in ["routing:  byok", "provider: minimax", "CLAUDE_CODE_OAUTH_TOKEN", "stripped", "(secret, from MINIMAX_API_KEY)"] {
        assert!(stdout.contains(needle), "{needle:?} not in\n{stdout}");
    }
    let out = wsd(&["plan", "--runtime", "claude-code", "--model", "MiniMax-M2.7", "--org-secret", &oauth()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("REFUSED  MISSING_BYOK_CREDENTIAL"));
}

#[test]
fn credential_delivery_proxy_shows_the_projection_and_the_parity_result() {
    let base = ["plan", "--runtime", "claude-code", "--model", "MiniMax-M2.7", "--credential-delivery", "proxy"];
    let proxied = |extra: &[&str]| {
        let mut args: Vec<String> = base.map(String::from).to_vec();
        args.extend(["--org-secret".to_owned(), minimax(), "--org-secret".to_owned(), oauth()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        wsd(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = proxied(&["--platform-proxy", "http://127.0.0.1:8080/llm"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_canary(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "kept in wsd and sent by its proxy",
        "proxy sends: the org secret MINIMAX_API_KEY as Authorization: Bearer",
        "parity:   the runtime sends the usage token from ANTHROPIC_AUTH_TOKEN as Authorization: Bearer",
        "http://127.0.0.1:8080/llm/anthropic",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in\n{stdout}");
    }
    let v = json(&proxied(&["--platform-proxy", "http://127.0.0.1:8080/llm", "--json"]));
    assert_eq!(v["delivery"]["delivery"], "proxy");
    assert_eq!(v["env"]["ANTHROPIC_AUTH_TOKEN"]["from"], "WSD_LLM_USAGE_TOKEN");
    assert!(v["env"].get("MINIMAX_API_KEY").is_none(), "{v}");
    assert_eq!(v["credential"]["via"], "ANTHROPIC_AUTH_TOKEN");
    // Without a proxy to keep the key behind, refused.
    let out = proxied(&["--json"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["error"]["code"], "CREDENTIAL_PROXY_UNAVAILABLE");
    let out = wsd(&["plan", "--runtime", "codex", "--model", "gpt-5.5", "--credential-delivery", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither `direct` nor `proxy`"), "{}", text(&out));
}

#[test]
fn bad_usage_exits_2_with_a_clear_message_and_no_value() {
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--org-secret".into(), format!("NO_EQUALS_SIGN{CANARY_OAUTH}")], "expected KEY=VALUE"),
        (vec!["--org-secret".into(), format!("lower_case={CANARY_OAUTH}")], "invalid KEY"),
        (vec!["--workspace-secret".into(), "EMPTY=".into()], "value is empty"),
        (vec!["--org-secret".into(), oauth(), "--org-secret".into(), oauth()], "CLAUDE_CODE_OAUTH_TOKEN is given twice"),
        (vec!["--workspace-id".into(), "a b".into()], "--workspace-id"),
        (vec!["--platform-proxy".into(), "127.0.0.1:8080".into()], "not an http(s) URL"),
        (vec!["--registry".into(), "/nonexistent/registry.yaml".into()], "cannot read registry file /nonexistent/registry.yaml"),
    ];
    for (extra, needle) in cases {
        let mut args: Vec<String> = ["plan", "--runtime", "claude-code", "--model", "opus"].map(String::from).to_vec();
        args.extend(extra);
        let out = wsd(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle), "{needle:?} not in {}", text(&out));
        assert_no_canary(&out);
    }
    let out = wsd(&["plan", "--model", "opus"]);
    assert_eq!(out.status.code(), Some(2), "missing --runtime");
}

fn write_registry(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wsd-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn registry_check_names_the_entry_and_field_at_fault() {
    let out = wsd(&["registry", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("embedded registry: OK (14 providers, 4 runtimes"));

    let broken = wsd_core::registry::EMBEDDED_REGISTRY_YAML.replace("model_match: '^groq[:/]'", "model_match: '^groq[('");
    let path = write_registry("broken.yaml", &broken);
    let out = wsd(&["registry", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("providers[12] (groq).model_match: regex does not compile"), "{}", text(&out));

    let unknown = wsd_core::registry::EMBEDDED_REGISTRY_YAML.replacen(
        "    upstream_vendor: anthropic\n",
        "    upstream_vendor: anthropic\n    colour: blue\n",
        1,
    );
    let path = write_registry("unknown.yaml", &unknown);
    let out = wsd(&["registry", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `colour`"), "{}", text(&out));

    // The same file is refused by every command that takes --registry.
    let out = wsd(&["plan", "--runtime", "claude-code", "--model", "opus", "--registry", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn registry_show_and_derive() {
    let out = wsd(&["registry", "show"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("platform (platform arm)") && stdout.contains("claude-code"), "{stdout}");

    let out = wsd(&["registry", "show", "--json"]);
    let v = json(&out);
    assert_eq!(v["providers"].as_array().unwrap().len(), 14);
    assert!(v["credential_keys"].as_array().unwrap().contains(&Value::from("CLAUDE_CODE_OAUTH_TOKEN")));

    let out = wsd(&["registry", "derive", "--runtime", "codex", "--model", "gpt-5.5", "--credential", "OPENAI_API_KEY"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("openai-api (byok)"));

    let out = wsd(&["registry", "derive", "--runtime", "codex", "--model", "gpt-5.5", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["error"]["code"], "AMBIGUOUS_PROVIDER");

    let out = wsd(&["registry", "derive", "--runtime", "codex", "--model", "gpt-5.5", "--credential", "bad-key"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unverified_runtime_provider_pair_is_refused_unless_allowed() {
    // A registry in which OpenClaw on MiniMax was never verified.
    let openclaw = wsd_core::registry::EMBEDDED_REGISTRY_YAML.find("  openclaw:\n").unwrap();
    let (head, tail) = wsd_core::registry::EMBEDDED_REGISTRY_YAML.split_at(openclaw);
    let unverified = format!("{head}{}", tail.replacen("        verified_on: [\"2026.9.6\"]\n", "", 1));
    assert_ne!(unverified, wsd_core::registry::EMBEDDED_REGISTRY_YAML);
    let path = write_registry("unverified.yaml", &unverified);
    let registry = path.to_str().unwrap();
    let args = ["plan", "--registry", registry, "--runtime", "openclaw", "--model", "MiniMax-M2.7", "--org-secret", &minimax(), "--json"];
    let out = wsd(&args);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_no_canary(&out);
    let v = json(&out);
    assert_eq!(v["error"]["code"], "UNVERIFIED_RUNTIME_PROVIDER");
    assert_eq!(v["provider"], "minimax");
    let allowed = wsd(&[&args[..], &["--allow-unverified"]].concat());
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));
    let v = json(&allowed);
    assert_eq!(v["verified_on"], serde_json::json!([]));
    assert!(v["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("has not been verified")), "{v}");
}
