//! A running graph: resolves and loads each process's component, checks every edge
//! against the components' definitions, wires queues and topics on the transport,
//! delivers IIPs and parameters, and runs one participant per process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::component::{LoadError, LoadedComponent, Loader, ResolveError, Resolver};
use crate::graph::{Connection, Graph, Metadata, Process};
use crate::live::{EdgeEnd, Swapper, SwapperEntry};
use crate::message::Message;
use crate::metrics::Registry;
use crate::participant::{FaultEvent, Parameters, Phase, Report, SwapEvent, Update};
use crate::pool::{Bounds, Pool, PoolHandle, PoolSpec};
use crate::runtime::{LimitError, Limits};
use crate::transport::{Binding, BindingKind, Transport, TransportError, queue_name};

/// Why a graph could not start. Each error names the graph, line, process and port.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The component name or path did not resolve.
    #[error("{at}process '{process}': {source}")]
    Resolve {
        /// `file:line: ` prefix.
        at: String,
        /// The process.
        process: String,
        /// Why.
        #[source]
        source: ResolveError,
    },
    /// The component file could not be loaded.
    #[error("{at}process '{process}': {source}")]
    Load {
        /// `file:line: ` prefix.
        at: String,
        /// The process.
        process: String,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// An edge or IIP names a port the component does not declare.
    #[error("{0}")]
    NoSuchPort(Box<PortMismatch>),
    /// An edge names a process the graph does not declare.
    #[error("{at}no process '{process}' in the graph")]
    NoSuchProcess {
        /// `file:line: ` prefix.
        at: String,
        /// The name.
        process: String,
    },
    /// A limit in the process's metadata is malformed or too large.
    #[error("{at}process '{process}': {source}")]
    Limit {
        /// `file:line: ` prefix.
        at: String,
        /// The process.
        process: String,
        /// Why.
        #[source]
        source: LimitError,
    },
    /// A WASI grant cannot be given (a granted directory does not exist, ...).
    #[error("{at}process '{process}': {detail}")]
    Grant {
        /// `file:line: ` prefix.
        at: String,
        /// The process.
        process: String,
        /// Why.
        detail: String,
    },
    /// The transport failed while wiring.
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// A process of that name already runs.
    #[error("process '{process}' already exists")]
    Duplicate {
        /// The name.
        process: String,
    },
    /// A participant's task ended abnormally.
    #[error("process '{process}' failed: {detail}")]
    Task {
        /// The process.
        process: String,
        /// What the runtime said.
        detail: String,
    },
}

/// An edge or IIP naming a port its process's component does not declare.
#[derive(Debug, thiserror::Error)]
#[error(
    "{at}process '{process}' ({component}) has no {direction} '{port}'; its {direction}s: {known}"
)]
pub struct PortMismatch {
    /// `file:line: ` prefix.
    pub at: String,
    /// The process.
    pub process: String,
    /// Its component.
    pub component: String,
    /// `inport` or `outport`.
    pub direction: &'static str,
    /// The port named.
    pub port: String,
    /// The ports it has.
    pub known: String,
}

/// What a started network runs.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// Process name.
    pub name: String,
    /// The component file it was resolved to (the loaded component may have been
    /// shared with another file of the same content).
    pub path: std::path::PathBuf,
    /// The loaded component.
    pub component: Arc<LoadedComponent>,
    /// Its limits.
    pub limits: Limits,
    /// How many instances it may run (node metadata `min`, `max`).
    pub bounds: Bounds,
}

/// A running graph. Processes and edges can be added and removed while it runs
/// ([`Network::add_process`], [`Network::connect`], ...), which is how the FBP protocol
/// runtime edits a live system.
#[derive(Debug)]
pub struct Network {
    phase: Phase,
    nodes: Vec<Node>,
    transport: Arc<dyn Transport>,
    bindings: Vec<Binding>,
    swapper: Swapper,
    swap_events: tokio::sync::broadcast::Sender<SwapEvent>,
    faults: tokio::sync::broadcast::Sender<FaultEvent>,
    metrics: Arc<Registry>,
}

/// One running process: its instance pool.
#[derive(Debug)]
struct Node {
    info: ProcessInfo,
    pool: PoolHandle,
}

/// Where the graph came from, for error messages (`graphs/x.fbp`).
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The file name shown in errors.
    pub file: String,
}

