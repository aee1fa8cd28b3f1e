//! `wasmflo run GRAPH`: run a graph in-process until Ctrl-C (or `--for`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::EngineArgs;
use super::broker::{BrokerArgs, client_id, spawn_discovery};
use crate::component::Resolver;
use crate::discovery::Participant;
use crate::graph::{self, Format, Graph, ParseOptions};
use crate::library::Library;
use crate::network::{Network, Source};
use crate::runtime::parse_duration;

/// Arguments of `wasmflo run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The graph: a `.fbp` file or a JSON graph.
    graph: PathBuf,
    /// Stop after this long (e.g. `5s`) instead of waiting for Ctrl-C.
    #[arg(long = "for", value_parser = duration)]
    run_for: Option<Duration>,
    /// A MsgFlo library file (default: `msgflo.json`, or a `package.json` with a `msgflo`
    /// key, beside the graph).
    #[arg(long, value_name = "FILE")]
    library: Option<PathBuf>,
    /// How long shutdown waits for queued messages to drain.
    #[arg(long, default_value = "5s", value_parser = duration)]
    grace: Duration,
    #[command(flatten)]
    broker: BrokerArgs,
}

pub(super) fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| format!("'{text}' is not a duration such as 5s"))
}

/// Reads, parses and validates a graph file (the format from the extension, else the
/// content). Errors name the file, then the line and column (syntax) or the process.
pub(super) fn load_graph(path: &Path) -> anyhow::Result<Graph> {
    let src = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read graph", path.display()))?;
    let format = Format::detect(Some(path), &src);
    graph::parse(&src, format, &ParseOptions::default())
        .map_err(|e| anyhow::Error::new(e).context(path.display().to_string()))
}

/// The resolver for `graph`: the `--library` file, else one found beside the graph.
pub(super) fn resolver(graph: &Path, library: Option<&Path>) -> anyhow::Result<Resolver> {
    let resolver = Resolver::for_graph(graph);
    let library = match library {
        Some(file) => Some(Library::load(file)?),
        None => Library::beside(graph.parent().unwrap_or(Path::new("")))?,
    };
    Ok(match library {
        Some(library) => {
            tracing::debug!("component library {}", library.file().display());
            resolver.with_library(library)
        }
        None => resolver,
    })
}

pub(super) fn run(engine: &EngineArgs, args: RunArgs) -> anyhow::Result<()> {
    let graph = load_graph(&args.graph)?;
    let resolver = resolver(&args.graph, args.library.as_deref())?;
    let loader = engine.loader()?;
    let source = Source {
        file: args.graph.display().to_string(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stem = args.graph.file_stem().unwrap_or_default().to_string_lossy();
        let transport = args
            .broker
            .or_memory(&client_id(&format!("run-{stem}")))
            .await?;
        let network =
            Network::start(&graph, &source, &loader, &resolver, transport.clone()).await?;
        // On a broker every process is a MsgFlo participant and announces itself.
        let _discovery = (transport.kind() != "memory").then(|| {
            let roles = network
                .processes()
                .iter()
                .map(|p| Participant::new(&p.name, &p.component.definition))
                .collect();
            spawn_discovery(&transport, roles, |_| {})
        });
        tracing::info!(
            "running {} ({} processes); Ctrl-C stops",
            source.file,
            network.processes().len()
        );
        match args.run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => tokio::signal::ctrl_c()
                .await
                .context("cannot wait for Ctrl-C")?,
        }
        tracing::info!("stopping: draining in-flight messages");
        let reports = network.shutdown(args.grace).await;
        for r in reports {
            tracing::info!(
                "{}: {} processed, {} failed, {} recreated",
                r.process,
                r.stats.processed,
                r.stats.failed,
                r.stats.recreated
            );
        }
        Ok(())
    })
}
