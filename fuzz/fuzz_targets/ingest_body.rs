//! NDJSON and gzip ingestion as the server reads bodies: the first byte picks gzip or not, the
//! (bounded) decompressed body is read as a JSON array item by item and as NDJSON lines.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::ingest_body(data));
