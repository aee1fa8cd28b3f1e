//! Scaling policies: pure functions from what a host observes to how many instances to run.
//!
//! A host (or the simulator) calls [`Policy::decide`] once per poll interval and role with
//! [`Inputs`]: the backlog (jobs waiting or in flight, like RabbitMQ's `messages`; on MQTT the
//! host's own count), the measured arrival rate, processing-time mean and spread, the number
//! of instances running or starting, their measured start time, and the role's [`History`] of
//! earlier decisions. It applies [`Decision::instances`] and records the decision with
//! [`History::record`].
//!
//! Two policies:
//! - [`GuvPolicy`] is guv's algorithm exactly (reference for comparison):
//!   `W = clamp(ceil(ceil(Q/k)·P / max(P, target − P)), min, max)`, scale up at once, scale
//!   down no lower than the highest of the last `floor(history / pollinterval)` estimates.
//!   It uses only the configured processing time and the queue length.
//! - [`DeadlinePolicy`] (ours) sizes for the deadline percentile. Why each part:
//!   - *Arrival rate, not only queue length.* A role that keeps up has an empty queue, so a
//!     queue-only policy drops to the minimum, a backlog builds, it scales up, and so on (the
//!     flapping KEDA users report). The steady-state term sizes from λ: the fewest instances
//!     `n` for which an arrival's wait plus its processing stays within the deadline with the
//!     configured percentile, by Erlang C with Whitt's GI/G/m correction for the measured
//!     processing spread: `P(W_q + S > D) ≤ 1 − p`, with processing times taken as
//!     lognormal with the measured mean and standard deviation and the wait of those who
//!     wait as exponential ([`Station::response_tail_lognormal`]).
//!   - *A standing queue when the deadline allows one.* With a deadline long against the
//!     processing time (guv's default is 60 s for 10 s jobs), the cheapest way to meet it is
//!     not Erlang C's headroom (which needs ρ < 1 at every moment, so ⌊a⌋ + 1 instances for
//!     an offered load a) but a controlled queue: let up to half the slack (deadline minus
//!     start time minus the processing percentile) be spent waiting, i.e. `λ·slack/2` jobs
//!     by Little's law, and (with starts faster than a poll; see the band below) run the
//!     instances that bring the queue back to that level within
//!     the slack while λ keeps coming (`((Q_wait − λ·slack/2)/(slack + b) + λ)·P/k`, rounded to
//!     the nearest: the queue absorbs the fraction, where rounding up would hold a spare
//!     instance for the whole hold window), never fewer
//!     than the ⌊a⌋ instances the arrival rate keeps busy (so an empty queue never sends a
//!     busy role to its minimum). guv reaches such a standing queue by accident; here it is
//!     sized. This *buffered* regime applies when that queue is at least as many jobs as the
//!     Erlang-C instances' slots; otherwise (tight deadlines, slow starts) the role is sized
//!     by Erlang C and drains its backlog by the fluid bound of the reference, 3.5:
//!     `n ≥ (Q_wait / A + λ)·P / k`, `A` the time left after the start time and the
//!     processing percentile (at least one processing time, guv's #94 fix).
//!   - *Start time.* Instances asked for now serve only after the start time `b`; when `b`
//!     spans more than one poll interval, the steady-state term plans for the arrival rate
//!     expected `b` from now, extrapolating a rising trend from the history (falling trends
//!     are not extrapolated: scale-down is held anyway).
//!   - *A band, not a set point, when starts are slow.* Once the start time spans more than a
//!     poll interval, every change of the count is paid for: an added instance costs a start
//!     time before it serves, and holding it on the way down (below) costs as much again. A
//!     controller steering the queue to one level rounds Poisson noise into a change every
//!     minute or so (about 2,800 in 48 h with 45 s starts, which made it dearer than guv).
//!     So in the buffered regime the count is kept while the waiting jobs stay in a band of
//!     `BAND_LOW`–`BAND_HIGH` (¼–½) of the wait budget (deadline minus the processing
//!     percentile) at the measured rate: noise moves the queue within the band and the
//!     count stays; the queue absorbs a fraction of an instance for minutes, and at most
//!     every instance stays busy. Above the band it adds the instances that drain the excess
//!     over a horizon of twice the wait budget shrinking with the square of the overshoot: a
//!     queue that noise lifts just over the edge adds one instance, a sustained rise (a
//!     step, a spike), which keeps the queue growing, gets the instances it needs within
//!     seconds, and before the queue's wait reaches the budget. At or below the band (a
//!     surplus: the queue runs dry), it goes down to the instances the rate keeps busy,
//!     rounded. The band's top uses half the wait budget and not the budget less the start
//!     time: jobs already queued wait for the instances serving now, not for new ones, so
//!     only what a rise brings in during a start time has to fit in the other half. With
//!     45 s starts this cuts the count changes to a fifth and costs 1–4 % less than guv
//!     with fewer misses (README's table); with fast starts the set point is cheapest, and
//!     is kept.
//!   - *Hysteresis on the way down, none on the way up.* Up at once; down only to the highest
//!     estimate of a time window (not a count of samples), so noise in the measured rate
//!     and queue does not make instances come and go. The window is one start time (at least
//!     five polls, at most `history`): removing an instance too early costs a start time
//!     when it has to come back, so holding an idle one for as long as that is the
//!     rent-or-buy break-even (never more than twice the best choice in hindsight); with
//!     20 µs starts a long hold would only waste instance-seconds. For the same reason the buffered regime's queue control spreads its
//!     correction over slack plus start time, and it plans with the measured rate (the
//!     queue absorbs a rise), the Erlang-C regime with the extrapolated one.
//!
//! The result is clamped to `[minimum, maximum]`; [`Decision::wanted`] keeps the unclamped
//! need so a host can alert when a role sits at its maximum and still needs more.

