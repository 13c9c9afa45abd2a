//! The fast path's own fast path: a line in canonical form (as the store
//! writes every record) read into the same [`Lite`] as serde would read it,
//! with audit-log's allocation-free canonical scanner (verify's) instead of
//! serde's field-by-field deserializer, which was most of a replay's
//! parsing time. Whatever this scan does not handle itself — a line not
//! in canonical form, an escaped string, a value of an unexpected type, a
//! missing required field — it leaves to serde (`None`), so serde's reading
//! stays the definition (tested: both read the same `Lite`).

use std::borrow::Cow;

use audit_log::canonical::{Member, scan_object};

use crate::lite::{Lite, LiteAddr, LiteProc};

/// The top-level keys [`Lite`] reads, sorted (as the scanner wants them).
const TOP: [&[u8]; 24] = [
    b"access",
    b"argv",
    b"argv_truncated",
    b"child_pid",
    b"child_tid",
    b"core_dumped",
    b"errno",
    b"errno_name",
    b"exit_code",
    b"filename",
    b"hash",
    b"kind",
    b"namespace",
    b"new_path",
    b"path",
    b"proc",
    b"remote",
    b"result",
    b"ret",
    b"seq",
    b"signal",
    b"target",
    b"thread",
    b"time_ns",
];

const PROC: [&[u8]; 9] = [
    b"cgroup_id",
    b"comm",
    b"egid",
    b"euid",
    b"gid",
    b"pid",
    b"ppid",
    b"tid",
    b"uid",
];

const ADDR: [&[u8]; 5] = [b"abstract", b"address", b"family", b"path", b"port"];

/// Left to serde.
struct Defer;

type Got<T> = Result<Option<T>, Defer>;

/// The members of one canonical object.
struct Members<'a, const N: usize> {
    b: &'a [u8],
    found: [Option<Member>; N],
}

impl<'a, const N: usize> Members<'a, N> {
    fn scan(b: &'a [u8], keys: &[&[u8]; N]) -> Result<Self, Defer> {
        let mut found = [None; N];
        scan_object(b, keys, &mut found).map_err(|_| Defer)?;
        Ok(Members { b, found })
    }

    fn value(&self, m: &Member) -> &'a [u8] {
        &self.b[m.value.0..m.value.1]
    }

    /// A string value has its opening quote just before its range.
    fn is_str(&self, m: &Member) -> bool {
        m.value.0 > 0 && self.b[m.value.0 - 1] == b'"'
    }

    fn u64(&self, i: usize) -> Got<u64> {
        match &self.found[i] {
            None => Ok(None),
            Some(m) => m.uint.map(Some).ok_or(Defer),
        }
    }

    fn i64(&self, i: usize) -> Got<i64> {
        match &self.found[i] {
            None => Ok(None),
            Some(m) => match m.uint {
                Some(u) => i64::try_from(u).map(Some).map_err(|_| Defer),
                None if !self.is_str(m) && self.value(m).first() == Some(&b'-') => {
                    std::str::from_utf8(self.value(m))
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .map(Some)
                        .ok_or(Defer)
                }
                None => Err(Defer),
            },
        }
    }

    fn str(&self, i: usize) -> Got<Cow<'a, str>> {
        match &self.found[i] {
            None => Ok(None),
            Some(m) if m.plain_str => std::str::from_utf8(self.value(m))
                .map(|s| Some(Cow::Borrowed(s)))
                .map_err(|_| Defer),
            Some(_) => Err(Defer),
        }
    }

    /// An object value's bytes (braces included).
    fn object(&self, i: usize) -> Got<&'a [u8]> {
        match &self.found[i] {
            None => Ok(None),
            Some(m) if !self.is_str(m) && self.value(m).first() == Some(&b'{') => {
                Ok(Some(self.value(m)))
            }
            Some(_) => Err(Defer),
        }
    }

    /// An array of plain strings.
    fn strings(&self, i: usize) -> Got<Vec<Cow<'a, str>>> {
        let Some(m) = &self.found[i] else {
            return Ok(None);
        };
        let a = self.value(m);
        if self.is_str(m) || a.first() != Some(&b'[') {
            return Err(Defer);
        }
        // Canonical, so `[` … `]` with `"…"` elements split by commas; a
        // plain string holds no quote or backslash.
        let inner = &a[1..a.len() - 1];
        let mut out = Vec::new();
        let mut at = 0;
        while at < inner.len() {
            if inner[at] != b'"' {
                return Err(Defer);
            }
            let len = memchr::memchr2(b'"', b'\\', &inner[at + 1..]).ok_or(Defer)?;
            let end = at + 1 + len;
            if inner[end] != b'"' {
                return Err(Defer);
            }
            out.push(Cow::Borrowed(
                std::str::from_utf8(&inner[at + 1..end]).map_err(|_| Defer)?,
            ));
            at = end + 1;
            match inner.get(at) {
                None => {}
                Some(b',') => at += 1,
                Some(_) => return Err(Defer),
            }
        }
        Ok(Some(out))
    }
}

