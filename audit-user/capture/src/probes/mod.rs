//! The kernel side as userspace sees it: load the embedded eBPF object with
//! this kernel's struct offsets and the chosen scope, attach every probe, and
//! hand out the ring buffer and loss counters to the next stage.

pub mod offsets;

use std::{collections::HashMap as StdHashMap, fs, path::Path};

use audit_common::syscall::{MAX_SYSCALL_NR, SyscallSpec};
use audit_common::{config::scope_mode, kind::LossCounters};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, RingBuf},
};

use crate::{
    btf::{Btf, KERNEL_BTF},
    cgroup::{self, CgroupTarget},
    syscalls::{self, Family},
};

mod attach;
pub mod detach;
pub mod error;
pub mod freeze;
mod gaps;
pub mod lsm;
mod tracefs;

use attach::{Hooks, load_and_attach};
pub use error::{AttachError, LoadError};
pub use tracefs::TracefsError;

type Result<T> = std::result::Result<T, LoadError>;

/// The probes, built by audit-user's build.rs from the audit-ebpf crate.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/audit-ebpf"));

/// Which tasks are audited; decided in the kernel for every event.
#[derive(Clone, Debug)]
pub enum Scope {
    /// A cgroup v2 directory and everything below it.
    Cgroup(CgroupTarget),
    /// A process and all its descendants, followed in the kernel on fork.
    PidTree { root: u32 },
}

#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// Bytes waiting in the ring buffer before the kernel wakes the reader;
    /// below that the reader drains on its own timer.
    pub wakeup_bytes: u64,
    /// Syscall families to attach (process lifecycle is always attached).
    /// On the tracepoint fallback each attached syscall costs two
    /// tracepoints, and detaching a tracepoint waits for an RCU-tasks grace
    /// period (~75 ms here).
    pub families: Vec<Family>,
    /// How syscalls reach the probes; `None` = the dispatcher when this
    /// kernel allows it (see [`SyscallPath`]). Set only to measure or test
    /// the fallback.
    pub syscall_path: Option<SyscallPath>,
    /// Paths in-scope processes may not open (in LSM mode): the store and
    /// the key directory.
    pub protect: Vec<std::path::PathBuf>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            ring_buffer_bytes: 64 << 20,
            wakeup_bytes: 1 << 20,
            families: Family::ALL.to_vec(),
            syscall_path: None,
            protect: Vec::new(),
        }
    }
}

/// (program name in the object, raw tracepoint it attaches to)
const RAW_TRACEPOINTS: &[(&str, &str)] = &[
    ("sched_process_exec", "sched_process_exec"),
    ("sched_process_fork", "sched_process_fork"),
    ("sched_process_exit", "sched_process_exit"),
];

/// How syscalls reach the probes (the `start` record's `scope.syscall_path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallPath {
    /// One raw sys_enter/sys_exit program pair for every syscall, native and
    /// compat, stopping at the spec and scope checks (audit-ebpf's
    /// `dispatch`). The default: cheaper (see docs/BENCHMARKS.md). Needs the
    /// `pt_regs` offsets from BTF.
    Dispatch,
    /// The fallback: the `syscalls:sys_enter_*`/`sys_exit_*` tracepoints of
    /// each audited syscall, plus the raw pair for compat syscalls only when
    /// the kernel has the compat offsets.
    Tracepoints,
}

impl SyscallPath {
    pub fn name(self) -> &'static str {
        match self {
            SyscallPath::Dispatch => "raw_dispatch",
            SyscallPath::Tracepoints => "tracepoints",
        }
    }
}

pub struct Probes {
    ebpf: Ebpf,
    /// How syscalls are hooked (`None` when no syscall family is attached).
    pub syscall_path: Option<SyscallPath>,
    pub scope: Scope,
    /// Optional kernel fields this kernel lacks (their record fields stay 0).
    pub missing_fields: Vec<String>,
    /// Audited syscalls this kernel has no tracepoint for (not compiled in).
    pub unavailable_syscalls: Vec<&'static str>,
    /// Maps frozen against writes from userspace after setup (BPF_MAP_FREEZE).
    pub frozen_maps: Vec<String>,
    /// LSM or tracepoint mode of each family that has LSM hooks, and
    /// what is enforced.
    pub lsm: lsm::LsmSetup,
}

