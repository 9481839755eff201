//! Running one case: plan it against a registry whose providers all live in the recording
//! world, give every secret a canary value, start the CLI with exactly the plan's env and
//! files in a fresh home (its egress through the world's proxy), stop it once it has made
//! its model call, and judge what it sent. Meant to run where the only network is loopback
//! (`wsd runtime verify` runs it in a network namespace of its own).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wsd_core::plan::{
    CredentialDelivery, DeliveryChoice, DeliverySetBy, EnvValue, FileContent, PlatformSettings, Policy, SecretNames, WorkspaceId,
    WorkspaceSpec,
};
use wsd_core::registry::ProviderOverride;
use wsd_core::{EnvKey, Registry};

use crate::judge::{Canary, Expectation, Header, Verdict, judge};
use crate::matrix::Case;
use crate::world::World;

/// How long a CLI may run after its first model call (to any host): enough to finish its
/// answer and make what calls follow, not to retry for minutes.
const AFTER_CALL: Duration = Duration::from_secs(4);

/// What became of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The planner refused the workspace: nothing ran.
    Refused { code: String, message: String },
    /// The CLI ran; the verdict says whether it did what the plan said.
    Ran { verdict: Verdict, exit: Option<i32>, timed_out: bool, output_tail: String },
    /// The case could not be run (the CLI did not start, a file could not be written).
    Broken { reason: String },
}

/// A case and its outcome, with what the plan expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseResult {
    pub case: Case,
    pub expected: Option<Expectation>,
    pub outcome: Outcome,
}

impl CaseResult {
    /// A case passes when the CLI did exactly what the plan said, or when the planner
    /// refused a workspace that carried credentials the plan could not use alone.
    pub fn passed(&self) -> bool {
        match &self.outcome {
            Outcome::Ran { verdict, .. } => verdict.pass,
            Outcome::Refused { .. } => !self.case.workspace.is_empty(),
            Outcome::Broken { .. } => false,
        }
    }
}

/// How the CLI is started.
#[derive(Debug, Clone)]
pub struct Command {
    pub argv: Vec<String>,
    /// `PATH` for the CLI (it finds its interpreter there).
    pub path: String,
    /// The longest one case may run.
    pub timeout: Duration,
    /// Where each case's home and output go.
    pub scratch: std::path::PathBuf,
}

fn canary_value(label: &str) -> String {
    let tag: String = label.chars().filter(char::is_ascii_alphanumeric).take(24).collect();
    format!("sk-wsdcanary-{tag}-{}", uuid::Uuid::now_v7().simple())
}

/// The registry with every provider's endpoints in `world`.
fn in_world(registry: &Registry, world: &World) -> Result<Registry, String> {
    let overrides: BTreeMap<String, ProviderOverride> = registry
        .providers()
        .iter()
        .map(|p| {
            let url = |base: &Option<String>| base.as_deref().map(|b| world.provider_url(&p.name, b));
            (p.name.clone(), ProviderOverride { base_url_openai: url(&p.base_url_openai), base_url_anthropic: url(&p.base_url_anthropic) })
        })
        .collect();
    registry.with_overrides(&overrides).map_err(|e| e.to_string())
}

fn keys(names: &[String]) -> Result<std::collections::BTreeSet<EnvKey>, String> {
    names.iter().map(|n| EnvKey::new(n).map_err(|e| format!("{n}: {e}"))).collect()
}

