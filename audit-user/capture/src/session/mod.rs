//! Whole audit sessions (`exec`, `run`): the commands behind the CLI,
//! callable from tests as plain functions.

mod error;
pub mod exec;
pub mod run;

pub use error::SessionError;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use audit_log::record::Json;
use serde_json::{Value, json};

use crate::probes::Scope;

/// Counts SIGINT/SIGTERM deliveries (and remembers the last one) so the
/// main loops can shut down after draining instead of dying mid-batch.
#[derive(Clone)]
pub struct StopSignals {
    count: Arc<AtomicUsize>,
    last: Arc<AtomicUsize>,
}

impl StopSignals {
    pub fn install() -> Result<StopSignals, SessionError> {
        let s = StopSignals {
            count: Arc::default(),
            last: Arc::default(),
        };
        for sig in [libc::SIGINT, libc::SIGTERM] {
            let (count, last) = (s.count.clone(), s.last.clone());
            // SAFETY: the handler only does atomic stores, which are async-signal-safe.
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    last.store(sig as usize, Ordering::SeqCst);
                    count.fetch_add(1, Ordering::SeqCst);
                })
            }
            .map_err(|source| SessionError::Signal {
                signal: sig,
                source,
            })?;
        }
        Ok(s)
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> i32 {
        self.last.load(Ordering::SeqCst) as i32
    }
}

/// What a session audits, for its `start` record.
pub fn scope_json(scope: &Scope) -> Json {
    let v = match scope {
        Scope::Cgroup(t) => json!({
            "mode": "cgroup",
            "path": t.path.to_string_lossy(),
            "cgroup_id": t.id,
            "level": t.level,
        }),
        Scope::PidTree { root } => json!({"mode": "pid_tree", "pid": root}),
    };
    match v {
        Value::Object(m) => m,
        _ => Json::new(),
    }
}
