//! The process backend's sandbox: bubblewrap (`bwrap`). Each workspace gets its own user,
//! mount, pid, ipc and uts namespaces (and network, when its runtime says `none`), sees the
//! configured system directories read-only, its own home (writable), a private `/tmp`, its
//! own `/proc` and a minimal `/dev` — nothing of wsd's data, other workspaces or host
//! processes. `no_new_privs` is set, every capability dropped, and nested user namespaces
//! are refused. The sandbox's init is the pid namespace's init: when it ends, the kernel
//! ends every process the workspace started, double-forked and `setsid` ones included.
//!
//! A workspace's own host uid is taken by `setpriv` and its resource limits (rlimits) set
//! by `prlimit` before the sandbox starts; both are inherited by every process in it. Both
//! are programs wsd execs rather than steps between fork and exec, so wsd starts a
//! workspace with `posix_spawn` instead of forking its whole address space.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::{Confinement, Network};

/// Where the agent's home is inside the sandbox.
pub const SANDBOX_HOME: &str = "/home/agent";

/// System directories a normal agent CLI needs, bound read-only when they exist.
pub const DEFAULT_READ_ONLY: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"];

/// How the process backend confines workspaces.
#[derive(Debug, Clone)]
pub enum Sandbox {
    Bwrap(BwrapOptions),
    /// No sandbox: every workspace runs as a plain child process. Only when the operator
    /// says so explicitly.
    None,
}

#[derive(Debug, Clone)]
pub struct BwrapOptions {
    /// The `bwrap` binary.
    pub program: PathBuf,
    /// Host directories bound read-only at the same path; missing ones are skipped.
    pub read_only: Vec<PathBuf>,
}

impl Default for BwrapOptions {
    fn default() -> Self {
        Self { program: PathBuf::from("/usr/bin/bwrap"), read_only: DEFAULT_READ_ONLY.iter().map(PathBuf::from).collect() }
    }
}

/// The `prlimit` binary (util-linux) that sets a workspace's rlimits.
pub const PRLIMIT: &str = "/usr/bin/prlimit";
/// The `setpriv` binary (util-linux) that makes a workspace its own uid.
pub const SETPRIV: &str = "/usr/bin/setpriv";

/// The argv that starts `command` confined: `setpriv … -- prlimit … -- bwrap … -- command`
/// (each part only when it applies). `host_home` is bound as the sandbox's home.
pub fn argv(sandbox: &Sandbox, confinement: &Confinement, host_uid: Option<u32>, host_home: &Path, command: &[String]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = Vec::new();
    if let Some(uid) = host_uid {
        argv.push(SETPRIV.into());
        for flag in [format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".to_owned(), "--".to_owned()] {
            argv.push(flag.into());
        }
    }
    let per_uid = host_uid.is_some();
    let limits = &confinement.limits;
    let mut rlimits = Vec::new();
    if let Some(files) = limits.open_files {
        rlimits.push(format!("--nofile={files}:{files}"));
    }
    if let Some(memory) = limits.memory_mib {
        let bytes = memory.saturating_mul(1024 * 1024);
        rlimits.push(format!("--data={bytes}:{bytes}"));
    }
    // RLIMIT_NPROC counts every process of a uid: a limit only when the uid is the
    // workspace's own.
    if let (Some(processes), true) = (limits.processes, per_uid) {
        rlimits.push(format!("--nproc={processes}:{processes}"));
    }
    if !rlimits.is_empty() {
        argv.push(PRLIMIT.into());
        argv.extend(rlimits.into_iter().map(OsString::from));
        argv.push("--".into());
    }
    if let Sandbox::Bwrap(options) = sandbox {
        argv.push(options.program.clone().into());
        // Not `--die-with-parent`: a workspace outlives a restart of wsd, which adopts it.
        for flag in ["--unshare-all", "--unshare-user", "--disable-userns", "--new-session"] {
            argv.push(flag.into());
        }
        if confinement.network == Network::Host {
            argv.push("--share-net".into());
        }
        // The private /tmp first: a directory the operator shares from under /tmp is bound
        // on top of it, not hidden by it.
        for (flag, path) in [("--proc", "/proc"), ("--dev", "/dev"), ("--tmpfs", "/tmp")] {
            argv.extend([flag.into(), path.into()]);
        }
        for dir in options.read_only.iter().filter(|d| d.exists()) {
            argv.extend(["--ro-bind".into(), dir.clone().into_os_string(), dir.clone().into_os_string()]);
        }
        argv.extend(["--bind".into(), host_home.as_os_str().to_owned(), SANDBOX_HOME.into()]);
        argv.extend(["--chdir".into(), SANDBOX_HOME.into()]);
        argv.push("--".into());
    }
    argv.extend(command.iter().map(OsString::from));
    argv
}

