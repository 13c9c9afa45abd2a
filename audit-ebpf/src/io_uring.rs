//! io_uring: requests bypass the syscall tracepoints entirely, so the
//! io_uring tracepoints are probed instead. A ring is audited when a task in
//! scope creates it or submits to it (`IOU_RINGS`, ctx → owner tgid); from
//! then on every request of that ring is, whichever thread submits it
//! (SQPOLL) or runs it (io-wq) — and after the owner left the scope.
//!
//! submit_req (after the request's prep, so the kernel already holds its
//! own copies of the path and the address) saves what the request is;
//! complete pairs it with the result and emits one event with captures in
//! the syscall capture format: the path as given (slot 0), its directory
//! when relative, the opened file (RET), the connect address (slot 1), the
//! request's file (slot 2) and a socket file's peer (PEER).

use audit_common::{
    event::{IO_URING_ADDR_MAX, IO_URING_PATH_MAX, IoUringEvent, IoUringPending, io_uring_flags},
    kind::EventKind,
    syscall::{
        ArgDataHeader, RET, SYSCALL_DATA_MAX, SyscallScratch, arg_data_flags, arg_data_kind,
    },
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{
            bpf_ktime_get_boot_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_str,
            bpf_probe_read_user,
        },
    },
    macros::tracepoint,
    programs::TracePointContext,
};

use crate::{
    argdata::Writer,
    emit::{count_loss, emit_bytes},
    globals::{self, IO_URING, OFFSETS},
    maps::{IOU_PENDING, IOU_RINGS, IOU_SCRATCH, SYSCALL_SCRATCH},
    paths::{cwd, fd_path, path_components},
    peer::file_peer,
    scope::in_scope,
    task::{fill_header, read_at},
};

const OP_CONNECT: u32 = 16;
const OP_OPENAT: u32 = 18;
const OP_OPENAT2: u32 = 28;
/// REQ_F_CQE_SKIP (= IOSQE_CQE_SKIP_SUCCESS, bit 6): no completion on success.
const REQ_F_CQE_SKIP: u64 = 1 << 6;
/// IORING_CQE_F_MORE: more completions follow for this request.
const CQE_F_MORE: u32 = 1 << 1;
const AT_FDCWD: i32 = -100;
const MASK: usize = SYSCALL_DATA_MAX - 1;

#[inline(always)]
fn o(f: &u32) -> u32 {
    globals::get(f)
}

#[inline(always)]
fn field<T: Copy + Default>(ctx: &TracePointContext, off: u32) -> T {
    if off == u32::MAX {
        return T::default();
    }
    unsafe { ctx.read_at::<T>(off as usize) }.unwrap_or_default()
}

/// io_uring_create(fd, ctx, sq_entries, cq_entries, flags)
#[tracepoint]
pub fn iou_create(ctx: TracePointContext) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !in_scope(tgid) {
        return 0;
    }
    let ring: u64 = field(&ctx, o(&IO_URING.create_ctx));
    if ring != 0 {
        let _ = IOU_RINGS.insert(&ring, &tgid, 0);
    }
    0
}

/// The ring's owner if the ring is audited (registering it when the
/// current task is in scope).
#[inline(always)]
fn ring_owner(ring: u64) -> Option<u32> {
    if let Some(owner) = unsafe { IOU_RINGS.get(&ring) } {
        return Some(*owner);
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !in_scope(tgid) {
        return None;
    }
    let _ = IOU_RINGS.insert(&ring, &tgid, 0);
    Some(tgid)
}

/// Starts a pending entry for `req` in the per-CPU scratch.
#[inline(always)]
fn start_pending(
    ring: u64,
    user_data: u64,
    opcode: u32,
    req_flags: u64,
    owner: u32,
) -> Option<&'static mut IoUringPending> {
    let p = IOU_SCRATCH.get_ptr_mut(0)?;
    let p = unsafe { &mut *p };
    p.ctx = ring;
    p.user_data = user_data;
    p.submit_ns = unsafe { bpf_ktime_get_boot_ns() };
    p.opcode = opcode;
    p.req_flags = req_flags as u32;
    p.fd = -1;
    p.owner_tgid = owner;
    p.submit_tid = bpf_get_current_pid_tgid() as u32;
    p.sq_thread = 0;
    p.flags = 0;
    p.path_len = 0;
    p.addr_len = 0;
    p._pad = 0;
    Some(p)
}

