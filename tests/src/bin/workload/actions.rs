//! The file, network and privilege workloads. Each step is one libc call
//! whose record the integration tests expect, in this order.

use std::ffi::CString;

use libc::{c_char, c_void};

use crate::{exit_now, fork, say, wait_for};

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in test strings")
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Runs `f` in a child process and waits for it; returns the child's pid.
fn in_child(f: impl FnOnce()) -> i32 {
    let pid = fork();
    if pid == 0 {
        f();
        exit_now(0);
    }
    wait_for(pid);
    pid
}

fn drop_to_nobody() {
    // SAFETY: plain syscalls.
    unsafe {
        libc::setgroups(0, std::ptr::null());
        libc::setresgid(65534, 65534, 65534);
        libc::setresuid(65534, 65534, 65534);
    }
}

/// File-system actions, relative to DIR (the cwd) unless said otherwise.
pub fn file(dir: &str) -> ! {
    let p = |s: &str| c(s);
    // SAFETY: every call gets valid NUL-terminated strings and buffers.
    unsafe {
        libc::chdir(p(dir).as_ptr());
        let fd = libc::openat(
            libc::AT_FDCWD,
            p("created.txt").as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
            0o640,
        );
        libc::write(fd, b"hello".as_ptr().cast(), 5);
        libc::write(fd, b"again".as_ptr().cast(), 5); // not recorded: not the first
        libc::close(fd);
        let dirfd = libc::open(
            p(dir).as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        let rd = libc::openat(
            dirfd,
            p("created.txt").as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        libc::close(rd);
        libc::openat(
            dirfd,
            p("missing.txt").as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        libc::mkdir(p("sub").as_ptr(), 0o750);
        libc::rename(p("created.txt").as_ptr(), p("sub/renamed.txt").as_ptr());
        libc::link(p("sub/renamed.txt").as_ptr(), p("hard.txt").as_ptr());
        libc::symlink(p("sub/renamed.txt").as_ptr(), p("soft.txt").as_ptr());
        libc::chmod(p("hard.txt").as_ptr(), 0o600);
        libc::chown(p("hard.txt").as_ptr(), 1234, 5678);
        libc::truncate(p("hard.txt").as_ptr(), 2);
        let rw = libc::open(p("hard.txt").as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        libc::ftruncate(rw, 1);
        libc::fchmod(rw, 0o644);
        libc::close(rw);
        libc::unlink(p("soft.txt").as_ptr());
        libc::unlinkat(dirfd, p("hard.txt").as_ptr(), 0);
        let r = libc::rmdir(p("sub").as_ptr());
        say(&format!("rmdir_nonempty={r}/{}", errno()));
        libc::unlink(p("sub/renamed.txt").as_ptr());
        libc::rmdir(p("sub").as_ptr());
        let secret = libc::open(
            p("secret.txt").as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0,
        );
        libc::close(secret);
        let child = in_child(|| {
            drop_to_nobody();
            libc::open(c("secret.txt").as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        });
        say(&format!("nobody_child={child}"));
        let cr = libc::creat(p("creat.txt").as_ptr(), 0o644);
        libc::close(cr);
    }
    say(&format!("pid={}", std::process::id()));
    exit_now(0)
}

pub fn sockaddr_in(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    }
}

pub fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    q
}

/// Network actions on loopback only.
pub fn net(dir: &str, port: u16) -> ! {
    let len_in = std::mem::size_of::<libc::sockaddr_in>() as u32;
    // SAFETY: valid sockaddrs, buffers and lengths throughout.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let one: i32 = 1;
        libc::setsockopt(
            s,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const i32).cast(),
            4,
        );
        let a = sockaddr_in(port);
        libc::bind(s, (&a as *const libc::sockaddr_in).cast(), len_in);
        libc::listen(s, 8);
        let cl = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        libc::connect(cl, (&a as *const libc::sockaddr_in).cast(), len_in);
        let mut peer: libc::sockaddr_in = std::mem::zeroed();
        let mut plen = len_in;
        libc::accept4(
            s,
            (&mut peer as *mut libc::sockaddr_in).cast(),
            &mut plen,
            libc::SOCK_CLOEXEC,
        );
        say(&format!("client_port={}", u16::from_be(peer.sin_port)));
        let refused = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let closed = sockaddr_in(port + 1);
        libc::connect(
            refused,
            (&closed as *const libc::sockaddr_in).cast(),
            len_in,
        );

        let u = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        let dns = sockaddr_in(53);
        let q = dns_query("agent.example.org");
        libc::sendto(
            u,
            q.as_ptr().cast(),
            q.len(),
            0,
            (&dns as *const libc::sockaddr_in).cast(),
            len_in,
        );
        let q2 = dns_query("sendmsg.example.net");
        let mut iov = libc::iovec {
            iov_base: q2.as_ptr() as *mut c_void,
            iov_len: q2.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&dns as *const libc::sockaddr_in) as *mut c_void;
        msg.msg_namelen = len_in;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        libc::sendmsg(u, &msg, 0);

        let us = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let mut un: libc::sockaddr_un = std::mem::zeroed();
        un.sun_family = libc::AF_UNIX as u16;
        let path = format!("{dir}/agent.sock");
        for (d, b) in un.sun_path.iter_mut().zip(path.bytes()) {
            *d = b as c_char;
        }
        let un_len = (2 + path.len() + 1) as u32;
        libc::bind(us, (&un as *const libc::sockaddr_un).cast(), un_len);
        let abs = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let mut an: libc::sockaddr_un = std::mem::zeroed();
        an.sun_family = libc::AF_UNIX as u16;
        let name = format!("sandbox-audit-test-{}", std::process::id());
        for (d, b) in an.sun_path[1..].iter_mut().zip(name.bytes()) {
            *d = b as c_char;
        }
        libc::bind(
            abs,
            (&an as *const libc::sockaddr_un).cast(),
            (2 + 1 + name.len()) as u32,
        );

        let s6 = libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let mut a6: libc::sockaddr_in6 = std::mem::zeroed();
        a6.sin6_family = libc::AF_INET6 as u16;
        a6.sin6_port = (port + 1).to_be();
        a6.sin6_addr.s6_addr[15] = 1;
        let r = libc::connect(
            s6,
            (&a6 as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as u32,
        );
        say(&format!("inet6_connect={r}/{}", errno()));
    }
    say(&format!("pid={}", std::process::id()));
    exit_now(0)
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

/// Privilege and tamper-relevant actions.
pub fn privilege(dir: &str) -> ! {
    // SAFETY: plain syscalls with valid arguments; the mount happens in a
    // private mount namespace of a child and is undone there.
    unsafe {
        libc::setresgid(0, 0, 0);
        libc::setresuid(0, 0, 0);
        let groups = [0u32, 4];
        libc::setgroups(2, groups.as_ptr());
        let mut hdr = CapHeader {
            version: 0x2008_0522,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        );
        libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr());
        libc::ptrace(libc::PTRACE_ATTACH, 0x3fff_fff0 as libc::pid_t, 0, 0);
        let mnt = format!("{dir}/mnt");
        let mounter = in_child(|| {
            libc::unshare(libc::CLONE_NEWNS);
            libc::mount(
                std::ptr::null(),
                c("/").as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            );
            libc::mount(
                c("agent-tmp").as_ptr(),
                c(&mnt).as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                std::ptr::null(),
            );
            libc::umount2(c(&mnt).as_ptr(), 0);
        });
        say(&format!("mounter={mounter}"));
        let attr = [0u8; 128];
        libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len());
        libc::kill(1, 0);
        let sleeper = fork();
        if sleeper == 0 {
            libc::pause();
            exit_now(0);
        }
        libc::kill(sleeper, libc::SIGTERM);
        wait_for(sleeper);
        say(&format!("sleeper={sleeper}"));
        let f = libc::open(
            c(&format!("{dir}/attr.txt")).as_ptr(),
            libc::O_CREAT | libc::O_RDONLY | libc::O_CLOEXEC,
            0o600,
        );
        let append: libc::c_int = 0x20;
        let none: libc::c_int = 0;
        libc::ioctl(f, 0x4008_6602, &append);
        libc::ioctl(f, 0x4008_6602, &none);
        libc::close(f);
        let ns = libc::open(
            c("/proc/self/ns/net").as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        libc::setns(ns, libc::CLONE_NEWNET);
        libc::syscall(
            libc::SYS_memfd_create,
            c("agent-mem").as_ptr(),
            libc::MFD_CLOEXEC,
        );
        let argv = [std::ptr::null::<c_char>()];
        libc::execve(
            c("/nonexistent/agent-tool").as_ptr(),
            argv.as_ptr(),
            argv.as_ptr(),
        );
        let denied = in_child(|| {
            drop_to_nobody();
            libc::setuid(0);
        });
        say(&format!("denied={denied}"));
    }
    say(&format!("pid={}", std::process::id()));
    exit_now(0)
}
