//! Maps shared by all probes. Sizes here are defaults; the loader may resize.

use audit_common::{event::ExecScratch, kind::LossCounters};
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};

/// Every event goes through this one ring buffer, in order per CPU.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// Events the probes could not deliver (ring buffer full), per kind id, per CPU.
/// Userspace turns every increase into a `loss` record.
#[map]
pub static LOSS: PerCpuArray<LossCounters> = PerCpuArray::with_max_entries(1, 0);

/// Tgids in scope for the pid-tree mode. The loader adds the root (and its
/// existing descendants); the fork probe adds children; the exit probe removes.
#[map]
pub static TRACKED_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// Scratch for assembling a variable-length exec event (too big for the stack).
#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecScratch> = PerCpuArray::with_max_entries(1, 0);
