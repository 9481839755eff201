//! `wsd serve`: the HTTP server. Settings are parsed once (flags and their `WSD_*` env
//! equivalents) into `ServeArgs` and passed down; nothing below reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use wsd_core::SecretValue;
use wsd_server::AppState;
use wsd_server::config::ConfigFile;
use wsd_store::{Store, TokenKind};

use crate::Failure;
use crate::input::load_registry;
use crate::settings::StoreSettings;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "WSD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreSettings,
    /// The admin token. When unset, one is generated on the first start and printed once.
    #[arg(long, env = "WSD_ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// A registry YAML file to use instead of the embedded one.
    #[arg(long, value_name = "FILE", env = "WSD_REGISTRY")]
    registry: Option<PathBuf>,
    /// The TOML file for platform routing, registry overlays, backends and policy.
    #[arg(long, env = "WSD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "WSD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

pub fn run(args: ServeArgs) -> Result<(), Failure> {
    let registry = load_registry(args.registry.as_deref())?;
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("cannot read the config file {}: {e}", path.display())))?;
            ConfigFile::parse(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?
        }
        None => ConfigFile::default(),
    };
    let registry = registry
        .with_overrides(&config.registry.overrides)
        .map_err(|e| Failure::Usage(format!("{}: {e}", args.config.as_deref().map(|p| p.display().to_string()).unwrap_or_default())))?;
    init_logging(args.log_format);
    // Every file wsd creates (database, journal, key, workspace logs) is its own alone.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let (store, generated_key) = args.store.open(16).await?;
        if generated_key {
            tracing::info!(data_dir = %args.store.data_dir.display(), "generated a new master key file (mode 0600); back it up");
        }
        ensure_admin_token(&store, args.admin_token.map(SecretValue::new)).await?;
        // The one TLS provider of the process, before any HTTP client is built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut state = AppState::new(registry, store, config.platform_settings(), config.planner_policy());
        state.upstream = Some(wsd_server::proxy::UpstreamClient::new(&config.proxy_settings()).map_err(Failure::Usage)?);
        state.runner = Some(process_runner(&config, &args.store.data_dir)?);
        if config.policy.preflight {
            let timeout = std::time::Duration::from_secs(config.policy.preflight_timeout_seconds.max(1));
            state.preflight = Some(wsd_server::preflight::Preflight::new(timeout).map_err(Failure::Usage)?);
        }
        let taken =
            wsd_server::adopt_running(&state).await.map_err(|e| Failure::Usage(format!("cannot read the running workspaces: {e}")))?;
        if taken.adopted + taken.gone + taken.ended > 0 {
            tracing::info!(
                adopted = taken.adopted,
                exited = taken.gone,
                ended_unrecorded = taken.ended,
                "took over the workspaces a previous run left running"
            );
        }
        serve(args.listen, Arc::new(state), config.server.limits()).await
    })
}

/// The process backend as configured: sandboxed unless the operator says `sandbox =
/// "none"`, each workspace as its own uid when wsd runs as root. A sandbox that cannot be
/// set up leaves the backend unavailable (provisioning answers 503 with the reason); the
/// rest of the server runs.
fn process_runner(config: &ConfigFile, data_dir: &std::path::Path) -> Result<wsd_server::Runner, Failure> {
    let process = config.backends.process.clone().unwrap_or_default();
    let root = process.root.clone().unwrap_or_else(|| data_dir.join("workspaces"));
    let host_uids = process.host_uids(nix::unistd::geteuid().is_root());
    let mut closed = None;
    if host_uids.is_some() {
        open_path_to(&root, data_dir)?;
        closed = closed_ancestor(&root);
    }
    let options = wsd_backend::ProcessOptions {
        root,
        grace: std::time::Duration::from_secs(10),
        log_cap_bytes: 10 * 1024 * 1024,
        sandbox: process.sandbox(),
        path: process.path.clone().unwrap_or_else(|| wsd_backend::DEFAULT_PATH.to_owned()),
        host_uids,
    };
    let backend = wsd_backend::ProcessBackend::new(options);
    let unavailable = match closed {
        Some(dir) => Some(format!(
            "{} is not traversable by the workspaces' uids (it lacks o+x): make it 0711, or put [backends.process] root elsewhere",
            dir.display()
        )),
        None => backend.probe().err(),
    };
    match (&unavailable, process.sandbox) {
        (Some(reason), _) => {
            tracing::error!(%reason, "workspaces cannot run: the sandbox cannot be set up; fix it, or set [backends.process] sandbox = \"none\" to run them unsandboxed");
            println!("wsd: workspaces cannot run: {reason}");
        }
        (None, wsd_server::config::SandboxKind::None) => {
            tracing::warn!(
                "workspaces run UNSANDBOXED ([backends.process] sandbox = \"none\"): each can read wsd's files and every other workspace"
            );
            println!("wsd: WARNING: workspaces run unsandboxed (sandbox = \"none\")");
        }
        (None, wsd_server::config::SandboxKind::Bwrap) => {}
    }
    tracing::info!(isolation = %wsd_backend::Backend::isolation(&backend), "process backend");
    let mut runner = wsd_server::Runner::new(Arc::new(backend), process.commands.clone());
    runner.restart_on_change = config.backends.restart_on_change;
    runner.max_running_per_org = config.policy.max_running_workspaces_per_org;
    runner.confinement = process;
    runner.unavailable = unavailable;
    Ok(runner)
}

/// The first directory above `root` that other uids cannot traverse.
fn closed_ancestor(root: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let root = std::fs::canonicalize(root).ok()?;
    root.ancestors().find(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 == 0)).map(std::path::Path::to_path_buf)
}

