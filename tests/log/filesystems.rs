//! The store on a filesystem that refuses append-only/immutable flags
//! (ramfs has no inode flags at all): it says so, records it in the log,
//! and keeps going. Plus `keygen` and `checkpoint` from the command line.

#[path = "util/mod.rs"]
mod store_util;

use std::{path::Path, process::Command};

use audit_log::{
    record::{Record, now_ns},
    sink::Sink,
    store::{Store, StoreConfig},
    verify::{Options, verify_paths},
};
use integration_tests::TempDir;
use store_util::{kind, read_log, sa};

/// A ramfs mount, unmounted on drop.
struct Ramfs(String);

impl Ramfs {
    fn new(at: &str) -> Ramfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "ramfs", "ramfs", at])
            .status()
            .unwrap();
        assert!(ok.success(), "mount ramfs (the suite runs as root)");
        Ramfs(at.to_string())
    }
}

impl Drop for Ramfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn refused_append_only_flag_is_recorded_and_the_log_still_verifies() {
    let dir = TempDir::new("ramfs");
    let mnt = format!("{}/mnt", dir.path());
    let _ramfs = Ramfs::new(&mnt);
    let mut cfg = StoreConfig::new(format!("{mnt}/log"), format!("{}/keys", dir.path()));
    cfg.segment_max_bytes = 2000;
    cfg.group_commit = std::time::Duration::from_millis(1);
    let mut s = Store::open(cfg).expect("the store opens even without flags");
    s.start(Default::default()).unwrap();
    for i in 0..40u64 {
        s.accept(Record::new("exec", now_ns()).with("n", i))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        s.flush().unwrap();
    }
    s.close("done").unwrap();

    let log = read_log(Path::new(&format!("{mnt}/log")));
    let refusals: Vec<_> = log.iter().filter(|m| kind(m) == "protection").collect();
    assert!(
        refusals.iter().any(|m| m["flag"] == "append"),
        "{refusals:?}"
    );
    assert!(
        refusals.iter().any(|m| m["flag"] == "immutable"),
        "sealing a rotated segment: {refusals:?}"
    );
    assert!(
        refusals
            .iter()
            .all(|m| m["error"].as_str().is_some_and(|e| !e.is_empty()))
    );
    let files = audit_log::segment::list(Path::new(&format!("{mnt}/log"))).unwrap();
    let r = verify_paths(&files, &Options::default()).unwrap();
    assert!(r.intact(), "{}", audit_log::verify::render_text(&r));
    assert!(r.summary.protection_refusals >= 2);
    assert!(audit_log::verify::render_text(&r).contains("refused append-only/immutable"));
}

#[test]
fn keygen_prints_the_trust_root_and_checkpoint_prints_an_anchor() {
    let dir = TempDir::new("keygen");
    let keys = format!("{}/keys", dir.path());
    let first = sa(&["keygen", "--key-dir", &keys]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let root = String::from_utf8_lossy(&first.stdout).trim().to_string();
    audit_log::checkpoint::parse_vkey(&root).expect("a C2SP verifier key");
    assert_eq!(
        std::fs::read_to_string(format!("{keys}/trust-root.vkey"))
            .unwrap()
            .trim(),
        root
    );
    // Again: the same keys, not new ones.
    let again = sa(&["keygen", "--key-dir", &keys]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), root);
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&format!("{keys}/epoch-0.secret")), 0o600);

    // No log yet: a clear error, not a panic.
    let log = format!("{}/log", dir.path());
    let none = sa(&["checkpoint", "--log-dir", &log]);
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains(&log),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );

    let mut s = Store::open(StoreConfig::new(&log, &keys)).unwrap();
    s.accept(Record::new("exec", now_ns())).unwrap();
    s.close("done").unwrap();
    let note = sa(&["checkpoint", "--log-dir", &log]);
    assert!(note.status.success());
    let text = String::from_utf8_lossy(&note.stdout);
    audit_log::verify::parse_anchor(&text).expect("a signed checkpoint note");
    assert!(
        text.starts_with(&root[..root.find('+').unwrap()]),
        "origin line first: {text}"
    );
}
