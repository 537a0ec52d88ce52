//! Profile keys: which profile(s) an observation belongs to.
//!
//! | subject | profile key |
//! | --- | --- |
//! | host executable | `exe:<path>@<identity>` (`@` part absent when the identity is unknown) |
//! | container, keyed by image | `ctr:img=<image>` and sub-profile `ctr:img=<image>/exe:<path>` |
//! | container, keyed by id | `ctr:<id>` and sub-profile `ctr:<id>/exe:<path>` |
//! | container, neither known | `ctr:cg=<generalised cgroup path>` and `.../exe:<path>` |
//!
//! `<identity>` is `i<dev>:<ino>:<size>:<mtime_ns>` or `sha256:<hex>`, so a
//! replaced binary starts a new profile. Inside a container the image defines
//! the binaries, so sub-profiles carry no identity.
//!
//! Container ids are per container instance: an id-keyed baseline never
//! matches the next container of the same service. Keying by image (the
//! default, [`ContainerKeying::Image`], when the engine supplies the image)
//! makes baselines reusable across restarts and hosts; without an image the
//! id is used, and without an id the cgroup path with its ids generalised
//! (so `/kubepods/burstable/pod<uid>/<id>` becomes one pattern).

use crate::generalise::generalise_path;
use crate::observation::{ExeIdentity, Subject};

/// Which container attribute keys container profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerKeying {
    /// Image when known, else id, else cgroup path (reusable baselines).
    #[default]
    Image,
    /// Id when known, else cgroup path (one baseline per container instance).
    Id,
}

/// The profiles one subject feeds: a host executable has one; a process in
/// a container feeds the container's profile and its per-executable
/// sub-profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileKeys {
    /// `exe:...` on the host, `ctr:...` in a container.
    pub primary: Vec<u8>,
    /// `ctr:.../exe:<path>` in a container.
    pub sub: Option<Vec<u8>>,
}

/// Appends `n` in decimal (no `fmt` machinery: this runs per event).
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Writes the identity suffix (`@...`) of a host executable key.
fn push_identity(out: &mut Vec<u8>, id: &ExeIdentity) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match id {
        ExeIdentity::Unknown => {}
        ExeIdentity::Inode {
            dev,
            ino,
            size,
            mtime_ns,
        } => {
            out.extend_from_slice(b"@i");
            push_u64(out, *dev);
            out.push(b':');
            push_u64(out, *ino);
            out.push(b':');
            push_u64(out, *size);
            out.push(b':');
            push_i64(out, *mtime_ns);
        }
        ExeIdentity::Sha256(h) => {
            out.extend_from_slice(b"@sha256:");
            for b in h {
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
        }
    }
}

/// Writes the container part (`ctr:...`) of a key; false if the subject
/// is not in a container.
pub(crate) fn push_container(out: &mut Vec<u8>, s: &Subject<'_>, keying: ContainerKeying) -> bool {
    let Some(c) = s.container else {
        return false;
    };
    match (keying, c.image, c.id, c.cgroup_path) {
        (ContainerKeying::Image, Some(img), _, _) => {
            out.extend_from_slice(b"ctr:img=");
            out.extend_from_slice(img.as_bytes());
        }
        (_, _, Some(id), _) => {
            out.extend_from_slice(b"ctr:");
            out.extend_from_slice(id.as_bytes());
        }
        (_, _, _, Some(cg)) => {
            out.extend_from_slice(b"ctr:cg=");
            out.extend_from_slice(&generalise_path(cg));
        }
        _ => return false,
    }
    true
}

/// Writes the primary key of `s` into `out` (cleared first).
pub(crate) fn primary_into(out: &mut Vec<u8>, s: &Subject<'_>, keying: ContainerKeying) {
    out.clear();
    if !push_container(out, s, keying) {
        out.extend_from_slice(b"exe:");
        out.extend_from_slice(s.executable);
        push_identity(out, &s.identity);
    }
}

/// Writes the sub-profile key of `s` into `out` (cleared first); false on
/// the host, where there is none.
pub(crate) fn sub_into(out: &mut Vec<u8>, s: &Subject<'_>, keying: ContainerKeying) -> bool {
    out.clear();
    if !push_container(out, s, keying) {
        return false;
    }
    out.extend_from_slice(b"/exe:");
    out.extend_from_slice(s.executable);
    true
}

/// The profile keys of a subject (the documented derivation the engine, the
/// CLI and the BPF syscall-map setup share).
pub fn profile_keys(s: &Subject<'_>, keying: ContainerKeying) -> ProfileKeys {
    let mut primary = Vec::new();
    primary_into(&mut primary, s, keying);
    let mut sub = Vec::new();
    let sub = sub_into(&mut sub, s, keying).then_some(sub);
    ProfileKeys { primary, sub }
}

/// What a profile key names, parsed back (for exports that must say which
/// processes a profile covers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyParts {
    /// Executable path, if the key names one.
    pub exe: Option<Vec<u8>>,
    /// Container selector: (`image`|`id`|`cgroup`, value).
    pub container: Option<(&'static str, Vec<u8>)>,
}

