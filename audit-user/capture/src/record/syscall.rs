//! Syscall events → records, named by the shared syscall table
//! ([`crate::syscalls`]): one field per argument, the result, and whatever
//! the probes captured (paths, addresses, names).

use audit_common::syscall::{arg_data_flags, arg_data_kind, event_flags};
use serde_json::{Value, json};

use super::{Json, errno, flag, paths, put_bytes, sockaddr};
use crate::{
    decode::{Captures, Syscall},
    syscalls::{
        self, Arg, FS_IOC_FSSETXATTR, FS_IOC_SETFLAGS, MMSG_CAPTURED, PEER_SLOT, PR_CAP_AMBIENT,
        PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SyscallDef, ia32,
    },
};

/// The table entry a syscall event means: native, i386 (ia32 compat) or x32
/// (native numbers).
pub fn def_of(sc: &Syscall) -> Option<&'static SyscallDef> {
    if sc.raw.flags & event_flags::ABI_IA32 != 0 {
        ia32::by_nr(sc.raw.nr)
    } else {
        syscalls::by_nr(sc.raw.nr)
    }
}

/// The record kind of a syscall event.
pub fn kind_of(sc: &Syscall) -> &'static str {
    match def_of(sc) {
        Some(d) => d.kind,
        None if sc.raw.flags & event_flags::ABI_MASK != 0 => "compat_syscall",
        None => "unknown_syscall",
    }
}

fn abi_name(flags: u32) -> Option<&'static str> {
    if flags & event_flags::ABI_IA32 != 0 {
        Some("ia32")
    } else if flags & event_flags::ABI_X32 != 0 {
        Some("x32")
    } else {
        None
    }
}

fn put_result(f: &mut Json, ret: i64) {
    if ret >= 0 {
        f.insert("result".into(), "success".into());
        f.insert("ret".into(), ret.into());
    } else {
        f.insert("result".into(), "failure".into());
        f.insert("errno".into(), (-ret).into());
        f.insert("errno_name".into(), errno::name(-ret).into());
    }
}

/// Fills a record from a syscall event of any ABI.
pub fn record(sc: &Syscall, f: &mut Json) {
    let ev = &sc.raw;
    let abi = abi_name(ev.flags);
    match def_of(sc) {
        Some(def) => fields(sc, def, f),
        None => {
            f.insert("nr".into(), ev.nr.into());
            put_result(f, ev.ret);
            if abi.is_some() {
                f.insert("args".into(), json!(ev.args));
            }
        }
    }
    if let Some(abi) = abi {
        f.insert("abi".into(), abi.into());
        f.insert("nr".into(), ev.nr.into());
        if ev.flags & event_flags::ABI_IA32 != 0 {
            if let Some(name) = ia32::name(ev.nr) {
                f.insert("compat_name".into(), name.into());
            }
        }
        if ev.flags & event_flags::SOCKETCALL != 0 {
            f.insert("socketcall".into(), flag(true));
        }
    }
}

fn put_resolved(f: &mut Json, name: &str, raw: Option<&[u8]>, r: &paths::Resolved) {
    put_bytes(f, name, &r.path);
    f.insert(format!("{name}_resolution"), r.resolution.into());
    if let Some(raw) = raw.filter(|raw| *raw != r.path.as_slice()) {
        put_bytes(f, &format!("{name}_arg"), raw);
    }
    if r.truncated {
        f.insert(format!("{name}_truncated"), flag(true));
    }
}

fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn u64_at(bytes: &[u8], i: usize) -> Option<u64> {
    let b = bytes.get(i * 8..i * 8 + 8)?;
    Some(u64::from_ne_bytes(b.try_into().ok()?))
}

