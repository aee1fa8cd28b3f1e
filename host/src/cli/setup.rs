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

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::EngineArgs;
use super::broker::{BrokerArgs, client_id, spawn_discovery, stop_signal};
use super::run::{duration, load_graph, resolver};
use crate::discovery::Participant;
use crate::graph::{Connection, Graph};
use crate::library::Resolved;
use crate::message::Message;
use crate::network::{Network, Source};
use crate::transport::{Binding, BindingKind, Transport, queue_name};

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

/// An edge between two roles' ports.
#[derive(Debug, Clone)]
struct Edge {
    src: (String, String),
    tgt: (String, String),
    kind: BindingKind,
    /// The source is the dead-letter exchange of inport `src` (a RoundRobin's DEADLETTER).
    dead_letters: bool,
}

/// MsgFlo's binding components: graph nodes that are bindings, not participants.
const ROUND_ROBIN: &str = "msgflo/RoundRobin";
const PUB_SUB: &str = "msgflo/PubSub";

/// The graph's edges, with `msgflo/RoundRobin` and `msgflo/PubSub` nodes turned into
/// bindings as `msgflo-setup` does: `X OUT -> IN rr OUT -> IN Y` is a roundrobin binding
/// X.OUT -> Y.IN, and `rr DEADLETTER -> IN Z` binds Z.IN to Y.IN's dead letters.
fn edges(graph: &Graph) -> Vec<Edge> {
    let binder = |name: &str| {
        graph
            .processes
            .get(name)
            .map(|p| p.component.as_str())
            .filter(|c| *c == ROUND_ROBIN || *c == PUB_SUB)
    };
    let plain: Vec<&crate::graph::Edge> = graph
        .connections
        .iter()
        .filter_map(|c| match c {
            Connection::Edge(e) => Some(e),
            Connection::Iip(_) => None,
        })
        .collect();
    let port = |r: &crate::graph::PortRef| (r.process.clone(), r.port.clone());
    let mut out = Vec::new();
    for e in &plain {
        match (binder(&e.src.process), binder(&e.tgt.process)) {
            (None, None) => out.push(Edge {
                src: port(&e.src),
                tgt: port(&e.tgt),
                kind: BindingKind::PubSub,
                dead_letters: false,
            }),
            (None, Some(component)) => {
                let kind = if component == ROUND_ROBIN {
                    BindingKind::RoundRobin
                } else {
                    BindingKind::PubSub
                };
                let from_binder = plain.iter().filter(|f| f.src.process == e.tgt.process);
                for f in from_binder.clone() {
                    if f.src.port.eq_ignore_ascii_case("out") {
                        out.push(Edge {
                            src: port(&e.src),
                            tgt: port(&f.tgt),
                            kind,
                            dead_letters: false,
                        });
                    }
                }
                for f in from_binder.clone() {
                    if !f.src.port.eq_ignore_ascii_case("deadletter") {
                        continue;
                    }
                    for target in from_binder.clone() {
                        if target.src.port.eq_ignore_ascii_case("out") {
                            out.push(Edge {
                                src: port(&target.tgt),
                                tgt: port(&f.tgt),
                                kind: BindingKind::PubSub,
                                dead_letters: true,
                            });
                        }
                    }
                }
            }
            // Edges out of a binder are made from the edges into it.
            (Some(_), _) => {}
        }
    }
    out
}

/// The queue of a role's port: discovered, or by convention.
fn queue(
    discovered: &HashMap<String, Participant>,
    (role, port): &(String, String),
    inport: bool,
) -> Option<String> {
    match discovered.get(role) {
        Some(p) if inport => p.inport_queue(port).map(str::to_string),
        Some(p) => p.outport_queue(port).map(str::to_string),
        None => None,
    }
}

