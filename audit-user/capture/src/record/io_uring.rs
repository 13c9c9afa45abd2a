//! io_uring requests → `io_uring_op` records: opcode, fd, result, and what
//! the probes captured (path of an open, address of a connect, the file a
//! request worked on and a socket's peer).

use audit_common::{
    event::io_uring_flags,
    syscall::{PEER, RET, arg_data_kind},
};
use serde_json::Value;

use super::{Json, errno, flag, paths, put_bytes, sockaddr};
use crate::decode::{Captures, IoUring};

/// IORING_OP_* names (uapi enum io_uring_op, stable numbering).
const OPCODES: &[&str] = &[
    "NOP",
    "READV",
    "WRITEV",
    "FSYNC",
    "READ_FIXED",
    "WRITE_FIXED",
    "POLL_ADD",
    "POLL_REMOVE",
    "SYNC_FILE_RANGE",
    "SENDMSG",
    "RECVMSG",
    "TIMEOUT",
    "TIMEOUT_REMOVE",
    "ACCEPT",
    "ASYNC_CANCEL",
    "LINK_TIMEOUT",
    "CONNECT",
    "FALLOCATE",
    "OPENAT",
    "CLOSE",
    "FILES_UPDATE",
    "STATX",
    "READ",
    "WRITE",
    "FADVISE",
    "MADVISE",
    "SEND",
    "RECV",
    "OPENAT2",
    "EPOLL_CTL",
    "SPLICE",
    "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS",
    "TEE",
    "SHUTDOWN",
    "RENAMEAT",
    "UNLINKAT",
    "MKDIRAT",
    "SYMLINKAT",
    "LINKAT",
    "MSG_RING",
    "FSETXATTR",
    "SETXATTR",
    "FGETXATTR",
    "GETXATTR",
    "SOCKET",
    "URING_CMD",
    "SEND_ZC",
    "SENDMSG_ZC",
    "READ_MULTISHOT",
    "WAITID",
    "FUTEX_WAIT",
    "FUTEX_WAKE",
    "FUTEX_WAITV",
    "FIXED_FD_INSTALL",
    "FTRUNCATE",
    "BIND",
    "LISTEN",
    "RECV_ZC",
    "EPOLL_WAIT",
    "READV_FIXED",
    "WRITEV_FIXED",
    "PIPE",
];

/// Opcodes whose SQE `fd` names a file (or a fixed-file index): for the
/// others the kernel does not read `fd`, so the record has none.
const NO_FD: &[&str] = &[
    "NOP",
    "TIMEOUT",
    "TIMEOUT_REMOVE",
    "ASYNC_CANCEL",
    "LINK_TIMEOUT",
    "FILES_UPDATE",
    "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS",
    "SOCKET",
    "WAITID",
    "FUTEX_WAIT",
    "FUTEX_WAKE",
    "FUTEX_WAITV",
    "PIPE",
    "MADVISE",
];

pub fn opcode_name(op: u32) -> Option<&'static str> {
    OPCODES.get(op as usize).copied()
}

/// IOSQE_FIXED_FILE: `fd` is an index into the ring's registered files.
const IOSQE_FIXED_FILE: u32 = 1;

