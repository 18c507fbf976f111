//! Micro-benchmarks of evident-tlog, with the peer crates `tlog_tiles` and `ct-merkle` measured in
//! the same run on the same entries and tree sizes.
//!
//! Run `bench/tlog-core.sh` (which also runs `openssl speed` for the hashing baseline), or
//! `cargo bench -p evident-tlog --bench tlog`. bench/README.md says what each benchmark measures.
//!
//! Names: `evident_*` is this crate, `tlog_tiles_*` and `ct_merkle_*` the peers. Divan prints the
//! median time per call and, where a counter is set, the rate (bytes/s and items/s).

use std::sync::LazyLock;

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use evident_tlog::{
    Checkpoint, Hash, LeafIndex, MemoryTree, Signer, TreeSize, Verifier, leaf_hash, node_hash,
    verify_consistency, verify_inclusion,
};
use sha2::Sha256;

fn main() {
    divan::main();
}

/// Tree size of the append and proof benchmarks.
const N: u64 = 1_000_000;
/// Length of the entries appended (a small audit record's hash-sized payload plus some).
const ENTRY_LEN: usize = 64;
/// Length of the entries hashed in the hashing benchmark (`openssl speed -bytes 256`).
const HASH_LEN: usize = 256;
const ORIGIN: &str = "evident.example/bench";

/// Entry `i` of the benchmark log: distinct, cheap to make, the same for every crate.
fn entry(i: u64) -> [u8; ENTRY_LEN] {
    let mut bytes = [0x5a; ENTRY_LEN];
    bytes[..8].copy_from_slice(&i.to_le_bytes());
    bytes
}

/// SplitMix64: a deterministic source of indexes and sizes (no `rand` dependency).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// tlog_tiles keeps a tree as a flat list of "stored hashes" (Go's sumdb/tlog layout) read through
/// its `HashReader`; this is the in-memory store its own tests and Go's use.
#[derive(Default)]
struct TlogTilesStore(Vec<tlog_tiles::Hash>);

impl tlog_tiles::HashReader for TlogTilesStore {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
    }
}

type CtTree = MemoryBackedTree<Sha256, [u8; ENTRY_LEN]>;

fn ct_digest(hash: &Hash) -> ct_merkle::digest::Output<Sha256> {
    hash.0.into()
}

fn evident_tree(n: u64) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for i in 0..n {
        tree.append(&entry(i));
    }
    tree
}

fn tlog_tiles_store(n: u64) -> TlogTilesStore {
    let mut store = TlogTilesStore::default();
    for i in 0..n {
        let hashes = tlog_tiles::stored_hashes(i, &entry(i), &store).expect("in-memory store");
        store.0.extend(hashes);
    }
    store
}

fn ct_merkle_tree(n: u64) -> CtTree {
    let mut tree = CtTree::new();
    for i in 0..n {
        tree.push(entry(i));
    }
    tree
}

/// The three trees of `N` entries the proof benchmarks read, built once (outside any timing).
static EVIDENT: LazyLock<(MemoryTree, Hash)> = LazyLock::new(|| {
    let tree = evident_tree(N);
    let root = tree.root();
    (tree, root)
});
static TLOG_TILES: LazyLock<(TlogTilesStore, tlog_tiles::Hash)> = LazyLock::new(|| {
    let store = tlog_tiles_store(N);
    let root = tlog_tiles::tree_hash(N, &store).expect("in-memory store");
    assert_eq!(root.0, EVIDENT.1.0, "tlog_tiles and evident-tlog disagree on the root");
    (store, root)
});
static CT_MERKLE: LazyLock<(CtTree, ct_merkle::RootHash<Sha256>)> = LazyLock::new(|| {
    let tree = ct_merkle_tree(N);
    let root = tree.root();
    assert_eq!(root.as_bytes().as_slice(), EVIDENT.1.0, "ct-merkle and evident-tlog disagree on the root");
    (tree, root)
});
/// Leaf hashes of the `N` entries, for the appends that take a precomputed hash.
static LEAF_HASHES: LazyLock<Vec<Hash>> = LazyLock::new(|| (0..N).map(|i| leaf_hash(&entry(i))).collect());

/// SHA-256 of entries: the leaf hash `SHA-256(0x00 || entry)` of a 256-byte entry, which is as many
/// SHA-256 blocks (5) as `openssl speed -evp sha256 -bytes 256` hashes per call. The sample size is
/// fixed: left to itself divan may time these one call at a time after a cold first call.
#[divan::bench_group(sample_count = 200, sample_size = 1000)]
mod hash {
    use super::*;

    const ENTRY: [u8; HASH_LEN] = [0x5a; HASH_LEN];

