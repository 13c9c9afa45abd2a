//! An HTTPS receiver inside the test, speaking the two HTTP destinations:
//! a webhook taking NDJSON batches, and a Splunk-HEC-compatible collector
//! (`/services/collector/event` with `Authorization: Splunk TOKEN`, a
//! channel header, ackIds, and `/services/collector/ack`). Real TLS
//! (rustls, a certificate from the test's own CA) on a loopback port.
//!
//! It can misbehave on demand ([`Mode`]): answer 500, stall (take the
//! batch, never answer), withhold acks (take the batch, give an ackId, never
//! index it: the batch is lost when the mode ends, as on an indexer that
//! died), refuse with 403; and it can be stopped and started again on the
//! same port, losing what it had not indexed.

#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{self, Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use rustls::{
    ServerConfig, ServerConnection, StreamOwned,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Normal = 0,
    Fail = 1,
    Stall = 2,
    WithholdAcks = 3,
    Refuse = 4,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// POST `path`, NDJSON.
    Webhook { path: String },
    /// HEC with this token.
    Hec { token: String },
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// Lowercased names.
    pub headers: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct State {
    /// What the receiver stored ("indexed"), in arrival order: (seq, the
    /// received line: the webhook's NDJSON line, or the whole HEC event).
    pub received: Vec<(u64, String)>,
    /// HEC: batches accepted but not indexed, by ackId.
    pub pending: BTreeMap<u64, Vec<(u64, String)>>,
    pub acked: BTreeSet<u64>,
    pub next_ack: u64,
    pub requests: Vec<Request>,
    /// Non-2xx answers given, with the reason.
    pub refusals: Vec<String>,
}

pub struct HttpReceiver {
    pub port: u16,
    pub kind: Kind,
    pub state: Arc<Mutex<State>>,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    cfg: Arc<ServerConfig>,
    accept: Option<JoinHandle<()>>,
}

pub fn server_config(cert: &Path, key: &Path) -> Arc<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let cfg =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    Arc::new(cfg)
}

impl HttpReceiver {
    pub fn start(kind: Kind, cert: &Path, key: &Path) -> HttpReceiver {
        let mut r = HttpReceiver {
            port: crate::harness::free_port(),
            kind,
            state: Arc::default(),
            mode: Arc::new(AtomicU8::new(Mode::Normal as u8)),
            stop: Arc::new(AtomicBool::new(false)),
            cfg: server_config(cert, key),
            accept: None,
        };
        r.restart();
        r
    }

    pub fn set_mode(&self, m: Mode) {
        let old = self.mode.swap(m as u8, Ordering::SeqCst);
        if old == Mode::WithholdAcks as u8 && m != Mode::WithholdAcks {
            // Never indexed: lost, and never acknowledged.
            self.state.lock().unwrap().pending.clear();
        }
    }

    /// Starts listening again on the same port.
    pub fn restart(&mut self) {
        assert!(self.accept.is_none());
        self.stop = Arc::new(AtomicBool::new(false));
        let l = TcpListener::bind(("127.0.0.1", self.port)).expect("bind the receiver's port");
        l.set_nonblocking(true).unwrap();
        let (stop, cfg, kind, state, mode) = (
            self.stop.clone(),
            self.cfg.clone(),
            self.kind.clone(),
            self.state.clone(),
            self.mode.clone(),
        );
        self.accept = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        let conn = Conn {
                            stop: stop.clone(),
                            kind: kind.clone(),
                            state: state.clone(),
                            mode: mode.clone(),
                        };
                        let cfg = cfg.clone();
                        std::thread::spawn(move || conn.serve(s, cfg));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    /// Stops listening and drops every connection; what was not indexed
    /// is lost.
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        self.state.lock().unwrap().pending.clear();
    }

    pub fn received(&self) -> Vec<(u64, String)> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn distinct(&self) -> usize {
        self.received()
            .iter()
            .map(|(s, _)| *s)
            .collect::<BTreeSet<_>>()
            .len()
    }

    pub fn pending_seqs(&self) -> Vec<u64> {
        let st = self.state.lock().unwrap();
        st.pending.values().flatten().map(|(s, _)| *s).collect()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().refusals.clone()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            if let Ok(st) = self.state.lock() {
                eprintln!(
                    "--- the receiver on port {}: {} requests, {} records stored, refusals: {:?}",
                    self.port,
                    st.requests.len(),
                    st.received.len(),
                    st.refusals.iter().rev().take(10).collect::<Vec<_>>()
                );
            }
        }
    }
}

struct Conn {
    stop: Arc<AtomicBool>,
    kind: Kind,
    state: Arc<Mutex<State>>,
    mode: Arc<AtomicU8>,
}

