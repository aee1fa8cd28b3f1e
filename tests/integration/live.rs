//! Live coding: component files rewritten while a graph runs are swapped in at message
//! boundaries, with state handed over, nothing lost, and bad versions rejected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;
use wasmflo_host::component::components_dir;
use wasmflo_host::live::{LiveWatch, WatchEvent, WatchOptions, watch_components};
use wasmflo_host::participant::{Handover, SwapEvent};
use wasmflo_tests::guests;

use crate::support::*;

const GRAPH: &str = "counter(test/Counter)";

/// A private folder holding `test/Counter.wasm`, rewritten by the test.
struct Workdir {
    dir: PathBuf,
    file: PathBuf,
    original: Vec<u8>,
}

impl Workdir {
    fn new(name: &str) -> Workdir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("live-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("test")).unwrap();
        let file = dir.join("test/Counter.wasm");
        let original = std::fs::read(guests::COUNTER).unwrap();
        std::fs::write(&file, &original).unwrap();
        Workdir {
            dir,
            file,
            original,
        }
    }

    /// Replaces the component as cargo and editors do: a temporary file, then a rename.
    fn replace(&self, bytes: &[u8]) {
        let tmp = self.file.with_extension("wasm.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }

    /// The Counter component as a new version: the same code with one more custom
    /// section, so its content hash differs.
    fn version(&self, n: u32) -> Vec<u8> {
        with_custom_section(&self.original, "wasmflo-test-version", &n.to_le_bytes())
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Appends a custom section (id 0) to a component or module.
pub(crate) fn with_custom_section(bytes: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

async fn start_live(work: &Workdir, settle: Duration) -> (Running, LiveWatch) {
    let net = start(&fbp(GRAPH), &work.dir).await.expect("graph starts");
    let swapper = net.network.as_ref().unwrap().swapper().clone();
    let opts = WatchOptions {
        settle,
        rebuild: false,
    };
    let watch = watch_components(swapper, loader().clone(), opts).expect("watch starts");
    (net, watch)
}

/// The next swap outcome for process `counter`.
async fn next_swap(events: &mut broadcast::Receiver<SwapEvent>) -> SwapEvent {
    tokio::time::timeout(DEADLINE, events.recv())
        .await
        .expect("a swap within the deadline")
        .expect("swap events open")
}

/// The next watcher event that is not `Incomplete`.
async fn next_verdict(events: &mut broadcast::Receiver<WatchEvent>) -> WatchEvent {
    loop {
        let e = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("a watcher event within the deadline")
            .expect("watch events open");
        if !matches!(e, WatchEvent::Incomplete { .. }) {
            return e;
        }
    }
}

fn seq_msg(seq: u64) -> String {
    format!("{{\"seq\":{seq}}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_a_steady_stream_lose_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let work = Workdir::new("twenty");
    let (mut net, watch) = start_live(&work, Duration::from_millis(300)).await;
    let mut swaps = net.network.as_ref().unwrap().swapper().events();
    let mut out = net.probe("counter.OUT").await;

    // A steady stream, 4 messages per millisecond, until every swap is done.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let (transport, stop, sent) = (net.transport.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                for _ in 0..4 {
                    let seq = sent.load(Ordering::SeqCst);
                    let msg = wasmflo_host::message::Message::json_text(seq_msg(seq));
                    wasmflo_host::transport::Transport::send_to_queue(
                        &*transport,
                        "counter.IN",
                        msg,
                    )
                    .await
                    .unwrap();
                    sent.store(seq + 1, Ordering::SeqCst);
                }
            }
        })
    };

    // Collect outputs concurrently so the swaps happen with messages in flight.
    let consumer = {
        let (stop, sent) = (stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut seen: Vec<Value> = Vec::new();
            loop {
                if stop.load(Ordering::SeqCst) && seen.len() as u64 == sent.load(Ordering::SeqCst) {
                    break seen;
                }
                seen.push(next_json(&mut out).await);
            }
        })
    };

    for n in 1..=20 {
        work.replace(&work.version(n));
        let event = next_swap(&mut swaps).await;
        let (handover, _) = event.outcome.expect("the new version is swapped in");
        assert_eq!(handover, Handover::Restored, "swap {n}");
    }
    drop(watch);
    // Let a few more messages run on the last version, then end the stream.
    let after = sent.load(Ordering::SeqCst) + 40;
    while sent.load(Ordering::SeqCst) < after {
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::SeqCst);
    producer.await.unwrap();
    let seen = consumer.await.unwrap();
    let total = sent.load(Ordering::SeqCst);

