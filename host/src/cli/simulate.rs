//! `wasmflo simulate CONFIG`: simulate a guv configuration under a load, or tell its capacity.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::runtime::parse_duration;
use crate::scaling::compare::{HEADER, compare, rows};
use crate::scaling::config::ScalingConfig;
use crate::scaling::load::{SHAPES, Shape};
use crate::scaling::policy::{DeadlinePolicy, GuvPolicy, Policy};
use crate::scaling::simulate::capacity;

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
}

/// The policies `--policy` offers.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PolicyName {
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
            let c = compare(&config, role, shape, args.hours, start, args.seed, policy);
            print!("{}", rows(&c));
        }
    }
    Ok(())
}
