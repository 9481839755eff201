//! `wsd registry check|show|derive`: the provider registry from the command line.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use wsd_core::registry::CredentialSource;
use wsd_core::{EnvKey, Registry, derive};

use crate::input::load_registry;
use crate::{Failure, RegistrySource};
use wsd_server::registry_view;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Validate a registry file (or the embedded registry) and summarise it.
    ///
    /// Every problem is reported at once, each naming its entry and field. Exit status 0
    /// when valid, 2 when not.
    Check {
        /// The registry YAML file; the embedded registry when omitted.
        file: Option<PathBuf>,
    },
    /// Show the providers and runtimes of the registry in use.
    Show {
        #[command(flatten)]
        registry: RegistrySource,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Show which provider a model resolves to on a runtime.
    ///
    /// Exit status 0 when a provider was derived, 3 when derivation refused.
    Derive {
        #[arg(long)]
        runtime: String,
        #[arg(long)]
        model: String,
        /// The name of a credential that is set, used to break ties between providers
        /// that list the same model. Repeatable.
        #[arg(long = "credential", value_name = "KEY")]
        credentials: Vec<EnvKey>,
        #[command(flatten)]
        registry: RegistrySource,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: RegistryCommand) -> Result<(), Failure> {
    match command {
        RegistryCommand::Check { file } => {
            let registry = load_registry(file.as_deref())?;
            let source = file.map_or_else(|| "embedded registry".to_owned(), |f| f.display().to_string());
            println!(
                "{source}: OK ({} providers, {} runtimes, {} LLM credential keys, {} routing keys)",
                registry.providers().len(),
                registry.runtimes().count(),
                registry.credential_keys().len(),
                registry.routing_keys().len()
            );
            Ok(())
        }
        RegistryCommand::Show { registry, json } => {
            let registry = load_registry(registry.registry.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&registry_view::registry(&registry)).unwrap_or_default());
            } else {
                print!("{}", render_registry(&registry));
            }
            Ok(())
        }
        RegistryCommand::Derive { runtime, model, credentials, registry, json } => {
            let registry = load_registry(registry.registry.as_deref())?;
            let available: BTreeSet<EnvKey> = credentials.into_iter().collect();
            let result = derive(&registry, &runtime, &model, &available);
            let value = match &result {
                Ok(d) => {
                    json!({"ok": true, "provider": d.provider.name, "platform": d.provider.platform, "reason": d.explain(&model), "error": null})
                }
                Err(e) => {
                    json!({"ok": false, "provider": null, "platform": null, "reason": null, "error": {"code": e.code(), "message": e.to_string()}})
                }
            };
            match (&result, json) {
                (_, true) => println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default()),
                (Ok(d), false) => println!(
                    "{} ({})\n  because: {}",
                    d.provider.name,
                    if d.provider.platform { "platform-managed" } else { "byok" },
                    d.explain(&model)
                ),
                (Err(e), false) => println!("REFUSED  {}\n  {e}", e.code()),
            }
            result.map(|_| ()).map_err(|_| Failure::Refused)
        }
    }
}

fn render_registry(registry: &Registry) -> String {
    let mut providers = crate::plan_cmd::table(&["PROVIDER", "PROTOCOL", "AUTH ENV (any one)", "UPSTREAM VENDOR"]);
    for p in registry.providers() {
        let name = if p.platform { format!("{} (platform arm)", p.name) } else { p.name.clone() };
        let auth: Vec<&str> = p.auth_env.iter().map(EnvKey::as_str).collect();
        providers.add_row(vec![name, p.protocol.as_str().to_owned(), auth.join(", "), p.upstream_vendor.clone().unwrap_or_default()]);
    }
    let mut runtimes = crate::plan_cmd::table(&["RUNTIME", "CREDENTIAL PRECEDENCE", "PROVIDERS (listed models; * verified)", "REQUIRES"]);
    for r in registry.runtimes() {
        let precedence: Vec<String> = r
            .credential_precedence
            .iter()
            .map(|tier| {
                tier.iter()
                    .map(|c| match &c.source {
                        CredentialSource::Env(k) => k.to_string(),
                        CredentialSource::File(f) => format!("~/{f}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" + ")
            })
            .collect();
        let natives: Vec<String> = registry
            .native_providers(r)
            .map(|(p, models)| {
                let verified = if registry.verified_on(r, &p.name).is_empty() { "" } else { "*" };
                format!("{}{verified} ({})", p.name, models.len())
            })
            .collect();
        runtimes.add_row(vec![r.name.clone(), precedence.join(" > "), natives.join(", "), r.requires.clone().unwrap_or_default()]);
    }
    format!("Providers\n{providers}\n\nRuntimes\n{runtimes}\n")
}
