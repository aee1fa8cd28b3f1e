//! The `wasmflo` command.

fn main() -> std::process::ExitCode {
    wasmflo_host::cli::main()
}
