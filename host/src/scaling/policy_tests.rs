use super::*;
use crate::scaling::queueing;

/// One case of guv's `spec/scaletests.yaml`.
struct Case {
    name: &'static str,
    config: &'static str,
    role: &'static str,
    messages: u64,
    current: Option<u32>,
    history: &'static [u32],
    result: Option<u32>,
}

fn guv(config: &str, role: &str, messages: u64, current: Option<u32>, history: &[u32]) -> Decision {
    let config = ScalingConfig::parse(config).unwrap();
    let role = config.role(role).unwrap();
    let now = Duration::from_secs(1000);
    let history = History::from_estimates(history, config.poll_interval, now);
    let mut inputs = Inputs::new(&config, role, &history);
    inputs.now = now;
    inputs.backlog = messages;
    inputs.current = current;
    GuvPolicy.decide(&inputs)
}

/// guv's table. Its history cases write `my: {p:60, deadline: 240}`, which js-yaml reads as a
/// key `p:60` (and which we reject), so processing stays 10: written here as `p: 10`.
const SCALETESTS: &[Case] = &[
    Case {
        name: "no messages",
        config: "'*': {min: 3}\ndef: {}",
        role: "def",
        messages: 0,
        current: None,
        history: &[],
        result: Some(3),
    },
    Case {
        name: "huge number of messages",
        config: "'*': {max: 40}\ndef: {}",
        role: "def",
        messages: 10000,
        current: None,
        history: &[],
        result: Some(40),
    },
    Case {
        name: "many messages with role-specific processing/deadline",
        config: "'*': {min: 0}\nmy: {p: 10, deadline: 240}",
        role: "my",
        messages: 1000,
        current: None,
        history: &[],
        result: Some(5),
    },
    Case {
        name: "history of high load, then one low load",
        config: "'*': {min: 0, max: 4}\nmy: {p: 10, deadline: 240}",
        role: "my",
        messages: 10,
        current: Some(4),
        history: &[4, 4, 0],
        result: None,
    },
    Case {
        name: "history of high load, then many low load",
        config: "'*': {min: 0, max: 4}\nmy: {p: 10, deadline: 240}",
        role: "my",
        messages: 10,
        current: Some(4),
        history: &[0, 0, 0],
        result: Some(1),
    },
    Case {
        name: "history of varying loads, then one low",
        config: "'*': {min: 0, max: 4}\nmy: {p: 10, deadline: 240}",
        role: "my",
        messages: 10,
        current: Some(4),
        history: &[4, 1, 4, 2],
        result: None,
    },
    Case {
        name: "history of medium loads, then one medium",
        config: "'*': {min: 0, max: 4}\nmy: {p: 10, deadline: 240}",
        role: "my",
        messages: 40,
        current: Some(3),
        history: &[1, 2, 1],
        result: Some(2),
    },
    Case {
        name: "history of decreasing loads, then nothing",
        config: "'*': {min: 0, max: 4}\nmy: {p: 10, deadline: 240}",
        role: "my",
        messages: 0,
        current: Some(12),
        history: &[10, 9, 8],
        result: Some(10),
    },
    Case {
        name: "impossible config",
        config: "'*': {min: 0, max: 4}\nmy: { processing: 60, deadline: 61}",
        role: "my",
        messages: 40,
        current: Some(0),
        history: &[1, 2, 1],
        result: Some(4),
    },
    Case {
        name: "unrealistic config",
        config: "'*': {min: 0, max: 4}\nmy: { processing: 25, stddev: 12, deadline: 50}",
        role: "my",
        messages: 40,
        current: Some(0),
        history: &[1, 2, 1],
        result: Some(4),
    },
    Case {
        name: "medium load, concurrency = 1",
        config: "'*': {max: 40}\ndef: { concurrency: 1 }",
        role: "def",
        messages: 40,
        current: None,
        history: &[],
        result: Some(11),
    },
    Case {
        name: "medium load, concurrency = 3",
        config: "'*': {max: 40}\ndef: { concurrency: 3 }",
        role: "def",
        messages: 40,
        current: None,
        history: &[],
        result: Some(4),
    },
    Case {
        name: "low load, concurrency = 1",
        config: "'*': {max: 40, deadline: 90}\ndef: { concurrency: 1 }",
        role: "def",
        messages: 5,
        current: None,
        history: &[],
        result: Some(1),
    },
    Case {
        name: "low load, concurrency = 3",
        config: "'*': {max: 40, deadline: 90}\ndef: { concurrency: 3 }",
        role: "def",
        messages: 5,
        current: None,
        history: &[],
        result: Some(1),
    },
];

