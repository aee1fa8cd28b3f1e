//! The in-process transport: queues are MPMC channels, topics fan out to bound queues.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures_util::future::BoxFuture;

use super::{
    BacklogReader, Binding, DEAD_LETTER_REASON, Delivery, DeliveryStream, Poller, PublishSink,
    Publisher, Settle, Subscription, Transport, TransportError,
};
use crate::message::Message;

/// A message that failed, kept with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The queue it was consumed from.
    pub queue: String,
    /// Why it failed.
    pub reason: String,
    /// The message, with the reason also in metadata [`DEAD_LETTER_REASON`].
    pub message: Message,
}

/// An in-process transport with MsgFlo's queue/topic model and exact in-flight counting.
///
/// Queues are unbounded, as broker queues are. A nacked message goes to the queue's
/// dead-letter queue `dead-<queue>` when one is declared, and is always kept in
/// [`MemoryTransport::dead_letters`].
#[derive(Debug, Clone, Default)]
pub struct MemoryTransport {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    dead: Mutex<Vec<DeadLetter>>,
    drain: Arc<Drain>,
}

/// Wakes [`MemoryTransport::drained`] callers; touched on a settle only while one waits.
#[derive(Debug, Default)]
struct Drain {
    waiters: AtomicUsize,
    notify: tokio::sync::Notify,
}

/// One counter on a cache line pair of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Count(AtomicU64);

/// An unbounded queue with its in-flight counts.
///
/// In flight means pushed and not yet settled. The two counts are kept apart, each on
/// its own line, and per queue: with one transport-wide counter every push and every
/// settle on every thread was an atomic operation on one contended line, about seven
/// per message through a 3-stage pipeline. Now a producer touches only `pushed` and a
/// consumer only `settled` (and `pushed` only while someone waits for the drain).
///
/// Aligned to a cache line pair so the `Arc`'s reference counts, which the consuming
/// thread changes for every delivery, sit on another line than the fields the producing
/// thread reads for every push.
#[derive(Debug)]
#[repr(align(128))]
struct Queue {
    name: String,
    // async-channel's lock-free queue: flume's mutex was contended between the
    // producing and the consuming worker thread of every edge.
    tx: async_channel::Sender<Message>,
    rx: async_channel::Receiver<Message>,
    pushed: Count,
    settled: Count,
    drain: Arc<Drain>,
    /// For dead-lettering only; weak, as `Shared` holds the queue.
    shared: std::sync::Weak<Shared>,
}

#[derive(Debug, Default)]
struct Topic {
    /// Bound queues. Read on every publish, written only when the graph is rewired.
    bound: RwLock<Vec<(String, Arc<Queue>)>>,
}

impl MemoryTransport {
    /// A new, empty transport.
    pub fn new() -> Self {
        Self::default()
    }

