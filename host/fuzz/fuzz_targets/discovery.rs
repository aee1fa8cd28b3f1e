#![no_main]
//! Fuzz target: see `wasmflo_host::fuzzing::discovery`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmflo_host::fuzzing::discovery(data));
