//! The `wasmflo` command line: one file per subcommand. `anyhow` lives here only.

mod bindings;
mod broker;
mod build;
mod coordinate;
mod deploy;
mod dump;
mod graph;
mod inspect;
mod new;
mod participant;
mod register;
mod run;
mod scale;
mod send;
mod setup;
mod simulate;
mod task;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::component::{DiskCache, Loader};
use crate::runtime::{Runtime, RuntimeConfig, parse_size};

/// Run flow-based programs whose participants are WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "wasmflo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a graph (.fbp or .json) until Ctrl-C.
    Run(run::RunArgs),
    /// Print a component's definition and imports.
    Inspect(inspect::InspectArgs),
    /// Print a graph as JSON (like `fbp FILE`) or as .fbp; loads no component.
    Graph(graph::GraphArgs),
    /// Check a graph's syntax and consistency; loads no component.
    Validate(validate::ValidateArgs),
    /// Run WASM participants on a broker: ROLE=COMPONENT [ROLE=COMPONENT...].
    Participant(participant::ParticipantArgs),
    /// Bind a graph's edges on a broker and send its IIPs (like msgflo-setup).
    Setup(setup::SetupArgs),
    /// List what the coordinators on a broker have bound.
    Bindings(bindings::BindingsArgs),
    /// Announce foreign participants declared in MsgFlo's YAML (like msgflo-register).
    Register(register::RegisterArgs),
    /// Send a signed component to the edge hosts of a role over MQTT (or make a key pair).
    Deploy(deploy::DeployArgs),
    /// Send one JSON message to a queue on a broker.
    Send(send::SendArgs),
    /// Print the messages of a queue on a broker, one JSON per line.
    Dump(dump::DumpArgs),
    /// Run a workflow (chain, group, chord, map, ...) of tasks and print its result.
    Task(task::TaskArgs),
    /// Simulate a guv scaling configuration under a load (or show its capacity).
    Simulate(simulate::SimulateArgs),
    /// Build participants in any language (Rust, C, Python, JavaScript) into components.
    Build(build::BuildArgs),
    /// Scaffold a participant: `wasmflo new acme/Scale --lang rust|c|python|js`.
    New(new::NewArgs),
}

/// Engine settings shared by every subcommand.
#[derive(Debug, clap::Args)]
struct EngineArgs {
    /// Most participant instances at once (size of the instance pool).
    #[arg(long, global = true, default_value_t = 1000)]
    max_instances: u32,
    /// Largest memory cap a process may be given (e.g. 1GiB).
    #[arg(long, global = true, default_value = "1GiB", value_parser = size)]
    max_memory: usize,
    /// Do not read or write the compiled-component cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Where compiled components are cached (default: $WASMFLO_CACHE_DIR or ~/.cache/wasmflo).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
}

fn size(text: &str) -> Result<usize, String> {
    parse_size(text).ok_or_else(|| format!("'{text}' is not a size such as 64MiB"))
}

impl EngineArgs {
    fn loader(&self) -> anyhow::Result<Loader> {
        let config = RuntimeConfig {
            max_instances: self.max_instances,
            max_memory: self.max_memory,
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::new(&config)?;
        let cache = if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .map(DiskCache::new)
                .or_else(DiskCache::default_location)
        };
        Ok(Loader::new(runtime, cache))
    }
}

/// Parses arguments, runs the subcommand, and maps errors to one line and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run::run(&cli.engine, args),
        Command::Inspect(args) => inspect::inspect(&cli.engine, args),
        Command::Graph(args) => graph::graph(args),
        Command::Validate(args) => validate::validate(args),
        Command::Participant(args) => participant::participant(&cli.engine, args),
        Command::Setup(args) => setup::setup(&cli.engine, args),
        Command::Bindings(args) => bindings::bindings(args),
        Command::Register(args) => register::register(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Send(args) => send::send(args),
        Command::Dump(args) => dump::dump(args),
        Command::Task(args) => task::task(&cli.engine, args),
        Command::Simulate(args) => simulate::simulate(args),
        Command::Build(args) => build::build(args),
        Command::New(args) => new::new(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, without repeating a cause already in the text.
fn one_line(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text.replace('\n', " ")
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("WASMFLO_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,cranelift=warn,wasmtime=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
