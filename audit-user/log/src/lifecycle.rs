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

pub const GENESIS: &str = "genesis";
pub const START: &str = "start";
pub const STOP: &str = "stop";
pub const RECOVERY: &str = "recovery";
pub const CONFIG: &str = "config";
pub const KEY_ROTATION: &str = "key_rotation";
pub const CHECKPOINT: &str = "checkpoint";
pub const PROTECTION: &str = "protection";
pub const UNENCODABLE: &str = "unencodable_record";
pub const STORE_ERROR: &str = "store_error";

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
    Record::new(GENESIS, time_ns)
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
    Record::new(START, time_ns)
        .with("scope", Value::Object(scope))
        .with("pid", std::process::id())
        .with("boot_id", boot_id())
        .with("agent_version", AGENT_VERSION)
        .with("config_digest", config_digest)
}

pub fn stop(time_ns: u64, reason: &str, records: u64) -> Record {
    Record::new(STOP, time_ns)
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
    let mut r = Record::new(RECOVERY, time_ns)
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
    Record::new(STORE_ERROR, time_ns)
        .with("error", error)
        .with("lost_records", lost_records)
}

pub fn config(time_ns: u64, config: &Json, previous_digest: &str) -> Record {
    Record::new(CONFIG, time_ns)
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
    Record::new(KEY_ROTATION, time_ns)
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
    Record::new(CHECKPOINT, time_ns)
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
    Record::new(PROTECTION, time_ns)
        .with("file", file)
        .with("flag", flag)
        .with("error", error)
}

/// Stands in for a record that has no canonical form (a float, a boolean, a
/// reserved key…): kept whole as text rather than dropped.
pub fn unencodable(original: &Record, error: &str) -> Record {
    Record::new(UNENCODABLE, original.time_ns)
        .with("error", error)
        .with("original_kind", original.kind)
        .with("original", Value::Object(original.to_json()).to_string())
}

// Reading lifecycle records back (restart and verify). Errors name the field.

pub fn get<'a>(m: &'a Json, key: &str) -> Result<&'a Value, String> {
    m.get(key).ok_or_else(|| format!("no `{key}` field"))
}

pub fn get_u64(m: &Json, key: &str) -> Result<u64, String> {
    get(m, key)?
        .as_u64()
        .ok_or_else(|| format!("`{key}` is not an unsigned integer"))
}

pub fn get_str<'a>(m: &'a Json, key: &str) -> Result<&'a str, String> {
    get(m, key)?
        .as_str()
        .ok_or_else(|| format!("`{key}` is not a string"))
}

fn b64_array<const N: usize>(m: &Json, key: &str) -> Result<[u8; N], String> {
    B64.decode(get_str(m, key)?)
        .ok()
        .and_then(|v| <[u8; N]>::try_from(v).ok())
        .ok_or_else(|| format!("`{key}` is not base64 of {N} bytes"))
}

pub fn get_public_key(m: &Json) -> Result<[u8; 32], String> {
    b64_array(m, "public_key")
}

pub fn get_signature(m: &Json) -> Result<[u8; 64], String> {
    b64_array(m, "signature")
}

fn hex32(v: &Value, what: &str) -> Result<Hash, String> {
    v.as_str()
        .and_then(|s| parse_hex32(s.as_bytes()))
        .ok_or_else(|| format!("{what} is not 64 lowercase hex digits"))
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
    pub fn parse(m: &Json) -> Result<CheckpointRecord, String> {
        let frontier = get(m, "frontier")?
            .as_array()
            .ok_or("`frontier` is not an array")?
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

/// The `torn` list of a recovery record.
pub fn parse_torn(m: &Json) -> Result<Vec<Torn>, String> {
    let list = get(m, "torn")?.as_array().ok_or("`torn` is not an array")?;
    list.iter()
        .map(|t| {
            let t = t.as_object().ok_or("a `torn` entry is not an object")?;
            Ok(Torn {
                file: get_str(t, "file")?.to_string(),
                offset: get_u64(t, "offset")?,
                length: get_u64(t, "length")?,
                sha256: hex32(get(t, "sha256")?, "`sha256`")?,
            })
        })
        .collect()
}
