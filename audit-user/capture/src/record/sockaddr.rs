//! Socket addresses as captured from user memory → record objects.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use super::put_bytes;

pub fn family_name(family: i64) -> String {
    match family as i32 {
        libc::AF_UNIX => "unix".into(),
        libc::AF_INET => "inet".into(),
        libc::AF_INET6 => "inet6".into(),
        libc::AF_NETLINK => "netlink".into(),
        libc::AF_PACKET => "packet".into(),
        libc::AF_VSOCK => "vsock".into(),
        other => other.to_string(),
    }
}

/// `{family, address, port}` for IP, `{family, path}` or `{family, abstract}`
/// for unix sockets, `{family, raw_b64}` for anything else.
pub fn decode(raw: &[u8]) -> Value {
    let mut m = Map::new();
    let Some(fam) = raw.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
        m.insert("family".into(), "truncated".into());
        put_bytes(&mut m, "raw", raw);
        return Value::Object(m);
    };
    m.insert("family".into(), family_name(fam as i64).into());
    let port = |b: &[u8]| u16::from_be_bytes([b[2], b[3]]);
    match fam as i32 {
        libc::AF_INET if raw.len() >= 8 => {
            m.insert("port".into(), port(raw).into());
            let a = Ipv4Addr::new(raw[4], raw[5], raw[6], raw[7]);
            m.insert("address".into(), a.to_string().into());
        }
        libc::AF_INET6 if raw.len() >= 24 => {
            m.insert("port".into(), port(raw).into());
            let mut b = [0u8; 16];
            b.copy_from_slice(&raw[8..24]);
            m.insert("address".into(), Ipv6Addr::from(b).to_string().into());
        }
        libc::AF_UNIX => {
            let path = &raw[2..];
            match path.first() {
                None => {
                    m.insert("unnamed".into(), 1.into());
                }
                Some(0) => put_bytes(&mut m, "abstract", &path[1..]),
                Some(_) => {
                    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                    put_bytes(&mut m, "path", &path[..end]);
                }
            }
        }
        _ => {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            m.insert("raw_b64".into(), b64.into());
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v4(port: u16, a: [u8; 4]) -> Vec<u8> {
        let mut b = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        b.extend(port.to_be_bytes());
        b.extend(a);
        b.extend([0; 8]);
        b
    }

    #[test]
    fn inet_inet6_unix() {
        assert_eq!(
            decode(&v4(53, [127, 0, 0, 1])),
            json!({"family":"inet","address":"127.0.0.1","port":53})
        );
        let mut b = (libc::AF_INET6 as u16).to_ne_bytes().to_vec();
        b.extend(443u16.to_be_bytes());
        b.extend([0; 4]);
        b.extend(Ipv6Addr::LOCALHOST.octets());
        b.extend([0; 4]);
        assert_eq!(
            decode(&b),
            json!({"family":"inet6","address":"::1","port":443})
        );
        let mut u = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        u.extend(b"/run/x.sock\0junk");
        assert_eq!(decode(&u), json!({"family":"unix","path":"/run/x.sock"}));
        let mut a = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        a.extend(b"\0hidden");
        assert_eq!(decode(&a), json!({"family":"unix","abstract":"hidden"}));
    }

    #[test]
    fn short_and_odd_input_never_panics() {
        for n in 0..30 {
            let _ = decode(&v4(1, [1, 2, 3, 4])[..n.min(16)]);
            let _ = decode(&vec![0xff; n]);
        }
        assert_eq!(decode(&[2]), json!({"family":"truncated","raw":"\u{2}"}));
    }
}
