//! CLI tests driving the real `vigil` binary in a temp dir (no root needed).

use std::path::PathBuf;
use vigil_bpf::abi::{self, Hdr, kind};
use vigil_bpf::decode::encode_record;
use vigil_engine::capture::CaptureWriter;

mod common;
use common::vigil;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn bad_config_exits_2_naming_file_line_and_key() {
    let p = tmp("bad.toml");
    std::fs::write(
        &p,
        "[agent]\nevents = true\n[sensors]\nring_buffer_bytes = 1000\n",
    )
    .unwrap();
    let out = vigil()
        .arg("--config")
        .arg(&p)
        .arg("replay")
        .arg("/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4: sensors.ring_buffer_bytes:", p.display())),
        "{err}"
    );
}

#[test]
fn garbage_capture_exits_2_with_offset() {
    let p = tmp("garbage.vcap");
    std::fs::write(&p, b"not a capture at all").unwrap();
    let out = vigil().arg("replay").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad magic"), "{err}");
}

#[test]
fn replay_without_root_writes_ecs_json_lines() {
    let p = tmp("one.vcap");
    let ctx = common::test_context("replay-host");
    let mut w = CaptureWriter::create(&p, &ctx).unwrap();
    let hdr = common::cat_open_hdr();
    let body = abi::Open {
        ret: -2,
        ..Default::default()
    };
    // a failed relative open of "../etc/shadow" from /tmp, with a hostile byte
    w.record(&encode_record(hdr, &body, &[b"/tmp", b"../etc/shad\x1bow"]))
        .unwrap();
    w.record(b"\x01\x02garbage").unwrap();
    w.flush().unwrap();
    drop(w);
    let out_file = tmp("out.json");
    let out = vigil()
        .arg("replay")
        .arg(&p)
        .arg("--events")
        .arg("-o")
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 decode errors"), "{err}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["file"]["path"], "/etc/shad\u{1b}ow");
    assert_eq!(v["event"]["outcome"], "failure");
    assert_eq!(v["error"]["code"], "ENOENT");
    assert_eq!(v["host"]["hostname"], "replay-host");
    assert_eq!(v["@timestamp"], "2026-11-18T11:06:45.000000000Z");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "output files are private");
    std::fs::remove_file(&p).unwrap();
    std::fs::remove_file(&out_file).unwrap();
}

#[test]
fn rules_check_names_file_line_rule_and_suggestion_and_exits_2() {
    let p = tmp("bad-rules.yaml");
    std::fs::write(
        &p,
        "- rule: shell_in_container\n  condition: event.action = exec and process.nmae = bash\n",
    )
    .unwrap();
    let out = vigil().args(["rules", "check"]).arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "{}:2: rule `shell_in_container`: condition: unknown field or macro `process.nmae`",
            p.display()
        )) && text.contains("did you mean `process.name`?"),
        "{text}"
    );
    // The agent refuses the same file at start-up with exit 2 (no root
    // needed to get that far: rules load before the sensors).
    let out = vigil()
        .arg("replay")
        .arg("/nonexistent")
        .arg("--rules")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean"));
}

#[test]
fn an_undefined_list_is_an_error_in_rules_check_replay_and_run() {
    let p = tmp("undefined-list.yaml");
    std::fs::write(
        &p,
        "- list: my_shells\n  items: [bash, sh]\n- rule: shell_spawned\n  condition: event.action = exec and process.name in (zsh, my_shell)\n",
    )
    .unwrap();
    let want = format!(
        "{}:4: rule `shell_spawned`: condition: unknown list `my_shell` at column 47 (did you mean `my_shells`?)",
        p.display()
    );
    let out = vigil().args(["rules", "check"]).arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&want), "{text}");
    let out = vigil()
        .arg("replay")
        .arg("/nonexistent")
        .arg("--rules")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&want));
    // `vigil run` loads the rules before any sensor, so as root it refuses
    // the file the same way without loading a BPF program (it needs root to
    // get that far; as another user it stops at the root check).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut child = vigil()
            .args(["run", "--no-baselines", "--rules"])
            .arg(&p)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > std::time::Duration::from_secs(30) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("`vigil run` with an undefined list did not exit");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(2), "{err}");
        assert!(err.contains(&want), "{err}");
    }
}

