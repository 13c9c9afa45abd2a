//! `--ship-format native|ocsf|ecs`: what each shipped record's payload is
//! (the syslog MSG, the webhook's NDJSON line, the HEC `event`).
//!
//! - `native`: the record's canonical JSON line exactly as stored.
//! - `ocsf`: an OCSF 1.3 event (class by kind, docs/SHIPPING.md "Shipped
//!   formats"), the canonical line in `raw_data`, and origin, seq and hash
//!   in `unmapped.sandbox_audit` (seq also in `metadata.sequence`).
//! - `ecs`: an Elastic Common Schema document, the canonical line in
//!   `event.original`, the hash in `event.hash`, origin, seq and hash in
//!   `sandbox_audit`.
//!
//! Every mapped event thus still carries the whole record byte for byte:
//! a receiver can deduplicate by (origin, seq), recompute the hash, and
//! `verify --anchor` / `--against` read the record back out of it
//! ([`crate::received`]). Checkpoints are events of their own (Base Event).

use std::str::FromStr;

use serde_json::{Map, Value, json};

use crate::{reader::Stored, syslog};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShipFormat {
    #[default]
    Native,
    Ocsf,
    Ecs,
}

impl FromStr for ShipFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<ShipFormat, String> {
        match s {
            "native" => Ok(ShipFormat::Native),
            "ocsf" => Ok(ShipFormat::Ocsf),
            "ecs" => Ok(ShipFormat::Ecs),
            _ => Err(format!(
                "unknown ship format `{s}` (expected native, ocsf or ecs)"
            )),
        }
    }
}

/// The OCSF schema version the mapping follows.
pub const OCSF_VERSION: &str = "1.3.0";

/// An OCSF class and activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OcsfClass {
    pub class_uid: u32,
    pub activity_id: u32,
}

const PROCESS: u32 = 1007;
const FILE: u32 = 1001;
const KERNEL_EXT: u32 = 1002;
const NETWORK: u32 = 4001;
const DNS: u32 = 4003;
const BASE: u32 = 0;
const OTHER: u32 = 99;

fn str_field<'a>(r: &'a Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The OCSF class and activity of a record (the table in FORMAT.md's
/// kinds and SHIPPING.md's "Shipped formats").
pub fn ocsf_class(kind: &str, r: &Map<String, Value>) -> OcsfClass {
    let c = |class_uid, activity_id| OcsfClass {
        class_uid,
        activity_id,
    };
    match kind {
        "exec" | "fork" => c(PROCESS, 1),
        "exit" => c(PROCESS, 2),
        "setuid" | "setgid" | "setgroups" => c(PROCESS, 5),
        "ptrace" => c(PROCESS, 4),
        "process_vm" if str_field(r, "syscall") == "process_vm_writev" => c(PROCESS, 4),
        "io_uring_setup" | "io_uring_enter" | "io_uring_register" | "capset" | "kill"
        | "process_vm" | "pidfd_open" | "pidfd_getfd" | "chroot" | "seccomp" | "prctl"
        | "unshare" | "setns" => c(PROCESS, OTHER),
        "open" => c(FILE, 14),
        "write" if r.contains_key("remote") => c(NETWORK, 6),
        "write" | "truncate" => c(FILE, 3),
        "unlink" | "rmdir" => c(FILE, 4),
        "rename" => c(FILE, 5),
        "mkdir" | "link" | "symlink" | "memfd_create" => c(FILE, 1),
        "chmod" | "chown" => c(FILE, 7),
        "chattr" => c(FILE, 6),
        "mount" | "pivot_root" => c(FILE, 12),
        "umount" => c(FILE, 13),
        "name_to_handle" => c(FILE, OTHER),
        "connect" => match (str_field(r, "result"), str_field(r, "errno_name")) {
            ("failure" | "denied", "ECONNREFUSED") => c(NETWORK, 5),
            ("failure" | "denied", _) => c(NETWORK, 4),
            _ => c(NETWORK, 1),
        },
        "accept" => c(NETWORK, 1),
        "listen" => c(NETWORK, 7),
        "send" if r.contains_key("dns_query") => c(DNS, 1),
        "send" => c(NETWORK, 6),
        "socket" | "bind" => c(NETWORK, OTHER),
        "module_load" => c(KERNEL_EXT, 1),
        "module_delete" => c(KERNEL_EXT, 2),
        "bpf" => c(KERNEL_EXT, OTHER),
        _ => c(BASE, OTHER),
    }
}

fn class_name(class: u32) -> &'static str {
    match class {
        PROCESS => "Process Activity",
        FILE => "File System Activity",
        KERNEL_EXT => "Kernel Extension Activity",
        NETWORK => "Network Activity",
        DNS => "DNS Activity",
        _ => "Base Event",
    }
}

