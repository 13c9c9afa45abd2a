//! Syscall events: one generic enter/exit pair of probes serves every audited
//! syscall. The loader describes each syscall number with a [`SyscallSpec`]
//! (what to read from which argument); the probes store the arguments at
//! enter, and at exit build one [`SyscallEvent`] with the result and the
//! captured data ([`Capture`]s). Userspace owns the syscall table, so the
//! probes know no syscall numbers and no architecture.

use crate::{assert_size, event::EventHeader};

/// How many capture operations one syscall can have.
pub const MAX_OPS: usize = 6;
/// Syscall numbers the spec array covers (x86_64 and arm64 are < 512).
pub const MAX_SYSCALL_NR: u32 = 1024;

/// What to capture for one argument.
pub mod op {
    pub const NONE: u8 = 0;
    /// A NUL-terminated user string (`arg` = pointer argument).
    pub const USER_STR: u8 = 1;
    /// A path argument (`arg`) relative to a directory fd (`arg2`, or
    /// [`super::CWD`] for the working directory): the raw string, plus the
    /// directory's path when the string is relative.
    pub const PATH_AT: u8 = 2;
    /// The path of the file behind an fd argument (`arg`), or behind the
    /// returned fd when `arg` is [`super::RET`].
    pub const FD_PATH: u8 = 3;
    /// A socket address: pointer `arg`, length in argument `arg2`.
    pub const SOCKADDR: u8 = 4;
    /// A socket address the kernel wrote back: pointer `arg`, length in the
    /// `socklen_t` that argument `arg2` points to (accept's peer).
    pub const SOCKADDR_OUT: u8 = 5;
    /// The `msg_name` address of the `struct msghdr` at argument `arg`.
    pub const MSGHDR_NAME: u8 = 6;
    /// `size` bytes of user memory at pointer argument `arg`.
    pub const USER_BYTES: u8 = 7;
    /// An array of u32 at pointer `arg` with the count in argument `arg2`
    /// (setgroups), at most `size` bytes.
    pub const USER_U32S: u8 = 8;
    /// The payload of a datagram to port 53 (known from a SOCKADDR or
    /// MSGHDR_NAME op earlier in the list): the buffer at `arg` with its
    /// length in argument `arg2`, at most `size` bytes.
    pub const DNS_PAYLOAD: u8 = 9;
    /// The same, from the first iovec of the `struct msghdr` at `arg`.
    pub const DNS_PAYLOAD_MSG: u8 = 10;
    /// The peer address of the connected socket behind fd argument `arg`,
    /// read from the kernel's socket (not from user memory), as a SOCKADDR
    /// capture for slot [`super::PEER`]. Nothing for a non-socket fd or an
    /// unconnected socket. Sets the destination port for the DNS ops.
    pub const FD_PEER: u8 = 11;
    /// Message number `size` of the `struct mmsghdr` array at `arg` with its
    /// count in argument `arg2` (sendmmsg): its `msg_name` as a SOCKADDR
    /// capture for slot `MMSG_SLOT + size`, and, when that address (or the
    /// socket's peer) has port 53, the first iovec's bytes as a BYTES capture
    /// for the same slot.
    pub const MMSG: u8 = 12;
}

/// Capture slot of the peer address found by [`op::FD_PEER`].
pub const PEER: u8 = 0xfd;
/// First capture slot of [`op::MMSG`] (message `i` uses `MMSG_SLOT + i`).
pub const MMSG_SLOT: u8 = 0x10;

/// `arg2` value meaning "relative to the current working directory".
pub const CWD: u8 = 0xfe;
/// `arg` value meaning "the syscall's return value".
pub const RET: u8 = 0xff;

