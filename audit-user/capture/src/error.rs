//! What every error type of this crate shares: the sink's error (audit-log's
//! type) and one way to print an error with all its causes, as the CLI does.

/// The sink's error (the store, a shipper): audit-log's own type, so a
/// session tells a log failure from a capture failure by type.
pub use audit_log::sink::SinkError;

/// The error and every cause below it on one line, "a: b: c" (what
/// anyhow's `{:#}` prints; error messages here never repeat their source):
/// audit-log's, so both crates print errors the same way.
pub use audit_log::error_text;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("opening {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn error_text_prints_every_cause_once() {
        let e = Outer("x", std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            error_text(&e),
            "opening x: No such file or directory (os error 2)"
        );
        let s = SinkError::Other(Box::new(e));
        assert_eq!(
            error_text(&s),
            "opening x: No such file or directory (os error 2)"
        );
    }
}
