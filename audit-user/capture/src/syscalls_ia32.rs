//! The i386 (ia32 compat) view of the syscall table: which i386 syscall
//! numbers mean which audited native syscall, and socketcall's calls. A
//! 64-bit process can issue these with `int $0x80`; the syscalls:*
//! tracepoints never see them, the compat probes do (`probes::compat`).
//! The argument layout of every mapped syscall is the native one with
//! 32-bit registers, except where noted in the table.

use audit_common::syscall::{MAX_COMPAT_NR, SOCKETCALL_CALLS, SyscallSpec, spec_flags};

use crate::syscalls::{Family, SyscallDef, TABLE};

/// (i386 name, native name, i386 number). From arch/x86/entry/syscalls/syscall_32.tbl;
/// checked against <asm/unistd_32.h> by a test.
pub static IA32: &[(&str, &str, u32)] = &[
    ("write", "write", 4),
    ("open", "open", 5),
    ("close", "close", 6),
    ("creat", "creat", 8),
    ("link", "link", 9),
    ("unlink", "unlink", 10),
    ("execve", "execve", 11),
    ("chmod", "chmod", 15),
    // The 16-bit uid/gid variants: same arguments, ids of 16 bits
    // (0xffff stands for -1).
    ("lchown", "lchown", 16),
    ("mount", "mount", 21),
    ("umount", "umount2", 22),
    ("setuid", "setuid", 23),
    ("ptrace", "ptrace", 26),
    ("kill", "kill", 37),
    ("rename", "rename", 38),
    ("mkdir", "mkdir", 39),
    ("rmdir", "rmdir", 40),
    ("dup", "dup", 41),
    ("setgid", "setgid", 46),
    ("umount2", "umount2", 52),
    ("ioctl", "ioctl", 54),
    ("fcntl", "fcntl", 55),
    ("chroot", "chroot", 61),
    ("dup2", "dup2", 63),
    ("setreuid", "setreuid", 70),
    ("setregid", "setregid", 71),
    ("symlink", "symlink", 83),
    ("truncate", "truncate", 92),
    ("ftruncate", "ftruncate", 93),
    ("fchmod", "fchmod", 94),
    ("fchown", "fchown", 95),
    ("init_module", "init_module", 128),
    ("delete_module", "delete_module", 129),
    ("writev", "writev", 146),
    ("setresuid", "setresuid", 164),
    ("setresgid", "setresgid", 170),
    ("prctl", "prctl", 172),
    // offset: the low 32 bits only (the high half is the next argument).
    ("pwrite64", "pwrite64", 181),
    ("chown", "chown", 182),
    ("capset", "capset", 185),
    ("lchown32", "lchown", 198),
    ("setreuid32", "setreuid", 203),
    ("setregid32", "setregid", 204),
    ("setgroups32", "setgroups", 206),
    ("fchown32", "fchown", 207),
    ("setresuid32", "setresuid", 208),
    ("setresgid32", "setresgid", 210),
    ("chown32", "chown", 212),
    ("setuid32", "setuid", 213),
    ("setgid32", "setgid", 214),
    ("pivot_root", "pivot_root", 217),
    ("fcntl64", "fcntl", 221),
    ("tkill", "tkill", 238),
    ("tgkill", "tgkill", 270),
    ("openat", "openat", 295),
    ("mkdirat", "mkdirat", 296),
    ("fchownat", "fchownat", 298),
    ("unlinkat", "unlinkat", 301),
    ("renameat", "renameat", 302),
    ("linkat", "linkat", 303),
    ("symlinkat", "symlinkat", 304),
    ("fchmodat", "fchmodat", 306),
    ("unshare", "unshare", 310),
    ("dup3", "dup3", 330),
    ("pwritev", "pwritev", 334),
    ("name_to_handle_at", "name_to_handle_at", 341),
    ("open_by_handle_at", "open_by_handle_at", 342),
    ("sendmmsg", "sendmmsg", 345),
    ("setns", "setns", 346),
    ("process_vm_readv", "process_vm_readv", 347),
    ("process_vm_writev", "process_vm_writev", 348),
    ("finit_module", "finit_module", 350),
    ("renameat2", "renameat2", 353),
    ("seccomp", "seccomp", 354),
    ("memfd_create", "memfd_create", 356),
    ("bpf", "bpf", 357),
    ("execveat", "execveat", 358),
    ("socket", "socket", 359),
    ("bind", "bind", 361),
    ("connect", "connect", 362),
    ("listen", "listen", 363),
    ("accept4", "accept4", 364),
    ("sendto", "sendto", 369),
    ("sendmsg", "sendmsg", 370),
    ("pwritev2", "pwritev2", 379),
    ("pidfd_send_signal", "pidfd_send_signal", 424),
    ("io_uring_setup", "io_uring_setup", 425),
    ("io_uring_enter", "io_uring_enter", 426),
    ("io_uring_register", "io_uring_register", 427),
    ("pidfd_open", "pidfd_open", 434),
    ("close_range", "close_range", 436),
    ("openat2", "openat2", 437),
    ("pidfd_getfd", "pidfd_getfd", 438),
    ("fchmodat2", "fchmodat2", 452),
];

