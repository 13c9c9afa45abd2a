//! RFC 5424 messages, one per record:
//!
//! `<110>1 TIMESTAMP HOSTNAME sandbox-audit - KIND [sandbox-audit@32473
//! origin="…" seq="N" hash="…"] RECORD-JSON`
//!
//! PRI 110 = facility 13 (log audit), severity 6 (informational). The
//! structured data carries what a receiver needs to deduplicate (origin +
//! seq) and check (hash) without parsing the MSG; the MSG is the record's
//! canonical JSON line exactly as stored, so its hash can be recomputed.
//! Framing for TCP/TLS is octet counting (RFC 6587 3.4.1, RFC 5425 4.3):
//! `LEN SP MESSAGE`.

use crate::reader::Stored;

/// The private SD-ID (32473 is the enterprise number RFC 5612 reserves for
/// documentation).
pub const SD_ID: &str = "sandbox-audit@32473";
pub const APP_NAME: &str = "sandbox-audit";
const PRI: u32 = 13 * 8 + 6;

/// The local host name, as RFC 5424 HOSTNAME (printable ASCII, ≤ 255).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let h: String = String::from_utf8_lossy(&buf[..end])
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .collect();
    if ok && !h.is_empty() { h } else { "-".into() }
}

/// RFC 3339 UTC with microseconds, as RFC 5424 TIMESTAMP allows.
pub fn timestamp(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// SD-PARAM value escaping (RFC 5424 6.3.3): `"`, `\` and `]`.
fn sd_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// MSGID: the record kind, limited to what RFC 5424 allows (1–32 printable
/// ASCII).
fn msgid(kind: &str) -> String {
    let k: String = kind
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    if k.is_empty() { "-".into() } else { k }
}

/// The RFC 5424 message of a record (without framing).
pub fn message(rec: &Stored, origin: &str, host: &str) -> Vec<u8> {
    let mut head = format!(
        "<{PRI}>1 {} {host} {APP_NAME} - {} [{SD_ID} origin=\"",
        timestamp(rec.time_ns),
        msgid(&rec.kind)
    );
    sd_escape(origin, &mut head);
    head.push_str(&format!(
        "\" seq=\"{}\" hash=\"{}\"] ",
        rec.seq,
        hex::encode(rec.hash)
    ));
    let mut out = head.into_bytes();
    out.extend_from_slice(&rec.line);
    out
}

/// Octet-counting frame: `LEN SP MSG`.
pub fn frame(msg: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::Position;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            timestamp(1_709_164_800_123_456_789),
            "2024-02-29T00:00:00.123456Z"
        );
        assert_eq!(
            timestamp(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn message_carries_origin_seq_hash_and_the_line() {
        let rec = Stored {
            seq: 42,
            hash: [0xab; 32],
            time_ns: 0,
            kind: "exec".into(),
            line: br#"{"kind":"exec","seq":42}"#.to_vec(),
            after: Position::default(),
        };
        let m = String::from_utf8(message(&rec, "host \"a\"]", "h")).unwrap();
        assert_eq!(
            m,
            format!(
                "<110>1 1970-01-01T00:00:00.000000Z h sandbox-audit - exec \
                 [sandbox-audit@32473 origin=\"host \\\"a\\\"\\]\" seq=\"42\" hash=\"{}\"] \
                 {{\"kind\":\"exec\",\"seq\":42}}",
                "ab".repeat(32)
            )
        );
        let mut f = Vec::new();
        frame(b"abc", &mut f);
        assert_eq!(f, b"3 abc");
    }
}
