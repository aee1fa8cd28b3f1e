//! `wasmflo-edge`: runs one participant component on the edge host (wasmi) locally.
//!
//! ```text
//! wasmflo-edge ROLE=COMPONENT.wasm [--input PORT=PAYLOAD | --timer ID]... [--fuel N] [--memory BYTES]
//! ```
//!
//! Loads the component, calls `start`, then makes each call in command-line order:
//! `--input in=22.5` delivers the JSON text `22.5` on inport `in`; `--timer 0` fires timer 0.
//! Every message sent is printed as `ROLE.PORT <- PAYLOAD`, every fault as
//! `ROLE: PORT: KIND: DETAIL`, log lines as `ROLE [level] TEXT`, timer changes as
//! `ROLE: timer ...`. Exit status: 0, or 1 when the component cannot be loaded, 2 for bad
//! usage.
//!
//! The MsgFlo participant over MQTT (`--broker mqtt://...`: discovery, `role.PORT`
//! queues, QoS 1) waits for the broker transport the server host is getting; this
//! binary refuses `--broker` until then.

use std::process::ExitCode;

use wasmflo_edge::{CallOutcome, Component, Engine, Limits, Message, TimerCommand};

const USAGE: &str = "usage: wasmflo-edge ROLE=COMPONENT.wasm [--input PORT=PAYLOAD | --timer ID]... [--fuel N] [--memory BYTES]";

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
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let first = args.next().ok_or_else(|| USAGE.to_string())?;
    let (role, path) = first
        .split_once('=')
        .ok_or_else(|| format!("expected ROLE=COMPONENT.wasm, got `{first}`\n{USAGE}"))?;
    let mut parsed = Args {
        role: role.to_string(),
        path: path.to_string(),
        steps: Vec::new(),
        limits: Limits::default(),
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
                let id = v
                    .parse()
                    .map_err(|_| format!("--timer expects a timer id, got `{v}`"))?;
                parsed.steps.push(Step::Timer(id));
            }
            "--fuel" => {
                let v = value()?;
                parsed.limits.fuel = v
                    .parse()
                    .map_err(|_| format!("--fuel expects a number, got `{v}`"))?;
            }
            "--memory" => {
                let v = value()?;
                parsed.limits.memory = v
                    .parse()
                    .map_err(|_| format!("--memory expects bytes, got `{v}`"))?;
            }
            "--broker" => {
                return Err("--broker: the MQTT participant mode is not implemented yet (it needs the broker transport); run locally with --input".into());
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    Ok(parsed)
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

fn main() -> ExitCode {
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
    let component = match Component::new(&Engine::new(), &bytes) {
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
