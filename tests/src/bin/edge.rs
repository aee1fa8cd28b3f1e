//! The `wasmflo-edge` command under another name, so the tests package's integration
//! tests get `CARGO_BIN_EXE_wasmflo-edge-test-cli` (cargo only provides that for a
//! package's own bins).

fn main() -> std::process::ExitCode {
    wasmflo_edge::cli::main()
}