pub fn fields(u: &IoUring, f: &mut Json) {
    let ev = &u.raw;
    let name = opcode_name(ev.opcode);
    f.insert("opcode".into(), ev.opcode.into());
    f.insert(
        "op".into(),
        name.map_or_else(|| format!("{}", ev.opcode), str::to_string)
            .into(),
    );
    f.insert("user_data".into(), ev.user_data.into());
    f.insert("ring".into(), format!("{:x}", ev.ctx).into());
    f.insert("owner_pid".into(), ev.owner_tgid.into());
    f.insert("submit_tid".into(), ev.submit_tid.into());
    f.insert("sq_thread".into(), flag(ev.sq_thread != 0));
    f.insert("sqe_flags".into(), (ev.req_flags & 0xff).into());
    let is_open = matches!(name, Some("OPENAT" | "OPENAT2"));
    if is_open {
        f.insert("dirfd".into(), ev.fd.into());
    } else if !name.is_some_and(|n| NO_FD.contains(&n)) {
        f.insert("fd".into(), ev.fd.into());
        f.insert(
            "fixed_file".into(),
            flag(ev.req_flags & IOSQE_FIXED_FILE != 0),
        );
    }
    if ev.flags & io_uring_flags::SUBMIT_ONLY != 0 {
        // IOSQE_CQE_SKIP_SUCCESS: recorded at submission, no result known.
        f.insert("result".into(), "unknown".into());
        f.insert("cqe_skipped".into(), flag(true));
    } else if ev.res >= 0 {
        f.insert("result".into(), "success".into());
        f.insert("res".into(), ev.res.into());
    } else {
        f.insert("result".into(), "failure".into());
        f.insert("errno".into(), (-(ev.res as i64)).into());
        f.insert("errno_name".into(), errno::name(-(ev.res as i64)).into());
    }
    if ev.flags & io_uring_flags::INIT_FAILED != 0 {
        f.insert("init_failed".into(), flag(true));
    }
    if ev.flags & io_uring_flags::MORE != 0 {
        f.insert("more".into(), flag(true));
    }
    if ev.flags & io_uring_flags::DATA_TRUNCATED != 0 {
        f.insert("captures_truncated".into(), flag(true));
    }
    f.insert(
        "duration_ns".into(),
        ev.header.boot_ns.saturating_sub(ev.submit_ns).into(),
    );
    if is_open {
        let arg = paths::path_arg(u, 0);
        let opened = (ev.res >= 0)
            .then(|| paths::fd_path(u, RET, paths::resolution::OPENED_FILE))
            .flatten();
        match (arg, opened) {
            (Some((raw, _)), Some(r)) => put_path(f, "path", Some(&raw), &r),
            (Some((raw, r)), None) => put_path(f, "path", Some(&raw), &r),
            (None, Some(r)) => put_path(f, "path", None, &r),
            (None, None) => {}
        }
        if ev.flags & io_uring_flags::PATH_TRUNCATED != 0 {
            f.insert("path_truncated".into(), flag(true));
        }
    }
    let given = u
        .arg_data(arg_data_kind::SOCKADDR, 1)
        .filter(|c| c.bytes.len() >= 2 && c.bytes[..2] != [0, 0]);
    if let Some(c) = given {
        f.insert("remote".into(), sockaddr::decode(&c.bytes));
    } else if let Some(c) = u.arg_data(arg_data_kind::SOCKADDR, PEER) {
        f.insert("remote".into(), sockaddr::decode(&c.bytes));
        f.insert("remote_source".into(), "peer".into());
    }
    if let Some(r) = paths::fd_path(u, 2, paths::resolution::FD) {
        put_path(f, "file", None, &r);
    }
}

fn put_path(f: &mut Json, name: &str, raw: Option<&[u8]>, r: &paths::Resolved) {
    put_bytes(f, name, &r.path);
    f.insert(format!("{name}_resolution"), r.resolution.into());
    if let Some(raw) = raw.filter(|raw| *raw != r.path.as_slice()) {
        put_bytes(f, &format!("{name}_arg"), raw);
    }
    if r.truncated {
        f.insert(format!("{name}_truncated"), Value::from(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_numbers_follow_the_uapi_enum() {
        assert_eq!(opcode_name(16), Some("CONNECT"));
        assert_eq!(opcode_name(18), Some("OPENAT"));
        assert_eq!(opcode_name(22), Some("READ"));
        assert_eq!(opcode_name(23), Some("WRITE"));
        assert_eq!(opcode_name(28), Some("OPENAT2"));
        assert_eq!(opcode_name(45), Some("SOCKET"));
        assert_eq!(opcode_name(1000), None);
    }
}
