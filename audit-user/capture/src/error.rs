//! What every error type of this crate shares: the sink's error (whatever
//! type the next stage returns, kept with its causes) and one way to print
//! an error with all its causes, as the CLI does.

use std::error::Error;

/// An error of the sink (the store, a shipper): the log could not take a
/// record. Its own type, so a session tells a log failure from a capture
/// failure by type.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SinkError(Box<dyn Error + Send + Sync + 'static>);

impl SinkError {
    /// Wraps whatever the sink returned (its causes stay reachable).
    pub fn new(e: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> SinkError {
        SinkError(e.into())
    }

    /// The sink's own error, to downcast.
    pub fn inner(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

/// The error and every cause below it on one line, "a: b: c" (what
/// anyhow's `{:#}` prints; error messages here never repeat their source).
pub fn chain(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("opening {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn chain_prints_every_cause_once() {
        let e = Outer("x", std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            chain(&e),
            "opening x: No such file or directory (os error 2)"
        );
        let s = SinkError::new(e);
        assert_eq!(
            chain(&s),
            "opening x: No such file or directory (os error 2)"
        );
        assert!(s.inner().downcast_ref::<Outer>().is_some());
    }
}