/// Special handling beyond captures.
pub mod spec_flags {
    /// The syscall is audited (an all-zero spec means "not configured").
    pub const ENABLED: u32 = 1;
    /// execve/execveat: success is recorded by sched_process_exec, so only a
    /// failure produces a syscall event.
    pub const EXEC: u32 = 1 << 1;
    /// An open: on success with write access (see `write_open_*`), mark the
    /// returned fd so that its first write is recorded.
    pub const OPEN_FOR_WRITE: u32 = 1 << 2;
    /// A write-family syscall on argument 0: recorded only for the first
    /// successful write through an fd marked by an open.
    pub const FIRST_WRITE: u32 = 1 << 3;
    /// close(fd): forget the fd's mark. Produces no event.
    pub const CLOSE: u32 = 1 << 4;
    /// kill-family: argument `target_arg` is a pid; the event says whether
    /// it belongs to the audited scope.
    pub const KILL: u32 = 1 << 5;
    /// Only record when argument `filter_arg` (ioctl's cmd, prctl's option)
    /// is one of the nonzero `filter_vals`.
    pub const VALUE_FILTER: u32 = 1 << 6;
    /// Only record when the destination address argument `flags_arg` is
    /// present (sendto with an address), or when the fd (argument 0) carries
    /// a first-send mark (see [`MARK_FD`]); a successful send without an
    /// address clears the mark.
    pub const NEEDS_ADDR: u32 = 1 << 7;
    /// creat(): always opens for writing.
    pub const ALWAYS_WRITE: u32 = 1 << 8;
    /// openat2(): the open flags are the first u64 of the struct the
    /// `flags_arg` argument points to.
    pub const OPEN_HOW: u32 = 1 << 9;
    /// Only record when the `struct msghdr` at argument `flags_arg` has a
    /// `msg_name` (sendmsg to an explicit address), or when the fd carries a
    /// first-send mark (as for [`NEEDS_ADDR`]).
    pub const NEEDS_MSG_NAME: u32 = 1 << 10;
    /// dup/dup2/dup3/fcntl(F_DUPFD*): the returned fd inherits the
    /// first-write mark of argument 0 (a shell's `> file` is open, dup2,
    /// close, write). Produces no event.
    pub const DUP: u32 = 1 << 11;
    /// fcntl: only F_DUPFD and F_DUPFD_CLOEXEC (argument 1) matter.
    pub const DUP_FCNTL: u32 = 1 << 12;
    /// close_range(first, last, flags): forget the marks of the range.
    /// Produces no event.
    pub const CLOSE_RANGE: u32 = 1 << 13;
    /// connect/accept: on success (or EINPROGRESS) mark the socket fd
    /// (argument `mark_arg`, or the returned fd for [`super::RET`]) so that
    /// its first write/send is recorded with the peer address.
    pub const MARK_FD: u32 = 1 << 14;
    /// The syscall came from a 32-bit ABI whose `struct msghdr` has 4-byte
    /// pointers (ia32 sendmsg/sendmmsg): the msghdr ops read that layout.
    pub const COMPAT_MSGHDR: u32 = 1 << 15;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgOp {
    pub kind: u8,
    pub arg: u8,
    pub arg2: u8,
    pub _pad: u8,
    /// Byte bound for USER_BYTES / USER_U32S / DNS_PAYLOAD.
    pub size: u32,
}
assert_size!(ArgOp, 8);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallSpec {
    pub flags: u32,
    /// Argument holding the open flags (OPEN_FOR_WRITE), the target pid
    /// (KILL), or the address pointer (NEEDS_ADDR).
    pub flags_arg: u8,
    /// How many arguments the syscall has (the rest are recorded as 0).
    pub nargs: u8,
    /// For VALUE_FILTER: the argument compared with `filter_vals`.
    pub filter_arg: u8,
    /// For MARK_FD: the fd argument to mark, or [`RET`].
    pub mark_arg: u8,
    /// For VALUE_FILTER: the only values recorded (0 = unused slot).
    pub filter_vals: [u32; 4],
    pub ops: [ArgOp; MAX_OPS],
}
assert_size!(SyscallSpec, 72);

#[cfg(feature = "user")]
unsafe impl aya::Pod for SyscallSpec {}

/// Arguments saved at syscall entry, keyed by thread (pid_tgid).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingSyscall {
    pub nr: u32,
    /// [`event_flags`] ABI bits (`ABI_IA32`, `ABI_X32`, `SOCKETCALL`); 0 for
    /// a native syscall. A compat syscall is looked up in `COMPAT_SPECS`.
    pub abi: u32,
    pub enter_ns: u64,
    pub args: [u64; 6],
}
assert_size!(PendingSyscall, 64);

