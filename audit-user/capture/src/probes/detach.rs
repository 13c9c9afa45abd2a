//! Detaching ~140 syscall tracepoints takes the kernel seconds: each perf
//! tracepoint release waits for an RCU-tasks grace period (~75 ms here), in
//! series, inside whichever process drops the last reference. So that
//! `exec` returns as soon as its command is done (and a stopping daemon
//! exits promptly), the last references are handed to a detached process
//! that does nothing but close them.

use std::{fs, os::fd::RawFd};

use thiserror::Error;

/// The detached process could not be started (the probes then detach in
/// the foreground, slowly).
#[derive(Debug, Error)]
pub enum DetachError {
    #[error("pipe2")]
    Pipe(#[source] std::io::Error),
    #[error("listing /proc/self/fd")]
    ListFds(#[source] std::io::Error),
    #[error("fork")]
    Fork(#[source] std::io::Error),
}

/// Kernel objects of the probes, by the link text of /proc/self/fd/N.
fn is_probe_fd(target: &str) -> bool {
    target.starts_with("anon_inode:bpf")
        || target == "anon_inode:[perf_event]"
        || target == "anon_inode:btf"
}

/// Closes the write end of the hand-off pipe when dropped, which lets the
/// detached process exit (and detach the probes). Drop it after the last
/// probe object of this process is gone.
pub struct Handoff {
    pipe_w: RawFd,
}

impl Drop for Handoff {
    fn drop(&mut self) {
        // SAFETY: our own fd, closed once.
        unsafe { libc::close(self.pipe_w) };
    }
}

/// Forks a detached process holding a copy of every probe fd (and nothing
/// else). Call it when capture is over; then drop the probes, then the
/// returned [`Handoff`].
pub fn hand_off() -> Result<Handoff, DetachError> {
    let mut pipe = [0 as RawFd; 2];
    // SAFETY: valid array of two fds.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(DetachError::Pipe(std::io::Error::last_os_error()));
    }
    let [pipe_r, pipe_w] = pipe;
    // On failure, leave no pipe behind (the caller detaches in the foreground).
    let fail = |e: DetachError| {
        // SAFETY: our own fds, not handed out yet.
        unsafe {
            libc::close(pipe_r);
            libc::close(pipe_w);
        }
        e
    };
    // The child keeps these and closes every other fd — also ones another
    // thread opens meanwhile, so it never holds someone's pipe or file open.
    let mut keep: Vec<RawFd> = vec![pipe_r];
    for entry in fs::read_dir("/proc/self/fd")
        .map_err(|e| fail(DetachError::ListFds(e)))?
        .flatten()
    {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        let target = fs::read_link(entry.path())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        if is_probe_fd(&target) {
            keep.push(fd);
        }
    }
    keep.sort_unstable();
    keep.dedup();
    // SAFETY: the child only makes raw syscalls (close, setsid, fork, read,
    // prctl, _exit) on memory prepared before the fork — safe even when the
    // parent has other threads.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(fail(DetachError::Fork(std::io::Error::last_os_error())));
    }
    if pid == 0 {
        unsafe {
            let mut lo: u32 = 0;
            for &fd in &keep {
                if fd as u32 > lo {
                    libc::syscall(libc::SYS_close_range, lo, fd as u32 - 1, 0);
                }
                lo = fd as u32 + 1;
            }
            libc::syscall(libc::SYS_close_range, lo, u32::MAX, 0);
            libc::setsid();
            // Double fork: the grandchild is reparented away from us.
            if libc::fork() != 0 {
                libc::_exit(0);
            }
            libc::prctl(libc::PR_SET_NAME, c"sandbox-detach".as_ptr());
            let mut b = [0u8; 1];
            while libc::read(pipe_r, b.as_mut_ptr().cast(), 1) != 0 {
                if *libc::__errno_location() != libc::EINTR {
                    break;
                }
            }
            libc::_exit(0);
        }
    }
    // SAFETY: reap the intermediate child, close our read end.
    unsafe {
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::close(pipe_r);
    }
    Ok(Handoff { pipe_w })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_probe_fds() {
        assert!(is_probe_fd("anon_inode:bpf-map"));
        assert!(is_probe_fd("anon_inode:bpf-prog"));
        assert!(is_probe_fd("anon_inode:bpf_link"));
        assert!(is_probe_fd("anon_inode:[perf_event]"));
        assert!(!is_probe_fd("pipe:[1234]"));
        assert!(!is_probe_fd("/var/log/sandbox-audit/segment-0.jsonl"));
        assert!(!is_probe_fd("socket:[99]"));
    }
}
