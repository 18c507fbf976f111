//! Tampering with a stored log is caught. One log of 1,000 entries is built through the engine;
//! each case tampers with a fresh copy of its SQLite file through SQL, as anyone with write access
//! to the file could, and then `fsck` must name the problem (at the first bad index where there is
//! one), and the engine must refuse to start where the tampering touches the log's head.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use evident_core::Error;
use evident_core::engine::{Engine, EngineConfig, Outcome};
use evident_core::event::TenantPolicy;
use evident_core::fsck::{Report, check_log};
use evident_core::seal::MasterKey;
use evident_core::store::{LogStore, Store, TenantId};
use evident_core::validate::validate_event;
use evident_store_sqlite::SqliteStore;
use evident_tlog::{Checkpoint, Signer, TreeSize, Verifier};
use rusqlite::{Connection, params};
use serde_json::{Value, json};

const SIGNING_SEED: [u8; 32] = [0x5e; 32];
const MASTER_KEY: [u8; 32] = [0x3a; 32];
const TENANT: &str = "acme";
const N_EVENTS: u64 = 1_000;
const BATCH: u64 = 37;
const STORE_FILE: &str = "evident.sqlite";

/// One customer-service event with personal fields (display names, emails, an IP address).
fn event(n: u64) -> Value {
    let customer = n % 53;
    json!({
        "id": format!("evt-{n:05}"),
        "source": "//billing.example.com/api",
        "type": "customer.address.changed",
        "action": "update",
        "time": format!("2026-03-{:02}T09:{:02}:{:02}.{:06}Z", 1 + n % 28, n % 60, (n / 60) % 60, n),
        "actor": {"id": format!("clerk-{}", n % 11), "type": "user", "display": format!("Clerk {}", n % 11),
                  "auth": {"method": "password", "mfa": n.is_multiple_of(2)}},
        "subject": format!("cust-{customer}"),
        "targets": [{"type": "customer", "id": format!("cust-{customer}"), "display": format!("Customer {customer}")},
                    {"type": "invoice", "id": format!("inv-{n}")}],
        "outcome": "success",
        "reason": "customer moved house",
        "changes": [{"field": "/address/city", "before": "Ghent", "after": format!("Town {n}")}],
        "origin": {"ip": format!("192.0.2.{}", n % 250), "service": "billing-api"},
        "data_classes": ["pii"],
        "metadata": {"channel": "email"}
    })
}

/// The untampered store, built once per test process.
struct Pristine {
    _dir: tempfile::TempDir,
    path: PathBuf,
    origin: String,
    /// `tenants.tid` of the tenant, for `events.rid = tid * 2^40 + index`.
    tid: i64,
    /// Sizes of every kept checkpoint and the head, increasing.
    checkpoint_sizes: Vec<u64>,
}

fn tenant() -> TenantId {
    TenantId::new(TENANT).unwrap()
}

fn verifier(origin: &str) -> Verifier {
    Signer::from_seed(origin, SIGNING_SEED).unwrap().verifier()
}

fn open_engine(path: &Path) -> evident_core::Result<Engine> {
    open_engine_with(path, EngineConfig::default())
}

fn open_engine_with(path: &Path, config: EngineConfig) -> evident_core::Result<Engine> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path)?);
    Engine::open(store, SIGNING_SEED, MasterKey::from_bytes(MASTER_KEY), config)
}

/// The pristine store keeps a checkpoint per 100 entries (at sizes 37, 148, ..., 925; the head,
/// 1000, is not among them): the tests below tamper with kept ones and with the head.
fn pristine_config() -> EngineConfig {
    EngineConfig {
        keep_checkpoint_entries: 100,
        keep_checkpoint_interval: std::time::Duration::from_secs(3600),
        ..EngineConfig::default()
    }
}