use std::collections::VecDeque;
use std::time::Duration;

use super::config::{RoleConfig, ScalingConfig};
use super::queueing::{Station, lognormal_quantile};

/// Measured processing time of a role's jobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessingStats {
    /// Mean, seconds.
    pub mean: f64,
    /// Standard deviation, seconds.
    pub stddev: f64,
}

/// Everything a policy looks at for one decision about one role.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The role's configuration.
    pub role: &'a RoleConfig,
    /// Time between decisions (`pollinterval`).
    pub poll_interval: Duration,
    /// How far back scale-down looks (`history`).
    pub history_window: Duration,
    /// Monotonic time of this decision.
    pub now: Duration,
    /// Jobs waiting or in flight.
    pub backlog: u64,
    /// Measured arrivals per second; `None` when not measured (treated as 0).
    pub arrival_rate: Option<f64>,
    /// Measured processing time; `None` uses the configuration.
    pub processing: Option<ProcessingStats>,
    /// Instances running or starting; `None` when unknown.
    pub current: Option<u32>,
    /// Measured instance start time; `None` uses the configuration's `boot`.
    pub start_time: Option<Duration>,
    /// Earlier decisions for this role.
    pub history: &'a History,
}

impl<'a> Inputs<'a> {
    /// Inputs with the timing of `config`, nothing measured, and no instances known.
    pub fn new(config: &ScalingConfig, role: &'a RoleConfig, history: &'a History) -> Self {
        Inputs {
            role,
            poll_interval: config.poll_interval,
            history_window: config.history,
            now: Duration::ZERO,
            backlog: 0,
            arrival_rate: None,
            processing: None,
            current: None,
            start_time: None,
            history,
        }
    }

    fn processing(&self) -> ProcessingStats {
        self.processing.unwrap_or(ProcessingStats {
            mean: self.role.processing.as_secs_f64(),
            stddev: self.role.stddev.as_secs_f64(),
        })
    }
}

/// What a policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The estimate to remember in the history (clamped to minimum and maximum).
    pub estimate: u32,
    /// Instances needed before clamping to the role's maximum.
    pub wanted: u32,
    /// The new number of instances, or `None` to leave it as it is.
    pub instances: Option<u32>,
}

impl Decision {
    /// Whether the role needs more instances than its maximum allows.
    pub fn saturated(&self, role: &RoleConfig) -> bool {
        self.wanted > role.maximum
    }
}

/// One remembered decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was decided.
    pub at: Duration,
    /// The estimate.
    pub estimate: u32,
    /// The arrival rate it saw (0 when unmeasured).
    pub arrival_rate: f64,
}

/// A role's recent decisions, oldest first; bounded in time and length.
#[derive(Debug, Clone, Default)]
pub struct History {
    samples: VecDeque<Sample>,
    keep: Duration,
}

/// Most samples a history keeps, whatever its time span.
const HISTORY_CAP: usize = 4096;

impl History {
    /// A history keeping samples for `keep`.
    pub fn new(keep: Duration) -> Self {
        History {
            samples: VecDeque::new(),
            keep,
        }
    }

