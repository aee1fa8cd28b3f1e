//! How messages move between participants: the [`Transport`] trait and its backends.
//!
//! The model is MsgFlo's: every inport is a *queue* (`role.PORT`), every outport a
//! *topic* (a fanout exchange on AMQP, a topic on MQTT), and a graph edge is a
//! [`Binding`] from a topic to a queue. A participant subscribes to its inport queues,
//! publishes to its outport topics, and acks each delivery only after the outputs it
//! produced are published; a nack dead-letters the message with a reason.
//!
//! Backends: [`MemoryTransport`] (in-process, the default), [`MqttTransport`] and
//! [`AmqpTransport`] (brokers, see their module docs for the wire conventions);
//! [`connect`] picks one from a broker URL. Each also reads its queues' depth for the
//! autoscaler ([`BacklogReader`]).

mod amqp;
mod backlog;
mod confirms;
mod memory;
mod mqtt;
pub(crate) mod tls;
mod url;

use std::fmt::Debug;
use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use amqp::{AmqpTransport, DISCOVERY_FANOUT};
pub use backlog::BacklogReader;
pub use memory::{DeadLetter, MemoryTransport};
pub use mqtt::MqttTransport;
pub use url::{BrokerUrl, CA_FILE_ENV, Scheme, connect};

use crate::message::Message;

/// Metadata key carrying the reason a message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "x-wasmflo-reason";

/// Errors from a transport. Each names the queue or topic at fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The queue does not exist.
    #[error("no such queue '{0}'")]
    NoSuchQueue(String),
    /// The topic does not exist.
    #[error("no such topic '{0}'")]
    NoSuchTopic(String),
    /// The transport has shut down.
    #[error("transport is closed")]
    Closed,
    /// The broker URL is malformed or names an unknown scheme.
    #[error("invalid broker URL '{url}': {detail}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The broker could not be reached or refused the connection.
    #[error("cannot connect to broker {url}: {detail}")]
    Connect {
        /// The URL, without password.
        url: String,
        /// Why.
        detail: String,
    },
    /// The broker reported an error.
    #[error("broker error on '{name}': {detail}")]
    Broker {
        /// Queue or topic.
        name: String,
        /// What the broker said.
        detail: String,
    },
}

/// How a binding delivers: to every bound queue, or to one consumer of a shared queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindingKind {
    /// Every bound queue gets each message.
    PubSub,
    /// Consumers of the target share the messages; unacked ones go to the dead letter.
    RoundRobin,
}

/// A graph edge on the transport: messages published to `src` reach queue `tgt`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The outport topic.
    pub src: String,
    /// The inport queue.
    pub tgt: String,
    /// Delivery kind.
    pub kind: BindingKind,
}

/// A message moving between participants, on a transport with queues and topics.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + Debug + 'static {
    /// Short name for logs (`memory`, `mqtt`, `amqp`).
    fn kind(&self) -> &'static str;

    /// Declares inport queue `queue` (idempotent).
    async fn declare_queue(&self, queue: &str) -> Result<(), TransportError>;

    /// Declares a queue that only this connection uses (a workflow's reply queue): on
    /// AMQP exclusive and auto-deleted, so the broker removes it with the connection,
    /// even one that died; elsewhere the same as [`Transport::declare_queue`].
    async fn declare_private_queue(&self, queue: &str) -> Result<(), TransportError> {
        self.declare_queue(queue).await
    }

    /// Declares outport topic `topic` (idempotent).
    async fn declare_topic(&self, topic: &str) -> Result<(), TransportError>;

    /// Binds a topic to a queue (idempotent).
    async fn bind(&self, binding: &Binding) -> Result<(), TransportError>;

    /// Removes a binding; absent bindings are ignored.
    async fn unbind(&self, binding: &Binding) -> Result<(), TransportError>;

    /// Consumes queue `queue`. Several subscriptions to one queue share its messages.
    async fn subscribe(&self, queue: &str) -> Result<Subscription, TransportError>;

    /// A handle publishing to topic `topic`.
    async fn publisher(&self, topic: &str) -> Result<Publisher, TransportError>;

    /// Puts a message straight into queue `queue` (IIPs, `wasmflo send`).
    async fn send_to_queue(&self, queue: &str, msg: Message) -> Result<(), TransportError>;

    /// Messages published but not yet acked or nacked, when the transport can tell
    /// (the in-process one can; a broker keeps its queues durable instead).
    fn pending(&self) -> Option<u64> {
        None
    }

    /// Reads queue depths for the autoscaler; `None` when the transport cannot.
    fn backlog_reader(&self) -> Option<&dyn BacklogReader> {
        None
    }

    /// Publishes a MsgFlo discovery message (topic or queue `fbp`); resolves once the
    /// broker has accepted it. The in-process transport has no one to tell.
    async fn announce(&self, _discovery: Message) -> Result<(), TransportError> {
        Ok(())
    }

    /// Every MsgFlo discovery message from now on, for a coordinator: several
    /// coordinators each see all of them. The default consumes queue (or topic) `fbp`,
    /// which is a topic on MQTT; AMQP overrides it, since consumers of queue `fbp`
    /// would share its messages between them.
    async fn discoveries(&self) -> Result<Subscription, TransportError> {
        self.declare_queue("fbp").await?;
        self.subscribe("fbp").await
    }

    /// Replaces entry `key` of the broker's store of coordinator state (the binding
    /// lists `wasmflo bindings` reads, see [`crate::bindings`]); an empty message
    /// removes it. On AMQP an entry lives at most `ttl`. The in-process transport keeps
    /// none.
    async fn put_state(
        &self,
        _key: &str,
        _state: Message,
        _ttl: std::time::Duration,
    ) -> Result<(), TransportError> {
        Ok(())
    }

    /// Every entry of that store as `(key, state)`, oldest first.
    async fn read_states(&self) -> Result<Vec<(String, Message)>, TransportError> {
        Ok(Vec::new())
    }
}

