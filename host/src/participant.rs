//! One participant's loop: receive -> call the guest -> publish outputs -> ack.
//!
//! A participant is one long-lived instance of a component serving one graph process
//! (a MsgFlo role). It owns the instance's timers and restores parameters into every
//! new instance. A message that faults the guest is nacked (dead-lettered with a reason
//! naming process, port and kind of fault) and, if the fault left the instance in an
//! unknown state, the instance is recreated before the next message.
//!
//! Live code swaps arrive on the participant's update channel and are taken between two
//! messages: the message in flight finishes on the old code, the next one runs on the
//! new. A swap instantiates and starts the new version first and only then retires the
//! old one, so a version that traps while starting is rejected with the old one still
//! running. See [`crate::live`] for where updates come from.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::SelectAll;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::fault::{Fault, FaultKind};
use crate::message::Message;
use crate::metrics::RoleMetrics;
use crate::runtime::{BatchCall, CallOutcome, Guest, GuestFactory, Limits, Restored, TimerCommand};
use crate::transport::{
    Delivery, Poller, Publisher, Subscription, Transport, TransportError, queue_name,
};

/// Most deliveries handled back to back before timers and shutdown are looked at again.
const BATCH: usize = 32;

/// Times an in-process participant whose queues ran dry yields to the scheduler and
/// looks again before it waits. Going to sleep costs a wake-up by the producer (a
/// futex call when its worker thread parked), which in a pipeline would be paid for
/// nearly every message; a few yields usually see the next message arrive.
const SPINS: u32 = 8;

/// The lifecycle a network drives its participants through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Normal operation.
    Running,
    /// Timers are off; queued messages are still processed.
    Draining,
    /// Stop after the current message.
    Stopped,
}

/// Last value of each parameter port, shared by all instances of a process.
///
/// Every value set bumps a generation; an instance that has applied the values up to
/// generation `g` applies [`Parameters::since`]`(g)` before its next call, so a parameter
/// message taken by one instance of a pool reaches all of them.
#[derive(Debug, Default)]
pub struct Parameters {
    /// (port, value, generation it was set at).
    values: Mutex<Vec<(String, Message, u64)>>,
    generation: AtomicU64,
}

impl Parameters {
    /// Records `msg` as the value of parameter `port`; the new generation.
    pub fn set(&self, port: &str, msg: Message) -> u64 {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        match values.iter_mut().find(|(p, _, _)| p == port) {
            Some(slot) => (slot.1, slot.2) = (msg, generation),
            None => values.push((port.to_string(), msg, generation)),
        }
        generation
    }

    /// How many values were ever set.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The values set after generation `seen`, in first-set order.
    pub fn since(&self, seen: u64) -> Vec<(String, Message)> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, _, g)| *g > seen)
            .map(|(p, m, _)| (p.clone(), m.clone()))
            .collect()
    }

    /// Forgets parameter `port`.
    pub fn remove(&self, port: &str) {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(p, _, _)| p != port);
    }

    /// Every parameter, in first-set order.
    pub fn snapshot(&self) -> Vec<(String, Message)> {
        self.since(0)
    }
}

/// Counters a participant keeps; read by tests, benchmarks and the CLI summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Messages acked.
    pub processed: u64,
    /// Messages nacked (dead-lettered).
    pub failed: u64,
    /// Messages delivered in runs of more than one (`process-batch`).
    pub batched: u64,
    /// Instances created after the first (recoveries from faults).
    pub recreated: u64,
    /// Timer calls made.
    pub timer_calls: u64,
    /// New code versions swapped in.
    pub swaps: u64,
    /// New code versions rejected (the old one kept running).
    pub rejected_swaps: u64,
}

/// A new version of a participant's code, offered by [`crate::live`].
pub type Update = Arc<dyn GuestFactory>;

/// What became of the state when a new version was swapped in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// The old instance's snapshot was restored into the new one.
    Restored,
    /// The new instance runs fresh, and why.
    Fresh(String),
}

/// A message a participant dead-lettered, reported on the network's fault events.
#[derive(Debug, Clone)]
pub struct FaultEvent {
    /// The process.
    pub process: Arc<str>,
    /// The reason, naming process, port and kind of fault.
    pub reason: String,
    /// Whether it was also published on the component's `error` outport.
    pub on_error_port: bool,
}

