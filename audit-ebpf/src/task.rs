//! Reading kernel task state through offsets resolved from BTF at load time.

use audit_common::{config::KernelOffsets, event::EventHeader};
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel,
    generated::{bpf_get_current_cgroup_id, bpf_get_current_task, bpf_ktime_get_boot_ns},
};

use crate::globals::{self, OFFSETS};

/// Reads a `T` at `base + off`, or `None` when the field is unknown on this
/// kernel, the base pointer is null, or the read faults.
#[inline(always)]
pub fn read_at<T: Copy>(base: u64, off: u32) -> Option<T> {
    if base == 0 || off == KernelOffsets::MISSING {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T).ok() }
}

#[inline(always)]
pub fn current_task() -> u64 {
    unsafe { bpf_get_current_task() }
}

/// Fills the "who" part of an event from the current task.
#[inline(always)]
pub fn fill_header(h: &mut EventHeader, kind: u32, size: u32) {
    let off = |f: &u32| globals::get(f);
    let task = current_task();
    let pid_tgid = bpf_get_current_pid_tgid();
    h.kind = kind;
    h.size = size;
    h.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    h.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    h.pid = pid_tgid as u32;
    h.tgid = (pid_tgid >> 32) as u32;

    let parent: u64 = read_at(task, off(&OFFSETS.task_real_parent)).unwrap_or(0);
    h.ppid = read_at(parent, off(&OFFSETS.task_tgid)).unwrap_or(0);

    let cred: u64 = read_at(task, off(&OFFSETS.task_real_cred)).unwrap_or(0);
    h.uid = read_at(cred, off(&OFFSETS.cred_uid)).unwrap_or(u32::MAX);
    h.gid = read_at(cred, off(&OFFSETS.cred_gid)).unwrap_or(u32::MAX);
    h.euid = read_at(cred, off(&OFFSETS.cred_euid)).unwrap_or(u32::MAX);
    h.egid = read_at(cred, off(&OFFSETS.cred_egid)).unwrap_or(u32::MAX);

    let nsproxy: u64 = read_at(task, off(&OFFSETS.task_nsproxy)).unwrap_or(0);
    let mnt_ns: u64 = read_at(nsproxy, off(&OFFSETS.nsproxy_mnt_ns)).unwrap_or(0);
    h.mnt_ns = read_at(mnt_ns, off(&OFFSETS.mnt_ns_inum)).unwrap_or(0);
    let pid_ns: u64 = read_at(nsproxy, off(&OFFSETS.nsproxy_pid_ns)).unwrap_or(0);
    h.pid_ns = read_at(pid_ns, off(&OFFSETS.pid_ns_inum)).unwrap_or(0);
    h._pad = 0;
    h.comm = bpf_get_current_comm().unwrap_or([0; 16]);
}