fn category_name(category: u32) -> &'static str {
    match category {
        1 => "System Activity",
        4 => "Network Activity",
        _ => "Uncategorized",
    }
}

fn activity_name(c: OcsfClass, kind: &str) -> String {
    let n = match (c.class_uid, c.activity_id) {
        (_, OTHER) => "Other",
        (PROCESS, 1) => "Launch",
        (PROCESS, 2) => "Terminate",
        (PROCESS, 4) => "Inject",
        (PROCESS, 5) => "Set User ID",
        (FILE, 1) => "Create",
        (FILE, 3) => "Update",
        (FILE, 4) => "Delete",
        (FILE, 5) => "Rename",
        (FILE, 6) => "Set Attributes",
        (FILE, 7) => "Set Security",
        (FILE, 12) => "Mount",
        (FILE, 13) => "Unmount",
        (FILE, 14) => "Open",
        (NETWORK, 1) => "Open",
        (NETWORK, 4) => "Fail",
        (NETWORK, 5) => "Refuse",
        (NETWORK, 6) => "Traffic",
        (NETWORK, 7) => "Listen",
        (DNS, 1) => "Query",
        (KERNEL_EXT, 1) => "Load",
        (KERNEL_EXT, 2) => "Unload",
        _ => return kind.to_string(),
    };
    n.to_string()
}

/// The acting process, when the record has one.
fn proc_of(r: &Map<String, Value>) -> Option<&Map<String, Value>> {
    r.get("proc").and_then(Value::as_object)
}

/// A socket address as an endpoint (`ip`/`port`, or a unix path).
fn endpoint(a: &Value) -> Option<Value> {
    let a = a.as_object()?;
    let mut e = Map::new();
    if let Some(ip) = a.get("address") {
        e.insert("ip".into(), ip.clone());
    }
    if let Some(p) = a.get("port") {
        e.insert("port".into(), p.clone());
    }
    if let Some(p) = a.get("path") {
        e.insert("path".into(), p.clone());
    }
    (!e.is_empty()).then_some(Value::Object(e))
}

fn status(r: &Map<String, Value>) -> (u32, &'static str, &'static str) {
    match str_field(r, "result") {
        "success" => (1, "Success", "success"),
        "failure" | "denied" => (2, "Failure", "failure"),
        _ => (0, "Unknown", "unknown"),
    }
}