impl Probes {
    pub fn load(scope: Scope, opts: &ProbeOptions) -> Result<Probes> {
        let size = opts.ring_buffer_bytes;
        if !size.is_power_of_two() || size < 4096 {
            return Err(LoadError::RingBufferSize(size));
        }
        let btf = Btf::from_file(Path::new(KERNEL_BTF))?;
        let (offsets, mut missing_fields) = offsets::resolve(&btf)?;
        let sockets = gaps::socket_offsets(&btf, &mut missing_fields);
        let compat = gaps::compat_config(&btf, &mut missing_fields);
        let io_uring = gaps::io_uring_offsets(&btf, &mut missing_fields);
        // The dispatcher reads the syscall number and arguments from
        // pt_regs: without those offsets only the tracepoints can.
        let path = match (opts.syscall_path, &compat) {
            _ if opts.families.is_empty() => None,
            (Some(SyscallPath::Dispatch), None) => return Err(LoadError::NoDispatcher),
            (Some(p), _) => Some(p),
            (None, Some(_)) => Some(SyscallPath::Dispatch),
            (None, None) => Some(SyscallPath::Tracepoints),
        };
        let dispatch_native = u32::from(path == Some(SyscallPath::Dispatch));
        let (mode, level, id) = match &scope {
            Scope::Cgroup(t) => (scope_mode::CGROUP, t.level, t.id),
            Scope::PidTree { .. } => (scope_mode::PID_TREE, 0, 0),
        };
        let mut ebpf = EbpfLoader::new()
            .override_global("SCOPE_MODE", &mode, true)
            .override_global("SCOPE_CGROUP_LEVEL", &level, true)
            .override_global("SCOPE_CGROUP_ID", &id, true)
            .override_global("WAKEUP_BYTES", &opts.wakeup_bytes, true)
            .override_global("DISPATCH_NATIVE", &dispatch_native, true)
            .override_global("OFFSETS", &offsets, true)
            .override_global("SOCKET_OFFSETS", &sockets, true)
            .override_global(
                "COMPAT",
                &compat.unwrap_or(audit_common::syscall::CompatConfig::missing()),
                true,
            )
            .override_global(
                "IO_URING",
                &io_uring.unwrap_or(audit_common::event::IoUringOffsets::missing()),
                true,
            )
            .override_global("LSM_OFFSETS", &lsm::offsets(&btf), true)
            .map_max_entries("EVENTS", size)
            .load(EBPF_OBJECT)
            .map_err(|e| LoadError::Object(Box::new(e)))?;

        // Fill the pid-tree map before attaching so the root's first events count.
        if let Scope::PidTree { root } = scope {
            track(&mut ebpf, &[root])?;
        }
        let mut unavailable_syscalls = Vec::new();
        if let Some(path) = path {
            unavailable_syscalls = write_specs(&mut ebpf, &opts.families, path)?;
            // io_uring requests bypass the syscall entry: audited whenever
            // any syscall family is.
            match io_uring {
                Some(_) => gaps::attach_io_uring(&mut ebpf)?,
                None => unavailable_syscalls.push("io_uring requests"),
            }
            match compat {
                Some(_) => gaps::write_compat_specs(&mut ebpf, &opts.families)?,
                None => unavailable_syscalls.push("compat (ia32/x32) syscalls"),
            }
            if compat.is_some() {
                // Native and compat syscalls (Dispatch), or compat only.
                for (prog, tp) in [
                    ("dispatch_sys_enter", "sys_enter"),
                    ("dispatch_sys_exit", "sys_exit"),
                ] {
                    load_and_attach(&mut ebpf, prog, Hooks::Raw(&[tp]))?;
                }
            }
        }
        let detection = lsm::detect(&mut ebpf);
        let lsm = lsm::attach(&mut ebpf, &opts.families, &opts.protect, &detection)?;

        for (prog, tp) in RAW_TRACEPOINTS {
            load_and_attach(&mut ebpf, prog, Hooks::Raw(&[tp]))?;
        }

        // Every cgroup migration of an in-scope process is recorded, and a
        // move into the audited cgroup puts the mover in scope for good.
        let hooks = Hooks::Tracepoints {
            category: "cgroup",
            events: &["cgroup_attach_task"],
        };
        load_and_attach(&mut ebpf, "cgroup_attach_task", hooks)?;

        // Processes that existed before the probes were attached: add them
        // now. One forked in between is caught by the fork probe (its parent
        // is tracked) or by this walk (it exists now) — attach came first. In
        // cgroup mode a tracked process stays in scope when it leaves the
        // cgroup.
        let existing = match &scope {
            Scope::PidTree { root } => descendants(*root).map_err(LoadError::ReadProc)?,
            Scope::Cgroup(t) => cgroup::procs_below(&t.path)?,
        };
        track(&mut ebpf, &existing)?;
        let frozen = freeze::freeze_maps(&ebpf)?;
        Ok(Probes {
            frozen_maps: frozen,
            ebpf,
            syscall_path: path,
            scope,
            missing_fields,
            unavailable_syscalls,
            lsm,
        })
    }

    /// Adds what the probes are to a `start` record's scope: `probe_modes`
    /// and `enforcement` (LSM), and `syscall_path`.
    pub fn add_to_scope(&self, scope: &mut serde_json::Map<String, serde_json::Value>) {
        lsm::add_to_scope(scope, &self.lsm);
        if let Some(p) = self.syscall_path {
            scope.insert("syscall_path".into(), p.name().into());
        }
    }

    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>> {
        let m = self
            .ebpf
            .take_map("EVENTS")
            .ok_or(LoadError::Taken("ring buffer"))?;
        RingBuf::try_from(m).map_err(|source| LoadError::MapType {
            map: "EVENTS",
            source: Box::new(source),
        })
    }

