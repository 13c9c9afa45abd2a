//! Moving formatted messages to a destination, and learning which ones it
//! has. A transport reports confirmations in send order; the shipper moves
//! the cursor by that many records.
//!
//! Plain syslog over TCP or TLS has no application acknowledgement. A record
//! counts as delivered once the receiver's TCP has acknowledged all of its
//! bytes (the socket's unsent + unacked queue, SIOCOUTQ, has drained past
//! it) and `settle` has passed since with the connection still up: a
//! receiver killed with data in its socket buffer loses it, and after a
//! reconnect everything not yet counted is sent again. RELP ([`crate::relp`])
//! gives the real guarantee.

use std::{
    collections::VecDeque,
    io::{self, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    os::fd::AsRawFd,
    sync::Arc,
    time::{Duration, Instant},
};

use rustls::{ClientConfig, ClientConnection};

use crate::{
    ShipError,
    dest::{Destination, Scheme},
    hec::Hec,
    http::Client,
    reader::Stored,
    relp::Relp,
    syslog, tls,
    webhook::Webhook,
};

pub trait Transport: Send {
    /// Queues one record (formatted the transport's way) of the log
    /// `origin`, written on `host`.
    fn send(&mut self, rec: &Stored, origin: &str, host: &str) -> Result<(), ShipError>;
    /// Pushes queued messages onto the network.
    fn flush(&mut self) -> Result<(), ShipError>;
    /// How many more sent messages (in send order) the destination now has;
    /// waits up to `wait` for news.
    fn confirmed(&mut self, wait: Duration) -> Result<usize, ShipError>;
    /// Most messages that may be unconfirmed at once.
    fn window(&self) -> usize;
    /// Ends the session politely (best effort).
    fn close(&mut self);
    /// Whether connecting reached nobody yet (HTTP connects per request),
    /// so a successful `connect` does not end an outage.
    fn lazy(&self) -> bool {
        false
    }
}

#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub tls: Option<Arc<ClientConfig>>,
    pub server_name: Option<String>,
    pub connect_timeout: Duration,
    pub settle: Duration,
    pub relp_window: usize,
    /// HTTP: records per request, and the deadline of one request.
    pub http_batch: usize,
    pub http_timeout: Duration,
    /// HEC: how long a batch may wait for its indexer acknowledgement.
    pub ack_timeout: Duration,
    /// HEC: this destination's channel (set per destination).
    pub hec_channel: Option<String>,
    /// The payload format of every record (mapped before `send`).
    pub format: crate::format::ShipFormat,
}

pub fn transport_error(dest: &Destination, why: impl std::fmt::Display) -> ShipError {
    ShipError::Transport {
        dest: dest.url.clone(),
        why: why.to_string(),
    }
}

pub fn tcp_connect(dest: &Destination, timeout: Duration) -> Result<TcpStream, ShipError> {
    let addrs: Vec<_> = dest
        .addr()
        .to_socket_addrs()
        .map_err(|e| transport_error(dest, format!("cannot resolve {}: {e}", dest.addr())))?
        .collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                // A receiver that stops reading must not block us forever.
                let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
                return Ok(s);
            }
            Err(e) => last = Some(format!("connect to {a}: {e}")),
        }
    }
    Err(transport_error(
        dest,
        last.unwrap_or_else(|| format!("{} resolves to no address", dest.addr())),
    ))
}

pub fn connect(dest: &Destination, cfg: &TransportConfig) -> Result<Box<dyn Transport>, ShipError> {
    match dest.scheme {
        Scheme::SyslogTcp => Ok(Box::new(SyslogStream::new(
            dest,
            Conn::Plain(tcp_connect(dest, cfg.connect_timeout)?),
            cfg.settle,
        ))),
        Scheme::SyslogTls => {
            let tls_cfg = cfg
                .tls
                .clone()
                .ok_or_else(|| transport_error(dest, "no TLS configuration"))?;
            let name = tls::server_name(cfg.server_name.as_deref().unwrap_or(&dest.host))?;
            let mut sock = tcp_connect(dest, cfg.connect_timeout)?;
            let mut conn = ClientConnection::new(tls_cfg, name)
                .map_err(|e| transport_error(dest, format!("TLS: {e}")))?;
            // A batch is encrypted whole before flush() writes it out.
            conn.set_buffer_limit(None);
            let _ = sock.set_read_timeout(Some(cfg.connect_timeout));
            while conn.is_handshaking() {
                conn.complete_io(&mut sock).map_err(|e| {
                    transport_error(
                        dest,
                        format!("TLS handshake with {} failed: {e}", dest.addr()),
                    )
                })?;
            }
            Ok(Box::new(SyslogStream::new(
                dest,
                Conn::Tls(Box::new(conn), sock),
                cfg.settle,
            )))
        }
        Scheme::Relp => Ok(Box::new(Relp::open(
            dest,
            tcp_connect(dest, cfg.connect_timeout)?,
            cfg.relp_window,
            cfg.connect_timeout,
        )?)),
        // HTTP connects per request: nothing to open here.
        Scheme::Webhook | Scheme::Hec => {
            let client = Client {
                dest: dest.clone(),
                tls: if dest.tls {
                    Some(
                        cfg.tls
                            .clone()
                            .ok_or_else(|| transport_error(dest, "no TLS configuration"))?,
                    )
                } else {
                    None
                },
                server_name: cfg.server_name.clone(),
                connect_timeout: cfg.connect_timeout,
                timeout: cfg.http_timeout,
            };
            if dest.scheme == Scheme::Webhook {
                return Ok(Box::new(Webhook::new(client, cfg.http_batch)));
            }
            let token = dest
                .token
                .clone()
                .ok_or_else(|| transport_error(dest, "no HEC token"))?;
            let channel = cfg
                .hec_channel
                .clone()
                .ok_or_else(|| transport_error(dest, "no HEC channel"))?;
            Ok(Box::new(Hec::new(
                client,
                token,
                channel,
                cfg.http_batch,
                cfg.ack_timeout,
            )))
        }
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<ClientConnection>, TcpStream),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) | Conn::Tls(_, s) => s,
        }
    }
}

