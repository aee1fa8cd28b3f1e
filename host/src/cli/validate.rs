//! `wasmflo validate FILE`: check a graph's syntax and consistency without loading components.

use std::path::PathBuf;

use anyhow::Context;

use super::run::{load_graph, resolver};

/// Arguments of `wasmflo validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The graph: a `.fbp` file or a JSON graph.
    graph: PathBuf,
    /// A MsgFlo library file (default: `msgflo.json`, or a `package.json` with a `msgflo`
    /// key, beside the graph); with one, every process's component must resolve.
    #[arg(long, value_name = "FILE")]
    library: Option<PathBuf>,
}

/// Parses and validates the graph; prints `ok: N processes, M connections`.
pub(super) fn validate(args: ValidateArgs) -> anyhow::Result<()> {
    let graph = load_graph(&args.graph)?;
    let resolver = resolver(&args.graph, args.library.as_deref())?;
    if resolver.library().is_some() {
        let file = args.graph.display();
        for (name, process) in &graph.processes {
            resolver
                .lookup(&process.component)
                .with_context(|| match process.line {
                    Some(line) => format!("{file}:{line}: process '{name}'"),
                    None => format!("{file}: process '{name}'"),
                })?;
        }
    }
    println!(
        "ok: {} processes, {} connections",
        graph.processes.len(),
        graph.connections.len()
    );
    Ok(())
}
