//! The tree builder, the marks and the filters on synthetic records (the
//! integration tests replay real captures).

use serde_json::{Value, json};

use crate::{
    build::{Built, build},
    event::MarkKind,
    filter::{Filters, apply},
    model::{End, Entry, Origin, Trust, VerdictView, VerifyView},
    source::{Item, parse_line},
};

fn proc_(pid: u64, ppid: u64, uid: u64, comm: &str) -> Value {
    json!({"pid": pid, "tid": pid, "ppid": ppid, "uid": uid, "gid": uid, "euid": uid,
           "egid": uid, "comm": comm, "cgroup_id": 77, "pid_ns": 1, "mnt_ns": 1})
}

/// Records as lines: seq and time follow the order; `hash` is fake (verify
/// is not run here: the VerifyView is given).
fn items(recs: &[Value]) -> Vec<Item> {
    recs.iter()
        .enumerate()
        .map(|(i, r)| {
            let mut m = r.as_object().unwrap().clone();
            m.insert("seq".into(), json!(i));
            m.insert("time_ns".into(), json!(1_000 + i as u64 * 10));
            m.insert("hash".into(), json!(format!("{i:064x}")));
            m.insert("prev_hash".into(), json!("0".repeat(64)));
            let line = serde_json::to_vec(&m).unwrap();
            parse_line(0, i as u64 + 1, &line, true)
        })
        .collect()
}

fn intact(n: u64) -> VerifyView {
    VerifyView {
        intact: true,
        records: n,
        covered: n,
        ..VerifyView::default()
    }
}

fn exec(pid: u64, ppid: u64, uid: u64, argv: &[&str]) -> Value {
    json!({"kind": "exec", "proc": proc_(pid, ppid, uid, argv[0]), "filename": format!("/bin/{}", argv[0]),
           "argv": argv, "result": "success"})
}

fn fork(pid: u64, child: u64) -> Value {
    json!({"kind": "fork", "proc": proc_(pid, 1, 0, "sh"), "child_pid": child, "child_tid": child, "thread": 0})
}

fn exit(pid: u64, uid: u64, code: Option<i64>, signal: Option<i64>) -> Value {
    let mut v =
        json!({"kind": "exit", "proc": proc_(pid, 1, uid, "x"), "thread": 0, "wait_status": 0});
    if let Some(c) = code {
        v["exit_code"] = json!(c);
    }
    if let Some(s) = signal {
        v["signal"] = json!(s);
        v["core_dumped"] = json!(0);
    }
    v
}

fn start(path: &str) -> Value {
    json!({"kind": "start", "scope": {"mode": "cgroup", "path": path, "cgroup_id": 77, "level": 2,
           "command": ["sh", "-c", "x"]}, "pid": 1})
}

fn open(pid: u64, path: &str, ok: bool) -> Value {
    let mut v = json!({"kind": "open", "syscall": "openat", "proc": proc_(pid, 1, 0, "cat"),
                       "path": path, "access": "read"});
    if ok {
        v["result"] = json!("success");
        v["ret"] = json!(3);
    } else {
        v["result"] = json!("failure");
        v["errno"] = json!(2);
        v["errno_name"] = json!("ENOENT");
    }
    v
}

fn as_uid(mut v: Value, uid: u64) -> Value {
    for k in ["uid", "euid", "gid", "egid"] {
        v["proc"][k] = json!(uid);
    }
    v
}

