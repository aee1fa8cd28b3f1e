//! `--autoscale`, `--policy`, `--decisions` and `--metrics`: the autoscaler and the
//! Prometheus endpoint of a running network, shared by `run` and `participant`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::simulate::PolicyName;
use crate::network::Network;
use crate::scaling::autoscale::Autoscaler;
use crate::scaling::config::ScalingConfig;
use crate::scaling::policy::{DeadlinePolicy, GuvPolicy, Policy};

/// The scaling and metrics options.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Scale each role named in this guv configuration (YAML or JSON) between its
    /// minimum and maximum instances while the graph runs.
    #[arg(long, value_name = "CONFIG")]
    pub autoscale: Option<PathBuf>,
    /// The policy `--autoscale` uses.
    #[arg(long, value_enum, default_value_t = PolicyName::Deadline)]
    policy: PolicyName,
    /// Append each scaling decision as a JSON line to this file (default: stdout).
    #[arg(long, value_name = "FILE", requires = "autoscale")]
    decisions: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`GET /metrics`; port 0 picks a free
    /// one). Prints `metrics http://HOST:PORT/metrics` on stdout.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

impl ScaleArgs {
    /// Reads the `--autoscale` configuration, if any, logging its notes (before anything
    /// starts, so a bad file fails first).
    pub fn config(&self) -> anyhow::Result<Option<ScalingConfig>> {
        self.autoscale.as_deref().map(load_scaling).transpose()
    }

    /// Starts the autoscaler (with `config`; its `https` endpoints also trusting the CAs
    /// of `ca_file`) and the metrics endpoint for `network`; both stop once `stop` turns
    /// true.
    pub async fn start(
        &self,
        config: Option<ScalingConfig>,
        network: &Network,
        ca_file: Option<&Path>,
        stop: &watch::Sender<bool>,
    ) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let mut tasks = Vec::new();
        if let (Some(config), Some(path)) = (config, &self.autoscale) {
            let policy: Box<dyn Policy + Send + Sync> = match self.policy {
                PolicyName::Deadline => Box::new(DeadlinePolicy),
                PolicyName::Guv => Box::new(GuvPolicy),
            };
            let sink: Box<dyn std::io::Write + Send> = match &self.decisions {
                Some(file) => Box::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(file)
                        .with_context(|| format!("--decisions {}", file.display()))?,
                ),
                None => Box::new(std::io::stdout()),
            };
            let mut scaler = Autoscaler::new(config, policy, network, sink)
                .with_context(|| path.display().to_string())?;
            if let Some(ca_file) = ca_file {
                scaler = scaler
                    .with_ca_file(ca_file)
                    .with_context(|| path.display().to_string())?;
            }
            tasks.push(tokio::spawn(scaler.run(wait_stop(stop.subscribe()))));
        }
        if let Some(addr) = &self.metrics {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics {addr}: cannot listen"))?;
            println!("metrics http://{}/metrics", listener.local_addr()?);
            std::io::Write::flush(&mut std::io::stdout())?;
            tasks.push(tokio::spawn(crate::metrics::serve(
                listener,
                network.metrics().clone(),
                wait_stop(stop.subscribe()),
            )));
        }
        Ok(tasks)
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn wait_stop(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Reads a guv configuration for `--autoscale`, logging its notes.
fn load_scaling(path: &Path) -> anyhow::Result<ScalingConfig> {
    let file = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("{file}: cannot read"))?;
    let config = ScalingConfig::parse(&text).with_context(|| file.to_string())?;
    for note in &config.notes {
        tracing::info!("{file}: {note}");
    }
    Ok(config)
}
