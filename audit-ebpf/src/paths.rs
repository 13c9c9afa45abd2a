//! Turning kernel `struct path`s (cwd, a dirfd, an opened file) into path
//! components, walking dentries up to the task's root and across mounts —
//! what d_path() does, which tracepoint programs may not call.

use core::ffi::c_void;

use audit_common::syscall::{
    ArgDataHeader, NAME_MAX, PATH_DEPTH_MAX, SYSCALL_DATA_MAX, arg_data_flags, arg_data_kind,
};
use aya_ebpf::helpers::generated::{bpf_loop, bpf_probe_read_kernel_str};

use crate::{
    argdata::Writer,
    globals::{self, OFFSETS},
    maps::{LOOP_STATE, SYSCALL_SCRATCH},
    task::{current_task, read_at},
};

/// A (vfsmount, dentry) pair, as in the kernel's `struct path`.
#[derive(Clone, Copy)]
pub struct KPath {
    pub mnt: u64,
    pub dentry: u64,
}

#[inline(always)]
fn off(f: &u32) -> u32 {
    globals::get(f)
}

/// Reads the `struct path` embedded at `base + at`.
#[inline(always)]
fn path_at(base: u64, at: u32) -> Option<KPath> {
    if at == u32::MAX {
        return None;
    }
    let mnt: u64 = read_at(base + at as u64, off(&OFFSETS.path_mnt))?;
    let dentry: u64 = read_at(base + at as u64, off(&OFFSETS.path_dentry))?;
    if mnt == 0 || dentry == 0 {
        None
    } else {
        Some(KPath { mnt, dentry })
    }
}

fn fs_path(which: u32) -> Option<KPath> {
    let fs: u64 = read_at(current_task(), off(&OFFSETS.task_fs))?;
    path_at(fs, which)
}

/// The current task's working directory.
#[inline(always)]
pub fn cwd() -> Option<KPath> {
    fs_path(off(&OFFSETS.fs_pwd))
}

/// The file behind descriptor `fd` of the current task.
#[inline(always)]
pub fn fd_file(fd: i64) -> Option<u64> {
    if fd < 0 {
        return None;
    }
    let files: u64 = read_at(current_task(), off(&OFFSETS.task_files))?;
    let fdt: u64 = read_at(files, off(&OFFSETS.files_fdt))?;
    let max: u32 = read_at(fdt, off(&OFFSETS.fdtable_max_fds))?;
    if fd as u64 >= max as u64 {
        return None;
    }
    let arr: u64 = read_at(fdt, off(&OFFSETS.fdtable_fd))?;
    let file: u64 = read_at(arr + (fd as u64) * 8, 0)?;
    if file == 0 { None } else { Some(file) }
}

/// The path of the file behind descriptor `fd`.
#[inline(always)]
pub fn fd_path(fd: i64) -> Option<KPath> {
    path_at(fd_file(fd)?, off(&OFFSETS.file_path))
}

const MASK: usize = SYSCALL_DATA_MAX - 1;
/// Room one PATH_COMPONENTS capture may take (header included).
pub const PATH_DATA_MAX: usize = 4096;

/// State of one dentry walk, shared with the `bpf_loop` callback through a
/// per-CPU map rather than the stack: values loaded from a map are unknown
/// to the verifier, so the callback's states converge after one pass
/// instead of being simulated per iteration (a plain loop, or state on the
/// stack, exceeded the verifier's 1M-instruction budget).
#[repr(C)]
pub struct Walk {
    dentry: u64,
    vfsmnt: u64,
    mount: u64,
    root_dentry: u64,
    root_mnt: u64,
    mount_mnt: u64,
    at: u64,
    limit: u64,
    flags: u64,
    done: u64,
}

