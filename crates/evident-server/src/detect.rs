//! Detection in the service: the [`Hub`] every handler shares (each tenant's rules, evaluator,
//! findings, webhooks and dead letters) and the [`Detector`] task that feeds committed events to
//! the evaluators, records findings in the tenant's log, and delivers them.
//!
//! Flow: the engine broadcasts every durable commit; the detector evaluates its entries in index
//! order (a per-tenant watermark; on a lag or a gap it reads the missed entries from the store,
//! opening personal parts only when a rule keys on IP addresses). Each finding is appended as
//! `evident.finding.opened` with a deterministic id (a replay after a crash is answered as a
//! duplicate, never stored twice), then shown to `GET /v1/findings`, the SSE stream and webhooks.
//!
//! Persistence (service-state blobs of the store): `detect/<tenant>/config` (rules, webhooks;
//! written on every change, each change also audited in the log) and `detect/<tenant>/state`
//! (evaluator windows and watermark, findings and their workflow, dead letters; written every
//! two seconds when changed and on shutdown). A crash loses at most those two seconds of
//! evaluation, which the restart re-evaluates from the watermark.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evident_core::engine::Committed;
use evident_core::read::{Access, EventRef};
use evident_core::store::{Store, TenantId};
use evident_detect::eval::{Evaluator, Finding, State};
use evident_detect::observe::Observed;
use evident_detect::rule::{Rule, Severity, default_rules};
use evident_wire::Micros;
use evident_wire::signature::{hmac_sha256, signature_header};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};

use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::ops::Counter;

/// Findings kept per tenant for the API (the oldest closed ones go first).
pub const MAX_FINDINGS: usize = 10_000;
/// Dead letters kept per tenant.
pub const MAX_DEAD_LETTERS: usize = 1000;

/// Settings of detection and delivery.
#[derive(Clone, Debug)]
pub struct DetectConfig {
    /// Delivery attempts before a dead letter.
    pub webhook_attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub webhook_backoff: Duration,
    pub webhook_timeout: Duration,
}

impl Default for DetectConfig {
    fn default() -> DetectConfig {
        DetectConfig {
            webhook_attempts: 6,
            webhook_backoff: Duration::from_millis(500),
            webhook_timeout: Duration::from_secs(10),
        }
    }
}

/// One step of a finding's workflow.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatusChange {
    pub status: String,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: String,
    /// Index of the event that records this step in the tenant's log.
    pub event_index: u64,
}

/// A finding with its workflow.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FindingRecord {
    #[serde(flatten)]
    pub finding: Finding,
    /// `open`, `acknowledged`, `resolved` or `false_positive`.
    pub status: String,
    pub opened_at: String,
    /// Index of its `evident.finding.opened` event.
    pub event_index: u64,
    #[serde(default)]
    pub history: Vec<StatusChange>,
}

/// A webhook (its secret is derived, never stored).
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

/// A delivery that failed every attempt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeadLetter {
    /// The delivery id (`Evident-Delivery`).
    pub id: String,
    pub webhook: String,
    pub finding: String,
    pub attempts: u32,
    pub last_error: String,
    pub failed_at: String,
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

/// One tenant's detection.
pub struct TenantDetect {
    pub rules: Vec<Rule>,
    pub evaluator: Evaluator,
    pub findings: BTreeMap<String, FindingRecord>,
    pub webhooks: Vec<Webhook>,
    pub dead_letters: Vec<DeadLetter>,
    /// The state blob needs writing.
    pub dirty: bool,
    ip_key: [u8; 32],
}

impl TenantDetect {
    pub fn config_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&ConfigBlob { rules: self.rules.clone(), webhooks: self.webhooks.clone() })
            .expect("config serialises")
    }

    /// Keeps at most [`MAX_FINDINGS`], dropping closed ones first, then the oldest.
    fn trim_findings(&mut self) {
        let extra = self.findings.len().saturating_sub(MAX_FINDINGS);
        if extra == 0 {
            return;
        }
        let mut order: Vec<(bool, i64, String)> = self
            .findings
            .values()
            .map(|f| (f.status == "open" || f.status == "acknowledged", f.finding.time, f.finding.id.clone()))
            .collect();
        order.sort_unstable();
        for (_, _, id) in order.into_iter().take(extra) {
            self.findings.remove(&id);
        }
    }
}

