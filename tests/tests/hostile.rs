//! Root test: hostile strings in REAL events. Files whose names hold a
//! newline, ANSI escape sequences, invalid UTF-8, C1 controls, quotes,
//! backslashes and the CEF/LEEF/syslog specials (`%`, `|`, `=`, `]`) are
//! created (opened for writing) and executed, and a program is run with a
//! 4 KiB argument. The events the real sensors report go through every
//! output encoder (JSON, RFC 5424, RFC 3164, CEF), and the test asserts on
//! the bytes: one line each, escaped per the format's spec, the value
//! round-trips where the format keeps it, the long argument is whole or
//! marked `vigil.truncated`. The agent's own file output (as `vigil run
//! --output FILE`) is read back as JSON lines and must show the same names.

mod common;

use common::encoders;
use common::{Harness, TempDir};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vigil_bpf::abi::kind;
use vigil_engine::enrich::Event;
use vigil_outputs::encode::Format;

/// The hostile parts of the names (each also gets a unique marker).
const NAMES: &[(&str, &[u8])] = &[
    ("newline", b"nl\nline2"),
    ("ansi", b"esc\x1b[31mred\x1b]0;title\x07"),
    ("invalid-utf8", b"inv\xff\xfeend"),
    ("quotes", b"q\"uo'te\\back\\\\slash"),
    ("specials", b"pct%s%n|pipe=eq]br[x"),
    ("c1", "c1\u{85}nel\u{9b}31m".as_bytes()),
    ("cr-tab", b"cr\rtab\tdel\x7f"),
];

fn p(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

fn json_field<'a>(v: &'a serde_json::Value, dotted: &str) -> Option<&'a serde_json::Value> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

fn cef_header(msg: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(msg);
    let start = s.find("CEF:0|").expect("CEF prefix");
    let mut fields = vec![String::new()];
    let mut it = s[start..].chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => fields.last_mut().unwrap().push(it.next().unwrap_or('\\')),
            '|' if fields.len() < 8 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// Asserts every encoding of `ev` (as an event and as `rule`'s alert):
/// one line, parseable, and `raw` (under ECS name `ecs`, structured-data
/// name `sd`, CEF key `cef`) shown per each format's promise.
fn check_event(
    what: &str,
    ev: &Event,
    rule: &vigil_rules::Rule,
    checks: &[(&str, &str, &str, &[u8])],
) {
    for r in [None, Some(rule)] {
        let e = encoders::encode_all(ev, "host", r);
        encoders::check_all(&e).unwrap_or_else(|m| {
            panic!(
                "{what} ({}): {m}",
                if r.is_some() { "alert" } else { "event" }
            )
        });
        let ecs: serde_json::Value = serde_json::from_slice(&e.json).unwrap();
        for (f, bytes, truncated) in &e.out {
            assert!(!truncated, "{what}: {} cut a small record", f.as_str());
            match f {
                Format::Json => assert_eq!(bytes, &e.json, "{what}: json output is the ECS JSON"),
                Format::Rfc5424 | Format::Rfc3164 => {
                    let sd: BTreeMap<String, String> =
                        encoders::sd_params(bytes).unwrap().into_iter().collect();
                    for (_, sdname, _, raw) in checks {
                        assert_eq!(
                            sd.get(*sdname).map(String::as_str),
                            Some(encoders::syslog_text(raw).as_str()),
                            "{what}: {} {sdname}",
                            f.as_str()
                        );
                    }
                    if let Some(r) = r {
                        assert_eq!(sd["rule_name"], r.name, "{what}: rule_name");
                    }
                }
                Format::Cef => {
                    let ext: BTreeMap<String, String> = encoders::cef_extension(bytes)
                        .unwrap()
                        .into_iter()
                        .collect();
                    for (_, _, cefkey, raw) in checks {
                        assert_eq!(
                            ext.get(*cefkey).map(String::as_str),
                            Some(encoders::cef_text(raw).as_str()),
                            "{what}: cef {cefkey}"
                        );
                    }
                    if let Some(r) = r {
                        // Name: `|` and `\` escaped, so the header has its 7 fields
                        assert_eq!(cef_header(bytes)[5], r.name, "{what}: CEF Name");
                    }
                }
            }
        }
        for (ecsname, _, _, raw) in checks {
            let got = json_field(&ecs, ecsname)
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("{what}: no {ecsname} in {ecs}"));
            assert_eq!(got, encoders::json_text(raw), "{what}: JSON {ecsname}");
        }
    }
}

