//! Path generalisation: per-pid, per-tmpfile, numeric and random path parts
//! become `*`, so `/proc/1234/stat` and `/proc/99/stat` are one entry.
//!
//! `*` in a generalised path stands for any characters within one path
//! segment (never a `/`), the meaning of `glob` in vigil rules. The rules,
//! applied to each `/`-separated segment:
//!
//! 1. a segment of only digits is `*` (`/proc/1234`, `/dev/pts/3`,
//!    `/run/user/1000`);
//! 2. a segment starting with `.#` (systemd/emacs temporary and lock files,
//!    `.#hostname3f9a0b1c2d3e4f56`) is `.#*`;
//! 3. a mktemp name (`tmp` and `.`/`-`/`_` then 6 to 12 of `[A-Za-z0-9_]`
//!    with a digit or capital, `tmp.Ab3dE9xYz1`) or a Python tempfile name
//!    (`tmp` then 8 of `[a-z0-9_]` with a digit or `_`, `tmpk3j_x9a2`) keeps
//!    `tmp` and the separator: `tmp.*`, `tmp*` (`tmpreaper` and `tmpfiles.d`
//!    stay);
//! 4. inside a segment, split at separators (`.-_:[]@+,=~`): a UUID
//!    (8-4-4-4-12 hex, `-` or `_` separated, possibly glued to a prefix as
//!    in `pod<uuid>`) is `*`; a token of 16 or more hex digits containing a
//!    digit (container ids, machine ids, hashes) is `*`; a token of 4 or more
//!    decimal digits is `*` (`app-20241125.log`, `pipe:[123456]`,
//!    `core.12345`). Shorter digit runs stay (`libc.so.6`, `python3.11`,
//!    `6.18.44`).

use std::borrow::Cow;

fn is_sep(b: u8) -> bool {
    matches!(
        b,
        b'.' | b'-' | b'_' | b':' | b'[' | b']' | b'@' | b'+' | b',' | b'=' | b'~'
    )
}

/// Generalises a path (or any `/`-separated name) by the rules above.
/// Returns the input unchanged (borrowed, no allocation) when no rule applies,
/// which is the common case on the hot path.
pub fn generalise_path(path: &[u8]) -> Cow<'_, [u8]> {
    let mut out = Vec::new();
    if generalise_into(path, &mut out) {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(path)
    }
}

/// Like [`generalise_path`] into a reusable buffer: true if the path changed
/// (then `out` holds the generalised form), false if not (`out` is then
/// unspecified). No allocation once `out` has grown.
pub fn generalise_into(path: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    // Fast path: every rule needs a digit, `.#` or `tmp`.
    if !path.iter().any(u8::is_ascii_digit) && !contains(path, b"/.#") && !contains(path, b"tmp") {
        return false;
    }
    let mut changed = false;
    for (i, seg) in path.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        changed |= generalise_segment(seg, out);
    }
    changed
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

