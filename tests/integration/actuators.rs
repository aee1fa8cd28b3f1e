//! Command and HTTP actuators scale external workers: for a queue no graph process reads,
//! the autoscaler runs the role's command with the count it wants, or POSTs the count to
//! the role's endpoint; a failing command leaves the count as it was.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wasmflo_host::message::Message;
use wasmflo_host::scaling::autoscale::{Autoscaler, DecisionRecord};
use wasmflo_host::scaling::config::ScalingConfig;
use wasmflo_host::scaling::policy::DeadlinePolicy;
use wasmflo_host::transport::Transport;

use crate::support::{DEADLINE, Running, fbp, start, test_components};

/// Queues `n` jobs on `queue`, which nothing consumes (the external workers are not there).
async fn backlog(running: &Running, queue: &str, n: u64) {
    let transport: Arc<dyn Transport> = running.transport.clone();
    transport.declare_queue(queue).await.expect("declare");
    for i in 0..n {
        running
            .send_msg(queue, Message::json(&serde_json::json!({"n": i})))
            .await;
    }
}

/// Runs an autoscaler over `config` until `done` has what it waits for.
async fn autoscale<T>(
    running: &Running,
    config: &str,
    done: impl std::future::Future<Output = T>,
) -> (T, Vec<DecisionRecord>) {
    let config = ScalingConfig::parse(config).expect("config");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let scaler = Autoscaler::new(
        config,
        Box::new(DeadlinePolicy),
        running.network.as_ref().expect("network"),
        Box::new(std::io::sink()),
    )
    .expect("an external role needs no graph process")
    .with_records(tx);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scaler.run(async {
        let _ = stopped.await;
    }));
    let out = tokio::time::timeout(DEADLINE, done)
        .await
        .expect("the actuator was used within the deadline");
    let _ = stop.send(());
    task.await.expect("autoscaler ends");
    let mut records = Vec::new();
    while let Ok(r) = rx.try_recv() {
        records.push(r);
    }
    (out, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_scales_external_workers() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("actuator-command");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let log = dir.join("calls.log");
    let _ = std::fs::remove_file(&log);
    let script = dir.join("scale.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1 $2\" >> '{}'\n", log.display()),
    )
    .expect("script");
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    backlog(&running, "ext.jobs", 200).await;
    backlog(&running, "bad.jobs", 200).await;
    let config = format!(
        "'*': {{pollinterval: 0.01, history: 0.1}}\n\
         ext: {{p: 0.01, d: 0.1, min: 1, max: 6, boot: 0.001, q: ext.jobs, command: 'sh {} {{role}} {{count}}'}}\n\
         bad: {{p: 0.01, d: 0.1, min: 1, max: 6, boot: 0.001, q: bad.jobs, command: 'exit 3'}}\n",
        script.display()
    );
    let called = async {
        loop {
            if let Ok(text) = std::fs::read_to_string(&log)
                && text.lines().any(|l| l == "ext 6")
            {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let (text, records) = autoscale(&running, &config, called).await;
    // 200 jobs of 10 ms against a 100 ms deadline: as many workers as allowed, at once.
    assert_eq!(text.lines().next(), Some("ext 6"), "{text}");
    let ext = records
        .iter()
        .find(|r| r.role == "ext")
        .expect("an ext decision");
    assert_eq!((ext.from, ext.to, ext.backlog), (1, 6, 200), "{ext:?}");
    assert_eq!(
        ext.start_time, 0.001,
        "external roles plan with the configured boot"
    );
    let bad = records
        .iter()
        .find(|r| r.role == "bad")
        .expect("a bad decision");
    assert!(bad.wanted > 1, "{bad:?}");
    assert_eq!(
        bad.to, bad.from,
        "a failed command changes nothing: {bad:?}"
    );
    running.stop().await;
}

/// Answers every POST with 200 and sends its request line and JSON body on `tx`.
async fn endpoint(
    listener: tokio::net::TcpListener,
    tx: mpsc::UnboundedSender<(String, serde_json::Value)>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        let (head, body) = loop {
            let n = stream.read(&mut buf).await.expect("read request");
            assert!(n > 0, "request cut short");
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .expect("content-length");
                if body.len() >= length {
                    break (head.to_string(), body.to_string());
                }
            }
        };
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await
            .expect("answer");
        let line = head.lines().next().unwrap_or_default().to_string();
        let _ = tx.send((line, serde_json::from_str(&body).expect("JSON body")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_endpoint_scales_external_workers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(endpoint(listener, tx));
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    backlog(&running, "ext.jobs", 200).await;
    let config = format!(
        "'*': {{pollinterval: 0.01, history: 0.1}}\n\
         ext: {{p: 0.01, d: 0.1, min: 1, max: 6, boot: 0.001, q: ext.jobs, http: 'http://{addr}/scale?app=x'}}\n"
    );
    let (first, records) = autoscale(&running, &config, rx.recv()).await;
    let (line, body) = first.expect("a request");
    assert_eq!(line, "POST /scale?app=x HTTP/1.1");
    assert_eq!(body, serde_json::json!({"role": "ext", "instances": 6}));
    let ext = records
        .iter()
        .find(|r| r.role == "ext")
        .expect("a decision");
    assert_eq!((ext.from, ext.to), (1, 6), "{ext:?}");
    running.stop().await;
}
