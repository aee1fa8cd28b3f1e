//! A discrete-event simulation of one role under a scaling policy.
//!
//! Jobs arrive as a Poisson process whose rate follows a [`Shape`] (non-homogeneous, by
//! thinning), wait in one FIFO queue, and run on `instances × concurrency` slots for a
//! lognormal time with the role's processing mean and stddev. Every poll interval the
//! policy sees what a host would (backlog = waiting + in flight, the arrival rate measured
//! over the last minute as an exponentially weighted average, the instances running or
//! starting) and its decision is applied: new instances serve after the start time;
//! removed instances go starting ones first, then idle ones, and busy ones once their job
//! ends. An instance costs from the moment it is asked for until it stops.
//!
//! A job misses its deadline when it finishes more than `deadline` after it arrived; jobs
//! still queued at the end count as misses if already older than the deadline.
//!
//! [`Faults`] optionally injects what a real host meets: instance crashes (the job in hand
//! goes back to the front of the queue, as a broker redelivers an unacked message, and a
//! replacement serves after the start time) and broker timeouts (the backlog read of a
//! poll fails, so that poll decides nothing).
//!
//! The *clairvoyant* cost is what an oracle pays that knows the rate of each minute in
//! advance, starts instances instantly, and keeps them all busy: per minute, exactly the
//! work that minute brings (`λ·P/k` instance-seconds per second, fractional), but never
//! fewer than the minimum nor more than the maximum. No policy does the expected work with
//! less, so it is a lower bound; it is not reachable (it leaves no headroom for the
//! randomness of arrivals and processing). [`Outcome::busy_floor`] is the same floor
//! measured on the simulated jobs, without the minimum.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use super::config::{RoleConfig, ScalingConfig};
use super::load::Shape;
use super::policy::{DeadlinePolicy, History, Inputs, Policy, ProcessingStats, Sample};
use super::queueing::lognormal_params;

/// How processing times are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceTimes {
    /// Lognormal with the role's processing mean and stddev.
    Lognormal,
    /// Exponential with the role's processing mean (for M/M/m checks).
    Exponential,
}

/// One simulation run's setting.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The role simulated.
    pub role: RoleConfig,
    /// Time between decisions.
    pub poll_interval: Duration,
    /// Scale-down window.
    pub history_window: Duration,
    /// Instance start time.
    pub start_time: Duration,
    /// Load shape; named shapes scale with the role's capacity.
    pub shape: Shape,
    /// Simulated seconds.
    pub duration: f64,
    /// PRNG seed.
    pub seed: u64,
    /// Processing-time distribution.
    pub service: ServiceTimes,
    /// Crashes and broker timeouts injected.
    pub faults: Faults,
}

/// Faults a simulation injects; none by default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Crashes per instance-hour of a running instance (Poisson).
    pub crashes_per_hour: f64,
    /// Fraction of polls whose backlog read times out (0–1): no decision that poll.
    pub broker_timeouts: f64,
}

impl Scenario {
    /// A scenario for `role` of `config` with lognormal processing times.
    pub fn new(config: &ScalingConfig, role: &RoleConfig, shape: Shape, duration: f64) -> Self {
        Scenario {
            role: role.clone(),
            poll_interval: config.poll_interval,
            history_window: config.history,
            start_time: role.boot,
            shape,
            duration,
            seed: 1,
            service: ServiceTimes::Lognormal,
            faults: Faults::default(),
        }
    }

    /// The rate C the named shapes are scaled by: maximum × concurrency / processing.
    pub fn capacity(&self) -> f64 {
        self.role.max_throughput()
    }

    /// Arrivals per second at `t`.
    pub fn rate(&self, t: f64) -> f64 {
        self.shape.rate(t, self.capacity())
    }
}

/// What one run cost and how well it did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Jobs that arrived.
    pub jobs: u64,
    /// Jobs that missed the deadline.
    pub misses: u64,
    /// Instance-seconds paid (from request to stop).
    pub instance_seconds: f64,
    /// Mean time jobs waited before processing started, seconds.
    pub mean_wait: f64,
    /// Processing seconds divided by concurrency: the absolute cost floor.
    pub busy_floor: f64,
    /// Decisions that changed the number of instances.
    pub scale_actions: u64,
    /// Most instances at once.
    pub peak_instances: u32,
    /// Instances that crashed.
    pub crashes: u64,
    /// Polls that decided nothing because the backlog read timed out.
    pub skipped_decisions: u64,
}

impl Outcome {
    /// Misses as a percentage of jobs.
    pub fn miss_percent(&self) -> f64 {
        if self.jobs == 0 {
            0.0
        } else {
            100.0 * self.misses as f64 / self.jobs as f64
        }
    }
}