    #[divan::bench(counters = [BytesCount::new(HASH_LEN), ItemsCount::new(1usize)])]
    fn evident_leaf_hash_256() -> Hash {
        leaf_hash(black_box(&ENTRY))
    }

    #[divan::bench(counters = [BytesCount::new(HASH_LEN), ItemsCount::new(1usize)])]
    fn tlog_tiles_record_hash_256() -> tlog_tiles::Hash {
        tlog_tiles::record_hash(black_box(&ENTRY))
    }

    /// The 64-byte entries of the append benchmarks (65-byte messages, 2 blocks).
    #[divan::bench(counters = [BytesCount::new(ENTRY_LEN), ItemsCount::new(1usize)])]
    fn evident_leaf_hash_64() -> Hash {
        leaf_hash(black_box(&[0x5a; ENTRY_LEN]))
    }

    #[divan::bench(counters = [BytesCount::new(ENTRY_LEN), ItemsCount::new(1usize)])]
    fn tlog_tiles_record_hash_64() -> tlog_tiles::Hash {
        tlog_tiles::record_hash(black_box(&[0x5a; ENTRY_LEN]))
    }

    /// The floor: one `sha2` (0.11, as evident-tlog uses) call over the 257 bytes `0x00 || entry`.
    #[divan::bench(counters = [BytesCount::new(HASH_LEN), ItemsCount::new(1usize)])]
    fn sha2_digest_257(bencher: Bencher) {
        let mut message = [0u8; HASH_LEN + 1];
        message[1..].copy_from_slice(&ENTRY);
        bencher.bench_local(|| -> [u8; 32] { <Sha256 as sha2::Digest>::digest(black_box(&message)).into() });
    }

    /// The interior-node hash (one 65-byte message, 2 blocks): the other half of every append.
    #[divan::bench(counters = [ItemsCount::new(1usize)])]
    fn evident_node_hash() -> Hash {
        node_hash(black_box(&Hash([1; 32])), black_box(&Hash([2; 32])))
    }

    #[divan::bench(counters = [ItemsCount::new(1usize)])]
    fn tlog_tiles_node_hash() -> tlog_tiles::Hash {
        tlog_tiles::node_hash(black_box(tlog_tiles::Hash([1; 32])), black_box(tlog_tiles::Hash([2; 32])))
    }
}

/// Building a tree of `N` 64-byte entries from empty, in memory: one iteration is `N` appends, so
/// the items/s rate is appends per second.
mod append {
    use super::*;

    #[divan::bench(sample_count = 5, sample_size = 1, counters = [ItemsCount::new(N)])]
    fn evident_append() -> MemoryTree {
        evident_tree(N)
    }

    /// `append_leaf_hash` with the leaf hashes computed beforehand: the tree's own cost.
    #[divan::bench(sample_count = 5, sample_size = 1, counters = [ItemsCount::new(N)])]
    fn evident_append_leaf_hash(bencher: Bencher) {
        let hashes = &*LEAF_HASHES;
        bencher.bench_local(|| {
            let mut tree = MemoryTree::new();
            for &hash in hashes {
                tree.append_leaf_hash(hash);
            }
            tree
        });
    }

    /// Go's sumdb way: `stored_hashes(n, entry, store)` then append its result to the store.
    #[divan::bench(sample_count = 5, sample_size = 1, counters = [ItemsCount::new(N)])]
    fn tlog_tiles_stored_hashes() -> TlogTilesStore {
        tlog_tiles_store(N)
    }

    #[divan::bench(sample_count = 5, sample_size = 1, counters = [ItemsCount::new(N)])]
    fn tlog_tiles_stored_hashes_for_record_hash(bencher: Bencher) {
        let hashes: Vec<tlog_tiles::Hash> = LEAF_HASHES.iter().map(|hash| tlog_tiles::Hash(hash.0)).collect();
        bencher.bench_local(|| {
            let mut store = TlogTilesStore::default();
            for (i, &hash) in hashes.iter().enumerate() {
                let new = tlog_tiles::stored_hashes_for_record_hash(i as u64, hash, &store)
                    .expect("in-memory store");
                store.0.extend(new);
            }
            store
        });
    }

    /// `MemoryBackedTree::push`, which also keeps the entries themselves (64 bytes each).
    #[divan::bench(sample_count = 5, sample_size = 1, counters = [ItemsCount::new(N)])]
    fn ct_merkle_push() -> CtTree {
        ct_merkle_tree(N)
    }
}

/// Inclusion proofs in the tree of `N` leaves, for a random leaf each call. Verification checks
/// a proof made beforehand against the tree's root; ct-merkle's `verify_inclusion` takes the
/// entry, not its hash, so it also hashes the 64-byte entry (one leaf hash, see `hash`). Each sample
/// is one call on a fresh random index: the median is over 1000 of them.
#[divan::bench_group(sample_count = 1000)]
mod inclusion {
    use super::*;

