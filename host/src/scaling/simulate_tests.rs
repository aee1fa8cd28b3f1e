use super::*;
use crate::scaling::policy::{FixedPolicy, GuvPolicy};
use crate::scaling::queueing::Station;

fn config() -> ScalingConfig {
    ScalingConfig::parse(
        "'*': {pollinterval: 1, history: 120}\n\
         render: {p: 2, stddev: 1, d: 60, percentile: 99, min: 1, max: 20, boot: 0.00002}",
    )
    .unwrap()
}

#[test]
fn mean_wait_matches_erlang_c_within_3_percent() {
    let config = ScalingConfig::parse("mm5: {p: 1, max: 5}").unwrap();
    let role = &config.roles[0];
    // 1.2 million jobs at ρ = 0.8: seeds 1 to 8 all land within 3 % (worst 2.8 %); with
    // 300,000 jobs the sampling error alone reaches 5 %.
    let duration = 300_000.0;
    let mut scenario = Scenario::new(
        &config,
        role,
        Shape::Trace(vec![(0.0, 4.0), (duration, 0.0)]),
        duration,
    );
    scenario.service = ServiceTimes::Exponential;
    scenario.seed = 42;
    let outcome = run(&scenario, &FixedPolicy(5));
    assert!(outcome.jobs >= 1_000_000, "{outcome:?}");
    let expected = Station::mmm(5, 4.0, 1.0).mmm_mean_wait();
    let error = (outcome.mean_wait - expected).abs() / expected;
    assert!(
        error < 0.03,
        "simulated {} vs Erlang C {expected}: {:.2} %",
        outcome.mean_wait,
        error * 100.0
    );
    // Fixed instances cost exactly instances × time.
    assert!((outcome.instance_seconds - 5.0 * duration).abs() < 1e-6);
}

#[test]
fn splitmix_is_deterministic_and_uniform() {
    let mut a = SplitMix64::new(7);
    let mut b = SplitMix64::new(7);
    let xs: Vec<f64> = (0..100_000).map(|_| a.unit()).collect();
    assert!(xs.iter().all(|x| *x > 0.0 && *x <= 1.0));
    assert_eq!(xs[99_999], (0..100_000).map(|_| b.unit()).last().unwrap());
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    assert!((mean - 0.5).abs() < 0.005, "{mean}");
}

#[test]
fn deadline_policy_follows_a_square_wave_cheaply() {
    let config = config();
    let role = &config.roles[0];
    let scenario = Scenario::new(&config, role, Shape::Square, 8.0 * 3600.0);
    let deadline = run(&scenario, &DeadlinePolicy);
    let fixed = run(&scenario, &FixedPolicy(role.maximum));
    let guv = run(&scenario, &GuvPolicy);
    let floor = clairvoyant(&scenario);
    assert!(deadline.miss_percent() < 1.0, "{deadline:?}");
    assert!(
        deadline.instance_seconds < fixed.instance_seconds * 0.8,
        "{deadline:?}"
    );
    assert!(deadline.instance_seconds >= deadline.busy_floor);
    assert!(
        floor <= deadline.instance_seconds * 1.05,
        "{floor} vs {deadline:?}"
    );
    assert!(guv.jobs == deadline.jobs, "same seed, same arrivals");
}

#[test]
fn start_time_delays_service() {
    let config = config();
    let role = &config.roles[0];
    let mut scenario = Scenario::new(&config, role, Shape::Spike, 7.0 * 3600.0);
    let fast = run(&scenario, &DeadlinePolicy);
    scenario.start_time = Duration::from_secs(45);
    let slow = run(&scenario, &DeadlinePolicy);
    assert!(
        slow.instance_seconds > fast.instance_seconds,
        "{fast:?} {slow:?}"
    );
}

#[test]
fn capacity_is_below_raw_throughput() {
    let config = config();
    let (rate, raw) = capacity(&config.roles[0]);
    assert_eq!(raw, 10.0);
    assert!(rate > 8.0 && rate < 10.0, "{rate}");
}

#[test]
fn crashes_redeliver_jobs_and_replace_instances() {
    let config = config();
    let role = &config.roles[0];
    let mut scenario = Scenario::new(&config, role, Shape::Square, 4.0 * 3600.0);
    let calm = run(&scenario, &DeadlinePolicy);
    scenario.faults.crashes_per_hour = 30.0;
    let crashing = run(&scenario, &DeadlinePolicy);
    assert_eq!(calm.crashes, 0);
    assert!(crashing.crashes > 100, "{crashing:?}");
    assert_eq!(
        crashing.jobs, calm.jobs,
        "faults do not change the arrivals"
    );
    // Redone work and replacement start times cost something, and jobs are not lost:
    // the misses stay in line with the calm run.
    assert!(crashing.instance_seconds >= calm.instance_seconds * 0.99);
    assert!(crashing.busy_floor >= calm.busy_floor * 0.99);
    assert!(crashing.miss_percent() < 1.0, "{crashing:?}");
    // Slow replacements under the same crashes hurt more.
    scenario.start_time = Duration::from_secs(45);
    let slow = run(&scenario, &DeadlinePolicy);
    assert!(slow.misses >= crashing.misses, "{slow:?} {crashing:?}");
}

#[test]
fn broker_timeouts_skip_decisions() {
    let config = config();
    let role = &config.roles[0];
    let mut scenario = Scenario::new(&config, role, Shape::Square, 2.0 * 3600.0);
    scenario.faults.broker_timeouts = 1.0;
    let blind = run(&scenario, &DeadlinePolicy);
    assert_eq!(blind.scale_actions, 0, "no poll decided");
    assert!(blind.skipped_decisions >= 7_000, "{blind:?}");
    scenario.faults.broker_timeouts = 0.2;
    let flaky = run(&scenario, &DeadlinePolicy);
    let share = flaky.skipped_decisions as f64 / blind.skipped_decisions as f64;
    assert!((share - 0.2).abs() < 0.02, "{share}");
    assert!(flaky.miss_percent() < 1.0, "{flaky:?}");
}
