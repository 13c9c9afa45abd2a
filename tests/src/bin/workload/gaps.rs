//! Workloads for the capture gaps: io_uring (raw syscalls and mmap'd rings,
//! no liburing), ia32 syscalls via `int $0x80`, file handles, connected
//! sends, sendmmsg, pidfds, process_vm, chroot/pivot_root, seccomp/prctl.
//! Each step is one call whose record the tests expect.

use std::ffi::CString;

use libc::c_void;

use crate::{
    actions::{dns_query, sockaddr_in},
    exit_now, fork, say, wait_for,
};

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in test strings")
}

const LEN_IN: u32 = std::mem::size_of::<libc::sockaddr_in>() as u32;

/// A TCP listener on 127.0.0.1:port (connections wait in the backlog).
fn listener(port: u16) -> i32 {
    // SAFETY: plain socket calls on valid buffers.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let one = 1i32;
        libc::setsockopt(
            s,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const i32).cast(),
            4,
        );
        let a = sockaddr_in(port);
        if libc::bind(s, (&a as *const libc::sockaddr_in).cast(), LEN_IN) != 0 {
            eprintln!("workload: bind {port}: {}", std::io::Error::last_os_error());
            exit_now(3);
        }
        libc::listen(s, 8);
        s
    }
}

// ---- io_uring, by hand ----

#[repr(C)]
#[derive(Default)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct Sqe {
    pub opcode: u8,
    pub flags: u8,
    pub ioprio: u16,
    pub fd: i32,
    pub off: u64,
    pub addr: u64,
    pub len: u32,
    pub op_flags: u32,
    pub user_data: u64,
    pub buf_index: u16,
    pub personality: u16,
    pub splice_fd_in: i32,
    pub addr3: u64,
    pub pad2: u64,
}

pub const OP_CONNECT: u8 = 16;
pub const OP_OPENAT: u8 = 18;
pub const OP_READ: u8 = 22;
pub const OP_WRITE: u8 = 23;
pub const OP_SOCKET: u8 = 45;

/// One io_uring with synchronous submit-and-wait.
pub struct Ring {
    fd: i32,
    sq: *mut u8,
    cq: *mut u8,
    sqes: *mut Sqe,
    p: Params,
}

impl Ring {
    pub fn new() -> Ring {
        let mut p = Params::default();
        // SAFETY: io_uring_setup fills `p`; the mmaps use the sizes it gave.
        unsafe {
            let fd = libc::syscall(libc::SYS_io_uring_setup, 8u32, &mut p as *mut Params) as i32;
            if fd < 0 {
                eprintln!(
                    "workload: io_uring_setup: {}",
                    std::io::Error::last_os_error()
                );
                exit_now(4);
            }
            let map = |len: usize, off: i64| {
                let m = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    fd,
                    off,
                );
                if m == libc::MAP_FAILED {
                    eprintln!(
                        "workload: io_uring mmap: {}",
                        std::io::Error::last_os_error()
                    );
                    exit_now(4);
                }
                m as *mut u8
            };
            let sq = map(p.sq_off.array as usize + p.sq_entries as usize * 4, 0);
            let cq = map(
                p.cq_off.cqes as usize + p.cq_entries as usize * 16,
                0x800_0000,
            );
            let sqes = map(p.sq_entries as usize * 64, 0x1000_0000) as *mut Sqe;
            Ring {
                fd,
                sq,
                cq,
                sqes,
                p,
            }
        }
    }

    /// Submits `sqe`, waits for its completion, returns its result.
    pub fn run(&mut self, sqe: Sqe) -> i32 {
        use std::sync::atomic::{AtomicU32, Ordering};
        // SAFETY: offsets and masks come from the kernel; one SQE in flight.
        unsafe {
            let at = |base: *mut u8, off: u32| &*(base.add(off as usize) as *const AtomicU32);
            let mask = *(self.sq.add(self.p.sq_off.ring_mask as usize) as *const u32);
            let tail = at(self.sq, self.p.sq_off.tail).load(Ordering::Acquire);
            let idx = tail & mask;
            *self.sqes.add(idx as usize) = sqe;
            *(self.sq.add(self.p.sq_off.array as usize) as *mut u32).add(idx as usize) = idx;
            at(self.sq, self.p.sq_off.tail).store(tail.wrapping_add(1), Ordering::Release);
            const GETEVENTS: u32 = 1;
            let n = libc::syscall(
                libc::SYS_io_uring_enter,
                self.fd,
                1u32,
                1u32,
                GETEVENTS,
                0usize,
                0usize,
            );
            if n < 0 {
                eprintln!(
                    "workload: io_uring_enter: {}",
                    std::io::Error::last_os_error()
                );
                exit_now(4);
            }
            let cmask = *(self.cq.add(self.p.cq_off.ring_mask as usize) as *const u32);
            let head = at(self.cq, self.p.cq_off.head).load(Ordering::Acquire);
            let cqe = self
                .cq
                .add(self.p.cq_off.cqes as usize + ((head & cmask) as usize) * 16);
            let res = *(cqe.add(8) as *const i32);
            at(self.cq, self.p.cq_off.head).store(head.wrapping_add(1), Ordering::Release);
            res
        }
    }
}

