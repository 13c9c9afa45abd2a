//! Verify on logs built deterministically with the writer (fixed keys, fixed
//! record positions, fixed times): every tamper case gives the same
//! verdicts on every run.

use std::time::SystemTime;

use ed25519_dalek::SigningKey;
use serde_json::json;

use super::*;
use crate::{keys::EpochKey, lifecycle, record::Record, writer::LogWriter};

pub(crate) const ORIGIN: &str = "test.example/log";

fn key(epoch: u64) -> EpochKey {
    EpochKey {
        epoch,
        key: SigningKey::from_bytes(&{
            // A different key for every epoch (long logs have hundreds).
            let mut seed = [(epoch as u8).wrapping_add(7); 32];
            seed[8..16].copy_from_slice(&epoch.to_le_bytes());
            seed
        }),
        created: SystemTime::UNIX_EPOCH,
    }
}

pub(crate) fn trust_root() -> (String, [u8; 32]) {
    (ORIGIN.to_string(), key(0).public())
}

/// A finished session over several epochs: genesis, start, `events` events
/// with a checkpoint after every 10 and a key rotation after every 45, stop
/// and its checkpoint. Returns the segment bytes.
pub(crate) fn multi_epoch_log(events: u64) -> Vec<u8> {
    let mut w = session(events);
    w.append(lifecycle::stop(9_000_000, "done", events))
        .unwrap();
    w.checkpoint("stop").unwrap();
    std::mem::take(w.out())
}

/// The same session, not ended: as a killed recorder leaves it.
fn session(events: u64) -> LogWriter {
    let mut w = LogWriter::genesis(ORIGIN, key(0), &Json::new()).unwrap();
    let digest = w.config_digest().to_string();
    w.append(lifecycle::start(1_000, Json::new(), &digest))
        .unwrap();
    for i in 0..events {
        let r = Record::new("exec", 2_000 + i)
            .with("argv", json!(["sh", "-c", format!("echo {i}")]))
            .with("proc", json!({"pid": 1000 + i, "comm": "sh"}));
        w.append(r).unwrap();
        if i % 10 == 9 {
            w.checkpoint("count").unwrap();
        }
        if i % 45 == 44 {
            let next = key(w.epoch() + 1);
            w.rotate(next).unwrap();
        }
    }
    w
}

fn verify_bytes(data: &[u8]) -> Report {
    let opts = Options {
        pubkey: Some(trust_root()),
        ..Options::default()
    };
    verify_segments(&[("seg-0.log", data)], &opts).unwrap()
}

fn verdicts(r: &Report) -> Vec<(VerdictKind, u64)> {
    r.verdicts.iter().map(|v| (v.kind, v.first_seq)).collect()
}

/// The byte ranges of the lines (without their newline).
fn lines(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', data) {
        out.push((start, i));
        start = i + 1;
    }
    out
}

fn kind_of(line: &[u8]) -> String {
    let j: Json = serde_json::from_slice(line).unwrap();
    j["kind"].as_str().unwrap().to_string()
}

#[test]
fn the_deterministic_log_is_intact_and_spans_epochs() {
    let log = multi_epoch_log(200);
    let r = verify_bytes(&log);
    assert!(r.intact(), "{}", render_text(&r));
    assert_eq!(r.summary.epochs, 5);
    assert!(r.summary.checkpoints >= 25);
}