/// Runs `case` with `command`. Must run inside a tokio runtime.
pub async fn run_case(registry: &Registry, runtime: &str, case: &Case, command: &Command) -> CaseResult {
    let broken = |reason: String| CaseResult { case: case.clone(), expected: None, outcome: Outcome::Broken { reason } };
    let world = match World::start().await {
        Ok(world) => world,
        Err(e) => return broken(e),
    };
    let registry = match in_world(registry, &world) {
        Ok(registry) => registry,
        Err(e) => return broken(e),
    };
    let (org, workspace) = match (keys(&case.org), keys(&case.workspace)) {
        (Ok(org), Ok(workspace)) => (org, workspace),
        (Err(e), _) | (_, Err(e)) => return broken(e),
    };
    let spec = WorkspaceSpec {
        id: WorkspaceId::new("verify").expect("a valid id"),
        runtime: runtime.to_owned(),
        model: case.model.clone(),
        delivery: match case.proxied {
            true => DeliveryChoice { delivery: CredentialDelivery::Proxy, set_by: DeliverySetBy::Org },
            false => DeliveryChoice::default(),
        },
    };
    let platform = PlatformSettings { proxy_base_url: format!("http://{}/p/platform/llm", world.addr) };
    let policy = Policy { allow_unverified: true, ..Policy::default() };
    let names = SecretNames { org, workspace };
    let plan = match wsd_core::plan(&registry, &spec, &names, Some(&platform), &policy) {
        Ok(plan) => plan,
        Err(e) => {
            return CaseResult {
                case: case.clone(),
                expected: None,
                outcome: Outcome::Refused { code: e.code().to_string(), message: e.to_string() },
            };
        }
    };

    // Every secret, and the usage token, gets a value no one else has.
    let mut canaries: Vec<Canary> = Vec::new();
    let mut value_of = |value: &EnvValue| -> String {
        let label = value.describe();
        if let Some(c) = canaries.iter().find(|c| c.label == label) {
            return c.value.clone();
        }
        let canary = Canary { value: canary_value(&label), label };
        canaries.push(canary.clone());
        canary.value
    };
    let mut env: Vec<(String, String)> = Vec::new();
    for (key, entry) in &plan.env {
        let value = match &entry.value {
            EnvValue::Literal(text) => text.clone(),
            other => value_of(other),
        };
        env.push((key.to_string(), value));
    }
    let mut files: Vec<(String, String)> = Vec::new();
    for file in &plan.files {
        let content = match &file.content {
            FileContent::Text(text) => text.clone(),
            FileContent::Secret { key, origin } => value_of(&EnvValue::Secret { key: key.clone(), origin: *origin }),
        };
        files.push((file.path.clone(), content));
    }
    // The strays the plan stripped still get canaries: finding one anywhere is a leak.
    for key in names.org.iter() {
        value_of(&EnvValue::Secret { key: key.clone(), origin: wsd_core::plan::SecretOrigin::Org });
    }
    for key in names.workspace.iter() {
        value_of(&EnvValue::Secret { key: key.clone(), origin: wsd_core::plan::SecretOrigin::Workspace });
    }

    let Some(expected) = expectation(&registry, runtime, &plan, &files) else {
        return broken("the plan names no credential or endpoint to check".into());
    };
    let home = command.scratch.join(format!("case-{}", uuid::Uuid::now_v7().simple()));
    if let Err(e) = prepare_home(&home, &files, &world.ca_pem) {
        return broken(format!("cannot prepare the home: {e}"));
    }
    let (exit, timed_out, output_tail) = match run_cli(command, &home, &env, &world).await {
        Ok(ran) => ran,
        Err(e) => return broken(e),
    };
    let verdict = judge(&expected, &canaries, &world.seen());
    let _ = std::fs::remove_dir_all(&home);
    CaseResult { case: case.clone(), expected: Some(expected), outcome: Outcome::Ran { verdict, exit, timed_out, output_tail } }
}

