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
    /// Currently open nested object path.
    stack: Vec<String>,
    /// Whether the innermost open object already has a member.
    has_member: Vec<bool>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    /// Starts an object.
    pub fn new() -> Writer {
        let mut buf = Vec::with_capacity(1024);
        buf.push(b'{');
        Writer {
            buf,
            stack: Vec::new(),
            has_member: vec![false],
        }
    }

    fn comma(&mut self) {
        let last = self.has_member.last_mut().expect("object open");
        if *last {
            self.buf.push(b',');
        }
        *last = true;
    }

    /// Positions the writer inside the object for `key`'s parents and
    /// returns the leaf name.
    fn enter<'k>(&mut self, key: &'k str) -> &'k str {
        let parts: Vec<&str> = key.split('.').collect();
        let (leaf, parents) = parts.split_last().expect("non-empty key");
        // close objects that are not a prefix of this key
        let common = self
            .stack
            .iter()
            .zip(parents.iter())
            .take_while(|(a, b)| a.as_str() == **b)
            .count();
        while self.stack.len() > common {
            self.stack.pop();
            self.has_member.pop();
            self.buf.push(b'}');
        }
        for p in &parents[common..] {
            self.comma();
            write_str(&mut self.buf, p.as_bytes());
            self.buf.extend_from_slice(b":{");
            self.stack.push((*p).to_string());
            self.has_member.push(false);
        }
        let start = key.len() - leaf.len();
        &key[start..]
    }

    fn key(&mut self, key: &str) {
        let leaf = self.enter(key);
        self.comma();
        write_str(&mut self.buf, leaf.as_bytes());
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
        self.buf.extend_from_slice(v.to_string().as_bytes());
        self
    }

    /// A signed integer field.
    pub fn i64(&mut self, key: &str, v: i64) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(v.to_string().as_bytes());
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

    /// A pre-encoded JSON value (caller guarantees validity).
    pub fn raw(&mut self, key: &str, json: &[u8]) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(json);
        self
    }

    /// Closes every open object and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        while self.stack.pop().is_some() {
            self.buf.push(b'}');
        }
        self.buf.push(b'}');
        self.buf
    }
}

/// Appends `s` as a JSON string (quoted, escaped, lossy UTF-8).
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
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
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn escapes_hostile_strings() {
        let mut out = Vec::new();
        write_str(&mut out, b"a\"b\\c\nd\x1b[31m\xff\xfe/e");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u001b[31m\u{fffd}\u{fffd}/e\""
        );
    }
}
