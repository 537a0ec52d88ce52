//! A streaming JSON object writer with dotted-key nesting.
//!
//! Fields are written with their full ECS names (`process.parent.pid`); the
//! writer opens and closes nested objects as the dotted prefixes change, so
//! callers must emit fields grouped by prefix (the encoder does). Strings
//! are escaped per RFC 8259; control characters become `\u00XX`, and bytes
//! that are not UTF-8 become U+FFFD, so every output line parses.

/// Builds one JSON object.
pub struct Writer {
    buf: Vec<u8>,
    /// Dotted path of the innermost open nested object ("" at the top).
    open: String,
    /// For each open nested object: length of `open` at that depth and
    /// whether it already has a member.
    levels: Vec<(usize, bool)>,
    /// Whether the outermost object already has a member.
    top_has_member: bool,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    /// Starts an object.
    pub fn new() -> Writer {
        let mut buf = Vec::with_capacity(2048);
        buf.push(b'{');
        Writer {
            buf,
            open: String::new(),
            levels: Vec::new(),
            top_has_member: false,
        }
    }

    /// Starts an object in `buf` (cleared first), reusing its allocation:
    /// an encoder that hands the buffer back after each record
    /// ([`Writer::finish`]) allocates nothing per record.
    pub fn with_buffer(mut buf: Vec<u8>) -> Writer {
        buf.clear();
        buf.push(b'{');
        Writer {
            buf,
            open: String::new(),
            levels: Vec::new(),
            top_has_member: false,
        }
    }

    /// Writes the fields `f` writes, or replays the bytes it wrote last
    /// time: when `frag` was filled for the same `key` (the caller's
    /// serialisation of everything `f` reads) and the writer is in the same
    /// nesting state as then, the cached bytes are appended and the state
    /// `f` left is restored, without running `f`. Otherwise `f` runs and
    /// `frag` remembers its output. The result is byte-identical either
    /// way, provided `f`'s output depends only on `key`.
    pub fn fragment(&mut self, frag: &mut Fragment, key: &[u8], f: impl FnOnce(&mut Writer)) {
        if frag.filled
            && frag.start_top == self.top_has_member
            && same(&frag.key, key)
            && same(frag.start_open.as_bytes(), self.open.as_bytes())
            && frag.start_levels == self.levels
        {
            self.buf.extend_from_slice(&frag.bytes);
            self.open.clone_from(&frag.end_open);
            self.levels.clone_from(&frag.end_levels);
            self.top_has_member = frag.end_top;
            return;
        }
        frag.filled = false;
        frag.key.clear();
        frag.key.extend_from_slice(key);
        frag.start_open.clone_from(&self.open);
        frag.start_levels.clone_from(&self.levels);
        frag.start_top = self.top_has_member;
        let at = self.buf.len();
        f(self);
        frag.bytes.clear();
        frag.bytes.extend_from_slice(&self.buf[at..]);
        frag.end_open.clone_from(&self.open);
        frag.end_levels.clone_from(&self.levels);
        frag.end_top = self.top_has_member;
        frag.filled = true;
    }

    fn comma(&mut self) {
        let has = match self.levels.last_mut() {
            Some((_, h)) => h,
            None => &mut self.top_has_member,
        };
        if *has {
            self.buf.push(b',');
        }
        *has = true;
    }

