//! Canonical JSON for the log's value subset: objects, arrays, strings and
//! integers. Every record is hashed and stored in exactly one byte form, so a
//! verifier in any language can recompute hashes (docs/FORMAT.md).
//!
//! The form is RFC 8785 (JCS) restricted to that subset: members sorted by
//! key, no whitespace, strings escaped minimally exactly as serde_json and
//! Python's `json.dumps(ensure_ascii=False)` do. One deviation, documented in
//! FORMAT.md: integers are exact decimal digits even above 2^53.
//!
//! Two halves that must agree byte for byte (unit tests and a fuzz target
//! check it): [`write_value`] produces the form, [`Scanner`] accepts exactly
//! that form and nothing else, without allocating, so `verify` can check a
//! line and locate its chain fields in one pass.

mod index;

use index::{Index, Stop, View};
use serde_json::Value;

/// Deeper nesting is refused on both sides (records are at most 3 deep), so
/// neither the encoder nor the scanner can exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "field {key:?} holds {what}; the log stores only integers, strings, arrays and objects"
    )]
    Type { key: String, what: &'static str },
    #[error("key {key:?} is not printable ASCII without quotes or backslashes")]
    Key { key: String },
    #[error("values nest deeper than {MAX_DEPTH} levels")]
    Depth,
    #[error("field {key:?} is reserved for the chain (seq, prev_hash, hash, kind, time_ns)")]
    Reserved { key: String },
}

/// Why a byte string is not one canonical JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: {what}")]
pub struct ScanError {
    pub offset: usize,
    pub what: &'static str,
}

/// `a < b` for keys, without a memcmp call: keys are short, and the call
/// overhead showed up in profiles.
#[inline]
pub fn key_less(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// Keys are printable ASCII with nothing to escape: their byte order is then
/// also JCS's UTF-16 order and Python's code-point order.
pub fn valid_key(key: &[u8]) -> bool {
    key.iter()
        .all(|&c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
}

/// For each byte: 0 = copy as is, b'u' = `\u00XX`, else the letter after `\`.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = b'u';
        c += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a canonical JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let e = ESCAPE[c as usize];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        if e == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 15) as usize]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Appends the decimal digits of `v`.
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a non-integer number",
        _ => "an unsupported value",
    }
}

/// Appends the canonical form of `v`; `key` names the field in errors.
pub fn write_value(
    out: &mut Vec<u8>,
    key: &str,
    v: &Value,
    depth: usize,
) -> Result<(), EncodeError> {
    if depth >= MAX_DEPTH {
        return Err(EncodeError::Depth);
    }
    match v {
        Value::String(s) => write_str(out, s),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write_u64(out, u)
            } else if let Some(i) = n.as_i64() {
                write_i64(out, i)
            } else {
                return Err(EncodeError::Type {
                    key: key.into(),
                    what: type_name(v),
                });
            }
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, key, item, depth + 1)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // serde_json's map iterates sorted unless some crate turns on
            // its `preserve_order` feature: write directly while the keys
            // come in order, sort only if they do not.
            let start = out.len();
            out.push(b'{');
            let mut prev: Option<&str> = None;
            for (k, v) in map {
                if let Some(p) = prev {
                    if !key_less(p.as_bytes(), k.as_bytes()) {
                        out.truncate(start);
                        let mut members: Vec<(&str, &Value)> =
                            map.iter().map(|(k, v)| (k.as_str(), v)).collect();
                        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
                        return write_members(out, &members, depth + 1);
                    }
                    out.push(b',');
                }
                prev = Some(k);
                write_key(out, k)?;
                write_value(out, k, v, depth + 1)?;
            }
            out.push(b'}');
        }
        Value::Null | Value::Bool(_) => {
            return Err(EncodeError::Type {
                key: key.into(),
                what: type_name(v),
            });
        }
    }
    Ok(())
}

/// Appends `"key":` (the key must need no escaping).
pub fn write_key(out: &mut Vec<u8>, k: &str) -> Result<(), EncodeError> {
    if !valid_key(k.as_bytes()) {
        return Err(EncodeError::Key { key: k.into() });
    }
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
    Ok(())
}

/// Appends the lowercase hex digits of `bytes` (no quotes).
pub fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

