//! `wsd`: the command-line entry point. Parses arguments once, runs one command, and maps
//! its outcome to an exit code: 0 success, 3 the planner refused, 2 bad usage or input.

mod admin_token;
mod audit_cmd;
mod client;
mod client_cmd;
mod container_backend;
mod input;
mod keys_cmd;
mod limits_cmd;
mod plan_cmd;
mod process_backend;
mod registry_cmd;
mod runtime_cmd;
mod serve;
mod settings;
mod usage_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// The proxy and the API allocate a little per request on several threads; mimalloc's
/// thread-local free lists make that a third of glibc's cost (BENCHMARKS.md, proxy).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// wsd runs AI coding-agent workspaces and gives each exactly the LLM credential it should
/// have: no more, no other.
#[derive(Debug, Parser)]
#[command(name = "wsd", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dry-run the credential planner for a workspace, offline.
    ///
    /// Shows which provider the model resolves to, whether the workspace is platform-routed
    /// or uses its own key (BYOK), the exact environment it would get, and one decision per
    /// key with its reason. Secret values are never printed; the planner only looks at
    /// their names and where they were set.
    ///
    /// Exit status: 0 a plan was produced, 3 the planner refused (the output says why),
    /// 2 bad usage.
    ///
    /// Example:
    ///   wsd plan --runtime claude-code --model MiniMax-M2.7 \
    ///     --org-secret CLAUDE_CODE_OAUTH_TOKEN=x --org-secret MINIMAX_API_KEY=y
    #[command(verbatim_doc_comment)]
    Plan(plan_cmd::PlanArgs),
    /// Run the wsd server.
    ///
    /// Every setting has a flag and a WSD_* environment variable; flags win.
    Serve(serve::ServeArgs),
    /// Inspect and check the provider registry.
    #[command(subcommand)]
    Registry(registry_cmd::RegistryCommand),
    /// Manage the master keyring: rotate, status, generate.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// The audit log: list an org's events (API), or verify the hash chain (database).
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Agent runtimes: verify a profile against the real CLI.
    #[command(subcommand)]
    Runtime(runtime_cmd::RuntimeCommand),
    /// Orgs (API client: WSD_URL, WSD_TOKEN).
    Org {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client_cmd::OrgCommand,
    },
    /// Org API tokens (API client).
    Token {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client_cmd::TokenCommand,
    },
    /// Org, workspace and platform secrets (API client). Values are read from stdin.
    Secret {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client_cmd::SecretCommand,
    },
    /// Workspaces, their plans and billing modes (API client).
    Ws {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client_cmd::WorkspaceCommand,
    },
    /// Metered LLM usage of platform-routed workspaces (API client).
    Usage {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: usage_cmd::UsageCommand,
    },
    /// Budgets of an org or a workspace, in tokens or USD per day, week or month (API client).
    Budget {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: limits_cmd::BudgetCommand,
    },
    /// Requests and tokens per minute per workspace (API client).
    RateLimit {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: limits_cmd::RateLimitCommand,
    },
}

/// Where the registry comes from: a file, or the one shipped in the binary.
#[derive(Debug, Clone, Args)]
struct RegistrySource {
    /// A registry YAML file to use instead of the embedded one.
    #[arg(long, value_name = "FILE", env = "WSD_REGISTRY")]
    registry: Option<PathBuf>,
}

/// How a command ended, beyond success.
#[derive(Debug)]
enum Failure {
    /// Bad usage or input: exit 2.
    Usage(String),
    /// The planner refused; the command already reported why: exit 3.
    Refused,
    /// A check found a problem and reported it: exit 1.
    Broken,
    /// The server answered with an error: exit 3 for a planner refusal, else 1.
    Api { status: u16, code: String, message: String, planner: bool },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan_cmd::run(args),
        Command::Registry(command) => registry_cmd::run(command),
        Command::Serve(args) => serve::run(args),
        Command::Keys(command) => keys_cmd::run(command),
        Command::Audit(command) => audit_cmd::run(command),
        Command::Runtime(command) => runtime_cmd::run(command),
        Command::Org { connection, command } => client_cmd::org(connection, command),
        Command::Token { connection, command } => client_cmd::token(connection, command),
        Command::Secret { connection, command } => client_cmd::secret(connection, command),
        Command::Ws { connection, command } => client_cmd::workspace(connection, command),
        Command::Usage { connection, command } => usage_cmd::usage(connection, command),
        Command::Budget { connection, command } => limits_cmd::budget(connection, command),
        Command::RateLimit { connection, command } => limits_cmd::rate_limit(connection, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused) => ExitCode::from(3),
        Err(Failure::Broken) => ExitCode::from(1),
        Err(Failure::Api { status, code, message, planner }) => {
            eprintln!("error: {code} (HTTP {status}): {message}");
            ExitCode::from(if planner { 3 } else { 1 })
        }
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs an async command on a small runtime.
fn block_on<F: std::future::Future<Output = Result<(), Failure>>>(future: F) -> Result<(), Failure> {
    block_on_value(future)
}

/// Runs an async computation on a small runtime.
fn block_on_value<T, F: std::future::Future<Output = Result<T, Failure>>>(future: F) -> Result<T, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?
        .block_on(future)
}
