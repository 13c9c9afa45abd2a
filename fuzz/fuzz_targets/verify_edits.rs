//! A valid log (checkpoints, a key rotation, several segments) with
//! fuzzer-chosen edits: flip, delete, duplicate, swap or cut lines and
//! bytes. Reaches the verifier's deep paths (valid hashes, signatures,
//! reordering, torn tails) that random bytes rarely do. Verify must never
//! panic, and the unedited log must verify.

#![no_main]

use std::{sync::OnceLock, time::SystemTime};

use audit_log::{
    keys::EpochKey,
    record::Record,
    verify::{Options, verify_segments},
    writer::LogWriter,
};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fn key(epoch: u64) -> EpochKey {
    EpochKey {
        epoch,
        key: SigningKey::from_bytes(&[epoch as u8 + 7; 32]),
        created: SystemTime::UNIX_EPOCH,
    }
}

/// Lines of a small but complete log, and two checkpoint notes of it (one
/// from the middle, one from the end) to use as anchors.
fn seed() -> &'static (Vec<Vec<u8>>, [String; 2]) {
    static S: OnceLock<(Vec<Vec<u8>>, [String; 2])> = OnceLock::new();
    S.get_or_init(|| {
        let mut w =
            LogWriter::genesis("fuzz.example/log", key(0), &Default::default()).expect("genesis");
        let mut middle = String::new();
        for i in 0..60u64 {
            let r = Record::new("exec", 1_700_000_000_000_000_000 + i)
                .with(
                    "argv",
                    serde_json::json!(["sh", "-c", format!("echo {i}\n\u{1}é")]),
                )
                .with("proc", serde_json::json!({"pid": i, "comm": "sh"}));
            w.append(r).expect("append");
            if i % 10 == 9 {
                w.checkpoint("count").expect("checkpoint");
            }
            if i == 30 {
                w.rotate(key(1)).expect("rotate");
                middle = w.last_note().unwrap_or_default().to_string();
            }
        }
        w.checkpoint("stop").expect("checkpoint");
        let end = w.last_note().unwrap_or_default().to_string();
        let text = std::mem::take(w.out());
        let lines = text
            .split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        (lines, [middle, end])
    })
}

fuzz_target!(|data: &[u8]| {
    let (seed_lines, notes) = seed();
    let mut lines = seed_lines.clone();
    for op in data.chunks(4) {
        let [kind, a, b, c] = [
            op[0],
            *op.get(1).unwrap_or(&0),
            *op.get(2).unwrap_or(&0),
            *op.get(3).unwrap_or(&0),
        ];
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        let (i, j) = (a as usize % n, b as usize % n);
        match kind % 6 {
            0 if !lines[i].is_empty() => {
                let line = &mut lines[i];
                let k = (b as usize * 256 + c as usize) % line.len();
                line[k] ^= c | 1;
            }
            1 => {
                lines.remove(i);
            }
            2 => {
                let l = lines[i].clone();
                lines.insert(j, l);
            }
            3 => lines.swap(i, j),
            4 if !lines[i].is_empty() => {
                let line = &mut lines[i];
                let k = c as usize % line.len();
                line.truncate(k);
            }
            0 | 4 => {}
            _ => lines[i] = lines[j].clone(),
        }
    }
    // Three segments, cut between lines (torn tails come from the edits).
    let third = lines.len() / 3;
    let (a, b, c) = (
        lines[..third].concat(),
        lines[third..2 * third].concat(),
        lines[2 * third..].concat(),
    );
    let joined: Vec<u8> = lines.concat();
    let segments = [("a", &a[..]), ("b", &b[..]), ("c", &c[..])];
    // Without an anchor, and against one of the log's own checkpoints.
    let _ = verify_segments(&segments, &Options::default()).expect("no anchor: no error");
    let anchored = Options {
        anchor: Some(notes[data.len() % 2].clone()),
        ..Options::default()
    };
    let _ = verify_segments(&segments, &anchored).expect("a valid anchor: no error");
    if data.is_empty() {
        for opts in [Options::default(), anchored] {
            let whole = verify_segments(&[("a", &joined)], &opts).expect("verify");
            assert!(
                whole.intact(),
                "the unedited seed log must verify: {:?}",
                whole.verdicts
            );
        }
    }
});
