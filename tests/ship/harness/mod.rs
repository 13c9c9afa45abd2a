//! Shared by the shipping tests: a real rsyslogd (Debian's package) started
//! with its own configuration on a free loopback port, writing what it
//! receives to a file; test certificates from openssl; the real
//! sandbox-audit agent shipping to it; and comparisons of what the receiver
//! holds with what the store holds, by seq.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    fs::{self, File},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use audit_log::{chain::parse_line, segment};
use integration_tests::sandbox_audit;
use serde_json::Value;

/// Polls `f` every 100 ms until it holds; panics with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A free port for a receiver, below the kernel's ephemeral range. A port
/// from `bind :0` is an ephemeral one, and between its release and the
/// receiver's bind (or while a receiver is down for a restart) any outgoing
/// connection may take it as its local port, the shipper's own retries
/// included (a TCP self-connect): the receiver then fails with AddrInUse
/// (seen on a fresh-clone run). connect() never picks a port below the range.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (base, span) = (10_000u32, low.saturating_sub(10_000).max(1));
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..1000 {
        let i = N.fetch_add(1, Ordering::SeqCst);
        let port = base + (seed.wrapping_add(i.wrapping_mul(7919)) % span);
        let port = u16::try_from(port).expect("port below the ephemeral range");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {base} and {low}");
}

fn sh(cmd: &mut Command) {
    let o = cmd.output().expect("run command");
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 / localhost, from openssl.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (ca, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    sh(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
        ])
        .arg(format!("/CN={name}"))
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&ca));
    (ca, key)
}

pub fn make_certs(dir: &Path) -> Certs {
    let (ca, ca_key) = make_ca(dir, "test-ca");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.pem");
    let ext = dir.join("server.ext");
    fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    sh(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .args(["-CAcreateserial", "-extfile"])
        .arg(&ext)
        .arg("-out")
        .arg(&cert));
    Certs { ca, cert, key }
}

pub enum Input<'a> {
    Tcp,
    Tls(&'a Certs),
    Relp,
}

