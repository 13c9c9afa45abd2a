//! The question name of a DNS query datagram (RFC 1035 §4.1.2), for the
//! `dns_query` field of sends to port 53.

/// Returns (name, qtype), or None when the payload is not a plain query.
pub fn question(payload: &[u8]) -> Option<(String, u16)> {
    let qdcount = u16::from_be_bytes([*payload.get(4)?, *payload.get(5)?]);
    if qdcount == 0 {
        return None;
    }
    let mut at = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = *payload.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers do not occur in a question we send; refuse them.
        if len > 63 {
            return None;
        }
        let label = payload.get(at..at + len)?;
        labels.push(
            label
                .iter()
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
                .collect(),
        );
        at += len;
    }
    let qtype = u16::from_be_bytes([*payload.get(at)?, *payload.get(at + 1)?]);
    Some((labels.join("."), qtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_query() {
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend(b"\x07example\x03com\x00\x00\x1c\x00\x01");
        assert_eq!(question(&q), Some(("example.com".into(), 28)));
        assert_eq!(question(&q[..20]), None);
        assert_eq!(question(&[]), None);
        let mut ptr = q.clone();
        ptr[12] = 0xc0;
        assert_eq!(question(&ptr), None);
    }
}
