//! Broker URLs: which backend a `--broker` / `MSGFLO_BROKER` URL selects, and the
//! wasmflo-only query parameters it may carry.
//!
//! - `mqtt://[user:pass@]host[:1883][?client_id=ID&clean=true&shared=GROUP]`: with
//!   `shared`, queues are consumed through the shared subscription `$share/GROUP/<queue>`,
//!   so processes serving one role split its messages instead of each getting all
//! - `amqp://[user:pass@]host[:5672][/vhost][?prefetch=N]` (other query keys go to the
//!   AMQP client, e.g. `heartbeat`)
//!
//! `mqtts://` (port 8883) and `amqps://` (port 5671) connect over TLS (rustls), trusting
//! the system's CA store plus, if given, the PEM certificates of [`BrokerUrl::ca_file`]
//! (`--ca-file` or `WASMFLO_CA_FILE`) for private CAs.

use std::path::PathBuf;
use std::sync::Arc;

use super::{AmqpTransport, MqttTransport, Transport, TransportError};

/// The backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// MQTT 3.1.1 (`mqtt://`).
    Mqtt,
    /// AMQP 0-9-1 (`amqp://`).
    Amqp,
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Which backend.
    pub scheme: Scheme,
    /// Host name or address.
    pub host: String,
    /// Port (the scheme's default when absent).
    pub port: u16,
    /// User name, if any.
    pub user: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// AMQP virtual host (`/` when absent).
    pub vhost: String,
    /// MQTT client id (`client_id=`); the caller's default otherwise.
    pub client_id: Option<String>,
    /// MQTT: start a clean session (`clean=true`); persistent by default.
    pub clean_session: bool,
    /// MQTT: consume queues through shared subscriptions of this group (`shared=`).
    pub shared: Option<String>,
    /// AMQP: unacked deliveries per consumer (`prefetch=`).
    pub prefetch: u16,
    /// Query pairs passed through to the AMQP client.
    pub extra: Vec<(String, String)>,
    /// Over TLS (`mqtts://`, `amqps://`).
    pub tls: bool,
    /// PEM file of extra CA certificates to trust (besides the system's).
    pub ca_file: Option<PathBuf>,
}

/// Environment variable naming a PEM file of extra CA certificates.
pub const CA_FILE_ENV: &str = "WASMFLO_CA_FILE";

/// Prefetch per AMQP consumer when the URL does not say.
pub const DEFAULT_PREFETCH: u16 = 64;

impl BrokerUrl {
    /// Parses `text`, naming what is wrong in the error.
    pub fn parse(text: &str) -> Result<BrokerUrl, TransportError> {
        let invalid = |detail: String| TransportError::InvalidUrl {
            url: text.to_string(),
            detail,
        };
        let url = ::url::Url::parse(text).map_err(|e| invalid(e.to_string()))?;
        let (scheme, default_port, tls) = match url.scheme() {
            "mqtt" | "tcp" => (Scheme::Mqtt, 1883, false),
            "mqtts" | "ssl" => (Scheme::Mqtt, 8883, true),
            "amqp" => (Scheme::Amqp, 5672, false),
            "amqps" => (Scheme::Amqp, 5671, true),
            other => {
                return Err(invalid(format!(
                    "unknown scheme '{other}' (expected mqtt://, mqtts://, amqp:// or amqps://)"
                )));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("no host".into()))?
            .to_string();
        let decode = |s: &str| {
            ::url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(decode);
        let vhost = match url.path().trim_start_matches('/') {
            "" => "/".to_string(),
            v => decode(v),
        };
        let mut parsed = BrokerUrl {
            scheme,
            host,
            port: url.port().unwrap_or(default_port),
            user,
            password,
            vhost,
            client_id: None,
            clean_session: false,
            shared: None,
            prefetch: DEFAULT_PREFETCH,
            extra: Vec::new(),
            tls,
            ca_file: std::env::var_os(CA_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        };
        for (key, value) in url.query_pairs() {
            match (&*key, scheme) {
                ("client_id" | "clientId", Scheme::Mqtt) => {
                    parsed.client_id = Some(value.into_owned())
                }
                ("clean", Scheme::Mqtt) => parsed.clean_session = value == "true" || value == "1",
                ("shared", Scheme::Mqtt) => {
                    if value.is_empty() || value.contains(['/', '+', '#']) {
                        return Err(invalid(format!("shared group '{value}' is not a name")));
                    }
                    parsed.shared = Some(value.into_owned());
                }
                ("prefetch", Scheme::Amqp) => {
                    parsed.prefetch =
                        value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            invalid(format!("prefetch '{value}' is not 1..65535"))
                        })?;
                }
                (_, Scheme::Amqp) => parsed.extra.push((key.into_owned(), value.into_owned())),
                (other, Scheme::Mqtt) => {
                    return Err(invalid(format!("unknown MQTT option '{other}'")));
                }
            }
        }
        Ok(parsed)
    }

    /// The URL without its password, for logs and errors.
    pub fn redacted(&self) -> String {
        let scheme = match (self.scheme, self.tls) {
            (Scheme::Mqtt, false) => "mqtt",
            (Scheme::Mqtt, true) => "mqtts",
            (Scheme::Amqp, false) => "amqp",
            (Scheme::Amqp, true) => "amqps",
        };
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        format!("{scheme}://{user}{}:{}", self.host, self.port)
    }
}

/// Connects to the broker `url` names. `client_id` is the MQTT client id used when the
/// URL gives none: keep it stable across restarts so the persistent session (and the
/// messages queued in it) is found again.
pub async fn connect(url: &str, client_id: &str) -> Result<Arc<dyn Transport>, TransportError> {
    BrokerUrl::parse(url)?.connect(client_id).await
}

impl BrokerUrl {
    /// Connects to this broker (see [`connect`]).
    pub async fn connect(&self, client_id: &str) -> Result<Arc<dyn Transport>, TransportError> {
        Ok(match self.scheme {
            Scheme::Mqtt => Arc::new(MqttTransport::connect(self, client_id).await?),
            Scheme::Amqp => Arc::new(AmqpTransport::connect(self).await?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_msgflo_forms() {
        let u = BrokerUrl::parse("amqp://guest:p%40ss@127.0.0.1:5672/%2f?prefetch=8&heartbeat=5")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Amqp);
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.vhost, "/");
        assert_eq!(u.prefetch, 8);
        assert_eq!(u.extra, vec![("heartbeat".into(), "5".into())]);
        assert_eq!(u.redacted(), "amqp://guest@127.0.0.1:5672");

        let m = BrokerUrl::parse("mqtt://localhost?client_id=x&clean=true&shared=g").unwrap();
        assert_eq!(m.shared.as_deref(), Some("g"));
        assert_eq!((m.scheme, m.port), (Scheme::Mqtt, 1883));
        assert_eq!(m.client_id.as_deref(), Some("x"));
        assert!(m.clean_session);
        assert_eq!(BrokerUrl::parse("amqp://h").unwrap().vhost, "/");
    }

    #[test]
    fn rejects_what_it_cannot_do() {
        let tls = BrokerUrl::parse("amqps://u:p@h/v").unwrap();
        assert!(tls.tls);
        assert_eq!(
            (tls.port, tls.redacted()),
            (5671, "amqps://u@h:5671".into())
        );
        assert_eq!(BrokerUrl::parse("mqtts://h").unwrap().port, 8883);
        for bad in ["http://x", "mqtt://x?nope=1", "amqp://x?prefetch=0", "x"] {
            let err = BrokerUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
