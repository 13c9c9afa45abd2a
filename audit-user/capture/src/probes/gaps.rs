//! The probes that close the syscall entry's blind spots: io_uring
//! requests (io_uring:* tracepoints) and compat syscalls (the raw
//! sys_enter/sys_exit dispatcher's pt_regs and TS_COMPAT offsets, and the
//! i386 spec table), plus the socket offsets for connected-socket peers.
//! Every kernel offset comes from BTF or a tracepoint format file at load.

use audit_common::{
    event::IoUringOffsets,
    syscall::{CompatConfig, SocketOffsets, SyscallSpec},
};
use aya::{Ebpf, maps::Array};

use super::{
    attach::{Hooks, load_and_attach},
    error::LoadError,
    tracefs, typed_map,
};
use crate::{
    btf::Btf,
    syscalls::{Family, ia32},
};

/// x86's TS_COMPAT thread status bit (arch/x86/include/asm/thread_info.h,
/// unchanged since 2.6.x; a #define, so not in BTF). The compat integration
/// test proves it on the running kernel.
const TS_COMPAT: u32 = 0x0002;

fn opt(btf: &Btf, st: &str, member: &str, missing: &mut Vec<String>) -> u32 {
    match btf.member_offset(st, member) {
        Ok(o) => o,
        Err(_) => {
            missing.push(format!("{st}.{member}"));
            u32::MAX
        }
    }
}

pub fn socket_offsets(btf: &Btf, missing: &mut Vec<String>) -> SocketOffsets {
    SocketOffsets {
        file_private_data: opt(btf, "file", "private_data", missing),
        socket_sk: opt(btf, "socket", "sk", missing),
        sk_family: opt(btf, "sock", "__sk_common.skc_family", missing),
        sk_dport: opt(btf, "sock", "__sk_common.skc_dport", missing),
        sk_daddr: opt(btf, "sock", "__sk_common.skc_daddr", missing),
        sk_v6_daddr: opt(btf, "sock", "__sk_common.skc_v6_daddr", missing),
    }
}

/// The compat check and registers; `None` on a kernel without them (not
/// x86_64), where compat syscalls are then not audited (said at startup).
pub fn compat_config(btf: &Btf, missing: &mut Vec<String>) -> Option<CompatConfig> {
    let mut c = CompatConfig::missing();
    let mut local = Vec::new();
    c.task_ti_status = opt(btf, "task_struct", "thread_info.status", &mut local);
    for (slot, r) in c
        .regs_ia32
        .iter_mut()
        .zip(["bx", "cx", "dx", "si", "di", "bp"])
    {
        *slot = opt(btf, "pt_regs", r, &mut local);
    }
    for (slot, r) in c
        .regs_64
        .iter_mut()
        .zip(["di", "si", "dx", "r10", "r8", "r9"])
    {
        *slot = opt(btf, "pt_regs", r, &mut local);
    }
    c.regs_orig_ax = opt(btf, "pt_regs", "orig_ax", &mut local);
    if !local.is_empty() {
        missing.extend(local);
        return None;
    }
    c.ts_compat = TS_COMPAT;
    c.socketcall_nr = ia32::SOCKETCALL_NR;
    let (map, nargs) = ia32::socketcall_map();
    c.socketcall_map = map;
    c.socketcall_nargs = nargs;
    Some(c)
}