/// io_uring_submit_req(ctx, req, user_data, opcode, flags, sq_thread)
#[tracepoint]
pub fn iou_submit(ctx: TracePointContext) -> u32 {
    let ring: u64 = field(&ctx, o(&IO_URING.submit_ctx));
    let Some(owner) = ring_owner(ring) else {
        return 0;
    };
    let req: u64 = field(&ctx, o(&IO_URING.submit_req));
    let user_data: u64 = field(&ctx, o(&IO_URING.submit_user_data));
    let opcode: u8 = field(&ctx, o(&IO_URING.submit_opcode));
    let req_flags: u64 = field(&ctx, o(&IO_URING.submit_flags));
    let sq_thread: u8 = field(&ctx, o(&IO_URING.submit_sq_thread));
    let Some(p) = start_pending(ring, user_data, opcode as u32, req_flags, owner) else {
        return 0;
    };
    p.sq_thread = sq_thread as u32;
    p.fd = read_at::<i32>(req, o(&IO_URING.req_cqe_fd)).unwrap_or(-1);
    let cmd = o(&IO_URING.req_cmd);
    let opcode = opcode as u32;
    if (opcode == OP_OPENAT || opcode == OP_OPENAT2) && cmd != u32::MAX {
        let open = req + cmd as u64;
        p.fd = read_at::<i32>(open, o(&IO_URING.open_dfd)).unwrap_or(AT_FDCWD);
        let filename: u64 = read_at(open, o(&IO_URING.open_filename)).unwrap_or(0);
        let name: u64 = read_at(filename, o(&IO_URING.filename_name)).unwrap_or(0);
        if name != 0 {
            let n = unsafe {
                bpf_probe_read_kernel_str(
                    p.path.as_mut_ptr().cast(),
                    IO_URING_PATH_MAX as u32,
                    name as *const _,
                )
            };
            if n > 0 {
                p.path_len = (n - 1) as u32;
                if n as usize >= IO_URING_PATH_MAX {
                    p.flags |= io_uring_flags::PATH_TRUNCATED;
                }
            }
        }
    }
    if opcode == OP_CONNECT && cmd != u32::MAX {
        // The address the SQE points to, read at submission (after prep
        // copied it) in the submitter, which shares the owner's memory.
        // The kernel's own copy (async_data) did not read back reliably
        // through BTF offsets on 6.18, so it is not used.
        let conn = req + cmd as u64;
        let len: i32 = read_at(conn, o(&IO_URING.connect_addr_len)).unwrap_or(0);
        let uptr: u64 = read_at(conn, o(&IO_URING.connect_addr)).unwrap_or(0);
        if len > 0 && uptr != 0 {
            let n = if len as usize >= IO_URING_ADDR_MAX {
                IO_URING_ADDR_MAX
            } else {
                len as usize & (IO_URING_ADDR_MAX - 1)
            };
            if unsafe {
                bpf_probe_read_user(p.addr.as_mut_ptr().cast(), n as u32, uptr as *const _)
            } == 0
            {
                p.addr_len = n as u32;
            }
        }
    }
    if req_flags & REQ_F_CQE_SKIP != 0 {
        // No completion will come on success: record it now.
        p.flags |= io_uring_flags::SUBMIT_ONLY;
        emit_op(req, p, 0, 0);
        p.flags &= !io_uring_flags::SUBMIT_ONLY;
    }
    let _ = IOU_PENDING.insert(&req, p, 0);
    0
}

/// io_uring_req_failed(ctx, req, user_data, opcode, flags, ..., error): the
/// request failed at init (no submit_req); its completion still follows.
#[tracepoint]
pub fn iou_failed(ctx: TracePointContext) -> u32 {
    let ring: u64 = field(&ctx, o(&IO_URING.failed_ctx));
    let Some(owner) = ring_owner(ring) else {
        return 0;
    };
    let req: u64 = field(&ctx, o(&IO_URING.failed_req));
    let user_data: u64 = field(&ctx, o(&IO_URING.failed_user_data));
    let opcode: u8 = field(&ctx, o(&IO_URING.failed_opcode));
    let sqe_flags: u8 = field(&ctx, o(&IO_URING.failed_flags));
    let Some(p) = start_pending(ring, user_data, opcode as u32, sqe_flags as u64, owner) else {
        return 0;
    };
    p.flags |= io_uring_flags::INIT_FAILED;
    let _ = IOU_PENDING.insert(&req, p, 0);
    0
}

/// io_uring_complete(ctx, req, user_data, res, cflags, ...)
#[tracepoint]
pub fn iou_complete(ctx: TracePointContext) -> u32 {
    let req: u64 = field(&ctx, o(&IO_URING.complete_req));
    let Some(p) = (unsafe { IOU_PENDING.get(&req) }) else {
        return 0;
    };
    let res: i32 = field(&ctx, o(&IO_URING.complete_res));
    let cflags: u32 = field(&ctx, o(&IO_URING.complete_cflags));
    emit_op(req, p, res, cflags);
    if cflags & CQE_F_MORE == 0 {
        let _ = IOU_PENDING.remove(&req);
    }
    0
}