/// Fills a record's fields from a syscall event.
pub fn fields(sc: &Syscall, def: &SyscallDef, f: &mut Json) {
    let ev = &sc.raw;
    f.insert("syscall".into(), def.name.into());
    put_result(f, ev.ret);
    f.insert(
        "duration_ns".into(),
        ev.header.boot_ns.saturating_sub(ev.enter_ns).into(),
    );
    if ev.flags & event_flags::DATA_TRUNCATED != 0 {
        f.insert("captures_truncated".into(), flag(true));
    }

    for (i, a) in def.args.iter().enumerate() {
        let raw = ev.args[i];
        let slot = i as u8;
        match *a {
            Arg::Skip => {}
            Arg::Int(name) => {
                f.insert(name.into(), (raw as u32 as i32).into());
            }
            Arg::Long(name) => {
                f.insert(name.into(), (raw as i64).into());
            }
            Arg::Uint(name) => {
                f.insert(name.into(), raw.into());
            }
            Arg::Path(name, _) => {
                if let Some((arg, r)) = paths::path_arg(sc, slot) {
                    put_resolved(f, name, Some(&arg), &r);
                }
            }
            Arg::FdPath(name) => {
                f.insert("fd".into(), (raw as u32 as i32).into());
                if let Some(r) = paths::fd_path(sc, slot, paths::resolution::FD) {
                    put_resolved(f, name, None, &r);
                }
            }
            Arg::Str(name) => {
                if let Some(c) = sc.arg_data(arg_data_kind::STRING, slot) {
                    if c.flags & arg_data_flags::UNREADABLE == 0 {
                        put_bytes(f, name, &c.bytes);
                    }
                }
            }
            Arg::Addr(name, _) => {
                // An absent address (send on a connected socket) captures nothing.
                if let Some(c) = sc
                    .arg_data(arg_data_kind::SOCKADDR, slot)
                    .filter(|c| !c.bytes.is_empty())
                {
                    f.insert(name.into(), sockaddr::decode(&c.bytes));
                }
            }
        }
    }
    extras(sc, def, f);
}

