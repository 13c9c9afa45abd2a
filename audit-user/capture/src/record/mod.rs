//! Stage 3: typed audit records and their JSON form. A record is what the
//! log stores and ships; the chain stage adds `seq`, `prev_hash` and `hash`.
//!
//! JSON rules (docs/FORMAT.md): integers and strings only (flags are 0/1),
//! times in integer ns since the Unix epoch. Byte strings that are valid
//! UTF-8 appear as strings; otherwise `X` holds a lossy rendering (U+FFFD for
//! bad bytes) and `X_b64` holds the exact bytes, so nothing is lost and every
//! field keeps one JSON type.

use std::collections::BTreeMap;

use audit_common::event::{EventHeader, exec_flags, exit_flags, fork_flags, migrate_flags};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};

use crate::decode::{Event, split_argv};

mod dns;
pub mod errno;
mod io_uring;
mod lsm;
pub mod paths;
pub mod sockaddr;
mod syscall;

use audit_log::lifecycle::LifecycleKind;
pub use audit_log::record::{Json, Record, now_ns};

/// Converts kernel boot-time stamps to wall-clock ns since the Unix epoch.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset_ns: i128,
}

fn clock_ns(id: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer; CLOCK_REALTIME and CLOCK_BOOTTIME always exist.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl Clock {
    /// Samples realtime − boottime now. Re-sample now and then to follow
    /// clock steps (NTP, settimeofday).
    pub fn now() -> Clock {
        Clock {
            offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME),
        }
    }

    pub fn wall_ns(&self, boot_ns: u64) -> u64 {
        (boot_ns as i128 + self.offset_ns).clamp(0, u64::MAX as i128) as u64
    }
}

/// Inserts a byte string under `key` (and `key_b64` when not UTF-8).
pub fn put_bytes(m: &mut Json, key: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            m.insert(key.into(), Value::String(s.into()));
        }
        Err(_) => {
            m.insert(
                key.into(),
                Value::String(String::from_utf8_lossy(bytes).into_owned()),
            );
            m.insert(format!("{key}_b64"), Value::String(B64.encode(bytes)));
        }
    }
}

/// Inserts a list of byte strings under `key` (and `key_b64`, the whole list
/// base64-encoded, when any element is not UTF-8).
pub fn put_bytes_list(m: &mut Json, key: &str, items: &[Vec<u8>]) {
    let all_utf8 = items.iter().all(|a| std::str::from_utf8(a).is_ok());
    let lossy: Vec<Value> = items
        .iter()
        .map(|a| Value::String(String::from_utf8_lossy(a).into_owned()))
        .collect();
    m.insert(key.into(), Value::Array(lossy));
    if !all_utf8 {
        let exact = items.iter().map(|a| Value::String(B64.encode(a))).collect();
        m.insert(format!("{key}_b64"), Value::Array(exact));
    }
}

fn comm_bytes(comm: &[u8; 16]) -> &[u8] {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    &comm[..end]
}

/// The acting process as the kernel saw it.
pub fn process_json(h: &EventHeader) -> Value {
    let mut m = Json::new();
    m.insert("pid".into(), h.tgid.into());
    m.insert("tid".into(), h.pid.into());
    m.insert("ppid".into(), h.ppid.into());
    m.insert("uid".into(), h.uid.into());
    m.insert("gid".into(), h.gid.into());
    m.insert("euid".into(), h.euid.into());
    m.insert("egid".into(), h.egid.into());
    m.insert("cgroup_id".into(), h.cgroup_id.into());
    m.insert("pid_ns".into(), h.pid_ns.into());
    m.insert("mnt_ns".into(), h.mnt_ns.into());
    put_bytes(&mut m, "comm", comm_bytes(&h.comm));
    Value::Object(m)
}

fn flag(set: bool) -> Value {
    Value::from(set as u8)
}

