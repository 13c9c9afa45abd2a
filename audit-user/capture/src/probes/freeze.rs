//! Recorder integrity: once the loader has written the syscall specs and
//! seeded the scope, no process may change the probes' maps from userspace
//! (someone who got hold of a map fd could otherwise zero the spec table and
//! go unseen). BPF_MAP_FREEZE forbids every later write through the bpf()
//! syscall, for ever; the probes themselves keep updating their own maps.
//! aya already freezes `.rodata` (the scope and offsets globals).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use aya::{Ebpf, maps::Map};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("freezing eBPF map {map}")]
pub struct FreezeError {
    pub map: String,
    #[source]
    pub source: std::io::Error,
}

const BPF_MAP_FREEZE: libc::c_long = 22;

/// bpf(BPF_MAP_FREEZE, { map_fd }).
pub fn freeze(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    // The attr union is larger; the kernel zero-checks the tail it reads up
    // to the size we pass, so pass only the map_fd member (8 bytes, padded).
    let attr: [u32; 2] = [fd.as_raw_fd() as u32, 0];
    // SAFETY: attr is valid for its size for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_FREEZE,
            attr.as_ptr(),
            std::mem::size_of_val(&attr) as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Freezes every map of the object except the ring buffer (which has no
/// userspace write path). Returns the names frozen.
pub fn freeze_maps(ebpf: &Ebpf) -> Result<Vec<String>, FreezeError> {
    let mut frozen = Vec::new();
    for (name, map) in ebpf.maps() {
        let data = match map {
            Map::Array(d)
            | Map::HashMap(d)
            | Map::PerCpuArray(d)
            | Map::PerCpuHashMap(d)
            | Map::LruHashMap(d) => d,
            _ => continue,
        };
        // aya froze .rodata itself at load; a second freeze says EBUSY.
        if name.starts_with('.') {
            continue;
        }
        freeze(data.fd().as_fd()).map_err(|source| FreezeError {
            map: name.to_string(),
            source,
        })?;
        frozen.push(name.to_string());
    }
    frozen.sort();
    Ok(frozen)
}
