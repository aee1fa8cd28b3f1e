//! `wasmflo simulate CONFIG`: simulate a guv configuration under a load, or tell its capacity.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::runtime::parse_duration;
use crate::scaling::compare::{HEADER, compare, rows};
use crate::scaling::config::ScalingConfig;
use crate::scaling::load::{SHAPES, Shape};
use crate::scaling::picture::svg;
use crate::scaling::policy::{DeadlinePolicy, GuvPolicy, Policy};
use crate::scaling::simulate::{Faults, Scenario, capacity, run_traced};

/// Arguments of `wasmflo simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// guv configuration (YAML or JSON).
    config: PathBuf,
    /// Load: sine, square, triangle, spike, oob-spike, all, or a CSV file of
    /// `seconds,jobs_per_second` rows.
    #[arg(
        long,
        value_name = "SHAPE|FILE.csv",
        required_unless_present = "capacity"
    )]
    load: Option<String>,
    /// Seed of the simulation's random numbers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The policy to compare with guv's, fixed maximum and the clairvoyant bound.
    #[arg(long, value_enum, default_value_t = PolicyName::Deadline)]
    policy: PolicyName,
    /// Instance start time (e.g. 20us, 45s); default each role's `boot`.
    #[arg(long, value_parser = duration)]
    start_time: Option<Duration>,
    /// Simulated hours for named shapes.
    #[arg(long, default_value_t = 48.0)]
    hours: f64,
    /// Simulate only this role (default: every role).
    #[arg(long)]
    role: Option<String>,
    /// Print, per role, which arrival rates the configuration can handle instead.
    #[arg(long)]
    capacity: bool,
    /// Draw the tested policy's run as SVG (load, instances, backlog over time); with
    /// several shapes or roles, `ROLE-SHAPE` is added to the file name.
    #[arg(long, value_name = "FILE.svg")]
    picture: Option<PathBuf>,
    /// Instance crashes per instance-hour (the job in hand is redelivered; a replacement
    /// serves after the start time).
    #[arg(long, value_name = "PER_HOUR", default_value_t = 0.0)]
    crashes: f64,
    /// Fraction of polls whose backlog read times out (0-1); such a poll decides nothing.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    broker_timeouts: f64,
}

/// The policies `--policy` offers (`simulate`, `run --autoscale`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum PolicyName {
    Deadline,
    Guv,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| format!("'{text}' is not a duration such as 45s or 20us"))
}

