//! The peer of a connected socket, read from the kernel's `struct sock`
//! (offsets from BTF): what a send without an address actually reaches.
//! Kernel memory, so the sandbox cannot change it between check and use.

use audit_common::syscall::{ArgDataHeader, PEER, SOCKADDR_MAX, arg_data_kind};

use crate::{
    argdata::Writer,
    globals::{self, OFFSETS, SOCKET_OFFSETS},
    paths::fd_file,
    task::read_at,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;

/// The `struct sock` behind `file`, if it is a socket.
#[inline(always)]
pub fn file_sock(file: u64) -> Option<u64> {
    let o = &SOCKET_OFFSETS;
    let inode: u64 = read_at(file, globals::get(&OFFSETS.file_inode))?;
    let mode: u16 = read_at(inode, globals::get(&OFFSETS.inode_mode))?;
    if mode & S_IFMT != S_IFSOCK {
        return None;
    }
    let socket: u64 = read_at(file, globals::get(&o.file_private_data))?;
    let sk: u64 = read_at(socket, globals::get(&o.socket_sk))?;
    if sk == 0 { None } else { Some(sk) }
}

/// Appends the peer of the socket `file` as a SOCKADDR capture for slot
/// `PEER`; returns its port (host order). Nothing when not an IP socket
/// with a peer.
#[inline(always)]
pub fn file_peer(w: &mut Writer, file: u64) -> Option<u16> {
    let o = &SOCKET_OFFSETS;
    let sk = file_sock(file)?;
    let family: u16 = read_at(sk, globals::get(&o.sk_family))?;
    let dport: u16 = read_at(sk, globals::get(&o.sk_dport))?;
    if dport == 0 || (family != AF_INET && family != AF_INET6) {
        return None;
    }
    if !w.room(SOCKADDR_MAX + 8) {
        return None;
    }
    let at = w.at();
    let base = unsafe { w.data.as_mut_ptr().add(at) };
    let len: usize = if family == AF_INET {
        let a: u32 = read_at(sk, globals::get(&o.sk_daddr))?;
        unsafe {
            (base.add(8) as *mut u16).write_unaligned(family);
            (base.add(10) as *mut u16).write_unaligned(dport);
            (base.add(12) as *mut u32).write_unaligned(a);
            (base.add(16) as *mut u64).write_unaligned(0);
        }
        16
    } else {
        let a: [u64; 2] = read_at(sk, globals::get(&o.sk_v6_daddr))?;
        unsafe {
            (base.add(8) as *mut u16).write_unaligned(family);
            (base.add(10) as *mut u16).write_unaligned(dport);
            (base.add(12) as *mut u32).write_unaligned(0);
            (base.add(16) as *mut u64).write_unaligned(a[0]);
            (base.add(24) as *mut u64).write_unaligned(a[1]);
            (base.add(32) as *mut u32).write_unaligned(0);
        }
        28
    };
    let h = ArgDataHeader {
        kind: arg_data_kind::SOCKADDR,
        slot: PEER,
        flags: 0,
        _pad: 0,
        len: len as u32,
    };
    unsafe { (base as *mut ArgDataHeader).write_unaligned(h) };
    w.pos = at + 8 + len;
    Some(u16::from_be(dport))
}

/// The same for the socket behind descriptor `fd` of the current task.
#[inline(always)]
pub fn fd_peer(w: &mut Writer, fd: i64) -> Option<u16> {
    file_peer(w, fd_file(fd)?)
}
