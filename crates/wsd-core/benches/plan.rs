//! `plan()` and `derive()` on the shipped registry, for a workspace with 40 org secrets and
//! 10 workspace secrets (a realistic mix of vendor keys, base URLs and ordinary settings).
//!
//! Run: cargo bench -p wsd-core --bench plan

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wsd_core::plan::{PlatformSettings, Policy, SecretNames, WorkspaceId, WorkspaceSpec};
use wsd_core::{EnvKey, Registry, derive, plan};

fn names(prefix: &str, n: usize, extra: &[&str]) -> BTreeSet<EnvKey> {
    let mut set: BTreeSet<EnvKey> = extra.iter().map(|k| EnvKey::new(k).unwrap()).collect();
    let mut i = 0;
    while set.len() < n {
        set.insert(EnvKey::new(&format!("{prefix}_{i}")).unwrap());
        i += 1;
    }
    set
}

fn benches(c: &mut Criterion) {
    let registry = Registry::embedded().unwrap();
    let org_llm = [
        "CLAUDE_CODE_OAUTH_TOKEN",
        "MINIMAX_API_KEY",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "OPENAI_API_KEY",
        "KIMI_API_KEY",
        "GEMINI_API_KEY",
        "OPENROUTER_API_KEY",
        "GROQ_API_KEY",
        "DEEPSEEK_API_KEY",
        "ANTHROPIC_BASE_URL",
    ];
    let secrets =
        SecretNames { org: names("ORG_SETTING", 40, &org_llm), workspace: names("WORKSPACE_SETTING", 10, &["SENTRY_DSN", "DATABASE_URL"]) };
    let settings = PlatformSettings { proxy_base_url: "http://127.0.0.1:8080/llm".into() };
    let policy = Policy::default();
    let workspace = |runtime: &str, model: &str| WorkspaceSpec {
        id: WorkspaceId::new("ws-bench").unwrap(),
        runtime: runtime.into(),
        model: model.into(),
        delivery: Default::default(),
    };

    for (name, ws) in [
        ("plan/byok claude-code MiniMax-M2.7 (40 org + 10 workspace secrets)", workspace("claude-code", "MiniMax-M2.7")),
        ("plan/platform claude-code anthropic/claude-opus-4-7 (40 + 10)", workspace("claude-code", "anthropic/claude-opus-4-7")),
        ("plan/byok codex gpt-5.5 (40 + 10)", workspace("codex", "gpt-5.5")),
    ] {
        if let Err(e) = plan(&registry, &ws, &secrets, Some(&settings), &policy) {
            panic!("{name}: {e}");
        }
        c.bench_function(name, |b| b.iter(|| plan(black_box(&registry), black_box(&ws), black_box(&secrets), Some(&settings), &policy)));
    }

    let available: BTreeSet<EnvKey> = secrets.org.iter().chain(&secrets.workspace).cloned().collect();
    c.bench_function("derive/exact id (claude-code MiniMax-M2.7)", |b| {
        b.iter(|| derive(black_box(&registry), "claude-code", black_box("MiniMax-M2.7"), &available))
    });
    c.bench_function("derive/pattern (hermes openrouter/x)", |b| {
        b.iter(|| derive(black_box(&registry), "hermes", black_box("openrouter/meta/llama"), &available))
    });
}

criterion_group!(plan_benches, benches);
criterion_main!(plan_benches);
