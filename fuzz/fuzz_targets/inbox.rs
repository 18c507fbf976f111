//! The inbox codec: requests and answers other nodes queue, from any bytes.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::inbox(data));
