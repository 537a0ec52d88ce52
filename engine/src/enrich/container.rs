//! Container identity from cgroup paths.
//!
//! Runtimes name a container's cgroup after its id: docker
//! (`/docker/<id>`, `docker-<id>.scope`), podman (`libpod-<id>`,
//! `/libpod_parent/libpod-<id>`), containerd/CRI (`cri-containerd-<id>.scope`,
//! `/kubepods/.../<id>`), CRI-O (`crio-<id>.scope`), plain runc (any
//! segment that is a 64-hex id). Conmon's own cgroup (`libpod-conmon-<id>`)
//! is the monitor, not the container.

/// A container as derived from a cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Full container id (64 hex digits).
    pub id: String,
    /// Runtime guessed from the path (`docker`, `podman`, `containerd`,
    /// `cri-o`, `kubernetes`, `runc`).
    pub runtime: &'static str,
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Extracts the container from one cgroup path.
pub fn from_cgroup_path(path: &str) -> Option<Container> {
    let k8s = path.contains("kubepods");
    // innermost segment wins: nested runtimes put the container last
    for seg in path.rsplit('/') {
        let seg = seg.strip_suffix(".scope").unwrap_or(seg);
        if seg.starts_with("libpod-conmon-") {
            return None;
        }
        let (prefix, rest) = match seg.rsplit_once('-') {
            Some((p, r)) if is_id(r) => (p, r),
            _ if is_id(seg) => ("", seg),
            _ => continue,
        };
        let runtime = match prefix {
            "libpod" => "podman",
            "docker" => "docker",
            "cri-containerd" => "containerd",
            "crio" => "cri-o",
            _ if k8s => "kubernetes",
            _ if path.contains("/docker/") => "docker",
            _ if path.contains("libpod") => "podman",
            _ => "runc",
        };
        return Some(Container {
            id: rest.to_string(),
            runtime,
        });
    }
    None
}

/// Extracts the container from the contents of `/proc/PID/cgroup` (all
/// hierarchies, v1 and v2; the first that names a container wins, v2 first).
pub fn from_proc_cgroup(text: &str) -> Option<Container> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_by_key(|l| !l.starts_with("0::"));
    lines
        .iter()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .find_map(from_cgroup_path)
}

/// The cgroup v2 path from `/proc/PID/cgroup` (the `0::` line).
pub fn v2_path(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f9c2a1b7e3d4c5b6a7980112233445566778899aabbccddeeff001122334455";

    #[test]
    fn runtimes() {
        let cases = [
            (format!("/docker/{ID}"), "docker"),
            (format!("/system.slice/docker-{ID}.scope"), "docker"),
            (format!("/libpod_parent/libpod-{ID}"), "podman"),
            (
                format!("/machine.slice/libpod-{ID}.scope/container"),
                "podman",
            ),
            (
                format!("/system.slice/cri-containerd-{ID}.scope"),
                "containerd",
            ),
            (format!("/kubepods/besteffort/pod1234/{ID}"), "kubernetes"),
            (
                format!("/kubepods.slice/kubepods-pod12.slice/crio-{ID}.scope"),
                "cri-o",
            ),
            (format!("/mygroup/{ID}"), "runc"),
        ];
        for (path, rt) in cases {
            let c = from_cgroup_path(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!((c.id.as_str(), c.runtime), (ID, rt), "{path}");
        }
    }

    #[test]
    fn non_containers() {
        assert_eq!(from_cgroup_path("/"), None);
        assert_eq!(
            from_cgroup_path("/user.slice/user-0.slice/session-3.scope"),
            None
        );
        assert_eq!(
            from_cgroup_path(&format!("/libpod_parent/libpod-conmon-{ID}")),
            None
        );
        assert_eq!(from_cgroup_path("/docker/abc"), None);
    }

    #[test]
    fn proc_cgroup_v1_lines() {
        let text = format!(
            "12:pids:/libpod_parent/libpod-{ID}\n4:memory:/libpod_parent/libpod-{ID}\n1:name=systemd:/\n0::/\n"
        );
        assert_eq!(from_proc_cgroup(&text).unwrap().runtime, "podman");
        assert_eq!(v2_path(&text), Some("/"));
    }
}
