//! BPF LSM: whether this kernel runs LSM programs, and attaching them per
//! syscall family.
//!
//! Detection loads and attaches a tiny program (`lsm_selftest` on
//! file_open), opens a file, and checks that the program ran for this
//! process. Neither "CONFIG_BPF_LSM=y" nor `bpf` in
//! /sys/kernel/security/lsm is proof: a kernel may refuse BPF trampolines
//! (EPERM at load), and a kernel booted with an `lsm=` list lacking `bpf`
//! loads and attaches the program but never calls it.
//!
//! A family whose hooks attach runs in `lsm` mode: its hooks record what the
//! tracepoints cannot see (io_uring, other in-kernel paths), and its
//! syscall tracepoints stay for everything else (failed opens never reach
//! file_open). Otherwise the family runs on `tracepoints` alone, and the
//! reason is recorded.

use aya::{
    Btf as AyaBtf, Ebpf,
    maps::{Array, HashMap},
    programs::{Lsm, ProgramError},
};
use serde_json::{Value, json};

use std::{os::unix::fs::MetadataExt, path::PathBuf};

use audit_common::lsm::{InodeKey, agent, offset, selftest};

// aya's load error keeps the errno in its source: reasons print the chain.
use crate::{
    btf::Btf,
    error::error_text,
    syscalls::{self, Family},
};

#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("{0} missing from the eBPF object")]
    Missing(&'static str),
    #[error("{what}")]
    Program {
        what: String,
        #[source]
        source: ProgramError,
    },
    #[error("{what}")]
    Map {
        what: String,
        #[source]
        source: aya::maps::MapError,
    },
}

/// Whether LSM programs work here, and why not when they do not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detection {
    Lsm,
    Tracepoints { reason: String },
}

/// How one family is probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyMode {
    pub family: Family,
    pub detection: Detection,
    /// LSM hooks attached (empty in tracepoint mode).
    pub hooks: Vec<&'static str>,
}

/// (family, program in the object, LSM hook). A family's first hook
/// decides its mode; a later one that fails to attach only leaves the
/// family's `hooks` list shorter (its operations then have the
/// tracepoint records alone, as in tracepoint mode).
const HOOKS: &[(Family, &str, &str)] = &[
    (Family::File, "lsm_file_open", "file_open"),
    (Family::File, "lsm_path_unlink", "path_unlink"),
    (Family::File, "lsm_path_mkdir", "path_mkdir"),
    (Family::File, "lsm_path_rename", "path_rename"),
    (Family::Network, "lsm_socket_connect", "socket_connect"),
    (Family::Network, "lsm_socket_bind", "socket_bind"),
];