    #[divan::bench]
    fn evident_prove(bencher: Bencher) {
        let (tree, _) = &*EVIDENT;
        let mut rng = Rng(1);
        bencher
            .with_inputs(|| rng.below(N))
            .bench_local_values(|i| tree.inclusion_proof(LeafIndex(i), TreeSize(N)).expect("in range"));
    }

    #[divan::bench]
    fn evident_verify(bencher: Bencher) {
        let (tree, root) = &*EVIDENT;
        let mut rng = Rng(2);
        bencher
            .with_inputs(|| {
                let i = rng.below(N);
                (i, leaf_hash(&entry(i)), tree.inclusion_proof(LeafIndex(i), TreeSize(N)).expect("in range"))
            })
            .bench_local_refs(|(i, hash, proof)| {
                verify_inclusion(hash, LeafIndex(*i), TreeSize(N), proof, root).expect("valid proof")
            });
    }

    #[divan::bench]
    fn tlog_tiles_prove_record(bencher: Bencher) {
        let (store, _) = &*TLOG_TILES;
        let mut rng = Rng(1);
        bencher
            .with_inputs(|| rng.below(N))
            .bench_local_values(|i| tlog_tiles::prove_record(N, i, store).expect("in range"));
    }

    #[divan::bench]
    fn tlog_tiles_check_record(bencher: Bencher) {
        let (store, root) = &*TLOG_TILES;
        let mut rng = Rng(2);
        bencher
            .with_inputs(|| {
                let i = rng.below(N);
                let hash = tlog_tiles::record_hash(&entry(i));
                (i, hash, tlog_tiles::prove_record(N, i, store).expect("in range"))
            })
            .bench_local_refs(|(i, hash, proof)| {
                tlog_tiles::check_record(proof, N, *root, *i, *hash).expect("valid proof")
            });
    }

    #[divan::bench]
    fn ct_merkle_prove_inclusion(bencher: Bencher) {
        let (tree, _) = &*CT_MERKLE;
        let mut rng = Rng(1);
        bencher.with_inputs(|| rng.below(N) as usize).bench_local_values(|i| tree.prove_inclusion(i));
    }

    #[divan::bench]
    fn ct_merkle_verify_inclusion(bencher: Bencher) {
        let (tree, root) = &*CT_MERKLE;
        let mut rng = Rng(2);
        bencher
            .with_inputs(|| {
                let i = rng.below(N);
                (i, entry(i), tree.prove_inclusion(i as usize))
            })
            .bench_local_refs(|(i, entry, proof)| {
                root.verify_inclusion(entry, *i, proof).expect("valid proof")
            });
    }
}

/// Consistency proofs from a random older size (1 to `N - 1`) to the tree of `N` leaves (ct-merkle
/// only proves to its current size, so all three are asked the same). Verification is given both
/// roots, computed beforehand. The median is over 1000 random old sizes.
#[divan::bench_group(sample_count = 1000)]
mod consistency {
    use super::*;

    fn old_size(rng: &mut Rng) -> u64 {
        1 + rng.below(N - 1)
    }

    #[divan::bench]
    fn evident_prove(bencher: Bencher) {
        let (tree, _) = &*EVIDENT;
        let mut rng = Rng(3);
        bencher
            .with_inputs(|| old_size(&mut rng))
            .bench_local_values(|old| tree.consistency_proof(TreeSize(old), TreeSize(N)).expect("in range"));
    }

    #[divan::bench]
    fn evident_verify(bencher: Bencher) {
        let (tree, root) = &*EVIDENT;
        let mut rng = Rng(4);
        bencher
            .with_inputs(|| {
                let old = old_size(&mut rng);
                let proof = tree.consistency_proof(TreeSize(old), TreeSize(N)).expect("in range");
                (old, tree.root_at(TreeSize(old)).expect("in range"), proof)
            })
            .bench_local_refs(|(old, old_root, proof)| {
                verify_consistency(TreeSize(*old), TreeSize(N), old_root, root, proof).expect("valid proof")
            });
    }

    #[divan::bench]
    fn tlog_tiles_prove_tree(bencher: Bencher) {
        let (store, _) = &*TLOG_TILES;
        let mut rng = Rng(3);
        bencher
            .with_inputs(|| old_size(&mut rng))
            .bench_local_values(|old| tlog_tiles::prove_tree(N, old, store).expect("in range"));
    }

