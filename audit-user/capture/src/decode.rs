//! Stage 2: raw ring-buffer bytes → typed kernel events. Pure and total: any
//! byte string yields either an event or a [`DecodeError`] that the caller
//! records (a malformed event is reported, never dropped).

use std::mem::size_of;

use audit_common::{
    event::{
        CGROUP_PATH_MAX, CgroupMigrateEvent, EventHeader, ExecEvent, ExitEvent, ForkEvent,
        IoUringEvent,
    },
    kind::EventKind,
    syscall::{ArgDataHeader, SyscallEvent},
};
use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    pub raw: ExecEvent,
    pub filename: Vec<u8>,
    /// argv bytes as laid out by the kernel: NUL-terminated strings.
    pub argv: Vec<u8>,
}

/// One piece of data a syscall probe captured (see `audit_common::syscall`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgData {
    pub kind: u8,
    pub slot: u8,
    pub flags: u8,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syscall {
    pub raw: SyscallEvent,
    pub arg_data: Vec<ArgData>,
}

/// Events that carry captures in the syscall capture format.
pub trait Captures {
    fn all_arg_data(&self) -> &[ArgData];

    /// Captures of `kind` for argument `slot`.
    fn arg_data(&self, kind: u8, slot: u8) -> Option<&ArgData> {
        self.all_arg_data()
            .iter()
            .find(|c| c.kind == kind && c.slot == slot)
    }
}

impl Captures for Syscall {
    fn all_arg_data(&self) -> &[ArgData] {
        &self.arg_data
    }
}

/// A completed io_uring request, with captures in the syscall format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoUring {
    pub raw: IoUringEvent,
    pub arg_data: Vec<ArgData>,
}

impl Captures for IoUring {
    fn all_arg_data(&self) -> &[ArgData] {
        &self.arg_data
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Exec(Exec),
    Fork(ForkEvent),
    Exit(ExitEvent),
    Syscall(Syscall),
    CgroupMigrate(CgroupMigrate),
    IoUring(IoUring),
}

/// A cgroup migration; `path` is the destination, relative to its hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMigrate {
    /// Boxed: the fixed path slot makes it much larger than other events.
    pub raw: Box<CgroupMigrateEvent>,
    pub path: Vec<u8>,
}

