//! Deterministic process workloads for the integration tests. Reports the
//! pids it creates as `key=value` lines on stdout (written with write(2), so
//! nothing is buffered twice across fork).
//!
//!   workload tree [--wait-stdin]  a 3-level fork tree with known exit codes
//!   workload burst FORKS EXECS    FORKS fork+_exit(0), then EXECS fork+exec /bin/true
//!   workload file DIR             file-system actions in DIR (see `file`)
//!   workload net DIR PORT         network actions on 127.0.0.1:PORT (see `net`)
//!   workload priv DIR             privilege actions (see `privilege`)
//!   workload unauditable PATH     io_uring_setup, and an ia32 open of PATH
//!   workload attack-agent PID     kill/ptrace/process_vm_readv/pidfd_open PID
//!   workload leave-cgroup PROCS MARKER  write our pid to PROCS, open MARKER
//!   workload uring PORT           io_uring open/read, socket/connect/write
//!   workload uring-escape PROCS   io_uring write of our pid to a cgroup.procs
//!   workload int80 PORT           ia32 syscalls via int $0x80
//!   workload connected PORT       connected UDP/TCP sends, sendmmsg
//!   workload priv-gaps DIR        handles, pidfds, process_vm, chroot, seccomp
//!
//! The action workloads call libc directly so that the test knows exactly
//! which syscall each step makes.

use std::ffi::CString;

mod actions;
mod escape;
mod gaps;

pub fn say(line: &str) {
    let s = format!("{line}\n");
    // SAFETY: writing a valid buffer to stdout.
    unsafe { libc::write(1, s.as_ptr().cast(), s.len()) };
}

pub fn fork() -> i32 {
    // SAFETY: the child only calls async-signal-safe functions or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("workload: fork failed: {}", std::io::Error::last_os_error());
        std::process::exit(100);
    }
    pid
}

pub fn wait_for(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: valid pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns; skips atexit handlers inherited over fork.
    unsafe { libc::_exit(code) }
}

/// root ─┬─ l1 (exits 11) ── l2 (exits 12)
///       ├─ victim (killed by root with SIGKILL)
///       └─ segv (dies of SIGSEGV, no core: RLIMIT_CORE is 0)
/// root exits 10.
fn tree() -> ! {
    say(&format!("root={}", std::process::id()));
    let l1 = fork();
    if l1 == 0 {
        let l2 = fork();
        if l2 == 0 {
            exit_now(12);
        }
        say(&format!("l2={l2}"));
        wait_for(l2);
        exit_now(11);
    }
    say(&format!("l1={l1}"));
    let victim = fork();
    if victim == 0 {
        loop {
            // SAFETY: pause just sleeps until a signal.
            unsafe { libc::pause() };
        }
    }
    say(&format!("victim={victim}"));
    let segv = fork();
    if segv == 0 {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: valid pointer; then a deliberate SIGSEGV via raise. The
        // Rust runtime's SIGSEGV handler (stack-overflow detection) must go
        // first or it would swallow the signal.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::raise(libc::SIGSEGV);
        }
        exit_now(99);
    }
    say(&format!("segv={segv}"));
    wait_for(l1);
    // SAFETY: plain kill of our own child.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    wait_for(victim);
    wait_for(segv);
    exit_now(10);
}

fn burst(forks: u32, execs: u32) -> ! {
    let true_bin = CString::new("/bin/true").unwrap();
    let argv = [true_bin.as_ptr(), std::ptr::null()];
    for _ in 0..forks {
        let pid = fork();
        if pid == 0 {
            exit_now(0);
        }
        wait_for(pid);
    }
    for _ in 0..execs {
        let pid = fork();
        if pid == 0 {
            // SAFETY: valid NUL-terminated argv.
            unsafe { libc::execv(true_bin.as_ptr(), argv.as_ptr()) };
            exit_now(127);
        }
        wait_for(pid);
    }
    say(&format!("forks={forks}"));
    say(&format!("execs={execs}"));
    exit_now(0);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("tree") => {
            if args.get(2).map(String::as_str) == Some("--wait-stdin") {
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
            }
            tree()
        }
        Some("burst") => {
            let n = |i: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0);
            burst(n(2), n(3))
        }
        Some("file") => actions::file(&args[2]),
        Some("net") => actions::net(&args[2], args[3].parse().unwrap_or(0)),
        Some("priv") => actions::privilege(&args[2]),
        Some("unauditable") => escape::unauditable(&args[2]),
        Some("attack-agent") => escape::attack_agent(args[2].parse().unwrap_or(0)),
        Some("leave-cgroup") => escape::leave_cgroup(&args[2], &args[3]),
        Some("uring") => gaps::uring(args[2].parse().unwrap_or(0)),
        Some("uring-escape") => gaps::uring_escape(&args[2]),
        Some("int80") => gaps::int80_actions(args[2].parse().unwrap_or(0)),
        Some("connected") => gaps::connected(args[2].parse().unwrap_or(0)),
        Some("priv-gaps") => gaps::privilege_gaps(&args[2]),
        _ => {
            eprintln!(
                "usage: workload tree [--wait-stdin] | burst FORKS EXECS | file DIR | net DIR PORT | priv DIR"
            );
            std::process::exit(2);
        }
    }
}
