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
//! Observing programs return the previous LSM verdict (`retval`, the hook's
//! last argument) unchanged. Enforcement (on once the loader sets the agent's
//! tgid): in-scope processes get EPERM for opening the store's and key
//! directory's inodes, signalling or ptracing the agent, bpf(), loading
//! modules, and writing a cgroup v2 `cgroup.procs`/`cgroup.threads` outside
//! the audited cgroup; each denial is recorded.

use audit_common::{
    config::scope_mode,
    kind::EventKind,
    lsm::{DENIED, FROM_LSM, InodeKey, agent, denial, hook, offset, selftest},
    syscall::{RET, SOCKADDR_MAX, SYSCALL_DATA_MAX, SyscallEvent, SyscallScratch, arg_data_kind},
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str},
    },
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

/// Inodes in-scope processes may not open, nor any file directly in them
/// (the store and the key directory).
#[map]
pub static LSM_PROTECTED: HashMap<InodeKey, u8> = HashMap::with_max_entries(1024, 0);

/// The agent (see `audit_common::lsm::agent`).
#[map]
pub static LSM_AGENT: Array<u32> = Array::with_max_entries(agent::SLOTS, 0);

const EPERM: i32 = 1;

/// The verdict to pass on when we do not decide: an earlier BPF LSM
/// program's denial stays a denial. Constants only, because kernels since
/// 6.10 check that an LSM program returns a value in [-MAX_ERRNO, 0].
#[inline(always)]
fn pass(retval: i32) -> i32 {
    if retval != 0 { -EPERM } else { 0 }
}

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
        return pass(retval);
    };
    if unsafe { *want } == tgid {
        if let Some(hits) = LSM_SELFTEST.get_ptr_mut(selftest::HITS) {
            unsafe { *hits += 1 };
        }
    }
    pass(retval)
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

#[inline(always)]
fn inode_protected(inode: u64) -> bool {
    let Some(ino) = read_at::<u64>(inode, lsm_off(offset::INODE_I_INO)) else {
        return false;
    };
    let Some(sb) = read_at::<u64>(inode, lsm_off(offset::INODE_I_SB)) else {
        return false;
    };
    let Some(dev) = read_at::<u32>(sb, lsm_off(offset::SB_S_DEV)) else {
        return false;
    };
    let key = InodeKey { dev, _pad: 0, ino };
    unsafe { LSM_PROTECTED.get(&key) }.is_some()
}

/// Is `file` a protected inode, or directly inside one?
#[inline(always)]
fn file_protected(file: u64, dentry: u64) -> bool {
    if let Some(inode) = read_at::<u64>(file, globals::get(&OFFSETS.file_inode)) {
        if inode_protected(inode) {
            return true;
        }
    }
    let parent: u64 = read_at(dentry, globals::get(&OFFSETS.dentry_parent)).unwrap_or(0);
    match read_at::<u64>(parent, lsm_off(offset::DENTRY_D_INODE)) {
        Some(inode) => inode_protected(inode),
        None => false,
    }
}

const FMODE_WRITE: u32 = 0x2;
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
/// Deepest cgroup nesting walked looking for the audited cgroup; a deeper
/// target is treated as outside (fail closed).
const CGROUP_DEPTH_MAX: usize = 32;

/// Is `file` (`dentry`) a write-open of a cgroup v2 `cgroup.procs` or
/// `cgroup.threads` outside the audited cgroup? Writing a pid there moves
/// that process out of the sandbox. In pid-tree scope there is no sandbox
/// cgroup, so every such write counts as outside. Walks the dentry tree,
/// not the mount: a cgroup namespace's own cgroup2 mount still leads up
/// to the real root, so it cannot hide where the target is.
#[inline(always)]
fn cgroup_move_outside_scope(file: u64, dentry: u64) -> bool {
    let f_mode: u32 = read_at(file, lsm_off(offset::FILE_F_MODE)).unwrap_or(0);
    if f_mode & FMODE_WRITE == 0 {
        return false;
    }
    let Some(inode) = read_at::<u64>(file, globals::get(&OFFSETS.file_inode)) else {
        return false;
    };
    let Some(sb) = read_at::<u64>(inode, lsm_off(offset::INODE_I_SB)) else {
        return false;
    };
    if read_at::<u64>(sb, lsm_off(offset::SB_S_MAGIC)) != Some(CGROUP2_SUPER_MAGIC) {
        return false;
    }
    let name_ptr: u64 = read_at(dentry, globals::get(&OFFSETS.dentry_name)).unwrap_or(0);
    let mut name = [0u8; 16];
    if name_ptr == 0
        || unsafe { bpf_probe_read_kernel_str(name.as_mut_ptr().cast(), 16, name_ptr as *const _) }
            <= 0
    {
        return false;
    }
    if name != *b"cgroup.procs\0\0\0\0" && name != *b"cgroup.threads\0\0" {
        return false;
    }
    if globals::get(&globals::SCOPE_MODE) != scope_mode::CGROUP {
        return true;
    }
    let scope_id = globals::get(&globals::SCOPE_CGROUP_ID);
    let parent_off = globals::get(&OFFSETS.dentry_parent);
    // The file's directory is its cgroup; a cgroup2 directory's inode
    // number is the cgroup id.
    let mut d: u64 = read_at(dentry, parent_off).unwrap_or(0);
    for _ in 0..CGROUP_DEPTH_MAX {
        if d == 0 {
            return true;
        }
        let ino = read_at::<u64>(d, lsm_off(offset::DENTRY_D_INODE))
            .and_then(|i| read_at::<u64>(i, lsm_off(offset::INODE_I_INO)));
        if ino == Some(scope_id) {
            return false;
        }
        let parent: u64 = read_at(d, parent_off).unwrap_or(0);
        if parent == d {
            return true;
        }
        d = parent;
    }
    true
}

