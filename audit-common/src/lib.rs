//! Wire types shared by the eBPF probes (`audit-ebpf`) and the userspace loader
//! (`audit-user`). Everything here is `#[repr(C)]`, has a compile-time size
//! assertion, and never changes meaning once released: event kinds carry fixed
//! numeric ids, like Kunai's `kunai-common`.
#![no_std]

pub mod config;
pub mod event;
pub mod kind;
pub mod lsm;
pub mod syscall;

/// Compile-time check that a wire struct has exactly the size both sides assume.
#[macro_export]
macro_rules! assert_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $n);
    };
}
