//! The runtime side of the protocol: one graph, its live network, and every command.
//!
//! [`FbpRuntime`] is owned by one task (see [`super::server`]); clients' messages reach
//! it in order and each yields replies for the sender and broadcasts for every client.
//! Edits apply to the graph model and, while the network runs, to the network itself:
//! after the reply to `graph:addedge` the next message on the source port reaches the
//! new target. `network:start` starts the network from the model (if it is not running)
//! and sends the IIPs; `network:stop` drains and stops it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::Access;
use super::envelope::{Envelope, Outgoing};
use crate::component::{Loader, Resolver, components_dir};
use crate::graph::{Connection, Edge, Export, Graph, Iip, PortRef, Process};
use crate::message::Message;
use crate::network::{Network, Source};
use crate::transport::Transport;

/// Every capability this runtime has.
pub const CAPABILITIES: [&str; 9] = [
    "protocol:runtime",
    "protocol:graph",
    "protocol:component",
    "protocol:network",
    "network:status",
    "network:data",
    "network:control",
    "component:getsource",
    "component:setsource",
];

/// What a read-only client may use.
const READ_CAPABILITIES: [&str; 4] = [
    "network:status",
    "network:data",
    "component:getsource",
    "graph:readonly",
];

/// Where a reply goes.
#[derive(Debug, Clone, PartialEq)]
pub enum To {
    /// Only the client that asked.
    Sender(Outgoing),
    /// Every connected client.
    All(Outgoing),
}

/// Settings of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    /// Runtime id (UUID v4 form).
    pub id: String,
    /// Human-readable label.
    pub label: String,
}

/// One watched edge or exported outport: its tap queue and forwarding task.
#[derive(Debug)]
struct Tap {
    /// The process it watches, to drop its taps when it goes.
    process: String,
    topic: String,
    queue: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Largest packet shown whole in `network:data` / `runtime:packet`; larger ones are
/// summarised so one big message cannot fill every client's buffer.
const MAX_SHOWN: usize = 64 * 1024;

/// Forwards a tap's deliveries as protocol messages until told to stop, then acks what
/// is still queued so nothing stays pending.
fn spawn_tap(
    mut sub: crate::transport::Subscription,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    out: broadcast::Sender<String>,
    make: impl Fn(Value) -> Outgoing + Send + 'static,
) -> JoinHandle<()> {
    use futures_util::FutureExt;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                next = sub.next() => match next {
                    Some(d) => {
                        let data = data_of(&d.message);
                        d.ack();
                        let _ = out.send(make(data).to_text());
                    }
                    None => return,
                },
            }
        }
        while let Some(Some(d)) = sub.next().now_or_never() {
            d.ack();
        }
    })
}

/// The protocol runtime: a graph model, its network, the taps that watch it.
pub struct FbpRuntime {
    info: RuntimeInfo,
    graph_id: Option<String>,
    graph: Graph,
    network: Option<Network>,
    started: Option<SystemTime>,
    loader: Arc<Loader>,
    resolver: Resolver,
    transport: Arc<dyn Transport>,
    /// Edges clients asked to watch (`network:edges`); `None` watches every edge.
    watched: Option<Vec<(PortRef, PortRef)>>,
    edge_taps: HashMap<(PortRef, PortRef), Tap>,
    export_taps: HashMap<String, Tap>,
    broadcast: broadcast::Sender<String>,
    taps_made: u64,
    /// Makes tap queue names unique to this runtime (brokers are shared).
    tap_prefix: String,
    /// Forwards the network's faults as `network:processerror`.
    fault_task: Option<JoinHandle<()>>,
}

/// What the web view shows besides the protocol's own messages.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The graph's id, if one is loaded.
    pub graph_id: Option<String>,
    /// The graph model.
    pub graph: Graph,
    /// Whether `network:start` (or the command line) started it.
    pub started: bool,
    /// `{name, component, version}` of every running process.
    pub processes: Vec<Value>,
}

impl std::fmt::Debug for FbpRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FbpRuntime")
            .field("graph", &self.graph_id)
            .finish_non_exhaustive()
    }
}

type Reply = Vec<To>;

fn err(protocol: &str, message: impl Into<String>) -> Reply {
    vec![To::Sender(Outgoing::error(protocol, message))]
}

/// `{node, port}` of a payload field.
fn port_ref(v: Option<&Value>) -> Option<PortRef> {
    let obj = v?.as_object()?;
    Some(PortRef {
        process: obj.get("node")?.as_str()?.to_string(),
        port: obj.get("port")?.as_str()?.to_ascii_lowercase(),
        index: obj.get("index").and_then(Value::as_u64).map(|i| i as u32),
    })
}

fn ref_json(r: &PortRef) -> Value {
    let mut v = json!({"node": r.process, "port": r.port});
    if let Some(i) = r.index {
        v["index"] = json!(i);
    }
    v
}

/// MsgFlo's and noflo's edge id: `a() OUT -> IN b()`.
fn edge_id(src: &PortRef, tgt: &PortRef) -> String {
    format!(
        "{}() {} -> {} {}()",
        src.process,
        src.port.to_ascii_uppercase(),
        tgt.port.to_ascii_uppercase(),
        tgt.process
    )
}

