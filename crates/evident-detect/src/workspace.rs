//! The detection workspace: each tenant's rules, webhooks, findings with their workflow, dead
//! letters and evaluator, held over the store they persist in. It is the only way they change.
//!
//! Persistence (service-state blobs): `detect/<tenant>/config` (rules and webhooks, written on
//! every change) and `detect/<tenant>/state` (evaluator windows and watermark, findings, dead
//! letters; written by [`Workspace::persist`] when changed). `detect/secret` is the service's
//! detection secret, made once and stored wrapped by the master key: webhook secrets and IP
//! pseudonym keys derive from it, so a webhook's secret is the same on every reload and is never
//! stored. A secret that cannot be read or opened stops the service; it is never replaced.
//!
//! Concurrency: a tenant's state is behind one lock, held only for in-memory steps (never across
//! an `.await`). A change a person makes (rules, webhooks, finding status, redelivery) must be
//! recorded in the tenant's log before it takes effect, which means awaiting a commit; so such
//! changes go through an [`Editor`], which holds the tenant's change lock from the check, across
//! the caller's awaited record, to the apply: two changes never interleave, and the second is
//! checked against what the first left. The detector's own updates (evaluation, new findings,
//! dead letters) are single in-memory steps that do not wait.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use evident_core::seal::MasterKey;
use evident_core::store::{Store, TenantId};
use evident_wire::Micros;
use evident_wire::detect::DeadLetter;
use evident_wire::signature::hmac_sha256;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::eval::{Evaluator, Finding, State};
use crate::finding::{FindingRecord, Status, StatusChange};
use crate::observe::Observed;
use crate::rule::{Rule, Severity, default_rules};
use crate::{Error, Result};

/// Findings kept per tenant for the API (the oldest closed ones go first).
pub const MAX_FINDINGS: usize = 10_000;
/// Dead letters kept per tenant.
pub const MAX_DEAD_LETTERS: usize = 1000;
/// Rules per tenant.
pub const MAX_RULES: usize = 200;
/// Webhooks per tenant.
pub const MAX_WEBHOOKS: usize = 20;

/// A webhook (its secret is derived, never stored: [`Workspace::webhook_secret`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Findings below this severity are not sent.
    pub min_severity: Severity,
    pub created_at: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Default, Serialize, Deserialize)]
struct ConfigBlob {
    rules: Vec<Rule>,
    webhooks: Vec<Webhook>,
}

#[derive(Default, Serialize, Deserialize)]
struct StateBlob {
    evaluator: State,
    findings: Vec<FindingRecord>,
    dead_letters: Vec<DeadLetter>,
}

/// The service-state name of the wrapped detection secret.
const SECRET_NAME: &str = "detect/secret";

fn config_name(tenant: &TenantId) -> String {
    format!("detect/{tenant}/config")
}

fn state_name(tenant: &TenantId) -> String {
    format!("detect/{tenant}/state")
}

/// Where the detection secret is kept in the store's service state.
/// Every tenant's detection, over the store it persists in.
pub struct Workspace {
    store: Arc<dyn Store>,
    secret: Zeroizing<[u8; 32]>,
    tenants: Mutex<HashMap<TenantId, Arc<TenantWorkspace>>>,
}

impl Workspace {
    /// Opens the workspace: loads (or makes, on first use) the detection secret, wrapped by
    /// `master`. Tenants load on first use. A secret that cannot be read or opened is an error:
    /// replacing it would change every webhook secret and pseudonym.
    pub fn open(store: Arc<dyn Store>, master: &MasterKey) -> Result<Workspace> {
        let secret = match store.get_state(SECRET_NAME)? {
            Some(wrapped) if wrapped.len() == 32 => {
                // Stored in clear by earlier versions: wrap the same secret in place.
                let secret: [u8; 32] = wrapped.try_into().expect("32 bytes");
                store.put_state(SECRET_NAME, &master.wrap_secret(SECRET_NAME, &secret))?;
                Zeroizing::new(secret)
            }
            Some(wrapped) => master.unwrap_secret(SECRET_NAME, &wrapped)?,
            None => {
                let secret = Zeroizing::new(evident_core::seal::random_32());
                store.put_state(SECRET_NAME, &master.wrap_secret(SECRET_NAME, &secret))?;
                secret
            }
        };
        Ok(Workspace { store, secret, tenants: Mutex::new(HashMap::new()) })
    }

