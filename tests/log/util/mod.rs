//! Shared by the store tests: a real log captured once with the real binary,
//! and an attacker's toolbox (edit records, recompute hashes, re-link the
//! chain, re-sign checkpoints with whatever keys the attacker holds).

#![allow(dead_code)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use audit_log::{
    canonical,
    checkpoint::{checkpoint_body, sign_note},
    lifecycle::{self, LifecycleKind},
    merkle::{Frontier, sha256},
    segment,
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{Signer, SigningKey};
use integration_tests::{TempDir, sandbox_audit};
use serde_json::{Map, Value, json};

pub type Rec = Map<String, Value>;

/// A log captured from real processes, kept in memory (the capture's own
/// append-only directory is removed right away).
pub struct Captured {
    pub lines: Vec<Rec>,
    /// The exported trust root (trust-root.vkey).
    pub trust_root: String,
    /// The newest epoch's secret, as an attacker with root would steal it.
    pub stolen: (u64, SigningKey),
    /// `sandbox-audit checkpoint` output at the end of the capture.
    pub anchor: String,
}

/// Runs sandbox-audit, panicking with its stderr when it cannot start.
pub fn sa(args: &[&str]) -> Output {
    Command::new(sandbox_audit())
        .args(args)
        .output()
        .expect("run sandbox-audit")
}

/// A workload with many short processes and file opens over ~3.5 s, so
/// that 1-second epochs give a log with several key rotations.
const WORKLOAD: &str =
    "for i in $(seq 1 35); do ls / >/dev/null; cat /etc/hostname >/dev/null; sleep 0.1; done";

pub fn captured() -> &'static Captured {
    static C: OnceLock<Captured> = OnceLock::new();
    C.get_or_init(|| {
        let dir = TempDir::new("tamper-capture");
        let (log, keys) = (
            format!("{}/log", dir.path()),
            format!("{}/keys", dir.path()),
        );
        let out = sa(&[
            "exec",
            "--log-dir",
            &log,
            "--key-dir",
            &keys,
            "--epoch-secs",
            "1",
            "--checkpoint-every",
            "40",
            "--checkpoint-ms",
            "200",
            "--",
            "sh",
            "-c",
            WORKLOAD,
        ]);
        assert!(
            out.status.success(),
            "capture failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let anchor = sa(&["checkpoint", "--log-dir", &log]);
        assert!(anchor.status.success());
        let lines = read_log(Path::new(&log));
        let trust_root = fs::read_to_string(format!("{keys}/trust-root.vkey")).expect("trust root");
        let secret = fs::read_dir(&keys)
            .expect("key dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with(".secret"))
            .expect("a current secret");
        let epoch: u64 = secret
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| {
                n.strip_prefix("epoch-")?
                    .strip_suffix(".secret")?
                    .parse()
                    .ok()
            })
            .expect("epoch number");
        let seed: [u8; 32] = fs::read(&secret)
            .expect("secret")
            .try_into()
            .expect("32-byte seed");
        Captured {
            lines,
            trust_root,
            stolen: (epoch, SigningKey::from_bytes(&seed)),
            anchor: String::from_utf8_lossy(&anchor.stdout).into_owned(),
        }
    })
}

/// Every record of a store, in log order.
pub fn read_log(dir: &Path) -> Vec<Rec> {
    let mut out = Vec::new();
    for seg in segment::list(dir).expect("list segments") {
        let text = fs::read_to_string(&seg).expect("read segment");
        for l in text.lines() {
            out.push(serde_json::from_str(l).expect("a JSON record"));
        }
    }
    out
}

pub fn canonical_line(m: &Rec) -> String {
    String::from_utf8(canonical::to_vec(&Value::Object(m.clone())).expect("canonical"))
        .expect("utf-8")
}

/// Writes records as one segment file of a fresh directory.
pub fn write_log(dir: &Path, lines: &[Rec]) -> PathBuf {
    let log = dir.join("log");
    fs::create_dir_all(&log).expect("mkdir");
    let text: String = lines.iter().map(|m| canonical_line(m) + "\n").collect();
    fs::write(log.join(segment::name(0, 0)), text).expect("write log");
    log
}

/// The `hash` a record's content has now.
pub fn content_hash(m: &Rec) -> String {
    let mut c = m.clone();
    c.remove("hash");
    hex::encode(sha256(canonical_line(&c).as_bytes()))
}

pub fn kind(m: &Rec) -> &str {
    m["kind"].as_str().unwrap_or("")
}

pub fn seq(m: &Rec) -> u64 {
    m["seq"].as_u64().expect("seq")
}

fn hash32(m: &Rec) -> [u8; 32] {
    let mut h = [0u8; 32];
    hex::decode_to_slice(m["hash"].as_str().expect("hash"), &mut h).expect("hex hash");
    h
}

