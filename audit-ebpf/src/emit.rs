//! Getting events out: ring-buffer output with batched wakeups, and loss
//! accounting when the ring buffer is full.

use audit_common::kind::KIND_SLOTS;
use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};

use crate::{
    globals,
    maps::{EVENTS, LOSS},
};

/// Wake the reader only when enough data is waiting; otherwise it drains on
/// its own timer. One wakeup per event caps the reader at ~110k events/s.
#[inline(always)]
pub fn wakeup_flags() -> u64 {
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    if waiting >= globals::get(&globals::WAKEUP_BYTES) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Counts one event of `slot` (a kind id or a `loss_slot`) that could not be
/// delivered.
#[inline(always)]
pub fn count_loss(slot: u32) {
    if let Some(c) = LOSS.get_ptr_mut(0) {
        let counts = unsafe { &mut (*c).counts };
        if let Some(n) = counts.get_mut((slot % KIND_SLOTS) as usize) {
            *n += 1;
        }
    }
}

/// Reserves and submits a fixed-size event; counts a loss when the ring
/// buffer is full.
#[inline(always)]
pub fn emit_fixed<T: 'static>(kind: u32, event: T) {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(wakeup_flags());
        }
        None => count_loss(kind),
    }
}

/// Copies the first `len` bytes of `buf` (a map value) into the ring buffer.
#[inline(always)]
pub fn emit_bytes<const N: usize>(kind: u32, buf: &[u8; N], len: usize) {
    // The wakeup query first: a helper call between the size check and the
    // output would make LLVM keep `len` on the stack across it, and 6.1's
    // verifier forgets the bound of a value spilled before its check.
    let flags = wakeup_flags();
    let Some(bytes) = buf.get(..crate::bound::opaque(len)) else {
        count_loss(kind);
        return;
    };
    if EVENTS.output::<[u8]>(bytes, flags).is_err() {
        count_loss(kind);
    }
}
