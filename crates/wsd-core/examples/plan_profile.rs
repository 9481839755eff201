//! Runs `plan()` in a loop, for profilers (`valgrind --tool=callgrind`).
use std::collections::BTreeSet;
use wsd_core::plan::{PlatformSettings, Policy, SecretNames, WorkspaceId, WorkspaceSpec};
use wsd_core::{EnvKey, Registry, plan};
fn main() {
    let registry = Registry::embedded().unwrap();
    let mut org: BTreeSet<EnvKey> = [
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
    ]
    .iter()
    .map(|k| EnvKey::new(k).unwrap())
    .collect();
    for i in 0..29 {
        org.insert(EnvKey::new(&format!("ORG_SETTING_{i}")).unwrap());
    }
    let workspace: BTreeSet<EnvKey> = (0..10).map(|i| EnvKey::new(&format!("WORKSPACE_SETTING_{i}")).unwrap()).collect();
    let secrets = SecretNames { org, workspace };
    let settings = PlatformSettings { proxy_base_url: "http://127.0.0.1:8080/llm".into() };
    let ws = WorkspaceSpec {
        id: WorkspaceId::new("ws").unwrap(),
        runtime: "claude-code".into(),
        model: "MiniMax-M2.7".into(),
        delivery: Default::default(),
    };
    let mut n = 0;
    for _ in 0..20000 {
        n += plan(&registry, &ws, &secrets, Some(&settings), &Policy::default()).unwrap().env.len();
    }
    println!("{n}");
}