/// splitmix64: a small, fast, seedable generator (no `rand` dependency needed).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Exponential with this mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Time constant of the simulated host's arrival-rate measurement, seconds.
const RATE_WINDOW: f64 = 60.0;

/// Event times as ordered integers (non-negative floats order like their bits).
fn bits(t: f64) -> u64 {
    t.max(0.0).to_bits()
}

/// A job in flight, ordered by completion time: (done, arrived, started) as [`bits`].
type InFlight = Reverse<(u64, u64, u64)>;

fn time(job: InFlight) -> f64 {
    f64::from_bits(job.0.0)
}

struct Sim<'a> {
    scenario: &'a Scenario,
    /// Processing times, drawn in dispatch order: a separate stream from arrivals, so
    /// every policy sees the same arrivals and the same jobs.
    rng: SplitMix64,
    now: f64,
    queue: VecDeque<f64>,
    busy: u32,
    completions: BinaryHeap<InFlight>,
    ready: u32,
    starting: VecDeque<f64>,
    target: u32,
    outcome: Outcome,
    total_wait: f64,
    served: u64,
    service: (f64, f64),
}

impl Sim<'_> {
    fn slots(&self) -> u32 {
        self.ready
            .saturating_mul(self.scenario.role.concurrency.max(1))
    }

    fn instances(&self) -> u32 {
        let starting = u32::try_from(self.starting.len()).unwrap_or(u32::MAX);
        self.ready.saturating_add(starting)
    }

    fn advance(&mut self, to: f64) {
        let dt = to - self.now;
        if dt > 0.0 {
            self.outcome.instance_seconds += f64::from(self.instances()) * dt;
            self.now = to;
        }
    }

    fn service_time(&mut self) -> f64 {
        match self.scenario.service {
            ServiceTimes::Exponential => self.rng.exponential(self.service.0),
            ServiceTimes::Lognormal => {
                let (mu, sigma) = self.service;
                (mu + sigma * self.rng.normal()).exp()
            }
        }
    }

    fn dispatch(&mut self) {
        let deadline = self.scenario.role.deadline.as_secs_f64();
        let k = f64::from(self.scenario.role.concurrency.max(1));
        while self.busy < self.slots() {
            let Some(arrived) = self.queue.pop_front() else {
                break;
            };
            let s = self.service_time();
            let wait = self.now - arrived;
            self.total_wait += wait;
            self.served += 1;
            self.outcome.busy_floor += s / k;
            if wait + s > deadline {
                self.outcome.misses += 1;
            }
            self.busy += 1;
            self.completions
                .push(Reverse((bits(self.now + s), bits(arrived), bits(self.now))));
        }
    }

    /// Stops instances above the target once they have no job.
    fn settle(&mut self) {
        while self.instances() > self.target && !self.starting.is_empty() {
            self.starting.pop_back();
        }
        let k = self.scenario.role.concurrency.max(1);
        while self.ready > self.target && self.busy <= (self.ready - 1).saturating_mul(k) {
            self.ready -= 1;
        }
    }

    /// A ready instance crashes (chosen at random with `pick` in 0..1): its job, if it
    /// held one, is undone and requeued at the front; a replacement starts.
    fn crash(&mut self, pick: f64) {
        if self.ready == 0 {
            return;
        }
        self.outcome.crashes += 1;
        let k = self.scenario.role.concurrency.max(1);
        let busy_instances = self.busy.div_ceil(k);
        if pick * f64::from(self.ready) < f64::from(busy_instances) {
            let deadline = self.scenario.role.deadline.as_secs_f64();
            let kf = f64::from(k);
            for _ in 0..k.min(self.busy) {
                let Some(Reverse((done, arrived, started))) = self.completions.pop() else {
                    break;
                };
                let (done, arrived, started) = (
                    f64::from_bits(done),
                    f64::from_bits(arrived),
                    f64::from_bits(started),
                );
                if done - arrived > deadline {
                    self.outcome.misses = self.outcome.misses.saturating_sub(1);
                }
                self.total_wait -= started - arrived;
                self.served = self.served.saturating_sub(1);
                self.outcome.busy_floor -= (done - self.now).max(0.0) / kf;
                self.busy = self.busy.saturating_sub(1);
                self.queue.push_front(arrived);
            }
        }
        self.ready -= 1;
        self.starting
            .push_back(self.now + self.scenario.start_time.as_secs_f64());
        self.dispatch();
    }

    fn scale_to(&mut self, n: u32) {
        if n != self.target {
            self.outcome.scale_actions += 1;
        }
        self.target = n;
        let start = self.scenario.start_time.as_secs_f64();
        while self.instances() < n {
            self.starting.push_back(self.now + start);
        }
        self.settle();
        self.outcome.peak_instances = self.outcome.peak_instances.max(self.instances());
    }
}