/// A session: sh (100) forks 101 (exec sh -c "exit 3"), 102 (a subshell
/// that forks 103, exec sleep, killed), 104 (exec sh, then exec cat, which
/// fails to open a file, as uid 0 then 1000 after setuid).
fn session() -> Vec<Value> {
    vec![
        json!({"kind": "genesis", "origin": "o"}),
        start("/sys/fs/cgroup/unified/sandbox-audit/exec-1"),
        exec(100, 50, 0, &["sh", "-c", "script"]),
        fork(100, 101),
        exec(101, 100, 0, &["sh", "-c", "exit 3"]),
        exit(101, 0, Some(3), None),
        fork(100, 102),
        fork(102, 103),
        exec(103, 102, 0, &["sleep", "5"]),
        exit(103, 0, None, Some(9)),
        exit(102, 0, Some(137), None),
        fork(100, 104),
        exec(104, 100, 0, &["sh", "-c", "exec cat /nonexistent"]),
        exec(104, 100, 0, &["cat", "/nonexistent"]),
        json!({"kind": "setuid", "syscall": "setuid", "proc": proc_(104, 100, 1000, "cat"), "uid": 1000, "result": "success", "ret": 0}),
        as_uid(open(104, "/nonexistent", false), 1000),
        as_uid(open(104, "/etc/passwd", true), 1000),
        exit(104, 1000, Some(1), None),
        exit(100, 0, Some(0), None),
        json!({"kind": "stop", "reason": "command ended with status 0", "records": 18}),
    ]
}

fn built(recs: &[Value], v: &VerifyView) -> Built {
    build(items(recs), v, &["seg".into()], false)
}

fn record_kinds(b: &Built) -> Vec<String> {
    b.entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record { event, .. } => Some(b.events[*event].kind.clone()),
            _ => None,
        })
        .collect()
}

fn marks(b: &Built) -> Vec<MarkKind> {
    b.entries
        .iter()
        .filter_map(|e| match e {
            Entry::Mark(m) => Some(m.kind),
            Entry::Record { event, .. } => b.events[*event].mark,
        })
        .collect()
}

#[test]
fn rebuilds_tree_argv_exec_chain_creds_and_exits() {
    let recs = session();
    let b = built(&recs, &intact(recs.len() as u64));
    let p = &b.processes;
    assert_eq!(p.len(), 5);
    let pids: Vec<u32> = p.iter().map(|p| p.pid).collect();
    assert_eq!(pids, [100, 101, 102, 103, 104]);
    assert_eq!(p[0].parent, None);
    assert_eq!(p[0].origin, Origin::FirstSeen(2));
    assert_eq!(p[0].children, [1, 2, 4]);
    assert_eq!(p[2].children, [3]);
    assert_eq!(p[1].origin, Origin::Forked(3));
    assert_eq!(p[1].execs[0].argv, ["sh", "-c", "exit 3"]);
    assert_eq!(p[1].exit.as_ref().unwrap().code, Some(3));
    assert!(p[2].execs.is_empty());
    assert_eq!(crate::render::label(&p[2]), "(fork of sh)");
    assert_eq!(p[2].exit.as_ref().unwrap().code, Some(137));
    assert_eq!(p[3].exit.as_ref().unwrap().signal, Some(9));
    assert_eq!(crate::render::status(&p[3], false), "killed by SIGKILL");
    let chain: Vec<&str> = p[4].execs.iter().map(|e| e.argv[0].as_str()).collect();
    assert_eq!(chain, ["sh", "cat"]);
    assert_eq!(crate::render::label(&p[4]), "cat /nonexistent");
    assert_eq!(p[4].cred_changes.len(), 1);
    assert_eq!(p[4].cred_changes[0].to.uid, 1000);
    assert_eq!(p[4].cred_changes[0].kind, "setuid");
    assert_eq!(
        (
            p[4].file_actions,
            p[4].privilege_actions,
            p[4].failed_actions
        ),
        (2, 1, 1)
    );
    assert!(p.iter().all(|p| p.end == End::Exited));
    assert!(marks(&b).is_empty(), "{:?}", marks(&b));
    assert_eq!(b.sessions.len(), 1);
    assert!(b.sessions[0].stop.is_some());
}