#[inline(always)]
fn agent_tgid() -> u32 {
    match LSM_AGENT.get(agent::TGID) {
        Some(v) => *v,
        None => 0,
    }
}

/// Records a denial of `hook_id` with two hook-specific values.
#[inline(always)]
fn emit_denial(hook_id: u32, a0: u64, a1: u64) {
    let Some(scratch) = begin(hook_id, -EPERM) else {
        count_loss(EventKind::Syscall as u32);
        return;
    };
    scratch.event.flags |= DENIED;
    scratch.event.args[0] = a0;
    scratch.event.args[1] = a1;
    finish(scratch, 0, false);
}

#[lsm(hook = "file_open")]
pub fn lsm_file_open(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(1);
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return pass(retval);
    }
    let file: u64 = ctx.arg(0);
    let f_path0 = globals::get(&OFFSETS.file_path) as u64;
    let dentry0: u64 = read_at(file + f_path0, globals::get(&OFFSETS.path_dentry)).unwrap_or(0);
    // Enforcement: a denial is always recorded, even inside a recorded
    // syscall (whose record then shows EPERM too).
    let reason = if agent_tgid() == 0 {
        0
    } else if file_protected(file, dentry0) {
        denial::PROTECTED_INODE
    } else if cgroup_move_outside_scope(file, dentry0) {
        denial::CGROUP_OUTSIDE_SCOPE
    } else {
        0
    };
    let deny = reason != 0;
    let record = matches!(LSM_AGENT.get(agent::RECORD_OPENS), Some(v) if *v != 0);
    if !deny && (!record || covered_by_tracepoint(pid_tgid)) {
        return pass(retval);
    }
    let verdict = if deny { -EPERM } else { pass(retval) };
    let Some(scratch) = begin(hook::FILE_OPEN, verdict) else {
        count_loss(EventKind::Syscall as u32);
        return verdict;
    };
    if deny {
        scratch.event.flags |= DENIED;
        scratch.event.args[2] = reason;
    }
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
    verdict
}

#[lsm(hook = "socket_connect")]
pub fn lsm_socket_connect(ctx: LsmContext) -> i32 {
    sockaddr_hook(&ctx, hook::SOCKET_CONNECT)
}

#[lsm(hook = "socket_bind")]
pub fn lsm_socket_bind(ctx: LsmContext) -> i32 {
    sockaddr_hook(&ctx, hook::SOCKET_BIND)
}

/// `socket_connect` and `socket_bind` (same arguments: socket, kernel copy
/// of the address, addrlen): records the address outside recorded syscalls.
#[inline(always)]
fn sockaddr_hook(ctx: &LsmContext, hook_id: u32) -> i32 {
    let retval: i32 = ctx.arg(3);
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) || covered_by_tracepoint(pid_tgid) {
        return pass(retval);
    }
    let addr: u64 = ctx.arg(1);
    let addrlen: i32 = ctx.arg(2);
    let Some(scratch) = begin(hook_id, retval) else {
        count_loss(EventKind::Syscall as u32);
        return pass(retval);
    };
    scratch.event.args[0] = addrlen as u32 as u64;
    // The address is already in kernel memory (copied in by the caller).
    let mut n = addrlen.max(0) as usize;
    let mut flags = 0u8;
    if n > SOCKADDR_MAX {
        n = SOCKADDR_MAX;
        flags |= audit_common::syscall::arg_data_flags::TRUNCATED;
    }
    let n = crate::bound::masked(n, 2 * SOCKADDR_MAX - 1);
    let data = &mut scratch.data;
    let read = n > 0
        && unsafe {
            bpf_probe_read_kernel(data.as_mut_ptr().add(8).cast(), n as u32, addr as *const _)
        } == 0;
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
    pass(retval)
}

/// Is `task` the agent, seen from an in-scope caller? (The check every
/// process-targeting hook makes.)
#[inline(always)]
fn targets_agent(task: u64) -> Option<u32> {
    let agent = agent_tgid();
    if agent == 0 {
        return None;
    }
    let tgid: u32 = read_at(task, globals::get(&OFFSETS.task_tgid))?;
    if tgid != agent {
        return None;
    }
    let me = (bpf_get_current_pid_tgid() >> 32) as u32;
    in_scope(me).then_some(tgid)
}