    let mut last_generation = 0;
    for (i, out) in seen.iter().enumerate() {
        assert_eq!(out["seq"], i as u64, "exactly once and in order: {out}");
        // The count survives every swap: the state was handed over each time.
        assert_eq!(out["count"], i as u64 + 1, "state handed over: {out}");
        let generation = out["generation"].as_u64().unwrap();
        assert!(generation >= last_generation, "never back to old code");
        last_generation = generation;
    }
    assert_eq!(
        last_generation, 20,
        "the last messages ran on the 20th version"
    );
    let reports = net.stop().await;
    assert_eq!(reports[0].stats.swaps, 20);
    assert_eq!(reports[0].stats.processed, total);
    assert!(net.transport.dead_letters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_with_other_ports_starts_fresh_and_dead_letters_removed_ports() {
    let work = Workdir::new("ports");
    let (mut net, _watch) = start_live(&work, Duration::from_millis(300)).await;
    let mut swaps = net.network.as_ref().unwrap().swapper().events();
    let mut out = net.probe("counter.OUT").await;
    net.send("counter.IN", &seq_msg(0)).await;
    assert_eq!(next_json(&mut out).await["count"], 1);

    // core/Repeat has `in` and `out` but neither `reset` nor `poison`, and keeps no state.
    let repeat = std::fs::read(components_dir().join("core/Repeat.wasm")).unwrap();
    work.replace(&repeat);
    let event = next_swap(&mut swaps).await;
    match event.outcome {
        Ok((Handover::Fresh(why), _)) => assert!(why.contains("refused"), "{why}"),
        other => panic!("expected a fresh start, got {other:?}"),
    }

    net.send("counter.RESET", "null").await;
    net.send("counter.IN", &seq_msg(1)).await;
    // Repeat echoes its input: the new code handles `in`.
    assert_eq!(next_json(&mut out).await, serde_json::json!({"seq": 1}));
    net.stop().await;
    let dead = net.transport.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].reason.contains("no longer has inport 'reset'"),
        "{}",
        dead[0].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_versions_are_rejected_and_the_old_one_keeps_running() {
    let work = Workdir::new("broken");
    let (mut net, watch) = start_live(&work, Duration::from_millis(200)).await;
    let mut verdicts = watch.events();
    let mut swaps = net.network.as_ref().unwrap().swapper().events();
    let mut out = net.probe("counter.OUT").await;
    net.send("counter.IN", &seq_msg(0)).await;
    assert_eq!(next_json(&mut out).await["count"], 1);

    // Not WebAssembly at all: rejected once the file has settled.
    work.replace(b"this is not a component");
    match next_verdict(&mut verdicts).await {
        WatchEvent::Rejected { error, .. } => {
            assert!(error.contains("Counter.wasm"), "names the file: {error}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    // A component of another world: rejected at once.
    work.replace(&std::fs::read(guests::OTHER_WORLD).unwrap());
    match next_verdict(&mut verdicts).await {
        WatchEvent::Rejected { error, .. } => {
            assert!(error.contains("does not implement"), "{error}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    // A version that traps while starting (its restore traps on poisoned state).
    net.send("counter.POISON", "null").await;
    assert_eq!(next_json(&mut out).await["poisoned"], true);
    work.replace(&work.version(1));
    let event = next_swap(&mut swaps).await;
    let err = event.outcome.expect_err("the trapping version is rejected");
    assert!(err.contains("restoring"), "{err}");

    // The old version still runs, with its state.
    net.send("counter.IN", &seq_msg(1)).await;
    let last = next_json(&mut out).await;
    assert_eq!(last["count"], 2);
    assert_eq!(last["generation"], 0);
    let reports = net.stop().await;
    assert_eq!(reports[0].stats.swaps, 0);
    assert_eq!(reports[0].stats.rejected_swaps, 1);
    assert!(net.transport.dead_letters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_file_is_never_loaded() {
    let work = Workdir::new("half");
    // A long settle time: the half file must wait, not be rejected.
    let (mut net, watch) = start_live(&work, Duration::from_secs(30)).await;
    let mut events = watch.events();
    let mut swaps = net.network.as_ref().unwrap().swapper().events();
    let mut out = net.probe("counter.OUT").await;

    let next = work.version(7);
    let (head, _) = next.split_at(next.len() / 2);
    // Written in place, in two writes, as some editors do.
    std::fs::write(&work.file, head).unwrap();
    let seen = tokio::time::timeout(DEADLINE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(seen, WatchEvent::Incomplete { .. }),
        "the half file is waited on: {seen:?}"
    );
    net.send("counter.IN", &seq_msg(0)).await;
    assert_eq!(next_json(&mut out).await["generation"], 0, "old code runs");

    std::fs::write(&work.file, &next).unwrap();
    let event = next_swap(&mut swaps).await;
    assert_eq!(event.outcome.unwrap().0, Handover::Restored);
    net.send("counter.IN", &seq_msg(1)).await;
    let after = next_json(&mut out).await;
    assert_eq!(after["generation"], 1);
    assert_eq!(after["count"], 2);
    net.stop().await;
    assert!(net.transport.dead_letters().is_empty());
}
