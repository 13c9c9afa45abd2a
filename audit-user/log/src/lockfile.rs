//! The store's `lock` file: one writer per store (flock), and who it is.
//!
//! The holder writes `PID STARTTIME\n` into it (STARTTIME: field 22 of
//! /proc/PID/stat, which tells a reused pid apart). `verify` skips an
//! unfinished last line only when a *running sandbox-audit writing this
//! store* holds the lock: the flock is held, the kernel's lock table
//! (/proc/locks) names that pid as the holder of this very file, the pid
//! still has that start time, and its executable is sandbox-audit. Anyone
//! else holding the lock (any process can flock a file it can open) gets no
//! exemption.

use std::{
    fs::{self, File},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::Path,
};

/// The executable name a live writer must have.
pub const WRITER_EXE: &str = "sandbox-audit";

/// What the lock file of a store says about its writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writer {
    /// Nobody holds the lock: nothing is being written.
    None,
    /// A running sandbox-audit (this pid) holds the lock and writes here.
    Live { pid: u32 },
    /// Someone holds the lock, but it is not a sandbox-audit writing this
    /// store (or it cannot be shown to be): why.
    Foreign { why: String },
}

/// `PID STARTTIME\n` for this process.
pub fn contents() -> String {
    let pid = std::process::id();
    format!("{pid} {}\n", start_time(pid).unwrap_or(0))
}

/// Field 22 of /proc/PID/stat (after the parenthesised comm, which may
/// itself hold spaces and parentheses).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // After the comm: field 3 (state) is the first; 22 is the 20th.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Pids holding a FLOCK on the file with this device and inode, from
/// /proc/locks (`1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`).
fn flock_holders(dev: u64, ino: u64) -> Vec<u32> {
    let Ok(table) = fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let (major, minor) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    let mut pids = Vec::new();
    for line in table.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Blocked waiters are listed as "1: -> FLOCK ...": skip them.
        if f.len() < 6 || f[1] != "FLOCK" {
            continue;
        }
        let mut id = f[5].split(':');
        let (Some(ma), Some(mi), Some(i)) = (id.next(), id.next(), id.next()) else {
            continue;
        };
        let same = u64::from_str_radix(ma, 16).ok() == Some(major)
            && u64::from_str_radix(mi, 16).ok() == Some(minor)
            && i.parse::<u64>().ok() == Some(ino);
        if let (true, Ok(pid)) = (same, f[4].parse()) {
            pids.push(pid);
        }
    }
    pids
}

/// Who holds the lock of the store in `dir`.
pub fn writer(dir: &Path) -> Writer {
    let path = dir.join("lock");
    let Ok(f) = File::open(&path) else {
        return Writer::None;
    };
    // SAFETY: flock on an fd we own; released when `f` closes.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return Writer::None;
    }
    let foreign = |why: String| Writer::Foreign {
        why: format!("{} is locked, but {why}", path.display()),
    };
    let text = fs::read_to_string(&path).unwrap_or_default();
    let mut words = text.split_whitespace();
    let (Some(Ok(pid)), Some(Ok(start))) = (
        words.next().map(str::parse::<u32>),
        words.next().map(str::parse::<u64>),
    ) else {
        return foreign(format!(
            "it does not name its writer as `PID STARTTIME` ({:?})",
            text.trim()
        ));
    };
    let Ok(meta) = f.metadata() else {
        return foreign("it cannot be examined".into());
    };
    if !flock_holders(meta.dev(), meta.ino()).contains(&pid) {
        return foreign(format!("pid {pid}, which it names, does not hold the lock"));
    }
    if start_time(pid) != Some(start) {
        return foreign(format!(
            "pid {pid} is not the process that wrote it (start time differs)"
        ));
    }
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
    let name = exe
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A replaced binary shows as "sandbox-audit (deleted)".
    if name != WRITER_EXE && !name.starts_with(&format!("{WRITER_EXE} ")) {
        return foreign(format!(
            "pid {pid} is {}, not {WRITER_EXE}",
            exe.map_or("unknown".into(), |e| e.display().to_string())
        ));
    }
    Writer::Live { pid }
}