/// One step up the tree. Returns 1 to stop the loop.
#[inline(never)]
extern "C" fn walk_step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(state) = LOOP_STATE.get_ptr_mut(0) else {
        return 1;
    };
    let w = unsafe { &mut (*state).walk };
    if w.dentry == w.root_dentry && w.vfsmnt == w.root_mnt {
        w.done = 1;
        return 1;
    }
    let mnt_root: u64 = read_at(w.vfsmnt, off(&OFFSETS.vfsmount_root)).unwrap_or(0);
    if w.dentry == mnt_root {
        // At the top of a mount: continue from where it is mounted.
        let parent: u64 = read_at(w.mount, off(&OFFSETS.mount_parent)).unwrap_or(0);
        if parent == w.mount || parent == 0 {
            w.flags |= arg_data_flags::OUTSIDE_ROOT as u64;
            w.done = 1;
            return 1;
        }
        w.dentry = read_at(w.mount, off(&OFFSETS.mount_mountpoint)).unwrap_or(0);
        w.mount = parent;
        w.vfsmnt = parent + w.mount_mnt;
        return 0;
    }
    let parent: u64 = read_at(w.dentry, off(&OFFSETS.dentry_parent)).unwrap_or(0);
    if parent == w.dentry || parent == 0 {
        // The root of a filesystem that is not mounted (pipe, socket, ...).
        w.flags |= arg_data_flags::OUTSIDE_ROOT as u64;
        w.done = 1;
        return 1;
    }
    let name: u64 = read_at(w.dentry, off(&OFFSETS.dentry_name)).unwrap_or(0);
    let Some(scratch) = SYSCALL_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    let data = unsafe { &mut (*scratch).data };
    let dst = unsafe { data.as_mut_ptr().add(w.at as usize & MASK) };
    let n = unsafe { bpf_probe_read_kernel_str(dst.cast(), NAME_MAX as u32, name as *const _) };
    if n <= 0 {
        w.flags |= arg_data_flags::UNREADABLE as u64;
        w.done = 1;
        return 1;
    }
    w.at += n as u64;
    if w.at > w.limit {
        w.flags |= arg_data_flags::TRUNCATED as u64;
        w.done = 1;
        return 1;
    }
    w.dentry = parent;
    0
}

/// Appends a PATH_COMPONENTS capture for the path (`mnt`, `dentry`): names
/// leaf first, each NUL-terminated, up to the task's root. `slot_flags` packs
/// the argument slot (low byte) and initial capture flags (second byte).
#[inline(never)]
pub fn path_components(w: &mut Writer, slot_flags: u32, mnt: u64, dentry: u64) {
    if !w.room(PATH_DATA_MAX) {
        return;
    }
    let start = w.at();
    let (root_mnt, root_dentry) = match fs_path(off(&OFFSETS.fs_root)) {
        Some(r) => (r.mnt, r.dentry),
        None => (0, 0),
    };
    let mount_mnt = off(&OFFSETS.mount_mnt) as u64;
    let Some(state) = LOOP_STATE.get_ptr_mut(0) else {
        return;
    };
    let walk = unsafe { &mut (*state).walk };
    *walk = Walk {
        dentry,
        vfsmnt: mnt,
        mount: mnt.wrapping_sub(mount_mnt),
        root_dentry,
        root_mnt,
        mount_mnt,
        at: (start + 8) as u64,
        limit: (start + PATH_DATA_MAX - NAME_MAX) as u64,
        flags: (slot_flags >> 8) as u8 as u64,
        done: 0,
    };
    unsafe {
        bpf_loop(
            PATH_DEPTH_MAX as u32,
            walk_step as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    if walk.done == 0 {
        walk.flags |= arg_data_flags::DEPTH_LIMIT as u64;
    }
    let len = (walk.at as usize).wrapping_sub(start + 8) & (PATH_DATA_MAX - 1);
    let h = ArgDataHeader {
        kind: arg_data_kind::PATH_COMPONENTS,
        slot: slot_flags as u8,
        flags: walk.flags as u8,
        _pad: 0,
        len: len as u32,
    };
    unsafe { (w.data.as_mut_ptr().add(start) as *mut ArgDataHeader).write_unaligned(h) };
    w.pos = start + 8 + len;
}
