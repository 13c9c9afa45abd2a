//! Event kinds with fixed numeric ids. Ids are part of the wire format between
//! kernel and userspace: never renumber, only append.

/// Number of loss-counter slots (one per kind id, plus [`loss_slot`]s).
pub const KIND_SLOTS: u32 = 64;

/// Per-CPU counts of events the probes could not deliver, indexed by kind id
/// or [`loss_slot`]. One map entry, so userspace reads all of them with one
/// syscall per drain.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossCounters {
    pub counts: [u64; KIND_SLOTS as usize],
}
crate::assert_size!(LossCounters, 512);

// SAFETY: plain-old-data, `#[repr(C)]`, no padding.
#[cfg(feature = "user")]
unsafe impl aya::Pod for LossCounters {}

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    Syscall = 4,
    /// A task's cgroup changed (cgroup:cgroup_attach_task).
    CgroupMigrate = 5,
    /// A completed io_uring request ([`crate::event::IoUringEvent`]).
    IoUring = 6,
}

impl EventKind {
    pub const ALL: &'static [EventKind] = &[
        EventKind::Exec,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::Syscall,
        EventKind::CgroupMigrate,
        EventKind::IoUring,
    ];

    pub const fn from_u32(v: u32) -> Option<EventKind> {
        match v {
            1 => Some(EventKind::Exec),
            2 => Some(EventKind::Fork),
            3 => Some(EventKind::Exit),
            4 => Some(EventKind::Syscall),
            5 => Some(EventKind::CgroupMigrate),
            6 => Some(EventKind::IoUring),
            _ => None,
        }
    }

    /// The name used for this kind in records and in loss reports.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::Syscall => "syscall",
            EventKind::CgroupMigrate => "cgroup_migrate",
            EventKind::IoUring => "io_uring",
        }
    }
}

/// Loss-counter slots that are not event kinds: things the kernel side had to
/// give up on that are not a failed ring-buffer reserve of one event.
pub mod loss_slot {
    /// A forked child could not be added to the tracked-pid map (pid-tree scope):
    /// its later events would be missed, so it is reported as loss.
    pub const SCOPE_MAP_FULL: u32 = 60;
    /// A syscall's arguments could not be saved at entry (pending map full):
    /// its event is lost.
    pub const PENDING_MAP_FULL: u32 = 61;
    /// A file was opened for writing on an fd too large for the first-write
    /// bitmap, or the bitmap map was full: its first write is not recorded.
    pub const FIRST_WRITE_UNTRACKED: u32 = 62;
}
