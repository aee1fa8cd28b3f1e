//! `wasmflo register --role ROLE:FILE.yaml [--role ...] --broker URL`: announces foreign
//! participants declared in MsgFlo's YAML (see [`crate::foreign`]), as `msgflo-register`
//! does: discovery for every role at start and every period / 2.2 until stopped. Prints
//! `ready ROLE` once a role's first discovery was accepted.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::broker::{BrokerArgs, client_id, spawn_discovery, stop_signal};

/// Arguments of `wasmflo register`.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// `ROLE:FILE.yaml`, a foreign participant and its MsgFlo YAML declaration.
    #[arg(long = "role", required = true, value_name = "ROLE:FILE")]
    roles: Vec<String>,
    #[command(flatten)]
    broker: BrokerArgs,
}

pub(super) fn register(args: RegisterArgs) -> anyhow::Result<()> {
    let mut participants = Vec::new();
    for spec in &args.roles {
        let Some((role, file)) = spec.split_once(':') else {
            bail!("--role '{spec}' is not ROLE:FILE.yaml");
        };
        let file = PathBuf::from(file);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("{}: cannot read", file.display()))?;
        let p = crate::foreign::parse(&text, role)
            .with_context(|| format!("{}: role '{role}'", file.display()))?;
        participants.push(p);
    }
    let names: Vec<&str> = participants.iter().map(|p| p.role.as_str()).collect();
    let id = client_id(&format!("register-{}", names.join("-")));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let transport = args.broker.required("register", &id).await?;
        let _discovery = spawn_discovery(&transport, participants, |p| {
            println!("ready {}", p.role);
        });
        stop_signal().await
    })
}
