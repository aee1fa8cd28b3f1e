//! TLS for `mqtts://` (feature `tls`, std only): rustls on ring, trusting the system's CA
//! store plus the PEM certificates of `--ca-file` — the server host's
//! `wasmflo_host::transport::tls`, without lapin's handshake check (rumqttc reports a
//! refused certificate as a failed connection, which fails the start).

use std::format;
use std::path::Path;
use std::string::{String, ToString};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::MqttError;

/// A client configuration trusting the system's CAs and those of `ca_file`.
pub fn client_config(
    ca_file: Option<&Path>,
    url: &str,
) -> Result<Arc<rustls::ClientConfig>, MqttError> {
    let failed = |detail: String| MqttError::Connect {
        url: url.to_string(),
        detail,
    };
    let mut roots = rustls::RootCertStore::empty();
    // An unreadable system store still leaves the CA file; a broker nobody vouches for
    // fails the handshake, naming the URL.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let bad = |detail: String| failed(format!("CA file {}: {detail}", path.display()));
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<std::vec::Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