/// Counters of detection.
#[derive(Debug, Default)]
pub struct DetectStats {
    pub events_evaluated: Counter,
    pub findings_opened: Counter,
    pub deliveries_ok: Counter,
    pub delivery_failures: Counter,
    pub dead_letters: Counter,
}

/// What handlers and the detector share.
pub struct Hub {
    secret: [u8; 32],
    tenants: Mutex<HashMap<TenantId, Arc<Mutex<TenantDetect>>>>,
    /// New findings, for the SSE stream.
    pub findings: broadcast::Sender<Arc<(TenantId, FindingRecord)>>,
    http: reqwest::Client,
    pub config: DetectConfig,
    pub stats: DetectStats,
    /// Deliveries under way: delivery id -> (tenant, webhook id, finding id).
    pending: Mutex<HashMap<String, (TenantId, String, String)>>,
}

fn config_name(tenant: &TenantId) -> String {
    format!("detect/{tenant}/config")
}

fn state_name(tenant: &TenantId) -> String {
    format!("detect/{tenant}/state")
}

impl Hub {
    /// Loads (or makes, on first use) the service secret webhook keys and IP pseudonyms derive from.
    pub fn new(store: &Arc<dyn Store>, config: DetectConfig) -> Hub {
        let secret = match store.get_state("detect/secret") {
            Ok(Some(bytes)) if bytes.len() == 32 => bytes.try_into().expect("32 bytes"),
            other => {
                if let Err(err) = &other {
                    tracing::error!(error = %err, "cannot read the detection secret; using a new one");
                }
                let secret = evident_core::seal::random_32();
                if let Err(err) = store.put_state("detect/secret", &secret) {
                    tracing::error!(error = %err, "cannot store the detection secret");
                }
                secret
            }
        };
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Hub {
            secret,
            tenants: Mutex::new(HashMap::new()),
            findings: broadcast::channel(1024).0,
            http,
            config,
            stats: DetectStats::default(),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// The secret a webhook's deliveries are signed with (`whsec_` and 64 hex digits).
    pub fn webhook_secret(&self, tenant: &TenantId, webhook_id: &str) -> String {
        let derived = hmac_sha256(&self.secret, format!("webhook\n{tenant}\n{webhook_id}").as_bytes());
        format!("whsec_{}", hex::encode(derived))
    }

    /// A tenant's detection, loaded from the store on first use. A tenant seen for the first time
    /// gets the default rules and starts at its current head (history is not re-scanned).
    pub fn tenant(
        &self,
        store: &Arc<dyn Store>,
        tenant: &TenantId,
    ) -> evident_core::Result<Arc<Mutex<TenantDetect>>> {
        if let Some(found) = self.tenants.lock().expect("not poisoned").get(tenant) {
            return Ok(Arc::clone(found));
        }
        let detect = self.load(store, tenant)?;
        let mut tenants = self.tenants.lock().expect("not poisoned");
        Ok(Arc::clone(tenants.entry(tenant.clone()).or_insert_with(|| Arc::new(Mutex::new(detect)))))
    }

    /// A tenant's detection as the store holds it now, without caching it: what a node that does
    /// not lead the tenant answers from (its leader writes the state every few seconds).
    pub fn snapshot(
        &self,
        store: &Arc<dyn Store>,
        tenant: &TenantId,
    ) -> evident_core::Result<Arc<Mutex<TenantDetect>>> {
        Ok(Arc::new(Mutex::new(self.load(store, tenant)?)))
    }

    fn load(&self, store: &Arc<dyn Store>, tenant: &TenantId) -> evident_core::Result<TenantDetect> {
        let config: Option<ConfigBlob> =
            store.get_state(&config_name(tenant))?.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let fresh_config = config.is_none();
        let config = config.unwrap_or_else(|| ConfigBlob { rules: default_rules(), webhooks: Vec::new() });
        let state: Option<StateBlob> = store.get_state(&state_name(tenant))?.and_then(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|err| tracing::error!(%tenant, error = %err, "detection state does not parse; starting afresh"))
                .ok()
        });
        let fresh_state = state.is_none();
        let mut state = state.unwrap_or_default();
        if fresh_state {
            let head = store.head(tenant)?.map_or(0, |h| h.size.0);
            state.evaluator.watermark = head.checked_sub(1);
        }
        let evaluator = Evaluator::new(&config.rules, state.evaluator).unwrap_or_else(|err| {
            tracing::error!(%tenant, error = %err, "stored rules do not compile; running none");
            Evaluator::new(&[], State::default()).expect("no rules compile")
        });
        let detect = TenantDetect {
            rules: config.rules,
            evaluator,
            findings: state.findings.into_iter().map(|f| (f.finding.id.clone(), f)).collect(),
            webhooks: config.webhooks,
            dead_letters: state.dead_letters,
            dirty: fresh_state,
            ip_key: hmac_sha256(&self.secret, format!("ip\n{tenant}").as_bytes()),
        };
        if fresh_config {
            store.put_state(&config_name(tenant), &detect.config_bytes())?;
        }
        if fresh_state {
            // The starting watermark is durable before any event is evaluated, so a crash before
            // the first periodic write resumes from here instead of skipping what came between.
            let blob = StateBlob { evaluator: detect.evaluator.state.clone(), ..StateBlob::default() };
            store.put_state(&state_name(tenant), &serde_json::to_vec(&blob).expect("state serialises"))?;
        }
        Ok(detect)
    }

