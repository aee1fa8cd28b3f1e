//! The AMQP 0-9-1 transport (lapin), declaring exactly what msgflo-nodejs declares.
//!
//! - Inport queue `q`: a durable queue with argument `x-dead-letter-exchange: dead-<q>`,
//!   a durable fanout exchange also named `q` bound to it (so a sender may publish to
//!   either), and the dead-letter side: fanout exchange `dead-<q>` bound to durable
//!   queue `dead-<q>`. A queue already declared with other arguments (by msgflo-python,
//!   msgflo-cpp) is used as it is, with a warning.
//! - Outport topic `t`: a durable fanout exchange `t`. A pubsub binding binds queue
//!   `tgt` to exchange `src`; a roundrobin binding goes through direct exchange
//!   `out-<src>`, as `msgflo-setup` makes it.
//! - At least once: publishes use publisher confirms; consumers take `prefetch`
//!   deliveries at a time (URL `?prefetch=`, default 64). A participant's outputs resolve
//!   once handed to the channel, and its ack is sent only when every publish issued
//!   before it is confirmed (see `confirms.rs`); if one failed, the input is requeued.
//!   `send_to_queue`, discovery and dead letters wait for their own confirm.
//! - Nack: the message is published to exchange `dead-<q>` with headers
//!   `x-wasmflo-reason` and `x-wasmflo-queue`, the confirm awaited, then the delivery
//!   acked; if that publish fails it is rejected, and the broker dead-letters it through
//!   the queue's `x-dead-letter-exchange` (without the reason).
//! - A delivery dropped unsettled is requeued (`basic.nack` with requeue), and every
//!   unacked delivery returns to its queue when the connection closes.
//! - Discovery goes to queue `fbp` (declared durable without arguments, as
//!   msgflo-nodejs's `assertQueue('fbp')` does) through the default exchange.
//! - A message's content type travels as the `content_type` property (absent for JSON,
//!   as MsgFlo sends it) and its metadata as string headers. Every message is persistent
//!   (delivery mode 2), so the durable queues keep it across a broker restart.
//! - A lost connection is reopened by the transport itself, with every declaration,
//!   binding and consumer made again (`session.rs`); nothing is lost, what was in flight
//!   is redelivered.
//!
//! - Discovery for coordinators is relayed through fanout exchange `wasmflo.fbp`, so
//!   that several coordinators each see every discovery message (`discovery.rs`).
//!
//! Module map: `session` (the connection, its reconnection, publishing), `declare`
//! (declarations, remembered for the next connection), `consume` (consumers across
//! reconnections, settling deliveries), `discovery` (the relay).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};

use self::declare::Declared;
use self::session::{Connector, Session};
use super::url::BrokerUrl;
use super::{
    BacklogReader, Binding, PublishSink, Publisher, Subscription, Transport, TransportError,
};
use crate::message::{JSON, Message};

mod consume;
mod declare;
mod discovery;
mod session;

pub use discovery::DISCOVERY_FANOUT;

impl BacklogReader for AmqpTransport {
    fn waiting<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, TransportError>> {
        Box::pin(self.queue_depth(queue))
    }

    fn method(&self) -> &'static str {
        "passive queue.declare"
    }

    fn consumers<'a>(
        &'a self,
        queue: &'a str,
    ) -> BoxFuture<'a, Result<Option<u64>, TransportError>> {
        Box::pin(async move { Ok(Some(self.queue_counts(queue).await?.1)) })
    }
}

/// Header naming the queue a dead-lettered message was consumed from.
pub const DEAD_LETTER_QUEUE: &str = "x-wasmflo-queue";
/// MsgFlo's discovery queue.
const DISCOVERY_QUEUE: &str = "fbp";
/// Where coordinators keep their binding lists (see `crate::bindings`).
const STATE_QUEUE: &str = "wasmflo.bindings";
/// AMQP delivery mode of a message the broker writes to disk.
const PERSISTENT: u8 = 2;
/// Header naming a binding list's key.
const STATE_KEY: &str = "x-wasmflo-key";