/// The OCSF event of a record.
pub fn ocsf(rec: &Stored, r: &Map<String, Value>, origin: &str, host: &str) -> Value {
    let c = ocsf_class(&rec.kind, r);
    let category = c.class_uid / 1000;
    let (status_id, status_name, _) = status(r);
    let mut e = json!({
        "class_uid": c.class_uid,
        "class_name": class_name(c.class_uid),
        "category_uid": category,
        "category_name": category_name(category),
        "activity_id": c.activity_id,
        "activity_name": activity_name(c, &rec.kind),
        "type_uid": u64::from(c.class_uid) * 100 + u64::from(c.activity_id),
        "severity_id": 1,
        "severity": "Informational",
        "status_id": status_id,
        "status": status_name,
        "time": rec.time_ns / 1_000_000,
        "message": rec.kind,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": syslog::APP_NAME, "vendor_name": syslog::APP_NAME, "version": env!("CARGO_PKG_VERSION")},
            "uid": format!("{origin}:{}", rec.seq),
            "sequence": rec.seq,
            "log_name": origin,
        },
        "device": {"hostname": host},
        "raw_data": String::from_utf8_lossy(&rec.line),
        "unmapped": {"sandbox_audit": {"origin": origin, "seq": rec.seq, "hash": hex::encode(rec.hash), "kind": rec.kind}},
    });
    let o = e.as_object_mut().expect("an object");
    if let Some(p) = proc_of(r) {
        let actor = json!({
            "pid": p.get("pid"), "tid": p.get("tid"), "name": p.get("comm"),
            "user": {"uid": p.get("uid").map(Value::to_string)},
        });
        o.insert("actor".into(), json!({"process": actor}));
        if c.class_uid == PROCESS {
            let mut process = json!({"pid": p.get("pid"), "name": p.get("comm")});
            match rec.kind.as_str() {
                "fork" => process = json!({"pid": r.get("child_pid"), "tid": r.get("child_tid")}),
                "exec" => {
                    process["file"] = json!({"path": r.get("filename")});
                    if let Some(a) = r.get("argv").and_then(Value::as_array) {
                        let words: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                        process["cmd_line"] = Value::String(words.join(" "));
                    }
                }
                _ => {}
            }
            o.insert("process".into(), process);
        }
    }
    if c.class_uid == FILE
        && let Some(path) = r.get("path").or_else(|| r.get("new_root"))
    {
        o.insert("file".into(), json!({"path": path}));
    }
    if matches!(c.class_uid, NETWORK | DNS) {
        if let Some(d) = r.get("remote").and_then(endpoint) {
            o.insert("dst_endpoint".into(), d);
        }
        if let Some(s) = r.get("local").and_then(endpoint) {
            o.insert("src_endpoint".into(), s);
        }
        if let Some(q) = r.get("dns_query") {
            o.insert("query".into(), json!({"hostname": q}));
        }
    }
    e
}

/// ECS `event.category` and `event.type` of a record.
pub fn ecs_category(kind: &str, r: &Map<String, Value>) -> (&'static str, &'static str) {
    match ocsf_class(kind, r) {
        OcsfClass {
            class_uid: PROCESS,
            activity_id,
        } => match (kind, activity_id) {
            ("exit", _) => ("process", "end"),
            (_, 1) => ("process", "start"),
            _ => ("process", "change"),
        },
        OcsfClass {
            class_uid: FILE,
            activity_id,
        } => match activity_id {
            1 => ("file", "creation"),
            4 => ("file", "deletion"),
            14 => ("file", "access"),
            _ => ("file", "change"),
        },
        OcsfClass {
            class_uid: NETWORK | DNS,
            activity_id,
        } => match activity_id {
            1 => ("network", "connection"),
            6 => ("network", "protocol"),
            _ => ("network", "info"),
        },
        OcsfClass {
            class_uid: KERNEL_EXT,
            activity_id,
        } => match activity_id {
            1 => ("driver", "start"),
            2 => ("driver", "end"),
            _ => ("driver", "info"),
        },
        _ => ("host", "info"),
    }
}

/// The ECS document of a record.
pub fn ecs(rec: &Stored, r: &Map<String, Value>, origin: &str, host: &str) -> Value {
    let (category, typ) = ecs_category(&rec.kind, r);
    let (_, _, outcome) = status(r);
    let hash = hex::encode(rec.hash);
    let mut e = json!({
        "@timestamp": syslog::timestamp(rec.time_ns),
        "ecs": {"version": "8.11.0"},
        "event": {
            "kind": "event",
            "category": [category],
            "type": [typ],
            "action": rec.kind,
            "outcome": outcome,
            "sequence": rec.seq,
            "id": format!("{origin}:{}", rec.seq),
            "hash": hash,
            "provider": syslog::APP_NAME,
            "original": String::from_utf8_lossy(&rec.line),
        },
        "host": {"hostname": host},
        "sandbox_audit": {"origin": origin, "seq": rec.seq, "hash": hash, "kind": rec.kind},
    });
    let o = e.as_object_mut().expect("an object");
    if let Some(p) = proc_of(r) {
        let mut process = json!({
            "pid": p.get("pid"),
            "thread": {"id": p.get("tid")},
            "name": p.get("comm"),
            "parent": {"pid": p.get("ppid")},
        });
        if rec.kind == "exec" {
            process["executable"] = r.get("filename").cloned().unwrap_or(Value::Null);
            process["args"] = r.get("argv").cloned().unwrap_or(Value::Null);
        }
        o.insert("process".into(), process);
        if let Some(uid) = p.get("uid") {
            o.insert("user".into(), json!({"id": uid.to_string()}));
        }
    }
    if category == "file"
        && let Some(path) = r.get("path")
    {
        o.insert("file".into(), json!({"path": path}));
    }
    if let Some(d) = r.get("remote").and_then(endpoint) {
        o.insert("destination".into(), d);
    }
    if let Some(s) = r.get("local").and_then(endpoint) {
        o.insert("source".into(), s);
    }
    e
}