/// What the plan says the CLI sends: its credential, how, where, and the model.
fn expectation(registry: &Registry, runtime: &str, plan: &wsd_core::Plan, files: &[(String, String)]) -> Option<Expectation> {
    let runtime = registry.runtime(runtime)?;
    let runtime = registry.runtime_for(runtime, &plan.provider);
    let credential = plan.credential.as_ref()?;
    let literal = |key: &EnvKey| match plan.env.get(key).map(|e| &e.value) {
        Some(EnvValue::Literal(text)) => Some(text.clone()),
        _ => None,
    };
    // The endpoint: the base URL the runtime reads, a configured provider's, or the
    // file credential's pinned one, or the runtime's default.
    let codex_config = files.iter().find_map(|(path, text)| path.ends_with("config.toml").then_some(text.as_str()));
    let config_value = |name: &str| {
        codex_config?
            .lines()
            .find_map(|line| line.trim().strip_prefix(name)?.trim_start().strip_prefix('=').map(|v| v.trim().trim_matches('"').to_owned()))
    };
    let openclaw = openclaw_default(files);
    let endpoint = openclaw
        .as_ref()
        .map(|(base_url, _)| base_url.clone())
        .or_else(|| runtime.base_url_env.as_ref().and_then(literal))
        .or_else(|| config_value("base_url"))
        .or_else(|| runtime.credential_precedence.iter().flatten().find(|r| r.source == credential.via).and_then(|r| r.endpoint.clone()))
        .unwrap_or_else(|| runtime.default_base_url.clone());
    let model = openclaw
        .map(|(_, model)| model)
        .or_else(|| runtime.model_env.first().and_then(literal))
        .or_else(|| config_value("model"))
        .or_else(|| literal(&EnvKey::new(wsd_core::plan::MODEL_ENV).ok()?))?;
    // An alias of the provider (`sonnet`) is resolved by the CLI itself.
    let alias = registry.provider(&plan.provider).is_some_and(|p| p.model_aliases.contains(&model));
    let model = (!alias).then_some(model);
    Some(Expectation {
        credential: credential.value.describe(),
        header: Header::from_sent_as(&credential.sent_as),
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        model,
    })
}

/// From an OpenClaw `openclaw.json`: the default model's provider's base URL, and the
/// model id sent to it.
fn openclaw_default(files: &[(String, String)]) -> Option<(String, String)> {
    let text = files.iter().find_map(|(path, text)| path.ends_with("openclaw.json").then_some(text))?;
    let config: serde_json::Value = serde_json::from_str(text).ok()?;
    let (provider, model) = config["agents"]["defaults"]["model"]["primary"].as_str()?.split_once('/')?;
    let base_url = config["models"]["providers"][provider]["baseUrl"].as_str()?;
    Some((base_url.to_owned(), model.to_owned()))
}

fn prepare_home(home: &Path, files: &[(String, String)], ca_pem: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(home.join("work"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(home.join("tmp"))?;
    for (path, content) in files {
        let target = home.join(path);
        if let Some(parent) = target.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&target)?;
        std::io::Write::write_all(&mut file, content.as_bytes())?;
    }
    std::fs::write(home.join(".verify-ca.pem"), ca_pem)
}

/// Starts the CLI and waits for it: until it exits, until `AFTER_CALL` after its first
/// model call, or until the case's timeout. Everything it started is killed at the end.
async fn run_cli(command: &Command, home: &Path, env: &[(String, String)], world: &World) -> Result<(Option<i32>, bool, String), String> {
    let (program, args) = command.argv.split_first().ok_or("no command to run")?;
    let output = home.join(".verify-output");
    let log = std::fs::File::create(&output).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let proxy = format!("http://{}", world.addr);
    let ca = home.join(".verify-ca.pem").display().to_string();
    let mut cli = tokio::process::Command::new(program);
    cli.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("HOME", home)
        .env("PATH", &command.path)
        .env("TMPDIR", home.join("tmp"))
        .env("TERM", "dumb")
        .env("CI", "1");
    for name in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        cli.env(name, &proxy);
    }
    for name in ["NO_PROXY", "no_proxy"] {
        cli.env(name, "127.0.0.1,localhost");
    }
    for name in ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] {
        cli.env(name, &ca);
    }
    cli.current_dir(home.join("work")).stdin(std::process::Stdio::null()).stdout(log).stderr(log2).process_group(0).kill_on_drop(true);
    let mut child = cli.spawn().map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let pid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    let started = Instant::now();
    let mut first_call: Option<Instant> = None;
    let (exit, timed_out) = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break (status.code(), false);
        }
        if first_call.is_none() && world.seen().iter().any(crate::judge::is_model_call) {
            first_call = Some(Instant::now());
        }
        if first_call.is_some_and(|at| at.elapsed() > AFTER_CALL) {
            break (None, false);
        }
        if started.elapsed() > command.timeout {
            break (None, true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if let Some(pid) = pid {
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.wait().await;
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    let tail: String = text.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    Ok((exit, timed_out, tail))
}
