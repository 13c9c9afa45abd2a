//! `run --fail-closed`: a small separate process that freezes the audited
//! cgroup (or stops the audited process tree) when the agent exits without a
//! clean stop — SIGKILL, crash, OOM. It does not depend on BPF: it holds the
//! read end of a pipe whose only write end is the agent's; EOF without the
//! "clean stop" byte means the agent is gone.

use std::{
    ffi::OsString,
    fs,
    io::{Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStringExt, process::CommandExt},
    },
    path::PathBuf,
    process::{Child, Command},
};

use super::{SandboxError, WATCHDOG_ARG, io};

/// What to stop when the agent dies.
#[derive(Clone, Debug)]
pub enum Guarded {
    Cgroup(PathBuf),
    PidTree(u32),
}

pub struct Watchdog {
    child: Child,
    disarm: File,
}

use std::fs::File;

const CLEAN_STOP: u8 = b'S';

impl Watchdog {
    pub fn start(what: &Guarded) -> Result<Watchdog, SandboxError> {
        let mut fds = [0; 2];
        // SAFETY: valid array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(io("creating the watchdog pipe")(
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: fresh fds, ours.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        let rfd = r.as_raw_fd();
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0("sandbox-audit-watchdog")
            .arg(WATCHDOG_ARG)
            .arg(rfd.to_string());
        match what {
            Guarded::Cgroup(p) => cmd.arg("cgroup").arg(p),
            Guarded::PidTree(pid) => cmd.arg("pid").arg(pid.to_string()),
        };
        // SAFETY: only fcntl(2) and setsid(2), async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(rfd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Its own session: a Ctrl-C meant for the agent must not
                // take the watchdog down with it.
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io("starting the watchdog"))?;
        drop(r);
        Ok(Watchdog { child, disarm: w })
    }

    /// A clean stop: the watchdog exits without touching anything.
    pub fn disarm(mut self) {
        let _ = self.disarm.write_all(&[CLEAN_STOP]);
        drop(self.disarm);
        let _ = self.child.wait();
    }
}

/// Stops what is guarded: cgroup.freeze, or SIGSTOP to the whole tree.
pub fn stop(what: &Guarded) -> Result<(), String> {
    match what {
        Guarded::Cgroup(p) => fs::write(p.join("cgroup.freeze"), "1")
            .map_err(|e| format!("freezing {}: {e}", p.display())),
        Guarded::PidTree(root) => {
            // Several passes: a process forked during one pass is stopped in
            // the next (its parent is stopped by then).
            for _ in 0..3 {
                let mut pids = crate::probes::descendants(*root).unwrap_or_default();
                pids.push(*root);
                for pid in pids {
                    // SAFETY: kill has no memory preconditions.
                    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
                }
            }
            Ok(())
        }
    }
}

/// The watchdog process: FD KIND TARGET.
pub fn main(args: impl Iterator<Item = OsString>) -> ! {
    let args: Vec<String> = args
        .map(|a| String::from_utf8_lossy(&a.into_vec()).into_owned())
        .collect();
    let parsed = match args.as_slice() {
        [fd, kind, target] => fd.parse::<i32>().ok().and_then(|fd| {
            let g = match kind.as_str() {
                "cgroup" => Guarded::Cgroup(PathBuf::from(target)),
                "pid" => Guarded::PidTree(target.parse().ok()?),
                _ => return None,
            };
            Some((fd, g))
        }),
        _ => None,
    };
    let Some((fd, guarded)) = parsed else {
        eprintln!("sandbox-audit-watchdog: bad arguments");
        std::process::exit(125);
    };
    // SAFETY: plain prctl / signal calls.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    // SAFETY: the agent passed us this fd.
    let mut pipe = unsafe { File::from_raw_fd(fd) };
    let mut b = [0u8; 1];
    let clean = matches!(pipe.read(&mut b), Ok(1) if b[0] == CLEAN_STOP);
    if clean {
        std::process::exit(0);
    }
    match stop(&guarded) {
        Ok(()) => {
            eprintln!(
                "sandbox-audit-watchdog: the agent exited without a clean stop; stopped {guarded:?} (thaw: echo 0 > cgroup.freeze / SIGCONT)"
            );
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("sandbox-audit-watchdog: the agent exited without a clean stop; {e}");
            std::process::exit(1)
        }
    }
}
