//! `wsd serve`'s container backend (`[backends.docker]`) and the runner that places each
//! runtime on its backend.

use std::sync::Arc;

use wsd_server::config::{BackendKind, ConfigFile};

use crate::Failure;

/// The container backend as configured. An engine that does not answer at start is
/// reported (and `/healthz` says so); each provision asks it again, so an engine started
/// later is used without a restart of wsd.
pub async fn placement(
    config: &ConfigFile,
    data_dir: &std::path::Path,
    docker_host: Option<&str>,
) -> Result<Option<wsd_server::Placement>, Failure> {
    let Some(section) = &config.backends.docker else { return Ok(None) };
    let options = section.options(data_dir.join("container-logs"), docker_host).map_err(|e| Failure::Usage(e.to_string()))?;
    let backend = wsd_backend::DockerBackend::new(options);
    match backend.probe().await {
        Ok(()) => tracing::info!(isolation = %wsd_backend::Backend::isolation(&backend), "container backend"),
        Err(reason) => {
            tracing::error!(%reason, "the container engine does not answer: workspaces placed on it cannot start until it does");
            println!("wsd: the container engine does not answer: {reason}");
        }
    }
    let mut placement = wsd_server::Placement::new(Arc::new(backend), section.commands.clone());
    placement.command_optional = true;
    placement.confinement = wsd_server::Confinements { default: section.confinement(), runtimes: Default::default() };
    Ok(Some(placement))
}

/// Every configured backend, the default first, and which runtimes run elsewhere.
pub async fn runner(config: &ConfigFile, data_dir: &std::path::Path, docker_host: Option<&str>) -> Result<wsd_server::Runner, Failure> {
    let backends = &config.backends;
    let mut placements = vec![crate::process_backend::placement(config, data_dir, backends.uses(BackendKind::Process))?];
    if let Some(docker) = placement(config, data_dir, docker_host).await? {
        placements.push(docker);
    }
    if backends.default == BackendKind::Docker {
        placements.rotate_right(1);
    }
    let mut runner = wsd_server::Runner::of(placements);
    runner.runtime_backends = backends
        .runtimes
        .iter()
        .map(|(runtime, kind)| (runtime.clone(), if *kind == BackendKind::Docker { "docker" } else { "process" }))
        .collect();
    runner.restart_on_change = backends.restart_on_change;
    runner.max_running_per_org = config.policy.max_running_workspaces_per_org;
    Ok(runner)
}
