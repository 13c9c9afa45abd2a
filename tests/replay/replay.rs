//! `sandbox-audit replay` on real captures: a scripted agent run under
//! `sandbox-audit exec` is replayed into exactly its process tree, argv and
//! exit statuses; each filter selects exactly what it names; the HTML page
//! opens in headless Chromium; a tampered log is replayed with the verdict
//! on the affected records.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use integration_tests::{TempDir, sandbox_audit};
use serde_json::Value;

/// The agent: known argv and exit statuses. The subshell waits until its
/// `sleep` sleeps — `(sleep) S` in /proc/PID/stat, read with the builtin
/// `read` (no extra process): the comm alone changes before the exec is
/// complete — before killing it, so the tree does not depend on timing.
const SCRIPT: &str = concat!(
    "sh -c \"exit 3\"; ",
    "(sleep 5 & p=$!; until read s < /proc/$p/stat && case \"$s\" in *\"(sleep) S \"*) true;; *) false;; esac; do :; done; kill -9 $p; wait $p); ",
    "cat /nonexistent; ",
    "/bin/true '<img src=x onerror=alert(1)>' '\u{1b}[2J'; ",
    "true"
);

struct Capture {
    _dir: TempDir,
    log: PathBuf,
    /// Every record of the log, in order.
    records: Vec<Value>,
}

fn sa(args: &[&str]) -> Output {
    Command::new(sandbox_audit())
        .args(args)
        .output()
        .expect("run sandbox-audit")
}

fn capture() -> &'static Capture {
    static C: OnceLock<Capture> = OnceLock::new();
    C.get_or_init(|| {
        let dir = TempDir::new("replay-capture");
        let log = dir.0.join("log");
        let keys = dir.0.join("keys");
        let o = sa(&[
            "exec",
            "--log-dir",
            log.to_str().unwrap(),
            "--key-dir",
            keys.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            SCRIPT,
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "capture failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let records = read_log(&log);
        Capture {
            _dir: dir,
            log,
            records,
        }
    })
}

fn read_log(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for seg in audit_log::segment::list(dir).expect("segments") {
        for l in fs::read_to_string(&seg).expect("read").lines() {
            out.push(serde_json::from_str(l).expect("record"));
        }
    }
    out
}

/// `replay DIR ARGS… --format json`, parsed; asserts the exit status.
fn replay_json(dir: &Path, args: &[&str], status: i32) -> Value {
    let o = Command::new(sandbox_audit())
        .arg("replay")
        .arg(dir)
        .args(args)
        .args(["--format", "json"])
        .output()
        .expect("run replay");
    assert_eq!(
        o.status.code(),
        Some(status),
        "replay {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("replay JSON")
}

fn record_entries(v: &Value) -> Vec<&Value> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "record" && e["mark"].is_null())
        .collect()
}