/// Appends the generalised segment to `out`; true if it differs.
fn generalise_segment(seg: &[u8], out: &mut Vec<u8>) -> bool {
    if seg.is_empty() {
        return false;
    }
    if seg.iter().all(u8::is_ascii_digit) {
        out.push(b'*');
        return true;
    }
    if seg.starts_with(b".#") && seg.len() > 2 {
        out.extend_from_slice(b".#*");
        return true;
    }
    if let Some(rest) = seg.strip_prefix(b"tmp") {
        let (sep, tail) = match rest.first() {
            Some(&c @ (b'.' | b'-' | b'_')) => (Some(c), &rest[1..]),
            _ => (None, rest),
        };
        let charset = tail.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
        // Random-looking: a word like `tmpreaper` must stay a word.
        let random = match sep {
            // mktemp: 6+ X's of [A-Za-z0-9]
            Some(_) => {
                (6..=12).contains(&tail.len())
                    && tail
                        .iter()
                        .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            }
            // Python tempfile: 8 of [a-z0-9_]
            None => tail.len() == 8 && tail.iter().any(|&b| b.is_ascii_digit() || b == b'_'),
        };
        if charset && random {
            out.extend_from_slice(b"tmp");
            if let Some(c) = sep {
                out.push(c);
            }
            out.push(b'*');
            return true;
        }
    }
    if !seg.iter().any(u8::is_ascii_digit) {
        out.extend_from_slice(seg);
        return false;
    }
    // Tokenise: (start, end) of maximal runs between separators, on the
    // stack; past 64 tokens the rest of the segment is kept as one token.
    let mut toks = [(0usize, 0usize); 64];
    let mut nt = 0;
    let mut start = 0;
    for (i, &b) in seg.iter().enumerate() {
        if is_sep(b) && nt < toks.len() - 1 {
            toks[nt] = (start, i);
            nt += 1;
            start = i + 1;
        }
    }
    toks[nt] = (start, seg.len());
    nt += 1;
    let toks = &toks[..nt];
    let hex = |t: &[u8]| !t.is_empty() && t.iter().all(u8::is_ascii_hexdigit);
    let mut changed = false;
    let mut pos = 0; // bytes of seg copied so far
    let mut k = 0;
    while k < toks.len() {
        let (s, e) = toks[k];
        // UUID: five tokens 8-4-4-4-12 joined by '-'.
        if k + 4 < toks.len() {
            // The first part may carry a prefix (`pod<uuid>` in kubepods).
            let lens = [8, 4, 4, 4, 12];
            let is_uuid = (0..5).all(|j| {
                let (a, b) = toks[k + j];
                let a = if j == 0 {
                    b.saturating_sub(8).max(a)
                } else {
                    a
                };
                b - a == lens[j] && hex(&seg[a..b]) && (j == 4 || matches!(seg[b], b'-' | b'_'))
            });
            if is_uuid {
                out.extend_from_slice(&seg[pos..e - 8]);
                out.push(b'*');
                pos = toks[k + 4].1;
                changed = true;
                k += 5;
                continue;
            }
        }
        let t = &seg[s..e];
        let digits = t.len() >= 4 && t.iter().all(u8::is_ascii_digit);
        let long_hex = t.len() >= 16 && hex(t) && t.iter().any(u8::is_ascii_digit);
        if digits || long_hex {
            out.extend_from_slice(&seg[pos..s]);
            out.push(b'*');
            pos = e;
            changed = true;
        }
        k += 1;
    }
    out.extend_from_slice(&seg[pos..]);
    changed
}

