//! `wsd usage …` and `wsd budget …`: what platform-routed workspaces used through the
//! metering proxy, and the token budgets that cap it. API client commands, like `wsd ws`.

use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};
use wsd_store::calendar::{format_utc, parse_date};

use crate::Failure;
use crate::client::{Client, Connection};
use crate::plan_cmd::table;

/// A time on the command line: `YYYY-MM-DD` (00:00 UTC that day) or unix milliseconds.
fn parse_time(text: &str) -> Result<i64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| format!("`{text}` is too large"));
    }
    parse_date(text).ok_or_else(|| format!("`{text}` is neither a date (YYYY-MM-DD, UTC) nor unix milliseconds"))
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Tokens and requests by workspace and model over a time range.
    ///
    /// Example: wsd usage summary --org ORG --from 2026-11-01 --to 2026-12-01
    #[command(verbatim_doc_comment)]
    Summary {
        #[arg(long)]
        org: String,
        /// Start, inclusive: YYYY-MM-DD (UTC) or unix milliseconds. Default: 30 days ago.
        #[arg(long, value_parser = parse_time)]
        from: Option<i64>,
        /// End, exclusive: YYYY-MM-DD (UTC) or unix milliseconds. Default: now.
        #[arg(long, value_parser = parse_time)]
        to: Option<i64>,
    },
    /// The latest metered requests, newest first: status, tokens, latency.
    ///
    /// Status is upstream's, or for a request that did not finish: 504 the provider went
    /// silent, 502 its connection or stream broke, 499 the client left.
    Requests {
        #[arg(long)]
        org: String,
        /// One workspace's requests only.
        #[arg(long)]
        workspace: Option<String>,
        /// How many (at most 1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Period {
    /// The UTC day.
    Day,
    /// The ISO week, from Monday 00:00 UTC.
    Week,
    /// The calendar month, UTC.
    Month,
}

impl Period {
    fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Set a budget of an org, or of one of its workspaces (admin token): tokens (input +
    /// output) or US dollars per day, week or month (UTC). It replaces the budget of the same
    /// scope, unit and period. Every budget that applies to a request must hold: the proxy
    /// reserves each request's estimate at admission and answers 402 BUDGET_EXCEEDED before
    /// calling the provider when spent + reserved + the estimate would pass a limit.
    ///
    /// Examples:
    ///   wsd budget set --org ORG --period month --tokens 50000000
    ///   wsd budget set --org ORG --workspace WS --period day --usd 12.50
    #[command(verbatim_doc_comment)]
    Set {
        #[arg(long)]
        org: String,
        /// The workspace it limits; the whole org when left out.
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long, value_enum)]
        period: Period,
        /// A limit in tokens.
        #[arg(long, conflicts_with = "usd", required_unless_present = "usd")]
        tokens: Option<u64>,
        /// A limit in US dollars (to the micro-dollar: 12.5, 0.000001).
        #[arg(long, value_parser = parse_usd)]
        usd: Option<i64>,
    },
    /// Show an org's budgets: for each, what was spent and is reserved in its current
    /// window, what remains and when it renews.
    #[command(alias = "list")]
    Show {
        #[arg(long)]
        org: String,
    },
    /// Remove a budget (admin token); its id is in `wsd budget show`.
    Remove {
        #[arg(long)]
        org: String,
        id: String,
    },
}

/// `12.5` → 12_500_000 micro-dollars; at most six decimals, never negative.
fn parse_usd(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not an amount of US dollars (like 12.50, at most six decimals)");
    let (whole, fraction) = text.trim_start_matches('$').split_once('.').unwrap_or((text.trim_start_matches('$'), ""));
    if whole.is_empty() && fraction.is_empty() || fraction.len() > 6 || !whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let fraction: i64 = format!("{fraction:0<6}").parse().map_err(|_| bad())?;
    whole.checked_mul(1_000_000).and_then(|w| w.checked_add(fraction)).ok_or_else(bad)
}