fn seqs(entries: &[&Value]) -> Vec<u64> {
    entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

fn raw_seqs(records: &[Value], f: impl Fn(&Value) -> bool) -> Vec<u64> {
    records
        .iter()
        .filter(|r| f(r))
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}

fn argv(p: &Value) -> Vec<String> {
    p["execs"]
        .as_array()
        .unwrap()
        .last()
        .map(|e| {
            e["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// (argv of the last exec, exit code, signal, children) of process `id`.
fn node(v: &Value, id: u64) -> &Value {
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .expect("process by id")
}

fn tree(v: &Value, id: u64, depth: usize, out: &mut Vec<String>) {
    let p = node(v, id);
    let a = argv(p);
    let what = if a.is_empty() {
        format!("(fork, comm {})", p["comm"].as_str().unwrap())
    } else {
        a.join(" ")
    };
    let status = match (&p["exit"]["exit_code"], &p["exit"]["signal"]) {
        (Value::Number(c), _) => format!("exit {c}"),
        (_, Value::Number(s)) => format!("signal {s}"),
        _ => "no exit".into(),
    };
    out.push(format!("{}{what} => {status}", "  ".repeat(depth)));
    for c in p["children"].as_array().unwrap() {
        tree(v, c.as_u64().unwrap(), depth + 1, out);
    }
}

#[test]
fn replay_rebuilds_exactly_the_agents_tree_argv_and_exit_statuses() {
    let c = capture();
    let v = replay_json(&c.log, &[], 0);
    assert_eq!(v["format"], "sandbox-audit-replay");
    assert_eq!(v["verify"]["intact"], true);
    let roots: Vec<u64> = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["parent"].is_null())
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:?}");
    let mut lines = Vec::new();
    tree(&v, roots[0], 0, &mut lines);
    // The isolated exec's init (sandbox-init, forked inside the scope)
    // is the root; the script is its child.
    let want = vec![
        "(fork, comm sandbox-init) => exit 0".to_string(),
        format!("  sh -c {SCRIPT} => exit 0"),
        "    sh -c exit 3 => exit 3".to_string(),
        "    (fork, comm sh) => exit 137".to_string(),
        "      sleep 5 => signal 9".to_string(),
        "    cat /nonexistent => exit 1".to_string(),
        "    /bin/true <img src=x onerror=alert(1)> \u{1b}[2J => exit 0".to_string(),
    ];
    assert_eq!(lines, want);
    assert_eq!(v["processes"].as_array().unwrap().len(), 7);
    // Every record of the log is in the timeline, in order, as itself.
    let entries: Vec<&Value> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "record")
        .collect();
    assert_eq!(entries.len(), c.records.len());
    for (e, r) in entries.iter().zip(&c.records) {
        assert_eq!(&e["record"], r);
        assert_eq!(e["hash"], r["hash"]);
        assert_eq!(e["trust"], "signed", "{e}");
    }
    // cat's failed open is attached to cat.
    let cat = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| argv(p) == ["cat", "/nonexistent"])
        .unwrap();
    let open = entries
        .iter()
        .find(|e| e["kind"] == "open" && e["record"]["path"] == "/nonexistent")
        .expect("the failed open");
    assert_eq!(open["process"], cat["id"]);
    assert_eq!(open["failed"], true);
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(v["sessions"][0]["complete"], true);

    // The text tree, like pstree, with argv quoted and statuses.
    let o = sa(&["replay", c.log.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "a raw ESC reached the terminal");
    let tree_lines: Vec<String> = text
        .split("== process tree ==\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.contains("[pid "))
        .map(|l| {
            // Drop the "[pid …]" part, which varies.
            let (a, b) = l.split_once("  [pid ").unwrap();
            format!("{a} {}", b.split_once("]  ").unwrap().1)
        })
        .collect();
    assert_eq!(
        tree_lines,
        [
            "(sandbox-init) status 0".to_string(),
            format!(
                "└─ sh -c '{}' status 0",
                SCRIPT.replace('\u{1b}', "\\x1b").replace('\'', "'\\''")
            ),
            "   ├─ sh -c 'exit 3' status 3".to_string(),
            "   ├─ (fork of sh) status 137".to_string(),
            "   │  └─ sleep 5 killed by SIGKILL".to_string(),
            "   ├─ cat /nonexistent status 1".to_string(),
            "   └─ /bin/true '<img src=x onerror=alert(1)>' '\\x1b[2J' status 0".to_string(),
        ]
    );
}

#[test]
fn each_filter_selects_exactly_what_it_names() {
    let c = capture();
    let log = &c.log;
    let all = replay_json(log, &[], 0);
    let by_argv = |a: &[&str]| -> Value {
        all["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| argv(p) == a)
            .unwrap_or_else(|| panic!("no process {a:?}"))
            .clone()
    };
    let pid_of = |p: &Value| p["pid"].as_u64().unwrap();

    // --kind: a kind, a category, a list.
    let v = replay_json(log, &["--kind", "open"], 0);
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| r["kind"] == "open")
    );
    assert!(!seqs(&record_entries(&v)).is_empty());
    let v = replay_json(log, &["--kind", "exec", "--kind", "exit"], 0);
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| r["kind"] == "exec" || r["kind"] == "exit")
    );
    let v = replay_json(log, &["--kind", "process,lifecycle"], 0);
    let process_or_lifecycle = [
        "exec",
        "fork",
        "exit",
        "genesis",
        "start",
        "stop",
        "config",
        "checkpoint",
        "key_rotation",
    ];
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| process_or_lifecycle
            .contains(&r["kind"].as_str().unwrap()))
    );

    // --pid, with and without --descendants.
    let cat = by_argv(&["cat", "/nonexistent"]);
    let v = replay_json(log, &["--pid", &pid_of(&cat).to_string()], 0);
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| r["proc"]["pid"] == cat["pid"])
    );
    let shown: Vec<u64> = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["matched"] == true)
        .map(pid_of)
        .collect();
    assert_eq!(shown, [pid_of(&cat)]);
    let sleep = by_argv(&["sleep", "5"]);
    let sub = node(&all, sleep["parent"].as_u64().unwrap()).clone();
    let v = replay_json(
        log,
        &["--pid", &pid_of(&sub).to_string(), "--descendants"],
        0,
    );
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| r["proc"]["pid"] == sub["pid"]
            || r["proc"]["pid"] == sleep["pid"])
    );
    let v = replay_json(log, &["--pid", &pid_of(&sub).to_string()], 0);
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| r["proc"]["pid"] == sub["pid"])
    );

    // --path: a literal and a pattern.
    let path_fields = ["path", "new_path", "filename", "target", "namespace"];
    let v = replay_json(log, &["--path", "/nonexistent"], 0);
    let want = raw_seqs(&c.records, |r| {
        path_fields.iter().any(|f| r[*f] == "/nonexistent")
    });
    assert_eq!(seqs(&record_entries(&v)), want);
    assert!(!want.is_empty());
    let v = replay_json(log, &["--path", "/proc/*/stat"], 0);
    let want = raw_seqs(&c.records, |r| {
        path_fields.iter().any(|f| {
            r[*f].as_str().is_some_and(|p| {
                p.strip_prefix("/proc/")
                    .and_then(|p| p.strip_suffix("/stat"))
                    .is_some_and(|mid| !mid.is_empty() && !mid.contains('/'))
            })
        })
    });
    assert_eq!(seqs(&record_entries(&v)), want);
    assert!(!want.is_empty(), "the subshell read /proc/PID/stat");

    // --since/--until: ns and RFC 3339 (the same instant).
    let cat_exec = c
        .records
        .iter()
        .find(|r| r["kind"] == "exec" && r["argv"][0] == "cat")
        .unwrap();
    let t = cat_exec["time_ns"].as_u64().unwrap();
    let v = replay_json(log, &["--since", &t.to_string()], 0);
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| r["time_ns"].as_u64().unwrap() >= t)
    );
    let rfc = rfc3339(t);
    let v2 = replay_json(log, &["--since", &rfc], 0);
    assert_eq!(seqs(&record_entries(&v2)), seqs(&record_entries(&v)));
    let v = replay_json(log, &["--until", &rfc], 0);
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| r["time_ns"].as_u64().unwrap() <= t)
    );

    // --sandbox: the exec's cgroup, by its last path component and by id.
    let start = c.records.iter().find(|r| r["kind"] == "start").unwrap();
    let path = start["scope"]["path"].as_str().unwrap();
    let name = path.rsplit('/').next().unwrap();
    let start_seq = start["seq"].as_u64().unwrap();
    let v = replay_json(log, &["--sandbox", name], 0);
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| r["seq"].as_u64().unwrap() >= start_seq)
    );
    let v = replay_json(
        log,
        &["--sandbox", &start["scope"]["cgroup_id"].to_string()],
        0,
    );
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| r["seq"].as_u64().unwrap() >= start_seq)
    );

    // Filters combine: cat's opens only.
    let v = replay_json(
        log,
        &["--pid", &pid_of(&cat).to_string(), "--kind", "open"],
        0,
    );
    assert_eq!(
        seqs(&record_entries(&v)),
        raw_seqs(&c.records, |r| r["proc"]["pid"] == cat["pid"]
            && r["kind"] == "open")
    );
}

