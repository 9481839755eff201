//! A workspace's output log, kept under a size cap.

use std::path::Path;

/// Cuts a log that grew over `cap` down to its newest lines (at most half the cap), after a
/// line that says so. The child and this both append, so nothing the child writes meanwhile
/// is overwritten; at worst a line it writes during the cut lands before the kept tail.
pub fn cap_log(path: &Path, cap: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    if !std::fs::metadata(path).is_ok_and(|m| m.len() > cap) {
        return;
    }
    let Ok(mut file) = std::fs::OpenOptions::new().read(true).append(true).open(path) else { return };
    let keep = i64::try_from(cap / 2).unwrap_or(i64::MAX);
    let mut tail = Vec::new();
    if file.seek(SeekFrom::End(-keep)).is_err() || file.read_to_end(&mut tail).is_err() {
        return;
    }
    // From the first whole line on.
    let start = tail.iter().position(|&b| b == b'\n').map_or(tail.len(), |i| i + 1);
    let mut kept = format!("[wsd: earlier output over {cap} bytes was dropped]\n").into_bytes();
    kept.extend_from_slice(&tail[start..]);
    if file.set_len(0).is_ok() {
        let _ = file.write_all(&kept);
    }
}

/// The last `tail` lines of the log at `path` (empty when there is none yet).
pub fn tail_lines(path: &Path, tail: usize) -> std::io::Result<String> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(tail)..].join("\n"))
}
