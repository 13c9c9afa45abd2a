//! Checks run before touching the kernel, each failing with a message that
//! says what is missing and how to get it.

use std::path::Path;

use anyhow::{Result, bail};

use crate::btf::KERNEL_BTF;

pub fn require_root() -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "sandbox-audit must run as root: it loads eBPF programs and manages cgroups (try sudo)"
        );
    }
    Ok(())
}

pub fn require_btf() -> Result<()> {
    if !Path::new(KERNEL_BTF).exists() {
        bail!(
            "kernel BTF not found at {KERNEL_BTF}: this kernel was built without CONFIG_DEBUG_INFO_BTF, \
             which sandbox-audit needs to find struct offsets portably"
        );
    }
    Ok(())
}

/// Everything the process probes need.
pub fn check() -> Result<()> {
    require_root()?;
    require_btf()
}
