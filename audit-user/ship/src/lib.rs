//! Ships the sandbox-audit log off the host, from the store on disk, never
//! from memory: one thread per destination reads the segment files behind
//! the store's durable point, sends each record with its origin, seq and
//! hash, and keeps a durable cursor (fsynced in a state directory) that only
//! moves when the destination has the records. After a restart or a crash a
//! destination resumes from its cursor (at-least-once: a receiver
//! deduplicates by origin + seq and checks the hash). Capture never waits for
//! a destination: the store is the buffer.
//!
//! Stages: [`dest`] parses `--ship URL`s, [`reader`] reads the store,
//! [`cursor`] persists the position, [`syslog`] formats RFC 5424 messages,
//! [`transport`] moves them (syslog over TCP or TLS, [`relp`], and over
//! [`http`] the [`webhook`] NDJSON batches and Splunk [`hec`]), [`shipper`]
//! runs the loop (backoff, outage records, status), [`anchor`] finds the
//! newest checkpoint of a log in what a receiver stored ([`received`]
//! finds our records there), for `verify --anchor`, and [`against`]
//! checks every record a receiver stored against the log (`verify --against`).

pub mod against;
pub mod anchor;
pub mod cursor;
pub mod dest;
pub mod error;
pub mod format;
pub mod hec;
pub mod http;
pub mod reader;
pub mod received;
pub mod relp;
pub mod shipper;
pub mod syslog;
pub mod tls;
pub mod transport;
pub mod webhook;

pub use error::ShipError;
pub use shipper::{ShipConfig, ShipSink, Shippers};
