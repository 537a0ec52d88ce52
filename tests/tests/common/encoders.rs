//! Every output encoder over one enriched event, and parsers for what
//! they wrote (RFC 5424 structured data, CEF extensions), so tests can
//! check that hostile bytes come out one line, escaped per the format and
//! equal to the original where the format keeps it.

use vigil_engine::enrich::Event;
use vigil_outputs::encode::{Encoder, EncoderConfig, Format};
use vigil_outputs::{Kind, Record, Severity, Value};

/// Every format the outputs crate encodes.
pub const FORMATS: [Format; 4] = [Format::Json, Format::Rfc5424, Format::Rfc3164, Format::Cef];

/// What one event looked like in every format.
pub struct Encoded {
    /// The ECS JSON the engine built.
    pub json: Vec<u8>,
    /// `(format, bytes, truncated)` per format.
    pub out: Vec<(Format, Vec<u8>, bool)>,
}

/// Encodes `ev` as the agent's `emit` does (ECS JSON plus the record's
/// fields), as an event or, with `rule`, as that rule's alert.
pub fn encode_all(ev: &Event, host: &str, rule: Option<&vigil_rules::Rule>) -> Encoded {
    let (json, message, kind, sev) = match rule {
        Some(r) => (
            vigil_engine::detect::encode_alert(ev, host, r),
            r.message(ev).into_bytes(),
            Kind::Alert,
            Severity::High,
        ),
        None => (
            vigil_engine::ecs::encode(ev, host, "event"),
            vigil_engine::ecs::classify(ev.k.hdr.kind)
                .2
                .as_bytes()
                .to_vec(),
            Kind::Event,
            Severity::Info,
        ),
    };
    let owned = vigil_engine::detect::record_fields(ev);
    let fields: Vec<(&str, Value<'_>)> = owned.iter().map(|(k, v)| (*k, Value::Str(v))).collect();
    let rec = Record {
        time_ns: ev.unix_ns.max(0) as u64,
        kind,
        severity: sev,
        rule_id: rule.map(|r| r.id.as_str()),
        rule_name: rule.map(|r| r.name.as_str()),
        ruleset: rule.map(|r| r.ruleset.as_str()),
        message: &message,
        host,
        pid: Some(ev.k.hdr.pid),
        executable: ev.process.as_ref().map(|p| &p.exe[..]),
        fields: &fields,
        json: &json,
    };
    let out = FORMATS
        .iter()
        .map(|&f| {
            let enc = Encoder::new(EncoderConfig::new(f));
            let mut b = Vec::new();
            let t = enc.encode(&rec, &mut b);
            (f, b, t)
        })
        .collect();
    Encoded { json, out }
}

/// The message is one line and carries no terminal control: no byte
/// below 0x20, no DEL, and no C1 control character (U+0080-U+009F: NEL
/// is a line break and CSI starts an escape sequence in terminals).
pub fn one_line(bytes: &[u8]) -> Result<(), String> {
    if let Some(i) = bytes.iter().position(|&b| b < 0x20 || b == 0x7f) {
        return Err(format!(
            "raw control byte {:#04x} at offset {i}: {:?}",
            bytes[i],
            String::from_utf8_lossy(&bytes[i.saturating_sub(40)..(i + 40).min(bytes.len())])
        ));
    }
    if let Some(c) = String::from_utf8_lossy(bytes)
        .chars()
        .find(|&c| ('\u{80}'..='\u{9f}').contains(&c))
    {
        return Err(format!("raw C1 control U+{:04X}", c as u32));
    }
    Ok(())
}

/// Checks every encoding of `e` is one line, and that the JSON parses.
pub fn check_all(e: &Encoded) -> Result<(), String> {
    one_line(&e.json).map_err(|m| format!("ECS JSON: {m}"))?;
    serde_json::from_slice::<serde_json::Value>(&e.json)
        .map_err(|x| format!("ECS JSON does not parse: {x}"))?;
    for (f, b, _) in &e.out {
        one_line(b).map_err(|m| format!("{}: {m}", f.as_str()))?;
        if *f == Format::Json {
            serde_json::from_slice::<serde_json::Value>(b)
                .map_err(|x| format!("json output does not parse: {x}"))?;
        }
        if matches!(f, Format::Rfc5424 | Format::Rfc3164) {
            sd_params(b).map_err(|m| format!("{}: structured data: {m}", f.as_str()))?;
        }
        if *f == Format::Cef {
            cef_extension(b).map_err(|m| format!("cef: {m}"))?;
        }
    }
    Ok(())
}

/// The text the JSON encoder promises for raw bytes: invalid UTF-8 as
/// U+FFFD (one per maximal invalid run, as `utf8_chunks` yields them).
pub fn json_text(raw: &[u8]) -> String {
    let mut s = String::new();
    for c in raw.utf8_chunks() {
        s.push_str(c.valid());
        if !c.invalid().is_empty() {
            s.push('\u{fffd}');
        }
    }
    s
}

/// What an RFC 5424 PARAM-VALUE shows for raw bytes once unescaped:
/// invalid UTF-8 as U+FFFD, control characters (C0, DEL, C1) as `#` plus
/// three octal digits.
pub fn syslog_text(raw: &[u8]) -> String {
    json_text(raw)
        .chars()
        .map(|c| {
            let u = c as u32;
            if u < 0x20 || (0x7f..=0x9f).contains(&u) {
                format!("#{u:03o}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What a CEF extension value shows for raw bytes once unescaped:
/// newline and CR kept, other control characters as spaces.
pub fn cef_text(raw: &[u8]) -> String {
    json_text(raw)
        .chars()
        .map(|c| {
            let u = c as u32;
            if c == '\n' || c == '\r' {
                c
            } else if u < 0x20 || (0x7f..=0x9f).contains(&u) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Parses the `[vigil@32473 k="v" ...]` element: unescaped values by name.
/// Errors on a raw `"` or `]` inside a value or an unknown escape.
pub fn sd_params(msg: &[u8]) -> Result<Vec<(String, String)>, String> {
    let s = String::from_utf8_lossy(msg);
    let start = s.find("[vigil@32473").ok_or("no structured data element")?;
    let b: Vec<char> = s[start + "[vigil@32473".len()..].chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        match b.get(i) {
            Some(']') => return Ok(out),
            Some(' ') => i += 1,
            Some(_) => {
                let name_end = (i..b.len())
                    .find(|&j| b[j] == '=')
                    .ok_or("parameter without `=`")?;
                let name: String = b[i..name_end].iter().collect();
                if name.chars().any(|c| c == ' ' || c == '"' || c == ']') {
                    return Err(format!("bad PARAM-NAME {name:?}"));
                }
                if b.get(name_end + 1) != Some(&'"') {
                    return Err(format!("{name}: value not quoted"));
                }
                let mut v = String::new();
                let mut j = name_end + 2;
                loop {
                    match b.get(j) {
                        None => return Err(format!("{name}: unterminated value")),
                        Some('"') => break,
                        Some('\\') => match b.get(j + 1) {
                            Some(&c @ ('"' | '\\' | ']')) => {
                                v.push(c);
                                j += 2;
                                continue;
                            }
                            // RFC 5424 §6.3.3: any other backslash is literal
                            _ => v.push('\\'),
                        },
                        Some(']') => return Err(format!("{name}: raw `]` inside a value")),
                        Some(&c) => v.push(c),
                    }
                    j += 1;
                }
                out.push((name, v));
                i = j + 1;
            }
            None => return Err("unterminated structured data".into()),
        }
    }
}

/// Parses a CEF message's extension (after the 7th unescaped `|`) into
/// unescaped `(key, value)` pairs; errors on a raw `=` that is not a key
/// separator or a `|` count off in the header.
pub fn cef_extension(msg: &[u8]) -> Result<Vec<(String, String)>, String> {
    let s = String::from_utf8_lossy(msg);
    let cef = s.find("CEF:0|").ok_or("no CEF:0| prefix")?;
    let b: Vec<char> = s[cef..].chars().collect();
    let mut pipes = 0;
    let mut i = 0;
    while i < b.len() && pipes < 7 {
        match b[i] {
            '\\' => i += 1,
            '|' => pipes += 1,
            _ => {}
        }
        i += 1;
    }
    if pipes < 7 {
        return Err(format!("header has {pipes} unescaped `|`, not 7"));
    }
    let ext = &b[i..];
    // Key separators: unescaped `=`; the key is the word before it.
    let mut eqs = Vec::new();
    let mut j = 0;
    while j < ext.len() {
        match ext[j] {
            '\\' => j += 1,
            '=' => eqs.push(j),
            _ => {}
        }
        j += 1;
    }
    let mut out = Vec::new();
    for (n, &e) in eqs.iter().enumerate() {
        let key_start = ext[..e]
            .iter()
            .rposition(|&c| c == ' ')
            .map_or(0, |p| p + 1);
        let key: String = ext[key_start..e].iter().collect();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("raw `=` after {key:?} is not a key separator"));
        }
        let vend = match eqs.get(n + 1) {
            Some(&next) => ext[..next].iter().rposition(|&c| c == ' ').unwrap_or(next),
            None => ext.len(),
        };
        let mut v = String::new();
        let mut k = e + 1;
        while k < vend {
            if ext[k] == '\\' {
                match ext.get(k + 1) {
                    Some('n') => v.push('\n'),
                    Some('r') => v.push('\r'),
                    Some(&c @ ('=' | '\\')) => v.push(c),
                    other => return Err(format!("{key}: unknown escape \\{other:?}")),
                }
                k += 2;
            } else {
                v.push(ext[k]);
                k += 1;
            }
        }
        out.push((key, v));
    }
    Ok(out)
}