/// Splits a profile key into its parts.
pub(crate) fn parse_key(key: &[u8]) -> KeyParts {
    fn exe_of(rest: &[u8]) -> Vec<u8> {
        // host keys carry `@identity` after the path; paths may contain `@`,
        // so cut at the last `@` followed by a known identity prefix.
        if let Some(at) = rest.iter().rposition(|&b| b == b'@') {
            let id = &rest[at + 1..];
            if id.starts_with(b"sha256:") || (id.first() == Some(&b'i') && id.contains(&b':')) {
                return rest[..at].to_vec();
            }
        }
        rest.to_vec()
    }
    if let Some(rest) = key.strip_prefix(b"exe:") {
        return KeyParts {
            exe: Some(exe_of(rest)),
            container: None,
        };
    }
    if let Some(rest) = key.strip_prefix(b"ctr:") {
        let (ctr, exe) = match find(rest, b"/exe:") {
            Some(i) => (&rest[..i], Some(rest[i + 5..].to_vec())),
            None => (rest, None),
        };
        let container = if let Some(img) = ctr.strip_prefix(b"img=") {
            ("image", img.to_vec())
        } else if let Some(cg) = ctr.strip_prefix(b"cg=") {
            ("cgroup", cg.to_vec())
        } else {
            ("id", ctr.to_vec())
        };
        return KeyParts {
            exe,
            container: Some(container),
        };
    }
    KeyParts {
        exe: None,
        container: None,
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::ContainerRef;

    fn subj<'a>(exe: &'a [u8], c: Option<ContainerRef<'a>>) -> Subject<'a> {
        Subject {
            executable: exe,
            identity: ExeIdentity::Inode {
                dev: 2049,
                ino: 77,
                size: 1000,
                mtime_ns: 5,
            },
            container: c,
        }
    }

    #[test]
    fn key_table() {
        let id = "4f9c2a1b7e3d4c5b6a7980112233445566778899aabbccddeeff001122334455";
        let full = ContainerRef {
            id: Some(id),
            image: Some("docker.io/library/nginx:1.27"),
            cgroup_path: Some(b"/system.slice/docker-x.scope"),
        };
        let id_only = ContainerRef {
            id: Some(id),
            ..Default::default()
        };
        let cg_only = ContainerRef {
            cgroup_path: Some(b"/kubepods/burstable/pod550e8400-e29b-41d4-a716-446655440000/c1"),
            ..Default::default()
        };
        let cases: Vec<(Subject<'_>, ContainerKeying, &str, Option<String>)> = vec![
            (
                subj(b"/usr/sbin/nginx", None),
                ContainerKeying::Image,
                "exe:/usr/sbin/nginx@i2049:77:1000:5",
                None,
            ),
            (
                subj(b"/usr/sbin/nginx", Some(full)),
                ContainerKeying::Image,
                "ctr:img=docker.io/library/nginx:1.27",
                Some("ctr:img=docker.io/library/nginx:1.27/exe:/usr/sbin/nginx".into()),
            ),
            (
                subj(b"/usr/sbin/nginx", Some(full)),
                ContainerKeying::Id,
                &*Box::leak(format!("ctr:{id}").into_boxed_str()),
                Some(format!("ctr:{id}/exe:/usr/sbin/nginx")),
            ),
            (
                subj(b"/bin/sh", Some(id_only)),
                ContainerKeying::Image,
                &*Box::leak(format!("ctr:{id}").into_boxed_str()),
                Some(format!("ctr:{id}/exe:/bin/sh")),
            ),
            (
                subj(b"/bin/sh", Some(cg_only)),
                ContainerKeying::Image,
                "ctr:cg=/kubepods/burstable/pod*/c1",
                Some("ctr:cg=/kubepods/burstable/pod*/c1/exe:/bin/sh".into()),
            ),
        ];
        for (s, keying, primary, sub) in cases {
            let k = profile_keys(&s, keying);
            assert_eq!(String::from_utf8_lossy(&k.primary), primary);
            assert_eq!(k.sub.map(|v| String::from_utf8(v).unwrap()), sub);
        }
        let mut s = subj(b"/bin/x", None);
        s.identity = ExeIdentity::Inode {
            dev: 0,
            ino: u64::MAX,
            size: 10,
            mtime_ns: -5,
        };
        assert_eq!(
            profile_keys(&s, ContainerKeying::Image).primary,
            format!("exe:/bin/x@i0:{}:10:-5", u64::MAX).as_bytes()
        );
        s.identity = ExeIdentity::Unknown;
        assert_eq!(
            profile_keys(&s, ContainerKeying::Image).primary,
            b"exe:/bin/x"
        );
        s.identity = ExeIdentity::Sha256([0xab; 32]);
        assert_eq!(
            profile_keys(&s, ContainerKeying::Image).primary,
            format!("exe:/bin/x@sha256:{}", "ab".repeat(32)).as_bytes()
        );
    }

    #[test]
    fn keys_parse_back() {
        let p = parse_key(b"exe:/usr/sbin/nginx@i1:2:3:4");
        assert_eq!(p.exe.as_deref(), Some(&b"/usr/sbin/nginx"[..]));
        let p = parse_key(b"exe:/srv/a@b/run");
        assert_eq!(p.exe.as_deref(), Some(&b"/srv/a@b/run"[..]));
        let p = parse_key(b"ctr:img=nginx:1/exe:/bin/sh");
        assert_eq!(p.exe.as_deref(), Some(&b"/bin/sh"[..]));
        assert_eq!(p.container, Some(("image", b"nginx:1".to_vec())));
        let p = parse_key(b"ctr:abc");
        assert_eq!((p.exe, p.container), (None, Some(("id", b"abc".to_vec()))));
    }
}
