//! Encoders: a [`Record`] into the bytes of one message, apart from any
//! transport (Vector's habit). Transports add framing (newline, octet
//! count); encoders never emit a raw newline or other control character
//! in the syslog and CEF formats, so every frame stays one line.
//!
//! | format | output |
//! | --- | --- |
//! | [`Format::Json`] | `Record::json` unchanged |
//! | [`Format::Rfc5424`] | `<PRI>1 TIMESTAMP HOSTNAME vigil PROCID MSGID [vigil@32473 ...] MSG` |
//! | [`Format::Rfc3164`] | `<PRI>Mmm dd hh:mm:ss HOSTNAME vigil[PROCID]: [vigil@32473 ...] MSG` |
//! | [`Format::Cef`] | optional syslog header, then `CEF:0\|vigil\|vigil\|VERSION\|ID\|NAME\|SEV\|EXT` |
//!
//! Size: a message longer than [`EncoderConfig::max_size`] is re-encoded
//! with every string value (message, executable, field values, rule
//! name) cut to the largest length that fits, always at a UTF-8 character
//! boundary, and marked (`truncated="true"` in structured data,
//! `vigilTruncated=true` in CEF, `"vigil":{"truncated":true}` in JSON);
//! [`Encoder::encode`] reports it so the sink can count it.

use crate::json::{self, write_u64};
use crate::record::{Record, Value};

/// The wire format of a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ECS JSON, one object per message.
    Json,
    /// RFC 5424 syslog with structured data.
    Rfc5424,
    /// RFC 3164 (BSD) syslog, for legacy receivers.
    Rfc3164,
    /// ArcSight Common Event Format (revision 25).
    Cef,
}

impl Format {
    /// The name used in `format=` (`json`, `rfc5424`, `rfc3164`, `cef`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Rfc5424 => "rfc5424",
            Format::Rfc3164 => "rfc3164",
            Format::Cef => "cef",
        }
    }

    /// Parses a `format=` value.
    pub fn parse(s: &str) -> Option<Format> {
        [Format::Json, Format::Rfc5424, Format::Rfc3164, Format::Cef]
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
    }
}

/// When RFC 5424 MSG starts with a UTF-8 byte order mark (§6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bom {
    /// Only when the message has non-ASCII characters (an ASCII message is
    /// valid both as MSG-ANY and as UTF-8, so it needs none).
    Auto,
    /// Never (receivers that show the BOM as garbage).
    Never,
    /// Always (a non-empty message).
    Always,
}

