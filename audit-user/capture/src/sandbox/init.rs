//! The sandbox's own processes, run from a fresh exec of our binary (not a
//! fork of the agent: nothing of the agent's memory, keys included, is
//! copied into them).
//!
//! outer (host pid ns, outside the audited cgroup): new mount (+net)
//!   namespace and new pid namespace for its children, hides the recorder
//!   (see `mounts`), forks the init, forwards signals to it, exits with its
//!   status. Dies with the agent (PR_SET_PDEATHSIG).
//! init (pid 1 of the new namespace): its own /proc, joins the audited
//!   cgroup, a new cgroup namespace rooted there, forks CMD's process,
//!   forwards signals to it, reaps orphans, exits with CMD's status once no
//!   process is left. Dies with the outer process; when it dies the kernel
//!   kills everything in its pid namespace.
//! cmd: drops capabilities, switches user, sets no_new_privs, installs the
//!   seccomp filter, hands its listener to the agent, execs CMD.

use std::{
    ffi::{CString, OsString},
    os::{fd::RawFd, unix::ffi::OsStringExt},
    sync::atomic::{AtomicI32, Ordering},
};

use super::{
    SandboxConfig, caps,
    channel::{self, Message},
    mounts, seccomp,
};

/// Exit status of the sandbox processes when setup failed (the agent then
/// reports the message it got over the channel).
const SETUP_FAILED: i32 = 125;

/// Where forwarded signals go (0: nowhere yet).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn forward_signals() {
    for &sig in FORWARDED {
        // SAFETY: installing a handler that only calls kill(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn default_signals() {
    for &sig in FORWARDED {
        // SAFETY: restoring default dispositions.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

fn fail(sock: RawFd, what: String) -> ! {
    let _ = channel::send_message(sock, &Message::SetupFailed(what));
    // SAFETY: exiting without running the agent's atexit handlers.
    unsafe { libc::_exit(SETUP_FAILED) }
}

fn check(rc: libc::c_int, what: &str) -> Result<(), String> {
    if rc < 0 {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

fn die_with_parent() -> Result<(), String> {
    // SAFETY: plain prctl.
    check(
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) },
        "PR_SET_PDEATHSIG",
    )
}

/// Waits for `pid`, retrying on EINTR (a forwarded signal); returns its
/// wait status.
fn wait_pid(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: valid pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r == pid
            || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            return status;
        }
    }
}

/// A wait status as an exit code, like a shell: code, or 128+signal.
fn as_exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// The outer process. `agent` is the pid that must be our parent.
pub fn outer_main(cfg: SandboxConfig, sock: RawFd, procs: RawFd, agent: i32) -> ! {
    let setup = || -> Result<(), String> {
        die_with_parent()?;
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != agent {
            return Err("the agent exited before the sandbox started".into());
        }
        // SAFETY: plain prctl calls.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
        let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
        if cfg.net_none {
            flags |= libc::CLONE_NEWNET;
        }
        // SAFETY: unshare has no memory preconditions.
        check(unsafe { libc::unshare(flags) }, "unshare(mount, pid, net)")?;
        mounts::prepare(&cfg.hidden)
    };
    if let Err(e) = setup() {
        fail(sock, e);
    }
    // SAFETY: single-threaded process (a fresh exec), so fork is safe.
    let init = unsafe { libc::fork() };
    if init < 0 {
        fail(
            sock,
            format!("fork of the init: {}", std::io::Error::last_os_error()),
        );
    }
    if init == 0 {
        init_main(&cfg, sock, procs);
    }
    // SAFETY: closing our copies; the init has its own.
    unsafe {
        libc::close(sock);
        libc::close(procs);
    }
    FORWARD_TO.store(init, Ordering::SeqCst);
    forward_signals();
    let status = wait_pid(init);
    // SAFETY: _exit skips atexit handlers of the parent image.
    unsafe { libc::_exit(as_exit_code(status)) }
}

