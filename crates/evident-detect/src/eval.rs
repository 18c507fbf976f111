//! The per-tenant evaluator. It is fed events in index order ([`Evaluator::observe`]) and a
//! periodic wall-clock [`Evaluator::tick`]; it answers findings. Windows use event time; silence
//! uses arrival (wall-clock) time.
//!
//! State bounds (per rule): at most [`crate::bounded::DEFAULT_MAX_KEYS`] keys (actors, IP hashes, sources,
//! customers), least recently used dropped first; per key at most `threshold + 1` entries for
//! window rules, 256 seen IP hashes / record kinds for `sensitive_change` / `first_touch`, and a few
//! numbers for baselines and silence. So one rule holds at most `max_keys * (threshold + 1)`
//! small entries (about 24 MB for the default `mass_access`), whatever the traffic.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bounded::BoundedMap;
use crate::observe::Observed;
use crate::rule::{
    Baseline, By, FailedBurst, FirstTouch, MassAccess, NoPurpose, OffHoursCompiled, Params, PrivilegeChange,
    Rule, SensitiveChange, Severity, Watchlist,
};
use crate::{HOUR, Result, SECOND};

/// Trigger event ids kept in a finding.
pub const MAX_TRIGGERS: usize = 50;
/// Seen values kept per key by `first_touch` and `sensitive_change`.
const MAX_SEEN: usize = 256;

/// What a rule found. Holds no personal values: ids, pseudonymous subjects, hashed IPs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `fnd_` and 20 hex digits, derived from the rule, the key and the first trigger: the same
    /// evaluation always makes the same id.
    pub id: String,
    pub rule: String,
    pub template: String,
    pub severity: Severity,
    /// What the finding is about: an actor, `ip:<hash>`, a source or a customer.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Event time of the last trigger (UTC microseconds; RFC 3339 on the wire); wall-clock for
    /// silence.
    #[serde(with = "rfc3339")]
    pub time: i64,
    /// Event ids that triggered it (at most [`MAX_TRIGGERS`], the latest last).
    pub triggers: Vec<String>,
    /// How many events took part (may exceed `triggers.len()`).
    pub trigger_count: u64,
    pub explanation: String,
}

/// Times as RFC 3339 text in JSON, microseconds in memory.
mod rfc3339 {
    use evident_wire::Micros;
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(time: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&Micros(*time).to_rfc3339())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let text = String::deserialize(deserializer)?;
        Micros::parse_rfc3339(&text).map(|m| m.0).ok_or_else(|| D::Error::custom("not an RFC 3339 time"))
    }
}

/// From the rule, the key as the log shows it ([`log_key`]) and the first trigger: an event has
/// one key of each kind, so the id stays unique per finding without carrying an IP pseudonym.
fn finding_id(rule: &str, key: &str, first_trigger: &str) -> String {
    let digest = Sha256::digest(format!("{rule}\n{}\n{first_trigger}", log_key(key)));
    format!("fnd_{}", &hex::encode(digest)[..20])
}

/// What of a finding's key may enter the log: `ip` for an IP pseudonym (`ip:<keyed hash>`), which
/// anyone holding the detection secret could reverse by trying every address; the key otherwise.
pub fn log_key(key: &str) -> &str {
    if key.starts_with("ip:") { "ip" } else { key }
}

impl Finding {
    /// The key as the finding's `evident.finding.opened` event records it ([`log_key`]).
    pub fn key_in_log(&self) -> &str {
        log_key(&self.key)
    }
}

