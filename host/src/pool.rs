//! A process's instance pool: N participants of one component consuming the same inport
//! queues, resized while the graph runs.
//!
//! Every instance subscribes to the process's inport queues; the transport shares a
//! queue's messages among its consumers (a flume MPMC channel in-process, competing
//! consumers on AMQP, the connection's local queue on MQTT), so the instances take
//! turns. Growing spawns instances on the code version running now; shrinking tells the
//! newest instances to stop, and each finishes the message in hand first. A message
//! taken but not started is not lost: in-process it stays in the channel; on a broker it
//! returns unacked (AMQP requeues a closed consumer's deliveries, MQTT keeps the
//! connection's local queue). Parameters are shared ([`Parameters`]): the instance that
//! takes a parameter message applies it, every other instance applies it before its next
//! message or timer, and a new instance starts with the last values; timers armed by
//! `start` run in every instance.
//!
//! The time to set up an instance's queues is reported to the role's metrics; with the
//! participant's instantiate-and-start time it makes the measured start time the
//! autoscaler plans with.

use std::sync::Arc;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::message::Message;
use crate::metrics::RoleMetrics;
use crate::participant::{
    self, FaultEvent, Parameters, ParticipantSpec, Phase, Report, Stats, SwapEvent, Update,
};
use crate::runtime::Limits;
use crate::transport::{Transport, TransportError, queue_name};

/// How many instances a process may run (node metadata `min`/`max`, or the guv config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Fewest instances; the pool starts with this many.
    pub min: u32,
    /// Most instances.
    pub max: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { min: 1, max: 1 }
    }
}

impl Bounds {
    /// `n` clamped to the bounds.
    pub fn clamp(&self, n: u32) -> u32 {
        n.clamp(self.min, self.max.max(self.min))
    }
}

/// What every instance of a process shares.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// The process (role).
    pub process: Arc<str>,
    /// Resource limits per instance.
    pub limits: Limits,
    /// Where its queues live.
    pub transport: Arc<dyn Transport>,
    /// The code version offered now (live coding); each instance starts on the current one.
    pub updates: watch::Receiver<Update>,
    /// Parameter values, replayed into every new instance.
    pub parameters: Arc<Parameters>,
    /// Swap outcomes.
    pub swap_events: Option<tokio::sync::broadcast::Sender<SwapEvent>>,
    /// Dead-lettered messages.
    pub faults: Option<tokio::sync::broadcast::Sender<FaultEvent>>,
    /// The role's counters.
    pub metrics: Arc<RoleMetrics>,
}

struct Instance {
    phase: watch::Sender<Phase>,
    task: JoinHandle<Report>,
}

/// A process's running instances.
pub struct Pool {
    spec: PoolSpec,
    bounds: Bounds,
    phase: Phase,
    instances: Vec<Instance>,
    /// Instances told to stop that may still finish their message.
    stopping: Vec<JoinHandle<Report>>,
    /// Counters of instances that ended.
    ended: Stats,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("process", &self.spec.process)
            .field("instances", &self.instances.len())
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts `bounds.min` instances (at least one); the first gets the `initial` IIPs.
    pub async fn start(
        spec: PoolSpec,
        bounds: Bounds,
        phase: Phase,
        initial: Vec<(String, Message)>,
    ) -> Result<Pool, TransportError> {
        let mut pool = Pool {
            spec,
            bounds,
            phase,
            instances: Vec::new(),
            stopping: Vec::new(),
            ended: Stats::default(),
        };
        pool.spawn(initial).await?;
        pool.resize(bounds.min).await?;
        Ok(pool)
    }

    async fn spawn(&mut self, initial: Vec<(String, Message)>) -> Result<(), TransportError> {
        let began = std::time::Instant::now();
        let mut updates = self.spec.updates.clone();
        let component = updates.borrow_and_update().clone();
        let def = component.definition();
        let transport = &self.spec.transport;
        let mut inports = Vec::new();
        for port in &def.inports {
            let queue = queue_name(&self.spec.process, &port.id);
            inports.push((port.id.clone(), transport.subscribe(&queue).await?));
        }
        // Every outport gets a publisher, wired or not: a topic with no binding
        // discards, as a fanout exchange does, and can be bound later.
        let mut outports = Vec::new();
        for port in &def.outports {
            let topic = queue_name(&self.spec.process, &port.id);
            outports.push(Some(transport.publisher(&topic).await?));
        }
        let spec = ParticipantSpec {
            process: self.spec.process.clone(),
            component,
            limits: self.spec.limits.clone(),
            inports,
            outports,
            initial,
            parameters: self.spec.parameters.clone(),
            transport: transport.clone(),
            updates: Some(updates),
            swap_events: self.spec.swap_events.clone(),
            faults: self.spec.faults.clone(),
            metrics: Some(self.spec.metrics.clone()),
        };
        self.spec.metrics.instance_setup(began.elapsed());
        let (phase, watcher) = watch::channel(self.phase);
        let task = tokio::spawn(participant::run(spec, watcher));
        self.instances.push(Instance { phase, task });
        self.spec.metrics.set_instances(self.instances.len() as u64);
        Ok(())
    }