    /// Sets a tenant's rules and webhooks before the workspace first loads it (benchmarks, tests).
    pub fn install(
        store: &dyn Store,
        tenant: &TenantId,
        rules: Vec<Rule>,
        webhooks: Vec<Webhook>,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(&ConfigBlob { rules, webhooks }).expect("config serialises");
        Ok(store.put_state(&config_name(tenant), &bytes)?)
    }

    /// The secret a webhook's deliveries are signed with (`whsec_` and 64 hex digits): derived
    /// from the detection secret, the tenant and the webhook id, so the same for the webhook's life.
    pub fn webhook_secret(&self, tenant: &TenantId, webhook_id: &str) -> String {
        let derived =
            hmac_sha256(self.secret.as_slice(), format!("webhook\n{tenant}\n{webhook_id}").as_bytes());
        format!("whsec_{}", hex::encode(derived))
    }

    /// A tenant's detection, loaded from the store on first use. A tenant seen for the first time
    /// gets the default rules and starts at its current head (history is not re-scanned).
    pub fn tenant(&self, tenant: &TenantId) -> Result<Arc<TenantWorkspace>> {
        if let Some(found) = self.tenants.lock().expect("not poisoned").get(tenant) {
            return Ok(Arc::clone(found));
        }
        let loaded = self.load(tenant)?;
        let mut tenants = self.tenants.lock().expect("not poisoned");
        Ok(Arc::clone(tenants.entry(tenant.clone()).or_insert_with(|| Arc::new(loaded))))
    }

    /// A tenant's detection if it is loaded: never reads the store.
    pub fn loaded_tenant(&self, tenant: &TenantId) -> Option<Arc<TenantWorkspace>> {
        self.tenants.lock().expect("not poisoned").get(tenant).cloned()
    }

    /// A tenant's detection as the store holds it now, without caching it: what a node that does
    /// not lead the tenant answers from (its leader writes the state every few seconds).
    pub fn snapshot(&self, tenant: &TenantId) -> Result<Arc<TenantWorkspace>> {
        Ok(Arc::new(self.load(tenant)?))
    }

    /// Drops a tenant's cached detection without writing it: on a shared store, when this node
    /// stops leading the tenant (its new leader owns the state now), or starts leading it (the
    /// state in the store is newer than the cached copy).
    pub fn unload(&self, tenant: &TenantId) {
        self.tenants.lock().expect("not poisoned").remove(tenant);
    }

    /// Every tenant loaded now.
    pub fn loaded(&self) -> Vec<Arc<TenantWorkspace>> {
        self.tenants.lock().expect("not poisoned").values().cloned().collect()
    }

    /// Writes the state blob of every changed tenant in `led` (all when `None`: on a shared
    /// store only the node leading a tenant writes it). The state is copied under the tenant's
    /// lock and serialised outside it, so evaluation is held up only for the copy.
    pub fn persist(&self, led: Option<&HashSet<TenantId>>) {
        for tenant in self.loaded() {
            if led.is_some_and(|led| !led.contains(&tenant.tenant)) {
                continue;
            }
            tenant.persist_state();
        }
    }

    fn load(&self, tenant: &TenantId) -> Result<TenantWorkspace> {
        let config: Option<ConfigBlob> =
            self.store.get_state(&config_name(tenant))?.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let fresh_config = config.is_none();
        let config = config.unwrap_or_else(|| ConfigBlob { rules: default_rules(), webhooks: Vec::new() });
        let state: Option<StateBlob> = self.store.get_state(&state_name(tenant))?.and_then(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|err| tracing::error!(%tenant, error = %err, "detection state does not parse; starting afresh"))
                .ok()
        });
        let fresh_state = state.is_none();
        let mut state = state.unwrap_or_default();
        if fresh_state {
            let head = self.store.head(tenant)?.map_or(0, |h| h.size.0);
            state.evaluator.watermark = head.checked_sub(1);
        }
        let evaluator = Evaluator::new(&config.rules, state.evaluator).unwrap_or_else(|err| {
            tracing::error!(%tenant, error = %err, "stored rules do not compile; running none");
            Evaluator::new(&[], State::default()).expect("no rules compile")
        });
        let detection = Detection {
            rules: config.rules,
            evaluator,
            findings: state.findings.into_iter().map(|f| (f.finding.id.clone(), f)).collect(),
            webhooks: config.webhooks,
            dead_letters: state.dead_letters,
            dirty: fresh_state,
        };
        let loaded = TenantWorkspace {
            tenant: tenant.clone(),
            store: Arc::clone(&self.store),
            ip_key: hmac_sha256(self.secret.as_slice(), format!("ip\n{tenant}").as_bytes()),
            detection: Mutex::new(detection),
            changes: tokio::sync::Mutex::new(()),
        };
        if fresh_config {
            loaded.save_config(&loaded.lock())?;
        }
        if fresh_state {
            // The starting watermark is durable before any event is evaluated, so a crash before
            // the first periodic write resumes from here instead of skipping what came between.
            loaded.persist_state();
        }
        Ok(loaded)
    }
}