    /// A history long enough for `config`'s window (and guv's sample count).
    pub fn for_config(config: &ScalingConfig) -> Self {
        Self::new(
            config
                .history
                .saturating_add(config.poll_interval.saturating_mul(2))
                .saturating_add(Duration::from_secs(60)),
        )
    }

    /// A history holding these estimates, one poll interval apart, ending before `now`.
    pub fn from_estimates(estimates: &[u32], poll: Duration, now: Duration) -> Self {
        let n = u32::try_from(estimates.len()).unwrap_or(u32::MAX);
        let mut history = Self::new(poll.saturating_mul(n.saturating_add(1)));
        for (i, estimate) in estimates.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let back = poll.saturating_mul(n.saturating_sub(i));
            history.record(Sample {
                at: now.saturating_sub(back),
                estimate: *estimate,
                arrival_rate: 0.0,
            });
        }
        history
    }

    /// Remembers a decision and forgets what is older than the window.
    pub fn record(&mut self, sample: Sample) {
        self.samples.push_back(sample);
        while let Some(first) = self.samples.front() {
            let old = sample.at.saturating_sub(first.at) > self.keep;
            if old || self.samples.len() > HISTORY_CAP {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// The last `n` samples, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .skip(self.samples.len().saturating_sub(n))
    }

    /// Samples taken at or after `since`.
    pub fn since(&self, since: Duration) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.at >= since)
    }
}

/// A scaling policy: a pure function of its inputs.
pub trait Policy {
    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// Decides how many instances `inputs.role` should have.
    fn decide(&self, inputs: &Inputs<'_>) -> Decision;
}

/// guv's proportional algorithm with its sample-counted hysteresis (the reference policy).
#[derive(Debug, Clone, Copy, Default)]
pub struct GuvPolicy;

/// guv's estimate before clamping: `ceil(ceil(Q/k)·P / max(P, target − P))`.
pub fn guv_workers(backlog: u64, role: &RoleConfig) -> u32 {
    let k = u64::from(role.concurrency.max(1));
    let p = role.processing.as_secs_f64();
    let waiting = backlog.div_ceil(k) as f64 * p;
    let available = p.max(role.target.as_secs_f64() - p);
    saturate((waiting / available).ceil())
}

/// Seconds as a `Duration`, saturating (negative or NaN is zero).
fn secs(value: f64) -> Duration {
    if value.is_nan() || value <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX)
}

fn saturate(value: f64) -> u32 {
    if value.is_nan() || value <= 0.0 {
        0
    } else if value >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        value as u32
    }
}

/// Up at once; down no lower than the highest remembered estimate (guv's
/// `scaleWithHistory`, also used by the deadline policy over a time window).
fn with_history(current: Option<u32>, estimate: u32, highest: Option<u32>) -> Option<u32> {
    let Some(current) = current else {
        return Some(estimate);
    };
    if estimate > current {
        return Some(estimate);
    }
    if estimate == current {
        return None;
    }
    match highest {
        Some(h) if estimate < h => (h < current).then_some(h),
        _ => Some(estimate),
    }
}

impl Policy for GuvPolicy {
    fn name(&self) -> &'static str {
        "guv"
    }

    fn decide(&self, inputs: &Inputs<'_>) -> Decision {
        let role = inputs.role;
        let wanted = guv_workers(inputs.backlog, role);
        let estimate = wanted.clamp(role.minimum, role.maximum);
        let poll = inputs.poll_interval.as_secs_f64();
        let samples = if poll > 0.0 {
            (inputs.history_window.as_secs_f64() / poll).floor() as usize
        } else {
            0
        };
        let highest = inputs.history.last(samples).map(|s| s.estimate).max();
        Decision {
            estimate,
            wanted,
            instances: with_history(inputs.current, estimate, highest),
        }
    }
}

/// Our policy: Erlang-C/Whitt sizing for the deadline percentile on the arrival rate, plus
/// enough instances to drain the backlog in time, aware of the start time (module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlinePolicy;

