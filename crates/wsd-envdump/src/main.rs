//! `wsd-envdump OUT [SECONDS]`: writes to `OUT.<pid>` (its directory created, and left out of the walk) one line per env var (`env NAME sha256(value)`)
//! and one per file in $HOME (`file PATH mode sha256(content)`), then stays alive for
//! SECONDS (default 0), so tests can check exactly what a workspace received without ever
//! seeing a value.
#![allow(clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Every file under `dir` but those under `skip` (where the dumps go).
fn walk(root: &Path, dir: &Path, skip: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == skip {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, skip, out);
        } else if let Ok(content) = std::fs::read(&path) {
            let mode = entry.metadata().map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            out.push(format!("file {} {mode:o} {}", path.strip_prefix(root).unwrap_or(&path).display(), hex(&content)));
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: wsd-envdump OUT [SECONDS]");
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut lines: Vec<String> =
        std::env::vars_os().map(|(k, v)| format!("env {} {}", k.to_string_lossy(), hex(v.as_encoded_bytes()))).collect();
    let out_dir = std::fs::canonicalize(Path::new(&out).parent().unwrap_or(Path::new("."))).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        let home = Path::new(&home);
        walk(home, home, &out_dir, &mut lines);
    }
    lines.sort();
    let out = format!("{out}.{}", std::process::id());
    if let Some(parent) = Path::new(&out).parent() {
        std::fs::create_dir_all(parent).expect("create the dump's directory");
    }
    let tmp = format!("{out}.tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n").expect("write the dump");
    std::fs::rename(&tmp, &out).expect("publish the dump");
    println!("envdump wrote {} lines", lines.len());
    std::thread::sleep(std::time::Duration::from_secs(seconds));
}
