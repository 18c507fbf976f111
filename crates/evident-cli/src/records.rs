//! `evident timeline SUBJECT` and `evident history TYPE ID [--at TIME]`: a customer's timeline and a
//! record's versions, over `GET /v1/subjects/{subject}/timeline` and
//! `GET /v1/records/{type}/{id}/history`, printed like `search` (tables on a terminal, JSON lines
//! for scripts).

use std::process::ExitCode;

use anyhow::Result;
use evident_wire::api::{HistoryParams, PageParams, Version};

use crate::ClientArgs;
use crate::output;
use crate::search::{HEADER, client, explain, json_line, row};

/// The largest page the API answers.
const MAX_PAGE: usize = 1000;

#[derive(clap::Args)]
pub struct TimelineArgs {
    /// The data subject (customer id).
    subject: String,
    /// Newest or oldest (event time) first.
    #[arg(long, default_value = "newest", value_parser = ["newest", "oldest"])]
    order: String,
    /// Print at most this many events.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
    /// Investigators: why you need the personal values (recorded in the log); shows them.
    #[arg(long)]
    purpose: Option<String>,
    /// Print a table even when stdout is not a terminal.
    #[arg(long, conflicts_with = "json")]
    table: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// The record's type, e.g. customer.
    #[arg(value_name = "TYPE")]
    record_type: String,
    /// The record's id, e.g. cus_00042.
    #[arg(value_name = "ID")]
    record_id: String,
    /// Say which version was in force at this time: RFC 3339, a day (2026-11-20) or an age (7d
    /// ago).
    #[arg(long, value_name = "TIME", value_parser = crate::timearg::parse)]
    at: Option<String>,
    /// Investigators: why you need the values (recorded in the log); shows the states.
    #[arg(long)]
    purpose: Option<String>,
    /// Print a table even when stdout is not a terminal.
    #[arg(long, conflicts_with = "json")]
    table: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn timeline(args: TimelineArgs) -> Result<ExitCode> {
    let api = client(&args.client)?;
    let as_table = args.table || !output::json_wanted(args.client.json);
    let mut left = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let mut rows = Vec::new();
    let mut cursor = None;
    while left > 0 {
        let params = PageParams {
            order: Some(args.order.clone()),
            limit: Some(left.min(MAX_PAGE)),
            cursor: cursor.take(),
            purpose: args.purpose.clone(),
        };
        let page = api.timeline(&args.subject, &params).map_err(explain)?;
        left = left.saturating_sub(page.events.len());
        for view in &page.events {
            if as_table {
                rows.push(row(view));
            } else {
                crate::outln!("{}", json_line(view));
            }
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    if as_table {
        output::table(&HEADER, &rows);
        if rows.is_empty() {
            eprintln!("no events about {}", args.subject);
        }
    }
    if cursor.is_some() {
        eprintln!("more events: raise --limit");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn history(args: HistoryArgs) -> Result<ExitCode> {
    let api = client(&args.client)?;
    let params =
        HistoryParams { at: args.at.clone(), purpose: args.purpose.clone(), ..HistoryParams::default() };
    let history = api.history(&args.record_type, &args.record_id, &params).map_err(explain)?;
    if !args.table && output::json_wanted(args.client.json) {
        crate::outln!("{}", serde_json::to_string(&history).expect("a history serialises"));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = history.versions.iter().map(version_row).collect();
    output::table(&["VERSION", "TIME", "INDEX", "ACTOR", "ACTION", "CHANGES", "REASON"], &rows);
    if history.versions.is_empty() {
        eprintln!("no history of {}/{}", args.record_type, args.record_id);
    }
    if let Some(at) = &args.at {
        match history.at_version {
            Some(number) => crate::outln!("at {at}: version {number}"),
            None => crate::outln!("at {at}: no version yet"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The table cells of one version.
fn version_row(version: &Version) -> Vec<String> {
    let changes: Vec<&str> = version.changes.iter().map(|change| change.field.as_str()).collect();
    vec![
        version.number.to_string(),
        version.time.clone(),
        version.index.to_string(),
        version.actor["id"].as_str().unwrap_or_default().to_owned(),
        version.action.clone(),
        changes.join(" "),
        version.reason.clone().unwrap_or_default(),
    ]
}