/// Appends `n_events` events in commits of `batch`, then closes the store; its origin.
fn build_store(path: &Path, n_events: u64, batch: u64, config: EngineConfig) -> String {
    let engine = open_engine_with(path, config).unwrap();
    engine.create_tenant(&tenant(), TenantPolicy::default()).unwrap();
    let policy = engine.policy(&tenant()).unwrap();
    for start in (0..n_events).step_by(batch as usize) {
        let events = (start..(start + batch).min(n_events))
            .map(|n| validate_event(&event(n), &policy).expect("the test's events are valid"))
            .collect();
        for (n, outcome) in (start..).zip(engine.append(&tenant(), events).unwrap()) {
            match outcome {
                Outcome::Stored(receipt) => assert_eq!(receipt.index, n),
                other => panic!("event {n} was not stored: {other:?}"),
            }
        }
    }
    let origin = engine.origin(&tenant());
    engine.shutdown();
    drop(engine); // closes the store, folding its WAL into the file
    origin
}

fn pristine() -> &'static Pristine {
    static PRISTINE: OnceLock<Pristine> = OnceLock::new();
    PRISTINE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STORE_FILE);
        let origin = build_store(&path, N_EVENTS, BATCH, pristine_config());
        let connection = Connection::open(&path).unwrap();
        let tid =
            connection.query_row("SELECT tid FROM tenants WHERE name = ?1", [TENANT], |r| r.get(0)).unwrap();
        let checkpoint_sizes = connection
            .prepare("SELECT size FROM checkpoints WHERE tid = ?1 UNION SELECT size FROM logs ORDER BY size")
            .unwrap()
            .query_map([tid], |r| r.get::<_, i64>(0).map(|s| s as u64))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        Pristine { _dir: dir, path, origin, tid, checkpoint_sizes }
    })
}

fn rid(index: u64) -> i64 {
    (pristine().tid << 40) + index as i64
}

/// A tampered copy of the store and what fsck reported on it.
struct Tampered {
    _dir: tempfile::TempDir,
    path: PathBuf,
    report: Report,
}

/// Tampers with a fresh copy of the pristine store, runs fsck on it and checks its verdict: the
/// first bad index it names, and that some problem mentions `expect_words` (an empty string
/// means the store must verify with no problem at all).
fn check(tamper: impl FnOnce(&Connection), expect_first_bad: Option<u64>, expect_words: &str) -> Tampered {
    let pristine = pristine();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STORE_FILE);
    std::fs::copy(&pristine.path, &path).unwrap();
    let wal = PathBuf::from(format!("{}-wal", pristine.path.display()));
    assert!(!wal.exists(), "the pristine store left a WAL behind; copy it too");
    {
        let connection = Connection::open(&path).unwrap();
        tamper(&connection);
    }
    let store = SqliteStore::open(&path).unwrap();
    let report =
        check_log(&store as &dyn LogStore, &tenant(), &pristine.origin, &[verifier(&pristine.origin)])
            .expect("fsck runs to the end on a tampered store");
    drop(store);
    let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(report.first_bad_index(), expect_first_bad, "first bad index; problems: {problems:#?}");
    if expect_words.is_empty() {
        assert!(report.ok(), "the store must verify; problems: {problems:#?}");
    } else {
        assert!(!report.ok(), "fsck missed the tampering");
        assert!(
            problems.iter().any(|p| p.contains(expect_words)),
            "no problem mentions {expect_words:?}: {problems:#?}"
        );
    }
    Tampered { _dir: dir, path, report }
}

impl Tampered {
    /// The engine must refuse to start on this store with an integrity error mentioning `words`.
    fn startup_refuses(self, words: &str) {
        match open_engine(&self.path) {
            Err(Error::Integrity(message)) => {
                assert!(message.contains(words), "{message:?} does not mention {words:?}")
            }
            Err(other) => panic!("startup failed, but not as an integrity failure: {other:?}"),
            Ok(_) => panic!("the engine started on a store whose head was tampered with"),
        }
    }
}

