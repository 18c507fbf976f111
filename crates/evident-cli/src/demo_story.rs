//! The demo's contact-centre story, for `evident insights`: customers contact the business by
//! phone, chat, email or the web; each contact is opened, the customer's identity verified, a
//! change made (most of the time) and the contact resolved, by an agent of a team. Two things
//! are planted: verification fails often on chat and those contacts go no further (the funnel's
//! drop-off), and email contacts take days to resolve where the others take minutes or hours
//! (the slow channel). Some customers come back within a week of a resolution (repeat contacts).
//!
//! It draws from its own generator, so the rest of the demo's history is the same with or without it.

use serde_json::{Value, json};

use super::{AGENTS, DAY, HOUR, LEADS, MINUTE, OFFSET_SECONDS, Rng, SECOND, World, day_start};

const SOURCE: &str = "//crm.example.com/contact-centre";
pub(super) const CHANNELS: [&str; 4] = ["phone", "chat", "email", "web"];
const TEAMS: [&str; 3] = ["billing", "accounts", "technical"];
/// The planted drop-off: verification fails this often on chat, else `VERIFY_FAILS`.
pub(super) const DROP_OFF_CHANNEL: &str = "chat";
const CHAT_VERIFY_FAILS: f64 = 0.35;
const VERIFY_FAILS: f64 = 0.05;
/// The planted slow channel: one to three days to resolve.
pub(super) const SLOW_CHANNEL: &str = "email";

/// What the story made.
pub(super) struct Story {
    pub contacts: usize,
}

/// One contact, in the making.
struct Contact {
    id: String,
    customer: String,
    agent: usize,
    channel: &'static str,
    team: &'static str,
}

impl Contact {
    fn event(&self, event_type: &str, action: &str, outcome: &str, changes: Value) -> Value {
        let mut event = json!({
            "source": SOURCE, "type": event_type, "action": action,
            "actor": {"id": AGENTS[self.agent].0, "type": "user"},
            "subject": self.customer,
            "targets": [{"type": "contact", "id": self.id}],
            "outcome": outcome,
            "origin": {"service": self.channel},
            "metadata": {"team": self.team},
            "correlation": {"correlation_id": self.id},
        });
        if changes != Value::Null {
            event["changes"] = changes;
        }
        if outcome == "failure" {
            event["reason"] = json!("identity_not_confirmed");
        }
        event
    }
}

/// Minutes to hours to resolve, by channel; email takes days.
fn resolution_delay(rng: &mut Rng, channel: &str) -> i64 {
    match channel {
        "phone" => rng.between(8 * MINUTE, 30 * MINUTE),
        "chat" => rng.between(15 * MINUTE, 50 * MINUTE),
        "web" => rng.between(2 * HOUR, 8 * HOUR),
        _ => rng.between(DAY, 3 * DAY),
    }
}

/// `t`, or when it falls outside 08:00 to 20:00 business time, the next 08:00 to 10:00 (agents
/// work in the day: detection's off-hours rule must not fire on the story).
fn in_hours(rng: &mut Rng, t: i64) -> i64 {
    let since_midnight = (t + OFFSET_SECONDS * SECOND).rem_euclid(DAY);
    let midnight = t - since_midnight;
    match since_midnight / HOUR {
        0..8 => midnight + 8 * HOUR + rng.between(0, 2 * HOUR),
        8..20 => t,
        _ => midnight + DAY + 8 * HOUR + rng.between(0, 2 * HOUR),
    }
}

/// Plays one contact from `at`; answers when it was resolved (none: it dropped off or is open).
fn contact(world: &mut World, rng: &mut Rng, contact: &Contact, at: i64, end: i64) -> Option<i64> {
    let status = |before: Option<&str>, after: &str| match before {
        Some(before) => json!([{"field": "/status", "before": before, "after": after}]),
        None => json!([{"field": "/status", "after": after}]),
    };
    world.push(at, contact.event("contact.opened", "create", "success", status(None, "open")));
    let verified_at = at + rng.between(MINUTE, 4 * MINUTE);
    let fails = if contact.channel == DROP_OFF_CHANNEL { CHAT_VERIFY_FAILS } else { VERIFY_FAILS };
    let failed = rng.chance(fails);
    let outcome = if failed { "failure" } else { "success" };
    world.push(verified_at, contact.event("contact.verified", "other", outcome, Value::Null));
    if failed {
        return None;
    }
    let mut last = verified_at;
    if rng.chance(0.8) {
        last += rng.between(2 * MINUTE, 10 * MINUTE);
        let plan = *rng.pick(&["basic", "plus", "family"]);
        let changes = json!([{"field": "/plan", "before": "standard", "after": plan}]);
        world.push(last, contact.event("contact.changed", "update", "success", changes));
    }
    let delay = resolution_delay(rng, contact.channel);
    let resolved = in_hours(rng, last + delay);
    if resolved >= end {
        return None;
    }
    world.push(
        resolved,
        contact.event("contact.resolved", "update", "success", status(Some("open"), "resolved")),
    );
    Some(resolved)
}

/// Plays the story over the history `[first_day, until)`.
pub(super) fn play(world: &mut World, seed: u64, first_day: i64, until: i64) -> Story {
    let mut rng = Rng(seed ^ 0x636f_6e74_6163_7473); // "contacts"
    let end = day_start(until);
    let mut contacts = 0;
    for index in 0..world.customers.len() {
        if !rng.chance(0.6) {
            continue;
        }
        let (created, frozen) = (world.customers[index].created, world.customers[index].frozen_from);
        let day = first_day + rng.between(0, until - first_day);
        let first =
            (day_start(day) + rng.between(8 * HOUR, 16 * HOUR)).max(created.map_or(i64::MIN, |c| c + HOUR));
        let mut at = in_hours(&mut rng, first);
        loop {
            if at >= end || frozen.is_some_and(|f| at + 4 * DAY >= f) {
                break;
            }
            contacts += 1;
            let next = Contact {
                id: format!("CT-{}", 50_001 + contacts),
                customer: world.customers[index].id.clone(),
                agent: LEADS + rng.below(AGENTS.len() - LEADS),
                channel: CHANNELS[rng.below(CHANNELS.len())],
                team: TEAMS[rng.below(TEAMS.len())],
            };
            let Some(resolved) = contact(world, &mut rng, &next, at, end) else { break };
            if !rng.chance(0.25) {
                break;
            }
            let back = resolved + rng.between(DAY, 6 * DAY);
            at = in_hours(&mut rng, back);
        }
    }
    Story { contacts }
}

/// How to see the contact-centre story with `evident insights`.
pub(super) fn report(contacts: usize) {
    crate::outln!();
    crate::outln!(
        "{contacts} contacts by {}: verification drops off on {}, {} resolves slowest; see them with",
        CHANNELS.join(", "),
        DROP_OFF_CHANNEL,
        SLOW_CHANNEL
    );
    crate::outln!(
        "     evident insights funnel --step type:contact.opened --step 'type:contact.verified outcome:success' \\\n       \
         --step type:contact.resolved --by channel"
    );
    crate::outln!(
        "     evident insights measure --first type:contact.opened --last type:contact.resolved --by channel"
    );
    crate::outln!("     evident insights journeys --only 'type:contact.*' --resolved type:contact.resolved");
}
