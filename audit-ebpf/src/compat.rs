//! Compat syscalls (ia32 via `int $0x80`/sysenter, x32): the syscalls:*
//! tracepoints ignore them on x86, so raw sys_enter/sys_exit see every
//! syscall and let only compat ones of in-scope tasks through. The compat
//! check comes first: it costs one read of the task's thread_info status
//! (TS_COMPAT, set by the ia32 entry for the syscall's duration) or a bit
//! test (x32), and almost every syscall stops there.

use audit_common::syscall::{
    CompatConfig, SOCKETCALL_CALLS, SyscallSpec, X32_SYSCALL_BIT, event_flags,
};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::{
    globals::{self, COMPAT},
    maps::PENDING,
    scope::in_scope,
    syscalls::{enter, exit, spec_for},
    task::{current_task, read_at},
};

/// The current syscall's compat ABI bit, or 0 for a native syscall.
#[inline(always)]
fn compat_abi(id: u64) -> u32 {
    let off = globals::get(&COMPAT.task_ti_status);
    let status: u32 = read_at(current_task(), off).unwrap_or(0);
    if status & globals::get(&COMPAT.ts_compat) != 0 {
        event_flags::ABI_IA32
    } else if id & X32_SYSCALL_BIT != 0 {
        event_flags::ABI_X32
    } else {
        0
    }
}

#[inline(always)]
fn reg(regs: u64, off: u32) -> u64 {
    read_at::<u64>(regs, off).unwrap_or(0)
}

/// sys_enter(struct pt_regs *regs, long id)
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn compat_sys_enter(ctx: RawTracePointContext) -> i32 {
    let id: u64 = ctx.arg(1);
    let abi = compat_abi(id);
    if abi == 0 {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return 0;
    }
    let regs: u64 = ctx.arg(0);
    let c: &CompatConfig = &COMPAT;
    let mut args = [0u64; 6];
    let mut nr = id & !X32_SYSCALL_BIT;
    let mut abi = abi;
    if abi == event_flags::ABI_IA32 {
        for (i, a) in args.iter_mut().enumerate() {
            // 32-bit registers: the upper halves are not part of the argument.
            *a = reg(regs, globals::get(&c.regs_ia32[i])) as u32 as u64;
        }
        if nr == globals::get(&c.socketcall_nr) as u64 {
            let call = args[0] as usize;
            if call < SOCKETCALL_CALLS {
                // Masked again right at the use (see `bound`): 6.1 loses
                // the `call < SOCKETCALL_CALLS` bound across a spill.
                let i = crate::bound::masked(call, SOCKETCALL_CALLS.next_power_of_two() - 1);
                let direct = c.socketcall_map.get(i).map_or(0, globals::get);
                let n = c.socketcall_nargs.get(i).map_or(0, globals::get) as usize;
                if direct != 0 {
                    let ptr = args[1];
                    let mut real = [0u64; 6];
                    for (i, a) in real.iter_mut().enumerate() {
                        if i < n {
                            let v: u32 =
                                unsafe { bpf_probe_read_user((ptr + 4 * i as u64) as *const u32) }
                                    .unwrap_or(0);
                            *a = v as u64;
                        }
                    }
                    args = real;
                    nr = direct as u64;
                    abi |= event_flags::SOCKETCALL;
                }
            }
        }
    } else {
        for (i, a) in args.iter_mut().enumerate() {
            *a = reg(regs, globals::get(&c.regs_64[i]));
        }
    }
    let Some(spec) = spec_for(nr as i32, abi) else {
        return 0;
    };
    let spec: &SyscallSpec = spec;
    enter(pid_tgid, nr as u32, abi, spec, args);
    0
}

/// sys_exit(struct pt_regs *regs, long ret)
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn compat_sys_exit(ctx: RawTracePointContext) -> i32 {
    // TS_COMPAT is still set at exit (cleared on the way to user mode), and
    // the pending entry is only there for an in-scope compat syscall — so a
    // task that left the scope during the syscall is still recorded.
    let off = globals::get(&COMPAT.task_ti_status);
    let status: u32 = read_at(current_task(), off).unwrap_or(0);
    if status & globals::get(&COMPAT.ts_compat) == 0 {
        let regs: u64 = ctx.arg(0);
        if reg(regs, globals::get(&COMPAT.regs_orig_ax)) & X32_SYSCALL_BIT == 0 {
            return 0;
        }
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(pending) = (unsafe { PENDING.get(&pid_tgid) }) else {
        return 0;
    };
    let p = *pending;
    if p.abi == 0 {
        return 0;
    }
    let _ = PENDING.remove(&pid_tgid);
    let ret: i64 = ctx.arg(1);
    exit(pid_tgid, &p, ret);
    0
}
