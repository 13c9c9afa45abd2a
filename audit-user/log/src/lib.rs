//! The tamper-evident log of sandbox-audit, with no kernel code in it.
//!
//! Writing: a [`record::Record`] enters through the [`sink::Sink`] trait,
//! [`chain`] gives it `seq`, `prev_hash` and `hash` in its [`canonical`]
//! form, [`merkle`] covers it, [`writer`] signs [`checkpoint`]s with the
//! epoch [`keys`] and writes the [`lifecycle`] records, [`segment`] files
//! hold the lines and [`store`] ties these together with group commit;
//! [`recover`] checks a store's tail on restart. Reading: [`verify`] proves
//! a log intact, sharing every format rule with the writer; restart and
//! verify make the same [`checks`] (chain link, checkpoint, key rotation).
//! Errors are typed per module (`KeyError`, `StoreError`, `RecoverError`,
//! `VerifyError`, `SinkError`, …) so callers choose by variant, not text.

pub mod canonical;
pub mod chain;
pub mod checkpoint;
pub mod checks;
pub mod hex_digest;
pub mod keys;
pub mod lifecycle;
pub mod lockfile;
pub mod merkle;
pub mod output;
pub mod record;
pub mod recover;
pub mod segment;
pub mod sink;
pub mod store;
pub mod verify;
pub mod writer;

/// An error and its sources on one line ("a: b: c", as anyhow's `{:#}`
/// prints it), for text that is kept: a log line, a `stop` reason.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
