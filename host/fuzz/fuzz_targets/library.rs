#![no_main]
//! Fuzz target: see `wasmflo_host::fuzzing::library`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmflo_host::fuzzing::library(data));