/// Runs SQL that must change exactly `rows` rows.
fn exec(connection: &Connection, sql: &str, values: impl rusqlite::Params, rows: usize) {
    assert_eq!(connection.execute(sql, values).unwrap(), rows, "{sql}");
}

fn entry(connection: &Connection, index: u64) -> Vec<u8> {
    connection.query_row("SELECT entry FROM events WHERE rid = ?1", [rid(index)], |r| r.get(0)).unwrap()
}

fn set_entry(connection: &Connection, index: u64, entry: &[u8]) {
    exec(connection, "UPDATE events SET entry = ?1 WHERE rid = ?2", params![entry, rid(index)], 1);
}

/// The checkpoint kept at `size`, or the head's.
fn published_checkpoint(connection: &Connection, size: u64) -> String {
    connection
        .query_row(
            "SELECT note FROM checkpoints WHERE tid = ?1 AND size = ?2
             UNION SELECT checkpoint FROM logs WHERE tid = ?1 AND size = ?2",
            params![pristine().tid, size as i64],
            |r| r.get(0),
        )
        .unwrap()
}

/// Sets the head (`logs`) to a size and checkpoint note.
fn set_head(connection: &Connection, size: u64, checkpoint: &str) {
    exec(
        connection,
        "UPDATE logs SET size = ?1, checkpoint = ?2 WHERE tid = ?3",
        params![size as i64, checkpoint, pristine().tid],
        1,
    );
}

/// The largest published checkpoint size at most `at_most`, other than the head's.
fn earlier_checkpoint(at_most: u64) -> u64 {
    let sizes = &pristine().checkpoint_sizes;
    assert_eq!(sizes.last(), Some(&N_EVENTS));
    *sizes.iter().rev().find(|&&s| s <= at_most && s < N_EVENTS).expect("an earlier checkpoint")
}

#[test]
fn the_untampered_store_verifies_and_starts() {
    let tampered = check(|_| {}, None, "");
    assert_eq!(tampered.report.size, N_EVENTS);
    assert_eq!(tampered.report.entries_checked, N_EVENTS);
    assert_eq!(pristine().checkpoint_sizes, [37, 148, 259, 370, 481, 592, 703, 814, 925, 1000]);
    assert_eq!(tampered.report.checkpoints_checked, pristine().checkpoint_sizes.len() as u64);
    // Full tiles 0/0..0/2 and the partial tile 1/0 (3 wide); the partial tile 0/3 is not stored.
    assert_eq!(tampered.report.tiles_checked, 4);
    let engine = open_engine(&tampered.path).expect("the engine starts on an untampered store");
    engine.shutdown();
}

/// Flips a bit in the middle of an entry.
fn flip_entry(connection: &Connection, index: u64) {
    let mut bytes = entry(connection, index);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    set_entry(connection, index, &bytes);
}

#[test]
fn a_flipped_byte_in_an_entry() {
    check(|c| flip_entry(c, 500), Some(500), "does not hash to the leaf hash its tile holds");
}

#[test]
fn a_deleted_entry() {
    check(
        |c| exec(c, "DELETE FROM events WHERE rid = ?1", [rid(300)], 1),
        Some(300),
        "entries 300 to 300 are missing",
    );
}

#[test]
fn an_entry_inserted_beyond_the_head() {
    check(
        |c| {
            exec(
                c,
                "INSERT INTO events (rid, tid, event_id, source, producer_id, idempotency, time, recorded_at,
                    type, action, outcome, actor, subject, entry, seal_subject, sealed)
                 SELECT ?1, tid, randomblob(16), source, 'smuggled', idempotency, time, recorded_at,
                    type, action, outcome, actor, subject, entry, seal_subject, sealed
                 FROM events WHERE rid = ?2",
                params![rid(N_EVENTS), rid(N_EVENTS - 1)],
                1,
            )
        },
        Some(N_EVENTS),
        "1 entries beyond the head checkpoint, from index 1000",
    )
    .startup_refuses("holds entries beyond its checkpoint");
}