impl DeadlinePolicy {
    /// Fewest instances (up to `limit`) whose steady state meets the deadline percentile
    /// at `arrival_rate`; `limit + 1` when even `limit` does not.
    pub fn steady_instances(
        role: &RoleConfig,
        processing: ProcessingStats,
        arrival_rate: f64,
        limit: u32,
    ) -> u32 {
        if arrival_rate <= 0.0 {
            return 0;
        }
        let k = role.concurrency.max(1);
        let p = processing.mean.max(1e-9);
        let service_scv = (processing.stddev / p).powi(2);
        let deadline = role.deadline.as_secs_f64();
        let allowed = 1.0 - role.percentile / 100.0;
        let idle = Station::mmm(1, 0.0, p).response_tail_lognormal(deadline, processing.stddev);
        // Misses that waiting may add; when processing alone already misses the budget,
        // waiting may add a tenth of it on top.
        let budget = (allowed - idle).max(allowed / 10.0);
        let first = saturate((arrival_rate * p / f64::from(k)).floor()).max(1);
        for n in first..=limit.max(first) {
            let station = Station {
                servers: n.saturating_mul(k),
                arrival_rate,
                service_mean: p,
                arrival_scv: 1.0,
                service_scv,
            };
            if station.is_stable()
                && station.response_tail_lognormal(deadline, processing.stddev) - idle <= budget
            {
                return n;
            }
        }
        limit.saturating_add(1)
    }

    /// The queue controller of the buffered regime: instances that bring the waiting jobs
    /// back to the standing queue the deadline allows (`BUFFER_SHARE` of the time left after
    /// start time and processing, at `arrival_rate`, by Little's law), never fewer than the
    /// whole instances the arrival rate keeps busy; with that allowance in jobs. `None` when
    /// the deadline leaves no time for waiting.
    pub fn buffered_instances(
        role: &RoleConfig,
        processing: ProcessingStats,
        waiting: f64,
        arrival_rate: f64,
        start_time: f64,
    ) -> Option<(u32, f64)> {
        let k = f64::from(role.concurrency.max(1));
        let miss = 1.0 - role.percentile / 100.0;
        let service_q = lognormal_quantile(processing.mean, processing.stddev, 1.0 - miss);
        let slack = role.deadline.as_secs_f64() - service_q - start_time;
        if slack <= 0.0 {
            return None;
        }
        let buffer = BUFFER_SHARE * slack;
        let allowed = arrival_rate * buffer;
        let busy = arrival_rate * processing.mean / k;
        let control =
            ((waiting - allowed) / (slack + start_time) + arrival_rate) * processing.mean / k;
        Some((
            saturate(control.round()).max(saturate(busy.floor())),
            allowed,
        ))
    }

    /// The buffered regime's band controller for slow starts: keeps `current` instances while
    /// the waiting jobs stay between `BAND_LOW` and `BAND_HIGH` of the wait budget (deadline
    /// minus the processing percentile) at `arrival_rate`; above the band, enough instances
    /// to drain the excess over a horizon that shortens with the square of the overshoot
    /// (twice the wait budget at the band's edge, never under `poll` seconds), but no more
    /// new instances than waiting jobs; at or below it, the instances the arrival rate keeps
    /// busy, rounded, if fewer.
    pub fn banded_instances(
        role: &RoleConfig,
        processing: ProcessingStats,
        waiting: f64,
        arrival_rate: f64,
        current: u32,
        poll: f64,
    ) -> u32 {
        let k = f64::from(role.concurrency.max(1));
        let miss = 1.0 - role.percentile / 100.0;
        let service_q = lognormal_quantile(processing.mean, processing.stddev, 1.0 - miss);
        let budget = (role.deadline.as_secs_f64() - service_q).max(0.0);
        let high = arrival_rate * BAND_HIGH * budget;
        let low = arrival_rate * BAND_LOW * budget;
        if waiting > high {
            let horizon = (2.0 * budget * (high / waiting).powi(2)).max(poll.max(1e-3));
            let drain = ((waiting - high) / horizon + arrival_rate) * processing.mean / k;
            // Never more new instances than waiting jobs (guv's #94).
            let jobs = saturate((waiting / k).ceil());
            saturate(drain.ceil()).clamp(current, current.saturating_add(jobs))
        } else if waiting <= low {
            saturate((arrival_rate * processing.mean / k).round()).min(current)
        } else {
            current
        }
    }

    /// Instances to drain `waiting` jobs within the time left while `arrival_rate` continues.
    pub fn drain_instances(
        role: &RoleConfig,
        processing: ProcessingStats,
        waiting: f64,
        arrival_rate: f64,
        start_time: f64,
    ) -> u32 {
        if waiting <= 0.0 {
            return 0;
        }
        let k = f64::from(role.concurrency.max(1));
        let miss = (1.0 - role.percentile / 100.0) / 2.0;
        let service_q = lognormal_quantile(processing.mean, processing.stddev, 1.0 - miss);
        let left = role.deadline.as_secs_f64() - service_q - start_time;
        let available = left.max(processing.mean);
        saturate(((waiting / available + arrival_rate) * processing.mean / k).ceil())
    }
}

