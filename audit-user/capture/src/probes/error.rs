//! Why the probes could not be set up. Each variant names the program, map,
//! struct field or file involved, and keeps aya's or the kernel's error as
//! its source (the errno of a refused load is in there), boxed: aya's
//! errors are large and these travel through every `?`.

use aya::{EbpfError, maps::MapError, programs::ProgramError};
use thiserror::Error;

use super::{TracefsError, freeze::FreezeError, lsm::LsmError, offsets::MissingField};
use crate::{btf::BtfError, cgroup::CgroupError};

/// Loading the eBPF object, filling its maps or attaching its programs failed.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("ring buffer size {0} must be a power of two of at least 4096 bytes")]
    RingBufferSize(u32),
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error(transparent)]
    RequiredField(#[from] MissingField),
    #[error("loading the eBPF object into the kernel")]
    Object(#[source] Box<EbpfError>),
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Lsm(#[from] LsmError),
    #[error(transparent)]
    Freeze(#[from] FreezeError),
    /// Listing the processes already in scope.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("reading /proc")]
    ReadProc(#[source] std::io::Error),
    #[error("map {0} missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("map {map} in the eBPF object is not of the expected type")]
    MapType {
        map: &'static str,
        #[source]
        source: Box<MapError>,
    },
    /// `what` says which entry of which map ("adding pid 7 to TRACKED_PIDS").
    #[error("{what}")]
    MapWrite {
        what: String,
        #[source]
        source: Box<MapError>,
    },
    #[error("syscall {name} has number {nr} outside the spec table")]
    SyscallNumber { name: &'static str, nr: i64 },
    #[error(
        "the raw syscall dispatcher was asked for, but this kernel's BTF lacks the pt_regs/thread_info offsets it reads"
    )]
    NoDispatcher,
    /// The ring buffer or the loss counters were handed out already.
    #[error("{0} already taken")]
    Taken(&'static str),
}

/// One program could not be loaded or attached.
#[derive(Debug, Error)]
pub enum AttachError {
    #[error("program {program} missing from the eBPF object")]
    Missing { program: String },
    #[error("program {program} in the eBPF object is not a {expected} program")]
    WrongType {
        program: String,
        expected: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("the kernel verifier rejected {program}")]
    Rejected {
        program: String,
        #[source]
        source: Box<ProgramError>,
    },
    /// `target` is "raw tracepoint NAME" or "tracepoint CATEGORY:NAME".
    #[error("attaching {program} to {target}")]
    Attach {
        program: String,
        target: String,
        #[source]
        source: Box<ProgramError>,
    },
}
