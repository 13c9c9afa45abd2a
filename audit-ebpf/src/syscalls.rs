//! The generic syscall logic: [`enter`] saves the arguments per thread;
//! [`exit`] pairs them with the result and captures what the loader's
//! [`SyscallSpec`] asks for. Two entry styles call them: the raw
//! sys_enter/sys_exit dispatcher (`dispatch`, the default, native and
//! compat syscalls), and — the fallback when the dispatcher cannot read
//! `pt_regs` — `sys_enter`/`sys_exit` here, attached to the
//! `syscalls:sys_enter_*` / `sys_exit_*` tracepoints of every audited syscall.

use core::ffi::c_void;

use audit_common::{
    event::EventHeader,
    kind::{EventKind, loss_slot},
    syscall::{
        CWD, FD_BITMAP_FDS, MAX_OPS, MMSG_SLOT, PendingSyscall, RET, SYSCALL_DATA_MAX,
        SyscallEvent, SyscallSpec, arg_data_flags, arg_data_kind, event_flags, op, spec_flags,
    },
};
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_user,
        generated::{bpf_ktime_get_boot_ns, bpf_loop},
    },
    macros::tracepoint,
    programs::TracePointContext,
};

use crate::{
    argdata::{self, Writer, first_byte, kind_slot, sockaddr_port},
    emit::{count_loss, emit_bytes},
    maps::{
        COMPAT_SPECS, FD_MARKS, LOOP_STATE, PENDING, SPECS, SYSCALL_SCRATCH, TRACKED_PIDS,
        ZERO_BITMAP,
    },
    paths::{cwd, fd_path, path_components},
    peer,
    scope::in_scope,
    task::fill_header,
};

/// Stable layout of every syscalls:* tracepoint record.
const NR_OFFSET: usize = 8;
const ARGS_OFFSET: usize = 16;
const RET_OFFSET: usize = 16;
const AT_FDCWD: i64 = -100;

/// The spec of syscall `nr`: native, or i386 when `abi` says ia32 (x32
/// numbers are the native table's).
#[inline(always)]
pub fn spec_for(nr: i32, abi: u32) -> Option<&'static SyscallSpec> {
    if nr < 0 {
        return None;
    }
    let s = if abi & event_flags::ABI_IA32 != 0 {
        COMPAT_SPECS.get(nr as u32)?
    } else {
        SPECS.get(nr as u32)?
    };
    (s.flags & spec_flags::ENABLED != 0).then_some(s)
}

#[inline(always)]
fn arg(args: &[u64; 6], i: u8) -> u64 {
    match args.get(i as usize) {
        Some(v) => *v,
        None => 0,
    }
}

/// Bit `fd` of the current process's first-write marks: (word index, mask).
#[inline(always)]
fn fd_bit(fd: i64) -> Option<(usize, u64)> {
    if fd < 0 || fd as usize >= FD_BITMAP_FDS {
        return None;
    }
    Some((
        crate::bound::masked(fd as usize / 64, FD_BITMAP_FDS / 64 - 1),
        1u64 << (fd as u64 % 64),
    ))
}

#[inline(always)]
fn fd_marked(tgid: u32, fd: i64) -> bool {
    let Some((w, m)) = fd_bit(fd) else {
        return false;
    };
    match FD_MARKS.get_ptr(&tgid) {
        Some(b) => unsafe { (*b).bits[w] & m != 0 },
        None => false,
    }
}

#[inline(always)]
fn clear_mark(tgid: u32, fd: i64) {
    let Some((w, m)) = fd_bit(fd) else { return };
    if let Some(b) = FD_MARKS.get_ptr_mut(&tgid) {
        unsafe { (*b).bits[w] &= !m };
    }
}