/// Appends `{…}` for members already sorted by key (and without duplicates).
pub fn write_members(
    out: &mut Vec<u8>,
    members: &[(&str, &Value)],
    depth: usize,
) -> Result<(), EncodeError> {
    out.push(b'{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, k)?;
        write_value(out, k, v, depth)?;
    }
    out.push(b'}');
    Ok(())
}

/// The canonical bytes of a whole value (a convenience for config digests
/// and tests; the chain stage writes records member by member).
pub fn to_vec(v: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    write_value(&mut out, "", v, 0)?;
    Ok(out)
}

/// A top-level member the caller asked the scanner to pick out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Byte range of the whole member, `"key":value`.
    pub start: usize,
    pub end: usize,
    /// Byte range of the value (for a string: without the quotes).
    pub value: (usize, usize),
    /// The value when it is a non-negative integer that fits in a u64.
    pub uint: Option<u64>,
    /// Whether the value is a string with no escapes in it.
    pub plain_str: bool,
}

/// Validates that `b` is exactly one canonical JSON object and reports the
/// top-level members whose keys are in `wanted` (which must be sorted).
/// Allocation-free; `found[i]` corresponds to `wanted[i]`.
pub fn scan_object(
    b: &[u8],
    wanted: &[&[u8]],
    found: &mut [Option<Member>],
) -> Result<(), ScanError> {
    // The index first, then the UTF-8 check, which an all-ASCII line (the
    // index says so) does not need; the scanner itself then only looks at
    // ASCII structure, since multi-byte sequences never contain bytes below
    // 0x80.
    let index = Index::new(b);
    if !index.ascii()
        && let Err(e) = std::str::from_utf8(b)
    {
        return Err(ScanError {
            offset: e.valid_up_to(),
            what: "invalid UTF-8",
        });
    }
    let mut s = Scanner {
        b,
        i: 0,
        ix: index.view(),
        error: ScanError {
            offset: 0,
            what: "",
        },
    };
    if s.object(0, Some((wanted, found))).is_err() {
        return Err(s.error);
    }
    if s.i != b.len() {
        s.err("trailing bytes after the object");
        return Err(s.error);
    }
    Ok(())
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Where runs of string, key and digit bytes stop.
    ix: View<'a>,
    /// Why the scan failed, once a method returned [`Bail`].
    error: ScanError,
}

/// The scanner failed; the reason is in [`Scanner::error`]. A zero-sized
/// error keeps every hot method's result in registers (a `ScanError` in
/// each `Result` made them return through memory, measurably slower).
struct Bail;

type Wanted<'w, 'f> = (&'w [&'w [u8]], &'f mut [Option<Member>]);

impl<'a> Scanner<'a> {
    #[cold]
    fn err(&mut self, what: &'static str) -> Bail {
        self.fail_at(self.i, what)
    }