/// `Some` when the line is canonical and fits the scan; `None` leaves it
/// to serde.
pub fn lite(line: &[u8]) -> Option<Lite<'_>> {
    read(line).ok()
}

fn read(line: &[u8]) -> Result<Lite<'_>, Defer> {
    let t = Members::scan(line, &TOP)?;
    let proc_ = match t.object(15)? {
        None => None,
        Some(b) => {
            let p = Members::scan(b, &PROC)?;
            Some(LiteProc {
                pid: p.u64(5)?.ok_or(Defer)?,
                tid: p.u64(7)?,
                ppid: p.u64(6)?,
                uid: p.u64(8)?,
                gid: p.u64(4)?,
                euid: p.u64(3)?,
                egid: p.u64(2)?,
                comm: p.str(1)?,
                cgroup_id: p.u64(0)?,
            })
        }
    };
    let remote = match t.object(16)? {
        None => None,
        Some(b) => {
            let a = Members::scan(b, &ADDR)?;
            Some(LiteAddr {
                family: a.str(2)?,
                address: a.str(1)?,
                port: a.u64(4)?,
                path: a.str(3)?,
                abstract_name: a.str(0)?,
            })
        }
    };
    Ok(Lite {
        seq: t.u64(19)?.ok_or(Defer)?,
        time_ns: t.u64(23)?.ok_or(Defer)?,
        kind: t.str(11)?.ok_or(Defer)?,
        hash: t.str(10)?.ok_or(Defer)?,
        proc_,
        result: t.str(17)?,
        path: t.str(14)?,
        new_path: t.str(13)?,
        filename: t.str(9)?,
        target: t.str(21)?,
        namespace: t.str(12)?,
        child_pid: t.u64(3)?,
        child_tid: t.u64(4)?,
        thread: t.u64(22)?,
        exit_code: t.i64(8)?,
        signal: t.i64(20)?,
        core_dumped: t.u64(5)?,
        argv: t.strings(1)?,
        argv_truncated: t.u64(2)?,
        access: t.str(0)?,
        errno_name: t.str(7)?,
        errno: t.i64(6)?,
        ret: t.i64(18)?,
        remote,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn the_key_lists_are_sorted_as_the_scanner_needs() {
        for keys in [&TOP[..], &PROC[..], &ADDR[..]] {
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        }
    }

    fn canonical(v: &Value) -> Vec<u8> {
        audit_log::canonical::to_vec(v).unwrap()
    }

    /// Every line the scan reads, it reads as serde does; the lines it
    /// leaves to serde are the odd ones.
    #[test]
    fn the_scan_reads_what_serde_reads_or_leaves_the_line_to_it() {
        let proc_ = json!({"pid": 7, "tid": 8, "ppid": 1, "uid": 1000, "gid": 1000,
            "euid": 0, "egid": 0, "cgroup_id": 99, "comm": "sh", "pid_ns": 4026531836u64});
        let base = json!({"seq": 5, "time_ns": 1_796_177_375_194_178_408u64, "kind": "exec",
            "hash": "ab".repeat(32), "prev_hash": "00".repeat(32), "proc": proc_,
            "filename": "/usr/bin/git", "argv": ["git", "status", "", "é😀"],
            "argv_truncated": 0, "result": "success", "ret": 0});
        let mut read = Vec::new();
        let mut left = Vec::new();
        let mut variants: Vec<Value> = vec![base.clone()];
        let mut with = |k: &str, v: Value| {
            let mut x = base.clone();
            x[k] = v;
            variants.push(x);
        };
        with("argv", json!([]));
        with("argv", json!(["a\"b", "c"]));
        with("argv", json!(["a", 5]));
        with("argv", json!("notalist"));
        with("argv", json!([["nested"]]));
        with("filename", json!("tab\there"));
        with("filename", json!(5));
        with("filename", json!({"a": 1}));
        with("exit_code", json!(-3));
        with("exit_code", json!(i64::MIN));
        with("exit_code", json!(u64::MAX));
        with("exit_code", json!(i64::MAX));
        with("exit_code", json!("-3"));
        with("signal", json!(9));
        with("child_pid", json!(-1));
        with("child_pid", json!(u64::MAX));
        with("thread", json!("1"));
        with("seq", json!(-1));
        with("seq", json!("5"));
        with("kind", json!(7));
        with("kind", json!("we\u{1}ird"));
        with("hash", json!(["x"]));
        with("proc", json!([7, 8, 1, 0, 0, 0, 0, "sh", 99]));
        with("proc", json!("x"));
        with("proc", json!({"tid": 8}));
        with("proc", json!({"pid": -7}));
        with("proc", json!({"pid": 7, "comm": "a\nb"}));
        with("proc", json!({"pid": 7, "comm": ["sh"]}));
        with(
            "proc",
            json!({"pid": 7, "extra": {"deep": [1, {"x": "y"}]}}),
        );
        with(
            "remote",
            json!({"family": "inet", "address": "10.0.2.15", "port": 443}),
        );
        with(
            "remote",
            json!({"family": "unix", "path": "/run/x", "abstract": "n"}),
        );
        with("remote", json!({"family": "inet", "port": -1}));
        with("remote", json!({"family": "inet", "port": "443"}));
        with("remote", json!([1]));
        with("result", json!("failure"));
        with("errno", json!(-111));
        with("errno_name", json!("ECONNREFUSED"));
        with("access", json!("read"));
        with("path", json!("/a\u{7f}b"));
        with("new_path", json!("/x"));
        with("target", json!("/y"));
        with("namespace", json!("net"));
        with("core_dumped", json!(1));
        with("unrelated", json!({"a": [1, 2, {"b": "c\"d"}]}));
        for drop in ["seq", "time_ns", "kind", "hash", "proc", "argv"] {
            let mut x = base.clone();
            x.as_object_mut().unwrap().remove(drop);
            variants.push(x);
        }
        let mut lines: Vec<Vec<u8>> = variants.iter().map(canonical).collect();
        // Not canonical: serde's alone.
        lines.push(serde_json::to_vec_pretty(&base).unwrap());
        lines.push(br#"{"seq":1,"seq":2,"time_ns":1,"kind":"open","hash":"x"}"#.to_vec());
        lines.push(br#"{"time_ns":1,"seq":1,"kind":"open","hash":"x"}"#.to_vec());
        lines.push(br#"{"seq":1,"time_ns":1,"kind":"open","hash":"x","path":null}"#.to_vec());
        lines.push(br#"{"seq":1.0,"time_ns":1,"kind":"open","hash":"x"}"#.to_vec());
        lines.push(b"{\"hash\":\"x\",\"kind\":\"open\",\"seq\":1,\"time_ns\":1} ".to_vec());
        lines.push(vec![0xff, b'{', b'}']);
        for line in &lines {
            let serde: Option<Lite> = serde_json::from_slice(line).ok();
            match lite(line) {
                Some(l) => {
                    assert_eq!(
                        Some(&l),
                        serde.as_ref(),
                        "{}",
                        String::from_utf8_lossy(line)
                    );
                    read.push(line);
                }
                None => left.push(line),
            }
        }
        // The canonical lines of the expected types are the scan's.
        assert!(read.len() >= 20, "{} read by the scan", read.len());
        assert!(left.len() >= 30, "{} left to serde", left.len());
    }
}
