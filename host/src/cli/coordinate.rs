//! The coordinator of a graph on a broker, shared by `setup` and `run --broker`: binds
//! the edges and sends the IIPs that involve participants this process knows only from
//! their discovery messages (external, foreign and late ones), and notices roles that
//! stop announcing.
//!
//! - A discovery message's `queue` fields are the truth: foreign participants with
//!   `role/port` queues (msgflo-python) are bound as they announce themselves.
//! - `msgflo/RoundRobin` and `msgflo/PubSub` nodes are bindings, not participants, as in
//!   `msgflo-setup`: `X OUT -> IN rr OUT -> IN Y` is a roundrobin binding X.OUT -> Y.IN,
//!   and `rr DEADLETTER -> IN Z` binds Z.IN to Y.IN's dead letters.
//! - Each binding made is printed on stdout as `PUBSUB: src -> tgt` (or `ROUNDROBIN:`,
//!   `DEADLETTER:`), a role gone quiet as `GONE: ROLE`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::time::Instant;

use crate::bindings::{BindingList, Bound, BoundKind};
use crate::component::{ResolveError, Resolver};
use crate::discovery::{Participant, Port};
use crate::graph::{Connection, Graph, Process};
use crate::library::Resolved;
use crate::message::Message;
use crate::network::Source;
use crate::transport::{Binding, BindingKind, Subscription, Transport, queue_name};

/// MsgFlo's binding components: graph nodes that are bindings, not participants.
pub(super) const ROUND_ROBIN: &str = "msgflo/RoundRobin";
pub(super) const PUB_SUB: &str = "msgflo/PubSub";

/// Whether `component` is one of MsgFlo's binding nodes.
pub(super) fn is_binder(component: &str) -> bool {
    component == ROUND_ROBIN || component == PUB_SUB
}

/// An edge between two roles' ports.
#[derive(Debug, Clone)]
pub(super) struct Edge {
    src: (String, String),
    tgt: (String, String),
    kind: BindingKind,
    /// The source is the dead-letter exchange of inport `src` (a RoundRobin's DEADLETTER).
    dead_letters: bool,
    /// A plain graph edge (no binding node in between).
    direct: bool,
}

/// The graph's edges, with binding nodes turned into bindings (see the module docs).
pub(super) fn edges(graph: &Graph) -> Vec<Edge> {
    let binder = |name: &str| {
        graph
            .processes
            .get(name)
            .map(|p| p.component.as_str())
            .filter(|c| is_binder(c))
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
                direct: true,
            }),
            (None, Some(component)) => {
                let kind = if component == ROUND_ROBIN {
                    BindingKind::RoundRobin
                } else {
                    BindingKind::PubSub
                };
                let from_binder = || plain.iter().filter(|f| f.src.process == e.tgt.process);
                let outs = || from_binder().filter(|f| f.src.port.eq_ignore_ascii_case("out"));
                for f in outs() {
                    out.push(Edge {
                        src: port(&e.src),
                        tgt: port(&f.tgt),
                        kind,
                        dead_letters: false,
                        direct: false,
                    });
                }
                let dead = from_binder().filter(|f| f.src.port.eq_ignore_ascii_case("deadletter"));
                for f in dead {
                    for target in outs() {
                        out.push(Edge {
                            src: port(&target.tgt),
                            tgt: port(&f.tgt),
                            kind: BindingKind::PubSub,
                            dead_letters: true,
                            direct: false,
                        });
                    }
                }
            }
            // Edges out of a binder are made from the edges into it.
            (Some(_), _) => {}
        }
    }
    out
}