pub mod event_flags {
    /// A capture did not fit the event's data area and was dropped; the
    /// captures present are complete.
    pub const DATA_TRUNCATED: u32 = 1;
    /// KILL: the target pid is a process in the audited scope.
    pub const TARGET_IN_SCOPE: u32 = 1 << 1;
    /// An ia32 syscall (`int $0x80`, sysenter, or a 32-bit process): `nr` is
    /// the i386 number.
    pub const ABI_IA32: u32 = 1 << 2;
    /// An x32 syscall: `nr` is the number without the x32 bit.
    pub const ABI_X32: u32 = 1 << 3;
    /// Decoded from ia32 socketcall(call, args): `nr` is the i386 number of
    /// the direct syscall and `args` are the ones socketcall pointed to.
    pub const SOCKETCALL: u32 = 1 << 4;
    /// The ABI bits.
    pub const ABI_MASK: u32 = ABI_IA32 | ABI_X32 | SOCKETCALL;
}

/// Numbers the compat spec array covers (i386 is < 512).
pub const MAX_COMPAT_NR: u32 = 512;
/// socketcall call numbers (SYS_SOCKET = 1 .. SYS_SENDMMSG = 20).
pub const SOCKETCALL_CALLS: usize = 21;
/// The x32 syscall bit (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u64 = 0x4000_0000;

/// Where the compat probes find things; resolved by the loader from BTF.
/// `u32::MAX` means unknown (the compat probes are then not attached).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompatConfig {
    /// `task_struct.thread_info.status`.
    pub task_ti_status: u32,
    /// The TS_COMPAT bit of that status (x86: 0x0002, stable since 2.6).
    pub ts_compat: u32,
    /// `pt_regs` offsets of the i386 argument registers bx, cx, dx, si, di, bp.
    pub regs_ia32: [u32; 6],
    /// `pt_regs` offsets of the x86_64/x32 argument registers di, si, dx, r10, r8, r9.
    pub regs_64: [u32; 6],
    /// i386 number of socketcall (102), or u32::MAX.
    pub socketcall_nr: u32,
    /// `pt_regs.orig_ax` (the x32 bit of the syscall number, at exit).
    pub regs_orig_ax: u32,
    /// socketcall call number → i386 number of the direct syscall it
    /// stands for (0 = keep it as socketcall).
    pub socketcall_map: [u32; SOCKETCALL_CALLS],
    /// Arguments of each socketcall call (how many u32 to read).
    pub socketcall_nargs: [u32; SOCKETCALL_CALLS],
}
assert_size!(CompatConfig, 232);