#[test]
fn guv_passes_its_own_scaletests() {
    for case in SCALETESTS {
        let decision = guv(
            case.config,
            case.role,
            case.messages,
            case.current,
            case.history,
        );
        assert_eq!(decision.instances, case.result, "{}", case.name);
    }
}

#[test]
fn guv_worked_examples() {
    // Defaults: P=10, σ=5, D=60, p=99 → target 48.37, available 38.37.
    assert_eq!(guv("a: {max: 40}", "a", 40, None, &[]).estimate, 11);
    assert_eq!(
        guv("a: {max: 40, concurrency: 3}", "a", 40, None, &[]).estimate,
        4
    );
    assert_eq!(guv("a: {d: 90}", "a", 5, None, &[]).estimate, 1);
    // Impossible: target forced to 60.01, available = 60, Q=40 → 40 → max 4.
    let d = guv("a: {p: 60, d: 61, max: 4}", "a", 40, None, &[]);
    assert_eq!((d.wanted, d.estimate), (40, 4));
}

#[test]
fn guv_issue_94() {
    let config = "a: {p: 496, stddev: 1404, d: 1200, percentile: 68, concurrency: 4, max: 2}";
    let d = guv(config, "a", 1, None, &[]);
    assert_eq!((d.wanted, d.estimate), (1, 1), "after the max(P, …) fix");
    // Before the fix available was target − P ≈ 47.3 s: 496 / 47.3 → 11 → clamped to 2.
    let role = ScalingConfig::parse(config).unwrap().roles[0].clone();
    let before = (496.0 / (role.target.as_secs_f64() - 496.0)).ceil();
    assert_eq!(before, 11.0);
}

fn deadline_config() -> ScalingConfig {
    ScalingConfig::parse(
        "'*': {pollinterval: 1, history: 60}\n\
         render: {p: 2, stddev: 1, d: 20, percentile: 99, min: 1, max: 20, boot: 0}",
    )
    .unwrap()
}

fn deadline(
    config: &ScalingConfig,
    history: &History,
    now: u64,
    backlog: u64,
    rate: f64,
    current: Option<u32>,
) -> Decision {
    let role = &config.roles[0];
    let mut inputs = Inputs::new(config, role, history);
    inputs.now = Duration::from_secs(now);
    inputs.backlog = backlog;
    inputs.arrival_rate = Some(rate);
    inputs.current = current;
    DeadlinePolicy.decide(&inputs)
}

#[test]
fn deadline_idles_at_minimum() {
    let config = deadline_config();
    let d = deadline(&config, &History::default(), 0, 0, 0.0, Some(3));
    assert_eq!((d.estimate, d.instances), (1, Some(1)));
}

#[test]
fn deadline_sizes_by_erlang_c() {
    // Exponential processing (σ = P) makes Whitt's correction 1: plain Erlang C.
    let config =
        ScalingConfig::parse("a: {p: 1, stddev: 1, d: 3, percentile: 90, max: 40}").unwrap();
    let role = &config.roles[0];
    let stats = ProcessingStats {
        mean: 1.0,
        stddev: 1.0,
    };
    let n = DeadlinePolicy::steady_instances(role, stats, 10.0, 40);
    // With σ = P Whitt's factor is 1: the wait is Erlang C's, exactly.
    let late = |m: u32| queueing::Station::mmm(m, 10.0, 1.0).response_tail_lognormal(3.0, 1.0);
    let idle = queueing::Station::mmm(1, 0.0, 1.0).response_tail_lognormal(3.0, 1.0);
    let budget = 0.1 - idle;
    assert!(late(n) - idle <= budget, "{n} instances meet the deadline");
    assert!(late(n - 1) - idle > budget, "{} instances do not", n - 1);
    assert!(n > 10 && n < 16, "{n}");
}

#[test]
fn deadline_keeps_instances_when_the_queue_is_empty_but_work_arrives() {
    // KEDA #1643: consumers keep up, so the queue is empty; guv drops to minimum.
    let config = deadline_config();
    let history = History::default();
    let d = deadline(&config, &history, 0, 0, 8.0, Some(17));
    assert!(d.estimate >= 16, "{d:?}");
    let role = &config.roles[0];
    let mut inputs = Inputs::new(&config, role, &history);
    inputs.arrival_rate = Some(8.0);
    inputs.current = Some(17);
    assert_eq!(GuvPolicy.decide(&inputs).instances, Some(1));
}

