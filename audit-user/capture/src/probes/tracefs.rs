//! tracefs: which syscalls this kernel has (their `syscalls:*` events), the
//! io_uring tracepoint formats, and — for the tracepoint fallback — the
//! syscall tracepoints' record layout, checked at load time rather than
//! assumed: those probes read `__syscall_nr` at offset 8, arguments from 16
//! in 8-byte slots, and `ret` at 16.

use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted (no /sys/kernel/tracing/events): mount it with `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    NotMounted,
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// (nr, first arg, ret) offsets as found.
    #[error(
        "unexpected syscall tracepoint layout on this kernel (nr, first arg, ret offsets = {0:?}; the probes assume 8, 16, 16)"
    )]
    Layout((Option<usize>, Option<usize>, Option<usize>)),
}

fn tracefs_root() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("events").is_dir())
}

/// tracefs must be mounted: which syscalls this kernel has is read there.
pub fn require() -> Result<(), TracefsError> {
    tracefs_root().map(|_| ()).ok_or(TracefsError::NotMounted)
}

pub fn has_syscall_tracepoint(name: &str) -> bool {
    tracefs_root().is_some_and(|r| r.join(format!("events/syscalls/sys_enter_{name}")).is_dir())
}

/// The format file of tracepoint `group:event`, if this kernel has it.
pub fn event_format(group: &str, event: &str) -> Option<String> {
    let root = tracefs_root()?;
    std::fs::read_to_string(root.join(format!("events/{group}/{event}/format"))).ok()
}

/// Field offsets of one tracepoint format file, by field name.
pub fn field_offset(format: &str, field: &str) -> Option<usize> {
    format.lines().find_map(|l| {
        let l = l.trim();
        let decl = l.strip_prefix("field:")?.split(';').next()?;
        let name = decl.rsplit([' ', '*']).next()?;
        if name != field {
            return None;
        }
        let off = l
            .split(';')
            .find_map(|p| p.trim().strip_prefix("offset:"))?;
        off.trim().parse().ok()
    })
}

pub fn check_syscall_layout() -> Result<(), TracefsError> {
    let root = tracefs_root().ok_or(TracefsError::NotMounted)?;
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| TracefsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let enter = read(&root.join("events/syscalls/sys_enter_openat/format"))?;
    let exit = read(&root.join("events/syscalls/sys_exit_openat/format"))?;
    let got = (
        field_offset(&enter, "__syscall_nr"),
        field_offset(&enter, "dfd"),
        field_offset(&exit, "ret"),
    );
    if got != (Some(8), Some(16), Some(16)) {
        return Err(TracefsError::Layout(got));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_format_fields() {
        let f = "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n";
        assert_eq!(field_offset(f, "__syscall_nr"), Some(8));
        assert_eq!(field_offset(f, "filename"), Some(24));
        assert_eq!(field_offset(f, "nope"), None);
        assert_eq!(field_offset("garbage", "x"), None);
    }

    #[test]
    fn this_kernel_matches() {
        check_syscall_layout().unwrap();
    }
}