/// Appends `len` bytes of a map value as a capture.
#[inline(always)]
fn put_kernel_bytes(w: &mut Writer, kind: u8, slot: u8, flags: u8, src: *const u8, len: usize) {
    if !w.room(IO_URING_PATH_MAX + 8) {
        return;
    }
    let at = w.at();
    let n = if len > IO_URING_PATH_MAX {
        IO_URING_PATH_MAX
    } else {
        len
    };
    // No-op for the value; shows the verifier the bound.
    let n = crate::bound::masked(n, 2 * IO_URING_PATH_MAX - 1);
    let dst = unsafe { w.data.as_mut_ptr().add(at + 8) };
    if n > 0 && unsafe { bpf_probe_read_kernel(dst.cast(), n as u32, src.cast()) } != 0 {
        return;
    }
    let h = ArgDataHeader {
        kind,
        slot,
        flags,
        _pad: 0,
        len: n as u32,
    };
    unsafe { (w.data.as_mut_ptr().add(at) as *mut ArgDataHeader).write_unaligned(h) };
    w.pos = at + 8 + n;
}

/// Builds and emits the event of request `req` from what its submission saved.
#[inline(always)]
fn emit_op(req: u64, p: &IoUringPending, res: i32, cflags: u32) {
    let Some(scratch) = SYSCALL_SCRATCH.get_ptr_mut(0) else {
        count_loss(EventKind::IoUring as u32);
        return;
    };
    let scratch: &mut SyscallScratch = unsafe { &mut *scratch };
    let mut w = Writer {
        data: &mut scratch.data,
        pos: 0,
        truncated: false,
    };
    let is_open = p.opcode == OP_OPENAT || p.opcode == OP_OPENAT2;
    if is_open && p.path_len > 0 {
        let at = w.pos;
        let tflag = if p.flags & io_uring_flags::PATH_TRUNCATED != 0 {
            arg_data_flags::TRUNCATED
        } else {
            0
        };
        put_kernel_bytes(
            &mut w,
            arg_data_kind::STRING,
            0,
            tflag,
            p.path.as_ptr(),
            p.path_len as usize,
        );
        let first = w.data.get((at & MASK) + 8).copied().unwrap_or(0);
        if w.pos != at && first != b'/' {
            // Relative: the directory it was resolved against (io_uring
            // threads share the owner's fs and files).
            let (dir, flags) = if p.fd == AT_FDCWD {
                (cwd(), arg_data_flags::FROM_CWD)
            } else {
                (fd_path(p.fd as i64), 0)
            };
            if let Some(d) = dir {
                path_components(&mut w, (flags as u32) << 8, d.mnt, d.dentry);
            }
        }
        if res >= 0 && p.flags & io_uring_flags::SUBMIT_ONLY == 0 {
            if let Some(f) = fd_path(res as i64) {
                path_components(&mut w, RET as u32, f.mnt, f.dentry);
            }
        }
    }
    if p.addr_len > 0 {
        put_kernel_bytes(
            &mut w,
            arg_data_kind::SOCKADDR,
            1,
            0,
            p.addr.as_ptr(),
            p.addr_len as usize,
        );
    }
    if !is_open {
        let file: u64 = read_at(req, o(&IO_URING.req_file)).unwrap_or(0);
        let fpath = o(&OFFSETS.file_path);
        if file != 0 && fpath != u32::MAX {
            let mnt: u64 = read_at(file + fpath as u64, o(&OFFSETS.path_mnt)).unwrap_or(0);
            let dentry: u64 = read_at(file + fpath as u64, o(&OFFSETS.path_dentry)).unwrap_or(0);
            if mnt != 0 && dentry != 0 {
                path_components(&mut w, 2, mnt, dentry);
            }
            let _ = file_peer(&mut w, file);
        }
    }
    let pos = w.at();
    let truncated = w.truncated;
    let ev: &mut IoUringEvent =
        unsafe { &mut *(&mut scratch.event as *mut _ as *mut IoUringEvent) };
    fill_header(
        &mut ev.header,
        EventKind::IoUring as u32,
        (core::mem::size_of::<IoUringEvent>() + pos) as u32,
    );
    ev.ctx = p.ctx;
    ev.req = req;
    ev.user_data = p.user_data;
    ev.submit_ns = p.submit_ns;
    ev.res = res;
    ev.cflags = cflags;
    ev.opcode = p.opcode;
    ev.req_flags = p.req_flags;
    ev.fd = p.fd;
    ev.owner_tgid = p.owner_tgid;
    ev.submit_tid = p.submit_tid;
    ev.sq_thread = p.sq_thread;
    ev.flags = p.flags
        | if cflags & CQE_F_MORE != 0 {
            io_uring_flags::MORE
        } else {
            0
        }
        | if truncated {
            io_uring_flags::DATA_TRUNCATED
        } else {
            0
        };
    ev.data_len = pos as u32;
    ev._reserved = [0];
    let size = core::mem::size_of::<IoUringEvent>() + pos;
    let bytes: &[u8; core::mem::size_of::<SyscallScratch>()] =
        unsafe { &*(scratch as *const SyscallScratch).cast() };
    emit_bytes(EventKind::IoUring as u32, bytes, size);
}
