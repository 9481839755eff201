//! `wsd plan`: the planner's offline dry run, as JSON (`--json`, the same as `GET …/plan`) or as tables.

use std::collections::BTreeSet;

use clap::Args;
use comfy_table::{ContentArrangement, Table, presets};
use wsd_core::plan::{
    CredentialDelivery, DeliveryChoice, DeliverySetBy, PlatformSettings, Policy, SecretNames, WorkspaceId, WorkspaceSpec,
};
use wsd_core::{EnvKey, PlanReport};

use crate::input::{load_registry, parse_secrets};
use crate::{Failure, RegistrySource};

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The workspace's runtime (see `wsd registry show`).
    #[arg(long)]
    runtime: String,
    /// The workspace's model id.
    #[arg(long)]
    model: String,
    /// An org-wide secret the workspace inherits, as KEY=VALUE. Repeatable.
    #[arg(long = "org-secret", value_name = "KEY=VALUE")]
    org_secrets: Vec<String>,
    /// A secret set on the workspace itself, as KEY=VALUE. Repeatable. Overrides the org
    /// secret of the same KEY.
    #[arg(long = "workspace-secret", value_name = "KEY=VALUE")]
    workspace_secrets: Vec<String>,
    /// The metering proxy's root URL as workspaces reach it; without it, platform-managed
    /// models are refused (MISSING_PLATFORM_PROXY).
    #[arg(long, value_name = "URL")]
    platform_proxy: Option<String>,
    /// An extra operator-scope key that org secrets may not carry. Repeatable.
    #[arg(long = "forbidden-key", value_name = "KEY")]
    forbidden_keys: Vec<EnvKey>,
    /// An extra operator-scope key prefix. Repeatable.
    #[arg(long = "forbidden-prefix", value_name = "PREFIX")]
    forbidden_prefixes: Vec<String>,
    /// Plan a runtime on a provider that no real CLI was verified on (with a warning)
    /// instead of refusing it with UNVERIFIED_RUNTIME_PROVIDER.
    #[arg(long)]
    allow_unverified: bool,
    /// How a BYOK workspace gets its key, as its org would choose: `direct` (the workspace
    /// holds it) or `proxy` (wsd keeps it; the workspace gets wsd's proxy and a usage token,
    /// so --platform-proxy is needed). Without it: the platform's default, `direct`.
    #[arg(long, value_name = "direct|proxy", value_parser = parse_delivery)]
    credential_delivery: Option<CredentialDelivery>,
    /// The workspace id written into the proxy attribution header.
    #[arg(long, value_name = "ID", default_value = "dry-run")]
    workspace_id: String,
    #[command(flatten)]
    registry: RegistrySource,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PlanArgs) -> Result<(), Failure> {
    let registry = load_registry(args.registry.registry.as_deref())?;
    let org = parse_secrets("--org-secret", &args.org_secrets)?;
    let workspace = parse_secrets("--workspace-secret", &args.workspace_secrets)?;
    let id = WorkspaceId::new(&args.workspace_id).map_err(|e| Failure::Usage(format!("--workspace-id: {e}")))?;
    if let Some(url) = &args.platform_proxy
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(Failure::Usage(format!("--platform-proxy: `{url}` is not an http(s) URL")));
    }

    let delivery = match args.credential_delivery {
        Some(delivery) => DeliveryChoice { delivery, set_by: DeliverySetBy::Org },
        None => DeliveryChoice::default(),
    };
    let spec = WorkspaceSpec { id, runtime: args.runtime, model: args.model, delivery };
    let names =
        SecretNames { org: org.keys().cloned().collect::<BTreeSet<_>>(), workspace: workspace.keys().cloned().collect::<BTreeSet<_>>() };
    let platform = args.platform_proxy.map(|proxy_base_url| PlatformSettings { proxy_base_url });
    let policy = Policy {
        forbidden_keys: args.forbidden_keys.into_iter().collect(),
        forbidden_prefixes: args.forbidden_prefixes,
        allow_unverified: args.allow_unverified,
    };

    let result = wsd_core::plan(&registry, &spec, &names, platform.as_ref(), &policy);
    let report = PlanReport::new(&result);
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| Failure::Usage(format!("cannot render JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render_human(&spec.runtime, &spec.model, &report, result.as_ref().ok().map(|p| p.derivation.as_str())));
    }
    if report.ok { Ok(()) } else { Err(Failure::Refused) }
}

