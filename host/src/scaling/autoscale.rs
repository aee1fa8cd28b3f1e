//! The autoscaler of a running host: every poll interval, for each role of the guv
//! configuration, reads the backlog and the measured processing times, asks the policy,
//! resizes the role's instance pool, and reports the decision.
//!
//! The measuring is pure ([`Estimator`]); the task ([`Autoscaler::run`]) only reads
//! counters and queue depths and moves instances. Each decision is written as one JSON
//! line ([`DecisionRecord`]); a role that needs more instances than its maximum raises an
//! alert: a warning in the log when it gets there, and the `wasmflo_role_at_max` metric.
//!
//! Besides its poll interval, the autoscaler wakes on backlog pressure: when a message
//! starts while every instance of a pooled role is busy ([`RoleMetrics::pressure`]), it
//! reads that role's backlog at once and, if the policy wants more instances, scales up
//! then (at most once per [`PRESSURE_GAP`]; the signal is relayed by a thread of its own,
//! see [`super::pressure`]). Such a decision only ever adds
//! instances and is not remembered in the role's history or estimates, which stay paced
//! by the poll interval; its record says `"trigger":"pressure"`. So a spike is met within
//! about a millisecond whatever `pollinterval` is, where a poll-only autoscaler reacts a
//! poll interval late on average.
//!
//! External workers send no busy signal. For roles scaled by an external [`Actuator`] the
//! autoscaler reads the backlog every `watchinterval` instead (0.25 s by default) and makes
//! a pressure decision when it exceeds what the instances the role has, or has asked for,
//! can drain within its deadline at the configured processing time.
//!
//! The instance start time the policy plans with is measured for pooled roles (the
//! pool's queue set-up plus instantiate, `start` and parameter replay, smoothed; see
//! [`RoleMetrics::start_time`]) and replaces the configuration's `boot` once an instance
//! has started. For roles scaled by an external [`Actuator`], whose starts the host
//! cannot see, `boot` stays in use until a start is observed. A start is timed from the
//! decision that asked for more workers (so the actuator's own delay is part of it); once
//! the call has succeeded, it ends when the role's queue has as many consumers, where
//! the transport counts them (AMQP's passive `queue.declare`; read at each watch and poll,
//! so to within `watchinterval`), or when as many new workers as were added have announced
//! themselves with MsgFlo discovery messages naming the role's queue among their inports
//! (every transport; to within a message). Its duration is the measured start time,
//! smoothed like the pool's. A new worker is one whose discovery `id` this autoscaler has
//! not seen before, so workers already running must have announced themselves once
//! (MsgFlo re-announces every period / 2.2, 27 s by default) before a start that follows
//! the autoscaler's own start is timed exactly; until then their first announcements count
//! as joins and make the start look shorter.
//!
//! An external actuator (a command or an HTTP endpoint) is called by a task of its role's
//! own ([`super::external`]), never by the loop: a decision hands it the count wanted
//! (recorded as `asked`) and the loop goes on deciding for every role. The decision's
//! `to` is the count last confirmed; when the call ends, the loop records its outcome as a
//! record of its own (`"trigger":"actuator"`, `to` the confirmed count, or `from` and an
//! `error` on failure).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};

use super::actuator::{Actuator, ActuatorError};
use super::config::{ActuatorConfig, RoleConfig, ScalingConfig};
use super::external::{Caller, Outcome};
use super::policy::{History, Inputs, Policy, ProcessingStats, Sample};
use super::pressure::PressureRelay;
use crate::discovery::Participant;
use crate::metrics::{RoleMetrics, TimeSums};
use crate::network::Network;
use crate::transport::{Delivery, Subscription, Transport, queue_name};

/// Why an autoscaler cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AutoscaleError {
    /// The configuration names a role the graph does not run.
    #[error("role '{role}' is not a process of the graph; its processes: {known}")]
    UnknownRole {
        /// The role.
        role: String,
        /// The graph's processes.
        known: String,
    },
    /// The transport cannot read queue depths.
    #[error("the {0} transport cannot read queue depths")]
    NoBacklog(&'static str),
    /// A role's `https` endpoint cannot be set up (its CA file, most often).
    #[error("role '{role}': {source}")]
    Endpoint {
        /// The role.
        role: String,
        /// The cause.
        source: ActuatorError,
    },
}