/// A message's payload as protocol data: its JSON, else its text.
fn data_of(msg: &Message) -> Value {
    if msg.data.len() > MAX_SHOWN {
        return Value::String(format!("<{} bytes>", msg.data.len()));
    }
    serde_json::from_slice(&msg.data)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&msg.data).into_owned()))
}

fn merge_metadata(into: &mut Option<Map<String, Value>>, change: Option<&Value>) {
    let Some(Value::Object(change)) = change else {
        return;
    };
    let meta = into.get_or_insert_with(Map::new);
    for (k, v) in change {
        if v.is_null() {
            meta.remove(k);
        } else {
            meta.insert(k.clone(), v.clone());
        }
    }
}

impl FbpRuntime {
    /// A runtime with no graph yet, running networks on `transport`.
    pub fn new(
        info: RuntimeInfo,
        loader: Arc<Loader>,
        resolver: Resolver,
        transport: Arc<dyn Transport>,
        broadcast: broadcast::Sender<String>,
    ) -> Self {
        FbpRuntime {
            info,
            graph_id: None,
            graph: Graph::default(),
            network: None,
            started: None,
            loader,
            resolver,
            transport,
            watched: None,
            edge_taps: HashMap::new(),
            export_taps: HashMap::new(),
            broadcast,
            taps_made: 0,
            tap_prefix: crate::discovery::random_suffix(),
            fault_task: None,
        }
    }

    /// The graph and the processes now running, with their code versions.
    pub fn snapshot(&self) -> Snapshot {
        let processes = self
            .network
            .as_ref()
            .map(|n| {
                n.processes()
                    .into_iter()
                    .map(|p| {
                        let version = n
                            .swapper()
                            .running(&p.name)
                            .map_or_else(|| p.component.short_hash().to_string(), |c| {
                                c.short_hash().to_string()
                            });
                        json!({"name": p.name, "component": p.component.definition.component, "version": version})
                    })
                    .collect()
            })
            .unwrap_or_default();
        Snapshot {
            graph_id: self.graph_id.clone(),
            graph: self.graph.clone(),
            started: self.started.is_some(),
            processes,
        }
    }

