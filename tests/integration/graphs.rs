//! Graphs of the project's real components running in-process.

use wasmflo_host::message::Message;
use wasmflo_host::transport::Transport;

use crate::support::*;

/// The formatter's expected text for a reading, computed here from the sensor's output.
fn formatted(reading: f64, unit: &str) -> String {
    format!("Temperature: {reading:.1} {unit}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temperature_pipeline_formats_sensor_readings() {
    let graph = fbp("
        '0' -> INTERVAL sensor(temperature/Sensor)
        '22.0' -> BASE sensor
        sensor OUT -> IN format(temperature/Format) OUT -> IN display(temperature/Display)
    ");
    let mut net = start_project(&graph).await;
    let mut readings = net.probe("sensor.OUT").await;
    let mut texts = net.probe("format.OUT").await;
    for _ in 0..5 {
        net.send("sensor.TRIGGER", "null").await;
        let reading = next_json(&mut readings).await.as_f64().expect("a number");
        assert!(
            (reading - 22.0).abs() < 5.0,
            "reading {reading} near base 22.0"
        );
        let text = next_json(&mut texts).await;
        assert_eq!(text, serde_json::json!(formatted(reading, "C")));
    }
    let reports = net.stop().await;
    let format = reports
        .iter()
        .find(|r| &*r.process == "format")
        .expect("format report");
    assert_eq!(format.stats.processed, 5);
    assert_eq!(format.stats.failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formatter_unit_parameter_changes_at_run_time() {
    let graph = fbp("'F' -> UNIT format(temperature/Format)");
    let mut net = start_project(&graph).await;
    let mut out = net.probe("format.OUT").await;
    net.send("format.IN", "22.3333").await;
    assert_eq!(next_json(&mut out).await, "Temperature: 72.2 F");
    // Inports are separate queues, so a new parameter value takes effect at some point
    // after it is sent, not at a fixed position among messages on other ports.
    net.send("format.UNIT", "\"C\"").await;
    let mut switched = false;
    for _ in 0..1000 {
        net.send("format.IN", "22.3333").await;
        let text = next_json(&mut out).await;
        if text == "Temperature: 22.3 C" {
            switched = true;
            break;
        }
        assert_eq!(text, "Temperature: 72.2 F");
    }
    assert!(switched, "the unit parameter changed at run time");
    net.send("format.IN", "\"warm\"").await;
    net.send("format.IN", "-5.55").await;
    assert_eq!(next_json(&mut out).await, "Temperature: -5.6 C");
    net.stop().await;
    let dead = net.transport.dead_letters();
    assert_eq!(dead.len(), 1, "the non-number is dead-lettered: {dead:?}");
    assert!(
        dead[0]
            .reason
            .contains("process 'format' port 'in': invalid-input"),
        "{}",
        dead[0].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combiner_joins_inside_and_outside() {
    let graph = fbp("
        combine(temperature/Combine) OUT -> IN display(temperature/Display)
    ");
    let mut net = start_project(&graph).await;
    let mut out = net.probe("combine.OUT").await;
    net.send("combine.INSIDE", "22.2").await;
    net.send("combine.OUTSIDE", "-5.5").await;
    assert_eq!(next_json(&mut out).await, "Inside: 22.2 C Outside: -5.5 C");
    net.send("combine.INSIDE", "21.04").await;
    assert_eq!(next_json(&mut out).await, "Inside: 21.0 C Outside: -5.5 C");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_graphs_run() {
    for file in ["temperature.fbp", "inside-outside.fbp"] {
        let src = std::fs::read_to_string(repo().join("graphs").join(file)).expect("graph file");
        let graph = fbp(&src);
        let mut net = start_project(&graph).await;
        let topic = if file == "temperature.fbp" {
            "format.OUT"
        } else {
            "combine.OUT"
        };
        let mut out = net.probe(topic).await;
        // The sensors emit on their own timers; the first text shows the graph runs.
        let text = next_json(&mut out).await;
        let text = text.as_str().expect("text");
        assert!(
            text.starts_with("Temperature: ") || text.starts_with("Inside: "),
            "{text}"
        );
        net.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_flows_and_binary_passes_through_in_order() {
    let graph = fbp("a(core/Repeat) OUT -> IN b(core/Repeat) OUT -> IN c(core/Output)");
    let mut net = start_project(&graph).await;
    let mut out = net.probe("c.OUT").await;

    let mut tagged = Message::json_text("{\"n\":1}");
    tagged.set_meta("correlation-id", "abc-1");
    tagged.set_meta("reply-to", "somewhere");
    net.send_msg("a.IN", tagged).await;
    let got = next(&mut out).await;
    assert_eq!(got.meta("correlation-id"), Some("abc-1"));
    assert_eq!(got.meta("reply-to"), Some("somewhere"));

    let bytes: Vec<u8> = (0..=255u8).collect();
    net.send_msg(
        "a.IN",
        Message::binary("application/octet-stream", bytes.clone()),
    )
    .await;
    let got = next(&mut out).await;
    assert_eq!(got.content_type(), "application/octet-stream");
    assert_eq!(&got.data[..], &bytes[..]);

    for i in 0..500 {
        net.send("a.IN", &i.to_string()).await;
    }
    for i in 0..500 {
        assert_eq!(
            next_json(&mut out).await,
            serde_json::json!(i),
            "order kept"
        );
    }
    net.stop().await;
    assert!(net.transport.dead_letters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_queued_messages() {
    let graph = fbp("a(core/Repeat) OUT -> IN b(core/Repeat) OUT -> IN c(core/Drop)");
    let mut net = start_project(&graph).await;
    for i in 0..2000 {
        net.send("a.IN", &i.to_string()).await;
    }
    let reports = net.stop().await;
    let dropped = reports.iter().find(|r| &*r.process == "c").expect("c");
    assert_eq!(
        dropped.stats.processed, 2000,
        "every queued message was processed before exit"
    );
    assert_eq!(net.transport.pending(), Some(0));
}
