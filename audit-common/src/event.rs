//! Events as the probes write them into the ring buffer. Every event starts
//! with an [`EventHeader`]; `header.kind` (an [`crate::kind::EventKind`] id)
//! says which struct follows and `header.size` how many bytes the event has
//! in total, trailing variable-length data included.

use crate::assert_size;

pub const COMM_LEN: usize = 16;

/// Who did it: the calling task as the kernel saw it when the event fired.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u32,
    /// Total bytes of this event, header and trailing data included.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns()`: monotonic, counts suspend. Userspace adds the
    /// realtime-minus-boottime offset to get wall-clock ns.
    pub boot_ns: u64,
    /// cgroup v2 id (the inode number of the cgroup directory).
    pub cgroup_id: u64,
    /// Thread id (kernel `task->pid`).
    pub pid: u32,
    /// Process id (kernel `task->tgid`).
    pub tgid: u32,
    /// Process id of the real parent (`task->real_parent->tgid`).
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// Inode numbers of the pid and mount namespaces (as in /proc/PID/ns/*).
    pub pid_ns: u32,
    pub mnt_ns: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}
assert_size!(EventHeader, 80);

impl EventHeader {
    pub const fn zeroed() -> Self {
        EventHeader {
            kind: 0,
            size: 0,
            boot_ns: 0,
            cgroup_id: 0,
            pid: 0,
            tgid: 0,
            ppid: 0,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            pid_ns: 0,
            mnt_ns: 0,
            _pad: 0,
            comm: [0; COMM_LEN],
        }
    }
}

/// Bound on the executed path kept per exec event (PATH_MAX).
pub const EXEC_FILENAME_MAX: usize = 4096;
/// Bound on the argv bytes kept per exec event (NUL-separated, as the kernel
/// lays them out on the new process's stack). Longer argv is flagged
/// [`exec_flags::ARGV_TRUNCATED`], never cut silently.
pub const EXEC_ARGV_MAX: usize = 8192;
pub const EXEC_DATA_MAX: usize = EXEC_FILENAME_MAX + EXEC_ARGV_MAX;

pub mod exec_flags {
    /// The executed path was longer than `EXEC_FILENAME_MAX` and was cut.
    pub const FILENAME_TRUNCATED: u32 = 1;
    /// argv was longer than `EXEC_ARGV_MAX` bytes and was cut.
    pub const ARGV_TRUNCATED: u32 = 2;
    /// The argv memory of the new image could not be read.
    pub const ARGV_UNREADABLE: u32 = 4;
}

/// A successful execve/execveat (sched_process_exec). The header describes
/// the task after the exec (new comm). Followed by `filename_len` bytes of
/// the path as executed, then `argv_len` bytes of argv.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Thread id before the exec (differs from `pid` when a non-leader thread
    /// called execve).
    pub old_pid: u32,
    /// Number of arguments the kernel counted (`bprm->argc`).
    pub argc: u32,
    pub filename_len: u32,
    pub argv_len: u32,
    /// Size of the whole argv area of the new image, before any truncation.
    pub argv_total_len: u32,
    pub flags: u32,
}
assert_size!(ExecEvent, 104);

/// Per-CPU scratch in which the probe assembles an exec event before copying
/// the used prefix into the ring buffer.
#[repr(C)]
pub struct ExecScratch {
    pub event: ExecEvent,
    pub data: [u8; EXEC_DATA_MAX],
}
assert_size!(ExecScratch, 104 + EXEC_DATA_MAX);

pub mod fork_flags {
    /// The child is a thread of the parent's process (CLONE_THREAD).
    pub const THREAD: u32 = 1;
}

/// A fork/clone (sched_process_fork). The header describes the parent.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub child_pid: u32,
    pub child_tgid: u32,
    pub flags: u32,
    pub _pad: u32,
}
assert_size!(ForkEvent, 96);

pub mod exit_flags {
    /// This was the last thread of the process: the process is gone.
    pub const GROUP_DEAD: u32 = 1;
}

