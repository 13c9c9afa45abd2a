//! The shipping loop: one thread per destination. Each reads the store
//! behind its durable point (published by [`ShipSink`] after every group
//! commit), sends records up to the transport's window, moves its cursor as
//! confirmations come in (saved at most every 100 ms), and on any break
//! reconnects with exponential backoff and resends from the cursor.
//!
//! Visible state: an outage becomes a `ship_outage` record in the chain, its
//! end a `ship_resumed` record, both with the backlog; a destination that
//! cannot go on (the store no longer continues where it stood) a
//! `ship_halted` record. Each destination rewrites `status.json` beside its
//! cursor every second, and logs its lag every 10 s while behind.

use std::{
    collections::VecDeque,
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, Receiver, Sender},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use audit_log::{
    record::{Json, Record, now_ns},
    recover,
    sink::{Sink, SinkError},
    store::Store,
};
use serde_json::json;

use crate::{
    ShipError,
    cursor::Cursor,
    dest::{Destination, Scheme},
    format::ShipFormat,
    reader::{Position, Reader},
    syslog,
    tls::{self, TlsFiles},
    transport::{self, Transport, TransportConfig},
};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/sandbox-audit/ship";

#[derive(Clone, Debug)]
pub struct ShipConfig {
    pub destinations: Vec<String>,
    pub log_dir: PathBuf,
    pub state_dir: PathBuf,
    pub tls: TlsFiles,
    /// Plain syslog: how long after the receiver's TCP ack a record counts
    /// as delivered.
    pub settle: Duration,
    pub relp_window: usize,
    pub backoff_max: Duration,
    /// At the end of a session, how long to wait for destinations to catch up.
    pub drain: Duration,
    pub connect_timeout: Duration,
    /// Webhook and HEC: records per request, and one request's deadline.
    pub http_batch: usize,
    pub http_timeout: Duration,
    /// HEC: how long a batch may wait for its indexer acknowledgement
    /// before it is taken as lost and sent again.
    pub ack_timeout: Duration,
    /// HEC: a file holding the token, for URLs without `token=`.
    pub hec_token_file: Option<PathBuf>,
    /// What each record's payload is (native, OCSF, ECS).
    pub format: ShipFormat,
}

impl ShipConfig {
    pub fn new(log_dir: impl Into<PathBuf>) -> ShipConfig {
        ShipConfig {
            destinations: vec![],
            log_dir: log_dir.into(),
            state_dir: DEFAULT_STATE_DIR.into(),
            tls: TlsFiles::default(),
            settle: Duration::from_secs(1),
            relp_window: 128,
            backoff_max: Duration::from_secs(10),
            drain: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            http_batch: 500,
            http_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(60),
            hec_token_file: None,
            format: ShipFormat::Native,
        }
    }
}

/// Shared between the capture thread and the shippers.
struct Shared {
    /// Records with seq below this are fsynced (u64::MAX: the session ended
    /// and the whole store is).
    durable: AtomicU64,
    finishing: AtomicBool,
    stop: AtomicBool,
}

