//! The verification harness judged against a CLI whose behaviour is known: `wsd-llm-call`
//! reads `ANTHROPIC_AUTH_TOKEN` before `ANTHROPIC_API_KEY`, as Claude Code does. A profile
//! that says so holds; a profile that claims it reads only `ANTHROPIC_API_KEY` is caught,
//! the case and what was sent where named.

use std::time::Duration;

use wsd_core::Registry;
use wsd_verify::{Command, Outcome};

/// A registry with one runtime, `agent`, whose credential precedence is `precedence`.
fn registry(precedence: &str, key_env: &str) -> Registry {
    let yaml = format!(
        r#"
schema_version: 1
providers:
  - name: vendor-a
    display_name: Vendor A
    protocol: anthropic
    auth_mode: anthropic_compatible
    auth_env: [VENDOR_A_KEY]
    auth_token_env: {key_env}
    base_url_anthropic: https://a.example/anthropic
    model_match: '^a-'
  - name: vendor-b
    display_name: Vendor B
    protocol: anthropic
    auth_mode: api_key
    auth_env: [ANTHROPIC_AUTH_TOKEN]
    base_url_anthropic: https://b.example
    model_match: '^b-'
  - name: platform
    display_name: Platform
    protocol: anthropic
    auth_mode: platform
    platform: true
    auth_env: [WSD_LLM_USAGE_TOKEN]
    model_match: '^p/'
    upstream_vendor: p
runtimes:
  agent:
    display_name: Agent
    protocol: anthropic
    model_ids: vendor
    model_env: [ANTHROPIC_MODEL]
    credential_precedence:
{precedence}
    base_url_env: ANTHROPIC_BASE_URL
    default_base_url: https://default.example
    projection: {{ kind: env, key_env: {key_env}, base_url_env: ANTHROPIC_BASE_URL, workspace_header_env: ANTHROPIC_CUSTOM_HEADERS }}
    providers:
      - name: vendor-a
        models: [a-1]
        verified_on: ["1.0.0"]
      - name: platform
        models: [p/m-1]
        verified_on: ["1.0.0"]
"#
    );
    Registry::from_yaml(&yaml).unwrap()
}

fn command() -> Command {
    let scratch = std::env::temp_dir().join(format!("wsd-verify-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let out = scratch.join("answers/call").display().to_string();
    Command {
        argv: vec![env!("CARGO_BIN_EXE_wsd-llm-call").to_owned(), out],
        path: "/usr/bin:/bin".into(),
        timeout: Duration::from_secs(20),
        scratch,
    }
}

#[tokio::test]
async fn a_true_profile_holds_and_a_false_one_is_caught_naming_the_case() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let truthful = registry(
        "      - - { env: ANTHROPIC_AUTH_TOKEN, sent_as: \"Authorization: Bearer\" }\n        - { env: ANTHROPIC_API_KEY, sent_as: \"x-api-key\" }",
        "ANTHROPIC_AUTH_TOKEN",
    );
    let report = wsd_verify::verify(&truthful, "agent", &command(), &[]).await.unwrap().with_version(&truthful, None);
    let rendered = report.render();
    assert!(report.holds(), "{rendered}");
    let labels: Vec<&str> = report.results.iter().map(|r| r.case.label.as_str()).collect();
    // Every credential of the registry is one the truthful profile says the CLI reads: no
    // workspace strays to try.
    assert_eq!(labels, ["vendor-a", "vendor-a via proxy", "platform"], "{rendered}");
    let Outcome::Ran { verdict, .. } = &report.results[0].outcome else { panic!("{rendered}") };
    assert_eq!(verdict.calls.len(), 1, "{rendered}");
    assert!(verdict.calls[0].contains("/p/vendor-a/anthropic/v1/messages · the org secret VENDOR_A_KEY · a-1"), "{rendered}");
    // With credential delivery `proxy` the CLI sends its usage token to wsd's proxy, and the
    // vendor's key nowhere.
    let Outcome::Ran { verdict, .. } = &report.results[1].outcome else { panic!("{rendered}") };
    assert!(verdict.pass && verdict.calls[0].contains("/p/platform/llm/anthropic/v1/messages · the usage token · a-1"), "{rendered}");
    let Outcome::Ran { verdict, .. } = &report.results[2].outcome else { panic!("{rendered}") };
    assert!(verdict.pass && verdict.calls[0].contains("the usage token · p/m-1"), "{rendered}");
    assert!(rendered.ends_with("3 passed, 0 failed\n"), "{rendered}");

    // The same CLI described as reading only ANTHROPIC_API_KEY: the plan puts the key
    // there and keeps the workspace's ANTHROPIC_AUTH_TOKEN, which the CLI sends instead.
    let false_profile = registry("      - - { env: ANTHROPIC_API_KEY, sent_as: \"x-api-key\" }", "ANTHROPIC_API_KEY");
    let report = wsd_verify::verify(&false_profile, "agent", &command(), &[]).await.unwrap().with_version(&false_profile, None);
    let rendered = report.render();
    assert!(!report.holds(), "{rendered}");
    assert!(rendered.contains("MISMATCH vendor-a + workspace strays"), "{rendered}");
    assert!(rendered.contains("sent the workspace secret ANTHROPIC_AUTH_TOKEN to http://127.0.0.1:"), "{rendered}");
    assert!(rendered.contains("without the org secret VENDOR_A_KEY in x-api-key"), "{rendered}");
    // With proxy delivery no tenant credential stays to be sent instead: that case holds.
    assert!(rendered.ends_with("3 passed, 1 failed\n"), "{rendered}");
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("wsd-verify-test-{}", std::process::id())));
}
