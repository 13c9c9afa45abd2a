//! A RELP client (rsyslog.com/doc/relp.html, librelp). Every frame is
//! `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The session opens with
//! `open` (offers `relp_version`, `relp_software`, `commands=syslog`), sends
//! each message as a `syslog` command and gets one `rsp` per command, in
//! order, whose data starts with the status code (`200 OK`). At most
//! `window` commands are unanswered at once; `close` ends the session, and a
//! server that goes away may say `serverclose` first. A message counts as
//! delivered only on its `rsp 200`: after a break the shipper resends all
//! unanswered ones (so duplicates are confined to that window).

use std::{
    collections::VecDeque,
    io::{self, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::{
    ShipError,
    dest::Destination,
    reader::Stored,
    syslog,
    transport::{Transport, transport_error},
};

/// Transaction numbers run 1..=999_999_999, then wrap to 1.
const MAX_TXNR: u64 = 999_999_999;
/// Longest frame we accept from a server (responses are tiny).
const MAX_RSP: usize = 64 << 10;

#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub txnr: u64,
    pub command: String,
    pub data: Vec<u8>,
}

/// Appends one frame.
pub fn encode(txnr: u64, command: &str, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{txnr} {command} {}", data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// Parses one frame from the start of `buf`: Ok(None) when incomplete,
/// else the frame and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let mut i = 0;
    let field =
        |i: &mut usize, what: &str, digits: bool| -> Result<Option<(usize, usize)>, String> {
            let start = *i;
            while *i < buf.len() && buf[*i] != b' ' && buf[*i] != b'\n' {
                let c = buf[*i];
                let ok = if digits {
                    c.is_ascii_digit()
                } else {
                    c.is_ascii_alphabetic()
                };
                if !ok || *i - start > 32 {
                    return Err(format!("bad {what} in a frame from the server"));
                }
                *i += 1;
            }
            if *i == buf.len() {
                return Ok(None);
            }
            if *i == start {
                return Err(format!("empty {what} in a frame from the server"));
            }
            Ok(Some((start, *i)))
        };
    let Some(t) = field(&mut i, "transaction number", true)? else {
        return Ok(None);
    };
    if buf[i] != b' ' {
        return Err("a frame from the server ends after its transaction number".into());
    }
    i += 1;
    let Some(c) = field(&mut i, "command", false)? else {
        return Ok(None);
    };
    if buf[i] != b' ' {
        return Err("a frame from the server has no data length".into());
    }
    i += 1;
    let Some(l) = field(&mut i, "data length", true)? else {
        return Ok(None);
    };
    let num = |r: (usize, usize)| -> Result<u64, String> {
        std::str::from_utf8(&buf[r.0..r.1])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "a number in a frame from the server is out of range".into())
    };
    let txnr = num(t)?;
    let len = num(l)? as usize;
    if len > MAX_RSP {
        return Err(format!("the server sent a frame of {len} bytes"));
    }
    let command = String::from_utf8_lossy(&buf[c.0..c.1]).into_owned();
    let mut data = Vec::new();
    if buf[i] == b' ' {
        i += 1;
        if buf.len() < i + len + 1 {
            return Ok(None);
        }
        data = buf[i..i + len].to_vec();
        i += len;
    } else if len != 0 {
        return Err("a frame from the server has a length but no data".into());
    }
    if buf[i] != b'\n' {
        return Err("a frame from the server does not end with LF".into());
    }
    Ok(Some((
        Frame {
            txnr,
            command,
            data,
        },
        i + 1,
    )))
}

pub struct Relp {
    dest: Destination,
    sock: TcpStream,
    next_txnr: u64,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    /// Unanswered `syslog` commands, in send order.
    unacked: VecDeque<u64>,
    window: usize,
}

fn offers() -> String {
    format!(
        "relp_version=0\nrelp_software=sandbox-audit,{},-\ncommands=syslog",
        env!("CARGO_PKG_VERSION")
    )
}

impl Relp {
    /// Opens a session on a connected socket: sends `open`, waits for its
    /// `rsp 200` and checks the server takes `syslog`.
    pub fn open(
        dest: &Destination,
        sock: TcpStream,
        window: usize,
        timeout: Duration,
    ) -> Result<Relp, ShipError> {
        let mut r = Relp {
            dest: dest.clone(),
            sock,
            next_txnr: 1,
            out: Vec::new(),
            inbuf: Vec::new(),
            unacked: VecDeque::new(),
            window: window.max(1),
        };
        let t = r.take_txnr();
        encode(t, "open", offers().as_bytes(), &mut r.out);
        r.write_out()?;
        let deadline = Instant::now() + timeout;
        let f = loop {
            if let Some(f) = r.next_frame()? {
                break f;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(r.err("no answer to `open` (is this a RELP server?)"));
            }
            r.fill(left)?;
        };
        let data = String::from_utf8_lossy(&f.data).into_owned();
        if f.txnr != t || f.command != "rsp" || !data.starts_with("200") {
            return Err(r.err(format!(
                "the server refused the session: {} {} {}",
                f.txnr,
                f.command,
                data.lines().next().unwrap_or("")
            )));
        }
        let cmds = data
            .lines()
            .find_map(|l| l.strip_prefix("commands="))
            .unwrap_or("");
        if !cmds.split(',').any(|c| c.trim() == "syslog") {
            return Err(r.err(format!(
                "the server does not offer `syslog` (commands={cmds})"
            )));
        }
        Ok(r)
    }

