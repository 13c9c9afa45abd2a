//! `verify --against <what a receiver stored>`: a log shipped to a real
//! rsyslogd, then altered on the host (one record rewritten, the tail cut),
//! is checked record by record against rsyslog's file: exactly the
//! rewritten seq is reported as changed and exactly the cut seqs as
//! missing; the untouched log matches.

#[path = "harness/mod.rs"]
mod harness;

use std::{fs, process::Command, time::Duration};

use harness::{Input, Rsyslog, exec_shipping, stored, verify};
use integration_tests::TempDir;
use serde_json::Value;

fn against_json(recv: &str, log: &std::path::Path) -> (i32, Value, String) {
    let (code, text) = verify(&["--json", "--against", recv, log.to_str().unwrap()]);
    let line = text.lines().find(|l| l.starts_with('{')).unwrap_or("{}");
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text}"));
    (code, v, text)
}

fn seqs(v: &Value, what: &str) -> Vec<u64> {
    v["against"][what]
        .as_array()
        .unwrap_or_else(|| panic!("no against.{what}: {v:#}"))
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn lists_exactly_the_changed_and_the_missing_records() {
    let dir = TempDir::new("ship-against");
    let rs = Rsyslog::start(&dir.0, Input::Tcp);
    let url = format!("syslog+tcp://127.0.0.1:{}", rs.port);
    exec_shipping(&dir.0, "a", &["--ship", &url, "--ship-drain-ms", "20000"]);
    let log = dir.0.join("a-log");
    let records = stored(&log);
    let last = *records.keys().last().unwrap();
    harness::wait_for(
        "the whole log at the receiver",
        Duration::from_secs(60),
        || rs.received().iter().any(|(s, _)| *s == last),
    );
    // Someone else's line in the receiver's file, and one of ours that
    // rsyslog cut short: counted and reported, not fatal.
    let recv = dir.0.join("recv-copy.log");
    let mut text = rs.raw();
    text.push_str("- kernel: eth0: link up\n");
    text.push_str("[sandbox-audit@32473 origin=\"x\" seq=\"99999\"] {\"kind\":\"exec\",\"se\n");
    let broken_line = text.lines().count();
    fs::write(&recv, &text).unwrap();
    let recv = recv.to_str().unwrap();

    let (code, v, out) = against_json(recv, &log);
    assert_eq!(code, 0, "the shipped log matches its receiver: {out}");
    assert_eq!(v["against"]["differs"], false, "{v:#}");
    assert_eq!(v["against"]["matched"].as_u64(), Some(last + 1), "{v:#}");
    assert_eq!(v["against"]["foreign_lines"], 1, "{v:#}");
    assert_eq!(v["against"]["unreadable_count"], 1, "{v:#}");
    assert_eq!(v["against"]["unreadable"][0]["line"], broken_line, "{v:#}");

    // A copy of the store: rewrite one exec record's filename, cut the
    // last 4 records.
    let bad = dir.0.join("bad");
    assert!(
        Command::new("cp")
            .arg("-r")
            .arg(&log)
            .arg(&bad)
            .status()
            .unwrap()
            .success()
    );
    let (&changed, _) = records
        .iter()
        .find(|(s, l)| **s > 3 && l.contains("\"kind\":\"exec\"") && l.contains("/bin/true"))
        .expect("an exec of /bin/true in the log");
    let seg = audit_log::segment::list(&bad).unwrap().pop().unwrap();
    let data = String::from_utf8(fs::read(&seg).unwrap()).unwrap();
    let mut lines: Vec<String> = data.lines().map(str::to_string).collect();
    let first_seq = |l: &str| audit_log::chain::parse_line(l.as_bytes()).unwrap().seq;
    let base = first_seq(&lines[0]);
    assert!(changed >= base, "the changed record is in the last segment");
    let i = (changed - base) as usize;
    lines[i] = lines[i].replacen("/bin/true", "/bin/trUe", 1);
    let cut_from = first_seq(&lines[lines.len() - 4]);
    lines.truncate(lines.len() - 4);
    fs::write(&seg, lines.join("\n") + "\n").unwrap();

    let (code, v, out) = against_json(recv, &bad);
    assert_eq!(code, 1, "{out}");
    assert_eq!(v["against"]["differs"], true, "{v:#}");
    assert_eq!(seqs(&v, "changed"), [changed], "{v:#}");
    assert_eq!(
        seqs(&v, "missing"),
        (cut_from..=last).collect::<Vec<_>>(),
        "{v:#}"
    );
    let c = &v["against"]["changed"][0];
    assert_eq!(
        c["shipped"]["hash"], c["stored_hash"],
        "the hash field was left alone: {c}"
    );
    assert_ne!(c["stored_content_hash"], c["shipped"]["hash"], "{c}");
    // The text report names them too.
    let (code, text) = verify(&["--against", recv, bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "MISSING from the log: 4 shipped records, seq {cut_from}-{last}"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("CHANGED seq {changed}:")), "{text}");
    assert!(
        text.contains(&format!("recv-copy.log line {broken_line}: unreadable")),
        "{text}"
    );
}

/// `--ship-format ocsf` to a real rsyslogd: every record arrives as an OCSF
/// event of the class and activity its kind maps to, with its seq, and the
/// canonical record inside, so `--against` and `--anchor` still work on
/// the OCSF stream (checkpoints travel as events of their own).
#[test]
#[ignore = "flaky: on one fresh-clone run of three the last seq never reached rsyslog although the \
            exec's exit drain ended at once; cause not found yet (run with --ignored; it prints the \
            agent's stderr)"]
