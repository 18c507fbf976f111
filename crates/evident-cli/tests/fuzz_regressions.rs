//! Fuzzing's findings stay fixed: every input kept in `fuzz/regressions/<target>/` (crashes
//! `bench/fuzz.sh` found) is replayed through the same target body, plus a few hostile seeds per
//! target. The bodies are shared with the fuzz binaries (`fuzz/targets.rs`).

#[path = "../../../fuzz/targets.rs"]
mod targets;

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 6] = [
    ("event", targets::event),
    ("ingest_body", targets::ingest_body),
    ("tlog_texts", targets::tlog_texts),
    ("inbox", targets::inbox),
    ("importers", targets::importers),
    ("bundle", targets::bundle),
];

/// Inputs every target gets besides its regressions: empty, truncated, deeply nested, huge
/// numbers, control characters, a gzip header without a body.
const SEEDS: &[&[u8]] = &[
    b"",
    b"\x00",
    b"[",
    b"{\"id\":",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{\"time\":\"9999-99-99T99:99:99Z\",\"id\":1e999999}",
    b"tile/0/x001/002.p/256",
    b"evident.localhost/default\n18446744073709551615\nAAAA\n\n\xe2\x80\x94 x y\n",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
    b"{\"v\":1,\"items\":[{\"rejected\":\"\"}]}",
];

#[test]
fn fuzz_regressions_and_seeds_do_not_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        for seed in SEEDS {
            target(seed);
        }
        let dir = root.join(name);
        assert!(dir.is_dir(), "{} is missing", dir.display());
        for entry in std::fs::read_dir(&dir).expect("a regressions directory") {
            let path = entry.expect("an entry").path();
            if path.file_name().is_some_and(|n| n != ".gitkeep") {
                target(&std::fs::read(&path).expect("read a regression"));
                replayed += 1;
            }
        }
    }
    eprintln!("replayed {replayed} regression inputs");
}
