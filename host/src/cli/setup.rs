//! `wasmflo setup GRAPH --broker URL [--participants] [--discover] [--forever]`: binds a
//! graph's edges on a broker and sends its IIPs, as `msgflo-setup` does.
//!
//! - Without `--discover` queues follow the convention `role.PORT`; with it, setup waits
//!   (up to `--timeout`) for every role's discovery message and uses its `queue` fields,
//!   so foreign participants (`role/port` queues, any topic) are bound as they are.
//!   Roles still missing then are reported; with `--forever` their edges are bound when
//!   they appear (late joiners), instead of failing the start.
//! - `--participants` also runs, in this process, every process whose component is a
//!   `.wasm` (as `wasmflo participant` would).
//! - On MQTT the bindings are forwards made by this process: keep it running with
//!   `--forever`, as with `msgflo-setup`.
//! - With `--discover --forever`, a role that stops re-sending discovery for
//!   `--gone-after` periods (default 3 × `MSGFLO_DISCOVERY_PERIOD`) is reported gone, and
//!   back when it reappears (MsgFlo never expires participants).
//!
//! - `msgflo/RoundRobin` (and `msgflo/PubSub`) nodes are bindings, not participants:
//!   `X OUT -> IN rr(msgflo/RoundRobin) OUT -> IN Y` is a roundrobin binding, and
//!   `rr DEADLETTER -> IN Z` sends Y's dead letters to Z.
//!
//! Prints each binding as `PUBSUB: src -> tgt` (or `ROUNDROBIN:`, `DEADLETTER:`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::EngineArgs;
use super::broker::{BrokerArgs, client_id, spawn_discovery, stop_signal};
use super::coordinate::{
    Coordinator, Listing, WatchOptions, conventional, edges, iips, is_binder, watch,
};
use super::run::{duration, load_graph, resolver};
use crate::discovery::Participant;
use crate::graph::Graph;
use crate::library::Resolved;
use crate::network::{Network, Source};

/// Arguments of `wasmflo setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// The graph: a `.fbp` file or a JSON graph.
    graph: PathBuf,
    #[command(flatten)]
    broker: BrokerArgs,
    /// Also run the graph's WASM processes in this process.
    #[arg(long)]
    participants: bool,
    /// Use the queues from the participants' discovery messages.
    #[arg(long)]
    discover: bool,
    /// Keep running (MQTT forwarding; late joiners with --discover) until Ctrl-C.
    #[arg(long)]
    forever: bool,
    /// How long --discover waits for every role before reporting the missing ones.
    #[arg(long, default_value = "30s", value_parser = duration)]
    timeout: Duration,
    /// Periods without discovery after which a role is reported gone.
    #[arg(long, default_value_t = 3.0)]
    gone_after: f64,
    /// A MsgFlo library file (as for `run`).
    #[arg(long, value_name = "FILE")]
    library: Option<PathBuf>,
}

pub(super) fn setup(engine: &EngineArgs, args: SetupArgs) -> anyhow::Result<()> {
    let graph = load_graph(&args.graph)?;
    let resolver = resolver(&args.graph, args.library.as_deref())?;
    let file = args.graph.display().to_string();
    let roles: HashMap<String, String> = graph
        .processes
        .iter()
        .filter(|(_, p)| !is_binder(&p.component))
        .map(|(name, p)| (name.clone(), p.component.clone()))
        .collect();
    let mut coordinator = Coordinator::new(
        edges(&graph),
        iips(&graph, |_| true),
        if args.discover { roles } else { HashMap::new() },
    );
    if !args.discover {
        for (name, process) in &graph.processes {
            if !is_binder(&process.component) {
                coordinator.know(&file, conventional(name, &graph, process))?;
            }
        }
    }
    // The processes this host runs with --participants: those with a .wasm component.
    let mut local = Graph::default();
    if args.participants {
        for (name, process) in &graph.processes {
            if let Ok(Resolved::Wasm(_)) = resolver.lookup(&process.component) {
                local.processes.insert(name.clone(), process.clone());
            }
        }
    }
    let loader = if local.processes.is_empty() {
        None
    } else {
        Some(engine.loader()?)
    };
    let stem = args.graph.file_stem().unwrap_or_default().to_string_lossy();
    let id = client_id(&format!("setup-{stem}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let transport = args.broker.required("setup", &id).await?;
        let mut fbp = if args.discover {
            Some(transport.discoveries().await?)
        } else {
            None
        };
        let mut _running = None;
        if let Some(loader) = &loader {
            let source = Source { file: file.clone() };
            let network = Network::start(&local, &source, loader, &resolver, transport.clone())
                .await
                .context("starting the graph's WASM participants")?;
            let roles = network
                .processes()
                .iter()
                .map(|p| Participant::new(&p.name, &p.component.definition))
                .collect();
            _running = Some((network, spawn_discovery(&transport, roles, |_| {})));
        }

        if let Some(fbp) = fbp.as_mut() {
            let deadline = tokio::time::Instant::now() + args.timeout;
            while !coordinator.missing().is_empty() {
                match tokio::time::timeout_at(deadline, fbp.next()).await {
                    Ok(Some(d)) => {
                        if let Ok(p) = Participant::parse(&d.message.data) {
                            coordinator.observe(p, tokio::time::Instant::now());
                        }
                        d.ack();
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let missing = coordinator.missing();
            if !missing.is_empty() {
                tracing::warn!(
                    "no discovery within {:?} from: {}{}",
                    args.timeout,
                    missing
                        .iter()
                        .map(|(role, _)| *role)
                        .collect::<Vec<_>>()
                        .join(", "),
                    if args.forever {
                        "; they are bound when they appear"
                    } else {
                        ""
                    }
                );
            }
        }
        coordinator.settle(&transport).await?;
        // Bindings made on AMQP stay after a one-shot setup exits: list them for
        // `wasmflo bindings` (MQTT forwards end with this process; nothing to list).
        if !args.forever && transport.kind() == "amqp" {
            Listing::once(&args.graph)
                .publish(&transport, coordinator.bindings())
                .await;
        }

        if args.forever {
            let period = crate::discovery::period_from_env();
            let options = WatchOptions {
                warn_after: None,
                gone_after: period.mul_f64(args.gone_after.max(1.0)),
            };
            let listing = Listing::new("setup", &args.graph);
            let watching = watch(
                coordinator,
                transport.clone(),
                fbp,
                listing.clone(),
                options,
            );
            tokio::select! {
                r = stop_signal() => r?,
                r = watching => r?,
            }
            listing.clear(&transport).await;
        }
        if let Some((network, discovery)) = _running.take() {
            drop(discovery);
            network.shutdown(Duration::from_secs(5)).await;
        }
        Ok(())
    })
}