impl Source {
    fn at(&self, line: Option<u32>) -> String {
        match (self.file.is_empty(), line) {
            (true, None) => String::new(),
            (true, Some(l)) => format!("line {l}: "),
            (false, None) => format!("{}: ", self.file),
            (false, Some(l)) => format!("{}:{l}: ", self.file),
        }
    }
}

impl Network {
    /// Loads every component, checks and wires the graph, and starts its participants.
    pub async fn start(
        graph: &Graph,
        source: &Source,
        loader: &Loader,
        resolver: &Resolver,
        transport: Arc<dyn Transport>,
    ) -> Result<Network, NetworkError> {
        let processes = load_processes(graph, source, loader, resolver)?;
        let by_name: HashMap<&str, &ProcessInfo> =
            processes.iter().map(|p| (p.name.as_str(), p)).collect();

        // Check every connection before touching the transport.
        let mut bindings = Vec::new();
        let mut edge_ends = Vec::new();
        let mut parameters: HashMap<String, Arc<Parameters>> = HashMap::new();
        let mut initial: HashMap<String, Vec<(String, Message)>> = HashMap::new();
        for conn in &graph.connections {
            let at = source.at(conn.line());
            let tgt = conn.tgt();
            let target =
                *by_name
                    .get(tgt.process.as_str())
                    .ok_or_else(|| NetworkError::NoSuchProcess {
                        at: at.clone(),
                        process: tgt.process.clone(),
                    })?;
            let inport = target
                .component
                .definition
                .inport(&tgt.port)
                .ok_or_else(|| no_such_port(&at, target, "inport", &tgt.port))?;
            match conn {
                Connection::Edge(edge) => {
                    let src = *by_name.get(edge.src.process.as_str()).ok_or_else(|| {
                        NetworkError::NoSuchProcess {
                            at: at.clone(),
                            process: edge.src.process.clone(),
                        }
                    })?;
                    let index = src.component.definition.outport_index(&edge.src.port);
                    let Some(index) = index else {
                        return Err(no_such_port(&at, src, "outport", &edge.src.port));
                    };
                    let out = &src.component.definition.outports[index];
                    edge_ends.push(EdgeEnd {
                        at: at.clone(),
                        src: (src.name.clone(), out.id.clone()),
                        tgt: (target.name.clone(), inport.id.clone()),
                    });
                    bindings.push(Binding {
                        src: queue_name(&src.name, &out.id),
                        tgt: queue_name(&target.name, &inport.id),
                        kind: BindingKind::PubSub,
                    });
                }
                Connection::Iip(iip) => {
                    let msg = Message::json(&iip.data);
                    if inport.parameter {
                        parameters
                            .entry(target.name.clone())
                            .or_default()
                            .set(&inport.id, msg);
                    } else {
                        initial
                            .entry(target.name.clone())
                            .or_default()
                            .push((inport.id.clone(), msg));
                    }
                }
            }
        }

        for p in &processes {
            for port in &p.component.definition.inports {
                transport
                    .declare_queue(&queue_name(&p.name, &port.id))
                    .await?;
            }
            for port in &p.component.definition.outports {
                transport
                    .declare_topic(&queue_name(&p.name, &port.id))
                    .await?;
            }
        }
        for b in &bindings {
            transport.bind(b).await?;
        }

        let (swap_events, _) = tokio::sync::broadcast::channel::<SwapEvent>(1024);
        let mut network = Network {
            phase: Phase::Running,
            nodes: Vec::new(),
            transport,
            bindings,
            swapper: Swapper::new(Vec::new(), edge_ends, swap_events.clone()),
            swap_events,
            faults: tokio::sync::broadcast::channel(1024).0,
            metrics: Arc::default(),
        };
        for p in processes {
            let init = initial.remove(p.name.as_str()).unwrap_or_default();
            let params = parameters.remove(p.name.as_str()).unwrap_or_default();
            network.spawn(p, init, params).await?;
        }
        Ok(network)
    }

