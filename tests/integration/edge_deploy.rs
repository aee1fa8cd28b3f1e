//! Deployments to edge hosts beyond one swap: the last accepted deployment survives a
//! killed and restarted `wasmflo-edge --state DIR` (its component runs, its sequence is
//! the floor), and `wasmflo deploy --expect N` waits for the verdicts of N edge hosts of
//! one role, naming each by its MQTT client id.

use std::process::Command;

use serde_json::{Value, json};
use wasmflo_host::deploy::{SigningKey, deliver};
use wasmflo_host::message::Message;
use wasmflo_host::transport::{BrokerUrl, MqttTransport};

use crate::brokers::{MQTT, Running, broker, cli, client, consume, next, role, scratch};
use crate::edge::{ask, component, edge, keygen};
use crate::support::DEADLINE;

/// A sending client of the test's own (clean session).
async fn sender(url: &str) -> MqttTransport {
    let mut mqtt_url = BrokerUrl::parse(url).expect("URL");
    mqtt_url.clean_session = true;
    MqttTransport::connect(&mqtt_url, &format!("wasmflo-test-{}", role("d")))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_edge_host_runs_its_last_deployment_and_refuses_its_replay() {
    let Some(url) = broker(MQTT) else { return };
    let r = role("persist");
    let dir = scratch(&r);
    let key = dir.join("deploy.key");
    keygen(&key);
    let (public, state) = (dir.join("deploy.key.pub"), dir.join("state"));
    let (repeat, format) = (component("core/Repeat"), component("temperature/Format"));
    let args = [
        "--trust",
        public.to_str().expect("UTF-8 path"),
        "--state",
        state.to_str().expect("UTF-8 path"),
    ];
    let spec = format!("{r}={}", repeat.display());

    let t = client(url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let mut e = edge(&spec, &args);
    e.stderr_line("no deployment in").await;
    e.stdout_line(&format!("ready {r}")).await;
    assert_eq!(ask(&t, &mut out, &r, "22.3333").await, json!(22.3333));

    let send = sender(url).await;
    let signer = SigningKey::read(&key).expect("key");
    let five = signer.envelope(&r, 5, &std::fs::read(&format).expect("read"));
    let v = deliver(&send, &r, five.clone(), DEADLINE, 1)
        .await
        .expect("verdict")
        .remove(0);
    assert!(v.accepted, "{v:?}");
    assert_eq!(
        v.client.as_deref(),
        Some(format!("wasmflo-edge-{r}").as_str())
    );
    assert_eq!(
        ask(&t, &mut out, &r, "22.3333").await,
        json!("Temperature: 22.3 C")
    );
    assert!(state.join(format!("{r}.deployment")).exists());

    // A power cut: nothing is settled on the way out. The restart is given the same
    // original file and no --sequence; the state brings back both.
    e.kill();
    let mut e = edge(&spec, &args);
    e.stderr_line("starting from deployment 5 in").await;
    e.stdout_line(&format!("ready {r}")).await;
    // The deployment still retained on the broker arrives again: a replay now.
    e.stderr_line("deployment 5 rejected").await;
    // At least once: the input answered just before the kill may not have been acked,
    // and comes again (answered by the deployed code too, never by Repeat's `22.3333`).
    t.send_to_queue(&format!("{r}.IN"), Message::json_text("-1.04"))
        .await
        .expect("send");
    let mut answer = serde_json::from_slice::<Value>(&next(&mut out).await.data).expect("JSON");
    if answer == json!("Temperature: 22.3 C") {
        answer = serde_json::from_slice(&next(&mut out).await.data).expect("JSON");
    }
    assert_eq!(
        answer,
        json!("Temperature: -1.0 C"),
        "the restarted edge host runs the deployed component, not its file"
    );
    let v = deliver(&send, &r, five, DEADLINE, 1)
        .await
        .expect("verdict")
        .remove(0);
    assert!(!v.accepted, "{v:?}");
    assert!(
        v.reason.as_deref().is_some_and(|w| w.contains("replay")),
        "{v:?}"
    );
    // Still the deployed code; a later sequence is accepted as before.
    assert_eq!(
        ask(&t, &mut out, &r, "-5.54").await,
        json!("Temperature: -5.5 C")
    );
    let six = signer.envelope(&r, 6, &std::fs::read(&repeat).expect("read"));
    let v = deliver(&send, &r, six, DEADLINE, 1)
        .await
        .expect("verdict")
        .remove(0);
    assert!(v.accepted && v.sequence == Some(6), "{v:?}");
    assert_eq!(ask(&t, &mut out, &r, "7").await, json!(7));
    wasmflo_host::deploy::clear(&send, &r).await.expect("clear");
    assert!(e.interrupt().success(), "stops cleanly on Ctrl-C");
}

/// `wasmflo-edge` for `spec` with the MQTT client id `client`.
fn edge_as(spec: &str, client: &str, extra: &[&str]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmflo-edge-test-cli"));
    cmd.arg(spec)
        .args(["--broker", &format!("{MQTT}?client_id={client}&clean=true")])
        .args(extra);
    cmd.env("MSGFLO_DISCOVERY_PERIOD", "1");
    Running::spawn(cmd)
}

/// `wasmflo deploy` with `args`; (exit code, stdout, stderr).
fn deploy(args: &[&str], timeout: &str) -> (i32, String, String) {
    let out = cli()
        .arg("deploy")
        .args(args)
        .args(["--broker", MQTT, "--timeout", timeout])
        .output()
        .expect("run wasmflo deploy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_waits_for_the_verdict_of_every_edge_host_it_expects() {
    let Some(url) = broker(MQTT) else { return };
    let r = role("fleet");
    let dir = scratch(&r);
    let key = dir.join("deploy.key");
    keygen(&key);
    let public = dir.join("deploy.key.pub");
    let (repeat, format) = (component("core/Repeat"), component("temperature/Format"));
    let spec = format!("{r}={}", repeat.display());
    let trust = ["--trust", public.to_str().expect("UTF-8 path")];
    let (a, b) = (format!("{r}-a"), format!("{r}-b"));
    let mut hosts = [edge_as(&spec, &a, &trust), edge_as(&spec, &b, &trust)];
    for h in &mut hosts {
        h.stdout_line(&format!("ready {r}")).await;
    }
    let path = |p: &std::path::Path| p.to_str().expect("UTF-8 path").to_string();
    let run =
        |file: String, sequence: &'static str, expect: &'static str, timeout: &'static str| {
            let (r, key) = (r.clone(), path(&key));
            tokio::task::spawn_blocking(move || {
                deploy(
                    &[
                        file.as_str(),
                        "--to",
                        r.as_str(),
                        "--key",
                        key.as_str(),
                        "--sequence",
                        sequence,
                        "--expect",
                        expect,
                    ],
                    timeout,
                )
            })
        };

    // Both accept: one line per host, naming it.
    let (code, stdout, stderr) = run(path(&format), "1", "2", "20s").await.expect("deploy");
    assert_eq!(code, 0, "{stdout}{stderr}");
    let accepted: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("accepted: "))
        .collect();
    assert_eq!(accepted.len(), 2, "{stdout}");
    for host in [&a, &b] {
        assert!(
            accepted.iter().any(|l| l.contains(&format!(", {host})"))),
            "{host}: {stdout}"
        );
    }
    for h in &mut hosts {
        h.stderr_line("deployment 1 accepted").await;
    }

    // Both refuse a replay: non-zero, both named.
    let (code, stdout, stderr) = run(path(&repeat), "1", "2", "20s").await.expect("deploy");
    assert_ne!(code, 0, "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("rejected: "))
            .count(),
        2,
        "{stdout}"
    );
    assert!(stderr.contains("rejected by 2 of 2"), "{stderr}");

    // Three expected, two answer: non-zero once the time is up, naming who answered.
    let (code, stdout, stderr) = run(path(&repeat), "2", "3", "3s").await.expect("deploy");
    assert_ne!(code, 0, "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("accepted: "))
            .count(),
        2,
        "{stdout}"
    );
    assert!(stderr.contains("only 2 of 3 edge hosts"), "{stderr}");
    assert!(stderr.contains(&a) && stderr.contains(&b), "{stderr}");

    wasmflo_host::deploy::clear(&sender(url).await, &r)
        .await
        .expect("clear");
    for h in &mut hosts {
        assert!(h.interrupt().success(), "stops cleanly on Ctrl-C");
    }
}
