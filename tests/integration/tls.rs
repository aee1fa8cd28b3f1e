//! `mqtts://` and `amqps://` with real TLS and a private CA made at test time (rcgen):
//! a private Mosquitto with a TLS listener on a free port, and a TLS terminator (tokio-
//! rustls, port 0) in front of the shared RabbitMQ. The CA reaches the CLI through
//! `--ca-file`; without it the handshake fails with one line naming the broker.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use wasmflo_host::message::Message;
use wasmflo_host::transport::{BrokerUrl, Transport};

use crate::brokers::{AMQP, Running, broker, cli, client, consume, next, role, scratch};
use crate::support::{DEADLINE, Pki};

fn pki(name: &str) -> Pki {
    Pki::new(scratch(name))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A private Mosquitto with only a TLS listener; killed when dropped.
struct TlsMosquitto {
    child: Child,
    port: u16,
}

impl TlsMosquitto {
    fn start(pki: &Pki) -> Option<TlsMosquitto> {
        let port = free_port();
        let conf = pki.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\n\
                 cafile {}\ncertfile {}\nkeyfile {}\n",
                pki.ca().display(),
                pki.dir.join("server.pem").display(),
                pki.dir.join("server.key").display()
            ),
        )
        .expect("write conf");
        let child = match Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("mosquitto is required in CI: {e}")
            }
            Err(e) => {
                eprintln!("notice: skipping the MQTT TLS test: {e}");
                return None;
            }
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(std::time::Instant::now() < deadline, "TLS mosquitto up");
            std::thread::yield_now();
        }
        Some(TlsMosquitto { child, port })
    }
}

impl Drop for TlsMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Accepts TLS on a free port and forwards the plaintext to `upstream`; returns the port.
async fn tls_terminator(pki: &Pki, upstream: &'static str) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

/// A participant over TLS repeats what a client sends; without the CA it fails to start.
async fn participant_over_tls(tls_url: &str, ca: &std::path::Path, probe: Arc<dyn Transport>) {
    let r = role("tls");
    let mut out = consume(&probe, &format!("{r}.OUT")).await;

    let refused = cli()
        .args([
            "participant",
            &format!("{r}=core/Repeat"),
            "--broker",
            tls_url,
        ])
        .output()
        .expect("participant runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    let redacted = BrokerUrl::parse(tls_url).expect("URL").redacted();
    assert!(stderr.contains(&redacted), "names the broker: {stderr}");

    let mut cmd = cli();
    cmd.args([
        "participant",
        &format!("{r}=core/Repeat"),
        "--broker",
        tls_url,
    ])
    .arg("--ca-file")
    .arg(ca);
    let mut p = Running::spawn(cmd);
    p.stdout_line(&format!("ready {r}")).await;
    probe
        .send_to_queue(&format!("{r}.IN"), Message::json_text("42"))
        .await
        .expect("send");
    assert_eq!(&next(&mut out).await.data[..], b"42");
}

/// The test's own client on the private Mosquitto, over TLS too, trusting the test's CA
/// through the URL struct.
async fn tls_client(url: &str, pki: &Pki) -> Arc<dyn Transport> {
    let mut parsed = BrokerUrl::parse(&format!("{url}?clean=true")).expect("URL");
    parsed.ca_file = Some(pki.ca());
    parsed
        .connect(&format!("wasmflo-test-{}", role("c")))
        .await
        .expect("TLS client connects")
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtts_participant_with_a_private_ca() {
    let pki = pki(&role("mqtts"));
    let Some(mosquitto) = TlsMosquitto::start(&pki) else {
        return;
    };
    let url = format!("mqtts://127.0.0.1:{}", mosquitto.port);
    let probe = tls_client(&url, &pki).await;
    participant_over_tls(&url, &pki.ca(), probe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn amqps_participant_through_a_tls_terminator() {
    let Some(plain) = broker(AMQP) else { return };
    let pki = pki(&role("amqps"));
    let port = tls_terminator(&pki, "127.0.0.1:5672").await;
    let url = format!("amqps://guest:guest@127.0.0.1:{port}/%2f");
    let probe = client(plain).await;
    participant_over_tls(&url, &pki.ca(), probe).await;
}

/// The edge host's MQTT mode over TLS: refused without the CA (naming the broker),
/// serving with `--ca-file`.
#[tokio::test(flavor = "multi_thread")]
async fn mqtts_edge_participant_with_a_private_ca() {
    let pki = pki(&role("edge-mqtts"));
    let Some(mosquitto) = TlsMosquitto::start(&pki) else {
        return;
    };
    let url = format!("mqtts://127.0.0.1:{}", mosquitto.port);
    let probe = tls_client(&url, &pki).await;
    let r = role("etls");
    let mut out = consume(&probe, &format!("{r}.OUT")).await;
    let spec = format!(
        "{r}={}",
        wasmflo_host::component::components_dir()
            .join("core/Repeat.wasm")
            .display()
    );
    let edge = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmflo-edge-test-cli"));
        cmd.args([spec.as_str(), "--broker", url.as_str()])
            .env_remove("WASMFLO_CA_FILE");
        cmd
    };

    let refused = edge().output().expect("wasmflo-edge runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("mqtts://127.0.0.1:{}", mosquitto.port)),
        "names the broker: {stderr}"
    );

    let mut cmd = edge();
    cmd.arg("--ca-file").arg(pki.ca());
    let mut e = Running::spawn(cmd);
    e.stdout_line(&format!("ready {r}")).await;
    probe
        .send_to_queue(&format!("{r}.IN"), Message::json_text("42"))
        .await
        .expect("send");
    assert_eq!(&next(&mut out).await.data[..], b"42");
    assert!(e.interrupt().success(), "stops cleanly on Ctrl-C");
}
