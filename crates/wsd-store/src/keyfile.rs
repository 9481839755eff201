//! The master keyring's sources: `WSD_MASTER_KEY` (given by the operator) or a key file in
//! the data dir (generated on the embedded first run, mode 0600, replaced atomically).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::keyring::{Keyring, KeyringError};

/// Where the keyring comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The keyring text itself (from `WSD_MASTER_KEY`): read-only to wsd.
    Inline,
    /// A key file that wsd may extend on rotation.
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the key file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the key file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("the key file {path} is readable by other users (mode {mode:o}); make it 0600")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("the key file {path} is invalid: {source}")]
    Invalid { path: PathBuf, source: KeyringError },
}

/// Reads the key file at `path`, or, when it does not exist and `create` is set, writes a
/// new one-key keyring there with mode 0600. Returns the keyring and whether it was created.
pub fn load_or_create(path: &Path, create: bool) -> Result<(Keyring, bool), KeyFileError> {
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Permissions { path: path.to_owned(), mode });
            }
            Ok((load(path)?, false))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
            let keyring = Keyring::generate();
            write_new(path, &keyring).map_err(|source| KeyFileError::Write { path: path.to_owned(), source })?;
            Ok((keyring, true))
        }
        Err(source) => Err(KeyFileError::Read { path: path.to_owned(), source }),
    }
}

pub fn load(path: &Path) -> Result<Keyring, KeyFileError> {
    let text = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(|source| KeyFileError::Read { path: path.to_owned(), source })?);
    Keyring::parse(&text).map_err(|source| KeyFileError::Invalid { path: path.to_owned(), source })
}

fn write_new(path: &Path, keyring: &Keyring) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(keyring.render().as_bytes())?;
    file.sync_all()?;
    sync_dir(path)
}

/// Replaces the key file with `keyring` atomically: a crash leaves the old or the new file,
/// never a partial one, and the new one is durable before this returns.
pub fn replace(path: &Path, keyring: &Keyring) -> Result<(), KeyFileError> {
    let write = || -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(keyring.render().as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(path)
    };
    write().map_err(|source| KeyFileError::Write { path: path.to_owned(), source })
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wsd-keyfile-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn creates_a_private_key_file_once_and_reads_it_back() {
        let path = temp_dir("create").join("master.key");
        let (first, created) = load_or_create(&path, true).unwrap();
        assert!(created);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (second, created) = load_or_create(&path, true).unwrap();
        assert!(!created);
        assert_eq!(first.render(), second.render());
    }

    #[test]
    fn a_missing_file_is_an_error_unless_creation_is_allowed() {
        let path = temp_dir("missing").join("master.key");
        assert!(matches!(load_or_create(&path, false), Err(KeyFileError::Read { .. })));
        assert!(!path.exists());
    }

    #[test]
    fn a_world_readable_key_file_is_refused() {
        let path = temp_dir("perm").join("master.key");
        load_or_create(&path, true).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load_or_create(&path, true), Err(KeyFileError::Permissions { mode: 0o644, .. })));
    }

    #[test]
    fn replace_adds_versions_durably() {
        let path = temp_dir("replace").join("master.key");
        let (ring, _) = load_or_create(&path, true).unwrap();
        replace(&path, &ring.with_new_version()).unwrap();
        assert_eq!(load(&path).unwrap().versions().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!path.with_extension("tmp").exists());
    }
}