/// The families of `HOOKS`, each once, in order.
fn hook_families() -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    for &(f, _, _) in HOOKS {
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// Offsets of the fields only the LSM programs read (`LSM_OFFSETS`). A
/// field this kernel lacks stays `u32::MAX`; its record field is then 0.
pub fn offsets(btf: &Btf) -> [u32; offset::COUNT] {
    let mut o = [u32::MAX; offset::COUNT];
    for (i, st, member) in [
        (offset::FILE_F_FLAGS, "file", "f_flags"),
        (offset::FILE_F_MODE, "file", "f_mode"),
        (offset::INODE_I_INO, "inode", "i_ino"),
        (offset::INODE_I_SB, "inode", "i_sb"),
        (offset::SB_S_DEV, "super_block", "s_dev"),
        (offset::DENTRY_D_INODE, "dentry", "d_inode"),
        (offset::SB_S_MAGIC, "super_block", "s_magic"),
    ] {
        if let Ok(off) = btf.member_offset(st, member) {
            o[i] = off;
        }
    }
    o
}

/// Loads, attaches and triggers the self-test program, then removes it.
pub fn detect(ebpf: &mut Ebpf) -> Detection {
    match selftest_hits(ebpf) {
        Ok(0) => Detection::Tracepoints {
            reason: "a test LSM program loaded and attached but never ran: BPF LSM is not \
                     active (is `bpf` missing from the kernel's lsm= list?)"
                .into(),
        },
        Ok(_) => Detection::Lsm,
        Err(reason) => Detection::Tracepoints { reason },
    }
}

fn selftest_hits(ebpf: &mut Ebpf) -> Result<u64, String> {
    let btf =
        AyaBtf::from_sys_fs().map_err(|e| format!("reading kernel BTF: {}", error_text(&e)))?;
    let pid = std::process::id() as u64;
    set_selftest(ebpf, selftest::TGID, pid)?;
    set_selftest(ebpf, selftest::HITS, 0)?;
    let prog: &mut Lsm = ebpf
        .program_mut("lsm_selftest")
        .ok_or("lsm_selftest missing from the eBPF object")?
        .try_into()
        .map_err(|e: ProgramError| error_text(&e))?;
    prog.load("file_open", &btf)
        .map_err(|e| format!("loading a test LSM program failed: {}", error_text(&e)))?;
    let link = prog
        .attach()
        .map_err(|e| format!("attaching a test LSM program failed: {}", error_text(&e)));
    let link = match link {
        Ok(l) => l,
        Err(e) => {
            let _ = prog.unload();
            return Err(e);
        }
    };
    // Any open runs security_file_open.
    let opened = std::fs::File::open("/proc/self/stat");
    let _ = prog.detach(link);
    let _ = prog.unload();
    opened.map_err(|e| format!("opening /proc/self/stat for the LSM test: {e}"))?;
    let hits = get_selftest(ebpf, selftest::HITS)?;
    set_selftest(ebpf, selftest::TGID, 0)?;
    Ok(hits)
}

fn selftest_map(ebpf: &mut Ebpf) -> Result<Array<&mut aya::maps::MapData, u64>, String> {
    let m = ebpf
        .map_mut("LSM_SELFTEST")
        .ok_or("map LSM_SELFTEST missing from the eBPF object")?;
    Array::try_from(m).map_err(|e| error_text(&e))
}

fn set_selftest(ebpf: &mut Ebpf, slot: u32, v: u64) -> Result<(), String> {
    selftest_map(ebpf)?
        .set(slot, v, 0)
        .map_err(|e| format!("writing LSM_SELFTEST: {}", error_text(&e)))
}

fn get_selftest(ebpf: &mut Ebpf, slot: u32) -> Result<u64, String> {
    selftest_map(ebpf)?
        .get(&slot, 0)
        .map_err(|e| format!("reading LSM_SELFTEST: {}", error_text(&e)))
}

/// Syscalls whose tracepoint records cover what `hook` would report when
/// it fires inside them (the hook then stays silent).
fn covered_syscalls(hook: &str) -> Vec<u32> {
    syscalls::TABLE
        .iter()
        .filter(|d| match hook {
            "file_open" => d.kind == "open" || d.kind == "exec",
            "socket_connect" => d.name == "connect",
            "socket_bind" => d.name == "bind",
            "path_unlink" => d.kind == "unlink",
            "path_mkdir" => d.kind == "mkdir",
            "path_rename" => d.kind == "rename",
            _ => false,
        })
        .filter_map(|d| u32::try_from(d.nr).ok())
        .collect()
}

/// What the LSM side ended up doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LsmSetup {
    /// Mode of every requested family that has LSM hooks.
    pub families: Vec<FamilyMode>,
    pub enforcement: Enforcement,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enforcement {
    /// Hooks that deny (empty: no enforcement, see `reason`).
    pub hooks: Vec<&'static str>,
    /// Inodes in-scope processes cannot open (plus the files directly in them).
    pub protected_inodes: usize,
    pub reason: Option<String>,
}

/// (program, hook) pairs that only enforce; file_open enforces too.
const ENFORCING: &[(&str, &str)] = &[
    ("lsm_task_kill", "task_kill"),
    ("lsm_ptrace_access_check", "ptrace_access_check"),
    ("lsm_bpf", "bpf"),
    ("lsm_kernel_read_file", "kernel_read_file"),
    ("lsm_kernel_load_data", "kernel_load_data"),
];

fn map_err(what: &str) -> impl FnOnce(aya::maps::MapError) -> LsmError + '_ {
    move |source| LsmError::Map {
        what: what.into(),
        source,
    }
}

fn load_attach(ebpf: &mut Ebpf, prog_name: &str, hook: &str, btf: &AyaBtf) -> Result<(), String> {
    let prog: &mut Lsm = ebpf
        .program_mut(prog_name)
        .ok_or_else(|| format!("{prog_name} missing from the eBPF object"))?
        .try_into()
        .map_err(|e: ProgramError| error_text(&e))?;
    prog.load(hook, btf)
        .and_then(|()| prog.attach().map(|_| ()))
        .map_err(|e| format!("LSM hook {hook}: {}", error_text(&e)))
}

