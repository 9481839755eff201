//! `wsd org|token|secret|ws|audit …`: the API from the command line. Tables for people,
//! `--json` for scripts. Secret values are read from standard input, never from arguments
//! (which other users can see in the process list), and never printed.

use std::io::Read;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};
use wsd_core::PlanReport;

use crate::Failure;
use crate::client::{Client, Connection};
use crate::plan_cmd::{render_human, table};

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an org (admin token).
    Create { name: String },
    /// List the orgs the token can see.
    List,
    /// Show one org.
    Show { org: String },
    /// Set how the org's BYOK workspaces get their keys: `direct` (the workspace holds its
    /// key), `proxy` (the key stays in wsd; the workspace holds a usage token that wsd's proxy
    /// exchanges for it), or `default` (the server's `[policy] credential_delivery`). Running
    /// workspaces change on their next provision (`wsd ws plan` shows the new plan).
    Delivery {
        org: String,
        #[arg(value_parser = ["direct", "proxy", "default"])]
        delivery: String,
    },
}

/// Whose tokens: one org's, or the admin tokens (exactly one of the two).
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct TokenScope {
    /// An org's tokens.
    #[arg(long)]
    org: Option<String>,
    /// The admin tokens (they may do everything; mint one per operator or automation).
    #[arg(long)]
    admin: bool,
}

impl TokenScope {
    fn path(&self) -> String {
        match &self.org {
            Some(org) => format!("/v1/orgs/{org}/tokens"),
            None => "/v1/admin/tokens".to_owned(),
        }
    }

