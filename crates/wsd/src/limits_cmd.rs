//! `wsd budget` and `wsd rate-limit`: what limits an org's workspaces (API client).

use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::json;

use crate::Failure;
use crate::client::{Client, Connection};
use crate::plan_cmd::table;
use crate::usage_cmd::dollars;
use wsd_store::calendar::format_utc;

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

#[derive(Debug, Subcommand)]
pub enum RateLimitCommand {
    /// Give an org its own rate limits per workspace (admin token), in place of the
    /// platform's ([policy] requests_per_minute_per_workspace, tokens_per_minute_per_workspace).
    /// Past one, the proxy answers 429 RATE_LIMITED with Retry-After. 0: no limit.
    ///
    /// Example: wsd rate-limit set --org ORG --requests-per-minute 60 --tokens-per-minute 200000
    #[command(verbatim_doc_comment)]
    Set {
        #[arg(long)]
        org: String,
        #[arg(long)]
        requests_per_minute: u64,
        #[arg(long)]
        tokens_per_minute: u64,
    },
    /// Show the rate limits an org's workspaces run under, and whose they are.
    Show {
        #[arg(long)]
        org: String,
    },
    /// Put an org back under the platform's rate limits (admin token).
    Reset {
        #[arg(long)]
        org: String,
    },
}

pub fn rate_limit(connection: Connection, command: RateLimitCommand) -> Result<(), Failure> {
    crate::block_on(async move {
        let client = Client::new(&connection)?;
        let org = match command {
            RateLimitCommand::Set { org, requests_per_minute, tokens_per_minute } => {
                let body = json!({"requests_per_minute": requests_per_minute, "tokens_per_minute": tokens_per_minute});
                client.call(Method::PUT, &format!("/v1/orgs/{org}/rate-limits"), Some(body)).await?;
                org
            }
            RateLimitCommand::Reset { org } => {
                client.call(Method::DELETE, &format!("/v1/orgs/{org}/rate-limits"), None).await?;
                org
            }
            RateLimitCommand::Show { org } => org,
        };
        let value = client.call(Method::GET, &format!("/v1/orgs/{org}/rate-limits"), None).await?;
        if connection.json {
            println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
            return Ok(());
        }
        let limit = |field: &str| match value[field].as_u64() {
            Some(0) | None => "no limit".to_owned(),
            Some(n) => n.to_string(),
        };
        let whose = if value["source"] == "org" { "the org's own" } else { "the platform's" };
        println!(
            "org {org}, each workspace: {} requests and {} tokens per minute ({whose})",
            limit("requests_per_minute"),
            limit("tokens_per_minute")
        );
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
}