/// One decision, as written to the decisions log (one JSON object per line).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DecisionRecord {
    /// Seconds since the autoscaler started.
    pub t: f64,
    /// The role.
    pub role: String,
    /// The policy deciding.
    pub policy: &'static str,
    /// Messages waiting or in flight.
    pub backlog: u64,
    /// Of those, in flight.
    pub in_flight: u64,
    /// Measured arrivals per second.
    pub arrival_rate: f64,
    /// Processing-time mean and standard deviation used, seconds.
    pub processing_mean: f64,
    /// See `processing_mean`.
    pub processing_stddev: f64,
    /// Instances before.
    pub from: u32,
    /// Instances after.
    pub to: u32,
    /// Instances needed before clamping to the maximum.
    pub wanted: u32,
    /// Whether the role needs more than its maximum.
    pub at_max: bool,
    /// The instance start time planned with, seconds (measured, or the configured `boot`).
    pub start_time: f64,
    /// What woke the autoscaler: `poll`, `pressure` (every instance busy), or `actuator`
    /// (an external actuator's call ended: `to` is what it confirmed).
    pub trigger: &'static str,
    /// The count handed to an external actuator (by this decision, or the call whose
    /// outcome an `actuator` record reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asked: Option<u32>,
    /// Why an external actuator's call failed (`actuator` records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Least time between two pressure wake-ups: bounds the backlog reads a saturated role
/// causes (on AMQP each is a round trip to the broker).
pub const PRESSURE_GAP: Duration = Duration::from_millis(1);

/// What woke the autoscaler for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Poll,
    Pressure,
}

/// Turns successive counter readings into an arrival rate and processing statistics.
///
/// Arrivals over a poll are what the backlog grew by plus what was completed; the rate
/// is smoothed (half weight per poll) so one bursty poll does not swing the decision.
/// Processing statistics need a few calls in the window, otherwise the last estimate
/// (or, before any, the configuration) stands.
#[derive(Debug, Clone, Default)]
pub struct Estimator {
    last: Option<Reading>,
    rate: Option<f64>,
    processing: Option<ProcessingStats>,
}

/// One poll's counters for a role.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// When, seconds.
    pub at: f64,
    /// Waiting plus in flight.
    pub backlog: u64,
    /// Messages settled so far (acked or failed).
    pub completed: u64,
    /// Processing-time sums so far.
    pub times: TimeSums,
}

/// Calls a window needs before its processing statistics replace the previous ones.
const MIN_TIMED_CALLS: u64 = 3;

impl Estimator {
    /// Takes a reading; returns the arrival rate (jobs/s) and processing statistics to use.
    pub fn observe(&mut self, now: Reading) -> (Option<f64>, Option<ProcessingStats>) {
        if let Some(last) = self.last {
            let dt = now.at - last.at;
            if dt > 0.0 {
                let grew = now.backlog as f64 - last.backlog as f64;
                let done = now.completed.wrapping_sub(last.completed) as f64;
                let sample = ((grew + done) / dt).max(0.0);
                self.rate = Some(match self.rate {
                    Some(r) => 0.5 * r + 0.5 * sample,
                    None => sample,
                });
            }
            if let Some((n, mean, stddev)) = now.times.since(&last.times)
                && n >= MIN_TIMED_CALLS
            {
                self.processing = Some(ProcessingStats { mean, stddev });
            }
        }
        self.last = Some(now);
        (self.rate, self.processing)
    }

    /// The estimates of the last reading, without taking a new one.
    pub fn latest(&self) -> (Option<f64>, Option<ProcessingStats>) {
        (self.rate, self.processing)
    }
}