/// Per-kind fields beyond one-field-per-argument.
fn extras(sc: &Syscall, def: &SyscallDef, f: &mut Json) {
    let ev = &sc.raw;
    let ok = ev.ret >= 0;
    match def.kind {
        "open" => {
            let flags = if def.name == "openat2" {
                let how = sc
                    .arg_data(arg_data_kind::BYTES, 2)
                    .map(|c| c.bytes.clone())
                    .unwrap_or_default();
                let (fl, mode, resolve) = (u64_at(&how, 0), u64_at(&how, 1), u64_at(&how, 2));
                if let (Some(fl), Some(mode), Some(resolve)) = (fl, mode, resolve) {
                    f.insert("flags".into(), fl.into());
                    f.insert("mode".into(), mode.into());
                    f.insert("resolve".into(), resolve.into());
                }
                fl.unwrap_or(0)
            } else if def.name == "creat" {
                (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64
            } else {
                f.get("flags").and_then(Value::as_u64).unwrap_or(0)
            };
            let access = match flags as i32 & libc::O_ACCMODE {
                libc::O_RDONLY => "read",
                libc::O_WRONLY => "write",
                _ => "read_write",
            };
            f.insert("access".into(), access.into());
            if ok {
                f.insert("fd".into(), ev.ret.into());
                // The file actually opened beats the lexical path.
                if let Some(r) = paths::fd_path(
                    sc,
                    audit_common::syscall::RET,
                    paths::resolution::OPENED_FILE,
                ) {
                    let arg = paths::path_arg(
                        sc,
                        def.args
                            .iter()
                            .position(|a| matches!(a, Arg::Path(..)))
                            .unwrap_or(0) as u8,
                    );
                    put_resolved(f, "path", arg.as_ref().map(|(a, _)| a.as_slice()), &r);
                }
            }
        }
        "write" => {
            if ok {
                f.insert("bytes".into(), ev.ret.into());
            }
            peer_and_dns(sc, f);
        }
        "socket" => {
            let fam = ev.args[0] as u32 as i32 as i64;
            f.insert("family".into(), sockaddr::family_name(fam).into());
            let ty = ev.args[1] as i32;
            let base = match ty & 0xf {
                libc::SOCK_STREAM => "stream".to_string(),
                libc::SOCK_DGRAM => "dgram".to_string(),
                libc::SOCK_RAW => "raw".to_string(),
                libc::SOCK_SEQPACKET => "seqpacket".to_string(),
                other => other.to_string(),
            };
            f.insert("type".into(), base.into());
            f.insert("type_flags".into(), (ty & !0xf).into());
            if ok {
                f.insert("fd".into(), ev.ret.into());
            }
        }
        "accept" => {
            if let Some(c) = sc.arg_data(arg_data_kind::SOCKADDR, 1) {
                f.insert("remote".into(), sockaddr::decode(&c.bytes));
            }
            if ok {
                f.insert("new_fd".into(), ev.ret.into());
            }
        }
        "send" => {
            if let Some(c) = sc
                .arg_data(arg_data_kind::SOCKADDR, 1)
                .filter(|_| def.name == "sendmsg")
            {
                f.insert("remote".into(), sockaddr::decode(&c.bytes));
            }
            if def.name == "sendmmsg" {
                f.insert("messages".into(), mmsg_messages(sc, ev.args[2]));
            }
            peer_and_dns(sc, f);
        }
        "process_vm" | "pidfd_open" => {
            f.insert(
                "target_in_scope".into(),
                flag(ev.flags & event_flags::TARGET_IN_SCOPE != 0),
            );
            if ok && def.kind == "pidfd_open" {
                f.insert("pidfd".into(), ev.ret.into());
            }
        }
        "pidfd_getfd" if ok => {
            f.insert("new_fd".into(), ev.ret.into());
        }
        "io_uring_setup" => {
            if let Some(p) = sc.arg_data(arg_data_kind::BYTES, 1).map(|c| u32s(&c.bytes)) {
                if p.len() >= 3 {
                    f.insert("setup_flags".into(), p[2].into());
                }
            }
            if ok {
                f.insert("fd".into(), ev.ret.into());
            }
        }
        "prctl" => {
            let name = match ev.args[0] as u32 {
                PR_SET_SECCOMP => "PR_SET_SECCOMP",
                PR_SET_NO_NEW_PRIVS => "PR_SET_NO_NEW_PRIVS",
                PR_CAP_AMBIENT => "PR_CAP_AMBIENT",
                _ => "",
            };
            f.insert("option_name".into(), name.into());
        }
        "setgroups" => {
            if let Some(c) = sc.arg_data(arg_data_kind::BYTES, 1) {
                f.insert("groups".into(), json!(u32s(&c.bytes)));
            }
        }
        "capset" => {
            if let Some(h) = sc.arg_data(arg_data_kind::BYTES, 0).map(|c| u32s(&c.bytes)) {
                if h.len() == 2 {
                    f.insert("version".into(), h[0].into());
                    f.insert("target_pid".into(), (h[1] as i32).into());
                }
            }
            if let Some(d) = sc.arg_data(arg_data_kind::BYTES, 1).map(|c| u32s(&c.bytes)) {
                if d.len() == 6 {
                    let wide = |lo: u32, hi: u32| (lo as u64) | ((hi as u64) << 32);
                    f.insert("effective".into(), wide(d[0], d[3]).into());
                    f.insert("permitted".into(), wide(d[1], d[4]).into());
                    f.insert("inheritable".into(), wide(d[2], d[5]).into());
                }
            }
        }
        "kill" => {
            f.insert(
                "target_in_scope".into(),
                flag(ev.flags & event_flags::TARGET_IN_SCOPE != 0),
            );
        }
        "chattr" => {
            let request = ev.args[1] as u32;
            let (name, append, immutable) = match request {
                FS_IOC_SETFLAGS => ("FS_IOC_SETFLAGS", 0x20, 0x10),
                FS_IOC_FSSETXATTR => ("FS_IOC_FSSETXATTR", 0x10, 0x8),
                _ => ("", 0, 0),
            };
            f.insert("request_name".into(), name.into());
            if let Some(v) = sc
                .arg_data(arg_data_kind::BYTES, 2)
                .and_then(|c| u32s(&c.bytes).first().copied())
            {
                f.insert("attr_flags".into(), v.into());
                f.insert("append_only".into(), flag(v & append != 0));
                f.insert("immutable".into(), flag(v & immutable != 0));
            }
        }
        _ => {}
    }
}

/// `remote` from the socket's peer when no address argument gave one (a
/// send on a connected socket), and the DNS question of a query to port 53.
fn peer_and_dns(sc: &Syscall, f: &mut Json) {
    if let Some(c) = sc.arg_data(arg_data_kind::SOCKADDR, PEER_SLOT) {
        if !f.contains_key("remote") {
            f.insert("remote".into(), sockaddr::decode(&c.bytes));
            f.insert("remote_source".into(), "peer".into());
        }
    }
    if let Some(c) = sc.arg_data(arg_data_kind::BYTES, 1) {
        if let Some((name, qtype)) = super::dns::question(&c.bytes) {
            f.insert("dns_query".into(), name.into());
            f.insert("dns_qtype".into(), qtype.into());
        }
    }
}

/// sendmmsg: one object per captured message (destination, DNS question).
fn mmsg_messages(sc: &Syscall, vlen: u64) -> Value {
    let n = (vlen as usize).min(MMSG_CAPTURED);
    let peer = sc.arg_data(arg_data_kind::SOCKADDR, PEER_SLOT);
    let msgs: Vec<Value> = (0..n)
        .map(|i| {
            let slot = audit_common::syscall::MMSG_SLOT + i as u8;
            let mut m = Json::new();
            match sc.arg_data(arg_data_kind::SOCKADDR, slot).or(peer) {
                Some(c) => {
                    m.insert("remote".into(), sockaddr::decode(&c.bytes));
                }
                None => {
                    m.insert("remote".into(), Value::Null);
                }
            }
            if let Some((name, qtype)) = sc
                .arg_data(arg_data_kind::BYTES, slot)
                .and_then(|c| super::dns::question(&c.bytes))
            {
                m.insert("dns_query".into(), name.into());
                m.insert("dns_qtype".into(), qtype.into());
            }
            Value::Object(m)
        })
        .collect();
    Value::Array(msgs)
}

#[cfg(test)]
mod tests {
    use audit_common::{
        event::EventHeader,
        syscall::{ArgDataHeader, RET, SyscallEvent, arg_data_flags as cf},
    };

    use super::*;
    use crate::{decode::ArgData, syscalls::TABLE};

    fn def(name: &str) -> &'static SyscallDef {
        TABLE.iter().find(|d| d.name == name).unwrap()
    }

    fn event(name: &str, ret: i64, args: [u64; 6], captures: Vec<ArgData>) -> Syscall {
        let _ = std::mem::size_of::<ArgDataHeader>();
        let raw = SyscallEvent {
            header: EventHeader {
                boot_ns: 1_500,
                ..EventHeader::zeroed()
            },
            nr: def(name).nr as u32,
            flags: 0,
            ret,
            args,
            enter_ns: 1_000,
            data_len: 0,
            _pad: 0,
        };
        Syscall {
            raw,
            arg_data: captures,
        }
    }

    fn string(slot: u8, s: &[u8]) -> ArgData {
        ArgData {
            kind: arg_data_kind::STRING,
            slot,
            flags: 0,
            bytes: s.to_vec(),
        }
    }

    fn comps(slot: u8, flags: u8, s: &[u8]) -> ArgData {
        ArgData {
            kind: arg_data_kind::PATH_COMPONENTS,
            slot,
            flags,
            bytes: s.to_vec(),
        }
    }

    fn record(sc: &Syscall, name: &str) -> Json {
        let mut f = Json::new();
        fields(sc, def(name), &mut f);
        f
    }

    #[test]
    fn successful_open_prefers_the_opened_file() {
        let at_fdcwd = (-100i64) as u64;
        let sc = event(
            "openat",
            3,
            [at_fdcwd, 0, libc::O_WRONLY as u64, 0o600, 0, 0],
            vec![
                string(1, b"link"),
                comps(1, cf::FROM_CWD, b"work\0"),
                comps(RET, 0, b"shadow\0etc\0"),
            ],
        );
        let f = record(&sc, "openat");
        assert_eq!(f["path"], "/etc/shadow");
        assert_eq!(f["path_resolution"], "opened_file");
        assert_eq!(f["path_arg"], "link");
        assert_eq!(f["dirfd"], -100);
        assert_eq!(f["access"], "write");
        assert_eq!(f["fd"], 3);
        assert_eq!(f["result"], "success");
        assert_eq!(f["duration_ns"], 500);
    }

    #[test]
    fn failed_relative_open_is_joined_to_the_cwd_with_errno() {
        let sc = event(
            "open",
            -13,
            [0, 0, 0, 0, 0, 0],
            vec![
                string(0, b"secret.txt"),
                comps(0, cf::FROM_CWD, b"work\0tmp\0"),
            ],
        );
        let f = record(&sc, "open");
        assert_eq!(f["path"], "/tmp/work/secret.txt");
        assert_eq!(f["path_resolution"], "cwd");
        assert_eq!(f["result"], "failure");
        assert_eq!(f["errno"], 13);
        assert_eq!(f["errno_name"], "EACCES");
        assert!(!f.contains_key("ret"));
    }

    #[test]
    fn ints_longs_and_unresolved_paths() {
        let sc = event(
            "truncate",
            0,
            [0, (-5i64) as u64, 0, 0, 0, 0],
            vec![string(0, b"rel")],
        );
        let f = record(&sc, "truncate");
        assert_eq!(f["length"], -5);
        assert_eq!(f["path"], "rel");
        assert_eq!(f["path_resolution"], "unresolved");
        let sc = event(
            "setresuid",
            0,
            [u32::MAX as u64, 0, 0x1_0000_0007, 0, 0, 0],
            vec![],
        );
        let f = record(&sc, "setresuid");
        assert_eq!(
            (f["ruid"].clone(), f["euid"].clone(), f["suid"].clone()),
            (json!(-1), json!(0), json!(7))
        );
    }
}
