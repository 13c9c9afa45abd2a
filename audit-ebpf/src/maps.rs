//! Maps shared by all probes. Sizes here are defaults; the loader may resize.

use audit_common::{
    event::{ExecScratch, IoUringPending},
    kind::LossCounters,
    syscall::{
        FdBitmap, MAX_COMPAT_NR, MAX_SYSCALL_NR, PendingSyscall, SyscallScratch, SyscallSpec,
    },
};
use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};

/// Every event goes through this one ring buffer, in order per CPU.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// Events the probes could not deliver (ring buffer full), per kind id, per CPU.
/// Userspace turns every increase into a `loss` record.
#[map]
pub static LOSS: PerCpuArray<LossCounters> = PerCpuArray::with_max_entries(1, 0);

/// Tgids known to be in scope. In pid-tree mode this IS the scope; in cgroup
/// mode it tells a kill aimed inside the sandbox from one aimed outside.
/// The loader seeds it; the fork probe adds children; the exit probe removes.
#[map]
pub static TRACKED_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// Scratch for assembling a variable-length exec event (too big for the stack).
#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecScratch> = PerCpuArray::with_max_entries(1, 0);

/// What to capture per syscall number; filled by the loader.
#[map]
pub static SPECS: Array<SyscallSpec> = Array::with_max_entries(MAX_SYSCALL_NR, 0);

/// What to capture per i386 syscall number (ia32 compat syscalls); filled
/// by the loader, every unaudited number with a generic spec.
#[map]
pub static COMPAT_SPECS: Array<SyscallSpec> = Array::with_max_entries(MAX_COMPAT_NR, 0);

/// io_uring rings (ctx address) created or used by a task in scope → the
/// owner's tgid. Their requests are audited wherever they run (SQPOLL and
/// io-wq threads, or the owner after it left the scope).
#[map]
pub static IOU_RINGS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(4096, 0);

/// io_uring requests (io_kiocb address) submitted on an audited ring and not
/// yet completed.
#[map]
pub static IOU_PENDING: LruHashMap<u64, IoUringPending> = LruHashMap::with_max_entries(8192, 0);

/// Scratch for assembling an `IoUringPending` (too big for the stack).
#[map]
pub static IOU_SCRATCH: PerCpuArray<IoUringPending> = PerCpuArray::with_max_entries(1, 0);

/// Arguments of syscalls in flight, per thread (pid_tgid), from enter to exit.
#[map]
pub static PENDING: HashMap<u64, PendingSyscall> = HashMap::with_max_entries(16384, 0);

/// Per process (tgid): fds opened for writing whose first write is still to
/// be recorded. Allocated on first use.
#[map]
pub static FD_MARKS: HashMap<u32, FdBitmap> = HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);

/// An all-zero bitmap to insert from (512 bytes do not fit the BPF stack).
#[map]
pub static ZERO_BITMAP: Array<FdBitmap> = Array::with_max_entries(1, 0);

/// Scratch for assembling a syscall event.
#[map]
pub static SYSCALL_SCRATCH: PerCpuArray<SyscallScratch> = PerCpuArray::with_max_entries(1, 0);

/// State of the `bpf_loop` callbacks (capture ops, dentry walks, close_range).
#[repr(C)]
pub struct LoopState {
    pub ops: crate::syscalls::OpCtx,
    pub walk: crate::paths::Walk,
    pub clear: crate::syscalls::ClearRange,
}

#[map]
pub static LOOP_STATE: PerCpuArray<LoopState> = PerCpuArray::with_max_entries(1, 0);