/// Runs `vigil ARGS` with its stdout a pipe whose read end is already
/// closed: the first write fails with EPIPE.
fn run_into_closed_pipe(args: &[&str]) -> std::process::Output {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array; each is owned once.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    vigil()
        .args(args)
        .stdout(std::process::Stdio::from(w))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn printing_commands_end_quietly_when_the_reader_has_gone() {
    use std::os::unix::process::ExitStatusExt as _;
    let rules = tmp("pipe-rules.yaml");
    std::fs::write(&rules, "- rule: a\n  condition: process.name = x\n").unwrap();
    let rules = rules.to_str().unwrap().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["rules", "list", "--json"],
        vec!["rules", "list"],
        vec!["rules", "check"],
        vec!["rules", "check", &rules],
        vec!["rules", "test"],
        vec!["--help"],
        vec!["--version"],
        vec!["rules", "--help"],
    ];
    for args in cases {
        let out = run_into_closed_pipe(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "vigil {args:?}: {err}"
        );
        assert!(
            out.status.code() == Some(0) || out.status.signal() == Some(libc::SIGPIPE),
            "vigil {args:?}: {:?} {err}",
            out.status
        );
    }
}

#[test]
fn rules_check_reports_sigma_loaded_and_skipped_and_builtin_examples_pass() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/tests/sigma/rules");
    let out = vigil()
        .args(["rules", "check"])
        .arg(&corpus)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("50 files: 35 rules loaded (0 vigil, 35 Sigma, 0 Sigma correlations), 0 disabled, 7 below min_level"),
        "{text}"
    );
    assert!(text.contains("8 Sigma rules skipped"), "{text}");
    assert!(
        text.contains("logsource: service `sshd` is a log file"),
        "{text}"
    );
    let out = vigil().args(["rules", "test"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("passed, 0 failed"), "{text}");
}

#[test]
fn replay_re_runs_the_rules_offline() {
    let p = tmp("exec.vcap");
    let ctx = common::test_context("h");
    let mut w = CaptureWriter::create(&p, &ctx).unwrap();
    let hdr = Hdr {
        kind: kind::EXEC,
        pid: 777,
        tid: 777,
        ppid: 1,
        ts_ns: 6_000_000_000,
        start_ns: 6_000_000_000,
        comm: *b"x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ..Hdr::default()
    };
    w.record(&encode_record(
        hdr,
        &abi::Exec::default(),
        &[b"/dev/shm/x", b"/dev/shm/x\0-q", b"/", b"/dev/shm/x"],
    ))
    .unwrap();
    w.flush().unwrap();
    drop(w);
    let out_file = tmp("alerts.json");
    let out = vigil()
        .arg("replay")
        .arg(&p)
        .arg("-o")
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("one alert")).unwrap();
    assert_eq!(v["event"]["kind"], "alert");
    assert_eq!(v["rule"]["id"], "exec_from_temp_dir");
    assert_eq!(v["process"]["executable"], "/dev/shm/x");
    assert_eq!(text.lines().count(), 1, "{text}");
    std::fs::remove_file(&p).unwrap();
    std::fs::remove_file(&out_file).unwrap();
}

