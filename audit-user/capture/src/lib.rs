//! The capture side of sandbox-audit: what the kernel sees, as records.
//!
//! Data flows one way, one module per stage: [`probes`] (load, scope and
//! attach the eBPF programs, with offsets from [`btf`]) → [`drain`] (the
//! ring buffer, in batches, plus loss counters) → [`decode`] (wire structs)
//! → [`record`] (typed records, named by the [`syscalls`] table) → an
//! `audit_log::sink::Sink`. [`session`] runs a whole audit (`exec`, `run`)
//! in a [`cgroup`].

pub mod btf;
pub mod cgroup;
pub mod decode;
pub mod drain;
pub mod error;
pub mod preflight;
pub mod probes;
pub mod record;
pub mod sandbox;
pub mod session;
pub mod syscalls;