/// The attacker's keys: what to sign checkpoints of an epoch with, and
/// (for a whole-log replacement) the public keys to announce instead.
pub struct Forger<'a> {
    /// Key to re-sign a checkpoint of the given epoch with; None = leave it.
    pub checkpoint_key: &'a dyn Fn(u64) -> Option<SigningKey>,
    /// Replacement key chain (genesis key, and each rotation announced and
    /// signed by the previous one); None = leave genesis/rotations alone.
    pub chain_keys: Option<&'a dyn Fn(u64) -> SigningKey>,
}

/// Recomputes everything from record `from` on, as an attacker who edited
/// records would: seqs (if `renumber`), prev_hash links, checkpoint notes
/// and frontiers (with the attacker's keys), rotations, and every hash.
pub fn forge(lines: &mut [Rec], from: usize, renumber: bool, f: &Forger) {
    let origin = lines[0]["origin"]
        .as_str()
        .expect("genesis origin")
        .to_string();
    let mut tree = Frontier::new();
    for i in 0..lines.len() {
        if i >= from {
            if renumber {
                lines[i].insert("seq".into(), json!(i as u64));
            }
            let prev = if i == 0 {
                "0".repeat(64)
            } else {
                lines[i - 1]["hash"].as_str().expect("hash").to_string()
            };
            lines[i].insert("prev_hash".into(), json!(prev));
            match LifecycleKind::of(kind(&lines[i])) {
                Some(LifecycleKind::Genesis) => {
                    if let Some(k) = f.chain_keys {
                        let pk = k(0).verifying_key().to_bytes();
                        lines[i].insert("public_key".into(), json!(B64.encode(pk)));
                    }
                }
                Some(LifecycleKind::KeyRotation) => {
                    if let Some(k) = f.chain_keys {
                        let epoch = lines[i]["epoch"].as_u64().expect("epoch");
                        let pk = k(epoch).verifying_key().to_bytes();
                        let sig =
                            k(epoch - 1).sign(&lifecycle::rotation_message(&origin, epoch, &pk));
                        lines[i].insert("public_key".into(), json!(B64.encode(pk)));
                        lines[i].insert("signature".into(), json!(B64.encode(sig.to_bytes())));
                    }
                }
                Some(LifecycleKind::Checkpoint) => {
                    let epoch = lines[i]["epoch"].as_u64().expect("epoch");
                    if let Some(key) = (f.checkpoint_key)(epoch) {
                        let body = checkpoint_body(&origin, tree.size(), &tree.root());
                        let frontier: Vec<String> = tree.nodes().iter().map(hex::encode).collect();
                        lines[i].insert("note".into(), json!(sign_note(&body, &origin, &key)));
                        lines[i].insert("frontier".into(), json!(frontier));
                    }
                }
                _ => {}
            }
            let h = content_hash(&lines[i]);
            lines[i].insert("hash".into(), json!(h));
        }
        tree.push_record(&hash32(&lines[i]));
    }
}

/// A forger that only re-links and rehashes (holds no key).
pub fn no_keys() -> Forger<'static> {
    Forger {
        checkpoint_key: &|_| None,
        chain_keys: None,
    }
}

/// `sandbox-audit verify --json` on a directory, with extra arguments.
pub fn verify_json(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["verify", "--json", dir.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let out = sa(&args);
    let code = out.status.code().expect("exit code");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, v)
}

/// (kind, first_seq) of each verdict.
pub fn verdicts(v: &Value) -> Vec<(String, u64)> {
    v["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .map(|x| {
            (
                x["kind"].as_str().expect("kind").to_string(),
                x["first_seq"].as_u64().expect("first_seq"),
            )
        })
        .collect()
}

/// A scratch directory holding one forged copy of the log, and the trust
/// root file, for one test.
pub struct Case {
    pub dir: TempDir,
    pub log: PathBuf,
    pub trust_root: PathBuf,
}

impl Case {
    pub fn new(name: &str, lines: &[Rec]) -> Case {
        let dir = TempDir::new(name);
        let log = write_log(Path::new(dir.path()), lines);
        let trust_root = Path::new(dir.path()).join("trust-root.vkey");
        fs::write(&trust_root, &captured().trust_root).expect("write trust root");
        Case {
            dir,
            log,
            trust_root,
        }
    }

    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = Path::new(self.dir.path()).join(name);
        fs::write(&p, text).expect("write file");
        p
    }

    /// Verifies with the trust root; returns exit code and verdicts.
    pub fn verify(&self, extra: &[&str]) -> (i32, Vec<(String, u64)>, Value) {
        let root = self.trust_root.to_str().expect("utf-8").to_string();
        let mut args = vec!["--pubkey", &root];
        args.extend_from_slice(extra);
        let (code, v) = verify_json(&self.log, &args);
        let vs = verdicts(&v);
        (code, vs, v)
    }
}