    /// Starts the instance pool of `p` (its `min` instances): subscribes their inports,
    /// makes their publishers, registers the process for live swaps.
    async fn spawn(
        &mut self,
        p: ProcessInfo,
        initial: Vec<(String, Message)>,
        parameters: Arc<Parameters>,
    ) -> Result<(), NetworkError> {
        let (offer, updates) = watch::channel::<Update>(p.component.clone());
        self.swapper.add(SwapperEntry {
            process: p.name.clone(),
            path: p.path.clone(),
            component: p.component.clone(),
            offer,
        });
        let spec = PoolSpec {
            process: Arc::from(p.name.as_str()),
            limits: p.limits.clone(),
            transport: self.transport.clone(),
            updates,
            parameters,
            swap_events: Some(self.swap_events.clone()),
            faults: Some(self.faults.clone()),
            metrics: self.metrics.role(&p.name),
        };
        let pool = match Pool::start(spec, p.bounds, self.phase, initial).await {
            Ok(pool) => pool,
            Err(e) => {
                self.swapper.remove(&p.name);
                return Err(e.into());
            }
        };
        tracing::info!(
            process = %p.name,
            component = %p.component.definition.component,
            version = %p.component.short_hash(),
            instances = pool.len(),
            "participant started"
        );
        self.nodes.push(Node {
            info: p,
            pool: PoolHandle::new(pool),
        });
        Ok(())
    }

    /// Loads `component` and starts a participant for a new process `name`.
    pub async fn add_process(
        &mut self,
        name: &str,
        process: &Process,
        loader: &Loader,
        resolver: &Resolver,
    ) -> Result<(), NetworkError> {
        if self.process(name).is_some() {
            return Err(NetworkError::Duplicate {
                process: name.to_string(),
            });
        }
        let info = load_process(name, process, &Source::default(), loader, resolver)?;
        for port in &info.component.definition.inports {
            self.transport
                .declare_queue(&queue_name(name, &port.id))
                .await?;
        }
        for port in &info.component.definition.outports {
            self.transport
                .declare_topic(&queue_name(name, &port.id))
                .await?;
        }
        self.spawn(info, Vec::new(), Arc::default()).await
    }

    /// Stops process `name` after its current message and removes it with every
    /// binding to or from its ports. Messages still queued for it stay in its queues.
    pub async fn remove_process(&mut self, name: &str) -> Result<Report, NetworkError> {
        let index = self
            .nodes
            .iter()
            .position(|n| n.info.name == name)
            .ok_or_else(|| NetworkError::NoSuchProcess {
                at: String::new(),
                process: name.to_string(),
            })?;
        // `role.PORT`: the process is everything before the last dot (names may hold dots).
        let of = |queue: &str| queue.rsplit_once('.').map(|(p, _)| p.to_string());
        let (gone, kept): (Vec<Binding>, Vec<Binding>) = std::mem::take(&mut self.bindings)
            .into_iter()
            .partition(|b| {
                of(&b.src).as_deref() == Some(name) || of(&b.tgt).as_deref() == Some(name)
            });
        self.bindings = kept;
        for b in &gone {
            self.transport.unbind(b).await?;
        }
        let node = self.nodes.remove(index);
        self.swapper.remove(name);
        self.metrics.remove(name);
        node.pool.finish().await.ok_or_else(|| NetworkError::Task {
            process: name.to_string(),
            detail: "its pool was already stopped".into(),
        })
    }

    /// Connects outport `src` to inport `tgt` (process, port) while the network runs:
    /// the next message published on `src` reaches `tgt`.
    pub async fn connect(
        &mut self,
        src: (&str, &str),
        tgt: (&str, &str),
    ) -> Result<(), NetworkError> {
        let binding = self.binding(src, tgt)?;
        if !self.bindings.contains(&binding) {
            self.transport.bind(&binding).await?;
            self.bindings.push(binding);
        }
        Ok(())
    }

    /// Removes the edge from `src` to `tgt`; an absent edge is not an error.
    pub async fn disconnect(
        &mut self,
        src: (&str, &str),
        tgt: (&str, &str),
    ) -> Result<(), NetworkError> {
        let binding = self.binding(src, tgt)?;
        self.transport.unbind(&binding).await?;
        self.bindings.retain(|b| b != &binding);
        Ok(())
    }

    /// Sends `msg` to inport `port` of `process` as an IIP (a parameter port keeps it
    /// once the component accepts it).
    pub async fn send_initial(
        &self,
        process: &str,
        port: &str,
        msg: Message,
    ) -> Result<(), NetworkError> {
        let node = self.node(process)?;
        let def = self.definition(node);
        let inport = def
            .inport(port)
            .ok_or_else(|| missing_port("", process, &def, "inport", port))?;
        self.transport
            .send_to_queue(&queue_name(process, &inport.id), msg)
            .await?;
        Ok(())
    }

