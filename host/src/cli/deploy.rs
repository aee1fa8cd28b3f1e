//! `wasmflo deploy COMPONENT.wasm --to ROLE --broker URL --key KEYFILE [--sequence N]`:
//! sends a signed component to the edge hosts of a role over MQTT and waits for the
//! verdicts of `--expect N` of them (default 1); `wasmflo deploy --keygen FILE` makes a key pair. See [`crate::deploy`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::broker::{BrokerArgs, client_id};
use crate::deploy::{SigningKey, Verdict, clock_sequence, deliver};
use crate::discovery::random_suffix;
use crate::transport::{MqttTransport, Scheme};

/// Arguments of `wasmflo deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The component file to deploy.
    #[arg(value_name = "COMPONENT.wasm", required_unless_present = "keygen")]
    component: Option<PathBuf>,
    /// The role whose edge hosts run it.
    #[arg(long, value_name = "ROLE", required_unless_present = "keygen")]
    to: Option<String>,
    /// The secret key file signing it (made by `--keygen`).
    #[arg(long, value_name = "KEYFILE", required_unless_present = "keygen")]
    key: Option<PathBuf>,
    /// The deployment's sequence number; edge hosts accept only one above the last they
    /// accepted (default: the clock, in milliseconds since 1970).
    #[arg(long)]
    sequence: Option<u64>,
    /// How many edge hosts of the role must answer: `deploy` waits for that many
    /// verdicts (or `--timeout`) and fails if fewer came or any rejected it.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    expect: u32,
    /// How long to wait for the edge hosts' verdicts.
    #[arg(long, default_value = "30s", value_parser = super::run::duration)]
    timeout: Duration,
    /// Make a key pair instead: the secret key in FILE, the public key (for
    /// `wasmflo-edge --trust`) in FILE.pub and on stdout.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["component", "to", "key", "sequence"])]
    keygen: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

pub(super) fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.keygen {
        let key = SigningKey::generate()?;
        let public = key.write(file)?;
        println!("{}", key.public_hex());
        eprintln!(
            "secret key in {}, public key in {} (give it to wasmflo-edge --trust)",
            file.display(),
            public.display()
        );
        return Ok(());
    }
    let (Some(path), Some(role), Some(keyfile)) = (&args.component, &args.to, &args.key) else {
        bail!("give COMPONENT.wasm, --to ROLE and --key KEYFILE (or --keygen FILE)");
    };
    let key = SigningKey::read(keyfile)?;
    let component = std::fs::read(path)
        .with_context(|| format!("{}: cannot read component", path.display()))?;
    let sequence = args.sequence.unwrap_or_else(clock_sequence);
    let envelope = key.envelope(role, sequence, &component);
    let url = args
        .broker
        .url()
        .context("`wasmflo deploy` needs a broker: --broker mqtt://... or MSGFLO_BROKER")?;
    let mut url = args.broker.parse(&url)?;
    if url.scheme != Scheme::Mqtt {
        bail!("edge hosts speak MQTT: `wasmflo deploy` needs an mqtt:// or mqtts:// broker");
    }
    url.clean_session = true;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let expect = args.expect as usize;
    let verdicts = rt.block_on(async {
        let id = client_id(&format!("deploy-{}", random_suffix()));
        let transport = MqttTransport::connect(&url, &id).await?;
        anyhow::Ok(deliver(&transport, role, envelope, args.timeout, expect).await?)
    })?;
    let mut rejected = Vec::new();
    for v in &verdicts {
        if v.accepted {
            println!(
                "accepted: {} ({}, {}) runs {} from {} (sequence {sequence})",
                v.role,
                v.id,
                v.host(),
                v.component.as_deref().unwrap_or("?"),
                path.display()
            );
        } else {
            let reason = v.reason.as_deref().unwrap_or_default();
            println!("rejected: {} ({}, {}): {reason}", v.role, v.id, v.host());
            rejected.push(format!("{}: {reason}", v.host()));
        }
    }
    if !rejected.is_empty() {
        bail!(
            "deployment {sequence} to '{role}' rejected by {} of {} edge hosts ({})",
            rejected.len(),
            verdicts.len(),
            rejected.join("; ")
        );
    }
    if verdicts.len() < expect {
        let answered: Vec<&str> = verdicts.iter().map(Verdict::host).collect();
        bail!(
            "only {} of {expect} edge hosts of '{role}' answered within {:?} ({}); the deployment stays retained on the broker",
            verdicts.len(),
            args.timeout,
            answered.join(", ")
        );
    }
    Ok(())
}
