//! TLS for `mqtts://` and `amqps://`: rustls on ring, trusting the system's CA store plus
//! the PEM certificates of an optional CA file (`--ca-file`, `WASMFLO_CA_FILE`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::TransportError;

/// The certificates of PEM file `path`; fails naming the file unless it holds at least one.
pub fn ca_certificates(
    path: &Path,
    url: &str,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let bad = |detail: String| TransportError::Connect {
        url: url.to_string(),
        detail: format!("CA file {}: {detail}", path.display()),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// A client configuration trusting the system's CAs and those of `ca_file`.
pub fn client_config(
    ca_file: Option<&Path>,
    url: &str,
) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    // A system store that cannot be read (no certificates installed) still leaves the
    // CA file; a broker nobody vouches for fails the handshake, naming the URL.
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("system CA store: {e}");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        for cert in ca_certificates(path, url)? {
            roots.add(cert).map_err(|e| TransportError::Connect {
                url: url.to_string(),
                detail: format!("CA file {}: {e}", path.display()),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Connect {
            url: url.to_string(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Completes one TLS handshake with `host:port` under `config` and closes it. lapin
/// retries a failed connection with backoff, a refused certificate included; checking
/// first reports it at once, naming the broker.
pub async fn check_handshake(
    host: &str,
    port: u16,
    config: Arc<rustls::ClientConfig>,
    url: &str,
) -> Result<(), TransportError> {
    let (host, url) = (host.to_string(), url.to_string());
    let failed = |url: &str, detail: String| TransportError::Connect {
        url: url.to_string(),
        detail,
    };
    let url2 = url.clone();
    tokio::task::spawn_blocking(move || {
        let err = |detail: String| failed(&url, detail);
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| err(e.to_string()))?;
        let mut tls =
            rustls::ClientConnection::new(config, name).map_err(|e| err(e.to_string()))?;
        let mut socket =
            std::net::TcpStream::connect((host.as_str(), port)).map_err(|e| err(e.to_string()))?;
        let limit = Some(std::time::Duration::from_secs(10));
        socket
            .set_read_timeout(limit)
            .and_then(|()| socket.set_write_timeout(limit))
            .map_err(|e| err(e.to_string()))?;
        while tls.is_handshaking() {
            tls.complete_io(&mut socket)
                .map_err(|e| err(format!("TLS handshake: {e}")))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| failed(&url2, e.to_string()))?
}