/// Runs a freshly copied program: a fork elsewhere in this process can
/// still hold the copy's write descriptor for a moment (ETXTBSY).
fn run_retrying_etxtbsy(c: &mut Command) -> std::process::ExitStatus {
    for _ in 0..50 {
        match c.status() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => return r.expect("run"),
        }
    }
    panic!("ETXTBSY for a second")
}

#[test]
fn hostile_strings_in_real_events_reach_every_encoder_escaped() {
    let marker = vigil_tests::unique_marker("hostile");
    let dir = TempDir(std::env::temp_dir().join(&marker));
    std::fs::create_dir_all(&dir.0).unwrap();
    let dir_c = std::fs::canonicalize(&dir.0).unwrap();
    // A rule whose name carries every special, alerting on our files.
    let rule_file = dir_c.join("hostile.yaml");
    std::fs::write(
        &rule_file,
        format!(
            "- rule: hostile_marker\n  name: \"hostile | name \\\\ = ] \\\" % end\"\n  severity: high\n  \
             for_events: [process, file]\n  condition: file.path contains \"{marker}\" or process.executable contains \"{marker}\"\n  \
             output: \"%file.path by %process.command_line\"\n"
        ),
    )
    .unwrap();
    let mut l = vigil_rules::Loader::new();
    l.add_path(&rule_file);
    let (rules, report) = l.load();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let rules = std::sync::Arc::new(rules);
    let rule = &rules.rules()[0];
    let out_file = dir_c.join("out.json");
    let sink = vigil_outputs::JsonLines::file(&out_file).expect("output file");
    let Some(mut h) = Harness::start_with_sink(
        "hostile_strings_in_real_events",
        |c| c.agent.events = true,
        Box::new(sink),
        std::sync::Arc::clone(&rules),
    ) else {
        return;
    };

    let mut files = Vec::new();
    for (label, hostile) in NAMES {
        let mut name = format!("{marker}-{label}-").into_bytes();
        name.extend_from_slice(hostile);
        let mut open_path = dir_c.as_os_str().as_bytes().to_vec();
        open_path.push(b'/');
        open_path.extend_from_slice(&name);
        let mut exe_path = open_path.clone();
        exe_path.extend_from_slice(b"-exe");
        // open for writing (reported anywhere) by a child process
        let st = Command::new("/usr/bin/touch")
            .arg(p(&open_path))
            .status()
            .unwrap();
        assert!(st.success(), "touch {label}");
        std::fs::copy("/bin/true", p(&exe_path)).unwrap();
        let st = run_retrying_etxtbsy(
            Command::new(p(&exe_path))
                .arg(OsStr::from_bytes(hostile))
                .arg("second arg"),
        );
        assert!(st.success(), "exec {label}");
        files.push((*label, open_path, exe_path, hostile.to_vec()));
    }
    // A 4 KiB argument (4096 bytes: with argv[0] it passes the kernel's
    // 4095-byte argv capture) and a 3000-byte one that fits.
    let long: Vec<u8> = format!("{marker}-long-")
        .bytes()
        .chain((0..4096).map(|i| b'a' + (i % 26) as u8))
        .take(4096)
        .collect();
    let fits: Vec<u8> = format!("{marker}-fits-")
        .bytes()
        .chain(long.iter().copied().cycle())
        .take(3000)
        .collect();
    for arg in [&long, &fits] {
        let st = Command::new("/bin/true")
            .arg(OsStr::from_bytes(arg))
            .status()
            .unwrap();
        assert!(st.success());
    }

    for (label, open_path, exe_path, hostile) in &files {
        let ev = h.expect(&format!("open of the {label} file"), |e| {
            e.k.hdr.kind == kind::OPEN && e.file_path.as_deref() == Some(&open_path[..])
        });
        check_event(
            &format!("open {label}"),
            &ev,
            rule,
            &[("file.path", "file.path", "filePath", open_path)],
        );
        let ev = h.expect(&format!("exec of the {label} program"), |e| {
            e.k.hdr.kind == kind::EXEC
                && e.process
                    .as_ref()
                    .is_some_and(|p| p.exe[..] == exe_path[..])
        });
        let pinfo = ev.process.as_ref().unwrap();
        assert_eq!(
            pinfo.args.to_vec(),
            vec![exe_path.clone(), hostile.clone(), b"second arg".to_vec()],
            "{label}: argv bytes exactly as passed"
        );
        let cmdline = [&exe_path[..], b" ", hostile, b" second arg"].concat();
        check_event(
            &format!("exec {label}"),
            &ev,
            rule,
            &[
                ("process.executable", "exe", "sproc", exe_path),
                (
                    "process.command_line",
                    "process.command_line",
                    "cs2",
                    &cmdline,
                ),
            ],
        );
        // argv as a JSON array, each element round-tripping
        let ecs: serde_json::Value =
            serde_json::from_slice(&vigil_engine::ecs::encode(&ev, "host", "event")).unwrap();
        let args: Vec<&str> = json_field(&ecs, "process.args")
            .and_then(|v| v.as_array())
            .expect("process.args")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            args,
            vec![
                encoders::json_text(exe_path),
                encoders::json_text(hostile),
                "second arg".to_string()
            ],
            "{label}: process.args"
        );
    }

    // The long arguments: whole, or cut and marked.
    for (what, arg) in [("4 KiB", &long), ("3000-byte", &fits)] {
        let ev = h.expect(&format!("exec with the {what} argument"), |e| {
            e.k.hdr.kind == kind::EXEC
                && e.process.as_ref().is_some_and(|p| {
                    p.args
                        .get(1)
                        .is_some_and(|a| a.starts_with(&arg[..marker.len() + 6]))
                })
        });
        let ecs: serde_json::Value =
            serde_json::from_slice(&vigil_engine::ecs::encode(&ev, "host", "event")).unwrap();
        let got = json_field(&ecs, "process.args")
            .and_then(|v| v.get(1))
            .and_then(|v| v.as_str())
            .unwrap();
        let marked = json_field(&ecs, "vigil.truncated")
            .and_then(|v| v.as_array())
            .is_some_and(|a| a.iter().any(|x| x == "process.args"));
        eprintln!(
            "{what} argument: {} of {} bytes reported, truncated mark: {marked}",
            got.len(),
            arg.len()
        );
        if got.len() == arg.len() {
            assert_eq!(got.as_bytes(), &arg[..], "{what}: whole");
            assert!(!marked, "{what}: whole but marked truncated");
        } else {
            assert!(
                arg.starts_with(got.as_bytes()),
                "{what}: a prefix, no byte lost before the cut"
            );
            assert!(
                marked,
                "{what}: cut to {} bytes but vigil.truncated does not say so: {ecs}",
                got.len()
            );
        }
        if what == "3000-byte" {
            assert_eq!(
                got.len(),
                3000,
                "a 3000-byte argument fits the 4 KiB argv capture"
            );
        }
        for (f, bytes, _) in &encoders::encode_all(&ev, "host", None).out {
            encoders::one_line(bytes).unwrap_or_else(|m| panic!("{what} {}: {m}", f.as_str()));
            assert!(
                bytes.len() > 2900,
                "{what}: {} kept the argument ({} bytes)",
                f.as_str(),
                bytes.len()
            );
        }
    }

    // End to end: the agent's own JSON file output.
    h.collect_for(Duration::from_millis(200));
    h.stop();
    let text = std::fs::read(&out_file).expect("output file");
    let mut seen_open = BTreeMap::new();
    let mut alerts = 0;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        encoders::one_line(line).unwrap_or_else(|m| panic!("output file: {m}"));
        let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_else(|e| {
            panic!(
                "output line is not JSON ({e}): {}",
                String::from_utf8_lossy(line)
            )
        });
        if let Some(fp) = json_field(&v, "file.path").and_then(|x| x.as_str()) {
            seen_open.insert(fp.to_string(), ());
        }
        if json_field(&v, "rule.id").and_then(|x| x.as_str()) == Some("hostile_marker")
            && json_field(&v, "event.kind").and_then(|x| x.as_str()) == Some("alert")
        {
            alerts += 1;
            assert_eq!(
                json_field(&v, "rule.name").and_then(|x| x.as_str()),
                Some(rule.name.as_str()),
                "{v}"
            );
        }
    }
    for (label, open_path, _, _) in &files {
        assert!(
            seen_open.contains_key(&encoders::json_text(open_path)),
            "output file shows the {label} file.path"
        );
    }
    assert!(
        alerts >= files.len() * 2,
        "alerts in the output file: {alerts}"
    );
}