#[test]
fn pid_reuse_and_lost_exits_start_new_processes() {
    let recs = vec![
        start("/a"),
        exec(10, 1, 0, &["a"]),
        exec(10, 1, 0, &["b"]),
        fork(10, 11),
        fork(10, 11),
    ];
    let b = built(&recs, &intact(recs.len() as u64));
    assert_eq!(b.processes.len(), 3);
    assert_eq!(b.processes[0].execs.len(), 2, "two execs, one process");
    assert_eq!(b.processes[1].end, End::PidReused);
    assert_eq!(b.processes[2].end, End::SessionEnded);
}

#[test]
fn loss_recovery_incomplete_and_outage_marks_stand_where_they_happened() {
    let mut recs = vec![
        start("/s1"),
        exec(10, 1, 0, &["a"]),
        json!({"kind": "loss", "count": 3, "kinds": {"exec": 3}, "from_ns": 1, "to_ns": 2}),
        exec(11, 1, 0, &["b"]),
        // crash: no stop
        json!({"kind": "recovery", "torn": [], "last_seq": 3, "last_kind": "exec"}),
        start("/s2"),
        exec(20, 1, 0, &["c"]),
    ];
    recs.push(json!({"kind": "stop", "reason": "x", "records": 2}));
    let b = built(&recs, &intact(recs.len() as u64));
    let order: Vec<String> = b
        .entries
        .iter()
        .map(|e| match e {
            Entry::Mark(m) => format!("mark:{}", m.kind.name()),
            Entry::Record { event, .. } => b.events[*event].kind.clone(),
        })
        .collect();
    assert_eq!(
        order,
        [
            "start",
            "exec",
            "loss",
            "exec",
            "recovery",
            "mark:incomplete",
            "mark:outage",
            "start",
            "exec",
            "stop"
        ]
    );
    assert_eq!(b.sessions.len(), 2);
    assert!(b.sessions[0].stop.is_none());
    // The session's processes ended with it.
    assert_eq!(b.processes[0].end, End::SessionEnded);
}

#[test]
fn a_log_ending_without_stop_is_incomplete() {
    let recs = vec![start("/s1"), exec(10, 1, 0, &["a"])];
    let b = built(&recs, &intact(2));
    assert_eq!(marks(&b), [MarkKind::Incomplete]);
    // While the store is live the session is running, not incomplete-ended.
    let b = build(items(&recs), &intact(2), &["seg".into()], true);
    assert_eq!(b.processes[0].end, End::Running);
}

#[test]
fn verdicts_and_the_unsigned_tail_are_marked_on_their_records() {
    let recs = session();
    let n = recs.len() as u64;
    let v = VerifyView {
        intact: false,
        records: n,
        covered: 15,
        verdicts: vec![VerdictView {
            kind: "modified".into(),
            first_seq: 5,
            last_seq: 6,
            file: "seg".into(),
            line: 6,
            detail: "changed".into(),
            count: 1,
        }],
        ..VerifyView::default()
    };
    let b = built(&recs, &v);
    let mut seen = Vec::new();
    for e in &b.entries {
        match e {
            Entry::Mark(m) => seen.push(format!("{}@{:?}", m.kind.name(), m.seq)),
            Entry::Record { event, trust, .. } => {
                let seq = b.events[*event].seq;
                let want = match seq {
                    5 | 6 => Trust::Unverified(0),
                    s if s >= 15 => Trust::Unsigned,
                    _ => Trust::Signed,
                };
                assert_eq!(*trust, want, "seq {seq}");
            }
        }
    }
    assert_eq!(seen, ["unverified@Some(5)", "unsigned@Some(15)"]);
    // The mark comes right before seq 5.
    let pos = b
        .entries
        .iter()
        .position(|e| matches!(e, Entry::Mark(m) if m.kind == MarkKind::Unverified))
        .unwrap();
    assert!(
        matches!(&b.entries[pos + 1], Entry::Record { event, .. } if b.events[*event].seq == 5)
    );
}

