//! Backlog pressure, relayed to the autoscaler through a thread of its own.
//!
//! A role's instances signal pressure ([`RoleMetrics::pressure`]) from the worker thread
//! they run on. Woken from there, the autoscaler's task would land in that worker's LIFO
//! slot, which other workers do not steal: it would wait until the busy instance yields,
//! up to a batch of messages later. The relay thread waits on the signals instead and
//! forwards them from outside the runtime, so the wake-up goes to the runtime's shared
//! queue and an idle worker runs the autoscaler at once. It forwards at most one signal
//! per `gap`, and stops when the [`PressureRelay`] is dropped.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use futures_util::future::{Either, select, select_all};
use tokio::sync::{Notify, mpsc};

use crate::metrics::RoleMetrics;

/// The receiving end of a relay: role indices under pressure.
#[derive(Debug)]
pub struct PressureRelay {
    rx: mpsc::UnboundedReceiver<usize>,
    stop: Arc<Notify>,
}

impl PressureRelay {
    /// Relays the pressure of `watched` (index, metrics), at most once per `gap`; an
    /// empty list starts no thread.
    pub fn start(watched: Vec<(usize, Arc<RoleMetrics>)>, gap: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = Arc::new(Notify::new());
        if !watched.is_empty() {
            let stopping = stop.clone();
            let spawned = std::thread::Builder::new()
                .name("wasmflo-pressure".into())
                .spawn(move || relay(&watched, gap, &stopping, &tx));
            if let Err(e) = spawned {
                tracing::warn!("no pressure relay ({e}): the autoscaler only polls");
            }
        }
        PressureRelay { rx, stop }
    }

    /// The next role under pressure; pending forever without a relay thread.
    pub async fn next(&mut self) -> usize {
        match self.rx.recv().await {
            Some(i) => i,
            None => std::future::pending().await,
        }
    }
}

impl Drop for PressureRelay {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

fn relay(
    watched: &[(usize, Arc<RoleMetrics>)],
    gap: Duration,
    stop: &Notify,
    tx: &mpsc::UnboundedSender<usize>,
) {
    loop {
        let signals = select_all(watched.iter().map(|(i, m)| {
            Box::pin(async move {
                m.pressure().await;
                *i
            })
        }));
        match block_on(select(pin!(stop.notified()), signals)) {
            Either::Left(_) => return,
            Either::Right(((i, _, _), _)) => {
                if tx.send(i).is_err() {
                    return;
                }
            }
        }
        std::thread::sleep(gap);
    }
}

/// Wakes a parked thread.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread, parking while it is pending.
fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