/// Runs `scenario` under `policy`.
pub fn run(scenario: &Scenario, policy: &dyn Policy) -> Outcome {
    run_traced(scenario, policy, None).0
}

/// One point of a run's trace, averaged or sampled over the trace interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePoint {
    /// End of the interval, seconds.
    pub at: f64,
    /// Arrivals per second over the interval.
    pub arrival_rate: f64,
    /// Jobs waiting or in flight at its end.
    pub backlog: u64,
    /// Instances running or starting at its end.
    pub instances: u32,
}

/// Runs `scenario` under `policy`, also recording a [`TracePoint`] every `every` seconds
/// (at poll times) when asked.
pub fn run_traced(
    scenario: &Scenario,
    policy: &dyn Policy,
    every: Option<f64>,
) -> (Outcome, Vec<TracePoint>) {
    let mut trace = Vec::new();
    let mut next_trace = every.unwrap_or(f64::INFINITY);
    let mut arrivals_since_trace = 0u64;
    let role = &scenario.role;
    let p = role.processing.as_secs_f64();
    let service = match scenario.service {
        ServiceTimes::Exponential => (p, 0.0),
        ServiceTimes::Lognormal => lognormal_params(p, role.stddev.as_secs_f64()),
    };
    let mut sim = Sim {
        scenario,
        rng: SplitMix64::new(scenario.seed ^ 0x5eed_5e41_ce00_0001),
        now: 0.0,
        queue: VecDeque::new(),
        busy: 0,
        completions: BinaryHeap::new(),
        ready: 0,
        starting: VecDeque::new(),
        target: 0,
        outcome: Outcome {
            jobs: 0,
            misses: 0,
            instance_seconds: 0.0,
            mean_wait: 0.0,
            busy_floor: 0.0,
            scale_actions: 0,
            peak_instances: 0,
            crashes: 0,
            skipped_decisions: 0,
        },
        total_wait: 0.0,
        served: 0,
        service,
    };
    // Start with the instances the policy asks for at no load, already running.
    let mut history = History::new(
        scenario
            .history_window
            .saturating_add(scenario.poll_interval.saturating_mul(4)),
    );
    let initial = policy.decide(&observe(scenario, &history));
    sim.ready = initial.instances.unwrap_or(role.minimum);
    sim.target = sim.ready;
    sim.outcome.peak_instances = sim.ready;

    let peak = scenario.shape.peak(scenario.capacity()).max(0.0);
    let poll = scenario.poll_interval.as_secs_f64().max(1e-3);
    // A run must end: a NaN or infinite duration runs nothing.
    let end = if scenario.duration.is_finite() {
        scenario.duration.max(0.0)
    } else {
        0.0
    };
    let mut arrivals = SplitMix64::new(scenario.seed);
    let mut next_arrival = if peak > 0.0 {
        arrivals.exponential(1.0 / peak)
    } else {
        f64::INFINITY
    };
    let mut next_poll = poll;
    // Faults draw from their own stream, so arrivals and processing times stay the same.
    let mut faults = SplitMix64::new(scenario.seed ^ 0xfa17_5eed_0000_0002);
    let crash_peak =
        (scenario.faults.crashes_per_hour.max(0.0) / 3600.0) * f64::from(role.maximum.max(1));
    let mut next_crash = if crash_peak > 0.0 {
        faults.exponential(1.0 / crash_peak)
    } else {
        f64::INFINITY
    };
    let mut arrivals_since_poll = 0u64;
    let mut rate_estimate = scenario.rate(0.0);
    let alpha = 1.0 - (-poll / RATE_WINDOW).exp();

    loop {
        let next_completion = sim.completions.peek().map_or(f64::INFINITY, |k| time(*k));
        let next_ready = sim.starting.front().copied().unwrap_or(f64::INFINITY);
        let t = next_arrival
            .min(next_completion)
            .min(next_ready)
            .min(next_poll)
            .min(next_crash);
        if t >= end {
            sim.advance(end);
            break;
        }
        sim.advance(t);
        if t == next_completion {
            sim.completions.pop();
            sim.busy = sim.busy.saturating_sub(1);
            sim.settle();
            sim.dispatch();
        } else if t == next_ready {
            sim.starting.pop_front();
            sim.ready += 1;
            sim.dispatch();
        } else if t == next_crash {
            // Thinning: the peak rate assumes `maximum` instances running.
            let running = f64::from(sim.ready) / f64::from(role.maximum.max(1));
            if faults.unit() < running.min(1.0) {
                let pick = faults.unit();
                sim.crash(pick);
            }
            next_crash = t + faults.exponential(1.0 / crash_peak);
        } else if t == next_arrival {
            if arrivals.unit() * peak <= scenario.rate(t) {
                sim.outcome.jobs += 1;
                arrivals_since_poll += 1;
                arrivals_since_trace += 1;
                sim.queue.push_back(t);
                sim.dispatch();
            }
            next_arrival = t + arrivals.exponential(1.0 / peak);
        } else {
            rate_estimate += alpha * (arrivals_since_poll as f64 / poll - rate_estimate);
            arrivals_since_poll = 0;
            let now = Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX);
            let timed_out = scenario.faults.broker_timeouts > 0.0
                && faults.unit() < scenario.faults.broker_timeouts;
            let mut inputs = observe(scenario, &history);
            inputs.now = now;
            inputs.backlog = sim.queue.len() as u64 + u64::from(sim.busy);
            inputs.arrival_rate = Some(rate_estimate);
            inputs.current = Some(sim.instances());
            if timed_out {
                sim.outcome.skipped_decisions += 1;
            } else {
                let decision = policy.decide(&inputs);
                history.record(Sample {
                    at: now,
                    estimate: decision.estimate,
                    arrival_rate: rate_estimate,
                });
                if let Some(n) = decision.instances {
                    sim.scale_to(n);
                    sim.dispatch();
                }
            }
            if t >= next_trace {
                let interval = every.unwrap_or(1.0);
                trace.push(TracePoint {
                    at: t,
                    arrival_rate: arrivals_since_trace as f64 / interval,
                    backlog: sim.queue.len() as u64 + u64::from(sim.busy),
                    instances: sim.instances(),
                });
                arrivals_since_trace = 0;
                next_trace += interval;
            }
            next_poll += poll;
        }
    }
    let deadline = role.deadline.as_secs_f64();
    sim.outcome.misses += sim.queue.iter().filter(|a| end - **a > deadline).count() as u64;
    sim.outcome.mean_wait = if sim.served == 0 {
        0.0
    } else {
        sim.total_wait / sim.served as f64
    };
    (sim.outcome, trace)
}