/// Bytes the kernel still holds for the peer (unsent or unacknowledged).
fn outq(s: &TcpStream) -> io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one int through the pointer.
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n.max(0) as u64)
}

struct SyslogStream {
    dest: Destination,
    conn: Conn,
    /// Plaintext frames not yet handed to the socket (plain TCP).
    buf: Vec<u8>,
    /// Bytes written to the socket so far (ciphertext for TLS).
    socket_bytes: u64,
    /// Messages queued since the last flush.
    unflushed: usize,
    /// Per sent message: socket offset of its end, and when TCP acked it.
    sent: VecDeque<(u64, Option<Instant>)>,
    settle: Duration,
}

impl SyslogStream {
    fn new(dest: &Destination, conn: Conn, settle: Duration) -> SyslogStream {
        SyslogStream {
            dest: dest.clone(),
            conn,
            buf: Vec::with_capacity(1 << 16),
            socket_bytes: 0,
            unflushed: 0,
            sent: VecDeque::new(),
            settle,
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> ShipError {
        transport_error(&self.dest, e)
    }

    /// Whether the peer is still there: a closed or reset connection reads
    /// EOF or an error; a live one has nothing to read.
    fn alive(&mut self) -> Result<(), ShipError> {
        let mut b = [0u8; 4096];
        let s = self.conn.tcp();
        s.set_nonblocking(true).map_err(|e| self.err(e))?;
        let r = match &mut self.conn {
            Conn::Plain(s) => s.read(&mut b).map(|n| (n, false)),
            Conn::Tls(c, s) => match c.read_tls(s) {
                Ok(0) => Ok((0, false)),
                Ok(_) => match c.process_new_packets() {
                    Ok(st) => Ok((1, st.peer_has_closed())),
                    Err(e) => Err(io::Error::other(e)),
                },
                Err(e) => Err(e),
            },
        };
        let _ = self.conn.tcp().set_nonblocking(false);
        match r {
            Ok((0, _)) => Err(self.err("the receiver closed the connection")),
            Ok((_, true)) => Err(self.err("the receiver closed the TLS session")),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(self.err(format!("connection lost: {e}"))),
        }
    }
}

impl Transport for SyslogStream {
    fn send(&mut self, rec: &Stored, origin: &str, host: &str) -> Result<(), ShipError> {
        let msg = &syslog::message(rec, origin, host);
        match &mut self.conn {
            Conn::Plain(_) => syslog::frame(msg, &mut self.buf),
            Conn::Tls(c, _) => {
                let mut f = Vec::with_capacity(msg.len() + 8);
                syslog::frame(msg, &mut f);
                c.writer()
                    .write_all(&f)
                    .map_err(|e| transport_error(&self.dest, e))?;
            }
        }
        self.unflushed += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ShipError> {
        let r = match &mut self.conn {
            Conn::Plain(s) => {
                let r = s.write_all(&self.buf);
                self.socket_bytes += self.buf.len() as u64;
                self.buf.clear();
                r
            }
            Conn::Tls(c, s) => {
                let mut r = Ok(());
                while c.wants_write() {
                    match c.write_tls(s) {
                        Ok(n) => self.socket_bytes += n as u64,
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                }
                r
            }
        };
        r.map_err(|e| self.err(format!("sending: {e}")))?;
        for _ in 0..std::mem::take(&mut self.unflushed) {
            self.sent.push_back((self.socket_bytes, None));
        }
        Ok(())
    }

    fn confirmed(&mut self, wait: Duration) -> Result<usize, ShipError> {
        self.alive()?;
        let pending = outq(self.conn.tcp()).map_err(|e| self.err(format!("SIOCOUTQ: {e}")))?;
        let acked = self.socket_bytes.saturating_sub(pending);
        let now = Instant::now();
        for (end, at) in self.sent.iter_mut() {
            if *end > acked {
                break;
            }
            at.get_or_insert(now);
        }
        let mut n = 0;
        while let Some((_, Some(at))) = self.sent.front() {
            if now.duration_since(*at) < self.settle {
                break;
            }
            self.sent.pop_front();
            n += 1;
        }
        if n == 0 {
            std::thread::sleep(wait.min(Duration::from_millis(20)));
        }
        Ok(n)
    }

    fn window(&self) -> usize {
        200_000
    }

    fn close(&mut self) {
        if let Conn::Tls(c, s) = &mut self.conn {
            c.send_close_notify();
            while c.wants_write() && c.write_tls(s).is_ok_and(|n| n > 0) {}
        }
        let _ = self.conn.tcp().shutdown(std::net::Shutdown::Both);
    }
}