fn answer(status: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl Conn {
    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            1 => Mode::Fail,
            2 => Mode::Stall,
            3 => Mode::WithholdAcks,
            4 => Mode::Refuse,
            _ => Mode::Normal,
        }
    }

    fn serve(self, sock: TcpStream, cfg: Arc<ServerConfig>) {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut s = StreamOwned::new(ServerConnection::new(cfg).unwrap(), sock);
        let Some((req, body)) = self.read_request(&mut s) else {
            return;
        };
        self.state.lock().unwrap().requests.push(req.clone());
        let (reply, stall) = match self.kind.clone() {
            Kind::Webhook { path } => self.webhook(&req, &body, &path),
            Kind::Hec { token } => self.hec(&req, &body, &token),
        };
        if stall {
            // Hold the connection, say nothing, until killed (or 120 s).
            let end = Instant::now() + Duration::from_secs(120);
            while !self.stop.load(Ordering::SeqCst) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        if !self.stop.load(Ordering::SeqCst) {
            let _ = s.write_all(&reply);
            let _ = s.flush();
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }

    fn read_request(
        &self,
        s: &mut StreamOwned<ServerConnection, TcpStream>,
    ) -> Option<(Request, Vec<u8>)> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 << 10];
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if self.stop.load(Ordering::SeqCst) || Instant::now() > end {
                return None;
            }
            if let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..h]).into_owned();
                let mut lines = head.split("\r\n");
                let mut first = lines.next()?.split(' ');
                let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
                let headers: BTreeMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers.get("content-length")?.parse().ok()?;
                if buf.len() >= h + 4 + len {
                    let body = buf[h + 4..h + 4 + len].to_vec();
                    return Some((
                        Request {
                            method,
                            target,
                            headers,
                        },
                        body,
                    ));
                }
            }
            match s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    fn refuse(&self, status: u16, reason: &str, body: &str) -> (Vec<u8>, bool) {
        self.state
            .lock()
            .unwrap()
            .refusals
            .push(format!("{status} {body}"));
        (answer(status, reason, body), false)
    }

    fn webhook(&self, req: &Request, body: &[u8], path: &str) -> (Vec<u8>, bool) {
        if req.method != "POST" || req.target.split('?').next() != Some(path) {
            return self.refuse(404, "Not Found", "{}");
        }
        if req.headers.get("content-type").map(String::as_str) != Some("application/x-ndjson") {
            return self.refuse(415, "Unsupported Media Type", "{}");
        }
        match self.mode() {
            Mode::Fail => return self.refuse(500, "Internal Server Error", "{}"),
            Mode::Refuse => return self.refuse(403, "Forbidden", "{\"error\":\"go away\"}"),
            _ => {}
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return self.refuse(400, "Bad Request", "{}");
        };
        let mut recs = Vec::new();
        for line in text.split_terminator('\n') {
            let Some(seq) = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v["seq"].as_u64())
            else {
                return self.refuse(400, "Bad Request", "{\"error\":\"a line without seq\"}");
            };
            recs.push((seq, line.to_string()));
        }
        self.state.lock().unwrap().received.extend(recs);
        (answer(200, "OK", "{}"), self.mode() == Mode::Stall)
    }

    fn hec(&self, req: &Request, body: &[u8], token: &str) -> (Vec<u8>, bool) {
        let auth = req
            .headers
            .get("authorization")
            .cloned()
            .unwrap_or_default();
        if auth.is_empty() {
            return self.refuse(
                401,
                "Unauthorized",
                r#"{"text":"Token is required","code":2}"#,
            );
        }
        if auth != format!("Splunk {token}") || self.mode() == Mode::Refuse {
            return self.refuse(403, "Forbidden", r#"{"text":"Invalid token","code":4}"#);
        }
        if !req.headers.contains_key("x-splunk-request-channel") {
            return self.refuse(
                400,
                "Bad Request",
                r#"{"text":"Data channel is missing","code":10}"#,
            );
        }
        match req.target.as_str() {
            "/services/collector/event" => self.hec_event(body),
            "/services/collector/ack" => self.hec_ack(body),
            _ => self.refuse(
                404,
                "Not Found",
                r#"{"text":"The requested URL was not found on this server.","code":404}"#,
            ),
        }
    }

    fn hec_event(&self, body: &[u8]) -> (Vec<u8>, bool) {
        if self.mode() == Mode::Fail {
            return self.refuse(
                500,
                "Internal Server Error",
                r#"{"text":"Internal server error","code":8}"#,
            );
        }
        let mut recs = Vec::new();
        for v in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
            let Ok(v) = v else {
                return self.refuse(
                    400,
                    "Bad Request",
                    r#"{"text":"Invalid data format","code":6}"#,
                );
            };
            let complete = ["time", "host", "source", "sourcetype", "fields"]
                .iter()
                .all(|k| v.get(k).is_some());
            let Some(seq) = v["event"]["seq"].as_u64().filter(|_| complete) else {
                return self.refuse(
                    400,
                    "Bad Request",
                    r#"{"text":"Event field is required","code":12}"#,
                );
            };
            recs.push((seq, v.to_string()));
        }
        let mut st = self.state.lock().unwrap();
        let id = st.next_ack;
        st.next_ack += 1;
        if self.mode() == Mode::WithholdAcks {
            st.pending.insert(id, recs);
        } else {
            st.received.extend(recs);
            st.acked.insert(id);
        }
        drop(st);
        (
            answer(
                200,
                "OK",
                &format!(r#"{{"text":"Success","code":0,"ackId":{id}}}"#),
            ),
            self.mode() == Mode::Stall,
        )
    }

    fn hec_ack(&self, body: &[u8]) -> (Vec<u8>, bool) {
        let Some(ids) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["acks"].as_array().cloned())
        else {
            return self.refuse(
                400,
                "Bad Request",
                r#"{"text":"Invalid data format","code":6}"#,
            );
        };
        let st = self.state.lock().unwrap();
        let acks: serde_json::Map<String, Value> = ids
            .iter()
            .filter_map(Value::as_u64)
            .map(|i| (i.to_string(), Value::Bool(st.acked.contains(&i))))
            .collect();
        drop(st);
        (
            answer(200, "OK", &serde_json::json!({ "acks": acks }).to_string()),
            self.mode() == Mode::Stall,
        )
    }
}