/// How one offered version ended, reported on the network's swap events.
#[derive(Debug, Clone)]
pub struct SwapEvent {
    /// The process.
    pub process: Arc<str>,
    /// The offered version (content hash prefix).
    pub version: String,
    /// `Ok` with the state handover and the swap step's duration (instantiate, start,
    /// snapshot, restore, rewire), or `Err` with why the version was rejected.
    pub outcome: Result<(Handover, Duration), String>,
    /// When the swap finished: every message processed after this runs the new code.
    pub at: std::time::Instant,
}

/// Everything a participant needs to run.
#[derive(Debug)]
pub struct ParticipantSpec {
    /// Graph process (role) name.
    pub process: Arc<str>,
    /// The code it runs (a loaded component, or native code in benchmarks).
    pub component: Arc<dyn GuestFactory>,
    /// Resource limits.
    pub limits: Limits,
    /// Inport subscriptions, with the port each belongs to.
    pub inports: Vec<(String, Subscription)>,
    /// Publisher per outport index (`None` when the outport is not wired).
    pub outports: Vec<Option<Publisher>>,
    /// Non-parameter IIPs, delivered once after the first instance starts.
    pub initial: Vec<(String, Message)>,
    /// Parameter values, replayed into every new instance.
    pub parameters: Arc<Parameters>,
    /// Where new inports and outports of a swapped-in version are declared.
    pub transport: Arc<dyn Transport>,
    /// New versions of the code (live coding); the current value is the running one.
    pub updates: Option<watch::Receiver<Update>>,
    /// Where the outcome of each swap is reported.
    pub swap_events: Option<tokio::sync::broadcast::Sender<SwapEvent>>,
    /// Where dead-lettered messages are reported.
    pub faults: Option<tokio::sync::broadcast::Sender<FaultEvent>>,
    /// The role's live counters (processed, failed, processing time), shared by the
    /// instances of its pool.
    pub metrics: Option<Arc<RoleMetrics>>,
}

/// A running participant's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Process name.
    pub process: Arc<str>,
    /// Final counters.
    pub stats: Stats,
}

