//! Escape attempts from inside `sandbox-audit exec`, each reporting the
//! errno it got (`name=errno`, 0 = it worked) so the test asserts on it.

use std::ffi::CString;

use crate::say;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn report(name: &str, rc: i64) {
    say(&format!("{name}={}", if rc < 0 { errno() } else { 0 }));
}

/// Syscalls the probes cannot audit: io_uring_setup, and an ia32 open
/// through `int $0x80`.
pub fn unauditable(path: &str) -> ! {
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup with a zeroed params struct of its size.
    let rc = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
    report("io_uring_setup", rc);
    if rc >= 0 {
        // SAFETY: our fd.
        unsafe { libc::close(rc as i32) };
    }
    say(&format!("int80_open={}", int80_open(path)));
    crate::exit_now(0)
}

/// open(path, O_RDONLY) through the i386 ABI; returns 0 on success, else
/// the errno.
fn int80_open(path: &str) -> i64 {
    // The i386 ABI takes 32-bit pointers: the path must live below 4 GiB.
    // SAFETY: a fresh anonymous mapping, written within its bounds.
    let ret: i64;
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        );
        if page == libc::MAP_FAILED {
            return -1;
        }
        let bytes = path.as_bytes();
        let n = bytes.len().min(4000);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), page.cast::<u8>(), n);
        *page.cast::<u8>().add(n) = 0;
        let nr: i64 = 5; // i386 open
        // rbx is reserved by LLVM: swap the path pointer in and out.
        std::arch::asm!(
            "xchg rbx, {path}",
            "int 0x80",
            "xchg rbx, {path}",
            path = inout(reg) page as u64 => _,
            inlateout("rax") nr => ret,
            in("rcx") 0u64, // O_RDONLY
            in("rdx") 0u64,
        );
        libc::munmap(page, 4096);
    }
    // The i386 return value is in eax, sign-extended.
    let ret = ret as i32 as i64;
    if ret < 0 { -ret } else { 0 }
}

/// Tries to reach the agent (host pid `pid`): signal, ptrace, read its
/// memory, open a pidfd; and lists what /proc shows.
pub fn attack_agent(pid: i32) -> ! {
    // SAFETY: each call only names a pid; failures are the point.
    unsafe {
        report("kill", libc::kill(pid, 0) as i64);
        report(
            "ptrace",
            libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize),
        );
        let mut buf = [0u8; 8];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: 8,
        };
        let remote = libc::iovec {
            iov_base: 0x400000 as *mut _,
            iov_len: 8,
        };
        report(
            "process_vm_readv",
            libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) as i64,
        );
        report("pidfd_open", libc::syscall(libc::SYS_pidfd_open, pid, 0));
    }
    let mut seen = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        seen.push(format!("{name}:{}:{}", comm.trim(), cmdline.trim()));
    }
    say(&format!("procs={}", seen.join("|")));
    crate::exit_now(0)
}

/// Leaves the cgroup by writing our pid into `procs` (a cgroup.procs
/// file), then opens `marker`.
pub fn leave_cgroup(procs: &str, marker: &str) -> ! {
    let r = std::fs::write(procs, format!("{}\n", std::process::id()));
    say(&format!(
        "leave={}",
        r.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
    ));
    let c = CString::new(marker).unwrap();
    // SAFETY: valid path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    report("marker_open", fd as i64);
    crate::exit_now(0)
}
