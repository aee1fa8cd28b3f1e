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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeBindOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::mpsc;

use super::confirms::{AckGate, Confirms};
use super::url::BrokerUrl;
use super::{
    BacklogReader, Binding, BindingKind, DEAD_LETTER_REASON, Delivery, DeliveryStream, PublishSink,
    Publisher, Settle, Subscription, Transport, TransportError,
};
use crate::message::{JSON, Message};

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

/// A transport over one AMQP connection.
pub struct AmqpTransport {
    url: String,
    conn: Connection,
    publishing: Arc<Publishing>,
    prefetch: u16,
    fbp_declared: AtomicBool,
    /// The channel backlog reads use (a passive declare of a missing queue closes it).
    inspecting: tokio::sync::Mutex<Option<Channel>>,
}

impl std::fmt::Debug for AmqpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpTransport")
            .field("url", &self.url)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

/// The channel everything is published on, in confirm mode.
struct Publishing {
    channel: Channel,
    confirms: Confirms,
    /// Confirms of deferred publishes, awaited in order by a tracker task.
    tracker: mpsc::UnboundedSender<(u64, lapin::PublisherConfirm, tokio::time::Instant)>,
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
        let connect_error = |e: lapin::Error| TransportError::Connect {
            url: redacted.clone(),
            detail: e.to_string(),
        };
        let properties = ConnectionProperties::default()
            .with_connection_name("wasmflo".into())
            .enable_auto_recover()
            .configure_backoff(|b| b.with_max_times(30));
        if url.tls {
            let config = super::tls::client_config(url.ca_file.as_deref(), &redacted)?;
            super::tls::check_handshake(&url.host, url.port, config, &redacted).await?;
        }
        let tls = match &url.ca_file {
            // Checked here so that a bad file is named, not a failed handshake.
            Some(path) if url.tls => {
                super::tls::ca_certificates(path, &redacted)?;
                let pem = std::fs::read_to_string(path).map_err(|e| TransportError::Connect {
                    url: redacted.clone(),
                    detail: format!("CA file {}: {e}", path.display()),
                })?;
                lapin::tcp::OwnedTLSConfig {
                    identity: None,
                    cert_chain: Some(pem),
                }
            }
            _ => lapin::tcp::OwnedTLSConfig::default(),
        };
        let runtime = lapin::runtime::default_runtime().map_err(connect_error)?;
        let conn = Connection::connect_with_config(&uri, properties, tls, runtime)
            .await
            .map_err(connect_error)?;
        let channel = conn.create_channel().await.map_err(connect_error)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(connect_error)?;
        tracing::debug!(url = %redacted, "connected to AMQP broker");
        let (tracker, confirms) = mpsc::unbounded_channel();
        let publishing = Arc::new(Publishing {
            channel,
            confirms: Confirms::new(),
            tracker,
        });
        tokio::spawn(track(confirms, Arc::downgrade(&publishing)));
        Ok(AmqpTransport {
            url: redacted,
            conn,
            publishing,
            prefetch: url.prefetch,
            fbp_declared: AtomicBool::new(false),
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
                let c = self.declaring(queue).await?;
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
                Err(broker(queue, e))
            }
        }
    }

    /// A short-lived channel for declarations: a refused declaration closes its channel.
    async fn declaring(&self, name: &str) -> Result<Channel, TransportError> {
        self.conn
            .create_channel()
            .await
            .map_err(|e| broker(name, e))
    }

    /// Declares a durable queue; one that exists with other arguments is kept, with a
    /// warning. Returns the channel to go on with (a fresh one after a refusal).
    async fn queue(
        &self,
        channel: Channel,
        queue: &str,
        arguments: FieldTable,
    ) -> Result<Channel, TransportError> {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(queue.into(), options, arguments)
            .await
        {
            Ok(_) => Ok(channel),
            Err(e) if precondition_failed(&e) => {
                tracing::warn!(
                    "queue '{queue}' exists with other arguments (declared by another MsgFlo \
                     library?); using it as it is"
                );
                self.declaring(queue).await
            }
            Err(e) => Err(broker(queue, e)),
        }
    }

    /// Declares `fbp` as msgflo-nodejs does: durable, no arguments.
    async fn declare_discovery(&self) -> Result<(), TransportError> {
        let channel = self.declaring(DISCOVERY_QUEUE).await?;
        let channel = self
            .queue(channel, DISCOVERY_QUEUE, FieldTable::default())
            .await?;
        let _ = channel.close(200, "declared".into()).await;
        self.fbp_declared.store(true, Ordering::Release);
        Ok(())
    }

    /// Declares the binding-list queue: durable, no arguments.
    async fn declare_state(&self) -> Result<(), TransportError> {
        let channel = self.declaring(STATE_QUEUE).await?;
        let channel = self
            .queue(channel, STATE_QUEUE, FieldTable::default())
            .await?;
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    async fn fanout(&self, channel: &Channel, exchange: &str) -> Result<(), TransportError> {
        let options = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Fanout,
                options,
                FieldTable::default(),
            )
            .await
            .map_err(|e| broker(exchange, e))
    }

    async fn bind_queue(
        &self,
        channel: &Channel,
        queue: &str,
        exchange: &str,
    ) -> Result<(), TransportError> {
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| broker(queue, e))
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

