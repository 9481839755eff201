//! A workspace's directory on the host: `ROOT/<workspace>/` holds `home/` (the agent's,
//! owned by its uid), `output.log` and `plan-files` (the plan's files, listed so that stop
//! can remove them), both wsd's own.
//!
//! The agent owns its home and may have left symlinks anywhere in it. wsd writes and
//! removes the plan's files only while no process of the workspace runs, and never follows
//! a symlink there: a symlink (or file) where the plan needs a directory is replaced, so a
//! planted `~/.codex -> /root/.ssh` cannot make wsd write or delete outside the home.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::{BackendError, LaunchFile};

/// Whether `path` is a non-empty relative path of normal components only.
pub fn safe_relative(path: &str) -> bool {
    let path = Path::new(path);
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

fn prepare_error(e: std::io::Error) -> BackendError {
    BackendError::Prepare(e.to_string())
}

/// One workspace's directory.
#[derive(Debug, Clone)]
pub struct WorkspaceDir {
    pub dir: PathBuf,
}

impl WorkspaceDir {
    pub fn new(root: &Path, workspace_id: &str) -> Result<Self, BackendError> {
        if !safe_relative(workspace_id) || workspace_id.contains('/') {
            return Err(BackendError::Prepare(format!("invalid workspace id `{workspace_id}`")));
        }
        Ok(Self { dir: root.join(workspace_id) })
    }

    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("output.log")
    }

    fn manifest(&self) -> PathBuf {
        self.dir.join("plan-files")
    }

    /// Creates the directory and the home (owned by `owner` when given), writes the plan's
    /// files (0600, owned by `owner`) and a fresh log; returns the log, open for appending.
    pub fn prepare(&self, files: &[LaunchFile], owner: Option<u32>) -> Result<std::fs::File, BackendError> {
        // Traversable by the workspace's own uid, which must reach its home; listable by wsd only.
        let mode = if owner.is_some() { 0o711 } else { 0o700 };
        std::fs::DirBuilder::new().recursive(true).mode(mode).create(&self.dir).map_err(prepare_error)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(mode)).map_err(prepare_error)?;
        let home = self.home();
        match std::fs::symlink_metadata(&home) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => std::fs::remove_file(&home).map_err(prepare_error)?,
            Err(_) => {}
        }
        std::fs::DirBuilder::new().mode(0o700).create(&home).or_else(exists_ok).map_err(prepare_error)?;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).map_err(prepare_error)?;
        chown(&home, owner)?;

        let mut written = Vec::new();
        for file in files {
            if !safe_relative(&file.path) {
                return Err(BackendError::Prepare(format!("file path `{}` leaves the workspace home", file.path)));
            }
            let target = dirs_without_links(&home, Path::new(&file.path), owner)?;
            remove_entry(&target).map_err(prepare_error)?;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&target)
                .map_err(prepare_error)?;
            out.write_all(file.content.expose().as_bytes()).map_err(prepare_error)?;
            chown(&target, owner)?;
            written.push(file.path.as_str());
        }
        let mut manifest =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(self.manifest()).map_err(prepare_error)?;
        manifest.write_all(written.join("\n").as_bytes()).map_err(prepare_error)?;

        // Appended to by the child itself, so its output keeps flowing when wsd restarts.
        let log = self.log();
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&log).map_err(prepare_error)?;
        std::fs::OpenOptions::new().append(true).open(&log).map_err(prepare_error)
    }

    /// Removes the files the last plan wrote (called when no process of the workspace
    /// runs); the rest of the home stays.
    pub fn remove_plan_files(&self) -> std::io::Result<()> {
        let listed = match std::fs::read_to_string(self.manifest()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let home = self.home();
        for path in listed.lines().filter(|p| safe_relative(p)) {
            if let Some(target) = existing_without_links(&home, Path::new(path)) {
                remove_entry(&target)?;
            }
        }
        std::fs::remove_file(self.manifest())
    }

    /// Removes the whole directory: home, files, log. Symlinks inside are removed, never
    /// followed.
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn exists_ok(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) }
}

