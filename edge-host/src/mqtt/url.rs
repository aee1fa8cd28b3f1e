//! `--broker mqtt[s]://[user[:password]@]host[:port][?client_id=ID&clean=true&shared=GROUP]`,
//! the server host's MQTT URL form (`wasmflo_host::transport::BrokerUrl`), parsed by hand.
//! `mqtts://` (port 8883 by default) needs the feature `tls`.

use std::string::{String, ToString};
use std::{format, vec};

use super::MqttError;

/// A parsed MQTT broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`: TLS (feature `tls`).
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port (1883 when absent).
    pub port: u16,
    /// User name, if any.
    pub user: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// MQTT client id (`client_id=`); `wasmflo-edge-ROLE` otherwise.
    pub client_id: Option<String>,
    /// Start a clean session (`clean=true`); persistent by default.
    pub clean_session: bool,
    /// Consume inports through shared subscriptions of this group (`shared=`).
    pub shared: Option<String>,
}

impl BrokerUrl {
    /// Parses `text`, naming what is wrong in the error.
    pub fn parse(text: &str) -> Result<Self, MqttError> {
        let invalid = |detail: String| MqttError::InvalidUrl {
            url: text.to_string(),
            detail,
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| invalid("expected mqtt://host[:port]".into()))?;
        let tls = match scheme {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" if cfg!(feature = "tls") => true,
            "mqtts" | "ssl" => {
                return Err(invalid(
                    "this wasmflo-edge is built without the `tls` feature; use mqtt:// (or a TLS terminator)".into(),
                ));
            }
            other => {
                return Err(invalid(format!(
                    "unknown scheme '{other}' (expected mqtt:// or mqtts://)"
                )));
            }
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let authority = match rest.split_once('/') {
            Some((a, "")) => a,
            Some((_, path)) => {
                return Err(invalid(format!(
                    "unexpected path '/{path}' (MQTT has no vhost)"
                )));
            }
            None => rest,
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(decode(user)), Some(decode(pass))),
                None => (Some(decode(u)), None),
            },
        };
        let (host, port) = match hostport.strip_prefix('[') {
            // [IPv6]:port
            Some(v6) => {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| invalid("unterminated '['".into()))?;
                (h, after.strip_prefix(':'))
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        let port = match port {
            None if tls => 8883,
            None => 1883,
            Some(p) => p
                .parse()
                .map_err(|_| invalid(format!("port '{p}' is not 0..65535")))?,
        };
        if host.is_empty() {
            return Err(invalid("no host".into()));
        }
        let mut url = BrokerUrl {
            tls,
            host: host.to_string(),
            port,
            user,
            password,
            client_id: None,
            clean_session: false,
            shared: None,
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match key {
                "client_id" | "clientId" => url.client_id = Some(value),
                "clean" => url.clean_session = value == "true" || value == "1",
                "shared" => {
                    if value.is_empty() || value.contains(['/', '+', '#']) {
                        return Err(invalid(format!("shared group '{value}' is not a name")));
                    }
                    url.shared = Some(value);
                }
                other => return Err(invalid(format!("unknown MQTT option '{other}'"))),
            }
        }
        Ok(url)
    }

    /// The URL without its password, for logs and errors.
    pub fn redacted(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://{user}{}:{}", self.host, self.port)
    }
}

/// Percent-decodes `s` (`+` stays a plus, as in URL authorities).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_server_hosts_mqtt_forms() {
        let u = BrokerUrl::parse("mqtt://me:p%40ss@127.0.0.1:1884?client_id=x&clean=true&shared=g")
            .expect("parses");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 1884));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.client_id.as_deref(), Some("x"));
        assert!(u.clean_session);
        assert_eq!(u.shared.as_deref(), Some("g"));
        assert_eq!(u.redacted(), "mqtt://me@127.0.0.1:1884");
        let d = BrokerUrl::parse("mqtt://broker/").expect("parses");
        assert_eq!((d.port, d.clean_session), (1883, false));
    }

    #[test]
    fn rejects_what_it_cannot_do() {
        #[cfg(not(feature = "tls"))]
        assert!(BrokerUrl::parse("mqtts://h").is_err());
        #[cfg(feature = "tls")]
        {
            let u = BrokerUrl::parse("mqtts://h").expect("parses");
            assert_eq!(
                (u.tls, u.port, u.redacted().as_str()),
                (true, 8883, "mqtts://h:8883")
            );
        }
        for bad in [
            "amqp://h",
            "h:1883",
            "mqtt://:1883",
            "mqtt://h:x",
            "mqtt://h/vhost",
            "mqtt://h?nope=1",
            "mqtt://h?shared=a/b",
        ] {
            let err = BrokerUrl::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
