//! `wsd serve`: the HTTP server. Settings are parsed once (flags and their `WSD_*` env
//! equivalents) into `ServeArgs` and passed down; nothing below reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use wsd_core::SecretValue;
use wsd_server::AppState;
use wsd_server::config::ConfigFile;

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
    /// The container engine, when `[backends.docker] socket` does not name one
    /// (`unix:///var/run/docker.sock` when neither does).
    #[arg(long, env = "DOCKER_HOST", value_name = "URL")]
    docker_host: Option<String>,
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
    let in_config = |e: wsd_core::RegistryError| {
        Failure::Usage(format!("{}: {e}", args.config.as_deref().map(|p| p.display().to_string()).unwrap_or_default()))
    };
    let registry =
        registry.with_overrides(&config.registry.overrides).map_err(in_config)?.with_prices(&config.prices).map_err(in_config)?;
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
        crate::admin_token::ensure(&store, args.admin_token.map(SecretValue::new)).await?;
        let _sole_server = args.store.sqlite_file().and_then(|path| claim_sqlite(&path));
        // The one TLS provider of the process, before any HTTP client is built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut state = AppState::new(registry, store, config.platform_settings(), config.planner_policy())
            .with_proxy_settings(&config.proxy_settings())
            .map_err(Failure::Usage)?;
        state.runtime_platform = config.runtime_platform_settings(state.registry.runtimes().map(|r| r.name.clone()));
        state.runner = Some(crate::container_backend::runner(&config, &args.store.data_dir, args.docker_host.as_deref()).await?);
        state.default_delivery = config.policy.credential_delivery;
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
        let state = Arc::new(state);
        tokio::spawn(wsd_server::changes::follow_changes(state.clone()));
        serve(args.listen, state, config.server.limits()).await
    })
}

/// SQLite is one process's database: a second `wsd serve` on it would keep caches, rate
/// limits and budget scopes of its own that no change made through the first reaches. The
/// first server holds a lock beside the database; one that finds it taken says so.
fn claim_sqlite(database: &std::path::Path) -> Option<nix::fcntl::Flock<std::fs::File>> {
    let mut name = database.as_os_str().to_owned();
    name.push(".serve-lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(std::path::PathBuf::from(name)).ok()?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Some(lock),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            tracing::warn!(
                database = %database.display(),
                "another wsd serve has this SQLite database open: SQLite serves one process, and changes made through one server do not reach the other's caches; run several servers on PostgreSQL"
            );
            None
        }
        Err(_) => None,
    }
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
    wsd_server::listener::serve(listener, wsd_server::app(state), limits, shutdown).await;
    // Every metered request's row is stored, and its budget slices released, before the
    // store closes.
    state_for_close.proxy.close().await;
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
