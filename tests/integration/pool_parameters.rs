//! Parameters reach every instance of a pool: a parameter message taken by one instance
//! is applied by all of them before their next message, and by instances started later
//! (in-process and on RabbitMQ).

use std::sync::Arc;
use std::time::Duration;

use wasmflo_host::component::Resolver;
use wasmflo_host::message::Message;
use wasmflo_host::network::{Network, Source};
use wasmflo_host::transport::{Binding, BindingKind, Subscription, Transport};

use crate::brokers::{AMQP, broker, client, role};
use crate::support::{DEADLINE, fbp, loader, start, test_components};

/// The next reply on `sub`, as JSON.
async fn reply(sub: &mut Subscription) -> serde_json::Value {
    let d = tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("a reply within the deadline")
        .expect("probe open");
    let v = serde_json::from_slice(&d.message.data).expect("JSON reply");
    d.ack();
    v
}

/// Sends echoes until one comes back with `param` (the instance that took the parameter
/// message has applied it).
async fn until_param(sub: &mut Subscription, transport: &Arc<dyn Transport>, w: &str, param: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for k in 0u64.. {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reply carried parameter {param}"
        );
        transport
            .send_to_queue(
                &format!("{w}.IN"),
                Message::json(&serde_json::json!({"probe": k})),
            )
            .await
            .expect("send");
        let v = reply(sub).await;
        assert_eq!(v["echo"]["probe"], k, "{v}");
        if v["param"] == param {
            return;
        }
    }
}

async fn parameters_reach_every_instance(
    network: &Network,
    transport: &Arc<dyn Transport>,
    w: &str,
) {
    let probe = format!("probe-{w}.OUT");
    transport
        .declare_queue(&probe)
        .await
        .expect("declare probe");
    transport
        .bind(&Binding {
            src: format!("{w}.OUT"),
            tgt: probe.clone(),
            kind: BindingKind::PubSub,
        })
        .await
        .expect("bind probe");
    let mut sub = transport.subscribe(&probe).await.expect("subscribe probe");
    let pool = network.pool(w).expect("pool");
    assert_eq!(pool.instances().await, 3, "min=3 in the node metadata");
    const N: u64 = 90;
    for (round, param) in ["first", "second"].into_iter().enumerate() {
        transport
            .send_to_queue(
                &format!("{w}.PARAM"),
                Message::json(&serde_json::json!(param)),
            )
            .await
            .expect("send parameter");
        until_param(&mut sub, transport, w, param).await;
        for i in 0..N {
            transport
                .send_to_queue(
                    &format!("{w}.IN"),
                    Message::json(&serde_json::json!({"n": i, "busy": 100_000})),
                )
                .await
                .expect("send");
        }
        for _ in 0..N {
            let v = reply(&mut sub).await;
            assert_eq!(
                v["param"], param,
                "round {round}: every instance has it: {v}"
            );
        }
        if round == 0 {
            // Instances started later: they start with the first value, then must take
            // the second from whichever instance receives it.
            assert_eq!(pool.resize(5).await.expect("resize"), 5);
        }
    }
    let serving = network.metrics().role(w).serving();
    assert!(serving > 1, "more than one instance served ({serving} did)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_reaches_every_instance_in_process() {
    let graph = fbp("w(test/Hostile:min=3,max=5)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    let transport: Arc<dyn Transport> = running.transport.clone();
    let network = running.network.as_ref().expect("network");
    parameters_reach_every_instance(network, &transport, "w").await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_reaches_every_instance_on_rabbitmq() {
    let Some(url) = broker(AMQP) else {
        return;
    };
    let transport = client(url).await;
    let w = role("params");
    let graph = fbp(&format!("{w}(test/Hostile:min=3,max=5)"));
    let resolver = Resolver::new(test_components(), test_components());
    let network = Network::start(
        &graph,
        &Source::default(),
        loader(),
        &resolver,
        transport.clone(),
    )
    .await
    .expect("network starts");
    parameters_reach_every_instance(&network, &transport, &w).await;
    network.shutdown(Duration::from_secs(1)).await;
}