    /// Turns the deliveries still under way into dead letters (at shutdown), so that none is lost
    /// silently; a redelivery may then duplicate one that was about to succeed (receivers drop
    /// duplicates by `Evident-Delivery`).
    fn interrupt_deliveries(&self, store: &Arc<dyn Store>) {
        let pending: Vec<_> = self.pending.lock().expect("not poisoned").drain().collect();
        for (delivery, (tenant, webhook, finding)) in pending {
            let Ok(detect) = self.tenant(store, &tenant) else { continue };
            let mut detect = detect.lock().expect("not poisoned");
            detect.dead_letters.retain(|d| d.id != delivery);
            detect.dead_letters.push(DeadLetter {
                id: delivery,
                webhook,
                finding,
                attempts: 0,
                last_error: "interrupted: the service stopped before the delivery succeeded".into(),
                failed_at: Micros::now().to_rfc3339(),
            });
            detect.dirty = true;
        }
    }

    /// Drops a tenant's cached detection without writing it: on a shared store, when this node
    /// stops leading the tenant (its new leader owns the state now), or starts leading it (the
    /// state in the store is newer than the cached copy).
    fn unload(&self, tenant: &TenantId) {
        self.tenants.lock().expect("not poisoned").remove(tenant);
    }

    fn loaded(&self) -> Vec<(TenantId, Arc<Mutex<TenantDetect>>)> {
        let tenants = self.tenants.lock().expect("not poisoned");
        tenants.iter().map(|(t, d)| (t.clone(), Arc::clone(d))).collect()
    }

    /// Writes every changed state blob. The state is copied under the tenant's lock and
    /// serialised outside it, so evaluation is held up only for the copy.
    pub fn persist(&self, store: &Arc<dyn Store>) {
        self.persist_led(store, None);
    }

    /// [`Hub::persist`] for the tenants in `led` only (all when `None`): on a shared store, only
    /// the node leading a tenant writes its detection state.
    fn persist_led(&self, store: &Arc<dyn Store>, led: Option<&HashSet<TenantId>>) {
        for (tenant, detect) in self.loaded() {
            if led.is_some_and(|led| !led.contains(&tenant)) {
                continue;
            }
            let blob = {
                let mut detect = detect.lock().expect("not poisoned");
                if !detect.dirty {
                    continue;
                }
                detect.dirty = false;
                StateBlob {
                    evaluator: detect.evaluator.state.clone(),
                    findings: detect.findings.values().cloned().collect(),
                    dead_letters: detect.dead_letters.clone(),
                }
            };
            let bytes = serde_json::to_vec(&blob).expect("state serialises");
            if let Err(err) = store.put_state(&state_name(&tenant), &bytes) {
                tracing::error!(%tenant, error = %err, "cannot persist detection state");
                detect.lock().expect("not poisoned").dirty = true;
            }
        }
    }
}

