//! The audited syscalls: for each one, its number on this architecture, its
//! tracepoint, the record kind it produces, and what each argument is. The
//! loader turns this table into the probes' `SyscallSpec`s; the record stage
//! uses the same table to name the fields. One table, so the two cannot drift.

use audit_common::syscall::{ArgOp, CWD, RET, SyscallSpec, op, spec_flags as sf};

#[path = "syscalls_ia32.rs"]
pub mod ia32;

/// What an argument is, and the record field it becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Not recorded (user pointers, or covered by a capture).
    Skip,
    /// A C `int` (fd, pid, uid, signal, ...): the low 32 bits, signed.
    Int(&'static str),
    /// A C `long`/`off_t` (lengths, offsets): all 64 bits, signed.
    Long(&'static str),
    /// An unsigned value (flags, sizes, lengths).
    Uint(&'static str),
    /// A path, relative to the directory fd in the given argument (or [`CWD`]).
    Path(&'static str, u8),
    /// An fd whose file's path is captured: records `fd` and the path field.
    FdPath(&'static str),
    /// A user string recorded as bytes (symlink target, names).
    Str(&'static str),
    /// A socket address, with its length in the given argument.
    Addr(&'static str, u8),
}

/// Which capture family a syscall belongs to; security teams choose the
/// families to attach (`--families`). Process lifecycle (exec, fork, exit) is
/// always captured and is not in this table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    File,
    Network,
    Privilege,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::File, Family::Network, Family::Privilege];

    pub fn name(self) -> &'static str {
        match self {
            Family::File => "file",
            Family::Network => "network",
            Family::Privilege => "privilege",
        }
    }

    /// Parses a comma-separated list: `file`, `network`, `privilege`, `all`,
    /// or `process` (process lifecycle only: no syscall family).
    pub fn parse_list(list: &str) -> Result<Vec<Family>, String> {
        let mut out = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "all" => out.extend(Family::ALL),
                "process" => {}
                w => match Family::ALL.iter().find(|f| f.name() == w) {
                    Some(f) => out.push(*f),
                    None => {
                        return Err(format!(
                            "unknown capture family `{w}` (expected file, network, privilege, process or all)"
                        ));
                    }
                },
            }
        }
        out.sort_by_key(|f| f.name());
        out.dedup();
        Ok(out)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct SyscallDef {
    pub name: &'static str,
    pub nr: i64,
    /// `syscalls:sys_enter_<tracepoint>` when it differs from the name
    /// (x86_64's umount2 is "umount"); empty means "same as name".
    pub tracepoint: &'static str,
    /// The record kind it produces.
    pub kind: &'static str,
    pub family: Family,
    pub args: &'static [Arg],
    pub flags: u32,
    pub flags_arg: u8,
    /// VALUE_FILTER: the argument compared, and the values recorded.
    pub filter_arg: u8,
    pub filter_vals: [u32; 4],
    /// MARK_FD: the fd argument marked for its first send (or RET).
    pub mark_arg: u8,
    /// Captures beyond those the args imply.
    pub extra: &'static [ArgOp],
}

pub const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
pub const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;

const fn cap(kind: u8, arg: u8, arg2: u8, size: u32) -> ArgOp {
    ArgOp {
        kind,
        arg,
        arg2,
        _pad: 0,
        size,
    }
}

/// The path of the fd the syscall returned (the file actually opened).
const OPENED: ArgOp = cap(op::FD_PATH, RET, 0, 0);

const BASE: SyscallDef = SyscallDef {
    name: "",
    nr: -1,
    tracepoint: "",
    kind: "",
    family: Family::File,
    args: &[],
    flags: 0,
    flags_arg: 0,
    filter_arg: 0,
    filter_vals: [0; 4],
    mark_arg: 0,
    extra: &[],
};

macro_rules! def {
    ($name:ident, $kind:literal, $family:ident, [$($arg:expr),*] $(, $field:ident: $val:expr)*) => {
        SyscallDef {
            name: stringify!($name),
            nr: nr::$name,
            kind: $kind,
            family: Family::$family,
            args: &[$($arg),*],
            $($field: $val,)*
            ..BASE
        }
    };
}

/// Syscall numbers of this architecture, by name.
#[allow(non_upper_case_globals)]
mod nr {
    pub const open: i64 = libc::SYS_open;
    pub const openat: i64 = libc::SYS_openat;
    pub const openat2: i64 = libc::SYS_openat2;
    pub const creat: i64 = libc::SYS_creat;
    pub const unlink: i64 = libc::SYS_unlink;
    pub const unlinkat: i64 = libc::SYS_unlinkat;
    pub const rmdir: i64 = libc::SYS_rmdir;
    pub const rename: i64 = libc::SYS_rename;
    pub const renameat: i64 = libc::SYS_renameat;
    pub const renameat2: i64 = libc::SYS_renameat2;
    pub const mkdir: i64 = libc::SYS_mkdir;
    pub const mkdirat: i64 = libc::SYS_mkdirat;
    pub const link: i64 = libc::SYS_link;
    pub const linkat: i64 = libc::SYS_linkat;
    pub const symlink: i64 = libc::SYS_symlink;
    pub const symlinkat: i64 = libc::SYS_symlinkat;
    pub const chmod: i64 = libc::SYS_chmod;
    pub const fchmod: i64 = libc::SYS_fchmod;
    pub const fchmodat: i64 = libc::SYS_fchmodat;
    pub const fchmodat2: i64 = libc::SYS_fchmodat2;
    pub const chown: i64 = libc::SYS_chown;
    pub const fchown: i64 = libc::SYS_fchown;
    pub const lchown: i64 = libc::SYS_lchown;
    pub const fchownat: i64 = libc::SYS_fchownat;
    pub const truncate: i64 = libc::SYS_truncate;
    pub const ftruncate: i64 = libc::SYS_ftruncate;
    pub const write: i64 = libc::SYS_write;
    pub const pwrite64: i64 = libc::SYS_pwrite64;
    pub const writev: i64 = libc::SYS_writev;
    pub const pwritev: i64 = libc::SYS_pwritev;
    pub const pwritev2: i64 = libc::SYS_pwritev2;
    pub const close: i64 = libc::SYS_close;
    pub const close_range: i64 = libc::SYS_close_range;
    pub const dup: i64 = libc::SYS_dup;
    pub const dup2: i64 = libc::SYS_dup2;
    pub const dup3: i64 = libc::SYS_dup3;
    pub const fcntl: i64 = libc::SYS_fcntl;
    pub const socket: i64 = libc::SYS_socket;
    pub const connect: i64 = libc::SYS_connect;
    pub const bind: i64 = libc::SYS_bind;
    pub const listen: i64 = libc::SYS_listen;
    pub const accept: i64 = libc::SYS_accept;
    pub const accept4: i64 = libc::SYS_accept4;
    pub const sendto: i64 = libc::SYS_sendto;
    pub const sendmsg: i64 = libc::SYS_sendmsg;
    pub const setuid: i64 = libc::SYS_setuid;
    pub const setgid: i64 = libc::SYS_setgid;
    pub const setreuid: i64 = libc::SYS_setreuid;
    pub const setregid: i64 = libc::SYS_setregid;
    pub const setresuid: i64 = libc::SYS_setresuid;
    pub const setresgid: i64 = libc::SYS_setresgid;
    pub const setgroups: i64 = libc::SYS_setgroups;
    pub const capset: i64 = libc::SYS_capset;
    pub const ptrace: i64 = libc::SYS_ptrace;
    pub const mount: i64 = libc::SYS_mount;
    pub const umount2: i64 = libc::SYS_umount2;
    pub const init_module: i64 = libc::SYS_init_module;
    pub const finit_module: i64 = libc::SYS_finit_module;
    pub const delete_module: i64 = libc::SYS_delete_module;
    pub const bpf: i64 = libc::SYS_bpf;
    pub const kill: i64 = libc::SYS_kill;
    pub const tkill: i64 = libc::SYS_tkill;
    pub const tgkill: i64 = libc::SYS_tgkill;
    pub const ioctl: i64 = libc::SYS_ioctl;
    pub const unshare: i64 = libc::SYS_unshare;
    pub const setns: i64 = libc::SYS_setns;
    pub const memfd_create: i64 = libc::SYS_memfd_create;
    pub const execve: i64 = libc::SYS_execve;
    pub const execveat: i64 = libc::SYS_execveat;
    pub const name_to_handle_at: i64 = libc::SYS_name_to_handle_at;
    pub const open_by_handle_at: i64 = libc::SYS_open_by_handle_at;
    pub const sendmmsg: i64 = libc::SYS_sendmmsg;
    pub const process_vm_readv: i64 = libc::SYS_process_vm_readv;
    pub const process_vm_writev: i64 = libc::SYS_process_vm_writev;
    pub const pidfd_open: i64 = libc::SYS_pidfd_open;
    pub const pidfd_getfd: i64 = libc::SYS_pidfd_getfd;
    pub const pidfd_send_signal: i64 = libc::SYS_pidfd_send_signal;
    pub const chroot: i64 = libc::SYS_chroot;
    pub const pivot_root: i64 = libc::SYS_pivot_root;
    pub const seccomp: i64 = libc::SYS_seccomp;
    pub const prctl: i64 = libc::SYS_prctl;
    pub const io_uring_setup: i64 = libc::SYS_io_uring_setup;
    pub const io_uring_enter: i64 = libc::SYS_io_uring_enter;
    pub const io_uring_register: i64 = libc::SYS_io_uring_register;
}

pub const PR_SET_SECCOMP: u32 = 22;
pub const PR_SET_NO_NEW_PRIVS: u32 = 38;
pub const PR_CAP_AMBIENT: u32 = 47;

/// The peer of the socket behind fd argument 0.
const PEER_OF_FD: ArgOp = cap(op::FD_PEER, 0, 0, 0);
/// sendmmsg: message `i` of the mmsghdr array (argument 1, count in 2).
const fn mmsg(i: u32) -> ArgOp {
    cap(op::MMSG, 1, 2, i)
}
/// Messages of one sendmmsg whose destinations are captured.
pub const MMSG_CAPTURED: usize = 4;

use Arg::{Addr, FdPath, Int, Long, Path, Skip, Str, Uint};

use audit_common::syscall::PEER;

const OPEN_W: u32 = sf::ENABLED | sf::OPEN_FOR_WRITE;
const WRITE: u32 = sf::ENABLED | sf::FIRST_WRITE;
const ON: u32 = sf::ENABLED;

/// Every audited syscall. Order does not matter; numbers must be unique.
pub static TABLE: &[SyscallDef] = &[
    // File system (OCSF 1001)
    def!(open, "open", File, [Path("path", CWD), Uint("flags"), Uint("mode")], flags: OPEN_W, flags_arg: 1, extra: &[OPENED]),
    def!(openat, "open", File, [Int("dirfd"), Path("path", 0), Uint("flags"), Uint("mode")], flags: OPEN_W, flags_arg: 2, extra: &[OPENED]),
    def!(openat2, "open", File, [Int("dirfd"), Path("path", 0), Skip, Uint("how_size")], flags: OPEN_W | sf::OPEN_HOW, flags_arg: 2,
        extra: &[cap(op::USER_BYTES, 2, 0, 24), OPENED]),
    def!(creat, "open", File, [Path("path", CWD), Uint("mode")], flags: OPEN_W | sf::ALWAYS_WRITE, extra: &[OPENED]),
    def!(unlink, "unlink", File, [Path("path", CWD)], flags: ON),
    def!(unlinkat, "unlink", File, [Int("dirfd"), Path("path", 0), Uint("flags")], flags: ON),
    def!(rmdir, "rmdir", File, [Path("path", CWD)], flags: ON),
    def!(rename, "rename", File, [Path("path", CWD), Path("new_path", CWD)], flags: ON),
    def!(renameat, "rename", File, [Int("dirfd"), Path("path", 0), Int("new_dirfd"), Path("new_path", 2)], flags: ON),
    def!(renameat2, "rename", File, [Int("dirfd"), Path("path", 0), Int("new_dirfd"), Path("new_path", 2), Uint("flags")], flags: ON),
    def!(mkdir, "mkdir", File, [Path("path", CWD), Uint("mode")], flags: ON),
    def!(mkdirat, "mkdir", File, [Int("dirfd"), Path("path", 0), Uint("mode")], flags: ON),
    def!(link, "link", File, [Path("path", CWD), Path("new_path", CWD)], flags: ON),
    def!(linkat, "link", File, [Int("dirfd"), Path("path", 0), Int("new_dirfd"), Path("new_path", 2), Uint("flags")], flags: ON),
    def!(symlink, "symlink", File, [Str("target"), Path("path", CWD)], flags: ON),
    def!(symlinkat, "symlink", File, [Str("target"), Int("dirfd"), Path("path", 1)], flags: ON),
    def!(chmod, "chmod", File, [Path("path", CWD), Uint("mode")], flags: ON),
    def!(fchmod, "chmod", File, [FdPath("path"), Uint("mode")], flags: ON),
    def!(fchmodat, "chmod", File, [Int("dirfd"), Path("path", 0), Uint("mode")], flags: ON),
    def!(fchmodat2, "chmod", File, [Int("dirfd"), Path("path", 0), Uint("mode"), Uint("flags")], flags: ON),
    def!(chown, "chown", File, [Path("path", CWD), Int("uid"), Int("gid")], flags: ON),
    def!(lchown, "chown", File, [Path("path", CWD), Int("uid"), Int("gid")], flags: ON),
    def!(fchown, "chown", File, [FdPath("path"), Int("uid"), Int("gid")], flags: ON),
    def!(fchownat, "chown", File, [Int("dirfd"), Path("path", 0), Int("uid"), Int("gid"), Uint("flags")], flags: ON),
    def!(truncate, "truncate", File, [Path("path", CWD), Long("length")], flags: ON),
    def!(ftruncate, "truncate", File, [FdPath("path"), Long("length")], flags: ON),
    // A first write on a connected socket (marked by connect/accept) also
    // records the socket's peer, and a DNS query's name for port 53.
    def!(write, "write", File, [FdPath("path"), Skip, Uint("count")], flags: WRITE,
        extra: &[PEER_OF_FD, cap(op::DNS_PAYLOAD, 1, 2, 512)]),
    def!(pwrite64, "write", File, [FdPath("path"), Skip, Uint("count"), Long("offset")], flags: WRITE),
    def!(writev, "write", File, [FdPath("path"), Skip, Uint("iovcnt")], flags: WRITE, extra: &[PEER_OF_FD]),
    def!(pwritev, "write", File, [FdPath("path"), Skip, Uint("iovcnt"), Long("offset")], flags: WRITE),
    def!(pwritev2, "write", File, [FdPath("path"), Skip, Uint("iovcnt"), Long("offset"), Skip, Uint("flags")], flags: WRITE),
    def!(close, "close", File, [Int("fd")], flags: sf::ENABLED | sf::CLOSE),
    def!(close_range, "close", File, [Uint("first"), Uint("last"), Uint("flags")], flags: sf::ENABLED | sf::CLOSE_RANGE),
    def!(dup, "dup", File, [Int("fd")], flags: sf::ENABLED | sf::DUP),
    def!(dup2, "dup", File, [Int("fd"), Int("new_fd")], flags: sf::ENABLED | sf::DUP),
    def!(dup3, "dup", File, [Int("fd"), Int("new_fd"), Uint("flags")], flags: sf::ENABLED | sf::DUP),
    def!(fcntl, "dup", File, [Int("fd"), Int("cmd"), Uint("arg")], flags: sf::ENABLED | sf::DUP | sf::DUP_FCNTL),
    def!(name_to_handle_at, "name_to_handle", File, [Int("dirfd"), Path("path", 0), Skip, Skip, Uint("flags")], flags: ON),
    // The handle (struct file_handle: bytes, type, then the handle) is kept
    // as bytes; the file actually opened comes from the returned fd.
    def!(open_by_handle_at, "open", File, [Int("mount_fd"), Skip, Uint("flags")], flags: OPEN_W, flags_arg: 2,
        extra: &[cap(op::USER_BYTES, 1, 0, 40), OPENED]),
    def!(io_uring_setup, "io_uring_setup", File, [Uint("entries"), Skip], flags: ON, extra: &[cap(op::USER_BYTES, 1, 0, 24)]),
    def!(io_uring_enter, "io_uring_enter", File, [Int("fd"), Uint("to_submit"), Uint("min_complete"), Uint("flags"), Skip, Uint("argsz")], flags: ON),
    def!(io_uring_register, "io_uring_register", File, [Int("fd"), Uint("opcode"), Skip, Uint("nr_args")], flags: ON),
    // Network (OCSF 4001)
    def!(socket, "socket", Network, [Int("family"), Int("type"), Int("protocol")], flags: ON),
    def!(connect, "connect", Network, [Int("fd"), Addr("remote", 2), Uint("addrlen")], flags: ON | sf::MARK_FD, mark_arg: 0),
    def!(bind, "bind", Network, [Int("fd"), Addr("local", 2), Uint("addrlen")], flags: ON),
    def!(listen, "listen", Network, [Int("fd"), Int("backlog")], flags: ON),
    def!(accept, "accept", Network, [Int("fd"), Skip, Skip], flags: ON | sf::MARK_FD, mark_arg: RET,
        extra: &[cap(op::SOCKADDR_OUT, 1, 2, 0)]),
    def!(accept4, "accept", Network, [Int("fd"), Skip, Skip, Uint("flags")], flags: ON | sf::MARK_FD, mark_arg: RET,
        extra: &[cap(op::SOCKADDR_OUT, 1, 2, 0)]),
    // Recorded with an explicit address, or as the first send on a
    // connected socket (then `remote` is the socket's peer).
    def!(sendto, "send", Network, [Int("fd"), Skip, Uint("length"), Uint("flags"), Addr("remote", 5), Uint("addrlen")],
        flags: ON | sf::NEEDS_ADDR, flags_arg: 4, extra: &[PEER_OF_FD, cap(op::DNS_PAYLOAD, 1, 2, 512)]),
    def!(sendmsg, "send", Network, [Int("fd"), Skip, Uint("flags")], flags: ON | sf::NEEDS_MSG_NAME, flags_arg: 1,
        extra: &[cap(op::MSGHDR_NAME, 1, 0, 0), PEER_OF_FD, cap(op::DNS_PAYLOAD_MSG, 1, 0, 512)]),
    // Every sendmmsg: the first MMSG_CAPTURED messages' destinations.
    def!(sendmmsg, "send", Network, [Int("fd"), Skip, Uint("vlen"), Uint("flags")], flags: ON,
        extra: &[PEER_OF_FD, mmsg(0), mmsg(1), mmsg(2), mmsg(3)]),
    // Privilege and tamper-relevant (OCSF 1007 and friends)
    def!(setuid, "setuid", Privilege, [Int("uid")], flags: ON),
    def!(setgid, "setgid", Privilege, [Int("gid")], flags: ON),
    def!(setreuid, "setuid", Privilege, [Int("ruid"), Int("euid")], flags: ON),
    def!(setregid, "setgid", Privilege, [Int("rgid"), Int("egid")], flags: ON),
    def!(setresuid, "setuid", Privilege, [Int("ruid"), Int("euid"), Int("suid")], flags: ON),
    def!(setresgid, "setgid", Privilege, [Int("rgid"), Int("egid"), Int("sgid")], flags: ON),
    def!(setgroups, "setgroups", Privilege, [Int("count"), Skip], flags: ON, extra: &[cap(op::USER_U32S, 1, 0, 256)]),
    def!(capset, "capset", Privilege, [Skip, Skip], flags: ON, extra: &[cap(op::USER_BYTES, 0, 0, 8), cap(op::USER_BYTES, 1, 0, 24)]),
    def!(ptrace, "ptrace", Privilege, [Int("request"), Int("target_pid"), Skip, Skip], flags: ON),
    def!(mount, "mount", Privilege, [Str("source"), Path("path", CWD), Str("fstype"), Uint("flags"), Skip], flags: ON),
    def!(umount2, "umount", Privilege, [Path("path", CWD), Uint("flags")], flags: ON, tracepoint: "umount"),
    def!(init_module, "module_load", Privilege, [Skip, Uint("length"), Str("params")], flags: ON),
    def!(finit_module, "module_load", Privilege, [FdPath("path"), Str("params"), Uint("flags")], flags: ON),
    def!(delete_module, "module_delete", Privilege, [Str("module"), Uint("flags")], flags: ON),
    def!(bpf, "bpf", Privilege, [Int("command"), Skip, Uint("size")], flags: ON),
    def!(kill, "kill", Privilege, [Int("target_pid"), Int("signal")], flags: ON | sf::KILL, flags_arg: 0),
    def!(tkill, "kill", Privilege, [Int("target_tid"), Int("signal")], flags: ON | sf::KILL, flags_arg: 0),
    def!(tgkill, "kill", Privilege, [Int("target_pid"), Int("target_tid"), Int("signal")], flags: ON | sf::KILL, flags_arg: 0),
    def!(ioctl, "chattr", Privilege, [FdPath("path"), Uint("request"), Skip], flags: ON | sf::VALUE_FILTER,
        filter_arg: 1, filter_vals: [FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR, 0, 0], extra: &[cap(op::USER_BYTES, 2, 0, 4)]),
    def!(process_vm_readv, "process_vm", Privilege, [Int("target_pid"), Skip, Uint("local_iovcnt"), Skip, Uint("remote_iovcnt"), Uint("flags")],
        flags: ON | sf::KILL, flags_arg: 0),
    def!(process_vm_writev, "process_vm", Privilege, [Int("target_pid"), Skip, Uint("local_iovcnt"), Skip, Uint("remote_iovcnt"), Uint("flags")],
        flags: ON | sf::KILL, flags_arg: 0),
    def!(pidfd_open, "pidfd_open", Privilege, [Int("target_pid"), Uint("flags")], flags: ON | sf::KILL, flags_arg: 0),
    def!(pidfd_getfd, "pidfd_getfd", Privilege, [Int("pidfd"), Int("target_fd"), Uint("flags")], flags: ON),
    def!(pidfd_send_signal, "kill", Privilege, [Int("pidfd"), Int("signal"), Skip, Uint("flags")], flags: ON),
    def!(chroot, "chroot", Privilege, [Path("path", CWD)], flags: ON),
    def!(pivot_root, "pivot_root", Privilege, [Path("new_root", CWD), Path("put_old", CWD)], flags: ON),
    def!(seccomp, "seccomp", Privilege, [Uint("operation"), Uint("flags"), Skip], flags: ON),
    def!(prctl, "prctl", Privilege, [Int("option"), Uint("arg2"), Uint("arg3"), Uint("arg4"), Uint("arg5")], flags: ON | sf::VALUE_FILTER,
        filter_arg: 0, filter_vals: [PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, 0]),
    def!(unshare, "unshare", Privilege, [Uint("flags")], flags: ON),
    def!(setns, "setns", Privilege, [FdPath("namespace"), Int("nstype")], flags: ON),
    def!(memfd_create, "memfd_create", Privilege, [Str("name"), Uint("flags")], flags: ON),
    def!(execve, "exec", Privilege, [Path("filename", CWD), Skip, Skip], flags: ON | sf::EXEC),
    def!(execveat, "exec", Privilege, [Int("dirfd"), Path("filename", 0), Skip, Skip, Uint("flags")], flags: ON | sf::EXEC),
];

impl SyscallDef {
    /// The tracepoint suffix: `sys_enter_<this>` / `sys_exit_<this>`.
    pub fn tracepoint(&self) -> &'static str {
        if self.tracepoint.is_empty() {
            self.name
        } else {
            self.tracepoint
        }
    }

    /// The probes' view of this syscall: the captures its arguments imply
    /// (paths, fds, strings, addresses) plus the extra ones.
    pub fn spec(&self) -> SyscallSpec {
        let mut ops = [ArgOp::default(); audit_common::syscall::MAX_OPS];
        let implied = self.args.iter().enumerate().filter_map(|(i, a)| {
            let i = i as u8;
            match *a {
                Path(_, dirfd) => Some(cap(op::PATH_AT, i, dirfd, 0)),
                FdPath(_) => Some(cap(op::FD_PATH, i, 0, 0)),
                Str(_) => Some(cap(op::USER_STR, i, 0, 0)),
                Addr(_, len) => Some(cap(op::SOCKADDR, i, len, 0)),
                _ => None,
            }
        });
        for (slot, o) in ops
            .iter_mut()
            .zip(implied.chain(self.extra.iter().copied()))
        {
            *slot = o;
        }
        SyscallSpec {
            flags: self.flags,
            flags_arg: self.flags_arg,
            nargs: self.args.len() as u8,
            filter_arg: self.filter_arg,
            mark_arg: self.mark_arg,
            filter_vals: self.filter_vals,
            ops,
        }
    }

    /// How many captures the table asks for (must fit `MAX_OPS`).
    pub fn op_count(&self) -> usize {
        self.args
            .iter()
            .filter(|a| matches!(a, Path(..) | FdPath(_) | Str(_) | Addr(..)))
            .count()
            + self.extra.len()
    }
}

/// The definition for a syscall number, if audited.
pub fn by_nr(nr: u32) -> Option<&'static SyscallDef> {
    TABLE.iter().find(|d| d.nr == nr as i64)
}

/// The capture slot of the peer address (`remote` of a connected socket).
pub const PEER_SLOT: u8 = PEER;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn table_is_consistent() {
        let mut nrs = HashSet::new();
        for d in TABLE {
            assert!(nrs.insert(d.nr), "{} listed twice", d.name);
            assert!(
                d.nr >= 0 && d.nr < audit_common::syscall::MAX_SYSCALL_NR as i64,
                "{}",
                d.name
            );
            assert!(
                d.op_count() <= audit_common::syscall::MAX_OPS,
                "{} has too many captures",
                d.name
            );
            assert!(d.args.len() <= 6, "{}", d.name);
            assert!(d.flags & sf::ENABLED != 0, "{}", d.name);
            for a in d.args {
                if let Path(_, dirfd) = a {
                    assert!(
                        *dirfd == CWD || (*dirfd as usize) < d.args.len(),
                        "{}",
                        d.name
                    );
                }
            }
        }
    }

    #[test]
    fn connected_sends_capture_the_peer_before_the_dns_payload() {
        for name in ["write", "sendto", "sendmsg", "sendmmsg"] {
            let spec = TABLE.iter().find(|d| d.name == name).unwrap().spec();
            let peer = spec.ops.iter().position(|o| o.kind == op::FD_PEER);
            let dns = spec
                .ops
                .iter()
                .position(|o| matches!(o.kind, op::DNS_PAYLOAD | op::DNS_PAYLOAD_MSG | op::MMSG));
            assert!(peer.is_some() && peer < dns, "{name}: {:?}", spec.ops);
        }
    }

    #[test]
    fn family_lists_parse_with_clear_errors() {
        assert_eq!(Family::parse_list("all").unwrap(), Family::ALL.to_vec());
        assert_eq!(
            Family::parse_list("network, file,file").unwrap(),
            vec![Family::File, Family::Network]
        );
        assert_eq!(Family::parse_list("process").unwrap(), vec![]);
        let e = Family::parse_list("file,disk").unwrap_err();
        assert!(e.contains("unknown capture family `disk`"), "{e}");
    }

    #[test]
    fn specs_follow_the_args() {
        let openat = TABLE.iter().find(|d| d.name == "openat").unwrap().spec();
        assert_eq!(openat.ops[0], cap(op::PATH_AT, 1, 0, 0));
        assert_eq!(openat.ops[1], OPENED);
        assert_eq!(openat.nargs, 4);
        let rename = TABLE.iter().find(|d| d.name == "rename").unwrap().spec();
        assert_eq!(rename.ops[1], cap(op::PATH_AT, 1, CWD, 0));
    }

    #[test]
    fn every_tracepoint_name_exists_on_this_kernel_or_is_known_missing() {
        let base = std::path::Path::new("/sys/kernel/tracing/events/syscalls");
        for d in TABLE {
            let present = base.join(format!("sys_enter_{}", d.tracepoint())).exists();
            // This kernel is built without loadable modules.
            let known_missing = matches!(d.name, "init_module" | "finit_module" | "delete_module");
            assert!(present || known_missing, "no tracepoint for {}", d.name);
        }
    }
}
