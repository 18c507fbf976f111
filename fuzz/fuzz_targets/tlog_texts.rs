//! The log's text formats: tile paths, entry bundles, vkeys, signed notes, checkpoints and
//! tlog-proof texts.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::tlog_texts(data));
