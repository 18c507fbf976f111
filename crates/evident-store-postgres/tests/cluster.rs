//! What only the shared store does: leases, fenced commits, the inbox, agreeing on data keys,
//! monthly partitions, migrations and connecting.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::TestSchema;
use evident_core::Error;
use evident_core::event::TenantPolicy;
use evident_core::store::{
    Cluster, Commit, EventIndex, Fence, KeyStore, LogCommit, LogStore, NewDataKey, NewEntry, Position,
    SearchPlan, TenantId,
};
use evident_store_postgres::{PgOptions, PgStore};
use evident_tlog::TreeSize;
use evident_wire::Micros;
use evident_wire::filter::{Filter, Order};

const TTL: Duration = Duration::from_millis(300);

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

/// A store in a fresh schema with tenant `acme`.
fn store_with_acme() -> (TestSchema, PgStore, TenantId) {
    let schema = TestSchema::new();
    let store = schema.open();
    let acme = tenant("acme");
    store.create_tenant(&acme, &TenantPolicy::default()).unwrap();
    (schema, store, acme)
}

fn cluster(store: &PgStore) -> &dyn Cluster {
    store.cluster().expect("the PostgreSQL store is a cluster store")
}

fn entry(index: u64, recorded_at: Micros) -> NewEntry {
    let mut event_id = [0u8; 16];
    event_id[..8].copy_from_slice(&index.to_be_bytes());
    event_id[8] = 0xee;
    NewEntry {
        index,
        event_id,
        source: "//test".into(),
        producer_id: format!("p{index}"),
        idempotency: vec![index as u8; 33],
        time: recorded_at,
        recorded_at,
        event_type: "test.event".into(),
        action: "read".into(),
        outcome: "success".into(),
        actor: "agent".into(),
        subject: Some("cust".into()),
        targets: vec![("customer".into(), "cust".into())],
        entry: format!("entry {index}").into_bytes(),
        sealed: None,
    }
}

/// A commit growing the log of `tenant` from `old` to `old + n` entries recorded now.
fn grow(tenant: &TenantId, old: u64, n: u64) -> Commit {
    let now = Micros::now();
    Commit {
        logs: vec![LogCommit {
            tenant: tenant.clone(),
            old_size: TreeSize(old),
            new_size: TreeSize(old + n),
            entries: (old..old + n).map(|i| entry(i, now)).collect(),
            tiles: Vec::new(),
            checkpoint: format!("checkpoint at {}", old + n),
            keep_checkpoint: true,
        }],
        ..Commit::default()
    }
}

fn fenced(mut commit: Commit, node: &str, leases: &[(&TenantId, u64)]) -> Commit {
    commit.fence = Some(Fence {
        node: node.into(),
        leases: leases.iter().map(|(tenant, epoch)| ((*tenant).clone(), *epoch)).collect(),
    });
    commit
}

fn size(store: &PgStore, tenant: &TenantId) -> u64 {
    store.head(tenant).unwrap().map_or(0, |head| head.size.0)
}