/// Sets a tenant's rules and webhooks before the detector first loads it (benchmarks, tests).
pub fn install(
    store: &Arc<dyn Store>,
    tenant: &TenantId,
    rules: Vec<Rule>,
    webhooks: Vec<Webhook>,
) -> evident_core::Result<()> {
    let bytes = serde_json::to_vec(&ConfigBlob { rules, webhooks }).expect("config serialises");
    store.put_state(&config_name(tenant), &bytes)
}

/// Writes a tenant's rules and webhooks (after a change through the API).
pub fn save_config(
    store: &Arc<dyn Store>,
    tenant: &TenantId,
    detect: &TenantDetect,
) -> evident_core::Result<()> {
    store.put_state(&config_name(tenant), &detect.config_bytes())
}

/// The running detector.
pub struct Detector {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Detector {
    /// Starts evaluating every tenant's commits (call before the server takes requests).
    pub fn start(state: AppState) -> Detector {
        let (stop, stopped) = watch::channel(false);
        let commits = state.engine.subscribe();
        let task = tokio::spawn(run(state, commits, stopped));
        Detector { stop, task }
    }

    /// Stops after recording the findings already made, and persists the state. Call while the
    /// engine still runs.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "the detector failed");
        }
    }
}

type Found = mpsc::UnboundedSender<(TenantId, Finding)>;

async fn run(
    state: AppState,
    mut commits: broadcast::Receiver<Arc<Committed>>,
    mut stopped: watch::Receiver<bool>,
) {
    let (found, found_rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(record_findings(state.clone(), found_rx));
    // Detection runs where a tenant's log is sequenced: on the embedded store every tenant; on a
    // shared store the tenants whose lease this node holds (it alone sees their commits).
    let led_now = |state: &AppState| -> HashSet<TenantId> {
        state.engine.led_tenants().into_iter().map(|(tenant, _)| tenant).collect()
    };
    let mut led = led_now(&state);
    for tenant in &led {
        catch_up(&state, tenant, u64::MAX, &found).await;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    let mut persisting: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            message = commits.recv() => match message {
                Ok(committed) => evaluate_commit(&state, &committed, &found).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the detector lagged; catching up from the store");
                    for tenant in &led {
                        catch_up(&state, tenant, u64::MAX, &found).await;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                ticks += 1;
                let now_led = led_now(&state);
                for gone in led.difference(&now_led) {
                    tracing::info!(tenant = %gone, "another node leads the tenant now; its detection moves there");
                    state.detect.unload(gone);
                }
                for new in now_led.difference(&led) {
                    // On a shared store another node may have moved the state on since we cached it.
                    if state.engine.store().cluster().is_some() {
                        state.detect.unload(new);
                    }
                    catch_up(&state, new, u64::MAX, &found).await;
                }
                led = now_led;
                if ticks.is_multiple_of(5) {
                    let now = Micros::now().0;
                    for (tenant, detect) in state.detect.loaded() {
                        if !led.contains(&tenant) {
                            continue;
                        }
                        let findings = detect.lock().expect("not poisoned").evaluator.tick(now);
                        for finding in findings {
                            let _ = found.send((tenant.clone(), finding));
                        }
                    }
                }
                // Persisting runs beside evaluation; one at a time.
                if ticks.is_multiple_of(2) && persisting.as_ref().is_none_or(|p| p.is_finished()) {
                    let (hub, store) = (Arc::clone(&state.detect), Arc::clone(state.engine.store()));
                    let led = led.clone();
                    persisting = Some(tokio::task::spawn_blocking(move || hub.persist_led(&store, Some(&led))));
                }
            }
            _ = stopped.changed() => break,
        }
    }
    drop(found);
    let _ = recorder.await;
    if let Some(previous) = persisting {
        let _ = previous.await;
    }
    let (hub, store) = (Arc::clone(&state.detect), Arc::clone(state.engine.store()));
    let _ = tokio::task::spawn_blocking(move || {
        hub.interrupt_deliveries(&store);
        hub.persist_led(&store, Some(&led))
    })
    .await;
    tracing::info!("the detector stopped");
}

fn evaluate(
    detect: &mut TenantDetect,
    observed: &Observed,
    found: &Found,
    tenant: &TenantId,
    stats: &DetectStats,
) {
    let arrival = Micros::now().0;
    // A bug in a rule must not stop detection for everyone: the event is skipped and logged.
    let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        detect.evaluator.observe(observed, arrival)
    }));
    match evaluated {
        Ok(findings) => {
            for finding in findings {
                let _ = found.send((tenant.clone(), finding));
            }
        }
        Err(_) => {
            tracing::error!(%tenant, index = observed.index, "a rule panicked on this event; skipped");
            detect.evaluator.state.watermark = Some(observed.index);
        }
    }
    detect.dirty = true;
    stats.events_evaluated.inc();
}