/// Per-key state of window rules: event ids and times, oldest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Window {
    /// (time, event id, FNV-1a hash of the customer) — the customer only for `mass_access`.
    items: VecDeque<(i64, String, u64)>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct HourLevel {
    hour: i64,
    count: u32,
    fired: bool,
    /// Mean events per active hour (exponentially weighted).
    mean: f64,
    hours: u32,
    last_event: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SourceGap {
    last_arrival: i64,
    mean_gap: f64,
    arrivals: u64,
    fired: bool,
    last_event: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Seen {
    events: u64,
    values: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Pending {
    until: i64,
    event_id: String,
    field: String,
}

/// The state of one rule.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RuleState {
    windows: BoundedMap<Window>,
    /// Key -> no finding before this time.
    quiet_until: BoundedMap<i64>,
    levels: BoundedMap<HourLevel>,
    gaps: BoundedMap<SourceGap>,
    seen: BoundedMap<Seen>,
    pending: BoundedMap<Pending>,
}

/// Serialisable state of a tenant's evaluator.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// The last index evaluated (`None` before the first event).
    pub watermark: Option<u64>,
    pub rules: BTreeMap<String, RuleState>,
}

struct Compiled {
    rule: Rule,
    params: Params,
}

/// Evaluates a tenant's rules.
pub struct Evaluator {
    rules: Vec<Compiled>,
    pub state: State,
}

impl Evaluator {
    /// An evaluator over `rules` (disabled ones are skipped) starting from `state`; the state of
    /// rules no longer present is dropped.
    pub fn new(rules: &[Rule], mut state: State) -> Result<Evaluator> {
        let mut compiled = Vec::new();
        for rule in rules.iter().filter(|r| r.enabled) {
            compiled.push(Compiled { params: rule.compile()?, rule: rule.clone() });
        }
        state.rules.retain(|id, _| compiled.iter().any(|c| &c.rule.id == id));
        Ok(Evaluator { rules: compiled, state })
    }

    /// Replaces the rules, keeping the state of rules whose definition did not change.
    pub fn set_rules(&mut self, rules: &[Rule]) -> Result<()> {
        let mut state = std::mem::take(&mut self.state);
        for old in &self.rules {
            if !rules.iter().any(|r| r == &old.rule) {
                state.rules.remove(&old.rule.id);
            }
        }
        *self = Evaluator::new(rules, state)?;
        Ok(())
    }

    pub fn active_rules(&self) -> usize {
        self.rules.len()
    }

    /// Whether a rule keys on the IP address (so catching up should open personal parts).
    pub fn needs_ip(&self) -> bool {
        self.rules.iter().any(|c| match &c.params {
            Params::FailedBurst(p) => p.by == By::Ip,
            Params::SensitiveChange(_) => true,
            _ => false,
        })
    }

    /// Evaluates one event; `arrival` is the wall-clock time it was committed (silence uses it).
    pub fn observe(&mut self, event: &Observed, arrival: i64) -> Vec<Finding> {
        self.state.watermark = Some(event.index);
        if event.is_detection_output() {
            return Vec::new();
        }
        let mut findings = Vec::new();
        for compiled in &self.rules {
            if !self.state.rules.contains_key(&compiled.rule.id) {
                self.state.rules.insert(compiled.rule.id.clone(), RuleState::default());
            }
            let state = self.state.rules.get_mut(&compiled.rule.id).expect("just inserted");
            if let Some(finding) = evaluate(&compiled.rule, &compiled.params, state, event, arrival) {
                findings.push(finding);
            }
        }
        findings
    }

    /// Judges what only the passing of time reveals (silent sources).
    pub fn tick(&mut self, now: i64) -> Vec<Finding> {
        let mut findings = Vec::new();
        for compiled in &self.rules {
            let Params::Silence(p) = &compiled.params else { continue };
            let state = self.state.rules.entry(compiled.rule.id.clone()).or_default();
            for (source, gap) in state.gaps.iter_mut() {
                if gap.fired || gap.arrivals < u64::from(p.min_events) {
                    continue;
                }
                let limit = (gap.mean_gap * p.factor).max(p.min_silence_secs as f64 * SECOND as f64);
                let silent = now - gap.last_arrival;
                if silent as f64 > limit {
                    gap.fired = true;
                    let explanation = format!(
                        "source {source} has sent nothing for {} s; its usual gap is {:.1} s",
                        silent / SECOND,
                        gap.mean_gap / SECOND as f64
                    );
                    let first = format!("{}@{}", gap.last_event, gap.last_arrival);
                    findings.push(Finding {
                        id: finding_id(&compiled.rule.id, source, &first),
                        rule: compiled.rule.id.clone(),
                        template: compiled.rule.template.clone(),
                        severity: compiled.rule.severity,
                        key: source.clone(),
                        actor: None,
                        subject: None,
                        time: now,
                        triggers: vec![gap.last_event.clone()],
                        trigger_count: 1,
                        explanation,
                    });
                }
            }
        }
        findings
    }
}

/// Starts a finding for `rule` about `key`.
fn found(
    rule: &Rule,
    key: &str,
    event: &Observed,
    triggers: Vec<String>,
    count: u64,
    explanation: String,
) -> Finding {
    let first = triggers.first().cloned().unwrap_or_else(|| event.event_id.clone());
    let skip = triggers.len().saturating_sub(MAX_TRIGGERS);
    Finding {
        id: finding_id(&rule.id, key, &first),
        rule: rule.id.clone(),
        template: rule.template.clone(),
        severity: rule.severity,
        key: key.to_owned(),
        actor: Some(event.actor.clone()).filter(|a| !a.is_empty()),
        subject: event.subject.clone(),
        time: event.time,
        triggers: triggers.into_iter().skip(skip).collect(),
        trigger_count: count,
        explanation,
    }
}

/// Whether `key` may raise a finding at `time`; if so, silences it for `cooldown_secs`.
fn cooled(state: &mut RuleState, key: &str, time: i64, cooldown_secs: u64) -> bool {
    let until = state.quiet_until.touch(key, || i64::MIN);
    if time < *until {
        return false;
    }
    *until = time.saturating_add(cooldown_secs as i64 * SECOND);
    true
}

fn customers(event: &Observed, target_types: &[String]) -> Vec<String> {
    match &event.subject {
        Some(subject) => vec![subject.clone()],
        None => {
            event.targets.iter().filter(|(t, _)| target_types.contains(t)).map(|(_, id)| id.clone()).collect()
        }
    }
}

/// FNV-1a, 64 bits: a stable hash for comparing customers in windows.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == item)
}

