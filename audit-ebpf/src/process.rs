//! Process lifecycle probes: exec, fork/clone, exit. Raw tracepoints: stable
//! since 4.17, no BTF needed to attach, arguments are the TP_PROTO pointers.

use audit_common::{
    config::scope_mode,
    event::{
        CGROUP_PATH_MAX, CgroupMigrateEvent, EXEC_ARGV_MAX, EXEC_DATA_MAX, EXEC_FILENAME_MAX,
        EventHeader, ExecEvent, ExecScratch, ExitEvent, ForkEvent, exec_flags, exit_flags,
        fork_flags, migrate_flags,
    },
    kind::{EventKind, loss_slot},
};
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_probe_read_kernel_str_bytes, generated::bpf_probe_read_user},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use crate::{
    emit::wakeup_flags,
    emit::{count_loss, emit_bytes, emit_fixed},
    globals::{self, OFFSETS},
    maps::{EVENTS, EXEC_SCRATCH, FD_MARKS, PENDING, TRACKED_PIDS},
    scope::{in_scope, in_scope_cgroup, is_tracked, track},
    task::{current_task, fill_header, read_at},
};

#[inline(always)]
fn current_tgid() -> u32 {
    (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32
}

/// sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    if !in_scope(current_tgid()) {
        return 0;
    }
    let old_pid: u64 = ctx.arg(1);
    let bprm: u64 = ctx.arg(2);
    let Some(scratch) = EXEC_SCRATCH.get_ptr_mut(0) else {
        count_loss(EventKind::Exec as u32);
        return 0;
    };
    let scratch: &mut ExecScratch = unsafe { &mut *scratch };
    let ev = &mut scratch.event;
    let mut flags = 0u32;

    // The path as executed (bprm->filename), NUL excluded.
    let mut filename_len = 0usize;
    let fname: u64 = read_at(bprm, globals::get(&OFFSETS.bprm_filename)).unwrap_or(0);
    if fname != 0 {
        let dst = &mut scratch.data[..EXEC_FILENAME_MAX];
        if let Ok(s) = unsafe { bpf_probe_read_kernel_str_bytes(fname as *const u8, dst) } {
            filename_len = s.len();
        }
        // A string that filled the whole slot may have been cut.
        if filename_len >= EXEC_FILENAME_MAX - 1 {
            flags |= exec_flags::FILENAME_TRUNCATED;
        }
    }
    let filename_len = filename_len & (EXEC_FILENAME_MAX - 1);

    // argv as the kernel copied it to the new stack: NUL-separated strings
    // between mm->arg_start and mm->arg_end.
    let task = current_task();
    let mm: u64 = read_at(task, globals::get(&OFFSETS.task_mm)).unwrap_or(0);
    let start: u64 = read_at(mm, globals::get(&OFFSETS.mm_arg_start)).unwrap_or(0);
    let end: u64 = read_at(mm, globals::get(&OFFSETS.mm_arg_end)).unwrap_or(0);
    let total = if end > start { end - start } else { 0 };
    let mut argv_len = total as usize;
    if argv_len > EXEC_ARGV_MAX {
        argv_len = EXEC_ARGV_MAX;
        flags |= exec_flags::ARGV_TRUNCATED;
    }
    if argv_len > 0 {
        let dst = unsafe { scratch.data.as_mut_ptr().add(filename_len) };
        let rc = unsafe { bpf_probe_read_user(dst.cast(), argv_len as u32, start as *const _) };
        if rc != 0 {
            argv_len = 0;
            flags |= exec_flags::ARGV_UNREADABLE;
        }
    }

    let size = core::mem::size_of::<ExecEvent>() + filename_len + argv_len;
    fill_header(&mut ev.header, EventKind::Exec as u32, size as u32);
    ev.old_pid = old_pid as u32;
    ev.argc = read_at(bprm, globals::get(&OFFSETS.bprm_argc)).unwrap_or(0);
    ev.filename_len = filename_len as u32;
    ev.argv_len = argv_len as u32;
    ev.argv_total_len = total.min(u32::MAX as u64) as u32;
    ev.flags = flags;

    let bytes: &[u8; core::mem::size_of::<ExecScratch>()] =
        unsafe { &*(scratch as *const ExecScratch).cast() };
    emit_bytes(EventKind::Exec as u32, bytes, size);
    0
}

/// sched_process_fork(struct task_struct *parent, struct task_struct *child)
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let parent_tgid = current_tgid();
    if !in_scope(parent_tgid) {
        return 0;
    }
    let child: u64 = ctx.arg(1);
    let child_pid: u32 = read_at(child, globals::get(&OFFSETS.task_pid)).unwrap_or(0);
    let child_tgid: u32 = read_at(child, globals::get(&OFFSETS.task_tgid)).unwrap_or(0);
    let thread = child_tgid == parent_tgid;

    // Both scope modes follow new processes here, in the kernel, before the
    // child can run: no window in which its events would be missed. In
    // cgroup mode this also follows clone3(CLONE_INTO_CGROUP) children born
    // outside the audited cgroup (the parent is in scope).
    if !thread && TRACKED_PIDS.insert(&child_tgid, &1, 0).is_err() {
        count_loss(loss_slot::SCOPE_MAP_FULL);
    }

    let mut ev = ForkEvent {
        header: EventHeader::zeroed(),
        child_pid,
        child_tgid,
        flags: if thread { fork_flags::THREAD } else { 0 },
        _pad: 0,
    };
    fill_header(
        &mut ev.header,
        EventKind::Fork as u32,
        core::mem::size_of::<ForkEvent>() as u32,
    );
    emit_fixed(EventKind::Fork as u32, ev);
    0
}

