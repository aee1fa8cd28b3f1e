//! `wasmflo deploy COMPONENT.wasm --to ROLE --broker URL --key KEYFILE [--sequence N]`:
//! sends a signed component to the edge hosts of a role over MQTT and waits for the
//! verdict; `wasmflo deploy --keygen FILE` makes a key pair. See [`crate::deploy`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::broker::{BrokerArgs, client_id};
use crate::deploy::{SigningKey, clock_sequence, deliver};
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
    /// How long to wait for an edge host's verdict.
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
    let verdict = rt.block_on(async {
        let id = client_id(&format!("deploy-{}", random_suffix()));
        let transport = MqttTransport::connect(&url, &id).await?;
        anyhow::Ok(deliver(&transport, role, envelope, args.timeout).await?)
    })?;
    if verdict.accepted {
        println!(
            "accepted: {} ({}) runs {} from {} (sequence {sequence})",
            verdict.role,
            verdict.id,
            verdict.component.as_deref().unwrap_or("?"),
            path.display()
        );
        Ok(())
    } else {
        let reason = verdict.reason.unwrap_or_default();
        println!("rejected: {} ({}): {reason}", verdict.role, verdict.id);
        bail!("deployment {sequence} to '{role}' rejected: {reason}")
    }
}