/// What a tenant's lock guards.
struct Detection {
    rules: Vec<Rule>,
    evaluator: Evaluator,
    findings: BTreeMap<String, FindingRecord>,
    webhooks: Vec<Webhook>,
    dead_letters: Vec<DeadLetter>,
    /// The state blob needs writing.
    dirty: bool,
}

impl Detection {
    /// Keeps at most [`MAX_FINDINGS`], dropping closed ones first, then the oldest.
    fn trim_findings(&mut self) {
        let extra = self.findings.len().saturating_sub(MAX_FINDINGS);
        if extra == 0 {
            return;
        }
        let mut order: Vec<(bool, i64, String)> = self
            .findings
            .values()
            .map(|f| (!f.status.is_closed(), f.finding.time, f.finding.id.clone()))
            .collect();
        order.sort_unstable();
        for (_, _, id) in order.into_iter().take(extra) {
            self.findings.remove(&id);
        }
    }

    fn state_blob(&self) -> StateBlob {
        StateBlob {
            evaluator: self.evaluator.state.clone(),
            findings: self.findings.values().cloned().collect(),
            dead_letters: self.dead_letters.clone(),
        }
    }
}

/// What one evaluation pass did.
#[derive(Debug, Default)]
pub struct Evaluated {
    pub findings: Vec<Finding>,
    /// Events evaluated (after the watermark, parsed).
    pub events: u64,
}

/// One tenant's detection.
pub struct TenantWorkspace {
    tenant: TenantId,
    store: Arc<dyn Store>,
    ip_key: [u8; 32],
    detection: Mutex<Detection>,
    /// Serialises the changes made through an [`Editor`].
    changes: tokio::sync::Mutex<()>,
}

impl TenantWorkspace {
    fn lock(&self) -> MutexGuard<'_, Detection> {
        self.detection.lock().expect("not poisoned")
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The key IP addresses are hashed with ([`crate::observe::ip_pseudonym`]).
    pub fn ip_key(&self) -> &[u8; 32] {
        &self.ip_key
    }

    // ---- reads ----

    pub fn rules(&self) -> Vec<Rule> {
        self.lock().rules.clone()
    }

    pub fn rule(&self, id: &str) -> Option<Rule> {
        self.lock().rules.iter().find(|r| r.id == id).cloned()
    }

    pub fn webhooks(&self) -> Vec<Webhook> {
        self.lock().webhooks.clone()
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead_letters.clone()
    }

    pub fn finding(&self, id: &str) -> Option<FindingRecord> {
        self.lock().findings.get(id).cloned()
    }

    /// The findings `filter` keeps, by id.
    pub fn findings(&self, filter: impl Fn(&FindingRecord) -> bool) -> Vec<FindingRecord> {
        self.lock().findings.values().filter(|f| filter(f)).cloned().collect()
    }

    /// The last index evaluated.
    pub fn watermark(&self) -> Option<u64> {
        self.lock().evaluator.state.watermark
    }

    /// Whether a rule keys on IP addresses (so catching up should open personal parts).
    pub fn needs_ip(&self) -> bool {
        self.lock().evaluator.needs_ip()
    }

    // ---- the detector's updates ----

