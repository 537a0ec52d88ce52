//! A streaming JSON object writer with dotted-key nesting.
//!
//! Fields are written with their full ECS names (`process.parent.pid`); the
//! writer opens and closes nested objects as the dotted prefixes change, so
//! callers must emit fields grouped by prefix (the encoder does). Strings
//! are escaped per RFC 8259; control characters become `\u00XX`, and bytes
//! that are not UTF-8 become U+FFFD, so every output line parses.

/// The allocations of a [`Writer`]'s nesting state (the open object's
/// path and the open levels), kept between records by
/// [`Writer::appending`] and [`Writer::finish_into`].
#[derive(Default)]
pub struct WriterScratch {
    open: String,
    levels: Vec<(usize, bool)>,
}

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

    /// Starts an object at the end of `buf` (what it holds is kept), with
    /// the nesting state's allocations taken from `scratch`: an encoder
    /// can write a record straight into an output buffer that already
    /// holds earlier records, and hand the scratch back after
    /// [`Writer::finish_into`], allocating nothing per record. The bytes
    /// appended are the ones [`Writer::with_buffer`] would write.
    pub fn appending(mut buf: Vec<u8>, scratch: &mut WriterScratch) -> Writer {
        buf.push(b'{');
        let mut open = std::mem::take(&mut scratch.open);
        open.clear();
        let mut levels = std::mem::take(&mut scratch.levels);
        levels.clear();
        Writer {
            buf,
            open,
            levels,
            top_has_member: false,
        }
    }

    /// Closes every open object, returns the buffer and keeps the nesting
    /// state's allocations in `scratch` for the next [`Writer::appending`].
    pub fn finish_into(mut self, scratch: &mut WriterScratch) -> Vec<u8> {
        for _ in 0..self.levels.len() {
            self.buf.push(b'}');
        }
        self.buf.push(b'}');
        scratch.open = std::mem::take(&mut self.open);
        scratch.levels = std::mem::take(&mut self.levels);
        std::mem::take(&mut self.buf)
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
        frag.generation = frag.generation.wrapping_add(1);
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

    /// Appends the bytes `frag` holds and restores the nesting state it
    /// ended in, without comparing its key, when the writer is in the
    /// state `frag` started from; returns whether it did. For a caller
    /// that knows by other means (an identity it checked, and
    /// [`Fragment::generation`] unchanged since) that the key is the one
    /// `frag` was filled for.
    pub fn replay(&mut self, frag: &Fragment) -> bool {
        if !(frag.filled
            && frag.start_top == self.top_has_member
            && same(frag.start_open.as_bytes(), self.open.as_bytes())
            && frag.start_levels == self.levels)
        {
            return false;
        }
        self.buf.extend_from_slice(&frag.bytes);
        if !same(self.open.as_bytes(), frag.end_open.as_bytes()) {
            self.open.clone_from(&frag.end_open);
        }
        if self.levels != frag.end_levels {
            self.levels.clone_from(&frag.end_levels);
        }
        self.top_has_member = frag.end_top;
        true
    }

    /// Bytes in the buffer so far (what it held before the object
    /// included): where a caller may later cut out what was written
    /// between two points.
    pub fn position(&self) -> usize {
        self.buf.len()
    }

    /// How many nested objects are open (0 at the top level).
    pub fn depth(&self) -> usize {
        self.levels.len()
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
        // open the missing ones: the segments of what follows the open
        // path (leading dots skipped), split at every dot as `str::split`
        // does, scanned by hand (the generic splitter's set-up cost more
        // than the rest of a field)
        let p = parent.as_bytes();
        let mut start = self.open.len();
        while start < p.len() && p[start] == b'.' {
            start += 1;
        }
        if start < p.len() {
            loop {
                let end = p[start..]
                    .iter()
                    .position(|&b| b == b'.')
                    .map_or(p.len(), |i| start + i);
                let seg = &parent[start..end];
                self.comma();
                write_name(&mut self.buf, seg);
                self.buf.extend_from_slice(b":{");
                if !self.open.is_empty() {
                    self.open.push('.');
                }
                self.open.push_str(seg);
                self.levels.push((self.open.len(), false));
                if end == p.len() {
                    break;
                }
                start = end + 1;
            }
        }
        leaf
    }

    /// [`Writer::enter`] for a prepared name, whose segment ends are
    /// known: keeps the open objects that are its ancestors (compared once,
    /// at the deepest candidate), closes the others and opens the rest.
    fn enter_key(&mut self, k: &Key) {
        let full = k.full.as_bytes();
        let dots = &k.dots[..usize::from(k.ndots)];
        // open objects whose path ends where one of the key's does
        let mut common = 0;
        while common < self.levels.len()
            && common < dots.len()
            && self.levels[common].0 == usize::from(dots[common])
        {
            common += 1;
        }
        // keep the deepest of them whose path is the key's prefix
        while common > 0 {
            let len = usize::from(dots[common - 1]);
            if same(&self.open.as_bytes()[..len], &full[..len]) {
                break;
            }
            common -= 1;
        }
        for _ in common..self.levels.len() {
            self.buf.push(b'}');
        }
        self.levels.truncate(common);
        self.open.truncate(if common == 0 {
            0
        } else {
            usize::from(dots[common - 1])
        });
        for d in common..dots.len() {
            let start = if d == 0 {
                0
            } else {
                usize::from(dots[d - 1]) + 1
            };
            let end = usize::from(dots[d]);
            // the segments were checked by Key::new: nothing to escape
            let seg = &k.full[start..end];
            self.comma();
            self.buf.reserve(seg.len() + 4);
            self.buf.push(b'"');
            self.buf.extend_from_slice(seg.as_bytes());
            self.buf.extend_from_slice(b"\":{");
            if !self.open.is_empty() {
                self.open.push('.');
            }
            self.open.push_str(seg);
            self.levels.push((self.open.len(), false));
        }
    }

    fn key(&mut self, key: &str) {
        let leaf = self.enter(key);
        let has = match self.levels.last_mut() {
            Some((_, h)) => h,
            None => &mut self.top_has_member,
        };
        let comma = std::mem::replace(has, true);
        let name = leaf.as_bytes();
        if plain_run(name) == name.len() {
            // one reservation for the comma, the quoted name and the colon
            self.buf.reserve(name.len() + 4);
            if comma {
                self.buf.push(b',');
            }
            self.buf.push(b'"');
            self.buf.extend_from_slice(name);
            self.buf.extend_from_slice(b"\":");
        } else {
            if comma {
                self.buf.push(b',');
            }
            write_str(&mut self.buf, name);
            self.buf.push(b':');
        }
    }

    /// Writes a prepared member name: the leaf is already quoted and
    /// checked, and the parent path is compared as a whole.
    #[inline]
    fn key_at(&mut self, k: &Key) {
        let parent = &k.full.as_bytes()[..k.parent_len as usize];
        if !same(parent, self.open.as_bytes()) {
            self.enter_key(k);
        }
        let has = match self.levels.last_mut() {
            Some((_, h)) => h,
            None => &mut self.top_has_member,
        };
        let comma = std::mem::replace(has, true);
        // `,"leaf":`, from the comma on or after it: one copy
        self.buf
            .extend_from_slice(&k.name[usize::from(!comma)..usize::from(k.name_len)]);
    }

    /// A string field from bytes (lossy UTF-8).
    pub fn str(&mut self, key: impl Name, v: impl AsRef<[u8]>) -> &mut Self {
        key.put(self);
        write_str(&mut self.buf, v.as_ref());
        self
    }

    /// An unsigned integer field.
    pub fn u64(&mut self, key: impl Name, v: u64) -> &mut Self {
        key.put(self);
        write_u64(&mut self.buf, v);
        self
    }

    /// A signed integer field.
    pub fn i64(&mut self, key: impl Name, v: i64) -> &mut Self {
        key.put(self);
        write_i64(&mut self.buf, v);
        self
    }

    /// A number field: `v` as Rust's `Display` writes it (the shortest
    /// text that reads back as `v`, never an exponent), or `null` when it
    /// is not finite (JSON has no NaN or infinity).
    pub fn f64(&mut self, key: impl Name, v: f64) -> &mut Self {
        key.put(self);
        if v.is_finite() {
            use std::io::Write as _;
            let _ = write!(self.buf, "{v}");
        } else {
            self.buf.extend_from_slice(b"null");
        }
        self
    }

    /// A number field that always reads as a float: as [`Writer::f64`]
    /// writes it, with `.0` added when that text is a whole number (`3.0`,
    /// `0.5`; serde_json writes the same for every value from 1e-5 to
    /// 1e21), or `null` when `v` is not finite.
    pub fn float(&mut self, key: impl Name, v: f64) -> &mut Self {
        key.put(self);
        if v.is_finite() {
            use std::io::Write as _;
            let start = self.buf.len();
            let _ = write!(self.buf, "{v}");
            if !self.buf[start..].contains(&b'.') {
                self.buf.extend_from_slice(b".0");
            }
        } else {
            self.buf.extend_from_slice(b"null");
        }
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: impl Name, v: bool) -> &mut Self {
        key.put(self);
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    /// An array of strings.
    pub fn strs<I, S>(&mut self, key: impl Name, items: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        key.put(self);
        write_strs(&mut self.buf, items);
        self
    }

    /// An array of unsigned integers.
    pub fn u64s(&mut self, key: impl Name, items: impl IntoIterator<Item = u64>) -> &mut Self {
        key.put(self);
        write_array(&mut self.buf, items, write_u64);
        self
    }

    /// An array of signed integers.
    pub fn i64s(&mut self, key: impl Name, items: impl IntoIterator<Item = i64>) -> &mut Self {
        key.put(self);
        write_array(&mut self.buf, items, write_i64);
        self
    }

    /// An array of `[string, number]` pairs (`[["main",3],["f",1]]`).
    pub fn str_u64_pairs<I, S>(&mut self, key: impl Name, items: I) -> &mut Self
    where
        I: IntoIterator<Item = (S, u64)>,
        S: AsRef<[u8]>,
    {
        key.put(self);
        write_array(&mut self.buf, items, |b, (s, n)| {
            b.push(b'[');
            write_str(b, s.as_ref());
            b.push(b',');
            write_u64(b, n);
            b.push(b']');
        });
        self
    }

    /// An array of objects: `f` writes each item's fields into a fresh
    /// object (dotted keys nest inside it as at the top level), in this
    /// writer's buffer, without allocating per item.
    pub fn objects<I, F>(&mut self, key: impl Name, items: I, mut f: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(&mut Writer, I::Item),
    {
        key.put(self);
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
    pub fn raw(&mut self, key: impl Name, json: &[u8]) -> &mut Self {
        key.put(self);
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

/// A member name the setters take: a dotted `&str` (split at its dots
/// for every field) or a [`Key`] prepared at compile time (`key!`), which
/// writes the same bytes without scanning or checking the name.
pub trait Name {
    /// Positions `w` inside the name's parent objects and writes the
    /// member name (with its comma and colon).
    fn put(self, w: &mut Writer);
}

impl Name for &str {
    #[inline]
    fn put(self, w: &mut Writer) {
        w.key(self);
    }
}

impl Name for &String {
    #[inline]
    fn put(self, w: &mut Writer) {
        w.key(self);
    }
}

impl Name for &Key {
    #[inline]
    fn put(self, w: &mut Writer) {
        w.key_at(self);
    }
}

/// Most dots a [`Key`] holds (nesting depth of its leaf).
pub const KEY_DEPTH_MAX: usize = 7;

/// Longest leaf name a [`Key`] holds.
pub const KEY_LEAF_MAX: usize = 44;

/// A dotted member name prepared at compile time ([`Key::new`] in a
/// `const`): where its parent path ends and its leaf already quoted, so
/// the setters do not scan or check it per field. Output is the same
/// as the `&str` writers' for the same name.
pub struct Key {
    full: &'static str,
    parent_len: u8,
    /// Where each dot is (the end of each parent segment).
    dots: [u8; KEY_DEPTH_MAX],
    ndots: u8,
    /// `,"leaf":`
    name: [u8; KEY_LEAF_MAX + 4],
    name_len: u8,
}

impl Key {
    /// Prepares `full` (`process.parent.pid`). Panics (at compile time, in
    /// a `const`) when a segment is empty, the leaf is longer than
    /// [`KEY_LEAF_MAX`] or the name holds a byte that JSON would escape.
    pub const fn new(full: &'static str) -> Key {
        let b = full.as_bytes();
        assert!(!b.is_empty() && b.len() < 256, "key length");
        let mut dot = None;
        let mut dots = [0u8; KEY_DEPTH_MAX];
        let mut ndots = 0;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            assert!(c >= 0x20 && c < 0x7f && c != b'"' && c != b'\\', "key byte");
            if c == b'.' {
                assert!(i > 0 && i + 1 < b.len(), "empty key segment");
                assert!(b[i - 1] != b'.', "empty key segment");
                assert!(ndots < KEY_DEPTH_MAX, "key too deep");
                dots[ndots] = i as u8;
                ndots += 1;
                dot = Some(i);
            }
            i += 1;
        }
        let (parent_len, leaf_start) = match dot {
            Some(d) => (d, d + 1),
            None => (0, 0),
        };
        let leaf_len = b.len() - leaf_start;
        assert!(leaf_len <= KEY_LEAF_MAX, "key leaf too long");
        let mut name = [0u8; KEY_LEAF_MAX + 4];
        name[0] = b',';
        name[1] = b'"';
        let mut j = 0;
        while j < leaf_len {
            name[2 + j] = b[leaf_start + j];
            j += 1;
        }
        name[2 + leaf_len] = b'"';
        name[3 + leaf_len] = b':';
        Key {
            full,
            parent_len: parent_len as u8,
            dots,
            ndots: ndots as u8,
            name,
            name_len: (leaf_len + 4) as u8,
        }
    }

    /// The dotted name.
    pub const fn name(&self) -> &'static str {
        self.full
    }
}

/// A `&'static` [`Key`] built at compile time: `key!("process.pid")`.
#[macro_export]
macro_rules! key {
    ($name:expr) => {{
        const K: $crate::json::Key = $crate::json::Key::new($name);
        &K
    }};
}

/// What [`Writer::fragment`] remembers: the bytes one run of a field
/// group wrote, the key they were written for and the writer's nesting
/// state before and after. Reused across records (no allocation once its
/// buffers have grown).
#[derive(Default, Clone)]
pub struct Fragment {
    filled: bool,
    generation: u64,
    key: Vec<u8>,
    bytes: Vec<u8>,
    start_open: String,
    start_levels: Vec<(usize, bool)>,
    start_top: bool,
    end_open: String,
    end_levels: Vec<(usize, bool)>,
    end_top: bool,
}

impl Fragment {
    /// Changes every time [`Writer::fragment`] refills the fragment (for
    /// a key or a nesting state other than the one it held), so a caller
    /// that remembers it can tell the bytes are still the ones it saw.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Appends the decimal digits of a signed integer.
pub fn write_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    write_u64(buf, v.unsigned_abs());
}

/// An array of strings.
fn write_strs<I, S>(buf: &mut Vec<u8>, items: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    write_array(buf, items, |b, s| write_str(b, s.as_ref()));
}

/// An array of the items `item` writes.
fn write_array<T>(
    buf: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut item: impl FnMut(&mut Vec<u8>, T),
) {
    buf.push(b'[');
    for (i, v) in items.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        item(buf, v);
    }
    buf.push(b']');
}

/// Appends the decimal digits of `v`.
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    // two digits per division
    const PAIRS: &[u8; 200] = b"00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        tmp[i] = PAIRS[d];
        tmp[i + 1] = PAIRS[d + 1];
    }
    if v >= 10 {
        let d = v as usize * 2;
        i -= 2;
        tmp[i] = PAIRS[d];
        tmp[i + 1] = PAIRS[d + 1];
    } else {
        i -= 1;
        tmp[i] = b'0' + v as u8;
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

    /// `float` always reads as a float; pairs are `[string, number]`.
    #[test]
    fn floats_and_pairs() {
        let mut w = Writer::new();
        w.float("a", 3.0)
            .float("b", 0.5)
            .float("c", f64::NAN)
            .float("d", -2.25)
            .f64("e", 3.0)
            .str_u64_pairs("p", [("x\"", 1), ("y", 2)])
            .str_u64_pairs("q", Vec::<(&str, u64)>::new());
        assert_eq!(
            w.finish(),
            br#"{"a":3.0,"b":0.5,"c":null,"d":-2.25,"e":3,"p":[["x\"",1],["y",2]],"q":[]}"#
        );
    }

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

    /// The prepared-name writers give the same bytes as the `&str` ones,
    /// through every kind of nesting change.
    #[test]
    fn prepared_keys_write_the_same_bytes() {
        let names = [
            "@timestamp",
            "event.kind",
            "event.sequence",
            "process.pid",
            "process.parent.pid",
            "process.parent.name",
            "process.name",
            "user.id",
            "user.effective.id",
            "a.b.c.d",
            "a.b.e",
            "a.f",
            "vigil.ns.pid",
        ];
        const KEYS: [Key; 13] = [
            Key::new("@timestamp"),
            Key::new("event.kind"),
            Key::new("event.sequence"),
            Key::new("process.pid"),
            Key::new("process.parent.pid"),
            Key::new("process.parent.name"),
            Key::new("process.name"),
            Key::new("user.id"),
            Key::new("user.effective.id"),
            Key::new("a.b.c.d"),
            Key::new("a.b.e"),
            Key::new("a.f"),
            Key::new("vigil.ns.pid"),
        ];
        // every order of a few names, mixed writers
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut plain = Writer::new();
            let mut prepared = Writer::new();
            let n = (seed % 9) as usize + 1;
            for j in 0..n {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (seed >> 33) as usize % names.len();
                assert_eq!(KEYS[i].name(), names[i]);
                match j % 5 {
                    0 => {
                        plain.str(names[i], "v\"");
                        prepared.str(&KEYS[i], "v\"");
                    }
                    1 => {
                        plain.u64(names[i], seed >> 40);
                        prepared.u64(&KEYS[i], seed >> 40);
                    }
                    2 => {
                        plain.i64(names[i], -5).bool("x.y", true);
                        prepared.i64(&KEYS[i], -5).bool("x.y", true);
                    }
                    3 => {
                        plain.strs(names[i], ["a", "b"]);
                        prepared.strs(&KEYS[i], ["a", "b"]);
                    }
                    _ => {
                        plain.raw(names[i], b"[1]").bool(names[i], false);
                        prepared.raw(&KEYS[i], b"[1]").bool(&KEYS[i], false);
                    }
                }
            }
            assert_eq!(
                String::from_utf8(prepared.finish()).unwrap(),
                String::from_utf8(plain.finish()).unwrap()
            );
        }
        let k = crate::key!("process.parent.executable");
        assert_eq!(k.name(), "process.parent.executable");
    }

    /// An object appended to a buffer with a reused scratch is the bytes
    /// a fresh writer writes, after what the buffer held.
    #[test]
    fn appending_writes_what_a_fresh_writer_writes() {
        let names = ["a.b.c", "a.b.d", "a.e", "f", "g.h", "a.b.c.i"];
        let mut scratch = WriterScratch::default();
        let mut out = Vec::new();
        let mut want = Vec::new();
        let mut seed = 11u64;
        for r in 0..300 {
            let mut fresh = Writer::new();
            let mut app = Writer::appending(std::mem::take(&mut out), &mut scratch);
            for _ in 0..(seed % 7) + 1 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let k = names[(seed >> 33) as usize % names.len()];
                fresh.u64(k, r).str("x.y", "z");
                app.u64(k, r).str("x.y", "z");
            }
            want.extend_from_slice(&fresh.finish());
            want.push(b'\n');
            out = app.finish_into(&mut scratch);
            out.push(b'\n');
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&want)
            );
        }
    }

    /// Names with empty segments (an environment variable called `a..b`
    /// or `.x`) nest as `str::split` cuts them, and the output parses.
    #[test]
    fn empty_segments_nest_like_split() {
        let mut w = Writer::new();
        w.str("vigil.env.a..b", "1")
            .str("vigil.env..x", "2")
            .str("vigil.env.c.", "3")
            .u64("z", 4);
        let s = String::from_utf8(w.finish()).unwrap();
        assert_eq!(
            s,
            r#"{"vigil":{"env":{"a":{"":{"b":"1"}},"x":"2","c":{"":"3"}}},"z":4}"#
        );
        serde_json::from_str::<serde_json::Value>(&s).unwrap();
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
        // every digit count, and each side of the two-digit steps
        let mut v: u64 = 1;
        for _ in 0..20 {
            for x in [
                v.saturating_sub(1),
                v,
                v.saturating_add(1),
                v.saturating_mul(7),
            ] {
                out.clear();
                write_u64(&mut out, x);
                assert_eq!(out, x.to_string().as_bytes());
            }
            v = v.saturating_mul(10);
        }
        for x in 0..100_000u64 {
            out.clear();
            write_u64(&mut out, x);
            assert_eq!(out, x.to_string().as_bytes());
        }
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
