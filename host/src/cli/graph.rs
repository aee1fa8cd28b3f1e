//! `wasmflo graph FILE`: print a graph converted to JSON (as `fbp FILE` does), to .fbp,
//! or drawn as Graphviz DOT or SVG.

use std::path::PathBuf;

use super::run::load_graph;

/// Arguments of `wasmflo graph`.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// The graph: a `.fbp` file or a JSON graph.
    graph: PathBuf,
    /// The output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    format: OutputFormat,
}

/// What `wasmflo graph` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    /// The JSON graph, indented by two spaces like the `fbp` command prints it.
    Json,
    /// .fbp text.
    Fbp,
    /// Graphviz DOT text, for `dot -Tpng`.
    Dot,
    /// A self-contained SVG picture, laid out without any external program.
    Svg,
}

/// Parses and validates the graph (no component is loaded) and prints it.
pub(super) fn graph(args: GraphArgs) -> anyhow::Result<()> {
    let graph = load_graph(&args.graph)?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&graph.to_json())?),
        OutputFormat::Fbp => print!("{}", graph.to_fbp()),
        OutputFormat::Dot => print!("{}", graph.to_dot()),
        OutputFormat::Svg => print!("{}", graph.to_svg()),
    }
    Ok(())
}