async fn evaluate_commit(state: &AppState, committed: &Committed, found: &Found) {
    let tenant = &committed.tenant;
    let detect = match state.detect.tenant(state.engine.store(), tenant) {
        Ok(detect) => detect,
        Err(err) => {
            tracing::error!(%tenant, error = %err, "cannot load detection state");
            return;
        }
    };
    let first = committed.entries.first().map_or(0, |e| e.index);
    let behind = detect.lock().expect("not poisoned").evaluator.state.watermark.map_or(0, |w| w + 1);
    if first > behind {
        catch_up(state, tenant, first, found).await;
    }
    let mut detect = detect.lock().expect("not poisoned");
    for entry in &committed.entries {
        if detect.evaluator.state.watermark.is_some_and(|w| entry.index <= w) {
            continue;
        }
        let Some(observed) = Observed::from_entry(
            entry.index,
            &entry.event_id.to_string(),
            &entry.entry,
            entry.personal.as_deref(),
            &detect.ip_key,
        ) else {
            continue;
        };
        evaluate(&mut detect, &observed, found, tenant, &state.detect.stats);
    }
}

/// Evaluates the entries after the watermark and before `until` (or the head), read from the
/// store. When a rule keys on IP addresses, the personal parts of entries that have one are opened
/// (slower, one read each) and only the IP is kept, hashed; erased subjects have none.
async fn catch_up(state: &AppState, tenant: &TenantId, until: u64, found: &Found) {
    let detect = match state.detect.tenant(state.engine.store(), tenant) {
        Ok(detect) => detect,
        Err(err) => {
            tracing::error!(%tenant, error = %err, "cannot load detection state");
            return;
        }
    };
    loop {
        let (start, needs_ip) = {
            let detect = detect.lock().expect("not poisoned");
            (detect.evaluator.state.watermark.map_or(0, |w| w + 1), detect.evaluator.needs_ip())
        };
        let (engine, t) = (Arc::clone(&state.engine), tenant.clone());
        type Read = Vec<(Vec<u8>, Option<Vec<u8>>)>;
        let read = tokio::task::spawn_blocking(move || -> evident_core::Result<Read> {
            let head = engine.store().head(&t)?.map_or(0, |h| h.size.0);
            let end = head.min(until).min(start + 1000);
            if end <= start {
                return Ok(Vec::new());
            }
            let entries = engine.store().entries(&t, start, end)?;
            let mut with_ip = Vec::with_capacity(entries.len());
            for (offset, entry) in entries.into_iter().enumerate() {
                let has_personal = entry.windows(16).any(|w| w == b"\"pii_commitment\"");
                let ip = (needs_ip && has_personal)
                    .then(|| {
                        let index = EventRef::Index(start + offset as u64);
                        let view = engine.event(&t, index, Access::Personal).ok()?;
                        let ip = view.event["origin"]["ip"].as_str()?.to_owned();
                        Some(serde_json::to_vec(&serde_json::json!({"/origin/ip": ip})).expect("JSON"))
                    })
                    .flatten();
                with_ip.push((entry, ip));
            }
            Ok(with_ip)
        })
        .await;
        let entries = match read {
            Ok(Ok(entries)) if !entries.is_empty() => entries,
            Ok(Ok(_)) => return,
            Ok(Err(err)) => {
                tracing::error!(%tenant, error = %err, "cannot read entries to catch up");
                return;
            }
            Err(err) => {
                tracing::error!(%tenant, error = %err, "catch-up failed");
                return;
            }
        };
        let mut detect = detect.lock().expect("not poisoned");
        for (offset, (entry, personal)) in entries.iter().enumerate() {
            let index = start + offset as u64;
            let event_id = serde_json::from_slice::<serde_json::Value>(entry)
                .ok()
                .and_then(|v| v["event_id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            match Observed::from_entry(index, &event_id, entry, personal.as_deref(), &detect.ip_key) {
                Some(observed) => evaluate(&mut detect, &observed, found, tenant, &state.detect.stats),
                None => detect.evaluator.state.watermark = Some(index),
            }
        }
    }
}

/// Appends findings to their tenants' logs (what has queued up, in one commit per tenant), then
/// publishes and delivers them.
async fn record_findings(state: AppState, mut found: mpsc::UnboundedReceiver<(TenantId, Finding)>) {
    while let Some(first) = found.recv().await {
        let mut by_tenant: BTreeMap<TenantId, Vec<Finding>> = BTreeMap::new();
        by_tenant.entry(first.0).or_default().push(first.1);
        let mut queued = 1;
        while queued < 1000 {
            let Ok((tenant, finding)) = found.try_recv() else { break };
            by_tenant.entry(tenant).or_default().push(finding);
            queued += 1;
        }
        for (tenant, findings) in by_tenant {
            record_tenant_findings(&state, tenant, findings).await;
        }
    }
}

async fn record_tenant_findings(state: &AppState, tenant: TenantId, mut findings: Vec<Finding>) {
    let Ok(detect) = state.detect.tenant(state.engine.store(), &tenant) else { return };
    {
        // Replays of findings already recorded, and repeats within the batch, are dropped.
        let detect = detect.lock().expect("not poisoned");
        let mut seen = std::collections::HashSet::new();
        findings.retain(|f| !detect.findings.contains_key(&f.id) && seen.insert(f.id.clone()));
    }
    if findings.is_empty() {
        return;
    }
    let events = findings.iter().map(finding_event).collect();
    let indices = match audit::record_many_idempotent(state, &tenant, events).await {
        Ok(indices) => indices,
        Err(err) => {
            tracing::error!(%tenant, findings = findings.len(), error = ?err, "cannot record findings");
            return;
        }
    };
    let opened_at = Micros::now().to_rfc3339();
    let records: Vec<FindingRecord> = findings
        .into_iter()
        .zip(indices)
        .map(|(finding, event_index)| FindingRecord {
            finding,
            status: "open".into(),
            opened_at: opened_at.clone(),
            event_index,
            history: Vec::new(),
        })
        .collect();
    let webhooks = {
        let mut detect = detect.lock().expect("not poisoned");
        for record in &records {
            detect.findings.insert(record.finding.id.clone(), record.clone());
        }
        detect.trim_findings();
        detect.dirty = true;
        detect.webhooks.clone()
    };
    for record in records {
        state.detect.stats.findings_opened.inc();
        tracing::info!(%tenant, finding = %record.finding.id, rule = %record.finding.rule, "finding opened");
        let _ = state.detect.findings.send(Arc::new((tenant.clone(), record.clone())));
        for webhook in webhooks.iter().filter(|w| record.finding.severity >= w.min_severity) {
            tokio::spawn(deliver(state.clone(), tenant.clone(), webhook.clone(), record.clone()));
        }
    }
}

/// The `evident.finding.opened` event: deterministic (id, time and content depend only on the
/// finding), so recording it again after a crash is a duplicate.
fn finding_event(finding: &Finding) -> AuditEvent {
    let mut metadata = BTreeMap::from([
        ("rule".to_owned(), finding.rule.clone()),
        ("template".to_owned(), finding.template.clone()),
        ("severity".to_owned(), finding.severity.as_str().to_owned()),
        ("key".to_owned(), finding.key.clone()),
        ("trigger_count".to_owned(), finding.trigger_count.to_string()),
    ]);
    // As many trigger ids (the latest) as fit a metadata value.
    let mut triggers = String::new();
    for id in finding.triggers.iter().rev() {
        if triggers.len() + id.len() + 1 > 1000 {
            break;
        }
        if !triggers.is_empty() {
            triggers.push(',');
        }
        triggers.push_str(id);
    }
    metadata.insert("triggers".to_owned(), triggers);
    if let Some(actor) = &finding.actor {
        metadata.insert("actor".to_owned(), actor.clone());
    }
    AuditEvent {
        event_type: "evident.finding.opened",
        action: "other",
        outcome: "success",
        actor_id: "evident-detect".to_owned(),
        actor_type: "system",
        subject: finding.subject.clone(),
        target: ("finding".to_owned(), finding.id.clone()),
        reason: Some(finding.explanation.clone()),
        metadata,
        id: Some(finding.id.clone()),
        time: Some(Micros(finding.time)),
        severity: Some(finding.severity.as_str()),
        ..AuditEvent::default()
    }
}

/// The delivery id of a finding to a webhook: the same on every retry and redelivery.
pub fn delivery_id(webhook: &str, finding: &str) -> String {
    let digest = hmac_sha256(webhook.as_bytes(), finding.as_bytes());
    format!("dlv_{}", &hex::encode(digest)[..20])
}

/// Posts a finding to a webhook, retrying with exponential backoff; a dead letter when every
/// attempt failed.
pub async fn deliver(state: AppState, tenant: TenantId, webhook: Webhook, record: FindingRecord) {
    let hub = Arc::clone(&state.detect);
    let delivery = delivery_id(&webhook.id, &record.finding.id);
    let body = serde_json::to_vec(&serde_json::json!({
        "delivery": delivery,
        "type": "evident.finding.opened",
        "tenant": tenant.as_str(),
        "webhook": webhook.id,
        "finding": record,
    }))
    .expect("a delivery serialises");
    let secret = hub.webhook_secret(&tenant, &webhook.id);
    hub.pending
        .lock()
        .expect("not poisoned")
        .insert(delivery.clone(), (tenant.clone(), webhook.id.clone(), record.finding.id.clone()));
    let mut last_error = String::new();
    let attempts = hub.config.webhook_attempts.max(1);
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(hub.config.webhook_backoff * 2u32.saturating_pow(attempt - 1)).await;
        }
        let now = Micros::now().0 / 1_000_000;
        let sent = hub
            .http
            .post(&webhook.url)
            .header("content-type", "application/json")
            .header("evident-signature", signature_header(secret.as_bytes(), now, &body))
            .header("evident-delivery", &delivery)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                hub.stats.deliveries_ok.inc();
                hub.pending.lock().expect("not poisoned").remove(&delivery);
                return;
            }
            Ok(response) => last_error = format!("the receiver answered {}", response.status().as_u16()),
            Err(err) => last_error = format!("cannot reach the receiver: {}", without_url(&err)),
        }
        hub.stats.delivery_failures.inc();
    }
    tracing::warn!(%tenant, webhook = %webhook.id, %delivery, error = %last_error, "delivery failed; dead letter");
    if hub.pending.lock().expect("not poisoned").remove(&delivery).is_none() {
        return; // already a dead letter: the service is stopping
    }
    hub.stats.dead_letters.inc();
    if let Ok(detect) = hub.tenant(state.engine.store(), &tenant) {
        let mut detect = detect.lock().expect("not poisoned");
        detect.dead_letters.retain(|d| d.id != delivery);
        detect.dead_letters.push(DeadLetter {
            id: delivery,
            webhook: webhook.id,
            finding: record.finding.id,
            attempts,
            last_error,
            failed_at: Micros::now().to_rfc3339(),
        });
        let extra = detect.dead_letters.len().saturating_sub(MAX_DEAD_LETTERS);
        detect.dead_letters.drain(..extra);
        detect.dirty = true;
    }
}

fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "connection failed".into()
    } else {
        text
    }
}
