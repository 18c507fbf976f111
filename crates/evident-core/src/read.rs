//! Reads: events (with their personal part only for callers allowed to see it), searches with
//! cursor pagination, customer timelines, proofs, receipts, tiles and entry bundles.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use evident_tlog::{
    BundleId, Checkpoint, LeafIndex, TileHashSource, TileId, TlogProof, TreeSize, consistency_proof,
    inclusion_proof, push_bundle_entry,
};
use serde_json::Value;
use uuid::Uuid;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::log::StoreTiles;
use crate::store::{LogHead, Position, SearchPlan, StoredEvent, TenantId};
use evident_wire::filter::{Filter, Order};

/// What a caller may see of events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The skeleton only: no personal values.
    Skeleton,
    /// Personal parts too, opened and checked against their commitments.
    Personal,
}

/// The state of an event's personal part in a view.
#[derive(Clone, Debug, PartialEq)]
pub enum PersonalState {
    /// The event has no personal values.
    None,
    /// Present in the store but not shown to this caller.
    Withheld,
    /// Opened and merged into `event`.
    Included,
    /// Its subject was erased: the data key is gone.
    Erased,
}

/// One event as a read returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventView {
    pub index: u64,
    pub event_id: Uuid,
    /// The skeleton, with personal values merged in when `personal` is `Included`.
    pub event: Value,
    pub personal: PersonalState,
    /// The exact entry bytes the log committed to.
    pub entry: Vec<u8>,
}

/// A page of results and the cursor of the next one.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Which event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventRef {
    Id(Uuid),
    Index(u64),
}

/// The largest page a search answers.
pub const MAX_PAGE: usize = 1000;

fn encode_cursor(order: Order, position: Position) -> String {
    let order = match order {
        Order::NewestFirst => 'n',
        Order::OldestFirst => 'o',
    };
    B64URL.encode(format!("v1:{order}:{}:{}", position.time.0, position.index))
}

