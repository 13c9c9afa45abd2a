//! The seccomp filter of an isolated `exec`: syscalls the probes cannot see
//! (io_uring submits work the syscall tracepoints never observe, the ia32 and
//! x32 ABIs bypass the x86_64 tracepoints, …) or that would let the sandbox
//! reach the recorder (bpf, process_vm_*, pidfd_getfd, perf_event_open) are
//! not allowed to run. They are not silently refused either: the filter
//! answers SECCOMP_RET_USER_NOTIF, and the agent's supervisor records each
//! attempt as a `denied` record and fails it with EPERM (never "continue").
//!
//! The filter is a hand-assembled classic BPF program (small enough to check
//! by eye and unit-tested by running it in [`evaluate`]).

use std::io;

/// `struct seccomp_data` offsets.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// x32 syscalls are x86_64-arch numbers with this bit set.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;

// Classic BPF opcodes.
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// The x86_64 syscalls the sandbox may not make, by name and number.
pub const DENIED: &[(&str, i64)] = &[
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
];

/// Denied ABIs (every syscall of these is denied), as recorded.
pub const DENIED_ABIS: &[&str] = &["i386", "x32"];

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter program: arch must be x86_64 and the number below the x32 bit
/// and not in [`DENIED`], else the supervisor is notified.
pub fn program() -> Vec<libc::sock_filter> {
    let n = DENIED.len();
    // Layout: 0 ld arch; 1 jeq x86_64 ? 2 : notify; 2 ld nr; 3 jge x32 ?
    // notify : 4; 4..4+n jeq denied ? notify : next; 4+n ret allow;
    // 5+n ret notify.
    let notify_at = 5 + n;
    let mut p = Vec::with_capacity(notify_at + 1);
    p.push(stmt(BPF_LD_W_ABS, DATA_ARCH));
    p.push(jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, (notify_at - 2) as u8));
    p.push(stmt(BPF_LD_W_ABS, DATA_NR));
    p.push(jump(BPF_JGE_K, X32_SYSCALL_BIT, (notify_at - 4) as u8, 0));
    for (i, (_, nr)) in DENIED.iter().enumerate() {
        let at = 4 + i;
        p.push(jump(BPF_JEQ_K, *nr as u32, (notify_at - at - 1) as u8, 0));
    }
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p.push(stmt(BPF_RET_K, SECCOMP_RET_USER_NOTIF));
    p
}

/// Runs the program on (arch, nr) like the kernel would: for tests.
pub fn evaluate(prog: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
    let mut acc = 0u32;
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        match i.code {
            BPF_LD_W_ABS => {
                acc = match i.k {
                    DATA_NR => nr,
                    DATA_ARCH => arch,
                    _ => 0,
                }
            }
            BPF_JEQ_K | BPF_JGE_K => {
                let taken = if i.code == BPF_JEQ_K {
                    acc == i.k
                } else {
                    acc >= i.k
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            BPF_RET_K => return i.k,
            _ => return 0,
        }
        pc += 1;
    }
    0
}

/// Installs the filter on the calling thread (no_new_privs must be set) and
/// returns the notification listener fd.
pub fn install(prog: &[libc::sock_filter]) -> io::Result<i32> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at a live program for the duration of the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd as i32)
}

/// (arch name, syscall name if known) of a notified syscall.
pub fn describe(arch: u32, nr: i32) -> (&'static str, Option<&'static str>) {
    let by_nr = |n: i64| DENIED.iter().find(|(_, d)| *d == n).map(|(name, _)| *name);
    match arch {
        AUDIT_ARCH_X86_64 if nr as u32 & X32_SYSCALL_BIT != 0 => {
            ("x32", by_nr((nr as u32 & !X32_SYSCALL_BIT) as i64))
        }
        AUDIT_ARCH_X86_64 => ("x86_64", by_nr(nr as i64)),
        AUDIT_ARCH_I386 => ("i386", i386_name(nr)),
        _ => ("unknown", None),
    }
}

/// Names of the i386 syscalls an escape attempt is most likely to use.
fn i386_name(nr: i32) -> Option<&'static str> {
    Some(match nr {
        1 => "exit",
        3 => "read",
        4 => "write",
        5 => "open",
        6 => "close",
        11 => "execve",
        102 => "socketcall",
        120 => "clone",
        192 => "mmap2",
        252 => "exit_group",
        295 => "openat",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = SECCOMP_RET_ALLOW;
    const NOTIFY: u32 = SECCOMP_RET_USER_NOTIF;

    #[test]
    fn denies_exactly_the_listed_x86_64_syscalls() {
        let p = program();
        for (name, nr) in DENIED {
            assert_eq!(
                evaluate(&p, AUDIT_ARCH_X86_64, *nr as u32),
                NOTIFY,
                "{name}"
            );
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_clone3,
            libc::SYS_ptrace,
            libc::SYS_seccomp,
            libc::SYS_mmap,
        ] {
            assert_eq!(evaluate(&p, AUDIT_ARCH_X86_64, nr as u32), ALLOW, "{nr}");
        }
    }

    #[test]
    fn denies_every_ia32_and_x32_syscall() {
        let p = program();
        for nr in [0, 5, 11, 295, 1000] {
            assert_eq!(evaluate(&p, AUDIT_ARCH_I386, nr), NOTIFY);
            assert_eq!(
                evaluate(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | nr),
                NOTIFY
            );
        }
        assert_eq!(evaluate(&p, 0xdead_beef, 0), NOTIFY);
    }

    #[test]
    fn jumps_stay_inside_the_program() {
        let p = program();
        for (pc, i) in p.iter().enumerate() {
            if i.code == BPF_JEQ_K || i.code == BPF_JGE_K {
                assert!(pc + 1 + (i.jt as usize) < p.len());
                assert!(pc + 1 + (i.jf as usize) < p.len());
            }
        }
        assert!(p.len() < 256, "jump offsets are u8");
    }

    #[test]
    fn notified_syscalls_are_named() {
        assert_eq!(
            describe(AUDIT_ARCH_X86_64, libc::SYS_io_uring_setup as i32),
            ("x86_64", Some("io_uring_setup"))
        );
        assert_eq!(describe(AUDIT_ARCH_I386, 5), ("i386", Some("open")));
        assert_eq!(
            describe(AUDIT_ARCH_X86_64, (X32_SYSCALL_BIT | 321) as i32),
            ("x32", Some("bpf"))
        );
        assert_eq!(describe(7, 1), ("unknown", None));
    }
}
