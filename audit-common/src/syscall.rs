//! Syscall events: one generic enter/exit pair of probes serves every audited
//! syscall. The loader describes each syscall number with a [`SyscallSpec`]
//! (what to read from which argument); the probes store the arguments at
//! enter, and at exit build one [`SyscallEvent`] with the result and the
//! captured data ([`Capture`]s). Userspace owns the syscall table, so the
//! probes know no syscall numbers and no architecture.

use crate::{assert_size, event::EventHeader};

/// How many capture operations one syscall can have.
pub const MAX_OPS: usize = 4;
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
}

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
    /// Only record when argument 1 (ioctl cmd) is one of `ioctl_cmds`.
    pub const IOCTL_FILTER: u32 = 1 << 6;
    /// Only record when the destination address argument is present
    /// (sendto with an address, sendmsg with msg_name).
    pub const NEEDS_ADDR: u32 = 1 << 7;
    /// creat(): always opens for writing.
    pub const ALWAYS_WRITE: u32 = 1 << 8;
    /// openat2(): the open flags are the first u64 of the struct the
    /// `flags_arg` argument points to.
    pub const OPEN_HOW: u32 = 1 << 9;
    /// Only record when the `struct msghdr` at argument `flags_arg` has a
    /// `msg_name` (sendmsg to an explicit address).
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
    pub _pad: [u8; 2],
    /// For IOCTL_FILTER: the only ioctl commands recorded (0 = unused slot).
    pub ioctl_cmds: [u32; 2],
    pub ops: [ArgOp; MAX_OPS],
}
assert_size!(SyscallSpec, 48);

#[cfg(feature = "user")]
unsafe impl aya::Pod for SyscallSpec {}

/// Arguments saved at syscall entry, keyed by thread (pid_tgid).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingSyscall {
    pub nr: u32,
    pub _pad: u32,
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
}

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