/// Turns a decoded kernel event into a record.
pub fn from_event(ev: &Event, clock: &Clock) -> Record {
    if let Some(r) = lsm::from_event(ev, clock) {
        return r;
    }
    let h = ev.header();
    let kind = match ev {
        Event::Exec(_) => "exec",
        Event::Fork(_) => "fork",
        Event::Exit(_) => "exit",
        Event::Syscall(s) => syscall::kind_of(s),
        Event::CgroupMigrate(_) => "cgroup_migrate",
        Event::IoUring(_) => "io_uring_op",
    };
    let mut r = Record::new(kind, clock.wall_ns(h.boot_ns));
    r.fields.insert("proc".into(), process_json(h));
    let f = &mut r.fields;
    match ev {
        Event::Exec(e) => {
            put_bytes(f, "filename", &e.filename);
            put_bytes_list(f, "argv", &split_argv(&e.argv));
            f.insert("argc".into(), e.raw.argc.into());
            f.insert("argv_bytes".into(), e.raw.argv_total_len.into());
            f.insert(
                "argv_truncated".into(),
                flag(e.raw.flags & exec_flags::ARGV_TRUNCATED != 0),
            );
            f.insert(
                "argv_unreadable".into(),
                flag(e.raw.flags & exec_flags::ARGV_UNREADABLE != 0),
            );
            f.insert(
                "filename_truncated".into(),
                flag(e.raw.flags & exec_flags::FILENAME_TRUNCATED != 0),
            );
            f.insert("old_tid".into(), e.raw.old_pid.into());
            f.insert("result".into(), "success".into());
        }
        Event::Fork(e) => {
            f.insert("child_pid".into(), e.child_tgid.into());
            f.insert("child_tid".into(), e.child_pid.into());
            f.insert("thread".into(), flag(e.flags & fork_flags::THREAD != 0));
        }
        Event::Exit(e) => {
            let code = e.exit_code;
            f.insert("thread".into(), flag(e.flags & exit_flags::GROUP_DEAD == 0));
            f.insert("wait_status".into(), code.into());
            if code & 0x7f == 0 {
                f.insert("exit_code".into(), ((code >> 8) & 0xff).into());
            } else {
                f.insert("signal".into(), (code & 0x7f).into());
                f.insert("core_dumped".into(), flag(code & 0x80 != 0));
            }
        }
        Event::CgroupMigrate(m) => {
            let fl = m.raw.flags;
            f.insert("target_pid".into(), m.raw.target_pid.into());
            f.insert("dst_cgroup_id".into(), m.raw.dst_id.into());
            f.insert("dst_level".into(), m.raw.dst_level.into());
            f.insert("hierarchy_id".into(), m.raw.hierarchy_id.into());
            put_bytes(f, "dst_path", &m.path);
            f.insert(
                "path_truncated".into(),
                flag(fl & migrate_flags::PATH_TRUNCATED != 0),
            );
            f.insert(
                "was_in_scope".into(),
                flag(fl & migrate_flags::WAS_IN_SCOPE != 0),
            );
            f.insert(
                "entered_scope".into(),
                flag(fl & migrate_flags::ENTERED_SCOPE != 0),
            );
        }
        Event::Syscall(s) => syscall::record(s, f),
        Event::IoUring(u) => io_uring::fields(u, f),
    }
    r
}

/// A `loss` record: events the kernel could not deliver between two checks.
pub fn loss(time_ns: u64, from_ns: u64, kinds: &BTreeMap<String, u64>) -> Record {
    let count: u64 = kinds.values().sum();
    LifecycleKind::Loss
        .record(time_ns)
        .with("count", count)
        .with("kinds", json!(kinds))
        .with("from_ns", from_ns)
        .with("to_ns", time_ns)
}

/// A ring-buffer entry that did not decode: kept whole rather than dropped.
pub fn malformed(time_ns: u64, error: &str, raw: &[u8]) -> Record {
    Record::new("malformed_event", time_ns)
        .with("error", error)
        .with("raw_b64", B64.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_lossless_and_type_stable() {
        let mut m = Json::new();
        put_bytes(&mut m, "a", b"caf\xc3\xa9");
        put_bytes(&mut m, "b", b"x\xffy");
        assert_eq!(m["a"], "café");
        assert!(!m.contains_key("a_b64"));
        assert_eq!(m["b"], "x\u{fffd}y");
        assert_eq!(B64.decode(m["b_b64"].as_str().unwrap()).unwrap(), b"x\xffy");
    }

    #[test]
    fn argv_list_b64_only_when_needed() {
        let mut m = Json::new();
        put_bytes_list(&mut m, "argv", &[b"a".to_vec(), vec![]]);
        assert_eq!(m["argv"], json!(["a", ""]));
        assert!(!m.contains_key("argv_b64"));
        put_bytes_list(&mut m, "argv", &[b"a".to_vec(), vec![0xfe]]);
        assert_eq!(m["argv_b64"], json!(["YQ==", "/g=="]));
    }

    #[test]
    fn exit_status_decoding() {
        use audit_common::event::{EventHeader, ExitEvent};
        let mk = |code| {
            let e = ExitEvent {
                header: EventHeader::zeroed(),
                exit_code: code,
                flags: 1,
            };
            from_event(&Event::Exit(e), &Clock { offset_ns: 0 }).fields
        };
        let normal = mk(3 << 8);
        assert_eq!(normal["exit_code"], 3);
        assert!(!normal.contains_key("signal"));
        let killed = mk(9);
        assert_eq!(killed["signal"], 9);
        assert_eq!(killed["core_dumped"], 0);
        assert!(!killed.contains_key("exit_code"));
        assert_eq!(mk(0x80 | 6)["core_dumped"], 1);
        assert_eq!(mk(0)["thread"], 0);
    }

    #[test]
    fn clock_offset_applies() {
        let c = Clock { offset_ns: 1_000 };
        assert_eq!(c.wall_ns(5), 1_005);
        let c = Clock { offset_ns: -10 };
        assert_eq!(c.wall_ns(5), 0);
        assert!(Clock::now().wall_ns(0) > 1_600_000_000_000_000_000);
    }
}
