//! `test/WasiProbe`: a wasm32-wasip2 participant that reports what WASI lets it reach,
//! for the host's per-process grant tests.
//!
//! Commands arrive on `in` as JSON strings; each sends one JSON object on `out`:
//! - `"env"`: `{"env": <$WASMFLO_PROBE or null>}`; `"env:NAME"` reads `$NAME` instead;
//! - `"file"`: `{"file": <contents of /data/probe.txt or null>, "error": <text or null>}`;
//! - `"write"`: creates `/data/written.txt` holding `x`;
//!   `{"write": <true|false>, "error": <text or null>}`;
//! - `"clock"`: `{"clock": <wall-clock seconds since the Unix epoch or null>}`;
//! - `"net"`: connects to `127.0.0.1:1`; `{"net": "connected" | "refused" | <the
//!   error kind, Debug-formatted, such as "PermissionDenied">, "error": <text or null>}`.
//!   `refused` means the network was reached; any other kind means it was not.
//!
//! Anything else nacks with `invalid-input`.

use std::io::ErrorKind;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use wasmflo_guest::prelude::*;

/// The variable `"env"` reads.
pub const ENV_VAR: &str = "WASMFLO_PROBE";
/// The file `"file"` reads.
pub const READ_PATH: &str = "/data/probe.txt";
/// The file `"write"` creates.
pub const WRITE_PATH: &str = "/data/written.txt";
/// The address `"net"` connects to (port 1: nothing listens there).
pub const NET_ADDR: &str = "127.0.0.1:1";

/// What an `in` message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Read an environment variable ([`ENV_VAR`] unless named).
    Env(String),
    /// Read [`READ_PATH`].
    File,
    /// Create [`WRITE_PATH`].
    Write,
    /// Read the wall clock.
    Clock,
    /// Connect to [`NET_ADDR`].
    Net,
}

impl Probe {
    /// Reads the probe named in `msg`.
    pub fn parse(msg: &Message) -> Result<Self, Nack> {
        let value: Value = msg.json()?;
        match value.as_str() {
            Some("env") => Ok(Self::Env(ENV_VAR.to_string())),
            Some(cmd) if cmd.starts_with("env:") => Ok(Self::Env(cmd[4..].to_string())),
            Some("file") => Ok(Self::File),
            Some("write") => Ok(Self::Write),
            Some("clock") => Ok(Self::Clock),
            Some("net") => Ok(Self::Net),
            _ => Err(Nack::invalid_input(format!(
                "expected \"env\", \"file\", \"write\", \"clock\" or \"net\", got {value}"
            ))),
        }
    }

    /// Runs the probe and returns its report.
    pub fn run(self) -> Value {
        match self {
            Self::Env(name) => json!({ "env": std::env::var(name).ok() }),
            Self::File => match std::fs::read_to_string(READ_PATH) {
                Ok(text) => json!({ "file": text, "error": null }),
                Err(e) => json!({ "file": null, "error": e.to_string() }),
            },
            Self::Write => match std::fs::write(WRITE_PATH, "x") {
                Ok(()) => json!({ "write": true, "error": null }),
                Err(e) => json!({ "write": false, "error": e.to_string() }),
            },
            Self::Clock => {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs());
                json!({ "clock": secs })
            }
            Self::Net => match std::net::TcpStream::connect(NET_ADDR) {
                Ok(_) => json!({ "net": "connected", "error": null }),
                Err(e) => json!({ "net": net_outcome(e.kind()), "error": e.to_string() }),
            },
        }
    }
}

/// `refused` for a refused connection (the network was reached), else the kind's name.
pub fn net_outcome(kind: ErrorKind) -> String {
    match kind {
        ErrorKind::ConnectionRefused => "refused".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The participant; it keeps no state.
#[derive(Debug, Default)]
pub struct WasiProbe;

impl Participant for WasiProbe {
    fn definition() -> Definition {
        Definition::new("test/WasiProbe")
            .label("Reports what WASI lets it reach")
            .icon("search")
            .inport(
                Port::new("in", "string")
                    .description("A probe: \"env\", \"file\", \"write\", \"clock\" or \"net\""),
            )
            .outport(Port::new("out", "object").description("The probe's report"))
    }

    fn process(&mut self, ctx: &mut Context, port: &str, msg: Message) -> Result<(), Nack> {
        match port {
            "in" => ctx.send_json("out", &Probe::parse(&msg)?.run()),
            other => Err(Nack::invalid_input(format!("unknown inport `{other}`"))),
        }
    }
}

wasmflo_guest::export!(WasiProbe);

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(probe: &str) -> Result<Value, Nack> {
        let mut ctx = Context::recording_for(&WasiProbe::definition());
        WasiProbe.process(&mut ctx, "in", Message::from_json(probe)?)?;
        let sent = ctx.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "out");
        sent[0].1.json()
    }

    #[test]
    fn parses_probes_and_rejects_others() -> Result<(), Nack> {
        assert_eq!(Probe::parse(&Message::from_json("net")?)?, Probe::Net);
        let err = Probe::parse(&Message::from_json("dance")?).map(|_| ());
        assert!(err.is_err_and(|n| n.kind() == NackKind::InvalidInput));
        let err = Probe::parse(&Message::from_json(&1)?).map(|_| ());
        assert!(err.is_err_and(|n| n.kind() == NackKind::InvalidInput));
        Ok(())
    }

    #[test]
    fn clock_reports_seconds() -> Result<(), Nack> {
        let secs = ask("clock")?["clock"].as_u64();
        assert!(secs.is_some_and(|s| s > 1_600_000_000));
        Ok(())
    }

    #[test]
    fn missing_file_reports_an_error() -> Result<(), Nack> {
        // Natively /data/probe.txt is very unlikely to exist; either way the shape holds.
        let report = ask("file")?;
        assert!(report["file"].is_string() != report["error"].is_string());
        Ok(())
    }

    #[test]
    fn net_outcomes() {
        assert_eq!(net_outcome(ErrorKind::ConnectionRefused), "refused");
        assert_eq!(net_outcome(ErrorKind::PermissionDenied), "PermissionDenied");
        assert_eq!(net_outcome(ErrorKind::Unsupported), "Unsupported");
    }
}
