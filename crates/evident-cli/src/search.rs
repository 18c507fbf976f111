//! `evident search` and `evident tail`: filters as flags, `GET /v1/events` underneath, tables on a
//! terminal and JSON lines (one event view per line) for scripts.
//!
//! `tail -f` follows new events by polling. The API orders by event time, not by arrival, so tail
//! re-reads a trailing window of event time on every poll (`--lag`, default 60 s behind the newest
//! event it has seen) and prints each event it has not printed yet, once. Events present when it
//! starts are not printed (unless `--from` says where to start), and neither is an event whose
//! time is further in the past than the window when it arrives (a back-dated import: use
//! `search` for those).
//!
//! Every search is itself recorded (`evident.audit.search`, source `evident`), so a follower that
//! showed those would show its own polls forever, and a search would show its own earlier
//! searches before the data it looks for. By default search and tail leave out every event of
//! source `evident`; with `--include-self` or `--source evident` they show them (tail never the
//! search events of its own key).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use evident_wire::Micros;
use evident_wire::api::{EventPage, EventView, SearchParams};
use serde_json::Value;

use crate::ClientArgs;
use crate::output;

/// The largest page the API answers.
const MAX_PAGE: usize = 1000;
const MICROS_PER_SECOND: i64 = 1_000_000;

/// Which events: the filters `search`, `tail` (and their help) share.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Filters {
    /// Events at or after this time: RFC 3339 (2026-11-20T01:00:00+01:00), a day (2026-11-20,
    /// midnight UTC), or an age (30s, 15m, 2h, 7d ago).
    #[arg(long, value_name = "TIME", value_parser = crate::timearg::parse)]
    pub from: Option<String>,
    /// Events before this time (same forms as --from).
    #[arg(long, value_name = "TIME", value_parser = crate::timearg::parse)]
    pub to: Option<String>,
    /// Who acted (actor id).
    #[arg(long)]
    pub actor: Option<String>,
    /// The data subject (customer id).
    #[arg(long)]
    pub subject: Option<String>,
    /// A record, resource or service the event touched.
    #[arg(long, value_name = "TYPE/ID")]
    pub target: Option<String>,
    /// The event type, e.g. customer.record.updated.
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: Option<String>,
    /// create, read, update, delete, list, search, export, login, logout, grant, revoke,
    /// configure or other.
    #[arg(long)]
    pub action: Option<String>,
    /// success, failure or unknown.
    #[arg(long)]
    pub outcome: Option<String>,
    /// The producing system, e.g. //crm.example.com/support-desk (`evident` for Evident's own
    /// events).
    #[arg(long)]
    pub source: Option<String>,
    /// Investigators: why you need the personal values (recorded in the log); shows them.
    #[arg(long)]
    pub purpose: Option<String>,
}

impl Filters {
    /// The search parameters of these flags (filters and purpose; no paging). Times are RFC 3339
    /// already (`timearg` parsed them); other values are passed on as given: the server checks them
    /// and names a refused one.
    pub(crate) fn params(&self) -> Result<SearchParams> {
        let (target_type, target_id) = match &self.target {
            Some(target) => {
                let (target_type, target_id) =
                    target.split_once('/').filter(|(t, i)| !t.is_empty() && !i.is_empty()).ok_or_else(
                        || anyhow!("--target must be TYPE/ID, e.g. customer/cus_00042; got {target:?}"),
                    )?;
                (Some(target_type.to_owned()), Some(target_id.to_owned()))
            }
            None => (None, None),
        };
        Ok(SearchParams {
            from: self.from.clone(),
            to: self.to.clone(),
            actor: self.actor.clone(),
            subject: self.subject.clone(),
            target_type,
            target_id,
            event_type: self.event_type.clone(),
            action: self.action.clone(),
            outcome: self.outcome.clone(),
            source: self.source.clone(),
            purpose: self.purpose.clone(),
            ..SearchParams::default()
        })
    }
}

/// The flag a query parameter comes from, for error messages.
fn flag_of(param: &str) -> String {
    match param {
        "target_type" | "target_id" => "--target".to_owned(),
        other => format!("--{other}"),
    }
}

