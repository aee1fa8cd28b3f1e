//! The `wasmflo-edge` command (feature `std`): a local runner, or a MsgFlo participant
//! over MQTT.
//!
//! ```text
//! wasmflo-edge ROLE=COMPONENT.wasm [--input PORT=PAYLOAD | --timer ID]... [--fuel N] [--memory BYTES]
//! wasmflo-edge ROLE=COMPONENT.wasm --broker mqtt[s]://HOST[:PORT][?client_id=ID&clean=true&shared=GROUP]
//!     [--ca-file PEM] [--trust PUBKEYFILE]... [--sequence N] [--state DIR] [--max-deploy BYTES] [--fuel N] [--memory BYTES]
//! ```
//!
//! Locally it loads the component, calls `start`, then makes each call in command-line
//! order: `--input in=22.5` delivers the JSON text `22.5` on inport `in`; `--timer 0`
//! fires timer 0. Every message sent is printed as `ROLE.PORT <- PAYLOAD`, every fault as
//! `ROLE: PORT: KIND: DETAIL`, log lines as `ROLE [level] TEXT`, timer changes as
//! `ROLE: timer ...`.
//!
//! With `--broker` it is a MsgFlo participant until Ctrl-C or SIGTERM (see
//! [`crate::mqtt`]); `mqtts://` trusts the system's CAs and those of `--ca-file`
//! (default: the `WASMFLO_CA_FILE` environment variable); `--trust` (a file holding an ed25519 public key as 64 hex digits,
//! as `wasmflo deploy --keygen` writes it; repeatable) accepts signed deployments above
//! sequence `--sequence` (default 0) of at most `--max-deploy` bytes (default 1 MiB).
//! `--state DIR` keeps the last accepted deployment in `DIR/ROLE.deployment`: a restart
//! runs that component and refuses deployments at or below its sequence.
//!
//! Exit status: 0, or 1 when the component cannot be loaded or the broker fails, 2 for
//! bad usage. Kept in the library so a test package can run it under its own binary name.

use std::process::ExitCode;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{eprintln, format, println};

use crate::{CallOutcome, Component, Engine, Limits, Message, TimerCommand};

const USAGE: &str = "usage: wasmflo-edge ROLE=COMPONENT.wasm [--input PORT=PAYLOAD | --timer ID]... [--fuel N] [--memory BYTES]
       wasmflo-edge ROLE=COMPONENT.wasm --broker mqtt[s]://HOST[:PORT] [--ca-file PEM] [--trust PUBKEYFILE]... [--sequence N] [--state DIR] [--max-deploy BYTES]";

/// One call to make, in command-line order.
#[derive(Debug)]
enum Step {
    Input(String, String),
    Timer(u32),
}

#[derive(Debug)]
struct Args {
    role: String,
    path: String,
    steps: Vec<Step>,
    limits: Limits,
    broker: Option<String>,
    ca_file: Option<String>,
    trust: Vec<String>,
    sequence: u64,
    state: Option<String>,
    max_deploy: u64,
}

fn number<T: core::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag} expects a number, got `{v}`"))
}

/// Bytes, with an optional KiB/MiB suffix.
fn bytes(flag: &str, v: &str) -> Result<u64, String> {
    let (digits, unit) = match v {
        _ if v.ends_with("KiB") => (&v[..v.len() - 3], 1 << 10),
        _ if v.ends_with("MiB") => (&v[..v.len() - 3], 1 << 20),
        _ => (v, 1),
    };
    number::<u64>(flag, digits.trim())?
        .checked_mul(unit)
        .ok_or_else(|| format!("{flag}: `{v}` is too large"))
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let first = args.next().ok_or_else(|| USAGE.to_string())?;
    let (role, path) = first
        .split_once('=')
        .ok_or_else(|| format!("expected ROLE=COMPONENT.wasm, got `{first}`\n{USAGE}"))?;
    let valid = !role.is_empty()
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid || path.is_empty() {
        return Err(format!(
            "`{first}`: a role is letters, digits, '_' and '-', and a component is required"
        ));
    }
    let mut parsed = Args {
        role: role.to_string(),
        path: path.to_string(),
        steps: Vec::new(),
        limits: Limits::default(),
        broker: None,
        ca_file: None,
        trust: Vec::new(),
        sequence: 0,
        state: None,
        max_deploy: 1 << 20,
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--input" => {
                let v = value()?;
                let (port, payload) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--input expects PORT=PAYLOAD, got `{v}`"))?;
                parsed.steps.push(Step::Input(port.into(), payload.into()));
            }
            "--timer" => {
                let v = value()?;
                parsed.steps.push(Step::Timer(number("--timer", &v)?));
            }
            "--fuel" => parsed.limits.fuel = number("--fuel", &value()?)?,
            "--memory" => {
                let v = value()?;
                parsed.limits.memory = usize::try_from(bytes("--memory", &v)?)
                    .map_err(|_| format!("--memory: `{v}` is too large"))?;
            }
            "--broker" => parsed.broker = Some(value()?),
            "--ca-file" => parsed.ca_file = Some(value()?),
            "--trust" => parsed.trust.push(value()?),
            "--sequence" => parsed.sequence = number("--sequence", &value()?)?,
            "--state" => parsed.state = Some(value()?),
            "--max-deploy" => parsed.max_deploy = bytes("--max-deploy", &value()?)?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if parsed.broker.is_some() && !parsed.steps.is_empty() {
        return Err(format!(
            "--input and --timer run locally; they do not go with --broker\n{USAGE}"
        ));
    }
    if parsed.broker.is_none() && !parsed.trust.is_empty() {
        return Err(format!(
            "--trust needs --broker (deployments come over MQTT)\n{USAGE}"
        ));
    }
    if parsed.state.is_some() && parsed.trust.is_empty() {
        return Err(format!(
            "--state keeps deployments: it needs --trust\n{USAGE}"
        ));
    }
    Ok(parsed)
}