/// A role under the autoscaler.
#[derive(Debug)]
struct Scaled {
    config: RoleConfig,
    actuator: Actuator,
    /// Instances of an external role its actuator last confirmed (`None` before that).
    requested: Option<u32>,
    /// A count handed to the external actuator and not yet answered.
    asked: Option<u32>,
    /// The external actuator's task, while the autoscaler runs.
    caller: Option<Caller>,
    /// The role's last decision (the base of an `actuator` record).
    last: Option<DecisionRecord>,
    /// An external scale-up being timed.
    starting: Option<Starting>,
    /// The measured start time of an external role's workers.
    start_time: Option<Duration>,
    /// When the external actuator was handed the count of the call in flight.
    asked_at: Option<Duration>,
    /// Discovery ids of the external role's workers, with when each last announced
    /// itself (see [`Seen`]).
    seen: Seen,
    /// When the latest of them first announced themselves, oldest first.
    joins: VecDeque<Duration>,
    queues: Vec<String>,
    metrics: Arc<RoleMetrics>,
    history: History,
    estimator: Estimator,
    saturated: bool,
}

/// An external scale-up being timed.
#[derive(Debug, Clone, Copy)]
struct Starting {
    /// When the count was asked for (autoscaler time).
    since: Duration,
    /// The count before.
    from: u32,
    /// The count confirmed.
    to: u32,
}

/// The autoscaler task of one network.
pub struct Autoscaler {
    config: ScalingConfig,
    policy: Box<dyn Policy + Send + Sync>,
    roles: Vec<Scaled>,
    transport: Arc<dyn Transport>,
    sink: Box<dyn Write + Send>,
    records: Option<tokio::sync::mpsc::UnboundedSender<DecisionRecord>>,
    /// Whether backlog pressure wakes it (see the module docs); on by default.
    pressure: bool,
}

