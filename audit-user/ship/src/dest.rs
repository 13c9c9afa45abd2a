//! `--ship URL`: which transport, where, and the state-directory name of
//! its cursor.
//!
//! The URL a destination is known by in logs, records and status files
//! ([`Destination::url`]) never holds a secret: an HEC `token=` is taken out
//! of it, and a webhook's query (which often carries one) shows as `?…`.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::ShipError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// RFC 5424 over TCP with octet-counting framing (RFC 6587).
    SyslogTcp,
    /// RFC 5425: the same framing inside TLS.
    SyslogTls,
    /// RELP, rsyslog's acknowledged transport.
    Relp,
    /// A webhook: NDJSON batches POSTed over HTTPS (HTTP on loopback only).
    Webhook,
    /// Splunk HTTP Event Collector with indexer acknowledgement.
    Hec,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Destination {
    /// The URL without secrets (see the module doc).
    pub url: String,
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// TLS around the connection (syslog+tls, https, hec+https).
    pub tls: bool,
    /// HTTP: the request target (path and query, without an HEC token).
    pub target: String,
    /// HEC: the token, from the URL or (set by the shipper) a file or the
    /// environment.
    pub token: Option<String>,
    /// What the cursor directory's name is derived from: the full URL less
    /// the HEC token, so rotating a token keeps the cursor.
    id_key: String,
}

// Hand-written so a token can never reach a log line through `{:?}`.
impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("url", &self.url)
            .field("scheme", &self.scheme)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Splits `host[:port]` (`[v6][:port]`).
fn host_port<'a>(
    authority: &'a str,
    bad: &dyn Fn(&str) -> ShipError,
) -> Result<(&'a str, Option<&'a str>), ShipError> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
        if !after.is_empty() && !after.starts_with(':') {
            return Err(bad("junk after `]`"));
        }
        Ok((h, after.strip_prefix(':')))
    } else {
        Ok(match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        })
    }
}

pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A header-safe HEC token: visible ASCII, no separators that could end
/// the header.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the HEC token is empty".into());
    }
    if token.len() > 256 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the HEC token must be at most 256 visible ASCII characters".into());
    }
    Ok(())
}

impl Destination {
    pub fn parse(url: &str) -> Result<Destination, ShipError> {
        // Never echo a URL that may hold a token: say where it went wrong
        // on the redacted form.
        let shown = redact_for_error(url);
        let bad = |why: &str| ShipError::BadUrl {
            url: shown.clone(),
            why: why.to_string(),
        };
        let (scheme_text, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected SCHEME://HOST:PORT"))?;
        let (scheme, tls, default_port) = match scheme_text {
            "syslog+tcp" => (Scheme::SyslogTcp, false, 514),
            "syslog+tls" => (Scheme::SyslogTls, true, 6514),
            "relp" => (Scheme::Relp, false, 2514),
            "https" => (Scheme::Webhook, true, 443),
            "http" => (Scheme::Webhook, false, 80),
            "hec+https" => (Scheme::Hec, true, 8088),
            "hec+http" => (Scheme::Hec, false, 8088),
            _ => {
                return Err(bad(
                    "unknown scheme (supported: syslog+tcp, syslog+tls, relp, https, hec+https)",
                ));
            }
        };
        let http = matches!(scheme, Scheme::Webhook | Scheme::Hec);
        let (authority, target) = if http {
            match rest.find(['/', '?']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            }
        } else {
            let a = rest.trim_end_matches('/');
            if a.contains('/') || a.contains('?') {
                return Err(bad("a path is not allowed for this scheme"));
            }
            (a, "")
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = host_port(authority, &bad)?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| bad("the port is not a number in 1..65535"))?,
        };
        if http && !tls && !is_loopback(host) {
            return Err(bad(
                "plain HTTP only to a loopback address (use https:// or hec+https://)",
            ));
        }
        if target.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(bad(
                "the path and query must be visible ASCII (percent-encode the rest)",
            ));
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        let mut token = None;
        let mut kept: Vec<&str> = Vec::new();
        for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            match kv.strip_prefix("token=") {
                Some(t) if scheme == Scheme::Hec => {
                    check_token(t).map_err(|e| bad(&e))?;
                    token = Some(t.to_string());
                }
                _ => kept.push(kv),
            }
        }
        let query = kept.join("&");
        let target = if http {
            if query.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{query}")
            }
        } else {
            String::new()
        };
        // As the operator wrote it, less the secrets.
        let base = url.split_once('?').map_or(url, |(b, _)| b);
        let (shown_url, id_key) = match scheme {
            Scheme::Webhook => {
                let q = if query.is_empty() { "" } else { "?…" };
                (format!("{base}{q}"), url.to_string())
            }
            Scheme::Hec => {
                let u = if query.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{query}")
                };
                (u.clone(), u)
            }
            _ => (url.to_string(), url.to_string()),
        };
        Ok(Destination {
            url: shown_url,
            scheme,
            host: host.to_string(),
            port,
            tls,
            target,
            token,
            id_key,
        })
    }

    /// A file-name-safe, stable id: the cursor directory under the state dir.
    /// The hash keeps two URLs that sanitize alike apart.
    pub fn id(&self) -> String {
        let scheme = match self.scheme {
            Scheme::SyslogTcp => "syslog-tcp",
            Scheme::SyslogTls => "syslog-tls",
            Scheme::Relp => "relp",
            Scheme::Webhook => "webhook",
            Scheme::Hec => "hec",
        };
        let host: String = self
            .host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let h = Sha256::digest(self.id_key.as_bytes());
        format!("{scheme}-{host}-{}-{}", self.port, hex::encode(&h[..4]))
    }

    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The URL with any `token=` value and any webhook query hidden, for error