impl ShipFormat {
    /// The record as this format ships it: `None` for native (the stored
    /// line goes as it is).
    pub fn map(self, rec: &Stored, origin: &str, host: &str) -> Option<Stored> {
        if self == ShipFormat::Native {
            return None;
        }
        let r = match serde_json::from_slice::<Value>(&rec.line) {
            Ok(Value::Object(r)) => r,
            // Stored lines are canonical JSON objects; should one not parse,
            // it goes as it is rather than not at all.
            _ => return None,
        };
        let v = match self {
            ShipFormat::Ocsf => ocsf(rec, &r, origin, host),
            _ => ecs(rec, &r, origin, host),
        };
        let mut out = rec.clone();
        out.line = v.to_string().into_bytes();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        reader::Position,
        received::{is_chained_record, record_in_line},
    };

    fn stored(line: &str) -> Stored {
        let v: Value = serde_json::from_str(line).unwrap();
        Stored {
            seq: v["seq"].as_u64().unwrap(),
            hash: [7; 32],
            time_ns: 1_700_000_000_123_456_789,
            kind: v["kind"].as_str().unwrap().into(),
            line: line.as_bytes().to_vec(),
            after: Position::default(),
        }
    }

    fn rec(kind: &str, extra: &str) -> String {
        format!(
            r#"{{"hash":"{h}",{extra}"kind":"{kind}","prev_hash":"{h}","proc":{{"comm":"sh","pid":10,"ppid":1,"tid":10,"uid":1000}},"seq":5,"time_ns":1}}"#,
            h = "07".repeat(32)
        )
    }

