//! Consuming an inport queue across reconnections, and settling its deliveries.
//!
//! A subscription's consumer task takes deliveries from the current channel; when that
//! channel or the connection goes, it waits for the session's next connection (or, if
//! only the channel went, retries with backoff) and consumes again. Deliveries are tagged
//! with the consumer's epoch: one still buffered from an older consumer is dropped, not
//! processed, since the broker has requeued it and an ack for it would fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Acker, Channel, Consumer};
use tokio::sync::{mpsc, watch};

use super::super::confirms::AckGate;
use super::super::{
    DEAD_LETTER_REASON, Delivery, DeliveryStream, Settle, Subscription, TransportError,
};
use super::declare::Declared;
use super::session::{FIRST_RETRY, MAX_RETRY, STALL_TIMEOUT, Session, lock};
use super::{DEAD_LETTER_QUEUE, message};
use crate::message::Message;

/// A delivery with the epoch of the consumer that took it.
type Tagged = (u64, lapin::message::Delivery);

impl Session {
    /// A channel with `prefetch` and a consumer of `queue` on it.
    async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<(Channel, Consumer), TransportError> {
        let channel = self.channel(queue).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| self.failed(queue, e))?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.failed(queue, e))?;
        Ok((channel, consumer))
    }
}

/// Consumes `queue`: the first consumer is made here (so a missing queue is an error
/// now), later ones by the subscription's task.
pub(super) async fn subscribe(
    session: &Arc<Session>,
    queue: &str,
    prefetch: u16,
) -> Result<Subscription, TransportError> {
    let (channel, consumer) = session.consume(queue, prefetch).await?;
    let current = Arc::new(Mutex::new(channel));
    let epoch = Arc::new(AtomicU64::new(0));
    let (deliveries, rx) = mpsc::unbounded_channel();
    tokio::spawn(
        Consuming {
            session: Arc::downgrade(session),
            generations: session.generations(),
            queue: queue.to_string(),
            prefetch,
            current: current.clone(),
            epoch: epoch.clone(),
            deliveries,
        }
        .run(consumer),
    );
    let (tx, settles) = mpsc::unbounded_channel();
    tokio::spawn(settle_loop(
        settles,
        current,
        session.clone(),
        queue.to_string(),
    ));
    let settle = Arc::new(AmqpSettle {
        tx,
        session: session.clone(),
        ackers: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
    });
    Ok(Subscription::new(
        queue,
        Box::new(AmqpStream {
            queue: queue.to_string(),
            rx,
            epoch,
            settle,
        }),
    ))
}

/// One subscription's consumer task.
struct Consuming {
    session: Weak<Session>,
    generations: watch::Receiver<u64>,
    queue: String,
    prefetch: u16,
    /// The channel consumed from, closed by the settle loop when the subscription ends.
    current: Arc<Mutex<Channel>>,
    /// Bumped each time a consumer ends.
    epoch: Arc<AtomicU64>,
    deliveries: mpsc::UnboundedSender<Tagged>,
}

impl Consuming {
    async fn run(mut self, consumer: Consumer) {
        self.forward(consumer).await;
        // A private queue (a workflow's replies) is only ever consumed by the
        // subscription that ended: not declared again after a reconnection.
        if let Some(s) = self.session.upgrade() {
            lock(&s.declared).retain(|d| *d != Declared::PrivateQueue(self.queue.clone()));
        }
    }

    async fn forward(&mut self, mut consumer: Consumer) {
        loop {
            let epoch = self.epoch.load(Ordering::Acquire);
            loop {
                tokio::select! {
                    d = consumer.next() => match d {
                        Some(Ok(d)) => {
                            if self.deliveries.send((epoch, d)).is_err() {
                                return;
                            }
                        }
                        // The end follows: lapin cancels a consumer after its error.
                        Some(Err(e)) => tracing::debug!("consuming '{}': {e}", self.queue),
                        None => break,
                    },
                    () = self.deliveries.closed() => return,
                }
            }
            // What is still buffered from this consumer is dropped: its channel is gone
            // or about to be closed, and the broker requeues it.
            self.epoch.fetch_add(1, Ordering::AcqRel);
            match self.again().await {
                Some(c) => consumer = c,
                None => return,
            }
        }
    }

    /// Consumes the queue again once there is a connection to do it on; `None` when the
    /// subscription or the session has ended.
    async fn again(&mut self) -> Option<Consumer> {
        let mut delay = FIRST_RETRY;
        let mut attempt = 0u32;
        loop {
            let session = self.session.upgrade()?;
            let link = session.link();
            if !link.connected() {
                session.suspect();
                drop(session);
                tracing::debug!("'{}' waits for the connection to come back", self.queue);
                let newer = self.generations.wait_for(|g| *g > link.generation);
                tokio::select! {
                    r = newer => { r.ok()?; }
                    () = self.deliveries.closed() => return None,
                }
                continue;
            }
            attempt += 1;
            match session.consume(&self.queue, self.prefetch).await {
                Ok((channel, consumer)) => {
                    let old = std::mem::replace(&mut *lock(&self.current), channel);
                    // A consumer the broker cancelled leaves its channel open.
                    let _ = old.close(200, "consumer ended".into()).await;
                    tracing::info!("consuming '{}' again", self.queue);
                    return Some(consumer);
                }
                Err(e) if attempt == 1 || attempt.is_multiple_of(10) => {
                    tracing::warn!("consuming '{}' again, attempt {attempt}: {e}", self.queue);
                }
                Err(_) => {}
            }
            drop(session);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.deliveries.closed() => return None,
            }
            delay = (delay * 2).min(MAX_RETRY);
        }
    }
}

