//! `wsd usage …` and `wsd budget …`: what platform-routed workspaces used through the
//! metering proxy, and the token budgets that cap it. API client commands, like `wsd ws`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;
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

pub(crate) use wsd_core::prices::dollars;

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
                let mut t = table(&[
                    "WORKSPACE",
                    "PROVIDER",
                    "MODEL",
                    "KEY",
                    "REQUESTS",
                    "INPUT",
                    "OUTPUT",
                    "CACHE READ",
                    "CACHE WRITE",
                    "COST (USD)",
                ]);
                for row in value["usage"].as_array().into_iter().flatten() {
                    let own = ["workspace_id", "provider", "model", "routing"].map(|field| row[field].as_str().unwrap_or("-").to_owned());
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
                let mut t = table(&[
                    "AT (UTC)",
                    "WORKSPACE",
                    "MODEL",
                    "KEY",
                    "STATUS",
                    "INPUT",
                    "OUTPUT",
                    "COST (USD)",
                    "LATENCY MS",
                    "REQUEST ID",
                ]);
                for row in value["requests"].as_array().into_iter().flatten() {
                    t.add_row(vec![
                        format_utc(row["at"].as_i64().unwrap_or(0)),
                        row["workspace_id"].as_str().unwrap_or("-").to_owned(),
                        row["model"].as_str().unwrap_or("-").to_owned(),
                        row["routing"].as_str().unwrap_or("-").to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