    /// A private queue `name` receiving a copy of every message published on outport
    /// `port` of `process` (to watch an edge or an exported outport). Returns the topic
    /// tapped, for [`Network::untap`], and the subscription.
    pub async fn tap(
        &self,
        process: &str,
        port: &str,
        name: &str,
    ) -> Result<(String, crate::transport::Subscription), NetworkError> {
        let node = self.node(process)?;
        let def = self.definition(node);
        let index = def
            .outport_index(port)
            .ok_or_else(|| missing_port("", process, &def, "outport", port))?;
        let topic = queue_name(process, &def.outports[index].id);
        self.transport.declare_queue(name).await?;
        self.transport
            .bind(&Binding {
                src: topic.clone(),
                tgt: name.to_string(),
                kind: BindingKind::PubSub,
            })
            .await?;
        Ok((topic, self.transport.subscribe(name).await?))
    }

    /// Removes a tap made by [`Network::tap`] (the process may be gone already).
    pub async fn untap(&self, topic: &str, name: &str) -> Result<(), NetworkError> {
        self.transport
            .unbind(&Binding {
                src: topic.to_string(),
                tgt: name.to_string(),
                kind: BindingKind::PubSub,
            })
            .await?;
        Ok(())
    }

    /// The process `name`, if it runs.
    pub fn process(&self, name: &str) -> Option<&ProcessInfo> {
        self.nodes
            .iter()
            .find(|n| n.info.name == name)
            .map(|n| &n.info)
    }

    /// The definition of the code process `name` runs now (after any live swap).
    fn definition(&self, node: &Node) -> Arc<crate::runtime::Definition> {
        self.swapper.running(&node.info.name).map_or_else(
            || node.info.component.definition.clone(),
            |c| c.definition.clone(),
        )
    }

    fn node(&self, name: &str) -> Result<&Node, NetworkError> {
        self.nodes
            .iter()
            .find(|n| n.info.name == name)
            .ok_or_else(|| NetworkError::NoSuchProcess {
                at: String::new(),
                process: name.to_string(),
            })
    }

    fn binding(&self, src: (&str, &str), tgt: (&str, &str)) -> Result<Binding, NetworkError> {
        let from = self.definition(self.node(src.0)?);
        let index = from
            .outport_index(src.1)
            .ok_or_else(|| missing_port("", src.0, &from, "outport", src.1))?;
        let to = self.definition(self.node(tgt.0)?);
        let inport = to
            .inport(tgt.1)
            .ok_or_else(|| missing_port("", tgt.0, &to, "inport", tgt.1))?;
        Ok(Binding {
            src: queue_name(src.0, &from.outports[index].id),
            tgt: queue_name(tgt.0, &inport.id),
            kind: BindingKind::PubSub,
        })
    }

    /// The handle that offers new code versions to this network's participants
    /// (`--watch`).
    pub fn swapper(&self) -> &Swapper {
        &self.swapper
    }

    /// Receives every message a participant dead-letters, with the reason.
    pub fn faults(&self) -> tokio::sync::broadcast::Receiver<FaultEvent> {
        self.faults.subscribe()
    }

    /// The processes this network runs, in start order.
    pub fn processes(&self) -> Vec<&ProcessInfo> {
        self.nodes.iter().map(|n| &n.info).collect()
    }

    /// The instance pool of process `name` (to resize it while the network runs).
    pub fn pool(&self, name: &str) -> Option<PoolHandle> {
        self.node(name).ok().map(|n| n.pool.clone())
    }

    /// Every process's counters (the `--metrics` endpoint renders these).
    pub fn metrics(&self) -> &Arc<Registry> {
        &self.metrics
    }

    /// The transport it runs on.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Stops timers, lets queued messages drain (up to `grace`), then stops every
    /// participant and returns their reports.
    pub async fn shutdown(mut self, grace: Duration) -> Vec<Report> {
        self.set_phase(Phase::Draining).await;
        let transport = self.transport.clone();
        let drained = async move {
            while transport.pending().is_some_and(|n| n > 0) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            let left = self.transport.pending().unwrap_or(0);
            tracing::warn!("shutdown grace of {grace:?} over with {left} messages undelivered");
        }
        self.set_phase(Phase::Stopped).await;
        // Unwire, so a network started later on the same transport starts from its own
        // graph only.
        for b in std::mem::take(&mut self.bindings) {
            if let Err(e) = self.transport.unbind(&b).await {
                tracing::warn!("unbinding {} -> {}: {e}", b.src, b.tgt);
            }
        }
        let mut reports = Vec::new();
        for node in self.nodes.drain(..) {
            reports.extend(node.pool.finish().await);
        }
        reports
    }

