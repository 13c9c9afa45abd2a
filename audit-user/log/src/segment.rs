//! Segment files: naming, append-only creation, sealing, and reading lines
//! back. A store directory holds `seg-<first seq, 20 digits>.log` files
//! (`seg-<seq>-<n>.log` when a crash left a file with that name behind),
//! read in (seq, n) order, plus a `lock` file.
//!
//! Protection: each segment is opened O_APPEND and marked append-only
//! (FS_APPEND_FL, as `chattr +a`) when created; a sealed segment is also
//! marked immutable (FS_IMMUTABLE_FL, `chattr +i`). Both need
//! CAP_LINUX_IMMUTABLE and a filesystem that supports the flags; when refused
//! the store says so loudly, records it (`protection` record) and goes on.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::{Path, PathBuf},
};

use crate::keys::{KeyError, sync_dir};

pub const FS_IMMUTABLE_FL: libc::c_int = 0x10;
pub const FS_APPEND_FL: libc::c_int = 0x20;

/// Why a store directory's segments could not be listed, created or
/// unprotected.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("listing {}", dir.display())]
    List {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("creating segment {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("opening segment {} for appending", path.display())]
    OpenAppend {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("clearing append-only/immutable on {}", path.display())]
    Unprotect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The directory holding a new segment could not be synced.
    #[error(transparent)]
    SyncDir(#[from] KeyError),
}

/// Why a segment file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A FIFO, device, socket or directory where a segment should be: read
    /// it and verify could block forever or read something that is no log.
    #[error("{path} is a {what}, not a regular file: segments are regular files")]
    NotRegular { path: PathBuf, what: &'static str },
    /// The name is a symbolic link (only refused inside a store directory,
    /// where the store never makes one).
    #[error("{path} is a symbolic link inside the store directory: segments are regular files")]
    Symlink { path: PathBuf },
}

fn file_type_name(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFIFO => "FIFO",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        libc::S_IFSOCK => "socket",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symbolic link",
        _ => "special file",
    }
}

/// Opens a segment for reading, refusing anything but a regular file. The
/// open is non-blocking (opening a FIFO with no writer would block itself)
/// and, with `no_follow`, O_NOFOLLOW.
pub fn open_regular(path: &Path, no_follow: bool) -> Result<(File, u64), ReadError> {
    use std::os::unix::fs::MetadataExt;
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if no_follow {
        flags |= libc::O_NOFOLLOW;
    }
    let f = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        Err(e) if no_follow && e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::Symlink {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(ReadError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let meta = f.metadata().map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            what: file_type_name(meta.mode() as libc::mode_t),
        });
    }
    Ok((f, meta.len()))
}

/// Reads a whole segment into `buf` (cleared first): see [`open_regular`].
pub fn read_regular(path: &Path, no_follow: bool, buf: &mut Vec<u8>) -> Result<(), ReadError> {
    use std::io::Read;
    let (mut f, len) = open_regular(path, no_follow)?;
    buf.clear();
    buf.reserve(len as usize);
    f.read_to_end(buf).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// [`read_regular`] into a new buffer, following symbolic links.
pub fn read(path: &Path) -> Result<Vec<u8>, ReadError> {
    let mut v = Vec::new();
    read_regular(path, false, &mut v)?;
    Ok(v)
}

/// The file name of a segment whose first record is `first_seq`.
pub fn name(first_seq: u64, n: u32) -> String {
    if n == 0 {
        format!("seg-{first_seq:020}.log")
    } else {
        format!("seg-{first_seq:020}-{n}.log")
    }
}

/// (first seq, n) of a segment file name, or None for other files.
pub fn parse_name(name: &str) -> Option<(u64, u32)> {
    let rest = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    let (seq, n) = match rest.split_once('-') {
        Some((s, n)) => (s, n.parse().ok().filter(|&n| n > 0)?),
        None => (rest, 0),
    };
    (seq.len() == 20 && seq.bytes().all(|c| c.is_ascii_digit())).then_some(())?;
    Some((seq.parse().ok()?, n))
}

/// The segment files of a store directory, in log order.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, SegmentError> {
    let listing = |source| SegmentError::List {
        dir: dir.to_path_buf(),
        source,
    };
    let mut v = Vec::new();
    for e in fs::read_dir(dir).map_err(listing)? {
        let e = e.map_err(listing)?;
        if let Some(key) = e.file_name().to_str().and_then(parse_name) {
            v.push((key, e.path()));
        }
    }
    v.sort();
    Ok(v.into_iter().map(|(_, p)| p).collect())
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn ioctl_flags(f: &File) -> io::Result<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int through the pointer.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags)
}