/// i386 socketcall(2).
pub const SOCKETCALL_NR: u32 = 102;

/// socketcall call → (i386 name of the direct syscall it stands for, how many
/// u32 arguments the kernel reads). SYS_ACCEPT is accept4 with flags 0 and
/// SYS_SEND is sendto without an address, exactly as the kernel runs them.
/// Calls not listed stay `compat_syscall` records of socketcall.
pub const SOCKETCALLS: &[(u32, &str, u32)] = &[
    (1, "socket", 3),
    (2, "bind", 3),
    (3, "connect", 3),
    (4, "listen", 2),
    (5, "accept4", 3),
    (9, "sendto", 4),
    (11, "sendto", 6),
    (16, "sendmsg", 3),
    (18, "accept4", 4),
    (20, "sendmmsg", 4),
];

/// The i386 number of an i386 name in [`IA32`].
fn ia32_nr(name: &str) -> Option<u32> {
    IA32.iter().find(|e| e.0 == name).map(|e| e.2)
}

/// The native definition an i386 syscall number means, if audited.
pub fn by_nr(nr: u32) -> Option<&'static SyscallDef> {
    let native = IA32.iter().find(|e| e.2 == nr)?.1;
    TABLE.iter().find(|d| d.name == native)
}

/// The i386 name of a number in [`IA32`].
pub fn name(nr: u32) -> Option<&'static str> {
    IA32.iter().find(|e| e.2 == nr).map(|e| e.0)
}

/// The compat spec table: the native spec for every mapped number of a
/// chosen family (with the 32-bit msghdr layout), and a generic "record it"
/// spec for every other number, so that any other compat syscall becomes a
/// `compat_syscall` record.
pub fn compat_specs(families: &[Family]) -> Vec<SyscallSpec> {
    let generic = SyscallSpec {
        flags: spec_flags::ENABLED,
        nargs: 6,
        ..SyscallSpec::default()
    };
    let mut out = vec![generic; MAX_COMPAT_NR as usize];
    for &(_, native, nr) in IA32 {
        let Some(def) = TABLE.iter().find(|d| d.name == native) else {
            continue;
        };
        let Some(slot) = out.get_mut(nr as usize) else {
            continue;
        };
        if families.contains(&def.family) {
            let mut spec = def.spec();
            spec.flags |= spec_flags::COMPAT_MSGHDR;
            *slot = spec;
        } else {
            // Not chosen: no record, as for the native syscall.
            *slot = SyscallSpec::default();
        }
    }
    out
}

/// (direct i386 number, u32 argument count) per socketcall call number.
pub fn socketcall_map() -> ([u32; SOCKETCALL_CALLS], [u32; SOCKETCALL_CALLS]) {
    let mut nr = [0; SOCKETCALL_CALLS];
    let mut nargs = [0; SOCKETCALL_CALLS];
    for &(call, name, n) in SOCKETCALLS {
        if let Some(direct) = ia32_nr(name) {
            nr[call as usize] = direct;
            nargs[call as usize] = n;
        }
    }
    (nr, nargs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_i386_header() {
        let hdr = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_32.h")
            .expect("linux-libc-dev's <asm/unistd_32.h>");
        let lookup = |name: &str| -> Option<u32> {
            hdr.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "#define" && w.next()? == format!("__NR_{name}"))
                    .then(|| w.next()?.parse().ok())?
            })
        };
        for &(name, native, nr) in IA32 {
            // Older headers lack the newest syscalls.
            if let Some(h) = lookup(name) {
                assert_eq!(h, nr, "{name}");
            }
            assert!(
                TABLE.iter().any(|d| d.name == native),
                "{name} maps to unknown {native}"
            );
        }
        assert_eq!(lookup("socketcall"), Some(SOCKETCALL_NR));
        assert_eq!(lookup("open"), Some(5));
    }

    #[test]
    fn every_mapped_number_is_unique_and_in_range() {
        let mut seen = std::collections::HashSet::new();
        for &(name, _, nr) in IA32 {
            assert!(seen.insert(nr), "{name}");
            assert!(nr < MAX_COMPAT_NR, "{name}");
        }
        let specs = compat_specs(&Family::ALL);
        assert_eq!(
            specs[5].ops,
            TABLE.iter().find(|d| d.name == "open").unwrap().spec().ops
        );
        assert_eq!(specs[3].flags, spec_flags::ENABLED, "read: generic");
        let (nr, nargs) = socketcall_map();
        assert_eq!((nr[3], nargs[3]), (362, 3));
        assert_eq!((nr[9], nargs[9]), (369, 4));
        assert_eq!(nr[10], 0, "recv stays socketcall");
    }
}
