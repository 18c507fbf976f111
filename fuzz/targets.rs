//! The fuzz targets' bodies, shared by the libFuzzer binaries (`fuzz_targets/*.rs`) and the CI
//! test that replays `regressions/<target>/*` (`crates/evident-cli/tests/fuzz_regressions.rs`).
//! Each takes any bytes and must not panic.
#![allow(dead_code)]

use std::io::Read as _;

/// Event parsing and validation: any bytes are parsed (duplicate keys refused) and validated; no
/// input may panic.
pub fn event(data: &[u8]) {
    let policy = evident_core::event::TenantPolicy::default();
    if let Ok(value) = evident_core::validate::parse_json(data) {
        let _ = evident_core::validate::validate_event(&value, &policy);
    }
}

/// NDJSON and gzip ingestion as the server reads bodies: the first byte picks gzip or not, the
/// (bounded) decompressed body is read as a JSON array item by item and as NDJSON lines.
pub fn ingest_body(data: &[u8]) {
    const LIMIT: u64 = 1 << 20;
    let Some((first, rest)) = data.split_first() else { return };
    let body = if first & 1 == 1 {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(rest).take(LIMIT).read_to_end(&mut out).is_err() {
            return;
        }
        out
    } else {
        rest.to_vec()
    };
    let _ = evident_wire::json::for_each_item(&body, 100, 4096, &mut |item| {
        if let Ok(value) = item {
            let _ = evident_core::validate::validate_event(&value, &Default::default());
        }
    });
    for line in body.split(|b| *b == b'\n').take(100) {
        let _ = evident_core::validate::parse_json(line);
    }
}

/// The log's text formats: tile paths, entry bundles, vkeys, signed notes, checkpoints and
/// tlog-proof texts.
pub fn tlog_texts(data: &[u8]) {
    let _ = evident_tlog::parse_bundle(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = evident_tlog::TilePath::parse(text);
    let _ = evident_tlog::Checkpoint::parse(text);
    let _ = evident_tlog::TlogProof::parse(text);
    let _ = evident_tlog::Verifier::parse(text);
    let signer = evident_tlog::Signer::from_seed("fuzz.example/log", [7; 32]).expect("a signer");
    let _ = evident_tlog::open_note(text, &[signer.verifier()]);
}

/// The inbox codec: requests and answers other nodes queue, from any bytes.
pub fn inbox(data: &[u8]) {
    if let Ok(request) = evident_wire::inbox::Request::from_bytes(data) {
        let again = evident_wire::inbox::Request::from_bytes(&request.to_bytes()).expect("a round trip");
        assert_eq!(again.to_bytes(), request.to_bytes());
    }
    let _ = evident_wire::inbox::Answer::from_bytes(data);
}

/// Every importer: the first byte picks the file name (and so the format guess), the rest is the
/// file; every record is read.
pub fn importers(data: &[u8]) {
    const NAMES: [&str; 5] = ["events.ndjson", "trail.json", "audit.log", "export.json.gz", "rows.csv"];
    let Some((first, rest)) = data.split_first() else { return };
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join(NAMES[usize::from(*first) % NAMES.len()]);
    std::fs::write(&path, rest).expect("write");
    let Ok(input) = evident_import::open(&path, None) else { return };
    let options = evident_import::Options::new(evident_import::Pseudonyms::new([7; 32]));
    let Ok(mut events) = input.events(&options) else { return };
    for _ in 0..1000 {
        match events.next_record() {
            Ok(Some(_)) => {}
            _ => break,
        }
    }
}

/// The offline bundle verifier, on any `bundle.ndjson`.
pub fn bundle(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("bundle.ndjson"), data).expect("write");
    let signer = evident_tlog::Signer::from_seed("evident.localhost/default", [7; 32]).expect("a signer");
    let _ = evident_client::bundle::verify_bundle(dir.path(), &[signer.verifier()], None);
}
