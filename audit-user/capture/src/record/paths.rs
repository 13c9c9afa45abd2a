//! Paths in syscall records: the raw argument, the directory the kernel
//! resolved it against, or the file an fd refers to — assembled into one
//! absolute path plus a word saying how it was obtained.

use audit_common::syscall::{arg_data_flags, arg_data_kind};

use crate::decode::{ArgData, Captures};

/// How the `path` of a record was obtained (documented in docs/FORMAT.md).
pub mod resolution {
    /// The argument was absolute; recorded as given.
    pub const AS_GIVEN: &str = "as_given";
    /// Relative argument joined to the caller's working directory.
    pub const CWD: &str = "cwd";
    /// Relative argument joined to the directory behind the dirfd argument.
    pub const DIRFD: &str = "dirfd";
    /// The file behind an fd argument.
    pub const FD: &str = "fd";
    /// The file the syscall opened (from the returned fd): symlinks resolved.
    pub const OPENED_FILE: &str = "opened_file";
    /// The entry an LSM path hook saw (unlink, mkdir, rename), walked from
    /// the dentry the kernel resolved: no TOCTOU window, symlinks and `..`
    /// resolved.
    pub const RESOLVED_DENTRY: &str = "resolved_dentry";
    /// Relative argument whose directory could not be resolved: as given.
    pub const UNRESOLVED: &str = "unresolved";
    /// The file is not reachable from the caller's root (an anonymous
    /// inode, or outside its chroot): the path is from the global root.
    pub const OUTSIDE_ROOT: &str = "outside_root";
}

pub struct Resolved {
    pub path: Vec<u8>,
    pub resolution: &'static str,
    /// Some component or the argument was cut at a bound.
    pub truncated: bool,
}

/// Joins leaf-first NUL-terminated components into an absolute path.
pub fn from_components(c: &ArgData) -> Resolved {
    let mut names: Vec<&[u8]> = c.bytes.split(|&b| b == 0).collect();
    if c.bytes.last() == Some(&0) || c.bytes.is_empty() {
        names.pop();
    }
    let mut path = Vec::new();
    for n in names.iter().rev() {
        path.push(b'/');
        path.extend_from_slice(n);
    }
    if path.is_empty() && c.flags & arg_data_flags::OUTSIDE_ROOT == 0 {
        path.push(b'/');
    }
    let truncated = c.flags & (arg_data_flags::TRUNCATED | arg_data_flags::DEPTH_LIMIT) != 0;
    let resolution = if c.flags & arg_data_flags::OUTSIDE_ROOT != 0 {
        resolution::OUTSIDE_ROOT
    } else {
        ""
    };
    Resolved {
        path,
        resolution,
        truncated,
    }
}

/// The file behind fd argument `slot` (or the returned fd, slot RET).
pub fn fd_path(sc: &impl Captures, slot: u8, how: &'static str) -> Option<Resolved> {
    let c = sc.arg_data(arg_data_kind::PATH_COMPONENTS, slot)?;
    let mut r = from_components(c);
    if r.resolution.is_empty() {
        r.resolution = how;
    }
    Some(r)
}

/// A path argument in `slot`: (the raw argument, its resolution).
pub fn path_arg(sc: &impl Captures, slot: u8) -> Option<(Vec<u8>, Resolved)> {
    let raw_cap = sc.arg_data(arg_data_kind::STRING, slot)?;
    let raw = raw_cap.bytes.clone();
    let raw_truncated = raw_cap.flags & arg_data_flags::TRUNCATED != 0;
    if raw.first() == Some(&b'/') {
        let r = Resolved {
            path: raw.clone(),
            resolution: resolution::AS_GIVEN,
            truncated: raw_truncated,
        };
        return Some((raw, r));
    }
    let Some(dir) = sc.arg_data(arg_data_kind::PATH_COMPONENTS, slot) else {
        let r = Resolved {
            path: raw.clone(),
            resolution: resolution::UNRESOLVED,
            truncated: raw_truncated,
        };
        return Some((raw, r));
    };
    let mut r = from_components(dir);
    if r.resolution.is_empty() {
        r.resolution = if dir.flags & arg_data_flags::FROM_CWD != 0 {
            resolution::CWD
        } else {
            resolution::DIRFD
        };
    }
    // An empty path (AT_EMPTY_PATH) names the directory itself.
    if !raw.is_empty() {
        if r.path.last() != Some(&b'/') {
            r.path.push(b'/');
        }
        r.path.extend_from_slice(&raw);
    }
    r.truncated |= raw_truncated;
    Some((raw, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(bytes: &[u8], flags: u8) -> ArgData {
        ArgData {
            kind: arg_data_kind::PATH_COMPONENTS,
            slot: 1,
            flags,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn components_join_root_first() {
        assert_eq!(from_components(&comps(b"c\0b\0a\0", 0)).path, b"/a/b/c");
        assert_eq!(from_components(&comps(b"", 0)).path, b"/");
        let r = from_components(&comps(b"x\0", arg_data_flags::OUTSIDE_ROOT));
        assert_eq!(
            (r.path.as_slice(), r.resolution),
            (&b"/x"[..], resolution::OUTSIDE_ROOT)
        );
        assert!(from_components(&comps(b"a\0", arg_data_flags::DEPTH_LIMIT)).truncated);
    }
}