/// What the simulated host tells the policy before the backlog, rate and instances are known.
fn observe<'a>(scenario: &'a Scenario, history: &'a History) -> Inputs<'a> {
    let role = &scenario.role;
    Inputs {
        role,
        poll_interval: scenario.poll_interval,
        history_window: scenario.history_window,
        now: Duration::ZERO,
        backlog: 0,
        arrival_rate: Some(0.0),
        // The simulated jobs follow the configuration, so measuring would find it again.
        processing: Some(ProcessingStats {
            mean: role.processing.as_secs_f64(),
            stddev: role.stddev.as_secs_f64(),
        }),
        current: None,
        start_time: Some(scenario.start_time),
        history,
    }
}

/// The clairvoyant cost in instance-seconds (module docs): per minute, exactly the work
/// the minute's arrival rate brings (`λ·P/k` instances, fractional), within minimum and
/// maximum.
pub fn clairvoyant(scenario: &Scenario) -> f64 {
    let role = &scenario.role;
    let per_instance = role.processing.as_secs_f64() / f64::from(role.concurrency.max(1));
    let (low, high) = (f64::from(role.minimum), f64::from(role.maximum));
    let step: f64 = 60.0;
    let mut total = 0.0;
    let mut t = 0.0;
    while t < scenario.duration {
        let width = step.min(scenario.duration - t);
        // Mean rate over the minute (rates may change within it).
        let samples = 12;
        let rate = (0..samples)
            .map(|i| scenario.rate(t + width * (f64::from(i) + 0.5) / f64::from(samples)))
            .sum::<f64>()
            / f64::from(samples);
        total += (rate * per_instance).clamp(low, high) * width;
        t += step;
    }
    total
}

/// The highest arrival rate (jobs/s) `role` handles at its maximum while meeting the
/// deadline percentile in steady state, and its raw throughput (maximum × concurrency /
/// processing).
pub fn capacity(role: &RoleConfig) -> (f64, f64) {
    let stats = ProcessingStats {
        mean: role.processing.as_secs_f64(),
        stddev: role.stddev.as_secs_f64(),
    };
    let raw = role.max_throughput();
    let fits = |rate: f64| {
        DeadlinePolicy::steady_instances(role, stats, rate, role.maximum) <= role.maximum
    };
    let (mut low, mut high) = (0.0, raw);
    if !fits(raw * 1e-6) {
        return (0.0, raw);
    }
    for _ in 0..60 {
        let mid = (low + high) / 2.0;
        if fits(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    (low, raw)
}

#[cfg(test)]
#[path = "simulate_tests.rs"]
mod tests;
