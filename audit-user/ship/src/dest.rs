//! `--ship URL`: which transport, where, and the state-directory name of
//! its cursor.

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub url: String,
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl Destination {
    pub fn parse(url: &str) -> Result<Destination, ShipError> {
        let bad = |why: &str| ShipError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected SCHEME://HOST:PORT"))?;
        let (scheme, default_port) = match scheme {
            "syslog+tcp" => (Scheme::SyslogTcp, 514),
            "syslog+tls" => (Scheme::SyslogTls, 6514),
            "relp" => (Scheme::Relp, 2514),
            "https" | "hec+https" => {
                return Err(bad(
                    "webhook and Splunk HEC shipping are not implemented yet",
                ));
            }
            _ => {
                return Err(bad(
                    "unknown scheme (supported: syslog+tcp, syslog+tls, relp)",
                ));
            }
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') || authority.contains('?') {
            return Err(bad("a path is not allowed for this scheme"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
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
        Ok(Destination {
            url: url.to_string(),
            scheme,
            host: host.to_string(),
            port,
        })
    }

    /// A file-name-safe, stable id: the cursor directory under the state dir.
    /// The hash keeps two URLs that sanitize alike apart.
    pub fn id(&self) -> String {
        let scheme = match self.scheme {
            Scheme::SyslogTcp => "syslog-tcp",
            Scheme::SyslogTls => "syslog-tls",
            Scheme::Relp => "relp",
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
        let h = Sha256::digest(self.url.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_schemes() {
        let d = Destination::parse("relp://127.0.0.1:2514").unwrap();
        assert_eq!(
            (d.scheme, d.host.as_str(), d.port),
            (Scheme::Relp, "127.0.0.1", 2514)
        );
        let d = Destination::parse("syslog+tls://[::1]").unwrap();
        assert_eq!(
            (d.scheme, d.host.as_str(), d.port),
            (Scheme::SyslogTls, "::1", 6514)
        );
        assert_eq!(d.addr(), "[::1]:6514");
        let d = Destination::parse("syslog+tcp://logs.example:1514/").unwrap();
        assert_eq!(d.port, 1514);
        assert!(d.id().starts_with("syslog-tcp-logs.example-1514-"));
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
            ("https://x/hook", "not implemented"),
        ] {
            let e = Destination::parse(u).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(u), "{u}: {e}");
        }
    }
}
