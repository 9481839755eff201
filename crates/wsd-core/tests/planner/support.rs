//! Shared helpers for the planner's tests: build inputs from key names, render plans as
//! short text that reads well in a snapshot diff.
#![allow(dead_code)]

use std::sync::OnceLock;

use wsd_core::plan::{
    CredentialDelivery, DeliveryChoice, DeliverySetBy, EnvValue, FileContent, Plan, PlatformSettings, Policy, SecretNames, WorkspaceId,
    WorkspaceSpec,
};
use wsd_core::{EnvKey, PlanError, Registry};

pub const PROXY: &str = "http://127.0.0.1:8080/llm";

pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::embedded().expect("embedded registry is valid"))
}

pub fn keys(names: &[&str]) -> std::collections::BTreeSet<EnvKey> {
    names.iter().map(|n| EnvKey::new(n).expect("valid key")).collect()
}

pub fn spec(runtime: &str, model: &str) -> WorkspaceSpec {
    WorkspaceSpec { id: WorkspaceId::new("ws-1").unwrap(), runtime: runtime.into(), model: model.into(), delivery: Default::default() }
}

/// Plans `runtime`/`model` with the named org and workspace secrets; `platform` says
/// whether the server has a metering proxy.
pub fn plan(runtime: &str, model: &str, org: &[&str], workspace: &[&str], platform: bool) -> Result<Plan, PlanError> {
    plan_with_policy(runtime, model, org, workspace, platform, &Policy::default())
}

pub fn plan_with_policy(
    runtime: &str,
    model: &str,
    org: &[&str],
    workspace: &[&str],
    platform: bool,
    policy: &Policy,
) -> Result<Plan, PlanError> {
    let secrets = SecretNames { org: keys(org), workspace: keys(workspace) };
    let settings = PlatformSettings { proxy_base_url: PROXY.into() };
    wsd_core::plan(registry(), &spec(runtime, model), &secrets, platform.then_some(&settings), policy)
}

/// Plans as `plan` does, for an org whose credential delivery is `proxy`.
pub fn plan_proxied(runtime: &str, model: &str, org: &[&str], workspace: &[&str], platform: bool) -> Result<Plan, PlanError> {
    let secrets = SecretNames { org: keys(org), workspace: keys(workspace) };
    let settings = PlatformSettings { proxy_base_url: PROXY.into() };
    let spec = WorkspaceSpec {
        delivery: DeliveryChoice { delivery: CredentialDelivery::Proxy, set_by: DeliverySetBy::Org },
        ..spec(runtime, model)
    };
    wsd_core::plan(registry(), &spec, &secrets, platform.then_some(&settings), &Policy::default())
}

/// Every decision as `KEY origin action`, in plan order.
///
/// Without the runtime's side-model settings, which `side_models` shows.
pub fn decisions(plan: &Plan) -> Vec<String> {
    plan.decisions
        .iter()
        .filter(|d| !is_side_model_setting(plan, &d.key))
        .map(|d| format!("{} {} {}", d.key, d.origin.as_str(), d.action.as_str()))
        .collect()
}

/// The final env as `KEY <- source`, without the runtime's side-model settings.
pub fn env(plan: &Plan) -> Vec<String> {
    plan.env
        .iter()
        .filter(|(key, _)| !is_side_model_setting(plan, key))
        .map(|(key, entry)| format!("{key} <- {}", source(&entry.value)))
        .collect()
}

/// The runtime's side-model variables the plan sets, with their values.
pub fn side_models(plan: &Plan) -> Vec<String> {
    plan.env
        .iter()
        .filter(|(key, _)| is_side_model_setting(plan, key))
        .map(|(key, entry)| format!("{key} <- {}", source(&entry.value)))
        .collect()
}

fn is_side_model_setting(plan: &Plan, key: &EnvKey) -> bool {
    registry().runtime(&plan.runtime).is_some_and(|rt| rt.side_model_env.contains(key))
}

fn source(value: &EnvValue) -> String {
    match value {
        EnvValue::Secret { key, origin } => format!("{} secret {key}", origin.as_str()),
        EnvValue::UsageToken => "usage token".into(),
        EnvValue::Literal(text) => format!("{text:?}"),
    }
}

/// A plan or refusal as reviewable text.
pub fn render(result: &Result<Plan, PlanError>) -> String {
    let plan = match result {
        Ok(plan) => plan,
        Err(e) => return format!("REFUSED {}: {e}\n", e.code()),
    };
    let mut out = format!(
        "routing: {}\nprovider: {}\nbecause: {}\ndelivery: {}: {}\n",
        plan.routing.as_str(),
        plan.provider,
        plan.derivation,
        plan.delivery.delivery.as_str(),
        plan.delivery.reason
    );
    if let Some(proxied) = &plan.delivery.proxied {
        out.push_str(&format!("proxy sends: {} secret {} as {}\n", proxied.origin.as_str(), proxied.key, proxied.sent_as));
    }
    out.push_str("env:\n");
    for (key, entry) in &plan.env {
        out.push_str(&format!("  {key} <- {}\n", source(&entry.value)));
    }
    if !plan.files.is_empty() {
        out.push_str("files:\n");
        for file in &plan.files {
            match &file.content {
                FileContent::Text(text) => {
                    out.push_str(&format!("  ~/{}:\n", file.path));
                    for line in text.lines() {
                        out.push_str(&format!("    | {line}\n"));
                    }
                }
                FileContent::Secret { key, origin } => out.push_str(&format!("  ~/{} <- {} secret {key}\n", file.path, origin.as_str())),
            }
        }
    }
    out.push_str("decisions:\n");
    for d in &plan.decisions {
        out.push_str(&format!("  {} {} {}: {}\n", d.key, d.origin.as_str(), d.action.as_str(), d.reason));
    }
    for warning in &plan.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

pub fn refusal(result: Result<Plan, PlanError>) -> PlanError {
    match result {
        Ok(plan) => panic!("expected a refusal, got a plan:\n{}", render(&Ok(plan))),
        Err(e) => e,
    }
}

pub fn ok(result: Result<Plan, PlanError>) -> Plan {
    match result {
        Ok(plan) => plan,
        Err(e) => panic!("expected a plan, got {}: {e}", e.code()),
    }
}