pub fn open_sqe(path: &CString, flags: i32, user_data: u64) -> Sqe {
    Sqe {
        opcode: OP_OPENAT,
        fd: libc::AT_FDCWD,
        addr: path.as_ptr() as u64,
        op_flags: flags as u32,
        user_data,
        ..Sqe::default()
    }
}

pub fn rw_sqe(op: u8, fd: i32, buf: *const u8, len: usize, off: u64, user_data: u64) -> Sqe {
    Sqe {
        opcode: op,
        fd,
        addr: buf as u64,
        len: len as u32,
        off,
        user_data,
        ..Sqe::default()
    }
}

/// io_uring: OPENAT + READ of /etc/shadow, SOCKET + CONNECT + WRITE to
/// 127.0.0.1:PORT. Reports the fds.
pub fn uring(port: u16) -> ! {
    let lst = listener(port);
    let mut ring = Ring::new();
    let shadow = c("/etc/shadow");
    let fd = ring.run(open_sqe(&shadow, libc::O_RDONLY | libc::O_CLOEXEC, 1));
    let mut buf = [0u8; 64];
    let n = ring.run(rw_sqe(OP_READ, fd, buf.as_mut_ptr(), buf.len(), 0, 2));
    let sock = ring.run(Sqe {
        opcode: OP_SOCKET,
        fd: libc::AF_INET,
        off: libc::SOCK_STREAM as u64,
        user_data: 3,
        ..Sqe::default()
    });
    let a = sockaddr_in(port);
    let conn = ring.run(Sqe {
        opcode: OP_CONNECT,
        fd: sock,
        addr: &a as *const libc::sockaddr_in as u64,
        off: LEN_IN as u64,
        user_data: 4,
        ..Sqe::default()
    });
    let w = ring.run(rw_sqe(OP_WRITE, sock, b"hello".as_ptr(), 5, u64::MAX, 5));
    say(&format!("pid={}", std::process::id()));
    say(&format!("shadow_fd={fd}"));
    say(&format!("read={n}"));
    say(&format!("sock={sock}"));
    say(&format!("connect={conn}"));
    say(&format!("write={w}"));
    let _ = lst;
    exit_now(0)
}

/// io_uring: OPENAT + WRITE of PROCS (a cgroup.procs outside the audited
/// cgroup) with our pid — the process leaves the cgroup — then one more
/// OPENAT on the same ring.
pub fn uring_escape(procs: &str) -> ! {
    let mut ring = Ring::new();
    let p = c(procs);
    let fd = ring.run(open_sqe(&p, libc::O_WRONLY | libc::O_CLOEXEC, 11));
    let pid = format!("{}\n", std::process::id());
    let w = ring.run(rw_sqe(OP_WRITE, fd, pid.as_ptr(), pid.len(), 0, 12));
    let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let after = c("/etc/hostname");
    let h = ring.run(open_sqe(&after, libc::O_RDONLY | libc::O_CLOEXEC, 13));
    say(&format!("pid={}", std::process::id()));
    say(&format!("procs_fd={fd}"));
    say(&format!("write={w}"));
    say(&format!("hostname_fd={h}"));
    for l in cg.lines() {
        if let Some(path) = l.strip_prefix("0::") {
            say(&format!("cgroup_after={path}"));
        }
    }
    exit_now(0)
}

// ---- ia32 syscalls from a 64-bit process ----