fn number(value: &Value) -> String {
    value.as_i64().map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// A usage row's totals, as the tables show them after the row's own columns.
fn totals(row: &Value) -> impl Iterator<Item = String> {
    ["requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"]
        .map(|field| number(&row[field]))
        .into_iter()
        .chain([cost(row)])
}

/// Micro-dollars as `$0.015625`.
fn dollars(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}${}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

/// A row's cost: what is known, and how many requests had no price; never a made-up 0.
fn cost(row: &Value) -> String {
    let unpriced = row["unpriced_requests"].as_i64().unwrap_or(0);
    match (row["cost_micros"].as_i64(), unpriced) {
        (Some(micros), 0) => dollars(micros),
        (Some(micros), n) => format!("{} + {n} unpriced", dollars(micros)),
        (None, _) => "unknown".to_owned(),
    }
}

pub fn usage(connection: Connection, command: UsageCommand) -> Result<(), Failure> {
    crate::block_on(async move {
        let client = Client::new(&connection)?;
        match command {
            UsageCommand::Summary { org, from, to } => {
                let mut query = Vec::new();
                query.extend(from.map(|f| format!("from={f}")));
                query.extend(to.map(|t| format!("to={t}")));
                let value = client.call(Method::GET, &format!("/v1/orgs/{org}/usage?{}", query.join("&")), None).await?;
                if connection.json {
                    println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
                    return Ok(());
                }
                println!("from {} to {}", format_utc(value["from"].as_i64().unwrap_or(0)), format_utc(value["to"].as_i64().unwrap_or(0)));
                let mut t =
                    table(&["WORKSPACE", "PROVIDER", "MODEL", "REQUESTS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "COST (USD)"]);
                for row in value["usage"].as_array().into_iter().flatten() {
                    let own = ["workspace_id", "provider", "model"].map(|field| row[field].as_str().unwrap_or("-").to_owned());
                    t.add_row(own.into_iter().chain(totals(row)).collect::<Vec<_>>());
                }
                println!("{t}");
                let mut t = table(&["DAY (UTC)", "REQUESTS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "COST (USD)"]);
                for row in value["days"].as_array().into_iter().flatten() {
                    t.add_row(std::iter::once(row["date"].as_str().unwrap_or("-").to_owned()).chain(totals(row)).collect::<Vec<_>>());
                }
                println!("{t}");
            }
            UsageCommand::Requests { org, workspace, limit } => {
                let mut path = format!("/v1/orgs/{org}/usage/requests?limit={limit}");
                if let Some(workspace) = workspace {
                    path.push_str(&format!("&workspace={workspace}"));
                }
                let value = client.call(Method::GET, &path, None).await?;
                if connection.json {
                    println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
                    return Ok(());
                }
                let mut t =
                    table(&["AT (UTC)", "WORKSPACE", "MODEL", "STATUS", "INPUT", "OUTPUT", "COST (USD)", "LATENCY MS", "REQUEST ID"]);
                for row in value["requests"].as_array().into_iter().flatten() {
                    t.add_row(vec![
                        format_utc(row["at"].as_i64().unwrap_or(0)),
                        row["workspace_id"].as_str().unwrap_or("-").to_owned(),
                        row["model"].as_str().unwrap_or("-").to_owned(),
                        number(&row["status"]),
                        number(&row["input_tokens"]),
                        number(&row["output_tokens"]),
                        cost(row),
                        number(&row["latency_ms"]),
                        row["request_id"].as_str().unwrap_or("-").to_owned(),
                    ]);
                }
                println!("{t}");
            }
        }
        Ok(())
    })
}

pub fn budget(connection: Connection, command: BudgetCommand) -> Result<(), Failure> {
    crate::block_on(async move {
        let client = Client::new(&connection)?;
        let org = match command {
            BudgetCommand::Set { org, workspace, period, tokens, usd } => {
                let (unit, limit) = match (tokens, usd) {
                    (Some(tokens), _) => ("tokens", i64::try_from(tokens).unwrap_or(i64::MAX)),
                    (None, Some(micros)) => ("usd", micros),
                    (None, None) => unreachable!("clap requires --tokens or --usd"),
                };
                let body = json!({"workspace": workspace, "unit": unit, "period": period.as_str(), "limit": limit});
                client.call(Method::PUT, &format!("/v1/orgs/{org}/budgets"), Some(body)).await?;
                org
            }
            BudgetCommand::Remove { org, id } => {
                client.call(Method::DELETE, &format!("/v1/orgs/{org}/budgets/{id}"), None).await?;
                if !connection.json {
                    println!("removed budget {id}");
                }
                return Ok(());
            }
            BudgetCommand::Show { org } => org,
        };
        let value = client.call(Method::GET, &format!("/v1/orgs/{org}/budgets"), None).await?;
        if connection.json {
            println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
            return Ok(());
        }
        let budgets = value["budgets"].as_array().cloned().unwrap_or_default();
        if budgets.is_empty() {
            println!("org {org} has no budget: nothing limits its requests (wsd budget set --help)");
            return Ok(());
        }
        let mut t = table(&["ID", "SCOPE", "PERIOD", "LIMIT", "SPENT", "RESERVED", "REMAINING", "RENEWS (UTC)"]);
        for b in &budgets {
            let amount = |field: &str| {
                let n = b[field].as_i64().unwrap_or(0);
                if b["unit"] == "usd" { dollars(n) } else { format!("{n} tokens") }
            };
            t.add_row(vec![
                b["id"].as_str().unwrap_or("-").to_owned(),
                b["workspace_id"].as_str().map_or_else(|| "org".to_owned(), |w| format!("workspace {w}")),
                b["period"].as_str().unwrap_or("-").to_owned(),
                amount("limit"),
                amount("spent"),
                amount("reserved"),
                amount("remaining"),
                format_utc(b["resets_at"].as_i64().unwrap_or(0)),
            ]);
        }
        println!("{t}");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_read_to_the_micro_dollar() {
        assert_eq!(parse_usd("12.50"), Ok(12_500_000));
        assert_eq!(parse_usd("$3"), Ok(3_000_000));
        assert_eq!(parse_usd("0.000001"), Ok(1));
        assert_eq!(parse_usd(".5"), Ok(500_000));
        for bad in ["", ".", "-1", "1.0000001", "1e3", "abc", "1.2.3", "99999999999999999"] {
            assert!(parse_usd(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn costs_are_exact_and_never_a_made_up_zero() {
        use serde_json::json;
        assert_eq!(dollars(15_625), "$0.015625");
        assert_eq!(dollars(36_750_000), "$36.750000");
        assert_eq!(dollars(-1), "-$0.000001");
        assert_eq!(cost(&json!({"cost_micros": 15_625, "unpriced_requests": 0})), "$0.015625");
        assert_eq!(cost(&json!({"cost_micros": 15_625, "unpriced_requests": 2})), "$0.015625 + 2 unpriced");
        assert_eq!(cost(&json!({"cost_micros": null, "unpriced_requests": 3})), "unknown");
        assert_eq!(cost(&json!({"cost_micros": 0})), "$0.000000");
        assert_eq!(cost(&json!({"cost_micros": null})), "unknown");
    }

    #[test]
    fn times_are_dates_or_milliseconds() {
        assert_eq!(parse_time("2026-11-28"), Ok(1_795_824_000_000));
        assert_eq!(parse_time("1795824000000"), Ok(1_795_824_000_000));
        assert!(parse_time("2026-02-30").unwrap_err().contains("neither a date"));
        assert!(parse_time("99999999999999999999").unwrap_err().contains("too large"));
        assert!(parse_time("").is_err());
    }
}
