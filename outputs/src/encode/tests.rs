//! Byte-exact golden tests of every format, hostile strings included.

use super::*;
use crate::record::{Kind, Severity};

const T: u64 = 1_764_034_784_123_456_789; // 2025-11-25T01:39:44.123456789Z

fn cfg(format: Format) -> EncoderConfig {
    let mut c = EncoderConfig::new(format);
    c.procid = 77;
    c.product_version = "0.1.0".into();
    c
}

fn enc(c: EncoderConfig, rec: &Record) -> (String, bool) {
    let mut out = Vec::new();
    let t = Encoder::new(c).encode(rec, &mut out);
    (String::from_utf8(out).expect("encoders emit UTF-8"), t)
}

fn alert<'a>(fields: &'a [(&'a str, Value<'a>)]) -> Record<'a> {
    Record {
        time_ns: T,
        kind: Kind::Alert,
        severity: Severity::High,
        rule_id: Some("shadow_read"),
        rule_name: Some("Read of /etc/shadow"),
        ruleset: Some("builtin"),
        message: b"cat read /etc/shadow",
        host: "web-1",
        pid: Some(4242),
        executable: Some(b"/usr/bin/cat"),
        fields,
        json: br#"{"event":{"kind":"alert"}}"#,
    }
}

const FIELDS: &[(&str, Value)] = &[
    ("process.command_line", Value::Str(b"cat /etc/shadow")),
    ("user.id", Value::U64(0)),
    ("user.name", Value::Str(b"root")),
    ("destination.port", Value::U64(443)),
    ("container.id", Value::Str(b"abc123")),
    ("vigil.baseline.profile_id", Value::I64(-3)),
];