#[test]
fn two_entries_swapped() {
    check(
        |c| {
            let (ten, eleven) = (entry(c, 10), entry(c, 11));
            set_entry(c, 10, &eleven);
            set_entry(c, 11, &ten);
        },
        Some(10),
        "does not hash to the leaf hash its tile holds",
    );
}

#[test]
fn a_truncated_tail() {
    check(
        |c| exec(c, "DELETE FROM events WHERE rid >= ?1", [rid(990)], 10),
        Some(990),
        "entries 990 to 999 are missing (truncated)",
    )
    .startup_refuses("lacks entry 999");
}

#[test]
fn a_head_checkpoint_signed_with_another_key() {
    check(
        |c| {
            let (genuine, _) = Checkpoint::open(
                &published_checkpoint(c, N_EVENTS),
                &[verifier(&pristine().origin)],
                &pristine().origin,
            )
            .unwrap();
            let forger = Signer::from_seed(&pristine().origin, [0xee; 32]).unwrap();
            let forged =
                Checkpoint::new(&pristine().origin, genuine.size, genuine.root).sign(&[&forger]).unwrap();
            set_head(c, N_EVENTS, &forged);
        },
        None,
        "checkpoint for size 1000 does not verify",
    )
    .startup_refuses("latest checkpoint");
}

#[test]
fn a_head_checkpoint_with_its_size_changed() {
    check(
        |c| {
            let genuine = published_checkpoint(c, N_EVENTS);
            let forged = genuine.replacen("\n1000\n", "\n1001\n", 1);
            assert_ne!(forged, genuine);
            set_head(c, N_EVENTS, &forged);
        },
        None,
        "the head checkpoint does not verify",
    )
    .startup_refuses("latest checkpoint");
}

#[test]
fn a_head_rolled_back_to_an_earlier_checkpoint_while_the_entries_remain() {
    let earlier = earlier_checkpoint(900);
    check(|c| set_head(c, earlier, &published_checkpoint(c, earlier)), Some(earlier), "log was rolled back")
        .startup_refuses("holds entries beyond its checkpoint");
}

#[test]
fn a_head_checkpoint_rolled_back_while_its_size_stays() {
    let earlier = earlier_checkpoint(900);
    check(
        |c| set_head(c, N_EVENTS, &published_checkpoint(c, earlier)),
        None,
        &format!("the head checkpoint is for size {earlier}, the head says {N_EVENTS}"),
    )
    .startup_refuses("is for size");
}

#[test]
fn a_head_size_rolled_back_while_its_checkpoint_stays() {
    let earlier = earlier_checkpoint(900);
    check(|c| set_head(c, earlier, &published_checkpoint(c, N_EVENTS)), Some(earlier), "log was rolled back")
        .startup_refuses("is for size");
}

#[test]
fn a_flipped_byte_in_a_leaf_hash_tile() {
    // Level-0 tile 1 holds the leaf hashes of entries 256..512; byte 44 * 32 + 5 is in entry 300's.
    check(
        |c| {
            let mut data: Vec<u8> = c
                .query_row(
                    "SELECT data FROM tiles WHERE tid = ?1 AND level = 0 AND idx = 1",
                    [pristine().tid],
                    |r| r.get(0),
                )
                .unwrap();
            data[44 * 32 + 5] ^= 0x80;
            exec(
                c,
                "UPDATE tiles SET data = ?1 WHERE tid = ?2 AND level = 0 AND idx = 1",
                params![data, pristine().tid],
                1,
            );
        },
        Some(300),
        "tile/0/001 differs from the recomputed one",
    );
}

