//! Discovery for several coordinators on one broker.
//!
//! MsgFlo participants send their discovery messages to queue `fbp`, and consumers of
//! one queue share its messages: two coordinators consuming `fbp` would each see only
//! some of them. So each wasmflo coordinator *relays* what it takes from `fbp` to the
//! fanout exchange `wasmflo.fbp` (the publish confirmed, then the message acked) and
//! reads its own exclusive queue bound to that exchange. Every message is taken from
//! `fbp` by one relay, published once, and seen by every wasmflo coordinator. A MsgFlo
//! (Node.js) coordinator on the same broker still competes for `fbp`, as it always has.

use std::sync::Arc;
use std::time::Duration;

use super::super::{
    Binding, BindingKind, Delivery, DeliveryStream, Subscription, Transport, TransportError,
};
use super::session::Session;
use super::{AmqpTransport, DISCOVERY_QUEUE};

/// The fanout exchange every relay publishes to.
pub const DISCOVERY_FANOUT: &str = "wasmflo.fbp";

/// How long a relay waits before taking a message again after failing to pass it on.
const RELAY_RETRY: Duration = Duration::from_millis(200);

/// Every discovery message from now on (see the module docs).
pub(super) async fn discoveries(t: &AmqpTransport) -> Result<Subscription, TransportError> {
    t.declare_queue(DISCOVERY_QUEUE).await?;
    t.declare_topic(DISCOVERY_FANOUT).await?;
    let own = format!("{DISCOVERY_FANOUT}.{}", crate::discovery::random_suffix());
    t.declare_private_queue(&own).await?;
    t.bind(&Binding {
        src: DISCOVERY_FANOUT.to_string(),
        tgt: own.clone(),
        kind: BindingKind::PubSub,
    })
    .await?;
    let mine = t.subscribe(&own).await?;
    let shared = t.subscribe(DISCOVERY_QUEUE).await?;
    let relay = tokio::spawn(relay(shared, t.session.clone()));
    Ok(Subscription::new(own, Box::new(Relayed { mine, relay })))
}

/// Passes every message of `fbp` on to the fanout exchange.
async fn relay(mut shared: Subscription, session: Arc<Session>) {
    while let Some(d) = shared.next().await {
        match session.publish(DISCOVERY_FANOUT, "", &d.message).await {
            Ok(()) => d.ack(),
            Err(e) => {
                tracing::warn!(
                    "relaying a discovery message: {e}; it stays in '{DISCOVERY_QUEUE}'"
                );
                drop(d);
                tokio::time::sleep(RELAY_RETRY).await;
            }
        }
    }
}

/// The coordinator's own queue; the relay stops with it.
struct Relayed {
    mine: Subscription,
    relay: tokio::task::JoinHandle<()>,
}

impl Drop for Relayed {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

#[async_trait::async_trait]
impl DeliveryStream for Relayed {
    async fn next(&mut self) -> Option<Delivery> {
        self.mine.next().await
    }
}