impl std::fmt::Debug for Autoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autoscaler")
            .field("policy", &self.policy.name())
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl Autoscaler {
    /// An autoscaler of `network`'s processes named in `config`, writing decisions to `sink`.
    ///
    /// A role's backlog is read from its process's inport queues (parameter ports
    /// excepted), or from guv's `queue` when that names something other than the role.
    pub fn new(
        config: ScalingConfig,
        policy: Box<dyn Policy + Send + Sync>,
        network: &Network,
        sink: Box<dyn Write + Send>,
    ) -> Result<Self, AutoscaleError> {
        let transport = network.transport().clone();
        if transport.backlog_reader().is_none() {
            return Err(AutoscaleError::NoBacklog(transport.kind()));
        }
        let mut roles = Vec::new();
        for role in &config.roles {
            let info = network.process(&role.name);
            let actuator = Actuator::for_config(&role.actuator, network.pool(&role.name)).map_err(
                |source| AutoscaleError::Endpoint {
                    role: role.name.clone(),
                    source,
                },
            )?;
            let Some(actuator) = actuator else {
                let known = network
                    .processes()
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(AutoscaleError::UnknownRole {
                    role: role.name.clone(),
                    known,
                });
            };
            let queues = match info {
                Some(info) if role.queue == role.name && role.actuator == ActuatorConfig::Pool => {
                    info.component
                        .definition
                        .inports
                        .iter()
                        .filter(|p| !p.parameter)
                        .map(|p| queue_name(&role.name, &p.id))
                        .collect()
                }
                _ => vec![role.queue.clone()],
            };
            roles.push(Scaled {
                config: role.clone(),
                actuator,
                requested: None,
                asked: None,
                caller: None,
                last: None,
                starting: None,
                start_time: None,
                asked_at: None,
                seen: Seen::default(),
                joins: VecDeque::new(),
                queues,
                metrics: network.metrics().role(&role.name),
                history: History::for_config(&config),
                estimator: Estimator::default(),
                saturated: false,
            });
        }
        Ok(Autoscaler {
            config,
            policy,
            roles,
            transport,
            sink,
            records: None,
            pressure: true,
        })
    }

    /// Also sends every decision on `tx` (tests, benchmarks).
    pub fn with_records(mut self, tx: tokio::sync::mpsc::UnboundedSender<DecisionRecord>) -> Self {
        self.records = Some(tx);
        self
    }

    /// Also trusts the CAs of `ca_file` (PEM) for `https` endpoints (`--ca-file`).
    pub fn with_ca_file(mut self, ca_file: &Path) -> Result<Self, AutoscaleError> {
        for role in &mut self.roles {
            role.actuator = role
                .actuator
                .clone()
                .with_ca_file(ca_file)
                .map_err(|source| AutoscaleError::Endpoint {
                    role: role.config.name.clone(),
                    source,
                })?;
        }
        Ok(self)
    }

    /// Decides only every poll interval, not on backlog pressure (the benchmark's baseline).
    pub fn poll_only(mut self) -> Self {
        self.pressure = false;
        self
    }

    /// Decides every poll interval, and on backlog pressure, until `stop` resolves.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        let began = Instant::now();
        for role in &self.roles {
            let Actuator::Pool(pool) = &role.actuator else {
                continue;
            };
            let n = pool.instances().await;
            let clamped = n.clamp(role.config.minimum.max(1), role.config.maximum.max(1));
            if clamped != n
                && let Err(e) = pool.resize(clamped).await
            {
                tracing::error!(role = %role.config.name, "cannot resize: {e}");
            }
        }
        let watched: Vec<(usize, Arc<RoleMetrics>)> = self
            .roles
            .iter()
            .enumerate()
            .filter(|(_, r)| self.pressure && r.actuator.is_pool())
            .map(|(i, r)| (i, r.metrics.clone()))
            .collect();
        for (_, m) in &watched {
            m.watch_pressure(true);
        }
        let mut relay = PressureRelay::start(watched.clone(), PRESSURE_GAP);
        let (done, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
        for (i, role) in self.roles.iter_mut().enumerate() {
            if !role.actuator.is_pool() {
                let caller = Caller::spawn(
                    i,
                    role.config.name.clone(),
                    role.actuator.clone(),
                    done.clone(),
                );
                role.caller = Some(caller);
            }
        }
        drop(done);
        // External workers announce themselves: their discovery messages time their starts.
        let mut discoveries = None;
        if self.roles.iter().any(|r| r.caller.is_some()) {
            match self.transport.discoveries().await {
                Ok(sub) => discoveries = Some(sub),
                Err(e) => tracing::warn!(
                    "not timing external starts from discovery messages (`boot` stays in use where the transport counts no consumers): {e}"
                ),
            }
        }
        let poll = self.config.poll_interval.max(Duration::from_micros(100));
        let mut ticks = tokio::time::interval(poll);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The host sees no busy signal from external workers: their backlog is watched.
        let watching =
            !self.config.watch_interval.is_zero() && self.roles.iter().any(|r| r.caller.is_some());
        let mut watch =
            tokio::time::interval(self.config.watch_interval.max(Duration::from_millis(1)));
        watch.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                _ = ticks.tick() => {
                    self.measure_starts(began.elapsed()).await;
                    let now = began.elapsed();
                    for i in 0..self.roles.len() {
                        self.decide(i, now, Trigger::Poll).await;
                    }
                }
                i = relay.next() => {
                    self.decide(i, began.elapsed(), Trigger::Pressure).await;
                }
                Some(outcome) = outcomes.recv() => {
                    self.settle(outcome, began.elapsed());
                }
                _ = watch.tick(), if watching && self.pressure => {
                    self.measure_starts(began.elapsed()).await;
                    self.watch_external(began.elapsed()).await;
                }
                delivery = next_discovery(&mut discoveries) => match delivery {
                    Some(d) => {
                        self.discovered(&d.message.data, began.elapsed());
                        d.ack();
                    }
                    None => discoveries = None,
                },
            }
        }
        drop(relay);
        for role in &mut self.roles {
            role.caller = None;
        }
        for (_, m) in &watched {
            m.watch_pressure(false);
        }
    }

    async fn decide(&mut self, index: usize, now: Duration, trigger: Trigger) {
        let Some(reader) = self.transport.backlog_reader() else {
            return;
        };
        let role = &mut self.roles[index];
        let from = match &role.actuator {
            Actuator::Pool(pool) => pool.instances().await,
            _ => role.requested.unwrap_or(role.config.minimum),
        };
        // What the role will have once calls in flight are done: pressure adds to that.
        let current = match &role.caller {
            Some(_) => role.asked.or(role.requested).unwrap_or(from),
            None => from,
        };
        if trigger == Trigger::Pressure && current >= role.config.maximum {
            return;
        }
        let mut waiting = 0u64;
        for queue in &role.queues {
            match reader.waiting(queue).await {
                Ok(n) => waiting += n,
                Err(e) => {
                    tracing::warn!(role = %role.config.name, "reading the backlog of {queue} ({}): {e}", reader.method());
                    return;
                }
            }
        }
        let in_flight = role.metrics.in_flight();
        let backlog = waiting + in_flight;
        role.metrics.set_backlog(backlog);
        let (rate, processing) = match trigger {
            Trigger::Poll => role.estimator.observe(Reading {
                at: now.as_secs_f64(),
                backlog,
                completed: role.metrics.processed() + role.metrics.failed(),
                times: role.metrics.time_sums(),
            }),
            Trigger::Pressure => role.estimator.latest(),
        };
        let start_time = if role.actuator.is_pool() {
            role.metrics.start_time()
        } else {
            role.start_time
        };
        let decision = {
            let mut inputs = Inputs::new(&self.config, &role.config, &role.history);
            inputs.now = now;
            inputs.backlog = backlog;
            inputs.arrival_rate = rate;
            inputs.processing = processing;
            inputs.current = Some(from);
            inputs.start_time = start_time;
            self.policy.decide(&inputs)
        };
        let wanted = match (trigger, decision.instances) {
            (Trigger::Poll, n) => n,
            (Trigger::Pressure, Some(n)) if n > current => Some(n),
            // Pressure only adds instances; the next poll decides the rest.
            (Trigger::Pressure, _) => return,
        };
        if trigger == Trigger::Poll {
            role.history.record(Sample {
                at: now,
                estimate: decision.estimate,
                arrival_rate: rate.unwrap_or(0.0),
            });
        }
        let mut to = from;
        let mut asked = None;
        match (wanted, &role.caller) {
            (None, _) => {}
            // An external role is told its count at the first decision, changed or not,
            // then whenever it differs from the count confirmed or asked for.
            (Some(n), Some(caller)) => {
                if Some(n) != role.asked.or(role.requested) {
                    caller.ask(n);
                    role.asked = Some(n);
                    // A count replacing a pending one keeps the first ask's time.
                    role.asked_at.get_or_insert(now);
                    asked = Some(n);
                }
            }
            (Some(n), None) if n != from && role.actuator.is_pool() => {
                match role.actuator.scale(&role.config.name, n).await {
                    Ok(now_running) => to = now_running,
                    Err(e) => tracing::error!(role = %role.config.name, "cannot scale to {n}: {e}"),
                }
            }
            (Some(_), None) => {}
        }
        let saturated = decision.saturated(&role.config);
        role.metrics.decided(saturated);
        if saturated && !role.saturated {
            tracing::warn!(
                role = %role.config.name,
                "at its maximum of {} instances and needs {}: jobs may miss the {:?} deadline",
                role.config.maximum,
                decision.wanted,
                role.config.deadline
            );
        } else if !saturated && role.saturated {
            tracing::info!(role = %role.config.name, "back within its maximum");
        }
        role.saturated = saturated;
        let used = processing.unwrap_or(ProcessingStats {
            mean: role.config.processing.as_secs_f64(),
            stddev: role.config.stddev.as_secs_f64(),
        });
        let record = DecisionRecord {
            t: now.as_secs_f64(),
            role: role.config.name.clone(),
            policy: self.policy.name(),
            backlog,
            in_flight,
            arrival_rate: rate.unwrap_or(0.0),
            processing_mean: used.mean,
            processing_stddev: used.stddev,
            from,
            to,
            wanted: decision.wanted,
            at_max: saturated,
            start_time: start_time.unwrap_or(role.config.boot).as_secs_f64(),
            trigger: match trigger {
                Trigger::Poll => "poll",
                Trigger::Pressure => "pressure",
            },
            asked,
            error: None,
        };
        role.last = Some(record.clone());
        self.emit(record);
    }

    /// Reads the backlog of each externally scaled role; one that the instances it has (or
    /// has asked for) cannot drain within its deadline gets a pressure decision.
    async fn watch_external(&mut self, now: Duration) {
        let transport = self.transport.clone();
        let Some(reader) = transport.backlog_reader() else {
            return;
        };
        let mut pressed = Vec::new();
        'roles: for (i, role) in self.roles.iter().enumerate() {
            if role.caller.is_none() {
                continue;
            }
            let count = role.asked.or(role.requested).unwrap_or(role.config.minimum);
            if count >= role.config.maximum {
                continue;
            }
            let mut waiting = 0u64;
            for queue in &role.queues {
                match reader.waiting(queue).await {
                    Ok(n) => waiting += n,
                    // The next poll reports it.
                    Err(_) => continue 'roles,
                }
            }
            if waiting as f64 > drainable(&role.config, count) {
                pressed.push(i);
            }
        }
        for i in pressed {
            self.decide(i, now, Trigger::Pressure).await;
        }
    }

    /// Times the external scale-ups under way: one ends when the role's queues have as
    /// many consumers as instances were asked for.
    async fn measure_starts(&mut self, now: Duration) {
        let transport = self.transport.clone();
        let Some(reader) = transport.backlog_reader() else {
            return;
        };
        'roles: for role in &mut self.roles {
            let Some(starting) = role.starting else {
                continue;
            };
            let mut consumers = 0u64;
            for queue in &role.queues {
                match reader.consumers(queue).await {
                    Ok(Some(n)) => consumers += n,
                    // The transport cannot tell: discovery messages may.
                    Ok(None) | Err(_) => continue 'roles,
                }
            }
            if consumers >= u64::from(starting.to) {
                role.started(now.saturating_sub(starting.since));
            }
        }
    }

    /// Notes a discovery message: a worker of an external role announcing itself for the
    /// first time may end a start being timed.
    fn discovered(&mut self, data: &[u8], now: Duration) {
        let Ok(participant) = Participant::parse(data) else {
            return;
        };
        for role in &mut self.roles {
            let serves = participant
                .inports
                .iter()
                .any(|p| role.queues.contains(&p.queue));
            // Re-announcements of a worker seen before are not joins.
            if role.caller.is_none() || !serves || !role.seen.insert(&participant.id, now) {
                continue;
            }
            role.joins.push_back(now);
            if role.joins.len() > MAX_JOINS {
                role.joins.pop_front();
            }
            role.count_joins();
        }
    }

    /// Records the outcome of an external actuator's call.
    fn settle(&mut self, outcome: Outcome, now: Duration) {
        let role = &mut self.roles[outcome.index];
        if role.asked == Some(outcome.asked) {
            role.asked = None;
        }
        let from = role.requested.unwrap_or(role.config.minimum);
        let since = role.asked_at.take().unwrap_or(now);
        let (to, error) = match outcome.result {
            Ok(n) => {
                role.requested = Some(n);
                role.starting = (n > from).then_some(Starting { since, from, to: n });
                // Workers may have announced themselves before the call returned.
                role.count_joins();
                (n, None)
            }
            Err(e) => {
                tracing::error!(role = %role.config.name, "cannot scale to {}: {e}", outcome.asked);
                (from, Some(e.to_string()))
            }
        };
        let Some(last) = &role.last else {
            return;
        };
        let record = DecisionRecord {
            t: now.as_secs_f64(),
            from,
            to,
            trigger: "actuator",
            asked: Some(outcome.asked),
            error,
            ..last.clone()
        };
        self.emit(record);
    }

    /// Writes `record` to the sink and the records channel.
    fn emit(&mut self, record: DecisionRecord) {
        if let Ok(line) = serde_json::to_string(&record)
            && let Err(e) = writeln!(self.sink, "{line}").and_then(|()| self.sink.flush())
        {
            tracing::warn!("writing a scaling decision: {e}");
        }
        if let Some(tx) = &self.records {
            let _ = tx.send(record);
        }
    }
}

