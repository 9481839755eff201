//! `wsd runtime verify`: runs a runtime's real CLI, once per case of the verification
//! matrix, with no network but loopback, and reports whether it sent exactly the planned
//! credential to exactly the planned endpoint with the planned model (`wsd-verify`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::Failure;
use crate::input::load_registry;

#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Verify a runtime's profile against its real, installed CLI.
    ///
    /// For each provider the runtime declares (and the platform), plans a workspace with the
    /// right key among stray credentials, runs the CLI with exactly that plan — canary
    /// values for every secret, every provider a recording fake on loopback, any other host
    /// behind an intercepting proxy — and reports which credential reached which endpoint
    /// with which model. The CLI runs in a network namespace of its own (bubblewrap): it
    /// can reach nothing but the fakes. Put the CLI (and what it runs on, e.g. Node) on PATH.
    ///
    /// Exit status: 0 every case of a pair the registry claims verified on this CLI
    /// version did what its plan says, 1 one did not (the output names it and what was
    /// sent where) or no pair is claimed, 2 bad usage. Pairs the registry does not claim
    /// are run and reported too (`*`); the planner refuses them by default.
    ///
    /// Examples:
    ///   wsd runtime verify claude-code
    ///   wsd runtime verify codex --cli ~/.local/bin/codex --only minimax
    ///   wsd runtime verify openclaw --only minimax,openai-api,platform
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The runtime to verify (see `wsd registry show`).
    runtime: String,
    /// The CLI to run instead of the runtime's own program on PATH.
    #[arg(long, value_name = "PATH")]
    cli: Option<PathBuf>,
    /// Only the cases of these providers (or case labels), comma-separated.
    #[arg(long, value_name = "PROVIDER,...", value_delimiter = ',')]
    only: Vec<String>,
    /// The longest one case may run, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: crate::RegistrySource,
    /// Where the CLI (and what it runs on, e.g. Node) is found.
    #[arg(long = "cli-path", value_name = "DIRS", env = "PATH", hide_env_values = true, default_value = "/usr/local/bin:/usr/bin:/bin")]
    path: String,
    /// Running inside the network namespace already.
    #[arg(long, hide = true)]
    confined: bool,
    /// The whole command to run instead of the runtime's own (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn run(command: RuntimeCommand) -> Result<(), Failure> {
    let RuntimeCommand::Verify(args) = command;
    if args.confined { verify(args) } else { confine(&args) }
}

/// What of the host's `/tmp` the confined run must still see: wsd itself, the CLI, the
/// registry file and the CLI's PATH, where they live there.
fn kept_under_tmp(args: &VerifyArgs, exe: &std::path::Path) -> Vec<PathBuf> {
    let tmp = std::path::Path::new("/tmp");
    let mut wanted: Vec<PathBuf> = vec![exe.to_path_buf()];
    wanted.extend(args.cli.iter().cloned());
    wanted.extend(args.registry.registry.iter().cloned());
    wanted.extend(args.command.first().map(PathBuf::from));
    wanted.extend(std::env::split_paths(&args.path));
    let mut kept: Vec<PathBuf> =
        wanted.into_iter().filter_map(|p| p.canonicalize().ok()).filter(|p| p.starts_with(tmp) && p != tmp).collect();
    kept.sort();
    kept.dedup();
    kept
}

/// Runs this same command again inside a network namespace with only loopback, and a pid
/// namespace that ends every process the CLI started when it ends.
fn confine(args: &VerifyArgs) -> Result<(), Failure> {
    let bwrap = ["/usr/bin/bwrap", "/bin/bwrap"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or_else(|| Failure::Usage("wsd runtime verify needs bubblewrap (`bwrap`) to confine the CLI; install it".into()))?;
    let exe = std::env::current_exe().map_err(|e| Failure::Usage(format!("cannot find wsd's own binary: {e}")))?;
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    // The flag goes before any `--` command.
    let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    argv.insert(at, "--confined".into());
    // The homes of the cases live in a scratch directory of this run, the only place the
    // confined run may write.
    let scratch = std::env::temp_dir().join(format!("wsd-verify-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| Failure::Usage(format!("cannot create {}: {e}", scratch.display())))?;
    let mut bwrap = std::process::Command::new(bwrap);
    // The system read-only, no capabilities: the CLI under test can change nothing outside
    // the scratch directory and a `/tmp` of its own (some CLIs write under `/tmp` whatever
    // TMPDIR says), where of the host's only what the run needs is visible.
    bwrap.args(["--unshare-net", "--unshare-pid", "--die-with-parent", "--cap-drop", "ALL"]).args([
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]);
    for path in kept_under_tmp(args, &exe) {
        bwrap.arg("--ro-bind").arg(&path).arg(&path);
    }
    let status =
        bwrap.arg("--bind").arg(&scratch).arg(&scratch).arg("--setenv").arg("TMPDIR").arg(&scratch).arg("--").arg(exe).args(argv).status();
    let _ = std::fs::remove_dir_all(&scratch);
    let status = status.map_err(|e| Failure::Usage(format!("cannot run bwrap: {e}")))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(2) => Err(Failure::Usage("the confined run refused its arguments (above)".into())),
        _ => Err(Failure::Broken),
    }
}

fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let registry = load_registry(args.registry.registry.as_deref())?;
    if registry.runtime(&args.runtime).is_none() {
        return Err(Failure::Usage(format!("unknown runtime `{}`; see `wsd registry show`", args.runtime)));
    }
    let mut argv = if args.command.is_empty() {
        wsd_verify::default_command(&args.runtime)
            .ok_or_else(|| Failure::Usage(format!("no built-in command for runtime `{}`; give one after `--`", args.runtime)))?
    } else {
        args.command.clone()
    };
    if let Some(cli) = &args.cli {
        argv[0] = cli.display().to_string();
    }
    let path = args.path.clone();
    let scratch = std::env::temp_dir().join(format!("wsd-verify-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| Failure::Usage(format!("cannot create {}: {e}", scratch.display())))?;
    let command =
        wsd_verify::Command { argv: argv.clone(), path: path.clone(), timeout: Duration::from_secs(args.timeout.max(1)), scratch };
    let report = crate::block_on_value(async {
        let report = wsd_verify::verify(&registry, &args.runtime, &command, &args.only).await.map_err(Failure::Usage)?;
        Ok(report.with_version(&registry, version(&argv[0], &path).await))
    })?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| Failure::Usage(format!("cannot render JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", report.render());
    }
    if report.holds() { Ok(()) } else { Err(Failure::Broken) }
}

/// The CLI's `--version`, first line.
async fn version(program: &str, path: &str) -> Option<String> {
    // Nothing of the operator's environment but PATH: a CLI under test sees no other value.
    let run = tokio::process::Command::new(program)
        .arg("--version")
        .env_clear()
        .env("PATH", path)
        .env("HOME", std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run).await.ok()?.ok()?;
    String::from_utf8_lossy(&output.stdout).lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned)
}