fn chown(path: &Path, owner: Option<u32>) -> Result<(), BackendError> {
    match owner {
        Some(uid) => std::os::unix::fs::lchown(path, Some(uid), Some(uid)).map_err(prepare_error),
        None => Ok(()),
    }
}

/// Removes whatever is at `path` without following it: a file, a symlink, a directory tree.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// `home/relative`, with every directory on the way a real directory: missing ones are
/// created (0700, owned by `owner`), anything else in their place is removed first.
fn dirs_without_links(home: &Path, relative: &Path, owner: Option<u32>) -> Result<PathBuf, BackendError> {
    let mut at = home.to_path_buf();
    let components: Vec<_> = relative.components().collect();
    let Some((last, parents)) = components.split_last() else {
        return Err(BackendError::Prepare("an empty file path".into()));
    };
    for part in parents {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => std::fs::remove_file(&at).map_err(prepare_error)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(prepare_error(e)),
        }
        std::fs::DirBuilder::new().mode(0o700).create(&at).map_err(prepare_error)?;
        chown(&at, owner)?;
    }
    at.push(last);
    Ok(at)
}

/// `home/relative` when every directory on the way is a real directory (not a symlink).
fn existing_without_links(home: &Path, relative: &Path) -> Option<PathBuf> {
    let mut at = home.to_path_buf();
    let components: Vec<_> = relative.components().collect();
    let (last, parents) = components.split_last()?;
    for part in parents {
        at.push(part);
        if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
            return None;
        }
    }
    at.push(last);
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsd_core::SecretValue;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wsd-home-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn planted_symlinks_are_replaced_never_followed() {
        let root = scratch("links");
        let outside = root.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("config.toml"), "precious").unwrap();
        let ws = WorkspaceDir::new(&root, "w1").unwrap();
        ws.prepare(&[], None).unwrap();
        // The agent points its ~/.codex at a directory outside, and its auth file at a file there.
        std::os::unix::fs::symlink(&outside, ws.home().join(".codex")).unwrap();
        std::os::unix::fs::symlink(outside.join("config.toml"), ws.home().join("auth.json")).unwrap();
        let files = [
            LaunchFile { path: ".codex/config.toml".into(), content: SecretValue::new("planned") },
            LaunchFile { path: "auth.json".into(), content: SecretValue::new("token") },
        ];
        ws.prepare(&files, None).unwrap();
        assert_eq!(std::fs::read_to_string(outside.join("config.toml")).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(ws.home().join(".codex/config.toml")).unwrap(), "planned");
        let mode = std::fs::metadata(ws.home().join("auth.json")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // Stop: the plan's files go, even when the agent put a symlink on the way since.
        std::fs::write(ws.home().join("work.txt"), "the agent's work").unwrap();
        std::fs::remove_dir_all(ws.home().join(".codex")).unwrap();
        std::os::unix::fs::symlink(&outside, ws.home().join(".codex")).unwrap();
        ws.remove_plan_files().unwrap();
        assert!(outside.join("config.toml").exists(), "a file outside the home was removed");
        assert!(!ws.home().join("auth.json").exists());
        assert!(ws.home().join("work.txt").exists(), "the agent's work stays");
        ws.remove_plan_files().unwrap();

        ws.remove().unwrap();
        assert!(!ws.dir.exists());
        assert!(outside.join("config.toml").exists());
        ws.remove().unwrap();
    }

    #[test]
    fn ids_and_paths_that_leave_the_root_are_refused() {
        let root = scratch("ids");
        for bad in ["", "..", "a/b", "/abs"] {
            assert!(WorkspaceDir::new(&root, bad).is_err(), "{bad}");
        }
        let ws = WorkspaceDir::new(&root, "w2").unwrap();
        let escape = [LaunchFile { path: "../x".into(), content: SecretValue::new("x") }];
        assert!(ws.prepare(&escape, None).is_err());
        assert!(!root.join("w2/x").exists());
    }
}