/// The syslog header in front of a CEF message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CefHeader {
    /// Bare `CEF:0|...` (files, stdout).
    None,
    /// `<PRI>Mmm dd hh:mm:ss HOSTNAME CEF:0|...`, what ArcSight connectors
    /// expect over syslog.
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOSTNAME vigil PROCID MSGID - CEF:0|...`.
    Rfc5424,
}

/// The RFC 5424 SD-ID of vigil's structured data element. 32473 is the
/// private enterprise number RFC 5424 reserves for documentation; a
/// deployment with its own PEN can change it in one place.
pub const SD_ID: &str = "vigil@32473";

/// Syslog facility names and numbers (RFC 5424 §6.2.1).
pub const FACILITIES: [(&str, u8); 24] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("audit", 13),
    ("alert", 14),
    ("clock", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The default facility: `authpriv` (10). Alerts carry command lines and
/// user names (sometimes secrets typed on a command line); authpriv is
/// the facility syslog daemons route to a private file (Debian's
/// rsyslog: `/var/log/auth.log`, 0640 root:adm) instead of the general
/// `/var/log/syslog`. `facility=local0` (or any other) overrides it.
pub const DEFAULT_FACILITY: u8 = 10;

/// How an [`Encoder`] writes records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Wire format.
    pub format: Format,
    /// Syslog facility number 0-23 ([`FACILITIES`]).
    pub facility: u8,
    /// RFC 5424 APP-NAME / RFC 3164 TAG (at most 48 / 32 characters).
    pub app_name: String,
    /// RFC 5424 PROCID / RFC 3164 `[pid]`: the pid of vigil itself, the
    /// originator (§6.2.6); the pid of the process a record is about goes
    /// into the structured data (`pid="..."`).
    pub procid: u32,
    /// RFC 5424 BOM policy.
    pub bom: Bom,
    /// Syslog header of CEF messages.
    pub cef_header: CefHeader,
    /// CEF Device Version.
    pub product_version: String,
    /// Largest message in bytes (before transport framing).
    pub max_size: usize,
}

impl EncoderConfig {
    /// Defaults for `format`: facility authpriv, app `vigil`, this
    /// process's pid, BOM auto, bare CEF, 1 MiB messages.
    pub fn new(format: Format) -> EncoderConfig {
        EncoderConfig {
            format,
            facility: DEFAULT_FACILITY,
            app_name: "vigil".into(),
            procid: std::process::id(),
            bom: Bom::Auto,
            cef_header: CefHeader::None,
            product_version: env!("CARGO_PKG_VERSION").into(),
            max_size: 1 << 20,
        }
    }
}

/// Encodes records per an [`EncoderConfig`]. Stateless and cheap to share.
#[derive(Clone, Debug)]
pub struct Encoder {
    cfg: EncoderConfig,
}

impl Encoder {
    /// An encoder.
    pub fn new(cfg: EncoderConfig) -> Encoder {
        Encoder { cfg }
    }

    /// Its configuration.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// Whether encoding a record whose pre-encoded JSON is `json_len`
    /// bytes long reads [`Record::fields`]: every format but JSON does,
    /// and JSON only when the record is too long to pass through as it
    /// is. A caller may leave the fields out when no encoder reads them.
    pub fn reads_fields(&self, json_len: usize) -> bool {
        self.cfg.format != Format::Json || json_len > self.cfg.max_size
    }

    /// Encodes `rec` into `out` (cleared first). Returns true when values
    /// had to be truncated to fit [`EncoderConfig::max_size`].
    pub fn encode(&self, rec: &Record, out: &mut Vec<u8>) -> bool {
        let max = self.cfg.max_size;
        out.clear();
        if self.cfg.format == Format::Json && rec.json.len() <= max {
            out.extend_from_slice(rec.json);
            return false;
        }
        if self.cfg.format != Format::Json {
            self.encode_capped(rec, usize::MAX, out);
            if out.len() <= max {
                return false;
            }
        }
        // Too long: the largest per-value cap that fits (binary search;
        // only oversized records pay for it).
        self.encode_capped(rec, 0, out);
        if out.len() > max {
            // Even empty values do not fit (a tiny max_size or hundreds
            // of fields): cut the bytes at a character boundary.
            let cut = utf8_cut(out, max);
            out.truncate(cut);
            return true;
        }
        let (mut lo, mut hi) = (0usize, max + 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            self.encode_capped(rec, mid, out);
            if out.len() <= max {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.encode_capped(rec, lo, out);
        true
    }

    fn encode_capped(&self, rec: &Record, cap: usize, out: &mut Vec<u8>) {
        out.clear();
        match self.cfg.format {
            Format::Json => self.json_rebuilt(rec, cap, out),
            Format::Rfc5424 => self.rfc5424(rec, cap, out),
            Format::Rfc3164 => self.rfc3164(rec, cap, out),
            Format::Cef => self.cef(rec, cap, out),
        }
    }

    fn pri(&self, rec: &Record, out: &mut Vec<u8>) {
        out.push(b'<');
        write_u64(
            out,
            u64::from(self.cfg.facility) * 8 + u64::from(rec.severity.syslog()),
        );
        out.push(b'>');
    }

    fn header5424(&self, rec: &Record, out: &mut Vec<u8>) {
        self.pri(rec, out);
        out.extend_from_slice(b"1 ");
        if rec.time_ns == 0 {
            out.push(b'-');
        } else {
            rfc3339_micros(rec.time_ns, out);
        }
        out.push(b' ');
        push_header_field(out, rec.host.as_bytes(), 255);
        out.push(b' ');
        push_header_field(out, self.cfg.app_name.as_bytes(), 48);
        out.push(b' ');
        write_u64(out, u64::from(self.cfg.procid));
        out.push(b' ');
        push_header_field(out, rec.rule_id.unwrap_or("").as_bytes(), 32);
    }

    fn header3164(&self, rec: &Record, out: &mut Vec<u8>) {
        self.pri(rec, out);
        bsd_timestamp(rec.time_ns, out);
        out.push(b' ');
        push_header_field(out, rec.host.as_bytes(), 255);
    }

    fn rfc5424(&self, rec: &Record, cap: usize, out: &mut Vec<u8>) {
        self.header5424(rec, out);
        out.push(b' ');
        structured_data(rec, cap, out);
        if !rec.message.is_empty() {
            out.push(b' ');
            let msg = utf8_prefix(rec.message, cap);
            let bom = match self.cfg.bom {
                Bom::Never => false,
                Bom::Always => true,
                Bom::Auto => !msg.is_ascii(),
            };
            if bom {
                out.extend_from_slice(b"\xEF\xBB\xBF");
            }
            push_escaped(out, msg, Esc::Msg);
        }
    }

    fn rfc3164(&self, rec: &Record, cap: usize, out: &mut Vec<u8>) {
        self.header3164(rec, out);
        out.push(b' ');
        // TAG: alphanumeric, at most 32 characters (RFC 3164 §4.1.3).
        let tag: Vec<u8> = self
            .cfg
            .app_name
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .take(32)
            .collect();
        out.extend_from_slice(if tag.is_empty() { b"vigil" } else { &tag });
        out.push(b'[');
        write_u64(out, u64::from(self.cfg.procid));
        out.extend_from_slice(b"]: ");
        structured_data(rec, cap, out);
        if !rec.message.is_empty() {
            out.push(b' ');
            push_escaped(out, utf8_prefix(rec.message, cap), Esc::Msg);
        }
    }

    fn cef(&self, rec: &Record, cap: usize, out: &mut Vec<u8>) {
        match self.cfg.cef_header {
            CefHeader::None => {}
            CefHeader::Rfc3164 => {
                self.header3164(rec, out);
                out.push(b' ');
            }
            CefHeader::Rfc5424 => {
                self.header5424(rec, out);
                out.extend_from_slice(b" - ");
            }
        }
        out.extend_from_slice(b"CEF:0|vigil|vigil|");
        push_escaped(out, self.cfg.product_version.as_bytes(), Esc::CefHeader);
        out.push(b'|');
        let sig = rec.rule_id.unwrap_or(rec.kind.as_str());
        push_escaped(out, utf8_prefix(sig.as_bytes(), cap.max(1)), Esc::CefHeader);
        out.push(b'|');
        let name: &[u8] = match (rec.rule_name, rec.message) {
            (Some(n), _) => n.as_bytes(),
            (None, m) if !m.is_empty() => m,
            _ => rec.kind.as_str().as_bytes(),
        };
        push_escaped(out, utf8_prefix(name, cap.max(1)), Esc::CefHeader);
        out.push(b'|');
        write_u64(out, u64::from(rec.severity.cef()));
        out.push(b'|');
        let mut ext = CefExt { out, first: true };
        if rec.time_ns != 0 {
            ext.num("rt", rec.time_ns / 1_000_000);
        }
        ext.str("dvchost", rec.host.as_bytes(), cap);
        if !rec.message.is_empty() {
            ext.str("msg", rec.message, cap);
        }
        if let Some(pid) = rec.pid {
            ext.num("spid", u64::from(pid));
        }
        if let Some(exe) = rec.executable {
            ext.str("sproc", exe, cap);
        }
        if let Some(rs) = rec.ruleset {
            ext.str("cs1Label", b"ruleset", usize::MAX);
            ext.str("cs1", rs.as_bytes(), cap);
        }
        ext.str("cs5Label", b"eventKind", usize::MAX);
        ext.str("cs5", rec.kind.as_str().as_bytes(), usize::MAX);
        ext.str("cs6Label", b"severity", usize::MAX);
        ext.str("cs6", rec.severity.as_str().as_bytes(), usize::MAX);
        let mut tmp = Vec::new();
        for (key, value) in rec.fields {
            tmp.clear();
            value.text_into(&mut tmp);
            match cef_key(key) {
                CefKey::Std(k) => ext.str(k, &tmp, cap),
                CefKey::Labeled(k, label, label_value) => {
                    ext.str(label, label_value.as_bytes(), usize::MAX);
                    ext.str(k, &tmp, cap);
                }
                CefKey::Custom => {
                    let k = camel_key(key);
                    if !k.is_empty() {
                        ext.str(&k, &tmp, cap);
                    }
                }
            }
        }
        if cap != usize::MAX {
            ext.str("vigilTruncated", b"true", usize::MAX);
        }
    }

    /// JSON rebuilt from the record's fields with values cut to `cap`
    /// (the pre-encoded JSON is too long to pass through).
    fn json_rebuilt(&self, rec: &Record, cap: usize, out: &mut Vec<u8>) {
        let mut ts = Vec::with_capacity(32);
        rfc3339_nanos(rec.time_ns, &mut ts);
        let mut all: Vec<(&str, Value)> = vec![
            ("@timestamp", Value::Str(&ts)),
            ("event.kind", Value::str(rec.kind.as_str())),
            ("event.severity", Value::U64(u64::from(rec.severity.cef()))),
            ("vigil.severity", Value::str(rec.severity.as_str())),
            ("vigil.truncated", Value::Bool(true)),
            ("host.name", Value::str(rec.host)),
        ];
        if !rec.message.is_empty() {
            all.push(("message", Value::Str(rec.message)));
        }
        if let Some(v) = rec.rule_id {
            all.push(("rule.id", Value::str(v)));
        }
        if let Some(v) = rec.rule_name {
            all.push(("rule.name", Value::str(v)));
        }
        if let Some(v) = rec.ruleset {
            all.push(("rule.ruleset", Value::str(v)));
        }
        if let Some(v) = rec.pid {
            all.push(("process.pid", Value::U64(u64::from(v))));
        }
        if let Some(v) = rec.executable {
            all.push(("process.executable", Value::Str(v)));
        }
        all.extend(rec.fields.iter().copied());
        // The writer needs keys grouped by dotted prefix: sort (stable,
        // so the first of duplicate keys wins after dedup).
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.dedup_by(|b, a| a.0 == b.0 || b.0.starts_with(&format!("{}.", a.0)));
        let mut w = json::Writer::new();
        for (k, v) in all {
            match v {
                Value::Str(s) => w.str(k, utf8_prefix(s, cap)),
                Value::U64(n) => w.u64(k, n),
                Value::I64(n) => w.i64(k, n),
                Value::Bool(b) => w.bool(k, b),
            };
        }
        out.extend_from_slice(&w.finish());
    }
}

/// `[vigil@32473 rule="..." rule_name="..." ruleset="..." severity="..."
/// kind="..." pid="..." exe="..." <fields>...]`.
fn structured_data(rec: &Record, cap: usize, out: &mut Vec<u8>) {
    out.push(b'[');
    out.extend_from_slice(SD_ID.as_bytes());
    if let Some(v) = rec.rule_id {
        sd_param(out, "rule", v.as_bytes(), cap);
    }
    if let Some(v) = rec.rule_name {
        sd_param(out, "rule_name", v.as_bytes(), cap);
    }
    if let Some(v) = rec.ruleset {
        sd_param(out, "ruleset", v.as_bytes(), cap);
    }
    sd_param(
        out,
        "severity",
        rec.severity.as_str().as_bytes(),
        usize::MAX,
    );
    sd_param(out, "kind", rec.kind.as_str().as_bytes(), usize::MAX);
    if let Some(pid) = rec.pid {
        let mut b = Vec::with_capacity(10);
        write_u64(&mut b, u64::from(pid));
        sd_param(out, "pid", &b, usize::MAX);
    }
    if let Some(exe) = rec.executable {
        sd_param(out, "exe", exe, cap);
    }
    let mut tmp = Vec::new();
    for (key, value) in rec.fields {
        tmp.clear();
        value.text_into(&mut tmp);
        sd_param(out, key, &tmp, cap);
    }
    if cap != usize::MAX {
        sd_param(out, "truncated", b"true", usize::MAX);
    }
    out.push(b']');
}

/// ` name="value"`: SD-NAME is 1-32 printable ASCII except `=`, space,
/// `]`, `"` (others become `_`); PARAM-VALUE escapes `"`, `\`, `]`.
fn sd_param(out: &mut Vec<u8>, name: &str, value: &[u8], cap: usize) {
    out.push(b' ');
    let ok = |b: u8| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"');
    let name = &name.as_bytes()[..name.len().min(32)];
    if name.is_empty() {
        out.push(b'_');
    } else if name.iter().all(|&b| ok(b)) {
        out.extend_from_slice(name);
    } else {
        out.extend(name.iter().map(|&b| if ok(b) { b } else { b'_' }));
    }
    out.extend_from_slice(b"=\"");
    push_escaped(out, utf8_prefix(value, cap), Esc::SdValue);
    out.push(b'"');
}

/// A header field (HOSTNAME, APP-NAME, MSGID): printable US-ASCII
/// (33-126), others replaced by `_`, at most `max` characters, `-`
/// (NILVALUE) when empty.
fn push_header_field(out: &mut Vec<u8>, s: &[u8], max: usize) {
    if s.is_empty() {
        out.push(b'-');
        return;
    }
    let mut n = 0;
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            if n == max {
                return;
            }
            out.push(if (33..=126).contains(&(c as u32)) {
                c as u8
            } else {
                b'_'
            });
            n += 1;
        }
        if !chunk.invalid().is_empty() && n < max {
            out.push(b'_');
            n += 1;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Esc {
    /// RFC 5424 PARAM-VALUE: `"` `\` `]` escaped with `\`.
    SdValue,
    /// Syslog MSG: nothing escaped but control characters.
    Msg,
    /// CEF header: `|` and `\` escaped; control characters become spaces.
    CefHeader,
    /// CEF extension value: `=` and `\` escaped, newline `\n`, carriage
    /// return `\r`, other control characters become spaces.
    CefExt,
}

/// Appends `s` (lossy UTF-8: invalid bytes become U+FFFD) with `esc`'s
/// escaping. In syslog text, control characters become `#` and three
/// octal digits (`#012` for a newline), as rsyslog displays them.
fn push_escaped(out: &mut Vec<u8>, s: &[u8], esc: Esc) {
    let special = |b: u8| -> bool {
        b < 0x20
            || b == 0x7f
            || match esc {
                Esc::SdValue => matches!(b, b'"' | b'\\' | b']'),
                Esc::Msg => false,
                Esc::CefHeader => matches!(b, b'|' | b'\\'),
                Esc::CefExt => matches!(b, b'=' | b'\\'),
            }
    };
    for chunk in s.utf8_chunks() {
        let v = chunk.valid().as_bytes();
        let mut i = 0;
        while i < v.len() {
            // Copy the run that needs no escaping in one go (non-ASCII
            // bytes of valid characters are never special).
            // C1 controls (U+0080-U+009F, UTF-8 `C2 80`-`C2 9F`) are
            // control characters too: NEL breaks lines, CSI starts a
            // terminal escape sequence.
            let c1 =
                |j: usize| v[j] == 0xc2 && v.get(j + 1).is_some_and(|n| (0x80..=0x9f).contains(n));
            let end = (i..v.len())
                .find(|&j| (v[j] < 0x80 && special(v[j])) || c1(j))
                .unwrap_or(v.len());
            out.extend_from_slice(&v[i..end]);
            if end == v.len() {
                break;
            }
            let (b, width) = if c1(end) {
                (v[end + 1], 2)
            } else {
                (v[end], 1)
            };
            match (esc, b) {
                (Esc::SdValue, b'"' | b'\\' | b']')
                | (Esc::CefHeader, b'|' | b'\\')
                | (Esc::CefExt, b'=' | b'\\') => {
                    out.push(b'\\');
                    out.push(b);
                }
                (Esc::CefExt, b'\n') => out.extend_from_slice(b"\\n"),
                (Esc::CefExt, b'\r') => out.extend_from_slice(b"\\r"),
                (Esc::CefExt | Esc::CefHeader, _) => out.push(b' '),
                (Esc::SdValue | Esc::Msg, c) => {
                    out.push(b'#');
                    out.push(b'0' + (c >> 6));
                    out.push(b'0' + ((c >> 3) & 7));
                    out.push(b'0' + (c & 7));
                }
            }
            i = end + width;
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
}

/// The longest prefix of `s` of at most `cap` bytes that does not end
/// inside a UTF-8 character.
pub(crate) fn utf8_prefix(s: &[u8], cap: usize) -> &[u8] {
    if s.len() <= cap {
        s
    } else {
        &s[..utf8_cut(s, cap)]
    }
}

/// An index <= `at` that is not inside a UTF-8 multi-byte character.
fn utf8_cut(s: &[u8], at: usize) -> usize {
    let mut i = at.min(s.len());
    // Back up over at most 3 continuation bytes (invalid UTF-8 may have
    // more; those are replaced on output anyway).
    let mut n = 0;
    while i > 0 && i < s.len() && s[i] & 0xC0 == 0x80 && n < 3 {
        i -= 1;
        n += 1;
    }
    i
}

struct CefExt<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl CefExt<'_> {
    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b' ');
        }
        self.first = false;
        self.out.extend_from_slice(k.as_bytes());
        self.out.push(b'=');
    }
    fn str(&mut self, k: &str, v: &[u8], cap: usize) {
        self.key(k);
        push_escaped(self.out, utf8_prefix(v, cap), Esc::CefExt);
    }
    fn num(&mut self, k: &str, v: u64) {
        self.key(k);
        write_u64(self.out, v);
    }
}