fn parse_delivery(text: &str) -> Result<CredentialDelivery, String> {
    match text {
        "direct" => Ok(CredentialDelivery::Direct),
        "proxy" => Ok(CredentialDelivery::Proxy),
        other => Err(format!("`{other}` is neither `direct` nor `proxy`")),
    }
}

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled).set_header(header.to_vec());
    table
}

/// The plan as a person reads it: the verdict first, then the env, files and decisions.
pub fn render_human(runtime: &str, model: &str, report: &PlanReport, derivation: Option<&str>) -> String {
    let mut out = format!("Plan for a {runtime} workspace on model `{model}`\n");
    if let Some(error) = &report.error {
        out.push_str(&format!("\nREFUSED  {}\n  {}\n", error.code, error.message));
        if let Some(provider) = &report.provider {
            out.push_str(&format!("  provider: {provider}\n"));
        }
        return out;
    }
    let proxied = report.delivery.as_ref().and_then(|d| d.proxied.as_ref());
    let routing = match (report.routing.map(|r| r.as_str()), proxied) {
        (Some("platform"), _) => "platform (through wsd's metering proxy, with the workspace's usage token)",
        (_, Some(_)) => "byok (the org's or the user's own key, kept in wsd and sent by its proxy)",
        _ => "byok (straight to the vendor, with the org's or the user's own key)",
    };
    out.push_str(&format!("  routing:  {routing}\n"));
    out.push_str(&format!("  provider: {}\n", report.provider.as_deref().unwrap_or("-")));
    if let Some(why) = derivation {
        out.push_str(&format!("  because:  {why}\n"));
    }
    if !report.verified_on.is_empty() {
        out.push_str(&format!("  verified: {runtime} {} on this provider\n", report.verified_on.join(", ")));
    }
    if let Some(delivery) = &report.delivery {
        out.push_str(&format!("  delivery: {}\n", delivery.reason));
    }
    if let Some(proxied) = proxied {
        out.push_str(&format!("  proxy sends: the {} secret {} as {}\n", proxied.origin.as_str(), proxied.key, proxied.sent_as));
    }
    if let Some(credential) = &report.credential {
        out.push_str(&format!("  parity:   the runtime sends {} from {} as {}\n", credential.from, credential.via, credential.sent_as));
    }

    let mut env = table(&["ENV", "ORIGIN", "VALUE"]);
    for (key, entry) in &report.env {
        let value = match (&entry.value, &entry.from) {
            (Some(value), _) => value.clone(),
            (None, Some(from)) if from == key => "(secret)".to_owned(),
            (None, Some(from)) => format!("(secret, from {from})"),
            (None, None) => "(secret, minted at provision)".to_owned(),
        };
        env.add_row(vec![key.clone(), entry.origin.as_str().to_owned(), value]);
    }
    out.push_str(&format!("\nEnvironment\n{env}\n"));

    if !report.files.is_empty() {
        out.push_str("\nFiles in the workspace home\n");
        for file in &report.files {
            match (&file.content, &file.from) {
                (Some(content), _) => {
                    out.push_str(&format!("  ~/{}\n", file.path));
                    for line in content.lines() {
                        out.push_str(&format!("    | {line}\n"));
                    }
                }
                (None, from) => out.push_str(&format!("  ~/{} (secret, from {}, mode 0600)\n", file.path, from.as_deref().unwrap_or("-"))),
            }
        }
    }

    let mut decisions = table(&["KEY", "ORIGIN", "ACTION", "REASON"]);
    for d in &report.decisions {
        decisions.add_row(vec![d.key.to_string(), d.origin.as_str().to_owned(), d.action.as_str().to_owned(), d.reason.to_string()]);
    }
    out.push_str(&format!("\nDecisions\n{decisions}\n"));
    for warning in &report.warnings {
        out.push_str(&format!("\nwarning: {warning}\n"));
    }
    out
}
