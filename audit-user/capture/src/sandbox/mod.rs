//! Isolation for `exec`: CMD runs where it cannot read, alter, stop, blind
//! or leave the recorder. A fresh exec of our own binary sets it up (see
//! [`init`]): new pid, mount and cgroup namespaces (and optionally network),
//! a minimal init, the recorder's directories hidden, capabilities dropped,
//! no_new_privs, an optional unprivileged user, and a seccomp filter whose
//! refusals the agent records ([`supervisor`]). [`watchdog`] is `run
//! --fail-closed`.

pub mod caps;
pub mod channel;
pub mod init;
pub mod mounts;
pub mod seccomp;
pub mod supervisor;
pub mod watchdog;

use std::{
    ffi::OsString,
    fs::File,
    io::{Read, Seek, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, process::CommandExt},
    },
    path::PathBuf,
    process::{Child, Command},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use crate::record::Json;

/// argv[1] that makes our binary the sandbox's outer process.
pub const INIT_ARG: &str = "__sandbox-init";
/// argv[1] that makes our binary the `run --fail-closed` watchdog.
pub const WATCHDOG_ARG: &str = "__sandbox-watchdog";

/// What the sandbox gets, chosen on the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxOptions {
    /// Run CMD as this uid:gid (no capabilities at all then).
    pub user: Option<(u32, u32)>,
    /// An empty network namespace (no interfaces but a down loopback).
    pub net_none: bool,
    /// Directories CMD must not see (the log dir and the key dir).
    pub hidden: Vec<PathBuf>,
}

/// Everything the sandbox's processes need, handed over on an fd.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxConfig {
    pub program: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub hidden: Vec<PathBuf>,
    pub user: Option<(u32, u32)>,
    pub net_none: bool,
}

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("{what}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding the sandbox configuration")]
    Encode(#[from] serde_json::Error),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |source| SandboxError::Io { what, source }
}

impl SandboxConfig {
    pub fn new(program: &std::path::Path, argv: &[OsString], opts: &SandboxOptions) -> Self {
        SandboxConfig {
            program: program.as_os_str().as_bytes().to_vec(),
            argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
            hidden: mounts::resolve_hidden(&opts.hidden),
            user: opts.user,
            net_none: opts.net_none,
        }
    }

    /// Exactly what the sandbox was given, for the `start` record.
    pub fn describe(&self) -> Json {
        let mut namespaces = vec!["pid", "mount", "cgroup"];
        if self.net_none {
            namespaces.push("network");
        }
        let user = match self.user {
            Some((u, g)) => json!({"uid": u, "gid": g, "groups": [g]}),
            None => json!("inherited"),
        };
        let dropped: Vec<&str> = caps::DROPPED.iter().map(|(n, _)| *n).collect();
        let kept = match self.user {
            Some((0, _)) | None => caps::kept(caps::bounding_set()),
            Some(_) => Vec::new(),
        };
        let denied: Vec<&str> = seccomp::DENIED.iter().map(|(n, _)| *n).collect();
        let v = json!({
            "isolation": "sandbox",
            "namespaces": namespaces,
            "network": if self.net_none { "none" } else { "host" },
            "init": "sandbox-init (pid 1: forwards signals, reaps orphans, exits with CMD's status)",
            "proc": "own (pid namespace); /proc/sys and /proc/sysrq-trigger read-only",
            "hidden": self.hidden.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
            "read_only": ["/sys"],
            "dev": mounts::DEVICES.iter().chain(["pts", "shm"].iter()).collect::<Vec<_>>(),
            "user": user,
            "capabilities_dropped": dropped,
            "capabilities": kept,
            "no_new_privs": 1,
            "seccomp": {
                "mechanism": "user_notif",
                "action": "record_and_fail_eperm",
                "denied_syscalls": denied,
                "denied_abis": seccomp::DENIED_ABIS,
            },
            "fail_closed": {
                "agent_death": "sandbox killed (PR_SET_PDEATHSIG on its init, pid namespace)",
                "log_failure": "sandbox frozen and killed before the probes detach",
            },
        });
        match v {
            Value::Object(m) => m,
            _ => Json::new(),
        }
    }
}

/// The running sandbox, from the agent's side.
pub struct Sandbox {
    /// The outer process (our child; its status is CMD's).
    pub outer: Child,
    /// The agent's end of the control channel.
    pub control: OwnedFd,
}

fn clear_cloexec(fd: i32) -> std::io::Result<()> {
    // SAFETY: fcntl on an fd we own in this (forked) process.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Starts the sandbox's outer process from a fresh exec of this binary.
/// `procs` is the audited cgroup's cgroup.procs, open for writing.
pub fn spawn(cfg: &SandboxConfig, procs: &File) -> Result<Sandbox, SandboxError> {
    let mut config = memfd()?;
    config
        .write_all(&serde_json::to_vec(cfg)?)
        .map_err(io("writing the sandbox configuration"))?;
    let (agent_end, sandbox_end) = channel::pair().map_err(io("creating the control channel"))?;
    let fds = [
        config.as_raw_fd(),
        sandbox_end.as_raw_fd(),
        procs.as_raw_fd(),
    ];
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("sandbox-init")
        .arg(INIT_ARG)
        .args(fds.iter().map(|f| f.to_string()))
        .arg(std::process::id().to_string());
    // SAFETY: the closure only calls fcntl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for fd in fds {
                clear_cloexec(fd)?;
            }
            Ok(())
        });
    }
    let outer = cmd.spawn().map_err(io("starting the sandbox"))?;
    drop(sandbox_end);
    Ok(Sandbox {
        outer,
        control: agent_end,
    })
}

fn memfd() -> Result<File, SandboxError> {
    // SAFETY: valid name; the fd is fresh and ours.
    let fd = unsafe { libc::memfd_create(c"sandbox-config".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io("creating the configuration memfd")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fresh fd.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Runs the helper process this binary was started as, if any: call first
/// thing in `main`. Returns only when this is not a helper.
pub fn run_if_helper() {
    let mut args = std::env::args_os().skip(1);
    let Some(first) = args.next() else { return };
    if first == INIT_ARG {
        let Some((config, sock, procs, agent)) = init::parse_args(args) else {
            eprintln!("sandbox-init: bad arguments");
            std::process::exit(125);
        };
        // SAFETY: the agent passed us this fd.
        let mut file = unsafe { File::from_raw_fd(config) };
        let mut text = Vec::new();
        let read = file
            .rewind()
            .and_then(|_| file.read_to_end(&mut text))
            .map_err(|e| e.to_string())
            .and_then(|_| {
                serde_json::from_slice::<SandboxConfig>(&text).map_err(|e| e.to_string())
            });
        drop(file);
        match read {
            Ok(cfg) => init::outer_main(cfg, sock, procs, agent),
            Err(e) => {
                let _ = channel::send_message(
                    sock,
                    &channel::Message::SetupFailed(format!("reading the configuration: {e}")),
                );
                std::process::exit(125);
            }
        }
    } else if first == WATCHDOG_ARG {
        watchdog::main(args);
    }
}

/// Makes this process undumpable: no core dumps, /proc/PID files owned by
/// root, ptrace only with CAP_SYS_PTRACE (which the sandbox lacks).
pub fn protect_agent() {
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
}