/// What to do with one delivery. Deliveries are settled through their own lapin
/// `Acker`, never by tag on a channel: tags are per channel, and a queue is consumed on a
/// new channel after a reconnection. An acker of a lost channel settles nothing (the
/// broker has requeued its delivery).
enum SettleOp {
    /// Ack once every publish up to the second number is confirmed.
    Ack(Acker, u64),
    Nack(Acker, Message, String),
    Release(Acker),
}

/// Settles one subscription's deliveries in order; a nack waits for its dead-letter
/// publish to be confirmed before acking. Closes the consuming channel at the end.
async fn settle_loop(
    mut rx: mpsc::UnboundedReceiver<SettleOp>,
    current: Arc<Mutex<Channel>>,
    session: Arc<Session>,
    queue: String,
) {
    let dead = format!("dead-{queue}");
    let mut gate = AckGate::default();
    let requeue = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    while let Some(op) = rx.recv().await {
        let result = match op {
            SettleOp::Ack(acker, upto) => {
                if gate.pass(&session.confirms, upto).await {
                    settle_within(acker.ack(BasicAckOptions::default())).await
                } else {
                    tracing::warn!("an output of a '{queue}' message was not confirmed; requeued");
                    settle_within(acker.nack(requeue)).await
                }
            }
            SettleOp::Release(acker) => settle_within(acker.nack(requeue)).await,
            SettleOp::Nack(acker, mut msg, reason) => {
                msg.set_meta(DEAD_LETTER_REASON, reason);
                msg.set_meta(DEAD_LETTER_QUEUE, queue.as_str());
                if !acker.usable() {
                    // From a channel that is gone: the broker redelivers it.
                    continue;
                }
                match session.publish(&dead, "", &msg).await {
                    Ok(()) => settle_within(acker.ack(BasicAckOptions::default())).await,
                    Err(e) => {
                        tracing::error!("dead-lettering to {dead}: {e}; rejecting instead");
                        settle_within(acker.nack(BasicNackOptions::default())).await
                    }
                }
            }
        };
        match result {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("a '{queue}' delivery from a lost channel; redelivered")
            }
            // The channel is gone: its unacked deliveries return to the queue.
            Err(e) => tracing::debug!("settling a delivery of '{queue}': {e}; redelivered"),
        }
    }
    let channel = lock(&current).clone();
    let _ = channel.close(200, "done".into()).await;
}

/// An ack or nack, as lapin reports it; `Ok(false)` (a lost channel's) if it does not
/// complete within [`STALL_TIMEOUT`]. On a channel of a connection that died half
/// closed, lapin's settle may never complete, and waiting for it held every later
/// delivery's ack: the new channel's prefetch window filled and the consumer stopped.
/// The broker requeues what a closed channel left unsettled.
async fn settle_within(
    op: impl std::future::Future<Output = lapin::Result<bool>>,
) -> lapin::Result<bool> {
    tokio::time::timeout(STALL_TIMEOUT, op)
        .await
        .unwrap_or(Ok(false))
}

struct AmqpStream {
    queue: String,
    rx: mpsc::UnboundedReceiver<Tagged>,
    epoch: Arc<AtomicU64>,
    settle: Arc<AmqpSettle>,
}

#[async_trait::async_trait]
impl DeliveryStream for AmqpStream {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            let (epoch, d) = self.rx.recv().await?;
            if epoch != self.epoch.load(Ordering::Acquire) {
                tracing::debug!(
                    "'{}': dropped a delivery of a lost channel (requeued by the broker)",
                    self.queue
                );
                continue;
            }
            let msg = message(d.data, &d.properties);
            let id = self.settle.remember(d.acker);
            return Some(Delivery::new(msg, self.settle.clone(), id));
        }
    }
}

struct AmqpSettle {
    tx: mpsc::UnboundedSender<SettleOp>,
    session: Arc<Session>,
    /// The ackers of unsettled deliveries, by an id of ours that, unlike a channel's
    /// delivery tags, never repeats across channels.
    ackers: Mutex<HashMap<u64, Acker>>,
    next_id: AtomicU64,
}

impl AmqpSettle {
    fn remember(&self, acker: Acker) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.ackers).insert(id, acker);
        id
    }

    fn take(&self, id: u64) -> Option<Acker> {
        lock(&self.ackers).remove(&id)
    }
}

impl Settle for AmqpSettle {
    fn ack(&self, tag: u64) {
        let upto = self.session.confirms.issued();
        if let Some(acker) = self.take(tag) {
            let _ = self.tx.send(SettleOp::Ack(acker, upto));
        }
    }

    fn nack(&self, tag: u64, msg: Message, reason: &str) {
        if let Some(acker) = self.take(tag) {
            let _ = self.tx.send(SettleOp::Nack(acker, msg, reason.to_string()));
        }
    }

    fn release(&self, tag: u64, _msg: Message) {
        if let Some(acker) = self.take(tag) {
            let _ = self.tx.send(SettleOp::Release(acker));
        }
    }
}