/// `int $0x80` with up to three arguments (i386 numbers and 32-bit
/// arguments: pointers must lie below 4 GiB, see `low_mem`).
fn int80(nr: u32, a: u32, b: u32, c: u32) -> i32 {
    let ret: i32;
    // SAFETY: an i386 syscall; rbx is LLVM's, so it is saved around the
    // call; r8-r11 may come back zeroed from the compat entry.
    unsafe {
        std::arch::asm!(
            "push rbx",
            "mov ebx, {a:e}",
            "int 0x80",
            "pop rbx",
            a = in(reg) a,
            inlateout("eax") nr as i32 => ret,
            in("ecx") b,
            in("edx") c,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    ret
}

/// A page below 4 GiB for the i386 syscalls' pointers.
fn low_mem() -> *mut u8 {
    // SAFETY: anonymous mapping.
    let m = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if m == libc::MAP_FAILED {
        eprintln!("workload: MAP_32BIT: {}", std::io::Error::last_os_error());
        exit_now(5);
    }
    m as *mut u8
}

/// ia32: open+close of /etc/shadow, socketcall socket+connect, direct
/// socket+connect (i386 359/362), getpid (20) to 127.0.0.1:PORT.
pub fn int80_actions(port: u16) -> ! {
    let lst = listener(port);
    let mem = low_mem();
    let lo = |p: *mut u8| p as usize as u32;
    // SAFETY: writes inside the 4 KiB page.
    let (path, addr, args) = unsafe {
        let path = mem;
        std::ptr::copy_nonoverlapping(c"/etc/shadow".as_ptr().cast::<u8>(), path, 12);
        let addr = mem.add(64);
        let a = sockaddr_in(port);
        std::ptr::copy_nonoverlapping((&a as *const libc::sockaddr_in).cast::<u8>(), addr, 16);
        (path, addr, mem.add(128) as *mut u32)
    };
    let fd = int80(5, lo(path), libc::O_RDONLY as u32, 0);
    let closed = int80(6, fd as u32, 0, 0);
    // SAFETY: socketcall's argument array inside the page.
    let s1 = unsafe {
        *args = libc::AF_INET as u32;
        *args.add(1) = libc::SOCK_STREAM as u32;
        *args.add(2) = 0;
        int80(102, 1, lo(args.cast()), 0)
    };
    let c1 = unsafe {
        *args = s1 as u32;
        *args.add(1) = lo(addr);
        *args.add(2) = 16;
        int80(102, 3, lo(args.cast()), 0)
    };
    let s2 = int80(359, libc::AF_INET as u32, libc::SOCK_STREAM as u32, 0);
    let c2 = int80(362, s2 as u32, lo(addr), 16);
    let pid = int80(20, 0, 0, 0);
    say(&format!("pid={}", std::process::id()));
    say(&format!("fd={fd}"));
    say(&format!("close={closed}"));
    say(&format!("s1={s1}"));
    say(&format!("c1={c1}"));
    say(&format!("s2={s2}"));
    say(&format!("c2={c2}"));
    say(&format!("getpid={pid}"));
    let _ = lst;
    exit_now(0)
}

// ---- connected sends and sendmmsg ----

/// UDP connected to :53 then send() and write() of DNS queries; sendmmsg of
/// two queries; TCP connect to PORT then write().
pub fn connected(port: u16) -> ! {
    let lst = listener(port);
    let dns = sockaddr_in(53);
    // SAFETY: plain socket calls on valid buffers.
    unsafe {
        let u1 = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        libc::connect(u1, (&dns as *const libc::sockaddr_in).cast(), LEN_IN);
        let q = dns_query("connected.example.com");
        libc::send(u1, q.as_ptr().cast(), q.len(), 0);
        libc::send(u1, q.as_ptr().cast(), q.len(), 0); // not recorded: not the first
        let u2 = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        libc::connect(u2, (&dns as *const libc::sockaddr_in).cast(), LEN_IN);
        let q2 = dns_query("write.example.com");
        libc::write(u2, q2.as_ptr().cast(), q2.len());
        let u3 = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        let (qa, qb) = (
            dns_query("mmsg-one.example.com"),
            dns_query("mmsg-two.example.com"),
        );
        let mut iov = [
            libc::iovec {
                iov_base: qa.as_ptr() as *mut c_void,
                iov_len: qa.len(),
            },
            libc::iovec {
                iov_base: qb.as_ptr() as *mut c_void,
                iov_len: qb.len(),
            },
        ];
        let mut msgs: [libc::mmsghdr; 2] = std::mem::zeroed();
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_name = (&dns as *const libc::sockaddr_in) as *mut c_void;
            m.msg_hdr.msg_namelen = LEN_IN;
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        let sent = libc::sendmmsg(u3, msgs.as_mut_ptr(), 2, 0);
        let t = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let a = sockaddr_in(port);
        libc::connect(t, (&a as *const libc::sockaddr_in).cast(), LEN_IN);
        let w = libc::write(t, b"hello".as_ptr().cast(), 5);
        say(&format!("pid={}", std::process::id()));
        say(&format!("u1={u1}"));
        say(&format!("u2={u2}"));
        say(&format!("mmsg={sent}"));
        say(&format!("tcp={t}"));
        say(&format!("tcp_write={w}"));
    }
    let _ = lst;
    exit_now(0)
}

// ---- handles, pidfds, process_vm, confinement ----

static mut VM_TARGET: [u8; 8] = *b"target!!";

/// File handles of DIR/handle.txt; pidfd_open/getfd/send_signal and
/// process_vm_readv/writev on a child; chroot (in a child), pivot_root
/// (fails), prctl(NO_NEW_PRIVS, CAP_AMBIENT, SET_SECCOMP) and seccomp().
pub fn privilege_gaps(dir: &str) -> ! {
    let file = format!("{dir}/handle.txt");
    std::fs::write(&file, b"handle").expect("write handle.txt");
    // SAFETY: plain syscalls on valid buffers.
    unsafe {
        // struct file_handle { u32 handle_bytes; int handle_type; u8 f_handle[] }
        let mut fh = [0u32; 34];
        fh[0] = 128;
        let mut mount_id = 0i32;
        let path = c(&file);
        let h = libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            path.as_ptr(),
            fh.as_mut_ptr(),
            &mut mount_id as *mut i32,
            0,
        );
        let mount_fd = libc::open(
            c(dir).as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        let opened = libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd,
            fh.as_mut_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        say(&format!("handle={h}"));
        say(&format!("mount_fd={mount_fd}"));
        say(&format!("by_handle_fd={opened}"));

        let child = fork();
        if child == 0 {
            loop {
                libc::pause();
            }
        }
        say(&format!("child={child}"));
        let mut local = [0u8; 8];
        let l = libc::iovec {
            iov_base: local.as_mut_ptr().cast(),
            iov_len: 8,
        };
        let r = libc::iovec {
            iov_base: std::ptr::addr_of_mut!(VM_TARGET).cast(),
            iov_len: 8,
        };
        let rd = libc::process_vm_readv(child, &l, 1, &r, 1, 0);
        let wr = libc::process_vm_writev(child, &l, 1, &r, 1, 0);
        say(&format!("vm_read={rd}"));
        say(&format!("vm_write={wr}"));
        let pidfd = libc::syscall(libc::SYS_pidfd_open, child, 0) as i32;
        let got = libc::syscall(libc::SYS_pidfd_getfd, pidfd, 1, 0);
        let sig = libc::syscall(libc::SYS_pidfd_send_signal, pidfd, libc::SIGKILL, 0usize, 0);
        wait_for(child);
        say(&format!("pidfd={pidfd}"));
        say(&format!("getfd={got}"));
        say(&format!("signal={sig}"));

        let confined = fork();
        if confined == 0 {
            libc::prctl(libc::PR_GET_DUMPABLE); // not recorded: not a listed option
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            );
            // An allow-everything filter.
            let allow = [libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            }];
            let prog = libc::sock_fprog {
                len: 1,
                filter: allow.as_ptr() as *mut _,
            };
            libc::syscall(libc::SYS_seccomp, 1, 0, &prog as *const libc::sock_fprog);
            libc::prctl(libc::PR_SET_SECCOMP, 2, &prog as *const libc::sock_fprog);
            libc::syscall(libc::SYS_pivot_root, c(dir).as_ptr(), c(dir).as_ptr());
            libc::chroot(c(dir).as_ptr());
            exit_now(0);
        }
        wait_for(confined);
        say(&format!("confined={confined}"));
    }
    say(&format!("pid={}", std::process::id()));
    exit_now(0)
}