    fn describe(&self) -> String {
        match &self.org {
            Some(org) => format!("for org {org}"),
            None => "(admin)".to_owned(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token (needs the admin token). It is printed once.
    Create {
        #[command(flatten)]
        scope: TokenScope,
        name: String,
    },
    /// List tokens by prefix.
    List {
        #[command(flatten)]
        scope: TokenScope,
    },
    /// Revoke a token: it stops working at once. The last admin token cannot be revoked.
    Revoke {
        #[command(flatten)]
        scope: TokenScope,
        id: String,
    },
}

/// Where a secret lives: an org, one of its workspaces, or the platform (admin).
#[derive(Debug, Args)]
pub struct SecretScope {
    /// The org.
    #[arg(long, required_unless_present = "platform")]
    org: Option<String>,
    /// A workspace of the org; without it, the secret is org-wide.
    #[arg(long, requires = "org")]
    workspace: Option<String>,
    /// The operator's platform secrets (the metering proxy's vendor keys).
    #[arg(long, conflicts_with_all = ["org", "workspace"])]
    platform: bool,
}

impl SecretScope {
    fn path(&self) -> String {
        match (&self.org, &self.workspace) {
            _ if self.platform => "/v1/platform/secrets".to_owned(),
            (Some(org), Some(ws)) => format!("/v1/orgs/{org}/workspaces/{ws}/secrets"),
            (Some(org), None) => format!("/v1/orgs/{org}/secrets"),
            (None, _) => "/v1/platform/secrets".to_owned(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret; the value is read from standard input (a trailing newline is dropped).
    ///
    /// Example: printf %s "$KEY" | wsd secret set --org ORG MINIMAX_API_KEY
    #[command(verbatim_doc_comment)]
    Set {
        #[command(flatten)]
        scope: SecretScope,
        key: String,
    },
    /// List secret names and metadata (never values).
    List {
        #[command(flatten)]
        scope: SecretScope,
    },
    /// Delete a secret.
    Delete {
        #[command(flatten)]
        scope: SecretScope,
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace. Refused (exit 3) when its plan would be refused.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        runtime: String,
        #[arg(long)]
        model: String,
    },
    /// List an org's workspaces.
    List {
        #[arg(long)]
        org: String,
    },
    /// Show one workspace.
    Show {
        #[arg(long)]
        org: String,
        id: String,
    },
    /// Show a workspace's credential plan from its stored secrets.
    Plan {
        #[arg(long)]
        org: String,
        id: String,
    },
    /// Show whether a workspace is platform-managed or BYOK.
    BillingMode {
        #[arg(long)]
        org: String,
        id: String,
    },
    /// Switch a workspace's model (validated like create).
    SetModel {
        #[arg(long)]
        org: String,
        id: String,
        model: String,
    },
    /// Start a workspace with a fresh plan (stops what runs first).
    Provision {
        #[arg(long)]
        org: String,
        id: String,
    },
    /// Restart a workspace from its stored model, with a new usage token.
    Restart {
        #[arg(long)]
        org: String,
        id: String,
    },
    /// Stop a workspace; its usage tokens stop working.
    Stop {
        #[arg(long)]
        org: String,
        id: String,
    },
    /// Show the last lines of a workspace's output.
    Logs {
        #[arg(long)]
        org: String,
        id: String,
        #[arg(long, default_value_t = 100)]
        tail: usize,
    },
    /// Delete a workspace with its secrets and tokens (stopping it first).
    Delete {
        #[arg(long)]
        org: String,
        id: String,
    },
}

/// Which of an org's audit events to list.
#[derive(Debug, clap::Args)]
pub struct AuditList {
    #[arg(long)]
    org: String,
    /// Only events after this sequence number.
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// How many events, at most 1000.
    #[arg(long, default_value_t = 100)]
    limit: i64,
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn print_rows(value: &Value, list: &str, columns: &[&str]) {
    let mut t = table(&columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>().iter().map(String::as_str).collect::<Vec<_>>());
    for item in value[list].as_array().into_iter().flatten() {
        t.add_row(columns.iter().map(|c| cell(&item[*c])).collect::<Vec<_>>());
    }
    println!("{t}");
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(map) if map.contains_key("code") => map["code"].as_str().unwrap_or("-").to_owned(),
        other => other.to_string(),
    }
}

fn print_object(value: &Value) {
    for (key, field) in value.as_object().into_iter().flatten() {
        println!("{key:>12}: {}", cell(field));
    }
}

pub fn org(connection: Connection, command: OrgCommand) -> Result<(), Failure> {
    crate::block_on(async move {
        let client = Client::new(&connection)?;
        let (value, rows) = match &command {
            OrgCommand::Create { name } => (client.call(Method::POST, "/v1/orgs", Some(json!({"name": name}))).await?, false),
            OrgCommand::List => (client.call(Method::GET, "/v1/orgs", None).await?, true),
            OrgCommand::Show { org } => (client.call(Method::GET, &format!("/v1/orgs/{org}"), None).await?, false),
            OrgCommand::Delivery { org, delivery } => {
                let body = json!({"credential_delivery": delivery});
                (client.call(Method::PUT, &format!("/v1/orgs/{org}/credential-delivery"), Some(body)).await?, false)
            }
        };
        match (connection.json, rows) {
            (true, _) => print_json(&value),
            (false, true) => print_rows(&value, "orgs", &["id", "name"]),
            (false, false) => print_object(&value),
        }
        Ok(())
    })
}

pub fn token(connection: Connection, command: TokenCommand) -> Result<(), Failure> {
    crate::block_on(async move {
        let client = Client::new(&connection)?;
        match &command {
            TokenCommand::Create { scope, name } => {
                let value = client.call(Method::POST, &scope.path(), Some(json!({"name": name}))).await?;
                if connection.json {
                    print_json(&value);
                } else {
                    let id = value["token"]["id"].as_str().unwrap_or("-");
                    println!("token {id} ({name}) {}; shown once, store it now:", scope.describe());
                    println!("{}", value["secret"].as_str().unwrap_or_default());
                }
            }
            TokenCommand::List { scope } => {
                let value = client.call(Method::GET, &scope.path(), None).await?;
                if connection.json {
                    print_json(&value)
                } else {
                    print_rows(&value, "tokens", &["id", "name", "prefix", "last_used_at", "revoked_at"])
                }
            }
            TokenCommand::Revoke { scope, id } => {
                client.call(Method::DELETE, &format!("{}/{id}", scope.path()), None).await?;
                println!("revoked token {id}");
            }
        }
        Ok(())
    })
}

fn read_value() -> Result<String, Failure> {
    let mut value = String::new();
    std::io::stdin().read_to_string(&mut value).map_err(|e| Failure::Usage(format!("cannot read the value from standard input: {e}")))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(Failure::Usage("the value read from standard input is empty".into()));
    }
    Ok(value)
}

pub fn secret(connection: Connection, command: SecretCommand) -> Result<(), Failure> {
    let value = match &command {
        SecretCommand::Set { .. } => Some(zeroize::Zeroizing::new(read_value()?)),
        _ => None,
    };
    crate::block_on(async move {
        let client = Client::new(&connection)?;
        match &command {
            SecretCommand::Set { scope, key } => {
                let body = json!({"value": value.as_deref().map(String::as_str).unwrap_or_default()});
                let meta = client.call(Method::PUT, &format!("{}/{key}", scope.path()), Some(body)).await?;
                if connection.json { print_json(&meta) } else { println!("set {key} (key version {})", cell(&meta["key_version"])) }
            }
            SecretCommand::List { scope } => {
                let value = client.call(Method::GET, &scope.path(), None).await?;
                if connection.json {
                    print_json(&value)
                } else {
                    print_rows(&value, "secrets", &["key", "key_version", "created_at", "updated_at", "updated_by"])
                }
            }
            SecretCommand::Delete { scope, key } => {
                client.call(Method::DELETE, &format!("{}/{key}", scope.path()), None).await?;
                println!("deleted {key}");
            }
        }
        Ok(())
    })
}

pub fn workspace(connection: Connection, command: WorkspaceCommand) -> Result<(), Failure> {
    crate::block_on(async move {
        let client = Client::new(&connection)?;
        let value = match &command {
            WorkspaceCommand::Create { org, name, runtime, model } => {
                client
                    .call(
                        Method::POST,
                        &format!("/v1/orgs/{org}/workspaces"),
                        Some(json!({"name": name, "runtime": runtime, "model": model})),
                    )
                    .await?
            }
            WorkspaceCommand::List { org } => client.call(Method::GET, &format!("/v1/orgs/{org}/workspaces"), None).await?,
            WorkspaceCommand::Show { org, id } => client.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await?,
            WorkspaceCommand::Plan { org, id } => client.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}/plan"), None).await?,
            WorkspaceCommand::BillingMode { org, id } => {
                client.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}/llm-billing-mode"), None).await?
            }
            WorkspaceCommand::SetModel { org, id, model } => {
                client.call(Method::PATCH, &format!("/v1/orgs/{org}/workspaces/{id}"), Some(json!({"model": model}))).await?
            }
            WorkspaceCommand::Provision { org, id } => {
                client.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await?
            }
            WorkspaceCommand::Restart { org, id } => {
                client.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/restart"), None).await?
            }
            WorkspaceCommand::Stop { org, id } => client.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/stop"), None).await?,
            WorkspaceCommand::Logs { org, id, tail } => {
                let value = client.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}/logs?tail={tail}"), None).await?;
                if connection.json {
                    print_json(&value);
                } else {
                    for line in value["lines"].as_array().into_iter().flatten() {
                        println!("{}", line.as_str().unwrap_or_default());
                    }
                }
                return Ok(());
            }
            WorkspaceCommand::Delete { org, id } => {
                client.call(Method::DELETE, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await?;
                println!("deleted workspace {id}");
                return Ok(());
            }
        };
        if connection.json {
            print_json(&value);
        } else {
            match &command {
                WorkspaceCommand::List { .. } => {
                    print_rows(&value, "workspaces", &["id", "name", "runtime", "model", "status", "last_error"])
                }
                WorkspaceCommand::Plan { org, id } => {
                    let report: PlanReport =
                        serde_json::from_value(value).map_err(|e| Failure::Usage(format!("unexpected plan from the server: {e}")))?;
                    let workspace = client.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await?;
                    print!("{}", render_human(&cell(&workspace["runtime"]), &cell(&workspace["model"]), &report, None));
                    if !report.ok {
                        return Err(Failure::Refused);
                    }
                }
                _ => print_object(&value),
            }
        }
        Ok(())
    })
}

pub fn audit(connection: Connection, list: AuditList) -> Result<(), Failure> {
    crate::block_on(async move {
        let client = Client::new(&connection)?;
        let AuditList { org, after, limit } = list;
        let value = client.call(Method::GET, &format!("/v1/orgs/{org}/audit?after={after}&limit={limit}"), None).await?;
        if connection.json {
            print_json(&value)
        } else {
            print_rows(&value, "events", &["seq", "at", "actor", "action", "target"])
        }
        Ok(())
    })
}
