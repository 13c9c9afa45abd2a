//! LSM-made events. BPF LSM programs emit [`crate::syscall::SyscallEvent`]s
//! (same layout, same captures) with [`FROM_LSM`] set in `flags`; `nr` then
//! holds a [`hook`] id instead of a syscall number, `ret` the hook's verdict
//! (0 allowed, negative errno denied) and `args` hook-specific values.

/// `SyscallEvent::flags` bit: the event was made by an LSM hook.
pub const FROM_LSM: u32 = 1 << 31;
/// `SyscallEvent::flags` bit: the hook denied the operation (enforcement).
pub const DENIED: u32 = 1 << 30;

/// Hook ids, in `SyscallEvent::nr` of LSM-made events. Never renumber.
pub mod hook {
    /// `file_open(struct file *)`: args[0] = f_flags, args[1] = f_mode; a
    /// PATH_COMPONENTS capture (slot RET) of the opened file.
    pub const FILE_OPEN: u32 = 1;
    /// `socket_connect(struct socket *, struct sockaddr *, int addrlen)`:
    /// args[0] = addrlen; a SOCKADDR capture (slot 1) of the address.
    pub const SOCKET_CONNECT: u32 = 2;
}

/// Indices into the loader-set `LSM_OFFSETS` global (`[u32; LSM_OFFSETS]`),
/// resolved from kernel BTF at load time like `KernelOffsets`.
pub mod offset {
    pub const FILE_F_FLAGS: usize = 0;
    pub const FILE_F_MODE: usize = 1;
    pub const COUNT: usize = 4;
}

/// Slots of the `LSM_SELFTEST` map: the detection program counts its runs
/// for one tgid, so the loader can tell "loads" from "loads and fires".
pub mod selftest {
    pub const TGID: u32 = 0;
    pub const HITS: u32 = 1;
}
