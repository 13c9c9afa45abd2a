//! LSM-made events (`audit_common::lsm`) → records of the same kinds as the
//! tracepoint path (`open`, `connect`, `bind`, `unlink`, `mkdir`, `rename`),
//! marked `"source": "lsm"` with the hook's name. A hook runs before the
//! syscall returns, so such records have no fd, return value or duration;
//! they carry what the hook sees: the object actually resolved and the
//! verdict. FORMAT.md lists the fields.

use audit_common::{
    lsm::{DENIED, FROM_LSM, denial, hook},
    syscall::{RET, arg_data_kind},
};

use super::{Clock, Json, Record, errno, paths, process_json, put_bytes, sockaddr};
use crate::decode::{Captures, Event, Syscall};

/// The record for an LSM-made event, or `None` for any other event.
pub fn from_event(ev: &Event, clock: &Clock) -> Option<Record> {
    let Event::Syscall(sc) = ev else {
        return None;
    };
    if sc.raw.flags & FROM_LSM == 0 {
        return None;
    }
    let (kind, hook_name) = match sc.raw.nr {
        hook::FILE_OPEN => ("open", "file_open"),
        hook::SOCKET_CONNECT => ("connect", "socket_connect"),
        hook::SOCKET_BIND => ("bind", "socket_bind"),
        hook::TASK_KILL => ("kill", "task_kill"),
        hook::PTRACE_ACCESS_CHECK => ("ptrace", "ptrace_access_check"),
        hook::BPF => ("bpf", "bpf"),
        hook::MODULE_LOAD => ("module_load", "kernel_read_file"),
        hook::PATH_UNLINK => ("unlink", "path_unlink"),
        hook::PATH_MKDIR => ("mkdir", "path_mkdir"),
        hook::PATH_RENAME => ("rename", "path_rename"),
        _ => ("unknown_lsm_hook", ""),
    };
    let mut r = Record::new(kind, clock.wall_ns(sc.raw.header.boot_ns));
    r.fields.insert("proc".into(), process_json(&sc.raw.header));
    let f = &mut r.fields;
    f.insert("source".into(), "lsm".into());
    if hook_name.is_empty() {
        f.insert("hook_id".into(), sc.raw.nr.into());
    } else {
        f.insert("hook".into(), hook_name.into());
    }
    verdict(sc, f);
    match sc.raw.nr {
        hook::FILE_OPEN => file_open(sc, f),
        hook::SOCKET_CONNECT | hook::SOCKET_BIND => {
            let name = if sc.raw.nr == hook::SOCKET_BIND {
                "local"
            } else {
                "remote"
            };
            if let Some(c) = sc.arg_data(arg_data_kind::SOCKADDR, 1) {
                f.insert(name.into(), sockaddr::decode(&c.bytes));
            }
            f.insert("addrlen".into(), sc.raw.args[0].into());
        }
        hook::TASK_KILL => {
            f.insert("target_pid".into(), sc.raw.args[0].into());
            f.insert("signal".into(), sc.raw.args[1].into());
            // Only kills aimed at the agent are denied, and the agent is
            // outside every scope.
            f.insert("target_is_agent".into(), 1.into());
        }
        hook::PTRACE_ACCESS_CHECK => {
            f.insert("target_pid".into(), sc.raw.args[0].into());
            f.insert("ptrace_mode".into(), sc.raw.args[1].into());
            f.insert("target_is_agent".into(), 1.into());
        }
        hook::BPF => {
            f.insert("command".into(), (sc.raw.args[0] as u32 as i32).into());
        }
        hook::MODULE_LOAD => {
            f.insert("load_id".into(), sc.raw.args[0].into());
        }
        hook::PATH_UNLINK => entry_path(sc, 0, "path", f),
        hook::PATH_MKDIR => {
            entry_path(sc, 0, "path", f);
            f.insert("mode".into(), sc.raw.args[0].into());
        }
        hook::PATH_RENAME => {
            entry_path(sc, 0, "path", f);
            entry_path(sc, 1, "new_path", f);
            f.insert("flags".into(), sc.raw.args[0].into());
        }
        _ => {}
    }
    Some(r)
}