fn init_main(cfg: &SandboxConfig, sock: RawFd, procs: RawFd) -> ! {
    let setup = || -> Result<(), String> {
        die_with_parent()?;
        // SAFETY: plain prctl calls with valid arguments.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, c"sandbox-init".as_ptr());
            libc::prctl(libc::PR_SET_DUMPABLE, 0);
        }
        mounts::own_proc()?;
        // Join the audited cgroup (through the agent's fd: /sys is read-only
        // here), then root a cgroup namespace there: no way up from it.
        // SAFETY: writing a constant buffer to our fd.
        if unsafe { libc::write(procs, b"0\n".as_ptr().cast(), 2) } != 2 {
            return Err(format!(
                "joining the audited cgroup: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: our fd.
        unsafe { libc::close(procs) };
        // SAFETY: unshare has no memory preconditions.
        check(
            unsafe { libc::unshare(libc::CLONE_NEWCGROUP) },
            "unshare(cgroup)",
        )
    };
    if let Err(e) = setup() {
        fail(sock, e);
    }
    // Prepare everything CMD's process needs before forking it.
    let program = CString::new(cfg.program.clone()).unwrap_or_default();
    let argv: Vec<CString> = cfg
        .argv
        .iter()
        .map(|a| CString::new(a.clone()).unwrap_or_default())
        .collect();
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let filter = seccomp::program();
    forward_signals();
    // SAFETY: single-threaded; the child only runs our code, then execs.
    let cmd = unsafe { libc::fork() };
    if cmd < 0 {
        fail(
            sock,
            format!("fork of CMD: {}", std::io::Error::last_os_error()),
        );
    }
    if cmd == 0 {
        default_signals();
        if let Err(e) = restrict(cfg, &filter, sock) {
            fail(sock, e);
        }
        unsafe extern "C" {
            static environ: *const *const libc::c_char;
        }
        // SAFETY: valid NUL-terminated program, argv and the inherited environ.
        unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), environ) };
        let err = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let _ = channel::send_message(sock, &Message::ExecFailed(err));
        let code = if err == libc::ENOENT { 127 } else { 126 };
        // SAFETY: exit without atexit handlers.
        unsafe { libc::_exit(code) }
    }
    // SAFETY: our copy of the channel; CMD has its own until it execs.
    unsafe { libc::close(sock) };
    FORWARD_TO.store(cmd, Ordering::SeqCst);
    // Reap everything (orphans reparent to us) until nothing is left; the
    // pid namespace ends with us.
    let mut cmd_status = None;
    loop {
        let mut status = 0;
        // SAFETY: valid pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if r == cmd {
            cmd_status = Some(status);
        } else if r < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => break,
            }
        }
    }
    // SAFETY: exit without atexit handlers.
    unsafe { libc::_exit(cmd_status.map_or(1, as_exit_code)) }
}

/// In CMD's process, right before exec: everything that takes privilege away.
fn restrict(cfg: &SandboxConfig, filter: &[libc::sock_filter], sock: RawFd) -> Result<(), String> {
    caps::drop_bounding()
        .map_err(|e| format!("dropping capabilities from the bounding set: {e}"))?;
    if let Some((uid, gid)) = cfg.user {
        let groups = [gid];
        // SAFETY: valid array of one gid; then plain id switches.
        unsafe {
            check(libc::setgroups(1, groups.as_ptr()), "setgroups")?;
            check(libc::setresgid(gid, gid, gid), "setresgid")?;
            check(libc::setresuid(uid, uid, uid), "setresuid")?;
        }
    }
    caps::drop_process_sets().map_err(|e| format!("dropping capabilities: {e}"))?;
    // SAFETY: plain prctl.
    check(
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        "PR_SET_NO_NEW_PRIVS",
    )?;
    let listener = seccomp::install(filter).map_err(|e| format!("installing seccomp: {e}"))?;
    let sent = channel::send(sock, b"L", Some(listener));
    // SAFETY: the agent has its own copy now.
    unsafe { libc::close(listener) };
    sent.map_err(|e| format!("handing the seccomp listener to the agent: {e}"))
}

/// Parses the helper's arguments: CONFIG_FD SOCK_FD PROCS_FD AGENT_PID.
pub fn parse_args(args: impl Iterator<Item = OsString>) -> Option<(RawFd, RawFd, RawFd, i32)> {
    let v: Vec<i32> = args
        .map(|a| String::from_utf8(a.into_vec()).ok()?.parse().ok())
        .collect::<Option<_>>()?;
    match v.as_slice() {
        [c, s, p, a] => Some((*c, *s, *p, *a)),
        _ => None,
    }
}