fn ioctl_set(f: &File, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: FS_IOC_SETFLAGS reads one int through the pointer.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Adds inode flags (FS_APPEND_FL, FS_IMMUTABLE_FL) to an open file.
pub fn add_flags(f: &File, add: libc::c_int) -> io::Result<()> {
    let flags = ioctl_flags(f)?;
    if flags & add == add {
        return Ok(());
    }
    ioctl_set(f, flags | add)
}

/// The inode flags of a file, if the filesystem reports them.
pub fn flags(path: &Path) -> io::Result<libc::c_int> {
    ioctl_flags(&File::open(path)?)
}

/// Creates the next segment, append-only where the filesystem allows.
/// Returns the file, its path, and the error if the flag was refused.
pub fn create(
    dir: &Path,
    first_seq: u64,
) -> Result<(File, PathBuf, Option<io::Error>), SegmentError> {
    let mut n = 0;
    let (f, path) = loop {
        let path = dir.join(name(first_seq, n));
        match OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => break (f, path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(source) => return Err(SegmentError::Create { path, source }),
        }
    };
    let refused = add_flags(&f, FS_APPEND_FL).err();
    sync_dir(dir)?;
    Ok((f, path, refused))
}

/// Opens an existing segment for appending (O_APPEND is what an append-only
/// inode allows). Re-applies the append-only flag; returns its error if any.
pub fn open_append(path: &Path) -> Result<(File, Option<io::Error>), SegmentError> {
    let f = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| SegmentError::OpenAppend {
            path: path.to_path_buf(),
            source,
        })?;
    let refused = add_flags(&f, FS_APPEND_FL).err();
    Ok((f, refused))
}

/// Marks a finished segment immutable (`chattr +i`).
pub fn seal(path: &Path) -> io::Result<()> {
    add_flags(&File::open(path)?, FS_IMMUTABLE_FL)
}

/// Clears append-only and immutable flags (`chattr -a -i`) on every file in
/// `dir` and below: for tests and for operators retiring a store.
pub fn unprotect_tree(dir: &Path) -> Result<(), SegmentError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            unprotect_tree(&p)?;
        } else if let Ok(f) = File::open(&p)
            && let Ok(flags) = ioctl_flags(&f)
            && flags & (FS_APPEND_FL | FS_IMMUTABLE_FL) != 0
        {
            ioctl_set(&f, flags & !(FS_APPEND_FL | FS_IMMUTABLE_FL))
                .map_err(|source| SegmentError::Unprotect { path: p, source })?;
        }
    }
    Ok(())
}

/// Splits segment bytes into complete lines (without their `\n`), with each
/// line's byte offset, and the torn tail after the last `\n` (maybe empty).
pub fn split_lines(data: &[u8]) -> (Vec<(usize, &[u8])>, &[u8]) {
    let end = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
    let mut lines = Vec::new();
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', &data[..end]) {
        lines.push((start, &data[start..i]));
        start = i + 1;
    }
    (lines, &data[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_log_order() {
        assert_eq!(parse_name(&name(42, 0)), Some((42, 0)));
        assert_eq!(parse_name(&name(42, 3)), Some((42, 3)));
        for bad in [
            "seg-1.log",
            "seg-00000000000000000042-0.log",
            "x.log",
            "seg-0000000000000000004a.log",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        let t = tempfile::tempdir().unwrap();
        for n in [
            name(10, 0),
            name(9, 0),
            name(10, 2),
            name(10, 1),
            "lock".into(),
        ] {
            fs::write(t.path().join(n), b"").unwrap();
        }
        let names: Vec<String> = list(t.path())
            .unwrap()
            .iter()
            .map(|p| file_name(p))
            .collect();
        assert_eq!(names, [name(9, 0), name(10, 0), name(10, 1), name(10, 2)]);
    }

    #[test]
    fn created_segments_are_append_only_and_seal_immutable() {
        let t = tempfile::tempdir().unwrap();
        let (mut f, path, refused) = create(t.path(), 0).unwrap();
        if let Some(e) = refused {
            panic!("this test needs a filesystem with append-only support: {e}");
        }
        use std::io::Write;
        f.write_all(b"a\n").unwrap();
        assert!(
            OpenOptions::new().write(true).open(&path).is_err(),
            "non-append open allowed"
        );
        let (_, p2, _) = create(t.path(), 0).unwrap();
        assert_eq!(file_name(&p2), name(0, 1));
        seal(&path).unwrap();
        assert_ne!(flags(&path).unwrap() & FS_IMMUTABLE_FL, 0);
        assert!(
            OpenOptions::new().append(true).open(&path).is_err(),
            "append to sealed allowed"
        );
        unprotect_tree(t.path()).unwrap();
        assert_eq!(flags(&path).unwrap() & (FS_APPEND_FL | FS_IMMUTABLE_FL), 0);
    }

    #[test]
    fn split_keeps_offsets_and_torn_tail() {
        let (lines, torn) = split_lines(b"ab\n\ncd\nef");
        assert_eq!(lines, vec![(0, &b"ab"[..]), (3, &b""[..]), (4, &b"cd"[..])]);
        assert_eq!(torn, b"ef");
        assert_eq!(split_lines(b"x"), (vec![], &b"x"[..]));
    }
}
