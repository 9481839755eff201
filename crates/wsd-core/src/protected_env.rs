//! Env names a tenant can never set: names that steer the dynamic loader, a shell or an
//! interpreter, and the names a backend sets from the operator's configuration (`PATH`,
//! `HOME`, …). A secret with such a name would let a tenant run code of its choosing
//! inside the agent before the agent runs (`LD_PRELOAD`, `NODE_OPTIONS`), or choose which
//! binary an operator's relative command names (`PATH`).
//!
//! This is the one list, each entry with its reason. Secret writes refuse these names, and
//! the planner refuses a plan that would carry one (`PROTECTED_ENV_KEY`), so none can reach
//! a workspace even if it was stored before the list grew.

use crate::env_key::EnvKey;

/// How an entry matches a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    Exact(&'static str),
    Prefix(&'static str),
}

/// One protected name (or family of names) and why it is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectedName {
    pub name: NameMatch,
    pub reason: &'static str,
}

const fn exact(name: &'static str, reason: &'static str) -> ProtectedName {
    ProtectedName { name: NameMatch::Exact(name), reason }
}

const fn prefix(name: &'static str, reason: &'static str) -> ProtectedName {
    ProtectedName { name: NameMatch::Prefix(name), reason }
}

/// The protected names. Order matters only for which reason is reported first.
pub const PROTECTED_ENV: &[ProtectedName] = &[
    // The dynamic loader.
    prefix("LD_", "steers the dynamic loader (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT load code into every process)"),
    prefix("DYLD_", "steers the macOS dynamic loader"),
    exact("GCONV_PATH", "makes glibc load conversion modules from a path"),
    exact("MALLOC_CONF", "configures the memory allocator of every process"),
    // Shells.
    exact("BASH_ENV", "names a file every non-interactive bash runs first"),
    exact("ENV", "names a file every POSIX shell runs first"),
    prefix("BASH_FUNC_", "defines exported bash functions"),
    exact("SHELLOPTS", "sets bash options in every bash"),
    exact("BASHOPTS", "sets bash options in every bash"),
    exact("PS4", "is expanded (and so can run commands) by every traced shell"),
    exact("PROMPT_COMMAND", "runs a command before every prompt of an interactive bash"),
    exact("IFS", "changes how every shell splits words"),
    exact("CDPATH", "changes where every shell's cd goes"),
    exact("GLOBIGNORE", "changes how every shell expands paths"),
    // Interpreters the agent CLIs run on, and their tools.
    exact("NODE_OPTIONS", "passes options (--require, --import) to every Node.js process"),
    exact("NODE_PATH", "adds module directories to every Node.js process"),
    exact("NODE_EXTRA_CA_CERTS", "makes every Node.js process trust another certificate authority"),
    exact("NODE_TLS_REJECT_UNAUTHORIZED", "turns off certificate checks in every Node.js process"),
    exact("NPM_CONFIG_PREFIX", "changes where npm installs and runs packages from"),
    exact("PYTHONPATH", "adds module directories to every Python process"),
    exact("PYTHONSTARTUP", "names a file Python runs first"),
    exact("PYTHONHOME", "moves the Python standard library"),
    exact("PYTHONINSPECT", "drops every Python process into an interactive prompt"),
    exact("PYTHONWARNINGS", "can import modules of its choosing in every Python process"),
    exact("PYTHONBREAKPOINT", "names a function every breakpoint() imports and calls"),
    exact("PERL5LIB", "adds module directories to every Perl process"),
    exact("PERL5OPT", "passes options (-M) to every Perl process"),
    exact("PERLLIB", "adds module directories to every Perl process"),
    exact("RUBYOPT", "passes options (-r) to every Ruby process"),
    exact("RUBYLIB", "adds module directories to every Ruby process"),
    exact("JAVA_TOOL_OPTIONS", "passes options (-javaagent) to every JVM"),
    exact("_JAVA_OPTIONS", "passes options to every JVM"),
    exact("JDK_JAVA_OPTIONS", "passes options to every JVM"),
    exact("GIT_CONFIG_PARAMETERS", "sets git configuration, including commands git runs"),
    exact("GIT_EXEC_PATH", "chooses where git finds its own programs"),
    exact("SSL_CERT_FILE", "makes TLS clients trust other certificate authorities"),
    exact("SSL_CERT_DIR", "makes TLS clients trust other certificate authorities"),
    // Set by the backend from the operator's configuration.
    exact("PATH", "chooses which binary a command names; it comes from the operator's runtime configuration only"),
    exact("HOME", "is the workspace's own directory, set by the backend"),
    exact("SHELL", "chooses the shell agents run commands with; set by the operator's image or host"),
    exact("USER", "is the workspace user, set by the backend"),
    exact("LOGNAME", "is the workspace user, set by the backend"),
    exact("PWD", "is the workspace's directory, set by the backend"),
    exact("TMPDIR", "chooses where every program writes temporary files"),
];

/// Why `key` may not be set by a tenant, or `None` when it may.
pub fn protected_reason(key: &EnvKey) -> Option<&'static str> {
    let name = key.as_str();
    PROTECTED_ENV
        .iter()
        .find(|entry| match entry.name {
            NameMatch::Exact(exact) => name == exact,
            NameMatch::Prefix(prefix) => name.starts_with(prefix),
        })
        .map(|entry| entry.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> EnvKey {
        EnvKey::new(name).unwrap()
    }

    #[test]
    fn every_family_is_protected() {
        let families = [
            ("loader", ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES"]),
            ("shell", ["BASH_ENV", "ENV", "BASH_FUNC_X", "IFS"]),
            ("interpreter", ["NODE_OPTIONS", "PYTHONPATH", "PERL5LIB", "JAVA_TOOL_OPTIONS"]),
            ("backend", ["PATH", "HOME", "SHELL", "TMPDIR"]),
        ];
        for (family, names) in families {
            for name in names {
                assert!(protected_reason(&key(name)).is_some(), "{family}: {name}");
            }
        }
    }

    #[test]
    fn every_entry_matches_itself_and_names_a_reason() {
        for entry in PROTECTED_ENV {
            let name = match entry.name {
                NameMatch::Exact(name) => name.to_owned(),
                NameMatch::Prefix(prefix) => format!("{prefix}X"),
            };
            assert_eq!(protected_reason(&key(&name)), Some(entry.reason), "{name}");
            assert!(!entry.reason.is_empty());
        }
    }

    #[test]
    fn exact_names_are_not_prefixes_and_credentials_are_not_protected() {
        for name in ["PATHS", "HOME_DIR", "ENVIRONMENT", "NODE_OPTIONS_X", "MINIMAX_API_KEY", "ANTHROPIC_BASE_URL", "LD", "XLD_PRELOAD"] {
            assert_eq!(protected_reason(&key(name)), None, "{name}");
        }
        assert_eq!(protected_reason(&key("LD_PRELOAD")), Some(PROTECTED_ENV[0].reason));
    }
}