impl CompatConfig {
    pub const fn missing() -> Self {
        CompatConfig {
            task_ti_status: u32::MAX,
            ts_compat: 0,
            regs_ia32: [u32::MAX; 6],
            regs_64: [u32::MAX; 6],
            socketcall_nr: u32::MAX,
            regs_orig_ax: u32::MAX,
            socketcall_map: [0; SOCKETCALL_CALLS],
            socketcall_nargs: [0; SOCKETCALL_CALLS],
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for CompatConfig {}

/// Kernel offsets for socket peers (FD_PEER); `u32::MAX` = unknown.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOffsets {
    pub file_private_data: u32,
    pub socket_sk: u32,
    pub sk_family: u32,
    pub sk_dport: u32,
    pub sk_daddr: u32,
    pub sk_v6_daddr: u32,
}
assert_size!(SocketOffsets, 24);

impl SocketOffsets {
    pub const fn missing() -> Self {
        SocketOffsets {
            file_private_data: u32::MAX,
            socket_sk: u32::MAX,
            sk_family: u32::MAX,
            sk_dport: u32::MAX,
            sk_daddr: u32::MAX,
            sk_v6_daddr: u32::MAX,
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for SocketOffsets {}

/// Bytes of data area in one syscall event (captures, back to back).
pub const SYSCALL_DATA_MAX: usize = 8192;

/// One completed syscall. Followed by `data_len` bytes of captures.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallEvent {
    pub header: EventHeader,
    pub nr: u32,
    pub flags: u32,
    /// The return value (negative errno on failure).
    pub ret: i64,
    pub args: [u64; 6],
    pub enter_ns: u64,
    pub data_len: u32,
    pub _pad: u32,
}
assert_size!(SyscallEvent, 160);

/// Kinds of captured data in a syscall event.
pub mod arg_data_kind {
    /// A user string (path argument, symlink target, name). `slot` = argument index.
    pub const STRING: u8 = 1;
    /// A path as components, leaf first, each NUL-terminated, walked from a
    /// dentry up to the task's root. `slot` = argument index it belongs to
    /// (the directory of a relative path argument, or the file of an fd
    /// argument), or [`super::RET`] for the returned fd.
    pub const PATH_COMPONENTS: u8 = 2;
    /// Raw socket address bytes. `slot` = argument index.
    pub const SOCKADDR: u8 = 3;
    /// Raw user bytes. `slot` = argument index.
    pub const BYTES: u8 = 4;
}

pub mod arg_data_flags {
    /// The data was cut at its bound.
    pub const TRUNCATED: u8 = 1;
    /// PATH_COMPONENTS: the walk stopped at the depth bound before the root.
    pub const DEPTH_LIMIT: u8 = 2;
    /// PATH_COMPONENTS: the file is not reachable from the task's root (it
    /// lies outside its chroot/container root, or is an anonymous inode).
    pub const OUTSIDE_ROOT: u8 = 4;
    /// The memory could not be read; the capture is empty.
    pub const UNREADABLE: u8 = 8;
    /// PATH_COMPONENTS: the directory is the relative path's base by cwd.
    pub const FROM_CWD: u8 = 16;
}

/// Header in front of each capture's bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgDataHeader {
    pub kind: u8,
    pub slot: u8,
    pub flags: u8,
    pub _pad: u8,
    pub len: u32,
}
assert_size!(ArgDataHeader, 8);

/// Bounds on single captures.
pub const STRING_MAX: usize = 4096;
pub const SOCKADDR_MAX: usize = 128;
pub const BYTES_MAX: usize = 512;
pub const PATH_DEPTH_MAX: usize = 32;
pub const NAME_MAX: usize = 256;

/// Per-CPU scratch for assembling a syscall event. The data area is twice
/// [`SYSCALL_DATA_MAX`] so that a masked offset plus a bounded write always
/// stays inside it (what the verifier needs to see).
#[repr(C)]
pub struct SyscallScratch {
    pub event: SyscallEvent,
    pub data: [u8; 2 * SYSCALL_DATA_MAX],
}
assert_size!(SyscallScratch, 160 + 2 * SYSCALL_DATA_MAX);

/// fds below this get a first-write mark; an open returning a larger fd for
/// writing is counted in `loss_slot::FIRST_WRITE_UNTRACKED`.
pub const FD_BITMAP_FDS: usize = 4096;

/// Per process: which fds were opened for writing and not yet written.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FdBitmap {
    pub bits: [u64; FD_BITMAP_FDS / 64],
}
assert_size!(FdBitmap, 512);
