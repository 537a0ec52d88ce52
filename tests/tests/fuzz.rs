//! Time-bounded mutation fuzzing of every parser that takes hostile input,
//! starting from the corpus in `tests/corpus/` (see `tests/src/fuzz.rs`
//! for the mutator and the knobs). No root needed.
//!
//! Quick (CI): `cargo test --release -p vigil-tests --test fuzz` (6 s a
//! target). Full: `VIGIL_FUZZ_SECONDS=600 cargo test --release -p
//! vigil-tests --test fuzz -- --test-threads=2`. A failure prints the seed
//! and the path of the saved input; `VIGIL_FUZZ_INPUT=PATH` replays it.
//!
//! Each target asserts more than "no panic": errors name the file (and a
//! line inside it), and whatever loads is evaluated against events and
//! encoded by every output encoder, whose output must stay one line.

mod common;

use common::encoders;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use vigil_bpf::abi::{self, Hdr, kind};
use vigil_bpf::decode::{decode, encode_record};
use vigil_engine::agent::Pipeline;
use vigil_engine::capture::{CaptureWriter, Context, Seed, frame};
use vigil_engine::config::Config;
use vigil_engine::host::{Lookup, ProcSnapshot, RecordedHost, Users};
use vigil_rules::{Example, Field, Loader, RuleSet, Scratch, Value, cond};
use vigil_tests::fuzz::{self, Exec, Verdict};

fn corpus(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(sub)
}