/// A transport over one AMQP connection, reconnected when lost (see `session.rs`).
pub struct AmqpTransport {
    session: Arc<Session>,
    prefetch: u16,
    /// The channel backlog reads use (a passive declare of a missing queue closes it).
    inspecting: tokio::sync::Mutex<Option<Channel>>,
}

impl std::fmt::Debug for AmqpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpTransport")
            .field("url", &self.session.url)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

fn broker(name: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Broker {
        name: name.to_string(),
        detail: e.to_string(),
    }
}

fn precondition_failed(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)))
}

fn encode(part: &str) -> String {
    ::url::form_urlencoded::byte_serialize(part.as_bytes()).collect()
}

impl AmqpTransport {
    /// Connects to `url` and opens the publishing channel.
    pub async fn connect(url: &BrokerUrl) -> Result<Self, TransportError> {
        let redacted = url.redacted();
        let credentials = match (&url.user, &url.password) {
            (Some(u), Some(p)) => format!("{}:{}@", encode(u), encode(p)),
            (Some(u), None) => format!("{}@", encode(u)),
            _ => String::new(),
        };
        let mut uri = format!(
            "{}://{credentials}{}:{}/{}",
            if url.tls { "amqps" } else { "amqp" },
            url.host,
            url.port,
            encode(&url.vhost)
        );
        if !url.extra.is_empty() {
            let query: Vec<String> = url
                .extra
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            uri.push('?');
            uri.push_str(&query.join("&"));
        }
        if url.tls {
            let config = super::tls::client_config(url.ca_file.as_deref(), &redacted)?;
            super::tls::check_handshake(&url.host, url.port, config, &redacted).await?;
        }
        let ca_pem = match &url.ca_file {
            // Checked here so that a bad file is named, not a failed handshake.
            Some(path) if url.tls => {
                super::tls::ca_certificates(path, &redacted)?;
                Some(
                    std::fs::read_to_string(path).map_err(|e| TransportError::Connect {
                        url: redacted.clone(),
                        detail: format!("CA file {}: {e}", path.display()),
                    })?,
                )
            }
            _ => None,
        };
        let session = Session::connect(redacted, Connector { uri, ca_pem }).await?;
        tracing::debug!(url = %session.url, "connected to AMQP broker");
        Ok(AmqpTransport {
            session,
            prefetch: url.prefetch,
            inspecting: tokio::sync::Mutex::new(None),
        })
    }

    /// Ready messages in `queue`, by a passive `queue.declare` (`message_count`): exact
    /// now, unlike the management API's statistics, which lag by seconds.
    pub async fn queue_depth(&self, queue: &str) -> Result<u64, TransportError> {
        Ok(self.queue_counts(queue).await?.0)
    }

    /// Ready messages and consumers of `queue`, by a passive `queue.declare`.
    pub async fn queue_counts(&self, queue: &str) -> Result<(u64, u64), TransportError> {
        let mut slot = self.inspecting.lock().await;
        let channel = match slot.as_ref().filter(|c| c.status().connected()) {
            Some(c) => c.clone(),
            None => {
                let c = self.session.channel(queue).await?;
                *slot = Some(c.clone());
                c
            }
        };
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
        {
            Ok(q) => Ok((u64::from(q.message_count()), u64::from(q.consumer_count()))),
            Err(e) => {
                *slot = None;
                Err(self.session.failed(queue, e))
            }
        }
    }
}

/// AMQP properties carrying a message's content type and metadata.
fn properties(msg: &Message) -> BasicProperties {
    // Persistent (delivery mode 2): a durable queue keeps only persistent messages
    // across a broker restart, and a confirm then means the message is on disk.
    let mut p = BasicProperties::default().with_delivery_mode(PERSISTENT);
    if !msg.content_type.is_empty() && msg.content_type != JSON {
        p = p.with_content_type(msg.content_type.as_str().into());
    }
    if !msg.metadata.is_empty() {
        let mut headers = FieldTable::default();
        for (k, v) in &msg.metadata {
            headers.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
        }
        p = p.with_headers(headers);
    }
    p
}

