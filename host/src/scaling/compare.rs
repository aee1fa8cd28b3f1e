//! Runs one trace under a policy and the baselines, and checks the targets.
//!
//! Every run of a comparison sees the same arrivals and the same processing times (same
//! seed; see [`simulate`](super::simulate)): the policy under test, guv's policy, a fixed
//! number of instances at the role's maximum, and the clairvoyant cost.

use std::fmt::Write as _;
use std::time::Duration;

use super::config::{RoleConfig, ScalingConfig};
use super::load::Shape;
use super::policy::{FixedPolicy, GuvPolicy, Policy};
use super::simulate::{Faults, Outcome, Scenario, clairvoyant, run};

/// One trace under every policy.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The shape's name.
    pub shape: &'static str,
    /// Instance start time simulated.
    pub start_time: Duration,
    /// Name of the policy under test.
    pub policy: &'static str,
    /// The policy under test.
    pub tested: Outcome,
    /// guv's policy.
    pub guv: Outcome,
    /// Fixed at the role's maximum.
    pub fixed: Outcome,
    /// Clairvoyant instance-seconds.
    pub clairvoyant: f64,
}

/// Simulates `role` on `shape` for `hours` with `policy`, guv's policy and fixed maximum,
/// all under the same `faults`.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    config: &ScalingConfig,
    role: &RoleConfig,
    shape: &Shape,
    hours: f64,
    start_time: Duration,
    seed: u64,
    faults: Faults,
    policy: &dyn Policy,
) -> Comparison {
    let duration = shape.length().unwrap_or(hours * 3600.0);
    let mut scenario = Scenario::new(config, role, shape.clone(), duration);
    scenario.start_time = start_time;
    scenario.seed = seed;
    scenario.faults = faults;
    Comparison {
        shape: shape.name(),
        start_time,
        policy: policy.name(),
        tested: run(&scenario, policy),
        guv: run(&scenario, &GuvPolicy),
        fixed: run(&scenario, &FixedPolicy(role.maximum)),
        clairvoyant: clairvoyant(&scenario),
    }
}

impl Comparison {
    /// The tested policy's cost over the clairvoyant cost (target ≤ 1.3).
    pub fn vs_clairvoyant(&self) -> f64 {
        self.tested.instance_seconds / self.clairvoyant.max(f64::MIN_POSITIVE)
    }

    /// How many times cheaper than fixed maximum (target ≥ 3 on both spikes).
    pub fn cheaper_than_fixed(&self) -> f64 {
        self.fixed.instance_seconds / self.tested.instance_seconds.max(f64::MIN_POSITIVE)
    }

    /// Which of the targets this run misses (empty when all are met).
    pub fn failed_targets(&self) -> Vec<&'static str> {
        let mut failed = Vec::new();
        if self.vs_clairvoyant() > 1.3 {
            failed.push("cost > 1.3 x clairvoyant");
        }
        let spike = matches!(self.shape, "spike" | "oob-spike");
        if spike && self.cheaper_than_fixed() < 3.0 {
            failed.push("< 3 x cheaper than fixed max");
        }
        if self.shape != "oob-spike" && self.tested.miss_percent() > 1.0 {
            failed.push("misses > 1 %");
        }
        if self.tested.instance_seconds > self.guv.instance_seconds {
            failed.push("costs more than guv");
        }
        if self.tested.misses >= self.guv.misses && self.guv.misses > 0 {
            failed.push("no fewer misses than guv");
        }
        failed
    }
}

/// The comparison table's header line.
pub const HEADER: &str =
    "shape      start   policy     jobs      inst-s  misses  miss%   vs-clairv  fixed/x  actions";

/// Formats a comparison as table rows (tested, guv, fixed max, clairvoyant).
pub fn rows(c: &Comparison) -> String {
    let mut out = String::new();
    let start = format!("{:?}", c.start_time);
    let runs = [
        (c.policy, &c.tested),
        ("guv", &c.guv),
        ("fixed-max", &c.fixed),
    ];
    for (name, o) in runs {
        let _ = writeln!(
            out,
            "{:<10} {:<7} {:<9} {:>8} {:>11.0} {:>7} {:>6.3} {:>9.2} {:>8.2} {:>8}",
            c.shape,
            start,
            name,
            o.jobs,
            o.instance_seconds,
            o.misses,
            o.miss_percent(),
            o.instance_seconds / c.clairvoyant.max(f64::MIN_POSITIVE),
            c.fixed.instance_seconds / o.instance_seconds.max(f64::MIN_POSITIVE),
            o.scale_actions,
        );
    }
    let _ = writeln!(
        out,
        "{:<10} {:<7} {:<9} {:>8} {:>11.0} {:>7} {:>6} {:>9.2} {:>8.2} {:>8}",
        c.shape,
        start,
        "clairvoy.",
        "-",
        c.clairvoyant,
        "-",
        "-",
        1.0,
        c.fixed.instance_seconds / c.clairvoyant.max(f64::MIN_POSITIVE),
        "-",
    );
    if c.tested.crashes + c.tested.skipped_decisions > 0 {
        let _ = writeln!(
            out,
            "  faults ({} / guv / fixed-max): {} / {} / {} crashes, {} / {} / {} polls timed out",
            c.policy,
            c.tested.crashes,
            c.guv.crashes,
            c.fixed.crashes,
            c.tested.skipped_decisions,
            c.guv.skipped_decisions,
            c.fixed.skipped_decisions
        );
    }
    let failed = c.failed_targets();
    if failed.is_empty() {
        let _ = writeln!(out, "  targets: all met");
    } else {
        let _ = writeln!(out, "  targets missed: {}", failed.join(", "));
    }
    out
}