/// First announcements remembered per external role: enough for any one scale-up.
const MAX_JOINS: usize = 1024;

/// The most discovery ids a role remembers. Workers come and go with new ids; a role that
/// is scaled for weeks must not keep every one it ever saw.
const MAX_SEEN: usize = 4096;

/// Discovery ids seen, bounded by [`MAX_SEEN`]: when full, the id announced least recently
/// is forgotten. A live worker re-announces itself every 27 s (MsgFlo's default), so only
/// one silent longer than thousands of others is forgotten, and if it announces itself
/// again it counts as one join more.
#[derive(Debug, Default)]
struct Seen {
    last: HashMap<String, Duration>,
}

impl Seen {
    /// Notes `id` announced at `now`; whether it is new.
    fn insert(&mut self, id: &str, now: Duration) -> bool {
        if let Some(at) = self.last.get_mut(id) {
            *at = now;
            return false;
        }
        if self.last.len() >= MAX_SEEN
            && let Some(oldest) = self
                .last
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(id, _)| id.clone())
        {
            self.last.remove(&oldest);
        }
        self.last.insert(id.to_owned(), now);
        true
    }
}

impl Scaled {
    /// Ends the start being timed once as many new workers as it added have announced
    /// themselves since it was asked for.
    fn count_joins(&mut self) {
        let Some(starting) = self.starting else {
            return;
        };
        let added = (starting.to - starting.from) as usize;
        let last = self
            .joins
            .iter()
            .filter(|&&t| t >= starting.since)
            .nth(added.saturating_sub(1));
        if let Some(&t) = last {
            self.started(t.saturating_sub(starting.since));
        }
    }