/// How long a publish may wait for its confirm before it counts as failed.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Settles deferred publishes as their confirms arrive.
async fn track(
    mut rx: mpsc::UnboundedReceiver<(u64, lapin::PublisherConfirm, tokio::time::Instant)>,
    publishing: std::sync::Weak<Publishing>,
) {
    while let Some((seq, confirm, published)) = rx.recv().await {
        // A publish of a connection that lapin has since recovered may never see its
        // confirm; waiting for it would hold every later ack (and, through the prefetch
        // window, the consumer). Unconfirmed in time counts as failed: the input is put
        // back and redelivered (at least once).
        let ok = matches!(
            tokio::time::timeout_at(published + CONFIRM_TIMEOUT, confirm).await,
            Ok(Ok(c)) if c.is_ack()
        );
        let Some(p) = publishing.upgrade() else {
            return;
        };
        p.confirms.end(seq, ok);
    }
}

impl Publishing {
    /// Publishes without waiting for the confirm: [`Publishing::confirms`] tracks it.
    async fn publish_deferred(&self, exchange: &str, msg: &Message) -> Result<(), TransportError> {
        let seq = self.confirms.begin();
        let published = self
            .channel
            .basic_publish(
                exchange.into(),
                "".into(),
                BasicPublishOptions::default(),
                &msg.data,
                properties(msg),
            )
            .await;
        match published {
            Ok(confirm) => {
                let now = tokio::time::Instant::now();
                if self.tracker.send((seq, confirm, now)).is_err() {
                    self.confirms.end(seq, false);
                }
                Ok(())
            }
            Err(e) => {
                self.confirms.end(seq, false);
                Err(broker(exchange, e))
            }
        }
    }

