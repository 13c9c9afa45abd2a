//! Checks run before touching the kernel, each failing with a message that
//! says what is missing and how to get it.

use std::path::Path;

use thiserror::Error;

use crate::btf::KERNEL_BTF;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PreflightError {
    #[error(
        "sandbox-audit must run as root: it loads eBPF programs and manages cgroups (try sudo)"
    )]
    NotRoot,
    #[error(
        "kernel BTF not found at {KERNEL_BTF}: this kernel was built without CONFIG_DEBUG_INFO_BTF, \
         which sandbox-audit needs to find struct offsets portably"
    )]
    NoBtf,
}

pub fn require_root() -> Result<(), PreflightError> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(PreflightError::NotRoot);
    }
    Ok(())
}

pub fn require_btf() -> Result<(), PreflightError> {
    if !Path::new(KERNEL_BTF).exists() {
        return Err(PreflightError::NoBtf);
    }
    Ok(())
}

/// Everything the process probes need.
pub fn check() -> Result<(), PreflightError> {
    require_root()?;
    require_btf()
}
