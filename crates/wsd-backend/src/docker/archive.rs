//! The tar a container's home arrives in: the home directory and every directory on the
//! way to a plan file 0700, each file 0600, all owned by the agent user. Paths are the
//! planner's (relative, no `..`); one that is not is refused rather than packed.

use std::collections::BTreeSet;
use std::io;

use crate::LaunchFile;

fn header(kind: tar::EntryType, mode: u32, size: u64, (uid, gid): (u32, u32), mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(u64::from(uid));
    header.set_gid(u64::from(gid));
    header.set_mtime(mtime);
    header
}

/// The archive to unpack at `/`: `home` (absolute) and `files` under it.
pub fn home(home: &str, user: (u32, u32), files: &[LaunchFile]) -> io::Result<Vec<u8>> {
    let home = home.trim_matches('/');
    let mtime = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut dirs = BTreeSet::from([home.to_owned()]);
    for file in files {
        let parts: Vec<&str> = file.path.split('/').collect();
        if file.path.starts_with('/') || parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("`{}` is not a relative path", file.path)));
        }
        for depth in 1..parts.len() {
            dirs.insert(format!("{home}/{}", parts[..depth].join("/")));
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    // Sorted, so that each directory comes before what it holds.
    for dir in &dirs {
        let mut header = header(tar::EntryType::Directory, 0o700, 0, user, mtime);
        builder.append_data(&mut header, format!("{dir}/"), io::empty())?;
    }
    for file in files {
        let content = file.content.expose().as_bytes();
        let mut header = header(tar::EntryType::Regular, 0o600, content.len() as u64, user, mtime);
        builder.append_data(&mut header, format!("{home}/{}", file.path), content)?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsd_core::SecretValue;

    fn file(path: &str, content: &str) -> LaunchFile {
        LaunchFile { path: path.into(), content: SecretValue::new(content) }
    }

    #[test]
    fn every_directory_and_file_is_the_agents_and_private() {
        let tar = home("/home/agent", (1000, 1001), &[file(".codex/config.toml", "x = 1"), file("a/b/c", "secret")]).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header().clone();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).unwrap();
            seen.push((entry.path().unwrap().display().to_string(), h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap(), body));
        }
        let expected = [
            ("home/agent/", 0o700, ""),
            ("home/agent/.codex/", 0o700, ""),
            ("home/agent/a/", 0o700, ""),
            ("home/agent/a/b/", 0o700, ""),
            ("home/agent/.codex/config.toml", 0o600, "x = 1"),
            ("home/agent/a/b/c", 0o600, "secret"),
        ];
        assert_eq!(seen.len(), expected.len(), "{seen:?}");
        for ((path, mode, uid, gid, body), (want_path, want_mode, want_body)) in seen.iter().zip(expected) {
            assert_eq!((path.as_str(), *mode, *uid, *gid, body.as_str()), (want_path, want_mode, 1000, 1001, want_body));
        }
    }

    #[test]
    fn a_path_that_leaves_the_home_is_refused() {
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../x", "a//b", "./a"] {
            assert!(home("/home/agent", (1, 1), &[file(bad, "x")]).is_err(), "{bad}");
        }
    }
}
