//! Read-only globals the loader sets before load (`EbpfLoader::set_global`).
//! Read them with `read_volatile` so the compiler cannot constant-fold the
//! build-time defaults; the verifier then sees the loader's values as constants.

use audit_common::{
    config::{KernelOffsets, scope_mode},
    event::IoUringOffsets,
    syscall::{CompatConfig, SocketOffsets},
};

#[unsafe(no_mangle)]
pub static SCOPE_MODE: u32 = scope_mode::NONE;
/// cgroup v2 level of the audited cgroup (root = 0).
#[unsafe(no_mangle)]
pub static SCOPE_CGROUP_LEVEL: u32 = 0;
/// cgroup v2 id of the audited cgroup.
#[unsafe(no_mangle)]
pub static SCOPE_CGROUP_ID: u64 = 0;
/// Wake userspace only once this many bytes wait in the ring buffer; below
/// that it drains on its own timer (no wakeup per event).
#[unsafe(no_mangle)]
pub static WAKEUP_BYTES: u64 = 1 << 20;
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets::missing();

/// Socket fields for peer addresses.
#[unsafe(no_mangle)]
pub static SOCKET_OFFSETS: SocketOffsets = SocketOffsets::missing();
/// The compat-syscall check and argument registers.
#[unsafe(no_mangle)]
pub static COMPAT: CompatConfig = CompatConfig::missing();
/// io_uring tracepoint fields and request-structure offsets.
#[unsafe(no_mangle)]
pub static IO_URING: IoUringOffsets = IoUringOffsets::missing();

#[inline(always)]
pub fn get<T: Copy>(v: &T) -> T {
    unsafe { core::ptr::read_volatile(v) }
}
