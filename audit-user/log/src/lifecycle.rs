//! The records the store writes about itself (docs/FORMAT.md, "Lifecycle
//! records"), built and parsed in one place so the writer, the restart
//! check and `verify` agree on every field name.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};

use crate::{
    chain::parse_hex32,
    merkle::{Hash, sha256},
    record::{Json, Record},
};

/// The kinds of record the log writes about itself, plus `loss` (written
/// by capture, counted by verify): docs/FORMAT.md, "Lifecycle records".
/// On disk a kind is its [`LifecycleKind::as_str`] name; every other kind
/// (exec, open, …) is an event of capture's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LifecycleKind {
    Genesis,
    Start,
    Stop,
    Recovery,
    Config,
    KeyRotation,
    Checkpoint,
    Protection,
    Unencodable,
    StoreError,
    Loss,
}

impl LifecycleKind {
    pub const ALL: [LifecycleKind; 11] = [
        LifecycleKind::Genesis,
        LifecycleKind::Start,
        LifecycleKind::Stop,
        LifecycleKind::Recovery,
        LifecycleKind::Config,
        LifecycleKind::KeyRotation,
        LifecycleKind::Checkpoint,
        LifecycleKind::Protection,
        LifecycleKind::Unencodable,
        LifecycleKind::StoreError,
        LifecycleKind::Loss,
    ];

    /// The `kind` string in a record.
    pub const fn as_str(self) -> &'static str {
        match self {
            LifecycleKind::Genesis => "genesis",
            LifecycleKind::Start => "start",
            LifecycleKind::Stop => "stop",
            LifecycleKind::Recovery => "recovery",
            LifecycleKind::Config => "config",
            LifecycleKind::KeyRotation => "key_rotation",
            LifecycleKind::Checkpoint => "checkpoint",
            LifecycleKind::Protection => "protection",
            LifecycleKind::Unencodable => "unencodable_record",
            LifecycleKind::StoreError => "store_error",
            LifecycleKind::Loss => "loss",
        }
    }

    /// The lifecycle kind a `kind` string names; None for capture's events.
    pub fn of(kind: &str) -> Option<LifecycleKind> {
        Some(match kind {
            "genesis" => LifecycleKind::Genesis,
            "start" => LifecycleKind::Start,
            "stop" => LifecycleKind::Stop,
            "recovery" => LifecycleKind::Recovery,
            "config" => LifecycleKind::Config,
            "key_rotation" => LifecycleKind::KeyRotation,
            "checkpoint" => LifecycleKind::Checkpoint,
            "protection" => LifecycleKind::Protection,
            "unencodable_record" => LifecycleKind::Unencodable,
            "store_error" => LifecycleKind::StoreError,
            "loss" => LifecycleKind::Loss,
            _ => return None,
        })
    }

    /// A record of this kind (fields still to add).
    pub fn record(self, time_ns: u64) -> Record {
        Record::new(self.as_str(), time_ns)
    }
}

impl std::fmt::Display for LifecycleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `kind` string that names no lifecycle record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a lifecycle record kind")]
pub struct NotLifecycle(pub String);

impl std::str::FromStr for LifecycleKind {
    type Err = NotLifecycle;
    fn from_str(s: &str) -> Result<LifecycleKind, NotLifecycle> {
        LifecycleKind::of(s).ok_or_else(|| NotLifecycle(s.to_string()))
    }
}

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

