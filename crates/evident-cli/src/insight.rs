//! `evident insights trend|funnel|journeys|cohorts|measure`: customer insight from the server's
//! `/v1/insights/...`. Tables with small bars and sparklines for people; JSON lines for scripts
//! (`--json`, or when stdout is not a terminal): a funnel prints one line per step with `step`
//! (1-based) and `customers`; a trend one line per series; the others one line per row.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use evident_wire::insight::{
    CohortsParams, Counts, FunnelParams, FunnelStep, JourneysParams, MeasureParams, TrendParams,
};
use serde::Serialize;

use crate::output::{json_wanted, table};
use crate::search::{client, explain};
use crate::{ClientArgs, outln, timearg};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: InsightCommand,
    #[command(flatten)]
    client: ClientArgs,
}

/// The period every insight looks at.
#[derive(clap::Args, Clone)]
struct Range {
    /// Start of the period (default: 30 days before --to; cohorts 12 weeks).
    #[arg(long, value_parser = timearg::parse)]
    from: Option<String>,
    /// End of the period, exclusive (default: now).
    #[arg(long, value_parser = timearg::parse)]
    to: Option<String>,
}

#[derive(Subcommand)]
enum InsightCommand {
    /// Events, customers, actors and failure rate over time, by a dimension, with the previous period.
    Trend {
        /// type, action, outcome, source, channel, actor, target_type or metadata.KEY.
        #[arg(long)]
        by: Option<String>,
        /// minute, hour, day (default), week or month.
        #[arg(long)]
        bucket: Option<String>,
        /// Time zone of the buckets: an offset (+02:00) or a name (Europe/Berlin, whose
        /// daylight-saving days last 23 and 25 hours); default UTC.
        #[arg(long, allow_hyphen_values = true)]
        tz: Option<String>,
        #[command(flatten)]
        range: Range,
    },
    /// Customers reaching each step in order within a window from the first.
    Funnel {
        /// A step in search qualifiers, e.g. `type:checkout.started action:update` (2 to 10, in order).
        #[arg(long = "step", value_name = "QUERY", required = true)]
        steps: Vec<String>,
        /// Conversion window from the first step: 30m, 24h, 7d (default).
        #[arg(long)]
        within: Option<String>,
        /// Breakdown by a dimension of the first step's event (channel, outcome, metadata.team, ...).
        #[arg(long)]
        by: Option<String>,
        /// Investigators: list the customers who reached step N-1 but not step N.
        #[arg(long, value_name = "N")]
        dropped_at: Option<usize>,
        #[command(flatten)]
        range: Range,
    },
    /// Sessions, the most common paths and repeat contacts after a resolved step.
    Journeys {
        /// Inactivity that ends a session (default 30m).
        #[arg(long)]
        gap: Option<String>,
        /// Steps of a path shown (default 5).
        #[arg(long)]
        depth: Option<usize>,
        /// Paths shown (default 10).
        #[arg(long)]
        top: Option<usize>,
        /// The step that resolves a contact, e.g. `type:ticket.resolved`.
        #[arg(long, value_name = "QUERY")]
        resolved: Option<String>,
        /// A session within this after a resolved step is a repeat contact (default 7d).
        #[arg(long)]
        repeat_within: Option<String>,
        /// Only events matching this query make sessions and paths, e.g. `type:contact.*`.
        #[arg(long, value_name = "QUERY")]
        only: Option<String>,
        #[command(flatten)]
        range: Range,
    },
    /// Customers by first-seen week or month and their activity in each period since.
    Cohorts {
        /// week (default) or month.
        #[arg(long)]
        period: Option<String>,
        /// Only events matching this query count as activity.
        #[arg(long, value_name = "QUERY")]
        activity: Option<String>,
        #[command(flatten)]
        range: Range,
    },
    /// Service measures: duration from --first to --last by a group, workload per actor, coverage.
    Measure {
        /// duration (default), workload or coverage.
        #[arg(long)]
        kind: Option<String>,
        /// duration: the opening step, e.g. `type:ticket.opened`.
        #[arg(long, value_name = "QUERY")]
        first: Option<String>,
        /// duration: the closing step, e.g. `type:ticket.resolved`.
        #[arg(long, value_name = "QUERY")]
        last: Option<String>,
        /// The group: channel, metadata.team, ... (coverage: the customer segment).
        #[arg(long)]
        by: Option<String>,
        /// coverage: actors per group (default 3).
        #[arg(long)]
        top: Option<usize>,
        #[command(flatten)]
        range: Range,
    },
}