/// (format, expected) for the plain alert above.
const GOLDEN: &[(Format, &str)] = &[
    (Format::Json, r#"{"event":{"kind":"alert"}}"#),
    (
        Format::Rfc5424,
        "<83>1 2025-11-25T01:39:44.123456Z web-1 vigil 77 shadow_read [vigil@32473 rule=\"shadow_read\" rule_name=\"Read of /etc/shadow\" ruleset=\"builtin\" severity=\"high\" kind=\"alert\" pid=\"4242\" exe=\"/usr/bin/cat\" process.command_line=\"cat /etc/shadow\" user.id=\"0\" user.name=\"root\" destination.port=\"443\" container.id=\"abc123\" vigil.baseline.profile_id=\"-3\"] cat read /etc/shadow",
    ),
    (
        Format::Rfc3164,
        "<83>Nov 25 01:39:44 web-1 vigil[77]: [vigil@32473 rule=\"shadow_read\" rule_name=\"Read of /etc/shadow\" ruleset=\"builtin\" severity=\"high\" kind=\"alert\" pid=\"4242\" exe=\"/usr/bin/cat\" process.command_line=\"cat /etc/shadow\" user.id=\"0\" user.name=\"root\" destination.port=\"443\" container.id=\"abc123\" vigil.baseline.profile_id=\"-3\"] cat read /etc/shadow",
    ),
    (
        Format::Cef,
        "CEF:0|vigil|vigil|0.1.0|shadow_read|Read of /etc/shadow|8|rt=1764034784123 dvchost=web-1 msg=cat read /etc/shadow spid=4242 sproc=/usr/bin/cat cs1Label=ruleset cs1=builtin cs5Label=eventKind cs5=alert cs6Label=severity cs6=high cs2Label=commandLine cs2=cat /etc/shadow suid=0 suser=root dpt=443 cs4Label=containerId cs4=abc123 vigilBaselineProfileId=-3",
    ),
];

#[test]
fn golden_alert_every_format() {
    for (f, want) in GOLDEN {
        let (got, truncated) = enc(cfg(*f), &alert(FIELDS));
        assert_eq!(got, *want, "{f:?}");
        assert!(!truncated);
    }
}

#[test]
fn pri_is_facility_times_8_plus_severity() {
    // (facility, severity, PRI)
    let table = [
        (10, Severity::Critical, "<82>"),
        (10, Severity::Info, "<86>"),
        (16, Severity::High, "<131>"),
        (16, Severity::Low, "<133>"),
        (4, Severity::Medium, "<36>"),
        (0, Severity::Critical, "<2>"),
    ];
    for (fac, sev, pri) in table {
        let mut c = cfg(Format::Rfc5424);
        c.facility = fac;
        let rec = Record {
            severity: sev,
            ..alert(&[])
        };
        let (got, _) = enc(c, &rec);
        assert!(got.starts_with(pri), "{fac} {sev}: {got}");
    }
}

#[test]
fn nil_values_and_bom() {
    // no time, no host, no rule, no message: NILVALUEs, no MSG part
    let rec = Record {
        kind: Kind::Event,
        ..Record::default()
    };
    let (got, _) = enc(cfg(Format::Rfc5424), &rec);
    assert_eq!(
        got,
        "<86>1 - - vigil 77 - [vigil@32473 severity=\"info\" kind=\"event\"]"
    );
    // non-ASCII message: BOM (auto); never: none; ASCII: none
    let rec = Record {
        message: "café".as_bytes(),
        ..alert(&[])
    };
    let (got, _) = enc(cfg(Format::Rfc5424), &rec);
    assert!(got.ends_with("] \u{feff}café"), "{got}");
    let mut c = cfg(Format::Rfc5424);
    c.bom = Bom::Never;
    assert!(enc(c, &rec).0.ends_with("] café"));
    let (got, _) = enc(cfg(Format::Rfc5424), &alert(&[]));
    assert!(got.ends_with("] cat read /etc/shadow"));
    let mut c = cfg(Format::Rfc5424);
    c.bom = Bom::Always;
    assert!(
        enc(c, &alert(&[]))
            .0
            .ends_with("] \u{feff}cat read /etc/shadow")
    );
}

#[test]
fn cef_headers_and_defaults() {
    let mut c = cfg(Format::Cef);
    c.cef_header = CefHeader::Rfc3164;
    let (got, _) = enc(c.clone(), &alert(&[]));
    assert!(
        got.starts_with("<83>Nov 25 01:39:44 web-1 CEF:0|vigil|vigil|0.1.0|shadow_read|"),
        "{got}"
    );
    c.cef_header = CefHeader::Rfc5424;
    let (got, _) = enc(c, &alert(&[]));
    assert!(
        got.starts_with("<83>1 2025-11-25T01:39:44.123456Z web-1 vigil 77 shadow_read - CEF:0|"),
        "{got}"
    );
    // an event without rule: signature = kind, name = message
    let rec = Record {
        kind: Kind::Event,
        severity: Severity::Info,
        rule_id: None,
        rule_name: None,
        ruleset: None,
        ..alert(&[])
    };
    let (got, _) = enc(cfg(Format::Cef), &rec);
    assert!(
        got.starts_with("CEF:0|vigil|vigil|0.1.0|event|cat read /etc/shadow|1|"),
        "{got}"
    );
}

/// Hostile strings: (input, RFC 5424 PARAM-VALUE, syslog MSG, CEF header,
/// CEF extension value).
const HOSTILE: &[(&[u8], &str, &str, &str, &str)] = &[
    (b"a\"b", "a\\\"b", "a\"b", "a\"b", "a\"b"),
    (b"a\\b", "a\\\\b", "a\\b", "a\\\\b", "a\\\\b"),
    (b"a]b", "a\\]b", "a]b", "a]b", "a]b"),
    (b"a=b", "a=b", "a=b", "a=b", "a\\=b"),
    (b"a|b", "a|b", "a|b", "a\\|b", "a|b"),
    (
        b"a\nb\rc",
        "a#012b#015c",
        "a#012b#015c",
        "a b c",
        "a\\nb\\rc",
    ),
    (
        b"\x1b[31m\x7f",
        "#033[31m#177",
        "#033[31m#177",
        " [31m ",
        " [31m ",
    ),
    // C1 controls (NEL, CSI) escape like C0 ones; other non-ASCII stays
    // (found by the hostile-input fuzzer).
    (
        "a\u{85}b\u{9b}31m\u{a0}é".as_bytes(),
        "a#205b#23331m\u{a0}é",
        "a#205b#23331m\u{a0}é",
        "a b 31m\u{a0}é",
        "a b 31m\u{a0}é",
    ),
    (b"\xc2", "\u{fffd}", "\u{fffd}", "\u{fffd}", "\u{fffd}"),
    (
        b"\xff\xfeok\xc3",
        "\u{fffd}\u{fffd}ok\u{fffd}",
        "\u{fffd}\u{fffd}ok\u{fffd}",
        "\u{fffd}\u{fffd}ok\u{fffd}",
        "\u{fffd}\u{fffd}ok\u{fffd}",
    ),
    ("ünï ✓".as_bytes(), "ünï ✓", "ünï ✓", "ünï ✓", "ünï ✓"),
    (
        b"] [x=\"y\"] \\",
        "\\] [x=\\\"y\\\"\\] \\\\",
        "] [x=\"y\"] \\",
        "] [x=\"y\"] \\\\",
        "] [x\\=\"y\"] \\\\",
    ),
];

#[test]
fn hostile_strings_are_escaped_per_format() {
    for (input, sd, msg, cef_h, cef_e) in HOSTILE {
        let mut out = Vec::new();
        push_escaped(&mut out, input, Esc::SdValue);
        assert_eq!(String::from_utf8(out.clone()).unwrap(), *sd, "sd {input:?}");
        out.clear();
        push_escaped(&mut out, input, Esc::Msg);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            *msg,
            "msg {input:?}"
        );
        out.clear();
        push_escaped(&mut out, input, Esc::CefHeader);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            *cef_h,
            "cef header {input:?}"
        );
        out.clear();
        push_escaped(&mut out, input, Esc::CefExt);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            *cef_e,
            "cef ext {input:?}"
        );
    }
}

