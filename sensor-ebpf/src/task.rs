//! Who is calling: thread and process id, command name and cgroup id of the current
//! task, read directly from `task_struct` where the agent found its layout, through
//! helper calls otherwise.

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_get_current_task_btf,
};
use sensor_common::TaskLayout;

/// Set by the agent before loading (`sensor_common::task::TASK_LAYOUT_GLOBAL`). In
/// read-only data, so the verifier knows each value and keeps only the path it selects.
#[unsafe(no_mangle)]
static TASK_LAYOUT: TaskLayout = TaskLayout::HELPERS;

/// The current task's identity, as a connect event reports it.
pub struct Caller {
    /// Thread group id (the process id).
    pub tgid: u32,
    /// Thread id.
    pub pid: u32,
    /// Command name, NUL padded.
    pub comm: [u8; 16],
    /// cgroup v2 id.
    pub cgroup_id: u64,
}

/// One field of `TASK_LAYOUT`; volatile, so the compiler cannot fold the default in.
#[inline(always)]
fn offset(field: &u32) -> usize {
    // SAFETY: a read of a field of a static.
    unsafe { core::ptr::read_volatile(field) as usize }
}

/// The caller. Each helper call costs 20-90 ns on a CPU with return-thunk mitigations;
/// the direct reads are plain loads.
#[inline(always)]
pub fn current() -> Caller {
    if offset(&TASK_LAYOUT.enabled) == 0 {
        let pid_tgid = bpf_get_current_pid_tgid();
        return Caller {
            tgid: (pid_tgid >> 32) as u32,
            pid: pid_tgid as u32,
            comm: bpf_get_current_comm().unwrap_or([0; 16]),
            // SAFETY: a plain helper call valid in cgroup programs.
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        };
    }
    // SAFETY: the verifier types the task pointer by BTF and checks each load's offset
    // and size against the field there; loads through it cannot fault.
    unsafe {
        let task = bpf_get_current_task_btf() as *const u8;
        let at = |base: *const u8, field: &u32| base.add(offset(field));
        let comm = at(task, &TASK_LAYOUT.task_comm);
        let mut name = [0u8; 16];
        name[..8].copy_from_slice(&core::ptr::read(comm as *const u64).to_ne_bytes());
        name[8..].copy_from_slice(&core::ptr::read(comm.add(8) as *const u64).to_ne_bytes());
        let css_set = core::ptr::read(at(task, &TASK_LAYOUT.task_cgroups) as *const *const u8);
        let cgroup =
            core::ptr::read(at(css_set, &TASK_LAYOUT.css_set_dfl_cgrp) as *const *const u8);
        let kn = core::ptr::read(at(cgroup, &TASK_LAYOUT.cgroup_kn) as *const *const u8);
        Caller {
            tgid: core::ptr::read(at(task, &TASK_LAYOUT.task_tgid) as *const u32),
            pid: core::ptr::read(at(task, &TASK_LAYOUT.task_pid) as *const u32),
            comm: name,
            cgroup_id: core::ptr::read(at(kn, &TASK_LAYOUT.kernfs_node_id) as *const u64),
        }
    }
}
