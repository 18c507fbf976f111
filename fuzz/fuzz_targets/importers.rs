//! Every importer: the first byte picks the file name (and so the format guess), the rest is the
//! file; every record is read.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::importers(data));