/// Reads a public key file: 64 hex digits (surrounding whitespace ignored).
#[cfg(feature = "mqtt")]
fn read_public_key(path: &str) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{path}: cannot read public key: {e}"))?;
    let hex = text.trim();
    let mut key = [0u8; 32];
    let ok = hex.len() == 64
        && key.iter_mut().enumerate().all(|(i, b)| {
            hex.get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .map(|v| *b = v)
                .is_some()
        });
    if !ok {
        return Err(format!(
            "{path}: not an ed25519 public key (64 hex digits, as `wasmflo deploy --keygen` writes)"
        ));
    }
    Ok(key)
}

fn preview(msg: &Message) -> String {
    let ct = if msg.content_type.is_empty() {
        "application/json"
    } else {
        msg.content_type.as_str()
    };
    let texty = ct == "application/json" || ct.ends_with("+json") || ct.starts_with("text/");
    match std::str::from_utf8(&msg.data) {
        Ok(text) if texty => text.to_string(),
        _ => format!("<{} bytes of {ct}>", msg.data.len()),
    }
}

fn report(role: &str, component: &Component, what: &str, outcome: &CallOutcome) {
    for (level, text) in &outcome.logs {
        println!("{role} [{}] {text}", level.as_str());
    }
    for timer in &outcome.timers {
        match timer {
            TimerCommand::Set {
                id,
                after_ms,
                repeat,
            } => println!(
                "{role}: timer {id} set: {after_ms} ms{}",
                if *repeat { ", repeating" } else { "" }
            ),
            TimerCommand::Cancel(id) => println!("{role}: timer {id} cancelled"),
        }
    }
    for (index, msg) in &outcome.outputs {
        let port = component
            .definition()
            .outports
            .get(*index)
            .map_or("?", |p| p.id.as_str());
        println!("{role}.{port} <- {}", preview(msg));
    }
    if let Err(fault) = &outcome.result {
        println!("{role}: {what}: {}: {}", fault.kind, fault.detail);
    }
}

/// Runs the command with the process's arguments.
pub fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let bytes = match std::fs::read(&args.path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}: cannot read component: {e}", args.path);
            return ExitCode::from(1);
        }
    };
    match args.broker.clone() {
        Some(broker) => match participant(args, broker, bytes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        None => local(&args, &bytes),
    }
}

/// Without the `mqtt` feature there is no participant mode.
#[cfg(not(feature = "mqtt"))]
fn participant(_: Args, _: String, _: Vec<u8>) -> Result<(), String> {
    Err("--broker: this wasmflo-edge is built without the `mqtt` feature".into())
}

/// The MQTT participant until Ctrl-C or SIGTERM.
#[cfg(feature = "mqtt")]
fn participant(args: Args, broker: String, component: Vec<u8>) -> Result<(), String> {
    let trust = args
        .trust
        .iter()
        .map(|p| read_public_key(p))
        .collect::<Result<Vec<_>, _>>()?;
    let options = crate::mqtt::Options {
        role: args.role,
        component,
        source: args.path,
        broker,
        ca_file: args
            .ca_file
            .or_else(|| std::env::var("WASMFLO_CA_FILE").ok())
            .map(std::path::PathBuf::from),
        limits: args.limits,
        trust,
        sequence: args.sequence,
        state: args.state.map(std::path::PathBuf::from),
        max_deploy: args.max_deploy,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(crate::mqtt::run(options, stop_signal()))
        .map_err(|e| e.to_string())
}

/// Resolves once Ctrl-C or SIGTERM (how MsgFlo stops participants) arrives.
#[cfg(feature = "mqtt")]
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The local runner: `start`, then each step in order.
fn local(args: &Args, bytes: &[u8]) -> ExitCode {
    let component = match Component::new(&Engine::new(), bytes) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", args.path);
            return ExitCode::from(1);
        }
    };
    let role = args.role.as_str();
    let mut instance = match component.instantiate(&args.limits) {
        Ok(i) => i,
        Err(f) => {
            eprintln!(
                "error: {}: fails while starting ({}): {}",
                args.path, f.kind, f.detail
            );
            return ExitCode::from(1);
        }
    };
    report(role, &component, "start", &instance.start());
    for step in &args.steps {
        let (what, outcome) = match step {
            Step::Input(port, payload) => (
                port.clone(),
                instance.process(port, &Message::json_text(payload.as_bytes())),
            ),
            Step::Timer(id) => (format!("timer:{id}"), instance.on_timer(*id)),
        };
        report(role, &component, &what, &outcome);
        if outcome.result.is_err_and(|f| f.kind.poisons_instance()) {
            instance = match component.instantiate(&args.limits) {
                Ok(i) => i,
                Err(f) => {
                    eprintln!(
                        "error: {}: cannot recreate the instance ({}): {}",
                        args.path, f.kind, f.detail
                    );
                    return ExitCode::from(1);
                }
            };
            report(role, &component, "start", &instance.start());
        }
    }
    ExitCode::SUCCESS
}