/// The message an AMQP delivery carries.
fn message(data: Vec<u8>, props: &BasicProperties) -> Message {
    let mut msg = Message::json_text(data);
    if let Some(ct) = props.content_type()
        && ct.as_str() != JSON
    {
        msg.content_type = ct.as_str().to_string();
    }
    if let Some(headers) = props.headers() {
        for (k, v) in headers.inner() {
            let text = match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.as_str().to_string(),
                AMQPValue::Boolean(b) => b.to_string(),
                AMQPValue::LongInt(n) => n.to_string(),
                AMQPValue::LongLongInt(n) => n.to_string(),
                _ => continue,
            };
            msg.metadata.push((k.as_str().to_string(), text));
        }
    }
    msg
}

#[async_trait::async_trait]
impl Transport for AmqpTransport {
    fn kind(&self) -> &'static str {
        "amqp"
    }

    fn backlog_reader(&self) -> Option<&dyn BacklogReader> {
        Some(self)
    }

    async fn declare_queue(&self, queue: &str) -> Result<(), TransportError> {
        self.session
            .declare(Declared::Queue(queue.to_string()))
            .await
    }

    async fn declare_private_queue(&self, queue: &str) -> Result<(), TransportError> {
        self.session
            .declare(Declared::PrivateQueue(queue.to_string()))
            .await
    }

    async fn declare_topic(&self, topic: &str) -> Result<(), TransportError> {
        self.session
            .declare(Declared::Topic(topic.to_string()))
            .await
    }

    async fn bind(&self, binding: &Binding) -> Result<(), TransportError> {
        self.session
            .declare(Declared::Binding(binding.clone()))
            .await
    }

    async fn unbind(&self, binding: &Binding) -> Result<(), TransportError> {
        self.session.unbind(binding).await
    }

    async fn subscribe(&self, queue: &str) -> Result<Subscription, TransportError> {
        consume::subscribe(&self.session, queue, self.prefetch).await
    }

    async fn publisher(&self, topic: &str) -> Result<Publisher, TransportError> {
        Ok(Publisher::new(
            topic,
            Arc::new(AmqpSink {
                exchange: topic.to_string(),
                session: self.session.clone(),
            }),
        ))
    }

    async fn send_to_queue(&self, queue: &str, msg: Message) -> Result<(), TransportError> {
        self.session.publish("", queue, &msg).await
    }

    async fn discoveries(&self) -> Result<Subscription, TransportError> {
        discovery::discoveries(self).await
    }

    async fn put_state(
        &self,
        key: &str,
        state: Message,
        ttl: std::time::Duration,
    ) -> Result<(), TransportError> {
        self.session.declare_state().await?;
        let mut headers = FieldTable::default();
        headers.insert(STATE_KEY.into(), AMQPValue::LongString(key.into()));
        let props = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_headers(headers)
            .with_expiration(ttl.as_millis().to_string().into());
        self.session
            .publish_with("", STATE_QUEUE, &state.data, props)
            .await
    }

    async fn read_states(&self) -> Result<Vec<(String, Message)>, TransportError> {
        self.session.declare_state().await?;
        // Taken unacked and given back when the channel closes: readers change nothing.
        let channel = self.session.channel(STATE_QUEUE).await?;
        let mut out = Vec::new();
        let options = BasicGetOptions { no_ack: false };
        while let Some(m) = channel
            .basic_get(STATE_QUEUE.into(), options)
            .await
            .map_err(|e| self.session.failed(STATE_QUEUE, e))?
        {
            let msg = message(m.delivery.data, &m.delivery.properties);
            let key = msg.meta(STATE_KEY).unwrap_or_default().to_string();
            out.push((key, msg));
        }
        let _ = channel.close(200, "read".into()).await;
        Ok(out)
    }

    async fn announce(&self, discovery: Message) -> Result<(), TransportError> {
        if !self
            .session
            .fbp_declared
            .load(std::sync::atomic::Ordering::Acquire)
        {
            self.session.declare_discovery().await?;
        }
        self.session.publish("", DISCOVERY_QUEUE, &discovery).await
    }
}

struct AmqpSink {
    exchange: String,
    session: Arc<Session>,
}

impl PublishSink for AmqpSink {
    fn publish(&self, msg: Message) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move { self.session.publish_deferred(&self.exchange, &msg).await })
    }
}
