//! The constructed contact-centre history of the insight tests (`insight.rs`, whose `//!` tells
//! it), shared with the Parquet export test (`parquet.rs`), which checks DuckDB's funnel over it
//! against ours.

use evident_wire::Micros;
use serde_json::{Value, json};

const MINUTE: i64 = 60_000_000;

/// 2026-10-05T10:00:00Z, a Monday.
fn base() -> Micros {
    Micros::parse_rfc3339("2026-10-05T10:00:00Z").unwrap()
}

#[allow(clippy::too_many_arguments)]
fn event(
    n: usize,
    subject: &str,
    kind: &str,
    minutes: i64,
    actor: &str,
    channel: &str,
    team: &str,
    ok: bool,
) -> Value {
    let mut event = json!({
        "id": format!("ins-{n}"), "source": "//contact.test", "type": kind, "action": "other",
        "time": Micros(base().0 + minutes * MINUTE).to_rfc3339(),
        "actor": {"id": actor, "type": "user"}, "subject": subject,
        "targets": [{"type": "contact", "id": format!("ct-{subject}")}],
        "outcome": if ok { "success" } else { "failure" },
        "origin": {"service": channel}, "metadata": {"team": team},
    });
    if !ok {
        event["reason"] = json!("identity_not_confirmed");
    }
    event
}

pub fn history() -> Vec<Value> {
    let mut events = Vec::new();
    let mut add =
        |subject: &str, kind: &str, minutes: i64, actor: &str, channel: &str, team: &str, ok: bool| {
            let n = events.len();
            events.push(event(n, subject, kind, minutes, actor, channel, team, ok));
        };
    for n in 1..=5 {
        let (subject, open) = (format!("cus-{n}"), 10 * (n as i64 - 1));
        add(&subject, "contact.opened", open, "agt_a", "phone", "blue", true);
        add(&subject, "contact.verified", open + 5, "agt_a", "phone", "blue", true);
        let resolved = if n == 5 { open + 10 * 1440 } else { open + 60 * n as i64 };
        add(&subject, "contact.resolved", resolved, "agt_c", "phone", "blue", true);
    }
    add("cus-6", "contact.opened", 50, "agt_a", "phone", "blue", true);
    add("cus-6", "contact.verified", 55, "agt_a", "phone", "blue", false);
    add("cus-7", "contact.opened", 60, "agt_b", "email", "red", true);
    add("cus-7", "contact.verified", 65, "agt_b", "email", "red", true);
    add("cus-7", "contact.resolved", 60 + 2 * 1440, "agt_c", "email", "red", true);
    add("cus-8", "contact.opened", 70, "agt_b", "email", "blue", true);
    add("cus-2", "contact.opened", 130 + 1440, "agt_a", "phone", "blue", true);
    add("cus-9", "account.viewed", -2 * 1440 - 60, "agt_a", "phone", "blue", true);
    events
}

/// `evident insights funnel` over the history's first day: opened, verified with success,
/// resolved (the caller adds `--json` and whatever else it checks).
pub const FUNNEL_ARGS: [&str; 10] = [
    "insights",
    "funnel",
    "--step",
    "type:contact.opened",
    "--step",
    "type:contact.verified outcome:success",
    "--step",
    "type:contact.resolved",
    "--from",
    "2026-10-05",
];

/// The customers [`FUNNEL_ARGS`] (to 2026-10-06) finds at each step.
pub const FUNNEL_CUSTOMERS: [u64; 3] = [8, 6, 5];