    /// Ends the start being timed, which took `sample`.
    fn started(&mut self, sample: Duration) {
        // Each new start moves the estimate a quarter of the way, as for pools.
        self.start_time = Some(match self.start_time {
            Some(old) => old.mul_f64(0.75) + sample.mul_f64(0.25),
            None => sample,
        });
        self.starting = None;
    }
}

/// The next discovery message, or never when there is no subscription.
async fn next_discovery(discoveries: &mut Option<Subscription>) -> Option<Delivery> {
    match discoveries {
        Some(sub) => sub.next().await,
        None => std::future::pending().await,
    }
}

/// How many jobs `count` instances of `role` finish within its deadline, by its
/// configured processing time.
fn drainable(role: &RoleConfig, count: u32) -> f64 {
    let processing = role.processing.as_secs_f64();
    if processing <= 0.0 {
        return f64::INFINITY;
    }
    f64::from(count) * f64::from(role.concurrency.max(1)) * role.deadline.as_secs_f64() / processing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_are_bounded_and_the_least_recent_is_forgotten() {
        let mut seen = Seen::default();
        let at = Duration::from_secs;
        assert!(seen.insert("w0", at(0)));
        for i in 1..MAX_SEEN {
            assert!(seen.insert(&format!("w{i}"), at(10)));
        }
        // w0 re-announces itself: not new, and now among the most recent.
        assert!(!seen.insert("w0", at(20)));
        assert!(seen.insert("new", at(30)), "a new id when full");
        assert_eq!(seen.last.len(), MAX_SEEN);
        assert!(!seen.insert("w0", at(40)), "the re-announced id is kept");
        let forgotten = (1..MAX_SEEN)
            .filter(|i| !seen.last.contains_key(&format!("w{i}")))
            .count();
        assert_eq!(forgotten, 1, "exactly one silent id was forgotten");
    }

    fn reading(at: f64, backlog: u64, completed: u64, times: TimeSums) -> Reading {
        Reading {
            at,
            backlog,
            completed,
            times,
        }
    }

    #[test]
    fn arrivals_are_growth_plus_completions() {
        let mut e = Estimator::default();
        let t0 = TimeSums::default();
        assert_eq!(e.observe(reading(0.0, 10, 0, t0)), (None, None));
        // 10 more waiting and 20 done in 1 s: 30 arrived.
        let t1 = TimeSums {
            count: 20,
            sum_us: 20 * 1000,
            sq_us: 20 * 1000 * 1000,
        };
        let (rate, processing) = e.observe(reading(1.0, 20, 20, t1));
        assert_eq!(rate, Some(30.0));
        let p = processing.unwrap_or(ProcessingStats {
            mean: 0.0,
            stddev: 1.0,
        });
        assert!((p.mean - 0.001).abs() < 1e-12 && p.stddev.abs() < 1e-9);
        // The queue emptied with nothing done (clipped at no arrivals): the rate halves,
        // the processing estimate stands.
        let (rate, processing) = e.observe(reading(2.0, 0, 20, t1));
        assert_eq!(rate, Some(15.0));
        assert_eq!(processing, Some(p));
    }
}
