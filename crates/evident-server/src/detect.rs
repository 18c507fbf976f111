//! Detection in the service: the [`Hub`] (the detection [`Workspace`] plus what delivery needs)
//! and the [`Detector`] task that feeds committed events to each tenant's workspace, records
//! findings in the tenant's log, and delivers them to webhooks. What detection knows (rules,
//! webhooks, findings and their workflow, evaluator state) and how it changes is the workspace's,
//! in `evident-detect`; this module only moves events and findings in and out.
//!
//! Flow: the engine broadcasts every durable commit; the detector evaluates its entries in index
//! order (a per-tenant watermark; on a lag or a gap it reads the missed entries from the store,
//! opening personal parts only when a rule keys on IP addresses). Each finding is appended as
//! `evident.finding.opened` with a deterministic id (a replay after a crash is answered as a
//! duplicate, never stored twice), then shown to `GET /v1/findings`, the SSE stream and webhooks.
//! The workspace's state blob is written every two seconds when changed and on shutdown; a crash
//! loses at most those two seconds of evaluation, which the restart re-evaluates from the
//! watermark.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evident_core::engine::{Committed, Engine};
use evident_core::read::{Access, EventRef};
use evident_core::seal::MasterKey;
use evident_core::store::{Store, TenantId};
use evident_detect::eval::Finding;
use evident_detect::finding::FindingRecord;
use evident_detect::observe::Observed;
use evident_detect::workspace::{Evaluated, TenantWorkspace, Webhook, Workspace};
use evident_wire::Micros;
use evident_wire::detect::DeadLetter;
use evident_wire::signature::{hmac_sha256, signature_header};
use tokio::sync::{broadcast, mpsc, watch};

use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::counter::Counter;

/// Settings of detection and delivery.
#[derive(Clone, Debug)]
pub struct DetectConfig {
    /// Delivery attempts before a dead letter.
    pub webhook_attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub webhook_backoff: Duration,
    pub webhook_timeout: Duration,
    /// Whether webhooks may reach loopback, private and link-local addresses (`outbound.rs`).
    pub allow_private_destinations: bool,
    /// CA certificates trusted for https receivers besides the web roots
    /// (`EVIDENT_OUTBOUND_CA_FILE`, [`crate::outbound::extra_roots`]).
    pub outbound_roots: Vec<reqwest::Certificate>,
}