fn read_id(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim().replace('-', "");
    (!s.is_empty() && s.bytes().all(|c| c.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// /etc/machine-id (hex), or "unknown" on hosts without one.
pub fn host_id() -> String {
    read_id("/etc/machine-id")
        .or_else(|| read_id("/var/lib/dbus/machine-id"))
        .unwrap_or_else(|| "unknown".into())
}

/// This boot's id (hex, dashes removed), or "unknown".
pub fn boot_id() -> String {
    read_id("/proc/sys/kernel/random/boot_id").unwrap_or_else(|| "unknown".into())
}

/// Lowercase hex SHA-256 of the canonical form of a config object.
pub fn config_digest(config: &Json) -> String {
    // A config is built by us from integers and strings: it always encodes.
    let bytes = crate::canonical::to_vec(&Value::Object(config.clone())).unwrap_or_default();
    hex::encode(sha256(&bytes))
}

/// The message a key rotation signs, with the outgoing epoch's key.
pub fn rotation_message(origin: &str, epoch: u64, public_key: &[u8; 32]) -> Vec<u8> {
    format!(
        "sandbox-audit key rotation v1\n{origin}\n{epoch}\n{}\n",
        B64.encode(public_key)
    )
    .into_bytes()
}

/// Bytes after the last newline of a segment that a crash left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Torn {
    /// The segment's file name (no directory).
    pub file: String,
    pub offset: u64,
    pub length: u64,
    pub sha256: Hash,
}

impl Torn {
    fn to_json(&self) -> Value {
        json!({"file": self.file, "offset": self.offset, "length": self.length, "sha256": hex::encode(self.sha256)})
    }
}

pub fn genesis(time_ns: u64, origin: &str, config: &Json, public_key: &[u8; 32]) -> Record {
    LifecycleKind::Genesis
        .record(time_ns)
        .with("origin", origin)
        .with("host_id", host_id())
        .with("boot_id", boot_id())
        .with("agent_version", AGENT_VERSION)
        .with("config", Value::Object(config.clone()))
        .with("config_digest", config_digest(config))
        .with("epoch", 0u64)
        .with("public_key", B64.encode(public_key))
}

pub fn start(time_ns: u64, scope: Json, config_digest: &str) -> Record {
    LifecycleKind::Start
        .record(time_ns)
        .with("scope", Value::Object(scope))
        .with("pid", std::process::id())
        .with("boot_id", boot_id())
        .with("agent_version", AGENT_VERSION)
        .with("config_digest", config_digest)
}

pub fn stop(time_ns: u64, reason: &str, records: u64) -> Record {
    LifecycleKind::Stop
        .record(time_ns)
        .with("reason", reason)
        .with("records", records)
}

/// The record before a recovery: the last intact one the crash left.
pub struct LastRecord<'a> {
    pub seq: u64,
    pub kind: &'a str,
    pub time_ns: u64,
}

/// After a session that ended without `stop`: `last` is the last intact
/// record before this one (None when a crash tore the genesis record).
/// The gap from `last_time_ns` to this record's `time_ns` is when nothing
/// was recorded (`gap_ns`).
pub fn recovery(time_ns: u64, torn: &[Torn], last: Option<LastRecord>) -> Record {
    let mut r = LifecycleKind::Recovery
        .record(time_ns)
        .with(
            "torn",
            Value::Array(torn.iter().map(Torn::to_json).collect()),
        )
        .with("boot_id", boot_id());
    if let Some(l) = last {
        r = r
            .with("last_seq", l.seq)
            .with("last_kind", l.kind)
            .with("last_time_ns", l.time_ns)
            .with("gap_ns", time_ns.saturating_sub(l.time_ns));
    }
    r
}

/// The store's last word when it cannot go on writing (ENOSPC, EIO): why.
/// Records after it were lost; `verify` reports the log incomplete.
pub fn store_error(time_ns: u64, error: &str, lost_records: u64) -> Record {
    LifecycleKind::StoreError
        .record(time_ns)
        .with("error", error)
        .with("lost_records", lost_records)
}

pub fn config(time_ns: u64, config: &Json, previous_digest: &str) -> Record {
    LifecycleKind::Config
        .record(time_ns)
        .with("config", Value::Object(config.clone()))
        .with("config_digest", config_digest(config))
        .with("previous_digest", previous_digest)
}

pub fn key_rotation(
    time_ns: u64,
    epoch: u64,
    public_key: &[u8; 32],
    signature: &[u8; 64],
) -> Record {
    LifecycleKind::KeyRotation
        .record(time_ns)
        .with("epoch", epoch)
        .with("public_key", B64.encode(public_key))
        .with("signature", B64.encode(signature))
}

pub struct CheckpointFields<'a> {
    pub epoch: u64,
    pub latest_epoch: u64,
    pub note: &'a str,
    pub frontier: &'a [Hash],
    pub reason: &'a str,
    pub config_digest: &'a str,
}

pub fn checkpoint(time_ns: u64, c: &CheckpointFields) -> Record {
    LifecycleKind::Checkpoint
        .record(time_ns)
        .with("epoch", c.epoch)
        .with("latest_epoch", c.latest_epoch)
        .with("note", c.note)
        .with(
            "frontier",
            Value::Array(
                c.frontier
                    .iter()
                    .map(|h| Value::String(hex::encode(h)))
                    .collect(),
            ),
        )
        .with("reason", c.reason)
        .with("config_digest", c.config_digest)
}

pub fn protection(time_ns: u64, file: &str, flag: &str, error: &str) -> Record {
    LifecycleKind::Protection
        .record(time_ns)
        .with("file", file)
        .with("flag", flag)
        .with("error", error)
}