/// Runs a participant until `phase` reaches [`Phase::Stopped`] (or its queues close).
pub async fn run(spec: ParticipantSpec, mut phase: watch::Receiver<Phase>) -> Report {
    let ParticipantSpec {
        process,
        component,
        limits,
        inports,
        outports,
        initial,
        parameters,
        transport,
        mut updates,
        swap_events,
        faults,
        metrics,
    } = spec;
    let mut p = Participant {
        process,
        component,
        limits,
        outports,
        parameters,
        transport,
        swap_events,
        faults,
        retired: HashSet::new(),
        subscribed: inports
            .iter()
            .map(|(port, _)| port.to_ascii_lowercase())
            .collect(),
        instance: None,
        timers: HashMap::new(),
        stats: Stats::default(),
        created: 0,
        metrics,
        served: false,
        parameters_seen: 0,
    };
    p.ensure_instance().await;
    for (port, msg) in initial {
        p.deliver_direct(&port, msg).await;
    }

    // Parameter ports are served first: a setting sent before a message (an IIP, a
    // protocol client's `unit` then `in`) must apply to it, though each port is its own
    // queue and nothing else orders them.
    let (mut params, mut merged): (SelectAll<_>, SelectAll<_>) =
        (SelectAll::new(), SelectAll::new());
    let mut fast = Fast::new();
    for (port, sub) in inports {
        let parameter = p.is_parameter(&port);
        fast.add(&port, &sub, parameter);
        if parameter {
            params.push(port_stream(port, sub));
        } else {
            merged.push(port_stream(port, sub));
        }
    }

    loop {
        let current = *phase.borrow();
        if current == Phase::Stopped {
            break;
        }
        let next_timer = if current == Phase::Running {
            p.next_timer()
        } else {
            None
        };
        tokio::select! {
            biased;
            changed = phase.changed() => {
                if changed.is_err() { break; }
            }
            Some(next) = next_update(&mut updates) => {
                for (port, sub) in p.swap(next).await {
                    let parameter = p.is_parameter(&port);
                    fast.add(&port, &sub, parameter);
                    if parameter {
                        params.push(port_stream(port, sub));
                    } else {
                        merged.push(port_stream(port, sub));
                    }
                }
            }
            Some((port, delivery)) = params.next(), if !params.is_empty() => {
                p.handle(&port, delivery).await;
            }
            item = merged.next(), if !merged.is_empty() => match item {
                Some((port, delivery)) => {
                    p.handle(&port, delivery).await;
                    // Under load, take what is already queued without another round
                    // through select!; bounded so timers, swaps and shutdown stay
                    // responsive.
                    let mut handled = 0;
                    let mut idle = 0;
                    while handled < BATCH {
                        if updates.as_ref().is_some_and(|u| u.has_changed().unwrap_or(false)) {
                            break;
                        }
                        let next = match fast.param() {
                            Some(next) => Some(next),
                            None if fast.all_params => None,
                            None => params.next().now_or_never().flatten(),
                        };
                        let next = match next {
                            Some(next) => Some(next),
                            // A guest that takes runs gets what is queued on a port in
                            // one call.
                            None if p.batches() => match fast.data_run(p.run_limit(BATCH - handled)) {
                                Some((port, run)) => {
                                    handled += run.len();
                                    idle = 0;
                                    p.handle_run(&port, run).await;
                                    continue;
                                }
                                None if fast.all_data => None,
                                None => merged.next().now_or_never().flatten(),
                            },
                            None => match fast.data() {
                                Some(next) => Some(next),
                                None if fast.all_data => None,
                                None => merged.next().now_or_never().flatten(),
                            },
                        };
                        match next {
                            Some((port, delivery)) => {
                                p.handle(&port, delivery).await;
                                handled += 1;
                                idle = 0;
                            }
                            None if fast.all_data && fast.all_params && idle < SPINS => {
                                idle += 1;
                                tokio::task::yield_now().await;
                            }
                            None => break,
                        }
                    }
                }
                None if params.is_empty() => break,
                None => {}
            },
            () = sleep_until(next_timer) => {
                if let Some((id, _)) = next_timer { p.fire_timer(id).await; }
            }
        }
    }
    Report {
        process: p.process.clone(),
        stats: p.stats,
    }
}

/// Synchronous handles on the inports' queues (in-process transport), so a busy
/// participant takes its next delivery without a round through the streams.
struct Fast {
    params: Vec<(Arc<str>, Box<dyn Poller>)>,
    data: Vec<(Arc<str>, Box<dyn Poller>)>,
    /// Whether every parameter inport has a handle (else the streams are asked too).
    all_params: bool,
    /// Whether every data inport has a handle.
    all_data: bool,
    /// Data port asked first next time, so one busy port does not starve another.
    turn: usize,
}

impl Fast {
    fn new() -> Self {
        Fast {
            params: Vec::new(),
            data: Vec::new(),
            all_params: true,
            all_data: true,
            turn: 0,
        }
    }

    fn add(&mut self, port: &str, sub: &Subscription, parameter: bool) {
        let (list, all) = if parameter {
            (&mut self.params, &mut self.all_params)
        } else {
            (&mut self.data, &mut self.all_data)
        };
        match sub.poller() {
            Some(poller) => list.push((Arc::from(port), poller)),
            None => *all = false,
        }
    }

    fn param(&mut self) -> Option<(Arc<str>, Delivery)> {
        self.params
            .iter_mut()
            .find_map(|(port, poller)| poller.try_next().map(|d| (port.clone(), d)))
    }

    /// The next data delivery and up to `max - 1` more already queued on the same port.
    fn data_run(&mut self, max: usize) -> Option<(Arc<str>, Vec<Delivery>)> {
        let (at, first) = self.next_data()?;
        let (port, poller) = &mut self.data[at];
        let mut run = Vec::with_capacity(max);
        run.push(first);
        while run.len() < max {
            match poller.try_next() {
                Some(d) => run.push(d),
                None => break,
            }
        }
        Some((port.clone(), run))
    }

    fn data(&mut self) -> Option<(Arc<str>, Delivery)> {
        let (at, d) = self.next_data()?;
        Some((self.data[at].0.clone(), d))
    }

