//! Ship throughput on loopback: a store pre-filled with N records
//! (default 200 000) is shipped whole to a real rsyslogd (imtcp, imrelp),
//! timed from the shippers' start until every record is confirmed (RELP:
//! `rsp 200`; plain syslog: TCP-acknowledged, settle 0) and in rsyslogd's
//! output file. Prints a markdown
//! table. Needs root (the store's key directory) and rsyslogd.
//! `cargo bench -p audit-ship --bench ship -- [N]`.

use std::{
    fs,
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use audit_log::{
    record::{Record, now_ns},
    sink::Sink,
    store::{Store, StoreConfig},
};
use audit_ship::{ShipConfig, Shippers};
use serde_json::json;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// rsyslogd with its own configuration, writing what it gets to `out`.
fn rsyslogd(dir: &Path, relp: bool) -> (Child, u16) {
    fs::create_dir_all(dir.join("work")).unwrap();
    let port = free_port();
    let (module, input) = if relp {
        (
            "imrelp",
            format!(
                "input(type=\"imrelp\" address=\"127.0.0.1\" port=\"{port}\" maxDataSize=\"256k\" ruleset=\"ship\")"
            ),
        )
    } else {
        (
            "imtcp",
            format!("input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"ship\")"),
        )
    };
    let conf = format!(
        "global(workDirectory=\"{}\" maxMessageSize=\"256k\")\nmain_queue(queue.type=\"Direct\")\n\
         module(load=\"{module}\")\n\
         template(name=\"rec\" type=\"string\" string=\"%structured-data% %msg%\\n\")\n\
         ruleset(name=\"ship\" queue.type=\"Direct\") {{\n  action(type=\"omfile\" file=\"{}\" template=\"rec\")\n}}\n{input}\n",
        dir.join("work").display(),
        dir.join("received.log").display()
    );
    fs::write(dir.join("rsyslog.conf"), conf).unwrap();
    let child = Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(dir.join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.join("pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd");
    let end = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "rsyslogd does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

fn fill(log: &Path, keys: &Path, n: u64) {
    let mut store = Store::open(StoreConfig::new(log, keys)).expect("store");
    for i in 0..n {
        let r = Record::new("exec", now_ns())
            .with("filename", "/usr/bin/python3")
            .with("argv", json!(["python3", "-c", "print(1)", format!("{i}")]))
            .with("argc", 4)
            .with("result", "success")
            .with(
                "proc",
                json!({"pid": 1000 + i % 5000, "tid": 1000 + i % 5000, "ppid": 999, "uid": 1000,
                       "gid": 1000, "euid": 1000, "egid": 1000, "comm": "python3",
                       "cgroup_id": 12345, "pid_ns": 4026531836u64, "mnt_ns": 4026531841u64}),
            );
        store.accept(r).expect("accept");
        if i % 4096 == 4095 {
            store.flush().expect("flush");
        }
    }
    store.close("bench").expect("close");
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let t = tempfile::tempdir().unwrap();
    let (log, keys) = (t.path().join("log"), t.path().join("keys"));
    fill(&log, &keys, n);
    let total = audit_ship::anchor::segments(&log)
        .iter()
        .map(|s| fs::read(s).unwrap().iter().filter(|&&b| b == b'\n').count() as u64)
        .sum::<u64>();
    println!("| transport | records | seconds | records/s |");
    println!("|---|---|---|---|");
    for (name, relp, window) in [
        ("syslog+tcp", false, 128),
        ("relp (window 128, default)", true, 128),
        ("relp (window 1024)", true, 1024),
    ] {
        let dir = t.path().join(format!(
            "{scheme_dir}-{window}",
            scheme_dir = if relp { "relp" } else { "tcp" }
        ));
        let (mut child, port) = rsyslogd(&dir, relp);
        let scheme = if relp { "relp" } else { "syslog+tcp" };
        let mut c = ShipConfig::new(&log);
        c.destinations = vec![format!("{scheme}://127.0.0.1:{port}")];
        c.state_dir = dir.join("state");
        c.settle = Duration::ZERO;
        c.relp_window = window;
        c.drain = Duration::from_secs(600);
        let start = Instant::now();
        let s = Shippers::start(c).expect("shippers");
        s.finish();
        // Done when the receiver's file holds every record (plain syslog
        // counts TCP-acknowledged bytes; rsyslogd writes a little later).
        let lines = || {
            fs::read(dir.join("received.log"))
                .map(|d| d.iter().filter(|&&b| b == b'\n').count() as u64)
                .unwrap_or(0)
        };
        let end = Instant::now() + Duration::from_secs(120);
        while lines() < total && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let secs = start.elapsed().as_secs_f64();
        let _ = child.kill();
        let _ = child.wait();
        let got = lines();
        assert!(
            got >= total,
            "{name}: rsyslogd has {got} of {total} records"
        );
        println!(
            "| {name} | {total} | {secs:.2} | {:.0} |",
            total as f64 / secs
        );
    }
}