    /// Evaluates events in index order: `(index, event)`, `None` for an entry that does not parse
    /// (passed over). Indices at or below the watermark are skipped. A rule that panics on an
    /// event is logged and the event skipped for all rules, so one bad rule cannot stop detection.
    pub fn evaluate(
        &self,
        batch: impl IntoIterator<Item = (u64, Option<Observed>)>,
        arrival: i64,
    ) -> Evaluated {
        let mut evaluated = Evaluated::default();
        let mut detection = self.lock();
        for (index, observed) in batch {
            let evaluator = &mut detection.evaluator;
            if evaluator.state.watermark.is_some_and(|w| index <= w) {
                continue;
            }
            let Some(observed) = observed else {
                evaluator.state.watermark = Some(index);
                continue;
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                evaluator.observe(&observed, arrival)
            }));
            match outcome {
                Ok(findings) => evaluated.findings.extend(findings),
                Err(_) => {
                    tracing::error!(tenant = %self.tenant, index, "a rule panicked on this event; skipped");
                    evaluator.state.watermark = Some(index);
                }
            }
            evaluated.events += 1;
            detection.dirty = true;
        }
        evaluated
    }

    /// Judges what only the passing of time reveals (silent sources).
    pub fn tick(&self, now: i64) -> Vec<Finding> {
        self.lock().evaluator.tick(now)
    }

    /// Of `findings`, those not recorded yet, each once (replays after a crash are dropped).
    pub fn unrecorded(&self, mut findings: Vec<Finding>) -> Vec<Finding> {
        let detection = self.lock();
        let mut seen = HashSet::new();
        findings.retain(|f| !detection.findings.contains_key(&f.id) && seen.insert(f.id.clone()));
        findings
    }

    /// Opens findings whose `evident.finding.opened` events are durable at the given indices.
    /// Answers their records and the webhooks to deliver them to (each to those whose
    /// `min_severity` it reaches).
    ///
    /// A handler records a change before it applies it; the finding of an event recorded in
    /// between waits for the change (the [`Editor`]'s lock), so it goes to the webhooks as they
    /// stand after every change recorded before it: a new webhook gets the finding of its own
    /// creation, a deleted one nothing more.
    pub async fn open_findings(&self, recorded: Vec<(Finding, u64)>) -> Vec<(FindingRecord, Vec<Webhook>)> {
        let _serial = self.changes.lock().await;
        let opened_at = Micros::now().to_rfc3339();
        let mut detection = self.lock();
        let mut opened = Vec::with_capacity(recorded.len());
        for (finding, event_index) in recorded {
            let record = FindingRecord {
                finding,
                status: Status::Open,
                opened_at: opened_at.clone(),
                event_index,
                history: Vec::new(),
            };
            detection.findings.insert(record.finding.id.clone(), record.clone());
            let webhooks = detection
                .webhooks
                .iter()
                .filter(|w| record.finding.severity >= w.min_severity)
                .cloned()
                .collect();
            opened.push((record, webhooks));
        }
        detection.trim_findings();
        detection.dirty = true;
        opened
    }

    /// Keeps a delivery that failed (replacing an earlier dead letter of the same delivery);
    /// at most [`MAX_DEAD_LETTERS`], the oldest dropped first.
    pub fn add_dead_letter(&self, letter: DeadLetter) {
        let mut detection = self.lock();
        detection.dead_letters.retain(|d| d.id != letter.id);
        detection.dead_letters.push(letter);
        let extra = detection.dead_letters.len().saturating_sub(MAX_DEAD_LETTERS);
        detection.dead_letters.drain(..extra);
        detection.dirty = true;
    }

    /// Writes the state blob if it changed; on failure it stays marked to write.
    fn persist_state(&self) {
        let blob = {
            let mut detection = self.lock();
            if !detection.dirty {
                return;
            }
            detection.dirty = false;
            detection.state_blob()
        };
        let bytes = serde_json::to_vec(&blob).expect("state serialises");
        if let Err(err) = self.store.put_state(&state_name(&self.tenant), &bytes) {
            tracing::error!(tenant = %self.tenant, error = %err, "cannot persist detection state");
            self.lock().dirty = true;
        }
    }

    fn save_config(&self, detection: &Detection) -> Result<()> {
        let blob = ConfigBlob { rules: detection.rules.clone(), webhooks: detection.webhooks.clone() };
        let bytes = serde_json::to_vec(&blob).expect("config serialises");
        Ok(self.store.put_state(&config_name(&self.tenant), &bytes)?)
    }

    // ---- changes people make ----

    /// Starts a change: waits for the changes under way to finish, then holds the change lock
    /// until the [`Editor`] is dropped.
    pub async fn edit(&self) -> Editor<'_> {
        Editor { tenant: self, _serial: self.changes.lock().await }
    }
}

/// A change of the rule set, checked against the current one; record it, then apply it.
#[derive(Clone, Debug)]
pub enum RuleChange {
    Create(Rule),
    Replace(Rule),
    Delete(Rule),
}

impl RuleChange {
    pub fn rule(&self) -> &Rule {
        match self {
            RuleChange::Create(rule) | RuleChange::Replace(rule) | RuleChange::Delete(rule) => rule,
        }
    }

    /// The type of the event recording it.
    pub fn event_type(&self) -> &'static str {
        match self {
            RuleChange::Create(_) => "evident.rule.created",
            RuleChange::Replace(_) => "evident.rule.updated",
            RuleChange::Delete(_) => "evident.rule.deleted",
        }
    }
}