pub fn run(args: Args) -> Result<ExitCode> {
    let client = client(&args.client)?;
    let json = json_wanted(args.client.json);
    match args.command {
        InsightCommand::Trend { by, bucket, tz, range } => {
            let params = TrendParams { from: range.from, to: range.to, by, bucket, tz };
            trend(client.insight_trend(&params).map_err(explain)?, json)
        }
        InsightCommand::Funnel { steps, within, by, dropped_at, range } => {
            let steps = steps.join(";");
            let params = FunnelParams { steps, within, by, from: range.from, to: range.to, dropped_at };
            funnel(client.insight_funnel(&params).map_err(explain)?, json)
        }
        InsightCommand::Journeys { gap, depth, top, resolved, repeat_within, only, range } => {
            let params = JourneysParams {
                from: range.from,
                to: range.to,
                gap,
                depth,
                top,
                resolved,
                repeat_within,
                only,
            };
            journeys(client.insight_journeys(&params).map_err(explain)?, json)
        }
        InsightCommand::Cohorts { period, activity, range } => {
            let params = CohortsParams { from: range.from, to: range.to, period, activity };
            cohorts(client.insight_cohorts(&params).map_err(explain)?, json)
        }
        InsightCommand::Measure { kind, first, last, by, top, range } => {
            let params = MeasureParams { kind, first, last, by, from: range.from, to: range.to, top };
            measure(client.insight_measure(&params).map_err(explain)?, json)
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn json_line(value: &impl Serialize) {
    outln!("{}", serde_json::to_string(value).expect("an answer serialises"));
}

/// A count, or `-` when suppressed.
fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn seconds(s: Option<f64>) -> String {
    match s {
        None => "-".to_owned(),
        Some(s) if s >= 86_400.0 => format!("{:.1}d", s / 86_400.0),
        Some(s) if s >= 3600.0 => format!("{:.1}h", s / 3600.0),
        Some(s) if s >= 60.0 => format!("{:.0}m", s / 60.0),
        Some(s) => format!("{s:.0}s"),
    }
}

/// A sparkline of values (suppressed cells as a space).
fn sparkline(values: &[Option<u64>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().flatten().copied().max().unwrap_or(0).max(1);
    values.iter().map(|v| v.map_or(' ', |v| BARS[((v * 7) / max) as usize])).collect()
}

/// A horizontal bar of `n` out of `max`, at most 30 wide.
fn bar(n: Option<u64>, max: u64) -> String {
    let width = n.map_or(0, |n| (n * 30).div_ceil(max.max(1)) as usize);
    "█".repeat(width)
}

fn change(now: &Counts, before: &Counts) -> String {
    match (now.events, before.events) {
        (Some(now), Some(before)) if before > 0 => {
            format!("{:+.0}%", (now as f64 / before as f64 - 1.0) * 100.0)
        }
        _ => "-".to_owned(),
    }
}

fn trend(answer: evident_wire::insight::Trend, json: bool) {
    if json {
        return answer.series.iter().for_each(json_line);
    }
    let rows: Vec<Vec<String>> = answer
        .series
        .iter()
        .map(|s| {
            let points: Vec<Option<u64>> = s.points.iter().map(|p| p.counts.events).collect();
            vec![
                s.key.clone().unwrap_or_else(|| "(none)".into()),
                count(s.total.events),
                count(s.total.customers),
                percent(s.total.failure_rate),
                count(s.previous.events),
                change(&s.total, &s.previous),
                sparkline(&points),
            ]
        })
        .collect();
    let by = answer.by.as_deref().unwrap_or("all").to_uppercase();
    table(&[&by, "EVENTS", "CUSTOMERS", "FAILED", "PREVIOUS", "CHANGE", "TREND"], &rows);
}

fn step_row(step: &FunnelStep, first: u64) -> Vec<String> {
    vec![
        step.step.to_string(),
        step.query.clone(),
        count(step.customers),
        percent(step.conversion),
        count(step.dropped),
        bar(step.customers, first),
    ]
}

fn funnel(answer: evident_wire::insight::Funnel, json: bool) {
    if json {
        return answer.steps.iter().for_each(json_line);
    }
    let first = answer.steps[0].customers.unwrap_or(0);
    let rows: Vec<Vec<String>> = answer.steps.iter().map(|s| step_row(s, first)).collect();
    table(&["STEP", "QUERY", "CUSTOMERS", "CONVERSION", "DROPPED", ""], &rows);
    let t = &answer.time_to_convert;
    outln!(
        "time to convert: median {}, p90 {} ({} customers)",
        seconds(t.median_seconds),
        seconds(t.p90_seconds),
        count(t.customers)
    );
    if !answer.breakdown.is_empty() {
        outln!();
        let by = answer.by.as_deref().unwrap_or("").to_uppercase();
        let rows: Vec<Vec<String>> = answer
            .breakdown
            .iter()
            .map(|g| {
                let mut row = vec![g.key.clone().unwrap_or_else(|| "(none)".into())];
                row.extend(g.steps.iter().map(|s| count(s.customers)));
                row.push(percent(g.steps.last().and_then(|s| s.conversion)));
                row.push(seconds(g.time_to_convert.median_seconds));
                row
            })
            .collect();
        let steps: Vec<String> = (1..=answer.steps.len()).map(|n| format!("STEP {n}")).collect();
        let mut header = vec![by.as_str()];
        header.extend(steps.iter().map(String::as_str));
        header.extend(["CONVERSION", "MEDIAN"]);
        table(&header, &rows);
    }
    if let Some(dropped) = &answer.dropped_subjects {
        outln!();
        outln!("dropped off: {}", dropped.join(" "));
    }
}

fn journeys(answer: evident_wire::insight::Journeys, json: bool) {
    if json {
        return answer.paths.iter().for_each(json_line);
    }
    outln!("{} sessions of {} customers", count(answer.sessions), count(answer.customers));
    let rows: Vec<Vec<String>> = answer
        .paths
        .iter()
        .map(|p| vec![count(p.sessions), count(p.customers), p.path.join(" → ")])
        .collect();
    table(&["SESSIONS", "CUSTOMERS", "PATH"], &rows);
    if answer.suppressed_paths > 0 {
        outln!("({} rarer paths suppressed)", answer.suppressed_paths);
    }
    if let Some(r) = &answer.repeats {
        outln!(
            "repeat contacts within {}: {} of {} resolved customers ({})",
            seconds(Some(r.within_seconds as f64)),
            count(r.repeat_customers),
            count(r.resolved_customers),
            percent(r.repeat_rate)
        );
    }
}

fn cohorts(answer: evident_wire::insight::Cohorts, json: bool) {
    if json {
        return answer.cohorts.iter().for_each(json_line);
    }
    let periods = answer.cohorts.first().map_or(0, |c| c.active.len());
    let rows: Vec<Vec<String>> = answer
        .cohorts
        .iter()
        .map(|c| {
            let mut row = vec![c.start[..10].to_owned(), count(c.customers)];
            row.extend(c.active.iter().map(|n| count(*n)));
            row
        })
        .collect();
    let names: Vec<String> = (0..periods).map(|p| format!("+{p}")).collect();
    let mut header = vec!["COHORT", "CUSTOMERS"];
    header.extend(names.iter().map(String::as_str));
    table(&header, &rows);
}

fn measure(answer: evident_wire::insight::Measure, json: bool) {
    if json {
        return answer.rows.iter().for_each(json_line);
    }
    let by = answer.by.clone().unwrap_or_else(|| "all".into()).to_uppercase();
    let rows: Vec<Vec<String>> = answer
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![r.key.clone().unwrap_or_else(|| "(none)".into())];
            row.extend(r.actor.clone());
            row.extend([count(r.count), count(r.customers)]);
            if answer.kind == "duration" {
                row.extend([seconds(r.median_seconds), seconds(r.p90_seconds)]);
            }
            row
        })
        .collect();
    let header: Vec<&str> = match answer.kind.as_str() {
        "duration" => vec![&by, "COMPLETED", "CUSTOMERS", "MEDIAN", "P90"],
        "coverage" => vec![&by, "ACTOR", "EVENTS", "CUSTOMERS"],
        _ => vec![&by, "EVENTS", "CUSTOMERS"],
    };
    table(&header, &rows);
}