    /// A waiting data delivery and the index of its port, starting at `turn`.
    fn next_data(&mut self) -> Option<(usize, Delivery)> {
        let n = self.data.len();
        for i in 0..n {
            let at = (self.turn + i) % n;
            if let Some(d) = self.data[at].1.try_next() {
                self.turn = (at + 1) % n;
                return Some((at, d));
            }
        }
        None
    }
}

type PortStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = (Arc<str>, Delivery)> + Send>>;

/// One inport's deliveries, tagged with the port.
fn port_stream(port: String, sub: Subscription) -> PortStream {
    let port: Arc<str> = Arc::from(port);
    Box::pin(futures_util::stream::unfold(sub, move |mut sub| {
        let port = port.clone();
        async move { sub.next().await.map(|d| ((port, d), sub)) }
    }))
}

/// The next offered version; pending forever without live coding or once the sender
/// is gone.
async fn next_update(updates: &mut Option<watch::Receiver<Update>>) -> Option<Update> {
    match updates {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => {
                *updates = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(timer: Option<(u32, Instant)>) {
    match timer {
        Some((_, at)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct Participant {
    process: Arc<str>,
    component: Arc<dyn GuestFactory>,
    limits: Limits,
    outports: Vec<Option<Publisher>>,
    parameters: Arc<Parameters>,
    transport: Arc<dyn Transport>,
    swap_events: Option<tokio::sync::broadcast::Sender<SwapEvent>>,
    faults: Option<tokio::sync::broadcast::Sender<FaultEvent>>,
    /// Inports the running version no longer has; their deliveries are dead-lettered.
    retired: HashSet<String>,
    /// Inports with a subscription (current or retired).
    subscribed: HashSet<String>,
    instance: Option<Box<dyn Guest>>,
    timers: HashMap<u32, (Instant, Option<Duration>)>,
    stats: Stats,
    created: u64,
    metrics: Option<Arc<RoleMetrics>>,
    /// Whether this participant has handled a message yet (reported once to `metrics`).
    served: bool,
    /// The parameter generation this instance has applied (see [`Parameters`]).
    parameters_seen: u64,
}

impl Participant {
    fn fault(&self, port: &str, (kind, detail): (FaultKind, String)) -> Fault {
        Fault {
            process: self.process.to_string(),
            port: port.to_string(),
            kind,
            detail,
        }
    }

    /// Makes sure an instance exists: instantiate, `start`, replay parameters.
    async fn ensure_instance(&mut self) -> Option<String> {
        if self.instance.is_some() {
            return None;
        }
        self.timers.clear();
        let began = std::time::Instant::now();
        let mut instance = match self
            .component
            .instantiate(self.process.clone(), &self.limits)
        {
            Ok(i) => i,
            Err(e) => {
                let fault = self.fault("start", e);
                tracing::error!("{fault}");
                return Some(fault.to_string());
            }
        };
        if self.created > 0 {
            self.stats.recreated += 1;
        }
        self.created += 1;
        let started = instance.start();
        self.instance = Some(instance);
        if let Err(e) = self.apply("start", started).await {
            tracing::error!("{e}");
            self.instance = None;
            return Some(e.to_string());
        }
        if let Some(port) = self.replay_parameters().await {
            // A parameter value that breaks every instance is dropped, not replayed
            // forever; the next instance starts without it.
            tracing::error!(
                "process '{}': dropping parameter '{port}': its value faults the component",
                self.process
            );
            self.parameters.remove(&port);
            return Box::pin(self.ensure_instance()).await;
        }
        if let Some(m) = &self.metrics {
            m.instance_started(began.elapsed());
        }
        None
    }

    /// Delivers every parameter's last value to the current instance; the port whose
    /// value left the instance unusable, if one did.
    async fn replay_parameters(&mut self) -> Option<String> {
        // Read before the values: one set in between is applied again at the next call.
        self.parameters_seen = self.parameters.generation();
        for (port, msg) in self.parameters.snapshot() {
            if self.component.definition().inport(&port).is_none() {
                continue;
            }
            let instance = self.instance.as_mut()?;
            let outcome = instance.process(&port, &msg);
            if let Err(e) = self.apply(&port, outcome).await {
                tracing::warn!("restoring parameter: {e}");
                if self.instance.is_none() {
                    return Some(port);
                }
            }
        }
        None
    }

    /// Swaps in a new version of the code at this message boundary. Returns the
    /// subscriptions of inports the new version adds.
    async fn swap(&mut self, next: Update) -> Vec<(String, Subscription)> {
        let began = std::time::Instant::now();
        let version = next.version().to_string();
        let outcome = self.try_swap(next).await;
        let report = match outcome {
            Ok((handover, added)) => {
                let step = began.elapsed();
                self.stats.swaps += 1;
                match &handover {
                    Handover::Restored => tracing::info!(
                        process = &*self.process,
                        "now running version {version} (state handed over, swap took {step:?})"
                    ),
                    Handover::Fresh(why) => tracing::info!(
                        process = &*self.process,
                        "now running version {version} (started fresh: {why}; swap took {step:?})"
                    ),
                }
                self.report_swap(version, Ok((handover, step)));
                return added;
            }
            Err(reason) => reason,
        };
        self.stats.rejected_swaps += 1;
        tracing::error!(
            "process '{}': version {version} rejected: {report}; keeping version {}",
            self.process,
            self.component.version()
        );
        self.report_swap(version, Err(report));
        Vec::new()
    }

    /// The publisher of the component's `error` outport, if it has one.
    fn error_publisher(&self) -> Option<Publisher> {
        let index = self.component.definition().outport_index("error")?;
        self.outports.get(index).cloned().flatten()
    }

    fn report_fault(&self, reason: &str, on_error_port: bool) {
        if let Some(tx) = &self.faults {
            let _ = tx.send(FaultEvent {
                process: self.process.clone(),
                reason: reason.to_string(),
                on_error_port,
            });
        }
    }

    fn report_swap(&self, version: String, outcome: Result<(Handover, Duration), String>) {
        if let Some(tx) = &self.swap_events {
            let _ = tx.send(SwapEvent {
                process: self.process.clone(),
                version,
                outcome,
                at: std::time::Instant::now(),
            });
        }
    }

    async fn try_swap(
        &mut self,
        next: Update,
    ) -> Result<(Handover, Vec<(String, Subscription)>), String> {
        let mut fresh = next
            .instantiate(self.process.clone(), &self.limits)
            .map_err(|(kind, detail)| format!("cannot instantiate ({kind}): {detail}"))?;
        let started = fresh.start();
        if let Err((kind, detail)) = &started.result {
            return Err(format!("fails while starting ({kind}): {detail}"));
        }
        let state = match self.instance.as_mut().map(|old| old.snapshot()) {
            Some(Ok(state)) => state,
            Some(Err((kind, detail))) => {
                tracing::warn!(
                    "process '{}': the old version failed to snapshot its state ({kind}): {detail}",
                    self.process
                );
                None
            }
            None => None,
        };
        let handover = match state {
            None => Handover::Fresh("the old version handed over no state".into()),
            Some(bytes) => match fresh.restore(&bytes) {
                Ok(Restored::Yes) => Handover::Restored,
                Ok(Restored::Unsupported) => {
                    Handover::Fresh("the new version has no restore export".into())
                }
                Ok(Restored::Refused(why)) => {
                    Handover::Fresh(format!("the new version refused the state: {why}"))
                }
                Err((kind, detail)) => {
                    return Err(format!("fails while restoring state ({kind}): {detail}"));
                }
            },
        };
        // Parameters go into the new instance before it is committed: a version that
        // faults on one is rejected like one that traps in `start`.
        let mut replayed = Vec::new();
        for (port, msg) in self.parameters.snapshot() {
            if next.definition().inport(&port).is_none() {
                continue;
            }
            let outcome = fresh.process(&port, &msg);
            if let Err((kind, detail)) = &outcome.result
                && kind.poisons_instance()
            {
                return Err(format!("fails on parameter '{port}' ({kind}): {detail}"));
            }
            replayed.push((port, outcome));
        }
        let added = self
            .rewire(next.as_ref())
            .await
            .map_err(|e| format!("cannot declare its ports: {e}"))?;
        self.component = next;
        self.instance = Some(fresh);
        // Armed timers belong to the state: they carry over with it, unless the new
        // version's `start` armed the same id itself.
        let old_timers = std::mem::take(&mut self.timers);
        if let Err(e) = self.apply("start", started).await {
            tracing::warn!("{e}");
        }
        if handover == Handover::Restored {
            for (id, timer) in old_timers {
                self.timers.entry(id).or_insert(timer);
            }
        }
        for (port, outcome) in replayed {
            if let Err(e) = self.apply(&port, outcome).await {
                tracing::warn!("restoring parameter: {e}");
            }
        }
        Ok((handover, added))
    }

    /// Declares and subscribes what the new version's ports need, and notes the inports
    /// it no longer has.
    async fn rewire(
        &mut self,
        next: &dyn GuestFactory,
    ) -> Result<Vec<(String, Subscription)>, TransportError> {
        let def = next.definition();
        let mut outports = Vec::with_capacity(def.outports.len());
        for port in &def.outports {
            let topic = queue_name(&self.process, &port.id);
            self.transport.declare_topic(&topic).await?;
            outports.push(Some(self.transport.publisher(&topic).await?));
        }
        let mut added = Vec::new();
        for port in &def.inports {
            // Queue names upper-case the port: `in` and `IN` are one queue, one consumer.
            if self.subscribed.contains(&port.id.to_ascii_lowercase()) {
                continue;
            }
            let queue = queue_name(&self.process, &port.id);
            self.transport.declare_queue(&queue).await?;
            added.push((port.id.clone(), self.transport.subscribe(&queue).await?));
        }
        self.outports = outports;
        self.subscribed
            .extend(added.iter().map(|(p, _)| p.to_ascii_lowercase()));
        self.retired = self
            .subscribed
            .iter()
            .filter(|p| def.inport(p).is_none())
            .cloned()
            .collect();
        Ok(added)
    }

    /// Delivers an IIP that does not come from a queue.
    async fn deliver_direct(&mut self, port: &str, msg: Message) {
        if let Err(reason) = self.call_process(port, &msg).await {
            tracing::warn!("initial packet rejected: {reason}");
        }
    }

    async fn handle(&mut self, port: &str, delivery: Delivery) {
        if !self.retired.is_empty() && self.retired.contains(&port.to_ascii_lowercase()) {
            self.stats.failed += 1;
            let reason = format!(
                "process '{}' (version {}) no longer has inport '{port}'",
                self.process,
                self.component.version()
            );
            tracing::warn!("{reason}; message dead-lettered");
            self.report_fault(&reason, false);
            delivery.nack(&reason);
            return;
        }
        let began = self.metrics.as_ref().map(|m| {
            m.started();
            std::time::Instant::now()
        });
        let result = self.call_process(port, &delivery.message).await;
        if let Some(began) = began {
            self.finished(result.is_ok(), began.elapsed());
        }
        self.settle(port, delivery, result).await;
    }

    /// Records a handled message in the role's metrics (started before the call).
    fn finished(&mut self, ok: bool, took: std::time::Duration) {
        let Some(m) = &self.metrics else { return };
        m.finished(ok, took);
        if !self.served {
            self.served = true;
            m.instance_serving();
        }
    }

    /// Whether the current instance takes runs of messages in one call.
    fn batches(&self) -> bool {
        self.limits.batch > 1 && self.instance.as_ref().is_some_and(|i| i.batches())
    }

    /// The longest run to take now, when `room` more deliveries fit in this round.
    fn run_limit(&self, room: usize) -> usize {
        room.min(self.limits.batch as usize).max(1)
    }

    /// Handles deliveries taken one after another from inport `port`: each stretch with
    /// the same content type and metadata in one call when it is longer than one.
    async fn handle_run(&mut self, port: &str, run: Vec<Delivery>) {
        // The usual case, one shape throughout: the run as it is.
        if run.len() > 1 && run.iter().all(|d| same_shape(&run[0].message, &d.message)) {
            return self.handle_same(port, run).await;
        }
        let mut rest = run.into_iter().peekable();
        while let Some(first) = rest.next() {
            let mut same = vec![first];
            while let Some(d) = rest.next_if(|d| same_shape(&same[0].message, &d.message)) {
                same.push(d);
            }
            if same.len() == 1 {
                for d in same {
                    self.handle(port, d).await;
                }
            } else {
                self.handle_same(port, same).await;
            }
        }
    }

    /// Handles deliveries of one shape (see [`same_shape`]) in one guest call.
    async fn handle_same(&mut self, port: &str, run: Vec<Delivery>) {
        let retired = !self.retired.is_empty() && self.retired.contains(&port.to_ascii_lowercase());
        if !retired && self.ensure_instance().await.is_none() {
            if self.parameters.generation() != self.parameters_seen {
                self.sync_parameters().await;
            }
            // The clock only for metrics: reading it costs more than a message's share
            // of the run's bookkeeping.
            let began = self.metrics.is_some().then(std::time::Instant::now);
            let call = match self.instance.as_mut() {
                Some(instance) => {
                    let msgs: Vec<&Message> = run.iter().map(|d| &d.message).collect();
                    instance.process_batch(port, &msgs)
                }
                None => BatchCall::Unsupported,
            };
            match call {
                BatchCall::Done(outcomes) => {
                    self.stats.batched += run.len() as u64;
                    let each = began.map_or(Duration::ZERO, |b| {
                        b.elapsed() / u32::try_from(run.len()).unwrap_or(u32::MAX)
                    });
                    for (delivery, outcome) in run.into_iter().zip(outcomes) {
                        let result = self.apply(port, outcome).await.map_err(|f| f.to_string());
                        if let Some(m) = &self.metrics {
                            m.started();
                        }
                        self.finished(result.is_ok(), each);
                        self.settle(port, delivery, result).await;
                    }
                    return;
                }
                BatchCall::Failed(kind, detail) => {
                    // Nothing of the run was published: a fresh instance takes its
                    // messages one by one, which finds the one at fault.
                    tracing::debug!(
                        process = &*self.process,
                        "a run of {} messages on '{port}' failed as a whole ({kind}: {detail}); \
                         delivering them one by one",
                        run.len()
                    );
                    self.instance = None;
                }
                BatchCall::Unsupported => {}
            }
        }
        for delivery in run {
            self.handle(port, delivery).await;
        }
    }

    /// Acks a handled delivery, or dead-letters it with `result`'s reason.
    async fn settle(&mut self, port: &str, delivery: Delivery, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.stats.processed += 1;
                delivery.ack();
            }
            Err(reason) => {
                self.stats.failed += 1;
                tracing::warn!("{reason}; message dead-lettered");
                // MsgFlo's convention: a component with an `error` outport reports its
                // failures there as data; otherwise they are process errors.
                let errors = self.error_publisher();
                let published = publish_error(errors, port, &reason, &delivery.message).await;
                self.report_fault(&reason, published);
                delivery.nack(&reason);
                // Recreate now, so a timer-driven participant keeps running.
                self.ensure_instance().await;
            }
        }
    }

    /// Whether `port` is a parameter inport of the current component version.
    fn is_parameter(&self, port: &str) -> bool {
        self.component
            .definition()
            .inport(port)
            .is_some_and(|p| p.parameter)
    }

    async fn call_process(&mut self, port: &str, msg: &Message) -> Result<(), String> {
        if let Some(reason) = self.ensure_instance().await {
            return Err(format!(
                "process '{}' has no running instance: {reason}",
                self.process
            ));
        }
        if self.parameters.generation() != self.parameters_seen {
            self.sync_parameters().await;
        }
        let parameter = self
            .component
            .definition()
            .inport(port)
            .is_some_and(|p| p.parameter);
        let Some(instance) = self.instance.as_mut() else {
            return Err(format!(
                "process '{}' has no running instance",
                self.process
            ));
        };
        let outcome = instance.process(port, msg);
        self.apply(port, outcome).await.map_err(|f| f.to_string())?;
        // Kept only once accepted: a value that faults the guest must not be replayed
        // into every new instance.
        if parameter {
            let generation = self.parameters.set(port, msg.clone());
            if generation == self.parameters_seen + 1 {
                self.parameters_seen = generation;
            }
        }
        Ok(())
    }

    /// Applies the parameter values other instances of the pool took since this one
    /// last looked; their outputs are dropped (the instance that took the message
    /// published them).
    async fn sync_parameters(&mut self) {
        let now = self.parameters.generation();
        for (port, msg) in self.parameters.since(self.parameters_seen) {
            if self.component.definition().inport(&port).is_none() {
                continue;
            }
            let Some(instance) = self.instance.as_mut() else {
                return;
            };
            let mut outcome = instance.process(&port, &msg);
            outcome.outputs.clear();
            if let Err(e) = self.apply(&port, outcome).await {
                tracing::warn!("applying parameter: {e}");
            }
        }
        self.parameters_seen = now;
    }

    async fn fire_timer(&mut self, id: u32) {
        match self.timers.get(&id).copied() {
            Some((at, Some(period))) => {
                // Skip missed periods instead of bursting after a stall.
                let mut next = at + period;
                let now = Instant::now();
                while next <= now {
                    next += period;
                }
                self.timers.insert(id, (next, Some(period)));
            }
            _ => {
                self.timers.remove(&id);
            }
        }
        if self.ensure_instance().await.is_some() {
            return;
        }
        if self.parameters.generation() != self.parameters_seen {
            self.sync_parameters().await;
        }
        let Some(instance) = self.instance.as_mut() else {
            return;
        };
        self.stats.timer_calls += 1;
        let outcome = instance.on_timer(id);
        if let Err(e) = self.apply(&format!("timer:{id}"), outcome).await {
            tracing::warn!("{e}");
            self.ensure_instance().await;
        }
    }

    fn next_timer(&self) -> Option<(u32, Instant)> {
        self.timers
            .iter()
            .map(|(id, (at, _))| (*id, *at))
            .min_by_key(|(_, at)| *at)
    }

    /// Applies a call's outcome: timers, outputs (published in order), and recovery.
    async fn apply(&mut self, port: &str, outcome: CallOutcome) -> Result<(), Fault> {
        // Reading the clock costs more than a guest call's bookkeeping: only when needed.
        let now = if outcome.timers.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        for cmd in outcome.timers {
            match cmd {
                TimerCommand::Set { id, after, repeat } => {
                    self.timers.insert(
                        id,
                        (
                            now.unwrap_or_else(Instant::now) + after,
                            repeat.then_some(after),
                        ),
                    );
                }
                TimerCommand::Cancel(id) => {
                    self.timers.remove(&id);
                }
            }
        }
        for (index, msg) in outcome.outputs {
            match self.outports.get(index) {
                Some(Some(publisher)) => {
                    if let Err(e) = publisher.publish(msg).await {
                        let detail = format!("publishing on '{}': {e}", publisher.topic);
                        return Err(self.fault(port, (FaultKind::Unavailable, detail)));
                    }
                }
                _ => tracing::trace!(process = &*self.process, index, "outport not connected"),
            }
        }
        match outcome.result {
            Ok(()) => Ok(()),
            Err((kind, detail)) => {
                if kind.poisons_instance() {
                    self.instance = None;
                }
                Err(self.fault(port, (kind, detail)))
            }
        }
    }
}

/// Whether two messages can go in one `process-batch` call: the guest gets one content
/// type and one metadata list for the whole run.
fn same_shape(a: &Message, b: &Message) -> bool {
    // Empty first: comparing two empty strings calls glibc's memcmp with a length of 0
    // on Rust's dangling pointer, whose masked vector load of that (unmapped) address
    // costs a microcode assist, hundreds of cycles; it was a tenth of the pipeline's time.
    let same_type = match (a.content_type.is_empty(), b.content_type.is_empty()) {
        (true, true) => true,
        (false, false) => a.content_type == b.content_type,
        _ => false,
    };
    same_type && a.metadata == b.metadata
}

/// Publishes `{"error": reason, "port": port}` on `errors` (a component's `error`
/// outport), with the failed message's metadata; whether it did.
async fn publish_error(
    errors: Option<Publisher>,
    port: &str,
    reason: &str,
    failed: &Message,
) -> bool {
    let Some(publisher) = errors else {
        return false;
    };
    let mut msg = Message::json(&serde_json::json!({"error": reason, "port": port}));
    msg.inherit_metadata(&failed.metadata);
    match publisher.publish(msg).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("publishing on '{}': {e}", publisher.topic);
            false
        }
    }
}
