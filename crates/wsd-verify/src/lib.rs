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
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(CaseResult::passed)
    }

    /// A table a person reads, one case a row, then every problem.
    pub fn render(&self) -> String {
        let mut out = format!("runtime {} ({})\n", self.runtime, self.version.as_deref().unwrap_or("version unknown"));
        for result in &self.results {
            let verdict = if result.passed() { "ok" } else { "MISMATCH" };
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
        let passed = self.results.iter().filter(|r| r.passed()).count();
        let _ = writeln!(out, "{passed} passed, {} failed", self.results.len() - passed);
        out
    }
}

/// Runs every case of `runtime` with `command`, one after the other.
pub async fn verify(registry: &Registry, runtime: &str, command: &Command, only: Option<&str>) -> Result<Report, String> {
    let profile = registry.runtime(runtime).ok_or_else(|| format!("unknown runtime `{runtime}`"))?;
    let (cases, uncovered) = matrix::cases(registry, profile);
    let mut results = Vec::new();
    for case in cases.iter().filter(|c| only.is_none_or(|o| c.label == o || c.provider == o)) {
        results.push(run::run_case(registry, runtime, case, command).await);
    }
    Ok(Report { runtime: runtime.to_owned(), version: None, results, uncovered })
}
