//! The sandbox's mount namespace: the host's file tree, minus what reaches
//! the recorder. Runs in the sandbox's outer process (fresh mount namespace,
//! still the host's pid namespace) and, for /proc, in its init.
//!
//! - the log dir, the key dir, bpffs, tracefs and debugfs: covered by an
//!   empty read-only tmpfs (nothing to read, list, or create there);
//! - /dev: a fresh tmpfs with only null, zero, full, random, urandom, tty,
//!   pts and shm (no disk devices: raw reads of the log's filesystem);
//! - /sys: read-only, recursively (no uevent helper, no cgroup writes);
//! - /proc: a new proc of the sandbox's pid namespace, with /proc/sys and
//!   /proc/sysrq-trigger read-only (no core_pattern helper running on the
//!   host, no reboot).
//!
//! Root in the sandbox lacks CAP_SYS_ADMIN, so it cannot unmount any of it;
//! in a user namespace of its own the mounts are locked to it.

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

pub type Step<T> = Result<T, String>;

fn cstr(p: &Path) -> Step<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} contains a NUL", p.display()))
}

fn errno(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

fn mount(src: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> Step<()> {
    let (s, t, f, d) = (
        CString::new(src).unwrap_or_default(),
        cstr(target)?,
        CString::new(fstype).unwrap_or_default(),
        CString::new(data).unwrap_or_default(),
    );
    // SAFETY: valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            if fstype.is_empty() {
                std::ptr::null()
            } else {
                f.as_ptr()
            },
            flags,
            d.as_ptr().cast(),
        )
    };
    if rc < 0 {
        return Err(errno(&format!(
            "mounting {fstype} {src} on {}",
            target.display()
        )));
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// Makes `path` and every mount below it read-only (mount_setattr, 5.12+).
fn read_only_tree(path: &Path) -> Step<()> {
    let p = cstr(path)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid path and attr struct of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(errno(&format!("making {} read-only", path.display())));
    }
    Ok(())
}

/// Covers `dir` with an empty read-only tmpfs.
fn cover(dir: &Path) -> Step<()> {
    mount(
        "sandbox-audit-hidden",
        dir,
        "tmpfs",
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "size=4k,mode=0555",
    )
}

/// Directories covered besides the given ones, when present.
pub const KERNEL_INTERFACES: &[&str] = &["/sys/fs/bpf", "/sys/kernel/tracing", "/sys/kernel/debug"];

/// Devices the sandbox keeps (bind-mounted from the host's /dev).
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// The directories to hide, resolved: missing ones are skipped (nothing to
/// hide), symlinks followed so the mount lands on the real directory.
pub fn resolve_hidden(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = dirs
        .iter()
        .map(PathBuf::as_path)
        .chain(KERNEL_INTERFACES.iter().map(Path::new))
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .filter(|d| d.is_dir())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A detached copy of the mount at `path` (open_tree OPEN_TREE_CLONE).
fn clone_tree(path: &Path) -> Step<i32> {
    let p = cstr(path)?;
    const OPEN_TREE_CLONE: u32 = 1;
    // SAFETY: valid path.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            p.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | libc::AT_RECURSIVE as u32,
        )
    };
    if fd < 0 {
        return Err(errno(&format!("cloning the mount of {}", path.display())));
    }
    Ok(fd as i32)
}

/// Attaches a detached mount `fd` at `target` (move_mount).
fn attach(fd: i32, target: &Path) -> Step<()> {
    let t = cstr(target)?;
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 4;
    // SAFETY: valid fd and path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(errno(&format!("attaching a mount at {}", target.display())));
    }
    Ok(())
}

fn minimal_dev() -> Step<()> {
    let dev = Path::new("/dev");
    let mut keep = Vec::new();
    for name in DEVICES {
        let p = dev.join(name);
        if p.exists() {
            keep.push((p.clone(), clone_tree(&p)?, false));
        }
    }
    let pts = dev.join("pts");
    if pts.is_dir() {
        keep.push((pts.clone(), clone_tree(&pts)?, true));
    }
    mount(
        "sandbox-audit-dev",
        dev,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "size=64k,mode=0755",
    )?;
    for (path, fd, is_dir) in keep {
        let made = if is_dir {
            std::fs::create_dir(&path)
        } else {
            std::fs::File::create(&path).map(drop)
        };
        made.map_err(|e| format!("creating {}: {e}", path.display()))?;
        attach(fd, &path)?;
    }
    let shm = dev.join("shm");
    std::fs::create_dir(&shm).map_err(|e| format!("creating /dev/shm: {e}"))?;
    mount(
        "sandbox-audit-shm",
        &shm,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=1777",
    )?;
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))
            .map_err(|e| format!("creating /dev/{link}: {e}"))?;
    }
    Ok(())
}

/// Outer-process part: private propagation, hidden directories, /dev, /sys.
pub fn prepare(hidden: &[PathBuf]) -> Step<()> {
    let cwd = std::env::current_dir().ok();
    mount(
        "none",
        Path::new("/"),
        "",
        libc::MS_REC | libc::MS_PRIVATE,
        "",
    )?;
    for dir in hidden {
        cover(dir)?;
    }
    minimal_dev()?;
    read_only_tree(Path::new("/sys"))?;
    // A working directory inside a hidden directory would still reach the
    // covered files: resolve it again, now on top of the covers.
    let back = cwd.filter(|d| std::env::set_current_dir(d).is_ok());
    if back.is_none() {
        std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    }
    Ok(())
}

/// Init part (inside the new pid namespace): its own /proc.
pub fn own_proc() -> Step<()> {
    let proc_ = Path::new("/proc");
    mount(
        "proc",
        proc_,
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )?;
    for p in ["/proc/sys", "/proc/sysrq-trigger"] {
        let p = Path::new(p);
        if p.exists() {
            mount(
                &p.to_string_lossy(),
                p,
                "",
                libc::MS_BIND | libc::MS_REC,
                "",
            )?;
            read_only_tree(p)?;
        }
    }
    Ok(())
}