    #[cold]
    fn fail_at(&mut self, offset: usize, what: &'static str) -> Bail {
        self.error = ScanError { offset, what };
        Bail
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn eat(&mut self, c: u8, what: &'static str) -> Result<(), Bail> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn object(&mut self, depth: usize, mut wanted: Option<Wanted>) -> Result<(), Bail> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        self.eat(b'{', "expected '{'")?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let mut prev_key: Option<&'a [u8]> = None;
        // Keys arrive sorted and `wanted` is sorted: one cursor over it
        // finds every wanted key (a merge, not a search per key).
        let mut cursor = 0usize;
        loop {
            let start = self.i;
            let key = self.key()?;
            if let Some(p) = prev_key
                && !key_less(p, key)
            {
                return Err(self.fail_at(start, "keys not in sorted order, or repeated"));
            }
            prev_key = Some(key);
            self.eat(b':', "expected ':' after a key")?;
            let slot = wanted.as_ref().and_then(|(w, _)| {
                while w.get(cursor).is_some_and(|k| key_less(k, key)) {
                    cursor += 1;
                }
                w.get(cursor)
                    .is_some_and(|k| !key_less(key, k))
                    .then_some(cursor)
            });
            let vstart = self.i;
            let (nonneg_int, plain_str) = self.value(depth + 1)?;
            if let (Some(idx), Some((_, found))) = (slot, wanted.as_mut())
                && let Some(f) = found.get_mut(idx)
            {
                // Only wanted members pay for the integer's value.
                let uint = nonneg_int.then(|| {
                    self.b[vstart..self.i].iter().fold(0u64, |v, d| {
                        v.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
                    })
                });
                let value = if plain_str.is_some() {
                    (vstart + 1, self.i - 1)
                } else {
                    (vstart, self.i)
                };
                *f = Some(Member {
                    start,
                    end: self.i,
                    value,
                    uint,
                    plain_str: plain_str == Some(true),
                });
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    #[inline(always)]
    fn key(&mut self) -> Result<&'a [u8], Bail> {
        self.eat(b'"', "expected a key")?;
        let start = self.i;
        let b: &'a [u8] = self.b;
        self.i = self.ix.next(Stop::Key, start);
        match b.get(self.i) {
            Some(b'"') => {
                let key = &b[start..self.i];
                self.i += 1;
                Ok(key)
            }
            Some(_) => Err(self.err("keys must be printable ASCII without escapes")),
            None => Err(self.err("unterminated key")),
        }
    }

    /// Returns (whether it is a non-negative integer that fits in a u64,
    /// Some(no escapes) if a string).
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Result<(bool, Option<bool>), Bail> {
        match self.peek() {
            Some(b'"') => self.string().map(|plain| (false, Some(plain))),
            Some(b'{') => self.object(depth, None).map(|_| (false, None)),
            Some(b'[') => self.array(depth).map(|_| (false, None)),
            Some(b'-' | b'0'..=b'9') => self.integer().map(|nonneg| (nonneg, None)),
            _ => Err(self.err("expected a string, integer, array or object")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Bail> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        self.eat(b'[', "expected '['")?;
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    /// Returns whether the string had no escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<bool, Bail> {
        self.eat(b'"', "expected '\"'")?;
        let mut plain = true;
        loop {
            // Straight to the next quote, backslash or control byte (bytes
            // >= 0x80 never stop: UTF-8 was checked up front).
            self.i = self.ix.next(Stop::String, self.i);
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            match ESCAPE[c as usize] {
                0 => self.i += 1,
                b'"' => {
                    self.i += 1;
                    return Ok(plain);
                }
                b'\\' => {
                    plain = false;
                    self.escape()?;
                }
                _ => return Err(self.err("control character not escaped")),
            }
        }
    }

    /// One escape sequence, which must be the one the encoder writes.
    fn escape(&mut self) -> Result<(), Bail> {
        let at = self.i;
        const BAD: &str = "escape sequence not in canonical form";
        let Some(next) = self.b.get(at + 1).copied() else {
            return Err(self.fail_at(at, BAD));
        };
        match next {
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.i += 2;
                Ok(())
            }
            b'u' => {
                let Some(hex) = self.b.get(at + 2..at + 6) else {
                    return Err(self.fail_at(at, BAD));
                };
                let digit = |c: u8| HEX.iter().position(|&h| h == c);
                let (Some(0), Some(0), Some(hi), Some(lo)) =
                    (digit(hex[0]), digit(hex[1]), digit(hex[2]), digit(hex[3]))
                else {
                    return Err(self.fail_at(at, BAD));
                };
                // Only control characters without a short form use \u00XX.
                if ESCAPE[hi * 16 + lo] != b'u' {
                    return Err(self.fail_at(at, BAD));
                }
                self.i += 6;
                Ok(())
            }
            _ => Err(self.fail_at(at, BAD)),
        }
    }

    /// `-?(0|[1-9][0-9]*)` within i64/u64 range, never `-0`, never a float.
    /// The range is checked on the digits (no arithmetic per digit); returns
    /// whether it is non-negative.
    #[inline(always)]
    fn integer(&mut self) -> Result<bool, Bail> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let digits_start = self.i;
        self.i = self.ix.next(Stop::Digits, self.i);
        let digits = &self.b[digits_start..self.i];
        match digits {
            [] => return Err(self.err("expected digits")),
            [b'0', _, ..] => return Err(self.fail_at(start, "integer with a leading zero")),
            [b'0'] if neg => return Err(self.fail_at(start, "-0 is not canonical")),
            _ => {}
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(self.err("not an integer"));
        }
        // Same length: decimal strings compare like their values.
        let limit: &[u8] = if neg {
            b"9223372036854775808"
        } else {
            b"18446744073709551615"
        };
        if digits.len() > limit.len() || (digits.len() == limit.len() && digits > limit) {
            return Err(self.fail_at(start, "integer out of range"));
        }
        Ok(!neg)
    }
}

/// Whether `b` is exactly one canonical JSON object (any members).
pub fn is_canonical_object(b: &[u8]) -> bool {
    scan_object(b, &[], &mut []).is_ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn enc(v: &Value) -> String {
        String::from_utf8(to_vec(v).unwrap()).unwrap()
    }

    #[test]
    fn matches_serde_json_for_our_subset() {
        let v = json!({
            "z": 1, "a": [1, -2, u64::MAX, i64::MIN, "x"], "m": {"b": "", "a": {}},
            "s": "q\"b\\s/\u{0}\u{1f}\u{7f}\u{8}\t\n\u{c}\r é 𝄞 \u{2028}",
        });
        assert_eq!(enc(&v), serde_json::to_string(&v).unwrap());
        assert!(is_canonical_object(enc(&v).as_bytes()));
    }

    #[test]
    fn refuses_values_outside_the_subset() {
        for bad in [
            json!({"f": 1.5}),
            json!({"b": true}),
            json!({"n": null}),
            json!({"x": [false]}),
        ] {
            assert!(
                matches!(to_vec(&bad), Err(EncodeError::Type { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            to_vec(&json!({"é": 1})),
            Err(EncodeError::Key { .. })
        ));
        assert!(matches!(
            to_vec(&json!({"a\"": 1})),
            Err(EncodeError::Key { .. })
        ));
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH + 1 {
            deep = json!([deep]);
        }
        assert_eq!(to_vec(&json!({"d": deep})), Err(EncodeError::Depth));
    }

    #[test]
    fn scanner_rejects_every_non_canonical_variant() {
        let bad: &[&str] = &[
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{ "a":1}"#,
            r#"{"a":01}"#,
            r#"{"a":-0}"#,
            r#"{"a":1.0}"#,
            r#"{"a":1e3}"#,
            r#"{"a":true}"#,
            r#"{"a":null}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":"\u000a"}"#,
            r#"{"a":"\u001F"}"#,
            "{\"a\":\"\t\"}",
            r#"{"a":"x"}x"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":-9223372036854775809}"#,
            r#"{"a":[1,]}"#,
            r#"{"a\u0041":1}"#,
            r#"["a"]"#,
            "",
            "{",
        ];
        for b in bad {
            assert!(!is_canonical_object(b.as_bytes()), "accepted {b}");
        }
        assert!(!is_canonical_object(b"{\"a\":\"\xff\"}"));
        let good: &[&str] = &[
            r#"{}"#,
            r#"{"":[],"a":-9223372036854775808,"b":18446744073709551615,"c":"\u001f\n"}"#,
        ];
        for g in good {
            assert!(is_canonical_object(g.as_bytes()), "rejected {g}");
        }
    }

    #[test]
    fn scanner_reports_wanted_members() {
        let line = br#"{"a":{"seq":9},"hash":"ab","seq":7,"z":"q\n"}"#;
        let wanted: [&[u8]; 3] = [b"hash", b"seq", b"z"];
        let mut found = [None; 3];
        scan_object(line, &wanted, &mut found).unwrap();
        let hash = found[0].unwrap();
        assert_eq!(&line[hash.start..hash.end], br#""hash":"ab""#);
        assert_eq!(&line[hash.value.0..hash.value.1], b"ab");
        assert!(hash.plain_str);
        assert_eq!(found[1].unwrap().uint, Some(7));
        assert!(!found[2].unwrap().plain_str);
    }

    /// Differential check: the scanner accepts a byte string exactly when
    /// re-encoding what serde_json parses from it gives the same bytes.
    #[test]
    fn scanner_agrees_with_reencoding_on_mutations() {
        let base = enc(&json!({"a": [1, "x\ty"], "b": {"c": -5, "d": "é"}, "e": 12345}));
        let alphabet = b"{}[]\",:-0123456789abetu\\ \t\x01\x7f\xc3\xa9";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut b = base.clone().into_bytes();
            for _ in 0..(next() % 3 + 1) {
                let pos = (next() as usize) % (b.len() + 1);
                let c = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 if pos < b.len() => b[pos] = c,
                    1 if pos < b.len() => {
                        b.remove(pos);
                    }
                    _ => b.insert(pos, c),
                }
            }
            let reencoded = serde_json::from_slice::<Value>(&b)
                .ok()
                .filter(Value::is_object)
                .and_then(|v| to_vec(&v).ok());
            assert_eq!(
                is_canonical_object(&b),
                reencoded.as_deref() == Some(&b[..]),
                "disagree on {:?}",
                String::from_utf8_lossy(&b)
            );
        }
    }
}