#[test]
fn baseline_cli_lists_promotes_and_exports_without_root() {
    use std::os::unix::fs::PermissionsExt;
    use vigil_baselines::{Baselines, Behaviour, ExeIdentity, Observation, Subject};
    let data = tmp("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cfg = tmp("bl.toml");
    std::fs::write(
        &cfg,
        format!("[agent]\ndata_dir = \"{}\"\n", data.display()),
    )
    .unwrap();
    let vigil_cfg = || {
        let mut c = vigil();
        c.arg("--config").arg(&cfg);
        c
    };
    // No database yet: a clear error.
    let out = vigil_cfg().args(["baseline", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no baselines at"));
    {
        let mut b =
            Baselines::open(&data.join("baselines"), vigil_baselines::Config::default()).unwrap();
        let subject = Subject {
            executable: b"/usr/sbin/demo",
            identity: ExeIdentity::Unknown,
            container: None,
        };
        b.observe(&Observation {
            unix_ns: 1,
            subject,
            behaviour: Behaviour::Spawn {
                child: b"/usr/bin/true",
            },
        });
        b.flush().unwrap();
    }
    let out = vigil_cfg().args(["baseline", "list"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("exe:/usr/sbin/demo"));
    let out = vigil_cfg()
        .args(["baseline", "promote", "exe:/usr/sbin/demo"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = vigil_cfg()
        .args([
            "baseline",
            "export",
            "exe:/usr/sbin/demo",
            "--format",
            "yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let y = String::from_utf8_lossy(&out.stdout);
    assert!(
        y.contains("/usr/bin/true") && y.contains("monitoring"),
        "{y}"
    );
    let out = vigil_cfg()
        .args(["baseline", "show", "exe:/nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn report_reads_the_kept_history_without_an_agent() {
    use vigil_engine::perf::{CgroupHist, History, HistoryLine};
    let dir = tmp("report-history");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut h = History::new(&dir, 1 << 20);
    for i in 0..12 {
        let mut slots = vec![0u64; 13];
        slots[12] = 30 + i;
        h.append(&HistoryLine {
            t: now - 120 + i as i64 * 10,
            secs: 10.0,
            cgroups: vec![CgroupHist {
                id: 42,
                path: Some("/machine/busy".into()),
                container: None,
                wakeup: slots,
                preempted: vec![],
                sum_ns: 1,
            }],
            pidnss: Some(5),
            steal_max_pct: Some(0.0),
        })
        .unwrap();
    }
    // an old line outside the window is left out
    h.append(&HistoryLine {
        t: now - 7200,
        secs: 10.0,
        cgroups: vec![],
        pidnss: Some(1_000_000),
        steal_max_pct: None,
    })
    .unwrap();
    let svg = dir.join("heat.svg");
    let out = vigil()
        .args(["report", "--since", "10m", "--dir"])
        .arg(&dir)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("12 intervals"), "{text}");
    assert!(
        text.contains("cgroup /machine/busy [cgroup id 42]: "),
        "{text}"
    );
    assert!(text.contains("2048 -> 4095"), "{text}");
    assert!(text.contains("pid-namespace switches: 60 "), "{text}");
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<?xml") && s.ends_with("</svg>\n"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&svg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let bad = vigil()
        .args(["report", "--since", "ten", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let none = vigil()
        .args(["report", "--dir"])
        .arg(dir.join("missing"))
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no history"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The output file's text and its baseline drift records.
fn drift_records(p: &std::path::Path) -> (String, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(p).unwrap();
    let drift = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["rule"]["ruleset"] == "baseline")
        .collect();
    (text, drift)
}

/// A capture of `/usr/sbin/demo-srv` (pid 900) opening `path` for reading.
fn demo_capture(p: &std::path::Path, path: &[u8]) {
    demo_capture_with(p, path, None);
}

/// [`demo_capture`], then `truncate(2)` of `dir`/`name` if given.
fn demo_capture_with(p: &std::path::Path, path: &[u8], truncate: Option<(&[u8], &[u8])>) {
    let ctx = common::test_context("h");
    let mut w = CaptureWriter::create(p, &ctx).unwrap();
    let hdr = Hdr {
        kind: kind::EXEC,
        pid: 900,
        tid: 900,
        ppid: 1,
        ts_ns: 6_000_000_000,
        start_ns: 6_000_000_000,
        comm: *b"demo-srv\0\0\0\0\0\0\0\0",
        ..Hdr::default()
    };
    let exec = abi::Exec {
        ino: 4711,
        dev: 8,
        mtime_sec: 1_700_000_000,
        argc: 1,
        ..Default::default()
    };
    w.record(&encode_record(
        hdr,
        &exec,
        &[
            b"/usr/sbin/demo-srv",
            b"demo-srv",
            b"/",
            b"/usr/sbin/demo-srv",
        ],
    ))
    .unwrap();
    let open = Hdr {
        kind: kind::OPEN,
        ts_ns: 6_100_000_000,
        ..hdr
    };
    let body = abi::Open {
        ret: 3,
        ..Default::default()
    };
    w.record(&encode_record(open, &body, &[path])).unwrap();
    if let Some((dir, name)) = truncate {
        let fc = Hdr {
            kind: kind::FCHANGE,
            ts_ns: 6_200_000_000,
            ..hdr
        };
        let body = abi::FChange {
            ret: 0,
            syscall: abi::sys::TRUNCATE,
            ..Default::default()
        };
        w.record(&encode_record(fc, &body, &[dir, name, b"", b""]))
            .unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn replay_learns_when_asked_and_checks_a_capture_against_a_promoted_baseline() {
    use std::os::unix::fs::PermissionsExt;
    let data = tmp("replay-bl-data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cfg = tmp("replay-bl.toml");
    std::fs::write(
        &cfg,
        format!("[agent]\ndata_dir = \"{}\"\n", data.display()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = vigil()
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), text, err)
    };
    let learned = tmp("replay-learn.vcap");
    demo_capture(&learned, b"/srv/demo/known.conf");
    let novel = tmp("replay-novel.vcap");
    demo_capture(&novel, b"/srv/demo/novel.conf");
    let out_file = tmp("replay-bl.json");
    let out_s = out_file.to_str().unwrap();

    // Read-only by default: nothing is stored.
    let (code, _, err) = run(&["replay", learned.to_str().unwrap(), "-o", out_s]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("read-only"), "{err}");
    assert!(
        !data.join("baselines").exists(),
        "a read-only replay created the database"
    );
    // --learn stores what the learning profile saw.
    let (code, _, err) = run(&["replay", learned.to_str().unwrap(), "--learn", "-o", out_s]);
    assert_eq!(code, Some(0), "{err}");
    let (code, list, err) = run(&["baseline", "list"]);
    assert_eq!(code, Some(0), "{err}");
    let profile = list
        .split_whitespace()
        .find(|w| w.starts_with("exe:/usr/sbin/demo-srv"))
        .unwrap_or_else(|| panic!("no demo-srv profile in {list}"))
        .to_string();
    let (code, shown, _) = run(&["baseline", "show", &profile]);
    assert_eq!(code, Some(0));
    assert!(shown.contains("/srv/demo/known.conf"), "{shown}");
    let (code, _, err) = run(&["baseline", "promote", &profile]);
    assert_eq!(code, Some(0), "{err}");

    // The known behaviour raises nothing; the novel open is drift, and the
    // check stores nothing.
    let (code, _, err) = run(&["replay", learned.to_str().unwrap(), "-o", out_s]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(" 0 anomalies"), "{err}");
    let (code, _, err) = run(&["replay", novel.to_str().unwrap(), "-o", out_s]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(" 1 anomalies"), "{err}");
    let (text, drift) = drift_records(&out_file);
    assert_eq!(drift.len(), 1, "{text}");
    assert_eq!(drift[0]["file"]["path"], "/srv/demo/novel.conf");
    assert_eq!(drift[0]["vigil"]["baseline"]["profile"], profile.as_str());
    let (_, shown, _) = run(&["baseline", "show", &profile]);
    assert!(
        !shown.contains("novel.conf"),
        "a read-only replay stored: {shown}"
    );
    // The name it ran under (its comm) is part of the profile.
    assert!(shown.contains("names:\n  - demo-srv\n"), "{shown}");
    // truncate(2) of a path is checked like a write of it.
    let truncated = tmp("replay-truncate.vcap");
    demo_capture_with(
        &truncated,
        b"/srv/demo/known.conf",
        Some((b"/srv/demo", b"state.db")),
    );
    let _ = std::fs::remove_file(&out_file);
    let (code, _, err) = run(&["replay", truncated.to_str().unwrap(), "-o", out_s]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(" 1 anomalies"), "{err}");
    let (text, drift) = drift_records(&out_file);
    assert_eq!(drift.len(), 1, "{text}");
    assert_eq!(drift[0]["vigil"]["baseline"]["item"], "/srv/demo/state.db");
    assert_eq!(drift[0]["vigil"]["baseline"]["access"], "w");
    // --no-baselines skips the check.
    let (code, _, err) = run(&[
        "replay",
        novel.to_str().unwrap(),
        "--no-baselines",
        "-o",
        out_s,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(" 0 anomalies"), "{err}");
    // replay serves no metrics: refused, not ignored.
    let (code, _, err) = run(&[
        "replay",
        novel.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:1",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("serves no metrics"), "{err}");
    let _ = std::fs::remove_dir_all(&data);
}

/// A host of its own for the fleet test: a 0700 data directory and a
/// configuration naming it.
struct FleetHost {
    data: PathBuf,
    cfg: PathBuf,
}

impl FleetHost {
    fn new(name: &str) -> FleetHost {
        use std::os::unix::fs::PermissionsExt;
        let data = tmp(&format!("fleet-{name}-data"));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let cfg = tmp(&format!("fleet-{name}.toml"));
        std::fs::write(
            &cfg,
            format!("[agent]\ndata_dir = \"{}\"\n", data.display()),
        )
        .unwrap();
        FleetHost { data, cfg }
    }

    /// `vigil --config CFG ARGS...`: exit code, stdout, stderr.
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = vigil()
            .arg("--config")
            .arg(&self.cfg)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `run` that must exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, Some(0), "vigil {args:?}: {err}");
        out
    }
}

/// The documented fleet workflow: two hosts of one role learn different
/// parts of a server's behaviour, each exports its whitelist, a third
/// store merges both exports (a union), is promoted there, and its export,
/// imported on a fourth host, checks captures from either host without
/// drift while behaviour neither host saw is still drift.
#[test]
fn fleet_merges_two_hosts_exports_into_a_third_store_and_distributes_it() {
    let a = FleetHost::new("a");
    let b = FleetHost::new("b");
    let merged = FleetHost::new("merged");
    let fleet = FleetHost::new("fleet");
    let cap_a = tmp("fleet-a.vcap");
    demo_capture(&cap_a, b"/srv/demo/seen-on-a.conf");
    let cap_b = tmp("fleet-b.vcap");
    demo_capture(&cap_b, b"/srv/demo/seen-on-b.conf");
    let novel = tmp("fleet-novel.vcap");
    demo_capture(&novel, b"/srv/demo/seen-nowhere.conf");
    let out = tmp("fleet-out.json");
    let out_s = out.to_str().unwrap();

    a.ok(&["replay", cap_a.to_str().unwrap(), "--learn", "-o", out_s]);
    b.ok(&["replay", cap_b.to_str().unwrap(), "--learn", "-o", out_s]);
    let profile_of = |host: &FleetHost| {
        let list = host.ok(&["baseline", "list"]);
        list.split_whitespace()
            .find(|w| w.starts_with("exe:/usr/sbin/demo-srv"))
            .unwrap_or_else(|| panic!("no demo-srv profile in {list}"))
            .to_string()
    };
    let profile = profile_of(&a);
    assert_eq!(profile_of(&b), profile, "one role, one profile key");

    // Each host's export holds only what that host saw.
    let export_a = a.ok(&["baseline", "export", &profile, "--format", "yaml"]);
    let export_b = b.ok(&["baseline", "export", &profile, "--format", "yaml"]);
    assert!(export_a.contains("seen-on-a.conf") && !export_a.contains("seen-on-b.conf"));
    assert!(export_b.contains("seen-on-b.conf") && !export_b.contains("seen-on-a.conf"));
    let file_a = tmp("fleet-a.yaml");
    let file_b = tmp("fleet-b.yaml");
    std::fs::write(&file_a, &export_a).unwrap();
    std::fs::write(&file_b, &export_b).unwrap();

    // The third store merges both: the union of what each learned.
    merged.ok(&["baseline", "import", file_a.to_str().unwrap()]);
    merged.ok(&["baseline", "import", file_b.to_str().unwrap()]);
    let shown = merged.ok(&["baseline", "show", &profile]);
    assert!(
        shown.contains("/srv/demo/seen-on-a.conf") && shown.contains("/srv/demo/seen-on-b.conf"),
        "{shown}"
    );
    // An unreadable file is a usage error and creates no store.
    let empty = FleetHost::new("empty");
    std::fs::remove_dir_all(&empty.data).unwrap();
    let (code, _, err) = empty.run(&["baseline", "import", "/nonexistent/x.yaml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot read /nonexistent/x.yaml"), "{err}");
    assert!(!empty.data.exists(), "a failed import created a store");
    // Importing the same export again adds no item (its counts add up, as
    // documented).
    let again = merged.ok(&["baseline", "import", file_b.to_str().unwrap()]);
    assert!(
        again.contains("0 profiles created, 1 merged, 0 new items"),
        "{again}"
    );
    let items = |y: &str| -> Vec<String> {
        y.lines()
            .filter(|l| l.trim_start().starts_with("- item:"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        items(&merged.ok(&["baseline", "show", &profile])),
        items(&shown)
    );
    merged.ok(&["baseline", "promote", &profile]);
    let reviewed = merged.ok(&["baseline", "export", &profile, "--format", "yaml"]);
    assert!(reviewed.contains("monitoring"), "{reviewed}");

    // Distributed: a host that never learned imports the reviewed whitelist
    // and checks what either host did without drift; the unseen open is
    // drift.
    let file_m = tmp("fleet-merged.yaml");
    std::fs::write(&file_m, &reviewed).unwrap();
    // The fleet host has no data directory yet: import creates it (0700).
    std::fs::remove_dir_all(&fleet.data).unwrap();
    fleet.ok(&["baseline", "import", file_m.to_str().unwrap()]);
    {
        use std::os::unix::fs::MetadataExt;
        for d in [&fleet.data, &fleet.data.join("baselines")] {
            let mode = std::fs::metadata(d).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }
    let list = fleet.ok(&["baseline", "list"]);
    assert!(list.contains("monitoring"), "imported mode kept: {list}");
    for (cap, anomalies) in [(&cap_a, 0), (&cap_b, 0), (&novel, 1)] {
        let _ = std::fs::remove_file(&out);
        let (code, _, err) = fleet.run(&["replay", cap.to_str().unwrap(), "-o", out_s]);
        assert_eq!(code, Some(0), "{err}");
        assert!(
            err.contains(&format!(" {anomalies} anomalies")),
            "{}: {err}",
            cap.display()
        );
    }
    let (text, drift) = drift_records(&out);
    assert_eq!(drift.len(), 1, "{text}");
    assert_eq!(drift[0]["file"]["path"], "/srv/demo/seen-nowhere.conf");
    for h in [a, b, merged, fleet] {
        let _ = std::fs::remove_dir_all(&h.data);
    }
}

#[test]
fn baseline_import_with_an_unknown_mode_is_a_usage_error() {
    let p = tmp("import.yaml");
    std::fs::write(&p, "").unwrap();
    let out = vigil()
        .args(["baseline", "import"])
        .arg(&p)
        .args(["--mode", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'bogus' for '--mode <MODE>'")
            && err.contains("learning, monitoring, locked"),
        "{err}"
    );
}