    /// Positions the writer inside the object for `key`'s parents (closing
    /// and opening nested objects as needed) and returns the leaf name.
    /// No allocation once the path buffer has grown.
    fn enter<'k>(&mut self, key: &'k str) -> &'k str {
        // keys are short: a plain reverse scan beats memrchr's setup
        let (parent, leaf) = match key.bytes().rposition(|b| b == b'.') {
            Some(i) => (&key[..i], &key[i + 1..]),
            None => ("", key),
        };
        // the common case: a sibling of the previous field
        if same(parent.as_bytes(), self.open.as_bytes()) {
            return leaf;
        }
        // close objects that are not ancestors of `parent`
        loop {
            let cur = self.open.as_bytes();
            let p = parent.as_bytes();
            let inside = cur.is_empty()
                || same(p, cur)
                || (p.len() > cur.len() && p[cur.len()] == b'.' && same(&p[..cur.len()], cur));
            if inside {
                break;
            }
            self.levels.pop();
            self.buf.push(b'}');
            let len = self.levels.last().map(|l| l.0).unwrap_or(0);
            self.open.truncate(len);
        }
        // open the missing ones
        let rest = parent[self.open.len()..].trim_start_matches('.');
        if !rest.is_empty() {
            for seg in rest.split('.') {
                self.comma();
                write_name(&mut self.buf, seg);
                self.buf.extend_from_slice(b":{");
                if !self.open.is_empty() {
                    self.open.push('.');
                }
                self.open.push_str(seg);
                self.levels.push((self.open.len(), false));
            }
        }
        leaf
    }

    fn key(&mut self, key: &str) {
        let leaf = self.enter(key);
        self.comma();
        write_name(&mut self.buf, leaf);
        self.buf.push(b':');
    }

    /// A string field from bytes (lossy UTF-8).
    pub fn str(&mut self, key: &str, v: impl AsRef<[u8]>) -> &mut Self {
        self.key(key);
        write_str(&mut self.buf, v.as_ref());
        self
    }

    /// An unsigned integer field.
    pub fn u64(&mut self, key: &str, v: u64) -> &mut Self {
        self.key(key);
        write_u64(&mut self.buf, v);
        self
    }

    /// A signed integer field.
    pub fn i64(&mut self, key: &str, v: i64) -> &mut Self {
        self.key(key);
        if v < 0 {
            self.buf.push(b'-');
        }
        write_u64(&mut self.buf, v.unsigned_abs());
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.key(key);
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    /// An array of strings.
    pub fn strs<I, S>(&mut self, key: &str, items: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.key(key);
        self.buf.push(b'[');
        for (i, s) in items.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            write_str(&mut self.buf, s.as_ref());
        }
        self.buf.push(b']');
        self
    }

    /// An array of objects: `f` writes each item's fields into a fresh
    /// object (dotted keys nest inside it as at the top level), in this
    /// writer's buffer, without allocating per item.
    pub fn objects<I, F>(&mut self, key: &str, items: I, mut f: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(&mut Writer, I::Item),
    {
        self.key(key);
        self.buf.push(b'[');
        let open = std::mem::take(&mut self.open);
        let levels = std::mem::take(&mut self.levels);
        let top = self.top_has_member;
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.buf.push(b'{');
            self.top_has_member = false;
            f(self, item);
            for _ in 0..self.levels.len() {
                self.buf.push(b'}');
            }
            self.levels.clear();
            self.open.clear();
            self.buf.push(b'}');
        }
        self.buf.push(b']');
        self.open = open;
        self.levels = levels;
        self.top_has_member = top;
        self
    }

    /// A pre-encoded JSON value (caller guarantees validity).
    pub fn raw(&mut self, key: &str, json: &[u8]) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(json);
        self
    }

    /// Closes every open object and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        for _ in 0..self.levels.len() {
            self.buf.push(b'}');
        }
        self.buf.push(b'}');
        self.buf
    }
}

/// What [`Writer::fragment`] remembers: the bytes one run of a field
/// group wrote, the key they were written for and the writer's nesting
/// state before and after. Reused across records (no allocation once its
/// buffers have grown).
#[derive(Default, Clone)]
pub struct Fragment {
    filled: bool,
    key: Vec<u8>,
    bytes: Vec<u8>,
    start_open: String,
    start_levels: Vec<(usize, bool)>,
    start_top: bool,
    end_open: String,
    end_levels: Vec<(usize, bool)>,
    end_top: bool,
}

/// Appends the decimal digits of `v`.
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// Length of the leading run of `s` that needs no escaping: printable
/// ASCII other than `"` and `\\`. Eight bytes at a time (a word holds a
/// byte to escape when one of its bytes is below 0x20, 0x7f or above,
/// `"` or `\\`), then byte by byte inside the first word that does.
fn plain_run(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn has_zero(v: u64) -> u64 {
        v.wrapping_sub(ONES) & !v & HIGH
    }
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        let w = u64::from_le_bytes(w);
        // below 0x20: w - 0x20 per byte borrows into the high bit
        let low = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let special = low
            | (w & HIGH)
            | has_zero(w ^ (ONES * 0x7f))
            | has_zero(w ^ (ONES * u64::from(b'"')))
            | has_zero(w ^ (ONES * u64::from(b'\\')));
        if special != 0 {
            break;
        }
        i += 8;
    }
    i + s[i..]
        .iter()
        .position(|&b| !plain(b))
        .unwrap_or(s.len() - i)
}

/// Byte equality of two short strings, inline: member names are a few
/// bytes long, and a call to `memcmp` per field cost more than the rest of
/// the name handling.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i + 8 <= a.len() {
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x.copy_from_slice(&a[i..i + 8]);
        y.copy_from_slice(&b[i..i + 8]);
        if x != y {
            return false;
        }
        i += 8;
    }
    a[i..].iter().zip(&b[i..]).all(|(x, y)| x == y)
}

/// Appends a member name: names are the encoder's constants and need no
/// escaping, which is checked a word at a time; any other name is escaped.
fn write_name(out: &mut Vec<u8>, name: &str) {
    if plain_run(name.as_bytes()) == name.len() {
        out.reserve(name.len() + 2);
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
    } else {
        write_str(out, name.as_bytes());
    }
}

/// Appends `s` as a JSON string (quoted, escaped, lossy UTF-8).
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut rest = s;
    loop {
        // copy the run of bytes that need no escaping in one go
        let run = plain_run(rest);
        out.extend_from_slice(&rest[..run]);
        rest = &rest[run..];
        let Some(&b) = rest.first() else { break };
        if b >= 0x80 {
            write_str_slow(out, rest);
            break;
        }
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
        }
        rest = &rest[1..];
    }
    out.push(b'"');
}