#[test]
fn leases_are_taken_renewed_refused_and_taken_over_after_expiry() {
    let (_schema, store, acme) = store_with_acme();
    let cluster = cluster(&store);
    assert_eq!(cluster.lease(&acme).unwrap(), None, "never leased");
    assert_eq!(cluster.acquire_lease(&acme, "node-a", TTL).unwrap(), Some(1));
    let lease = cluster.lease(&acme).unwrap().unwrap();
    assert_eq!((lease.node.as_str(), lease.epoch), ("node-a", 1));
    assert!((0..=300).contains(&lease.remaining_ms), "{lease:?}");
    // Renewal keeps the epoch; another node is refused while the lease lives.
    assert_eq!(cluster.acquire_lease(&acme, "node-a", TTL).unwrap(), Some(1));
    assert_eq!(cluster.acquire_lease(&acme, "node-b", TTL).unwrap(), None);
    assert_eq!(cluster.lease(&acme).unwrap().unwrap().node, "node-a");
    std::thread::sleep(TTL + Duration::from_millis(100));
    assert!(cluster.lease(&acme).unwrap().unwrap().remaining_ms < 0, "expired by the database clock");
    // After expiry another node takes it over with the next epoch, and the old holder is refused.
    assert_eq!(cluster.acquire_lease(&acme, "node-b", TTL).unwrap(), Some(2));
    assert_eq!(cluster.acquire_lease(&acme, "node-a", TTL).unwrap(), None);
    assert_eq!(cluster.lease(&acme).unwrap().unwrap().epoch, 2);
    // A holder that lets its lease expire gets it back only as a new epoch: whatever it did
    // under the old one may have been fenced off meanwhile.
    std::thread::sleep(TTL + Duration::from_millis(100));
    assert_eq!(cluster.acquire_lease(&acme, "node-b", TTL).unwrap(), Some(3));
    // Leases are per tenant; an unknown tenant is not found.
    let other = tenant("other");
    store.create_tenant(&other, &TenantPolicy::default()).unwrap();
    assert_eq!(cluster.acquire_lease(&other, "node-a", TTL).unwrap(), Some(1));
    assert!(matches!(cluster.acquire_lease(&tenant("nobody"), "node-a", TTL), Err(Error::NotFound(_))));
}

#[test]
fn a_released_lease_is_free_at_once() {
    let (_schema, store, acme) = store_with_acme();
    let cluster = cluster(&store);
    let long = Duration::from_secs(60);
    assert_eq!(cluster.acquire_lease(&acme, "node-a", long).unwrap(), Some(1));
    // Only the holder at its epoch can release.
    cluster.release_lease(&acme, "node-b", 1).unwrap();
    cluster.release_lease(&acme, "node-a", 7).unwrap();
    assert_eq!(cluster.acquire_lease(&acme, "node-b", long).unwrap(), None);
    cluster.release_lease(&acme, "node-a", 1).unwrap();
    assert!(cluster.lease(&acme).unwrap().unwrap().remaining_ms <= 0);
    assert_eq!(cluster.acquire_lease(&acme, "node-b", long).unwrap(), Some(2));
}

#[test]
fn fenced_commits_need_the_live_lease() {
    let (_schema, store, acme) = store_with_acme();
    let cluster = cluster(&store);
    assert_eq!(cluster.acquire_lease(&acme, "node-a", Duration::from_secs(60)).unwrap(), Some(1));
    let refused = |commit: Commit| {
        let result = store.commit(&commit);
        assert!(matches!(&result, Err(Error::Conflict(m)) if m.contains("lease lost")), "{result:?}");
    };
    // A stale epoch, another node's name: refused, and nothing written.
    refused(fenced(grow(&acme, 0, 2), "node-a", &[(&acme, 0)]));
    refused(fenced(grow(&acme, 0, 2), "node-b", &[(&acme, 1)]));
    assert_eq!(store.head(&acme).unwrap(), None);
    assert!(store.entries(&acme, 0, 10).unwrap().is_empty());
    assert_eq!(store.find_existing(&acme, &[("//test", "p0")]).unwrap(), vec![None]);
    // The holder at its epoch commits.
    store.commit(&fenced(grow(&acme, 0, 2), "node-a", &[(&acme, 1)])).unwrap();
    assert_eq!(size(&store, &acme), 2);
    // A fence must cover every log the commit writes.
    let other = tenant("other");
    store.create_tenant(&other, &TenantPolicy::default()).unwrap();
    let result = store.commit(&fenced(grow(&other, 0, 1), "node-a", &[(&acme, 1)]));
    assert!(matches!(result, Err(Error::InvalidArgument(_))), "{result:?}");
    // Once the lease expires, even its last holder's commits are refused.
    assert_eq!(cluster.acquire_lease(&acme, "node-a", TTL).unwrap(), Some(1));
    std::thread::sleep(TTL + Duration::from_millis(100));
    refused(fenced(grow(&acme, 2, 1), "node-a", &[(&acme, 1)]));
    // Taken over: the new holder commits, the old epoch stays refused.
    assert_eq!(cluster.acquire_lease(&acme, "node-b", Duration::from_secs(60)).unwrap(), Some(2));
    refused(fenced(grow(&acme, 2, 1), "node-a", &[(&acme, 1)]));
    store.commit(&fenced(grow(&acme, 2, 1), "node-b", &[(&acme, 2)])).unwrap();
    assert_eq!(size(&store, &acme), 3);
}