/// A step of a finding's workflow, checked against its current status; record it, then apply it.
#[derive(Clone, Debug)]
pub struct StatusStep {
    pub finding: String,
    /// The finding's rule.
    pub rule: String,
    pub from: Status,
    pub to: Status,
    pub comment: Option<String>,
}

/// Checks a requested workflow step before anything is looked up: `to` must be a status one can
/// move to, a closed one needs a comment (trimmed; empty is none), and a comment has at most
/// 2000 characters.
pub fn check_step(to: &str, comment: Option<String>) -> Result<(Status, Option<String>)> {
    let invalid = |field, rule, reason: &str| Error::Invalid { field, rule, reason: reason.to_owned() };
    let to = Status::parse(to)
        .filter(|s| *s != Status::Open)
        .ok_or_else(|| invalid("status", "enum", "acknowledged, resolved or false_positive"))?;
    let comment = comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    if to.needs_comment() && comment.is_none() {
        return Err(invalid("comment", "required", "say why when resolving or dismissing"));
    }
    if comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        return Err(invalid("comment", "length", "at most 2000 characters"));
    }
    Ok((to, comment))
}

/// A webhook change, checked; record it, then apply it.
#[derive(Clone, Debug)]
pub enum WebhookChange {
    Create(Webhook),
    Delete(String),
}

/// A dead letter to deliver again, checked; record it, then apply it (it leaves the list).
#[derive(Clone, Debug)]
pub struct Redelivery {
    pub delivery: String,
    pub webhook: Webhook,
    pub record: FindingRecord,
}

/// A change under way on one tenant: no other change of the tenant starts until it is dropped.
/// Its `check_*` methods judge a change against the current state; the caller then records it
/// (awaiting the tenant's log) and calls `apply_*`. Nothing is applied if the caller stops between.
pub struct Editor<'a> {
    tenant: &'a TenantWorkspace,
    _serial: tokio::sync::MutexGuard<'a, ()>,
}