fn is_failure(event: &Observed) -> bool {
    event.outcome == "failure"
        && (event.action == "login"
            || event.event_type.contains("denied")
            || event.event_type == "evident.auth.failed")
}

fn local_minute_and_day(time: i64, p: &OffHoursCompiled) -> (i64, u8) {
    let local = time.div_euclid(SECOND) + p.offset_secs;
    let day = local.div_euclid(86_400);
    // 1970-01-01 was a Thursday (ISO 4).
    let weekday = ((day + 3).rem_euclid(7) + 1) as u8;
    (local.rem_euclid(86_400) / 60, weekday)
}

fn within_hours(time: i64, p: &OffHoursCompiled) -> bool {
    let (minute, weekday) = local_minute_and_day(time, p);
    let in_span = if p.start_minute < p.end_minute {
        (p.start_minute..p.end_minute).contains(&minute)
    } else {
        minute >= p.start_minute || minute < p.end_minute
    };
    // A night shift's early hours belong to the day it started.
    let shift_day = if p.start_minute > p.end_minute && minute < p.end_minute {
        if weekday == 1 { 7 } else { weekday - 1 }
    } else {
        weekday
    };
    in_span && p.params.days.contains(&shift_day)
}

/// Evaluates one event against one rule: each template is its own step below.
fn evaluate(
    rule: &Rule,
    params: &Params,
    state: &mut RuleState,
    event: &Observed,
    arrival: i64,
) -> Option<Finding> {
    match params {
        Params::MassAccess(p) => mass_access(rule, p, state, event),
        Params::FailedBurst(p) => failed_burst(rule, p, state, event),
        Params::OffHours(p) => off_hours(rule, p, state, event),
        Params::Watchlist(p) => watchlist(rule, p, state, event),
        Params::NoPurpose(p) => no_purpose(rule, p, state, event),
        Params::SensitiveChange(p) => sensitive_change(rule, p, state, event),
        Params::PrivilegeChange(p) => privilege_change(rule, p, event),
        Params::FirstTouch(p) => first_touch(rule, p, state, event),
        Params::Silence(_) => {
            learn_gap(state, event, arrival);
            None
        }
        Params::Baseline(p) => baseline(rule, p, state, event),
    }
}

/// One actor reads or exports more than `threshold` distinct customers within the window.
fn mass_access(rule: &Rule, p: &MassAccess, state: &mut RuleState, event: &Observed) -> Option<Finding> {
    if event.is_evident() || !has(&p.actions, &event.action) || event.outcome == "failure" {
        return None;
    }
    let customers = customers(event, &p.target_types);
    if customers.is_empty() {
        return None;
    }
    let window = p.window_secs as i64 * SECOND;
    let w = state.windows.touch(&event.actor, Window::default);
    for customer in customers {
        let customer = fnv1a(customer.as_bytes());
        w.items.retain(|(_, _, c)| *c != customer);
        w.items.push_back((event.time, event.event_id.clone(), customer));
    }
    while w.items.front().is_some_and(|(t, _, _)| *t <= event.time - window) {
        w.items.pop_front();
    }
    while w.items.len() > p.threshold as usize + 1 {
        w.items.pop_front();
    }
    if w.items.len() <= p.threshold as usize {
        return None;
    }
    let triggers: Vec<String> = w.items.iter().map(|(_, id, _)| id.clone()).collect();
    let count = w.items.len() as u64;
    if !cooled(state, &event.actor, event.time, p.window_secs) {
        return None;
    }
    let explanation = format!(
        "{} read or exported {count} distinct customers within {} s (more than {})",
        event.actor, p.window_secs, p.threshold
    );
    Some(found(rule, &event.actor, event, triggers, count, explanation))
}