/// A task exit (sched_process_exit). The header describes the exiting task.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// Raw `task->exit_code` in wait(2) status layout: exit status in bits
    /// 8..15, or the terminating signal in bits 0..6 and core dump in bit 7.
    pub exit_code: u32,
    pub flags: u32,
}
assert_size!(ExitEvent, 88);

/// Bound on the destination cgroup path kept per migration event.
pub const CGROUP_PATH_MAX: usize = 512;

pub mod migrate_flags {
    /// The migrated process was already in scope (tracked) before it moved.
    pub const WAS_IN_SCOPE: u32 = 1;
    /// The destination is the audited cgroup: the process entered the scope.
    pub const ENTERED_SCOPE: u32 = 2;
    /// The destination path was longer than `CGROUP_PATH_MAX` and was cut.
    pub const PATH_TRUNCATED: u32 = 8;
}

/// A cgroup migration (cgroup:cgroup_attach_task) of an in-scope process, or
/// one made by an in-scope writer, or one into the audited cgroup. The
/// header describes the WRITER (the task that wrote cgroup.procs); the
/// migrated process is `target_pid`. Fixed size: `path_len` bytes of `path`
/// are valid.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupMigrateEvent {
    pub header: EventHeader,
    /// Host pid of the migrated thread-group leader (or thread).
    pub target_pid: u32,
    /// Depth of the destination below its hierarchy root.
    pub dst_level: u32,
    /// Destination cgroup id (inode of its directory on cgroup v2).
    pub dst_id: u64,
    /// cgroup hierarchy id of the destination (0 = cgroup v2).
    pub hierarchy_id: u32,
    pub flags: u32,
    pub path_len: u32,
    pub _pad: u32,
    pub path: [u8; CGROUP_PATH_MAX],
}
assert_size!(CgroupMigrateEvent, 80 + 32 + CGROUP_PATH_MAX);

/// Bound on the path an io_uring OPENAT/OPENAT2 request keeps from
/// submission to completion (longer paths are flagged truncated).
pub const IO_URING_PATH_MAX: usize = 512;
/// Bytes of kernel socket address kept for a CONNECT request.
pub const IO_URING_ADDR_MAX: usize = 128;

pub mod io_uring_flags {
    /// The request asked for no completion on success
    /// (IOSQE_CQE_SKIP_SUCCESS): this record is emitted at submission and
    /// its result is unknown.
    pub const SUBMIT_ONLY: u32 = 1;
    /// The completion says more completions follow (multishot).
    pub const MORE: u32 = 2;
    /// The request failed before submission (io_uring_req_failed).
    pub const INIT_FAILED: u32 = 4;
    /// The path was longer than [`super::IO_URING_PATH_MAX`] and was cut.
    pub const PATH_TRUNCATED: u32 = 8;
    /// A capture did not fit the data area.
    pub const DATA_TRUNCATED: u32 = 16;
}

/// One io_uring request of a ring in scope, at completion
/// (io_uring:io_uring_complete). Same size as [`crate::syscall::SyscallEvent`]
/// so the probes assemble it in the syscall scratch, followed by `data_len`
/// bytes of captures in the syscall capture format. The header describes
/// the task that posted the completion (the owner, or one of its io_uring
/// threads: those are threads of the owner's process).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoUringEvent {
    pub header: EventHeader,
    /// Kernel addresses of the ring and the request: identify a ring within
    /// one boot; never dereferenced by userspace.
    pub ctx: u64,
    pub req: u64,
    pub user_data: u64,
    pub submit_ns: u64,
    /// The completion's result (negative errno on failure).
    pub res: i32,
    pub cflags: u32,
    /// IORING_OP_* (uapi enum io_uring_op).
    pub opcode: u32,
    /// The request's REQ_F_* flags at submission, low 32 bits (the low bits
    /// are the SQE's IOSQE_* flags).
    pub req_flags: u32,
    /// The SQE's fd (or the dirfd of an OPENAT); an index into the fixed
    /// file table when IOSQE_FIXED_FILE is set. Meaningful only for
    /// opcodes that take an fd.
    pub fd: i32,
    /// tgid of the process that created (or first submitted to) the ring.
    pub owner_tgid: u32,
    /// Thread that submitted the request, and whether it was the SQPOLL
    /// kernel thread.
    pub submit_tid: u32,
    pub sq_thread: u32,
    pub flags: u32,
    pub data_len: u32,
    pub _reserved: [u64; 1],
}
assert_size!(IoUringEvent, 160);

