//! This node's part in a cluster of nodes sharing one store: the lease keeper (which tenants
//! this node sequences), forwarding requests of tenants it does not lead to the store's inbox,
//! collecting the answers to them, and, on the sequencer thread, taking other nodes' requests
//! for the tenants it leads and fencing its commits with its leases.
//!
//! Crash safety rests on the store, not on this module: a forwarded request is durable in the
//! inbox before its caller waits, and its answer is stored in the commit that stores its events;
//! a leader that crashes leaves its unanswered requests for the next holder of the lease.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::queue::QueueSlots;
use super::sequencer::Sequencer;
use super::{Answer, Reply, Request, Shared};
use crate::append::{Outcome, Prepared};
use crate::error::{Error, Result};
use crate::store::{Commit, Fence, NewDataKey, TenantId};

/// How often each node deletes answered inbox requests no node waits for any more.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// This node's part in a cluster of nodes sharing one store.
pub(super) struct ClusterNode {
    /// Tenants whose lease this node holds: epoch, and when the store last confirmed it.
    pub(super) leases: Mutex<HashMap<TenantId, (u64, Instant)>>,
    /// Requests this node put in the inbox, by ticket.
    pub(super) waiting: Mutex<HashMap<u64, Waiting>>,
    pub(super) stop: AtomicBool,
    /// Wakes the lease keeper and the answer collector early on shutdown.
    pub(super) wake: Condvar,
    pub(super) wake_lock: Mutex<()>,
}

/// A request this node put in the inbox.
pub(super) struct Waiting {
    reply: Answer,
    /// Its events in the queue's count.
    queued: QueueSlots,
    deadline: Instant,
    /// The data keys its events were sealed with that the leader's commit checks: forgotten
    /// when the leader fails the request (one may be gone from the store).
    checked: Vec<NewDataKey>,
}

impl ClusterNode {
    pub(super) fn new() -> ClusterNode {
        ClusterNode {
            leases: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            wake: Condvar::new(),
            wake_lock: Mutex::new(()),
        }
    }
}

/// Leadership and forwarding on a shared store.
impl Shared {
    /// The epoch of the tenant's lease if this node holds it, confirmed recently enough that it
    /// cannot have expired yet by the store's clock (renewals take a quarter of the lease; a
    /// lease not confirmed for three quarters is treated as lost). The store checks again in
    /// every commit, so this only steers work; it never decides safety.
    pub(super) fn held(&self, tenant: &TenantId) -> Option<u64> {
        let cluster = self.cluster.as_ref()?;
        let leases = cluster.leases.lock().expect("leases lock");
        let (epoch, confirmed) = leases.get(tenant)?;
        self.still_held(*confirmed).then_some(*epoch)
    }

    /// Whether a lease the store confirmed at `confirmed` cannot have expired yet.
    fn still_held(&self, confirmed: Instant) -> bool {
        confirmed.elapsed() < self.config.lease_ttl * 3 / 4
    }

    /// Puts a request in the store's inbox for the tenant's leader and registers the caller to
    /// be answered when the leader has stored it. `queued` is given back when the answer comes.
    pub(super) fn forward(
        &self,
        tenant: &TenantId,
        items: &[std::result::Result<Prepared, String>],
        reply: Answer,
        queued: QueueSlots,
    ) {
        let cluster = self.cluster.as_ref().expect("forwarding only on a shared store");
        let store = self.store.cluster().expect("a shared store");
        let ticket = match store.enqueue(tenant, &crate::inbox::encode_request(items)) {
            Ok(ticket) => ticket,
            Err(err) => {
                drop(queued);
                let _ = reply.send(Err(err));
                return;
            }
        };
        self.stats.forwarded.fetch_add(items.len() as u64, Ordering::Relaxed);
        let deadline = Instant::now() + self.config.forward_timeout;
        let checked = items
            .iter()
            .filter_map(|item| item.as_ref().ok()?.new_key.clone().filter(|key| key.stored))
            .collect();
        let waiting = Waiting { reply, queued, deadline, checked };
        cluster.waiting.lock().expect("waiting lock").insert(ticket, waiting);
    }

    fn sleep(&self, cluster: &ClusterNode, wait: Duration) {
        let guard = cluster.wake_lock.lock().expect("wake lock");
        if !cluster.stop.load(Ordering::SeqCst) {
            let _ = cluster.wake.wait_timeout(guard, wait);
        }
    }

