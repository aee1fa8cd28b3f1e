#![no_main]
//! Fuzz target: see `wasmflo_edge::fuzzing::component`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmflo_edge::fuzzing::component(data));