impl Policy for DeadlinePolicy {
    fn name(&self) -> &'static str {
        "deadline"
    }

    fn decide(&self, inputs: &Inputs<'_>) -> Decision {
        let role = inputs.role;
        let processing = inputs.processing();
        let rate = inputs.arrival_rate.unwrap_or(0.0).max(0.0);
        let start = inputs
            .start_time
            .unwrap_or(role.boot)
            .as_secs_f64()
            .max(0.0);
        // Plan for the rate expected when new instances are up, if that is later than the
        // next decision and the rate is rising.
        let planned_rate = if start > inputs.poll_interval.as_secs_f64() {
            rate.max(predicted_rate(inputs, rate, start))
        } else {
            rate
        };
        let limit = role.maximum.max(role.minimum);
        let steady = Self::steady_instances(role, processing, planned_rate, limit);
        let k = u64::from(role.concurrency.max(1));
        let in_service = u64::from(inputs.current.unwrap_or(0)).saturating_mul(k);
        let waiting = inputs.backlog.saturating_sub(in_service) as f64;
        let drain = Self::drain_instances(role, processing, waiting, rate, start);
        // Anything in the queue needs at least one instance.
        let any = u32::from(inputs.backlog > 0);
        let buffered = Self::buffered_instances(role, processing, waiting, rate, start);
        let wanted = match buffered {
            // The deadline leaves room for a standing queue of at least the steady-state
            // slots: let it absorb the randomness and run at the arrival rate.
            Some((n, allowed)) if allowed >= f64::from(steady.saturating_mul(role.concurrency)) => {
                match inputs.current {
                    // Each change costs a start time: keep the count while the queue stays
                    // in its band.
                    Some(current) if start > inputs.poll_interval.as_secs_f64() => {
                        let poll = inputs.poll_interval.as_secs_f64();
                        Self::banded_instances(role, processing, waiting, rate, current, poll)
                    }
                    _ => n,
                }
                .max(any)
            }
            _ => steady.max(drain).max(any),
        };
        let estimate = wanted.clamp(role.minimum, role.maximum);
        let since = inputs.now.saturating_sub(hold_window(inputs, start));
        let highest = inputs.history.since(since).map(|s| s.estimate).max();
        Decision {
            estimate,
            wanted,
            instances: with_history(inputs.current, estimate, highest),
        }
    }
}

/// How long the deadline policy holds an estimate before scaling down: one start time (at
/// least five polls), at most the `history` window. Keeping an idle instance for as long as
/// restarting it would take is the rent-or-buy break-even: it never costs more than twice the
/// best choice in hindsight.
fn hold_window(inputs: &Inputs<'_>, start: f64) -> Duration {
    let break_even = (inputs.poll_interval.saturating_mul(5)).max(secs(start));
    inputs.history_window.min(break_even)
}

/// Share of the deadline's slack a standing queue may use in the buffered regime.
const BUFFER_SHARE: f64 = 0.5;

/// Shares of the wait budget bounding the standing queue's band when starts are slow.
const BAND_HIGH: f64 = 0.5;
const BAND_LOW: f64 = 0.25;

/// A fixed number of instances, whatever the load (the "provision for the peak" baseline).
#[derive(Debug, Clone, Copy)]
pub struct FixedPolicy(pub u32);

impl Policy for FixedPolicy {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn decide(&self, _inputs: &Inputs<'_>) -> Decision {
        Decision {
            estimate: self.0,
            wanted: self.0,
            instances: Some(self.0),
        }
    }
}

/// The arrival rate `ahead` seconds from now if the trend of the last `ahead` seconds (at
/// least a minute) goes on; never below `rate`.
fn predicted_rate(inputs: &Inputs<'_>, rate: f64, ahead: f64) -> f64 {
    let span = ahead.max(60.0);
    let since = inputs.now.saturating_sub(secs(span));
    let Some(oldest) = inputs.history.since(since).next() else {
        return rate;
    };
    let elapsed = inputs.now.saturating_sub(oldest.at).as_secs_f64();
    if elapsed <= 0.0 {
        return rate;
    }
    let slope = (rate - oldest.arrival_rate) / elapsed;
    rate + slope.max(0.0) * ahead
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
