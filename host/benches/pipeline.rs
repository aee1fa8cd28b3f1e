//! Foundation benchmark: a 3-stage in-process pipeline of WASM `core/Repeat`
//! participants against the same pipeline of native Rust participants (same transport,
//! queues and participant loop; only the guest call differs), the direct per-call
//! cost, and the time to create an instance and make its first call.
//!
//! `cargo bench -p wasmflo-host --bench pipeline`; `WASMFLO_BENCH_QUICK=1` for a short run.

// A benchmark binary: failing loudly on a broken set-up is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

// The `wasmflo` binary's allocator (see host/src/main.rs), so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use wasmflo_host::component::{Loader, Resolver, components_dir};
use wasmflo_host::fault::FaultKind;
use wasmflo_host::message::Message;
use wasmflo_host::participant::{self, Parameters, ParticipantSpec, Phase};
use wasmflo_host::runtime::{
    BatchCall, CallOutcome, Definition, Guest, GuestFactory, Limits, Runtime, RuntimeConfig,
};
use wasmflo_host::transport::{Binding, BindingKind, MemoryTransport, Subscription, Transport};

/// A native Rust Repeat: copies the payload to a new message, as a guest does.
#[derive(Debug)]
struct NativeRepeat {
    definition: Arc<Definition>,
}

impl Guest for NativeRepeat {
    fn start(&mut self) -> CallOutcome {
        CallOutcome {
            outputs: Vec::new(),
            timers: Vec::new(),
            result: Ok(()),
        }
    }
    fn process(&mut self, _port: &str, msg: &Message) -> CallOutcome {
        let mut out = Message {
            content_type: msg.content_type.clone(),
            data: msg.data.to_vec().into(),
            metadata: Vec::new(),
        };
        out.inherit_metadata(&msg.metadata);
        CallOutcome {
            outputs: vec![(0, out)],
            timers: Vec::new(),
            result: Ok(()),
        }
    }
    fn on_timer(&mut self, _id: u32) -> CallOutcome {
        self.start()
    }
    // Takes runs too, so both pipelines go through the same loop code.
    fn batches(&self) -> bool {
        true
    }
    fn process_batch(&mut self, port: &str, msgs: &[&Message]) -> BatchCall {
        BatchCall::Done(msgs.iter().map(|m| self.process(port, m)).collect())
    }
}

impl GuestFactory for NativeRepeat {
    fn definition(&self) -> &Arc<Definition> {
        &self.definition
    }
    fn version(&self) -> &str {
        "native"
    }
    fn instantiate(
        &self,
        _process: Arc<str>,
        _limits: &Limits,
    ) -> Result<Box<dyn Guest>, (FaultKind, String)> {
        Ok(Box::new(NativeRepeat {
            definition: self.definition.clone(),
        }))
    }
}

struct Figures {
    /// Messages/s draining a pre-filled input queue (the pipeline alone).
    prefilled: f64,
    /// Messages/s with a producer task feeding the pipeline at the same time.
    throughput: f64,
    p50: Duration,
    p99: Duration,
}

fn payload() -> Message {
    // 100 bytes of JSON.
    let text = format!(
        "{{\"sensor\":\"inside\",\"value\":22.3333333,\"pad\":\"{}\"}}",
        "x".repeat(53)
    );
    assert_eq!(text.len(), 100);
    Message::json_text(text)
}