/// The general path: UTF-8 validation, U+FFFD for invalid bytes.
fn write_str_slow(out: &mut Vec<u8>, s: &[u8]) {
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                // C0, DEL, C1 (NEL is a line break and CSI starts a
                // terminal escape sequence) and the Unicode line and
                // paragraph separators: escaped, so a line stays one line
                // to every reader.
                c if (c as u32) < 0x20
                    || ('\u{7f}'..='\u{9f}').contains(&c)
                    || c == '\u{2028}'
                    || c == '\u{2029}' =>
                {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
                }
                c => {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replayed fragment writes the same bytes as running the fields, in
    /// any nesting state; a different key or state runs them again.
    #[test]
    fn fragment_replays_byte_identically() {
        let mut frag = Fragment::default();
        let write = |w: &mut Writer, name: &str| {
            w.u64("process.parent.pid", 1)
                .str("process.parent.name", name)
                .u64("user.id", 0)
                .str("user.name", "root");
        };
        for prefix in [0, 1, 2, 1, 1, 0] {
            for name in ["a", "a", "b\"", "a"] {
                let build = |use_frag: Option<&mut Fragment>| {
                    let mut w = Writer::with_buffer(Vec::new());
                    if prefix >= 1 {
                        w.u64("process.pid", 5);
                    }
                    if prefix >= 2 {
                        w.str("process.name", "x");
                    }
                    match use_frag {
                        Some(f) => w.fragment(f, name.as_bytes(), |w| write(w, name)),
                        None => write(&mut w, name),
                    }
                    w.u64("user.effective.id", 3).str("z", "end");
                    w.finish()
                };
                let plain = build(None);
                let cached = build(Some(&mut frag));
                assert_eq!(
                    String::from_utf8(cached).unwrap(),
                    String::from_utf8(plain).unwrap()
                );
            }
        }
    }

    #[test]
    fn nests_dotted_keys() {
        let mut w = Writer::new();
        w.str("@timestamp", "t")
            .u64("process.pid", 1)
            .u64("process.parent.pid", 0)
            .str("process.name", "x")
            .str("user.name", "root");
        let s = String::from_utf8(w.finish()).unwrap();
        assert_eq!(
            s,
            r#"{"@timestamp":"t","process":{"pid":1,"parent":{"pid":0},"name":"x"},"user":{"name":"root"}}"#
        );
    }

    #[test]
    fn reopens_and_closes_objects() {
        let mut w = Writer::new();
        w.u64("a.b.c", 1)
            .u64("a.b.d", 2)
            .u64("a.e", 3)
            .u64("f", 4)
            .i64("g.h", -5);
        assert_eq!(
            String::from_utf8(w.finish()).unwrap(),
            r#"{"a":{"b":{"c":1,"d":2},"e":3},"f":4,"g":{"h":-5}}"#
        );
        let mut out = Vec::new();
        write_u64(&mut out, u64::MAX);
        assert_eq!(out, b"18446744073709551615");
    }

    #[test]
    fn writes_arrays_of_objects_in_place() {
        let mut w = Writer::new();
        w.u64("a.x", 1)
            .objects("a.list", [1u64, 2, 3], |o, n| {
                o.u64("n", n);
                if n == 2 {
                    o.str("deep.er.s", "v").u64("deep.k", 7);
                }
            })
            .u64("a.y", 2)
            .objects("a.none", std::iter::empty::<u64>(), |_, _| {})
            .u64("z", 3);
        let s = String::from_utf8(w.finish()).unwrap();
        assert_eq!(
            s,
            r#"{"a":{"x":1,"list":[{"n":1},{"n":2,"deep":{"er":{"s":"v"},"k":7}},{"n":3}],"y":2,"none":[]},"z":3}"#
        );
        serde_json::from_str::<serde_json::Value>(&s).unwrap();
    }

    #[test]
    fn escapes_hostile_strings() {
        let mut out = Vec::new();
        write_str(&mut out, b"a\"b\\c\nd\x1b[31m\xff\xfe/e");
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u001b[31m\u{fffd}\u{fffd}/e\""
        );
        // C1 controls and the Unicode line separators are escaped too
        // (NEL and U+2028 break lines for some readers; found by the
        // hostile-input fuzzer); other non-ASCII stays as is.
        out.clear();
        write_str(
            &mut out,
            "\u{85}\u{9b}31m\u{2028}\u{2029}\u{a0}é\u{7f}".as_bytes(),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"\\u0085\\u009b31m\\u2028\\u2029\u{a0}é\\u007f\""
        );
    }

    /// The word-at-a-time scan finds the same runs as the byte-wise rule
    /// for every input, wherever the byte to escape sits in a word.
    #[test]
    fn plain_run_agrees_with_the_bytewise_rule() {
        use proptest::prelude::*;
        let bytewise = |s: &[u8]| s.iter().position(|&b| !plain(b)).unwrap_or(s.len());
        for b in 0..=255u8 {
            for pos in 0..20 {
                let mut s = vec![b'a'; 24];
                s[pos] = b;
                assert_eq!(plain_run(&s), bytewise(&s), "byte {b:#x} at {pos}");
            }
        }
        proptest!(|(s in proptest::collection::vec(any::<u8>(), 0..64))| {
            prop_assert_eq!(plain_run(&s), bytewise(&s));
        });
    }
}