/// Escapes bytes for text (YAML, rules, anomaly records): valid UTF-8 passes
/// through except `\` (written `\\`) and control characters; every other
/// byte is written `\xNN`. [`unescape`] reverses it exactly.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => {
                    // byte by byte, so unescape gives back the UTF-8 bytes
                    let mut b = [0u8; 4];
                    for x in c.encode_utf8(&mut b).bytes() {
                        s.push_str(&format!("\\x{x:02x}"));
                    }
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// Reverses [`escape`]; `None` on a malformed escape.
pub fn unescape(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1)? {
            b'\\' => {
                out.push(b'\\');
                i += 2;
            }
            b'x' => {
                let h = s.get(i + 2..i + 4)?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input path -> generalised form. Each row is one rule or one thing a
    /// rule must leave alone.
    const CASES: &[(&str, &str)] = &[
        // per-pid /proc entries
        ("/proc/1234/stat", "/proc/*/stat"),
        ("/proc/1/task/567/status", "/proc/*/task/*/status"),
        ("/proc/self/fd/12", "/proc/self/fd/*"),
        ("/proc/self/status", "/proc/self/status"),
        (
            "/proc/sys/net/ipv4/ip_forward",
            "/proc/sys/net/ipv4/ip_forward",
        ),
        // numeric segments
        ("/dev/pts/3", "/dev/pts/*"),
        ("/run/user/1000/bus", "/run/user/*/bus"),
        // mktemp / tempfile names
        ("/tmp/tmp.Ab3dE9xYz1", "/tmp/tmp.*"),
        ("/tmp/tmp.Ab3dE9xYz1/run.sh", "/tmp/tmp.*/run.sh"),
        ("/tmp/tmpk3j_x9a2", "/tmp/tmp*"),
        ("/var/tmp/tmp-a1B2c3", "/var/tmp/tmp-*"),
        ("/usr/sbin/tmpreaper", "/usr/sbin/tmpreaper"),
        ("/var/tmp/tmp.abcdef", "/var/tmp/tmp.abcdef"),
        ("/usr/lib/tmpfiles.d/x.conf", "/usr/lib/tmpfiles.d/x.conf"),
        ("/tmp/tmpfs", "/tmp/tmpfs"),
        // systemd/emacs `.#` temporary and lock files
        ("/etc/.#hostname3f9a0b1c2d3e4f56", "/etc/.#*"),
        ("/home/u/src/.#main.c", "/home/u/src/.#*"),
        // hex ids and uuids
        (
            "/var/lib/docker/containers/4f9c2a1b7e3d4c5b6a7980112233445566778899aabbccddeeff001122334455/config.v2.json",
            "/var/lib/docker/containers/*/config.v2.json",
        ),
        ("/etc/machine-id", "/etc/machine-id"),
        (
            "/run/systemd/sessions/550e8400-e29b-41d4-a716-446655440000.ref",
            "/run/systemd/sessions/*.ref",
        ),
        (
            "/var/cache/x/deadbeefcafe0123456789ab.bin",
            "/var/cache/x/*.bin",
        ),
        ("/usr/share/deadbeefcafebabe", "/usr/share/deadbeefcafebabe"),
        // digit runs of 4 or more inside a name
        ("/var/log/app-20241125.log", "/var/log/app-*.log"),
        ("/var/run/worker.12345.pid", "/var/run/worker.*.pid"),
        ("pipe:[123456]", "pipe:[*]"),
        ("/core.4242", "/core.*"),
        // short digit runs are versions, not ids
        (
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ),
        ("/usr/lib/python3.11/os.py", "/usr/lib/python3.11/os.py"),
        (
            "/lib/modules/6.18.44/modules.dep",
            "/lib/modules/6.18.44/modules.dep",
        ),
        ("/etc/nginx/nginx.conf", "/etc/nginx/nginx.conf"),
        ("/", "/"),
        ("", ""),
    ];

    #[test]
    fn generalisation_table() {
        for (input, want) in CASES {
            let got = generalise_path(input.as_bytes());
            assert_eq!(
                String::from_utf8_lossy(&got),
                *want,
                "generalise_path({input:?})"
            );
            // Generalising twice changes nothing more.
            let again = generalise_path(&got);
            assert_eq!(again, got, "idempotent on {input:?}");
        }
    }

    #[test]
    fn unchanged_paths_are_borrowed() {
        assert!(matches!(
            generalise_path(b"/etc/nginx/nginx.conf"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            generalise_path(b"/usr/lib/libc.so.6"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn non_utf8_paths() {
        let p = b"/tmp/\xff\xfe/1234";
        assert_eq!(&*generalise_path(p), b"/tmp/\xff\xfe/*");
    }

    #[test]
    fn escape_round_trip() {
        let cases: &[&[u8]] = &[
            b"/etc/passwd",
            b"/tmp/\xff\x00x",
            b"back\\slash",
            "/srv/caf\u{e9}/\u{1F600}".as_bytes(),
            b"\n\t",
            "\u{80}\u{9f}".as_bytes(),
        ];
        for c in cases {
            let e = escape(c);
            assert!(!e.chars().any(char::is_control), "{e:?}");
            assert_eq!(unescape(&e).as_deref(), Some(*c), "{e:?}");
        }
        assert_eq!(escape(b"/tmp/\xff"), "/tmp/\\xff");
        assert_eq!(unescape("\\q"), None);
        assert_eq!(unescape("\\x4"), None);
    }
}