    fn err(&self, why: impl std::fmt::Display) -> ShipError {
        transport_error(&self.dest, format!("RELP: {why}"))
    }

    fn take_txnr(&mut self) -> u64 {
        let t = self.next_txnr;
        self.next_txnr = if t >= MAX_TXNR { 1 } else { t + 1 };
        t
    }

    fn write_out(&mut self) -> Result<(), ShipError> {
        let r = self.sock.write_all(&self.out);
        self.out.clear();
        r.map_err(|e| self.err(format!("sending: {e}")))
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, ShipError> {
        match decode(&self.inbuf).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some((f, used)) => {
                self.inbuf.drain(..used);
                Ok(Some(f))
            }
        }
    }

    /// Reads what the server sent, waiting up to `wait`.
    fn fill(&mut self, wait: Duration) -> Result<(), ShipError> {
        let _ = self
            .sock
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let mut b = [0u8; 8192];
        match self.sock.read(&mut b) {
            Ok(0) => Err(self.err("the server closed the connection")),
            Ok(n) => {
                self.inbuf.extend_from_slice(&b[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(self.err(format!("connection lost: {e}"))),
        }
    }
}

impl Transport for Relp {
    fn send(&mut self, rec: &Stored, origin: &str, host: &str) -> Result<(), ShipError> {
        let t = self.take_txnr();
        encode(
            t,
            "syslog",
            &syslog::message(rec, origin, host),
            &mut self.out,
        );
        self.unacked.push_back(t);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ShipError> {
        self.write_out()
    }

    fn confirmed(&mut self, wait: Duration) -> Result<usize, ShipError> {
        let mut n = 0;
        let mut waited = false;
        loop {
            while let Some(f) = self.next_frame()? {
                match f.command.as_str() {
                    "rsp" => {
                        if self.unacked.front() != Some(&f.txnr) {
                            return Err(self.err(format!(
                                "response to transaction {} while {:?} was the oldest unanswered",
                                f.txnr,
                                self.unacked.front()
                            )));
                        }
                        let text = String::from_utf8_lossy(&f.data);
                        if !text.starts_with("200") {
                            return Err(self.err(format!(
                                "the server refused transaction {}: {}",
                                f.txnr,
                                text.lines().next().unwrap_or("")
                            )));
                        }
                        self.unacked.pop_front();
                        n += 1;
                    }
                    "serverclose" => return Err(self.err("the server closed the session")),
                    other => {
                        return Err(
                            self.err(format!("unexpected command `{other}` from the server"))
                        );
                    }
                }
            }
            if n > 0 || waited || self.unacked.is_empty() {
                if self.unacked.is_empty() && n == 0 && !waited {
                    std::thread::sleep(wait.min(Duration::from_millis(20)));
                }
                return Ok(n);
            }
            self.fill(wait)?;
            waited = true;
        }
    }

    fn window(&self) -> usize {
        self.window
    }

    fn close(&mut self) {
        let t = self.take_txnr();
        encode(t, "close", b"", &mut self.out);
        if self.write_out().is_ok() {
            // Wait briefly for the `rsp` to `close`; the server then hangs up.
            let deadline = Instant::now() + Duration::from_millis(500);
            while Instant::now() < deadline && self.fill(Duration::from_millis(100)).is_ok() {
                if self.inbuf.contains(&b'\n') {
                    break;
                }
            }
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut b = Vec::new();
        encode(7, "syslog", b"hello\nworld", &mut b);
        encode(8, "close", b"", &mut b);
        assert_eq!(b, b"7 syslog 11 hello\nworld\n8 close 0\n");
        let (f, used) = decode(&b).unwrap().unwrap();
        assert_eq!(
            f,
            Frame {
                txnr: 7,
                command: "syslog".into(),
                data: b"hello\nworld".to_vec()
            }
        );
        let (f, used2) = decode(&b[used..]).unwrap().unwrap();
        assert_eq!((f.txnr, f.command.as_str(), f.data.len()), (8, "close", 0));
        assert_eq!(used + used2, b.len());
    }

    #[test]
    fn incomplete_frames_wait_and_bad_ones_fail() {
        for part in [
            &b"1"[..],
            b"1 rsp",
            b"1 rsp 6",
            b"1 rsp 6 200 O",
            b"1 rsp 6 200 OK",
        ] {
            assert_eq!(
                decode(part).unwrap(),
                None,
                "{:?}",
                String::from_utf8_lossy(part)
            );
        }
        for bad in [
            &b"x rsp 0\n"[..],
            b"1 rsp 2 abX",
            b"1 r5p 0\n",
            b"1 rsp 3\n",
            b" rsp 0\n",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            decode(b"0 serverclose 0\n").unwrap().unwrap().0.command,
            "serverclose"
        );
    }
}