/// Tracepoint fields from the io_uring format files, request-structure
/// offsets from BTF. `None` when this kernel has no io_uring tracepoints.
pub fn io_uring_offsets(btf: &Btf, missing: &mut Vec<String>) -> Option<IoUringOffsets> {
    let fmt = |ev: &str| tracefs::event_format("io_uring", ev);
    let (create, submit, complete, failed) = (
        fmt("io_uring_create")?,
        fmt("io_uring_submit_req")?,
        fmt("io_uring_complete")?,
        fmt("io_uring_req_failed")?,
    );
    let tp = |f: &str, field: &str, missing: &mut Vec<String>| match tracefs::field_offset(f, field)
    {
        Some(o) => o as u32,
        None => {
            missing.push(format!("io_uring tracepoint field {field}"));
            u32::MAX
        }
    };
    let m = missing;
    Some(IoUringOffsets {
        create_ctx: tp(&create, "ctx", m),
        submit_ctx: tp(&submit, "ctx", m),
        submit_req: tp(&submit, "req", m),
        submit_user_data: tp(&submit, "user_data", m),
        submit_opcode: tp(&submit, "opcode", m),
        submit_flags: tp(&submit, "flags", m),
        submit_sq_thread: tp(&submit, "sq_thread", m),
        complete_req: tp(&complete, "req", m),
        complete_res: tp(&complete, "res", m),
        complete_cflags: tp(&complete, "cflags", m),
        failed_ctx: tp(&failed, "ctx", m),
        failed_req: tp(&failed, "req", m),
        failed_user_data: tp(&failed, "user_data", m),
        failed_opcode: tp(&failed, "opcode", m),
        failed_flags: tp(&failed, "flags", m),
        req_file: opt(btf, "io_kiocb", "file", m),
        req_cqe_fd: opt(btf, "io_kiocb", "cqe.fd", m),
        req_async_data: opt(btf, "io_kiocb", "async_data", m),
        req_cmd: opt(btf, "io_kiocb", "cmd", m),
        open_dfd: opt(btf, "io_open", "dfd", m),
        open_filename: opt(btf, "io_open", "filename", m),
        filename_name: opt(btf, "filename", "name", m),
        connect_addr_len: opt(btf, "io_connect", "addr_len", m),
        async_msghdr_addr: opt(btf, "io_async_msghdr", "addr", m),
        connect_addr: opt(btf, "io_connect", "addr", m),
        _pad: 0,
    })
}

/// (program, io_uring tracepoint)
const IO_URING_PROGRAMS: &[(&str, &str)] = &[
    ("iou_create", "io_uring_create"),
    ("iou_submit", "io_uring_submit_req"),
    ("iou_failed", "io_uring_req_failed"),
    ("iou_complete", "io_uring_complete"),
];

pub fn attach_io_uring(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    for (prog, tp) in IO_URING_PROGRAMS {
        let hooks = Hooks::Tracepoints {
            category: "io_uring",
            events: &[tp],
        };
        load_and_attach(ebpf, prog, hooks)?;
    }
    Ok(())
}

/// Fills the i386 spec table (the dispatcher reads it for compat syscalls).
pub fn write_compat_specs(ebpf: &mut Ebpf, families: &[Family]) -> Result<(), LoadError> {
    let mut specs: Array<_, SyscallSpec> = typed_map(ebpf, "COMPAT_SPECS")?;
    for (nr, spec) in ia32::compat_specs(families).into_iter().enumerate() {
        specs
            .set(nr as u32, spec, 0)
            .map_err(|source| LoadError::MapWrite {
                what: format!("writing the compat spec of i386 syscall {nr}"),
                source: Box::new(source),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::btf::KERNEL_BTF;

    #[test]
    fn this_kernel_has_every_gap_field() {
        let btf = Btf::from_file(Path::new(KERNEL_BTF)).unwrap();
        let mut missing = Vec::new();
        let s = socket_offsets(&btf, &mut missing);
        let c = compat_config(&btf, &mut missing).expect("x86_64 compat fields");
        let u = io_uring_offsets(&btf, &mut missing).expect("io_uring tracepoints");
        assert_eq!(missing, Vec::<String>::new());
        assert_eq!(
            s.sk_daddr,
            btf.member_offset("sock_common", "skc_daddr").unwrap()
        );
        assert_eq!(u.submit_req, 16, "format file of io_uring_submit_req");
        assert_eq!(c.ts_compat, TS_COMPAT);
    }
}
