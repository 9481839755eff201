//! `wsd serve`'s process backend: sandboxed as configured, each workspace as its own host
//! uid when wsd runs as root, and the way from `/` to the workspaces' homes open to those
//! uids (and nothing else of wsd's data).

use std::sync::Arc;

use wsd_server::config::ConfigFile;

use crate::Failure;

/// The process backend as configured: sandboxed unless the operator says `sandbox =
/// "none"`, each workspace as its own uid when wsd runs as root. A sandbox that cannot be
/// set up leaves the backend unavailable (provisioning answers 503 with the reason); the
/// rest of the server runs.
///
/// `used`: whether any runtime runs on it. One no runtime uses still stops, observes and
/// adopts what it started before the operator moved every runtime elsewhere; it says
/// nothing about a sandbox it will not be asked to set up.
pub fn placement(config: &ConfigFile, data_dir: &std::path::Path, used: bool) -> Result<wsd_server::Placement, Failure> {
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
        _ if !used => {}
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
    if used {
        tracing::info!(isolation = %wsd_backend::Backend::isolation(&backend), "process backend");
    }
    let mut placement = wsd_server::Placement::new(Arc::new(backend), process.commands.clone());
    placement.confinement = wsd_server::Confinements::from_process(&process);
    placement.unavailable = unavailable;
    Ok(placement)
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
