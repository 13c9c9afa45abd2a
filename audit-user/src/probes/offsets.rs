//! Resolves the kernel struct offsets the probes need from this kernel's BTF.

use anyhow::{Context, Result};
use audit_common::config::KernelOffsets;

use crate::btf::Btf;

/// Fields without which the probes cannot attribute an event: a kernel
/// lacking them is refused at startup rather than producing wrong records.
const REQUIRED: &[(&str, &str)] = &[
    ("task_struct", "pid"),
    ("task_struct", "tgid"),
    ("task_struct", "real_parent"),
    ("task_struct", "real_cred"),
    ("task_struct", "exit_code"),
    ("task_struct", "signal"),
    ("task_struct", "mm"),
    ("cred", "uid"),
    ("cred", "euid"),
    ("signal_struct", "live"),
    ("mm_struct", "arg_start"),
    ("mm_struct", "arg_end"),
    ("linux_binprm", "filename"),
];

pub fn resolve(btf: &Btf) -> Result<(KernelOffsets, Vec<String>)> {
    for (s, f) in REQUIRED {
        btf.member_offset(s, f)
            .with_context(|| format!("this kernel's BTF lacks {s}.{f}, which the probes need"))?;
    }
    let mut missing = Vec::new();
    let mut get = |s: &str, f: &str| match btf.member_offset(s, f) {
        Ok(off) => off,
        Err(_) => {
            missing.push(format!("{s}.{f}"));
            KernelOffsets::MISSING
        }
    };
    let offsets = KernelOffsets {
        task_pid: get("task_struct", "pid"),
        task_tgid: get("task_struct", "tgid"),
        task_real_parent: get("task_struct", "real_parent"),
        task_real_cred: get("task_struct", "real_cred"),
        task_nsproxy: get("task_struct", "nsproxy"),
        task_exit_code: get("task_struct", "exit_code"),
        task_signal: get("task_struct", "signal"),
        task_mm: get("task_struct", "mm"),
        cred_uid: get("cred", "uid"),
        cred_gid: get("cred", "gid"),
        cred_euid: get("cred", "euid"),
        cred_egid: get("cred", "egid"),
        nsproxy_mnt_ns: get("nsproxy", "mnt_ns"),
        nsproxy_pid_ns: get("nsproxy", "pid_ns_for_children"),
        mnt_ns_inum: get("mnt_namespace", "ns.inum"),
        pid_ns_inum: get("pid_namespace", "ns.inum"),
        signal_live: get("signal_struct", "live"),
        mm_arg_start: get("mm_struct", "arg_start"),
        mm_arg_end: get("mm_struct", "arg_end"),
        bprm_filename: get("linux_binprm", "filename"),
        bprm_argc: get("linux_binprm", "argc"),
        _reserved: [0; 11],
    };
    Ok((offsets, missing))
}