#[test]
fn a_lease_locked_by_a_commit_cannot_change_hands_and_lock_waits_are_bounded() {
    let (schema, _store, acme) = store_with_acme();
    let options = PgOptions { lock_timeout: Duration::from_millis(300), ..schema.options() };
    let store = PgStore::connect(&common::url(), options).unwrap();
    let cluster = cluster(&store);
    assert_eq!(cluster.acquire_lease(&acme, "node-a", Duration::from_millis(200)).unwrap(), Some(1));
    std::thread::sleep(Duration::from_millis(300));
    // Another session holds the lease row as a fenced commit does, while the lease expires.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let holder = runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&common::url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "SET search_path TO {}; BEGIN; SELECT * FROM leases FOR UPDATE",
                schema.name
            ))
            .await
            .unwrap();
        client
    });
    let started = std::time::Instant::now();
    let blocked = cluster.acquire_lease(&acme, "node-b", TTL);
    assert!(matches!(blocked, Err(Error::Unavailable(_))), "{blocked:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "the wait is bounded by lock_timeout");
    runtime.block_on(async { holder.batch_execute("ROLLBACK").await.unwrap() });
    assert_eq!(cluster.acquire_lease(&acme, "node-b", TTL).unwrap(), Some(2));
}

#[test]
fn inbox_answers_are_written_with_the_commit() {
    let (_schema, store, acme) = store_with_acme();
    let cluster = cluster(&store);
    let first = cluster.enqueue(&acme, b"one").unwrap();
    let second = cluster.enqueue(&acme, b"two").unwrap();
    let third = cluster.enqueue(&acme, &[0, 255]).unwrap();
    assert!(first < second && second < third);
    let acme_s = |ticket: u64, request: &[u8]| (acme.clone(), ticket, request.to_vec());
    assert_eq!(
        cluster.pending(std::slice::from_ref(&acme), 10).unwrap(),
        vec![acme_s(first, b"one"), acme_s(second, b"two"), acme_s(third, &[0, 255])]
    );
    assert_eq!(cluster.pending(std::slice::from_ref(&acme), 1).unwrap(), vec![acme_s(first, b"one")]);
    let other = tenant("other");
    store.create_tenant(&other, &TenantPolicy::default()).unwrap();
    assert!(cluster.pending(std::slice::from_ref(&other), 10).unwrap().is_empty());
    assert!(cluster.pending(&[], 10).unwrap().is_empty(), "a node leading nothing takes nothing");
    let late = cluster.enqueue(&other, b"late").unwrap();
    // Several tenants in one question, oldest first; only those asked for.
    assert_eq!(
        cluster.pending(&[other.clone(), acme.clone()], 10).unwrap(),
        vec![
            acme_s(first, b"one"),
            acme_s(second, b"two"),
            acme_s(third, &[0, 255]),
            (other.clone(), late, b"late".to_vec())
        ]
    );
    assert_eq!(cluster.pending(std::slice::from_ref(&other), 10).unwrap().len(), 1);
    assert!(cluster.take_answers(&[first, second, third, late]).unwrap().is_empty());
    assert_eq!(cluster.pending(&[acme.clone(), other.clone()], 10).unwrap().len(), 4, "unanswered stay");

    // Answered in the commit that makes the events durable.
    let mut commit = grow(&acme, 0, 1);
    commit.answered = vec![(first, b"stored at 0".to_vec())];
    store.commit(&commit).unwrap();
    assert_eq!(
        cluster.pending(std::slice::from_ref(&acme), 10).unwrap().iter().map(|p| p.1).collect::<Vec<_>>(),
        [second, third]
    );

    // A commit that fails (here on its compare-and-swap) answers nothing.
    let mut stale = grow(&acme, 0, 1);
    stale.answered = vec![(second, b"never".to_vec())];
    assert!(matches!(store.commit(&stale), Err(Error::Conflict(_))));
    assert_eq!(size(&store, &acme), 1);

    // Answers of a fenced commit too.
    cluster.acquire_lease(&acme, "node-a", Duration::from_secs(60)).unwrap();
    let mut commit = fenced(grow(&acme, 1, 1), "node-a", &[(&acme, 1)]);
    commit.answered = vec![(second, b"stored at 1".to_vec()), (third, Vec::new())];
    store.commit(&commit).unwrap();
    assert!(cluster.pending(std::slice::from_ref(&acme), 10).unwrap().is_empty());

    // An answer is taken once: taking it deletes its request; unanswered ones stay.
    assert_eq!(
        cluster.take_answers(&[third, first, late, 999_999]).unwrap(),
        vec![(first, b"stored at 0".to_vec()), (third, Vec::new())]
    );
    assert!(cluster.take_answers(&[first, third]).unwrap().is_empty(), "taken already");
    assert_eq!(cluster.take_answers(&[first, second]).unwrap(), vec![(second, b"stored at 1".to_vec())]);
    assert_eq!(
        cluster.pending(&[acme.clone(), other.clone()], 10).unwrap(),
        vec![(other.clone(), late, b"late".to_vec())]
    );
}

