//! Shipping to a real rsyslogd, one test per transport (syslog over TCP,
//! syslog over TLS, RELP), each with the same story: the agent ships a live
//! capture; the receiver is killed for 5 s and restarted; the agent is
//! killed with SIGKILL and restarted; then the agent stops. Afterwards the
//! receiver holds every record of the store, byte for byte, compared by seq;
//! duplicates are only what was unconfirmed at a break; the outage is in
//! the chain; and `verify --anchor <rsyslog's file>` passes on the real log.

#[path = "harness/mod.rs"]
mod harness;

use std::{collections::BTreeMap, path::Path, time::Duration};

use harness::{Agent, Input, Rsyslog, Workload, cursor_next_seq, stored, stored_kind, wait_for};
use integration_tests::TempDir;

const LONG: Duration = Duration::from_secs(90);

fn agent_args(dir: &Path, pid: u32, url: &str, extra: &[String]) -> Vec<String> {
    let mut v: Vec<String> = [
        "run",
        "--families",
        "process",
        "--pid",
        &pid.to_string(),
        "--log-dir",
        &format!("{}/log", dir.display()),
        "--key-dir",
        &format!("{}/keys", dir.display()),
        "--ship",
        url,
        "--ship-state",
        &format!("{}/state", dir.display()),
        "--ship-backoff-max-ms",
        "1000",
        "--ship-drain-ms",
        "30000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend_from_slice(extra);
    v
}

fn distinct(r: &Rsyslog) -> usize {
    let mut s: Vec<u64> = r.received().iter().map(|(s, _)| *s).collect();
    s.sort();
    s.dedup();
    s.len()
}

/// Seqs received more than once.
fn duplicates(recv: &[(u64, String)]) -> Vec<u64> {
    let mut n: BTreeMap<u64, usize> = BTreeMap::new();
    for (s, _) in recv {
        *n.entry(*s).or_default() += 1;
    }
    n.into_iter()
        .filter(|(_, c)| *c > 1)
        .map(|(s, _)| s)
        .collect()
}

/// Runs the story; `window` bounds the duplicates of the receiver's outage
/// (None: only check that they form one run, as plain syslog has no ack).
fn ship_story(dir: &TempDir, input: Input, scheme: &str, extra: &[String], window: Option<usize>) {
    let root = dir.0.clone();
    let mut rs = Rsyslog::start(&root, input);
    let url = format!("{scheme}://127.0.0.1:{}", rs.port);
    let work = Workload::start();
    let log = root.join("log");
    let state = root.join("state");
    let mut agent = Agent::start(
        agent_args(&root, work.pid(), &url, extra),
        root.join("agent.stderr"),
    );

    wait_for("the first 200 records at the receiver", LONG, || {
        distinct(&rs) >= 200
    });
    rs.kill();
    std::thread::sleep(Duration::from_secs(5));
    rs.restart();
    let after_outage = distinct(&rs);
    wait_for(
        "shipping to resume after the receiver's outage",
        LONG,
        || distinct(&rs) >= after_outage + 200,
    );

    // Kill the agent only once the outage's end is durable in the chain and
    // the cursor has moved (plain syslog confirms only after the settle time).
    wait_for("ship_resumed in the chain", LONG, || {
        stored_kind(&log, "ship_resumed")
            .iter()
            .any(|o| o["destination"] == url.as_str())
    });
    wait_for("a saved cursor", LONG, || cursor_next_seq(&state).is_some());
    agent.kill9();
    let cursor_at_kill = cursor_next_seq(&state).expect("a cursor after shipping");
    let seen_at_kill = distinct(&rs);
    agent.restart();
    wait_for("shipping to resume after the agent's restart", LONG, || {
        distinct(&rs) >= seen_at_kill + 200
    });
    let st = agent.stop();
    assert!(st.success(), "agent: {st}\n{}", agent.log());
    drop(work);

    let store = stored(&log);
    let last = *store.keys().last().unwrap();
    wait_for("the receiver to have the whole store", LONG, || {
        rs.received().iter().any(|(s, _)| *s == last)
    });
    let recv = rs.received();
    let mut got: BTreeMap<u64, &String> = BTreeMap::new();
    for (seq, json) in &recv {
        assert!(
            store.contains_key(seq),
            "the receiver has seq {seq}, the store does not"
        );
        assert_eq!(
            json, &store[seq],
            "seq {seq} differs between receiver and store"
        );
        got.insert(*seq, json);
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

    // Every line carries origin, seq and hash in the structured data.
    let raw = rs.raw();
    let first = raw
        .lines()
        .find(|l| l.contains("seq=\"0\""))
        .expect("seq 0 line");
    let genesis: serde_json::Value = serde_json::from_str(&store[&0]).unwrap();
    assert!(
        first.starts_with(&format!(
            "[sandbox-audit@32473 origin=\"{}\" seq=\"0\" hash=\"{}\"]",
            genesis["origin"].as_str().unwrap(),
            genesis["hash"].as_str().unwrap()
        )),
        "{first}"
    );

    // Duplicates: those after the agent's SIGKILL are records the cursor had
    // not yet passed; the rest come from the receiver's outage.
    let dups = duplicates(&recv);
    let from_outage: Vec<u64> = dups
        .iter()
        .copied()
        .filter(|s| *s < cursor_at_kill)
        .collect();
    if let Some(w) = window {
        assert!(
            from_outage.len() <= w,
            "{} duplicates from the receiver's outage, window {w}: {from_outage:?}",
            from_outage.len()
        );
    }
    assert!(
        from_outage.windows(2).all(|p| p[1] == p[0] + 1),
        "duplicates of the outage are not one resent run: {from_outage:?}"
    );

    // The outage and its end are in the chain.
    let outages = stored_kind(&log, "ship_outage");
    assert!(
        outages.iter().any(|o| o["destination"] == url.as_str()),
        "no ship_outage record"
    );
    let resumed = stored_kind(&log, "ship_resumed");
    assert!(
        resumed
            .iter()
            .any(|o| o["destination"] == url.as_str() && o["backlog"].is_u64())
    );

    // The status file says where shipping stands.
    let status_dir = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(status_dir.join("status.json")).unwrap())
            .unwrap();
    assert_eq!(status["destination"], url.as_str());
    assert_eq!(status["next_seq"], last + 1);

    // What the receiver stored anchors the log.
    let out = rs.out.to_str().unwrap().to_string();
    let (code, text) = harness::verify(&["--anchor", &out, log.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("anchor"), "{text}");
}

#[test]
fn syslog_tcp_delivers_every_record_across_outages() {
    let dir = TempDir::new("ship-tcp");
    ship_story(&dir, Input::Tcp, "syslog+tcp", &[], None);
}

#[test]
fn syslog_tls_delivers_every_record_across_outages() {
    let dir = TempDir::new("ship-tls");
    let certs = harness::make_certs(&dir.0);
    let extra = vec![
        "--ship-ca".to_string(),
        certs.ca.to_str().unwrap().to_string(),
    ];
    ship_story(&dir, Input::Tls(&certs), "syslog+tls", &extra, None);
}

#[test]
fn relp_delivers_every_record_and_duplicates_stay_in_the_window() {
    let dir = TempDir::new("ship-relp");
    let extra = vec!["--ship-window".to_string(), "64".to_string()];
    ship_story(&dir, Input::Relp, "relp", &extra, Some(64));
}