#[test]
fn deadline_drains_a_backlog() {
    let config = deadline_config();
    let steady = deadline(&config, &History::default(), 0, 4, 4.0, Some(4));
    let spike = deadline(&config, &History::default(), 0, 200, 4.0, Some(4));
    assert!(spike.estimate > steady.estimate + 5, "{steady:?} {spike:?}");
    // Buffered regime: the deadline leaves 20 − 5.36 s (99 % processing time) of slack; half
    // of it at 4/s allows 29.3 waiting jobs. 196 waiting (4 in service) bring them back
    // within the slack while 4/s keep coming, 2 s each: ((196 − 29.3)/14.64 + 4)·2 → 31.
    assert_eq!(spike.estimate, 20);
    assert_eq!(spike.wanted, 31);
    assert!(spike.saturated(&config.roles[0]));
}

#[test]
fn deadline_plans_ahead_for_start_time() {
    let config = deadline_config();
    let role = &config.roles[0];
    let mut history = History::new(Duration::from_secs(600));
    for t in 0..60 {
        history.record(Sample {
            at: Duration::from_secs(t),
            estimate: 3,
            arrival_rate: 1.0 + t as f64 * 0.05,
        });
    }
    let mut inputs = Inputs::new(&config, role, &history);
    inputs.now = Duration::from_secs(60);
    inputs.arrival_rate = Some(4.0);
    inputs.current = Some(5);
    inputs.start_time = Some(Duration::from_secs(45));
    let slow = DeadlinePolicy.decide(&inputs);
    inputs.start_time = Some(Duration::from_micros(20));
    let fast = DeadlinePolicy.decide(&inputs);
    assert!(slow.estimate > fast.estimate + 2, "{slow:?} {fast:?}");
}

#[test]
fn deadline_holds_on_the_way_down_then_steps_down() {
    // Slow starts (90 s): the hold is the whole 60 s history window.
    let config = ScalingConfig::parse(
        "'*': {pollinterval: 1, history: 60}\n\
         render: {p: 2, stddev: 1, d: 20, percentile: 99, min: 1, max: 20, boot: 90}",
    )
    .unwrap();
    let mut history = History::for_config(&config);
    let mut current = None;
    let mut counts = Vec::new();
    for t in 0..200u64 {
        let rate = if t < 30 { 8.0 } else { 1.0 };
        let d = deadline(&config, &history, t, 0, rate, current);
        history.record(Sample {
            at: Duration::from_secs(t),
            estimate: d.estimate,
            arrival_rate: rate,
        });
        if let Some(n) = d.instances {
            current = Some(n);
        }
        counts.push(current.unwrap());
    }
    let high = counts[29];
    assert!(high > 10, "{counts:?}");
    assert_eq!(counts[85], high, "held for the 60 s history window");
    assert!(counts[95] < 5, "down after the window: {counts:?}");
}

#[test]
fn deadline_does_not_flap_on_noisy_rates() {
    let config = deadline_config();
    let mut history = History::for_config(&config);
    let mut current = Some(10);
    let mut changes = 0;
    for t in 0..600u64 {
        let rate = if t % 2 == 0 { 6.5 } else { 7.5 };
        let d = deadline(&config, &history, t, 0, rate, current);
        history.record(Sample {
            at: Duration::from_secs(t),
            estimate: d.estimate,
            arrival_rate: rate,
        });
        if let Some(n) = d.instances {
            if Some(n) != current {
                changes += 1;
            }
            current = Some(n);
        }
    }
    assert!(changes <= 2, "{changes} changes");
}

#[test]
fn deadline_holds_briefly_when_instances_start_fast() {
    // Starting costs 0 s here: the hold shrinks to five polls.
    let config = deadline_config();
    let mut history = History::for_config(&config);
    let mut current = None;
    let mut counts = Vec::new();
    for t in 0..60u64 {
        let rate = if t < 30 { 8.0 } else { 1.0 };
        let d = deadline(&config, &history, t, 0, rate, current);
        history.record(Sample {
            at: Duration::from_secs(t),
            estimate: d.estimate,
            arrival_rate: rate,
        });
        if let Some(n) = d.instances {
            current = Some(n);
        }
        counts.push(current.unwrap());
    }
    assert_eq!(counts[33], counts[29], "{counts:?}");
    assert!(counts[36] < 5, "{counts:?}");
}

/// The example role with 45 s starts (or `boot`): wait budget 60 − 5.37 = 54.63 s.
fn slow_start_config(boot: &str) -> ScalingConfig {
    ScalingConfig::parse(&format!(
        "'*': {{pollinterval: 1, history: 120}}\n\
         render: {{p: 2, stddev: 1, d: 60, percentile: 99, min: 1, max: 20, boot: {boot}}}"
    ))
    .unwrap()
}