fn decode_cursor(cursor: &str, order: Order) -> Result<Position> {
    let bad = || Error::InvalidArgument("cursor is not one this service issued".into());
    let text = String::from_utf8(B64URL.decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = text.split(':');
    let (Some("v1"), Some(o), Some(time), Some(index), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let expected = match order {
        Order::NewestFirst => "n",
        Order::OldestFirst => "o",
    };
    if o != expected {
        return Err(Error::InvalidArgument("cursor was issued for the other order".into()));
    }
    Ok(Position {
        time: evident_wire::Micros(time.parse().map_err(|_| bad())?),
        index: index.parse().map_err(|_| bad())?,
    })
}

impl Engine {
    fn view(&self, tenant: &TenantId, stored: StoredEvent, access: Access) -> Result<EventView> {
        let skeleton: Value = serde_json::from_slice(&stored.entry)
            .map_err(|err| Error::Integrity(format!("entry {} is not JSON: {err}", stored.index)))?;
        let (event, personal) = match (&stored.sealed, access) {
            (None, _) => (skeleton, PersonalState::None),
            (Some(_), Access::Skeleton) => (skeleton, PersonalState::Withheld),
            (Some((subject, sealed)), Access::Personal) => match self.key_to_open(tenant, subject, sealed)? {
                None => (skeleton, PersonalState::Erased),
                Some(key) => match key.unseal(tenant.as_str(), &stored.event_id, sealed)? {
                    // Sealed under a key since erased; the subject has a new one.
                    None => (skeleton, PersonalState::Erased),
                    Some((salt, canonical)) => (
                        evident_wire::entry::rehydrate(&skeleton, &salt, &canonical)?,
                        PersonalState::Included,
                    ),
                },
            },
        };
        Ok(EventView {
            index: stored.index,
            event_id: Uuid::from_bytes(stored.event_id),
            event,
            personal,
            entry: stored.entry,
        })
    }

    /// One event by id or index.
    pub fn event(&self, tenant: &TenantId, which: EventRef, access: Access) -> Result<EventView> {
        let store = self.store();
        let stored = match which {
            EventRef::Id(id) => store.event_by_id(tenant, id.as_bytes())?,
            EventRef::Index(index) => store.event_by_index(tenant, index)?,
        };
        let stored = stored.ok_or_else(|| Error::NotFound(format!("event {which:?} in tenant {tenant}")))?;
        self.view(tenant, stored, access)
    }

    /// Events matching `filter`, a page at a time (at most [`MAX_PAGE`]).
    pub fn search(
        &self,
        tenant: &TenantId,
        filter: &Filter,
        order: Order,
        cursor: Option<&str>,
        limit: usize,
        access: Access,
    ) -> Result<Page<EventView>> {
        self.policy(tenant)?; // unknown tenants are NotFound, not empty
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err(Error::InvalidArgument("`from` is after `to`".into()));
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let after = cursor.map(|c| decode_cursor(c, order)).transpose()?;
        let mut stored =
            self.store().search(tenant, &SearchPlan { filter, order, after, limit: limit + 1 })?;
        let more = stored.len() > limit;
        stored.truncate(limit);
        let next_cursor = more
            .then(|| {
                stored
                    .last()
                    .map(|last| encode_cursor(order, Position { time: last.time, index: last.index }))
            })
            .flatten();
        let items = stored.into_iter().map(|s| self.view(tenant, s, access)).collect::<Result<_>>()?;
        Ok(Page { items, next_cursor })
    }

    /// Everything that concerns one data subject (customer), a page at a time.
    pub fn timeline(
        &self,
        tenant: &TenantId,
        subject: &str,
        order: Order,
        cursor: Option<&str>,
        limit: usize,
        access: Access,
    ) -> Result<Page<EventView>> {
        let filter = Filter { subject: Some(subject.to_owned()), ..Filter::default() };
        self.search(tenant, &filter, order, cursor, limit, access)
    }

    /// The latest signed checkpoint of a tenant's log (`None` while it is empty).
    /// It carries the witness cosignatures stored for it (`cosigned.rs`).
    pub fn checkpoint(&self, tenant: &TenantId) -> Result<Option<(TreeSize, String)>> {
        match self.head(tenant)? {
            Some((size, note)) => Ok(Some((size, self.with_cosignatures(tenant, &note)?))),
            None => Ok(None),
        }
    }

    /// The latest checkpoint as the log signed it, without cosignatures.
    pub fn head(&self, tenant: &TenantId) -> Result<Option<(TreeSize, String)>> {
        self.policy(tenant)?;
        Ok(self.store().head(tenant)?.map(|head| (head.size, head.checkpoint)))
    }

    fn latest(&self, tenant: &TenantId) -> Result<(Checkpoint, String)> {
        let (_, note) =
            self.head(tenant)?.ok_or_else(|| Error::NotFound(format!("log of {tenant} is empty")))?;
        let (checkpoint, _) = Checkpoint::open(&note, &self.verifiers(tenant)?, &self.origin(tenant))?;
        Ok((checkpoint, note))
    }

    /// An inclusion proof of `index` in the tree of `size` (the latest size when `None`).
    pub fn inclusion_proof(
        &self,
        tenant: &TenantId,
        index: u64,
        size: Option<u64>,
    ) -> Result<Vec<evident_tlog::Hash>> {
        let (latest, _) = self.latest(tenant)?;
        let size = TreeSize(size.unwrap_or(latest.size.0));
        if size > latest.size || index >= size.0 {
            return Err(Error::InvalidArgument(format!(
                "index {index} and size {size} do not fit the log's size {}",
                latest.size
            )));
        }
        let source = TileHashSource::new(StoreTiles { store: &**self.store(), tenant }, size);
        Ok(inclusion_proof(LeafIndex(index), size, &source)?)
    }

    /// A consistency proof between two sizes of a tenant's log.
    pub fn consistency_proof(
        &self,
        tenant: &TenantId,
        old: u64,
        new: u64,
    ) -> Result<Vec<evident_tlog::Hash>> {
        let (latest, _) = self.latest(tenant)?;
        if old == 0 || old > new || new > latest.size.0 {
            return Err(Error::InvalidArgument(format!(
                "sizes {old} and {new} must satisfy 0 < old <= new <= {}",
                latest.size
            )));
        }
        let source = TileHashSource::new(StoreTiles { store: &**self.store(), tenant }, TreeSize(new));
        Ok(consistency_proof(TreeSize(old), TreeSize(new), &source)?)
    }

    /// The `c2sp.org/tlog-proof@v1` receipt of an event at the latest checkpoint.
    pub fn receipt(&self, tenant: &TenantId, which: EventRef) -> Result<TlogProof> {
        let view = self.event(tenant, which, Access::Skeleton)?;
        let (latest, plain) = self.latest(tenant)?;
        let note = self.with_cosignatures(tenant, &plain)?;
        // Without cosignatures on the latest checkpoint, the newest cosigned one that holds the
        // event (witnesses cosign a little after the log signs).
        let (size, note) = match note == plain {
            true => self.cosigned_covering(tenant, view.index + 1)?.unwrap_or((latest.size.0, note)),
            false => (latest.size.0, note),
        };
        let proof = self.inclusion_proof(tenant, view.index, Some(size))?;
        Ok(TlogProof { extra: None, index: LeafIndex(view.index), proof, checkpoint: note })
    }

    /// A hash tile of a tenant's log, if the latest checkpoint covers it.
    pub fn tile(&self, tenant: &TenantId, tile: TileId) -> Result<Vec<u8>> {
        let (latest, _) = self.latest(tenant)?;
        let level_bits = 8 * (tile.level as u32 + 1);
        let covered = if level_bits >= 64 { 0 } else { latest.size.0 >> (level_bits - 8) };
        if tile
            .index
            .checked_mul(256)
            .and_then(|start| start.checked_add(tile.width as u64))
            .is_none_or(|end| end > covered)
        {
            return Err(Error::NotFound(format!("tile {} is beyond the log", tile.path())));
        }
        Ok(self.store().read_tiles(tenant, &[tile])?.remove(0))
    }

    /// An entry bundle of a tenant's log, if the latest checkpoint covers it.
    pub fn entry_bundle(&self, tenant: &TenantId, bundle: BundleId) -> Result<Vec<u8>> {
        let (latest, _) = self.latest(tenant)?;
        let range = bundle.leaf_range();
        if range.end > latest.size.0 {
            return Err(Error::NotFound(format!("entry bundle {} is beyond the log", bundle.path())));
        }
        let entries = self.store().entries(tenant, range.start, range.end)?;
        if entries.len() as u64 != range.end - range.start {
            return Err(Error::Integrity(format!("entries of bundle {} are missing", bundle.path())));
        }
        let mut out = Vec::new();
        for entry in entries {
            push_bundle_entry(&mut out, &entry)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let position = Position { time: evident_wire::Micros(1_700_000_000_123_456), index: 42 };
        let cursor = encode_cursor(Order::NewestFirst, position);
        assert_eq!(decode_cursor(&cursor, Order::NewestFirst).unwrap(), position);
        assert!(decode_cursor(&cursor, Order::OldestFirst).is_err());
        assert!(decode_cursor("not-a-cursor", Order::NewestFirst).is_err());
        assert!(decode_cursor(&B64URL.encode("v1:n:x:1"), Order::NewestFirst).is_err());
        assert!(decode_cursor(&B64URL.encode("v1:n:1:2:3"), Order::NewestFirst).is_err());
    }
}

/// The checkpoint an export is made against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportHead {
    pub size: TreeSize,
    pub checkpoint: String,
}

/// One event of an export: its exact entry, its inclusion proof at the export's size, the event
/// as JSON, and (for callers allowed to see it) its opened personal part with the salt.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportItem {
    pub index: u64,
    pub event_id: Uuid,
    pub entry: Vec<u8>,
    pub proof: Vec<evident_tlog::Hash>,
    pub event: Value,
    pub personal: Option<([u8; 32], Value)>,
}

impl Engine {
    /// The latest checkpoint, which an export (or a timestamp) is made against; kept in the
    /// log's history, so it can be found by its size after the head moves on.
    pub fn export_head(&self, tenant: &TenantId) -> Result<ExportHead> {
        let (checkpoint, note) = self.latest(tenant)?;
        let kept = LogHead { size: checkpoint.size, checkpoint: note.clone() };
        self.store().keep_checkpoint(tenant, &kept)?;
        Ok(ExportHead { size: checkpoint.size, checkpoint: self.with_cosignatures(tenant, &note)? })
    }

    /// A page of an export: events matching `filter`, oldest first, covered by `head`, each with
    /// its proof at `head.size` and, with [`Access::Personal`], its opened personal part.
    pub fn export_page(
        &self,
        tenant: &TenantId,
        filter: &Filter,
        head: &ExportHead,
        cursor: Option<&str>,
        access: Access,
    ) -> Result<(Vec<ExportItem>, Option<String>)> {
        let limit = MAX_PAGE;
        let after = cursor.map(|c| decode_cursor(c, Order::OldestFirst)).transpose()?;
        let plan = SearchPlan { filter, order: Order::OldestFirst, after, limit: limit + 1 };
        let mut stored = self.store().search(tenant, &plan)?;
        let more = stored.len() > limit;
        stored.truncate(limit);
        let next = more
            .then(|| {
                stored.last().map(|last| {
                    encode_cursor(Order::OldestFirst, Position { time: last.time, index: last.index })
                })
            })
            .flatten();
        let source = TileHashSource::new(StoreTiles { store: &**self.store(), tenant }, head.size);
        let mut items = Vec::with_capacity(stored.len());
        for event in stored {
            if event.index >= head.size.0 {
                continue; // appended after the export's checkpoint
            }
            let proof = inclusion_proof(LeafIndex(event.index), head.size, &source)?;
            let mut personal = None;
            if let (Access::Personal, Some((subject, sealed))) = (access, &event.sealed)
                && let Some(key) = self.key_to_open(tenant, subject, sealed)?
                && let Some((salt, canonical)) = key.unseal(tenant.as_str(), &event.event_id, sealed)?
            {
                let part: Value = serde_json::from_slice(&canonical).map_err(|err| {
                    Error::Integrity(format!("personal part of {} is not JSON: {err}", event.index))
                })?;
                personal = Some((salt, part));
            }
            let view = self.view(tenant, event, access)?;
            items.push(ExportItem {
                index: view.index,
                event_id: view.event_id,
                entry: view.entry,
                proof,
                event: view.event,
                personal,
            });
        }
        Ok((items, next))
    }

    /// Signs an export manifest with the tenant's log key.
    pub fn sign_export_manifest(&self, tenant: &TenantId, text: &str) -> Result<String> {
        self.sign_note(tenant, text)
    }
}
