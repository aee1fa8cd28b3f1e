#![no_main]
//! Fuzz target: see `wasmflo_host::fuzzing::json_graph`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmflo_host::fuzzing::json_graph(data));