/// `result`: `success` when every LSM allowed it so far, `denied` when our
/// own hook refused it, `failure` with the errno when an earlier LSM did.
fn verdict(sc: &Syscall, f: &mut Json) {
    let ret = sc.raw.ret;
    let result = if sc.raw.flags & DENIED != 0 {
        "denied"
    } else if ret == 0 {
        "success"
    } else {
        "failure"
    };
    f.insert("result".into(), result.into());
    if ret < 0 {
        f.insert("errno".into(), (-ret).into());
        f.insert("errno_name".into(), errno::name(-ret).into());
    }
}

/// `name`, `name_resolution` (`resolved_dentry`) and `name_truncated` of
/// the entry a path hook saw in capture `slot`.
fn entry_path(sc: &Syscall, slot: u8, name: &str, f: &mut Json) {
    if let Some(p) = paths::fd_path(sc, slot, paths::resolution::RESOLVED_DENTRY) {
        put_bytes(f, name, &p.path);
        f.insert(format!("{name}_resolution"), p.resolution.into());
        if p.truncated {
            f.insert(format!("{name}_truncated"), 1.into());
        }
    }
}

fn file_open(sc: &Syscall, f: &mut Json) {
    let flags = sc.raw.args[0];
    f.insert("flags".into(), flags.into());
    let access = match flags as i32 & libc::O_ACCMODE {
        libc::O_RDONLY => "read",
        libc::O_WRONLY => "write",
        _ => "read_write",
    };
    f.insert("access".into(), access.into());
    if sc.raw.flags & DENIED != 0 {
        let why = match sc.raw.args[2] {
            denial::PROTECTED_INODE => "protected_inode",
            denial::CGROUP_OUTSIDE_SCOPE => "cgroup_outside_scope",
            _ => "unknown",
        };
        f.insert("denial".into(), why.into());
    }
    if let Some(p) = paths::fd_path(sc, RET, paths::resolution::OPENED_FILE) {
        put_bytes(f, "path", &p.path);
        f.insert("path_resolution".into(), p.resolution.into());
        if p.truncated {
            f.insert("path_truncated".into(), 1.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use audit_common::{event::EventHeader, syscall::SyscallEvent};

    use super::*;
    use crate::decode::ArgData;

    fn lsm_event(nr: u32, ret: i64, flags: u32, args: [u64; 6], data: Vec<ArgData>) -> Event {
        Event::Syscall(Syscall {
            raw: SyscallEvent {
                header: EventHeader::zeroed(),
                nr,
                flags: FROM_LSM | flags,
                ret,
                args,
                enter_ns: 0,
                data_len: 0,
                _pad: 0,
            },
            arg_data: data,
        })
    }

    #[test]
    fn file_open_is_an_open_record_from_the_lsm() {
        let ev = lsm_event(
            hook::FILE_OPEN,
            0,
            0,
            [libc::O_WRONLY as u64, 0, 0, 0, 0, 0],
            vec![ArgData {
                kind: arg_data_kind::PATH_COMPONENTS,
                slot: RET,
                flags: 0,
                bytes: b"shadow\0etc\0".to_vec(),
            }],
        );
        let r = from_event(&ev, &Clock::now()).unwrap();
        assert_eq!(r.kind, "open");
        assert_eq!(r.fields["source"], "lsm");
        assert_eq!(r.fields["hook"], "file_open");
        assert_eq!(r.fields["path"], "/etc/shadow");
        assert_eq!(r.fields["path_resolution"], "opened_file");
        assert_eq!(r.fields["access"], "write");
        assert_eq!(r.fields["result"], "success");
        assert!(!r.fields.contains_key("fd"));
    }

    #[test]
    fn path_hooks_make_the_tracepoint_kinds() {
        let comp = |slot, b: &[u8]| ArgData {
            kind: arg_data_kind::PATH_COMPONENTS,
            slot,
            flags: 0,
            bytes: b.to_vec(),
        };
        let ev = lsm_event(
            hook::PATH_RENAME,
            0,
            0,
            [1, 0, 0, 0, 0, 0],
            vec![comp(0, b"a\0tmp\0"), comp(1, b"b\0tmp\0")],
        );
        let r = from_event(&ev, &Clock::now()).unwrap();
        assert_eq!(r.kind, "rename");
        assert_eq!(r.fields["hook"], "path_rename");
        assert_eq!(r.fields["path"], "/tmp/a");
        assert_eq!(r.fields["path_resolution"], "resolved_dentry");
        assert_eq!(r.fields["new_path"], "/tmp/b");
        assert_eq!(r.fields["flags"], 1);
        let ev = lsm_event(
            hook::PATH_MKDIR,
            0,
            0,
            [0o755, 0, 0, 0, 0, 0],
            vec![comp(0, b"d\0")],
        );
        let r = from_event(&ev, &Clock::now()).unwrap();
        assert_eq!(r.kind, "mkdir");
        assert_eq!(r.fields["path"], "/d");
        assert_eq!(r.fields["mode"], 0o755);
        let ev = lsm_event(hook::PATH_UNLINK, 0, 0, [0; 6], vec![comp(0, b"f\0")]);
        let r = from_event(&ev, &Clock::now()).unwrap();
        assert_eq!(r.kind, "unlink");
        assert_eq!(r.fields["path"], "/f");
    }

    #[test]
    fn socket_bind_is_a_bind_record_with_the_local_address() {
        // struct sockaddr_in 127.0.0.1:8080
        let mut sa = vec![2u8, 0, 0x1f, 0x90, 127, 0, 0, 1];
        sa.extend([0; 8]);
        let ev = lsm_event(
            hook::SOCKET_BIND,
            0,
            0,
            [16, 0, 0, 0, 0, 0],
            vec![ArgData {
                kind: arg_data_kind::SOCKADDR,
                slot: 1,
                flags: 0,
                bytes: sa,
            }],
        );
        let r = from_event(&ev, &Clock::now()).unwrap();
        assert_eq!(r.kind, "bind");
        assert_eq!(r.fields["hook"], "socket_bind");
        assert_eq!(r.fields["local"]["address"], "127.0.0.1");
        assert_eq!(r.fields["local"]["port"], 8080);
        assert!(!r.fields.contains_key("remote"));
    }

    #[test]
    fn a_denied_open_says_why() {
        let ev = lsm_event(
            hook::FILE_OPEN,
            -1,
            DENIED,
            [
                libc::O_WRONLY as u64,
                0,
                denial::CGROUP_OUTSIDE_SCOPE,
                0,
                0,
                0,
            ],
            vec![ArgData {
                kind: arg_data_kind::PATH_COMPONENTS,
                slot: RET,
                flags: 0,
                bytes: b"cgroup.procs\0cgroup\0fs\0sys\0".to_vec(),
            }],
        );
        let r = from_event(&ev, &Clock::now()).unwrap();
        assert_eq!(r.fields["path"], "/sys/fs/cgroup/cgroup.procs");
        assert_eq!(r.fields["result"], "denied");
        assert_eq!(r.fields["errno_name"], "EPERM");
        assert_eq!(r.fields["denial"], "cgroup_outside_scope");
    }

    #[test]
    fn denial_and_other_events() {
        let ev = lsm_event(
            hook::SOCKET_CONNECT,
            -1,
            DENIED,
            [16, 0, 0, 0, 0, 0],
            vec![],
        );
        let r = from_event(&ev, &Clock::now()).unwrap();
        assert_eq!(r.kind, "connect");
        assert!(!r.fields.contains_key("denial"));
        assert_eq!(r.fields["result"], "denied");
        assert_eq!(r.fields["errno_name"], "EPERM");
        let Event::Syscall(mut sc) = ev else {
            unreachable!()
        };
        sc.raw.flags = 0;
        assert!(from_event(&Event::Syscall(sc), &Clock::now()).is_none());
    }
}
