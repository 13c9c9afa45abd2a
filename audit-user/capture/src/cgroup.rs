//! cgroup v2 plumbing: where the hierarchy is mounted, what id and level a
//! cgroup has (the in-kernel scope filter compares those), and the few
//! operations `exec` needs (create, move a process in, wait until empty).

use std::{
    fs,
    io::Write,
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
};

use thiserror::Error;

/// A cgroup operation failed; every variant names the file or directory.
#[derive(Debug, Error)]
pub enum CgroupError {
    /// `doing` is what was attempted ("reading", "creating cgroup", …).
    #[error("{doing} {}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no cgroup v2 hierarchy is mounted (looked for fstype cgroup2 in /proc/self/mountinfo); mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified`"
    )]
    NoCgroup2,
    #[error("cgroup {} does not exist (looked at {})", given.display(), looked_at.display())]
    NotFound {
        given: PathBuf,
        looked_at: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a cgroup v2 directory (no cgroup.procs)", path.display())]
    NotCgroupDir { path: PathBuf },
    #[error("{} is outside the cgroup v2 hierarchy at {}", path.display(), mount.display())]
    Outside { path: PathBuf, mount: PathBuf },
    #[error("{} has no `populated` line", path.display())]
    NoPopulatedLine { path: PathBuf },
    #[error("moving pid {pid} into {}", cgroup.display())]
    MovePid {
        pid: u32,
        cgroup: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, CgroupError>;

/// Names the path of a failed file operation.
fn io(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io {
        doing,
        path,
        source,
    }
}

/// A cgroup the probes filter on: everything at or below it is audited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupTarget {
    pub path: PathBuf,
    /// cgroup id as `bpf_get_current_cgroup_id()` returns it (the directory's inode).
    pub id: u64,
    /// Depth below the hierarchy root (root = 0).
    pub level: u32,
}

/// The mounted cgroup v2 hierarchy.
#[derive(Clone, Debug)]
pub struct Cgroup2 {
    pub mount: PathBuf,
}

/// Undoes the octal escapes (`\040` for space) mountinfo uses in paths.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Finds the cgroup2 mount point in a mountinfo text (first one wins).
pub fn find_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        let fstype = post.split_whitespace().next()?;
        let mount_point = pre.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mountinfo(mount_point)))
    })
}

impl Cgroup2 {
    pub fn find() -> Result<Cgroup2> {
        let mountinfo = Path::new("/proc/self/mountinfo");
        let info = fs::read_to_string(mountinfo).map_err(io("reading", mountinfo))?;
        let mount = find_cgroup2_mount(&info).ok_or(CgroupError::NoCgroup2)?;
        Ok(Cgroup2 { mount })
    }

    /// Resolves a user-given cgroup: an absolute path inside the hierarchy, or
    /// a path relative to its root as /proc/PID/cgroup shows it ("0::/a/b").
    pub fn target(&self, given: &Path) -> Result<CgroupTarget> {
        let candidate = if given.starts_with(&self.mount) {
            given.to_path_buf()
        } else {
            let rel: PathBuf = given
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            self.mount.join(rel)
        };
        let meta = fs::metadata(&candidate).map_err(|source| CgroupError::NotFound {
            given: given.to_path_buf(),
            looked_at: candidate.clone(),
            source,
        })?;
        if !meta.is_dir() || !candidate.join("cgroup.procs").exists() {
            return Err(CgroupError::NotCgroupDir { path: candidate });
        }
        let canon = fs::canonicalize(&candidate).map_err(io("resolving", &candidate))?;
        let mount = fs::canonicalize(&self.mount).map_err(io("resolving", &self.mount))?;
        let rel = canon
            .strip_prefix(&mount)
            .map_err(|_| CgroupError::Outside {
                path: canon.clone(),
                mount: mount.clone(),
            })?;
        Ok(CgroupTarget {
            path: canon.clone(),
            id: meta.ino(),
            level: rel.components().count() as u32,
        })
    }

    /// Creates (if needed) the cgroup at `rel` below the root and resolves it.
    pub fn create(&self, rel: &Path) -> Result<CgroupTarget> {
        let path = self.mount.join(rel);
        fs::create_dir_all(&path).map_err(io("creating cgroup", &path))?;
        self.target(&path)
    }
}

/// The pids (tgids) currently in the cgroup itself (not its children).
pub fn procs(cg: &Path) -> Result<Vec<u32>> {
    let p = cg.join("cgroup.procs");
    let text = fs::read_to_string(&p).map_err(io("reading", &p))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The pids in the cgroup and all cgroups below it.
pub fn procs_below(cg: &Path) -> Result<Vec<u32>> {
    let mut out = procs(cg)?;
    for e in fs::read_dir(cg).map_err(io("listing", cg))?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(procs_below(&e.path())?);
        }
    }
    Ok(out)
}

/// True while any process lives in the cgroup or below it (cgroup.events).
pub fn populated(cg: &Path) -> Result<bool> {
    let p = cg.join("cgroup.events");
    let text = fs::read_to_string(&p).map_err(io("reading", &p))?;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("populated ") {
            return Ok(v.trim() != "0");
        }
    }
    Err(CgroupError::NoPopulatedLine { path: p })
}

/// Moves process `pid` into the cgroup.
pub fn move_pid(cg: &Path, pid: u32) -> Result<()> {
    let p = cg.join("cgroup.procs");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .map_err(io("opening", &p))?;
    f.write_all(format!("{pid}\n").as_bytes())
        .map_err(|source| CgroupError::MovePid {
            pid,
            cgroup: cg.to_path_buf(),
            source,
        })
}

/// Kills every process in the cgroup and below (cgroup.kill, Linux ≥ 5.14;
/// otherwise SIGKILL to each listed pid).
pub fn kill_all(cg: &Path) -> Result<()> {
    let k = cg.join("cgroup.kill");
    if k.exists() {
        return fs::write(&k, "1").map_err(io("writing", &k));
    }
    for pid in procs(cg)? {
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    Ok(())
}

/// Removes an empty cgroup directory and its (empty) children, deepest first.
pub fn remove(cg: &Path) -> Result<()> {
    if let Ok(entries) = fs::read_dir(cg) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove(&e.path())?;
            }
        }
    }
    fs::remove_dir(cg).map_err(io("removing cgroup", cg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_hybrid_mountinfo() {
        let info = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 30 0:35 / /sys/fs/cgroup/uni\\040fied rw,relatime shared:9 - cgroup2 cgroup2 rw
";
        assert_eq!(
            find_cgroup2_mount(info),
            Some(PathBuf::from("/sys/fs/cgroup/uni fied"))
        );
        assert_eq!(
            find_cgroup2_mount("1 2 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
        assert_eq!(find_cgroup2_mount("garbage\n\n - \n"), None);
    }

    #[test]
    fn this_machine_has_cgroup2_and_root_is_level_0() {
        let cg = Cgroup2::find().unwrap();
        let root = cg.target(&cg.mount).unwrap();
        assert_eq!(root.level, 0);
        let err = cg
            .target(Path::new("/definitely/not/a/cgroup"))
            .unwrap_err();
        assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    }
}
