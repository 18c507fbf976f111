//! Backtest: a fresh evaluator with one rule over a past time range of a tenant's log, read in
//! event-time order. Answers what the rule would have found; records nothing.
//!
//! Events are read as skeletons (no personal part), so rules keyed by IP address find nothing
//! here; silence is judged on event times instead of arrival times.

use evident_core::engine::Engine;
use evident_core::read::Access;
use evident_core::store::TenantId;
use evident_wire::Micros;
use evident_wire::filter::{Filter, Order};

use crate::Result;
use crate::eval::{Evaluator, Finding, State};
use crate::observe::Observed;
use crate::rule::Rule;

/// Most events a backtest reads.
pub const MAX_EVENTS: usize = 1_000_000;
/// Most findings a backtest answers.
pub const MAX_FINDINGS: usize = 1000;

/// What a backtest saw and found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub events: u64,
    /// True when [`MAX_EVENTS`] or [`MAX_FINDINGS`] stopped it early.
    pub truncated: bool,
    pub findings: Vec<Finding>,
}

/// Runs `rule` (enabled or not) over events with time in `[from, to)`.
pub fn backtest(engine: &Engine, tenant: &TenantId, rule: &Rule, from: Micros, to: Micros) -> Result<Report> {
    let rule = Rule { enabled: true, ..rule.clone() };
    let mut evaluator = Evaluator::new(std::slice::from_ref(&rule), State::default())?;
    let filter = Filter { from: Some(from), to: Some(Micros(to.0 - 1)), ..Filter::default() };
    let mut cursor: Option<String> = None;
    let mut report = Report { events: 0, truncated: false, findings: Vec::new() };
    let key = [0u8; 32];
    loop {
        let page =
            engine.search(tenant, &filter, Order::OldestFirst, cursor.as_deref(), 1000, Access::Skeleton)?;
        for view in &page.items {
            let Some(observed) =
                Observed::from_entry(view.index, &view.event_id.to_string(), &view.entry, None, &key)
            else {
                continue;
            };
            report.events += 1;
            let mut found = evaluator.observe(&observed, observed.time);
            found.extend(evaluator.tick(observed.time));
            report.findings.extend(found);
            if report.events as usize >= MAX_EVENTS || report.findings.len() >= MAX_FINDINGS {
                report.truncated = true;
                report.findings.truncate(MAX_FINDINGS);
                return Ok(report);
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    report.findings.extend(evaluator.tick(to.0));
    Ok(report)
}