/// Runs the simulation (or capacity report) and prints a table.
pub(super) fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let file = args.config.display();
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {file}"))?;
    let config = ScalingConfig::parse(&text).with_context(|| file.to_string())?;
    for note in &config.notes {
        eprintln!("note: {note}");
    }
    let roles: Vec<_> = match &args.role {
        Some(name) => vec![
            config
                .role(name)
                .with_context(|| format!("{file}: no role '{name}'"))?,
        ],
        None => config.roles.iter().collect(),
    };
    if roles.is_empty() {
        bail!("{file}: no roles to simulate");
    }
    if !(args.hours.is_finite() && args.hours > 0.0) {
        bail!("--hours must be a number above 0");
    }
    if !(args.crashes.is_finite() && args.crashes >= 0.0) {
        bail!("--crashes must be a number of crashes per instance-hour, 0 or more");
    }
    if !(0.0..=1.0).contains(&args.broker_timeouts) {
        bail!("--broker-timeouts must be a fraction of polls from 0 to 1");
    }
    let faults = Faults {
        crashes_per_hour: args.crashes,
        broker_timeouts: args.broker_timeouts,
    };
    if args.capacity {
        println!("role        max-inst  throughput/s  meets-deadline-up-to/s");
        for role in roles {
            let (rate, raw) = capacity(role);
            println!(
                "{:<11} {:>8} {:>13.3} {:>23.3}",
                role.name, role.maximum, raw, rate
            );
            println!(
                "  handles steady arrivals up to {rate:.3} jobs/s within {:?} for {} % of jobs; \
                 above {raw:.3} jobs/s the backlog grows without bound",
                role.deadline, role.percentile
            );
        }
        return Ok(());
    }
    let shapes = match args.load.as_deref() {
        Some("all") => SHAPES.to_vec(),
        Some(name) => match Shape::named(name) {
            Some(shape) => vec![shape],
            None => {
                let csv = std::fs::read_to_string(name).with_context(|| {
                    format!("--load {name}: not a shape name nor a readable file")
                })?;
                vec![Shape::from_csv(&csv).with_context(|| name.to_owned())?]
            }
        },
        None => bail!("--load is required"),
    };
    let policy: &dyn Policy = match args.policy {
        PolicyName::Deadline => &DeadlinePolicy,
        PolicyName::Guv => &GuvPolicy,
    };
    let several = shapes.len() > 1 || roles.len() > 1;
    for role in roles {
        println!(
            "role {}: C = {:.3} jobs/s, deadline {:?} for {} %, poll {:?}",
            role.name,
            role.max_throughput(),
            role.deadline,
            role.percentile,
            config.poll_interval
        );
        println!("{HEADER}");
        for shape in &shapes {
            let start = args.start_time.unwrap_or(role.boot);
            let c = compare(
                &config, role, shape, args.hours, start, args.seed, faults, policy,
            );
            print!("{}", rows(&c));
            if let Some(path) = &args.picture {
                let path = if several {
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
                    path.with_file_name(format!("{stem}-{}-{}.svg", role.name, shape.name()))
                } else {
                    path.clone()
                };
                let duration = shape.length().unwrap_or(args.hours * 3600.0);
                let mut scenario = Scenario::new(&config, role, shape.clone(), duration);
                scenario.start_time = start;
                scenario.seed = args.seed;
                scenario.faults = faults;
                let every = (duration / 2000.0).max(config.poll_interval.as_secs_f64());
                let (_, trace) = run_traced(&scenario, policy, Some(every));
                let title = format!(
                    "{} on {}, {} policy, start time {start:?}",
                    role.name,
                    shape.name(),
                    policy.name()
                );
                std::fs::write(&path, svg(&title, role, &trace))
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("  picture: {}", path.display());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: PathBuf) -> SimulateArgs {
        SimulateArgs {
            config,
            load: Some("spike".into()),
            seed: 1,
            policy: PolicyName::Deadline,
            start_time: None,
            hours: 7.0,
            role: None,
            capacity: false,
            crashes: 0.0,
            broker_timeouts: 0.0,
            picture: None,
        }
    }

    #[test]
    fn bad_configs_name_the_file_role_and_key() {
        let dir = std::env::temp_dir().join(format!("wasmflo-simulate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.guv.yaml");
        std::fs::write(&path, "'*': {max: 4}\nrender: {p: 2, deadlin: 20}\n").unwrap();
        let err = simulate(args(path.clone())).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("bad.guv.yaml"), "{text}");
        assert!(
            text.contains("role 'render': unknown key 'deadlin'"),
            "{text}"
        );

        let good = dir.join("good.guv.yaml");
        std::fs::write(
            &good,
            "'*': {pollinterval: 1}\nrender: {p: 2, d: 20, max: 4, boot: 0}\n",
        )
        .unwrap();
        let mut a = args(good.clone());
        a.picture = Some(dir.join("run.svg"));
        simulate(a).unwrap();
        let picture = std::fs::read_to_string(dir.join("run.svg")).unwrap();
        assert!(picture.contains("render on spike"), "{picture}");
        let mut a = args(good.clone());
        a.capacity = true;
        simulate(a).unwrap();
        let mut a = args(good);
        a.load = Some("no-such-shape".into());
        let err = simulate(a).unwrap_err();
        assert!(format!("{err:#}").contains("not a shape name"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
