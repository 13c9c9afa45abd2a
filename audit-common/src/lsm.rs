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
    /// `file_open(struct file *)`: args[0] = f_flags, args[1] = f_mode,
    /// args[2] = the [`super::denial`] reason when denied; a
    /// PATH_COMPONENTS capture (slot RET) of the opened file.
    pub const FILE_OPEN: u32 = 1;
    /// `socket_connect(struct socket *, struct sockaddr *, int addrlen)`:
    /// args[0] = addrlen; a SOCKADDR capture (slot 1) of the address.
    pub const SOCKET_CONNECT: u32 = 2;
    /// Enforcement denials (only denials are recorded; allowed calls stay
    /// with the tracepoint records). args[0] = target tgid, args[1] = signal.
    pub const TASK_KILL: u32 = 3;
    /// args[0] = target tgid, args[1] = ptrace mode.
    pub const PTRACE_ACCESS_CHECK: u32 = 4;
    /// args[0] = bpf command.
    pub const BPF: u32 = 5;
    /// Module loading (kernel_read_file / kernel_load_data): args[0] = the
    /// kernel's read/load id.
    pub const MODULE_LOAD: u32 = 6;
    /// `path_unlink(const struct path *dir, struct dentry *)`: a
    /// PATH_COMPONENTS capture (slot 0) of the entry removed.
    pub const PATH_UNLINK: u32 = 7;
    /// `path_mkdir(dir, dentry, umode_t mode)`: args[0] = mode; a
    /// PATH_COMPONENTS capture (slot 0) of the new directory.
    pub const PATH_MKDIR: u32 = 8;
    /// `path_rename(old_dir, old_dentry, new_dir, new_dentry, flags)`:
    /// args[0] = flags; PATH_COMPONENTS captures of the old (slot 0) and
    /// new (slot 1) entry.
    pub const PATH_RENAME: u32 = 9;
    /// `socket_bind(struct socket *, struct sockaddr *, int addrlen)`: as
    /// SOCKET_CONNECT (args[0] = addrlen, SOCKADDR capture in slot 1).
    pub const SOCKET_BIND: u32 = 10;
}

/// Why `file_open` denied (args[2] of a denied FILE_OPEN event).
pub mod denial {
    /// The store's or the key directory's inode, or a file directly in one.
    pub const PROTECTED_INODE: u64 = 1;
    /// A write-open of a cgroup v2 `cgroup.procs`/`cgroup.threads` outside
    /// the audited cgroup (or any, in pid-tree scope): moving a process
    /// out of the sandbox.
    pub const CGROUP_OUTSIDE_SCOPE: u64 = 2;
}

/// Key of the `LSM_PROTECTED` map: an inode by device and number. In-scope
/// processes cannot open it, nor any file directly inside it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InodeKey {
    /// `inode->i_sb->s_dev` (the kernel's internal dev_t: major << 20 | minor).
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}
crate::assert_size!(InodeKey, 16);

// SAFETY: plain-old-data, `#[repr(C)]`, no implicit padding.
#[cfg(feature = "user")]
unsafe impl aya::Pod for InodeKey {}

/// Slots of the `LSM_AGENT` map.
pub mod agent {
    /// The agent's tgid: in-scope processes may not signal or ptrace it.
    /// 0 = enforcement off.
    pub const TGID: u32 = 0;
    /// Non-zero: file_open records opens (the file family is audited);
    /// otherwise the hook only enforces.
    pub const RECORD_OPENS: u32 = 1;
    pub const SLOTS: u32 = 2;
}

/// Indices into the loader-set `LSM_OFFSETS` global (`[u32; LSM_OFFSETS]`),
/// resolved from kernel BTF at load time like `KernelOffsets`.
pub mod offset {
    pub const FILE_F_FLAGS: usize = 0;
    pub const FILE_F_MODE: usize = 1;
    pub const INODE_I_INO: usize = 2;
    pub const INODE_I_SB: usize = 3;
    pub const SB_S_DEV: usize = 4;
    pub const DENTRY_D_INODE: usize = 5;
    pub const SB_S_MAGIC: usize = 6;
    pub const COUNT: usize = 8;
}

/// Slots of the `LSM_SELFTEST` map: the detection program counts its runs
/// for one tgid, so the loader can tell "loads" from "loads and fires".
pub mod selftest {
    pub const TGID: u32 = 0;
    pub const HITS: u32 = 1;
}