    /// Publishes and waits for the broker's confirm.
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        msg: &Message,
    ) -> Result<(), TransportError> {
        let name = if exchange.is_empty() {
            routing_key
        } else {
            exchange
        };
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &msg.data,
                properties(msg),
            )
            .await
            .map_err(|e| broker(name, e))?
            .await
            .map_err(|e| broker(name, e))?;
        if confirm.is_nack() {
            return Err(broker(name, "the broker refused the message (nack)"));
        }
        Ok(())
    }
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
        if queue == DISCOVERY_QUEUE {
            return self.declare_discovery().await;
        }
        let dead = format!("dead-{queue}");
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dead.as_str().into()),
        );
        let channel = self.declaring(queue).await?;
        let channel = self.queue(channel, queue, arguments).await?;
        self.fanout(&channel, queue).await?;
        self.bind_queue(&channel, queue, queue).await?;
        self.fanout(&channel, &dead).await?;
        let channel = self.queue(channel, &dead, FieldTable::default()).await?;
        self.bind_queue(&channel, &dead, &dead).await?;
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    async fn declare_private_queue(&self, queue: &str) -> Result<(), TransportError> {
        let channel = self.declaring(queue).await?;
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .map_err(|e| broker(queue, e))?;
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    async fn declare_topic(&self, topic: &str) -> Result<(), TransportError> {
        let channel = self.declaring(topic).await?;
        self.fanout(&channel, topic).await?;
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    async fn bind(&self, binding: &Binding) -> Result<(), TransportError> {
        let channel = self.declaring(&binding.tgt).await?;
        match binding.kind {
            BindingKind::PubSub => {
                self.bind_queue(&channel, &binding.tgt, &binding.src)
                    .await?
            }
            BindingKind::RoundRobin => {
                let direct = format!("out-{}", binding.src);
                channel
                    .exchange_declare(
                        direct.as_str().into(),
                        ExchangeKind::Direct,
                        ExchangeDeclareOptions {
                            durable: true,
                            ..ExchangeDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| broker(&direct, e))?;
                channel
                    .exchange_bind(
                        direct.as_str().into(),
                        binding.src.as_str().into(),
                        "".into(),
                        ExchangeBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| broker(&direct, e))?;
                self.bind_queue(&channel, &binding.tgt, &direct).await?;
            }
        }
        let _ = channel.close(200, "bound".into()).await;
        Ok(())
    }

    async fn unbind(&self, binding: &Binding) -> Result<(), TransportError> {
        let channel = self.declaring(&binding.tgt).await?;
        let exchange = match binding.kind {
            BindingKind::PubSub => binding.src.clone(),
            BindingKind::RoundRobin => format!("out-{}", binding.src),
        };
        channel
            .queue_unbind(
                binding.tgt.as_str().into(),
                exchange.as_str().into(),
                "".into(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| broker(&binding.tgt, e))?;
        let _ = channel.close(200, "unbound".into()).await;
        Ok(())
    }

    async fn subscribe(&self, queue: &str) -> Result<Subscription, TransportError> {
        let channel = self
            .conn
            .create_channel()
            .await
            .map_err(|e| broker(queue, e))?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| broker(queue, e))?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| broker(queue, e))?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(settle_loop(
            rx,
            channel,
            self.publishing.clone(),
            queue.to_string(),
        ));
        let settle = Arc::new(AmqpSettle {
            tx,
            publishing: self.publishing.clone(),
            ackers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        Ok(Subscription::new(
            queue,
            Box::new(AmqpStream {
                queue: queue.to_string(),
                consumer,
                settle,
            }),
        ))
    }

    async fn publisher(&self, topic: &str) -> Result<Publisher, TransportError> {
        Ok(Publisher::new(
            topic,
            Arc::new(AmqpSink {
                exchange: topic.to_string(),
                publishing: self.publishing.clone(),
            }),
        ))
    }

    async fn send_to_queue(&self, queue: &str, msg: Message) -> Result<(), TransportError> {
        self.publishing.publish("", queue, &msg).await
    }

    async fn put_state(
        &self,
        key: &str,
        state: Message,
        ttl: std::time::Duration,
    ) -> Result<(), TransportError> {
        self.declare_state().await?;
        let mut headers = FieldTable::default();
        headers.insert(STATE_KEY.into(), AMQPValue::LongString(key.into()));
        let props = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_headers(headers)
            .with_expiration(ttl.as_millis().to_string().into());
        let confirm = self
            .publishing
            .channel
            .basic_publish(
                "".into(),
                STATE_QUEUE.into(),
                BasicPublishOptions::default(),
                &state.data,
                props,
            )
            .await
            .map_err(|e| broker(STATE_QUEUE, e))?
            .await
            .map_err(|e| broker(STATE_QUEUE, e))?;
        if confirm.is_nack() {
            return Err(broker(STATE_QUEUE, "the broker refused the message (nack)"));
        }
        Ok(())
    }

    async fn read_states(&self) -> Result<Vec<(String, Message)>, TransportError> {
        self.declare_state().await?;
        // Taken unacked and given back when the channel closes: readers change nothing.
        let channel = self.declaring(STATE_QUEUE).await?;
        let mut out = Vec::new();
        let options = BasicGetOptions { no_ack: false };
        while let Some(m) = channel
            .basic_get(STATE_QUEUE.into(), options)
            .await
            .map_err(|e| broker(STATE_QUEUE, e))?
        {
            let msg = message(m.delivery.data, &m.delivery.properties);
            let key = msg.meta(STATE_KEY).unwrap_or_default().to_string();
            out.push((key, msg));
        }
        let _ = channel.close(200, "read".into()).await;
        Ok(out)
    }

    async fn announce(&self, discovery: Message) -> Result<(), TransportError> {
        if !self.fbp_declared.load(Ordering::Acquire) {
            self.declare_discovery().await?;
        }
        self.publishing
            .publish("", DISCOVERY_QUEUE, &discovery)
            .await
    }
}

/// What to do with one delivery. Deliveries are settled through their own lapin
/// `Acker`, never by tag on the channel: after lapin recovers a connection the channel's
/// delivery tags start again, so an ack by tag for a delivery of the old connection would
/// settle a different, unprocessed message of the new one and lose it. An old
/// connection's ackers are poisoned instead, and settling them does nothing (the broker
/// has already put those messages back).
enum SettleOp {
    /// Ack once every publish up to the second number is confirmed.
    Ack(Acker, u64),
    Nack(Acker, Message, String),
    Release(Acker),
}

/// Settles one consumer's deliveries in order; a nack waits for its dead-letter
/// publish to be confirmed before acking.
async fn settle_loop(
    mut rx: mpsc::UnboundedReceiver<SettleOp>,
    channel: Channel,
    publishing: Arc<Publishing>,
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
                if gate.pass(&publishing.confirms, upto).await {
                    acker.ack(BasicAckOptions::default()).await
                } else {
                    tracing::warn!("an output of a '{queue}' message was not confirmed; requeued");
                    acker.nack(requeue).await
                }
            }
            SettleOp::Release(acker) => acker.nack(requeue).await,
            SettleOp::Nack(acker, mut msg, reason) => {
                msg.set_meta(DEAD_LETTER_REASON, reason);
                msg.set_meta(DEAD_LETTER_QUEUE, queue.as_str());
                if !acker.usable() {
                    // From a connection that is gone: the broker redelivers it.
                    continue;
                }
                match publishing.publish(&dead, "", &msg).await {
                    Ok(()) => acker.ack(BasicAckOptions::default()).await,
                    Err(e) => {
                        tracing::error!("dead-lettering to {dead}: {e}; rejecting instead");
                        acker.nack(BasicNackOptions::default()).await
                    }
                }
            }
        };
        match result {
            Ok(true) => {}
            // A delivery of a connection lost since: the broker has put it back.
            Ok(false) => {
                tracing::debug!("a '{queue}' delivery from a lost connection; redelivered")
            }
            // The channel is gone: its unacked deliveries return to the queue.
            Err(e) => tracing::warn!("settling a delivery of '{queue}': {e}"),
        }
    }
    let _ = channel.close(200, "done".into()).await;
}

