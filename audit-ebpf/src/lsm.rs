//! BPF LSM programs: they see what syscall tracepoints miss (io_uring and
//! other in-kernel paths reach security_file_open / security_socket_connect
//! too) and see the object actually resolved. They run only where the
//! loader's self-test showed that LSM programs load and fire.
//!
//! A hook fires inside syscalls the tracepoints already record (openat,
//! execve, connect, ...): for those the tracepoint record is kept and the
//! hook stays silent, so nothing is recorded twice. The loader lists those
//! syscall numbers in `LSM_TP_COVERED`.
//!
//! Every program returns the previous LSM verdict (`retval`, the hook's last
//! argument) unchanged: they observe, they do not decide (yet).

use audit_common::{
    kind::EventKind,
    lsm::{FROM_LSM, hook, offset, selftest},
    syscall::{RET, SOCKADDR_MAX, SYSCALL_DATA_MAX, SyscallEvent, SyscallScratch, arg_data_kind},
};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_probe_read_kernel},
    macros::{lsm, map},
    maps::{Array, HashMap},
    programs::LsmContext,
};

use crate::{
    argdata::{Writer, kind_slot},
    emit::{count_loss, emit_bytes},
    globals::{self, OFFSETS},
    maps::{PENDING, SYSCALL_SCRATCH},
    paths::path_components,
    scope::in_scope,
    task::{fill_header, read_at},
};

/// Offsets of the fields only LSM programs read (see `audit_common::lsm::offset`).
#[unsafe(no_mangle)]
pub static LSM_OFFSETS: [u32; offset::COUNT] = [u32::MAX; offset::COUNT];

/// Syscall numbers whose tracepoint records already cover what a hook sees.
#[map]
pub static LSM_TP_COVERED: HashMap<u32, u8> = HashMap::with_max_entries(64, 0);

/// [tgid to count, runs counted] for the load-time self-test.
#[map]
pub static LSM_SELFTEST: Array<u64> = Array::with_max_entries(2, 0);

#[inline(always)]
fn lsm_off(i: usize) -> u32 {
    match LSM_OFFSETS.get(i) {
        Some(v) => globals::get(v),
        None => u32::MAX,
    }
}

/// Does a recorded syscall of this thread already cover the hook?
#[inline(always)]
fn covered_by_tracepoint(pid_tgid: u64) -> bool {
    match unsafe { PENDING.get(&pid_tgid) } {
        Some(p) => unsafe { LSM_TP_COVERED.get(&p.nr) }.is_some(),
        None => false,
    }
}

/// The self-test: counts its runs in the loader's own process.
#[lsm(hook = "file_open")]
pub fn lsm_selftest(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(1);
    let tgid = bpf_get_current_pid_tgid() >> 32;
    let Some(want) = LSM_SELFTEST.get_ptr_mut(selftest::TGID) else {
        return retval;
    };
    if unsafe { *want } == tgid {
        if let Some(hits) = LSM_SELFTEST.get_ptr_mut(selftest::HITS) {
            unsafe { *hits += 1 };
        }
    }
    retval
}

/// Starts an LSM event in the per-CPU scratch; `None` when out of scope.
#[inline(always)]
fn begin(hook_id: u32, retval: i32) -> Option<&'static mut SyscallScratch> {
    let scratch = SYSCALL_SCRATCH.get_ptr_mut(0)?;
    let scratch = unsafe { &mut *scratch };
    let ev = &mut scratch.event;
    ev.nr = hook_id;
    ev.ret = retval as i64;
    ev.args = [0; 6];
    ev.flags = FROM_LSM;
    Some(scratch)
}

#[inline(always)]
fn finish(scratch: &mut SyscallScratch, pos: usize, truncated: bool) {
    let pos = pos & (SYSCALL_DATA_MAX - 1);
    let size = core::mem::size_of::<SyscallEvent>() + pos;
    let ev = &mut scratch.event;
    fill_header(&mut ev.header, EventKind::Syscall as u32, size as u32);
    ev.enter_ns = ev.header.boot_ns;
    ev.data_len = pos as u32;
    ev._pad = 0;
    if truncated {
        ev.flags |= audit_common::syscall::event_flags::DATA_TRUNCATED;
    }
    let bytes: &[u8; core::mem::size_of::<SyscallScratch>()] =
        unsafe { &*(scratch as *const SyscallScratch).cast() };
    emit_bytes(EventKind::Syscall as u32, bytes, size);
}

#[lsm(hook = "file_open")]
pub fn lsm_file_open(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(1);
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) || covered_by_tracepoint(pid_tgid) {
        return retval;
    }
    let file: u64 = ctx.arg(0);
    let Some(scratch) = begin(hook::FILE_OPEN, retval) else {
        count_loss(EventKind::Syscall as u32);
        return retval;
    };
    scratch.event.args[0] = read_at::<u32>(file, lsm_off(offset::FILE_F_FLAGS)).unwrap_or(0) as u64;
    scratch.event.args[1] = read_at::<u32>(file, lsm_off(offset::FILE_F_MODE)).unwrap_or(0) as u64;
    let f_path = globals::get(&OFFSETS.file_path);
    let mnt: u64 = read_at(file + f_path as u64, globals::get(&OFFSETS.path_mnt)).unwrap_or(0);
    let dentry: u64 =
        read_at(file + f_path as u64, globals::get(&OFFSETS.path_dentry)).unwrap_or(0);
    let mut w = Writer {
        data: &mut scratch.data,
        pos: 0,
        truncated: false,
    };
    if mnt != 0 && dentry != 0 {
        path_components(&mut w, RET as u32, mnt, dentry);
    }
    let (pos, truncated) = (w.pos, w.truncated);
    finish(scratch, pos, truncated);
    retval
}

#[lsm(hook = "socket_connect")]
pub fn lsm_socket_connect(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(3);
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) || covered_by_tracepoint(pid_tgid) {
        return retval;
    }
    let addr: u64 = ctx.arg(1);
    let addrlen: i32 = ctx.arg(2);
    let Some(scratch) = begin(hook::SOCKET_CONNECT, retval) else {
        count_loss(EventKind::Syscall as u32);
        return retval;
    };
    scratch.event.args[0] = addrlen as u32 as u64;
    // The address is already in kernel memory (copied in by the caller).
    let mut n = addrlen.max(0) as usize;
    let mut flags = 0u8;
    if n > SOCKADDR_MAX {
        n = SOCKADDR_MAX;
        flags |= audit_common::syscall::arg_data_flags::TRUNCATED;
    }
    let n = n & (2 * SOCKADDR_MAX - 1);
    let data = &mut scratch.data;
    let read = n > 0
        && unsafe { bpf_probe_read_kernel(data.as_mut_ptr().add(8).cast(), n as u32, addr as *const _) }
            == 0;
    let n = if read {
        n
    } else {
        flags |= audit_common::syscall::arg_data_flags::UNREADABLE;
        0
    };
    let ks = kind_slot(arg_data_kind::SOCKADDR, 1);
    let h = audit_common::syscall::ArgDataHeader {
        kind: (ks >> 8) as u8,
        slot: ks as u8,
        flags,
        _pad: 0,
        len: n as u32,
    };
    unsafe { (data.as_mut_ptr() as *mut audit_common::syscall::ArgDataHeader).write_unaligned(h) };
    finish(scratch, 8 + n, false);
    retval
}