/// A client error in the words of the command line: a refused key, a refused flag, an
/// unreachable server.
pub(crate) fn explain(err: evident_client::Error) -> anyhow::Error {
    use evident_client::Error as E;
    match err {
        E::Api { status: 401, title, .. } if title == "key revoked" => anyhow!(
            "the API key was revoked (401): ask an admin for a new key, and pass it with --key or \
             EVIDENT_API_KEY"
        ),
        E::Api { status: 401, .. } => anyhow!(
            "the API key was refused (401): pass a valid key with --key or EVIDENT_API_KEY \
             (`evident serve` prints an admin key on its first start)"
        ),
        E::Api { status: 403, detail, .. } => {
            anyhow!("forbidden (403): {}", detail.unwrap_or_else(|| "this key may not do that".into()))
        }
        E::Api { status: 400, detail, problem, .. } => {
            let params: Vec<String> = problem
                .iter()
                .flat_map(|problem| &problem.invalid_params)
                .map(|p| format!("{} ({}): {}", flag_of(&p.name), p.name, p.reason))
                .collect();
            if params.is_empty() {
                anyhow!("the server refused the request (400): {}", detail.unwrap_or_default())
            } else {
                anyhow!("the server refused the request (400): invalid {}", params.join("; invalid "))
            }
        }
        E::Unreachable { url, reason } => anyhow!(
            "cannot reach {url}: {reason} (is `evident serve` running there? see --url or EVIDENT_URL)"
        ),
        other => anyhow!("{other}"),
    }
}

/// The client of `args`, refusing to go on without a key.
pub(crate) fn client(args: &ClientArgs) -> Result<evident_client::Client> {
    if args.key.as_deref().is_none_or(str::is_empty) {
        bail!(
            "no API key: pass --key or set EVIDENT_API_KEY (`evident serve` prints an admin key on \
             its first start)"
        );
    }
    args.client()
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    filters: Filters,
    /// Newest or oldest (event time) first.
    #[arg(long, default_value = "newest", value_parser = ["newest", "oldest"])]
    order: String,
    /// Print at most this many events.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
    /// Print every matching event, following the pages to the end (no --limit).
    #[arg(long)]
    all: bool,
    /// Events per request (1 to 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1000))]
    page_size: u64,
    /// Print a table even when stdout is not a terminal.
    #[arg(long, conflicts_with = "json")]
    table: bool,
    /// Show Evident's own events too (source `evident`: searches, exports, key changes); without
    /// it they are left out unless --source asks for them.
    #[arg(long)]
    include_self: bool,
}

