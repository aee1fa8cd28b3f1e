//! `wasmflo participant ROLE=COMPONENT [ROLE=...] --broker URL`: WASM participants on a
//! broker, each a full MsgFlo participant (queues `role.PORT`, discovery on `fbp`).
//!
//! The roles run as a graph of unconnected processes, so they get exactly the
//! participant loop, limits and fault handling of `run`. `ready ROLE` is printed on
//! stdout once a role's first discovery is accepted by the broker (`msgflo-setup` takes
//! a participant's first output as "started").
//!
//! `--autoscale CONFIG` scales the roles named in a guv configuration as `run` does
//! (instance pools consuming the role's broker queues; `--policy`, `--decisions`,
//! `--metrics` too).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::EngineArgs;
use super::broker::{BrokerArgs, client_id, spawn_discovery, stop_signal};
use super::scale::ScaleArgs;
use crate::component::{Resolver, components_dir};
use crate::discovery::Participant;
use crate::graph::{Graph, Process};
use crate::live::{WatchOptions, watch_components};
use crate::network::{Network, Source};

/// Arguments of `wasmflo participant`.
#[derive(Debug, clap::Args)]
pub struct ParticipantArgs {
    /// `ROLE=COMPONENT`: a `.wasm` file or a component name such as `core/Repeat`.
    #[arg(required = true, value_name = "ROLE=COMPONENT")]
    roles: Vec<String>,
    #[command(flatten)]
    broker: BrokerArgs,
    /// How long shutdown lets the message being processed finish.
    #[arg(long, default_value = "5s", value_parser = super::run::duration)]
    grace: Duration,
    /// Live coding: swap in a component's new version when its file changes (and
    /// rebuild Rust components of this workspace when their sources change).
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    scale: ScaleArgs,
}

/// The graph of unconnected processes the arguments describe.
fn graph(roles: &[String]) -> anyhow::Result<Graph> {
    let mut graph = Graph::default();
    for spec in roles {
        let Some((role, component)) = spec.split_once('=') else {
            bail!("'{spec}' is not ROLE=COMPONENT");
        };
        let valid = !role.is_empty()
            && role
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid || component.is_empty() {
            bail!("'{spec}': a role is letters, digits, '_' and '-', and a component is required");
        }
        let process = Process {
            component: component.to_string(),
            ..Process::default()
        };
        if graph.processes.insert(role.to_string(), process).is_some() {
            bail!("role '{role}' is given twice");
        }
    }
    Ok(graph)
}

pub(super) fn participant(engine: &EngineArgs, args: ParticipantArgs) -> anyhow::Result<()> {
    let graph = graph(&args.roles)?;
    let scaling = args.scale.config()?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let resolver = Resolver::new(components_dir(), cwd);
    let loader = std::sync::Arc::new(engine.loader()?);
    let names: Vec<&str> = graph.processes.keys().map(String::as_str).collect();
    let id = client_id(&format!("participant-{}", names.join("-")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let transport = args.broker.required("participant", &id).await?;
        let source = Source::default();
        let network = Network::start(&graph, &source, &loader, &resolver, transport.clone())
            .await
            .context("starting participants")?;
        let roles = network
            .processes()
            .iter()
            .map(|p| Participant::new(&p.name, &p.component.definition))
            .collect();
        let _discovery = spawn_discovery(&transport, roles, |p| {
            tracing::info!("participant {} ({}) announced", p.role, p.component);
            println!("ready {}", p.role);
        });
        let _watch = if args.watch {
            let opts = WatchOptions {
                rebuild: true,
                ..WatchOptions::default()
            };
            Some(watch_components(
                network.swapper().clone(),
                loader.clone(),
                opts,
            )?)
        } else {
            None
        };
        let (stop_tasks, _) = tokio::sync::watch::channel(false);
        let ca_file = args.broker.ca_file();
        let tasks = args
            .scale
            .start(scaling, &network, ca_file.as_deref(), &stop_tasks)
            .await?;
        stop_signal().await?;
        tracing::info!("stopping");
        let _ = stop_tasks.send(true);
        for task in tasks {
            let _ = task.await;
        }
        network.shutdown(args.grace).await;
        Ok(())
    })
}
