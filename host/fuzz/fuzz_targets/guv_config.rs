#![no_main]
//! Fuzz target: see `wasmflo_host::fuzzing::guv_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmflo_host::fuzzing::guv_config(data));
