//! Load-time configuration the loader writes into the probes' read-only
//! globals. The verifier sees these as constants, so unused branches vanish.

/// How the probes decide whether the current task is audited.
pub mod scope_mode {
    /// Nothing is in scope (default until the loader sets a mode).
    pub const NONE: u32 = 0;
    /// The task's cgroup v2 ancestor at `SCOPE_CGROUP_LEVEL` is `SCOPE_CGROUP_ID`.
    pub const CGROUP: u32 = 1;
    /// The task's tgid is in the `TRACKED_PIDS` map (filled in the kernel on fork).
    pub const PID_TREE: u32 = 2;
}

/// Byte offsets of the kernel struct fields the probes read, resolved by the
/// loader from /sys/kernel/btf/vmlinux so no kernel layout is baked in at build
/// time. A value of `u32::MAX` means "not present on this kernel": the probe
/// then leaves the dependent field zero. Names are `<struct>_<field>`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_real_cred: u32,
    pub task_nsproxy: u32,
    pub task_exit_code: u32,
    pub task_signal: u32,
    pub task_mm: u32,
    pub task_fs: u32,
    pub task_files: u32,
    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_euid: u32,
    pub cred_egid: u32,
    pub nsproxy_mnt_ns: u32,
    pub nsproxy_pid_ns: u32,
    pub mnt_ns_inum: u32,
    pub pid_ns_inum: u32,
    pub signal_live: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub bprm_filename: u32,
    pub bprm_argc: u32,
    pub fs_root: u32,
    pub fs_pwd: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub dentry_parent: u32,
    pub dentry_name: u32,
    pub vfsmount_root: u32,
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub fdtable_max_fds: u32,
    pub file_path: u32,
    pub file_inode: u32,
    pub inode_mode: u32,
    pub _reserved: [u32; 25],
}
crate::assert_size!(KernelOffsets, 256);

impl KernelOffsets {
    pub const MISSING: u32 = u32::MAX;

    pub const fn missing() -> Self {
        let m = Self::MISSING;
        KernelOffsets {
            task_pid: m,
            task_tgid: m,
            task_real_parent: m,
            task_real_cred: m,
            task_nsproxy: m,
            task_exit_code: m,
            task_signal: m,
            task_mm: m,
            task_fs: m,
            task_files: m,
            cred_uid: m,
            cred_gid: m,
            cred_euid: m,
            cred_egid: m,
            nsproxy_mnt_ns: m,
            nsproxy_pid_ns: m,
            mnt_ns_inum: m,
            pid_ns_inum: m,
            signal_live: m,
            mm_arg_start: m,
            mm_arg_end: m,
            bprm_filename: m,
            bprm_argc: m,
            fs_root: m,
            fs_pwd: m,
            path_mnt: m,
            path_dentry: m,
            dentry_parent: m,
            dentry_name: m,
            vfsmount_root: m,
            mount_mnt: m,
            mount_parent: m,
            mount_mountpoint: m,
            files_fdt: m,
            fdtable_fd: m,
            fdtable_max_fds: m,
            file_path: m,
            file_inode: m,
            inode_mode: m,
            _reserved: [0; 25],
        }
    }
}

// SAFETY: plain-old-data, `#[repr(C)]`, no padding (all u32).
#[cfg(feature = "user")]
unsafe impl aya::Pod for KernelOffsets {}
