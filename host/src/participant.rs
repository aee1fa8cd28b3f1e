//! One participant's loop: receive -> call the guest -> publish outputs -> ack.
//!
//! A participant is one long-lived instance of a component serving one graph process
//! (a MsgFlo role). It owns the instance's timers and restores parameters into every
//! new instance. A message that faults the guest is nacked (dead-lettered with a reason
//! naming process, port and kind of fault) and, if the fault left the instance in an
//! unknown state, the instance is recreated before the next message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::SelectAll;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::fault::{Fault, FaultKind};
use crate::message::Message;
use crate::runtime::{CallOutcome, Guest, GuestFactory, Limits, TimerCommand};
use crate::transport::{Delivery, Publisher, Subscription};

/// Most deliveries handled back to back before timers and shutdown are looked at again.
const BATCH: usize = 32;

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
#[derive(Debug, Default)]
pub struct Parameters {
    values: Mutex<Vec<(String, Message)>>,
}

impl Parameters {
    /// Records `msg` as the value of parameter `port`.
    pub fn set(&self, port: &str, msg: Message) {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        match values.iter_mut().find(|(p, _)| p == port) {
            Some(slot) => slot.1 = msg,
            None => values.push((port.to_string(), msg)),
        }
    }

    /// Every parameter, in first-set order.
    pub fn snapshot(&self) -> Vec<(String, Message)> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Counters a participant keeps; read by tests, benchmarks and the CLI summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Messages acked.
    pub processed: u64,
    /// Messages nacked (dead-lettered).
    pub failed: u64,
    /// Instances created after the first (recoveries from faults).
    pub recreated: u64,
    /// Timer calls made.
    pub timer_calls: u64,
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
    } = spec;
    let mut p = Participant {
        process,
        component,
        limits,
        outports,
        parameters,
        instance: None,
        timers: HashMap::new(),
        stats: Stats::default(),
        created: 0,
    };
    p.ensure_instance().await;
    for (port, msg) in initial {
        p.deliver_direct(&port, msg).await;
    }

    let mut merged: SelectAll<_> = SelectAll::new();
    for (port, sub) in inports {
        let port: Arc<str> = Arc::from(port);
        merged.push(Box::pin(futures_util::stream::unfold(
            sub,
            move |mut sub| {
                let port = port.clone();
                async move { sub.next().await.map(|d| ((port, d), sub)) }
            },
        )));
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
            item = merged.next(), if !merged.is_empty() => match item {
                Some((port, delivery)) => {
                    p.handle(&port, delivery).await;
                    // Under load, take what is already queued without another round
                    // through select!; bounded so timers and shutdown stay responsive.
                    for _ in 0..BATCH {
                        match merged.next().now_or_never() {
                            Some(Some((port, delivery))) => p.handle(&port, delivery).await,
                            _ => break,
                        }
                    }
                }
                None => break,
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
    instance: Option<Box<dyn Guest>>,
    timers: HashMap<u32, (Instant, Option<Duration>)>,
    stats: Stats,
    created: u64,
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
        for (port, msg) in self.parameters.snapshot() {
            let Some(instance) = self.instance.as_mut() else {
                break;
            };
            let outcome = instance.process(&port, &msg);
            if let Err(e) = self.apply(&port, outcome).await {
                tracing::warn!("restoring parameter: {e}");
            }
        }
        None
    }

    /// Delivers an IIP that does not come from a queue.
    async fn deliver_direct(&mut self, port: &str, msg: Message) {
        if let Err(reason) = self.call_process(port, &msg).await {
            tracing::warn!("initial packet rejected: {reason}");
        }
    }

    async fn handle(&mut self, port: &str, delivery: Delivery) {
        match self.call_process(port, &delivery.message).await {
            Ok(()) => {
                self.stats.processed += 1;
                delivery.ack();
            }
            Err(reason) => {
                self.stats.failed += 1;
                tracing::warn!("{reason}; message dead-lettered");
                delivery.nack(&reason);
                // Recreate now, so a timer-driven participant keeps running.
                self.ensure_instance().await;
            }
        }
    }

    async fn call_process(&mut self, port: &str, msg: &Message) -> Result<(), String> {
        if let Some(reason) = self.ensure_instance().await {
            return Err(format!(
                "process '{}' has no running instance: {reason}",
                self.process
            ));
        }
        if self
            .component
            .definition()
            .inport(port)
            .is_some_and(|p| p.parameter)
        {
            self.parameters.set(port, msg.clone());
        }
        let Some(instance) = self.instance.as_mut() else {
            return Err(format!(
                "process '{}' has no running instance",
                self.process
            ));
        };
        let outcome = instance.process(port, msg);
        self.apply(port, outcome).await.map_err(|f| f.to_string())
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