#[test]
fn unreadable_lines_are_marks_not_panics() {
    let mut its = items(&session());
    its.insert(3, parse_line(0, 99, b"{\"kind\":\"exec\",\"argv\":", true));
    its.insert(4, parse_line(0, 100, b"[1,2]", true));
    its.insert(
        5,
        parse_line(0, 101, b"{\"seq\":\"x\",\"kind\":\"exec\"}", true),
    );
    its.insert(6, parse_line(0, 102, &[0xff, 0xfe, b'\n'], true));
    let b = build(its, &intact(30), &["seg".into()], false);
    assert_eq!(
        marks(&b)
            .iter()
            .filter(|m| **m == MarkKind::Unreadable)
            .count(),
        4
    );
    assert_eq!(b.processes.len(), 5);
}

fn filtered(f: Filters) -> Built {
    let recs = session();
    let mut b = built(&recs, &intact(recs.len() as u64));
    apply(&mut b, &f).unwrap();
    b
}

fn pids_of_records(b: &Built) -> Vec<Option<u32>> {
    b.entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record { event, .. } => Some(b.events[*event].actor.as_ref().map(|a| a.pid)),
            _ => None,
        })
        .collect()
}

#[test]
fn kind_filter_selects_exactly_its_kinds_and_categories() {
    let b = filtered(Filters {
        kinds: vec!["open".into()],
        ..Filters::default()
    });
    assert_eq!(record_kinds(&b), ["open", "open"]);
    // Only processes with a selected record (and their ancestors) are shown.
    let shown: Vec<u32> = b
        .processes
        .iter()
        .filter(|p| p.shown)
        .map(|p| p.pid)
        .collect();
    assert_eq!(shown, [100, 104]);
    assert!(!b.processes[0].matched && b.processes[4].matched);
    let b = filtered(Filters {
        kinds: vec!["privilege,exit".into()],
        ..Filters::default()
    });
    assert_eq!(
        record_kinds(&b),
        ["exit", "exit", "exit", "setuid", "exit", "exit"]
    );
    let recs = session();
    let mut b = built(&recs, &intact(recs.len() as u64));
    let e = apply(
        &mut b,
        &Filters {
            kinds: vec!["opne".into()],
            ..Filters::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("opne"), "{e}");
}

#[test]
fn pid_filter_with_and_without_descendants() {
    let b = filtered(Filters {
        pid: Some(102),
        ..Filters::default()
    });
    assert_eq!(pids_of_records(&b), [Some(102), Some(102)]);
    let b = filtered(Filters {
        pid: Some(102),
        descendants: true,
        ..Filters::default()
    });
    assert_eq!(
        pids_of_records(&b),
        [Some(102), Some(103), Some(103), Some(102)]
    );
    let shown: Vec<u32> = b
        .processes
        .iter()
        .filter(|p| p.shown)
        .map(|p| p.pid)
        .collect();
    assert_eq!(shown, [100, 102, 103], "the root is shown for context");
    let recs = session();
    let mut b = built(&recs, &intact(recs.len() as u64));
    assert!(
        apply(
            &mut b,
            &Filters {
                pid: Some(4242),
                ..Filters::default()
            }
        )
        .is_err()
    );
}

#[test]
fn path_time_and_sandbox_filters() {
    let b = filtered(Filters {
        path: Some("/nonexist*".into()),
        ..Filters::default()
    });
    assert_eq!(record_kinds(&b), ["open"]);
    let b = filtered(Filters {
        path: Some("/bin/*".into()),
        ..Filters::default()
    });
    assert_eq!(record_kinds(&b), ["exec"; 5]);
    // Times are 1000 + 10 × seq.
    let b = filtered(Filters {
        since_ns: Some(1_000 + 10 * 15),
        until_ns: Some(1_000 + 10 * 17),
        ..Filters::default()
    });
    let seqs: Vec<u64> = b
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record { event, .. } => Some(b.events[*event].seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [15, 16, 17]);
    let b = filtered(Filters {
        sandbox: Some("exec-1".into()),
        ..Filters::default()
    });
    // Everything but genesis (before any session).
    assert_eq!(record_kinds(&b).len(), session().len() - 1);
    for bad in ["exec", "xec-1", "/other"] {
        let recs = session();
        let mut b = built(&recs, &intact(recs.len() as u64));
        assert!(
            apply(
                &mut b,
                &Filters {
                    sandbox: Some(bad.into()),
                    ..Filters::default()
                }
            )
            .is_err(),
            "{bad}"
        );
    }
    let b = filtered(Filters {
        sandbox: Some("77".into()),
        ..Filters::default()
    });
    assert_eq!(record_kinds(&b).len(), session().len() - 1);
}

#[test]
fn marks_survive_record_filters() {
    let recs = vec![
        start("/s1"),
        exec(10, 1, 0, &["a"]),
        json!({"kind": "loss", "count": 3, "kinds": {"exec": 3}, "from_ns": 1, "to_ns": 2}),
        open(10, "/x", true),
    ];
    let mut b = built(&recs, &intact(4));
    apply(
        &mut b,
        &Filters {
            kinds: vec!["open".into()],
            ..Filters::default()
        },
    )
    .unwrap();
    assert_eq!(record_kinds(&b), ["loss", "open"]);
    assert_eq!(marks(&b), [MarkKind::Loss, MarkKind::Incomplete]);
}

#[test]
fn renders_every_format_without_panicking_on_hostile_text() {
    let mut recs = session();
    recs.push(exec(
        200,
        100,
        0,
        &[
            "</td><script>alert(1)</script>",
            "\u{1b}[2J\"'&",
            "\u{202e}",
        ],
    ));
    let b = built(&recs, &intact(recs.len() as u64));
    let r = crate::model::Replay {
        files: vec!["seg".into()],
        verify: intact(recs.len() as u64),
        sessions: b.sessions,
        processes: b.processes,
        events: b.events,
        entries: b.entries,
        ..Default::default()
    };
    for f in [
        crate::Format::Text,
        crate::Format::Json,
        crate::Format::Html,
    ] {
        let mut out = Vec::new();
        crate::render::render(&r, f, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains('\u{1b}'), "{f:?}: raw ESC");
        if f != crate::Format::Json {
            // (JSON carries the records' text as data, escaped by JSON rules.)
            assert!(!s.contains('\u{202e}'), "{f:?}: raw bidi override");
        }
        if f == crate::Format::Html {
            assert!(!s.contains("<script>alert"), "unescaped");
            assert!(!s.contains("http://") && !s.contains("https://"));
            assert_eq!(s.matches("<script>").count(), 1);
        }
        if f == crate::Format::Json {
            let v: Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["processes"].as_array().unwrap().len(), 6);
        }
    }
}