/// One byte of every field of every record (all kinds, checkpoints that
/// close a rotation and those that do not): exactly one `modified` verdict,
/// at that record.
#[test]
fn one_byte_of_any_field_of_any_record_is_modified_there_only() {
    let log = multi_epoch_log(100);
    let mut tried = 0;
    for (seq, &(start, end)) in lines(&log).iter().enumerate() {
        let line = &log[start..end];
        let j: Json = serde_json::from_slice(line).unwrap();
        for k in j.keys() {
            let pat = format!("\"{k}\":");
            let at = start + memchr::memmem::find(line, pat.as_bytes()).unwrap() + pat.len();
            // The first byte of the value and the one after it (which
            // is a delimiter for one-digit numbers).
            for at in [at, at + 1] {
                let mut forged = log.clone();
                forged[at] = match forged[at] {
                    b'1' => b'2',
                    c if c.is_ascii_digit() => b'1',
                    b'Z' => b'Y',
                    _ => b'Z',
                };
                let r = verify_bytes(&forged);
                assert_eq!(
                    verdicts(&r),
                    vec![(VerdictKind::Modified, seq as u64)],
                    "`{}` field {k} (byte {at}) of seq {seq}:\n{}",
                    kind_of(line),
                    render_text(&r)
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 1000, "{tried}");
}

/// A small seeded generator (xorshift64*): the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random bytes flipped anywhere in a multi-epoch log: always tampering,
/// and the first verdict lies between the last checkpoint before the
/// damaged record (the first seq no valid checkpoint vouches for) and the
/// record itself.
#[test]
fn random_flips_over_a_multi_epoch_log_are_caught_in_their_window() {
    let log = multi_epoch_log(150);
    let spans = lines(&log);
    let kinds: Vec<String> = spans.iter().map(|&(s, e)| kind_of(&log[s..e])).collect();
    let mut rng = Rng(0x05ee_d0fa_0d17);
    for case in 0..600 {
        let mut forged = log.clone();
        let at = rng.below(log.len());
        let flip = 1 + rng.below(255) as u8;
        forged[at] ^= flip;
        // The record whose line (or newline) holds the byte.
        let seq = spans.iter().position(|&(_, e)| at <= e).unwrap();
        let window_start = kinds[..seq]
            .iter()
            .rposition(|k| k == LifecycleKind::Checkpoint.as_str())
            .unwrap_or(0) as u64;
        let r = verify_bytes(&forged);
        let vs = verdicts(&r);
        let first = vs.iter().map(|v| v.1).min();
        assert!(
            first.is_some_and(|f| (window_start..=seq as u64).contains(&f)),
            "case {case}: byte {at} of seq {seq} (`{}`) ^ {flip:#x}: want the first verdict in {window_start}..={seq}, got {vs:?}\n{}",
            kinds[seq],
            render_text(&r)
        );
    }
}

#[test]
fn a_session_without_stop_is_incomplete_not_tampered() {
    let mut w = session(30);
    let log = std::mem::take(w.out());
    let r = verify_bytes(&log);
    assert_eq!(r.status(), Status::Incomplete, "{}", render_text(&r));
    let i = r.incomplete().unwrap();
    assert_eq!((i.session_seq, i.last_seq), (0, r.summary.records - 1));
    assert_eq!(i.reason, None);
    let text = render_text(&r);
    assert!(text.starts_with("INCOMPLETE: "), "{text}");
    assert!(text.contains("THE RECORD STOPS EARLY after seq"), "{text}");
    assert_eq!(render_json(&r)["status"], "incomplete");
    // Being written right now: an open session is expected.
    let live = Options {
        pubkey: Some(trust_root()),
        live: true,
        ..Options::default()
    };
    let r = verify_segments(&[("seg-0.log", &log)], &live).unwrap();
    assert_eq!(r.status(), Status::Intact, "{}", render_text(&r));
}

#[test]
fn an_unfinished_write_ends_an_incomplete_log_but_is_torn_after_stop() {
    let mut w = session(30);
    let mut log = std::mem::take(w.out());
    log.extend_from_slice(b"{\"half a rec");
    let r = verify_bytes(&log);
    assert_eq!(r.status(), Status::Incomplete, "{}", render_text(&r));
    let t = r.incomplete().unwrap().unfinished.clone().unwrap();
    assert_eq!(t.length, 12);
    // After a clean stop nothing was being written: bytes there are not
    // a crash's.
    let mut log = multi_epoch_log(30);
    let n = log.len() as u64;
    log.extend_from_slice(b"{\"half a rec");
    let r = verify_bytes(&log);
    assert_eq!(
        verdicts(&r),
        vec![(VerdictKind::TornTail, r.summary.records)]
    );
    assert!(r.verdicts[0].detail.contains(&format!("offset {n}")));
}

#[test]
fn a_store_error_record_gives_the_reason() {
    let mut w = session(12);
    w.append(lifecycle::store_error(
        5_000_000,
        "writing to seg: No space left on device (os error 28)",
        3,
    ))
    .unwrap();
    let log = std::mem::take(w.out());
    let r = verify_bytes(&log);
    assert_eq!(r.status(), Status::Incomplete, "{}", render_text(&r));
    let why = r.incomplete().unwrap().reason.clone().unwrap();
    assert!(why.contains("No space left"), "{why}");
    assert!(render_text(&r).contains("the store stopped on an error: writing to seg: No space"));
}

#[test]
fn a_recovery_accounts_for_the_session_before_it() {
    let mut w = session(12);
    let last = lifecycle::LastRecord {
        seq: 13,
        kind: "exec",
        time_ns: 2_011,
    };
    w.append(lifecycle::recovery(6_000_000, &[], Some(last)))
        .unwrap();
    w.append(lifecycle::stop(7_000_000, "done", 0)).unwrap();
    w.checkpoint("stop").unwrap();
    let r = verify_bytes(&std::mem::take(w.out()));
    assert_eq!(r.status(), Status::Intact, "{}", render_text(&r));
    assert_eq!(r.summary.longest_gap.map(|g| g.1), Some(6_000_000 - 2_011));
}

/// A self-consistent record claiming a seq near u64::MAX: verdicts, no
/// arithmetic overflow.
#[test]
fn a_seq_near_u64_max_is_a_verdict_not_a_panic() {
    let mut log = multi_epoch_log(5);
    let mut chain = crate::chain::Chain::resume(u64::MAX - 1, [7; 32]);
    for i in 0..3 {
        let r = Record::new("exec", 10 + i).with("n", i);
        chain.append(&r, &mut log).unwrap();
    }
    let r = verify_bytes(&log);
    assert_eq!(r.status(), Status::Tampered, "{}", render_text(&r));
    assert_eq!(
        r.verdicts[0].kind,
        VerdictKind::Deleted,
        "{}",
        render_text(&r)
    );
    for v in &r.verdicts {
        assert!(v.first_seq <= v.last_seq, "{v:?}");
    }
}

/// Big inputs are cut into chunks parsed on worker threads and numbered
/// afterwards: a finding deep in the second of two segments names that
/// segment and its own line number.
#[test]
fn findings_in_parallel_chunks_name_the_right_file_and_line() {
    let data = multi_epoch_log(30_000);
    assert!(
        data.len() > pipeline::PARALLEL_FROM + 2 * pipeline::CHUNK,
        "{} bytes",
        data.len()
    );
    let lines: Vec<usize> = memchr::memchr_iter(b'\n', &data).collect();
    // Two segments, cut at a line boundary past the first chunk.
    let cut = lines[lines.len() / 3] + 1;
    let (first, second) = data.split_at(cut);
    let mut second = second.to_vec();
    let second_lines: Vec<usize> = memchr::memchr_iter(b'\n', &second).collect();
    // Alter one argv byte of a record about 5 MB in.
    let target_line = second_lines.len() * 3 / 4;
    let line_start = second_lines[target_line - 1] + 1;
    let at = line_start + memchr::memmem::find(&second[line_start..], b"echo ").unwrap() + 5;
    second[at] = if second[at] == b'7' { b'8' } else { b'7' };
    let opts = Options {
        pubkey: Some(trust_root()),
        ..Options::default()
    };
    let report = verify_segments(&[("seg-a.log", first), ("seg-b.log", &second)], &opts).unwrap();
    let v = report.verdicts.first().expect("the change is found");
    assert_eq!(v.kind, VerdictKind::Modified, "{:?}", report.verdicts);
    assert_eq!(
        (v.file.as_str(), v.line),
        ("seg-b.log", target_line as u64 + 1)
    );
}

/// Files are read in pieces cut at newlines; whatever the cuts, verify of
/// the files says exactly what verify of the same bytes in memory says:
/// here with a line longer than a piece, a changed record, and a torn tail.
#[test]
fn files_read_in_pieces_verify_like_the_same_bytes_in_memory() {
    let mut w = session(12_000);
    let huge = "x".repeat(3 * pipeline::CHUNK + 17);
    w.append(Record::new("exec", 900_000).with("argv", json!(["sh", huge])))
        .unwrap();
    for i in 0..6_000u64 {
        w.append(Record::new("exit", 900_001 + i).with("code", i))
            .unwrap();
    }
    w.append(lifecycle::stop(9_000_000, "done", 18_001))
        .unwrap();
    w.checkpoint("stop").unwrap();
    let mut data = std::mem::take(w.out());
    // One changed record after the long line, and a torn tail.
    let at = data.len() - 50_000;
    let at = at + memchr::memmem::find(&data[at..], b"\"code\":").unwrap() + 7;
    data[at] = if data[at] == b'1' { b'2' } else { b'1' };
    data.extend_from_slice(b"{\"kind\":\"exi");
    let dir = tempfile::tempdir().unwrap();
    let (cut, _) = data.split_at(data.len() / 5);
    let cut = memchr::memrchr(b'\n', cut).unwrap() + 1;
    let a = dir.path().join("seg-a.log");
    let b = dir.path().join("seg-b.log");
    std::fs::write(&a, &data[..cut]).unwrap();
    std::fs::write(&b, &data[cut..]).unwrap();
    let opts = Options {
        pubkey: Some(trust_root()),
        ..Options::default()
    };
    let from_files = verify_paths(&[a, b], &opts).unwrap();
    let in_memory = verify_segments(
        &[("seg-a.log", &data[..cut]), ("seg-b.log", &data[cut..])],
        &opts,
    )
    .unwrap();
    assert!(!from_files.verdicts.is_empty());
    assert_eq!(from_files.verdicts, in_memory.verdicts);
    assert_eq!(from_files.summary.records, in_memory.summary.records);
    assert!(
        from_files
            .verdicts
            .iter()
            .any(|v| v.kind == VerdictKind::Modified),
        "{:?}",
        from_files.verdicts
    );
}

/// The tap sees every byte of every segment once, in log order, with the
/// right line numbers, on both the small (one thread) and the big
/// (parser threads) path; and verify says what it says without it.
#[test]
fn a_tapped_verify_hands_over_every_line_in_order() {
    for events in [50, 30_000] {
        let mut data = multi_epoch_log(events);
        // One changed record (a verdict) and a torn tail.
        let at = data.len() / 2;
        let at = at + memchr::memmem::find(&data[at..], b"echo ").unwrap() + 5;
        data[at] = if data[at] == b'7' { b'8' } else { b'7' };
        data.extend_from_slice(b"{\"kind\":\"exi");
        let cut = memchr::memrchr(b'\n', &data[..data.len() / 3]).unwrap() + 1;
        let dir = tempfile::tempdir().unwrap();
        let paths = [dir.path().join("seg-a.log"), dir.path().join("seg-b.log")];
        std::fs::write(&paths[0], &data[..cut]).unwrap();
        std::fs::write(&paths[1], &data[cut..]).unwrap();
        let inputs = Inputs {
            files: paths.to_vec(),
            listed: vec![false, false],
            writer: lockfile::Writer::None,
        };
        let opts = Options {
            pubkey: Some(trust_root()),
            ..Options::default()
        };
        // (file, lines before, the lines, the tail)
        type Seen = (usize, u64, Vec<u8>, Option<Vec<u8>>);
        let mut seen: Vec<Seen> = Vec::new();
        let tapped = verify_inputs_tapped(
            &inputs,
            &opts,
            &|l: Lines<'_>| (l.file, l.lines.to_vec(), l.tail.map(<[u8]>::to_vec)),
            &mut |(file, lines, tail), before| seen.push((file, before, lines, tail)),
        )
        .unwrap();
        let plain = verify_inputs(&inputs, &opts).unwrap();
        assert_eq!(tapped.verdicts, plain.verdicts);
        assert_eq!(tapped.summary.records, plain.summary.records);
        assert!(!tapped.verdicts.is_empty());
        if events > 50 {
            assert!(seen.len() > 4, "{} chunks", seen.len());
        }
        for (file, want) in [(0, &data[..cut]), (1, &data[cut..])] {
            let mut got = Vec::new();
            let mut lines = 0u64;
            for (f, before, l, tail) in &seen {
                if *f != file {
                    continue;
                }
                assert_eq!(*before, lines, "file {file}");
                assert!(l.is_empty() || l.ends_with(b"\n"));
                lines += memchr::memchr_iter(b'\n', l).count() as u64;
                got.extend_from_slice(l);
                if let Some(t) = tail {
                    assert!(!t.is_empty());
                    got.extend_from_slice(t);
                }
            }
            assert_eq!(got, want, "file {file}");
        }
        // Files in order: every chunk of the first before the second's.
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(seen.iter().filter(|s| s.3.is_some()).count(), 1);
    }
}