#[test]
fn hostile_record_end_to_end() {
    let fields = [(
        "process.command_line",
        Value::Str(b"sh -c 'echo ]\"\\\n=|'\xff"),
    )];
    let rec = Record {
        rule_id: Some("bad rule\nid"),
        rule_name: Some("x|y\\z"),
        host: "evil host\n",
        message: b"line1\nline2",
        ..alert(&fields)
    };
    let (got, _) = enc(cfg(Format::Rfc5424), &rec);
    assert_eq!(
        got,
        "<83>1 2025-11-25T01:39:44.123456Z evil_host_ vigil 77 bad_rule_id [vigil@32473 rule=\"bad rule#012id\" rule_name=\"x|y\\\\z\" ruleset=\"builtin\" severity=\"high\" kind=\"alert\" pid=\"4242\" exe=\"/usr/bin/cat\" process.command_line=\"sh -c 'echo \\]\\\"\\\\#012=|'\u{fffd}\"] line1#012line2"
    );
    let (got, _) = enc(cfg(Format::Cef), &rec);
    assert!(
        got.starts_with("CEF:0|vigil|vigil|0.1.0|bad rule id|x\\|y\\\\z|8|rt="),
        "{got}"
    );
    assert!(
        got.contains(" msg=line1\\nline2 ")
            && got.contains(" cs2=sh -c 'echo ]\"\\\\\\n\\=|'\u{fffd}"),
        "{got}"
    );
    for f in [Format::Rfc5424, Format::Rfc3164, Format::Cef] {
        let (got, _) = enc(cfg(f), &rec);
        assert!(
            !got.bytes().any(|b| b < 0x20),
            "{f:?}: control byte in {got:?}"
        );
    }
}