/// `threshold` failed logins or denied requests from one actor or one IP within the window.
fn failed_burst(rule: &Rule, p: &FailedBurst, state: &mut RuleState, event: &Observed) -> Option<Finding> {
    if !is_failure(event) {
        return None;
    }
    let key = match p.by {
        By::Actor => event.actor.clone(),
        _ => event.ip.clone()?,
    };
    let window = p.window_secs as i64 * SECOND;
    let w = state.windows.touch(&key, Window::default);
    // A counted `evident.auth.failed` stands for `metadata.count` attempts (see the server's
    // `ratelimit.rs`); it weighs that much, up to the threshold.
    let weight = match event.event_type.as_str() {
        "evident.auth.failed" => event.metadata.get("count").and_then(|c| c.as_str()?.parse::<u64>().ok()),
        _ => None,
    };
    for _ in 0..weight.unwrap_or(1).clamp(1, u64::from(p.threshold).max(1)) {
        w.items.push_back((event.time, event.event_id.clone(), 0));
    }
    while w.items.front().is_some_and(|(t, _, _)| *t <= event.time - window) {
        w.items.pop_front();
    }
    while w.items.len() > p.threshold as usize {
        w.items.pop_front();
    }
    if w.items.len() < p.threshold as usize {
        return None;
    }
    let attempts = w.items.len();
    let mut triggers: Vec<String> = w.items.iter().map(|(_, id, _)| id.clone()).collect();
    triggers.dedup();
    if !cooled(state, &key, event.time, p.window_secs) {
        return None;
    }
    let who = match p.by {
        By::Actor => format!("actor {key}"),
        // The pseudonym stays in the finding's key, out of the text that enters the log.
        _ => "one address".to_owned(),
    };
    let explanation =
        format!("{attempts} failed logins or denied requests from {who} within {} s", p.window_secs);
    let mut finding = found(rule, &key, event, triggers.clone(), attempts as u64, explanation);
    if p.by == By::Ip {
        finding.actor = None;
    }
    finding.subject = None;
    Some(finding)
}

/// Access outside the rule's working hours.
fn off_hours(rule: &Rule, p: &OffHoursCompiled, state: &mut RuleState, event: &Observed) -> Option<Finding> {
    if event.is_evident()
        || !has(&p.params.actions, &event.action)
        || !has(&p.params.actor_types, &event.actor_type)
        || within_hours(event.time, p)
    {
        return None;
    }
    if !cooled(state, &event.actor, event.time, p.params.cooldown_secs) {
        return None;
    }
    let (minute, weekday) = local_minute_and_day(event.time, p);
    let explanation = format!(
        "{} did {} ({}) at {:02}:{:02} on ISO weekday {weekday} (UTC{}), outside working hours {}-{}",
        event.actor,
        event.action,
        event.event_type,
        minute / 60,
        minute % 60,
        p.params.utc_offset,
        p.params.start,
        p.params.end
    );
    Some(found(rule, &event.actor, event, vec![event.event_id.clone()], 1, explanation))
}

/// Any access to a watched customer or record, except by exempt actors.
fn watchlist(rule: &Rule, p: &Watchlist, state: &mut RuleState, event: &Observed) -> Option<Finding> {
    if event.is_evident() || has(&p.exempt_actors, &event.actor) {
        return None;
    }
    let watched =
        event.subject.as_deref().filter(|s| has(&p.subjects, s)).map(str::to_owned).or_else(|| {
            event.targets.iter().map(|(t, id)| format!("{t}:{id}")).find(|t| has(&p.targets, t))
        })?;
    let key = format!("{}|{watched}", event.actor);
    if !cooled(state, &key, event.time, p.cooldown_secs) {
        return None;
    }
    let explanation =
        format!("{} did {} ({}) on watched {watched}", event.actor, event.action, event.event_type);
    Some(found(rule, &key, event, vec![event.event_id.clone()], 1, explanation))
}

