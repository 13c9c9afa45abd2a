//! The in-kernel scope filter: the one question every probe asks first.

use audit_common::config::scope_mode;
use aya_ebpf::helpers::generated::bpf_get_current_ancestor_cgroup_id;

use crate::{globals, maps::TRACKED_PIDS};

/// Is the current task audited? Costs one helper call (cgroup mode) or one map
/// lookup (pid-tree mode); tasks outside the scope stop here.
#[inline(always)]
pub fn in_scope(tgid: u32) -> bool {
    match globals::get(&globals::SCOPE_MODE) {
        scope_mode::CGROUP => {
            let level = globals::get(&globals::SCOPE_CGROUP_LEVEL) as i32;
            let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
            id == globals::get(&globals::SCOPE_CGROUP_ID)
        }
        scope_mode::PID_TREE => unsafe { TRACKED_PIDS.get(&tgid).is_some() },
        _ => false,
    }
}
