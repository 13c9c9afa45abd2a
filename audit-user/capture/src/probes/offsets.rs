//! Resolves the kernel struct offsets the probes need from this kernel's BTF.

use audit_common::config::KernelOffsets;
use thiserror::Error;

use crate::btf::{Btf, MemberError};

/// A field without which events cannot be attributed is not in this kernel.
#[derive(Debug, Error)]
#[error("this kernel's BTF lacks {struct_name}.{member}, which the probes need")]
pub struct MissingField {
    pub struct_name: &'static str,
    pub member: &'static str,
    #[source]
    pub source: MemberError,
}

const REQUIRED: bool = true;
const OPTIONAL: bool = false;

/// Returns the offsets and the optional fields this kernel lacks. Required
/// fields are those without which events cannot be attributed: a kernel
/// lacking one is refused at startup rather than producing wrong records.
/// Optional ones only leave their record field blank.
pub fn resolve(btf: &Btf) -> Result<(KernelOffsets, Vec<String>), MissingField> {
    let mut o = KernelOffsets::missing();
    let rows: [(&mut u32, &str, &str, bool); 39] = [
        (&mut o.task_pid, "task_struct", "pid", REQUIRED),
        (&mut o.task_tgid, "task_struct", "tgid", REQUIRED),
        (
            &mut o.task_real_parent,
            "task_struct",
            "real_parent",
            REQUIRED,
        ),
        (&mut o.task_real_cred, "task_struct", "real_cred", REQUIRED),
        (&mut o.task_nsproxy, "task_struct", "nsproxy", OPTIONAL),
        (&mut o.task_exit_code, "task_struct", "exit_code", REQUIRED),
        (&mut o.task_signal, "task_struct", "signal", REQUIRED),
        (&mut o.task_mm, "task_struct", "mm", REQUIRED),
        (&mut o.task_fs, "task_struct", "fs", REQUIRED),
        (&mut o.task_files, "task_struct", "files", REQUIRED),
        (&mut o.cred_uid, "cred", "uid", REQUIRED),
        (&mut o.cred_gid, "cred", "gid", OPTIONAL),
        (&mut o.cred_euid, "cred", "euid", REQUIRED),
        (&mut o.cred_egid, "cred", "egid", OPTIONAL),
        (&mut o.nsproxy_mnt_ns, "nsproxy", "mnt_ns", OPTIONAL),
        (
            &mut o.nsproxy_pid_ns,
            "nsproxy",
            "pid_ns_for_children",
            OPTIONAL,
        ),
        (&mut o.mnt_ns_inum, "mnt_namespace", "ns.inum", OPTIONAL),
        (&mut o.pid_ns_inum, "pid_namespace", "ns.inum", OPTIONAL),
        (&mut o.signal_live, "signal_struct", "live", REQUIRED),
        (&mut o.mm_arg_start, "mm_struct", "arg_start", REQUIRED),
        (&mut o.mm_arg_end, "mm_struct", "arg_end", REQUIRED),
        (&mut o.bprm_filename, "linux_binprm", "filename", REQUIRED),
        (&mut o.bprm_argc, "linux_binprm", "argc", OPTIONAL),
        (&mut o.fs_root, "fs_struct", "root", REQUIRED),
        (&mut o.fs_pwd, "fs_struct", "pwd", REQUIRED),
        (&mut o.path_mnt, "path", "mnt", REQUIRED),
        (&mut o.path_dentry, "path", "dentry", REQUIRED),
        (&mut o.dentry_parent, "dentry", "d_parent", REQUIRED),
        (&mut o.dentry_name, "dentry", "d_name.name", REQUIRED),
        (&mut o.vfsmount_root, "vfsmount", "mnt_root", REQUIRED),
        (&mut o.mount_mnt, "mount", "mnt", REQUIRED),
        (&mut o.mount_parent, "mount", "mnt_parent", REQUIRED),
        (&mut o.mount_mountpoint, "mount", "mnt_mountpoint", REQUIRED),
        (&mut o.files_fdt, "files_struct", "fdt", REQUIRED),
        (&mut o.fdtable_fd, "fdtable", "fd", REQUIRED),
        (&mut o.fdtable_max_fds, "fdtable", "max_fds", REQUIRED),
        (&mut o.file_path, "file", "f_path", REQUIRED),
        (&mut o.file_inode, "file", "f_inode", OPTIONAL),
        (&mut o.inode_mode, "inode", "i_mode", OPTIONAL),
    ];
    let mut missing = Vec::new();
    for (slot, st, member, required) in rows {
        match btf.member_offset(st, member) {
            Ok(off) => *slot = off,
            Err(source) if required => {
                return Err(MissingField {
                    struct_name: st,
                    member,
                    source,
                });
            }
            Err(_) => missing.push(format!("{st}.{member}")),
        }
    }
    Ok((o, missing))
}
#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::btf::KERNEL_BTF;

    #[test]
    fn this_kernel_has_every_field() {
        let btf = Btf::from_file(Path::new(KERNEL_BTF)).unwrap();
        let (o, missing) = resolve(&btf).unwrap();
        assert_eq!(missing, Vec::<String>::new());
        assert_eq!(
            o.path_dentry,
            o.path_mnt + 8,
            "struct path is {{mnt, dentry}}"
        );
    }
}
