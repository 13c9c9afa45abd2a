//! Bounds the verifier can see on every kernel.
//!
//! LLVM drops an `& mask` it can prove changes nothing (the value was
//! range-checked just before). Newer verifiers follow the range check, but
//! 6.1's loses it: when the value is spilled to the stack and filled again,
//! or when a signed and an unsigned check leave contradictory bounds on a
//! path it cannot prove dead. It then refuses the pointer arithmetic ("math
//! between map_value pointer and register with unbounded min value", "R0
//! invalid mem access 'scalar'"). Reading the value through `read_volatile`
//! hides it from LLVM, so the mask stays right before the use.

/// `v`, read afresh: a check made on the result is made on the register
/// that is used next, not on a copy LLVM spilled before the check.
#[inline(always)]
pub fn opaque(v: usize) -> usize {
    unsafe { core::ptr::read_volatile(&v) }
}

/// `v & mask`, with the mask kept in the program.
#[inline(always)]
pub fn masked(v: usize, mask: usize) -> usize {
    unsafe { core::ptr::read_volatile(&v) & mask }
}
