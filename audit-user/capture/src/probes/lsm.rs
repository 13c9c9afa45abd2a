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

use audit_common::lsm::{offset, selftest};

use crate::{
    btf::Btf,
    syscalls::{self, Family},
};

#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("{0} missing from the eBPF object")]
    Missing(&'static str),
    #[error("{what}: {source}")]
    Program {
        what: String,
        #[source]
        source: ProgramError,
    },
    #[error("{what}: {source}")]
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

/// (family, program in the object, LSM hook)
const HOOKS: &[(Family, &str, &str)] = &[
    (Family::File, "lsm_file_open", "file_open"),
    (Family::Network, "lsm_socket_connect", "socket_connect"),
];

/// Offsets of the fields only the LSM programs read (`LSM_OFFSETS`). A
/// field this kernel lacks stays `u32::MAX`; its record field is then 0.
pub fn offsets(btf: &Btf) -> [u32; offset::COUNT] {
    let mut o = [u32::MAX; offset::COUNT];
    for (i, st, member) in [
        (offset::FILE_F_FLAGS, "file", "f_flags"),
        (offset::FILE_F_MODE, "file", "f_mode"),
    ] {
        if let Ok(off) = btf.member_offset(st, member) {
            o[i] = off;
        }
    }
    o
}

/// The error and every cause below it, on one line (aya's load error keeps
/// the errno in its source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
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
    let btf = AyaBtf::from_sys_fs().map_err(|e| format!("reading kernel BTF: {}", chain(&e)))?;
    let pid = std::process::id() as u64;
    set_selftest(ebpf, selftest::TGID, pid)?;
    set_selftest(ebpf, selftest::HITS, 0)?;
    let prog: &mut Lsm = ebpf
        .program_mut("lsm_selftest")
        .ok_or("lsm_selftest missing from the eBPF object")?
        .try_into()
        .map_err(|e: ProgramError| chain(&e))?;
    prog.load("file_open", &btf)
        .map_err(|e| format!("loading a test LSM program failed: {}", chain(&e)))?;
    let link = prog
        .attach()
        .map_err(|e| format!("attaching a test LSM program failed: {}", chain(&e)));
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
    Array::try_from(m).map_err(|e| chain(&e))
}

fn set_selftest(ebpf: &mut Ebpf, slot: u32, v: u64) -> Result<(), String> {
    selftest_map(ebpf)?
        .set(slot, v, 0)
        .map_err(|e| format!("writing LSM_SELFTEST: {}", chain(&e)))
}

fn get_selftest(ebpf: &mut Ebpf, slot: u32) -> Result<u64, String> {
    selftest_map(ebpf)?
        .get(&slot, 0)
        .map_err(|e| format!("reading LSM_SELFTEST: {}", chain(&e)))
}

/// Syscalls whose tracepoint records cover what `hook` would report when
/// it fires inside them (the hook then stays silent).
fn covered_syscalls(hook: &str) -> Vec<u32> {
    syscalls::TABLE
        .iter()
        .filter(|d| match hook {
            "file_open" => d.kind == "open" || d.kind == "exec",
            "socket_connect" => d.name == "connect",
            _ => false,
        })
        .filter_map(|d| u32::try_from(d.nr).ok())
        .collect()
}

/// Attaches the LSM hooks of `families` when `detection` allows; returns the
/// mode of every family that has hooks. A family whose hook fails to load
/// falls back to tracepoints with that reason.
pub fn attach(
    ebpf: &mut Ebpf,
    families: &[Family],
    detection: &Detection,
) -> Result<Vec<FamilyMode>, LsmError> {
    let mut modes = Vec::new();
    let btf = match detection {
        Detection::Lsm => match AyaBtf::from_sys_fs() {
            Ok(b) => Some(b),
            Err(e) => {
                return Ok(fallback_all(families, &format!("kernel BTF: {}", chain(&e))));
            }
        },
        Detection::Tracepoints { .. } => None,
    };
    for &(family, prog_name, hook) in HOOKS {
        if !families.contains(&family) {
            continue;
        }
        let (Some(btf), Detection::Lsm) = (&btf, detection) else {
            modes.push(FamilyMode {
                family,
                detection: detection.clone(),
                hooks: vec![],
            });
            continue;
        };
        {
            let m = ebpf
                .map_mut("LSM_TP_COVERED")
                .ok_or(LsmError::Missing("map LSM_TP_COVERED"))?;
            let mut covered: HashMap<_, u32, u8> =
                HashMap::try_from(m).map_err(|source| LsmError::Map {
                    what: "LSM_TP_COVERED".into(),
                    source,
                })?;
            for nr in covered_syscalls(hook) {
                covered.insert(nr, 1, 0).map_err(|source| LsmError::Map {
                    what: format!("adding syscall {nr} to LSM_TP_COVERED"),
                    source,
                })?;
            }
        }
        let prog: &mut Lsm = ebpf
            .program_mut(prog_name)
            .ok_or(LsmError::Missing("an LSM program"))?
            .try_into()
            .map_err(|source| LsmError::Program {
                what: prog_name.into(),
                source,
            })?;
        let r = prog.load(hook, btf).and_then(|()| prog.attach().map(|_| ()));
        match r {
            Ok(()) => {
                log::info!("{} family: LSM hook {hook} attached", family.name());
                modes.push(FamilyMode {
                    family,
                    detection: Detection::Lsm,
                    hooks: vec![hook],
                });
            }
            Err(e) => {
                let reason = format!("LSM hook {hook}: {}", chain(&e));
                log::warn!("{} family falls back to tracepoints: {reason}", family.name());
                modes.push(FamilyMode {
                    family,
                    detection: Detection::Tracepoints { reason },
                    hooks: vec![],
                });
            }
        }
    }
    for m in &modes {
        if let Detection::Tracepoints { reason } = &m.detection {
            log::info!("{} family: tracepoints ({reason})", m.family.name());
        }
    }
    Ok(modes)
}

fn fallback_all(families: &[Family], reason: &str) -> Vec<FamilyMode> {
    HOOKS
        .iter()
        .filter(|(f, _, _)| families.contains(f))
        .map(|&(family, _, _)| FamilyMode {
            family,
            detection: Detection::Tracepoints {
                reason: reason.into(),
            },
            hooks: vec![],
        })
        .collect()
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