    /// The dead-lettered messages so far (the last [`MAX_DEAD_LETTERS`]).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.shared.dead).clone()
    }

    /// Messages waiting in `queue`.
    pub fn depth(&self, queue: &str) -> usize {
        lock(&self.shared.queues)
            .get(queue)
            .map_or(0, |q| q.rx.len())
    }

    /// Resolves once no message is pending (published but not settled).
    pub async fn drained(&self) {
        let drain = &self.shared.drain;
        drain.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(drain);
        loop {
            // Created before the count is read: a settle after the read wakes it.
            let notified = drain.notify.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Messages pushed and not settled, over all queues.
    ///
    /// Every settle's count is read before any push's: a message's settle follows the
    /// pushes of what processing it published, so each settle counted here has its
    /// message's push and those of its outputs counted too, and the figure is never
    /// below the true count (it is zero only when nothing is in flight).
    /// A queue declared meanwhile is not in the reading; it is taken again then (queues
    /// are never removed, so the number tells).
    fn in_flight(&self) -> u64 {
        loop {
            let queues: Vec<Arc<Queue>> = lock(&self.shared.queues).values().cloned().collect();
            let settled: u64 = queues
                .iter()
                .map(|q| q.settled.0.load(Ordering::SeqCst))
                .sum();
            let pushed: u64 = queues
                .iter()
                .map(|q| q.pushed.0.load(Ordering::SeqCst))
                .sum();
            if lock(&self.shared.queues).len() == queues.len() {
                return pushed.saturating_sub(settled);
            }
        }
    }

    fn queue(&self, name: &str) -> Arc<Queue> {
        lock(&self.shared.queues)
            .entry(name.to_string())
            .or_insert_with(|| {
                let (tx, rx) = async_channel::unbounded();
                Arc::new(Queue {
                    name: name.to_string(),
                    tx,
                    rx,
                    pushed: Count::default(),
                    settled: Count::default(),
                    drain: self.shared.drain.clone(),
                    shared: Arc::downgrade(&self.shared),
                })
            })
            .clone()
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        lock(&self.shared.topics)
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

/// Takes back a [`MemoryTransport::drained`] caller's registration, however it ends.
struct Waiting<'a>(&'a Drain);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Queue {
    /// A message pushed here was acked or nacked.
    fn settle_one(&self) {
        self.settled.0.fetch_add(1, Ordering::SeqCst);
        // SeqCst on both sides: either `drained` reads this settle, or this reads its
        // registration and wakes it. The drain ends with some queue's last settle.
        if self.drain.waiters.load(Ordering::SeqCst) > 0
            && self.pushed.0.load(Ordering::SeqCst) == self.settled.0.load(Ordering::SeqCst)
        {
            self.drain.notify.notify_waiters();
        }
    }

    fn push(&self, msg: Message) {
        self.pushed.0.fetch_add(1, Ordering::SeqCst);
        // The queue owns a receiver, so the channel cannot be disconnected.
        let _ = self.tx.try_send(msg);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl Transport for MemoryTransport {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn declare_queue(&self, queue: &str) -> Result<(), TransportError> {
        self.queue(queue);
        Ok(())
    }

    async fn declare_topic(&self, topic: &str) -> Result<(), TransportError> {
        self.topic(topic);
        Ok(())
    }

    async fn bind(&self, binding: &Binding) -> Result<(), TransportError> {
        let queue = self.queue(&binding.tgt);
        let topic = self.topic(&binding.src);
        let mut bound = topic.bound.write().unwrap_or_else(|p| p.into_inner());
        if !bound.iter().any(|(name, _)| *name == binding.tgt) {
            bound.push((binding.tgt.clone(), queue));
        }
        Ok(())
    }

    async fn unbind(&self, binding: &Binding) -> Result<(), TransportError> {
        let topic = self.topic(&binding.src);
        topic
            .bound
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(n, _)| *n != binding.tgt);
        Ok(())
    }

    async fn subscribe(&self, queue: &str) -> Result<Subscription, TransportError> {
        let q = self.queue(queue);
        Ok(Subscription::new(
            queue,
            Box::new(MemoryStream { queue: q }),
        ))
    }

    async fn publisher(&self, topic: &str) -> Result<Publisher, TransportError> {
        Ok(Publisher::new(
            topic,
            Arc::new(MemorySink {
                topic: self.topic(topic),
            }),
        ))
    }

    async fn send_to_queue(&self, queue: &str, msg: Message) -> Result<(), TransportError> {
        self.queue(queue).push(msg);
        Ok(())
    }

    fn pending(&self) -> Option<u64> {
        Some(self.in_flight())
    }

    fn backlog_reader(&self) -> Option<&dyn BacklogReader> {
        Some(self)
    }
}

impl BacklogReader for MemoryTransport {
    fn waiting<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, TransportError>> {
        Box::pin(std::future::ready(Ok(self.depth(queue) as u64)))
    }

    fn method(&self) -> &'static str {
        "queue length"
    }
}

/// Times a consumer that found its queue empty yields and looks again before it sleeps.
const SPINS: u32 = 16;

struct MemoryStream {
    queue: Arc<Queue>,
}

#[async_trait::async_trait]
impl DeliveryStream for MemoryStream {
    async fn next(&mut self) -> Option<Delivery> {
        // Looks a few times, yielding in between, before it sleeps: waking a sleeping
        // consumer costs its producer a futex call and, on a busy machine, a context
        // switch, which in a pipeline would be paid for nearly every message.
        for _ in 0..SPINS {
            match self.queue.rx.try_recv() {
                Ok(msg) => return Some(Delivery::new(msg, self.queue.clone(), 0)),
                Err(async_channel::TryRecvError::Closed) => return None,
                Err(async_channel::TryRecvError::Empty) => tokio::task::yield_now().await,
            }
        }
        let msg = self.queue.rx.recv().await.ok()?;
        Some(Delivery::new(msg, self.queue.clone(), 0))
    }

    fn poller(&self) -> Option<Box<dyn Poller>> {
        Some(Box::new(MemoryPoller {
            queue: self.queue.clone(),
        }))
    }
}

/// Takes what a queue already holds without awaiting: the participant's fast path.
struct MemoryPoller {
    queue: Arc<Queue>,
}

impl Poller for MemoryPoller {
    fn try_next(&mut self) -> Option<Delivery> {
        let msg = self.queue.rx.try_recv().ok()?;
        Some(Delivery::new(msg, self.queue.clone(), 0))
    }
}

impl Settle for Queue {
    fn ack(&self, _tag: u64) {
        self.settle_one();
    }

    fn nack(&self, _tag: u64, mut msg: Message, reason: &str) {
        let Some(shared) = self.shared.upgrade() else {
            self.settle_one();
            return;
        };
        msg.set_meta(DEAD_LETTER_REASON, reason);
        let dlq = format!("dead-{}", self.name);
        if let Some(q) = lock(&shared.queues).get(&dlq).cloned() {
            q.push(msg.clone());
        }
        let mut dead = lock(&shared.dead);
        // The most recent ones are kept; a long-running host must not grow without bound.
        if dead.len() >= MAX_DEAD_LETTERS {
            dead.remove(0);
        }
        dead.push(DeadLetter {
            queue: self.name.clone(),
            reason: reason.to_string(),
            message: msg,
        });
        drop(dead);
        self.settle_one();
    }
}

/// Dead letters [`MemoryTransport::dead_letters`] keeps; declared `dead-<queue>` queues
/// hold every one.
pub const MAX_DEAD_LETTERS: usize = 10_000;

struct MemorySink {
    topic: Arc<Topic>,
}

impl PublishSink for MemorySink {
    fn publish(&self, msg: Message) -> BoxFuture<'_, Result<(), TransportError>> {
        let published = self.publish_now(msg).unwrap_or(Ok(()));
        Box::pin(std::future::ready(published))
    }

    fn publish_now(&self, msg: Message) -> Result<Result<(), TransportError>, Message> {
        let bound = self.topic.bound.read().unwrap_or_else(|p| p.into_inner());
        if let Some(((_, last), rest)) = bound.split_last() {
            for (_, q) in rest {
                q.push(msg.clone());
            }
            last.push(msg);
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::BindingKind;

    #[tokio::test]
    async fn fanout_ack_and_dead_letter() {
        let t = MemoryTransport::new();
        for q in ["a.IN", "b.IN", "dead-b.IN"] {
            t.declare_queue(q).await.ok();
        }
        for tgt in ["a.IN", "b.IN"] {
            let binding = Binding {
                src: "x.OUT".into(),
                tgt: tgt.into(),
                kind: BindingKind::PubSub,
            };
            t.bind(&binding).await.ok();
        }
        let publisher = t.publisher("x.OUT").await.unwrap();
        publisher.publish(Message::json_text("1")).await.ok();
        assert_eq!(t.pending(), Some(2));
        let mut a = t.subscribe("a.IN").await.unwrap();
        let mut b = t.subscribe("b.IN").await.unwrap();
        a.next().await.unwrap().ack();
        b.next().await.unwrap().nack("bad");
        assert_eq!(t.pending(), Some(1), "the dead-letter queue holds one");
        let dead = t.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason, "bad");
        assert_eq!(dead[0].message.meta(DEAD_LETTER_REASON), Some("bad"));
        assert_eq!(t.depth("dead-b.IN"), 1);
    }

    /// Messages handed from queue to queue by a stage on another thread, as a participant
    /// does (publish, then ack): the drain ends with the last settle of the last queue,
    /// not before (the counts are per queue) and not never (the wake-up).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drained_waits_for_messages_handed_from_queue_to_queue() {
        const N: u64 = 2_000;
        let t = MemoryTransport::new();
        for q in ["a.IN", "b.IN"] {
            t.declare_queue(q).await.ok();
        }
        for i in 0..N {
            t.send_to_queue("a.IN", Message::json_text(i.to_string()))
                .await
                .ok();
        }
        let mut a = t.subscribe("a.IN").await.unwrap();
        let mut b = t.subscribe("b.IN").await.unwrap();
        let stage = {
            let t = t.clone();
            tokio::spawn(async move {
                for _ in 0..N {
                    let d = a.next().await.unwrap();
                    t.send_to_queue("b.IN", d.message.clone()).await.ok();
                    d.ack();
                }
            })
        };
        let taken = Arc::new(AtomicU64::new(0));
        let sink = {
            let taken = taken.clone();
            tokio::spawn(async move {
                for _ in 0..N {
                    let d = b.next().await.unwrap();
                    taken.fetch_add(1, Ordering::SeqCst);
                    d.ack();
                }
            })
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), t.drained())
            .await
            .expect("drained resolves once everything is settled");
        assert_eq!(
            taken.load(Ordering::SeqCst),
            N,
            "drained before the last settle"
        );
        assert_eq!(t.pending(), Some(0));
        stage.await.unwrap();
        sink.await.unwrap();
    }
}