/// RFC 3339 with ns, computed independently of the replay's own code.
fn rfc3339(ns: u64) -> String {
    let o = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", ns / 1_000_000_000),
            "+%Y-%m-%dT%H:%M:%S",
        ])
        .output()
        .expect("date");
    format!(
        "{}.{:09}Z",
        String::from_utf8(o.stdout).unwrap().trim(),
        ns % 1_000_000_000
    )
}

#[test]
fn bad_arguments_are_clear_errors() {
    let c = capture();
    let log = c.log.to_str().unwrap();
    for (args, says) in [
        (vec!["--since", "yesterday"], "--since"),
        (vec!["--until", "2026-13-01T00:00:00Z"], "month 13"),
        (
            vec![
                "--since",
                "2026-12-02T00:00:00Z",
                "--until",
                "2026-12-01T00:00:00Z",
            ],
            "after --until",
        ),
        (vec!["--descendants"], "--pid"),
        (vec!["--format", "pdf"], "pdf"),
        (vec!["--path", "[abc"], "--path"),
        (vec!["--kind", "opne"], "opne"),
        (vec!["--pid", "4000000"], "no process with that pid"),
        (vec!["--pid", "x"], "--pid"),
        (vec!["--sandbox", "no-such-sandbox"], "no session"),
    ] {
        let o = Command::new(sandbox_audit())
            .args(["replay", log])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: output despite the error");
    }
    let o = sa(&["replay", "/nonexistent/log/dir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/log/dir"));
}