impl Event {
    pub fn header(&self) -> &EventHeader {
        match self {
            Event::Exec(e) => &e.raw.header,
            Event::Fork(e) => &e.header,
            Event::Exit(e) => &e.header,
            Event::Syscall(e) => &e.raw.header,
            Event::CgroupMigrate(e) => &e.raw.header,
            Event::IoUring(e) => &e.raw.header,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event of {len} bytes is shorter than its {need}-byte fixed part")]
    Short { len: usize, need: usize },
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("header says {said} bytes but the ring buffer gave {got}")]
    SizeMismatch { said: u32, got: usize },
    #[error("exec data lengths ({filename} + {argv}) exceed the event's {available} bytes")]
    ExecLengths {
        filename: u32,
        argv: u32,
        available: usize,
    },
    #[error("cgroup path length {0} exceeds the event's path slot")]
    CgroupPathLength(u32),
    #[error("syscall capture at byte {at} claims {len} bytes, past the event's end")]
    ArgDataLength { at: usize, len: u32 },
}

/// Copies a `#[repr(C)]` wire struct out of the front of `bytes`.
fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need: size_of::<T>(),
        });
    }
    // SAFETY: length checked; the wire structs are plain integers and byte
    // arrays, valid for any bit pattern; read_unaligned tolerates any alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: EventHeader = read(bytes)?;
    // The ring buffer pads records to 8 bytes, so it may hand us more than
    // the header says, never less.
    if (header.size as usize) > bytes.len() || (header.size as usize) < size_of::<EventHeader>() {
        return Err(DecodeError::SizeMismatch {
            said: header.size,
            got: bytes.len(),
        });
    }
    let bytes = &bytes[..header.size as usize];
    match EventKind::from_u32(header.kind) {
        Some(EventKind::Exec) => {
            let raw: ExecEvent = read(bytes)?;
            let data = &bytes[size_of::<ExecEvent>()..];
            let (f, a) = (raw.filename_len as usize, raw.argv_len as usize);
            if f.checked_add(a).is_none_or(|n| n > data.len()) {
                return Err(DecodeError::ExecLengths {
                    filename: raw.filename_len,
                    argv: raw.argv_len,
                    available: data.len(),
                });
            }
            Ok(Event::Exec(Exec {
                raw,
                filename: data[..f].to_vec(),
                argv: data[f..f + a].to_vec(),
            }))
        }
        Some(EventKind::Fork) => Ok(Event::Fork(read(bytes)?)),
        Some(EventKind::Exit) => Ok(Event::Exit(read(bytes)?)),
        Some(EventKind::Syscall) => {
            let raw: SyscallEvent = read(bytes)?;
            let arg_data = captures(&bytes[size_of::<SyscallEvent>()..], raw.data_len)?;
            Ok(Event::Syscall(Syscall { raw, arg_data }))
        }
        Some(EventKind::CgroupMigrate) => {
            let raw: CgroupMigrateEvent = read(bytes)?;
            let len = raw.path_len as usize;
            if len > CGROUP_PATH_MAX {
                return Err(DecodeError::CgroupPathLength(raw.path_len));
            }
            Ok(Event::CgroupMigrate(CgroupMigrate {
                path: raw.path[..len].to_vec(),
                raw: Box::new(raw),
            }))
        }
        Some(EventKind::IoUring) => {
            let raw: IoUringEvent = read(bytes)?;
            let arg_data = captures(&bytes[size_of::<IoUringEvent>()..], raw.data_len)?;
            Ok(Event::IoUring(IoUring { raw, arg_data }))
        }
        None => Err(DecodeError::UnknownKind(header.kind)),
    }
}

/// The captures in the first `data_len` bytes of `data`.
fn captures(mut data: &[u8], data_len: u32) -> Result<Vec<ArgData>, DecodeError> {
    if (data_len as usize) < data.len() {
        data = &data[..data_len as usize];
    }
    let mut arg_data = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let h: ArgDataHeader = read(&data[at..])?;
        let start = at + size_of::<ArgDataHeader>();
        let end = start
            .checked_add(h.len as usize)
            .filter(|&e| e <= data.len());
        let Some(end) = end else {
            return Err(DecodeError::ArgDataLength { at, len: h.len });
        };
        arg_data.push(ArgData {
            kind: h.kind,
            slot: h.slot,
            flags: h.flags,
            bytes: data[start..end].to_vec(),
        });
        at = end;
    }
    Ok(arg_data)
}

