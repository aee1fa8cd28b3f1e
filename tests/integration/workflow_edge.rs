//! Workflows dispatched over the real Mosquitto to task roles served by edge hosts
//! (`wasmflo-edge`, here under the name `wasmflo-edge-test-cli`) running the same
//! `task/*` component files as the server host: the seeds' examples through
//! `wasmflo task --broker`, and an edge node killed (SIGKILL) mid-run with every result
//! still correct. The checks are the server-host workers' ones
//! ([`crate::workflow_broker`]); only the workers differ.
//!
//! `wasmflo-edge` serves one role per process, so an edge node here is five processes
//! (one per task role) and three nodes serve each role through a shared subscription.

use std::process::Command;

use crate::brokers::{MQTT, Running, broker, role};
use crate::workflow_broker::{TASKS, seeds_examples, survives_a_kill};

/// One edge node: a `wasmflo-edge` process per task role under `prefix`.
struct Node {
    processes: Vec<Running>,
}

impl Node {
    /// Kills every process of the node with SIGKILL.
    fn kill(&mut self) {
        for p in &mut self.processes {
            p.kill();
        }
    }
}

/// `n` edge nodes serving every task role under `prefix`, each role's calls split among
/// them through the shared subscription group `wf`; returns once every role is ready.
async fn nodes(url: &str, prefix: &str, n: usize) -> Vec<Node> {
    let dir = wasmflo_host::component::components_dir().join("task");
    let mut nodes = Vec::new();
    for i in 0..n {
        let mut processes = Vec::new();
        for t in TASKS {
            let mut file: Vec<char> = t.chars().collect();
            file[0] = file[0].to_ascii_uppercase();
            let path = dir.join(format!("{}.wasm", file.into_iter().collect::<String>()));
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmflo-edge-test-cli"));
            cmd.arg(format!("{prefix}{t}={}", path.display()))
                .arg("--broker")
                .arg(format!(
                    "{url}?shared=wf&clean=true&client_id=wasmflo-edge-{prefix}{t}-n{i}"
                ))
                .env("MSGFLO_DISCOVERY_PERIOD", "1");
            processes.push(Running::spawn(cmd));
        }
        nodes.push(Node { processes });
    }
    for node in &mut nodes {
        for (p, t) in node.processes.iter_mut().zip(TASKS) {
            p.stdout_line(&format!("ready {prefix}{t}")).await;
        }
    }
    nodes
}

#[tokio::test(flavor = "multi_thread")]
async fn workflows_run_on_edge_hosts() {
    let Some(url) = broker(MQTT) else { return };
    let prefix = format!("{}-", role("wfe"));
    let _nodes = nodes(url, &prefix, 3).await;
    seeds_examples(url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn workflow_survives_a_killed_edge_node() {
    let Some(url) = broker(MQTT) else { return };
    let prefix = format!("{}-", role("wfek"));
    let mut nodes = nodes(url, &prefix, 3).await;
    let victim = &mut nodes[0];
    survives_a_kill(url, &prefix, || victim.kill()).await;
}
