//! The agent's side of the sandbox's control channel and seccomp listener.
//! Two small threads, so that a notified syscall is answered at once and
//! never waits for the drain loop: one reads the channel, one serves the
//! listener. Every notification becomes a `denied` record and is answered
//! with EPERM (the syscall never runs).

use std::{
    os::fd::{AsRawFd, OwnedFd},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, Sender},
    },
    thread::JoinHandle,
};

use serde_json::{Value, json};

use super::{
    channel::{self, Message},
    seccomp,
};
use crate::record::{Json, Record, now_ns, put_bytes};

/// One denied syscall, as the listener reported it.
#[derive(Clone, Debug)]
pub struct Denied {
    pub time_ns: u64,
    /// Host thread id of the caller.
    pub tid: u32,
    pub arch: u32,
    pub nr: i32,
    pub args: [u64; 6],
    pub instruction_pointer: u64,
    /// The caller as /proc showed it while it waited for our answer.
    pub proc_: Json,
}

#[derive(Debug)]
pub enum Event {
    Denied(Denied),
    ExecFailed(i32),
    SetupFailed(String),
    /// The listener arrived: the filter is in place.
    Filtered,
    /// Serving the listener failed: syscalls can no longer be denied
    /// with a record (the caller fails closed).
    ListenerFailed(String),
}

pub struct Supervisor {
    rx: Receiver<Event>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Supervisor {
    pub fn start(control: OwnedFd) -> std::io::Result<Supervisor> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let reader = std::thread::Builder::new()
            .name("sandbox-control".into())
            .spawn(move || read_control(control, tx, stop2))?;
        Ok(Supervisor {
            rx,
            stop,
            threads: vec![reader],
        })
    }

    /// Events so far, without waiting.
    pub fn poll(&self) -> Vec<Event> {
        self.rx.try_iter().collect()
    }

    /// Stops serving (the sandbox is gone) and returns what is left.
    pub fn stop(self) -> Vec<Event> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        self.rx.try_iter().collect()
    }
}

fn read_control(control: OwnedFd, tx: Sender<Event>, stop: Arc<AtomicBool>) {
    let mut server = None;
    loop {
        match channel::recv(control.as_raw_fd()) {
            Ok(Some(Message::Listener(fd))) => {
                let (tx2, stop2) = (tx.clone(), stop.clone());
                let _ = tx.send(Event::Filtered);
                match std::thread::Builder::new()
                    .name("seccomp-notify".into())
                    .spawn(move || serve(fd, tx2, stop2))
                {
                    Ok(t) => server = Some(t),
                    Err(e) => {
                        let _ = tx.send(Event::ListenerFailed(format!("starting: {e}")));
                    }
                }
            }
            Ok(Some(Message::ExecFailed(e))) => {
                let _ = tx.send(Event::ExecFailed(e));
            }
            Ok(Some(Message::SetupFailed(t))) => {
                let _ = tx.send(Event::SetupFailed(t));
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(Event::SetupFailed(format!(
                    "reading the control channel: {e}"
                )));
                break;
            }
        }
    }
    if let Some(t) = server {
        let _ = t.join();
    }
}

fn serve(listener: OwnedFd, tx: Sender<Event>, stop: Arc<AtomicBool>) {
    let fd = listener.as_raw_fd();
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 50) };
        if n == 0 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            continue;
        }
        if n < 0 {
            continue; // EINTR
        }
        if pfd.revents & libc::POLLIN == 0 {
            // POLLHUP: no filtered task is left.
            return;
        }
        if let Err(e) = answer_one(fd, &tx) {
            let _ = tx.send(Event::ListenerFailed(e.to_string()));
            return;
        }
    }
}

fn answer_one(fd: i32, tx: &Sender<Event>) -> std::io::Result<()> {
    // SAFETY: RECV fills a zeroed seccomp_notif.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } < 0 {
        let e = std::io::Error::last_os_error();
        // ENOENT: the caller died before we received it. EINTR: retry.
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::EINTR) => Ok(()),
            _ => Err(e),
        };
    }
    // The caller is blocked until we answer: /proc shows it reliably.
    let proc_ = proc_json(req.pid);
    let d = Denied {
        time_ns: now_ns(),
        tid: req.pid,
        arch: req.data.arch,
        nr: req.data.nr,
        args: req.data.args,
        instruction_pointer: req.data.instruction_pointer,
        proc_,
    };
    let resp = libc::seccomp_notif_resp {
        id: req.id,
        val: 0,
        error: -libc::EPERM,
        flags: 0,
    };
    // SAFETY: valid response struct. ENOENT: the caller died meanwhile.
    if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOENT) {
            return Err(e);
        }
    }
    let _ = tx.send(Event::Denied(d));
    Ok(())
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