pub(super) fn setup(engine: &EngineArgs, args: SetupArgs) -> anyhow::Result<()> {
    let graph = load_graph(&args.graph)?;
    let resolver = resolver(&args.graph, args.library.as_deref())?;
    let edges = edges(&graph);
    let mut iips = Vec::new();
    for conn in &graph.connections {
        if let Connection::Iip(i) = conn {
            iips.push(((i.tgt.process.clone(), i.tgt.port.clone()), i.data.clone()));
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
            transport.declare_queue("fbp").await?;
            Some(transport.subscribe("fbp").await?)
        } else {
            None
        };
        let mut _running = None;
        if let Some(loader) = &loader {
            let source = Source {
                file: args.graph.display().to_string(),
            };
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

        let needed: HashSet<String> = graph
            .processes
            .iter()
            .filter(|(_, p)| p.component != ROUND_ROBIN && p.component != PUB_SUB)
            .map(|(name, _)| name.clone())
            .collect();
        let mut discovered: HashMap<String, Participant> = HashMap::new();
        let mut last_seen: HashMap<String, tokio::time::Instant> = HashMap::new();
        let mut gone: HashSet<String> = HashSet::new();
        let period = crate::discovery::period_from_env();
        let gone_after = period.mul_f64(args.gone_after.max(1.0));
        let mut liveness = tokio::time::interval(period.div_f64(2.0));
        if !args.discover {
            for (name, process) in &graph.processes {
                if needed.contains(name) {
                    discovered.insert(name.clone(), conventional(name, &graph, process));
                }
            }
        } else if let Some(fbp) = fbp.as_mut() {
            let deadline = tokio::time::Instant::now() + args.timeout;
            while !needed.iter().all(|r| discovered.contains_key(r)) {
                match tokio::time::timeout_at(deadline, fbp.next()).await {
                    Ok(Some(d)) => {
                        if let Ok(p) = Participant::parse(&d.message.data)
                            && needed.contains(&p.role)
                        {
                            last_seen.insert(p.role.clone(), tokio::time::Instant::now());
                            discovered.insert(p.role.clone(), p);
                        }
                        d.ack();
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let mut missing: Vec<&String> = needed
                .iter()
                .filter(|r| !discovered.contains_key(*r))
                .collect();
            missing.sort();
            if !missing.is_empty() {
                tracing::warn!(
                    "no discovery within {:?} from: {}{}",
                    args.timeout,
                    missing
                        .iter()
                        .map(|s| s.as_str())
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

        let mut bound = vec![false; edges.len()];
        bind_known(&transport, &edges, &discovered, &mut bound).await?;
        let mut sent = vec![false; iips.len()];
        send_iips(&transport, &iips, &discovered, &mut sent).await?;

        if args.forever {
            let stop = stop_signal();
            tokio::pin!(stop);
            loop {
                let next = async {
                    match fbp.as_mut() {
                        Some(f) => f.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = &mut stop => { r?; break; }
                    _ = liveness.tick(), if args.discover => {
                        let now = tokio::time::Instant::now();
                        for (role, seen) in &last_seen {
                            if now.duration_since(*seen) > gone_after && gone.insert(role.clone()) {
                                tracing::warn!(
                                    "participant {role} gone: no discovery for {gone_after:?}"
                                );
                                println!("GONE: {role}");
                            }
                        }
                    }
                    d = next => {
                        let Some(d) = d else { break };
                        if let Ok(p) = Participant::parse(&d.message.data)
                            && needed.contains(&p.role)
                        {
                            last_seen.insert(p.role.clone(), tokio::time::Instant::now());
                            if gone.remove(&p.role) {
                                tracing::info!("participant {} is back", p.role);
                            }
                            if !discovered.contains_key(&p.role) {
                                tracing::info!("participant {} appeared", p.role);
                                discovered.insert(p.role.clone(), p);
                                bind_known(&transport, &edges, &discovered, &mut bound).await?;
                                send_iips(&transport, &iips, &discovered, &mut sent).await?;
                            }
                        }
                        d.ack();
                    }
                }
            }
        }
        if let Some((network, discovery)) = _running.take() {
            drop(discovery);
            network.shutdown(Duration::from_secs(5)).await;
        }
        Ok(())
    })
}

/// A participant as the `role.PORT` convention names its queues, from the graph alone.
fn conventional(role: &str, graph: &Graph, process: &crate::graph::Process) -> Participant {
    let mut inports = Vec::new();
    let mut outports = Vec::new();
    let port = |id: &str| crate::discovery::Port {
        id: id.to_string(),
        type_: "any".into(),
        queue: queue_name(role, id),
        description: String::new(),
    };
    for conn in &graph.connections {
        match conn {
            Connection::Edge(e) if e.src.process == role => outports.push(port(&e.src.port)),
            _ => {}
        }
        let tgt = conn.tgt();
        if tgt.process == role {
            inports.push(port(&tgt.port));
        }
    }
    Participant {
        id: role.to_string(),
        role: role.to_string(),
        component: process.component.clone(),
        label: String::new(),
        icon: String::new(),
        inports,
        outports,
    }
}

async fn bind_known(
    transport: &Arc<dyn Transport>,
    edges: &[Edge],
    discovered: &HashMap<String, Participant>,
    bound: &mut [bool],
) -> anyhow::Result<()> {
    for (edge, done) in edges.iter().zip(bound.iter_mut()) {
        if *done {
            continue;
        }
        let src = if edge.dead_letters {
            queue(discovered, &edge.src, true).map(|q| format!("dead-{q}"))
        } else {
            queue(discovered, &edge.src, false)
        };
        let (Some(src), Some(tgt)) = (src, queue(discovered, &edge.tgt, true)) else {
            continue;
        };
        // On AMQP the binding needs both ends declared; on MQTT declaring a queue would
        // subscribe this process to a participant's inport.
        if transport.kind() == "amqp" {
            transport.declare_topic(&src).await?;
            transport.declare_queue(&tgt).await?;
        }
        transport
            .bind(&Binding {
                src: src.clone(),
                tgt: tgt.clone(),
                kind: edge.kind,
            })
            .await?;
        let label = match (edge.dead_letters, edge.kind) {
            (true, _) => "DEADLETTER",
            (false, BindingKind::RoundRobin) => "ROUNDROBIN",
            (false, BindingKind::PubSub) => "PUBSUB",
        };
        println!("{label}: {src} -> {tgt}");
        *done = true;
    }
    Ok(())
}

async fn send_iips(
    transport: &Arc<dyn Transport>,
    iips: &[((String, String), serde_json::Value)],
    discovered: &HashMap<String, Participant>,
    sent: &mut [bool],
) -> anyhow::Result<()> {
    for ((tgt, data), done) in iips.iter().zip(sent.iter_mut()) {
        if *done {
            continue;
        }
        let Some(queue) = queue(discovered, tgt, true) else {
            continue;
        };
        transport.send_to_queue(&queue, Message::json(data)).await?;
        *done = true;
    }
    Ok(())
}
