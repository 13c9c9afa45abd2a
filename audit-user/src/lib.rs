//! sandbox-audit: a kernel-side, tamper-evident audit recorder for AI-agent
//! sandboxes. Data flows one way through one module per stage:
//!
//! probes (kernel) → [`capture`] (ring buffer drain) → [`decode`] →
//! [`record`] → [`sink`] ([`output`] for now).

pub mod btf;
pub mod canonical;
#[cfg(feature = "probes")]
pub mod capture;
pub mod cgroup;
pub mod chain;
pub mod checkpoint;
#[cfg(feature = "probes")]
pub mod cmd;
pub mod decode;
pub mod keys;
pub mod lifecycle;
pub mod merkle;
pub mod output;
pub mod preflight;
#[cfg(feature = "probes")]
pub mod probes;
pub mod record;
pub mod recover;
pub mod segment;
pub mod sink;
pub mod store;
pub mod syscalls;
pub mod verify;
pub mod writer;