/// The inodes of `paths` and of everything below them, as `LSM_PROTECTED` keys.
fn protected_inodes(paths: &[PathBuf]) -> Vec<InodeKey> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        out.push(InodeKey {
            dev: kernel_dev(m.dev()),
            _pad: 0,
            ino: m.ino(),
        });
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
    }
    out
}

/// userspace dev_t → the kernel's internal one (`MKDEV`: major << 20 | minor).
fn kernel_dev(dev: u64) -> u32 {
    let major = libc::major(dev) as u32;
    let minor = libc::minor(dev) as u32;
    (major << 20) | (minor & 0xfffff)
}

/// Attaches the LSM hooks of `families` and the enforcing hooks when
/// `detection` allows. A family whose hook fails to load falls back to
/// tracepoints with that reason.
pub fn attach(
    ebpf: &mut Ebpf,
    families: &[Family],
    protect: &[PathBuf],
    detection: &Detection,
) -> Result<LsmSetup, LsmError> {
    let btf = match detection {
        Detection::Lsm => match AyaBtf::from_sys_fs() {
            Ok(b) => b,
            Err(e) => {
                let reason = format!("kernel BTF: {}", error_text(&e));
                return Ok(fallback_all(families, &reason));
            }
        },
        Detection::Tracepoints { reason } => return Ok(fallback_all(families, reason)),
    };
    {
        let m = ebpf
            .map_mut("LSM_TP_COVERED")
            .ok_or(LsmError::Missing("map LSM_TP_COVERED"))?;
        let mut covered: HashMap<_, u32, u8> =
            HashMap::try_from(m).map_err(map_err("LSM_TP_COVERED"))?;
        for &(_, _, hook) in HOOKS {
            for nr in covered_syscalls(hook) {
                covered
                    .insert(nr, 1, 0)
                    .map_err(map_err("adding a syscall to LSM_TP_COVERED"))?;
            }
        }
    }
    let inodes = protected_inodes(protect);
    {
        let m = ebpf
            .map_mut("LSM_PROTECTED")
            .ok_or(LsmError::Missing("map LSM_PROTECTED"))?;
        let mut prot: HashMap<_, InodeKey, u8> =
            HashMap::try_from(m).map_err(map_err("LSM_PROTECTED"))?;
        for k in &inodes {
            prot.insert(*k, 1, 0)
                .map_err(map_err("adding an inode to LSM_PROTECTED"))?;
        }
    }
    {
        let m = ebpf
            .map_mut("LSM_AGENT")
            .ok_or(LsmError::Missing("map LSM_AGENT"))?;
        let mut a: Array<_, u32> = Array::try_from(m).map_err(map_err("LSM_AGENT"))?;
        a.set(agent::TGID, std::process::id(), 0)
            .map_err(map_err("LSM_AGENT"))?;
        a.set(
            agent::RECORD_OPENS,
            families.contains(&Family::File) as u32,
            0,
        )
        .map_err(map_err("LSM_AGENT"))?;
    }

    let mut setup = LsmSetup::default();
    // file_open both records (file family) and enforces (always).
    let file_open = load_attach(ebpf, "lsm_file_open", "file_open", &btf);
    for family in hook_families() {
        if !families.contains(&family) {
            continue;
        }
        let mut mode = FamilyMode {
            family,
            detection: Detection::Lsm,
            hooks: vec![],
        };
        for (i, &(_, prog_name, hook)) in HOOKS.iter().filter(|h| h.0 == family).enumerate() {
            let r = if hook == "file_open" {
                file_open.clone()
            } else {
                load_attach(ebpf, prog_name, hook, &btf)
            };
            match r {
                Ok(()) => {
                    log::info!("{} family: LSM hook {hook} attached", family.name());
                    mode.hooks.push(hook);
                }
                Err(reason) if i == 0 => {
                    log::warn!(
                        "{} family falls back to tracepoints: {reason}",
                        family.name()
                    );
                    mode.detection = Detection::Tracepoints { reason };
                    break;
                }
                Err(reason) => {
                    log::warn!("{} family runs without {hook}: {reason}", family.name());
                }
            }
        }
        setup.families.push(mode);
    }
    let mut failures = Vec::new();
    match &file_open {
        Ok(()) => setup.enforcement.hooks.push("file_open"),
        Err(e) => failures.push(e.clone()),
    }
    for &(prog_name, hook) in ENFORCING {
        match load_attach(ebpf, prog_name, hook, &btf) {
            Ok(()) => setup.enforcement.hooks.push(hook),
            Err(e) => failures.push(e),
        }
    }
    setup.enforcement.protected_inodes = inodes.len();
    if !failures.is_empty() {
        log::warn!("enforcement is partial: {}", failures.join("; "));
        setup.enforcement.reason = Some(failures.join("; "));
    }
    log::info!(
        "enforcing with LSM hooks {:?} ({} protected inodes)",
        setup.enforcement.hooks,
        inodes.len()
    );
    Ok(setup)
}

