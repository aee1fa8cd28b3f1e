//! Actuators: what carries out a role's scaling decisions.
//!
//! A role the graph runs is scaled by the host's own instance pool ([`PoolHandle`]). A role
//! served by external workers (issue 9, item 3) names instead, in its configuration:
//! - `command`: run by `sh -c` with `{role}` and `{count}` replaced by the role's name and
//!   the number of instances wanted; it must exit 0; its output goes to the host's stderr
//!   (so the JSON decision lines on stdout stay clean);
//! - `http`: an `http://` or `https://` URL that is POSTed `{"role": "...", "instances": N}`
//!   as JSON and must answer 2xx. `https` uses rustls like `mqtts`/`amqps`: the system's
//!   CAs plus those of `--ca-file` ([`Actuator::with_ca_file`]).
//!
//! Both are given [`EXTERNAL_TIMEOUT`] to finish, and are called off the autoscaler's
//! loop (see [`super::external`]); a failure is logged by the autoscaler, which keeps the
//! previous count and tries again at its next decision. External workers
//! report no processing times or start times to the host: their role plans with the
//! configured `processing`, `stddev` and `boot`.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::config::ActuatorConfig;
use crate::pool::PoolHandle;
use crate::transport::{TransportError, tls};

/// How long a command or an HTTP request may take.
pub const EXTERNAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a scaling decision could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    /// The pool could not start instances.
    #[error("resizing the instance pool: {0}")]
    Pool(#[from] TransportError),
    /// The command could not be started or waited for.
    #[error("command `{command}`: {source}")]
    Spawn {
        /// The command line run.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The command exited with a failure.
    #[error("command `{command}` failed ({status})")]
    Failed {
        /// The command line run.
        command: String,
        /// Its exit status.
        status: String,
    },
    /// The request could not be sent or its answer read.
    #[error("POST {url}: {source}")]
    Http {
        /// The endpoint.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS handshake failed (a certificate no trusted CA vouches for, most often).
    #[error("POST {url}: TLS handshake: {source}")]
    Tls {
        /// The endpoint.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An `https` endpoint's trust could not be set up (its CA file, most often).
    #[error("{url}: {detail}")]
    Trust {
        /// The endpoint.
        url: String,
        /// Why.
        detail: String,
    },
    /// The endpoint did not answer 2xx.
    #[error("POST {url}: answered `{status}`")]
    Status {
        /// The endpoint.
        url: String,
        /// The status line.
        status: String,
    },
    /// The command or request took longer than [`EXTERNAL_TIMEOUT`].
    #[error("{what} did not finish within {EXTERNAL_TIMEOUT:?}")]
    Timeout {
        /// The command or request.
        what: String,
    },
}

/// Carries out one role's decisions.
#[derive(Debug, Clone)]
pub enum Actuator {
    /// The host's instance pool.
    Pool(PoolHandle),
    /// A command line template (`{role}`, `{count}`).
    Command(String),
    /// An HTTP endpoint.
    Http(Endpoint),
}

/// An `http://` or `https://` endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: url::Url,
    /// For `https`: whom to trust.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Endpoint {
    /// `url`, trusting for `https` the system's CAs and those of `ca_file`.
    pub fn new(url: url::Url, ca_file: Option<&Path>) -> Result<Self, ActuatorError> {
        let tls = match url.scheme() {
            "https" => Some(tls::client_config(ca_file, url.as_str()).map_err(|e| {
                ActuatorError::Trust {
                    url: url.to_string(),
                    detail: match e {
                        TransportError::Connect { detail, .. } => detail,
                        other => other.to_string(),
                    },
                }
            })?),
            _ => None,
        };
        Ok(Endpoint { url, tls })
    }
}

impl Actuator {
    /// The actuator `config` names; `pool` for [`ActuatorConfig::Pool`] (`None` when the
    /// graph has no such process).
    /// An `https` endpoint trusts the system's CAs.
    pub fn for_config(
        config: &ActuatorConfig,
        pool: Option<PoolHandle>,
    ) -> Result<Option<Actuator>, ActuatorError> {
        Ok(match config {
            ActuatorConfig::Pool => pool.map(Actuator::Pool),
            ActuatorConfig::Command(line) => Some(Actuator::Command(line.clone())),
            ActuatorConfig::Http(url) => Some(Actuator::Http(Endpoint::new(url.clone(), None)?)),
        })
    }

    /// This actuator, an `https` endpoint also trusting the CAs of `ca_file`.
    pub fn with_ca_file(self, ca_file: &Path) -> Result<Actuator, ActuatorError> {
        match self {
            Actuator::Http(endpoint) if endpoint.tls.is_some() => {
                Ok(Actuator::Http(Endpoint::new(endpoint.url, Some(ca_file))?))
            }
            other => Ok(other),
        }
    }

    /// Whether the instances run in this host.
    pub fn is_pool(&self) -> bool {
        matches!(self, Actuator::Pool(_))
    }

    /// Asks for `count` instances of `role`; the count now requested or running.
    pub async fn scale(&self, role: &str, count: u32) -> Result<u32, ActuatorError> {
        match self {
            Actuator::Pool(pool) => Ok(pool.resize(count).await?),
            Actuator::Command(template) => {
                let line = template
                    .replace("{role}", role)
                    .replace("{count}", &count.to_string());
                let what = line.clone();
                let ran = tokio::task::spawn_blocking(move || run_command(&line)).await;
                match ran {
                    Ok(result) => result.map(|()| count),
                    Err(e) => Err(ActuatorError::Spawn {
                        command: what,
                        source: std::io::Error::other(e.to_string()),
                    }),
                }
            }
            Actuator::Http(endpoint) => {
                let body = serde_json::json!({"role": role, "instances": count}).to_string();
                match tokio::time::timeout(EXTERNAL_TIMEOUT, post(endpoint, &body)).await {
                    Ok(result) => result.map(|()| count),
                    Err(_) => Err(ActuatorError::Timeout {
                        what: format!("POST {}", endpoint.url),
                    }),
                }
            }
        }
    }
}

/// Runs `line` by `sh -c`, waiting at most [`EXTERNAL_TIMEOUT`] (then it is killed).
fn run_command(line: &str) -> Result<(), ActuatorError> {
    let spawn_error = |source| ActuatorError::Spawn {
        command: line.to_owned(),
        source,
    };
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(spawn_error)?;
    // A blocking thread polls with a deadline: std's `Child` cannot wait with a timeout,
    // and a scaling script may leave background workers holding any pipe we could read.
    let deadline = std::time::Instant::now() + EXTERNAL_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(spawn_error)? {
            if status.success() {
                return Ok(());
            }
            return Err(ActuatorError::Failed {
                command: line.to_owned(),
                status: status.to_string(),
            });
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ActuatorError::Timeout {
                what: format!("command `{line}`"),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// POSTs `body` (JSON) to the endpoint over HTTP/1.1 (in TLS for `https`); Ok on a 2xx
/// answer.
async fn post(endpoint: &Endpoint, body: &str) -> Result<(), ActuatorError> {
    let url = &endpoint.url;
    let http_error = |source| ActuatorError::Http {
        url: url.to_string(),
        source,
    };
    let (host, name) = match url.host() {
        Some(url::Host::Domain(d)) => (d.to_owned(), d.to_owned()),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), ip.to_string()),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), ip.to_string()),
        None => ("localhost".to_owned(), "localhost".to_owned()),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(http_error)?;
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let authority = match url.host_str() {
        Some(h) => format!("{h}:{port}"),
        None => format!("{host}:{port}"),
    };
    let request = format!(
        "POST {target} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let status = match &endpoint.tls {
        None => exchange(stream, &request).await.map_err(http_error)?,
        Some(config) => {
            let server = ServerName::try_from(name)
                .map_err(|e| http_error(std::io::Error::other(e.to_string())))?;
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(server, stream)
                .await
                .map_err(|source| ActuatorError::Tls {
                    url: url.to_string(),
                    source,
                })?;
            exchange(stream, &request).await.map_err(http_error)?
        }
    };
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with("HTTP/1.") && code.starts_with('2') && code.len() == 3 {
        Ok(())
    } else {
        Err(ActuatorError::Status {
            url: url.to_string(),
            status,
        })
    }
}

/// Writes `request` and reads the answer's status line (all we need).
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &str,
) -> std::io::Result<String> {
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 8 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}