/// Answers no node took (its node gave up waiting, stopped, or its delete was lost) are swept
/// once old enough; younger answers, and requests not yet answered however old, stay.
#[test]
fn old_answers_nobody_took_are_swept() {
    let (schema, store, acme) = store_with_acme();
    let cluster = cluster(&store);
    let (old, young, waiting) = (
        cluster.enqueue(&acme, b"old").unwrap(),
        cluster.enqueue(&acme, b"young").unwrap(),
        cluster.enqueue(&acme, b"waiting").unwrap(),
    );
    let mut commit = grow(&acme, 0, 1);
    commit.answered = vec![(old, b"stored".to_vec()), (young, b"stored".to_vec())];
    store.commit(&commit).unwrap();
    schema.sql(&format!(
        "UPDATE inbox SET answered_at = now() - interval '2 hours' WHERE ticket = {old};
         UPDATE inbox SET created_at = now() - interval '2 hours' WHERE ticket = {waiting}"
    ));
    assert_eq!(cluster.sweep_answered(Duration::from_secs(3600)).unwrap(), 1);
    assert_eq!(
        cluster.pending(std::slice::from_ref(&acme), 10).unwrap(),
        vec![(acme.clone(), waiting, b"waiting".to_vec())]
    );
    assert_eq!(cluster.take_answers(&[old, young]).unwrap(), vec![(young, b"stored".to_vec())]);
    assert_eq!(cluster.sweep_answered(Duration::from_secs(3600)).unwrap(), 0);
}