/// messages about a URL that did not parse.
fn redact_for_error(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_syslog_schemes() {
        let d = Destination::parse("relp://127.0.0.1:2514").unwrap();
        assert_eq!(
            (d.scheme, d.host.as_str(), d.port),
            (Scheme::Relp, "127.0.0.1", 2514)
        );
        let d = Destination::parse("syslog+tls://[::1]").unwrap();
        assert_eq!(
            (d.scheme, d.host.as_str(), d.port, d.tls),
            (Scheme::SyslogTls, "::1", 6514, true)
        );
        assert_eq!(d.addr(), "[::1]:6514");
        let d = Destination::parse("syslog+tcp://logs.example:1514/").unwrap();
        assert_eq!(d.port, 1514);
        assert!(d.id().starts_with("syslog-tcp-logs.example-1514-"));
    }

    #[test]
    fn parses_webhooks_and_hides_their_query() {
        let d = Destination::parse("https://hooks.example/in/abc?key=s3cret&x=1").unwrap();
        assert_eq!(
            (d.scheme, d.host.as_str(), d.port, d.tls),
            (Scheme::Webhook, "hooks.example", 443, true)
        );
        assert_eq!(d.target, "/in/abc?key=s3cret&x=1");
        assert_eq!(d.url, "https://hooks.example/in/abc?…");
        assert!(!format!("{d:?}").contains("s3cret"));
        let d = Destination::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((d.target.as_str(), d.tls), ("/", false));
        assert!(d.id().starts_with("webhook-127.0.0.1-8080-"));
    }

    #[test]
    fn takes_the_hec_token_out_of_the_url() {
        let d = Destination::parse(
            "hec+https://splunk.example:8088/services/collector/event?token=0000-ab&index=audit",
        )
        .unwrap();
        assert_eq!(d.scheme, Scheme::Hec);
        assert_eq!(d.token.as_deref(), Some("0000-ab"));
        assert_eq!(d.target, "/services/collector/event?index=audit");
        assert_eq!(
            d.url,
            "hec+https://splunk.example:8088/services/collector/event?index=audit"
        );
        assert!(!format!("{d:?}").contains("0000-ab"));
        // Another token, same cursor.
        let e = Destination::parse(
            "hec+https://splunk.example:8088/services/collector/event?index=audit&token=zz",
        )
        .unwrap();
        assert_eq!(d.id(), e.id());
        let d = Destination::parse("hec+https://splunk.example").unwrap();
        assert_eq!((d.port, d.target.as_str(), d.token), (8088, "/", None));
    }

    #[test]
    fn refuses_bad_urls_clearly() {
        for (u, why) in [
            ("relp:/x", "SCHEME://"),
            ("ftp://x", "unknown scheme"),
            ("relp://x:0", "port"),
            ("relp://x:70000", "port"),
            ("relp://:5", "no host"),
            ("relp://x:5/p", "path"),
            ("http://hooks.example/in", "loopback"),
            ("hec+http://10.0.0.1:8088", "loopback"),
            ("https://u:p@hooks.example/", "credentials"),
            ("https://[::1/", "unclosed"),
        ] {
            let e = Destination::parse(u).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(u), "{u}: {e}");
        }
        let e = Destination::parse("hec+https://h/?token=a%20b c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("visible ASCII") && !e.contains("a%20b"), "{e}");
    }
}
