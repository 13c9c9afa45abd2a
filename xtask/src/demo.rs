//! `cargo xtask demo`: a short scripted "agent" — execs, a fork tree, a
//! failing command, a killed process, file, network and privilege actions —
//! run under `sandbox-audit exec` (isolated: it cannot reach the recorder,
//! and what cannot be audited is denied and recorded), with its records
//! shown as they arrive, then `sandbox-audit verify` on the log it wrote.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util::{root, sh};

/// The "agent". Its own chatter goes to stderr so stdout carries records only.
const AGENT_SCRIPT: &str = r#"
say() { echo "agent: $*" >&2; }
say "listing the workspace"; ls / > /dev/null
say "a fork tree"; sh -c 'sh -c "true" & wait'
say "a failing command"; cat /nonexistent-secret 2>/dev/null || true
say "a killed process"; sleep 30 & kill -KILL $!; wait $! 2>/dev/null
say "writing notes"; mkdir -p /tmp/agent-work && echo notes > /tmp/agent-work/notes.txt
say "reading a secret as nobody (refused)"; setpriv --reuid=65534 --regid=65534 --clear-groups cat /etc/shadow 2>/dev/null
say "network: a DNS query and a refused connection"
/usr/bin/python3 - <<'PY' 2>/dev/null
import socket
q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(q, ("127.0.0.1", 53))
try:
    socket.socket().connect(("127.0.0.1", 9))
except OSError:
    pass
PY
say "making the notes append-only (refused: no CAP_LINUX_IMMUTABLE in the sandbox)"; chattr +a /tmp/agent-work/notes.txt 2>/dev/null
say "looking for the recorder's keys and log (hidden in the sandbox)"; ls -A /var/lib/sandbox-audit/keys /var/log/sandbox-audit
say "io_uring, which the probes cannot see (denied and recorded)"
/usr/bin/python3 -c 'import ctypes; ctypes.CDLL(None).syscall(425, 4, ctypes.create_string_buffer(120))' 
say "cleaning up"; rm -r /tmp/agent-work
say "done"
"#;

/// Fields not worth a column in the demo's one-line view.
const QUIET: &[&str] = &[
    "kind",
    "proc",
    "time_ns",
    "seq",
    "hash",
    "prev_hash",
    "syscall",
    "result",
    "ret",
    "duration_ns",
    "errno",
    "errno_name",
    "argv_bytes",
    "argv_truncated",
    "argv_unreadable",
    "filename_truncated",
    "old_tid",
    "wait_status",
    "thread",
    "child_tid",
    "access",
    "mode",
    "dirfd",
    "flags",
    "type_flags",
    "frontier",
    "note",
    "config_digest",
    "public_key",
    "addrlen",
    "request",
];

/// Library loads (the dynamic linker opening shared objects) drown the
/// interesting records in a demo; they are counted, not shown.
fn is_library_load(v: &Value) -> bool {
    let path = v["path"].as_str().unwrap_or("");
    let file = path.rsplit('/').next().unwrap_or("");
    v["kind"] == "open"
        && v["access"] == "read"
        && (path.starts_with("/usr/lib/")
            || path.starts_with("/lib")
            || path == "/etc/ld.so.cache"
            || file.ends_with(".so")
            || file.contains(".so."))
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) if m.contains_key("address") => {
            format!("{}:{}", m["address"], m["port"]).replace('"', "")
        }
        other => other.to_string(),
    }
}

/// One record as one readable line, or None for a library load.
fn render(line: &str) -> Option<String> {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return Some(line.to_string());
    };
    if is_library_load(&v) {
        return None;
    }
    let who = match v.get("proc") {
        Some(p) => format!("{}[{}]", short(&p["comm"]), p["pid"]),
        None => "(sandbox-audit)".to_string(),
    };
    let mut detail: Vec<String> = Vec::new();
    if v["kind"] == "denied" {
        detail.push(format!("syscall={}", short(&v["syscall"])));
    }
    if let Value::Object(m) = &v {
        for (k, val) in m {
            if QUIET.contains(&k.as_str())
                || k.ends_with("_resolution")
                || k.ends_with("_arg")
                || k.ends_with("_b64")
            {
                continue;
            }
            detail.push(format!("{k}={}", short(val)));
        }
    }
    let outcome = match v["result"].as_str() {
        Some("failure") => format!("  ✗ {}", short(&v["errno_name"])),
        _ => String::new(),
    };
    Some(format!(
        "{:<12} {:<22} {}{}",
        short(&v["kind"]),
        who,
        detail.join(" "),
        outcome
    ))
}

pub fn run() -> Result<()> {
    sh(Command::new(env!("CARGO")).current_dir(root()).args([
        "build",
        "--quiet",
        "-p",
        "sandbox-audit",
    ]))?;
    let bin = root().join("target/debug/sandbox-audit");
    let mut child = Command::new(&bin)
        .args(["exec", "--print", "--", "sh", "-c", AGENT_SCRIPT])
        // cargo points LD_LIBRARY_PATH into target/: the agent should not search there.
        .env_remove("LD_LIBRARY_PATH")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    let out = child.stdout.take().context("sandbox-audit stdout")?;
    let mut hidden = 0;
    for line in BufReader::new(out).lines() {
        match render(&line.context("reading records")?) {
            Some(l) => println!("{l}"),
            None => hidden += 1,
        }
    }
    let status = child.wait()?;
    eprintln!("demo: {hidden} library loads (open records of shared objects) not shown");
    eprintln!("demo: sandbox-audit exec exited with {status}");
    // The log it wrote (the defaults of --log-dir and --key-dir), checked
    // against the exported trust root and the checkpoint just written.
    let (log, root) = (
        DEFAULT_LOG_DIR,
        format!("{DEFAULT_KEY_DIR}/trust-root.vkey"),
    );
    let anchor = Command::new(&bin)
        .args(["checkpoint", "--log-dir", log])
        .output()
        .context("sandbox-audit checkpoint")?;
    let anchor_file = std::env::temp_dir().join("sandbox-audit-demo-anchor");
    std::fs::write(&anchor_file, &anchor.stdout).context("writing the anchor")?;
    eprintln!(
        "demo: sandbox-audit verify {log} --pubkey {root} --anchor {}",
        anchor_file.display()
    );
    let verified = Command::new(&bin)
        .args(["verify", log, "--pubkey", &root, "--anchor"])
        .arg(&anchor_file)
        .status()
        .context("sandbox-audit verify")?;
    let _ = std::fs::remove_file(&anchor_file);
    if !verified.success() {
        bail!("the log does not verify ({verified})");
    }
    Ok(())
}

/// `sandbox-audit`'s defaults (audit-log's store and keys modules).
const DEFAULT_LOG_DIR: &str = "/var/log/sandbox-audit";
const DEFAULT_KEY_DIR: &str = "/var/lib/sandbox-audit/keys";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_record_compactly() {
        let l = r#"{"kind":"connect","proc":{"comm":"python3","pid":7},"remote":{"family":"inet","address":"127.0.0.1","port":9},"result":"failure","errno_name":"ECONNREFUSED","fd":3}"#;
        assert_eq!(
            render(l).unwrap(),
            "connect      python3[7]             fd=3 remote=127.0.0.1:9  ✗ ECONNREFUSED"
        );
        assert_eq!(render("not json").unwrap(), "not json");
        let lib = r#"{"kind":"open","access":"read","path":"/usr/lib/x86_64-linux-gnu/libc.so.6","proc":{"comm":"ls","pid":1}}"#;
        assert_eq!(render(lib), None);
    }
}
