//! Runtime truth. The planner proves a plan against the registry's profile of a runtime;
//! this crate proves the profile against the runtime's real CLI. For every case of a
//! built-in matrix (each provider the runtime declares, BYOK with stray credentials beside
//! the right one, and the platform) it plans a workspace, runs the installed CLI with
//! exactly that plan — canary values for every secret, every provider a recording fake on
//! loopback, every other host behind an intercepting egress proxy — and reports which
//! credential reached which endpoint with which model, against the plan.
//!
//! `wsd runtime verify` runs it in a network namespace of its own (no network but
//! loopback). Nothing here is used by the server.

pub mod judge;
pub mod matrix;
pub mod run;
pub mod world;

use std::fmt::Write;

use serde::{Deserialize, Serialize};
use wsd_core::Registry;

pub use run::{CaseResult, Command, Outcome};

/// How each runtime's CLI is run for one non-interactive answer.
pub fn default_command(runtime: &str) -> Option<Vec<String>> {
    let argv: &[&str] = match runtime {
        "claude-code" => &["claude", "-p", "say hi"],
        "codex" => &["codex", "exec", "--skip-git-repo-check", "say hi"],
        "hermes" => &["hermes", "-z", "say hi"],
        "openclaw" => &["openclaw", "agent", "exec", "say hi", "--json", "--timeout", "25"],
        _ => return None,
    };
    Some(argv.iter().map(|a| (*a).to_owned()).collect())
}

/// Every case of one runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub runtime: String,
    /// What `--version` printed, when it did.
    pub version: Option<String>,
    pub results: Vec<CaseResult>,
    pub uncovered: Vec<matrix::Uncovered>,
    /// The providers whose pair with the runtime the registry says was verified on this
    /// CLI version (on any version, when the version is unknown).
    pub claimed: Vec<String>,
}

/// The `1.2.3` in a `--version` line (`2.1.332 (Claude Code)`, `codex-cli 0.171.0`).
pub fn version_number(line: &str) -> Option<&str> {
    line.split(|c: char| c.is_whitespace() || c == 'v')
        .find(|word| word.split('.').count() >= 3 && word.split('.').all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())))
}

impl Report {
    /// Whether the registry claims the case's pair verified.
    pub fn claims(&self, result: &CaseResult) -> bool {
        self.claimed.contains(&result.case.provider)
    }

    /// Every case whose pair the registry claims verified did what its plan says. (A pair
    /// not claimed is refused by the planner unless the operator allows it; its cases are
    /// reported, and fail nothing.)
    pub fn holds(&self) -> bool {
        self.results.iter().any(|r| self.claims(r)) && self.results.iter().filter(|r| self.claims(r)).all(CaseResult::passed)
    }

    /// A table a person reads, one case a row, then every problem.
    pub fn render(&self) -> String {
        let mut out = format!("runtime {} ({})\n", self.runtime, self.version.as_deref().unwrap_or("version unknown"));
        for result in &self.results {
            let verdict = match (result.passed(), self.claims(result)) {
                (true, true) => "ok",
                (true, false) => "ok*",
                (false, true) => "MISMATCH",
                (false, false) => "mismatch*",
            };
            let detail = match &result.outcome {
                Outcome::Refused { code, .. } => format!("plan refused: {code}"),
                Outcome::Broken { reason } => format!("not run: {reason}"),
                Outcome::Ran { verdict, timed_out, .. } => {
                    let mut calls = if verdict.calls.is_empty() { "no model call".to_owned() } else { verdict.calls.join("; ") };
                    if !verdict.side_traffic.is_empty() {
                        calls.push_str(&format!(" (+{} requests to other hosts, no credential)", verdict.side_traffic.len()));
                    }
                    if *timed_out { format!("{calls} (timed out)") } else { calls }
                }
            };
            let _ = writeln!(out, "  {verdict:<8} {:<32} {} → {detail}", result.case.label, result.case.model);
            if let (Some(expected), false) = (&result.expected, result.passed()) {
                let _ = writeln!(
                    out,
                    "           planned: {} in {} to {} with model {}",
                    expected.credential,
                    expected.header.as_str(),
                    expected.endpoint,
                    expected.model.as_deref().unwrap_or("(an alias the CLI resolves)")
                );
            }
            if let Outcome::Ran { verdict, output_tail, .. } = &result.outcome {
                for problem in &verdict.problems {
                    let _ = writeln!(out, "           - {problem}");
                }
                if !verdict.pass && !output_tail.is_empty() {
                    let _ = writeln!(out, "           output: {}", output_tail.replace('\n', "\n                   "));
                }
            }
        }
        for uncovered in &self.uncovered {
            let _ = writeln!(out, "  -        {:<32} not covered: {}", uncovered.provider, uncovered.reason);
        }
        if self.claimed.is_empty() {
            let _ = writeln!(
                out,
                "  no pair of {} is claimed verified on {}: nothing here is proven (the registry's verified_on)",
                self.runtime,
                self.version.as_deref().unwrap_or("this version")
            );
        }
        if self.results.iter().any(|r| !self.claims(r)) {
            let _ = writeln!(out, "  * the registry does not claim this pair verified on this version: the planner refuses it by default");
        }
        let claimed: Vec<&CaseResult> = self.results.iter().filter(|r| self.claims(r)).collect();
        let passed = claimed.iter().filter(|r| r.passed()).count();
        let _ = writeln!(out, "{passed} passed, {} failed", claimed.len() - passed);
        out
    }
}

/// Runs every case of `runtime` with `command` (only those of the providers or case labels
/// in `only`, when it names any), one after the other.
pub async fn verify(registry: &Registry, runtime: &str, command: &Command, only: &[String]) -> Result<Report, String> {
    let profile = registry.runtime(runtime).ok_or_else(|| format!("unknown runtime `{runtime}`"))?;
    let (cases, uncovered) = matrix::cases(registry, profile);
    let wanted = |names: &[&str]| only.is_empty() || only.iter().any(|o| names.contains(&o.as_str()));
    let mut results = Vec::new();
    for case in cases.iter().filter(|c| wanted(&[&c.label, &c.provider])) {
        results.push(run::run_case(registry, runtime, case, command).await);
    }
    let uncovered = uncovered.into_iter().filter(|u| wanted(&[&u.provider])).collect();
    Ok(Report { runtime: runtime.to_owned(), version: None, results, uncovered, claimed: Vec::new() })
}

impl Report {
    /// Records the CLI's version and which pairs the registry claims verified on it.
    pub fn with_version(mut self, registry: &Registry, version: Option<String>) -> Self {
        let number = version.as_deref().and_then(version_number).map(str::to_owned);
        if let Some(runtime) = registry.runtime(&self.runtime) {
            self.claimed = registry
                .native_providers(runtime)
                .map(|(p, _)| p.name.clone())
                .filter(|p| {
                    let on = registry.verified_on(runtime, p);
                    !on.is_empty() && number.as_ref().is_none_or(|n| on.contains(n))
                })
                .collect();
        }
        self.version = version;
        self
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_numbers_are_found_in_what_clis_print() {
        assert_eq!(super::version_number("2.1.332 (Claude Code)"), Some("2.1.332"));
        assert_eq!(super::version_number("codex-cli 0.171.0"), Some("0.171.0"));
        assert_eq!(super::version_number("Hermes Agent v0.19.0 (2026.7.20)"), Some("0.19.0"));
        assert_eq!(super::version_number("OpenClaw 2026.9.6 (eb377ac)"), Some("2026.9.6"));
        assert_eq!(super::version_number("no version here 1.2"), None);
    }
}