impl Default for DetectConfig {
    fn default() -> DetectConfig {
        DetectConfig {
            webhook_attempts: 6,
            webhook_backoff: Duration::from_millis(500),
            webhook_timeout: Duration::from_secs(10),
            allow_private_destinations: false,
            outbound_roots: Vec::new(),
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
    /// Every tenant's rules, webhooks, findings and evaluator.
    pub workspace: Workspace,
    /// New findings, for the SSE stream.
    pub findings: broadcast::Sender<Arc<(TenantId, FindingRecord)>>,
    http: reqwest::Client,
    pub config: DetectConfig,
    pub stats: DetectStats,
    /// Deliveries under way: delivery id -> (tenant, webhook id, finding id).
    pending: Mutex<HashMap<String, (TenantId, String, String)>>,
    store: Arc<dyn Store>,
    /// Deliveries not yet done, also in the store (`detect/outbox`), so a crash redelivers them.
    outbox: Mutex<BTreeMap<String, Outgoing>>,
    /// Set when findings could not be recorded: the state is then no longer saved, so that a
    /// restart evaluates their events again (nothing found is lost); `/healthz` reports it.
    pub unrecorded: std::sync::atomic::AtomicBool,
}

impl Hub {
    /// Fails when the detection secret cannot be read or opened (`Workspace::open`).
    pub fn new(
        store: &Arc<dyn Store>,
        master: &MasterKey,
        config: DetectConfig,
    ) -> Result<Hub, evident_core::Error> {
        let http = crate::outbound::client(
            config.webhook_timeout,
            config.allow_private_destinations,
            &config.outbound_roots,
        );
        let workspace = Workspace::open(Arc::clone(store), master).map_err(|err| match err {
            evident_detect::Error::Core(err) => err,
            other => evident_core::Error::Unavailable(other.to_string()),
        })?;
        Ok(Hub {
            workspace,
            findings: broadcast::channel(1024).0,
            http,
            config,
            stats: DetectStats::default(),
            pending: Mutex::new(HashMap::new()),
            unrecorded: std::sync::atomic::AtomicBool::new(false),
            outbox: Mutex::new(BTreeMap::new()),
            store: Arc::clone(store),
        })
    }

    /// A tenant's workspace for the detector; `None` (logged) when it cannot be loaded.
    fn tenant(&self, tenant: &TenantId) -> Option<Arc<TenantWorkspace>> {
        self.workspace
            .tenant(tenant)
            .map_err(|err| tracing::error!(%tenant, error = %err, "cannot load detection state"))
            .ok()
    }

    /// Saves the evaluators' state, unless findings went unrecorded (then the saved state stays
    /// behind them, and a restart evaluates their events again).
    fn persist(&self, led: &HashSet<TenantId>) {
        if self.unrecorded.load(std::sync::atomic::Ordering::SeqCst) {
            tracing::error!("findings could not be recorded; detection state is not saved");
            return;
        }
        self.workspace.persist(Some(led));
    }

    /// [`Hub::tenant`] from async code: loading a tenant's detection reads the store, on a
    /// blocking thread; a loaded one (every commit's case but the first) is answered at once.
    async fn tenant_async(self: &Arc<Hub>, tenant: &TenantId) -> Option<Arc<TenantWorkspace>> {
        if let Some(loaded) = self.workspace.loaded_tenant(tenant) {
            return Some(loaded);
        }
        let (hub, tenant) = (Arc::clone(self), tenant.clone());
        tokio::task::spawn_blocking(move || hub.tenant(&tenant)).await.ok().flatten()
    }

    /// Turns the deliveries still under way into dead letters (at shutdown), so that none is lost
    /// silently; a redelivery may then duplicate one that was about to succeed (receivers drop
    /// duplicates by `Evident-Delivery`).
    fn interrupt_deliveries(&self) {
        let pending: Vec<_> = self.pending.lock().expect("not poisoned").drain().collect();
        // They become dead letters (kept with the detection state), so the outbox lets them go.
        let mut outbox = self.outbox.lock().expect("not poisoned");
        for (delivery, _) in &pending {
            outbox.remove(delivery);
        }
        let bytes = serde_json::to_vec(&*outbox).expect("the outbox serialises");
        drop(outbox);
        if let Err(err) = self.store.put_state(OUTBOX_STATE, &bytes) {
            tracing::error!(error = %err, "cannot save the webhook outbox");
        }
        for (delivery, (tenant, webhook, finding)) in pending {
            let Some(detect) = self.tenant(&tenant) else { continue };
            detect.add_dead_letter(DeadLetter {
                id: delivery,
                webhook,
                finding,
                attempts: 0,
                last_error: "interrupted: the service stopped before the delivery succeeded".into(),
                failed_at: Micros::now().to_rfc3339(),
            });
        }
    }
}

/// A delivery in the outbox: to which webhook of which tenant, of which finding.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Outgoing {
    tenant: String,
    webhook: Webhook,
    record: FindingRecord,
}

/// Where the outbox is kept in the store's service state.
const OUTBOX_STATE: &str = "detect/outbox";

impl Hub {
    /// Writes the outbox to the store (off the async runtime).
    async fn save_outbox(self: &Arc<Hub>) {
        let hub = Arc::clone(self);
        let saved = tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&*hub.outbox.lock().expect("not poisoned"))
                .expect("the outbox serialises");
            hub.store.put_state(OUTBOX_STATE, &bytes)
        })
        .await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::error!("cannot save the webhook outbox; deliveries under way may be lost in a crash");
        }
    }

    async fn outbox_add(self: &Arc<Hub>, items: Vec<(String, Outgoing)>) {
        self.outbox.lock().expect("not poisoned").extend(items);
        self.save_outbox().await;
    }

    async fn outbox_done(self: &Arc<Hub>, delivery: &str) {
        let removed = self.outbox.lock().expect("not poisoned").remove(delivery).is_some();
        if removed {
            self.save_outbox().await;
        }
    }
}