fn ocsf_stream_carries_every_record_and_still_verifies() {
    let dir = TempDir::new("ship-ocsf");
    let rs = Rsyslog::start(&dir.0, Input::Tcp);
    let url = format!("syslog+tcp://127.0.0.1:{}", rs.port);
    let agent_stderr = exec_shipping(
        &dir.0,
        "o",
        &[
            "--ship",
            &url,
            "--ship-format",
            "ocsf",
            "--ship-drain-ms",
            "20000",
        ],
    );
    let log = dir.0.join("o-log");
    let records = stored(&log);
    let last = *records.keys().last().unwrap();
    let events = || -> Vec<Value> {
        rs.raw()
            .lines()
            .filter_map(|l| l.find("] {").map(|i| l[i + 2..].to_string()))
            .filter_map(|j| serde_json::from_str::<Value>(&j).ok())
            .collect()
    };
    harness::wait_for(
        &format!(
            "the whole log (up to seq {last}) at the receiver; the agent said:\n{agent_stderr}"
        ),
        Duration::from_secs(60),
        || {
            events()
                .iter()
                .any(|e| e["metadata"]["sequence"].as_u64() == Some(last))
        },
    );
    let mut kinds = std::collections::BTreeSet::new();
    let mut by_seq = std::collections::BTreeMap::new();
    for e in events() {
        by_seq.insert(e["metadata"]["sequence"].as_u64().unwrap(), e);
    }
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        records.keys().copied().collect::<Vec<_>>(),
        "every seq arrives"
    );
    for (seq, line) in &records {
        let rec: Value = serde_json::from_str(line).unwrap();
        let kind = rec["kind"].as_str().unwrap();
        kinds.insert(kind.to_string());
        let want = match kind {
            "exec" | "fork" => (1007, 1),
            "exit" => (1007, 2),
            _ => (0, 99),
        };
        let e = &by_seq[seq];
        assert_eq!(
            (
                e["class_uid"].as_u64().unwrap(),
                e["activity_id"].as_u64().unwrap()
            ),
            want,
            "seq {seq} ({kind}): {e}"
        );
        assert_eq!(e["raw_data"], line.as_str(), "seq {seq}");
        assert_eq!(e["unmapped"]["sandbox_audit"]["seq"], *seq);
        assert_eq!(e["unmapped"]["sandbox_audit"]["hash"], rec["hash"]);
    }
    for k in [
        "genesis",
        "start",
        "exec",
        "fork",
        "exit",
        "checkpoint",
        "stop",
    ] {
        assert!(kinds.contains(k), "no `{k}` in {kinds:?}");
    }
    let recv = rs.out.to_str().unwrap().to_string();
    let (code, v, out) = against_json(&recv, &log);
    assert_eq!(code, 0, "{out}");
    assert_eq!(v["against"]["matched"].as_u64(), Some(last + 1), "{v:#}");
    let (code, text) = verify(&["--anchor", &recv, log.to_str().unwrap()]);
    assert_eq!(code, 0, "the anchor is found in the OCSF stream: {text}");
    assert!(text.contains("anchor: the checkpoint of"), "{text}");
}
