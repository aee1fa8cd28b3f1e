//! Shared test fixtures: one loader for the whole test binary, graph helpers, probes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmflo_host::component::{DiskCache, Loader, Resolver, components_dir};
use wasmflo_host::graph::{self, Format, Graph, ParseOptions};
use wasmflo_host::message::Message;
use wasmflo_host::network::{Network, Source};
use wasmflo_host::runtime::{Runtime, RuntimeConfig};
use wasmflo_host::transport::{Binding, BindingKind, MemoryTransport, Subscription, Transport};

/// How long any single wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// One engine and loader shared by every test (an instance pool per test would reserve
/// far too much address space).
pub fn loader() -> &'static Arc<Loader> {
    static LOADER: OnceLock<Arc<Loader>> = OnceLock::new();
    LOADER.get_or_init(|| {
        let config = RuntimeConfig {
            max_instances: 200,
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::new(&config).expect("engine");
        let cache = DiskCache::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmflo-cache"));
        Arc::new(Loader::new(runtime, Some(cache)))
    })
}

/// The folder holding the test guests (`test/Hostile.wasm`, ...).
pub fn test_components() -> PathBuf {
    let hostile = Path::new(wasmflo_tests::guests::HOSTILE);
    // <dir>/test/Hostile.wasm -> <dir>
    hostile
        .parent()
        .and_then(Path::parent)
        .expect("guest dir")
        .to_path_buf()
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Parses `.fbp` text.
pub fn fbp(src: &str) -> Graph {
    graph::parse(src.trim_end(), Format::Fbp, &ParseOptions::default()).expect("graph parses")
}

/// A running network on a fresh in-memory transport, resolving names first among the
/// project's components, then among the test guests.
pub struct Running {
    pub network: Option<Network>,
    pub transport: Arc<MemoryTransport>,
}

pub async fn start(graph: &Graph, components: &Path) -> Result<Running, String> {
    let transport = Arc::new(MemoryTransport::new());
    let resolver = Resolver::new(components, repo().join("graphs"));
    let source = Source {
        file: "test.fbp".into(),
    };
    let network = Network::start(graph, &source, loader(), &resolver, transport.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Running {
        network: Some(network),
        transport,
    })
}

pub async fn start_project(graph: &Graph) -> Running {
    start(graph, &components_dir())
        .await
        .expect("network starts")
}

impl Running {
    /// Subscribes a probe queue to outport topic `topic` (e.g. `format.OUT`).
    pub async fn probe(&self, topic: &str) -> Subscription {
        let queue = format!("probe.{topic}");
        self.transport.declare_queue(&queue).await.expect("declare");
        let binding = Binding {
            src: topic.into(),
            tgt: queue.clone(),
            kind: BindingKind::PubSub,
        };
        self.transport.bind(&binding).await.expect("bind");
        self.transport.subscribe(&queue).await.expect("subscribe")
    }

    /// Sends `json` to inport queue `queue` (e.g. `format.IN`).
    pub async fn send(&self, queue: &str, json: &str) {
        self.send_msg(queue, Message::json_text(json.to_string()))
            .await;
    }

    pub async fn send_msg(&self, queue: &str, msg: Message) {
        self.transport
            .send_to_queue(queue, msg)
            .await
            .expect("send");
    }

    pub async fn stop(&mut self) -> Vec<wasmflo_host::participant::Report> {
        match self.network.take() {
            Some(n) => n.shutdown(DEADLINE).await,
            None => Vec::new(),
        }
    }
}

/// The next message on `sub`, failing the test after [`DEADLINE`].
pub async fn next(sub: &mut Subscription) -> Message {
    let d = tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("a message within the deadline")
        .expect("queue open");
    let msg = d.message.clone();
    d.ack();
    msg
}

/// The next message as JSON.
pub async fn next_json(sub: &mut Subscription) -> serde_json::Value {
    let m = next(sub).await;
    serde_json::from_slice(&m.data).expect("JSON payload")
}

/// An npm package installed into `dir` (installed now if missing), for tests that run a
/// real peer. Without node/npm the test fails under `CI=true` and is skipped (with a
/// notice, by returning `None`) elsewhere.
pub fn npm_oracle(dir: &Path, package: &str, version: &str) -> Option<PathBuf> {
    let unavailable = |why: String| {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("npm {package}@{version} is required in CI: {why}");
        }
        eprintln!("notice: skipping a test that needs npm {package}: {why}");
        None
    };
    if !tool_works("node") {
        return unavailable("`node` is not available".into());
    }
    let marker = dir.join("node_modules").join(package).join("package.json");
    if !marker.exists() {
        if !tool_works("npm") {
            return unavailable("`npm` is not available".into());
        }
        std::fs::create_dir_all(dir).expect("oracle dir");
        let status = std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)
            .arg(format!("{package}@{version}"))
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => return unavailable(format!("npm install failed: {other:?}")),
        }
    }
    Some(dir.to_path_buf())
}

fn tool_works(name: &str) -> bool {
    std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A CA and a server certificate for 127.0.0.1 and localhost (rcgen), written as PEM files
/// (`ca.pem`, `server.pem`, `server.key`) into a directory.
pub struct Pki {
    pub dir: PathBuf,
    pub server_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl Pki {
    /// A new CA and server certificate in `dir`.
    pub fn new(dir: PathBuf) -> Pki {
        std::fs::create_dir_all(&dir).expect("PKI dir");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wasmflo test CA");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        let key = rcgen::KeyPair::generate().expect("server key");
        let server = params.signed_by(&key, &ca).expect("server cert");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
        std::fs::write(dir.join("server.pem"), server.pem()).expect("write cert");
        std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write key");
        Pki {
            dir,
            server_der: server.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }

    /// The CA's PEM file.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A TLS server configuration presenting the server certificate.
    pub fn server_config(&self) -> Arc<tokio_rustls::rustls::ServerConfig> {
        use tokio_rustls::rustls;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.server_der.clone().into()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into()),
            )
            .expect("server config");
        Arc::new(config)
    }
}
