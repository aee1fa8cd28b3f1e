//! WASI for participants that import it, built per instance from the process's grants.
//!
//! A participant gets no filesystem, environment, network or clock unless its process
//! is granted them in the graph (node metadata, see README "Sandbox"). Components that do
//! not import WASI never see any of this.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::component::ResourceTable;
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

    /// Builds the WASI context for one instance.
    pub(crate) fn context(&self) -> Result<WasiCtx, String> {
        let mut b = WasiCtxBuilder::new();
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
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // Only WASI-importing components are linked with WASI, and their instances are
        // always created with a context; an empty one stands in otherwise.
        let state = self.wasi.get_or_insert_with(|| WasiState {
            ctx: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
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
}
