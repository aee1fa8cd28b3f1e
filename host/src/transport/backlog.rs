//! Backlog readers: how many messages wait in an inport queue, per transport.
//!
//! The autoscaler adds the messages its instances hold in flight (counted by the host) to
//! what a reader reports, so a backlog is "waiting or in flight", as the policies expect.
//!
//! | transport | reads | limits |
//! | --- | --- | --- |
//! | in-process | the queue's channel length | exact |
//! | AMQP | `message_count` of a passive `queue.declare` | ready messages only: deliveries prefetched by a consumer but not started are in neither count, so run scaled roles with a small `prefetch` (e.g. `?prefetch=1`); the management API's statistics would lag by seconds |
//! | MQTT | messages the broker delivered to this connection that no instance took yet | MQTT has no queue depth: what the broker still holds (beyond its in-flight window, 20 on Mosquitto by default, and for other clients) is invisible, so the count saturates near that window; the arrival rate, measured from completions, still drives the deadline policy |

use futures_util::future::BoxFuture;

use super::TransportError;

/// Reads the depth of a transport's queues.
pub trait BacklogReader: Send + Sync {
    /// Messages waiting in `queue` that no consumer of this host has started.
    fn waiting<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, TransportError>>;

    /// How the count is obtained, for logs (`queue length`, `passive queue.declare`, ...).
    fn method(&self) -> &'static str;

    /// Consumers of `queue`, external workers included, where the transport can tell
    /// (AMQP); `None` elsewhere. Measures the start time of externally scaled roles.
    fn consumers<'a>(
        &'a self,
        _queue: &'a str,
    ) -> BoxFuture<'a, Result<Option<u64>, TransportError>> {
        Box::pin(async { Ok(None) })
    }
}