/// One page of a search: `params` with an order, a page size and where to go on.
fn fetch(
    client: &evident_client::Client,
    params: &SearchParams,
    order: &str,
    limit: usize,
    cursor: Option<&str>,
) -> Result<EventPage, evident_client::Error> {
    let params = SearchParams {
        order: Some(order.to_owned()),
        limit: Some(limit.clamp(1, MAX_PAGE)),
        cursor: cursor.map(str::to_owned),
        ..params.clone()
    };
    client.search(&params)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let client = client(&args.client)?;
    let params = args.filters.params()?;
    let as_table = args.table || !output::json_wanted(args.client.json);
    let mut left = if args.all { usize::MAX } else { usize::try_from(args.limit).unwrap_or(usize::MAX) };
    let page_size = usize::try_from(args.page_size).unwrap_or(MAX_PAGE);
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    let mut more = false;
    let shown =
        Shown { exclude_evident: !args.include_self && args.filters.source.is_none(), own_actor: None };
    let mut out = std::io::stdout().lock();
    while left > 0 {
        let page =
            fetch(&client, &params, &args.order, page_size.min(left), cursor.as_deref()).map_err(explain)?;
        let views: Vec<&EventView> = page.events.iter().filter(|view| shown.wants(view)).take(left).collect();
        left = left.saturating_sub(views.len());
        for view in views {
            if as_table {
                rows.push(row(view));
            } else if writeln!(out, "{}", json_line(view)).is_err() {
                return Ok(ExitCode::SUCCESS); // the reader went away (`| head`)
            }
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
        more = left == 0;
    }
    drop(out);
    if as_table {
        output::table(&HEADER, &rows);
        if rows.is_empty() {
            eprintln!("no events match");
        }
    }
    if more {
        eprintln!("more events match: raise --limit, or use --all for every one");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) const HEADER: [&str; 9] =
    ["TIME", "INDEX", "ACTOR", "ACTION", "TYPE", "OUTCOME", "SUBJECT", "TARGET", "REASON"];

/// An event view as one line of JSON.
pub(crate) fn json_line(view: &EventView) -> String {
    serde_json::to_string(view).expect("an event view serialises")
}

/// The table cells of one event view.
pub(crate) fn row(view: &EventView) -> Vec<String> {
    let event = &view.event;
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    // `2026-11-20T01:02:03.000000Z` -> `2026-11-20T01:02:03Z`
    let time = event["time"].as_str().map(|t| format!("{}Z", t.get(..19).unwrap_or(t))).unwrap_or_default();
    let mut actor = text(&event["actor"]["id"]);
    if let Some(principal) = event["actor"]["on_behalf_of"].as_str() {
        actor.push_str(&format!(" for {principal}"));
    }
    let targets = event["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut target = targets
        .first()
        .map(|t| format!("{}/{}", t["type"].as_str().unwrap_or("?"), t["id"].as_str().unwrap_or("?")))
        .unwrap_or_default();
    if targets.len() > 1 {
        target.push_str(&format!(" +{}", targets.len() - 1));
    }
    vec![
        time,
        view.index.to_string(),
        actor,
        text(&event["action"]),
        text(&event["type"]),
        text(&event["outcome"]),
        text(&event["subject"]),
        target,
        text(&event["reason"]),
    ]
}

#[derive(clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    filters: Filters,
    /// Keep printing events as they arrive, until interrupted. Without it: print the last
    /// --limit events and stop.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Without --follow: how many of the newest events to print.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
    /// Seconds between polls.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Seconds of event time re-read on every poll, behind the newest event seen: how late (by
    /// its own clock) an event may arrive and still be shown.
    #[arg(long, default_value_t = 60)]
    lag: u64,
    /// Show Evident's own events (source `evident`) too, except this command's own searches.
    #[arg(long)]
    include_self: bool,
    /// Print table lines even when stdout is not a terminal.
    #[arg(long, conflicts_with = "json")]
    table: bool,
}

/// Which events a tail shows, beyond the server-side filters.
struct Shown {
    /// Leave out every event of source `evident`.
    exclude_evident: bool,
    /// `key:<id>`: the actor of this command's own searches.
    own_actor: Option<String>,
}

impl Shown {
    fn wants(&self, view: &EventView) -> bool {
        let event = &view.event;
        if event["source"] != "evident" {
            return true;
        }
        if self.exclude_evident {
            return false;
        }
        let own_search = event["type"] == "evident.audit.search"
            && self.own_actor.as_deref().is_some_and(|own| event["actor"]["id"] == own);
        !own_search
    }
}

/// Prints events one line each (a table line or JSON), as they come.
struct Printer {
    table: bool,
}

const TAIL_WIDTHS: [usize; 8] = [20, 7, 18, 7, 28, 8, 12, 24];

impl Printer {
    fn line(&self, cells: &[String]) -> String {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let clean: String = cell.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            match TAIL_WIDTHS.get(i) {
                Some(width) => line.push_str(&format!("{clean:<width$}  ")),
                None => line.push_str(&clean),
            }
        }
        line.trim_end().to_owned()
    }

    fn header(&self) -> bool {
        if !self.table {
            return true;
        }
        let cells: Vec<String> = HEADER.iter().map(|h| (*h).to_owned()).collect();
        emit(&self.line(&cells))
    }

    /// False once stdout is gone.
    fn print(&self, view: &EventView) -> bool {
        if self.table { emit(&self.line(&row(view))) } else { emit(&json_line(view)) }
    }
}

fn emit(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

/// `evk_<id>_<secret>` -> `key:<id>`, the actor id of the key's own requests.
fn own_actor(key: Option<&str>) -> Option<String> {
    let (key_id, _) = key?.strip_prefix("evk_")?.split_once('_')?;
    Some(format!("key:{key_id}"))
}

fn event_time(view: &EventView) -> Option<Micros> {
    view.event["time"].as_str().and_then(Micros::parse_rfc3339)
}

pub fn tail(args: TailArgs) -> Result<ExitCode> {
    let client = client(&args.client)?;
    if !(args.interval.is_finite() && args.interval > 0.0) {
        bail!("--interval must be a positive number of seconds");
    }
    let params = args.filters.params()?;
    let shown = Shown {
        exclude_evident: !args.include_self && args.filters.source.is_none(),
        own_actor: own_actor(args.client.key.as_deref()),
    };
    let printer = Printer { table: args.table || !output::json_wanted(args.client.json) };
    if !args.follow {
        return last(&client, &params, &shown, &printer, usize::try_from(args.limit).unwrap_or(usize::MAX));
    }
    follow(&client, &args, &params, &shown, &printer)
}

/// The newest `limit` shown events, oldest first.
fn last(
    client: &evident_client::Client,
    params: &SearchParams,
    shown: &Shown,
    printer: &Printer,
    limit: usize,
) -> Result<ExitCode> {
    let mut found = Vec::new();
    let mut cursor = None;
    loop {
        let page =
            fetch(client, params, "newest", limit - found.len(), cursor.as_deref()).map_err(explain)?;
        found.extend(page.events.into_iter().filter(|view| shown.wants(view)));
        found.truncate(limit);
        cursor = page.next_cursor;
        if found.len() >= limit || cursor.is_none() {
            break;
        }
    }
    if !printer.header() {
        return Ok(ExitCode::SUCCESS);
    }
    for view in found.iter().rev() {
        if !printer.print(view) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every event of a window of event time (`from` on), oldest first, over as many pages as it takes.
fn window(
    client: &evident_client::Client,
    params: &SearchParams,
    from: Micros,
) -> Result<Vec<EventView>, evident_client::Error> {
    let params = SearchParams { from: Some(from.to_rfc3339()), ..params.clone() };
    let mut events = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(client, &params, "oldest", MAX_PAGE, cursor.as_deref())?;
        events.extend(page.events);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok(events);
        }
    }
}

/// Polls a window of event time that moves forward with the newest event seen, and prints each
/// shown event of a higher index than any present at the start, once.
fn follow(
    client: &evident_client::Client,
    args: &TailArgs,
    params: &SearchParams,
    shown: &Shown,
    printer: &Printer,
) -> Result<ExitCode> {
    let lag = i64::try_from(args.lag).unwrap_or(i64::MAX / 2).saturating_mul(MICROS_PER_SECOND);
    let given_from = params.from.clone();
    // With --from, everything from there on is new; otherwise what is there now is the baseline.
    let (mut window_start, baseline) = match given_from {
        Some(from) => {
            let from =
                Micros::parse_rfc3339(&from).ok_or_else(|| anyhow!("--from {from:?} is not a time"))?;
            (from, None)
        }
        None => {
            let start = Micros(Micros::now().0 - lag);
            let present = window(client, params, start).map_err(explain)?;
            (start, present.iter().map(|view| view.index).max())
        }
    };
    eprintln!("following new events (polling every {} s; Ctrl-C stops)", args.interval);
    if !printer.header() {
        return Ok(ExitCode::SUCCESS);
    }
    // Printed events still inside the window: index -> event time.
    let mut printed: BTreeMap<u64, Micros> = BTreeMap::new();
    let mut newest = window_start;
    let mut unavailable = false;
    loop {
        let events = match window(client, params, window_start) {
            Ok(events) => {
                if unavailable {
                    eprintln!("the server answers again");
                    unavailable = false;
                }
                events
            }
            Err(err) if transient(&err) => {
                if !unavailable {
                    eprintln!("evident: {:#}; retrying", explain(err));
                    unavailable = true;
                }
                Vec::new()
            }
            Err(err) => return Err(explain(err)).context("following events"),
        };
        for view in &events {
            let Some(time) = event_time(view) else { continue };
            let index = view.index;
            newest = newest.max(time);
            let new = baseline.is_none_or(|baseline| index > baseline) && !printed.contains_key(&index);
            if new && shown.wants(view) {
                if !printer.print(view) {
                    return Ok(ExitCode::SUCCESS);
                }
                printed.insert(index, time);
            }
        }
        // An event dated in the future does not drag the window past the present.
        let ahead = newest.min(Micros::now());
        window_start = window_start.max(Micros(ahead.0 - lag));
        printed.retain(|_, time| *time >= window_start);
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
}

/// A server that is down or overloaded for a moment: worth waiting for while following.
fn transient(err: &evident_client::Error) -> bool {
    matches!(err, evident_client::Error::Unreachable { .. } | evident_client::Error::Api { status: 503, .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_type_slash_id() {
        let params = |target: &str| Filters { target: Some(target.into()), ..Filters::default() }.params();
        let ok = params("customer/cus_1/x").unwrap();
        assert_eq!((ok.target_type.as_deref(), ok.target_id.as_deref()), (Some("customer"), Some("cus_1/x")));
        for bad in ["customer", "/cus_1", "customer/", ""] {
            assert!(params(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_searches_are_recognised() {
        assert_eq!(own_actor(Some("evk_0123456789abcdef_secret")).as_deref(), Some("key:0123456789abcdef"));
        assert_eq!(own_actor(Some("nonsense")), None);
    }
}