/// Delivers again what the outbox held when the service last stopped (after a crash), to webhooks
/// that still exist.
async fn redeliver_outbox(state: &AppState) {
    let hub = Arc::clone(&state.detect);
    let store = Arc::clone(state.engine.store());
    let stored = tokio::task::spawn_blocking(move || store.get_state(OUTBOX_STATE)).await;
    let Ok(Ok(Some(bytes))) = stored else { return };
    let Ok(items) = serde_json::from_slice::<BTreeMap<String, Outgoing>>(&bytes) else {
        tracing::error!("the webhook outbox does not parse; its deliveries are not redelivered");
        return;
    };
    *hub.outbox.lock().expect("not poisoned") = items.clone();
    for (delivery, item) in items {
        let Ok(tenant) = TenantId::new(&item.tenant) else { continue };
        let current = match hub.tenant_async(&tenant).await {
            Some(detect) => detect.webhooks().into_iter().find(|w| w.id == item.webhook.id),
            None => None,
        };
        match current {
            Some(webhook) => {
                tracing::info!(%tenant, %delivery, "redelivering a delivery the last run did not finish");
                tokio::spawn(deliver(state.clone(), tenant, webhook, item.record));
            }
            None => hub.outbox_done(&delivery).await,
        }
    }
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
    redeliver_outbox(&state).await;
    let mut led = led_now(&state);
    for tenant in &led {
        catch_up(&state, tenant, u64::MAX, &found, &stopped).await;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    let mut persisting: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            message = commits.recv() => match message {
                Ok(committed) => evaluate_commit(&state, &committed, &found, &stopped).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the detector lagged; catching up from the store");
                    for tenant in &led {
                        catch_up(&state, tenant, u64::MAX, &found, &stopped).await;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                ticks += 1;
                let now_led = led_now(&state);
                for gone in led.difference(&now_led) {
                    tracing::info!(tenant = %gone, "another node leads the tenant now; its detection moves there");
                    state.detect.workspace.unload(gone);
                }
                for new in now_led.difference(&led) {
                    // On a shared store another node may have moved the state on since we cached it.
                    if state.engine.store().cluster().is_some() {
                        state.detect.workspace.unload(new);
                    }
                    catch_up(&state, new, u64::MAX, &found, &stopped).await;
                }
                led = now_led;
                if ticks.is_multiple_of(5) {
                    let now = Micros::now().0;
                    for detect in state.detect.workspace.loaded() {
                        if !led.contains(detect.tenant()) {
                            continue;
                        }
                        for finding in detect.tick(now) {
                            let _ = found.send((detect.tenant().clone(), finding));
                        }
                    }
                }
                // Persisting runs beside evaluation; one at a time.
                if ticks.is_multiple_of(2) && persisting.as_ref().is_none_or(|p| p.is_finished()) {
                    let (hub, led) = (Arc::clone(&state.detect), led.clone());
                    persisting = Some(tokio::task::spawn_blocking(move || hub.persist(&led)));
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
    let hub = Arc::clone(&state.detect);
    let _ = tokio::task::spawn_blocking(move || {
        hub.interrupt_deliveries();
        hub.persist(&led)
    })
    .await;
    tracing::info!("the detector stopped");
}

/// Hands an evaluation's findings to the recorder.
fn report(state: &AppState, tenant: &TenantId, evaluated: Evaluated, found: &Found) {
    state.detect.stats.events_evaluated.add(evaluated.events);
    for finding in evaluated.findings {
        let _ = found.send((tenant.clone(), finding));
    }
}

async fn evaluate_commit(
    state: &AppState,
    committed: &Committed,
    found: &Found,
    stopped: &watch::Receiver<bool>,
) {
    let tenant = &committed.tenant;
    let Some(detect) = state.detect.tenant_async(tenant).await else { return };
    let first = committed.entries.first().map_or(0, |e| e.index);
    let next = || detect.watermark().map_or(0, |w| w + 1);
    if first > next() {
        catch_up(state, tenant, first, found, stopped).await;
        if first > next() {
            // Stopped (or unable to read) short of this commit: evaluating it would step over the
            // entries before it. The next catch-up reads them, this commit's included.
            return;
        }
    }
    let batch = committed.entries.iter().map(|entry| {
        let event_id = entry.event_id.to_string();
        let personal = entry.personal.as_deref();
        (entry.index, Observed::from_entry(entry.index, &event_id, &entry.entry, personal, detect.ip_key()))
    });
    report(state, tenant, detect.evaluate(batch, Micros::now().0), found);
}

/// Evaluates the entries after the watermark and before `until` (or the head), read from the
/// store a thousand at a time.
async fn catch_up(
    state: &AppState,
    tenant: &TenantId,
    until: u64,
    found: &Found,
    stopped: &watch::Receiver<bool>,
) {
    let Some(detect) = state.detect.tenant_async(tenant).await else { return };
    loop {
        let start = detect.watermark().map_or(0, |w| w + 1);
        // A stop does not wait for the rest of a long history (a server stopped while catching up
        // on 10,000,000 events took minutes to exit): the state is persisted at its watermark,
        // and the next start goes on from there.
        if *stopped.borrow() {
            tracing::info!(%tenant, start, "stopping: detection goes on from this entry at the next start");
            return;
        }
        let (engine, reading) = (Arc::clone(&state.engine), Arc::clone(&detect));
        let read = tokio::task::spawn_blocking(move || read_missed(&engine, &reading, start, until)).await;
        let batch = match read {
            Ok(Ok(batch)) if !batch.is_empty() => batch,
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
        report(state, tenant, detect.evaluate(batch, Micros::now().0), found);
    }
}

/// Up to a thousand stored entries from `start`, before `until` and the head, as rules see them
/// (`None`: an entry that does not parse). When a rule keys on IP addresses, an entry whose
/// skeleton has a personal part (a `pii_commitment`) is opened (one read and one decryption) and
/// only its IP is kept, hashed; erased subjects have none.
fn read_missed(
    engine: &Engine,
    detect: &TenantWorkspace,
    start: u64,
    until: u64,
) -> evident_core::Result<Vec<(u64, Option<Observed>)>> {
    let tenant = detect.tenant();
    let head = engine.store().head(tenant)?.map_or(0, |h| h.size.0);
    let end = head.min(until).min(start + 1000);
    if end <= start {
        return Ok(Vec::new());
    }
    let needs_ip = detect.needs_ip();
    let entries = engine.store().entries(tenant, start, end)?;
    let read = entries.iter().zip(start..).map(|(entry, index)| {
        let mut observed = Observed::from_stored(index, entry);
        if let Some(observed) = observed.as_mut().filter(|o| needs_ip && o.has_personal)
            && let Some(ip) = personal_ip(engine, tenant, index)
        {
            observed.set_ip(&ip, detect.ip_key());
        }
        (index, observed)
    });
    Ok(read.collect())
}

/// The IP address in an entry's personal part, if it still has one.
fn personal_ip(engine: &Engine, tenant: &TenantId, index: u64) -> Option<String> {
    let view = engine.event(tenant, EventRef::Index(index), Access::Personal).ok()?;
    view.event["origin"]["ip"].as_str().map(str::to_owned)
}

/// How long recording findings is retried (doubling waits from 100 ms) before detection stops
/// saving its state.
const RECORD_RETRY_LIMIT: Duration = Duration::from_secs(10);

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

async fn record_tenant_findings(state: &AppState, tenant: TenantId, findings: Vec<Finding>) {
    let Some(detect) = state.detect.tenant_async(&tenant).await else { return };
    // Replays of findings already recorded, and repeats within the batch, are dropped.
    let findings = detect.unrecorded(findings);
    if findings.is_empty() {
        return;
    }
    let events: Vec<AuditEvent> = findings.iter().map(finding_event).collect();
    // Findings are never dropped: retried (their ids are deterministic, so a retry that did
    // commit is a duplicate); if they still cannot be recorded, detection stops saving its state,
    // so a restart evaluates these events again, and `/healthz` says so.
    let mut wait = Duration::from_millis(100);
    let indices = loop {
        match audit::record_many_idempotent(state, &tenant, events.clone()).await {
            Ok(indices) => break indices,
            Err(err) if wait < RECORD_RETRY_LIMIT => {
                tracing::warn!(%tenant, findings = findings.len(), error = ?err, "cannot record findings; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(err) => {
                tracing::error!(%tenant, findings = findings.len(), error = ?err,
                    "cannot record findings; detection state is no longer saved, restart to evaluate again");
                state.detect.unrecorded.store(true, std::sync::atomic::Ordering::SeqCst);
                return;
            }
        }
    };
    for (record, webhooks) in detect.open_findings(findings.into_iter().zip(indices).collect()).await {
        state.detect.stats.findings_opened.inc();
        tracing::info!(%tenant, finding = %record.finding.id, rule = %record.finding.rule, "finding opened");
        let _ = state.detect.findings.send(Arc::new((tenant.clone(), record.clone())));
        let outgoing = webhooks
            .iter()
            .map(|webhook| {
                let item =
                    Outgoing { tenant: tenant.to_string(), webhook: webhook.clone(), record: record.clone() };
                (delivery_id(&webhook.id, &record.finding.id), item)
            })
            .collect::<Vec<_>>();
        if !outgoing.is_empty() {
            state.detect.outbox_add(outgoing).await;
        }
        for webhook in webhooks {
            tokio::spawn(deliver(state.clone(), tenant.clone(), webhook, record.clone()));
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
        // Never an IP pseudonym: a leaf is permanent, the address space small.
        ("key".to_owned(), finding.key_in_log().to_owned()),
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
    let secret = hub.workspace.webhook_secret(&tenant, &webhook.id);
    hub.pending
        .lock()
        .expect("not poisoned")
        .insert(delivery.clone(), (tenant.clone(), webhook.id.clone(), record.finding.id.clone()));
    let mut last_error = String::new();
    let attempts = hub.config.webhook_attempts.max(1);
    let mut attempted = 0;
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(hub.config.webhook_backoff * 2u32.saturating_pow(attempt - 1)).await;
        }
        attempted += 1;
        let allow_private = hub.config.allow_private_destinations;
        let literal = reqwest::Url::parse(&webhook.url)
            .map_err(|_| crate::outbound::Refused("the URL does not parse".into()))
            .and_then(|url| crate::outbound::check_literal(&url, allow_private));
        if let Err(refused) = literal {
            last_error = format!("refused: {refused}");
            break;
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
                hub.outbox_done(&delivery).await;
                return;
            }
            Ok(response) => last_error = format!("the receiver answered {}", response.status().as_u16()),
            Err(err) => {
                if let Some(refused) = crate::outbound::refusal(&err) {
                    // Refused at connect time (the name resolves to a forbidden address now):
                    // retrying would not change that.
                    last_error = format!("refused: {refused}");
                    hub.stats.delivery_failures.inc();
                    break;
                }
                last_error = match crate::outbound::tls_failure(&err) {
                    Some(tls) => format!("cannot reach the receiver: {tls}"),
                    None => format!("cannot reach the receiver: {}", without_url(&err)),
                }
            }
        }
        hub.stats.delivery_failures.inc();
    }
    let attempts = attempted;
    tracing::warn!(%tenant, webhook = %webhook.id, %delivery, error = %last_error, "delivery failed; dead letter");
    if hub.pending.lock().expect("not poisoned").remove(&delivery).is_none() {
        return; // already a dead letter: the service is stopping
    }
    hub.stats.dead_letters.inc();
    hub.outbox_done(&delivery).await;
    if let Some(detect) = hub.tenant_async(&tenant).await {
        detect.add_dead_letter(DeadLetter {
            id: delivery,
            webhook: webhook.id,
            finding: record.finding.id,
            attempts,
            last_error,
            failed_at: Micros::now().to_rfc3339(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use evident_core::engine::{Engine, EngineConfig};
    use evident_core::event::TenantPolicy;
    use evident_core::seal::MasterKey;

    /// A server's state over a new embedded store with the tenant `default`.
    fn new_state(dir: &std::path::Path) -> (AppState, TenantId) {
        let store = Arc::new(evident_store_sqlite::SqliteStore::open(&dir.join("evident.sqlite")).unwrap());
        let engine = Engine::open(
            store,
            evident_core::seal::random_32(),
            MasterKey::from_bytes(evident_core::seal::random_32()),
            EngineConfig::default(),
        )
        .unwrap();
        let tenant = TenantId::new("default").unwrap();
        engine.create_tenant(&tenant, TenantPolicy::default()).unwrap();
        (AppState::new(Arc::new(engine), crate::ServerConfig::default()), tenant)
    }

    /// `count` events appended that no detector sees (as `evident import` into a stopped service).
    fn append_unseen(engine: &Engine, tenant: &TenantId, count: usize) {
        let events = (0..count)
            .map(|i| {
                let event = serde_json::json!({
                    "id": format!("e-{i}"), "source": "//crm", "type": "customer.record.viewed",
                    "action": "read", "time": "2026-03-01T10:00:00Z", "actor": {"id": "u-1", "type": "user"},
                    "targets": [{"type": "customer", "id": "cust-1"}], "outcome": "success",
                    "origin": {"service": "support-api"}
                });
                evident_core::validate::parse_event_json(
                    event.to_string().as_bytes(),
                    &TenantPolicy::default(),
                )
                .unwrap()
            })
            .collect();
        engine.append(tenant, events).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_ends_a_catch_up_and_the_next_one_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (state, tenant) = new_state(dir.path());
        // Detection's state for the tenant begins at the empty log's head; the history comes after.
        let detect = state.detect.tenant_async(&tenant).await.unwrap();
        assert_eq!(detect.watermark(), None);
        let (engine, appended) = (Arc::clone(&state.engine), tenant.clone());
        tokio::task::spawn_blocking(move || append_unseen(&engine, &appended, 2_500)).await.unwrap();
        let (found, _findings) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(true);
        catch_up(&state, &tenant, u64::MAX, &found, &stopped).await;
        assert_eq!(detect.watermark(), None, "a stopped catch-up reads nothing more");
        stop.send(false).unwrap();
        catch_up(&state, &tenant, u64::MAX, &found, &stopped).await;
        assert_eq!(detect.watermark(), Some(2_499), "the next one reads the whole history");
    }
}