    #[divan::bench]
    fn tlog_tiles_check_tree(bencher: Bencher) {
        let (store, root) = &*TLOG_TILES;
        let mut rng = Rng(4);
        bencher
            .with_inputs(|| {
                let old = old_size(&mut rng);
                let old_root = tlog_tiles::tree_hash(old, store).expect("in range");
                (old, old_root, tlog_tiles::prove_tree(N, old, store).expect("in range"))
            })
            .bench_local_refs(|(old, old_root, proof)| {
                tlog_tiles::check_tree(proof, N, *root, *old, *old_root).expect("valid proof")
            });
    }

    #[divan::bench]
    fn ct_merkle_prove_consistency(bencher: Bencher) {
        let (tree, _) = &*CT_MERKLE;
        let mut rng = Rng(3);
        bencher
            .with_inputs(|| old_size(&mut rng))
            .bench_local_values(|old| tree.prove_consistency((N - old) as usize));
    }

    #[divan::bench]
    fn ct_merkle_verify_consistency(bencher: Bencher) {
        let (ours, _) = &*EVIDENT;
        let (tree, root) = &*CT_MERKLE;
        let mut rng = Rng(4);
        bencher
            .with_inputs(|| {
                let old = old_size(&mut rng);
                // ct-merkle cannot compute a past root itself; ours is the same (checked above).
                let old_root = ours.root_at(TreeSize(old)).expect("in range");
                let old_root = ct_merkle::RootHash::<Sha256>::new(ct_digest(&old_root), old);
                (old_root, tree.prove_consistency((N - old) as usize))
            })
            .bench_local_refs(|(old_root, proof)| {
                root.verify_consistency(old_root, proof).expect("valid proof")
            });
    }
}

/// Checkpoints of the tree of `N` leaves: signing with one Ed25519 key (body, signature, note
/// text) and opening with its verifier (note split, signature check, strict body parse). The raw
/// Ed25519 sign and verify of the same body are the floor; tlog_tiles has no signed notes, so only
/// its checkpoint text is compared (`text_*`).
#[divan::bench_group(sample_count = 1000)]
mod checkpoint {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    const SEED: [u8; 32] = [7; 32];

    fn signer() -> Signer {
        Signer::from_seed(ORIGIN, SEED).expect("valid key name")
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint::new(ORIGIN, TreeSize(N), Hash([0xab; 32]))
    }

    #[divan::bench]
    fn evident_sign(bencher: Bencher) {
        let signer = signer();
        let checkpoint = checkpoint();
        bencher.bench_local(|| black_box(&checkpoint).sign(&[&signer]).expect("valid checkpoint"));
    }

    #[divan::bench]
    fn evident_open(bencher: Bencher) {
        let signer = signer();
        let verifiers: Vec<Verifier> = vec![signer.verifier()];
        let signed = checkpoint().sign(&[&signer]).expect("valid checkpoint");
        bencher.bench_local(|| Checkpoint::open(black_box(&signed), &verifiers, ORIGIN).expect("valid note"));
    }

    #[divan::bench]
    fn ed25519_sign_body(bencher: Bencher) {
        let key = SigningKey::from_bytes(&SEED);
        let body = checkpoint().body();
        bencher.bench_local(|| key.sign(black_box(body.as_bytes())));
    }

    #[divan::bench]
    fn ed25519_verify_strict_body(bencher: Bencher) {
        let key = SigningKey::from_bytes(&SEED);
        let public = key.verifying_key();
        let body = checkpoint().body();
        let signature = key.sign(body.as_bytes());
        bencher.bench_local(|| public.verify_strict(black_box(body.as_bytes()), &signature).expect("valid"));
    }

    #[divan::bench]
    fn evident_text_body(bencher: Bencher) {
        let checkpoint = checkpoint();
        bencher.bench_local(|| black_box(&checkpoint).body());
    }

    #[divan::bench]
    fn evident_text_parse(bencher: Bencher) {
        let body = checkpoint().body();
        bencher.bench_local(|| Checkpoint::parse(black_box(&body)).expect("valid checkpoint"));
    }

    fn tlog_tiles_checkpoint() -> tlog_tiles::Checkpoint {
        tlog_tiles::Checkpoint::new(ORIGIN, N, tlog_tiles::Hash([0xab; 32]), "").expect("valid checkpoint")
    }

    #[divan::bench]
    fn tlog_tiles_text_to_bytes(bencher: Bencher) {
        let checkpoint = tlog_tiles_checkpoint();
        assert_eq!(checkpoint.to_bytes(), self::checkpoint().body().into_bytes());
        bencher.bench_local(|| black_box(&checkpoint).to_bytes());
    }

    #[divan::bench]
    fn tlog_tiles_text_from_bytes(bencher: Bencher) {
        let bytes = tlog_tiles_checkpoint().to_bytes();
        bencher
            .bench_local(|| tlog_tiles::Checkpoint::from_bytes(black_box(&bytes)).expect("valid checkpoint"));
    }
}