#[test]
fn deep_fork_chains_do_not_overflow_the_stack() {
    let mut recs = vec![start("/s")];
    for i in 0..20_000u64 {
        recs.push(fork(1000 + i, 1001 + i));
    }
    let b = built(&recs, &intact(recs.len() as u64));
    let r = crate::model::Replay {
        files: vec!["seg".into()],
        verify: intact(recs.len() as u64),
        sessions: b.sessions,
        processes: b.processes,
        events: b.events,
        entries: b.entries,
        ..Default::default()
    };
    let mut out = Vec::new();
    crate::render::render(&r, crate::Format::Text, &mut out).unwrap();
    assert!(out.len() < 20 << 20, "output stays linear: {}", out.len());
}

#[test]
fn the_fast_path_reads_records_as_the_general_path_does() {
    let mut recs = session();
    recs.push(
        json!({"kind": "exec", "syscall": "execve", "proc": proc_(9, 1, 0, "sh"),
                     "filename": "/nope", "result": "failure", "errno": 2, "errno_name": "ENOENT"}),
    );
    recs.push(
        json!({"kind": "rename", "proc": proc_(9, 1, 0, "mv"), "path": "/a\"b",
                     "new_path": "/c\u{1b}", "result": "success", "ret": 0}),
    );
    recs.push(json!({"kind": "fork", "proc": proc_(9, 1, 0, "t"), "child_pid": 9, "child_tid": 10, "thread": 1}));
    // The kinds whose summary the fast path makes itself, in their shapes.
    let p = || proc_(9, 1, 0, "c\u{1b}");
    for (result, extra) in [
        ("success", json!({"ret": 3})),
        ("failure", json!({"errno": 13, "errno_name": "EACCES"})),
        ("failure", json!({"errno": 2})),
        ("failure", json!({})),
        ("other", json!({"ret": 3})),
    ] {
        let mut open = json!({"kind": "open", "proc": p(), "path": "/x\u{202e}y",
                              "access": "write", "result": result});
        let mut no_access = json!({"kind": "open", "proc": p(), "result": result});
        for r in [&mut open, &mut no_access] {
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
        }
        recs.push(open);
        recs.push(no_access);
    }
    for remote in [
        json!({"family": "inet", "address": "10.0.0.1", "port": 443}),
        json!({"family": "inet6", "address": "::1"}),
        json!({"family": "unix", "path": "/run/x\u{1b}.sock"}),
        json!({"family": "unix", "abstract": "name"}),
        json!({"family": "unix"}),
        json!({"family": "netlink"}),
        json!({}),
    ] {
        recs.push(
            json!({"kind": "connect", "proc": p(), "remote": remote.clone(),
                         "result": "failure", "errno_name": "ECONNREFUSED"}),
        );
        recs.push(json!({"kind": "accept", "proc": p(), "remote": remote,
                         "result": "success", "ret": 5}));
    }
    recs.push(json!({"kind": "connect", "proc": p(), "result": "success", "ret": 0}));
    recs.push(json!({"kind": "exit", "proc": p(), "thread": 0, "signal": 11, "core_dumped": 1}));
    recs.push(json!({"kind": "exit", "proc": p(), "thread": 1, "exit_code": 2}));
    recs.push(json!({"kind": "exit", "proc": p()}));
    recs.push(
        json!({"kind": "exec", "proc": p(), "filename": "/bin/x", "argv": ["a b", "c'd"],
                     "argv_truncated": 1, "result": "success"}),
    );
    recs.push(json!({"kind": "exec", "proc": p(), "result": "failure"}));
    let mut fast = 0;
    for (i, r) in recs.iter().enumerate() {
        let mut m = r.as_object().unwrap().clone();
        m.insert("seq".into(), json!(i));
        m.insert("time_ns".into(), json!(5));
        m.insert("hash".into(), json!("ab"));
        let line = serde_json::to_vec(&m).unwrap();
        let kind = m["kind"].as_str().unwrap().to_string();
        let mut slow = crate::event::from_json(&m, i as u64, "ab", 5, kind);
        if let Some(mut f) = crate::lite::parse(&line, true) {
            fast += 1;
            if ["exec", "fork", "exit", "open", "connect", "accept"].contains(&f.kind.as_str()) {
                assert!(!f.summary.is_empty(), "made by the fast path: {r}");
            }
            f.raw = crate::event::Raw::copy(&line);
            assert_eq!(f.summary(), slow.summary, "{r}");
            f.raw = None;
            slow.summary.clear();
            f.summary.clear();
            assert_eq!(format!("{f:?}"), format!("{slow:?}"), "{r}");
        }
    }
    assert_eq!(fast, recs.len() - 3, "all but genesis, start and stop");
    // A mistyped field leaves the fast path (the general one copes).
    assert!(
        crate::lite::parse(
            br#"{"seq":1,"time_ns":1,"kind":"open","hash":"x","path":5}"#,
            true
        )
        .is_none()
    );
}