    /// The lease keeper: takes free or expired leases of every tenant and renews held ones,
    /// every quarter of the lease; gives them up on shutdown so another node takes over at once.
    pub(super) fn keep_leases(self: Arc<Shared>) {
        let cluster = self.cluster.as_ref().expect("a shared store");
        let store = self.store.cluster().expect("a shared store");
        let node = self.config.node_id.as_str();
        let ttl = self.config.lease_ttl;
        let mut swept = Instant::now();
        while !cluster.stop.load(Ordering::SeqCst) {
            let round = Instant::now();
            // Answers no node waits for any more: twice the forwarding timeout after them.
            if swept.elapsed() >= SWEEP_EVERY {
                swept = Instant::now();
                if let Err(err) = store.sweep_answered(self.config.forward_timeout * 2) {
                    tracing::warn!(error = %err, "cannot delete old answered inbox requests");
                }
            }
            match self.store.tenants() {
                Err(err) => tracing::warn!(error = %err, "cannot list tenants for leases"),
                Ok(tenants) => {
                    for (tenant, _) in tenants {
                        let asked = Instant::now();
                        let held = store.acquire_lease(&tenant, node, ttl);
                        let mut leases = cluster.leases.lock().expect("leases lock");
                        match held {
                            Ok(Some(epoch)) => {
                                let previous = leases.insert(tenant.clone(), (epoch, asked));
                                if previous.is_none_or(|(old, _)| old != epoch) {
                                    tracing::info!(%tenant, epoch, node, "leading the tenant's log");
                                    self.stats.lease_takeovers.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Ok(None) => {
                                if leases.remove(&tenant).is_some() {
                                    tracing::warn!(%tenant, node, "lost the tenant's lease to another node");
                                }
                            }
                            Err(err) => tracing::warn!(%tenant, error = %err, "cannot renew the lease"),
                        }
                    }
                }
            }
            self.sleep(cluster, (ttl / 4).saturating_sub(round.elapsed()));
        }
        let held: Vec<(TenantId, (u64, Instant))> =
            cluster.leases.lock().expect("leases lock").drain().collect();
        for (tenant, (epoch, _)) in held {
            if let Err(err) = store.release_lease(&tenant, node, epoch) {
                tracing::warn!(%tenant, error = %err, "cannot release the lease");
            }
        }
    }

    /// Answers callers whose requests went to another node's inbox, once that node stored them
    /// (or tells them to retry when it takes too long; their ids make a retry safe).
    pub(super) fn collect_answers(self: Arc<Shared>) {
        let cluster = self.cluster.as_ref().expect("a shared store");
        let store = self.store.cluster().expect("a shared store");
        loop {
            let stopping = cluster.stop.load(Ordering::SeqCst);
            let tickets: Vec<u64> = cluster.waiting.lock().expect("waiting lock").keys().copied().collect();
            if tickets.is_empty() && stopping {
                return;
            }
            if !tickets.is_empty() {
                match store.take_answers(&tickets) {
                    Err(err) => tracing::warn!(error = %err, "cannot read inbox answers"),
                    Ok(answers) => {
                        let mut waiting = cluster.waiting.lock().expect("waiting lock");
                        for (ticket, answer) in answers {
                            if let Some(Waiting { reply, queued, checked, .. }) = waiting.remove(&ticket) {
                                drop(queued);
                                let answer = crate::inbox::decode_answer(&answer);
                                if answer.is_err() {
                                    self.forget_unconfirmed(&checked);
                                }
                                let _ = reply.send(answer);
                            }
                        }
                    }
                }
                let now = Instant::now();
                let mut waiting = cluster.waiting.lock().expect("waiting lock");
                let late: Vec<u64> = waiting
                    .iter()
                    .filter(|(_, waiting)| stopping || waiting.deadline <= now)
                    .map(|(ticket, _)| *ticket)
                    .collect();
                for ticket in late {
                    let Waiting { reply, queued, .. } = waiting.remove(&ticket).expect("listed above");
                    drop(queued);
                    let _ = reply.send(Err(Error::Unavailable(format!(
                        "the tenant's leader has not stored request {ticket} yet; \
                         send the same events again (their ids make it safe)"
                    ))));
                }
            }
            self.sleep(cluster, self.config.inbox_poll);
        }
    }
}

/// Routing, the inbox and fencing on the sequencer thread.
impl Sequencer {
    /// On a shared store: hands requests for tenants this node does not lead (any more) to the
    /// inbox, and forgets log states loaded under another lease epoch.
    pub(super) fn route(&mut self, group: &mut Vec<Request>) {
        let mut kept = Vec::with_capacity(group.len());
        for request in group.drain(..) {
            let Some(epoch) = self.shared.held(&request.tenant) else {
                self.logs.remove(&request.tenant);
                self.epochs.remove(&request.tenant);
                if let Reply::Local(reply) = request.reply {
                    // Its events already left the queue's count (`run` released its slots).
                    self.shared.forward(&request.tenant, &request.items, reply, request.queued);
                }
                // An inbox request of a tenant this node no longer leads stays for its leader.
                continue;
            };
            if self.epochs.get(&request.tenant) != Some(&epoch) {
                self.logs.remove(&request.tenant);
                self.epochs.insert(request.tenant.clone(), epoch);
            }
            kept.push(request);
        }
        *group = kept;
    }

    /// On a shared store: adds requests other nodes queued for the tenants this node leads. A
    /// node that leads no tenant asks the store nothing.
    pub(super) fn take_inbox(&mut self, group: &mut Vec<Request>, room: usize) {
        let cluster = self.shared.cluster.as_ref().expect("a shared store");
        let store = self.shared.store.cluster().expect("a shared store");
        let led: Vec<(TenantId, u64)> = {
            let leases = cluster.leases.lock().expect("leases lock");
            leases
                .iter()
                .filter(|(_, (_, confirmed))| self.shared.still_held(*confirmed))
                .map(|(tenant, (epoch, _))| (tenant.clone(), *epoch))
                .collect()
        };
        if led.is_empty() || room == 0 {
            return;
        }
        let tenants: Vec<TenantId> = led.iter().map(|(tenant, _)| tenant.clone()).collect();
        let pending = match store.pending(&tenants, room.min(256)) {
            Ok(pending) => pending,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the inbox");
                return;
            }
        };
        for (tenant, ticket, request) in pending {
            let epoch =
                led.iter().find(|(led, _)| *led == tenant).map(|(_, epoch)| *epoch).expect("asked for");
            if self.epochs.get(&tenant) != Some(&epoch) {
                self.logs.remove(&tenant);
                self.epochs.insert(tenant.clone(), epoch);
            }
            let request = self.inbox_request(&tenant, ticket, &request);
            self.shared.stats.inbox_requests.fetch_add(1, Ordering::Relaxed);
            group.push(request);
        }
    }

    /// Another node's queued request, read. Personal parts travel sealed; subscribers
    /// (detection) get them in clear, so they are opened here when someone listens.
    fn inbox_request(&self, tenant: &TenantId, ticket: u64, request: &[u8]) -> Request {
        let mut items = crate::inbox::decode_request(tenant, request).unwrap_or_else(|err| {
            tracing::error!(%tenant, ticket, error = %err, "unreadable inbox request");
            vec![Err(format!("the forwarding node sent an unreadable request: {err}"))]
        });
        if self.shared.committed.receiver_count() > 0 {
            for prepared in items.iter_mut().filter_map(|item| item.as_mut().ok()) {
                let Some((subject, sealed)) = &prepared.entry.sealed else { continue };
                if let Ok(Some(key)) = self.shared.key_to_open(tenant, subject, sealed)
                    && let Ok(Some((_, canonical))) = key.unseal(tenant.as_str(), &prepared.event_id, sealed)
                {
                    prepared.personal = Some(canonical);
                }
            }
        }
        Request {
            tenant: tenant.clone(),
            items,
            reply: Reply::Inbox(ticket),
            // Counted in the queue of the node that took it, not here.
            queued: QueueSlots::none(&self.shared.queued),
        }
    }

    /// On a shared store, part of the commit step: the leases the commit is made under (the
    /// store refuses it unless this node still holds each at its epoch), and the answers to the
    /// group's inbox requests, stored in the same transaction. Nothing is written here.
    pub(super) fn fence(
        &self,
        group: &[Request],
        answers: &[Vec<Outcome>],
        commit: &mut Commit,
    ) -> Result<()> {
        if self.shared.cluster.is_none() {
            return Ok(());
        }
        let mut leases = Vec::new();
        for request in group {
            if !leases.iter().any(|(t, _)| t == &request.tenant) {
                let epoch = self.epochs.get(&request.tenant).copied().ok_or_else(|| {
                    Error::Conflict(format!("this node does not lead tenant {}", request.tenant))
                })?;
                leases.push((request.tenant.clone(), epoch));
            }
        }
        commit.fence = Some(Fence { node: self.shared.config.node_id.clone(), leases });
        for (request, outcomes) in group.iter().zip(answers) {
            if let Reply::Inbox(ticket) = request.reply {
                commit.answered.push((ticket, crate::inbox::encode_answer(outcomes)));
            }
        }
        Ok(())
    }
}