/// Runs the 3-stage pipeline; `batch` is each process's `batch` limit (1: one message per
/// guest call).
async fn pipeline(
    factory: Arc<dyn GuestFactory>,
    messages: usize,
    pings: usize,
    batch: u32,
) -> Figures {
    let transport = Arc::new(MemoryTransport::new());
    let (phase, watcher) = watch::channel(Phase::Running);
    let stages = ["a", "b", "c"];
    for (i, s) in stages.iter().enumerate() {
        let tgt = if i + 1 < stages.len() {
            format!("{}.IN", stages[i + 1])
        } else {
            "sink.IN".into()
        };
        transport.declare_queue(&format!("{s}.IN")).await.ok();
        transport.declare_queue(&tgt).await.ok();
        let b = Binding {
            src: format!("{s}.OUT"),
            tgt,
            kind: BindingKind::PubSub,
        };
        transport.bind(&b).await.ok();
    }
    // Pre-fill the first queue, so the first figure measures the pipeline alone, without a
    // producer competing for the two cores.
    let msg = payload();
    for _ in 0..messages {
        transport.send_to_queue("a.IN", msg.clone()).await.ok();
    }
    let mut sink = transport.subscribe("sink.IN").await.expect("sink");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in stages {
        let spec = ParticipantSpec {
            process: Arc::from(s),
            component: factory.clone(),
            limits: Limits {
                batch,
                ..Limits::default()
            },
            inports: vec![(
                "in".into(),
                transport.subscribe(&format!("{s}.IN")).await.expect("sub"),
            )],
            outports: vec![Some(
                transport.publisher(&format!("{s}.OUT")).await.expect("pub"),
            )],
            initial: Vec::new(),
            parameters: Arc::new(Parameters::default()),
            transport: transport.clone(),
            updates: None,
            swap_events: None,
            faults: None,
            metrics: None,
        };
        tasks.push(tokio::spawn(participant::run(spec, watcher.clone())));
    }
    drain(&mut sink, messages).await;
    let prefilled = messages as f64 / started.elapsed().as_secs_f64();

    // Latency: one message in flight at a time.
    let mut lat = Vec::with_capacity(pings);
    for _ in 0..pings {
        let t = Instant::now();
        transport.send_to_queue("a.IN", msg.clone()).await.ok();
        sink.next().await.expect("sink open").ack();
        lat.push(t.elapsed());
    }
    lat.sort();

    // Throughput: a producer keeps the pipeline full; time until the last arrives.
    let t = Instant::now();
    let producer = {
        let transport = transport.clone();
        let msg = msg.clone();
        tokio::spawn(async move {
            for _ in 0..messages {
                transport.send_to_queue("a.IN", msg.clone()).await.ok();
            }
        })
    };
    drain(&mut sink, messages).await;
    let elapsed = t.elapsed();
    producer.await.ok();
    phase.send_replace(Phase::Stopped);
    for t in tasks {
        t.await.ok();
    }
    Figures {
        prefilled,
        throughput: messages as f64 / elapsed.as_secs_f64(),
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
    }
}

/// Takes and acks `n` messages from the pipeline's end as a participant's loop does:
/// what is queued without waiting, and a wait only when nothing is.
async fn drain(sink: &mut Subscription, n: usize) {
    let mut poller = sink.poller().expect("an in-process queue");
    let mut left = n;
    while left > 0 {
        match poller.try_next() {
            Some(d) => d.ack(),
            None => sink.next().await.expect("sink open").ack(),
        }
        left -= 1;
    }
}

fn per_call(guest: &mut dyn Guest, calls: usize) -> Duration {
    let msg = payload();
    for _ in 0..1000 {
        guest.process("in", &msg);
    }
    let t = Instant::now();
    for _ in 0..calls {
        let out = guest.process("in", &msg);
        assert!(out.result.is_ok() && out.outputs.len() == 1);
    }
    t.elapsed() / calls as u32
}

/// Cost per message when messages come in runs of [`RUN`] (`process-batch`).
fn per_run_message(guest: &mut dyn Guest, calls: usize) -> Duration {
    let msg = payload();
    let run: Vec<&Message> = std::iter::repeat_n(&msg, RUN).collect();
    let rounds = calls.div_ceil(RUN);
    for _ in 0..1000 / RUN {
        guest.process_batch("in", &run);
    }
    let t = Instant::now();
    for _ in 0..rounds {
        let BatchCall::Done(out) = guest.process_batch("in", &run) else {
            panic!("the run is taken in one call");
        };
        assert!(out.len() == RUN && out.iter().all(|o| o.outputs.len() == 1));
    }
    t.elapsed() / (rounds * RUN) as u32
}

/// The default `batch` limit: the longest run a participant takes.
const RUN: usize = 32;

