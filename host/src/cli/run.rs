//! `wasmflo run GRAPH`: run a graph in-process until Ctrl-C (or `--for`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::EngineArgs;
use super::broker::{AbortOnDrop, BrokerArgs, client_id, spawn_discovery};
use super::coordinate;
use super::scale::ScaleArgs;
use crate::component::Resolver;
use crate::discovery::Participant;
use crate::graph::{self, Format, Graph, ParseOptions};
use crate::library::Library;
use crate::live::{WatchOptions, watch_components};
use crate::network::{Network, Source};
use crate::protocol::{FbpRuntime, RuntimeInfo, ServerOptions, serve, serve_ui, spawn_runtime};
use crate::runtime::parse_duration;
use crate::transport::Transport;

/// Arguments of `wasmflo run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The graph: a `.fbp` file or a JSON graph (optional with `--runtime`: clients
    /// then build the graph over the protocol).
    graph: Option<PathBuf>,
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
    /// Live coding: swap in a component's new version when its file changes, and
    /// rebuild Rust components of this workspace when their sources change.
    #[arg(long)]
    watch: bool,
    /// Serve the FBP network protocol on this address (WebSocket, e.g. 127.0.0.1:3569;
    /// port 0 picks a free one). Prints `listening ws://HOST:PORT` on stdout.
    #[arg(long, value_name = "ADDR")]
    runtime: Option<String>,
    /// Protocol clients must send this secret to change anything.
    #[arg(long, requires = "runtime")]
    secret: Option<String>,
    /// Protocol clients sending this secret may watch but not change the graph.
    #[arg(long, requires = "runtime")]
    read_secret: Option<String>,
    /// Serve the live web view on this address (needs --runtime; port 0 picks a free
    /// one). Prints `ui http://HOST:PORT` on stdout.
    #[arg(long, value_name = "ADDR", requires = "runtime")]
    ui: Option<String>,
    #[command(flatten)]
    scale: ScaleArgs,
    #[command(flatten)]
    broker: BrokerArgs,
    /// With a broker: how long to wait for an external participant's discovery before
    /// warning (its edges are bound whenever it appears).
    #[arg(long, default_value = "30s", value_parser = duration, value_name = "DURATION")]
    external_timeout: Duration,
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
    let loaded = match &args.graph {
        Some(path) => Some((load_graph(path)?, resolver(path, args.library.as_deref())?)),
        None if args.runtime.is_some() => None,
        None => anyhow::bail!(
            "a graph file is required (or --runtime ADDR to build one over the protocol)"
        ),
    };
    let scaling = args.scale.config()?;
    if scaling.is_some() && loaded.is_none() {
        anyhow::bail!("--autoscale needs a graph file");
    }
    let loader = Arc::new(engine.loader()?);
    let source = Source {
        file: args
            .graph
            .as_ref()
            .map(|g| g.display().to_string())
            .unwrap_or_default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stem = args
            .graph
            .as_ref()
            .and_then(|g| g.file_stem())
            .map_or_else(|| "runtime".into(), |s| s.to_string_lossy().into_owned());
        let transport: Arc<dyn Transport> = args
            .broker
            .or_memory(&client_id(&format!("run-{stem}")))
            .await?;
        let mut network = None;
        let mut _discovery = None;
        let mut _coordinating = None;
        // The autoscaler and the metrics endpoint stop before the network does.
        let (stop_tasks, _) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        let mut watching = None;
        if let Some((graph, resolver)) = &loaded {
            // On a broker, processes without a .wasm are external participants and
            // binding nodes are bindings: a coordinator owns them.
            let split = if transport.kind() != "memory" {
                Some(coordinate::split(graph, resolver, &source)?)
            } else {
                None
            };
            let (local, coordinator, foreign) = match split {
                Some(s) => (
                    std::borrow::Cow::Owned(s.local),
                    Some(s.coordinator),
                    s.foreign,
                ),
                None => (std::borrow::Cow::Borrowed(graph), None, Vec::new()),
            };
            let fbp = match &coordinator {
                Some(c) if c.discovers() => Some(transport.discoveries().await?),
                _ => None,
            };
            let started =
                Network::start(&local, &source, &loader, resolver, transport.clone()).await?;
            tracing::info!(
                "running {} ({} processes); Ctrl-C stops",
                source.file,
                started.processes().len()
            );
            if args.watch {
                let opts = WatchOptions {
                    rebuild: true,
                    ..WatchOptions::default()
                };
                watching = Some(watch_components(
                    started.swapper().clone(),
                    loader.clone(),
                    opts,
                )?);
            }
            // On a broker every process is a MsgFlo participant and announces itself.
            if transport.kind() != "memory" {
                let roles: Vec<Participant> = started
                    .processes()
                    .iter()
                    .map(|p| Participant::new(&p.name, &p.component.definition))
                    .collect();
                if let (Some(mut c), Some(path)) = (coordinator, &args.graph) {
                    for p in &roles {
                        c.know(&source.file, p.clone())?;
                    }
                    c.bound_elsewhere(|role| local.processes.contains_key(role));
                    c.settle(&transport).await?;
                    let options = coordinate::WatchOptions {
                        warn_after: Some(args.external_timeout),
                        gone_after: crate::discovery::period_from_env().mul_f64(3.0),
                    };
                    let listing = coordinate::Listing::new("run", path);
                    let (t, l) = (transport.clone(), listing.clone());
                    let task = AbortOnDrop::spawn(async move {
                        if let Err(e) = coordinate::watch(c, t, fbp, l, options).await {
                            tracing::error!("coordinator stopped: {e:#}");
                        }
                    });
                    _coordinating = Some((task, listing));
                }
                // Foreign participants cannot announce themselves: we do it for them.
                let mut announced = roles;
                announced.extend(foreign);
                _discovery = Some(spawn_discovery(&transport, announced, |_| {}));
            }
            let ca_file = args.broker.ca_file();
            tasks.extend(
                args.scale
                    .start(scaling, &started, ca_file.as_deref(), &stop_tasks)
                    .await?,
            );
            network = Some(started);
        }
        let stop = async {
            match args.run_for {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    if let Err(e) = tokio::signal::ctrl_c().await {
                        tracing::error!("cannot wait for Ctrl-C: {e}");
                    }
                }
            }
            tracing::info!("stopping: draining in-flight messages");
        };
        if let Some(addr) = &args.runtime {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--runtime {addr}: cannot listen"))?;
            let local = listener.local_addr()?;
            println!("listening ws://{local}");
            std::io::Write::flush(&mut std::io::stdout())?;
            let resolver = match &loaded {
                Some((_, r)) => r.clone(),
                None => Resolver::new(crate::component::components_dir(), "."),
            };
            let (events, _) = tokio::sync::broadcast::channel(4096);
            let info = RuntimeInfo {
                id: runtime_id(),
                label: "wasmflo".into(),
            };
            let mut fbp = FbpRuntime::new(
                info,
                loader.clone(),
                resolver,
                transport.clone(),
                events.clone(),
            );
            if let (Some((graph, _)), Some(n)) = (&loaded, network.take()) {
                let id = graph
                    .properties
                    .get("name")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .or_else(|| {
                        args.graph
                            .as_ref()
                            .and_then(|p| p.file_stem())
                            .map(|s| s.to_string_lossy().into_owned())
                    })
                    .unwrap_or_else(|| "main".into());
                fbp.adopt(&id, graph.clone(), n).await;
            }
            let options = ServerOptions {
                secret: args.secret.clone(),
                read_secret: args.read_secret.clone(),
            };
            let (handle, owner) = spawn_runtime(fbp, events);
            let (stop_all, stopped) = tokio::sync::watch::channel(false);
            let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let mut servers = vec![tokio::spawn(serve(
                listener,
                handle.clone(),
                options,
                wait(stopped.clone()),
            ))];
            if let Some(ui_addr) = &args.ui {
                let ui = tokio::net::TcpListener::bind(ui_addr)
                    .await
                    .with_context(|| format!("--ui {ui_addr}: cannot listen"))?;
                println!("ui http://{}", ui.local_addr()?);
                std::io::Write::flush(&mut std::io::stdout())?;
                // The page watches: it gets the read secret, never the write secret.
                if args.secret.is_some() && args.read_secret.is_none() {
                    anyhow::bail!("--ui with --secret needs --read-secret for the page to use");
                }
                let secret = args.read_secret.clone();
                servers.push(tokio::spawn(serve_ui(
                    ui,
                    handle.clone(),
                    format!("ws://{local}"),
                    secret,
                    wait(stopped.clone()),
                )));
            }
            stop.await;
            unlist(_coordinating.take(), &transport).await;
            let _ = stop_tasks.send(true);
            for task in tasks {
                let _ = task.await;
            }
            let _ = stop_all.send(true);
            for s in servers {
                let _ = s.await;
            }
            drop(handle);
            let _ = owner.await;
            drop(watching);
            return Ok(());
        }
        stop.await;
        unlist(_coordinating.take(), &transport).await;
        drop(watching);
        let _ = stop_tasks.send(true);
        for task in tasks {
            let _ = task.await;
        }
        if let Some(network) = network {
            let reports = network.shutdown(args.grace).await;
            for r in reports {
                tracing::info!(
                    "{}: {} processed ({} in runs), {} failed, {} recreated, {} swaps ({} rejected)",
                    r.process,
                    r.stats.processed,
                    r.stats.batched,
                    r.stats.failed,
                    r.stats.recreated,
                    r.stats.swaps,
                    r.stats.rejected_swaps
                );
            }
        }
        Ok(())
    })
}

/// Stops coordinating and removes the coordinator's binding list from the broker.
async fn unlist(
    coordinating: Option<(AbortOnDrop, coordinate::Listing)>,
    transport: &Arc<dyn Transport>,
) {
    if let Some((task, listing)) = coordinating {
        drop(task);
        listing.clear(transport).await;
    }
}

/// A random UUID v4 string for `runtime:runtime`.
fn runtime_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = crate::component::hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
