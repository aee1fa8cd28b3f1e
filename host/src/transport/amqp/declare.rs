//! Declarations and bindings, made as msgflo-nodejs makes them and remembered so that a
//! new connection can make them again (see `session.rs`).

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::super::{Binding, BindingKind, TransportError};
use super::session::{Session, lock};
use super::{DISCOVERY_QUEUE, STATE_QUEUE, precondition_failed};

/// Something declared on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Declared {
    /// An inport queue with its exchange and dead-letter side.
    Queue(String),
    /// An exclusive, auto-delete queue: gone with the connection that declared it.
    PrivateQueue(String),
    /// An outport's fanout exchange.
    Topic(String),
    /// A graph edge.
    Binding(Binding),
}

impl std::fmt::Display for Declared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Declared::Queue(q) => write!(f, "queue '{q}'"),
            Declared::PrivateQueue(q) => write!(f, "private queue '{q}'"),
            Declared::Topic(t) => write!(f, "exchange '{t}'"),
            Declared::Binding(b) => write!(f, "binding '{}' -> '{}'", b.src, b.tgt),
        }
    }
}

impl Session {
    /// Declares `d` and remembers it for the next connection.
    pub async fn declare(&self, d: Declared) -> Result<(), TransportError> {
        self.perform(&d).await?;
        let mut declared = lock(&self.declared);
        if !declared.contains(&d) {
            declared.push(d);
        }
        Ok(())
    }

    /// Removes a binding, and forgets it.
    pub async fn unbind(&self, binding: &Binding) -> Result<(), TransportError> {
        lock(&self.declared).retain(|d| *d != Declared::Binding(binding.clone()));
        let channel = self.channel(&binding.tgt).await?;
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
            .map_err(|e| self.failed(&binding.tgt, e))?;
        let _ = channel.close(200, "unbound".into()).await;
        Ok(())
    }

    /// Declares `d` on the current connection, on a short-lived channel (a refused
    /// declaration closes its channel).
    pub(super) async fn perform(&self, d: &Declared) -> Result<(), TransportError> {
        match d {
            Declared::Queue(q) if q == DISCOVERY_QUEUE => self.declare_discovery().await,
            Declared::Queue(q) => self.declare_queue(q).await,
            Declared::PrivateQueue(q) => {
                let channel = self.channel(q).await?;
                let options = QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                };
                channel
                    .queue_declare(q.as_str().into(), options, FieldTable::default())
                    .await
                    .map_err(|e| self.failed(q, e))?;
                let _ = channel.close(200, "declared".into()).await;
                Ok(())
            }
            Declared::Topic(t) => {
                let channel = self.channel(t).await?;
                self.fanout(&channel, t).await?;
                let _ = channel.close(200, "declared".into()).await;
                Ok(())
            }
            Declared::Binding(b) => self.bind(b).await,
        }
    }

    async fn declare_queue(&self, queue: &str) -> Result<(), TransportError> {
        let dead = format!("dead-{queue}");
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dead.as_str().into()),
        );
        let channel = self.channel(queue).await?;
        let channel = self.queue(channel, queue, arguments).await?;
        self.fanout(&channel, queue).await?;
        self.bind_queue(&channel, queue, queue).await?;
        self.fanout(&channel, &dead).await?;
        let channel = self.queue(channel, &dead, FieldTable::default()).await?;
        self.bind_queue(&channel, &dead, &dead).await?;
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    async fn bind(&self, binding: &Binding) -> Result<(), TransportError> {
        let channel = self.channel(&binding.tgt).await?;
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
                    .map_err(|e| self.failed(&direct, e))?;
                channel
                    .exchange_bind(
                        direct.as_str().into(),
                        binding.src.as_str().into(),
                        "".into(),
                        ExchangeBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| self.failed(&direct, e))?;
                self.bind_queue(&channel, &binding.tgt, &direct).await?;
            }
        }
        let _ = channel.close(200, "bound".into()).await;
        Ok(())
    }

    /// Declares `fbp` as msgflo-nodejs does: durable, no arguments.
    pub async fn declare_discovery(&self) -> Result<(), TransportError> {
        let channel = self.channel(DISCOVERY_QUEUE).await?;
        let channel = self
            .queue(channel, DISCOVERY_QUEUE, FieldTable::default())
            .await?;
        let _ = channel.close(200, "declared".into()).await;
        self.fbp_declared
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Declares the binding-list queue: durable, no arguments.
    pub async fn declare_state(&self) -> Result<(), TransportError> {
        let channel = self.channel(STATE_QUEUE).await?;
        let channel = self
            .queue(channel, STATE_QUEUE, FieldTable::default())
            .await?;
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
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
                self.channel(queue).await
            }
            Err(e) => Err(self.failed(queue, e)),
        }
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
            .map_err(|e| self.failed(exchange, e))
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
            .map_err(|e| self.failed(queue, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_name_what_they_declare() {
        let b = Binding {
            src: "a.OUT".into(),
            tgt: "b.IN".into(),
            kind: BindingKind::PubSub,
        };
        assert_eq!(
            Declared::Binding(b).to_string(),
            "binding 'a.OUT' -> 'b.IN'"
        );
        assert_eq!(Declared::Queue("q".into()).to_string(), "queue 'q'");
    }
}
