//! BPF LSM detection on this host. Its kernel lists `bpf` among its LSMs
//! but refuses BPF trampolines (LSM programs load with EPERM), so every
//! family with LSM hooks must fall back to tracepoints, say why, and still
//! capture. The LSM path itself is tested in VMs (`cargo xtask vm-test`).

use audit_capture::{
    drain::Drain,
    probes::{ProbeOptions, Scope, lsm::Detection},
    syscalls::Family,
};
use integration_tests::{TestCgroup, sandbox_audit};

#[test]
fn detection_reports_tracepoints_with_the_eperm_reason() {
    let cg = TestCgroup::new("lsm-detect");
    let opts = ProbeOptions {
        families: vec![Family::File, Family::Network],
        ..ProbeOptions::default()
    };
    let drain = Drain::start(Scope::Cgroup(cg.target.clone()), &opts).expect("probes load");
    let modes = &drain.probes().lsm.families;
    let families: Vec<Family> = modes.iter().map(|m| m.family).collect();
    assert_eq!(families, [Family::File, Family::Network]);
    for m in modes {
        let Detection::Tracepoints { reason } = &m.detection else {
            panic!(
                "{:?} runs in LSM mode on a kernel that refuses LSM programs",
                m.family
            );
        };
        assert!(
            reason.contains("loading a test LSM program failed")
                && (reason.contains("EPERM") || reason.contains("Operation not permitted")),
            "unexpected reason: {reason}"
        );
        assert!(m.hooks.is_empty());
    }
    drain.release();
}

#[test]
fn fallback_is_in_the_start_record_and_capture_works() {
    let dir = integration_tests::TempDir::new("lsm-start");
    let o = std::process::Command::new(sandbox_audit())
        .args(["exec", "--print", "--families", "file"])
        .args(["--log-dir", &format!("{}/log", dir.path())])
        .args(["--key-dir", &format!("{}/keys", dir.path())])
        .args(["--", "cat", "/proc/self/stat"])
        .output()
        .expect("run sandbox-audit exec");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON record"))
        .collect();
    let start = records
        .iter()
        .find(|r| r["kind"] == "start")
        .expect("start record");
    let file = &start["scope"]["probe_modes"]["file"];
    assert_eq!(file["mode"], "tracepoints", "{start}");
    assert!(
        file["reason"].as_str().is_some_and(|r| r.contains("LSM")),
        "{start}"
    );
    assert!(
        start["scope"]["probe_modes"].get("network").is_none(),
        "{start}"
    );
    let opened = records
        .iter()
        // Resolved from the file opened: /proc/<pid>/stat, with the
        // argument as given in `path_arg`.
        .find(|r| {
            r["kind"] == "open"
                && (r["path"] == "/proc/self/stat" || r["path_arg"] == "/proc/self/stat")
        })
        .unwrap_or_else(|| panic!("no open record of /proc/self/stat"));
    assert!(
        opened.get("source").is_none(),
        "tracepoint records carry no source"
    );
}