fn seeds(dirs: &[PathBuf]) -> Vec<Vec<u8>> {
    let v: Vec<Vec<u8>> = dirs
        .iter()
        .flat_map(|d| fuzz::read_corpus(d))
        .map(|(_, b)| b)
        .collect();
    assert!(!v.is_empty(), "no corpus files in {dirs:?}");
    v
}

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Lines as YAML and TOML count them (a lone CR breaks a line too), plus
/// one: an error at the end of the text may name the line after the last.
fn lines_in(t: &str) -> usize {
    let b = t.as_bytes();
    let breaks = (0..b.len())
        .filter(|&i| b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n')))
        .count();
    breaks + 2
}

/// Events with hostile values every loaded rule is evaluated against.
fn examples() -> Vec<Example> {
    let s = |b: &[u8]| Value::Str(b.to_vec().into());
    let base = |action: &[u8]| {
        vec![
            (Field::EventAction, s(action)),
            (Field::ProcessName, s(b"ba\xffsh")),
            (Field::ProcessExecutable, s(b"/tmp/\x1b[31mred\n")),
            (Field::ProcessCommandLine, s(b"curl x | sh %s \\ \"'=]|")),
            (Field::FilePath, s(b"/etc/\n*x\0y")),
            (Field::UserName, s(b"")),
            (Field::UserId, Value::Int(0)),
            (Field::DestinationPort, Value::Int(4444)),
            (
                Field::DestinationIp,
                Value::Ip("10.1.1.1".parse().expect("ip")),
            ),
            (Field::ExecMemfd, Value::Bool(true)),
            (Field::ContainerId, s(&[b'a'; 64])),
        ]
    };
    [&b"exec"[..], b"open", b"connect", b"ptrace", b"bpf-load"]
        .iter()
        .map(|a| Example {
            line: 0,
            want: true,
            values: base(a),
        })
        .collect()
}

/// Loads one rule source and checks the report: every error names the
/// file and a line inside it; whatever loaded evaluates and renders.
fn load_rules(name: &str, input: &[u8], evs: &[Example]) -> Verdict {
    let t = text(input);
    let mut l = Loader::new();
    l.add_source(name, &t);
    let (set, report) = l.load();
    for e in &report.errors {
        if e.file != name {
            return Err(format!("error names file {:?}, not {name:?}: {e}", e.file));
        }
        if e.line > lines_in(&t) {
            return Err(format!(
                "error line {} past the end ({} lines): {e}",
                e.line,
                lines_in(&t)
            ));
        }
        if e.message.trim().is_empty() {
            return Err(format!("empty error message at line {}", e.line));
        }
    }
    let mut out = Vec::new();
    let mut scratch = Scratch::new();
    for ev in evs {
        out.clear();
        set.evaluate(ev, &mut scratch, &mut out);
        for r in &out {
            let _ = r.message(ev);
        }
    }
    let _ = set.test_examples();
    Ok(report.errors.is_empty() && !set.is_empty())
}

const RULE_TOKENS: &[&[u8]] = &[
    b"- rule: ",
    b"- list: ",
    b"- macro: ",
    b"  condition: ",
    b"  items: ",
    b"  exceptions:\n    - fields: [process.name]\n      values: [[a]]\n",
    b"  examples:\n    - match: {process.name: x}\n",
    b"  output: \"%process.name %file.path %%\"\n",
    b"  for_events: [process, file, network]\n",
    b"  severity: ",
    b"  enabled: ",
    b"  name: ",
    b"process.name",
    b"file.path",
    b" and ",
    b" or ",
    b" not ",
    b" in (",
    b"regex",
    b"glob",
    b"%",
    b"\"\\",
];

const SIGMA_TOKENS: &[&[u8]] = &[
    b"|contains",
    b"|startswith",
    b"|endswith",
    b"|all",
    b"|re",
    b"|cidr",
    b"|base64offset",
    b"|windash",
    b"|cased",
    b"|exists",
    b"|gt",
    b"condition: ",
    b"1 of sel*",
    b"all of them",
    b" and not ",
    b" | count() > 5",
    b"logsource:\n    product: linux\n    category: process_creation\n",
    b"detection:\n",
    b"    - ",
    b"null",
    b"CommandLine",
    b"Image",
    b"TargetFilename",
    b"DestinationIp",
    b"'*'",
    b"'?'",
    b"\\*",
];

const COND_TOKENS: &[&[u8]] = &[
    b" and ",
    b" or ",
    b"not ",
    b"(",
    b")",
    b" in ",
    b" iin ",
    b" = ",
    b" != ",
    b" < ",
    b" startswith ",
    b" icontains ",
    b" glob ",
    b" regex ",
    b" cidr ",
    b" exists",
    b"process.name",
    b"destination.port",
    b"destination.ip",
    b"\"[\"",
    b"\"(?:\"",
    b"\"\\\"",
    b"::1/129",
    b"300.1.1.1/8",
    b"0x",
    b"-0",
];

const CONFIG_TOKENS: &[&[u8]] = &[
    b"[agent]\n",
    b"[sensors]\n",
    b"[outputs]\n",
    b"[perf]\n",
    b"[baselines]\n",
    b"[[agent]]\n",
    b"[agent.x]\n",
    b" = ",
    b"\"\"\"",
    b"'''",
    b"[",
    b"]",
    b"{",
    b"}",
    b"true",
    b"1979-05-27T07:32:00Z",
    b"inf",
    b"nan",
    b"0o777",
    b"0b1",
    b"1_000",
    b"ring_buffer_bytes",
    b"disabled",
    b"rate_limit_per_sec",
    b"metrics_listen",
    b"data_dir",
    b"urls",
];

fn fuzz_rules(
    target: &'static str,
    name: &'static str,
    dirs: Vec<PathBuf>,
    dict: &'static [&'static [u8]],
) {
    let st = fuzz::run(target, seeds(&dirs), dict, move || {
        let evs = examples();
        Box::new(move |input: &[u8]| load_rules(name, input, &evs)) as Exec
    });
    assert!(st.execs > 0);
}

