//! The in-kernel scope filter: the one question every probe asks first.

use audit_common::config::scope_mode;
use aya_ebpf::helpers::generated::bpf_get_current_ancestor_cgroup_id;

use crate::{emit::count_loss, globals, maps::TRACKED_PIDS};

/// Is the current task audited? Pid-tree mode: one map lookup. Cgroup mode:
/// the task is below the audited cgroup, OR it was once (it is tracked):
/// a process that writes itself into another cgroup's cgroup.procs does not
/// leave the scope. A task seen in the cgroup is tracked from then on.
#[inline(always)]
pub fn in_scope(tgid: u32) -> bool {
    match globals::get(&globals::SCOPE_MODE) {
        scope_mode::CGROUP => {
            if in_scope_cgroup() {
                track(tgid);
                true
            } else {
                is_tracked(tgid)
            }
        }
        scope_mode::PID_TREE => is_tracked(tgid),
        _ => false,
    }
}

/// Is the current task below the audited cgroup right now (cgroup mode)?
#[inline(always)]
pub fn in_scope_cgroup() -> bool {
    let level = globals::get(&globals::SCOPE_CGROUP_LEVEL) as i32;
    let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
    id == globals::get(&globals::SCOPE_CGROUP_ID)
}

#[inline(always)]
pub fn is_tracked(tgid: u32) -> bool {
    unsafe { TRACKED_PIDS.get(&tgid).is_some() }
}

/// Adds `tgid` to the scope for good (until it exits); a full map is loss.
#[inline(always)]
pub fn track(tgid: u32) {
    if !is_tracked(tgid) && TRACKED_PIDS.insert(&tgid, &1, 0).is_err() {
        count_loss(audit_common::kind::loss_slot::SCOPE_MAP_FULL);
    }
}