    /// Runs `n` instances (clamped to at least one): starts new ones on the current
    /// code, or tells the newest to stop after their current message. Returns the count.
    pub async fn resize(&mut self, n: u32) -> Result<u32, TransportError> {
        let n = n.max(1) as usize;
        while self.instances.len() < n {
            self.spawn(Vec::new()).await?;
        }
        while self.instances.len() > n {
            if let Some(gone) = self.instances.pop() {
                gone.phase.send_replace(Phase::Stopped);
                self.stopping.push(gone.task);
            }
        }
        self.spec.metrics.set_instances(self.instances.len() as u64);
        self.reap().await;
        Ok(self.instances.len() as u32)
    }

    /// Collects the counters of stopped instances that have finished.
    async fn reap(&mut self) {
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.stopping)
            .into_iter()
            .partition(JoinHandle::is_finished);
        self.stopping = running;
        for task in done {
            self.absorb(task).await;
        }
    }

    async fn absorb(&mut self, task: JoinHandle<Report>) {
        match task.await {
            Ok(report) => add(&mut self.ended, &report.stats),
            Err(e) => tracing::error!(process = &*self.spec.process, "instance task failed: {e}"),
        }
    }

    /// Instances running (not counting those finishing their last message).
    pub fn len(&self) -> u32 {
        self.instances.len() as u32
    }

    /// Whether no instance runs (never true for a started pool).
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The bounds set at start (from node metadata).
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// The role's counters.
    pub fn metrics(&self) -> &Arc<RoleMetrics> {
        &self.spec.metrics
    }

    /// Moves every instance to `phase`.
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        for i in &self.instances {
            i.phase.send_replace(phase);
        }
    }

    /// Stops every instance after its current message and sums their counters.
    pub async fn finish(mut self) -> Report {
        self.set_phase(Phase::Stopped);
        let tasks: Vec<_> = self
            .instances
            .drain(..)
            .map(|i| i.task)
            .chain(std::mem::take(&mut self.stopping))
            .collect();
        for task in tasks {
            self.absorb(task).await;
        }
        self.spec.metrics.set_instances(0);
        Report {
            process: self.spec.process.clone(),
            stats: self.ended,
        }
    }
}

fn add(total: &mut Stats, s: &Stats) {
    total.processed += s.processed;
    total.failed += s.failed;
    total.batched += s.batched;
    total.recreated += s.recreated;
    total.timer_calls += s.timer_calls;
    total.swaps += s.swaps;
    total.rejected_swaps += s.rejected_swaps;
}

/// A shared handle on a pool, for the autoscaler and the network. Once finished it
/// resizes nothing.
#[derive(Debug, Clone)]
pub struct PoolHandle(Arc<Mutex<Option<Pool>>>);

impl PoolHandle {
    /// Shares `pool`.
    pub fn new(pool: Pool) -> Self {
        PoolHandle(Arc::new(Mutex::new(Some(pool))))
    }

    /// See [`Pool::resize`]; 0 once the pool is finished.
    pub async fn resize(&self, n: u32) -> Result<u32, TransportError> {
        match self.0.lock().await.as_mut() {
            Some(pool) => pool.resize(n).await,
            None => Ok(0),
        }
    }

    /// Instances running (see [`Pool::len`]); 0 once the pool is finished.
    pub async fn instances(&self) -> u32 {
        self.0.lock().await.as_ref().map_or(0, Pool::len)
    }

    /// See [`Pool::set_phase`].
    pub async fn set_phase(&self, phase: Phase) {
        if let Some(pool) = self.0.lock().await.as_mut() {
            pool.set_phase(phase);
        }
    }

    /// Stops the pool (see [`Pool::finish`]); `None` if it was finished already.
    pub async fn finish(&self) -> Option<Report> {
        let pool = self.0.lock().await.take()?;
        Some(pool.finish().await)
    }
}
