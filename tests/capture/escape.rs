//! From inside `sandbox-audit exec`, as root: the recorder cannot be read,
//! altered, stopped, blinded or left; what cannot be audited is denied and
//! the denial recorded; the sandbox dies with the agent and stops when the
//! log cannot be written.

use std::{
    os::unix::fs::MetadataExt,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use audit_capture::cgroup::{self, Cgroup2};
use integration_tests::{TempDir, sandbox_audit, workload};
use serde_json::Value;

/// `sandbox-audit exec` with a throwaway store under `dir`, printing
/// records on stdout; CMD's own stdout goes to `dir/cmd.out` (so that its
/// lines never mix with the records).
fn exec_cmd(dir: &TempDir, families: &str, extra: &[&str], cmd: &[&str]) -> Command {
    let mut c = Command::new(sandbox_audit());
    c.arg("exec")
        .args(["--families", families])
        .args(["--log-dir", &format!("{}/log", dir.path())])
        .args(["--key-dir", &format!("{}/keys", dir.path())])
        .arg("--print")
        .args(extra)
        .args(["--", "sh", "-c", "exec \"$@\" > \"$0\""])
        .arg(format!("{}/cmd.out", dir.path()))
        .args(cmd);
    c
}

/// What CMD printed in the last run in `dir`.
fn cmd_out(dir: &TempDir) -> String {
    std::fs::read_to_string(format!("{}/cmd.out", dir.path())).unwrap_or_default()
}

fn run(dir: &TempDir, families: &str, extra: &[&str], cmd: &[&str]) -> Output {
    exec_cmd(dir, families, extra, cmd)
        .output()
        .expect("run sandbox-audit exec")
}

fn records(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

/// The value of a `key=value` line CMD printed in the last run in `dir`.
fn said(dir: &TempDir, key: &str) -> Option<String> {
    cmd_out(dir)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_key_dir_and_the_log_dir_cannot_be_read_or_listed() {
    let dir = TempDir::new("esc-dirs");
    // A first run creates the keys and a log with records.
    assert!(run(&dir, "process", &[], &["true"]).status.success());
    let keys = format!("{}/keys", dir.path());
    let log = format!("{}/log", dir.path());
    let key_files: Vec<String> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    assert!(!key_files.is_empty(), "no key files to try");
    let script = format!(
        "echo keys_listed=$(ls -A {keys} | wc -l); echo log_listed=$(ls -A {log} | wc -l); \
         n=0; for f in {files}; do cat \"$f\" >/dev/null 2>&1 && n=$((n+1)); done; echo keys_read=$n; \
         echo found=$(find / -xdev -name 'epoch-*' -path '*{keys}*' 2>/dev/null | wc -l)",
        files = key_files.join(" ")
    );
    let o = run(&dir, "process", &[], &strs(&sh(&script)));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        said(&dir, "keys_listed").as_deref(),
        Some("0"),
        "{}",
        stderr(&o)
    );
    assert_eq!(said(&dir, "log_listed").as_deref(), Some("0"));
    assert_eq!(said(&dir, "keys_read").as_deref(), Some("0"));
    assert_eq!(said(&dir, "found").as_deref(), Some("0"));
}

#[test]
fn the_agent_is_invisible_and_unreachable() {
    let dir = TempDir::new("esc-agent");
    let mut child = exec_cmd(
        &dir,
        "process",
        &[],
        &["sh", "-c", "exec \"$0\" attack-agent $(cat)"],
    )
    .arg(workload())
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let agent = child.id();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{agent}").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let esrch = libc::ESRCH.to_string();
    assert_eq!(said(&dir, "kill"), Some(esrch.clone()), "{}", stderr(&o));
    assert_eq!(said(&dir, "ptrace"), Some(esrch.clone()));
    assert_eq!(said(&dir, "pidfd_open"), Some(esrch));
    assert_eq!(
        said(&dir, "process_vm_readv"),
        Some(libc::EPERM.to_string())
    );
    let procs = said(&dir, "procs").expect("procs line");
    assert!(
        !procs.contains("sandbox-audit"),
        "a sandbox-audit process is visible: {procs}"
    );
    assert!(procs.starts_with("1:sandbox-init:"), "{procs}");
    // The refused process_vm_readv is itself recorded.
    let recs = records(&o);
    let denied: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "denied").collect();
    assert!(
        denied
            .iter()
            .any(|r| r["syscall"] == "process_vm_readv" && r["args"][0] == agent),
        "{denied:#?}"
    );
}

#[test]
fn chattr_is_impossible() {
    let dir = TempDir::new("esc-chattr");
    let file = format!("{}/appendonly", dir.path());
    std::fs::write(&file, "x").unwrap();
    assert!(
        Command::new("chattr")
            .args(["+a", &file])
            .status()
            .unwrap()
            .success()
    );
    let o = run(
        &dir,
        "process",
        &[],
        &strs(&sh(&format!(
            "chattr -a {file} 2>/dev/null; echo chattr=$?; : > {file} 2>/dev/null; echo truncate=$?"
        ))),
    );
    let lsattr = Command::new("lsattr").arg(&file).output().unwrap();
    let _ = Command::new("chattr").args(["-a", &file]).status();
    assert_ne!(said(&dir, "chattr").as_deref(), Some("0"), "{}", stderr(&o));
    assert_ne!(said(&dir, "truncate").as_deref(), Some("0"));
    let attrs = String::from_utf8_lossy(&lsattr.stdout);
    assert!(
        attrs.split_whitespace().next().unwrap().contains('a'),
        "{attrs}"
    );
}

#[test]
fn the_sandbox_has_no_dangerous_capabilities_and_no_new_privs() {
    let dir = TempDir::new("esc-caps");
    let o = run(&dir, "process", &[], &["cat", "/proc/self/status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = cmd_out(&dir);
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{k} missing"))
    };
    for set in ["CapBnd:", "CapEff:", "CapPrm:", "CapInh:", "CapAmb:"] {
        let mask = u64::from_str_radix(&field(set), 16).unwrap();
        for (name, bit) in audit_capture::sandbox::caps::DROPPED {
            assert_eq!(mask & (1 << bit), 0, "{set} still has {name}");
        }
    }
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
    let start = records(&o)
        .into_iter()
        .find(|r| r["kind"] == "start")
        .unwrap();
    let sb = &start["scope"]["sandbox"];
    let sb = if sb.is_null() { &start["sandbox"] } else { sb };
    assert_eq!(sb["isolation"], "sandbox", "{start:#}");
    assert_eq!(sb["no_new_privs"], 1);
    assert!(
        sb["capabilities_dropped"]
            .as_array()
            .unwrap()
            .contains(&Value::from("CAP_SYS_ADMIN"))
    );
}

#[test]
fn user_and_empty_network_are_applied_and_recorded() {
    let dir = TempDir::new("esc-user");
    // CMD (as nobody) writes its output here.
    let out = format!("{}/cmd.out", dir.path());
    std::fs::write(&out, "").unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let o = run(
        &dir,
        "process",
        &["--user", "65534:65533", "--net", "none"],
        &strs(&sh(
            "echo uid=$(id -u) gid=$(id -g); echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ,)",
        )),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = cmd_out(&dir);
    assert!(out.contains("uid=65534 gid=65533"), "{out}");
    assert_eq!(said(&dir, "ifaces").as_deref(), Some("lo,"));
    let recs = records(&o);
    let start = recs.iter().find(|r| r["kind"] == "start").unwrap();
    let text = start.to_string();
    assert!(text.contains("\"network\":\"none\""), "{text}");
    assert!(text.contains("\"uid\":65534"), "{text}");
    assert!(
        recs.iter()
            .any(|r| r["kind"] == "exec" && r["proc"]["uid"] == 65534),
        "no exec as uid 65534"
    );
}

#[test]
fn no_isolation_is_recorded_as_such() {
    let dir = TempDir::new("esc-noiso");
    let o = run(&dir, "process", &["--no-isolation"], &["true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let start = records(&o)
        .into_iter()
        .find(|r| r["kind"] == "start")
        .unwrap();
    assert!(
        start.to_string().contains("\"isolation\":\"none\""),
        "{start}"
    );
}

#[test]
fn io_uring_and_the_ia32_abi_are_denied_and_recorded() {
    let dir = TempDir::new("esc-unaudit");
    let w = workload();
    let o = run(
        &dir,
        "process",
        &[],
        &[w.to_str().unwrap(), "unauditable", "/etc/hostname"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let eperm = libc::EPERM.to_string();
    assert_eq!(
        said(&dir, "io_uring_setup"),
        Some(eperm.clone()),
        "{}",
        stderr(&o)
    );
    assert_eq!(said(&dir, "int80_open"), Some(eperm));
    let recs = records(&o);
    let denied: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "denied").collect();
    let uring = denied
        .iter()
        .find(|r| r["syscall"] == "io_uring_setup")
        .unwrap_or_else(|| panic!("{denied:#?}"));
    assert_eq!(uring["abi"], "x86_64");
    assert_eq!(uring["errno"], "EPERM");
    assert_eq!(uring["args"][0], 4);
    assert_eq!(uring["proc"]["comm"], "workload");
    let int80 = denied
        .iter()
        .find(|r| r["abi"] == "i386")
        .unwrap_or_else(|| panic!("{denied:#?}"));
    assert_eq!(int80["syscall"], "open");
    assert_eq!(int80["nr"], 5);
    assert_eq!(int80["reason"], "unauditable_abi");
    // Host pids: the same process as the kernel's exec record.
    let exec = recs
        .iter()
        .find(|r| r["kind"] == "exec" && r["argv"][1] == "unauditable")
        .unwrap();
    assert_eq!(int80["proc"]["pid"], exec["proc"]["pid"]);
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn cgroup_mount() -> std::path::PathBuf {
    Cgroup2::find().unwrap().mount
}

#[test]
fn the_cgroup_root_cannot_be_reached_from_the_sandbox() {
    let dir = TempDir::new("esc-cg");
    let marker = format!("{}/marker-isolated", dir.path());
    std::fs::write(&marker, "m").unwrap();
    let procs = cgroup_mount().join("cgroup.procs");
    let w = workload();
    let o = run(
        &dir,
        "file",
        &[],
        &[
            w.to_str().unwrap(),
            "leave-cgroup",
            procs.to_str().unwrap(),
            &marker,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(
        said(&dir, "leave").as_deref(),
        Some("0"),
        "the sandbox left its cgroup"
    );
    assert_eq!(said(&dir, "marker_open").as_deref(), Some("0"));
    let recs = records(&o);
    assert!(
        recs.iter()
            .any(|r| r["kind"] == "open" && r["path"] == marker.as_str()),
        "the open after the attempt is not recorded"
    );
}

#[test]
fn leaving_the_cgroup_without_isolation_stays_in_scope_and_is_recorded() {
    let dir = TempDir::new("esc-cg-noiso");
    let marker = format!("{}/marker-left", dir.path());
    std::fs::write(&marker, "m").unwrap();
    let procs = cgroup_mount().join("cgroup.procs");
    let w = workload();
    let o = run(
        &dir,
        "file",
        &["--no-isolation"],
        &[
            w.to_str().unwrap(),
            "leave-cgroup",
            procs.to_str().unwrap(),
            &marker,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(said(&dir, "leave").as_deref(), Some("0"), "{}", stderr(&o));
    let recs = records(&o);
    let exec = recs
        .iter()
        .find(|r| r["kind"] == "exec" && r["argv"][1] == "leave-cgroup")
        .unwrap();
    let pid = &exec["proc"]["pid"];
    let migrate = recs
        .iter()
        .find(|r| r["kind"] == "cgroup_migrate" && &r["target_pid"] == pid && r["dst_path"] == "/")
        .unwrap_or_else(|| panic!("no cgroup_migrate record: {recs:#?}"));
    assert_eq!(migrate["dst_path"], "/");
    assert_eq!(
        migrate["dst_cgroup_id"],
        std::fs::metadata(cgroup_mount()).unwrap().ino()
    );
    assert_eq!(migrate["was_in_scope"], 1);
    let open = recs
        .iter()
        .find(|r| r["kind"] == "open" && r["path"] == marker.as_str())
        .unwrap_or_else(|| panic!("the open after leaving the cgroup is not recorded"));
    assert_eq!(&open["proc"]["pid"], pid);
    assert_ne!(open["proc"]["cgroup_id"], exec["proc"]["cgroup_id"]);
}

/// The exec cgroup of the agent `pid` under `parent`.
fn exec_cgroup(parent: &str, pid: u32) -> std::path::PathBuf {
    cgroup_mount().join(parent).join(format!("exec-{pid}"))
}

fn wait_populated(cg: &std::path::Path) {
    let t = Instant::now();
    while !cgroup::populated(cg).unwrap_or(false) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the sandbox never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn killing_the_agent_kills_the_sandbox_within_a_second() {
    let dir = TempDir::new("esc-kill");
    let parent = format!("sandbox-audit-test/kill-{}", std::process::id());
    let mut agent = exec_cmd(
        &dir,
        "process",
        &["--cgroup-parent", &parent],
        &["sh", "-c", "sleep 1000 & sleep 1000"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let cg = exec_cgroup(&parent, agent.id());
    wait_populated(&cg);
    // Both sleeps and the shell are up once three processes are there.
    let t = Instant::now();
    while std::fs::read_to_string(cg.join("cgroup.procs"))
        .unwrap()
        .lines()
        .count()
        < 3
    {
        assert!(t.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    agent.kill().unwrap();
    let killed = Instant::now();
    agent.wait().unwrap();
    while cgroup::populated(&cg).unwrap_or(false) {
        std::thread::sleep(Duration::from_millis(5));
        if killed.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let took = killed.elapsed();
    let _ = cgroup::kill_all(&cg);
    std::thread::sleep(Duration::from_millis(100));
    let _ = std::fs::remove_dir(&cg);
    let _ = std::fs::remove_dir(cgroup_mount().join(&parent));
    assert!(
        took < Duration::from_secs(1),
        "the sandbox outlived the agent by {took:?}"
    );
}

#[test]
fn a_full_log_filesystem_stops_the_sandbox_with_its_own_status() {
    let dir = TempDir::new("esc-enospc");
    let log = format!("{}/log", dir.path());
    std::fs::create_dir_all(&log).unwrap();
    assert!(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs", &log])
            .status()
            .unwrap()
            .success()
    );
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = audit_log::segment::unprotect_tree(std::path::Path::new(&self.0));
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(log.clone());
    let ticks = format!("{}/ticks", dir.path());
    // Records as fast as the shell can make them, and a clock tick per loop.
    let script = format!("while :; do date +%s%N >> {ticks}; done");
    let started = Instant::now();
    // When does the log's filesystem become (nearly) full? The store keeps
    // 16 KiB preallocated past its end for a last `store_error` record, so
    // it fails with that much still free: "full" is under 64 KiB free.
    let full_at = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (full2, log2) = (full_at.clone(), log.clone());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let poller = std::thread::spawn(move || {
        let c = std::ffi::CString::new(log2).unwrap();
        while !done2.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: valid path and out-pointer.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0
                && st.f_bavail.saturating_mul(st.f_frsize) < 64 << 10
            {
                full2.store(now_ns(), std::sync::atomic::Ordering::SeqCst);
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut c = Command::new(sandbox_audit());
    let o = c
        .arg("exec")
        .args(["--families", "file"])
        .args(["--log-dir", &log])
        .args(["--key-dir", &format!("{}/keys", dir.path())])
        .args(["--group-commit-ms", "20"])
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    let ended_ns = now_ns();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    poller.join().unwrap();
    // When the store gave up: its `store_error` record says (the poller's
    // "under 64 KiB free" is a fallback: the store fails with its buffer
    // plus a 16 KiB reserve still free, which can be more than that).
    let store_error_ns = audit_log::segment::list(std::path::Path::new(&log))
        .unwrap_or_default()
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .find(|r| r["kind"] == "store_error")
        .and_then(|r| r["time_ns"].as_u64());
    let polled_ns = full_at.load(std::sync::atomic::Ordering::SeqCst);
    let full_ns = match (store_error_ns, polled_ns) {
        (Some(e), 0) => e,
        (Some(e), p) => e.min(p),
        (None, p) => p,
    };
    assert_eq!(o.status.code(), Some(122), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("No space left on device") && stderr(&o).contains("frozen and killed"),
        "{}",
        stderr(&o)
    );
    // Only a bound against a hang: filling the filesystem took over 120 s
    // with two test suites sharing the 2 cores.
    assert!(
        started.elapsed() < Duration::from_secs(600),
        "exec took {:?}",
        started.elapsed()
    );
    // The last tick of the sandbox came before exec had finished failing
    // closed; no tick came after exec exited.
    let text = std::fs::read_to_string(&ticks).unwrap();
    let last: u64 = text.lines().filter_map(|l| l.parse().ok()).max().unwrap();
    assert!(last <= ended_ns, "the sandbox ran on after exec exited");
    assert!(full_ns > 0, "the log filesystem never filled up");
    assert!(
        last < full_ns + 1_000_000_000,
        "the sandbox ran {} ms after the log filled up",
        (last - full_ns) / 1_000_000
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(&ticks).unwrap(),
        text,
        "the sandbox still runs"
    );
}

#[test]
fn ordinary_programs_work_isolated_with_records_of_the_same_shape() {
    let dir = TempDir::new("esc-ordinary");
    let script = "echo a b c | tr ' ' '\\n' | wc -l; \
                  python3 -c 'import os; print(\"py=\" + str(os.getpid()))'; \
                  head -1 /proc/self/status";
    let check = |o: &Output| {
        assert!(o.status.success(), "{}", stderr(o));
        let out = cmd_out(&dir);
        assert!(out.lines().any(|l| l.trim() == "3"), "{out}");
        assert!(out.contains("py="), "{out}");
        assert!(out.contains("Name:\thead"), "{out}");
    };
    let iso = run(&dir, "file", &[], &strs(&sh(script)));
    check(&iso);
    let plain = run(&dir, "file", &["--no-isolation"], &strs(&sh(script)));
    check(&plain);
    // Same kinds of records with the same fields for the same programs.
    let shape = |o: &Output| {
        let mut s: Vec<(String, Vec<String>)> = records(o)
            .into_iter()
            .filter(|r| r["kind"] == "exec" || r["kind"] == "exit")
            .filter(|r| {
                let c = r["proc"]["comm"].as_str().unwrap_or("");
                ["tr", "wc", "python3", "head"].contains(&c)
            })
            .map(|r| {
                let mut keys: Vec<String> = r.as_object().unwrap().keys().cloned().collect();
                keys.sort();
                (format!("{}:{}", r["kind"], r["proc"]["comm"]), keys)
            })
            .collect();
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(shape(&iso), shape(&plain));
    assert!(!shape(&iso).is_empty());
}
