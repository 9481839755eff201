//! `wsd serve`: the HTTP server. Settings are parsed once (flags and their `WSD_*` env
//! equivalents) into `ServeArgs` and passed down; nothing below reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use clap::{Args, ValueEnum};
use serde_json::json;
use wsd_core::Registry;

use crate::input::load_registry;
use crate::{Failure, registry_view};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "WSD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The data directory (database, master key file, workspace homes).
    #[arg(long, env = "WSD_DATA_DIR", default_value = "./wsd-data")]
    data_dir: PathBuf,
    /// A registry YAML file to use instead of the embedded one.
    #[arg(long, value_name = "FILE", env = "WSD_REGISTRY")]
    registry: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "WSD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

struct AppState {
    registry: Registry,
}

pub fn run(args: ServeArgs) -> Result<(), Failure> {
    let registry = load_registry(args.registry.as_deref())?;
    init_logging(args.log_format);
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| Failure::Usage(format!("cannot create the data directory {}: {e}", args.data_dir.display())))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(args.listen, Arc::new(AppState { registry })))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::new("info");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/v1/registry/providers", get(providers))
        .route("/v1/registry/runtimes", get(runtimes))
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                Json(json!({"error": {"code": "NOT_FOUND", "message": "no such endpoint"}})),
            )
        })
        .with_state(state)
}

async fn providers(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(json!({"providers": registry_view::providers(&state.registry)}))
}

async fn runtimes(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(json!({"runtimes": registry_view::runtimes(&state.registry)}))
}

async fn serve(listen: SocketAddr, state: Arc<AppState>) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {listen}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Usage(format!("cannot read the listening address: {e}")))?;
    tracing::info!(address = %local, "wsd listening");
    // One line on stdout that scripts and tests can wait for.
    println!("wsd listening on http://{local}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Failure::Usage(format!("server error: {e}")))?;
    tracing::info!("wsd stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
