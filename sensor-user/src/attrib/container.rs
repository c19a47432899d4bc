//! Container and Kubernetes pod identity from a cgroup v2 path.
//!
//! Shapes handled (kubelet cgroup driver × runtime):
//! - cgroupfs: `/kubepods/burstable/pod<uid>/<64-hex id>` (containerd, Docker) and
//!   `/kubepods/besteffort/pod<uid>/crio-<id>` (CRI-O)
//! - systemd: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice/
//!   cri-containerd-<id>.scope` (containerd) or `crio-<id>.scope` (CRI-O)
//! - plain Docker under systemd: `/system.slice/docker-<id>.scope`

/// What the cgroup path says about the process's container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    /// Runtime's container id (64 hex digits).
    pub id: Option<String>,
    /// Kubernetes pod UID.
    pub pod_uid: Option<String>,
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `pod<uid>` in a path component, with systemd's `_` turned back into `-`.
fn pod_uid(component: &str) -> Option<String> {
    let at = component.rfind("pod")?;
    let rest = component[at + 3..].trim_end_matches(".slice");
    let uid = rest.replace('_', "-");
    let shape = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    shape.then_some(uid)
}

fn container_id(component: &str) -> Option<String> {
    let c = component.trim_end_matches(".scope");
    // conmon is CRI-O's monitor process, not the container.
    if c.starts_with("crio-conmon-") {
        return None;
    }
    let id = [
        "cri-containerd-",
        "crio-",
        "docker-",
        "containerd-",
        "libpod-",
    ]
    .iter()
    .find_map(|p| c.strip_prefix(p))
    .unwrap_or(c);
    is_hex_id(id).then(|| id.to_string())
}

/// Reads container and pod identity from a cgroup path such as `/proc/PID/cgroup` shows.
pub fn from_cgroup_path(path: &str) -> Container {
    let mut out = Container::default();
    for component in path.split('/') {
        if let Some(uid) = pod_uid(component) {
            out.pod_uid = Some(uid);
        }
        if let Some(id) = container_id(component) {
            out.id = Some(id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1e9a7c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
    const UID: &str = "7c6f1a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn kubelet_cgroupfs_driver() {
        let c = from_cgroup_path(&format!("/kubepods/burstable/pod{UID}/{ID}"));
        assert_eq!(
            c,
            Container {
                id: Some(ID.into()),
                pod_uid: Some(UID.into())
            }
        );
        let c = from_cgroup_path(&format!("/kubepods/pod{UID}/{ID}"));
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
        let c = from_cgroup_path(&format!("/kubepods/besteffort/pod{UID}/crio-{ID}"));
        assert_eq!(c.id.as_deref(), Some(ID));
    }

    #[test]
    fn kubelet_systemd_driver_containerd_and_crio() {
        let u = UID.replace('-', "_");
        let base =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice");
        let c = from_cgroup_path(&format!("{base}/cri-containerd-{ID}.scope"));
        assert_eq!(
            c,
            Container {
                id: Some(ID.into()),
                pod_uid: Some(UID.into())
            }
        );
        let c = from_cgroup_path(&format!("{base}/crio-{ID}.scope"));
        assert_eq!(c.id.as_deref(), Some(ID));
        let c = from_cgroup_path(&format!(
            "/kubepods.slice/kubepods-pod{u}.slice/crio-{ID}.scope"
        ));
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
        // CRI-O's monitor is not the container.
        let c = from_cgroup_path(&format!("{base}/crio-conmon-{ID}.scope"));
        assert_eq!(c.id, None);
    }

    #[test]
    fn docker_and_host_processes() {
        let c = from_cgroup_path(&format!("/system.slice/docker-{ID}.scope"));
        assert_eq!(
            c,
            Container {
                id: Some(ID.into()),
                pod_uid: None
            }
        );
        assert_eq!(
            from_cgroup_path("/system.slice/postfix.service"),
            Container::default()
        );
        assert_eq!(
            from_cgroup_path("/user.slice/user-0.slice/session-3.scope"),
            Container::default()
        );
        assert_eq!(from_cgroup_path("/"), Container::default());
    }
}
