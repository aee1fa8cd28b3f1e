//! `wasmflo validate FILE`: check a graph's syntax and consistency without loading components.

use std::path::PathBuf;

use super::run::load_graph;

/// Arguments of `wasmflo validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The graph: a `.fbp` file or a JSON graph.
    graph: PathBuf,
}

/// Parses and validates the graph; prints `ok: N processes, M connections`.
pub(super) fn validate(args: ValidateArgs) -> anyhow::Result<()> {
    let graph = load_graph(&args.graph)?;
    println!(
        "ok: {} processes, {} connections",
        graph.processes.len(),
        graph.connections.len()
    );
    Ok(())
}
