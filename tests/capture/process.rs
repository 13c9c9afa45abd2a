//! Process capture against the real kernel: exec argv bytes, fork trees,
//! exit statuses, scope filtering, and exact loss accounting under a burst.

use std::{
    ffi::OsStr,
    io::Write,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    process::{Command, Stdio},
    time::Duration,
};

use audit_capture::probes::{ProbeOptions, Scope};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use integration_tests::{
    Recorder, TestCgroup, parse_report, record_in_cgroup, workload, workload_cmd,
};
use serde_json::Value;

fn ns_inode(kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .ino()
}

fn report_pid(report: &[(String, String)], key: &str) -> u64 {
    report
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in report"))
        .1
        .parse()
        .unwrap()
}

fn argv_bytes(e: &Value) -> Vec<Vec<u8>> {
    match e.get("argv_b64") {
        Some(list) => list
            .as_array()
            .unwrap()
            .iter()
            .map(|s| B64.decode(s.as_str().unwrap()).unwrap())
            .collect(),
        None => e["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().as_bytes().to_vec())
            .collect(),
    }
}

#[test]
fn exec_records_argv_bytes_exactly() {
    let cg = TestCgroup::new("argv");
    let raw: &[u8] = b"raw\xff\xfe bytes";
    let mut cmd = Command::new("/bin/true");
    cmd.args([
        OsStr::new("with space"),
        OsStr::new("ünïcødé ✓"),
        OsStr::new(""),
        OsStr::from_bytes(raw),
    ]);
    let (rec, status) = record_in_cgroup(&cg, &[], &mut cmd);
    assert!(status.success());

    let execs = rec.of_kind("exec");
    assert_eq!(execs.len(), 1, "{execs:#?}");
    let e = &execs[0];
    assert_eq!(e["filename"], "/bin/true");
    assert_eq!(e["argc"], 5);
    let expected: Vec<Vec<u8>> = vec![
        b"/bin/true".to_vec(),
        b"with space".to_vec(),
        "ünïcødé ✓".into(),
        vec![],
        raw.to_vec(),
    ];
    assert_eq!(argv_bytes(e), expected);
    // The lossy rendering keeps valid text and marks the bad bytes.
    assert_eq!(e["argv"][2], "ünïcødé ✓");
    assert_eq!(e["argv"][3], "");
    assert_eq!(e["argv"][4], "raw\u{fffd}\u{fffd} bytes");
    assert_eq!(e["argv_truncated"], 0);
    assert_eq!(
        e["argv_bytes"],
        expected.iter().map(|a| a.len() as u64 + 1).sum::<u64>()
    );
    assert_eq!(e["result"], "success");

    let p = &e["proc"];
    assert_eq!(p["comm"], "true");
    assert_eq!(p["ppid"], std::process::id());
    assert_eq!(p["pid"], p["tid"]);
    assert_eq!(p["uid"], 0);
    assert_eq!(p["euid"], 0);
    assert_eq!(p["cgroup_id"], cg.target.id);
    assert_eq!(p["pid_ns"], ns_inode("pid"));
    assert_eq!(p["mnt_ns"], ns_inode("mnt"));
    let now = audit_capture::record::now_ns();
    let t = e["time_ns"].as_u64().unwrap();
    assert!(
        t <= now && now - t < 60_000_000_000,
        "time_ns {t} is not within a minute of {now}"
    );
}

#[test]
fn long_argv_is_flagged_not_silently_cut() {
    let cg = TestCgroup::new("longargv");
    let args: Vec<String> = (0..100)
        .map(|i| format!("{i:03}{}", "x".repeat(97)))
        .collect();
    let (rec, status) = record_in_cgroup(&cg, &[], Command::new("/bin/true").args(&args));
    assert!(status.success());
    let e = &rec.of_kind("exec")[0];
    let full: Vec<u8> = std::iter::once(b"/bin/true".to_vec())
        .chain(args.iter().map(|a| a.as_bytes().to_vec()))
        .flat_map(|mut a| {
            a.push(0);
            a
        })
        .collect();
    assert_eq!(e["argv_truncated"], 1);
    assert_eq!(e["argc"], 101);
    assert_eq!(e["argv_bytes"], full.len());
    let mut captured: Vec<u8> = Vec::new();
    for a in argv_bytes(e) {
        captured.extend(a);
        captured.push(0);
    }
    // Exactly the first 8192 bytes were kept (the last piece had no NUL).
    assert_eq!(&captured[..8192], &full[..8192]);
    assert_eq!(captured.len(), 8193);
}

#[test]
fn relative_exec_path_is_kept_as_executed() {
    let cg = TestCgroup::new("relexec");
    let (rec, status) = record_in_cgroup(&cg, &[], Command::new("./true").current_dir("/bin"));
    assert!(status.success());
    assert_eq!(rec.of_kind("exec")[0]["filename"], "./true");
}

fn fork_pairs(rec: &Recorder) -> Vec<(u64, u64)> {
    rec.of_kind("fork")
        .iter()
        .map(|f| {
            assert_eq!(f["thread"], 0);
            (
                f["proc"]["pid"].as_u64().unwrap(),
                f["child_pid"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn exit_of(rec: &Recorder, pid: u64) -> Value {
    let exits: Vec<Value> = rec
        .of_kind("exit")
        .into_iter()
        .filter(|e| e["proc"]["pid"] == pid)
        .collect();
    assert_eq!(exits.len(), 1, "exits of {pid}: {exits:#?}");
    exits.into_iter().next().unwrap()
}

/// Checks the tree workload's records: parent links, exit codes, signals.
fn assert_tree(rec: &Recorder, report: &[(String, String)], root_ppid: u64) {
    let root = report_pid(report, "root");
    let l1 = report_pid(report, "l1");
    let l2 = report_pid(report, "l2");
    let victim = report_pid(report, "victim");
    let segv = report_pid(report, "segv");
    let mut forks = fork_pairs(rec);
    forks.sort();
    let mut want = vec![(root, l1), (root, victim), (root, segv), (l1, l2)];
    want.sort();
    assert_eq!(forks, want);

    let e = exit_of(rec, l2);
    assert_eq!(
        (e["exit_code"].clone(), e["proc"]["ppid"].clone()),
        (12.into(), l1.into())
    );
    let e = exit_of(rec, l1);
    assert_eq!(
        (e["exit_code"].clone(), e["proc"]["ppid"].clone()),
        (11.into(), root.into())
    );
    let e = exit_of(rec, victim);
    assert_eq!(
        (e["signal"].clone(), e["core_dumped"].clone()),
        (9.into(), 0.into())
    );
    assert!(e.get("exit_code").is_none());
    let e = exit_of(rec, segv);
    assert_eq!(
        (e["signal"].clone(), e["core_dumped"].clone()),
        (11.into(), 0.into())
    );
    let e = exit_of(rec, root);
    assert_eq!(
        (e["exit_code"].clone(), e["proc"]["ppid"].clone()),
        (10.into(), root_ppid.into())
    );
    for e in rec.of_kind("exit") {
        assert_eq!(e["thread"], 0, "{e}");
    }
}

#[test]
fn fork_tree_links_exit_codes_and_signals() {
    let cg = TestCgroup::new("tree");
    let mut rec = Recorder::cgroup(&cg, &[]);
    let mut child = cg.spawn(workload_cmd(["tree"]).stdout(Stdio::piped()));
    let mut status = None;
    rec.pump_while(|| {
        status = status.or_else(|| child.try_wait().unwrap());
        status.is_none()
    });
    cg.wait_empty(Duration::from_secs(10));
    rec.drain();
    assert_eq!(status.unwrap().code(), Some(10));
    let out = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    let report = parse_report(&out);
    assert_tree(&rec, &report, std::process::id() as u64);
    let execs = rec.of_kind("exec");
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0]["filename"], workload().to_str().unwrap());
}

#[test]
fn outside_the_cgroup_is_invisible_and_below_it_is_audited() {
    let cg = TestCgroup::new("scope");
    let sub = cg.path().join("child");
    std::fs::create_dir(&sub).unwrap();
    let sub_cg = TestCgroup {
        target: audit_capture::cgroup::Cgroup2::find()
            .unwrap()
            .target(&sub)
            .unwrap(),
    };
    let mut rec = Recorder::cgroup(&cg, &[]);
    // Outside: in the test's own cgroup, running at the same time.
    let mut outside = Command::new("/bin/true")
        .arg("outside-marker")
        .spawn()
        .unwrap();
    let mut inside = cg.spawn(Command::new("/bin/true").arg("inside-marker"));
    let mut below = sub_cg.spawn(Command::new("/bin/true").arg("below-marker"));
    for c in [&mut outside, &mut inside, &mut below] {
        assert!(c.wait().unwrap().success());
    }
    cg.wait_empty(Duration::from_secs(10));
    rec.drain();
    let markers: Vec<String> = rec
        .of_kind("exec")
        .iter()
        .map(|e| e["argv"][1].as_str().unwrap().to_string())
        .collect();
    assert!(
        markers.contains(&"inside-marker".to_string()),
        "{markers:?}"
    );
    assert!(markers.contains(&"below-marker".to_string()), "{markers:?}");
    assert!(
        !markers.contains(&"outside-marker".to_string()),
        "{markers:?}"
    );
    for r in rec.json() {
        let id = r["proc"]["cgroup_id"].as_u64().unwrap();
        assert!(
            id == cg.target.id || id == sub_cg.target.id,
            "record from cgroup {id}: {r}"
        );
    }
    drop(sub_cg);
}

#[test]
fn pid_tree_scope_follows_descendants_only() {
    // The root exists before the capture starts and waits for a go signal.
    let mut root = workload_cmd(["tree", "--wait-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let root_pid = root.id();
    let opts = ProbeOptions {
        families: vec![],
        ..ProbeOptions::default()
    };
    let mut rec = Recorder::start(Scope::PidTree { root: root_pid }, &opts);
    let mut outside = Command::new("/bin/true")
        .arg("outside-marker")
        .spawn()
        .unwrap();
    root.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut status = None;
    rec.pump_while(|| {
        status = status.or_else(|| root.try_wait().unwrap());
        status.is_none()
    });
    assert!(outside.wait().unwrap().success());
    rec.drain();
    assert_eq!(status.unwrap().code(), Some(10));
    let report = parse_report(&std::io::read_to_string(root.stdout.take().unwrap()).unwrap());
    assert_tree(&rec, &report, std::process::id() as u64);
    let outside_pid = outside.id() as u64;
    for r in rec.json() {
        assert_ne!(
            r["proc"]["pid"], outside_pid,
            "outside process recorded: {r}"
        );
    }
}

/// Runs the burst workload and checks logged + reported lost == performed,
/// for every kind, exactly.
fn burst(name: &str, forks: u64, execs: u64, opts: ProbeOptions, interval: Duration) -> u64 {
    let cg = TestCgroup::new(name);
    let mut rec = Recorder::start(Scope::Cgroup(cg.target.clone()), &opts);
    rec.interval = interval;
    let mut child = cg.spawn(&mut workload_cmd([
        "burst",
        &forks.to_string(),
        &execs.to_string(),
    ]));
    let root = child.id() as u64;
    let mut status = None;
    rec.pump_while(|| {
        status = status.or_else(|| child.try_wait().unwrap());
        status.is_none()
    });
    cg.wait_empty(Duration::from_secs(30));
    rec.drain();
    assert!(status.unwrap().success());

    let all = rec.json();
    let count = |kind: &str| all.iter().filter(|r| r["kind"] == kind).count() as u64;
    // Only the workload forks; its children exit, and exec /bin/true.
    let forks_seen = all
        .iter()
        .filter(|r| r["kind"] == "fork" && r["proc"]["pid"] == root)
        .count() as u64;
    assert_eq!(
        forks_seen,
        count("fork"),
        "a fork from a process other than the workload"
    );
    assert_eq!(forks_seen + rec.lost("fork"), forks + execs, "forks");
    assert_eq!(
        count("exec") + rec.lost("exec"),
        execs + 1,
        "execs (+1: the workload's own)"
    );
    assert_eq!(
        count("exit") + rec.lost("exit"),
        forks + execs + 1,
        "exits (+1: the workload)"
    );
    assert_eq!(rec.stats().malformed, 0);
    rec.lost("fork") + rec.lost("exec") + rec.lost("exit")
}

#[test]
fn burst_of_50000_forks_and_execs_is_fully_accounted() {
    let lost = burst(
        "burst",
        45_000,
        5_000,
        ProbeOptions::default(),
        Duration::from_millis(20),
    );
    eprintln!("burst: {lost} events reported lost with the default ring buffer");
}

#[test]
fn tiny_ring_buffer_loses_events_and_says_exactly_how_many() {
    // 64 KiB holds ~300 fork+exit pairs; the reader drains only every 250 ms
    // and is never woken early, so loss really happens here and must add up.
    let opts = ProbeOptions {
        ring_buffer_bytes: 64 << 10,
        wakeup_bytes: u64::MAX,
        families: vec![],
        ..ProbeOptions::default()
    };
    let lost = burst("lossy", 20_000, 0, opts, Duration::from_millis(250));
    assert!(lost > 0, "expected the tiny ring buffer to overflow");
}