/// rsyslogd -n -f OUR_CONF, never the system one.
pub struct Rsyslog {
    pub port: u16,
    pub out: PathBuf,
    conf: PathBuf,
    pid_file: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl Rsyslog {
    pub fn start(dir: &Path, input: Input) -> Rsyslog {
        let dir = dir.join("rsyslog");
        fs::create_dir_all(dir.join("work")).unwrap();
        let port = free_port();
        let out = dir.join("received.log");
        let mut conf = format!(
            "global(workDirectory=\"{}\" maxMessageSize=\"256k\")\n",
            dir.join("work").display()
        );
        let (module, input_line) = match input {
            Input::Tcp => (
                "module(load=\"imtcp\")".to_string(),
                format!(
                    "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"ship\")"
                ),
            ),
            Input::Tls(c) => {
                conf.push_str(&format!(
                    "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" \
                     DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\")\n",
                    c.ca.display(),
                    c.cert.display(),
                    c.key.display()
                ));
                (
                    "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" \
                     StreamDriver.AuthMode=\"anon\")"
                        .to_string(),
                    format!(
                        "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"ship\")"
                    ),
                )
            }
            Input::Relp => (
                "module(load=\"imrelp\")".to_string(),
                format!(
                    "input(type=\"imrelp\" address=\"127.0.0.1\" port=\"{port}\" maxDataSize=\"256k\" ruleset=\"ship\")"
                ),
            ),
        };
        // A direct queue: a message is in the file before imrelp answers
        // `rsp 200` for it, so killing rsyslogd loses nothing it confirmed.
        conf.push_str(&format!(
            "main_queue(queue.type=\"Direct\")\n{module}\n\
             template(name=\"rec\" type=\"string\" string=\"%structured-data% %msg%\\n\")\n\
             ruleset(name=\"ship\" queue.type=\"Direct\") {{\n  action(type=\"omfile\" file=\"{}\" template=\"rec\" \
             flushOnTXEnd=\"on\" asyncWriting=\"off\")\n}}\n{input_line}\n",
            out.display()
        ));
        let conf_path = dir.join("rsyslog.conf");
        fs::write(&conf_path, conf).unwrap();
        let mut r = Rsyslog {
            port,
            out,
            conf: conf_path,
            pid_file: dir.join("rsyslogd.pid"),
            dir,
            child: None,
        };
        r.restart();
        r
    }

    /// Starts rsyslogd (again, on the same port) and waits until it listens.
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let _ = fs::remove_file(&self.pid_file);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("rsyslogd.stderr"))
            .unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(&self.pid_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rsyslogd (apt-get install rsyslog rsyslog-gnutls rsyslog-relp)");
        self.child = Some(child);
        let port = self.port;
        let stderr = self.dir.join("rsyslogd.stderr");
        wait_for(
            &format!("rsyslogd listening on {port}"),
            Duration::from_secs(30),
            || {
                if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                    panic!(
                        "rsyslogd exited ({st}): {}",
                        fs::read_to_string(&stderr).unwrap_or_default()
                    );
                }
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every record the receiver holds, in file order: (seq, the record's JSON).
    pub fn received(&self) -> Vec<(u64, String)> {
        received_in(&self.out)
    }

    pub fn raw(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The records in a receiver's file: the JSON object after the structured
/// data on each line.
pub fn received_in(path: &Path) -> Vec<(u64, String)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut v = Vec::new();
    for line in text.lines() {
        let Some(i) = line.find("] {") else { continue };
        let json = line[i + 2..].trim_end();
        let Ok(val) = serde_json::from_str::<Value>(json) else {
            continue;
        };
        if let Some(seq) = val.get("seq").and_then(Value::as_u64) {
            v.push((seq, json.to_string()));
        }
    }
    v
}

/// Every record of a store: seq → line.
pub fn stored(log_dir: &Path) -> BTreeMap<u64, String> {
    let mut m = BTreeMap::new();
    for p in segment::list(log_dir).unwrap() {
        let data = fs::read(&p).unwrap();
        for (_, line) in segment::split_lines(&data).0 {
            let parsed = parse_line(line).expect("store line parses");
            m.insert(parsed.seq, String::from_utf8(line.to_vec()).unwrap());
        }
    }
    m
}

/// Records of one kind in a store, as JSON.
pub fn stored_kind(log_dir: &Path, kind: &str) -> Vec<Value> {
    stored(log_dir)
        .values()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == kind)
        .collect()
}

/// The sandbox-audit agent shipping a `run --pid` capture.
pub struct Agent {
    pub args: Vec<String>,
    pub stderr: PathBuf,
    child: Option<Child>,
}

impl Agent {
    pub fn start(args: Vec<String>, stderr: PathBuf) -> Agent {
        let mut a = Agent {
            args,
            stderr,
            child: None,
        };
        a.restart();
        a
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.stderr)
            .unwrap();
        self.child = Some(
            Command::new(sandbox_audit())
                .args(&self.args)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sandbox-audit"),
        );
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (the agent closes the log and drains the shippers).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("agent running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > end {
                let _ = c.kill();
                panic!("the agent did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("agent running");
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > end {
                let _ = c.kill();
                panic!("the agent did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Panics (and the drop prints the agent's log) if the agent exited:
    /// a wait on the receiver then fails at once, not after its timeout.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            panic!("the agent exited: {st}");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        // A failed wait says only what did not happen; the agent's own log
        // says why (it is in a temp dir that is removed with the test).
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!(
                "--- the agent's stderr ({}), last {} lines:",
                self.stderr.display(),
                tail.len()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// A process tree that keeps producing records (fork + exec + exit).
pub struct Workload(Child);

impl Workload {
    pub fn start() -> Workload {
        Workload(
            Command::new("sh")
                .args(["-c", "while :; do /bin/true; sleep 0.01; done"])
                .spawn()
                .expect("start workload"),
        )
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cursor's next_seq for the only destination in a state dir.
pub fn cursor_next_seq(state: &Path) -> Option<u64> {
    let d = fs::read_dir(state).ok()?.flatten().next()?.path();
    let v: Value = serde_json::from_str(&fs::read_to_string(d.join("cursor")).ok()?).ok()?;
    v["next_seq"].as_u64()
}

/// `sandbox-audit verify ARGS…`: (exit code, stdout + stderr).
pub fn verify(args: &[&str]) -> (i32, String) {
    let o = Command::new(sandbox_audit())
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// `exec` of a short command with --ship; returns its stderr.
pub fn exec_shipping(dir: &Path, name: &str, ship: &[&str]) -> String {
    let o = Command::new(sandbox_audit())
        .args(["exec", "--families", "process"])
        .arg("--log-dir")
        .arg(dir.join(format!("{name}-log")))
        .arg("--key-dir")
        .arg(dir.join(format!("{name}-keys")))
        .arg("--ship-state")
        .arg(dir.join(format!("{name}-state")))
        .args(["--ship-backoff-max-ms", "500"])
        .args(ship)
        .args([
            "--",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do /bin/true; sleep 0.2; done",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "exec failed: {err}");
    err
}