fn ns_inode(tid: u32, ns: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{tid}/ns/{ns}")).map_or(0, |m| m.ino())
}

fn cgroup_id(tid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(text) = std::fs::read_to_string(format!("/proc/{tid}/cgroup")) else {
        return 0;
    };
    let Some(rel) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
        return 0;
    };
    let Ok(cg) = crate::cgroup::Cgroup2::find() else {
        return 0;
    };
    let path = cg.mount.join(rel.trim_start_matches('/'));
    std::fs::metadata(Path::new(&path)).map_or(0, |m| m.ino())
}

/// The caller in the shape of the kernel records' `proc` object.
fn proc_json(tid: u32) -> Json {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).unwrap_or_default();
    let num = |k: &str, i: usize| -> u64 {
        status_field(&status, k)
            .and_then(|v| v.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u32::MAX as u64)
    };
    let mut m = Json::new();
    m.insert("pid".into(), num("Tgid", 0).into());
    m.insert("tid".into(), tid.into());
    m.insert("ppid".into(), num("PPid", 0).into());
    m.insert("uid".into(), num("Uid", 0).into());
    m.insert("gid".into(), num("Gid", 0).into());
    m.insert("euid".into(), num("Uid", 1).into());
    m.insert("egid".into(), num("Gid", 1).into());
    m.insert("cgroup_id".into(), cgroup_id(tid).into());
    m.insert("pid_ns".into(), ns_inode(tid, "pid").into());
    m.insert("mnt_ns".into(), ns_inode(tid, "mnt").into());
    let comm = std::fs::read(format!("/proc/{tid}/comm")).unwrap_or_default();
    put_bytes(&mut m, "comm", comm.strip_suffix(b"\n").unwrap_or(&comm));
    m
}

/// The `denied` record of one refused syscall.
pub fn record(d: &Denied) -> Record {
    let (abi, name) = seccomp::describe(d.arch, d.nr);
    let syscall = match name {
        Some(n) => n.to_string(),
        None => format!("{abi}:{}", d.nr),
    };
    let reason = if abi == "x86_64" {
        "unauditable_syscall"
    } else {
        "unauditable_abi"
    };
    let args: Vec<Value> = d.args.iter().map(|&a| json!(a)).collect();
    Record::new("denied", d.time_ns)
        .with("proc", Value::Object(d.proc_.clone()))
        .with("syscall", syscall)
        .with("abi", abi)
        .with("nr", d.nr)
        .with("args", Value::Array(args))
        .with("instruction_pointer", d.instruction_pointer)
        .with("reason", reason)
        .with("errno", "EPERM")
        .with("mechanism", "seccomp_user_notif")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_record_names_the_syscall_and_abi() {
        let d = Denied {
            time_ns: 5,
            tid: 9,
            arch: seccomp::AUDIT_ARCH_I386,
            nr: 5,
            args: [1, 2, 3, 4, 5, 6],
            instruction_pointer: 7,
            proc_: Json::new(),
        };
        let j = record(&d).to_json();
        assert_eq!(j["kind"], "denied");
        assert_eq!(j["syscall"], "open");
        assert_eq!(j["abi"], "i386");
        assert_eq!(j["reason"], "unauditable_abi");
        assert_eq!(j["args"], json!([1, 2, 3, 4, 5, 6]));
        let d = Denied {
            arch: seccomp::AUDIT_ARCH_X86_64,
            nr: 999,
            ..d
        };
        assert_eq!(record(&d).to_json()["syscall"], "x86_64:999");
    }

    #[test]
    fn status_fields_parse() {
        let s = "Name:\tsh\nTgid:\t42\nUid:\t0\t1\t2\t3\n";
        assert_eq!(status_field(s, "Tgid"), Some("42"));
        assert_eq!(status_field(s, "Uid"), Some("0\t1\t2\t3"));
        assert_eq!(status_field(s, "Gid"), None);
    }
}
