//! The control channel between the agent and its sandbox: one
//! SOCK_SEQPACKET socketpair. The sandbox side sends the seccomp listener fd
//! (SCM_RIGHTS), or says why setup or the exec of CMD failed. Once CMD runs,
//! the sandbox holds no end of it (close-on-exec), so the agent sees EOF.

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd, RawFd},
};

/// What the sandbox tells the agent.
#[derive(Debug)]
pub enum Message {
    /// The seccomp notification listener of CMD's filter.
    Listener(OwnedFd),
    /// execve of CMD failed with this errno.
    ExecFailed(i32),
    /// Setting up the sandbox failed (text says which step).
    SetupFailed(String),
}

/// A connected pair: (agent end, sandbox end), both close-on-exec.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends `bytes` and optionally one fd.
pub fn send(sock: RawFd, bytes: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut _,
        iov_len: bytes.len(),
    };
    // u64-aligned control buffer, big enough for one fd.
    let mut cbuf = [0u64; 4];
    // SAFETY: zeroed msghdr is valid; pointers below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_* compute within cbuf, which has room for one int.
        unsafe {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            // `as _`: the field is size_t in glibc, socklen_t in musl.
            msg.msg_controllen = libc::CMSG_SPACE(4) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
        }
    }
    // SAFETY: msg is fully initialised.
    if unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn send_message(sock: RawFd, m: &Message) -> io::Result<()> {
    match m {
        Message::Listener(fd) => send(sock, b"L", Some(std::os::fd::AsRawFd::as_raw_fd(fd))),
        Message::ExecFailed(e) => {
            let mut b = vec![b'E'];
            b.extend_from_slice(&e.to_le_bytes());
            send(sock, &b, None)
        }
        Message::SetupFailed(t) => {
            let mut b = vec![b'S'];
            b.extend_from_slice(&t.as_bytes()[..t.len().min(4000)]);
            send(sock, &b, None)
        }
    }
}

/// Receives one message; Ok(None) at EOF (no sandbox end is left open).
pub fn recv(sock: RawFd) -> io::Result<Option<Message>> {
    let mut buf = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: as in `send`.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    let n = loop {
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let mut fd = None;
    // SAFETY: walking the control messages the kernel wrote into cbuf.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let body = &buf[1..n];
    Ok(Some(match buf[0] {
        b'L' => match fd {
            Some(fd) => Message::Listener(fd),
            None => Message::SetupFailed("listener message without an fd".into()),
        },
        b'E' if body.len() == 4 => {
            Message::ExecFailed(i32::from_le_bytes([body[0], body[1], body[2], body[3]]))
        }
        b'S' => Message::SetupFailed(String::from_utf8_lossy(body).into_owned()),
        other => Message::SetupFailed(format!("unknown control message {other:#x}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn messages_and_fds_cross_the_pair() {
        let (a, b) = pair().unwrap();
        let (x, _y) = pair().unwrap();
        send_message(b.as_raw_fd(), &Message::Listener(x)).unwrap();
        send_message(b.as_raw_fd(), &Message::ExecFailed(2)).unwrap();
        send_message(b.as_raw_fd(), &Message::SetupFailed("mount: EPERM".into())).unwrap();
        assert!(matches!(
            recv(a.as_raw_fd()).unwrap(),
            Some(Message::Listener(_))
        ));
        assert!(matches!(
            recv(a.as_raw_fd()).unwrap(),
            Some(Message::ExecFailed(2))
        ));
        assert!(matches!(
            recv(a.as_raw_fd()).unwrap(),
            Some(Message::SetupFailed(t)) if t == "mount: EPERM"
        ));
        drop(b);
        assert!(recv(a.as_raw_fd()).unwrap().is_none());
    }
}