enum CefKey {
    Std(&'static str),
    Labeled(&'static str, &'static str, &'static str),
    Custom,
}

/// The CEF extension key of an ECS field (documented in
/// `docs/outputs.md`; unmapped fields become camel-cased custom keys).
fn cef_key(ecs: &str) -> CefKey {
    use CefKey::*;
    match ecs {
        "source.ip" => Std("src"),
        "source.port" => Std("spt"),
        "destination.ip" => Std("dst"),
        "destination.port" => Std("dpt"),
        "network.transport" => Std("proto"),
        "user.name" => Std("suser"),
        "user.id" => Std("suid"),
        "user.target.name" => Std("duser"),
        "user.target.id" => Std("duid"),
        "file.path" => Std("filePath"),
        "file.name" => Std("fname"),
        "event.action" => Std("act"),
        "event.category" => Std("cat"),
        "event.outcome" => Std("outcome"),
        "process.command_line" => Labeled("cs2", "cs2Label", "commandLine"),
        "process.parent.executable" => Labeled("cs3", "cs3Label", "parentExecutable"),
        "container.id" => Labeled("cs4", "cs4Label", "containerId"),
        "process.parent.pid" => Labeled("cn1", "cn1Label", "parentPid"),
        _ => Custom,
    }
}

/// `vigil.baseline.profile_id` -> `vigilBaselineProfileId`: ASCII
/// alphanumerics kept, the letter after any other character uppercased.
fn camel_key(ecs: &str) -> String {
    let mut k = String::with_capacity(ecs.len());
    let mut up = false;
    for c in ecs.chars() {
        if c.is_ascii_alphanumeric() {
            if up && !k.is_empty() {
                k.push(c.to_ascii_uppercase());
            } else {
                k.push(c);
            }
            up = false;
        } else {
            up = true;
        }
    }
    k
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01, in the
/// proleptic Gregorian calendar, negative counts and years included
/// (Howard Hinnant's `civil_from_days`): the one date converter of the
/// encoders and the engine's ECS timestamps.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

struct Tm {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    nanos: u32,
}

fn tm(ns: u64) -> Tm {
    let secs = (ns / 1_000_000_000) as i64;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    Tm {
        year,
        month,
        day,
        hour: sod / 3600,
        min: sod / 60 % 60,
        sec: sod % 60,
        nanos: (ns % 1_000_000_000) as u32,
    }
}

/// `v` in decimal, zero-padded to `width` digits (no allocation).
fn pad(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = i.min(tmp.len().saturating_sub(width));
    out.extend_from_slice(&tmp[start..]);
}

fn rfc3339_date_time(t: &Tm, out: &mut Vec<u8>) {
    pad(out, t.year.max(0) as u64, 4);
    out.push(b'-');
    pad(out, u64::from(t.month), 2);
    out.push(b'-');
    pad(out, u64::from(t.day), 2);
    out.push(b'T');
    pad(out, u64::from(t.hour), 2);
    out.push(b':');
    pad(out, u64::from(t.min), 2);
    out.push(b':');
    pad(out, u64::from(t.sec), 2);
}

/// `2026-11-25T01:39:44.123456Z` (RFC 5424 allows at most 6 fraction
/// digits).
pub fn rfc3339_micros(ns: u64, out: &mut Vec<u8>) {
    let t = tm(ns);
    rfc3339_date_time(&t, out);
    out.push(b'.');
    pad(out, u64::from(t.nanos / 1000), 6);
    out.push(b'Z');
}

/// `2026-11-25T01:39:44.123456789Z` (ECS `@timestamp`).
pub fn rfc3339_nanos(ns: u64, out: &mut Vec<u8>) {
    let t = tm(ns);
    rfc3339_date_time(&t, out);
    out.push(b'.');
    pad(out, u64::from(t.nanos), 9);
    out.push(b'Z');
}

/// `Nov  5 01:39:44` (RFC 3164: day space-padded, no year, no zone; vigil
/// writes UTC).
fn bsd_timestamp(ns: u64, out: &mut Vec<u8>) {
    const MON: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let t = tm(ns);
    out.extend_from_slice(MON[(t.month - 1) as usize]);
    out.push(b' ');
    if t.day < 10 {
        out.push(b' ');
    }
    write_u64(out, u64::from(t.day));
    out.push(b' ');
    pad(out, u64::from(t.hour), 2);
    out.push(b':');
    pad(out, u64::from(t.min), 2);
    out.push(b':');
    pad(out, u64::from(t.sec), 2);
}

#[cfg(test)]
mod tests;