/// Splits the kernel's argv area into arguments. Each argument ends with a
/// NUL; a final piece without NUL (cut by the bound) is kept as-is.
pub fn split_argv(area: &[u8]) -> Vec<Vec<u8>> {
    if area.is_empty() {
        return Vec::new();
    }
    let mut args: Vec<Vec<u8>> = area.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    // `split` yields one empty piece after the final NUL terminator.
    if area.last() == Some(&0) {
        args.pop();
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_migrate_decodes_and_bounds_its_path() {
        let mut ev = CgroupMigrateEvent {
            header: header(EventKind::CgroupMigrate, size_of::<CgroupMigrateEvent>()),
            target_pid: 9,
            dst_level: 0,
            dst_id: 1,
            hierarchy_id: 0,
            flags: 1,
            path_len: 1,
            _pad: 0,
            path: [0; CGROUP_PATH_MAX],
        };
        ev.path[0] = b'/';
        ev.path[1] = b'x'; // past path_len: not part of the path
        match decode(&bytes_of(&ev)).unwrap() {
            Event::CgroupMigrate(m) => {
                assert_eq!(m.path, b"/");
                assert_eq!(m.raw.target_pid, 9);
            }
            other => panic!("{other:?}"),
        }
        ev.path_len = CGROUP_PATH_MAX as u32 + 1;
        assert_eq!(
            decode(&bytes_of(&ev)),
            Err(DecodeError::CgroupPathLength(CGROUP_PATH_MAX as u32 + 1))
        );
    }
    use audit_common::event::{EXEC_DATA_MAX, exec_flags};

    fn header(kind: EventKind, size: usize) -> EventHeader {
        EventHeader {
            kind: kind as u32,
            size: size as u32,
            tgid: 7,
            ..EventHeader::zeroed()
        }
    }

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
    }

    fn exec_bytes(filename: &[u8], argv: &[u8]) -> Vec<u8> {
        let size = size_of::<ExecEvent>() + filename.len() + argv.len();
        let ev = ExecEvent {
            header: header(EventKind::Exec, size),
            old_pid: 7,
            argc: 2,
            filename_len: filename.len() as u32,
            argv_len: argv.len() as u32,
            argv_total_len: argv.len() as u32,
            flags: exec_flags::ARGV_TRUNCATED,
        };
        let mut b = bytes_of(&ev);
        b.extend_from_slice(filename);
        b.extend_from_slice(argv);
        b.extend_from_slice(&[0; 5]); // ring-buffer padding
        b
    }

    #[test]
    fn exec_round_trip() {
        let b = exec_bytes(b"/bin/echo", b"echo\0a b\0");
        let Event::Exec(e) = decode(&b).unwrap() else {
            panic!("not exec")
        };
        assert_eq!(e.filename, b"/bin/echo");
        assert_eq!(split_argv(&e.argv), vec![b"echo".to_vec(), b"a b".to_vec()]);
        assert_eq!(e.raw.flags, exec_flags::ARGV_TRUNCATED);
        assert_eq!(e.raw.header.tgid, 7);
    }

    #[test]
    fn argv_keeps_empty_and_cut_arguments() {
        assert_eq!(
            split_argv(b"a\0\0b\0"),
            vec![b"a".to_vec(), vec![], b"b".to_vec()]
        );
        assert_eq!(split_argv(b"a\0bc"), vec![b"a".to_vec(), b"bc".to_vec()]);
        assert_eq!(split_argv(b""), Vec::<Vec<u8>>::new());
        assert_eq!(split_argv(b"\0"), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn fork_and_exit() {
        let f = ForkEvent {
            header: header(EventKind::Fork, size_of::<ForkEvent>()),
            child_pid: 9,
            child_tgid: 9,
            flags: 0,
            _pad: 0,
        };
        assert_eq!(decode(&bytes_of(&f)).unwrap(), Event::Fork(f));
        let x = ExitEvent {
            header: header(EventKind::Exit, size_of::<ExitEvent>()),
            exit_code: 256,
            flags: 1,
        };
        assert_eq!(decode(&bytes_of(&x)).unwrap(), Event::Exit(x));
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        assert!(matches!(decode(&[]), Err(DecodeError::Short { .. })));
        let mut b = exec_bytes(b"/x", b"x\0");
        let n = b.len();
        assert!(matches!(
            decode(&b[..n - 10]),
            Err(DecodeError::SizeMismatch { .. })
        ));
        // filename_len pointing past the end
        b[size_of::<EventHeader>() + 8..size_of::<EventHeader>() + 12]
            .copy_from_slice(&(EXEC_DATA_MAX as u32).to_le_bytes());
        assert!(matches!(decode(&b), Err(DecodeError::ExecLengths { .. })));
        let mut h = bytes_of(&header(EventKind::Exec, size_of::<EventHeader>()));
        h[0] = 99;
        assert_eq!(decode(&h), Err(DecodeError::UnknownKind(99)));
        // every prefix of a valid event and every single-byte corruption: no panic
        let good = exec_bytes(b"/bin/sh", b"sh\0-c\0");
        for i in 0..good.len() {
            let _ = decode(&good[..i]);
            let mut c = good.clone();
            c[i] ^= 0xff;
            let _ = decode(&c);
        }
    }
}
