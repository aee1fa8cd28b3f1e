//! The `wasmflo` command.

// Messages are allocated on one runtime worker and freed on another; glibc's malloc
// serialises that on its arena lock, mimalloc does not (see README, Benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    wasmflo_host::cli::main()
}