    pub fn take_loss_counters(&mut self) -> Result<PerCpuArray<MapData, LossCounters>> {
        let m = self
            .ebpf
            .take_map("LOSS")
            .ok_or(LoadError::Taken("loss counters"))?;
        PerCpuArray::try_from(m).map_err(|source| LoadError::MapType {
            map: "LOSS",
            source: Box::new(source),
        })
    }
}

/// The object's map `map` as the type the loader writes it through.
fn typed_map<'a, T>(ebpf: &'a mut Ebpf, map: &'static str) -> Result<T>
where
    T: TryFrom<&'a mut Map, Error = MapError>,
{
    let m = ebpf.map_mut(map).ok_or(LoadError::MissingMap(map))?;
    T::try_from(m).map_err(|source| LoadError::MapType {
        map,
        source: Box::new(source),
    })
}

fn track(ebpf: &mut Ebpf, pids: &[u32]) -> Result<()> {
    let mut tracked: HashMap<_, u32, u8> = typed_map(ebpf, "TRACKED_PIDS")?;
    for &pid in pids {
        tracked
            .insert(pid, 1, 0)
            .map_err(|source| LoadError::MapWrite {
                what: format!("adding pid {pid} to TRACKED_PIDS"),
                source: Box::new(source),
            })?;
    }
    Ok(())
}

/// The audited syscalls of `families` this kernel has: those with a
/// `syscalls:*` tracepoint (not compiled in = no tracepoint), and the ones
/// it lacks.
fn present_syscalls(
    families: &[Family],
) -> Result<(Vec<&'static syscalls::SyscallDef>, Vec<&'static str>)> {
    tracefs::require()?;
    let (present, absent): (Vec<&'static syscalls::SyscallDef>, Vec<_>) = syscalls::TABLE
        .iter()
        .filter(|d| families.contains(&d.family))
        .partition(|d| tracefs::has_syscall_tracepoint(d.tracepoint()));
    let absent: Vec<&str> = absent.iter().map(|d| d.name).collect();
    if !absent.is_empty() {
        log::warn!("this kernel has no tracepoints for {absent:?}; those syscalls are not audited");
    }
    Ok((present, absent))
}

/// Writes the spec of every audited syscall this kernel has, and on the
/// fallback path attaches the generic enter/exit programs to their
/// tracepoints. Returns the syscalls this kernel lacks.
fn write_specs(
    ebpf: &mut Ebpf,
    families: &[Family],
    path: SyscallPath,
) -> Result<Vec<&'static str>> {
    if path == SyscallPath::Tracepoints {
        tracefs::check_syscall_layout()?;
    }
    let (present, absent) = present_syscalls(families)?;
    let mut specs: Array<_, SyscallSpec> = typed_map(ebpf, "SPECS")?;
    for def in &present {
        let nr = u32::try_from(def.nr).ok().filter(|&n| n < MAX_SYSCALL_NR);
        let nr = nr.ok_or(LoadError::SyscallNumber {
            name: def.name,
            nr: def.nr,
        })?;
        specs
            .set(nr, def.spec(), 0)
            .map_err(|source| LoadError::MapWrite {
                what: format!("writing the spec of {}", def.name),
                source: Box::new(source),
            })?;
    }
    if path == SyscallPath::Tracepoints {
        attach_syscall_tracepoints(ebpf, &present)?;
    }
    Ok(absent)
}

/// The fallback path: the generic enter/exit programs on the tracepoints of
/// every audited syscall.
fn attach_syscall_tracepoints(ebpf: &mut Ebpf, present: &[&syscalls::SyscallDef]) -> Result<()> {
    for (prog, prefix) in [("sys_enter", "sys_enter_"), ("sys_exit", "sys_exit_")] {
        let events: Vec<String> = present
            .iter()
            .map(|d| format!("{prefix}{}", d.tracepoint()))
            .collect();
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        let hooks = Hooks::Tracepoints {
            category: "syscalls",
            events: &events,
        };
        load_and_attach(ebpf, prog, hooks)?;
    }
    Ok(())
}

/// All processes below `root` right now, from /proc/*/stat parent links.
pub fn descendants(root: u32) -> std::io::Result<Vec<u32>> {
    let mut children: StdHashMap<u32, Vec<u32>> = StdHashMap::new();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit while we look: skip it, it no longer matters.
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(ppid) = parse_stat_ppid(&stat) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            out.push(c);
            stack.push(c);
        }
    }
    Ok(out)
}

/// The ppid field of /proc/PID/stat; comm (field 2) may contain spaces and
/// parentheses, so parse from the last ')'.
pub fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ppid_survives_hostile_comm() {
        assert_eq!(parse_stat_ppid("42 (a) b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_stat_ppid("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parse_stat_ppid("garbage"), None);
        assert_eq!(parse_stat_ppid("1 (x)"), None);
    }
}
