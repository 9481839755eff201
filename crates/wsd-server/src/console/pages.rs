//! The console's pages, rendered on the server (`maud`: every value is HTML-escaped unless
//! marked otherwise, and nothing here marks one). No script; one stylesheet of its own.

use maud::{DOCTYPE, Markup, html};
use wsd_core::PlanReport;
use wsd_store::Workspace;

use crate::auth::Caller;

/// One page: the header with the signed-in user and a sign-out form, then `body`.
/// Who looks at a page: the caller, the session's CSRF token for its forms, and how the
/// header names them.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub caller: &'a Caller,
    pub csrf: &'a str,
    pub label: &'a str,
}

pub fn layout(title: &str, signed_in: Option<Viewer<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · wsd" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                header {
                    a.brand href="/console/workspaces" { "wsd" }
                    @if let Some(Viewer { caller, csrf, label }) = signed_in {
                        nav {
                            a href="/console/workspaces" { "Workspaces" }
                            @if let Some(org) = caller.org_limit() {
                                " " a href=(format!("/console/orgs/{org}/secrets")) { "Secrets" }
                                " " a href=(format!("/console/orgs/{org}/usage")) { "Usage" }
                            } @else {
                                " " a href="/console/orgs" { "Orgs" }
                            }
                        }
                        span.who { (label) }
                        form.inline method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn sign_in(form_token: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            p { "Paste an API token: an org token shows that org, the admin token every org. "
                "The token is exchanged for a session; it is not kept in the browser." }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="form" value=(form_token);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A workspace's row: the workspace and what its current plan says (provider, routing),
/// or the code of its refusal.
#[derive(Debug)]
pub struct Row {
    pub workspace: Workspace,
    pub org_name: String,
    pub provider: Option<String>,
    pub routing: Option<String>,
    pub refused: Option<String>,
    pub stale: Option<bool>,
}

/// The filters of the workspaces page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Filters {
    pub status: Option<String>,
    pub runtime: Option<String>,
    pub q: Option<String>,
}

/// Where a new workspace can be made: the orgs it may belong to and the registry's runtimes.
#[derive(Debug)]
pub struct CreateForm<'a> {
    pub orgs: &'a [wsd_store::Org],
    pub runtimes: Vec<String>,
}

pub fn workspaces(viewer: Viewer<'_>, rows: &[Row], filters: &Filters, total: usize, create: &CreateForm<'_>) -> Markup {
    let csrf = viewer.csrf;
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    layout(
        "Workspaces",
        Some(viewer),
        html! {
            h1 { "Workspaces" }
            form.filters method="get" action="/console/workspaces" {
                label { "Name " input type="search" name="q" value=(value(&filters.q)); }
                label { "Status "
                    select name="status" {
                        @for status in ["", "created", "running", "stopped", "failed"] {
                            option value=(status) selected[filters.status.as_deref().unwrap_or_default() == status] {
                                @if status.is_empty() { "any" } @else { (status) }
                            }
                        }
                    }
                }
                label { "Runtime " input type="text" name="runtime" value=(value(&filters.runtime)); }
                button type="submit" { "Filter" }
            }
            details.create open[total == 0] {
                summary { "New workspace" }
                form.stacked method="post" action="/console/workspaces" {
                    input type="hidden" name="csrf" value=(csrf);
                    @if create.orgs.len() == 1 {
                        input type="hidden" name="org" value=(create.orgs[0].id);
                    } @else {
                        label for="org" { "Org" }
                        select #org name="org" { @for org in create.orgs { option value=(org.id) { (org.name) } } }
                    }
                    label for="name" { "Name" }
                    input #name type="text" name="name" required;
                    label for="runtime" { "Runtime" }
                    select #runtime name="runtime" { @for runtime in &create.runtimes { option value=(runtime) { (runtime) } } }
                    label for="model" { "Model" }
                    input #model type="text" name="model" required placeholder="MiniMax-M2.7, minimax/MiniMax-M2.7, gpt-5.5 …";
                    button type="submit" { "Create" }
                    p.hint { "Its plan is checked first: a workspace whose plan would be refused is not made, and the refusal says why." }
                }
            }
            @if total == 0 {
                section.empty {
                    p { "No workspaces yet." }
                    p { "Create one above, with " code { "wsd ws create --org ORG --name NAME --runtime claude-code --model MODEL" }
                        " or with " code { "POST /v1/orgs/{org}/workspaces" } "; its plan is checked before it is made." }
                }
            } @else if rows.is_empty() {
                p.empty { "No workspace matches these filters (" (total) " in all)." }
            } @else {
                table {
                    thead { tr { th { "Name" } th { "Org" } th { "Runtime" } th { "Model" } th { "Provider" } th { "Routing" }
                        th { "Status" } th { "Plan" } th { "Backend" } th { "Last change (UTC)" } } }
                    tbody {
                        @for row in rows {
                            tr {
                                td { a href=(format!("/console/orgs/{}/workspaces/{}", row.workspace.org_id, row.workspace.id)) { (row.workspace.name) } }
                                td { (row.org_name) }
                                td { (row.workspace.runtime) }
                                td { code { (row.workspace.model) } }
                                td { (row.provider.as_deref().unwrap_or("—")) }
                                td { (row.routing.as_deref().unwrap_or("—")) }
                                td { span class=(format!("status {}", row.workspace.status.as_str())) { (row.workspace.status.as_str()) } }
                                td {
                                    @if let Some(code) = &row.refused { span.refused { "refused: " code { (code) } } }
                                    @else if row.stale == Some(true) { span.stale { "stale" } }
                                    @else if row.stale == Some(false) { "current" }
                                    @else { "—" }
                                }
                                td { (row.workspace.backend.as_deref().unwrap_or("—")) }
                                td { (timestamp(row.workspace.updated_at)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM`.
pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rest / 3600, rest % 3600 / 60)
}

/// A workspace: its plan explained, its actions, its last output.
/// What a workspace's page shows.
pub struct WorkspacePage<'a> {
    pub workspace: &'a Workspace,
    /// Whether its plan would now differ from the running one; `None` when not running.
    pub stale: Option<bool>,
    pub plan: &'a PlanReport,
    /// Its own secrets (names and metadata).
    pub secrets: &'a [wsd_store::SecretMeta],
    /// The last lines of its output.
    pub logs: &'a [String],
}

pub fn workspace(viewer: Viewer<'_>, page: &WorkspacePage<'_>) -> Markup {
    let csrf = viewer.csrf;
    let WorkspacePage { workspace, stale, plan, secrets, logs } = *page;
    let base = format!("/console/orgs/{}/workspaces/{}", workspace.org_id, workspace.id);
    layout(
        &workspace.name,
        Some(viewer),
        html! {
            p.crumbs { a href="/console/workspaces" { "Workspaces" } " / " (workspace.name) }
            h1 { (workspace.name) }
            dl.facts {
                dt { "Runtime" } dd { (workspace.runtime) }
                dt { "Model" } dd { code { (workspace.model) } }
                dt { "Status" } dd { span class=(format!("status {}", workspace.status.as_str())) { (workspace.status.as_str()) }
                    @if stale == Some(true) { " " span.stale { "stale: its plan would now differ; restart to apply" } } }
                dt { "Backend" } dd { (workspace.backend.as_deref().unwrap_or("—")) }
                @if let Some(error) = &workspace.last_error {
                    dt { "Last error" } dd.error { code { (error.code) } " " (error.message) }
                }
            }
            section.actions {
                @for (action, label) in [("provision", "Provision"), ("restart", "Restart"), ("stop", "Stop")] {
                    form.inline method="post" action=(format!("{base}/{action}")) {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { (label) }
                    }
                }
            }
            h2 { "Plan" }
            @if let Some(error) = &plan.error {
                section.refusal role="alert" {
                    p { "The plan is refused: " code { (error.code.as_str()) } }
                    p { (error.message) }
                    p.hint { (hint(error.code.as_str())) }
                }
            } @else {
                dl.facts {
                    dt { "Provider" } dd { (plan.provider.as_deref().unwrap_or("—")) }
                    dt { "Routing" } dd { (plan.routing.map(|r| format!("{r:?}").to_lowercase()).unwrap_or_default()) }
                    @if let Some(delivery) = &plan.delivery {
                        dt { "Credential delivery" } dd { (delivery.delivery.as_str()) " — " (delivery.reason) }
                    }
                    @if let Some(credential) = &plan.credential {
                        dt { "The one credential" } dd { (credential.from) ", read from " code { (credential.via) } ", sent as " code { (credential.sent_as) } }
                        dt { "Parity" } dd { "proven: the runtime sends exactly this credential to this provider" }
                    }
                    @if !plan.verified_on.is_empty() {
                        dt { "Verified on" } dd { (plan.verified_on.join(", ")) }
                    }
                }
                @if !plan.warnings.is_empty() {
                    ul.warnings { @for warning in &plan.warnings { li { (warning) } } }
                }
                h3 { "Environment" }
                table {
                    thead { tr { th { "Name" } th { "Origin" } th { "From" } } }
                    tbody {
                        @for (name, entry) in &plan.env {
                            tr { td { code { (name) } } td { (entry.origin.as_str()) }
                                td { @if let Some(from) = &entry.from { (from) } @else if let Some(value) = &entry.value { code { (value) } } } }
                        }
                    }
                }
                @if !plan.files.is_empty() {
                    h3 { "Files written into the home" }
                    ul { @for file in &plan.files { li { code { (file.path) } @if let Some(from) = &file.from { " (from " (from) ")" } } } }
                }
            }
            h3 { "Decisions" }
            table {
                thead { tr { th { "Key" } th { "Origin" } th { "Action" } th { "Why" } } }
                tbody {
                    @for decision in &plan.decisions {
                        tr class=(decision.action.as_str()) {
                            td { code { (decision.key.as_str()) } } td { (decision.origin.as_str()) }
                            td { (decision.action.as_str()) } td { (decision.reason.to_string()) }
                        }
                    }
                }
            }
            h2 { "This workspace's secrets" }
            p.hint { "They override the org's secrets of the same name, for this workspace only." }
            @if secrets.is_empty() { p.empty { "None: the workspace has the org's secrets its plan keeps." } } @else {
                (secret_table(secrets, &format!("{base}/secrets")))
            }
            (secret_form(csrf, &format!("{base}/secrets"), "ANTHROPIC_API_KEY"))
            h2 { "Last output" }
            @if logs.is_empty() { p.empty { "Nothing yet." } } @else { pre.logs { @for line in logs { (line) "\n" } } }
        },
    )
}

/// What to do about a refusal, by its code.
fn hint(code: &str) -> &'static str {
    match code {
        "MISSING_BYOK_CREDENTIAL" => "Set the provider's key (the message names it) as an org secret, or as this workspace's own.",
        "UNREGISTERED_MODEL_FOR_RUNTIME" | "MODEL_REQUIRED" => {
            "Switch the workspace to a model its runtime runs (`wsd registry derive --runtime R --model M` says which)."
        }
        "AMBIGUOUS_PROVIDER" => "Name the provider in the model (`provider/model`), or keep only one provider's key.",
        "PROTECTED_ENV_KEY" | "FORBIDDEN_TENANT_ENV_KEY" => "Delete the secret the message names: no tenant may set it.",
        "MISSING_PLATFORM_PROXY" | "CREDENTIAL_PROXY_UNAVAILABLE" => {
            "The operator sets [platform] proxy_base_url; until then use a model of your own provider with your key."
        }
        _ => "The message says what is missing; docs/error-codes.md says what each code means.",
    }
}

/// An error a person reads: what happened, its code, what to do, and the way back.
pub fn error(viewer: Option<Viewer<'_>>, status: u16, code: &str, message: &str) -> Markup {
    layout(
        "Error",
        viewer,
        html! {
            h1 { @if status == 422 { "Refused" } @else { "Something went wrong" } }
            section.refusal role="alert" {
                p { "HTTP " (status) " · " code { (code) } }
                p { (message) }
                p.hint { (hint(code)) }
            }
            p { a href="/console/workspaces" { "Back to the workspaces" } }
        },
    )
}

/// An org's secrets: names, scope, key version and when set; a form to set or replace one
/// (the value in a password field) and a delete button per secret that asks first.
pub fn secrets(viewer: Viewer<'_>, org: &wsd_store::Org, secrets: &[wsd_store::SecretMeta]) -> Markup {
    let csrf = viewer.csrf;
    let base = format!("/console/orgs/{}/secrets", org.id);
    layout(
        "Secrets",
        Some(viewer),
        html! {
            h1 { "Secrets of " (org.name) }
            p.hint { "Values are stored encrypted and never shown again; a workspace gets exactly those its plan keeps. A workspace's own secrets are on its page." }
            h2 { "Org secrets" }
            @if secrets.is_empty() {
                p.empty { "No org secret yet. Set your provider's key below (e.g. " code { "MINIMAX_API_KEY" } ")." }
            } @else {
                (secret_table(secrets, &base))
            }
            (secret_form(csrf, &base, "MINIMAX_API_KEY"))
        },
    )
}

/// Secrets' names and metadata, each with a link to delete it (under `base`).
fn secret_table(secrets: &[wsd_store::SecretMeta], base: &str) -> Markup {
    html! {
        table {
            thead { tr { th { "Name" } th { "Key version" } th { "Set (UTC)" } th { "Replaced (UTC)" } th { "By" } th {} } }
            tbody {
                @for secret in secrets {
                    tr {
                        td { code { (secret.key.as_str()) } }
                        td { (secret.key_version) }
                        td { (timestamp(secret.created_at)) }
                        td { (timestamp(secret.updated_at)) }
                        td { (secret.updated_by.as_deref().unwrap_or("—")) }
                        td { a href=(format!("{base}/{}/delete", secret.key.as_str())) { "Delete…" } }
                    }
                }
            }
        }
    }
}

/// The form that sets or replaces a secret: the value through a password field.
fn secret_form(csrf: &str, action: &str, example: &str) -> Markup {
    html! {
        h3 { "Set or replace a secret" }
        form.stacked method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            label for="key" { "Name" }
            input #key type="text" name="key" required pattern="[A-Z_][A-Z0-9_]*" placeholder=(example);
            label for="value" { "Value" }
            input #value type="password" name="value" required autocomplete="off";
            button type="submit" { "Save" }
        }
    }
}

/// The question before a secret of `holder` (e.g. "org acme") is deleted; the form posts
/// to `action`, cancelling returns to `back`.
pub fn confirm_delete(viewer: Viewer<'_>, holder: &str, key: &str, action: &str, back: &str) -> Markup {
    let csrf = viewer.csrf;
    layout(
        "Delete a secret",
        Some(viewer),
        html! {
            h1 { "Delete " code { (key) } "?" }
            p { "It is the secret of " (holder) ". Workspaces whose plan keeps it lose it at their next start; a workspace that needs it is then refused with its code." }
            form.inline method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                button.danger type="submit" { "Delete" }
            }
            " " a href=(back) { "Cancel" }
        },
    )
}

/// A provider of a runtime and the CLI versions the pair was verified on.
pub type VerifiedPair = (String, Vec<String>);

/// What an operator sees beside the orgs.
#[derive(Debug)]
pub struct Operations {
    /// (provider, the key's name, whether the platform holds it).
    pub platform_keys: Vec<(String, String, bool)>,
    /// Each runtime with its providers.
    pub runtimes: Vec<(String, Vec<VerifiedPair>)>,
    /// (backend, isolation, why it cannot run workspaces).
    pub backends: Vec<(String, String, Option<String>)>,
}

/// The operator's page: orgs, platform keys present or missing (names only), the registry's
/// runtimes with the CLI versions each pair was verified on, the backends' health.
pub fn orgs(viewer: Viewer<'_>, orgs: &[wsd_store::Org], ops: &Operations) -> Markup {
    layout(
        "Operations",
        Some(viewer),
        html! {
            h1 { "Orgs" }
            @if orgs.is_empty() {
                p.empty { "No org yet: " code { "wsd org create NAME" } "." }
            } @else {
                table {
                    thead { tr { th { "Name" } th { "Id" } th { "Created (UTC)" } th {} } }
                    tbody {
                        @for org in orgs {
                            tr { td { (org.name) } td { code { (org.id) } } td { (timestamp(org.created_at)) }
                                td { a href=(format!("/console/orgs/{}/secrets", org.id)) { "Secrets" } " "
                                    a href=(format!("/console/orgs/{}/usage", org.id)) { "Usage" } } }
                        }
                    }
                }
            }
            h2 { "Platform keys" }
            p.hint { "What platform-routed calls to each provider are sent with (platform secrets; names only): "
                code { "wsd secret set --platform NAME" } "." }
            table {
                thead { tr { th { "Provider" } th { "Key" } th { "Held" } } }
                tbody {
                    @for (provider, key, held) in &ops.platform_keys {
                        tr { td { (provider) } td { code { (key) } } td { @if *held { span.status.running { "present" } } @else { span.status.failed { "missing" } } } }
                    }
                }
            }
            h2 { "Runtimes" }
            table {
                thead { tr { th { "Runtime" } th { "Provider" } th { "Verified on (CLI versions)" } } }
                tbody {
                    @for (runtime, providers) in &ops.runtimes {
                        @for (provider, versions) in providers {
                            tr { td { (runtime) } td { (provider) }
                                td { @if versions.is_empty() { span.refused { "never verified" } } @else { (versions.join(", ")) } } }
                        }
                    }
                }
            }
            h2 { "Backends" }
            table {
                thead { tr { th { "Backend" } th { "Isolation" } th { "Health" } } }
                tbody {
                    @for (name, isolation, unavailable) in &ops.backends {
                        tr { td { (name) } td { (isolation) }
                            td { @if let Some(reason) = unavailable { span.refused { "cannot run workspaces: " (reason) } } @else { "available" } } }
                    }
                }
            }
        },
    )
}

/// Micro-dollars as dollars; an unknown price says so, never 0.
fn cost(micros: Option<i64>, unpriced: i64) -> String {
    match (micros, unpriced) {
        (Some(m), 0) => format!("${}.{:04}", m / 1_000_000, (m % 1_000_000) / 100),
        (Some(m), n) => format!("${}.{:04} + {n} unpriced", m / 1_000_000, (m % 1_000_000) / 100),
        (None, _) => "unknown (no price)".to_owned(),
    }
}

/// What the usage page shows.
#[derive(Debug)]
pub struct Usage {
    pub days: u32,
    /// Every day of the window, oldest first: (date, tokens, cost).
    pub by_day: Vec<(String, i64, Option<i64>)>,
    /// (name, requests, tokens, cost, unpriced), most tokens first.
    pub by_workspace: Vec<(String, i64, i64, Option<i64>, i64)>,
    pub by_model: Vec<(String, i64, i64, Option<i64>, i64)>,
    pub latest: Vec<(wsd_store::UsageRecord, String)>,
    pub budgets: Vec<(wsd_store::BudgetStanding, String)>,
}

/// Tokens by day as bars: an inline SVG (no script, no style attribute).
fn day_chart(days: &[(String, i64, Option<i64>)]) -> Markup {
    let (width, height) = (760.0_f64, 160.0_f64);
    let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1) as f64;
    let slot = width / days.len().max(1) as f64;
    html! {
        svg.chart viewBox=(format!("0 0 {width} {}", height + 18.0)) width="100%" role="img" aria-label="tokens by day" {
            @for (i, (date, tokens, _)) in days.iter().enumerate() {
                @let h = (*tokens as f64 / max * height).max(if *tokens > 0 { 1.0 } else { 0.0 });
                rect x=(format!("{:.1}", i as f64 * slot + 1.0)) y=(format!("{:.1}", height - h)) width=(format!("{:.1}", (slot - 2.0).max(1.0)))
                    height=(format!("{h:.1}")) fill="#1f5fbf" { title { (date) ": " (tokens) " tokens" } }
            }
            @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                text x="0" y=(height + 14.0) font-size="11" fill="#5d6773" { (first.0) }
                text x=(width) y=(height + 14.0) font-size="11" fill="#5d6773" text-anchor="end" { (last.0) }
            }
        }
    }
}

fn breakdown(title: &str, rows: &[(String, i64, i64, Option<i64>, i64)]) -> Markup {
    let max = rows.iter().map(|r| r.2).max().unwrap_or(0).max(1);
    html! {
        h3 { (title) }
        @if rows.is_empty() { p.empty { "No metered requests in this window." } } @else {
            table {
                thead { tr { th { "Name" } th { "Requests" } th { "Tokens" } th {} th { "Cost" } } }
                tbody {
                    @for (name, requests, tokens, micros, unpriced) in rows {
                        tr { td { (name) } td { (requests) } td { (tokens) }
                            td { meter min="0" max=(max) value=(tokens) { (tokens) } } td { (cost(*micros, *unpriced)) } }
                    }
                }
            }
        }
    }
}

pub fn usage(viewer: Viewer<'_>, org: &wsd_store::Org, usage: &Usage) -> Markup {
    let total_tokens: i64 = usage.by_day.iter().map(|d| d.1).sum();
    let total_requests: i64 = usage.by_workspace.iter().map(|r| r.1).sum();
    layout(
        "Usage",
        Some(viewer),
        html! {
            h1 { "Usage of " (org.name) }
            form.filters method="get" action=(format!("/console/orgs/{}/usage", org.id)) {
                label { "Window "
                    select name="days" {
                        @for days in [1_u32, 7, 30, 90] {
                            option value=(days) selected[days == usage.days] { "last " (days) " day" @if days > 1 { "s" } }
                        }
                    }
                }
                button type="submit" { "Show" }
            }
            p { (total_requests) " metered requests, " (total_tokens) " tokens (input and output) in the last " (usage.days) " days." }
            h2 { "Tokens by day (UTC)" }
            (day_chart(&usage.by_day))
            (breakdown("By workspace", &usage.by_workspace))
            (breakdown("By model", &usage.by_model))
            h2 { "Budgets" }
            @if usage.budgets.is_empty() { p.empty { "No budget: the operator sets them (" code { "wsd budget set" } ")." } } @else {
                table {
                    thead { tr { th { "Scope" } th { "Limit" } th { "Spent" } th { "Reserved" } th { "Remaining" } th {} th { "Resets (UTC)" } } }
                    tbody {
                        @for (standing, scope) in &usage.budgets {
                            @let unit = standing.budget.unit.as_str();
                            tr { td { (scope) ", " (unit) " per " (standing.budget.period.as_str()) }
                                td { (standing.budget.limit) } td { (standing.spent) } td { (standing.reserved) } td { (standing.remaining) }
                                td { meter min="0" max=(standing.budget.limit.max(1)) value=(standing.spent + standing.reserved) {} }
                                td { (timestamp(standing.resets_at)) } }
                        }
                    }
                }
                p.hint { "USD budgets are in micro-dollars (10⁻⁶ USD)." }
            }
            h2 { "Latest requests" }
            @if usage.latest.is_empty() { p.empty { "None yet." } } @else {
                table {
                    thead { tr { th { "At (UTC)" } th { "Workspace" } th { "Model" } th { "Routing" } th { "Status" } th { "Latency" } th { "Tokens in / out" } th { "Cost" } } }
                    tbody {
                        @for (record, workspace) in &usage.latest {
                            tr { td { (timestamp(record.at)) } td { (workspace) } td { code { (record.model) } } td { (record.routing) }
                                td { (record.status) } td { (record.latency_ms) " ms" } td { (record.input_tokens) " / " (record.output_tokens) }
                                td { (cost(record.cost_micros, i64::from(record.cost_micros.is_none()))) } }
                        }
                    }
                }
            }
        },
    )
}