    #[test]
    fn ocsf_classes_per_kind() {
        let cases = [
            (
                "exec",
                r#""argv":["/bin/true"],"filename":"/bin/true","result":"success","#,
                1007,
                1,
            ),
            ("fork", r#""child_pid":11,"child_tid":11,"#, 1007, 1),
            ("exit", r#""exit_code":0,"#, 1007, 2),
            ("setuid", r#""result":"success","uid":0,"#, 1007, 5),
            ("ptrace", "", 1007, 4),
            (
                "open",
                r#""path":"/etc/passwd","result":"success","#,
                1001,
                14,
            ),
            ("unlink", r#""path":"/tmp/x","#, 1001, 4),
            ("rename", r#""new_path":"/b","path":"/a","#, 1001, 5),
            ("mkdir", r#""path":"/d","#, 1001, 1),
            ("chmod", r#""path":"/d","#, 1001, 7),
            ("write", r#""path":"/f","#, 1001, 3),
            (
                "write",
                r#""remote":{"address":"10.0.0.1","family":"inet","port":80},"#,
                4001,
                6,
            ),
            (
                "connect",
                r#""remote":{"address":"127.0.0.1","family":"inet","port":9},"result":"success","#,
                4001,
                1,
            ),
            (
                "connect",
                r#""errno_name":"ECONNREFUSED","result":"failure","#,
                4001,
                5,
            ),
            (
                "connect",
                r#""errno_name":"ENETUNREACH","result":"failure","#,
                4001,
                4,
            ),
            (
                "bind",
                r#""local":{"address":"0.0.0.0","family":"inet","port":80},"#,
                4001,
                99,
            ),
            (
                "send",
                r#""remote":{"address":"1.1.1.1","family":"inet","port":53},"#,
                4001,
                6,
            ),
            ("send", r#""dns_query":"example.com","#, 4003, 1),
            ("listen", "", 4001, 7),
            ("module_load", "", 1002, 1),
            ("checkpoint", r#""note":"n","#, 0, 99),
            ("genesis", r#""origin":"o","#, 0, 99),
            ("some_future_kind", "", 0, 99),
        ];
        for (kind, extra, class, activity) in cases {
            let line = rec(kind, extra);
            let s = stored(&line);
            let m = ShipFormat::Ocsf.map(&s, "origin-1", "h").unwrap();
            let v: Value = serde_json::from_slice(&m.line).unwrap();
            assert_eq!(
                (v["class_uid"].as_u64(), v["activity_id"].as_u64()),
                (Some(class), Some(activity)),
                "{kind} {extra}: {v}"
            );
            assert_eq!(v["type_uid"].as_u64(), Some(class * 100 + activity), "{v}");
            assert_eq!(v["unmapped"]["sandbox_audit"]["seq"], 5);
            assert_eq!(v["unmapped"]["sandbox_audit"]["hash"], "07".repeat(32));
            assert_eq!(v["metadata"]["sequence"], 5);
            assert_eq!(v["raw_data"], line);
            // The record comes back out, byte for byte, with its origin.
            let e = record_in_line(
                &String::from_utf8(m.line.clone()).unwrap(),
                is_chained_record,
            )
            .unwrap();
            assert_eq!(e.bytes, line.as_bytes());
            assert_eq!(e.origin.as_deref(), Some("origin-1"));
        }
        let v: Value = serde_json::from_slice(
            &ShipFormat::Ocsf.map(&stored(&rec("connect", r#""remote":{"address":"127.0.0.1","family":"inet","port":9},"result":"success","#)), "o", "h").unwrap().line,
        )
        .unwrap();
        assert_eq!(v["dst_endpoint"], json!({"ip": "127.0.0.1", "port": 9}));
        assert_eq!(v["status"], "Success");
        assert_eq!(v["actor"]["process"]["pid"], 10);
    }

    #[test]
    fn ecs_fields_per_kind() {
        let cases = [
            (
                "exec",
                r#""argv":["/bin/true","-x"],"filename":"/bin/true","result":"success","#,
                "process",
                "start",
            ),
            ("exit", "", "process", "end"),
            ("setuid", "", "process", "change"),
            (
                "open",
                r#""path":"/etc/passwd","result":"failure","#,
                "file",
                "access",
            ),
            ("unlink", r#""path":"/x","#, "file", "deletion"),
            (
                "connect",
                r#""remote":{"address":"::1","family":"inet6","port":443},"result":"success","#,
                "network",
                "connection",
            ),
            ("checkpoint", "", "host", "info"),
        ];
        for (kind, extra, cat, typ) in cases {
            let line = rec(kind, extra);
            let m = ShipFormat::Ecs
                .map(&stored(&line), "origin-1", "h")
                .unwrap();
            let v: Value = serde_json::from_slice(&m.line).unwrap();
            assert_eq!(v["event"]["category"], json!([cat]), "{kind}: {v}");
            assert_eq!(v["event"]["type"], json!([typ]), "{kind}: {v}");
            assert_eq!(v["event"]["action"], kind);
            assert_eq!(v["event"]["sequence"], 5);
            assert_eq!(v["event"]["hash"], "07".repeat(32));
            assert_eq!(v["event"]["original"], line);
            assert_eq!(v["sandbox_audit"]["origin"], "origin-1");
            assert_eq!(v["user"]["id"], "1000");
            assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.123456Z");
            let e = record_in_line(
                &String::from_utf8(m.line.clone()).unwrap(),
                is_chained_record,
            )
            .unwrap();
            assert_eq!(e.bytes, line.as_bytes());
            match kind {
                "exec" => assert_eq!(v["process"]["args"], json!(["/bin/true", "-x"])),
                "open" => {
                    assert_eq!(v["file"]["path"], "/etc/passwd");
                    assert_eq!(v["event"]["outcome"], "failure");
                }
                "connect" => assert_eq!(v["destination"], json!({"ip": "::1", "port": 443})),
                _ => {}
            }
        }
        assert!(
            ShipFormat::Native
                .map(&stored(&rec("exec", "")), "o", "h")
                .is_none()
        );
        assert_eq!("ocsf".parse::<ShipFormat>(), Ok(ShipFormat::Ocsf));
        assert!(
            "xml"
                .parse::<ShipFormat>()
                .unwrap_err()
                .contains("native, ocsf or ecs")
        );
    }
}
