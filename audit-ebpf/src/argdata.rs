//! Appending captures (strings, socket addresses, raw bytes) to the data area
//! of a syscall event. Every write goes to `data[pos & MASK ..]` with a
//! bounded size, and the area is twice `SYSCALL_DATA_MAX`: the verifier can
//! see that no write leaves the map value, while the `room` checks keep
//! `pos` itself below `SYSCALL_DATA_MAX` so the mask never changes it.

use crate::bound::masked;
use audit_common::syscall::{
    ArgDataHeader, BYTES_MAX, SOCKADDR_MAX, STRING_MAX, SYSCALL_DATA_MAX, arg_data_flags,
    arg_data_kind,
};
use aya_ebpf::helpers::generated::{bpf_probe_read_user, bpf_probe_read_user_str};

const MASK: usize = SYSCALL_DATA_MAX - 1;

pub type Data = [u8; 2 * SYSCALL_DATA_MAX];

/// Where the next capture goes. Passed by reference so that the non-inlined
/// capture functions stay within BPF's five-register calling convention.
pub struct Writer<'a> {
    pub data: &'a mut Data,
    pub pos: usize,
    /// Set when a capture found no room; the event says so.
    pub truncated: bool,
}

impl Writer<'_> {
    /// Is there room for `need` more bytes? Marks truncation if not.
    #[inline(always)]
    pub fn room(&mut self, need: usize) -> bool {
        let ok = self.pos <= SYSCALL_DATA_MAX - need;
        if !ok {
            self.truncated = true;
        }
        ok
    }

    /// `pos & MASK`, the mask kept in the program (see `bound`): after a
    /// `room` check LLVM would drop it, and 6.1's verifier needs it.
    #[inline(always)]
    pub fn at(&self) -> usize {
        masked(self.pos, MASK)
    }
}

#[inline(always)]
fn header(data: &mut Data, at: usize, kind: u8, slot: u8, flags: u8, len: usize) {
    let h = ArgDataHeader {
        kind,
        slot,
        flags,
        _pad: 0,
        len: len as u32,
    };
    unsafe { (data.as_mut_ptr().add(at & MASK) as *mut ArgDataHeader).write_unaligned(h) };
}

/// A NUL-terminated user string (the NUL is not kept).
#[inline(never)]
pub fn user_str(w: &mut Writer, slot: u8, ptr: u64) {
    if !w.room(STRING_MAX + 8) {
        return;
    }
    let at = w.at();
    let data = &mut *w.data;
    let dst = unsafe { data.as_mut_ptr().add(at + 8) };
    let n = unsafe { bpf_probe_read_user_str(dst.cast(), STRING_MAX as u32, ptr as *const _) };
    let (len, flags) = if n <= 0 {
        (0, arg_data_flags::UNREADABLE)
    } else if n as usize >= STRING_MAX {
        (STRING_MAX - 1, arg_data_flags::TRUNCATED)
    } else {
        (n as usize - 1, 0)
    };
    header(data, at, arg_data_kind::STRING, slot, flags, len);
    w.pos = at + 8 + masked(len, STRING_MAX - 1);
}

/// `len` bytes of user memory (bounded by BYTES_MAX, or SOCKADDR_MAX for
/// addresses) as a capture of `kind`, tagged with argument `slot`.
#[inline(never)]
pub fn user_bytes(w: &mut Writer, kind_slot: u32, ptr: u64, len: u64) {
    let (kind, slot) = ((kind_slot >> 8) as u8, kind_slot as u8);
    let max = if kind == arg_data_kind::SOCKADDR {
        SOCKADDR_MAX
    } else {
        BYTES_MAX
    };
    if !w.room(BYTES_MAX + 8) {
        return;
    }
    let at = w.at();
    let data = &mut *w.data;
    let mut flags = 0;
    let mut n = len as usize;
    if n > max {
        n = max;
        flags |= arg_data_flags::TRUNCATED;
    }
    let n = masked(n, 2 * BYTES_MAX - 1);
    let dst = unsafe { data.as_mut_ptr().add(at + 8) };
    let n = if n > 0 && unsafe { bpf_probe_read_user(dst.cast(), n as u32, ptr as *const _) } != 0 {
        flags |= arg_data_flags::UNREADABLE;
        0
    } else {
        n
    };
    header(data, at, kind, slot, flags, n);
    w.pos = at + 8 + n;
}

/// Packs a capture kind and argument slot into one register-sized argument.
#[inline(always)]
pub fn kind_slot(kind: u8, slot: u8) -> u32 {
    ((kind as u32) << 8) | slot as u32
}

/// The first byte of the string capture that starts at `at` (0 if empty).
#[inline(always)]
pub fn first_byte(data: &Data, at: usize) -> u8 {
    let h = unsafe { (data.as_ptr().add(at & MASK) as *const ArgDataHeader).read_unaligned() };
    if h.len == 0 { 0 } else { data[(at & MASK) + 8] }
}

/// Destination port (host order) of the sockaddr capture at `at`, if it is
/// AF_INET or AF_INET6.
#[inline(always)]
pub fn sockaddr_port(data: &Data, at: usize) -> Option<u16> {
    let at = at & MASK;
    let h = unsafe { (data.as_ptr().add(at) as *const ArgDataHeader).read_unaligned() };
    if h.len < 4 {
        return None;
    }
    let family = u16::from_ne_bytes([data[at + 8], data[at + 9]]);
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    if family != AF_INET && family != AF_INET6 {
        return None;
    }
    Some(u16::from_be_bytes([data[at + 10], data[at + 11]]))
}