fn us(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

fn main() {
    let quick = std::env::var_os("WASMFLO_BENCH_QUICK").is_some();
    let (messages, pings, calls, creations) = if quick {
        (50_000, 2_000, 50_000, 1_000)
    } else {
        (500_000, 20_000, 500_000, 20_000)
    };

    let runtime = Runtime::new(&RuntimeConfig::default()).expect("engine");
    let loader = Loader::new(runtime, None);
    let resolver = Resolver::new(components_dir(), ".");
    let repeat = loader
        .load(
            &resolver
                .resolve("core/Repeat")
                .expect("core/Repeat is built"),
        )
        .expect("core/Repeat loads");
    let native = Arc::new(NativeRepeat {
        definition: repeat.definition.clone(),
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let wasm = rt.block_on(pipeline(repeat.clone(), messages, pings, RUN as u32));
    let single = rt.block_on(pipeline(repeat.clone(), messages, pings, 1));
    let base = rt.block_on(pipeline(native.clone(), messages, pings, RUN as u32));

    let mut wasm_guest = repeat
        .instantiate(Arc::from("bench"), &Limits::default())
        .expect("instance");
    let mut native_guest = native
        .instantiate(Arc::from("bench"), &Limits::default())
        .expect("native");
    let wasm_call = per_call(&mut wasm_guest, calls);
    let native_call = per_call(native_guest.as_mut(), calls);
    let wasm_run = per_run_message(&mut wasm_guest, calls);
    let native_run = per_run_message(native_guest.as_mut(), calls);

    let msg = payload();
    let mut create = Vec::with_capacity(creations);
    for _ in 0..creations {
        let t = Instant::now();
        let mut i = repeat
            .instantiate(Arc::from("bench"), &Limits::default())
            .expect("instance");
        let started = i.start();
        let out = i.process("in", &msg);
        create.push(t.elapsed());
        assert!(started.result.is_ok() && out.result.is_ok());
    }
    create.sort();

    let added_call = wasm_call.saturating_sub(native_call);
    // Wall time per message and stage, derived from the pipelines' throughput.
    let derived_ns = (1e9 / wasm.throughput - 1e9 / base.throughput) / 3.0;
    println!(
        "wasmflo bench: 3-stage pipeline of core/Repeat, in-process, 100-byte JSON{}",
        if quick { " (quick)" } else { "" }
    );
    println!(
        "  wasm     {:>10.0} msg/s pre-filled, {:>10.0} msg/s with a live producer   latency p50 {:>8}  p99 {:>8}",
        wasm.prefilled,
        wasm.throughput,
        us(wasm.p50),
        us(wasm.p99)
    );
    println!(
        "  wasm, one message per call (batch=1) {:>10.0} msg/s pre-filled, {:>10.0} msg/s with a live producer",
        single.prefilled, single.throughput
    );
    println!(
        "  native   {:>10.0} msg/s pre-filled, {:>10.0} msg/s with a live producer   latency p50 {:>8}  p99 {:>8}   (baseline)",
        base.prefilled,
        base.throughput,
        us(base.p50),
        us(base.p99)
    );
    let best = wasm.prefilled.max(wasm.throughput);
    println!(
        "  ratio    wasm/native {:.2} pre-filled, {:.2} live; target >= 500000 msg/s through wasm: {}",
        wasm.prefilled / base.prefilled,
        wasm.throughput / base.throughput,
        if best >= 500_000.0 { "met" } else { "NOT met" }
    );
    println!(
        "  per call wasm {} ns, native {} ns -> added {} ns per stage per message (x{:.1}); target <= 1000 ns: {}",
        wasm_call.as_nanos(),
        native_call.as_nanos(),
        added_call.as_nanos(),
        wasm_call.as_secs_f64() / native_call.as_secs_f64().max(1e-12),
        if added_call <= Duration::from_micros(1) {
            "met"
        } else {
            "NOT met"
        }
    );
    let added_run = wasm_run.saturating_sub(native_run);
    println!(
        "  per message in runs of {RUN} (process-batch): wasm {} ns, native {} ns -> added {} ns per stage per message (x{:.1} vs one call each)",
        wasm_run.as_nanos(),
        native_run.as_nanos(),
        added_run.as_nanos(),
        wasm_call.as_secs_f64() / wasm_run.as_secs_f64().max(1e-12),
    );
    println!("  pipeline-derived added wall time per stage per message: {derived_ns:.0} ns");
    println!(
        "  new instance + start + first call: p50 {}  p99 {}  mean {}; target <= 20 us: {}",
        us(create[create.len() / 2]),
        us(create[create.len() * 99 / 100]),
        us(create.iter().sum::<Duration>() / create.len() as u32),
        if create[create.len() / 2] <= Duration::from_micros(20) {
            "met (p50)"
        } else {
            "NOT met"
        }
    );
}