/// The bitmap words a close_range still has to clear, shared with the
/// `bpf_loop` callback through the per-CPU [`LOOP_STATE`] (see `paths::Walk`
/// for why not the stack). A plain 64-step loop over the words made 6.1's
/// verifier explore every iteration's branches and give up with E2BIG.
#[repr(C)]
pub struct ClearRange {
    tgid: u64,
    first: u64,
    last: u64,
    /// Index of the first word the range touches.
    word0: u64,
}

/// Clears the marks of fds `first..=last` (close_range): one `bpf_loop`
/// step per bitmap word in the range.
#[inline(always)]
fn clear_range(tgid: u32, first: u64, last: u64) {
    const WORDS: u64 = (FD_BITMAP_FDS / 64) as u64;
    if first > last || first >= FD_BITMAP_FDS as u64 || FD_MARKS.get_ptr(&tgid).is_none() {
        return;
    }
    let Some(state) = LOOP_STATE.get_ptr_mut(0) else {
        return;
    };
    let word0 = first / 64;
    let word_last = if last / 64 < WORDS {
        last / 64
    } else {
        WORDS - 1
    };
    unsafe {
        (*state).clear = ClearRange {
            tgid: tgid as u64,
            first,
            last,
            word0,
        };
        bpf_loop(
            (word_last - word0 + 1) as u32,
            clear_step as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
}

/// Clears the range's bits in word `word0 + index`. Returns 1 to stop.
#[inline(never)]
extern "C" fn clear_step(index: u64, _ctx: *mut c_void) -> i64 {
    let Some(state) = LOOP_STATE.get_ptr_mut(0) else {
        return 1;
    };
    let c = unsafe { &(*state).clear };
    let w = c.word0 + index;
    if w >= (FD_BITMAP_FDS / 64) as u64 {
        return 1;
    }
    let lo = w * 64;
    let hi = lo + 63;
    if c.last < lo || c.first > hi {
        return 0;
    }
    let from = if c.first > lo { c.first - lo } else { 0 };
    let to = if c.last < hi { c.last - lo } else { 63 };
    // Bits from..=to set.
    let mask = (u64::MAX >> ((63 - to) & 63)) & (u64::MAX << (from & 63));
    let Some(b) = FD_MARKS.get_ptr_mut(&(c.tgid as u32)) else {
        return 1;
    };
    unsafe { (*b).bits[crate::bound::masked(w as usize, FD_BITMAP_FDS / 64 - 1)] &= !mask };
    0
}

#[inline(always)]
fn set_mark(tgid: u32, fd: i64) {
    let Some((w, m)) = fd_bit(fd) else {
        count_loss(loss_slot::FIRST_WRITE_UNTRACKED);
        return;
    };
    if FD_MARKS.get_ptr_mut(&tgid).is_none() {
        if let Some(zero) = ZERO_BITMAP.get(0) {
            let _ = FD_MARKS.insert(&tgid, zero, BPF_NOEXIST as u64);
        }
    }
    match FD_MARKS.get_ptr_mut(&tgid) {
        Some(b) => unsafe { (*b).bits[w] |= m },
        None => count_loss(loss_slot::FIRST_WRITE_UNTRACKED),
    }
}

#[tracepoint]
pub fn sys_enter(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if !in_scope(tgid) {
        return 0;
    }
    let Ok(nr) = (unsafe { ctx.read_at::<i32>(NR_OFFSET) }) else {
        return 0;
    };
    let Some(spec) = spec_for(nr, 0) else {
        return 0;
    };
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        if i < spec.nargs as usize {
            *a = unsafe { ctx.read_at::<u64>(ARGS_OFFSET + 8 * i) }.unwrap_or(0);
        }
    }
    enter(pid_tgid, nr as u32, 0, spec, args);
    0
}

/// The destination of a `struct msghdr` (or `compat_msghdr`): (msg_name, msg_namelen).
#[inline(always)]
pub fn msghdr_name(msg: u64, compat: bool) -> (u64, u32) {
    if compat {
        let name: u32 = unsafe { bpf_probe_read_user(msg as *const u32) }.unwrap_or(0);
        let len: u32 = unsafe { bpf_probe_read_user((msg + 4) as *const u32) }.unwrap_or(0);
        (name as u64, len)
    } else {
        let name: u64 = unsafe { bpf_probe_read_user(msg as *const u64) }.unwrap_or(0);
        let len: u32 = unsafe { bpf_probe_read_user((msg + 8) as *const u32) }.unwrap_or(0);
        (name, len)
    }
}

/// The first iovec of a `struct msghdr` (or `compat_msghdr`): (base, len).
#[inline(always)]
fn msghdr_iov0(msg: u64, compat: bool) -> (u64, u64) {
    if compat {
        let iov: u32 = unsafe { bpf_probe_read_user((msg + 8) as *const u32) }.unwrap_or(0);
        let base: u32 = unsafe { bpf_probe_read_user(iov as u64 as *const u32) }.unwrap_or(0);
        let len: u32 = unsafe { bpf_probe_read_user((iov as u64 + 4) as *const u32) }.unwrap_or(0);
        (base as u64, len as u64)
    } else {
        // struct msghdr { name; namelen; iov; iovlen; ... }: iov at 16.
        let iov: u64 = unsafe { bpf_probe_read_user((msg + 16) as *const u64) }.unwrap_or(0);
        let base: u64 = unsafe { bpf_probe_read_user(iov as *const u64) }.unwrap_or(0);
        let len: u64 = unsafe { bpf_probe_read_user((iov + 8) as *const u64) }.unwrap_or(0);
        (base, len)
    }
}

/// Syscall entry, native or compat: the spec's cheap filters, then the
/// arguments saved for exit.
#[inline(always)]
pub fn enter(pid_tgid: u64, nr: u32, abi: u32, spec: &SyscallSpec, args: [u64; 6]) {
    let tgid = (pid_tgid >> 32) as u32;
    let p = PendingSyscall {
        nr,
        abi,
        enter_ns: unsafe { bpf_ktime_get_boot_ns() },
        args,
    };
    let f = spec.flags;
    // Frequent syscalls are decided here so that most never reach exit work.
    if f & spec_flags::CLOSE != 0 {
        clear_mark(tgid, p.args[0] as i64);
        return;
    }
    if f & spec_flags::CLOSE_RANGE != 0 {
        clear_range(tgid, p.args[0], p.args[1]);
        return;
    }
    if f & spec_flags::FIRST_WRITE != 0 && !fd_marked(tgid, p.args[0] as i64) {
        return;
    }
    if f & spec_flags::DUP_FCNTL != 0 {
        const F_DUPFD: u32 = 0;
        const F_DUPFD_CLOEXEC: u32 = 1030;
        let cmd = p.args[1] as u32;
        if cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC {
            return;
        }
    }
    if f & spec_flags::VALUE_FILTER != 0 {
        let v = arg(&p.args, spec.filter_arg) as u32;
        let hit = v != 0
            && (v == spec.filter_vals[0]
                || v == spec.filter_vals[1]
                || v == spec.filter_vals[2]
                || v == spec.filter_vals[3]);
        if !hit {
            return;
        }
    }
    if f & spec_flags::NEEDS_ADDR != 0
        && arg(&p.args, spec.flags_arg) == 0
        && !fd_marked(tgid, p.args[0] as i64)
    {
        return;
    }
    if f & spec_flags::NEEDS_MSG_NAME != 0 {
        let msg = arg(&p.args, spec.flags_arg);
        let (name, _) = msghdr_name(msg, f & spec_flags::COMPAT_MSGHDR != 0);
        if name == 0 && !fd_marked(tgid, p.args[0] as i64) {
            return;
        }
    }
    if PENDING.insert(&pid_tgid, &p, 0).is_err() {
        count_loss(loss_slot::PENDING_MAP_FULL);
    }
}

#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(pending) = (unsafe { PENDING.get(&pid_tgid) }) else {
        return 0;
    };
    let p = *pending;
    if p.abi != 0 {
        // A compat syscall's entry: its exit comes through the dispatcher.
        return 0;
    }
    let _ = PENDING.remove(&pid_tgid);
    let nr = unsafe { ctx.read_at::<i32>(NR_OFFSET) }.unwrap_or(-1);
    if nr as u32 != p.nr {
        return 0;
    }
    let ret = unsafe { ctx.read_at::<i64>(RET_OFFSET) }.unwrap_or(0);
    exit(pid_tgid, &p, ret);
    0
}