struct Worker {
    url: String,
    /// Finishing, and nothing more to send or confirm.
    idle: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The running shippers of one agent.
pub struct Shippers {
    shared: Arc<Shared>,
    workers: Vec<Worker>,
    notes: Receiver<Record>,
    drain: Duration,
}

impl Shippers {
    /// Checks every destination (URL, TLS files) and starts one thread each.
    /// Errors here come before capture starts.
    pub fn start(cfg: ShipConfig) -> Result<Shippers, ShipError> {
        let mut dests = cfg
            .destinations
            .iter()
            .map(|u| Destination::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        for d in dests.iter_mut().filter(|d| d.scheme == Scheme::Hec) {
            if d.token.is_none() {
                d.token = Some(hec_token(&cfg, d)?);
            }
        }
        let tls = if dests.iter().any(|d| d.tls) {
            Some(tls::client_config(&cfg.tls)?)
        } else {
            None
        };
        if let Some(n) = &cfg.tls.server_name {
            tls::server_name(n)?;
        }
        let shared = Arc::new(Shared {
            durable: AtomicU64::new(0),
            finishing: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel();
        let tcfg = TransportConfig {
            tls,
            server_name: cfg.tls.server_name.clone(),
            connect_timeout: cfg.connect_timeout,
            settle: cfg.settle,
            relp_window: cfg.relp_window,
            http_batch: cfg.http_batch,
            http_timeout: cfg.http_timeout,
            ack_timeout: cfg.ack_timeout,
            hec_channel: None,
            format: cfg.format,
        };
        let mut workers = Vec::new();
        for d in dests {
            let idle = Arc::new(AtomicBool::new(false));
            let state = cfg.state_dir.join(d.id());
            let cursor = Cursor::open(&state)?;
            let mut tcfg = tcfg.clone();
            if d.scheme == Scheme::Hec {
                tcfg.hec_channel = Some(cursor.channel()?);
            }
            let w = Destinationworker {
                cursor,
                status: state.join("status.json"),
                dest: d.clone(),
                log_dir: cfg.log_dir.clone(),
                tcfg,
                shared: shared.clone(),
                notes: tx.clone(),
                idle: idle.clone(),
                backoff_max: cfg.backoff_max,
            };
            let thread = std::thread::Builder::new()
                .name(format!("ship {}", d.url))
                .spawn(move || w.run())
                .map_err(|e| ShipError::io(&state, e))?;
            workers.push(Worker {
                url: d.url,
                idle,
                thread,
            });
        }
        Ok(Shippers {
            shared,
            workers,
            notes: rx,
            drain: cfg.drain,
        })
    }

    /// Wraps the store for the capture loop: shipper notes enter the chain
    /// on each flush, and the durable point is published to the shippers.
    pub fn sink<'a>(&'a self, store: &'a mut Store) -> ShipSink<'a> {
        ShipSink {
            store,
            notes: &self.notes,
            shared: &self.shared,
        }
    }

    /// The session ended and the store is closed (all of it fsynced): let
    /// the destinations catch up for at most the drain time, then stop.
    pub fn finish(self) {
        self.shared.durable.store(u64::MAX, Ordering::SeqCst);
        self.shared.finishing.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + self.drain;
        while Instant::now() < deadline
            && !self.workers.iter().all(|w| w.idle.load(Ordering::SeqCst))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            if !w.idle.load(Ordering::SeqCst) {
                log::warn!(
                    "ship {}: not caught up at exit; the rest is shipped from the cursor next time",
                    w.url
                );
            }
            let _ = w.thread.join();
        }
        for n in self.notes.try_iter() {
            log::warn!(
                "ship: after the log closed: {}",
                serde_json::Value::Object(n.to_json())
            );
        }
    }
}

/// The store as the capture loop sees it, plus the shippers' hooks.
pub struct ShipSink<'a> {
    store: &'a mut Store,
    notes: &'a Receiver<Record>,
    shared: &'a Shared,
}

impl ShipSink<'_> {
    fn publish(&self) {
        if let Some(d) = self.store.durable() {
            self.shared.durable.store(d.seq + 1, Ordering::SeqCst);
        }
    }
}

impl Sink for ShipSink<'_> {
    fn start(&mut self, scope: Json) -> Result<(), SinkError> {
        self.store.start(scope)?;
        self.publish();
        Ok(())
    }

    fn accept(&mut self, record: Record) -> Result<(), SinkError> {
        self.store.accept(record)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        for n in self.notes.try_iter() {
            self.store.accept(n)?;
        }
        self.store.flush()?;
        self.publish();
        Ok(())
    }
}

struct Destinationworker {
    dest: Destination,
    log_dir: PathBuf,
    cursor: Cursor,
    status: PathBuf,
    tcfg: TransportConfig,
    shared: Arc<Shared>,
    notes: Sender<Record>,
    idle: Arc<AtomicBool>,
    backoff_max: Duration,
}

/// What a session ended with.
enum Ended {
    Stopped,
    Broken(ShipError),
    Halted(ShipError),
}

/// A refusal that resending cannot fix halts the destination; anything
/// else is retried.
fn ended(e: ShipError) -> Ended {
    match e {
        ShipError::Rejected { .. } => Ended::Halted(e),
        e => Ended::Broken(e),
    }
}

/// The HEC token of a URL without `token=`: `--ship-hec-token-file`, else
/// the environment.
fn hec_token(cfg: &ShipConfig, d: &Destination) -> Result<String, ShipError> {
    let bad = |why: String| ShipError::BadUrl {
        url: d.url.clone(),
        why,
    };
    let token = if let Some(f) = &cfg.hec_token_file {
        let t = fs::read_to_string(f).map_err(|e| ShipError::io(f, e))?;
        let t = t.trim().to_string();
        crate::dest::check_token(&t).map_err(|why| ShipError::BadFile {
            path: f.clone(),
            why,
        })?;
        t
    } else if let Ok(t) = std::env::var(crate::hec::TOKEN_ENV) {
        let t = t.trim().to_string();
        crate::dest::check_token(&t)
            .map_err(|why| bad(format!("{}: {why}", crate::hec::TOKEN_ENV)))?;
        t
    } else {
        return Err(bad(format!(
            "an HEC destination needs a token: `?token=` in the URL, --ship-hec-token-file, or ${}",
            crate::hec::TOKEN_ENV
        )));
    };
    Ok(token)
}