    async fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        for node in &self.nodes {
            node.pool.set_phase(phase).await;
        }
    }
}

fn no_such_port(at: &str, p: &ProcessInfo, direction: &'static str, port: &str) -> NetworkError {
    missing_port(at, &p.name, &p.component.definition, direction, port)
}

fn missing_port(
    at: &str,
    process: &str,
    def: &crate::runtime::Definition,
    direction: &'static str,
    port: &str,
) -> NetworkError {
    let ports = if direction == "inport" {
        &def.inports
    } else {
        &def.outports
    };
    let known = if ports.is_empty() {
        "none".to_string()
    } else {
        ports
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    NetworkError::NoSuchPort(Box::new(PortMismatch {
        at: at.to_string(),
        process: process.to_string(),
        component: def.component.clone(),
        direction,
        port: port.to_string(),
        known,
    }))
}

fn load_processes(
    graph: &Graph,
    source: &Source,
    loader: &Loader,
    resolver: &Resolver,
) -> Result<Vec<ProcessInfo>, NetworkError> {
    graph
        .processes
        .iter()
        .map(|(name, process)| load_process(name, process, source, loader, resolver))
        .collect()
}

fn load_process(
    name: &str,
    process: &Process,
    source: &Source,
    loader: &Loader,
    resolver: &Resolver,
) -> Result<ProcessInfo, NetworkError> {
    let name = &name.to_string();
    let at = source.at(process.line);
    let path = resolver
        .resolve(&process.component)
        .map_err(|source| NetworkError::Resolve {
            at: at.clone(),
            process: name.clone(),
            source,
        })?;
    let component = loader.load(&path).map_err(|source| NetworkError::Load {
        at: at.clone(),
        process: name.clone(),
        source,
    })?;
    let mut limits = Limits::default();
    let mut bounds = Bounds::default();
    let mut max_given = false;
    let metadata: Option<&Metadata> = process.metadata.as_ref();
    for (key, value) in metadata.into_iter().flatten() {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if matches!(key.as_str(), "min" | "max") {
            let n = text
                .trim()
                .parse::<u32>()
                .map_err(|_| NetworkError::Limit {
                    at: at.clone(),
                    process: name.clone(),
                    source: LimitError {
                        key: key.clone(),
                        value: text.clone(),
                        expected: "a whole number of instances",
                    },
                })?;
            if key == "min" {
                bounds.min = n;
            } else {
                bounds.max = n;
                max_given = true;
            }
            continue;
        }
        limits
            .apply(key, &text)
            .map_err(|source| NetworkError::Limit {
                at: at.clone(),
                process: name.clone(),
                source,
            })?;
    }
    if !max_given {
        bounds.max = bounds.max.max(bounds.min);
    }
    if bounds.max == 0 || bounds.min > bounds.max {
        return Err(NetworkError::Limit {
            at,
            process: name.clone(),
            source: LimitError {
                key: "max".into(),
                value: bounds.max.to_string(),
                expected: "at least 1 and at least min",
            },
        });
    }
    if limits.memory > loader.runtime().max_memory() {
        return Err(NetworkError::Limit {
            at,
            process: name.clone(),
            source: LimitError {
                key: "memory".into(),
                value: limits.memory.to_string(),
                expected: "at most the host's --max-memory",
            },
        });
    }
    if component.uses_wasi {
        // Fail at start, naming the process, rather than on every instantiation.
        limits
            .grants
            .context(&Default::default())
            .map_err(|detail| NetworkError::Grant {
                at: at.clone(),
                process: name.clone(),
                detail,
            })?;
        let withheld = limits.grants.withheld(&component.imports);
        if !withheld.is_empty() {
            let list: Vec<String> = withheld.iter().map(|(w, g)| format!("{w} ({g})")).collect();
            tracing::info!(
                "process '{name}' ({}): imports WASI it is not granted, whose calls are denied: {}",
                component.definition.component,
                list.join(", ")
            );
        }
    } else if limits.grants != Default::default() {
        tracing::warn!(
            "process '{name}' is granted WASI access but its component does not import WASI"
        );
    }
    Ok(ProcessInfo {
        name: name.clone(),
        path,
        component,
        limits,
        bounds,
    })
}