#[test]
fn rules() {
    fuzz_rules(
        "rules",
        "fuzz/rules.yaml",
        vec![
            corpus("rules"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/builtin"),
        ],
        RULE_TOKENS,
    );
}

#[test]
fn sigma() {
    fuzz_rules(
        "sigma",
        "fuzz/sigma.yml",
        vec![
            corpus("sigma"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/tests/sigma/rules/linux"),
        ],
        SIGMA_TOKENS,
    );
}

fn yaml_single(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[test]
fn conditions() {
    let st = fuzz::run(
        "conditions",
        seeds(&[corpus("conditions")]),
        COND_TOKENS,
        || {
            let evs = examples();
            Box::new(move |input: &[u8]| {
                let t = text(input);
                let parsed = cond::parse(&t, &mut cond::NoEnv);
                if let Err(m) = &parsed
                    && m.trim().is_empty()
                {
                    return Err("empty condition error".into());
                }
                // The same text compiled inside a rule, and evaluated.
                let rule = format!(
                    "- rule: c\n  for_events: [process, file, network]\n  condition: {}\n",
                    yaml_single(t.trim_end_matches('\n'))
                );
                load_rules("fuzz/cond.yaml", rule.as_bytes(), &evs)?;
                Ok(parsed.is_ok())
            }) as Exec
        },
    );
    assert!(st.execs > 0);
}

#[test]
fn config() {
    let dir = vigil_tests::fuzz::out_dir().join(format!("config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let _cleanup = common::TempDir(dir.clone());
    let st = fuzz::run(
        "config",
        seeds(&[corpus("config")]),
        CONFIG_TOKENS,
        move || {
            let path = dir.join("fuzz.toml");
            Box::new(move |input: &[u8]| {
                const NAME: &str = "fuzz/config.toml";
                let r = match std::str::from_utf8(input) {
                    Ok(t) => Config::parse(t, NAME),
                    // Not UTF-8: through the file loader, which must say so.
                    Err(_) => {
                        std::fs::write(&path, input).map_err(|e| e.to_string())?;
                        let r = Config::load(&path);
                        if let Err(e) = &r
                            && e.file != path.display().to_string()
                        {
                            return Err(format!("error names {:?}, not the file: {e}", e.file));
                        }
                        return Ok(r.is_ok());
                    }
                };
                match r {
                    Ok(_) => Ok(true),
                    Err(e) => {
                        let t = text(input);
                        if e.file != NAME {
                            return Err(format!("error names {:?}, not {NAME}: {e}", e.file));
                        }
                        if e.line > lines_in(&t) {
                            return Err(format!("line {} past the end: {e}", e.line));
                        }
                        if e.message.trim().is_empty() {
                            return Err(format!("empty message: {e}"));
                        }
                        Ok(false)
                    }
                }
            }) as Exec
        },
    );
    assert!(st.execs > 0);
}

/// A sink collecting JSON lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<Vec<u8>>>>);

impl vigil_outputs::Sink for Lines {
    fn write_record(&mut self, r: &[u8]) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r.to_vec());
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "fuzz".into()
    }
}

impl Lines {
    /// Every record written is one parseable JSON line; clears them.
    fn check(&self) -> Result<usize, String> {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for r in v.iter() {
            encoders::one_line(r).map_err(|m| format!("sink record: {m}"))?;
            serde_json::from_slice::<serde_json::Value>(r)
                .map_err(|e| format!("sink record is not JSON ({e}): {}", text(r)))?;
        }
        let n = v.len();
        v.clear();
        Ok(n)
    }
}

fn builtin_rules() -> Arc<RuleSet> {
    let mut l = Loader::new();
    l.add_builtin();
    l.add_path(&corpus("rules").join("small.yaml"));
    let (set, report) = l.load();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    Arc::new(set)
}

fn hostile_users() -> Users {
    let mut u = Users::default();
    u.users.insert(0, "root".into());
    u.users.insert(1000, "bad\nuser\x1b[31m|=]\"".into());
    u.groups.insert(0, "g\u{85}\u{9b}31m".into());
    u
}

fn context() -> Context {
    Context {
        abi_version: abi::ABI_VERSION,
        vigil_version: "fuzz".into(),
        hostname: "host\n\x1b]0;t\x07|=]".into(),
        boot_offset_ns: 1_764_000_000_000_000_000,
        users: hostile_users(),
    }
}

#[test]
fn records() {
    let st = fuzz::run(
        "records",
        seeds(&[corpus("records")]),
        RECORD_TOKENS,
        || {
            let mut cfg = Config::default();
            cfg.agent.events = true;
            // one thread: each input's records are checked right after it
            cfg.pipeline.workers = 1;
            let lines = Lines::default();
            let (tx, rx) = mpsc::channel();
            let mut p = Pipeline::new(&cfg, &context(), Some(Box::new(lines.clone())), Some(tx));
            let rules = builtin_rules();
            p.set_rules(Arc::clone(&rules));
            let mut host = RecordedHost::default();
            let mut rng = fuzz::Rng::new(fuzz::run_seed());
            let mut scratch = Scratch::new();
            Box::new(move |input: &[u8]| {
                let mut sample = input.to_vec();
                // Mostly keep hdr.size consistent so mutations reach the body.
                if sample.len() >= 8 && !rng.one_in(4) {
                    let n = sample.len() as u32;
                    sample[4..8].copy_from_slice(&n.to_ne_bytes());
                }
                let ok = decode(&sample).is_ok();
                p.handle(&sample, &mut host);
                lines.check()?;
                let host_name = context().hostname;
                while let Ok(ev) = rx.try_recv() {
                    let e = encoders::encode_all(&ev, &host_name, None);
                    encoders::check_all(&e)?;
                    let mut m = Vec::new();
                    rules.evaluate(&ev, &mut scratch, &mut m);
                    for r in &m {
                        encoders::check_all(&encoders::encode_all(&ev, &host_name, Some(r)))?;
                    }
                }
                Ok(ok)
            }) as Exec
        },
    );
    assert!(st.execs > 0);
}

const RECORD_TOKENS: &[&[u8]] = &[
    &[0xff, 0xff],
    &[0, 0],
    &[1, 0],
    &[10, 0],
    &[0xff, 0xff, 0xff, 0xff],
    &[0x80, 0, 0, 0],
    b"/etc/shadow\0",
    b"/\0",
];

#[test]
fn capture() {
    let dir = vigil_tests::fuzz::out_dir().join(format!("capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let _cleanup = common::TempDir(dir.clone());
    let st = fuzz::run(
        "capture",
        seeds(&[corpus("capture")]),
        CAPTURE_TOKENS,
        move || {
            let cfg = {
                let mut c = Config::default();
                c.agent.events = true;
                c
            };
            let rules = builtin_rules();
            let path = dir.join("fuzz.vcap");
            Box::new(move |input: &[u8]| {
                std::fs::write(&path, input).map_err(|e| e.to_string())?;
                let lines = Lines::default();
                let r = vigil_engine::replay::replay_with(
                    &path,
                    &cfg,
                    Some(Arc::clone(&rules)),
                    Some(Box::new(lines.clone())),
                    None,
                    |_, _| {},
                );
                lines.check()?;
                match r {
                    Ok(_) => Ok(true),
                    Err(e) => {
                        let m = e.to_string();
                        if !m.starts_with(&path.display().to_string()) {
                            return Err(format!("capture error does not name the file: {m}"));
                        }
                        Ok(false)
                    }
                }
            }) as Exec
        },
    );
    assert!(st.execs > 0);
}

const CAPTURE_TOKENS: &[&[u8]] = &[
    b"VIGILCAP",
    &[1, 0, 0, 0],
    &[2, 0x10, 0, 0, 0],
    &[3, 2, 0, 0, 0, b'{', b'}'],
    &[4, 0, 0, 0, 0],
    &[5, 4, 0, 0, 0, b'n', b'u', b'l', b'l'],
    &[9, 0, 0, 0, 0],
    &[2, 0xff, 0xff, 0xff, 0x03],
    b"{\"q\":\"Proc\",\"pid\":1,\"answer\":null}",
    b"{\"q\":\"CgroupPath\",\"id\":18446744073709551615,\"answer\":\"/\\n\"}",
];

// ---- The binary corpus: generated, committed, checked for rot ----

fn hdr(k: u16, pid: u32) -> Hdr {
    let mut comm = [0u8; 16];
    comm[..15].copy_from_slice(b"a\nb\x1b[31m|=]\"\xff\xfe%");
    Hdr {
        kind: k,
        pid,
        tid: pid,
        ppid: 1,
        uid: 1000,
        gid: 0,
        euid: 0,
        ts_ns: 5_000_000_000,
        start_ns: 4_000_000_000,
        pidns: 0xeffffffc,
        mntns: 0xf0000000,
        netns: 0xf0000098,
        comm,
        ..Hdr::default()
    }
}

/// One record of every kind, strings full of hostile bytes.
fn record_seeds() -> Vec<(String, Vec<u8>)> {
    let name: &[u8] = b"/tmp/vigil-hostile\n\x1b[31m\x1b]0;t\x07\xff\xfe\"\\%|=]";
    let argv = {
        let mut a = b"/bin/true\0".to_vec();
        a.extend_from_slice(&[b'A'; 4000]);
        a.extend_from_slice(b"\0x\ny\0");
        a
    };
    let mut v = Vec::new();
    let mut exec = encode_record(
        hdr(kind::EXEC, 100),
        &abi::Exec {
            argc: 3,
            ..Default::default()
        },
        &[name, &argv, b"/tmp", name],
    );
    v.push(("exec.bin".to_string(), exec.clone()));
    // Truncated-string flags set.
    exec[2] = 0x0f;
    v.push(("exec-truncated.bin".to_string(), exec));
    // Every exec flag bit but the environment's (which needs one trailing).
    {
        use abi::exec_flags::*;
        v.push((
            "exec-flags.bin".to_string(),
            encode_record(
                hdr(kind::EXEC, 100),
                &abi::Exec {
                    argc: 3,
                    exec_flags: MEMFD
                        | UNLINKED
                        | SETUID
                        | SETGID
                        | KILLED
                        | WOULD_KILL
                        | KILL_REFUSED
                        | KILL_FAILED,
                    ..Default::default()
                },
                &[name, &argv, b"/tmp", name],
            ),
        ));
    }
    v.push((
        "open.bin".into(),
        encode_record(
            hdr(kind::OPEN, 101),
            &abi::Open {
                flags: 0o101,
                ..Default::default()
            },
            &[name, b"rel\nname"],
        ),
    ));
    v.push((
        "fork.bin".into(),
        encode_record(hdr(kind::FORK, 102), &abi::Fork::default(), &[]),
    ));
    v.push((
        "exit.bin".into(),
        encode_record(hdr(kind::EXIT, 102), &abi::Exit::default(), &[]),
    ));
    for (n, k) in [
        ("connect", kind::CONNECT),
        ("accept", kind::ACCEPT),
        ("listen", kind::LISTEN),
        ("udp_send", kind::UDP_SEND),
    ] {
        v.push((
            format!("{n}.bin"),
            encode_record(hdr(k, 103), &abi::Sock::default(), &[b"/run/\n.sock"]),
        ));
    }
    v.push((
        "dns.bin".into(),
        encode_record(
            hdr(kind::DNS, 104),
            &abi::Sock::default(),
            &[b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07ex\nmple\x03com\x00\x00\x01\x00\x01"],
        ),
    ));
    v.push((
        "tcp_state.bin".into(),
        encode_record(hdr(kind::TCP_STATE, 105), &abi::TcpState::default(), &[]),
    ));
    v.push((
        "iouring.bin".into(),
        encode_record(
            hdr(kind::IOURING, 106),
            &abi::IoUring::default(),
            &[name, b"/", name],
        ),
    ));
    v.push((
        "compat.bin".into(),
        encode_record(
            hdr(kind::COMPAT, 107),
            &abi::Compat::default(),
            &[name, name, b"\x02\x00"],
        ),
    ));
    v.push((
        "capable.bin".into(),
        encode_record(hdr(kind::CAPABLE, 108), &abi::Capable::default(), &[]),
    ));
    v.push((
        "setid.bin".into(),
        encode_record(hdr(kind::SETID, 109), &abi::SetId::default(), &[]),
    ));
    v.push((
        "capset.bin".into(),
        encode_record(hdr(kind::CAPSET, 110), &abi::CapSet::default(), &[]),
    ));
    v.push((
        "ptrace.bin".into(),
        encode_record(hdr(kind::PTRACE, 111), &abi::Ptrace::default(), &[]),
    ));
    v.push((
        "bpf.bin".into(),
        encode_record(hdr(kind::BPF, 112), &abi::Bpf::default(), &[name]),
    ));
    v.push((
        "module.bin".into(),
        encode_record(
            hdr(kind::MODULE, 113),
            &abi::Module::default(),
            &[name, b"p=\n1"],
        ),
    ));
    v.push((
        "memfd.bin".into(),
        encode_record(hdr(kind::MEMFD, 114), &abi::Memfd::default(), &[name]),
    ));
    // the rare-syscall sensor: an unknown syslog action and a number the
    // sensor never reports (decoded by number, not trusted)
    v.push((
        "syscall.bin".into(),
        encode_record(
            hdr(kind::SYSCALL, 114),
            &abi::Syscall {
                ret: -1,
                nr: 103,
                _pad: 0,
                args: [u64::MAX, u64::MAX, 1 << 63],
            },
            &[],
        ),
    ));
    v.push((
        "syscall-unknown-nr.bin".into(),
        encode_record(
            hdr(kind::SYSCALL, 114),
            &abi::Syscall {
                ret: i64::MIN,
                nr: u32::MAX,
                _pad: u32::MAX,
                args: [0; 3],
            },
            &[],
        ),
    ));
    v.push((
        "fchange.bin".into(),
        encode_record(
            hdr(kind::FCHANGE, 115),
            &abi::FChange::default(),
            &[b"/etc", name, b"/tmp", name],
        ),
    ));
    v.push((
        "signal.bin".into(),
        encode_record(hdr(kind::SIGNAL, 116), &abi::Signal::default(), &[]),
    ));
    v.push((
        "mount.bin".into(),
        encode_record(
            hdr(kind::MOUNT, 117),
            &abi::Mount::default(),
            &[name, name, b"ext4\n", b"/"],
        ),
    ));
    v.push((
        "umount.bin".into(),
        encode_record(hdr(kind::UMOUNT, 118), &abi::Umount::default(), &[name]),
    ));
    v.push((
        "unshare.bin".into(),
        encode_record(hdr(kind::UNSHARE, 119), &abi::Ns::default(), &[]),
    ));
    v.push((
        "setns.bin".into(),
        encode_record(hdr(kind::SETNS, 120), &abi::Ns::default(), &[]),
    ));
    v.push((
        "readline.bin".into(),
        encode_record(
            hdr(kind::READLINE, 121),
            &abi::Readline::default(),
            &[b"echo \x1b[2J\n\xff"],
        ),
    ));
    v
}

fn write_capture(path: &Path, recs: &[Vec<u8>], with_lookups: bool) {
    let mut w = CaptureWriter::create(path, &context()).expect("create capture");
    let snap = |pid| {
        ProcSnapshot {
        pid,
        ppid: 1,
        start_ns: 1,
        exe: b"/bin/\nsh".to_vec(),
        args: vec![b"sh".to_vec(), b"-c\x1b[31m".to_vec(), b"\xff".to_vec()],
        cwd: b"/".to_vec(),
        comm: b"sh".to_vec(),
        cgroup: "0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n".into(),
        uid_map: Some("0 0 4294967295\n".into()),
    }
    };
    w.json(
        frame::SEED,
        &Seed {
            at_ns: 1,
            procs: vec![snap(1), snap(100)],
        },
    )
    .expect("seed");
    for r in recs {
        if with_lookups {
            w.lookups(vec![
                Lookup::ProcCgroup {
                    pid: 100,
                    answer: Some("0::/\n".into()),
                },
                Lookup::Proc {
                    pid: 101,
                    answer: Some(snap(101)),
                },
            ])
            .expect("lookups");
        }
        w.record(r).expect("record");
    }
    w.json(frame::SUMMARY, &serde_json::json!({"lost": 0}))
        .expect("summary");
    w.flush().expect("flush");
}

/// This build's record ABI as text: version, header size and field
/// offsets, every kind's number and body size, and the header and exec
/// flag bits. Committed as `tests/corpus/abi.txt` beside the corpus it was
/// generated with.
fn abi_fingerprint() -> String {
    use std::fmt::Write;
    use std::mem::{offset_of, size_of};
    let mut s = String::new();
    let mut line = |k: &str, v: u64| writeln!(s, "{k} {v}").expect("write to a String");
    line("abi_version", u64::from(abi::ABI_VERSION));
    line("hdr.bytes", size_of::<Hdr>() as u64);
    for (n, o) in [
        ("kind", offset_of!(Hdr, kind)),
        ("flags", offset_of!(Hdr, flags)),
        ("size", offset_of!(Hdr, size)),
        ("ts_ns", offset_of!(Hdr, ts_ns)),
        ("start_ns", offset_of!(Hdr, start_ns)),
        ("cgroup_id", offset_of!(Hdr, cgroup_id)),
        ("pid", offset_of!(Hdr, pid)),
        ("tid", offset_of!(Hdr, tid)),
        ("ppid", offset_of!(Hdr, ppid)),
        ("ns_pid", offset_of!(Hdr, ns_pid)),
        ("uid", offset_of!(Hdr, uid)),
        ("auid", offset_of!(Hdr, auid)),
        ("pidns", offset_of!(Hdr, pidns)),
        ("netns", offset_of!(Hdr, netns)),
        ("str_len", offset_of!(Hdr, str_len)),
        ("comm", offset_of!(Hdr, comm)),
    ] {
        line(&format!("hdr.{n}"), o as u64);
    }
    for k in 0..abi::KIND_SLOTS as u16 {
        if let Some(n) = vigil_bpf::decode::body_size(k) {
            line(&format!("kind.{k}.body"), n as u64);
        }
    }
    line("exec.exec_flags", offset_of!(abi::Exec, exec_flags) as u64);
    line("exec.argc", offset_of!(abi::Exec, argc) as u64);
    use abi::{exec_flags as x, flags as f};
    for (n, v) in [
        ("flags.TRUNC0", u32::from(f::TRUNC0)),
        ("flags.LOSS", u32::from(f::LOSS)),
        ("flags.THREAD", u32::from(f::THREAD)),
        ("flags.COMPAT", u32::from(f::COMPAT)),
        ("exec_flags.MEMFD", x::MEMFD),
        ("exec_flags.UNLINKED", x::UNLINKED),
        ("exec_flags.SETUID", x::SETUID),
        ("exec_flags.SETGID", x::SETGID),
        ("exec_flags.ENV", x::ENV),
        ("exec_flags.ENV_TRUNC", x::ENV_TRUNC),
        ("exec_flags.KILLED", x::KILLED),
        ("exec_flags.WOULD_KILL", x::WOULD_KILL),
        ("exec_flags.KILL_REFUSED", x::KILL_REFUSED),
        ("exec_flags.KILL_FAILED", x::KILL_FAILED),
    ] {
        line(n, u64::from(v));
    }
    s
}

/// Rewrites tests/corpus/{records,capture} and tests/corpus/abi.txt: run after an ABI change
/// (`cargo test --release -p vigil-tests --test fuzz -- --ignored regenerate`).
#[test]
#[ignore = "writes the committed binary corpus"]
fn regenerate_binary_corpus() {
    let recs = record_seeds();
    for (n, r) in &recs {
        std::fs::write(corpus("records").join(n), r).expect("write record");
    }
    let all: Vec<Vec<u8>> = recs.iter().map(|(_, r)| r.clone()).collect();
    write_capture(&corpus("capture").join("all-kinds.vcap"), &all, false);
    write_capture(
        &corpus("capture").join("with-lookups.vcap"),
        &all[..4],
        true,
    );
    // Header and context only.
    write_capture(&corpus("capture").join("empty.vcap"), &[], false);
    std::fs::write(corpus("abi.txt"), abi_fingerprint()).expect("write abi.txt");
}

/// The committed binary corpus still matches this build's ABI (otherwise
/// the fuzzer would only exercise the first error path).
#[test]
fn binary_corpus_is_current() {
    // The ABI the corpus was generated with is this build's: a moved flag
    // bit or a resized record fails here even where the seeds leave those
    // bytes zero.
    let committed = std::fs::read_to_string(corpus("abi.txt"))
        .expect("tests/corpus/abi.txt; regenerate (see regenerate_binary_corpus)");
    let now = abi_fingerprint();
    let moved: Vec<String> = now
        .lines()
        .filter(|l| !committed.lines().any(|c| c == *l))
        .map(|l| format!("now {l}"))
        .chain(
            committed
                .lines()
                .filter(|c| !now.lines().any(|l| l == *c))
                .map(|c| format!("was {c}")),
        )
        .collect();
    assert!(
        moved.is_empty(),
        "the record ABI moved since the corpus was generated ({}); regenerate (see regenerate_binary_corpus)",
        moved.join(", ")
    );
    let recs = fuzz::read_corpus(&corpus("records"));
    assert!(recs.len() >= 25, "records corpus: {} files", recs.len());
    for (p, b) in &recs {
        decode(b).unwrap_or_else(|e| {
            panic!(
                "{} no longer decodes ({e}); regenerate (see regenerate_binary_corpus)",
                p.display()
            )
        });
    }
    // Byte for byte what this build's ABI encodes for every seed: a record
    // that still decodes but lacks a field the ABI gained is stale too.
    for (n, want) in record_seeds() {
        let path = corpus("records").join(&n);
        let have = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; regenerate (see regenerate_binary_corpus)",
                path.display()
            )
        });
        assert!(
            have == want,
            "{} differs from this build's encoding of the seed; regenerate (see regenerate_binary_corpus)",
            path.display()
        );
    }
    let caps = fuzz::read_corpus(&corpus("capture"));
    assert!(caps.len() >= 3);
    for (p, _) in &caps {
        let s = vigil_engine::replay::replay(p, &Config::default(), None, None, |_, _| {})
            .unwrap_or_else(|e| panic!("{} no longer replays: {e}", p.display()));
        assert!(s.truncated.is_none(), "{}: {:?}", p.display(), s.truncated);
    }
}