/// Reads of personal data without a stated purpose.
fn no_purpose(rule: &Rule, p: &NoPurpose, state: &mut RuleState, event: &Observed) -> Option<Finding> {
    if event.is_evident()
        || !has(&p.actions, &event.action)
        || event.reason.as_deref().is_some_and(|r| !r.trim().is_empty())
        || (!p.data_classes.is_empty() && !event.data_classes.iter().any(|c| has(&p.data_classes, c)))
    {
        return None;
    }
    if !cooled(state, &event.actor, event.time, p.cooldown_secs) {
        return None;
    }
    let about = event.subject.as_deref().map(|s| format!(" on {s}")).unwrap_or_default();
    let explanation = format!(
        "{} did {} ({}){about}, personal data ({}), without a stated purpose",
        event.actor,
        event.action,
        event.event_type,
        event.data_classes.join(", ")
    );
    Some(found(rule, &event.actor, event, vec![event.event_id.clone()], 1, explanation))
}

/// A sensitive field of a customer changes, then within the window an export concerning that
/// customer or a login of that customer from a new place.
fn sensitive_change(
    rule: &Rule,
    p: &SensitiveChange,
    state: &mut RuleState,
    event: &Observed,
) -> Option<Finding> {
    if event.is_evident() {
        return None;
    }
    let new_place = login_from_new_place(state, event);
    if let Some(field) = event.changed_fields.iter().find(|f| has(&p.fields, f))
        && let Some(subject) = &event.subject
        && event.outcome == "success"
    {
        let until = event.time + p.window_secs as i64 * SECOND;
        *state.pending.touch(subject, Pending::default) =
            Pending { until, event_id: event.event_id.clone(), field: field.clone() };
        return None;
    }
    let (customer, what) = if event.action == "export" {
        (event.subject.clone()?, "an export")
    } else if new_place {
        (event.actor.clone(), "a login from a new place")
    } else {
        return None;
    };
    let pending = state.pending.get(&customer)?.clone();
    if event.time > pending.until || event.time < pending.until - p.window_secs as i64 * SECOND {
        return None;
    }
    state.pending.remove(&customer);
    let explanation = format!(
        "{} of customer {customer} changed, then {what} ({} by {}) within {} s",
        pending.field, event.event_type, event.actor, p.window_secs
    );
    let triggers = vec![pending.event_id, event.event_id.clone()];
    let mut finding = found(rule, &customer, event, triggers, 2, explanation);
    finding.subject = Some(customer);
    Some(finding)
}

/// Whether the event is a successful login of a customer (as actor) from an IP address (hashed)
/// not seen for them before; remembers the address.
fn login_from_new_place(state: &mut RuleState, event: &Observed) -> bool {
    if event.action != "login" || event.outcome != "success" {
        return false;
    }
    let Some(ip) = &event.ip else { return false };
    let seen = state.seen.touch(&event.actor, Seen::default);
    let new = !seen.values.contains(ip);
    if new {
        seen.values.push(ip.clone());
        if seen.values.len() > MAX_SEEN {
            seen.values.remove(0);
        }
    }
    new && seen.values.len() > 1
}

/// Privilege grants and changes to the audit system's own settings.
fn privilege_change(rule: &Rule, p: &PrivilegeChange, event: &Observed) -> Option<Finding> {
    if event.actor_type == "system" || event.outcome == "failure" {
        return None;
    }
    let evident = event.is_evident();
    let settings = evident && p.type_prefixes.iter().any(|prefix| event.event_type.starts_with(prefix));
    let role = event.metadata.get("role").and_then(|r| r.as_str()).unwrap_or_default();
    let key_grant =
        evident && event.event_type == "evident.admin.key_created" && has(&p.privileged_roles, role);
    let producer_grant = !evident && has(&p.actions, &event.action);
    if !(settings || key_grant || producer_grant) {
        return None;
    }
    let target = event.targets.first().map(|(t, id)| format!("{t} {id}")).unwrap_or_default();
    // Only an admin key may call `POST /v1/keys`: an actor that is an API key is that path.
    let through_api = key_grant && event.actor_type == "api_key";
    let explanation = if through_api {
        format!(
            "admin {} created a key with role {role} ({target}) through the API: expected when planned; \
             confirm it was, or revoke it",
            event.actor
        )
    } else if key_grant {
        format!(
            "{} created a key with role {role} ({target}) outside the API (break-glass from the data \
             directory or the database): confirm who did it and why",
            event.actor
        )
    } else {
        format!("{} did {} ({}) on {target}", event.actor, event.action, event.event_type)
    };
    let mut finding = found(rule, &event.event_id, event, vec![event.event_id.clone()], 1, explanation);
    if through_api {
        finding.severity = p.api_key_grant_severity;
    }
    Some(finding)
}