fn fallback_all(families: &[Family], reason: &str) -> LsmSetup {
    let wanted: Vec<Family> = hook_families()
        .into_iter()
        .filter(|f| families.contains(f))
        .collect();
    for family in &wanted {
        log::info!("{} family: tracepoints ({reason})", family.name());
    }
    let families = wanted
        .into_iter()
        .map(|family| FamilyMode {
            family,
            detection: Detection::Tracepoints {
                reason: reason.into(),
            },
            hooks: vec![],
        })
        .collect();
    LsmSetup {
        families,
        enforcement: Enforcement {
            hooks: vec![],
            protected_inodes: 0,
            reason: Some(format!("no BPF LSM: {reason}")),
        },
    }
}

/// Adds `probe_modes` and `enforcement` to a `start` record's scope.
pub fn add_to_scope(scope: &mut serde_json::Map<String, Value>, setup: &LsmSetup) {
    scope.insert("probe_modes".into(), modes_json(&setup.families));
    let e = &setup.enforcement;
    let mut v = json!({
        "active": u8::from(!e.hooks.is_empty()),
        "hooks": e.hooks,
        "protected_inodes": e.protected_inodes,
    });
    if let Some(r) = &e.reason {
        v["reason"] = r.clone().into();
    }
    scope.insert("enforcement".into(), v);
}

/// `{"file": {"mode": "lsm", "hooks": [...]}, "network": {"mode":
/// "tracepoints", "reason": "..."}}` for the `start` record's scope.
pub fn modes_json(modes: &[FamilyMode]) -> Value {
    let mut m = serde_json::Map::new();
    for f in modes {
        let v = match &f.detection {
            Detection::Lsm => json!({"mode": "lsm", "hooks": f.hooks}),
            Detection::Tracepoints { reason } => json!({"mode": "tracepoints", "reason": reason}),
        };
        m.insert(f.family.name().into(), v);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_syscalls_are_the_ones_the_tracepoints_record() {
        let nr = |n: i64| n as u32;
        let open = covered_syscalls("file_open");
        assert!(open.contains(&nr(libc::SYS_openat)));
        assert!(open.contains(&nr(libc::SYS_execve)));
        assert!(!open.contains(&nr(libc::SYS_io_uring_enter)));
        assert_eq!(covered_syscalls("socket_connect"), [nr(libc::SYS_connect)]);
        assert_eq!(covered_syscalls("socket_bind"), [nr(libc::SYS_bind)]);
        assert!(covered_syscalls("path_unlink").contains(&nr(libc::SYS_unlinkat)));
        assert!(covered_syscalls("path_mkdir").contains(&nr(libc::SYS_mkdir)));
        assert!(covered_syscalls("path_rename").contains(&nr(libc::SYS_renameat2)));
        assert!(!covered_syscalls("path_rename").contains(&nr(libc::SYS_unlinkat)));
    }

    #[test]
    fn modes_json_names_mode_and_reason() {
        let modes = [
            FamilyMode {
                family: Family::File,
                detection: Detection::Lsm,
                hooks: vec!["file_open"],
            },
            FamilyMode {
                family: Family::Network,
                detection: Detection::Tracepoints {
                    reason: "EPERM".into(),
                },
                hooks: vec![],
            },
        ];
        let v = modes_json(&modes);
        assert_eq!(v["file"], json!({"mode": "lsm", "hooks": ["file_open"]}));
        assert_eq!(v["network"]["mode"], "tracepoints");
        assert_eq!(v["network"]["reason"], "EPERM");
    }
}
