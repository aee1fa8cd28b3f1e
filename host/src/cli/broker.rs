//! `--broker URL` (else `MSGFLO_BROKER`), shared by the subcommands that talk to a broker.

use std::sync::Arc;

use anyhow::Context;

use crate::transport::{BrokerUrl, MemoryTransport, Transport};

/// Environment variable naming the broker, as in MsgFlo.
pub const BROKER_ENV: &str = "MSGFLO_BROKER";

/// The broker option.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// Broker URL: mqtt[s]://host[:port] or amqp[s]://user:pass@host[:port][/vhost]
    /// (default: $MSGFLO_BROKER; without either, an in-process transport where allowed).
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// PEM file of CA certificates to trust for mqtts:// and amqps:// besides the
    /// system's (default: $WASMFLO_CA_FILE).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl BrokerArgs {
    /// The URL given by option or environment.
    pub fn url(&self) -> Option<String> {
        self.broker
            .clone()
            .or_else(|| std::env::var(BROKER_ENV).ok().filter(|v| !v.is_empty()))
    }

    /// The CA file to trust besides the system's: `--ca-file`, else `$WASMFLO_CA_FILE`.
    pub fn ca_file(&self) -> Option<std::path::PathBuf> {
        self.ca_file.clone().or_else(|| {
            std::env::var_os(crate::transport::CA_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(Into::into)
        })
    }

    /// Connects to the broker, or fails naming the subcommand that needs one.
    pub async fn required(
        &self,
        command: &str,
        client_id: &str,
    ) -> anyhow::Result<Arc<dyn Transport>> {
        let url = self.url().with_context(|| {
            format!("`wasmflo {command}` needs a broker: --broker URL or {BROKER_ENV}")
        })?;
        Ok(self.parse(&url)?.connect(client_id).await?)
    }

    /// The URL parsed, with `--ca-file` applied.
    pub(super) fn parse(&self, url: &str) -> anyhow::Result<BrokerUrl> {
        let mut parsed = BrokerUrl::parse(url)?;
        if let Some(file) = &self.ca_file {
            parsed.ca_file = Some(file.clone());
        }
        Ok(parsed)
    }

    /// Connects for a one-off command: a random MQTT client id and a clean session, so
    /// it leaves no session behind on the broker.
    pub async fn ephemeral(&self, command: &str) -> anyhow::Result<Arc<dyn Transport>> {
        let url = self.url().with_context(|| {
            format!("`wasmflo {command}` needs a broker: --broker URL or {BROKER_ENV}")
        })?;
        let mut parsed = self.parse(&url)?;
        parsed.clean_session = true;
        let id = client_id(&format!("{command}-{}", crate::discovery::random_suffix()));
        Ok(parsed.connect(&id).await?)
    }

    /// Connects to the broker if one is given, else an in-process transport.
    pub async fn or_memory(&self, client_id: &str) -> anyhow::Result<Arc<dyn Transport>> {
        match self.url() {
            Some(url) => Ok(self.parse(&url)?.connect(client_id).await?),
            None => Ok(Arc::new(MemoryTransport::new())),
        }
    }
}

/// A stable MQTT client id: `wasmflo-<what>` with characters brokers dislike replaced.
pub fn client_id(what: &str) -> String {
    let clean: String = what
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("wasmflo-{clean}")
}

/// Resolves once Ctrl-C or SIGTERM (how MsgFlo stops participants) arrives.
pub async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot wait for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")
    }
}

/// Starts announcing `roles` (role and definition) on the broker; calls `first_sent`
/// once per role after its first discovery was accepted. Aborted when dropped.
pub fn spawn_discovery(
    transport: &Arc<dyn Transport>,
    roles: Vec<crate::discovery::Participant>,
    first_sent: impl FnMut(&crate::discovery::Participant) + Send + 'static,
) -> AbortOnDrop {
    let period = crate::discovery::period_from_env();
    AbortOnDrop(tokio::spawn(crate::discovery::announce(
        transport.clone(),
        roles,
        period,
        first_sent,
    )))
}

/// A task handle that aborts the task when dropped.
#[derive(Debug)]
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Spawns `task`, aborted when the handle is dropped.
    pub fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        AbortOnDrop(tokio::spawn(task))
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
