//! What the process backend reads of `/proc`: a process's start time (so a reused pid is
//! never mistaken for a workspace), its children, its pid namespace, and the command lines
//! of every process (to find sandboxes a killed run of wsd left unrecorded), and the
//! processes below one.

use std::path::Path;

/// The start time of `pid` in clock ticks since boot; `None` when it is gone or a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // State is field 3 of the whole line; start time field 22.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|text| text.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// The pid namespace `pid` lives in, as the kernel names it (`pid:[4026532181]`).
pub fn pid_namespace(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok().map(|p| p.to_string_lossy().into_owned())
}

/// Every process's pid.
pub fn pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// Every process below `pid` (all its threads' children, recursively). In a sandbox this
/// is every process of the workspace: an orphan is re-parented to the namespace's init.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(at) = queue.pop() {
        let tasks = std::fs::read_dir(format!("/proc/{at}/task")).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
        for task in tasks {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                if !found.contains(&child) {
                    found.push(child);
                    queue.push(child);
                }
            }
        }
    }
    found
}

/// The arguments `pid` was started with.
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
        .map(|bytes| bytes.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found() {
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert!(pids().contains(&me));
        let namespace = pid_namespace(me).unwrap();
        assert!(namespace.starts_with("pid:["), "{namespace}");
        assert!(!cmdline(me).is_empty());
        assert_eq!(start_time(u32::MAX), None);
        assert!(children(u32::MAX).is_empty());
    }
}