#[test]
fn nodes_sealing_for_one_new_subject_agree_on_its_key() {
    let (schema, store, acme) = store_with_acme();
    let other_node = schema.open();
    for round in 0..20 {
        let subject = format!("subject-{round}");
        let barrier = Arc::new(Barrier::new(2));
        let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let threads: Vec<_> = [&store, &other_node]
                .into_iter()
                .enumerate()
                .map(|(node, store)| {
                    let (barrier, subject, acme) = (Arc::clone(&barrier), subject.clone(), acme.clone());
                    scope.spawn(move || {
                        barrier.wait();
                        cluster(store).ensure_data_key(&acme, &subject, &[node as u8; 40]).unwrap()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(keys[0], keys[1], "{subject}");
        assert_eq!(store.data_key(&acme, &subject).unwrap(), Some(keys[0].clone()));
    }
    // A key stored already is kept, by ensure_data_key and by a commit's data keys alike.
    assert_eq!(cluster(&store).ensure_data_key(&acme, "subject-0", b"late").unwrap().len(), 40);
    let mut commit = grow(&acme, 0, 1);
    commit.data_keys = vec![
        NewDataKey {
            tenant: acme.clone(),
            subject: "subject-1".into(),
            wrapped: b"late".to_vec(),
            stored: false,
        },
        NewDataKey {
            tenant: acme.clone(),
            subject: "fresh".into(),
            wrapped: b"fresh".to_vec(),
            stored: false,
        },
    ];
    store.commit(&commit).unwrap();
    assert_eq!(store.data_key(&acme, "subject-1").unwrap().unwrap().len(), 40);
    assert_eq!(store.data_key(&acme, "fresh").unwrap(), Some(b"fresh".to_vec()));
    // After erasure the next key wins.
    assert!(store.erase_data_key(&acme, "subject-2").unwrap());
    assert_eq!(cluster(&store).ensure_data_key(&acme, "subject-2", b"new").unwrap(), b"new");
}

#[test]
fn entries_land_in_the_partition_of_their_month() {
    let (schema, store, acme) = store_with_acme();
    let at = |t: &str| Micros::parse_rfc3339(t).unwrap();
    let (january, march) = (at("2026-01-31T23:59:59Z"), at("2026-03-01T00:00:00Z"));
    let commit = Commit {
        logs: vec![LogCommit {
            tenant: acme.clone(),
            old_size: TreeSize(0),
            new_size: TreeSize(3),
            entries: vec![entry(0, january), entry(1, march), entry(2, january)],
            tiles: Vec::new(),
            checkpoint: "three".into(),
            keep_checkpoint: true,
        }],
        ..Commit::default()
    };
    store.commit(&commit).unwrap();
    assert_eq!(
        store.entries(&acme, 0, 3).unwrap(),
        ["entry 0", "entry 1", "entry 2"].map(|e| e.as_bytes().to_vec())
    );
    let second = store.event_by_index(&acme, 1).unwrap().unwrap();
    assert_eq!((second.time, second.entry.as_slice()), (march, b"entry 1".as_slice()));
    let by_id = store.event_by_id(&acme, &commit.logs[0].entries[2].event_id).unwrap().unwrap();
    assert_eq!(by_id.index, 2);
    assert_eq!(store.scan_entries(&acme, 1, 10).unwrap().iter().map(|e| e.index).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        schema.sql(&format!(
            "SELECT c.relname FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
             JOIN pg_namespace n ON n.oid = p.relnamespace
             WHERE p.relname = 'events' AND n.nspname = '{}' ORDER BY 1",
            schema.name
        )),
        ["events_2026_01", "events_2026_03", "events_default"]
    );
    assert_eq!(schema.sql("SELECT count(*) FROM events_2026_01"), ["2"]);
    assert_eq!(schema.sql("SELECT count(*) FROM events_2026_03"), ["1"]);
    assert_eq!(schema.sql("SELECT count(*) FROM events_default"), ["0"]);
    // Another node (with its own cache of partitions) writes into the same months.
    let other_node = schema.open();
    let mut later = commit.clone();
    later.logs[0].old_size = TreeSize(3);
    later.logs[0].new_size = TreeSize(4);
    later.logs[0].entries = vec![NewEntry { producer_id: "p3".into(), event_id: [3; 16], ..entry(3, march) }];
    other_node.commit(&later).unwrap();
    assert_eq!(schema.sql("SELECT count(*) FROM events_2026_03"), ["2"]);
}

#[test]
fn a_duplicate_entry_fails_the_whole_commit() {
    let (_schema, store, acme) = store_with_acme();
    store.commit(&grow(&acme, 0, 2)).unwrap();
    // Index 2 with the idempotency key of index 0: a conflict, and the head stays.
    let mut commit = grow(&acme, 2, 1);
    commit.logs[0].entries[0].producer_id = "p0".into();
    let answer = store.commit(&commit);
    assert!(matches!(answer, Err(Error::Conflict(_))), "{answer:?}");
    assert_eq!(size(&store, &acme), 2);
    assert!(store.entries(&acme, 2, 3).unwrap().is_empty());
    assert_eq!(store.checkpoints(&acme).unwrap().len(), 1);
}

#[test]
fn reopening_applies_no_migration_twice() {
    let schema = TestSchema::new();
    let store = schema.open();
    store.put_state("kept", b"yes").unwrap();
    drop(store);
    let reopened = schema.open();
    assert_eq!(reopened.get_state("kept").unwrap(), Some(b"yes".to_vec()));
    assert_eq!(
        schema.sql("SELECT version || ' ' || name FROM schema_migrations ORDER BY version"),
        [
            "1 init",
            "2 idempotency",
            "3 streams",
            "4 insight_rollups",
            "5 insight_paths",
            "6 derived_leaf_tiles",
            "7 insight_hour_ids",
        ]
    );
}

#[test]
fn nodes_starting_at_once_migrate_one_new_schema_once() {
    let schema = TestSchema::new();
    let barrier = Barrier::new(4);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    PgStore::connect(&common::url(), schema.options())
                })
            })
            .collect();
        for thread in threads {
            let store = thread.join().unwrap().expect("every node connects");
            store.check_writable().unwrap();
        }
    });
    assert_eq!(schema.sql("SELECT count(*) FROM schema_migrations"), ["7"]);
}