/// The IIPs of `graph` whose target satisfies `keep`.
pub(super) fn iips(graph: &Graph, keep: impl Fn(&str) -> bool) -> Vec<Iip> {
    graph
        .connections
        .iter()
        .filter_map(|c| match c {
            Connection::Iip(i) if keep(&i.tgt.process) => Some(Iip {
                tgt: (i.tgt.process.clone(), i.tgt.port.clone()),
                data: i.data.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// An initial information packet for a role's inport.
#[derive(Debug, Clone)]
pub(super) struct Iip {
    tgt: (String, String),
    data: Value,
}

/// What a discovery message changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// A role waited for announced itself for the first time.
    New,
    /// A role reported gone announced itself again.
    Back,
    /// A known role re-announced itself, or a role not in the graph.
    Nothing,
}

/// The bindings and IIPs a coordinator owes, and what it knows of each role.
#[derive(Debug)]
pub(super) struct Coordinator {
    edges: Vec<Edge>,
    /// What each edge was bound as, once it was.
    bound: Vec<Option<Bound>>,
    iips: Vec<Iip>,
    sent: Vec<bool>,
    /// Roles waited for by discovery, with their components (for warnings).
    needed: HashMap<String, String>,
    known: HashMap<String, Participant>,
    last_seen: HashMap<String, Instant>,
    gone: HashSet<String>,
}

impl Coordinator {
    /// Owes `edges` and `iips`; `needed` (role -> component) are the roles whose queues
    /// come from discovery.
    pub(super) fn new(edges: Vec<Edge>, iips: Vec<Iip>, needed: HashMap<String, String>) -> Self {
        Coordinator {
            bound: vec![None; edges.len()],
            edges,
            sent: vec![false; iips.len()],
            iips,
            needed,
            known: HashMap::new(),
            last_seen: HashMap::new(),
            gone: HashSet::new(),
        }
    }

    /// Whether some role's queues come from discovery.
    pub(super) fn discovers(&self) -> bool {
        !self.needed.is_empty()
    }

    /// Knows `p` without discovery (a process of this host, or the `role.PORT`
    /// convention); fails naming the process and port when an edge names a port it lacks.
    pub(super) fn know(&mut self, file: &str, p: Participant) -> anyhow::Result<()> {
        for e in &self.edges {
            let (end, direction, found) = if e.src.0 == p.role {
                let found = if e.dead_letters {
                    p.inport_queue(&e.src.1)
                } else {
                    p.outport_queue(&e.src.1)
                };
                (
                    &e.src,
                    if e.dead_letters { "inport" } else { "outport" },
                    found,
                )
            } else if e.tgt.0 == p.role {
                (&e.tgt, "inport", p.inport_queue(&e.tgt.1))
            } else {
                continue;
            };
            if found.is_none() {
                bail!(
                    "{file}: process '{}' ({}) has no {direction} '{}'",
                    p.role,
                    p.component,
                    end.1
                );
            }
        }
        self.known.insert(p.role.clone(), p);
        Ok(())
    }

    /// Marks the plain edges between roles that are `here` as bound by someone else (the
    /// network of `run`, which binds them itself).
    pub(super) fn bound_elsewhere(&mut self, here: impl Fn(&str) -> bool) {
        for i in 0..self.edges.len() {
            let e = &self.edges[i];
            if !e.direct || !here(&e.src.0) || !here(&e.tgt.0) {
                continue;
            }
            if let (Some(src), Some(tgt)) = (self.queue(&e.src, false), self.queue(&e.tgt, true)) {
                self.bound[i] = Some(Bound {
                    src,
                    tgt,
                    kind: BoundKind::Pubsub,
                });
            }
        }
    }

    /// The bindings made so far.
    pub(super) fn bindings(&self) -> Vec<Bound> {
        self.bound.iter().flatten().cloned().collect()
    }

    /// The roles waited for that have not announced themselves, sorted, with components.
    pub(super) fn missing(&self) -> Vec<(&str, &str)> {
        let mut m: Vec<(&str, &str)> = self
            .needed
            .iter()
            .filter(|(r, _)| !self.known.contains_key(*r))
            .map(|(r, c)| (r.as_str(), c.as_str()))
            .collect();
        m.sort();
        m
    }

    /// Takes in a discovery message seen at `now`.
    pub(super) fn observe(&mut self, p: Participant, now: Instant) -> Seen {
        if !self.needed.contains_key(&p.role) {
            return Seen::Nothing;
        }
        self.last_seen.insert(p.role.clone(), now);
        if self.gone.remove(&p.role) {
            return Seen::Back;
        }
        if self.known.contains_key(&p.role) {
            return Seen::Nothing;
        }
        self.known.insert(p.role.clone(), p);
        Seen::New
    }

    /// The roles silent for longer than `after` at `now` and not yet reported gone.
    pub(super) fn newly_gone(&mut self, now: Instant, after: Duration) -> Vec<String> {
        let mut out = Vec::new();
        for (role, seen) in &self.last_seen {
            if now.duration_since(*seen) > after && self.gone.insert(role.clone()) {
                out.push(role.clone());
            }
        }
        out.sort();
        out
    }

    /// The queue of a role's port, if the role is known and has it.
    fn queue(&self, (role, port): &(String, String), inport: bool) -> Option<String> {
        let p = self.known.get(role)?;
        let q = if inport {
            p.inport_queue(port)
        } else {
            p.outport_queue(port)
        };
        q.map(str::to_string)
    }

    /// Binds every edge whose ends are known and sends every IIP whose target is, once.
    pub(super) async fn settle(&mut self, transport: &Arc<dyn Transport>) -> anyhow::Result<()> {
        for i in 0..self.edges.len() {
            if self.bound[i].is_some() {
                continue;
            }
            let edge = &self.edges[i];
            let src = if edge.dead_letters {
                self.queue(&edge.src, true).map(|q| format!("dead-{q}"))
            } else {
                self.queue(&edge.src, false)
            };
            let (Some(src), Some(tgt)) = (src, self.queue(&edge.tgt, true)) else {
                continue;
            };
            // On AMQP the binding needs both ends declared; on MQTT declaring a queue
            // would subscribe this process to a participant's inport.
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
            let kind = match (edge.dead_letters, edge.kind) {
                (true, _) => BoundKind::Deadletter,
                (false, BindingKind::RoundRobin) => BoundKind::Roundrobin,
                (false, BindingKind::PubSub) => BoundKind::Pubsub,
            };
            println!("{}: {src} -> {tgt}", kind.as_str().to_ascii_uppercase());
            self.bound[i] = Some(Bound { src, tgt, kind });
        }
        for i in 0..self.iips.len() {
            if self.sent[i] {
                continue;
            }
            let Some(queue) = self.queue(&self.iips[i].tgt, true) else {
                continue;
            };
            let msg = Message::json(&self.iips[i].data);
            transport.send_to_queue(&queue, msg).await?;
            self.sent[i] = true;
        }
        Ok(())
    }

    /// Takes in one message from `fbp`: binds what a new role makes possible; true if
    /// that bound something.
    pub(super) async fn on_discovery(
        &mut self,
        transport: &Arc<dyn Transport>,
        data: &[u8],
    ) -> anyhow::Result<bool> {
        let Ok(p) = Participant::parse(data) else {
            return Ok(false);
        };
        let role = p.role.clone();
        match self.observe(p, Instant::now()) {
            Seen::New => {
                tracing::info!("participant {role} appeared");
                let before = self.bound.iter().flatten().count();
                self.settle(transport).await?;
                Ok(self.bound.iter().flatten().count() != before)
            }
            Seen::Back => {
                tracing::info!("participant {role} is back");
                Ok(false)
            }
            Seen::Nothing => Ok(false),
        }
    }
}

/// Where a coordinator publishes its binding list (see [`crate::bindings`]).
#[derive(Debug, Clone)]
pub(super) struct Listing {
    key: String,
    command: String,
    graph: String,
    period: Duration,
}

impl Listing {
    /// The listing of `command` (`run`, `setup`) coordinating `graph`, re-published every
    /// discovery period / 2.2.
    pub(super) fn new(command: &str, graph: &std::path::Path) -> Self {
        let stem = graph.file_stem().unwrap_or_default().to_string_lossy();
        let key = format!(
            "{command}-{stem}-{}-{}",
            std::process::id(),
            crate::discovery::random_suffix()
        )
        .replace(['/', '+', '#', ' '], "_");
        Listing {
            key,
            command: command.into(),
            graph: graph.display().to_string(),
            period: crate::discovery::resend_interval(crate::discovery::period_from_env()),
        }
    }

    /// The listing of a one-shot `setup` of `graph`: published once, never expiring, under
    /// a key fixed by the graph file's path so that running it again replaces it.
    pub(super) fn once(graph: &std::path::Path) -> Self {
        use sha2::Digest;
        let stem = graph.file_stem().unwrap_or_default().to_string_lossy();
        let path = std::fs::canonicalize(graph).unwrap_or_else(|_| graph.to_path_buf());
        let digest = sha2::Sha256::digest(path.to_string_lossy().as_bytes());
        let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Listing {
            key: format!("setup-{stem}-once-{tag}").replace(['/', '+', '#', ' '], "_"),
            command: "setup".into(),
            graph: graph.display().to_string(),
            period: Duration::ZERO,
        }
    }

    /// Publishes `bindings` as this coordinator's list.
    pub(super) async fn publish(&self, transport: &Arc<dyn Transport>, bindings: Vec<Bound>) {
        let list = BindingList {
            coordinator: self.key.clone(),
            command: self.command.clone(),
            graph: self.graph.clone(),
            updated_ms: crate::bindings::now_ms(),
            period_ms: u64::try_from(self.period.as_millis()).unwrap_or(u64::MAX),
            bindings,
        };
        let ttl = crate::bindings::ttl(self.period);
        if let Err(e) = transport.put_state(&self.key, list.to_message(), ttl).await {
            tracing::warn!("binding list not published: {e}");
        }
    }

    /// Removes this coordinator's list (on a clean stop).
    pub(super) async fn clear(&self, transport: &Arc<dyn Transport>) {
        let empty = Message::json_text(Vec::<u8>::new());
        let ttl = crate::bindings::ttl(self.period);
        if let Err(e) = transport.put_state(&self.key, empty, ttl).await {
            tracing::warn!("binding list not cleared: {e}");
        }
    }
}

/// How [`watch`] reports silence.
#[derive(Debug, Clone, Copy)]
pub(super) struct WatchOptions {
    /// Warn once about roles still missing after this long (`None`: never).
    pub warn_after: Option<Duration>,
    /// Report a role gone after this long without discovery.
    pub gone_after: Duration,
}

/// Follows discovery on `fbp` (if given) forever: binds late joiners when they appear,
/// warns about roles still missing after `warn_after`, reports roles gone quiet, and
/// keeps the binding list published.
pub(super) async fn watch(
    mut coordinator: Coordinator,
    transport: Arc<dyn Transport>,
    mut fbp: Option<Subscription>,
    listing: Listing,
    options: WatchOptions,
) -> anyhow::Result<()> {
    let mut liveness = tokio::time::interval(options.gone_after.div_f64(6.0).max(ms(10)));
    let mut republish = tokio::time::interval(listing.period);
    let warn_at = options.warn_after.map(|w| Instant::now() + w);
    let mut warned = warn_at.is_none();
    loop {
        let warn = async {
            match warn_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = warn, if !warned => {
                warned = true;
                let after = options.warn_after.unwrap_or_default();
                for (role, component) in coordinator.missing() {
                    tracing::warn!(
                        "process '{role}' ({component}): no discovery from role '{role}' \
                         within {after:?}; its edges are bound when it appears"
                    );
                }
            }
            _ = liveness.tick() => {
                for role in coordinator.newly_gone(Instant::now(), options.gone_after) {
                    tracing::warn!(
                        "participant {role} gone: no discovery for {:?}",
                        options.gone_after
                    );
                    println!("GONE: {role}");
                }
            }
            _ = republish.tick() => listing.publish(&transport, coordinator.bindings()).await,
            d = next(&mut fbp) => {
                let Some(d) = d else { return Ok(()) };
                if coordinator.on_discovery(&transport, &d.message.data).await? {
                    listing.publish(&transport, coordinator.bindings()).await;
                }
                d.ack();
            }
        }
    }
}

async fn next(fbp: &mut Option<Subscription>) -> Option<crate::transport::Delivery> {
    match fbp {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A participant as the `role.PORT` convention names its queues, from the graph alone.
pub(super) fn conventional(role: &str, graph: &Graph, process: &Process) -> Participant {
    let mut inports = Vec::new();
    let mut outports = Vec::new();
    let port = |id: &str| Port {
        id: id.to_string(),
        type_: "any".into(),
        queue: queue_name(role, id),
        description: String::new(),
    };
    for conn in &graph.connections {
        if let Connection::Edge(e) = conn
            && e.src.process == role
        {
            outports.push(port(&e.src.port));
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

/// A graph on a broker, split into what this process runs and what it coordinates.
#[derive(Debug)]
pub(super) struct Split {
    /// The processes with a `.wasm` component, and the plain edges and IIPs among them.
    pub local: Graph,
    /// Everything else: external participants, binding nodes.
    pub coordinator: Coordinator,
    /// Foreign participants declared in MsgFlo's YAML: announced by this process.
    pub foreign: Vec<Participant>,
}

/// The MsgFlo YAML file declaring `component` as a foreign participant, if it is one:
/// a `.yaml`/`.yml` path (relative to the graph), or a library entry naming one
/// (relative to the library).
fn foreign_file(component: &str, resolver: &Resolver, graph_dir: &Path) -> Option<PathBuf> {
    let is_yaml = |s: &str| s.ends_with(".yaml") || s.ends_with(".yml");
    if is_yaml(component) {
        return Some(graph_dir.join(component));
    }
    match resolver.lookup(component) {
        Ok(Resolved::Command(c)) if is_yaml(c.trim()) && !c.trim().contains(' ') => {
            let base = resolver
                .library()
                .and_then(|l| l.file().parent())
                .unwrap_or(graph_dir);
            Some(base.join(c.trim()))
        }
        _ => None,
    }
}

/// Splits `graph` for `run --broker`: a process whose component resolves to a `.wasm`
/// runs here; one mapped to a command by the library, or a name with no file, is an
/// external participant whose queues come from its discovery. A `.wasm` path that does
/// not exist stays an error.
pub(super) fn split(graph: &Graph, resolver: &Resolver, source: &Source) -> anyhow::Result<Split> {
    let mut external = HashMap::new();
    let mut foreign = Vec::new();
    let mut local = graph.clone();
    let graph_dir = Path::new(&source.file).parent().unwrap_or(Path::new(""));
    for (name, process) in &graph.processes {
        if is_binder(&process.component) {
            local.processes.shift_remove(name);
            continue;
        }
        if let Some(file) = foreign_file(&process.component, resolver, graph_dir) {
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "{}: process '{name}': cannot read {}",
                    source.file,
                    file.display()
                )
            })?;
            let p = crate::foreign::parse(&text, name).with_context(|| {
                format!("{}: process '{name}': {}", source.file, file.display())
            })?;
            local.processes.shift_remove(name);
            foreign.push(p);
            continue;
        }
        match resolver.lookup(&process.component) {
            Ok(Resolved::Wasm(_)) => {}
            Ok(Resolved::Command(_)) | Err(ResolveError::Unknown { .. }) => {
                local.processes.shift_remove(name);
                external.insert(name.clone(), process.component.clone());
            }
            Err(e) => bail!("{}: process '{name}': {e}", source.file),
        }
    }
    let here = |name: &str| local.processes.contains_key(name);
    local.connections.retain(|c| match c {
        Connection::Edge(e) => here(&e.src.process) && here(&e.tgt.process),
        Connection::Iip(i) => here(&i.tgt.process),
    });
    local.inports.retain(|_, e| here(&e.process));
    local.outports.retain(|_, e| here(&e.process));
    let remote = |p: &str| external.contains_key(p) || foreign.iter().any(|f| f.role == p);
    let iips = iips(graph, remote);
    let mut coordinator = Coordinator::new(edges(graph), iips, external);
    for p in &foreign {
        coordinator.know(&source.file, p.clone())?;
    }
    Ok(Split {
        local,
        coordinator,
        foreign,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParseOptions, parse};

    fn graph(src: &str) -> Graph {
        parse(src, crate::graph::Format::Fbp, &ParseOptions::default()).unwrap()
    }

    #[test]
    fn round_robin_nodes_become_bindings() {
        let g = graph(
            "a(x/A) OUT -> IN rr(msgflo/RoundRobin) OUT -> IN b(x/B)\n\
             rr DEADLETTER -> IN d(x/D)\n",
        );
        let e = edges(&g);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!((e[0].src.0.as_str(), e[0].tgt.0.as_str()), ("a", "b"));
        assert_eq!(e[0].kind, BindingKind::RoundRobin);
        assert!(!e[0].direct);
        assert!(e[1].dead_letters);
        assert_eq!((e[1].src.0.as_str(), e[1].tgt.0.as_str()), ("b", "d"));
    }

    #[test]
    fn late_roles_are_new_then_gone_then_back() {
        let g = graph("a(x/A) OUT -> IN b(x/B)\n");
        let needed = HashMap::from([("b".to_string(), "x/B".to_string())]);
        let mut c = Coordinator::new(edges(&g), Vec::new(), needed);
        let a = conventional("a", &g, &g.processes["a"]);
        c.know("g.fbp", a).unwrap();
        assert_eq!(c.missing(), vec![("b", "x/B")]);
        let t0 = Instant::now();
        let b = conventional("b", &g, &g.processes["b"]);
        assert_eq!(c.observe(b.clone(), t0), Seen::New);
        assert_eq!(c.observe(b.clone(), t0), Seen::Nothing);
        assert!(c.missing().is_empty());
        let later = t0 + Duration::from_secs(10);
        assert_eq!(c.newly_gone(later, Duration::from_secs(3)), vec!["b"]);
        assert!(c.newly_gone(later, Duration::from_secs(3)).is_empty());
        assert_eq!(c.observe(b, later), Seen::Back);
    }

    #[test]
    fn a_known_role_without_the_port_is_an_error() {
        let g = graph("a(x/A) OUT -> IN b(x/B)\n");
        let mut c = Coordinator::new(edges(&g), Vec::new(), HashMap::new());
        let mut a = conventional("a", &g, &g.processes["a"]);
        a.outports.clear();
        let err = c.know("g.fbp", a).unwrap_err().to_string();
        assert_eq!(err, "g.fbp: process 'a' (x/A) has no outport 'out'");
    }
}