/// Receives deliveries from one queue.
#[async_trait::async_trait]
pub trait DeliveryStream: Send {
    /// The next delivery; `None` once the transport is closed.
    async fn next(&mut self) -> Option<Delivery>;

    /// A handle taking deliveries that are already waiting, without awaiting, for
    /// transports that can (in-process queues); `None` otherwise. It consumes the same
    /// queue as [`DeliveryStream::next`], in the same order.
    fn poller(&self) -> Option<Box<dyn Poller>> {
        None
    }
}

/// Takes a waiting delivery synchronously; see [`DeliveryStream::poller`].
pub trait Poller: Send {
    /// The next waiting delivery, if one is waiting now.
    fn try_next(&mut self) -> Option<Delivery>;
}

/// A consumer of one queue.
pub struct Subscription {
    /// The queue consumed.
    pub queue: String,
    stream: Box<dyn DeliveryStream>,
}

impl Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Wraps a backend stream.
    pub fn new(queue: impl Into<String>, stream: Box<dyn DeliveryStream>) -> Self {
        Subscription {
            queue: queue.into(),
            stream,
        }
    }

    /// The next delivery.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.stream.next().await
    }

    /// A synchronous handle on deliveries already waiting, where the transport has one.
    pub fn poller(&self) -> Option<Box<dyn Poller>> {
        self.stream.poller()
    }
}

/// Publishes to one topic.
pub trait PublishSink: Send + Sync {
    /// Publishes `msg`; resolves once the transport has accepted it (broker confirm).
    fn publish(&self, msg: Message) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Publishes `msg` at once when the transport takes it without waiting (in-process),
    /// which spares a boxed future per message; `Err` hands `msg` back for
    /// [`PublishSink::publish`].
    fn publish_now(&self, msg: Message) -> Result<Result<(), TransportError>, Message> {
        Err(msg)
    }
}

/// A cheap, cloneable handle publishing to one topic.
#[derive(Clone)]
pub struct Publisher {
    /// The topic.
    pub topic: Arc<str>,
    sink: Arc<dyn PublishSink>,
}

impl Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Wraps a backend sink.
    pub fn new(topic: &str, sink: Arc<dyn PublishSink>) -> Self {
        Publisher {
            topic: Arc::from(topic),
            sink,
        }
    }

    /// Publishes `msg`.
    pub async fn publish(&self, msg: Message) -> Result<(), TransportError> {
        match self.sink.publish_now(msg) {
            Ok(published) => published,
            Err(msg) => self.sink.publish(msg).await,
        }
    }
}

/// Settles deliveries of one backend: ack, or dead-letter with a reason.
pub trait Settle: Send + Sync {
    /// The message `tag` was processed and its outputs published.
    fn ack(&self, tag: u64);
    /// The message failed: move it to the dead-letter queue with `reason`.
    fn nack(&self, tag: u64, msg: Message, reason: &str);
    /// The delivery was dropped unsettled (its participant stopped mid-way). A broker
    /// leaves it for redelivery; the in-process transport, which would lose it with the
    /// process, dead-letters it.
    fn release(&self, tag: u64, msg: Message) {
        self.nack(
            tag,
            msg,
            "dropped unsettled: the participant stopped while processing it",
        );
    }
}

/// One message taken from a queue, to be acked or nacked exactly once.
pub struct Delivery {
    /// The message.
    pub message: Message,
    settle: Option<(Arc<dyn Settle>, u64)>,
}

impl Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery settled through `settle` with backend tag `tag`.
    pub fn new(message: Message, settle: Arc<dyn Settle>, tag: u64) -> Self {
        Delivery {
            message,
            settle: Some((settle, tag)),
        }
    }

    /// Acks the delivery.
    pub fn ack(mut self) {
        if let Some((s, tag)) = self.settle.take() {
            s.ack(tag);
        }
    }

    /// Nacks the delivery, dead-lettering `msg` (usually the delivered message) with `reason`.
    pub fn nack(mut self, reason: &str) {
        if let Some((s, tag)) = self.settle.take() {
            let msg = std::mem::take(&mut self.message);
            s.nack(tag, msg, reason);
        }
    }
}

impl Drop for Delivery {
    /// A delivery dropped unsettled (its participant stopped mid-way) is released:
    /// see [`Settle::release`].
    fn drop(&mut self) {
        if let Some((s, tag)) = self.settle.take() {
            let msg = std::mem::take(&mut self.message);
            s.release(tag, msg);
        }
    }
}

/// Queue and topic names for MsgFlo's convention: `role.PORT` (port upper-cased).
pub fn queue_name(role: &str, port: &str) -> String {
    format!("{role}.{}", port.to_ascii_uppercase())
}
