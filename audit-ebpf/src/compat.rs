//! Compat syscalls (ia32 via `int $0x80`/sysenter, x32): the syscalls:*
//! tracepoints ignore them on x86, so only the raw sys_enter/sys_exit
//! dispatcher (`dispatch`) sees them. The compat check costs one read of the
//! task's thread_info status (TS_COMPAT, set by the ia32 entry for the
//! syscall's duration) or a bit test (x32).

use audit_common::syscall::{CompatConfig, SOCKETCALL_CALLS, X32_SYSCALL_BIT, event_flags};
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user};

use crate::{
    globals::{self, COMPAT},
    scope::in_scope,
    syscalls::{enter, spec_for},
    task::{current_task, read_at},
};

/// The current syscall's compat ABI bit, or 0 for a native syscall.
#[inline(always)]
pub fn compat_abi(id: u64) -> u32 {
    if is_ia32() {
        event_flags::ABI_IA32
    } else if id & X32_SYSCALL_BIT != 0 {
        event_flags::ABI_X32
    } else {
        0
    }
}

/// Is the current syscall an ia32 one? TS_COMPAT is still set at exit
/// (cleared on the way back to user mode).
#[inline(always)]
pub fn is_ia32() -> bool {
    let off = globals::get(&COMPAT.task_ti_status);
    let status: u32 = read_at(current_task(), off).unwrap_or(0);
    status & globals::get(&COMPAT.ts_compat) != 0
}

/// Register `off` of a `struct pt_regs`.
#[inline(always)]
pub fn reg(regs: u64, off: u32) -> u64 {
    read_at::<u64>(regs, off).unwrap_or(0)
}

/// Entry of compat syscall `id` (of ABI `abi`, not 0) with registers `regs`:
/// the scope, then the arguments (socketcall unpacked), then the spec.
#[inline(always)]
pub fn compat_enter(regs: u64, id: u64, abi: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return;
    }
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
        return;
    };
    enter(pid_tgid, nr as u32, abi, spec, args);
}

/// At sys_exit: is the returning syscall a compat one? (x32: the number
/// bit in `orig_ax`.)
#[inline(always)]
pub fn exiting_compat(regs: u64) -> bool {
    is_ia32() || reg(regs, globals::get(&COMPAT.regs_orig_ax)) & X32_SYSCALL_BIT != 0
}