/// Workspaces running as their own uids must reach their homes under `root`: `root` is
/// made traversable (0711: not listable), and so is wsd's data dir when `root` is inside
/// it — whose files stay 0600 (the umask, and a check of those already there).
fn open_path_to(root: &std::path::Path, data_dir: &std::path::Path) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |path: &std::path::Path, e: std::io::Error| Failure::Usage(format!("cannot prepare {}: {e}", path.display()));
    std::fs::create_dir_all(root).map_err(|e| fail(root, e))?;
    let mut dirs = vec![root.to_path_buf()];
    if root.starts_with(data_dir) {
        let mut at = root.parent();
        while let Some(dir) = at.filter(|d| d.starts_with(data_dir)) {
            dirs.push(dir.to_path_buf());
            at = dir.parent();
        }
        for entry in std::fs::read_dir(data_dir).map_err(|e| fail(data_dir, e))?.flatten() {
            let path = entry.path();
            if path.is_file() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| fail(&path, e))?;
            }
        }
    }
    for dir in dirs {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).map_err(|e| fail(&dir, e))?;
    }
    Ok(())
}

/// The name the operator's `WSD_ADMIN_TOKEN` is stored under.
const CONFIGURED_ADMIN: &str = "admin (WSD_ADMIN_TOKEN)";

/// Why `token` is too weak to be an admin token: under 32 characters, or under 128 bits by
/// its length and alphabet (`length × log2(distinct characters)`).
fn weak_admin_token(token: &str) -> Option<String> {
    let length = token.chars().count();
    if length < 32 {
        return Some(format!("it is {length} characters long; an admin token needs at least 32"));
    }
    let distinct = token.chars().collect::<std::collections::BTreeSet<_>>().len();
    let bits = length as f64 * (distinct as f64).log2();
    (bits < 128.0).then(|| format!("it holds only {distinct} distinct characters (about {bits:.0} bits); an admin token needs 128"))
}

/// Makes sure an admin token exists: the operator's `WSD_ADMIN_TOKEN`, or on the first
/// start a generated one, printed once and stored only as a hash. A changed
/// `WSD_ADMIN_TOKEN` replaces the one configured before, which stops working.
async fn ensure_admin_token(store: &Store, configured: Option<SecretValue>) -> Result<(), Failure> {
    let storage = |e: wsd_store::StoreError| Failure::Usage(format!("cannot set up the admin token: {e}"));
    if let Some(token) = configured {
        if let Some(reason) = weak_admin_token(token.expose()) {
            return Err(Failure::Usage(format!(
                "WSD_ADMIN_TOKEN is too weak: {reason}; generate one with `head -c 32 /dev/urandom | base64`, or leave it unset to have wsd generate one"
            )));
        }
        match store.authenticate_token(token.expose()).await.map_err(storage)? {
            Some(found) if found.kind == TokenKind::Admin => return Ok(()),
            Some(_) => return Err(Failure::Usage("WSD_ADMIN_TOKEN is already in use as another kind of token; choose a new one".into())),
            None => {}
        }
        for old in store.list_tokens(None).await.map_err(storage)? {
            if old.kind == TokenKind::Admin && old.name == CONFIGURED_ADMIN && old.revoked_at.is_none() {
                store.revoke_token(None, &old.id, "wsd").await.map_err(storage)?;
                tracing::info!(token = %old.id, "the previous WSD_ADMIN_TOKEN was revoked: it was replaced");
            }
        }
        return match store.insert_token(TokenKind::Admin, None, None, CONFIGURED_ADMIN, &token, "wsd").await {
            Err(wsd_store::StoreError::Conflict { .. }) => {
                Err(Failure::Usage("WSD_ADMIN_TOKEN was used before and revoked; choose a new one".into()))
            }
            other => other.map(drop).map_err(storage),
        };
    }
    let tokens = store.list_tokens(None).await.map_err(storage)?;
    if tokens.iter().any(|t| t.kind == TokenKind::Admin && t.revoked_at.is_none()) {
        return Ok(());
    }
    let (_, token) = store.create_token(TokenKind::Admin, None, None, "admin (generated)", "wsd").await.map_err(storage)?;
    // Shown once, on the terminal only: it is stored as a hash and never logged.
    println!("admin token (shown once, store it now): {}", token.expose());
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::new("info");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(listen: SocketAddr, state: Arc<AppState>, limits: wsd_server::listener::ListenerLimits) -> Result<(), Failure> {
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| Failure::Usage(format!("cannot listen on {listen}: {e}")))?;
    let local = listener.local_addr().map_err(|e| Failure::Usage(format!("cannot read the listening address: {e}")))?;
    tracing::info!(address = %local, "wsd listening");
    // One line on stdout that scripts and tests can wait for.
    println!("wsd listening on http://{local}");
    let state_for_close = state.clone();
    wsd_server::listener::serve(listener, wsd_server::router(state), limits, shutdown).await;
    // Every metered request's row is stored before the store closes.
    state_for_close.ledger.flush().await;
    state_for_close.store.close().await;
    tracing::info!("wsd stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, before
/// the server announces itself, so a signal right after start-up still stops it gracefully.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind| signal(kind).map_err(|e| Failure::Usage(format!("cannot install signal handlers: {e}")));
    let mut interrupt = install(SignalKind::interrupt())?;
    let mut terminate = install(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn weak_admin_tokens_are_named_why() {
        for (weak, why) in [("admin", "5 characters"), (&"a".repeat(64)[..], "1 distinct"), (&"ab".repeat(40)[..], "2 distinct")] {
            assert!(super::weak_admin_token(weak).unwrap().contains(why), "{weak}");
        }
        for strong in ["0123456789abcdef0123456789abcdef", "wsd_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycA"] {
            assert_eq!(super::weak_admin_token(strong), None, "{strong}");
        }
    }
}