/// Headless Chromium's DOM of an HTML file, after its script ran.
fn dump_dom(html: &Path) -> String {
    let profile = TempDir::new("chromium-profile");
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path()),
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium is not installed: run `cargo xtask bootstrap` (Debian package chromium)");
    assert!(
        o.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write_html(log: &Path, out: &Path, status: i32) -> String {
    let o = Command::new(sandbox_audit())
        .arg("replay")
        .arg(log)
        .args(["--format", "html", "-o"])
        .arg(out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(status),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    fs::read_to_string(out).unwrap()
}

#[test]
fn the_html_report_is_self_contained_and_opens_in_headless_chromium() {
    let c = capture();
    let tmp = TempDir::new("replay-html");
    let out = tmp.0.join("replay.html");
    let html = write_html(&c.log, &out, 0);
    // Nothing from the network, nothing but its own script.
    for bad in ["http://", "https://", "src=", "<link", "@import", "url("] {
        let hits = html.matches(bad).count();
        let allowed = usize::from(bad == "src=") * html.matches("onerror=alert").count();
        assert!(hits <= allowed, "the page holds {bad:?}");
    }
    assert!(
        !html.contains("<img"),
        "record text reached the page unescaped"
    );
    assert!(html.contains("Content-Security-Policy"));
    assert_eq!(html.matches("<script").count(), 1);

    let dom = dump_dom(&out);
    assert!(
        dom.contains("Verify: INTACT"),
        "verdict missing from the DOM"
    );
    assert!(dom.contains("id=\"tree\""), "tree missing");
    for p in [
        "sh -c 'exit 3'",
        "(fork of sh)",
        "sleep 5",
        "killed by SIGKILL",
        "cat /nonexistent",
        "status 3",
        "status 137",
        "status 1",
    ] {
        let tree = dom.split("id=\"tree\"").nth(1).unwrap();
        let tree = tree.split("id=\"timeline\"").next().unwrap();
        assert!(tree.contains(p), "tree lacks {p:?}");
    }
    // The page's script ran (it counts the rows it shows)…
    assert!(dom.contains(" shown<"), "the page's script did not run");
    // …and the hostile argv stayed text.
    assert!(!dom.contains("<img"), "an element was injected");
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"));
    // Each record links its seq and shows its hash.
    let last = c.records.last().unwrap();
    assert!(dom.contains(&format!("href=\"#seq-{}\"", last["seq"])));
    assert!(dom.contains(last["hash"].as_str().unwrap()));
}

#[test]
fn a_tampered_log_is_replayed_with_the_verdict_on_the_affected_records() {
    let c = capture();
    let tmp = TempDir::new("replay-tamper");
    let log = tmp.0.join("log");
    fs::create_dir_all(&log).unwrap();
    // A copy (the originals are append-only/immutable); new files carry no
    // flags.
    for seg in audit_log::segment::list(&c.log).unwrap() {
        fs::copy(&seg, log.join(seg.file_name().unwrap())).unwrap();
    }
    // One byte of cat's exec record: "/nonexistent" → "/nonexistenT".
    let target = c
        .records
        .iter()
        .find(|r| r["kind"] == "exec" && r["argv"][0] == "cat")
        .unwrap();
    let seq = target["seq"].as_u64().unwrap();
    let mut changed = false;
    for seg in audit_log::segment::list(&log).unwrap() {
        let mut data = fs::read(&seg).unwrap();
        let hash = target["hash"].as_str().unwrap();
        let Some(line_at) = find(&data, hash.as_bytes()) else {
            continue;
        };
        let start = data[..line_at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let at = start + find(&data[start..], b"\"/nonexistent\"").unwrap() + 12;
        assert_eq!(data[at], b't');
        data[at] = b'T';
        fs::write(&seg, &data).unwrap();
        changed = true;
    }
    assert!(changed);

    let v = replay_json(&log, &[], 1);
    assert_eq!(v["verify"]["intact"], false);
    let verdicts = v["verify"]["verdicts"].as_array().unwrap();
    let hit = verdicts
        .iter()
        .position(|d| {
            d["first_seq"].as_u64().unwrap() <= seq && seq <= d["last_seq"].as_u64().unwrap()
        })
        .expect("a verdict covers the changed record");
    assert_eq!(verdicts[hit]["kind"], "modified");
    let tl = v["timeline"].as_array().unwrap();
    let pos = tl
        .iter()
        .position(|e| e["type"] == "record" && e["seq"] == seq)
        .unwrap();
    assert_eq!(tl[pos]["trust"], "unverified");
    assert_eq!(tl[pos]["verdict"], hit);
    // The replay shows what the log now says, marked.
    assert_eq!(tl[pos]["record"]["argv"][1], "/nonexistenT");
    let mark = tl[..pos]
        .iter()
        .rposition(|e| e["type"] == "mark" && e["mark"] == "unverified")
        .expect("an unverified mark before the record");
    assert_eq!(tl[mark]["verdict"], hit);
    // Records outside every verdict range are not marked unverified.
    for e in tl.iter().filter(|e| e["type"] == "record") {
        let s = e["seq"].as_u64().unwrap();
        let inside = verdicts
            .iter()
            .any(|d| d["first_seq"].as_u64().unwrap() <= s && s <= d["last_seq"].as_u64().unwrap());
        assert_eq!(e["trust"] == "unverified", inside, "seq {s}");
    }

    // Text: the mark line and the flagged record.
    let o = sa(&["replay", log.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("TAMPERED"));
    assert!(text.contains("!!! UNVERIFIED"));
    let flagged = text
        .split("== timeline ==")
        .nth(1)
        .unwrap()
        .lines()
        .find(|l| l.contains("exec /usr/bin/cat: cat /nonexistenT"))
        .expect("the record in the timeline");
    assert!(flagged.starts_with("   !"), "{flagged}");

    // HTML: the verdict on top, in the DOM.
    let out = tmp.0.join("tampered.html");
    write_html(&log, &out, 1);
    let dom = dump_dom(&out);
    assert!(dom.contains("Verify: TAMPERED"));
    assert!(dom.contains(&format!("id=\"seq-{seq}\" class=\"t-unverified\"")));
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