/// sched_process_exit(struct task_struct *p[, bool group_dead]) — the second
/// argument only exists on newer kernels, so group_dead is derived from
/// `signal->live`, which do_exit() has already decremented.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    let tgid = current_tgid();
    if !in_scope(tgid) {
        return 0;
    }
    let task = current_task();
    let exit_code: u32 = read_at(task, globals::get(&OFFSETS.task_exit_code)).unwrap_or(0);
    let signal: u64 = read_at(task, globals::get(&OFFSETS.task_signal)).unwrap_or(0);
    let live: i32 = read_at(signal, globals::get(&OFFSETS.signal_live)).unwrap_or(-1);
    let group_dead = live == 0;

    let mut ev = ExitEvent {
        header: EventHeader::zeroed(),
        exit_code,
        flags: if group_dead {
            exit_flags::GROUP_DEAD
        } else {
            0
        },
    };
    fill_header(
        &mut ev.header,
        EventKind::Exit as u32,
        core::mem::size_of::<ExitEvent>() as u32,
    );
    emit_fixed(EventKind::Exit as u32, ev);

    // A thread killed inside a syscall never reaches sys_exit.
    let _ = PENDING.remove(&aya_ebpf::helpers::bpf_get_current_pid_tgid());
    if group_dead {
        let _ = TRACKED_PIDS.remove(&tgid);
        let _ = FD_MARKS.remove(&tgid);
    }
    0
}

/// cgroup:cgroup_attach_task record layout (stable tracepoint format):
/// dst_root i32 @8, dst_level i32 @12, dst_id u64 @16, pid i32 @24,
/// __data_loc dst_path @28. It fires once per migrated leader (threadgroup)
/// or thread, AFTER the move, in the context of the task that wrote
/// cgroup.procs / cgroup.threads.
const MIGRATE_DST_ROOT: usize = 8;
const MIGRATE_DST_LEVEL: usize = 12;
const MIGRATE_DST_ID: usize = 16;
const MIGRATE_PID: usize = 24;
const MIGRATE_DST_PATH: usize = 28;

/// Every cgroup migration of an in-scope process is recorded, and a process
/// that moves into the audited cgroup enters the scope (is tracked) here, so
/// moving out again later does not take it out of the scope.
#[tracepoint]
pub fn cgroup_attach_task(ctx: TracePointContext) -> u32 {
    let pid = unsafe { ctx.read_at::<i32>(MIGRATE_PID) }.unwrap_or(0) as u32;
    let root = unsafe { ctx.read_at::<i32>(MIGRATE_DST_ROOT) }.unwrap_or(-1);
    let level = unsafe { ctx.read_at::<i32>(MIGRATE_DST_LEVEL) }.unwrap_or(0) as u32;
    let dst_id = unsafe { ctx.read_at::<u64>(MIGRATE_DST_ID) }.unwrap_or(0);
    let was_in = is_tracked(pid);
    // Hierarchy 0 is cgroup v2, the one the cgroup scope is defined on.
    let entered = globals::get(&globals::SCOPE_MODE) == scope_mode::CGROUP
        && root == 0
        && dst_id == globals::get(&globals::SCOPE_CGROUP_ID);
    let writer_in = in_scope(current_tgid()) || in_scope_cgroup();
    if !(was_in || entered || writer_in) {
        return 0;
    }
    if entered && !was_in {
        track(pid);
    }
    let Some(mut entry) = EVENTS.reserve::<CgroupMigrateEvent>(0) else {
        count_loss(EventKind::CgroupMigrate as u32);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    let mut flags = 0;
    if was_in {
        flags |= migrate_flags::WAS_IN_SCOPE;
    }
    if entered {
        flags |= migrate_flags::ENTERED_SCOPE;
    }
    // __data_loc: low 16 bits offset from the record start, high 16 length.
    let loc = unsafe { ctx.read_at::<u32>(MIGRATE_DST_PATH) }.unwrap_or(0);
    let (off, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
    let mut path_len = 0usize;
    unsafe {
        let dst = &mut (*ev).path;
        if len > 0 {
            let src = (ctx.as_ptr() as *const u8).add(off);
            if let Ok(s) = bpf_probe_read_kernel_str_bytes(src, dst) {
                path_len = s.len();
            }
        }
        if len > CGROUP_PATH_MAX {
            flags |= migrate_flags::PATH_TRUNCATED;
        }
        fill_header(
            &mut (*ev).header,
            EventKind::CgroupMigrate as u32,
            core::mem::size_of::<CgroupMigrateEvent>() as u32,
        );
        (*ev).target_pid = pid;
        (*ev).dst_level = level;
        (*ev).dst_id = dst_id;
        (*ev).hierarchy_id = root as u32;
        (*ev).flags = flags;
        (*ev).path_len = (path_len & (CGROUP_PATH_MAX - 1)) as u32;
        (*ev)._pad = 0;
    }
    entry.submit(wakeup_flags());
    0
}

const _: () = assert!(EXEC_DATA_MAX >= EXEC_FILENAME_MAX + EXEC_ARGV_MAX);
