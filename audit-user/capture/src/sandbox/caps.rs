//! Capabilities of the sandbox: what is dropped from the bounding,
//! effective, permitted, inheritable and ambient sets before CMD runs.

use std::io;

/// (name, number) of every capability the sandbox loses. The first ten are
/// what reaches the recorder or the kernel directly (mount/unmount and
/// namespaces, BPF, perf, ptrace, chattr, modules, raw I/O, handle-based
/// opens, reboot, MAC policy); the others would let root in the sandbox make
/// device nodes for the disk, change the clock the log's timestamps use, read
/// kernel logs, or reconfigure kernel auditing.
pub const DROPPED: &[(&str, u32)] = &[
    ("CAP_SYS_ADMIN", 21),
    ("CAP_BPF", 39),
    ("CAP_PERFMON", 38),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_SYS_BOOT", 22),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MKNOD", 27),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYSLOG", 34),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

/// All capability names by number (0..=40), for the `start` record.
pub const NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Names of the capabilities the sandbox's bounding set keeps, given the
/// bounding set of this process (bit mask).
pub fn kept(bounding: u64) -> Vec<&'static str> {
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            bounding & (1 << i) != 0 && !DROPPED.iter().any(|(_, n)| *n as usize == *i)
        })
        .map(|(_, n)| *n)
        .collect()
}

/// This process's bounding set, as a bit mask (prctl PR_CAPBSET_READ).
pub fn bounding_set() -> u64 {
    let mut mask = 0;
    for cap in 0..64u64 {
        // SAFETY: PR_CAPBSET_READ only reads.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) };
        if rc < 0 {
            break;
        }
        if rc == 1 {
            mask |= 1 << cap;
        }
    }
    mask
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Drops [`DROPPED`] from the bounding set (needs CAP_SETPCAP, so call it
/// before switching user).
pub fn drop_bounding() -> io::Result<()> {
    for (_, cap) in DROPPED {
        // SAFETY: plain prctl. EINVAL: this kernel does not know the cap.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, *cap as libc::c_ulong, 0, 0, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Drops [`DROPPED`] from the effective, permitted and inheritable sets and
/// clears the ambient set.
pub fn drop_process_sets() -> io::Result<()> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: valid header and two data structs (version 3 layout).
    check(unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) })?;
    for (_, cap) in DROPPED {
        let (word, bit) = ((*cap / 32) as usize, 1u32 << (cap % 32));
        data[word].effective &= !bit;
        data[word].permitted &= !bit;
        data[word].inheritable &= !bit;
    }
    // SAFETY: as above.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) })?;
    // SAFETY: plain prctl.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    check(rc as libc::c_long)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_agree() {
        for (name, nr) in DROPPED {
            assert_eq!(NAMES[*nr as usize], *name);
        }
        let k = kept(u64::MAX);
        assert!(k.contains(&"CAP_CHOWN") && k.contains(&"CAP_DAC_OVERRIDE"));
        assert!(!k.contains(&"CAP_SYS_ADMIN") && !k.contains(&"CAP_BPF"));
        assert_eq!(k.len(), NAMES.len() - DROPPED.len());
    }
}