/// What the submit probe keeps per request until its completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoUringPending {
    pub ctx: u64,
    pub user_data: u64,
    pub submit_ns: u64,
    pub opcode: u32,
    pub req_flags: u32,
    pub fd: i32,
    pub owner_tgid: u32,
    pub submit_tid: u32,
    pub sq_thread: u32,
    pub flags: u32,
    /// Bytes of `path` (no NUL); 0 = none.
    pub path_len: u32,
    /// Bytes of `addr`; 0 = none.
    pub addr_len: u32,
    pub _pad: u32,
    pub path: [u8; IO_URING_PATH_MAX],
    pub addr: [u8; IO_URING_ADDR_MAX],
}
assert_size!(IoUringPending, 64 + IO_URING_PATH_MAX + IO_URING_ADDR_MAX);

/// Field offsets of the io_uring tracepoints (from their format files) and
/// of the kernel request structure (from BTF), set by the loader.
/// `u32::MAX` = unknown: the dependent capture is skipped.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoUringOffsets {
    pub create_ctx: u32,
    pub submit_ctx: u32,
    pub submit_req: u32,
    pub submit_user_data: u32,
    pub submit_opcode: u32,
    pub submit_flags: u32,
    pub submit_sq_thread: u32,
    pub complete_req: u32,
    pub complete_res: u32,
    pub complete_cflags: u32,
    pub failed_ctx: u32,
    pub failed_req: u32,
    pub failed_user_data: u32,
    pub failed_opcode: u32,
    pub failed_flags: u32,
    /// io_kiocb.file (the request's file, and the first member of every
    /// per-opcode command struct in the same union).
    pub req_file: u32,
    /// io_kiocb.cqe.fd: the SQE's fd, stored at init.
    pub req_cqe_fd: u32,
    /// io_kiocb.async_data.
    pub req_async_data: u32,
    /// io_kiocb.cmd: the per-opcode command struct.
    pub req_cmd: u32,
    /// struct io_open: dfd, filename; struct filename: name.
    pub open_dfd: u32,
    pub open_filename: u32,
    pub filename_name: u32,
    /// struct io_connect.addr_len; struct io_async_msghdr.addr (the
    /// kernel's copy of the address, made at prep).
    pub connect_addr_len: u32,
    pub async_msghdr_addr: u32,
    /// struct io_connect.addr: the user pointer (read when the kernel copy
    /// is not where BTF says).
    pub connect_addr: u32,
    pub _pad: u32,
}
assert_size!(IoUringOffsets, 104);

impl IoUringOffsets {
    pub const fn missing() -> Self {
        let m = u32::MAX;
        IoUringOffsets {
            create_ctx: m,
            submit_ctx: m,
            submit_req: m,
            submit_user_data: m,
            submit_opcode: m,
            submit_flags: m,
            submit_sq_thread: m,
            complete_req: m,
            complete_res: m,
            complete_cflags: m,
            failed_ctx: m,
            failed_req: m,
            failed_user_data: m,
            failed_opcode: m,
            failed_flags: m,
            req_file: m,
            req_cqe_fd: m,
            req_async_data: m,
            req_cmd: m,
            open_dfd: m,
            open_filename: m,
            filename_name: m,
            connect_addr_len: m,
            async_msghdr_addr: m,
            connect_addr: m,
            _pad: 0,
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for IoUringOffsets {}