/// Stands in for a record that has no canonical form (a float, a boolean, a
/// reserved key…): kept whole as text rather than dropped.
pub fn unencodable(original: &Record, error: &str) -> Record {
    LifecycleKind::Unencodable
        .record(original.time_ns)
        .with("error", error)
        .with("original_kind", original.kind)
        .with("original", Value::Object(original.to_json()).to_string())
}

// Reading lifecycle records back (restart and verify). Errors name the field.

/// A lifecycle record's field that is missing or not what the writer writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("no `{0}` field")]
    Missing(&'static str),
    #[error("`{0}` is not an unsigned integer")]
    NotUnsigned(&'static str),
    #[error("`{0}` is not a string")]
    NotString(&'static str),
    #[error("`{0}` is not an array")]
    NotArray(&'static str),
    #[error("a `{0}` entry is not an object")]
    NotObject(&'static str),
    #[error("`{key}` is not base64 of {len} bytes")]
    NotBase64 { key: &'static str, len: usize },
    /// `what` names the field (or the list entry) with its quotes.
    #[error("{what} is not 64 lowercase hex digits")]
    NotHex { what: &'static str },
}

pub fn get<'a>(m: &'a Json, key: &'static str) -> Result<&'a Value, FieldError> {
    m.get(key).ok_or(FieldError::Missing(key))
}

pub fn get_u64(m: &Json, key: &'static str) -> Result<u64, FieldError> {
    get(m, key)?.as_u64().ok_or(FieldError::NotUnsigned(key))
}

pub fn get_str<'a>(m: &'a Json, key: &'static str) -> Result<&'a str, FieldError> {
    get(m, key)?.as_str().ok_or(FieldError::NotString(key))
}

fn b64_array<const N: usize>(m: &Json, key: &'static str) -> Result<[u8; N], FieldError> {
    B64.decode(get_str(m, key)?)
        .ok()
        .and_then(|v| <[u8; N]>::try_from(v).ok())
        .ok_or(FieldError::NotBase64 { key, len: N })
}

pub fn get_public_key(m: &Json) -> Result<[u8; 32], FieldError> {
    b64_array(m, "public_key")
}

pub fn get_signature(m: &Json) -> Result<[u8; 64], FieldError> {
    b64_array(m, "signature")
}

fn hex32(v: &Value, what: &'static str) -> Result<Hash, FieldError> {
    v.as_str()
        .and_then(|s| parse_hex32(s.as_bytes()))
        .ok_or(FieldError::NotHex { what })
}

/// A checkpoint record's own fields, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRecord {
    pub epoch: u64,
    pub latest_epoch: u64,
    pub note: String,
    pub frontier: Vec<Hash>,
    pub config_digest: String,
}

impl CheckpointRecord {
    pub fn parse(m: &Json) -> Result<CheckpointRecord, FieldError> {
        let frontier = get(m, "frontier")?
            .as_array()
            .ok_or(FieldError::NotArray("frontier"))?
            .iter()
            .map(|v| hex32(v, "a `frontier` entry"))
            .collect::<Result<_, _>>()?;
        Ok(CheckpointRecord {
            epoch: get_u64(m, "epoch")?,
            latest_epoch: get_u64(m, "latest_epoch")?,
            note: get_str(m, "note")?.to_string(),
            frontier,
            config_digest: get_str(m, "config_digest")?.to_string(),
        })
    }
}

/// A key rotation record's fields, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationRecord {
    pub epoch: u64,
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
}

impl RotationRecord {
    pub fn parse(m: &Json) -> Result<RotationRecord, FieldError> {
        Ok(RotationRecord {
            epoch: get_u64(m, "epoch")?,
            public_key: get_public_key(m)?,
            signature: get_signature(m)?,
        })
    }
}

/// The `torn` list of a recovery record.
pub fn parse_torn(m: &Json) -> Result<Vec<Torn>, FieldError> {
    let list = get(m, "torn")?
        .as_array()
        .ok_or(FieldError::NotArray("torn"))?;
    list.iter()
        .map(|t| {
            let t = t.as_object().ok_or(FieldError::NotObject("torn"))?;
            Ok(Torn {
                file: get_str(t, "file")?.to_string(),
                offset: get_u64(t, "offset")?,
                length: get_u64(t, "length")?,
                sha256: hex32(get(t, "sha256")?, "`sha256`")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in LifecycleKind::ALL {
            assert_eq!(LifecycleKind::of(k.as_str()), Some(k));
            assert_eq!(k.as_str().parse::<LifecycleKind>(), Ok(k));
            assert_eq!(k.record(1).kind, k.as_str());
        }
        assert_eq!(LifecycleKind::of("exec"), None);
        assert!("Checkpoint".parse::<LifecycleKind>().is_err());
    }
}