/// Syscall exit, native or compat: the result, the marks, the captures, and
/// the event.
#[inline(always)]
pub fn exit(pid_tgid: u64, p: &PendingSyscall, ret: i64) {
    let tgid = (pid_tgid >> 32) as u32;
    let Some(spec) = spec_for(p.nr as i32, p.abi) else {
        return;
    };
    let f = spec.flags;
    if f & spec_flags::EXEC != 0 && ret == 0 {
        return;
    }
    if f & spec_flags::DUP != 0 {
        if ret >= 0 && ret as u64 != p.args[0] {
            let marked = fd_marked(tgid, p.args[0] as i64);
            clear_mark(tgid, ret);
            if marked {
                set_mark(tgid, ret);
            }
        }
        return;
    }
    if f & spec_flags::FIRST_WRITE != 0 {
        if ret < 0 {
            return;
        }
        clear_mark(tgid, p.args[0] as i64);
    }
    if f & (spec_flags::NEEDS_ADDR | spec_flags::NEEDS_MSG_NAME) != 0 && ret >= 0 {
        // The first send on a connected socket has been seen.
        clear_mark(tgid, p.args[0] as i64);
    }
    const EINPROGRESS: i64 = 115;
    if f & spec_flags::MARK_FD != 0 && (ret >= 0 || ret == -EINPROGRESS) {
        let fd = if spec.mark_arg == RET {
            ret
        } else {
            arg(&p.args, spec.mark_arg) as i32 as i64
        };
        set_mark(tgid, fd);
    }
    if f & spec_flags::OPEN_FOR_WRITE != 0 && ret >= 0 {
        let mut oflags = arg(&p.args, spec.flags_arg);
        if f & spec_flags::OPEN_HOW != 0 {
            oflags = unsafe { bpf_probe_read_user(oflags as *const u64) }.unwrap_or(0);
        }
        const O_ACCMODE: u64 = 3;
        if f & spec_flags::ALWAYS_WRITE != 0 || oflags & O_ACCMODE != 0 {
            set_mark(tgid, ret);
        }
    }

    let Some(scratch) = SYSCALL_SCRATCH.get_ptr_mut(0) else {
        count_loss(EventKind::Syscall as u32);
        return;
    };
    let scratch = unsafe { &mut *scratch };
    let mut eflags = p.abi & event_flags::ABI_MASK;
    if f & spec_flags::KILL != 0 {
        let target = arg(&p.args, spec.flags_arg) as i64 as i32;
        if target > 0 && unsafe { TRACKED_PIDS.get(&(target as u32)) }.is_some() {
            eflags |= event_flags::TARGET_IN_SCOPE;
        }
    }

    // Arguments go into the event first: the capture callback reads them there.
    let ev = &mut scratch.event;
    ev.nr = p.nr;
    ev.ret = ret;
    ev.args = p.args;
    ev.enter_ns = p.enter_ns;
    let Some(state) = LOOP_STATE.get_ptr_mut(0) else {
        return;
    };
    unsafe {
        (*state).ops = OpCtx {
            nr: p.nr as u64,
            ret,
            pos: 0,
            dport: 0,
            truncated: 0,
            abi: p.abi as u64,
        };
        bpf_loop(
            MAX_OPS as u32,
            op_step as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    let ops = unsafe { &(*state).ops };
    if ops.truncated != 0 {
        eflags |= event_flags::DATA_TRUNCATED;
    }
    let pos = (ops.pos as usize) & (SYSCALL_DATA_MAX - 1);

    let ev = &mut scratch.event;
    fill_header_for(&mut ev.header, pos);
    ev.flags = eflags;
    ev.data_len = pos as u32;
    ev._pad = 0;
    let size = core::mem::size_of::<SyscallEvent>() + pos;
    let bytes: &[u8; core::mem::size_of::<audit_common::syscall::SyscallScratch>()] =
        unsafe { &*(scratch as *const audit_common::syscall::SyscallScratch).cast() };
    emit_bytes(EventKind::Syscall as u32, bytes, size);
}

/// Capture state shared with the `bpf_loop` callback, kept in a per-CPU map
/// (see `paths::Walk` for why).
#[repr(C)]
pub struct OpCtx {
    nr: u64,
    ret: i64,
    pos: u64,
    /// Destination port of an address captured so far (0 = none).
    dport: u64,
    truncated: u64,
    /// The pending syscall's ABI bits (which spec table).
    abi: u64,
}

/// Runs capture op number `index` of the syscall's spec. Returns 1 to stop.
#[inline(never)]
extern "C" fn op_step(index: u64, _ctx: *mut c_void) -> i64 {
    let Some(state) = LOOP_STATE.get_ptr_mut(0) else {
        return 1;
    };
    let c = unsafe { &mut (*state).ops };
    let Some(scratch) = SYSCALL_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    let scratch = unsafe { &mut *scratch };
    let Some(spec) = spec_for(c.nr as i32, c.abi as u32) else {
        return 1;
    };
    let compat = spec.flags & spec_flags::COMPAT_MSGHDR != 0;
    let Some(o) = spec.ops.get(index as usize).copied() else {
        return 1;
    };
    if o.kind == op::NONE {
        return 1;
    }
    let args = scratch.event.args;
    let mut w = Writer {
        data: &mut scratch.data,
        pos: c.pos as usize,
        truncated: false,
    };
    let before = w.pos;
    match o.kind {
        op::USER_STR => argdata::user_str(&mut w, o.arg, arg(&args, o.arg)),
        op::PATH_AT => path_at(&mut w, o.arg, o.arg2, &args),
        op::FD_PATH => {
            let fd = if o.arg == RET {
                c.ret
            } else {
                arg(&args, o.arg) as i64
            };
            if let Some(kp) = fd_path(fd) {
                path_components(&mut w, o.arg as u32, kp.mnt, kp.dentry);
            }
        }
        op::SOCKADDR => {
            let ks = kind_slot(arg_data_kind::SOCKADDR, o.arg);
            argdata::user_bytes(&mut w, ks, arg(&args, o.arg), arg(&args, o.arg2));
            if w.pos != before {
                if c.dport == 0 {
                    c.dport = sockaddr_port(w.data, before).unwrap_or(0) as u64;
                }
            }
        }
        op::SOCKADDR_OUT => {
            let lenp = arg(&args, o.arg2);
            let ptr = arg(&args, o.arg);
            if c.ret >= 0 && ptr != 0 && lenp != 0 {
                let len: u32 = unsafe { bpf_probe_read_user(lenp as *const u32) }.unwrap_or(0);
                let ks = kind_slot(arg_data_kind::SOCKADDR, o.arg);
                argdata::user_bytes(&mut w, ks, ptr, len as u64);
            }
        }
        op::MSGHDR_NAME => {
            let (name, len) = msghdr_name(arg(&args, o.arg), compat);
            if name != 0 {
                let ks = kind_slot(arg_data_kind::SOCKADDR, o.arg);
                argdata::user_bytes(&mut w, ks, name, len as u64);
                if w.pos != before {
                    if c.dport == 0 {
                        c.dport = sockaddr_port(w.data, before).unwrap_or(0) as u64;
                    }
                }
            }
        }
        op::USER_BYTES => {
            let ks = kind_slot(arg_data_kind::BYTES, o.arg);
            argdata::user_bytes(&mut w, ks, arg(&args, o.arg), o.size as u64);
        }
        op::USER_U32S => {
            let n = arg(&args, o.arg2).saturating_mul(4).min(o.size as u64);
            let ks = kind_slot(arg_data_kind::BYTES, o.arg);
            argdata::user_bytes(&mut w, ks, arg(&args, o.arg), n);
        }
        op::DNS_PAYLOAD if c.dport == 53 => {
            let n = arg(&args, o.arg2).min(o.size as u64);
            let ks = kind_slot(arg_data_kind::BYTES, o.arg);
            argdata::user_bytes(&mut w, ks, arg(&args, o.arg), n);
        }
        op::DNS_PAYLOAD_MSG if c.dport == 53 => {
            let (base, len) = msghdr_iov0(arg(&args, o.arg), compat);
            let ks = kind_slot(arg_data_kind::BYTES, o.arg);
            argdata::user_bytes(&mut w, ks, base, len.min(o.size as u64));
        }
        op::FD_PEER => {
            let fd = arg(&args, o.arg) as i32 as i64;
            if let Some(port) = peer::fd_peer(&mut w, fd) {
                if c.dport == 0 {
                    c.dport = port as u64;
                }
            }
        }
        op::MMSG => {
            let i = o.size as u64;
            if i < arg(&args, o.arg2) {
                // struct mmsghdr { struct msghdr (56); u32 msg_len; } = 64
                // bytes; compat: 28 + 4 = 32.
                let stride = if compat { 32 } else { 64 };
                let msg = arg(&args, o.arg) + i * stride;
                let slot = MMSG_SLOT.wrapping_add(o.size as u8);
                let (name, len) = msghdr_name(msg, compat);
                let mut port = c.dport;
                if name != 0 {
                    let at = w.pos;
                    argdata::user_bytes(
                        &mut w,
                        kind_slot(arg_data_kind::SOCKADDR, slot),
                        name,
                        len as u64,
                    );
                    if w.pos != at {
                        port = sockaddr_port(w.data, at).unwrap_or(0) as u64;
                    }
                }
                if port == 53 {
                    let (base, blen) = msghdr_iov0(msg, compat);
                    argdata::user_bytes(
                        &mut w,
                        kind_slot(arg_data_kind::BYTES, slot),
                        base,
                        blen.min(512),
                    );
                }
            }
        }
        _ => {}
    }
    c.pos = w.pos as u64;
    if w.truncated {
        c.truncated = 1;
    }
    0
}

#[inline(always)]
fn fill_header_for(h: &mut EventHeader, data_len: usize) {
    fill_header(
        h,
        EventKind::Syscall as u32,
        (core::mem::size_of::<SyscallEvent>() + data_len) as u32,
    );
}

/// A path argument: the raw string, and for a relative one the directory it
/// is relative to (the dirfd's path, or the cwd).
#[inline(always)]
pub fn path_at(w: &mut Writer, path_arg: u8, dirfd_arg: u8, args: &[u64; 6]) {
    let at = w.pos;
    argdata::user_str(w, path_arg, arg(args, path_arg));
    if w.pos == at || first_byte(w.data, at) == b'/' {
        return;
    }
    let dirfd = if dirfd_arg == CWD {
        AT_FDCWD
    } else {
        arg(args, dirfd_arg) as i32 as i64
    };
    let (dir, flags) = if dirfd == AT_FDCWD {
        (cwd(), arg_data_flags::FROM_CWD)
    } else {
        (fd_path(dirfd), 0)
    };
    if let Some(d) = dir {
        path_components(w, ((flags as u32) << 8) | path_arg as u32, d.mnt, d.dentry);
    }
}