#[test]
fn the_heads_level_1_partial_tile_deleted() {
    // Tile 1/000.p/3 holds the roots of level-0 tiles 0..3; the log's head needs it.
    check(
        |c| exec(c, "DELETE FROM tiles WHERE tid = ?1 AND level = 1 AND idx = 0", [pristine().tid], 1),
        Some(999),
        "tile/1/000.p/3 is missing",
    )
    .startup_refuses("tile");
}

/// The head's level-0 partial tile is not stored: it is the leaf hashes of its entries, so a
/// changed entry there is caught by the roots of the checkpoints past it (the first one kept
/// after it names the index), and the engine refuses to start on the head's root.
#[test]
fn a_flipped_byte_in_an_entry_of_the_heads_partial_tile() {
    check(|c| flip_entry(c, 900), Some(924), "checkpoint at size 925 does not match the entries")
        .startup_refuses("do not give the checkpoint's root");
}

/// A level-0 row that is not a full tile is never trusted (version 3 kept the rightmost tile
/// so; `migrate.rs` checks that opening such a store deletes it): a forged one, wider than the
/// log, changes no verdict and no tile served.
#[test]
fn a_forged_level_0_partial_tile_row_is_ignored() {
    let forged = check(
        |c| {
            let data = [0xeeu8; 250 * 32];
            let sql = "INSERT INTO tiles (tid, level, idx, data) VALUES (?1, 0, 3, ?2)";
            exec(c, sql, params![pristine().tid, data.as_slice()], 1)
        },
        None,
        "",
    );
    let connection = Connection::open(&forged.path).unwrap();
    let want: Vec<u8> =
        (768..N_EVENTS).flat_map(|index| evident_tlog::leaf_hash(&entry(&connection, index)).0).collect();
    let engine = open_engine(&forged.path).expect("the engine starts");
    let tile = |width| evident_tlog::TileId { level: 0, index: 3, width };
    assert_eq!(engine.tile(&tenant(), tile(232)).unwrap(), want);
    assert_eq!(engine.tile(&tenant(), tile(5)).unwrap(), want[..5 * 32]);
    engine.shutdown();
}

#[test]
fn a_published_checkpoint_that_does_not_match_the_entries() {
    // A checkpoint in the history, validly signed (by a key thief), over a different tree.
    let earlier = earlier_checkpoint(500);
    check(
        |c| {
            let signer = Signer::from_seed(&pristine().origin, SIGNING_SEED).unwrap();
            let other_root = evident_tlog::leaf_hash(b"another history");
            let forged =
                Checkpoint::new(&pristine().origin, TreeSize(earlier), other_root).sign(&[&signer]).unwrap();
            exec(
                c,
                "UPDATE checkpoints SET note = ?1 WHERE tid = ?2 AND size = ?3",
                params![forged, pristine().tid, earlier as i64],
                1,
            );
        },
        Some(earlier - 1),
        &format!("checkpoint at size {earlier} does not match the entries"),
    );
}