    /// Reports the running network's dead-lettered messages as `network:processerror`.
    fn forward_faults(&mut self) {
        if let Some(t) = self.fault_task.take() {
            t.abort();
        }
        let Some(network) = &self.network else {
            return;
        };
        let mut faults = network.faults();
        let out = self.broadcast.clone();
        let graph = self.graph_id.clone().unwrap_or_default();
        self.fault_task = Some(tokio::spawn(async move {
            loop {
                match faults.recv().await {
                    // Reported as data on the component's `error` port already.
                    Ok(f) if f.on_error_port => {}
                    Ok(f) => {
                        let msg = Outgoing::new(
                            "network",
                            "processerror",
                            json!({"id": &*f.process, "error": f.reason, "graph": graph}),
                        );
                        let _ = out.send(msg.to_text());
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }));
    }

    /// Adopts a running network started from `graph` (`wasmflo run GRAPH --runtime`).
    pub async fn adopt(&mut self, id: &str, graph: Graph, network: Network) {
        self.graph_id = Some(id.to_string());
        self.graph = graph;
        self.network = Some(network);
        self.started = Some(SystemTime::now());
        self.forward_faults();
        self.retap().await;
    }

    /// Stops the network, if it runs.
    pub async fn shutdown(&mut self, grace: Duration) {
        if let Some(t) = self.fault_task.take() {
            t.abort();
        }
        self.untap_all().await;
        if let Some(n) = self.network.take() {
            n.shutdown(grace).await;
        }
    }

    /// Handles one client message.
    pub async fn handle(&mut self, msg: Envelope, access: Access) -> Reply {
        let protocol = msg.protocol.clone();
        if access == Access::None && !(protocol == "runtime" && msg.command == "getruntime") {
            return err(&protocol, "access denied: wrong or missing secret");
        }
        let writes = matches!(
            (protocol.as_str(), msg.command.as_str()),
            ("graph", _)
                | ("network", "start" | "stop" | "debug" | "persist")
                | ("runtime", "packet")
                | ("component", "source")
        );
        if writes && access != Access::Full {
            return err(&protocol, "access denied: this secret may only read");
        }
        let mut replies = match protocol.as_str() {
            "runtime" => self.runtime(&msg, access).await,
            "component" => self.component(&msg).await,
            "graph" => self.graph(&msg).await,
            "network" => self.network(&msg).await,
            "trace" => err("trace", "tracing is not supported by this runtime"),
            other => err(other, format!("unknown protocol '{other}'")),
        };
        if let Some(id) = &msg.request_id {
            for r in &mut replies {
                if let To::Sender(o) = r {
                    o.response_to = Some(id.clone());
                }
            }
        }
        replies
    }

    async fn runtime(&mut self, msg: &Envelope, access: Access) -> Reply {
        match msg.command.as_str() {
            "getruntime" => {
                let capabilities: Vec<&str> = match access {
                    Access::Full => CAPABILITIES.to_vec(),
                    Access::Read => READ_CAPABILITIES.to_vec(),
                    Access::None => Vec::new(),
                };
                let mut payload = json!({
                    "id": self.info.id,
                    "label": self.info.label,
                    "type": "wasmflo",
                    "version": "0.7",
                    "capabilities": capabilities,
                    "allCapabilities": CAPABILITIES,
                });
                if let Some(g) = &self.graph_id {
                    payload["graph"] = json!(g);
                }
                let mut out = vec![To::Sender(Outgoing::new("runtime", "runtime", payload))];
                if self.graph_id.is_some() && access != Access::None {
                    out.push(To::Sender(self.ports_message()));
                }
                out
            }
            "packet" => {
                let Some(port) = msg.str("port") else {
                    return err("runtime", "runtime:packet needs a 'port'");
                };
                let event = msg.str("event").unwrap_or("data");
                let graph = msg.str("graph").unwrap_or_default().to_string();
                if event == "data" {
                    let Some(export) = self.graph.inports.get(port).cloned() else {
                        return err("runtime", format!("no exported inport '{port}'"));
                    };
                    let Some(network) = &self.network else {
                        return err("runtime", "the network is not running");
                    };
                    let payload = msg.payload.get("payload").cloned().unwrap_or(Value::Null);
                    if let Err(e) = network
                        .send_initial(&export.process, &export.port, Message::json(&payload))
                        .await
                    {
                        return err("runtime", e.to_string());
                    }
                }
                let mut echo = json!({"port": port, "event": event, "graph": graph});
                if let Some(p) = msg.payload.get("payload") {
                    echo["payload"] = p.clone();
                }
                vec![To::Sender(Outgoing::new("runtime", "packetsent", echo))]
            }
            other => err("runtime", format!("unknown command 'runtime:{other}'")),
        }
    }

    fn ports_message(&self) -> Outgoing {
        let ports = |exports: &indexmap::IndexMap<String, Export>, inport: bool| -> Vec<Value> {
            exports
                .iter()
                .map(|(public, e)| {
                    let ty = self
                        .network
                        .as_ref()
                        .and_then(|n| n.process(&e.process))
                        .and_then(|p| {
                            let def = &p.component.definition;
                            if inport {
                                def.inport(&e.port).map(|d| d.type_.clone())
                            } else {
                                def.outport_index(&e.port)
                                    .map(|i| def.outports[i].type_.clone())
                            }
                        })
                        .unwrap_or_else(|| "any".into());
                    json!({"id": public, "type": ty, "addressable": false, "required": false})
                })
                .collect()
        };
        Outgoing::new(
            "runtime",
            "ports",
            json!({
                "graph": self.graph_id.clone().unwrap_or_default(),
                "inPorts": ports(&self.graph.inports, true),
                "outPorts": ports(&self.graph.outports, false),
            }),
        )
    }

    async fn component(&mut self, msg: &Envelope) -> Reply {
        match msg.command.as_str() {
            "list" => {
                let mut out = Vec::new();
                let dir = components_dir();
                let mut names = Vec::new();
                collect_components(&dir, &dir, &mut names);
                names.sort();
                for (name, path) in &names {
                    match self.loader.load(path) {
                        Ok(c) => out.push(To::Sender(Outgoing::new(
                            "component",
                            "component",
                            component_json(name, &c.definition),
                        ))),
                        Err(e) => tracing::warn!("component:list skips {name}: {e}"),
                    }
                }
                let count = out.len();
                out.push(To::Sender(Outgoing::new(
                    "component",
                    "componentsready",
                    json!(count),
                )));
                out
            }
            "getsource" => {
                let Some(name) = msg.str("name") else {
                    return err("component", "component:getsource needs a 'name'");
                };
                let graph_name = self.graph_id.clone().unwrap_or_default();
                if name == graph_name || name == "default/main" {
                    let code =
                        serde_json::to_string_pretty(&self.graph.to_json()).unwrap_or_default();
                    return vec![To::Sender(Outgoing::new(
                        "component",
                        "source",
                        json!({"name": name, "library": "default", "language": "json", "code": code}),
                    ))];
                }
                match crate::live::rebuild::source_of(name) {
                    Some((path, code)) => vec![To::Sender(Outgoing::new(
                        "component",
                        "source",
                        json!({
                            "name": name.rsplit('/').next().unwrap_or(name),
                            "library": name.split('/').next().unwrap_or(""),
                            "language": "rust",
                            "code": code,
                            "tests": "",
                            "path": path.display().to_string(),
                        }),
                    ))],
                    None => err(
                        "component",
                        format!("no source for component '{name}' in this workspace"),
                    ),
                }
            }
            "source" => self.set_source(msg).await,
            other => err("component", format!("unknown command 'component:{other}'")),
        }
    }

    /// `component:source`: new code for a component, built with the toolchain of its
    /// language and swapped in like `--watch` does (validated; a bad version is rejected
    /// and the running one stays).
    async fn set_source(&mut self, msg: &Envelope) -> Reply {
        let Some(name) = msg.str("name") else {
            return err("component", "component:source needs a 'name'");
        };
        let full = match msg.str("library") {
            Some(lib) if !lib.is_empty() && !name.contains('/') => format!("{lib}/{name}"),
            _ => name.to_string(),
        };
        let Some(code) = msg.str("code").map(str::to_string) else {
            return err("component", "component:source needs 'code'");
        };
        match msg.str("language").unwrap_or("") {
            "rust" | "rs" => {}
            other => {
                return err(
                    "component",
                    format!(
                        "no toolchain for language '{other}' in this runtime; it builds Rust components"
                    ),
                );
            }
        }
        if std::process::Command::new("cargo")
            .arg("--version")
            .output()
            .map_or(true, |o| !o.status.success())
        {
            return err(
                "component",
                "the Rust toolchain (cargo) is not installed here",
            );
        }
        let target = full.clone();
        let built =
            tokio::task::spawn_blocking(move || crate::live::rebuild::build_source(&target, &code))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
        let path = match built {
            Ok(p) => p,
            Err(e) => return err("component", e),
        };
        let loaded = match self.loader.load(&path) {
            Ok(c) => c,
            Err(e) => return err("component", format!("new version rejected: {e}")),
        };
        if let Some(n) = &self.network {
            n.swapper().offer(&path, &loaded);
        }
        vec![To::All(Outgoing::new(
            "component",
            "component",
            component_json(&full, &loaded.definition),
        ))]
    }

    /// Checks the `graph` field of a graph command.
    fn check_graph(&self, msg: &Envelope) -> Result<String, Reply> {
        match msg.str("graph") {
            None => Err(err("graph", "No graph specified")),
            Some(g) if Some(g) == self.graph_id.as_deref() => Ok(g.to_string()),
            Some(_) => Err(err("graph", "Requested graph not found")),
        }
    }

    fn echo(msg: &Envelope) -> To {
        To::All(Outgoing::new(
            "graph",
            &msg.command,
            Value::Object(msg.payload.clone()),
        ))
    }

    async fn graph(&mut self, msg: &Envelope) -> Reply {
        if msg.command == "clear" {
            let Some(id) = msg.str("id") else {
                return err("graph", "graph:clear needs an 'id'");
            };
            self.shutdown(Duration::from_secs(5)).await;
            self.graph = Graph::default();
            if let Some(name) = msg.str("name") {
                self.graph.properties.insert("name".into(), json!(name));
            }
            self.graph_id = Some(id.to_string());
            self.started = None;
            self.watched = None;
            let mut payload = Map::new();
            for key in ["id", "name", "library", "main", "icon", "description"] {
                if let Some(v) = msg.payload.get(key) {
                    payload.insert(key.into(), v.clone());
                }
            }
            return vec![To::All(Outgoing::new(
                "graph",
                "clear",
                Value::Object(payload),
            ))];
        }
        let graph = match self.check_graph(msg) {
            Ok(g) => g,
            Err(reply) => return reply,
        };
        match self.edit(msg, &graph).await {
            Ok(replies) => replies,
            Err(message) => err("graph", message),
        }
    }

    async fn edit(&mut self, msg: &Envelope, graph: &str) -> Result<Reply, String> {
        let p = &msg.payload;
        match msg.command.as_str() {
            "addnode" => {
                let id = msg.str("id").ok_or("graph:addnode needs an 'id'")?;
                let component = msg
                    .str("component")
                    .ok_or("graph:addnode needs a 'component'")?;
                if self.graph.processes.contains_key(id) {
                    return Err(format!("node '{id}' already exists"));
                }
                let process = Process {
                    component: component.to_string(),
                    metadata: p.get("metadata").and_then(Value::as_object).cloned(),
                    line: None,
                    metadata_first: false,
                };
                match self.network.as_mut() {
                    Some(n) => n
                        .add_process(id, &process, &self.loader, &self.resolver)
                        .await
                        .map_err(|e| e.to_string())?,
                    None => {
                        self.resolver
                            .resolve(component)
                            .map_err(|e| format!("node '{id}': {e}"))?;
                    }
                }
                self.graph.processes.insert(id.to_string(), process);
                Ok(vec![Self::echo(msg)])
            }
            "removenode" => {
                let id = msg.str("id").ok_or("graph:removenode needs an 'id'")?;
                if !self.graph.processes.contains_key(id) {
                    return Err(format!("no node '{id}'"));
                }
                let mut out = Vec::new();
                let mut kept = Vec::new();
                for c in std::mem::take(&mut self.graph.connections) {
                    match &c {
                        Connection::Edge(e) if e.src.process == id || e.tgt.process == id => {
                            self.drop_edge_tap(&e.src, &e.tgt).await;
                            out.push(To::All(Outgoing::new(
                                "graph",
                                "removeedge",
                                json!({"src": ref_json(&e.src), "tgt": ref_json(&e.tgt), "graph": graph}),
                            )));
                        }
                        Connection::Iip(i) if i.tgt.process == id => {
                            out.push(To::All(Outgoing::new(
                                "graph",
                                "removeinitial",
                                json!({"src": {"data": i.data}, "tgt": ref_json(&i.tgt), "graph": graph}),
                            )));
                        }
                        _ => kept.push(c),
                    }
                }
                self.graph.connections = kept;
                self.graph.inports.retain(|_, e| e.process != id);
                self.graph.outports.retain(|_, e| e.process != id);
                self.drop_taps_of(id).await;
                self.graph.processes.shift_remove(id);
                if let Some(n) = self.network.as_mut() {
                    n.remove_process(id).await.map_err(|e| e.to_string())?;
                }
                out.push(Self::echo(msg));
                Ok(out)
            }
            "renamenode" => {
                let from = msg.str("from").ok_or("graph:renamenode needs 'from'")?;
                let to = msg.str("to").ok_or("graph:renamenode needs 'to'")?;
                let Some(process) = self.graph.processes.get(from).cloned() else {
                    return Err(format!("no node '{from}'"));
                };
                if self.graph.processes.contains_key(to) {
                    return Err(format!("node '{to}' already exists"));
                }
                // A process's queues are named after it: renaming a live one restarts it
                // under the new name and rewires its edges.
                let edges = self.edges_of(from);
                if let Some(n) = self.network.as_mut() {
                    n.remove_process(from).await.map_err(|e| e.to_string())?;
                    n.add_process(to, &process, &self.loader, &self.resolver)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let rename = |r: &mut PortRef| {
                    if r.process == from {
                        r.process = to.to_string();
                    }
                };
                for c in &mut self.graph.connections {
                    match c {
                        Connection::Edge(e) => {
                            rename(&mut e.src);
                            rename(&mut e.tgt);
                        }
                        Connection::Iip(i) => rename(&mut i.tgt),
                    }
                }
                for e in self
                    .graph
                    .inports
                    .values_mut()
                    .chain(self.graph.outports.values_mut())
                {
                    if e.process == from {
                        e.process = to.to_string();
                    }
                }
                let index = self.graph.processes.get_index_of(from).unwrap_or(0);
                self.graph.processes.shift_remove(from);
                self.graph
                    .processes
                    .shift_insert(index, to.to_string(), process);
                if let Some(n) = self.network.as_mut() {
                    for (mut src, mut tgt) in edges {
                        rename(&mut src);
                        rename(&mut tgt);
                        n.connect((&src.process, &src.port), (&tgt.process, &tgt.port))
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
                self.retap().await;
                Ok(vec![Self::echo(msg)])
            }
            "changenode" => {
                let id = msg.str("id").ok_or("graph:changenode needs an 'id'")?;
                let Some(process) = self.graph.processes.get_mut(id) else {
                    return Err(format!("no node '{id}'"));
                };
                merge_metadata(&mut process.metadata, p.get("metadata"));
                let meta = process.metadata.clone().unwrap_or_default();
                Ok(vec![To::All(Outgoing::new(
                    "graph",
                    "changenode",
                    json!({"id": id, "metadata": meta, "graph": graph}),
                ))])
            }
            "addedge" => {
                let src = port_ref(p.get("src")).ok_or("graph:addedge needs src {node, port}")?;
                let tgt = port_ref(p.get("tgt")).ok_or("graph:addedge needs tgt {node, port}")?;
                for node in [&src.process, &tgt.process] {
                    if !self.graph.processes.contains_key(node) {
                        return Err(format!("no node '{node}'"));
                    }
                }
                if let Some(n) = self.network.as_mut() {
                    n.connect((&src.process, &src.port), (&tgt.process, &tgt.port))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                self.graph.connections.push(Connection::Edge(Edge {
                    src: src.clone(),
                    tgt: tgt.clone(),
                    metadata: p.get("metadata").and_then(Value::as_object).cloned(),
                    line: None,
                }));
                self.tap_edge(&src, &tgt).await;
                Ok(vec![Self::echo(msg)])
            }
            "removeedge" => {
                let src =
                    port_ref(p.get("src")).ok_or("graph:removeedge needs src {node, port}")?;
                let tgt =
                    port_ref(p.get("tgt")).ok_or("graph:removeedge needs tgt {node, port}")?;
                let before = self.graph.connections.len();
                self.graph
                    .connections
                    .retain(|c| !matches!(c, Connection::Edge(e) if e.src == src && e.tgt == tgt));
                if self.graph.connections.len() == before {
                    return Err(format!("no edge {}", edge_id(&src, &tgt)));
                }
                self.drop_edge_tap(&src, &tgt).await;
                if let Some(n) = self.network.as_mut() {
                    n.disconnect((&src.process, &src.port), (&tgt.process, &tgt.port))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(vec![Self::echo(msg)])
            }
            "changeedge" => {
                let src = port_ref(p.get("src")).ok_or("graph:changeedge needs src")?;
                let tgt = port_ref(p.get("tgt")).ok_or("graph:changeedge needs tgt")?;
                let edge = self.graph.connections.iter_mut().find_map(|c| match c {
                    Connection::Edge(e) if e.src == src && e.tgt == tgt => Some(e),
                    _ => None,
                });
                let Some(edge) = edge else {
                    return Err(format!("no edge {}", edge_id(&src, &tgt)));
                };
                merge_metadata(&mut edge.metadata, p.get("metadata"));
                Ok(vec![Self::echo(msg)])
            }
            "addinitial" => {
                let tgt =
                    port_ref(p.get("tgt")).ok_or("graph:addinitial needs tgt {node, port}")?;
                let data = p
                    .get("src")
                    .and_then(|s| s.get("data"))
                    .cloned()
                    .ok_or("graph:addinitial needs src {data}")?;
                if !self.graph.processes.contains_key(&tgt.process) {
                    return Err(format!("no node '{}'", tgt.process));
                }
                if self.started.is_some() {
                    self.send_iip(&tgt, &data, graph).await?;
                }
                self.graph.connections.push(Connection::Iip(Iip {
                    data,
                    tgt,
                    metadata: p.get("metadata").and_then(Value::as_object).cloned(),
                    line: None,
                }));
                Ok(vec![Self::echo(msg)])
            }
            "removeinitial" => {
                let tgt = port_ref(p.get("tgt")).ok_or("graph:removeinitial needs tgt")?;
                let mut out = Vec::new();
                self.graph.connections.retain(|c| match c {
                    Connection::Iip(i) if i.tgt == tgt => {
                        out.push(To::All(Outgoing::new(
                            "graph",
                            "removeinitial",
                            json!({"src": {"data": i.data}, "tgt": ref_json(&i.tgt), "graph": graph}),
                        )));
                        false
                    }
                    _ => true,
                });
                if out.is_empty() {
                    return Err(format!("no IIP to {} {}", tgt.port, tgt.process));
                }
                Ok(out)
            }
            "addinport" | "addoutport" => {
                let public = msg.str("public").ok_or("needs 'public'")?;
                let node = msg.str("node").ok_or("needs 'node'")?;
                let port = msg.str("port").ok_or("needs 'port'")?.to_ascii_lowercase();
                if !self.graph.processes.contains_key(node) {
                    return Err(format!("no node '{node}'"));
                }
                let export = Export {
                    process: node.to_string(),
                    port,
                    metadata: p.get("metadata").and_then(Value::as_object).cloned(),
                    line: None,
                };
                if msg.command == "addinport" {
                    self.graph.inports.insert(public.to_string(), export);
                } else {
                    self.graph.outports.insert(public.to_string(), export);
                    self.tap_export(public).await;
                }
                Ok(vec![Self::echo(msg), To::All(self.ports_message())])
            }
            "removeinport" | "removeoutport" => {
                let public = msg.str("public").ok_or("needs 'public'")?;
                let removed = if msg.command == "removeinport" {
                    self.graph.inports.shift_remove(public).is_some()
                } else {
                    self.drop_export_tap(public).await;
                    self.graph.outports.shift_remove(public).is_some()
                };
                if !removed {
                    return Err(format!("no exported port '{public}'"));
                }
                Ok(vec![Self::echo(msg), To::All(self.ports_message())])
            }
            "renameinport" | "renameoutport" => {
                let from = msg.str("from").ok_or("needs 'from'")?;
                let to = msg.str("to").ok_or("needs 'to'")?;
                let map = if msg.command == "renameinport" {
                    &mut self.graph.inports
                } else {
                    &mut self.graph.outports
                };
                let Some(index) = map.get_index_of(from) else {
                    return Err(format!("no exported port '{from}'"));
                };
                let Some((_, export)) = map.shift_remove_index(index) else {
                    return Err(format!("no exported port '{from}'"));
                };
                map.shift_insert(index, to.to_string(), export);
                if msg.command == "renameoutport" {
                    self.drop_export_tap(from).await;
                    self.tap_export(to).await;
                }
                Ok(vec![Self::echo(msg), To::All(self.ports_message())])
            }
            "addgroup" | "removegroup" | "renamegroup" | "changegroup" => Ok(vec![Self::echo(msg)]),
            other => Err(format!("unknown command 'graph:{other}'")),
        }
    }

    fn edges_of(&self, process: &str) -> Vec<(PortRef, PortRef)> {
        self.graph
            .connections
            .iter()
            .filter_map(|c| match c {
                Connection::Edge(e) if e.src.process == process || e.tgt.process == process => {
                    Some((e.src.clone(), e.tgt.clone()))
                }
                _ => None,
            })
            .collect()
    }

    async fn send_iip(&self, tgt: &PortRef, data: &Value, graph: &str) -> Result<(), String> {
        let Some(network) = &self.network else {
            return Ok(());
        };
        let _ = self.broadcast.send(
            Outgoing::new(
                "network",
                "data",
                json!({
                    "id": format!("DATA -> {} {}()", tgt.port.to_ascii_uppercase(), tgt.process),
                    "graph": graph,
                    "tgt": ref_json(tgt),
                    "data": data,
                }),
            )
            .to_text(),
        );
        network
            .send_initial(&tgt.process, &tgt.port, Message::json(data))
            .await
            .map_err(|e| e.to_string())
    }

    async fn network(&mut self, msg: &Envelope) -> Reply {
        let graph = match msg.str("graph") {
            Some(g) if Some(g) == self.graph_id.as_deref() => g.to_string(),
            Some(_) => return err("network", "Requested graph not found"),
            None => return err("network", "No graph specified"),
        };
        match msg.command.as_str() {
            "start" => {
                // IIPs go out once per start of the network, not on every request.
                let starting = self.network.is_none();
                if starting {
                    let mut without_iips = self.graph.clone();
                    without_iips
                        .connections
                        .retain(|c| matches!(c, Connection::Edge(_)));
                    let source = Source {
                        file: graph.clone(),
                    };
                    match Network::start(
                        &without_iips,
                        &source,
                        &self.loader,
                        &self.resolver,
                        self.transport.clone(),
                    )
                    .await
                    {
                        Ok(n) => self.network = Some(n),
                        Err(e) => return err("network", e.to_string()),
                    }
                    self.forward_faults();
                    self.retap().await;
                }
                self.started = Some(SystemTime::now());
                let _ = self.broadcast.send(
                    Outgoing::new(
                        "network",
                        "started",
                        json!({"graph": graph, "started": true, "running": true, "time": now_iso()}),
                    )
                    .to_text(),
                );
                let iips: Vec<(PortRef, Value)> = if starting {
                    self.graph
                        .connections
                        .iter()
                        .filter_map(|c| match c {
                            Connection::Iip(i) => Some((i.tgt.clone(), i.data.clone())),
                            Connection::Edge(_) => None,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                for (tgt, data) in iips {
                    if let Err(e) = self.send_iip(&tgt, &data, &graph).await {
                        return err("network", e);
                    }
                }
                Vec::new()
            }
            "stop" => {
                let uptime = self
                    .started
                    .and_then(|s| s.elapsed().ok())
                    .map_or(0.0, |d| d.as_secs_f64());
                self.shutdown(Duration::from_secs(5)).await;
                self.started = None;
                vec![To::All(Outgoing::new(
                    "network",
                    "stopped",
                    json!({"graph": graph, "started": false, "running": false, "time": now_iso(), "uptime": uptime}),
                ))]
            }
            "getstatus" => {
                // Running: messages are in flight right now.
                let running = self
                    .network
                    .as_ref()
                    .and_then(|n| n.transport().pending())
                    .is_some_and(|p| p > 0);
                vec![To::Sender(Outgoing::new(
                    "network",
                    "status",
                    json!({"graph": graph, "running": running, "started": self.started.is_some()}),
                ))]
            }
            "edges" => {
                let edges: Vec<(PortRef, PortRef)> = msg
                    .payload
                    .get("edges")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| Some((port_ref(e.get("src"))?, port_ref(e.get("tgt"))?)))
                    .collect();
                self.watched = Some(edges);
                self.retap().await;
                vec![To::Sender(Outgoing::new(
                    "network",
                    "edges",
                    Value::Object(msg.payload.clone()),
                ))]
            }
            "debug" => vec![To::Sender(Outgoing::new(
                "network",
                "debug",
                Value::Object(msg.payload.clone()),
            ))],
            other => err("network", format!("unknown command 'network:{other}'")),
        }
    }

    fn is_watched(&self, src: &PortRef, tgt: &PortRef) -> bool {
        match &self.watched {
            None => true,
            Some(list) => list.iter().any(|(s, t)| {
                s.process == src.process
                    && s.port == src.port
                    && t.process == tgt.process
                    && t.port == tgt.port
            }),
        }
    }

    /// Makes the taps match the graph, the watched edges and the exported outports.
    async fn retap(&mut self) {
        self.untap_all().await;
        let edges: Vec<(PortRef, PortRef)> = self
            .graph
            .connections
            .iter()
            .filter_map(|c| match c {
                Connection::Edge(e) => Some((e.src.clone(), e.tgt.clone())),
                Connection::Iip(_) => None,
            })
            .collect();
        for (src, tgt) in edges {
            self.tap_edge(&src, &tgt).await;
        }
        let publics: Vec<String> = self.graph.outports.keys().cloned().collect();
        for public in publics {
            self.tap_export(&public).await;
        }
    }

    async fn untap_all(&mut self) {
        let taps: Vec<Tap> = self
            .edge_taps
            .drain()
            .map(|(_, t)| t)
            .chain(self.export_taps.drain().map(|(_, t)| t))
            .collect();
        for t in taps {
            self.untap(t).await;
        }
    }

    /// Unbinds first (no new copies), then lets the task ack what is queued and end.
    async fn untap(&self, t: Tap) {
        if let Some(n) = &self.network
            && let Err(e) = n.untap(&t.topic, &t.queue).await
        {
            tracing::debug!("untap {}: {e}", t.queue);
        }
        let _ = t.stop.send(());
        let _ = t.task.await;
    }

    async fn drop_taps_of(&mut self, process: &str) {
        let edges: Vec<(PortRef, PortRef)> = self
            .edge_taps
            .iter()
            .filter(|(_, t)| t.process == process)
            .map(|(k, _)| k.clone())
            .collect();
        for key in edges {
            if let Some(t) = self.edge_taps.remove(&key) {
                self.untap(t).await;
            }
        }
        let exports: Vec<String> = self
            .export_taps
            .iter()
            .filter(|(_, t)| t.process == process)
            .map(|(k, _)| k.clone())
            .collect();
        for key in exports {
            if let Some(t) = self.export_taps.remove(&key) {
                self.untap(t).await;
            }
        }
    }

    async fn drop_export_tap(&mut self, public: &str) {
        if let Some(t) = self.export_taps.remove(public) {
            self.untap(t).await;
        }
    }

    async fn drop_edge_tap(&mut self, src: &PortRef, tgt: &PortRef) {
        if let Some(t) = self.edge_taps.remove(&(src.clone(), tgt.clone())) {
            self.untap(t).await;
        }
    }

    fn next_tap_queue(&mut self, kind: &str) -> String {
        self.taps_made += 1;
        format!("fbp.{kind}.{}.{}", self.tap_prefix, self.taps_made)
    }

    async fn tap_edge(&mut self, src: &PortRef, tgt: &PortRef) {
        if !self.is_watched(src, tgt) || self.edge_taps.contains_key(&(src.clone(), tgt.clone())) {
            return;
        }
        if self.network.is_none() {
            return;
        }
        let queue = self.next_tap_queue("tap");
        let Some(network) = &self.network else {
            return;
        };
        let (topic, sub) = match network.tap(&src.process, &src.port, &queue).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot watch edge {}: {e}", edge_id(src, tgt));
                return;
            }
        };
        let graph = self.graph_id.clone().unwrap_or_default();
        let (s, t) = (src.clone(), tgt.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = spawn_tap(sub, stopped, self.broadcast.clone(), move |data| {
            Outgoing::new(
                "network",
                "data",
                json!({"id": edge_id(&s, &t), "graph": graph, "src": ref_json(&s), "tgt": ref_json(&t), "data": data}),
            )
        });
        self.edge_taps.insert(
            (src.clone(), tgt.clone()),
            Tap {
                process: src.process.clone(),
                topic,
                queue,
                stop,
                task,
            },
        );
    }

    async fn tap_export(&mut self, public: &str) {
        self.drop_export_tap(public).await;
        let Some(export) = self.graph.outports.get(public).cloned() else {
            return;
        };
        if self.network.is_none() {
            return;
        }
        let queue = self.next_tap_queue("export");
        let Some(network) = &self.network else {
            return;
        };
        let (topic, sub) = match network.tap(&export.process, &export.port, &queue).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot watch exported outport '{public}': {e}");
                return;
            }
        };
        let graph = self.graph_id.clone().unwrap_or_default();
        let port = public.to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = spawn_tap(sub, stopped, self.broadcast.clone(), move |data| {
            Outgoing::new(
                "runtime",
                "packet",
                json!({"port": port, "event": "data", "payload": data, "graph": graph}),
            )
        });
        self.export_taps.insert(
            public.to_string(),
            Tap {
                process: export.process,
                topic,
                queue,
                stop,
                task,
            },
        );
    }
}

fn component_json(name: &str, def: &crate::runtime::Definition) -> Value {
    let port = |p: &crate::runtime::PortDef| {
        let mut v = json!({
            "id": p.id,
            "type": p.type_,
            "description": p.description,
            "addressable": false,
            "required": false,
        });
        // The schema's `schema` is a URI; inline schemas are left out.
        if let Some(s) = p.schema.as_deref().filter(|s| s.contains("://")) {
            v["schema"] = json!(s);
        }
        v
    };
    json!({
        "name": name,
        "description": def.label,
        "icon": def.icon,
        "subgraph": false,
        "inPorts": def.inports.iter().map(port).collect::<Vec<_>>(),
        "outPorts": def.outports.iter().map(port).collect::<Vec<_>>(),
    })
}

/// `ns/Name` and file of every `.wasm` under the components dir.
fn collect_components(
    root: &std::path::Path,
    dir: &std::path::Path,
    out: &mut Vec<(String, std::path::PathBuf)>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_components(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "wasm")
            && let Ok(rel) = path.with_extension("").strip_prefix(root)
        {
            {
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((name, path));
            }
        }
    }
}

/// The current time as RFC 3339 UTC, for `network:started`/`stopped`.
fn now_iso() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_788), (2026, 12, 1));
    }

    #[test]
    fn edge_ids_follow_msgflo() {
        let r = |p: &str, port: &str| PortRef {
            process: p.into(),
            port: port.into(),
            index: None,
        };
        assert_eq!(
            edge_id(&r("Hello", "out"), &r("World", "in")),
            "Hello() OUT -> IN World()"
        );
    }

    #[test]
    fn null_metadata_values_remove_keys() {
        let mut m = Some(Map::new());
        merge_metadata(&mut m, Some(&json!({"a": 1, "b": 2})));
        merge_metadata(&mut m, Some(&json!({"a": null})));
        assert_eq!(Value::Object(m.unwrap()), json!({"b": 2}));
    }
}