/// State kept across sessions of one destination.
struct Progress {
    origin: String,
    host: String,
    reader: Reader,
    /// Just past the last confirmed record (what the cursor says).
    acked: Position,
    saved: Position,
    /// Per unconfirmed record: the position after it and its time.
    in_flight: VecDeque<(Position, u64)>,
    outage: Option<(Instant, String)>,
    last_status: Instant,
    last_lag_log: Instant,
    last_save: Instant,
    confirmed_total: u64,
}

impl Destinationworker {
    fn run(self) {
        let Some(origin) = self.wait_for_origin() else {
            self.idle.store(true, Ordering::SeqCst);
            return;
        };
        let start = match self.cursor.load(&origin) {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => return self.halt(e),
        };
        let mut reader = Reader::new(&self.log_dir, start.clone());
        if let Err(e) = reader.check_resume() {
            return self.halt(e);
        }
        if start.next_seq > 0 {
            log::info!(
                "ship {}: resuming from the cursor at seq {}",
                self.dest.url,
                start.next_seq
            );
        }
        let now = Instant::now();
        let mut p = Progress {
            origin,
            host: syslog::hostname(),
            reader,
            acked: start.clone(),
            saved: start,
            in_flight: VecDeque::new(),
            outage: None,
            last_status: now,
            last_lag_log: now,
            last_save: now,
            confirmed_total: 0,
        };
        let mut backoff = Duration::from_millis(100);
        while !self.stopped() {
            let ended = match transport::connect(&self.dest, &self.tcfg) {
                Ok(mut t) => {
                    // A lazy transport (HTTP) has not reached anyone yet:
                    // its outage ends with its first confirmation.
                    if !t.lazy()
                        && let Some((since, _)) = p.outage.take()
                    {
                        self.resumed(&p, since);
                    }
                    p.reader.rewind(p.acked.clone());
                    p.in_flight.clear();
                    let before = p.confirmed_total;
                    let e = self.session(&mut *t, &mut p);
                    if p.confirmed_total > before {
                        backoff = Duration::from_millis(100);
                    }
                    t.close();
                    e
                }
                Err(e) => ended(e),
            };
            match ended {
                Ended::Stopped => break,
                Ended::Halted(e) => {
                    self.save(&mut p);
                    return self.halt(e);
                }
                Ended::Broken(e) => {
                    self.save(&mut p);
                    self.outage(&mut p, &e);
                    self.write_status(&mut p, false, Some(&e.to_string()));
                    self.sleep(backoff);
                    backoff = (backoff * 2).min(self.backoff_max);
                }
            }
        }
        self.save(&mut p);
        self.write_status(&mut p, false, None);
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopped() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
        }
    }

    /// The log's origin, from its genesis record (the store may not exist
    /// yet when shipping starts).
    fn wait_for_origin(&self) -> Option<String> {
        loop {
            match recover::genesis(&self.log_dir) {
                Ok(Some((_, origin))) => return Some(origin),
                Ok(None) => {}
                Err(e) if self.log_dir.exists() => {
                    log::error!("ship {}: {e:#}", self.dest.url);
                    return None;
                }
                Err(_) => {}
            }
            if self.stopped() || self.shared.finishing.load(Ordering::SeqCst) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn session(&self, t: &mut dyn Transport, p: &mut Progress) -> Ended {
        loop {
            if self.stopped() {
                return Ended::Stopped;
            }
            // `finishing` first: finish() sets `durable` before it, so a
            // finishing loop never judges itself idle on a stale durable point.
            let finishing = self.shared.finishing.load(Ordering::SeqCst);
            let durable = self.shared.durable.load(Ordering::SeqCst);
            let room = t.window().saturating_sub(p.in_flight.len());
            let mut sent = 0;
            if room > 0 {
                let recs = match p.reader.read(room.min(1024), durable) {
                    Ok(r) => r,
                    Err(e @ ShipError::Chain { .. }) => return Ended::Halted(e),
                    Err(e) => return Ended::Broken(e),
                };
                for r in recs {
                    let mapped = self.tcfg.format.map(&r, &p.origin, &p.host);
                    if let Err(e) = t.send(mapped.as_ref().unwrap_or(&r), &p.origin, &p.host) {
                        return ended(e);
                    }
                    p.in_flight.push_back((r.after, r.time_ns));
                    sent += 1;
                }
                if sent > 0
                    && let Err(e) = t.flush()
                {
                    return ended(e);
                }
            }
            let wait = if sent > 0 && room > sent {
                Duration::ZERO
            } else {
                Duration::from_millis(50)
            };
            match t.confirmed(wait) {
                Ok(n) => {
                    if n > 0
                        && let Some((since, _)) = p.outage.take()
                    {
                        self.resumed(p, since);
                    }
                    for _ in 0..n {
                        if let Some((pos, _)) = p.in_flight.pop_front() {
                            p.acked = pos;
                        }
                    }
                    p.confirmed_total += n as u64;
                }
                Err(e) => return ended(e),
            }
            if p.last_save.elapsed() >= Duration::from_millis(100) {
                self.save(p);
            }
            // Idle only when a read with room in the window found nothing
            // more: with the window full nothing was read, and the acks
            // that just emptied it say nothing about the records behind
            // it (that case ended the exit drain with records unsent).
            let idle = finishing && room > 0 && sent == 0 && p.in_flight.is_empty();
            if idle {
                self.save(p);
            }
            self.idle.store(idle, Ordering::SeqCst);
            if p.last_status.elapsed() >= Duration::from_secs(1) {
                self.write_status(p, true, None);
            }
        }
    }

    fn save(&self, p: &mut Progress) {
        p.last_save = Instant::now();
        if p.acked == p.saved {
            return;
        }
        match self.cursor.save(&p.origin, &self.dest.url, &p.acked) {
            Ok(()) => p.saved = p.acked.clone(),
            Err(e) => log::error!("ship {}: cannot save the cursor: {e}", self.dest.url),
        }
    }

    fn backlog(&self, p: &Progress) -> u64 {
        let d = self.shared.durable.load(Ordering::SeqCst);
        if d == u64::MAX {
            return p.in_flight.len() as u64;
        }
        d.saturating_sub(p.acked.next_seq)
    }

    fn note(&self, r: Record) {
        // The capture loop is gone only when the session ended.
        let _ = self.notes.send(r);
    }

    fn outage(&self, p: &mut Progress, e: &ShipError) {
        if p.outage.is_some() {
            log::debug!("ship {}: still down: {e}", self.dest.url);
            return;
        }
        let backlog = self.backlog(p);
        log::warn!(
            "ship {}: destination down ({e}); {backlog} records wait in the store from seq {}",
            self.dest.url,
            p.acked.next_seq
        );
        self.note(
            Record::new("ship_outage", now_ns())
                .with("destination", self.dest.url.as_str())
                .with("error", e.to_string())
                .with("next_seq", p.acked.next_seq)
                .with("backlog", backlog),
        );
        p.outage = Some((Instant::now(), e.to_string()));
    }

    fn resumed(&self, p: &Progress, since: Instant) {
        let backlog = self.backlog(p);
        let ms = since.elapsed().as_millis() as u64;
        log::info!(
            "ship {}: destination back after {ms} ms; sending {backlog} records from seq {}",
            self.dest.url,
            p.acked.next_seq
        );
        self.note(
            Record::new("ship_resumed", now_ns())
                .with("destination", self.dest.url.as_str())
                .with("outage_ms", ms)
                .with("next_seq", p.acked.next_seq)
                .with("backlog", backlog),
        );
    }

    fn halt(&self, e: ShipError) {
        log::error!("ship {}: STOPPED shipping: {e}", self.dest.url);
        self.note(
            Record::new("ship_halted", now_ns())
                .with("destination", self.dest.url.as_str())
                .with("error", e.to_string()),
        );
        let _ = write_atomic(
            &self.status,
            &json!({"destination": self.dest.url, "halted": e.to_string()}).to_string(),
        );
        self.idle.store(true, Ordering::SeqCst);
    }

    fn write_status(&self, p: &mut Progress, connected: bool, error: Option<&str>) {
        p.last_status = Instant::now();
        let now = now_ns();
        let backlog = self.backlog(p);
        let lag_ms = p
            .in_flight
            .front()
            .map(|(_, t)| now.saturating_sub(*t) / 1_000_000);
        let durable = self.shared.durable.load(Ordering::SeqCst);
        let v = json!({
            "destination": self.dest.url,
            "origin": p.origin,
            "connected": connected,
            "next_seq": p.acked.next_seq,
            "durable_next_seq": if durable == u64::MAX { None } else { Some(durable) },
            "backlog": backlog,
            "in_flight": p.in_flight.len(),
            "lag_ms": lag_ms,
            "outage_since_ms": p.outage.as_ref().map(|(s, _)| s.elapsed().as_millis() as u64),
            "error": error.or(p.outage.as_ref().map(|(_, e)| e.as_str())),
            "time_ns": now,
        });
        if let Err(e) = write_atomic(&self.status, &format!("{v}\n")) {
            log::debug!("ship {}: status: {e}", self.dest.url);
        }
        if backlog > 0 && p.last_lag_log.elapsed() >= Duration::from_secs(10) {
            p.last_lag_log = Instant::now();
            log::info!(
                "ship {}: {backlog} records behind (confirmed through seq {}), oldest unconfirmed {} ms old",
                self.dest.url,
                p.acked.next_seq as i128 - 1,
                lag_ms.map_or("-".into(), |l| l.to_string())
            );
        }
    }
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(tmp, path)
}
