//! Shipping over HTTP to a receiver inside the test (real HTTPS on
//! loopback, a certificate from the test's CA): the NDJSON webhook and the
//! Splunk-HEC-compatible collector with indexer acknowledgement. Each story
//! ships a live capture while the receiver answers 500, stalls, (HEC)
//! withholds its acks and loses the batches, is stopped for 5 s, and while
//! the agent is killed with SIGKILL and restarted. Afterwards the receiver
//! holds every record of the store, compared by seq; duplicates come only
//! from unconfirmed batches; the cursor never passed an unacknowledged
//! record. And: a wrong CA or server name is refused clearly, a bad token or
//! a 4xx is a clear permanent error, and the token never reaches a log.

#[path = "harness/mod.rs"]
mod harness;
#[path = "harness/http_receiver.rs"]
mod http_receiver;

use std::{collections::BTreeMap, fs, path::Path, process::Command, time::Duration};

use harness::{Agent, Certs, Workload, cursor_next_seq, stored, stored_kind, wait_for};
use http_receiver::{HttpReceiver, Kind, Mode};
use integration_tests::{TempDir, sandbox_audit};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(90);
/// Records per request: the webhook's window; HEC keeps 8 batches
/// unacknowledged.
const WEBHOOK_BATCH: usize = 40;
const HEC_BATCH: usize = 100;
const TOKEN: &str = "4f2b1c1e-0d3a-4e55-9a7b-2c51d3b0a9e1";

fn agent_args(
    dir: &Path,
    pid: u32,
    url: &str,
    ca: &Path,
    batch: usize,
    extra: &[&str],
) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "run".into(),
        "--families".into(),
        "process".into(),
        "--pid".into(),
        pid.to_string(),
        "--log-dir".into(),
        format!("{}/log", dir.display()),
        "--key-dir".into(),
        format!("{}/keys", dir.display()),
        "--ship".into(),
        url.into(),
        "--ship-ca".into(),
        ca.display().to_string(),
        "--ship-state".into(),
        format!("{}/state", dir.display()),
        "--ship-batch".into(),
        batch.to_string(),
        "--ship-http-timeout-ms".into(),
        "2000".into(),
        "--ship-ack-timeout-ms".into(),
        "3000".into(),
        "--ship-backoff-max-ms".into(),
        "1000".into(),
        "--ship-drain-ms".into(),
        "30000".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The record inside what the receiver stored: the NDJSON line itself, or
/// the HEC event's `event`.
fn record_of(kind: &Kind, line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap();
    match kind {
        Kind::Webhook { .. } => v,
        Kind::Hec { .. } => v["event"].clone(),
    }
}

/// Runs of consecutive seqs received more than once.
fn duplicate_runs(recv: &[(u64, String)], below: u64) -> Vec<Vec<u64>> {
    let mut n: BTreeMap<u64, usize> = BTreeMap::new();
    for (s, _) in recv {
        *n.entry(*s).or_default() += 1;
    }
    let mut runs: Vec<Vec<u64>> = Vec::new();
    for s in n
        .into_iter()
        .filter(|(s, c)| *c > 1 && *s < below)
        .map(|(s, _)| s)
    {
        match runs.last_mut() {
            Some(r) if *r.last().unwrap() + 1 == s => r.push(s),
            _ => runs.push(vec![s]),
        }
    }
    runs
}

fn outages_with(log: &Path, url: &str, text: &str) -> usize {
    stored_kind(log, "ship_outage")
        .iter()
        .filter(|o| o["destination"] == url && o["error"].as_str().unwrap_or("").contains(text))
        .count()
}

/// Waits until the receiver holds `n` more distinct records than now.
fn progress(rx: &HttpReceiver, n: usize, what: &str) {
    let base = rx.distinct();
    wait_for(what, LONG, || rx.distinct() >= base + n);
}

fn resumed(log: &Path, url: &str) -> usize {
    stored_kind(log, "ship_resumed")
        .iter()
        .filter(|o| o["destination"] == url)
        .count()
}

