//! User namespaces: a process's uid as its namespace sees it (through
//! `/proc/PID/uid_map`) and its name from the container's own
//! `/etc/passwd`.
//!
//! `user.id` stays the host uid (what the kernel checks on the host: the
//! credential the sensors read is the global kuid); `vigil.user.ns.id` is
//! the uid inside the namespace and `vigil.user.ns.name` its name there.

/// Lines the kernel allows in a uid_map (`UID_GID_MAP_MAX_EXTENTS`).
const MAX_EXTENTS: usize = 340;

/// A parsed `uid_map`: extents of (inside start, outside start, count).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UidMap {
    extents: Vec<(u32, u32, u32)>,
}

impl UidMap {
    /// Parses uid_map text. `None` for the initial namespace's identity map
    /// (`0 0 4294967295`), which maps nothing worth reporting. Malformed
    /// lines are skipped; at most 340 extents are kept.
    pub fn parse(text: &str) -> Option<UidMap> {
        let mut extents = Vec::new();
        for line in text.lines().take(MAX_EXTENTS) {
            let mut f = line.split_whitespace().map(str::parse::<u32>);
            let (Some(Ok(inside)), Some(Ok(outside)), Some(Ok(count)), None) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            if count == 0 {
                continue;
            }
            extents.push((inside, outside, count));
        }
        if extents == [(0, 0, u32::MAX)] {
            return None;
        }
        Some(UidMap { extents })
    }

    /// The uid inside the namespace of host uid `host` (`None`: unmapped,
    /// the namespace sees the overflow uid).
    pub fn to_ns(&self, host: u32) -> Option<u32> {
        self.extents.iter().find_map(|&(inside, outside, count)| {
            let off = host.checked_sub(outside)?;
            (off < count).then(|| inside.checked_add(off)).flatten()
        })
    }
}

/// Entries kept from one container's passwd (a hostile file may have
/// millions of lines).
pub const MAX_USERS: usize = 10_000;

/// uid -> name from passwd text: bounded, malformed lines skipped, names
/// of at most 64 bytes of printable ASCII (no control characters or
/// separators that could forge output).
pub fn parse_passwd(text: &str) -> std::collections::HashMap<u32, String> {
    let mut m = std::collections::HashMap::new();
    for line in text.lines() {
        if m.len() >= MAX_USERS {
            break;
        }
        if line.starts_with('#') {
            continue;
        }
        let mut f = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Ok(uid) = uid.parse::<u32>() else {
            continue;
        };
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            continue;
        }
        m.entry(uid).or_insert_with(|| name.to_string());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_map_is_none() {
        assert_eq!(UidMap::parse("         0          0 4294967295\n"), None);
    }

    #[test]
    fn maps_host_to_namespace() {
        let m = UidMap::parse("0 1000 1\n1 100000 65536\n").unwrap();
        assert_eq!(m.to_ns(1000), Some(0));
        assert_eq!(m.to_ns(100000), Some(1));
        assert_eq!(m.to_ns(165535), Some(65536));
        assert_eq!(m.to_ns(165536), None);
        assert_eq!(m.to_ns(0), None);
        // an empty map (namespace created, nothing written yet): unmapped
        assert_eq!(UidMap::parse("").unwrap().to_ns(0), None);
    }

    #[test]
    fn hostile_uid_maps() {
        // overflowing extents, garbage, too many fields, huge inputs
        let m = UidMap::parse("4294967295 4294967295 4294967295\nx y z\n1 2\n1 2 3 4\n-1 0 1\n")
            .unwrap();
        assert_eq!(m.to_ns(4294967295), Some(4294967295));
        assert_eq!(m.to_ns(0), None);
        let big = "0 0 1\n".repeat(100_000);
        assert_eq!(UidMap::parse(&big).unwrap().extents.len(), MAX_EXTENTS);
        let m = UidMap::parse("10 4294967290 100\n").unwrap();
        assert_eq!(m.to_ns(4294967295), Some(15));
        let m = UidMap::parse("4294967290 0 100\n").unwrap();
        assert_eq!(m.to_ns(10), None, "inside start + offset overflows");
    }

    #[test]
    fn hostile_passwd() {
        let t = "root:x:0:0:root:/root:/bin/sh\n\
                 evil\u{1b}[31m:x:1:1::/:/x\n\
                 \"quote:x:2:2::/:/x\n\
                 ::3:3\n\
                 nouid:x:abc:0\n\
                 #c:x:4:4\n\
                 dup:x:0:0\n\
                 app:x:1000:1000::/app:/bin/sh";
        let m = parse_passwd(t);
        assert_eq!(m.get(&0).map(String::as_str), Some("root"));
        assert_eq!(m.get(&1000).map(String::as_str), Some("app"));
        assert_eq!(m.len(), 2, "{m:?}");
        let huge: String = (0..50_000)
            .map(|i| format!("u{i}:x:{i}:0::/:/x\n"))
            .collect();
        assert_eq!(parse_passwd(&huge).len(), MAX_USERS);
        assert!(parse_passwd("\u{0}\u{ffff}:::::").is_empty());
    }
}