struct AmqpStream {
    queue: String,
    consumer: lapin::Consumer,
    settle: Arc<AmqpSettle>,
}

#[async_trait::async_trait]
impl DeliveryStream for AmqpStream {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            match self.consumer.next().await? {
                Ok(d) => {
                    let msg = message(d.data, &d.properties);
                    let id = self.settle.remember(d.acker);
                    return Some(Delivery::new(msg, self.settle.clone(), id));
                }
                Err(e) => tracing::warn!("consuming '{}': {e}", self.queue),
            }
        }
    }
}

struct AmqpSettle {
    tx: mpsc::UnboundedSender<SettleOp>,
    publishing: Arc<Publishing>,
    /// The ackers of unsettled deliveries, by an id of ours that, unlike the
    /// channel's delivery tags, never repeats across connection recoveries.
    ackers: Mutex<HashMap<u64, Acker>>,
    next_id: AtomicU64,
}

impl AmqpSettle {
    fn remember(&self, acker: Acker) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.ackers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, acker);
        id
    }

    fn take(&self, id: u64) -> Option<Acker> {
        self.ackers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id)
    }
}

impl Settle for AmqpSettle {
    fn ack(&self, tag: u64) {
        let upto = self.publishing.confirms.issued();
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

struct AmqpSink {
    exchange: String,
    publishing: Arc<Publishing>,
}

impl PublishSink for AmqpSink {
    fn publish(&self, msg: Message) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move { self.publishing.publish_deferred(&self.exchange, &msg).await })
    }
}
