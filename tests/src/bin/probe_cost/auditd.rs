//! The incumbent anchor: Debian's auditd (installed by `cargo xtask
//! bootstrap`) with rules for the syscalls the probes record, either not
//! matching the loop (another audit login uid: like a process outside the
//! scope) or capturing it. auditd runs in the foreground as our child with
//! its own config (log in a temp dir, rotated, so a bench run cannot fill
//! the disk), and is stopped, its rules deleted and auditing disabled
//! again after each use, so the other rows run without it.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use audit_capture::syscalls::TABLE;

use crate::loops::LOOP_AUID;

pub struct Auditd {
    child: Child,
    dir: PathBuf,
    /// The syscall names of the rules.
    syscalls: Vec<String>,
}

fn auditctl(args: &[&str]) -> Result<String> {
    let out = Command::new("auditctl")
        .args(args)
        .output()
        .context("running auditctl (install auditd: cargo xtask bootstrap)")?;
    if !out.status.success() {
        bail!(
            "auditctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One field of `auditctl -s` ("lost", "pid", …).
fn status(field: &str) -> Result<u64> {
    let s = auditctl(&["-s"])?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.trim().parse().ok())
        .with_context(|| format!("no {field} in auditctl -s: {s}"))
}

/// Events the kernel dropped so far.
pub fn lost() -> Result<u64> {
    status("lost ")
}

/// The x86_64 syscalls the probes record (not those they only watch for
/// bookkeeping: close, dup, fcntl) that auditd knows, plus the process
/// creations the probes record from sched tracepoints.
fn rule_syscalls() -> Result<Vec<String>> {
    let dump = Command::new("ausyscall")
        .args(["x86_64", "--dump"])
        .output()
        .context("running ausyscall")?;
    let known = String::from_utf8_lossy(&dump.stdout).into_owned();
    let known: Vec<&str> = known
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    // close_range and fcntl are of these kinds too.
    let bookkeeping = ["close", "dup"];
    let mut names: Vec<String> = TABLE
        .iter()
        .filter(|d| !bookkeeping.contains(&d.kind))
        .map(|d| d.name)
        .chain(["clone", "clone3", "fork", "vfork"])
        .filter(|n| known.contains(n))
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

impl Auditd {
    pub fn start(tmp: &Path) -> Result<Auditd> {
        if status("pid ")? != 0 {
            bail!("an audit daemon is already running: not touching it");
        }
        let dir = tmp.join("auditd");
        std::fs::create_dir_all(&dir)?;
        let conf = format!(
            "log_file = {}/audit.log\nlog_format = ENRICHED\nflush = INCREMENTAL_ASYNC\nfreq = 50\n\
             max_log_file = 64\nnum_logs = 2\nmax_log_file_action = ROTATE\n\
             space_left = 75\nspace_left_action = SYSLOG\nadmin_space_left = 50\n\
             admin_space_left_action = SUSPEND\ndisk_full_action = SUSPEND\n\
             disk_error_action = SUSPEND\nq_depth = 2000\noverflow_action = SYSLOG\n\
             local_events = yes\nwrite_logs = yes\n",
            dir.display()
        );
        let path = dir.join("auditd.conf");
        std::fs::write(&path, conf)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))?;
        let child = Command::new("auditd")
            .args(["-n", "-c"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting auditd")?;
        let mut d = Auditd {
            child,
            dir,
            syscalls: rule_syscalls()?,
        };
        let t = Instant::now();
        while status("pid ")? == 0 {
            if t.elapsed() > Duration::from_secs(20) || d.child.try_wait()?.is_some() {
                bail!("auditd did not register with the kernel");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        auditctl(&["-b", "8192"])?;
        Ok(d)
    }

    /// Replaces the rules: the syscalls for loops run under `auid`.
    pub fn rules(&mut self, auid: u32) -> Result<()> {
        auditctl(&["-D"])?;
        let auid = format!("auid={auid}");
        let mut args = vec!["-a", "always,exit", "-F", "arch=b64"];
        for s in &self.syscalls {
            args.extend(["-S", s.as_str()]);
        }
        args.extend(["-F", auid.as_str()]);
        auditctl(&args)?;
        Ok(())
    }

    /// Rules that match the loops.
    pub fn capturing(&mut self) -> Result<()> {
        self.rules(LOOP_AUID)
    }

    /// The same rules for another login uid.
    pub fn not_matching(&mut self) -> Result<()> {
        self.rules(LOOP_AUID + 1)
    }

    /// Bytes auditd has logged.
    pub fn logged_bytes(&self) -> u64 {
        ["audit.log", "audit.log.1"]
            .iter()
            .map(|f| std::fs::metadata(self.dir.join(f)).map_or(0, |m| m.len()))
            .sum()
    }

    pub fn stop(mut self) -> Result<()> {
        auditctl(&["-D"])?;
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait()?;
        auditctl(&["-e", "0"])?;
        Ok(())
    }
}