impl Editor<'_> {
    /// A new rule: its id must be free and the tenant below [`MAX_RULES`].
    pub fn check_create_rule(&self, rule: Rule) -> Result<RuleChange> {
        rule.compile()?;
        let detection = self.tenant.lock();
        if detection.rules.iter().any(|r| r.id == rule.id) {
            return Err(Error::Conflict(format!(
                "rule {:?} exists; PUT /v1/rules/{} changes it",
                rule.id, rule.id
            )));
        }
        if detection.rules.len() >= MAX_RULES {
            return Err(Error::Invalid {
                field: "id",
                rule: "limit",
                reason: format!("a tenant has at most {MAX_RULES} rules"),
            });
        }
        Ok(RuleChange::Create(rule))
    }

    /// A rule that replaces the one with its id.
    pub fn check_replace_rule(&self, rule: Rule) -> Result<RuleChange> {
        rule.compile()?;
        if !self.tenant.lock().rules.iter().any(|r| r.id == rule.id) {
            return Err(Error::NotFound(format!("no rule {:?}", rule.id)));
        }
        Ok(RuleChange::Replace(rule))
    }

    /// Deleting the rule with this id.
    pub fn check_delete_rule(&self, id: &str) -> Result<RuleChange> {
        let rule = self.tenant.rule(id).ok_or_else(|| Error::NotFound(format!("no rule {id:?}")))?;
        Ok(RuleChange::Delete(rule))
    }

    /// Applies a rule change: compiles the new set into the evaluator (keeping the state of
    /// unchanged rules), then stores it.
    pub fn apply_rule_change(&mut self, change: RuleChange) -> Result<()> {
        let mut detection = self.tenant.lock();
        let mut rules = detection.rules.clone();
        match change {
            RuleChange::Create(rule) => rules.push(rule),
            RuleChange::Replace(rule) => {
                rules.iter_mut().filter(|r| r.id == rule.id).for_each(|r| *r = rule.clone())
            }
            RuleChange::Delete(rule) => rules.retain(|r| r.id != rule.id),
        }
        detection.evaluator.set_rules(&rules)?;
        detection.rules = rules;
        self.tenant.save_config(&detection)
    }

    /// Moving a finding to `to` (checked first with [`check_step`]).
    pub fn check_status(&self, finding_id: &str, to: Status, comment: Option<String>) -> Result<StatusStep> {
        let detection = self.tenant.lock();
        let finding = detection
            .findings
            .get(finding_id)
            .ok_or_else(|| Error::NotFound(format!("no finding {finding_id:?}")))?;
        let from = finding.status;
        if !from.can_become(to) {
            return Err(Error::Conflict(format!("a finding that is {from} cannot become {to}")));
        }
        Ok(StatusStep {
            finding: finding_id.to_owned(),
            rule: finding.finding.rule.clone(),
            from,
            to,
            comment,
        })
    }

    /// Applies a workflow step `by` someone, recorded at `event_index`; answers the finding.
    pub fn apply_status(&mut self, step: StatusStep, by: String, event_index: u64) -> Result<FindingRecord> {
        let mut detection = self.tenant.lock();
        let finding = detection
            .findings
            .get_mut(&step.finding)
            .ok_or_else(|| Error::NotFound(format!("no finding {:?}", step.finding)))?;
        finding.status = step.to;
        finding.history.push(StatusChange {
            status: step.to,
            by,
            comment: step.comment,
            at: Micros::now().to_rfc3339(),
            event_index,
        });
        let answer = finding.clone();
        detection.dirty = true;
        Ok(answer)
    }

    /// A new webhook (with a fresh id; apply it as [`WebhookChange::Create`]) while the tenant
    /// has fewer than [`MAX_WEBHOOKS`].
    pub fn check_create_webhook(
        &self,
        url: String,
        min_severity: Severity,
        description: String,
    ) -> Result<Webhook> {
        if self.tenant.lock().webhooks.len() >= MAX_WEBHOOKS {
            return Err(Error::Invalid {
                field: "url",
                rule: "limit",
                reason: format!("a tenant has at most {MAX_WEBHOOKS} webhooks"),
            });
        }
        Ok(Webhook {
            id: format!("wh_{}", hex::encode(&evident_core::seal::random_32()[..8])),
            url,
            min_severity,
            created_at: Micros::now().to_rfc3339(),
            description,
        })
    }

    /// Deleting the webhook with this id.
    pub fn check_delete_webhook(&self, id: &str) -> Result<WebhookChange> {
        if !self.tenant.lock().webhooks.iter().any(|w| w.id == id) {
            return Err(Error::NotFound(format!("no webhook {id:?}")));
        }
        Ok(WebhookChange::Delete(id.to_owned()))
    }

    /// Applies a webhook change and stores the configuration.
    pub fn apply_webhook_change(&mut self, change: WebhookChange) -> Result<()> {
        let mut detection = self.tenant.lock();
        match change {
            WebhookChange::Create(webhook) => detection.webhooks.push(webhook),
            WebhookChange::Delete(id) => detection.webhooks.retain(|w| w.id != id),
        }
        self.tenant.save_config(&detection)
    }

    /// Delivering a dead letter again: its webhook and finding must still exist.
    pub fn check_redelivery(&self, delivery_id: &str) -> Result<Redelivery> {
        let detection = self.tenant.lock();
        let letter = detection
            .dead_letters
            .iter()
            .find(|d| d.id == delivery_id)
            .ok_or_else(|| Error::NotFound(format!("no dead letter {delivery_id:?}")))?;
        let webhook = detection.webhooks.iter().find(|w| w.id == letter.webhook).cloned();
        let record = detection.findings.get(&letter.finding).cloned();
        let (Some(webhook), Some(record)) = (webhook, record) else {
            return Err(Error::NotFound("its webhook or finding no longer exists".into()));
        };
        Ok(Redelivery { delivery: delivery_id.to_owned(), webhook, record })
    }

    /// Takes the dead letter off the list (the delivery is then the caller's).
    pub fn apply_redelivery(&mut self, redelivery: &Redelivery) {
        let mut detection = self.tenant.lock();
        detection.dead_letters.retain(|d| d.id != redelivery.delivery);
        detection.dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use evident_core::store::LogStore as _;
    use evident_store_sqlite::SqliteStore;

    use super::*;

    /// The store in `dir`, with the tenant.
    fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let store = SqliteStore::open(&dir.path().join("evident.sqlite")).expect("store opens");
        store.create_tenant(&tenant(), &evident_core::event::TenantPolicy::default()).expect("tenant");
        Arc::new(store)
    }

    fn tenant() -> TenantId {
        TenantId::new("acme").expect("valid")
    }

    fn master() -> MasterKey {
        MasterKey::from_bytes([3; 32])
    }

    fn open(dir: &tempfile::TempDir) -> Workspace {
        Workspace::open(store(dir), &master()).expect("the workspace opens")
    }

    #[test]
    fn the_detection_secret_is_wrapped_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        // An earlier version's secret in clear is kept, and wrapped in place.
        store(&dir).put_state(SECRET_NAME, &[9; 32]).unwrap();
        let secret = open(&dir).webhook_secret(&tenant(), "wh_1");
        let stored = store(&dir).get_state(SECRET_NAME).unwrap().unwrap();
        assert!(!stored.windows(32).any(|w| w == [9; 32]), "stored in clear");
        assert_eq!(*master().unwrap_secret(SECRET_NAME, &stored).unwrap(), [9; 32]);
        assert_eq!(open(&dir).webhook_secret(&tenant(), "wh_1"), secret, "the same secret on reload");
        // Another master key cannot open it: the workspace refuses to start and keeps the secret.
        let refused = Workspace::open(store(&dir), &MasterKey::from_bytes([4; 32]));
        assert!(matches!(refused, Err(Error::Core(evident_core::Error::Sealed(_)))), "{:?}", refused.err());
        assert_eq!(store(&dir).get_state(SECRET_NAME).unwrap().unwrap(), stored, "not replaced");
        // A fresh store gets a new secret, wrapped.
        let fresh = tempfile::tempdir().unwrap();
        drop(open(&fresh));
        assert_eq!(store(&fresh).get_state(SECRET_NAME).unwrap().unwrap().len(), 1 + 24 + 32 + 16);
    }

    fn finding(id: &str) -> Finding {
        Finding {
            id: id.to_owned(),
            rule: "no-purpose".into(),
            template: "no_purpose".into(),
            severity: Severity::Medium,
            key: "u-1".into(),
            actor: Some("u-1".into()),
            subject: None,
            time: 1_700_000_000_000_000,
            triggers: vec!["evt_1".into()],
            trigger_count: 1,
            explanation: "test".into(),
        }
    }

    fn rule(id: &str) -> Rule {
        serde_json::from_value(
            serde_json::json!({"id": id, "template": "no_purpose", "severity": "low", "params": {}}),
        )
        .expect("a rule")
    }

    /// What a handler does: check, record (awaiting the log; here a pause), apply.
    async fn change_status(detect: &TenantWorkspace, to: Status) -> Result<FindingRecord> {
        let mut editor = detect.edit().await;
        let step = editor.check_status("fnd_1", to, Some("checked".into()))?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        editor.apply_status(step, "key:test".into(), 9)
    }

    #[tokio::test]
    async fn concurrent_status_changes_are_checked_one_after_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = open(&dir);
        let detect = workspace.tenant(&tenant()).unwrap();
        detect.open_findings(vec![(finding("fnd_1"), 7)]).await;
        let (resolved, dismissed) = tokio::join!(
            change_status(&detect, Status::Resolved),
            change_status(&detect, Status::FalsePositive)
        );
        // The first closes the finding; the second is judged against that and refused.
        assert!(resolved.is_ok(), "{resolved:?}");
        match dismissed {
            Err(Error::Conflict(why)) => {
                assert_eq!(why, "a finding that is resolved cannot become false_positive")
            }
            other => panic!("the second change was not refused: {other:?}"),
        }
        let record = detect.finding("fnd_1").unwrap();
        assert_eq!(record.status, Status::Resolved);
        assert_eq!(record.history.len(), 1, "{:?}", record.history);
    }

    async fn create_rule(detect: &TenantWorkspace, id: &str) -> Result<()> {
        let mut editor = detect.edit().await;
        let change = editor.check_create_rule(rule(id))?;
        tokio::time::sleep(Duration::from_millis(10)).await;
        editor.apply_rule_change(change)
    }

    #[tokio::test]
    async fn concurrent_rule_changes_are_all_kept_and_stored() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = open(&dir);
        let detect = workspace.tenant(&tenant()).unwrap();
        let defaults = detect.rules().len();
        let (a, b, again) =
            tokio::join!(create_rule(&detect, "a"), create_rule(&detect, "b"), create_rule(&detect, "a"));
        a.unwrap();
        b.unwrap();
        assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
        assert_eq!(detect.rules().len(), defaults + 2);
        // What was stored is what a reload sees.
        let reloaded = open(&dir).tenant(&tenant()).unwrap();
        assert_eq!(reloaded.rules(), detect.rules());
    }

    #[tokio::test]
    async fn a_webhook_keeps_its_secret_across_changes_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = open(&dir);
        let detect = workspace.tenant(&tenant()).unwrap();
        let mut editor = detect.edit().await;
        let webhook = a_webhook(&editor);
        editor.apply_webhook_change(WebhookChange::Create(webhook.clone())).unwrap();
        let change = editor.check_create_rule(rule("other")).unwrap();
        editor.apply_rule_change(change).unwrap();
        drop(editor);
        let secret = workspace.webhook_secret(&tenant(), &webhook.id);
        assert!(secret.starts_with("whsec_") && secret.len() == 6 + 64, "{secret}");
        let reopened = open(&dir);
        assert_eq!(reopened.tenant(&tenant()).unwrap().webhooks(), std::slice::from_ref(&webhook));
        assert_eq!(reopened.webhook_secret(&tenant(), &webhook.id), secret);
        assert_ne!(reopened.webhook_secret(&tenant(), "wh_other"), secret);
    }

    /// A new webhook, checked (not yet applied).
    fn a_webhook(editor: &Editor<'_>) -> Webhook {
        editor.check_create_webhook("http://127.0.0.1:9/".into(), Severity::Low, String::new()).unwrap()
    }

    /// Opens `id` on a task of its own, as the detector does while a handler edits.
    fn open_aside(detect: &Arc<TenantWorkspace>, id: &str) -> tokio::task::JoinHandle<Vec<Webhook>> {
        let (detect, id) = (Arc::clone(detect), id.to_owned());
        tokio::spawn(async move {
            let mut opened = detect.open_findings(vec![(finding(&id), 7)]).await;
            opened.pop().expect("one finding").1
        })
    }

    /// A handler records a webhook change before applying it, and the detector may open a finding
    /// for that very event in between: it waits for the change, so a new webhook gets the finding
    /// of its own creation and a deleted one gets nothing more.
    #[tokio::test]
    async fn a_finding_opened_during_a_webhook_change_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = open(&dir);
        let detect = workspace.tenant(&tenant()).unwrap();
        let mut editor = detect.edit().await;
        let webhook = a_webhook(&editor);
        let opening = open_aside(&detect, "fnd_1");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!opening.is_finished(), "a finding was opened in the middle of a webhook change");
        editor.apply_webhook_change(WebhookChange::Create(webhook.clone())).unwrap();
        drop(editor);
        assert_eq!(opening.await.unwrap(), std::slice::from_ref(&webhook), "the new webhook gets it");

        let mut editor = detect.edit().await;
        let change = editor.check_delete_webhook(&webhook.id).unwrap();
        let opening = open_aside(&detect, "fnd_2");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!opening.is_finished(), "a finding was opened in the middle of a webhook change");
        editor.apply_webhook_change(change).unwrap();
        drop(editor);
        assert_eq!(opening.await.unwrap(), [], "a deleted webhook gets nothing more");
    }

    #[tokio::test]
    async fn findings_and_their_workflow_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = open(&dir);
        let detect = workspace.tenant(&tenant()).unwrap();
        detect.open_findings(vec![(finding("fnd_1"), 7)]).await;
        change_status(&detect, Status::Resolved).await.unwrap();
        workspace.persist(None);
        let reloaded = open(&dir).tenant(&tenant()).unwrap();
        assert_eq!(reloaded.finding("fnd_1"), detect.finding("fnd_1"));
        assert_eq!(reloaded.unrecorded(vec![finding("fnd_1"), finding("fnd_2"), finding("fnd_2")]).len(), 1);
    }

    #[test]
    fn a_loaded_tenant_is_answered_without_loading_one() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = open(&dir);
        assert!(workspace.loaded_tenant(&tenant()).is_none(), "nothing is loaded yet");
        let detect = workspace.tenant(&tenant()).unwrap();
        let loaded = workspace.loaded_tenant(&tenant()).expect("loaded now");
        assert!(Arc::ptr_eq(&loaded, &detect), "the same detection, not another copy");
        workspace.unload(&tenant());
        assert!(workspace.loaded_tenant(&tenant()).is_none(), "unloaded");
    }

    #[test]
    fn a_step_is_checked_before_anything_is_looked_up() {
        let refused = |to: &str, comment: Option<&str>| match check_step(to, comment.map(str::to_owned)) {
            Err(Error::Invalid { field, rule, .. }) => (field, rule),
            other => panic!("{to} {comment:?}: {other:?}"),
        };
        assert_eq!(refused("open", None), ("status", "enum"));
        assert_eq!(refused("closed", None), ("status", "enum"));
        assert_eq!(refused("resolved", Some("  ")), ("comment", "required"));
        assert_eq!(refused("acknowledged", Some(&"x".repeat(2001))), ("comment", "length"));
        assert_eq!(check_step("acknowledged", None).unwrap(), (Status::Acknowledged, None));
        assert_eq!(
            check_step("false_positive", Some(" ok ".into())).unwrap(),
            (Status::FalsePositive, Some("ok".into()))
        );
    }
}