/// Every mapping of the CEF table in docs/outputs.md that a connect and an
/// open carry, end to end: a real event through the engine's field list
/// and the CEF encoder.
#[test]
fn cef_extensions_carry_the_documented_fields_of_real_events() {
    let dir = TempDir(std::env::temp_dir().join(vigil_tests::unique_marker("cef")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let dir_c = std::fs::canonicalize(&dir.0).unwrap();
    let prefix = format!("{}/", dir_c.display());
    let Some(mut h) = Harness::start(
        "cef_extensions_carry_the_documented_fields_of_real_events",
        |c| c.sensors.report_paths.push(prefix),
    ) else {
        return;
    };
    let cef = |ev: &Event| -> BTreeMap<String, String> {
        let e = encoders::encode_all(ev, "host", None);
        let (_, bytes, _) = e
            .out
            .iter()
            .find(|(f, _, _)| matches!(f, Format::Cef))
            .expect("a CEF encoding");
        encoders::cef_extension(bytes)
            .unwrap()
            .into_iter()
            .collect()
    };
    // A refused connect to a closed loopback port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (pid, _) = common::trigger(&["connect", "127.0.0.1", &port.to_string()]);
    let ev = h.expect("refused connect", |e| {
        e.k.hdr.pid == pid && e.k.hdr.kind == kind::CONNECT
    });
    let ext = cef(&ev);
    for (k, v) in [
        ("act", "connect"),
        ("cat", "network"),
        ("outcome", "failure"),
        ("proto", "tcp"),
        ("dst", "127.0.0.1"),
        ("dpt", port.to_string().as_str()),
        ("spid", pid.to_string().as_str()),
    ] {
        assert_eq!(ext.get(k).map(String::as_str), Some(v), "CEF {k}: {ext:?}");
    }
    // An open: file.path and file.name.
    let file = dir_c.join("cef-target.txt");
    std::fs::write(&file, b"x").unwrap();
    let (pid, _) = common::trigger(&["open", file.to_str().unwrap()]);
    let ev = h.expect("open", |e| {
        e.k.hdr.pid == pid
            && e.k.hdr.kind == kind::OPEN
            && e.file_path.as_deref() == Some(file.as_os_str().as_encoded_bytes())
    });
    let ext = cef(&ev);
    for (k, v) in [
        ("act", "open"),
        ("cat", "file"),
        ("outcome", "success"),
        ("filePath", file.to_str().unwrap()),
        ("fname", "cef-target.txt"),
    ] {
        assert_eq!(ext.get(k).map(String::as_str), Some(v), "CEF {k}: {ext:?}");
    }
}
