//! Where the connect programs find the caller's ids, name and cgroup inside the kernel's
//! `task_struct`, so they can read them directly instead of through helper calls.

/// Byte offsets of the fields the connect programs read, taken by the agent from the
/// running kernel's BTF and set as the kernel object's `TASK_LAYOUT` global before
/// loading. The verifier checks every read against the same BTF, so a wrong offset
/// fails the load instead of reading the wrong field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLayout {
    /// 0: read nothing directly, use the helper calls.
    pub enabled: u32,
    /// `task_struct.pid` (the thread id).
    pub task_pid: u32,
    /// `task_struct.tgid` (the process id).
    pub task_tgid: u32,
    /// `task_struct.comm` (16 bytes).
    pub task_comm: u32,
    /// `task_struct.cgroups` (a `css_set *`).
    pub task_cgroups: u32,
    /// `css_set.dfl_cgrp` (the cgroup v2 `cgroup *`).
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.kn` (a `kernfs_node *`).
    pub cgroup_kn: u32,
    /// `kernfs_node.id` (the cgroup id, a u64).
    pub kernfs_node_id: u32,
}

impl TaskLayout {
    /// No direct reads: the connect programs use helper calls.
    pub const HELPERS: Self = Self {
        enabled: 0,
        task_pid: 0,
        task_tgid: 0,
        task_comm: 0,
        task_cgroups: 0,
        css_set_dfl_cgrp: 0,
        cgroup_kn: 0,
        kernfs_node_id: 0,
    };
}

/// Name of the kernel object's global that holds the `TaskLayout`.
pub const TASK_LAYOUT_GLOBAL: &str = "TASK_LAYOUT";

const _: () = assert!(core::mem::size_of::<TaskLayout>() == 32);
