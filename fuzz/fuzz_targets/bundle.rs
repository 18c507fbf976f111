//! The offline bundle verifier, on any `bundle.ndjson`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::bundle(data));