/// An actor touches a kind of record never touched before, once it has enough history.
fn first_touch(rule: &Rule, p: &FirstTouch, state: &mut RuleState, event: &Observed) -> Option<Finding> {
    if event.is_evident() || event.targets.is_empty() {
        return None;
    }
    let seen = state.seen.touch(&event.actor, Seen::default);
    seen.events += 1;
    let mut new_kinds = Vec::new();
    for (kind, _) in &event.targets {
        if !seen.values.contains(kind) {
            seen.values.push(kind.clone());
            new_kinds.push(kind.clone());
        }
    }
    if seen.values.len() > MAX_SEEN {
        let extra = seen.values.len() - MAX_SEEN;
        seen.values.drain(..extra);
    }
    if new_kinds.is_empty() || seen.events <= u64::from(p.min_events) {
        return None;
    }
    let explanation = format!(
        "{} touched {} for the first time after {} events ({})",
        event.actor,
        new_kinds.join(", "),
        seen.events - 1,
        event.event_type
    );
    let key = format!("{}|{}", event.actor, new_kinds.join(","));
    Some(found(rule, &key, event, vec![event.event_id.clone()], 1, explanation))
}

/// Silence learns each source's usual gap between arrivals here; [`Evaluator::tick`] judges it.
fn learn_gap(state: &mut RuleState, event: &Observed, arrival: i64) {
    if event.is_evident() {
        return;
    }
    let gap = state.gaps.touch(&event.source, SourceGap::default);
    if gap.arrivals > 0 {
        let observed = (arrival - gap.last_arrival).max(0) as f64;
        gap.mean_gap = if gap.arrivals == 1 { observed } else { 0.9 * gap.mean_gap + 0.1 * observed };
    }
    gap.arrivals += 1;
    gap.last_arrival = arrival;
    gap.fired = false;
    gap.last_event = event.event_id.clone();
}

/// Hourly activity of an actor or a source departs from its learned level.
fn baseline(rule: &Rule, p: &Baseline, state: &mut RuleState, event: &Observed) -> Option<Finding> {
    if event.is_evident() {
        return None;
    }
    let key = match p.by {
        By::Source => event.source.clone(),
        _ => event.actor.clone(),
    };
    let hour = event.time.div_euclid(HOUR);
    let level = state.levels.touch(&key, HourLevel::default);
    if !level.count_in(hour) {
        return None; // late event of a closed hour
    }
    level.last_event = event.event_id.clone();
    let limit = (level.mean * p.factor).max(f64::from(p.min_count));
    if level.fired || level.hours < p.learning_hours || f64::from(level.count) <= limit {
        return None;
    }
    level.fired = true;
    let explanation = format!(
        "{} has {} events in the hour from {} UTC; its usual level is {:.1} per active hour (limit {:.0})",
        key,
        level.count,
        evident_wire::Micros(hour * HOUR).to_rfc3339(),
        level.mean,
        limit
    );
    let count = u64::from(level.count);
    let triggers = vec![event.event_id.clone()];
    let mut finding = found(rule, &format!("{key}@{hour}"), event, triggers, count, explanation);
    finding.key = key;
    finding.subject = None;
    Some(finding)
}

impl HourLevel {
    /// Counts an event of `hour`, closing the current hour into the mean when `hour` is later;
    /// `false` for a late event of a closed hour (not counted).
    fn count_in(&mut self, hour: i64) -> bool {
        if self.hours == 0 && self.count == 0 {
            self.hour = hour;
        }
        if hour < self.hour {
            return false;
        }
        if hour > self.hour {
            let count = f64::from(self.count);
            self.mean = if self.hours == 0 { count } else { 0.9 * self.mean + 0.1 * count };
            self.hours += 1;
            self.hour = hour;
            self.count = 0;
            self.fired = false;
        }
        self.count += 1;
        true
    }
}

impl State {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("state serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<State> {
        serde_json::from_slice(bytes).map_err(|err| crate::Error::State(err.to_string()))
    }
}

/// Keys held, over all rules (for metrics and the memory test).
pub fn keys_held(state: &State) -> usize {
    state
        .rules
        .values()
        .map(|r| {
            r.windows.len()
                + r.quiet_until.len()
                + r.levels.len()
                + r.gaps.len()
                + r.seen.len()
                + r.pending.len()
        })
        .sum()
}
