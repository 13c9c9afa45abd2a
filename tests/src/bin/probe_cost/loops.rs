//! The measured loops, each run in a child process of its own (so that it
//! can be placed in the audited cgroup, or not): open+close, fork+exec,
//! connect, and one unaudited syscall.

use std::time::{Duration, Instant};

/// The audit login uid every loop runs under: the auditd rules of the
/// comparison match it (capturing) or another one (not matching), like a
/// scope.
pub const LOOP_AUID: u32 = 4242;

/// (name for the table, loop name, most iterations)
pub const LOOPS: &[(&str, &str, u64)] = &[
    ("openat+close of /dev/null", "open", 1_000_000),
    ("fork + exec /bin/true + wait", "forkexec", 10_000),
    (
        "socket + connect to a closed loopback port + close",
        "connect",
        200_000,
    ),
    ("getppid (not audited)", "getppid", 5_000_000),
];

/// Each measurement stops after this long even if its iterations are not
/// done (auditd capturing runs open+close a hundred times slower).
const BUDGET: Duration = Duration::from_millis(300);

/// Runs loop `what` up to `n` times (see [`BUDGET`]) and prints the ns per
/// iteration of its fastest chunk (the machine is shared: a chunk the
/// scheduler interrupted says nothing about the probes) and of the whole.
pub fn child_loop(what: &str, n: u64) {
    // Root may set its own loginuid (loginuid_immutable is 0 here).
    let auid = std::fs::write("/proc/self/loginuid", LOOP_AUID.to_string());
    if let Err(e) = auid {
        eprintln!("probe_cost: setting the loop's loginuid: {e}");
        std::process::exit(2);
    }
    let t = Instant::now();
    let (best, done) = match what {
        "open" => open_close(n, t),
        "forkexec" => fork_exec(n, t),
        "connect" => connect(n, t),
        _ => getppid(n, t),
    };
    let all = t.elapsed().as_nanos() as f64 / done as f64;
    println!("{best} {all} {done}");
}

/// Iterations `0..n` in chunks of `chunk`, until the budget is spent since
/// `t`. Returns the fastest chunk's ns per iteration, and the iterations.
fn run(n: u64, chunk: u64, t: Instant, mut f: impl FnMut()) -> (f64, u64) {
    let mut done = 0;
    let mut best = f64::INFINITY;
    while done < n && t.elapsed() < BUDGET {
        let k = chunk.min(n - done);
        let c = Instant::now();
        for _ in 0..k {
            f();
        }
        best = best.min(c.elapsed().as_nanos() as f64 / k as f64);
        done += k;
    }
    (best, done)
}

fn open_close(n: u64, t: Instant) -> (f64, u64) {
    let path = c"/dev/null";
    run(n, 128, t, || {
        // SAFETY: plain syscalls on a valid path.
        unsafe {
            let fd = libc::openat(
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            );
            libc::close(fd);
        }
    })
}

fn fork_exec(n: u64, t: Instant) -> (f64, u64) {
    let prog = c"/bin/true";
    let argv = [prog.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    run(n, 4, t, || {
        // SAFETY: the child only calls execve and _exit (async-signal-safe).
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                eprintln!("probe_cost: /bin/true failed ({status})");
                std::process::exit(2);
            }
        }
    })
}

fn connect(n: u64, t: Instant) -> (f64, u64) {
    // A bound socket that never listens holds a loopback port no one else
    // can take: every connect to it is refused at once (RST).
    // SAFETY: plain socket calls on our own fd and stack sockaddrs.
    let (hold, addr) = unsafe {
        let hold = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as u16;
        addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        let p = (&mut addr as *mut libc::sockaddr_in).cast();
        if libc::bind(hold, p, len) != 0 || libc::getsockname(hold, p, &mut len) != 0 {
            eprintln!(
                "probe_cost: binding a loopback port: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(2);
        }
        (hold, addr)
    };
    let port = u16::from_be(addr.sin_port);
    let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
    let done = run(n, 16, t, || {
        // SAFETY: as above.
        unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            let r = libc::connect(s, (&addr as *const libc::sockaddr_in).cast(), len);
            if r == 0 {
                eprintln!("probe_cost: connect to the closed port {port} succeeded");
                std::process::exit(2);
            }
            libc::close(s);
        }
    });
    // SAFETY: our own fd.
    unsafe { libc::close(hold) };
    done
}

fn getppid(n: u64, t: Instant) -> (f64, u64) {
    run(n, 1024, t, || {
        // SAFETY: no arguments, no effects.
        unsafe { libc::getppid() };
    })
}