/// A store written one event per commit that keeps every checkpoint has one per entry: fsck
/// still checks every one (signature and root), so a forged checkpoint and a broken signature
/// among hundreds are caught at their sizes.
#[test]
fn a_tampered_checkpoint_among_one_event_commits() {
    const EVENTS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STORE_FILE);
    let keep_all = EngineConfig { keep_checkpoint_entries: 1, ..EngineConfig::default() };
    let origin = build_store(&path, EVENTS, 1, keep_all);
    let verifiers = [verifier(&origin)];
    let store = SqliteStore::open(&path).unwrap();
    let pristine = check_log(&store as &dyn LogStore, &tenant(), &origin, &verifiers).unwrap();
    assert!(pristine.ok(), "{:?}", pristine.problems);
    assert_eq!((pristine.entries_checked, pristine.checkpoints_checked), (EVENTS, EVENTS));
    drop(store);
    let connection = Connection::open(&path).unwrap();
    let tid: i64 = connection.query_row("SELECT tid FROM tenants", [], |r| r.get(0)).unwrap();
    let note_at = |size: i64| -> String {
        connection
            .query_row("SELECT note FROM checkpoints WHERE tid = ?1 AND size = ?2", params![tid, size], |r| {
                r.get(0)
            })
            .unwrap()
    };
    let signer = Signer::from_seed(&origin, SIGNING_SEED).unwrap();
    let forged =
        Checkpoint::new(&origin, TreeSize(137), evident_tlog::leaf_hash(b"another history")).sign(&[&signer]);
    // A base64 character inside the signature changed.
    let mut broken = note_at(211);
    let at = broken.len() - 10;
    let replacement = if &broken[at..at + 1] == "A" { "B" } else { "A" };
    broken.replace_range(at..at + 1, replacement);
    for (size, note) in [(137, forged.unwrap()), (211, broken)] {
        let sql = "UPDATE checkpoints SET note = ?1 WHERE tid = ?2 AND size = ?3";
        exec(&connection, sql, params![note, tid, size], 1);
    }
    drop(connection);
    let store = SqliteStore::open(&path).unwrap();
    let report = check_log(&store as &dyn LogStore, &tenant(), &origin, &verifiers).unwrap();
    let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(report.first_bad_index(), Some(136), "{problems:#?}");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems.contains(&"index 136: checkpoint at size 137 does not match the entries".to_owned()));
    assert!(problems[0].starts_with("checkpoint for size 211 does not verify"), "{problems:#?}");
    assert_eq!(report.checkpoints_checked, EVENTS);
}

/// With the default history (a checkpoint kept per 1,000 entries or per second), a store of
/// 2,500 one-event commits keeps a handful of checkpoints, not 2,500; a forged kept one among
/// them (validly signed by a key thief, over another tree) is caught at its size.
#[test]
fn a_forged_kept_checkpoint_among_many_one_event_commits() {
    const EVENTS: u64 = 2_500;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STORE_FILE);
    let started = std::time::Instant::now();
    let origin = build_store(&path, EVENTS, 1, EngineConfig::default());
    let bound = EVENTS / 1000 + started.elapsed().as_secs() + 2;
    let verifiers = [verifier(&origin)];
    let store = SqliteStore::open(&path).unwrap();
    let kept: Vec<u64> = store.checkpoints(&tenant()).unwrap().iter().map(|c| c.size.0).collect();
    let pristine = check_log(&store as &dyn LogStore, &tenant(), &origin, &verifiers).unwrap();
    assert!(pristine.ok(), "{:?}", pristine.problems);
    assert_eq!((pristine.entries_checked, pristine.checkpoints_checked), (EVENTS, kept.len() as u64));
    assert!((3..=bound as usize).contains(&kept.len()), "{} kept checkpoints: {kept:?}", kept.len());
    assert_eq!((kept[0], kept.last().copied()), (1, Some(EVENTS)));
    drop(store);
    // A kept checkpoint inside the log, not the head.
    let size = kept[kept.len() / 2];
    assert!(size > 1 && size < EVENTS, "{kept:?}");
    let signer = Signer::from_seed(&origin, SIGNING_SEED).unwrap();
    let forged = Checkpoint::new(&origin, TreeSize(size), evident_tlog::leaf_hash(b"another history"))
        .sign(&[&signer])
        .unwrap();
    let connection = Connection::open(&path).unwrap();
    let tid: i64 = connection.query_row("SELECT tid FROM tenants", [], |r| r.get(0)).unwrap();
    let sql = "UPDATE checkpoints SET note = ?1 WHERE tid = ?2 AND size = ?3";
    exec(&connection, sql, params![forged, tid, size as i64], 1);
    drop(connection);
    let store = SqliteStore::open(&path).unwrap();
    let report = check_log(&store as &dyn LogStore, &tenant(), &origin, &verifiers).unwrap();
    let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        [format!("index {}: checkpoint at size {size} does not match the entries", size - 1)]
    );
}
