//! Event parsing and validation: any bytes are parsed (duplicate keys refused) and validated; no
//! input may panic.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::event(data));