#[test]
fn long_command_lines_are_cut_at_char_boundaries() {
    // 100 KiB of "é" (2 bytes each) and an ASCII tail
    let long: Vec<u8> = "é".repeat(50 * 1024).into_bytes();
    let fields = [("process.command_line", Value::Str(&long))];
    for (f, max) in [
        (Format::Rfc5424, 2048),
        (Format::Rfc3164, 1024),
        (Format::Cef, 8192),
        (Format::Json, 4096),
    ] {
        let mut c = cfg(f);
        c.max_size = max;
        let json = {
            let mut w = crate::json::Writer::new();
            w.str("process.command_line", &long);
            w.finish()
        };
        let rec = Record {
            json: &json,
            message: &long,
            ..alert(&fields)
        };
        let (got, truncated) = enc(c, &rec);
        assert!(truncated, "{f:?}");
        assert!(got.len() <= max, "{f:?}: {} > {max}", got.len());
        assert!(
            got.len() > max - 64,
            "{f:?}: used only {} of {max}",
            got.len()
        );
        assert!(!got.contains('\u{fffd}'), "{f:?}: cut inside a character");
        match f {
            Format::Json => {
                assert!(got.contains("\"truncated\":true"), "{got}");
                assert!(got.starts_with('{') && got.ends_with('}'));
            }
            Format::Cef => assert!(got.ends_with("vigilTruncated=true"), "{got}"),
            _ => assert!(got.contains(" truncated=\"true\"]"), "{got}"),
        }
    }
}

#[test]
fn tiny_max_size_cuts_bytes() {
    let mut c = cfg(Format::Rfc5424);
    c.max_size = 64;
    let (got, t) = enc(c, &alert(FIELDS));
    assert!(t);
    assert_eq!(got.len(), 64);
}

#[test]
fn timestamps() {
    let mut out = Vec::new();
    rfc3339_micros(0, &mut out);
    assert_eq!(out, b"1970-01-01T00:00:00.000000Z");
    out.clear();
    // 2024-02-29 (leap day) 23:59:59.999999999
    rfc3339_nanos(1_709_251_199_999_999_999, &mut out);
    assert_eq!(out, b"2024-02-29T23:59:59.999999999Z");
    out.clear();
    bsd_timestamp(1_709_251_199_000_000_000, &mut out);
    assert_eq!(out, b"Feb 29 23:59:59");
    out.clear();
    bsd_timestamp(1_704_067_200_000_000_000, &mut out);
    assert_eq!(out, b"Jan  1 00:00:00");
}

#[test]
fn encode_cost() {
    // A rough figure for the report (debug builds are slower): ns per
    // record for each format; asserts nothing about speed.
    let rec = alert(FIELDS);
    for f in [Format::Json, Format::Rfc5424, Format::Rfc3164, Format::Cef] {
        let e = Encoder::new(cfg(f));
        let mut out = Vec::with_capacity(1024);
        let n = 200_000;
        let cpu = || {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid pointer to a timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
        };
        let t0 = cpu();
        for _ in 0..n {
            e.encode(&rec, &mut out);
        }
        eprintln!(
            "encode {f:?}: {} ns/record (thread CPU time), {} bytes",
            (cpu() - t0) / n,
            out.len()
        );
    }
}

#[test]
fn reads_fields_says_when_the_fields_change_the_output() {
    for f in [Format::Json, Format::Rfc5424, Format::Rfc3164, Format::Cef] {
        for max in [16, 4096] {
            let mut c = cfg(f);
            c.max_size = max;
            let e = Encoder::new(c.clone());
            let with = enc(c.clone(), &alert(FIELDS));
            let without = enc(c, &alert(&[]));
            let json_len = alert(FIELDS).json.len();
            let reads = e.reads_fields(json_len);
            // JSON that fits passes through: only then are fields unread
            assert_eq!(
                reads,
                f != Format::Json || json_len > max,
                "{f:?} max {max}"
            );
            if !reads {
                assert_eq!(with, without, "{f:?} max {max}: fields changed the output");
            } else if f != Format::Json && max > 1024 {
                assert_ne!(with.0, without.0, "{f:?} max {max}: fields unused");
            }
        }
    }
}
