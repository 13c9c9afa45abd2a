//! The syscall dispatcher: one raw `sys_enter` + `sys_exit` program pair
//! for every syscall, native and compat. The kernel runs it for every
//! syscall of every task, so it stops as early as it can: entry looks up
//! the syscall's spec (an array read) and then asks the scope; exit looks up
//! the thread's pending entry (present only for an in-scope audited
//! syscall). Everything after that is the shared `syscalls::enter`/`exit`.
//!
//! This replaces the `syscalls:sys_enter_*`/`sys_exit_*` tracepoints
//! (`syscalls::sys_enter`/`sys_exit`): those are themselves fed from the
//! raw sys_enter tracepoint (the kernel's perf_syscall_enter checks a bitmap
//! for every syscall, then fills a perf record for the audited ones), and the
//! compat probes already hook the raw tracepoint machine-wide, so one
//! program pair here does the same work with one dispatch less. The loader
//! keeps the tracepoint pair as the fallback for a kernel whose BTF lacks
//! the `pt_regs` offsets; there `DISPATCH_NATIVE` is 0 and this pair only
//! passes compat syscalls (it is not attached when compat is unavailable).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};

use crate::{
    compat::{compat_abi, compat_enter, exiting_compat, reg},
    globals::{self, COMPAT},
    maps::PENDING,
    scope::in_scope,
    syscalls::{enter, exit, spec_for},
};

/// 1: native syscalls are dispatched here (the default); 0: the
/// `syscalls:*` tracepoint programs handle them (fallback), and this pair
/// handles only compat syscalls.
#[unsafe(no_mangle)]
pub static DISPATCH_NATIVE: u32 = 0;

#[inline(always)]
fn native() -> bool {
    globals::get(&DISPATCH_NATIVE) != 0
}

/// sys_enter(struct pt_regs *regs, long id)
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn dispatch_sys_enter(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let id: u64 = ctx.arg(1);
    let abi = compat_abi(id);
    if abi != 0 {
        compat_enter(regs, id, abi);
    } else if native() {
        native_enter(regs, id);
    }
    0
}

/// A native syscall: the spec first (most syscalls are not audited and stop
/// at this array read), then the scope, then the arguments.
#[inline(always)]
fn native_enter(regs: u64, id: u64) {
    // The kernel dispatches on the number's low 32 bits (do_syscall_64's
    // `int nr`), as the syscalls:* tracepoints report it.
    let nr = id as i32;
    let Some(spec) = spec_for(nr, 0) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return;
    }
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        if i < spec.nargs as usize {
            *a = reg(regs, globals::get(&COMPAT.regs_64[i]));
        }
    }
    enter(pid_tgid, nr as u32, 0, spec, args);
}

/// sys_exit(struct pt_regs *regs, long ret)
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn dispatch_sys_exit(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    // Fallback mode: only compat exits are ours, and checking that first
    // spares every native exit the map lookup.
    if !native() && !exiting_compat(regs) {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    // Present only for an in-scope audited syscall — so a task that left
    // the scope during the syscall is still recorded.
    let Some(pending) = (unsafe { PENDING.get(&pid_tgid) }) else {
        return 0;
    };
    let p = *pending;
    if p.abi == 0 {
        if !native() {
            // The syscalls:sys_exit_* program's entry.
            return 0;
        }
        let _ = PENDING.remove(&pid_tgid);
        // An entry left over from a syscall whose exit was not seen (the
        // probes attached in between) belongs to another syscall.
        let nr = reg(regs, globals::get(&COMPAT.regs_orig_ax)) as i32;
        if nr as u32 != p.nr {
            return 0;
        }
    } else {
        let _ = PENDING.remove(&pid_tgid);
    }
    let ret: i64 = ctx.arg(1);
    exit(pid_tgid, &p, ret);
    0
}