/// Runs one decision per second over `inputs` (waiting jobs, rate) from `current`
/// instances, recording each decision; returns the count after each poll.
fn run_decisions(config: &ScalingConfig, current: u32, steps: &[(f64, f64)]) -> Vec<u32> {
    let mut history = History::for_config(config);
    let mut current = current;
    let mut counts = Vec::new();
    for (t, (waiting, rate)) in steps.iter().enumerate() {
        let backlog = (*waiting as u64).saturating_add(u64::from(current));
        let d = deadline(config, &history, t as u64, backlog, *rate, Some(current));
        history.record(Sample {
            at: Duration::from_secs(t as u64),
            estimate: d.estimate,
            arrival_rate: *rate,
        });
        current = d.instances.unwrap_or(current);
        counts.push(current);
    }
    counts
}

fn changes(counts: &[u32]) -> usize {
    counts.windows(2).filter(|w| w[0] != w[1]).count()
}

#[test]
fn band_keeps_the_count_through_noise() {
    // 8 jobs/s keep 16 instances busy; the band at 8/s is 109–218 waiting jobs. The measured
    // rate wobbles by ±0.4/s and the queue by ±50 jobs around 160, as Poisson noise does.
    let mut rng = crate::scaling::simulate::SplitMix64::new(7);
    let steps: Vec<(f64, f64)> = (0..900)
        .map(|_| {
            (
                160.0 + 100.0 * (rng.unit() - 0.5),
                8.0 + 0.8 * (rng.unit() - 0.5),
            )
        })
        .collect();
    let slow = run_decisions(&slow_start_config("45"), 16, &steps);
    assert_eq!(changes(&slow), 0, "45 s starts: {slow:?}");
    assert_eq!(slow[899], 16);
    // With instant starts the set point follows the same noise.
    let fast = run_decisions(&slow_start_config("0"), 16, &steps);
    assert!(changes(&fast) >= 5, "0 s starts: {fast:?}");
}

#[test]
fn band_adds_one_instance_just_above_it() {
    let config = slow_start_config("45");
    // 5 jobs over the band's top at 8/s: one more instance, not a burst of them.
    let d = deadline(&config, &History::default(), 0, 224 + 16, 8.0, Some(16));
    assert_eq!(d.instances, Some(17), "{d:?}");
    let inside = deadline(&config, &History::default(), 0, 200 + 16, 8.0, Some(16));
    assert_eq!(inside.instances, None, "inside the band: {inside:?}");
    // Nothing measured yet, so the band is empty: 3 waiting jobs get 3 more instances, not
    // the 6 that draining them within a poll would take (guv's #94).
    let idle = deadline(&config, &History::default(), 0, 3 + 1, 0.0, Some(1));
    assert_eq!(idle.instances, Some(4), "{idle:?}");
}

#[test]
fn band_meets_a_sustained_rise_within_seconds() {
    // From 1 job/s on 2 instances to 8 jobs/s: the measured rate lags (60 s time constant)
    // and the instances asked for serve only 45 s later, so the queue grows meanwhile.
    let config = slow_start_config("45");
    let mut history = History::for_config(&config);
    let (mut current, mut waiting, mut serving) = (2u32, 5.0f64, 2.0f64);
    let mut asked_at: Vec<(u64, u32)> = Vec::new();
    for t in 0..300u64 {
        let measured = 8.0 - 7.0 * (-(t as f64) / 60.0).exp();
        let ready = asked_at
            .iter()
            .filter(|(at, _)| at + 45 <= t)
            .map(|(_, n)| *n)
            .next_back();
        serving = ready.map_or(serving, f64::from);
        waiting = (waiting + 8.0 - serving / 2.0).max(0.0);
        let backlog = waiting as u64 + u64::from(current);
        let d = deadline(&config, &history, t, backlog, measured, Some(current));
        history.record(Sample {
            at: Duration::from_secs(t),
            estimate: d.estimate,
            arrival_rate: measured,
        });
        if let Some(n) = d.instances {
            if n > current {
                asked_at.push((t, n));
            }
            current = n;
        }
        if t == 15 {
            assert!(
                current >= 16,
                "16 instances asked for within 15 s: {current}"
            );
        }
    }
    // The queue built while they started is back in the band.
    assert!(waiting < 8.0 * 54.63 * 0.5, "{waiting}");
}

#[test]
fn band_scales_down_when_the_queue_runs_dry_after_a_start_time() {
    // 12 instances busy at 6 jobs/s with a queue in the band (82–164 jobs); then 4 jobs/s,
    // which keep 8 busy, and the queue runs dry.
    let config = slow_start_config("45");
    let mut steps = vec![(120.0, 6.0); 30];
    steps.extend([(0.0, 4.0); 120]);
    let counts = run_decisions(&config, 12, &steps);
    assert_eq!(counts[29 + 40], 12, "held for one start time: {counts:?}");
    assert_eq!(
        counts[149], 8,
        "then down to the busy instances: {counts:?}"
    );
    assert_eq!(changes(&counts), 1, "{counts:?}");
}