#[test]
fn an_unreachable_server_is_unavailable_and_named() {
    let result = PgStore::connect("postgres://postgres@127.0.0.1:1/test", PgOptions::default());
    match result {
        Err(Error::Unavailable(message)) => assert!(message.contains("127.0.0.1:1"), "{message}"),
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("connected to port 1"),
    }
    assert!(matches!(
        PgStore::connect("postgres://[not a url", PgOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    let bad_schema = PgOptions { schema: Some("Robert'); DROP".into()), ..PgOptions::default() };
    assert!(matches!(PgStore::connect(&common::url(), bad_schema), Err(Error::InvalidArgument(_))));
}

#[test]
fn the_store_is_usable_from_inside_another_runtime() {
    let (_schema, store, acme) = store_with_acme();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let head = runtime.block_on(async move {
        tokio::spawn(async move {
            store.commit(&grow(&acme, 0, 1)).unwrap();
            let head = store.head(&acme).unwrap();
            // Dropped on a worker thread of this runtime: must not panic or block.
            drop(store);
            head
        })
        .await
        .unwrap()
    });
    assert_eq!(head.unwrap().size, TreeSize(1));
}

#[test]
fn dropping_the_store_closes_its_connections() {
    let (schema, _store, acme) = store_with_acme();
    let name = format!("evident-drop-{}", &schema.name["evident_test_".len()..]);
    let separator = if common::url().contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}application_name={name}", common::url());
    let store = Arc::new(PgStore::connect(&url, schema.options()).unwrap());
    // Several threads at once, so the pool opens several connections.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (store, acme) = (Arc::clone(&store), acme.clone());
            scope.spawn(move || {
                for _ in 0..20 {
                    store.head(&acme).unwrap();
                }
            });
        }
    });
    let sessions =
        || schema.sql(&format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'"));
    assert_ne!(sessions(), ["0"]);
    drop(store);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sessions() != ["0"] {
        assert!(std::time::Instant::now() < deadline, "sessions left open: {:?}", sessions());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn search_orders_by_event_time_across_partitions() {
    let (_schema, store, acme) = store_with_acme();
    let at = |t: &str| Micros::parse_rfc3339(t).unwrap();
    // Recorded in two months, with event times in another order than the indices.
    let recorded = [at("2026-01-10T00:00:00Z"), at("2026-02-10T00:00:00Z")];
    let times =
        ["2025-12-05T00:00:00Z", "2025-12-01T00:00:00Z", "2025-12-03T00:00:00Z", "2025-12-03T00:00:00Z"];
    let entries: Vec<NewEntry> = times
        .iter()
        .enumerate()
        .map(|(i, time)| NewEntry { time: at(time), ..entry(i as u64, recorded[i % 2]) })
        .collect();
    let commit = Commit {
        logs: vec![LogCommit {
            tenant: acme.clone(),
            old_size: TreeSize(0),
            new_size: TreeSize(4),
            entries,
            tiles: Vec::new(),
            checkpoint: "four".into(),
            keep_checkpoint: true,
        }],
        ..Commit::default()
    };
    store.commit(&commit).unwrap();
    let search = |filter: &Filter, order: Order, after: Option<Position>| -> Vec<u64> {
        store
            .search(&acme, &SearchPlan { filter, order, after, limit: 10 })
            .unwrap()
            .iter()
            .map(|e| e.index)
            .collect()
    };
    let by_target = Filter { target: Some(("customer".into(), "cust".into())), ..Filter::default() };
    for filter in [Filter::default(), by_target] {
        assert_eq!(search(&filter, Order::OldestFirst, None), [1, 2, 3, 0]);
        assert_eq!(search(&filter, Order::NewestFirst, None), [0, 3, 2, 1]);
        let middle = Position { time: at("2025-12-03T00:00:00Z"), index: 2 };
        assert_eq!(search(&filter, Order::OldestFirst, Some(middle)), [3, 0]);
        assert_eq!(search(&filter, Order::NewestFirst, Some(middle)), [1]);
    }
}

#[test]
fn nodes_creating_one_new_month_at_once_all_commit() {
    let schema = TestSchema::new();
    let nodes: Vec<PgStore> = (0..4).map(|_| schema.open()).collect();
    let tenants: Vec<TenantId> = (0..4).map(|i| tenant(&format!("t{i}"))).collect();
    for tenant in &tenants {
        nodes[0].create_tenant(tenant, &TenantPolicy::default()).unwrap();
    }
    let may = Micros::parse_rfc3339("2030-05-15T12:00:00Z").unwrap();
    let barrier = Barrier::new(4);
    std::thread::scope(|scope| {
        let threads: Vec<_> = nodes
            .iter()
            .zip(&tenants)
            .map(|(node, tenant)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut commit = grow(tenant, 0, 2);
                    for (i, entry) in commit.logs[0].entries.iter_mut().enumerate() {
                        entry.recorded_at = may;
                        entry.event_id[15] = tenant.as_str().as_bytes()[1];
                        entry.event_id[14] = i as u8;
                    }
                    barrier.wait();
                    node.commit(&commit)
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap().expect("every node commits");
        }
    });
    assert_eq!(schema.sql("SELECT count(*) FROM events_2030_05"), ["8"]);
    assert_eq!(schema.sql("SELECT count(*) FROM events_default"), ["0"]);
}

#[test]
fn a_server_that_does_not_answer_in_time_is_unavailable_and_the_store_recovers() {
    let (schema, _store, _acme) = store_with_acme();
    let options = PgOptions {
        operation_timeout: Duration::from_millis(300),
        lock_timeout: Duration::from_secs(30),
        ..schema.options()
    };
    let store = PgStore::connect(&common::url(), options).unwrap();
    store.put_state("s", b"before").unwrap();
    // Another session keeps every statement on service_state waiting.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let holder = runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&common::url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "SET search_path TO {}; BEGIN; LOCK TABLE service_state IN ACCESS EXCLUSIVE MODE",
                schema.name
            ))
            .await
            .unwrap();
        client
    });
    let started = std::time::Instant::now();
    let result = store.get_state("s");
    assert!(matches!(&result, Err(Error::Unavailable(m)) if m.contains("did not answer")), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    runtime.block_on(async { holder.batch_execute("ROLLBACK").await.unwrap() });
    // The store goes on working, on the same pool.
    for _ in 0..8 {
        assert_eq!(store.get_state("s").unwrap(), Some(b"before".to_vec()));
    }
    store.put_state("s", b"after").unwrap();
    assert_eq!(store.get_state("s").unwrap(), Some(b"after".to_vec()));
}
