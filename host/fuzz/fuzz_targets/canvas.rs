#![no_main]
//! Fuzz target: see `wasmflo_host::fuzzing::canvas`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmflo_host::fuzzing::canvas(data));
