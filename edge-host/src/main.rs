//! `wasmflo-edge`: placeholder until the runner lands.
fn main() {}