/// After a fault: the receiver gets 200 more records AND the chain records
/// the outage's end. Records at the receiver are not enough: HEC stores a
/// batch before the shipper has polled its ack, and an outage that has not
/// ended yet swallows the next fault (it is the same outage, "still down"),
/// so the next phase would wait for a `ship_outage` that never comes.
fn recovered(rx: &HttpReceiver, log: &Path, url: &str, before: usize, what: &str) {
    progress(rx, 200, what);
    wait_for(&format!("{what}: ship_resumed in the chain"), LONG, || {
        resumed(log, url) > before
    });
}

fn story(kind: Kind) {
    let hec = matches!(kind, Kind::Hec { .. });
    let dir = TempDir::new(if hec { "ship-hec" } else { "ship-webhook" });
    let root = dir.0.clone();
    let certs: Certs = harness::make_certs(&root);
    let mut rx = HttpReceiver::start(kind.clone(), &certs.cert, &certs.key);
    let token_file = root.join("hec.token");
    fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (url, extra): (String, Vec<&str>) = if hec {
        (
            format!("hec+https://localhost:{}/services/collector/event", rx.port),
            vec!["--ship-hec-token-file", token_file.to_str().unwrap()],
        )
    } else {
        (format!("https://localhost:{}/hook", rx.port), vec![])
    };
    let batch = if hec { HEC_BATCH } else { WEBHOOK_BATCH };
    let window = if hec { batch * 8 } else { batch };
    let work = Workload::start();
    let log = root.join("log");
    let state = root.join("state");
    let mut agent = Agent::start(
        agent_args(&root, work.pid(), &url, &certs.ca, batch, &extra),
        root.join("agent.stderr"),
    );
    wait_for("the first 200 records at the receiver", LONG, || {
        agent.assert_running();
        rx.distinct() >= 200
    });

    // 1. The receiver fails every request with 500.
    let r = resumed(&log, &url);
    rx.set_mode(Mode::Fail);
    wait_for("an outage for HTTP 500 in the chain", LONG, || {
        outages_with(&log, &url, "HTTP 500") > 0
    });
    rx.set_mode(Mode::Normal);
    recovered(&rx, &log, &url, r, "shipping to resume after the 500s");

    // 2. The receiver takes a batch and never answers.
    let stalls = outages_with(&log, &url, "no complete HTTP response within 2000 ms");
    let r = resumed(&log, &url);
    rx.set_mode(Mode::Stall);
    wait_for("an outage for the stall in the chain", LONG, || {
        outages_with(&log, &url, "no complete HTTP response within 2000 ms") > stalls
    });
    rx.set_mode(Mode::Normal);
    recovered(&rx, &log, &url, r, "shipping to resume after the stall");

    // 3. HEC: the receiver gives ackIds but never indexes; the cursor must
    // not pass those records, and they must come again.
    if hec {
        let r = resumed(&log, &url);
        rx.set_mode(Mode::WithholdAcks);
        wait_for("an outage for the missing acks in the chain", LONG, || {
            outages_with(&log, &url, "no indexer acknowledgement for ackId") > 0
        });
        let unacked = rx.pending_seqs();
        let first_unacked = *unacked.iter().min().expect("batches waiting for acks");
        let cursor = cursor_next_seq(&state).unwrap_or(0);
        assert!(
            cursor <= first_unacked,
            "the cursor ({cursor}) passed a record never acknowledged ({first_unacked})"
        );
        rx.set_mode(Mode::Normal); // the withheld batches are lost
        recovered(
            &rx,
            &log,
            &url,
            r,
            "shipping to resume after the lost batches",
        );
    }

    // 4. The receiver is gone for 5 s.
    let r = resumed(&log, &url);
    rx.kill();
    std::thread::sleep(Duration::from_secs(5));
    rx.restart();
    recovered(
        &rx,
        &log,
        &url,
        r,
        "shipping to resume after the receiver's restart",
    );

    // 5. SIGKILL the agent once the outages' end is durable (above); it
    // resumes from its cursor.
    wait_for("a saved cursor", LONG, || cursor_next_seq(&state).is_some());
    agent.kill9();
    let cursor_at_kill = cursor_next_seq(&state).unwrap();
    agent.restart();
    wait_for(
        "the restarted agent to resume from the cursor",
        LONG,
        || {
            agent
                .log()
                .contains(&format!("resuming from the cursor at seq {cursor_at_kill}"))
        },
    );
    progress(&rx, 200, "shipping to go on after the agent's restart");
    let st = agent.stop();
    assert!(st.success(), "agent: {st}\n{}", agent.log());
    drop(work);

    // Every record of the store is at the receiver, unchanged.
    let store = stored(&log);
    let last = *store.keys().last().unwrap();
    let end = std::time::Instant::now() + LONG;
    while !rx.received().iter().any(|(s, _)| *s == last) {
        let log = agent.log();
        assert!(
            std::time::Instant::now() < end,
            "the receiver never got seq {last}; agent log tail:\n{}",
            &log[log.len().saturating_sub(6000)..]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let recv = rx.received();
    let genesis: Value = serde_json::from_str(&store[&0]).unwrap();
    let origin = genesis["origin"].as_str().unwrap();
    let mut got = BTreeMap::new();
    for (seq, line) in &recv {
        let stored_line = store
            .get(seq)
            .unwrap_or_else(|| panic!("the receiver has seq {seq}, the store does not"));
        let want: Value = serde_json::from_str(stored_line).unwrap();
        assert_eq!(record_of(&kind, line), want, "seq {seq} differs");
        match &kind {
            // The line is the stored line, byte for byte.
            Kind::Webhook { .. } => assert_eq!(line, stored_line, "seq {seq}"),
            Kind::Hec { .. } => {
                let ev: Value = serde_json::from_str(line).unwrap();
                assert_eq!(ev["fields"]["origin"], origin);
                assert_eq!(ev["fields"]["seq"], seq.to_string());
                assert_eq!(ev["fields"]["hash"], want["hash"]);
                assert_eq!(ev["sourcetype"], "sandbox-audit");
                assert_eq!(ev["source"], "sandbox-audit");
                let t = ev["time"].as_f64().unwrap();
                let ns = want["time_ns"].as_u64().unwrap() as f64;
                assert!((t - ns / 1e9).abs() < 1e-3, "seq {seq}: time {t}");
            }
        }
        got.insert(*seq, ());
    }
    let missing: Vec<u64> = store
        .keys()
        .filter(|s| !got.contains_key(s))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "missing at the receiver: {missing:?}\n{}",
        agent.log()
    );

    // Duplicates before the SIGKILL are resent unconfirmed batches: each
    // run at most one window, at most one run per break (500s, stall, lost
    // batches, receiver restart).
    let runs = duplicate_runs(&recv, cursor_at_kill);
    assert!(runs.len() <= 4, "duplicate runs: {runs:?}");
    for r in &runs {
        assert!(
            r.len() <= window,
            "{} duplicates, window {window}: {r:?}",
            r.len()
        );
    }

    // What went on the wire.
    let reqs = rx.requests();
    match &kind {
        Kind::Webhook { .. } => {
            for r in &reqs {
                assert_eq!(r.headers["content-type"], "application/x-ndjson");
                assert_eq!(r.headers["x-sandbox-audit-origin"], origin);
            }
        }
        Kind::Hec { .. } => {
            let channel = fs::read_to_string(
                fs::read_dir(&state)
                    .unwrap()
                    .flatten()
                    .next()
                    .unwrap()
                    .path()
                    .join("channel"),
            )
            .unwrap();
            for r in &reqs {
                assert_eq!(r.headers["authorization"], format!("Splunk {TOKEN}"));
                assert_eq!(
                    r.headers["x-splunk-request-channel"],
                    channel.trim(),
                    "one channel per destination, kept across restarts"
                );
            }
            assert!(reqs.iter().any(|r| r.target == "/services/collector/ack"));
        }
    }
    // The token reaches no log, no record, no state file.
    let agent_log = agent.log();
    assert!(
        !agent_log.contains(TOKEN),
        "the token is in the agent's log"
    );
    assert!(
        store.values().all(|l| !l.contains(TOKEN)),
        "the token is in the chain"
    );
    for f in fs::read_dir(&state).unwrap().flatten() {
        for g in fs::read_dir(f.path()).unwrap().flatten() {
            let text = fs::read_to_string(g.path()).unwrap_or_default();
            assert!(
                !text.contains(TOKEN),
                "the token is in {}",
                g.path().display()
            );
        }
    }

    // Status and outages.
    let status_dir = fs::read_dir(&state)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let status: Value =
        serde_json::from_str(&fs::read_to_string(status_dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["destination"], url.as_str());
    assert_eq!(status["next_seq"], last + 1);
    assert!(
        stored_kind(&log, "ship_resumed")
            .iter()
            .any(|o| o["destination"] == url.as_str() && o["backlog"].is_u64())
    );

    // What the receiver stored anchors the log (an NDJSON dump).
    let dump = root.join("received.ndjson");
    let text: String = recv.iter().map(|(_, l)| format!("{l}\n")).collect();
    fs::write(&dump, text).unwrap();
    let (code, out) = harness::verify(&["--anchor", dump.to_str().unwrap(), log.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("anchor"), "{out}");
}

#[test]
fn webhook_delivers_every_record_across_failures_stalls_and_restarts() {
    story(Kind::Webhook {
        path: "/hook".into(),
    });
}

#[test]
fn hec_delivers_every_record_and_moves_only_on_indexer_acks() {
    story(Kind::Hec {
        token: TOKEN.into(),
    });
}

/// `exec` of a short command shipping to `url`; returns (success, stderr).
fn exec_shipping(dir: &Path, name: &str, ship: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = Command::new(sandbox_audit());
    c.args(["exec", "--families", "process"])
        .arg("--log-dir")
        .arg(dir.join(format!("{name}-log")))
        .arg("--key-dir")
        .arg(dir.join(format!("{name}-keys")))
        .arg("--ship-state")
        .arg(dir.join(format!("{name}-state")))
        .args(["--ship-backoff-max-ms", "500", "--ship-drain-ms", "1000"])
        .args(ship)
        .args([
            "--",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do /bin/true; sleep 0.2; done",
        ]);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{name}: exec failed: {err}");
    err
}

#[test]
fn https_refuses_a_wrong_ca_and_a_wrong_name_clearly() {
    let dir = TempDir::new("ship-http-tls");
    let certs = harness::make_certs(&dir.0);
    let (other_ca, _) = harness::make_ca(&dir.0, "other-ca");
    for kind in [
        Kind::Webhook {
            path: "/hook".into(),
        },
        Kind::Hec {
            token: TOKEN.into(),
        },
    ] {
        let rx = HttpReceiver::start(kind.clone(), &certs.cert, &certs.key);
        let url = match kind {
            Kind::Webhook { .. } => format!("https://127.0.0.1:{}/hook", rx.port),
            Kind::Hec { .. } => format!("hec+https://127.0.0.1:{}?token={TOKEN}", rx.port),
        };
        let tag = if url.starts_with("hec") {
            "hec"
        } else {
            "webhook"
        };
        let ca = certs.ca.to_str().unwrap();
        let cases = [
            (
                "ca",
                vec!["--ship-ca", other_ca.to_str().unwrap()],
                "UnknownIssuer",
            ),
            (
                "name",
                vec!["--ship-ca", ca, "--ship-server-name", "wrong.example"],
                "not valid for name \"wrong.example\"",
            ),
        ];
        for (case, flags, why) in cases {
            let name = format!("{tag}-{case}");
            let mut ship = vec!["--ship", url.as_str()];
            ship.extend(flags);
            let err = exec_shipping(&dir.0, &name, &ship, &[]);
            assert!(
                err.contains("TLS handshake with 127.0.0.1")
                    && err.contains("invalid peer certificate")
                    && err.contains(why),
                "{name}: {err}"
            );
            assert!(
                !err.contains(TOKEN),
                "{name}: the token is in the log: {err}"
            );
            let log = dir.0.join(format!("{name}-log"));
            assert!(
                stored_kind(&log, "ship_outage")
                    .iter()
                    .any(|o| o["error"].as_str().unwrap_or("").contains(why)),
                "{name}: the refusal is not in the chain"
            );
            assert!(
                !stored_kind(&log, "exec").is_empty(),
                "{name}: capture went on"
            );
        }
        assert!(
            rx.requests().is_empty(),
            "nothing may reach an unverified receiver"
        );
    }
}

#[test]
fn a_bad_token_or_a_4xx_is_a_clear_permanent_error() {
    let dir = TempDir::new("ship-http-refused");
    let certs = harness::make_certs(&dir.0);
    let ca = certs.ca.to_str().unwrap().to_string();

    // HEC with the wrong token, from the environment.
    let rx = HttpReceiver::start(
        Kind::Hec {
            token: TOKEN.into(),
        },
        &certs.cert,
        &certs.key,
    );
    let url = format!("hec+https://localhost:{}", rx.port);
    let wrong = "0badc0de-0000-4000-8000-000000000000";
    let err = exec_shipping(
        &dir.0,
        "token",
        &["--ship", &url, "--ship-ca", &ca],
        &[("SANDBOX_AUDIT_HEC_TOKEN", wrong)],
    );
    assert!(
        err.contains("STOPPED shipping")
            && err.contains("HTTP 403 Forbidden: Invalid token (HEC code 4)")
            && err.contains("permanent"),
        "{err}"
    );
    assert!(!err.contains(wrong), "the token is in the log: {err}");
    let log = dir.0.join("token-log");
    let halted = stored_kind(&log, "ship_halted");
    assert!(
        halted.len() == 1
            && halted[0]["error"]
                .as_str()
                .unwrap()
                .contains("Invalid token")
            && halted[0]["destination"] == url.as_str(),
        "{halted:?}"
    );
    assert!(stored(&log).values().all(|l| !l.contains(wrong)));
    // One refused request: a permanent error is not retried.
    assert_eq!(rx.refusals().len(), 1, "{:?}", rx.refusals());
    assert!(rx.received().is_empty());

    // No token anywhere: refused before capture starts.
    let o = Command::new(sandbox_audit())
        .args([
            "exec",
            "--families",
            "process",
            "--ship",
            &url,
            "--ship-ca",
            &ca,
        ])
        .arg("--log-dir")
        .arg(dir.0.join("none-log"))
        .arg("--key-dir")
        .arg(dir.0.join("none-keys"))
        .arg("--ship-state")
        .arg(dir.0.join("none-state"))
        .args(["--", "/bin/true"])
        .env_remove("SANDBOX_AUDIT_HEC_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("needs a token"),
        "{err}"
    );

    // A webhook that answers 403.
    let rx = HttpReceiver::start(
        Kind::Webhook {
            path: "/hook".into(),
        },
        &certs.cert,
        &certs.key,
    );
    rx.set_mode(Mode::Refuse);
    let url = format!("https://localhost:{}/hook?key=s3cret", rx.port);
    let err = exec_shipping(&dir.0, "webhook", &["--ship", &url, "--ship-ca", &ca], &[]);
    assert!(
        err.contains("STOPPED shipping")
            && err.contains("HTTP 403 Forbidden")
            && err.contains("go away")
            && err.contains("permanent"),
        "{err}"
    );
    assert!(
        !err.contains("s3cret"),
        "the webhook's query is in the log: {err}"
    );
    assert_eq!(rx.refusals().len(), 1, "{:?}", rx.refusals());
    assert_eq!(
        stored_kind(&dir.0.join("webhook-log"), "ship_halted").len(),
        1
    );
}