#[lsm(hook = "task_kill")]
pub fn lsm_task_kill(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(4);
    let task: u64 = ctx.arg(0);
    let Some(tgid) = targets_agent(task) else {
        return pass(retval);
    };
    let sig: i32 = ctx.arg(2);
    emit_denial(hook::TASK_KILL, tgid as u64, sig as u32 as u64);
    -EPERM
}

#[lsm(hook = "ptrace_access_check")]
pub fn lsm_ptrace_access_check(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(2);
    let task: u64 = ctx.arg(0);
    let Some(tgid) = targets_agent(task) else {
        return pass(retval);
    };
    let mode: u32 = ctx.arg(1);
    emit_denial(hook::PTRACE_ACCESS_CHECK, tgid as u64, mode as u64);
    -EPERM
}

#[lsm(hook = "bpf")]
pub fn lsm_bpf(ctx: LsmContext) -> i32 {
    // 6.9 added a `kernel` argument before retval: the retval slot differs
    // between kernels, so this hook does not chain (returns 0 when it allows).
    if agent_tgid() == 0 || !in_scope((bpf_get_current_pid_tgid() >> 32) as u32) {
        return 0;
    }
    let cmd: i32 = ctx.arg(0);
    emit_denial(hook::BPF, cmd as u32 as u64, 0);
    -EPERM
}

/// `enum kernel_read_file_id` / `kernel_load_data_id`: READING_MODULE and
/// LOADING_MODULE are both 2.
const MODULE_ID: u32 = 2;

#[lsm(hook = "kernel_read_file")]
pub fn lsm_kernel_read_file(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(3);
    let id: u32 = ctx.arg(1);
    if id != MODULE_ID || agent_tgid() == 0 || !in_scope((bpf_get_current_pid_tgid() >> 32) as u32)
    {
        return pass(retval);
    }
    emit_denial(hook::MODULE_LOAD, id as u64, 0);
    -EPERM
}

#[lsm(hook = "kernel_load_data")]
pub fn lsm_kernel_load_data(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(2);
    let id: u32 = ctx.arg(0);
    if id != MODULE_ID || agent_tgid() == 0 || !in_scope((bpf_get_current_pid_tgid() >> 32) as u32)
    {
        return pass(retval);
    }
    emit_denial(hook::MODULE_LOAD, id as u64, 0);
    -EPERM
}

/// The vfsmount of directory `dir` (a `struct path *`): an entry of the
/// directory lives on the same mount.
#[inline(always)]
fn mount_of(dir: u64) -> u64 {
    read_at(dir, globals::get(&OFFSETS.path_mnt)).unwrap_or(0)
}

/// Records a path hook (unlink, mkdir, rename) that fired outside a
/// recorded syscall (io_uring, in-kernel callers): the entries the kernel
/// resolved, walked from their dentries. Observes only.
#[inline(always)]
fn path_hook(hook_id: u32, arg0: u64, entries: [(u64, u64); 2], retval: i32) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) || covered_by_tracepoint(pid_tgid) {
        return pass(retval);
    }
    let Some(scratch) = begin(hook_id, pass(retval)) else {
        count_loss(EventKind::Syscall as u32);
        return pass(retval);
    };
    scratch.event.args[0] = arg0;
    let mut w = Writer {
        data: &mut scratch.data,
        pos: 0,
        truncated: false,
    };
    for (slot, (mnt, dentry)) in entries.into_iter().enumerate() {
        if mnt != 0 && dentry != 0 {
            path_components(&mut w, slot as u32, mnt, dentry);
        }
    }
    let (pos, truncated) = (w.pos, w.truncated);
    finish(scratch, pos, truncated);
    pass(retval)
}

#[lsm(hook = "path_unlink")]
pub fn lsm_path_unlink(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(2);
    let dir: u64 = ctx.arg(0);
    let dentry: u64 = ctx.arg(1);
    path_hook(
        hook::PATH_UNLINK,
        0,
        [(mount_of(dir), dentry), (0, 0)],
        retval,
    )
}

#[lsm(hook = "path_mkdir")]
pub fn lsm_path_mkdir(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(3);
    let dir: u64 = ctx.arg(0);
    let dentry: u64 = ctx.arg(1);
    let mode: u16 = ctx.arg(2);
    path_hook(
        hook::PATH_MKDIR,
        mode as u64,
        [(mount_of(dir), dentry), (0, 0)],
        retval,
    )
}

#[lsm(hook = "path_rename")]
pub fn lsm_path_rename(ctx: LsmContext) -> i32 {
    let retval: i32 = ctx.arg(5);
    let old_dir: u64 = ctx.arg(0);
    let old_dentry: u64 = ctx.arg(1);
    let new_dir: u64 = ctx.arg(2);
    let new_dentry: u64 = ctx.arg(3);
    let flags: u32 = ctx.arg(4);
    path_hook(
        hook::PATH_RENAME,
        flags as u64,
        [
            (mount_of(old_dir), old_dentry),
            (mount_of(new_dir), new_dentry),
        ],
        retval,
    )
}
