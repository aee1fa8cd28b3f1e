//! WASI for participants that import it, built per instance from the process's grants.
//!
//! A participant gets no filesystem, environment, network or clock unless its process
//! is granted them in the graph (node metadata, see README "Sandbox"). Components that do
//! not import WASI never see any of this.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{
    FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::instance::InstanceState;
use super::limits::LimitError;

/// What a process may reach through WASI. Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Host environment variables passed through, by name.
    pub env: Vec<String>,
    /// Host directories made visible to the guest.
    pub dirs: Vec<DirGrant>,
    /// TCP, UDP and name lookup to any address.
    pub network: bool,
    /// The real wall and monotonic clocks (otherwise both read zero).
    pub clock: bool,
}

/// One host directory visible in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Directory on the host.
    pub host: PathBuf,
    /// Path the guest sees, e.g. `/data`.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

impl Grants {
    /// Applies one metadata pair; `Ok(false)` for keys that are not grants.
    ///
    /// `env=NAME;NAME2`, `dir=HOST:GUEST[:ro];...`, `network=true`, `clock=true`.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, LimitError> {
        let err = |expected| LimitError {
            key: key.into(),
            value: value.into(),
            expected,
        };
        let items = || value.split(';').map(str::trim).filter(|s| !s.is_empty());
        match key {
            "env" => self.env = items().map(String::from).collect(),
            "dir" => {
                self.dirs = items()
                    .map(|item| {
                        let mut parts = item.split(':');
                        let (host, guest) = (parts.next(), parts.next());
                        let read_only = match parts.next() {
                            None => false,
                            Some("ro") => true,
                            Some(_) => return None,
                        };
                        match (host, guest, parts.next()) {
                            (Some(h), Some(g), None) if !h.is_empty() && g.starts_with('/') => {
                                Some(DirGrant {
                                    host: h.into(),
                                    guest: g.into(),
                                    read_only,
                                })
                            }
                            _ => None,
                        }
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(|| err("HOST:/GUEST or HOST:/GUEST:ro, several joined by ';'"))?
            }
            "network" => self.network = parse_bool(value).ok_or_else(|| err("true or false"))?,
            "clock" => self.clock = parse_bool(value).ok_or_else(|| err("true or false"))?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The WASI capabilities `imports` (a component's import names) reach for that these
    /// grants withhold, each with the metadata that would grant it. Calls to them are
    /// denied at run time (no socket, no preopened directory, a clock reading zero).
    pub fn withheld(&self, imports: &[String]) -> Vec<(&'static str, &'static str)> {
        let imports_any = |prefix: &str| imports.iter().any(|i| i.starts_with(prefix));
        let mut out = Vec::new();
        if !self.network && imports_any("wasi:sockets/") {
            out.push(("wasi:sockets", "network=true"));
        }
        if self.dirs.is_empty() && imports_any("wasi:filesystem/preopens") {
            out.push(("wasi:filesystem", "dir=HOST:/GUEST[:ro]"));
        }
        if !self.clock && imports_any("wasi:clocks/") {
            out.push(("wasi:clocks", "clock=true"));
        }
        if self.env.is_empty() && imports_any("wasi:cli/environment") {
            out.push(("wasi:cli/environment", "env=NAME;NAME2"));
        }
        out
    }

    /// Builds the WASI context for one instance; the guest's stderr goes to `stderr`.
    pub(crate) fn context(&self, stderr: &GuestStderr) -> Result<WasiCtx, String> {
        let mut b = WasiCtxBuilder::new();
        b.stderr(stderr.clone());
        for name in &self.env {
            if let Ok(value) = std::env::var(name) {
                b.env(name, value);
            }
        }
        for d in &self.dirs {
            let perms = if d.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(&d.host, &d.guest, perms)
                .map_err(|e| format!("cannot grant {}: {e}", d.host.display()))?;
        }
        if self.network {
            b.inherit_network()
                .allow_tcp(true)
                .allow_udp(true)
                .allow_ip_name_lookup(true);
        } else {
            b.allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false);
            b.socket_addr_check(|_, _| Box::pin(async { false }));
        }
        if !self.clock {
            b.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
        }
        Ok(b.build())
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A clock stopped at zero: what a guest without the clock grant reads.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// WASI state of one instance.
pub(crate) struct WasiState {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) stderr: GuestStderr,
}

/// The tail of what a guest wrote to stderr: interpreters (componentize-py,
/// ComponentizeJS) print an uncaught exception there before they trap, so the last line
/// makes the trap's detail say what went wrong. Bounded: older bytes are dropped.
#[derive(Debug, Clone, Default)]
pub(crate) struct GuestStderr(Arc<Mutex<Vec<u8>>>);

impl GuestStderr {
    const KEEP: usize = 4096;

    fn push(&self, bytes: &[u8]) {
        let mut buf = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        buf.extend_from_slice(bytes);
        if buf.len() > Self::KEEP {
            let cut = buf.len() - Self::KEEP;
            buf.drain(..cut);
        }
    }

    /// The line that says what went wrong in what was written since the previous call
    /// (which it forgets): the last unindented line before a language runtime's own
    /// panic report (`thread '...' panicked`), e.g. Python's `ZeroDivisionError: ...`.
    pub(crate) fn take_last_line(&self) -> Option<String> {
        let mut buf = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = String::from_utf8_lossy(&buf).into_owned();
        buf.clear();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        let end = lines
            .iter()
            .position(|l| l.starts_with("thread '"))
            .filter(|&i| i > 0)
            .unwrap_or(lines.len());
        lines[..end]
            .iter()
            .rev()
            .find(|l| !l.starts_with("note:") && !l.starts_with(char::is_whitespace))
            .map(|l| l.chars().take(300).collect())
    }
}

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStderr {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestStderr {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestStderr {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // Only WASI-importing components are linked with WASI, and their instances are
        // always created with a context; an empty one stands in otherwise.
        let state = self.wasi.get_or_insert_with(|| WasiState {
            ctx: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            stderr: GuestStderr::default(),
        });
        WasiCtxView {
            ctx: &mut state.ctx,
            table: &mut state.table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_from_metadata() {
        let mut g = Grants::default();
        assert_eq!(g.apply("env", "HOME;LANG"), Ok(true));
        assert_eq!(g.env, ["HOME", "LANG"]);
        assert_eq!(g.apply("dir", "/tmp/x:/data:ro;./y:/y"), Ok(true));
        assert_eq!(g.dirs.len(), 2);
        assert!(g.dirs[0].read_only && !g.dirs[1].read_only);
        assert_eq!(g.dirs[0].guest, "/data");
        assert_eq!(g.apply("network", "true"), Ok(true));
        assert!(g.network);
        assert_eq!(g.apply("x", "1"), Ok(false));
        assert!(g.apply("dir", "/tmp/x").is_err());
        assert!(g.apply("dir", "/tmp/x:data").is_err());
        assert!(g.apply("clock", "sometimes").is_err());
    }

    #[test]
    fn withheld_capabilities_name_their_grant() {
        let imports: Vec<String> = [
            "wasi:sockets/tcp@0.2.9",
            "wasi:filesystem/preopens@0.2.9",
            "wasi:clocks/wall-clock@0.2.9",
            "wasi:io/streams@0.2.9",
        ]
        .map(String::from)
        .to_vec();
        let none = Grants::default().withheld(&imports);
        assert_eq!(
            none,
            [
                ("wasi:sockets", "network=true"),
                ("wasi:filesystem", "dir=HOST:/GUEST[:ro]"),
                ("wasi:clocks", "clock=true")
            ]
        );
        let mut g = Grants::default();
        assert_eq!(g.apply("network", "true"), Ok(true));
        assert_eq!(g.apply("clock", "true"), Ok(true));
        assert_eq!(
            g.withheld(&imports),
            [("wasi:filesystem", "dir=HOST:/GUEST[:ro]")]
        );
        assert!(
            Grants::default()
                .withheld(&["wasi:io/streams@0.2.9".into()])
                .is_empty()
        );
    }
}