/// The workspace id of a sandbox a process backend rooted at `root` started, read from a
/// process's argv (the home it binds: `ROOT/<workspace>/home`).
pub fn workspace_of(root: &Path, argv: &[String]) -> Option<String> {
    let bwrap = argv.iter().position(|a| a.ends_with("bwrap"))?;
    let args = &argv[bwrap..];
    let at = args.windows(3).position(|w| w[0] == "--bind" && w[2] == SANDBOX_HOME)?;
    let home = Path::new(&args[at + 1]);
    if home.file_name()? != "home" {
        return None;
    }
    let dir = home.parent()?;
    (dir.parent()? == root).then(|| dir.file_name()?.to_str().map(str::to_owned))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn strings(argv: Vec<OsString>) -> Vec<String> {
        argv.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn the_sandbox_argv_confines_and_names_its_workspace() {
        let sandbox =
            Sandbox::Bwrap(BwrapOptions { program: "/usr/bin/bwrap".into(), read_only: vec!["/usr".into(), "/nonexistent".into()] });
        let confinement =
            Confinement { network: Network::None, limits: Limits { memory_mib: Some(2), processes: Some(64), open_files: Some(256) } };
        let home = Path::new("/srv/wsd/workspaces/w1/home");
        let confined = strings(argv(&sandbox, &confinement, Some(7), home, &["agent".into(), "--flag".into()]));
        let line = confined.join(" ");
        assert!(
            line.starts_with(
                "/usr/bin/setpriv --reuid=7 --regid=7 --clear-groups -- /usr/bin/prlimit --nofile=256:256 --data=2097152:2097152 --nproc=64:64 -- /usr/bin/bwrap "
            ),
            "{line}"
        );
        assert!(line.contains("--unshare-all --unshare-user --disable-userns --new-session"), "{line}");
        assert!(!line.contains("--share-net"), "{line}");
        assert!(line.contains("--tmpfs /tmp --ro-bind /usr /usr") && !line.contains("/nonexistent"), "{line}");
        assert!(line.ends_with("--bind /srv/wsd/workspaces/w1/home /home/agent --chdir /home/agent -- agent --flag"), "{line}");
        assert_eq!(workspace_of(Path::new("/srv/wsd/workspaces"), &confined).as_deref(), Some("w1"));
        assert_eq!(workspace_of(Path::new("/srv/other"), &confined), None);

        // Host network, no limits, shared uid: no prlimit and no process limit.
        let open = Confinement { network: Network::Host, limits: Limits { processes: Some(64), ..Limits::default() } };
        let line = strings(argv(&sandbox, &open, None, home, &["agent".into()])).join(" ");
        assert!(line.starts_with("/usr/bin/bwrap ") && line.contains("--share-net"), "{line}");
        // No sandbox: the command as configured.
        assert_eq!(strings(argv(&Sandbox::None, &Confinement::default(), None, home, &["agent".into()])), ["agent"]);
        assert_eq!(workspace_of(Path::new("/srv/wsd/workspaces"), &["agent".to_owned()]), None);
    }
}
