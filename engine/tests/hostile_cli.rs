//! Hostile files at the command line (no root needed): `vigil rules check`,
//! `vigil --config F ...` and `vigil replay` on broken, mutated and
//! malicious files exit 2 with a message naming the file, never 101 (a
//! panic), and never print a raw control character (a hostile file must
//! not drive the terminal of the person reading the error).
//!
//! The mutants come from the committed corpus (`tests/corpus/`) through the
//! same mutator the fuzz targets use; the seed is printed and settable with
//! `VIGIL_FUZZ_SEED`.

#[path = "../../tests/src/fuzz.rs"]
#[allow(dead_code, missing_docs)]
mod fuzz;

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::vigil;

fn corpus(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus")
        .join(sub)
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("vigil-hostile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How a path appears in messages: control characters escaped.
fn shown(p: &Path) -> String {
    vigil_rules::printable(&p.display().to_string()).into_owned()
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    vigil().args(args).output().expect("run vigil")
}

/// Exit 0 or 2 (never a panic or a signal); stdout and stderr free of raw
/// control bytes other than the line feeds between messages; on 2 the
/// messages name `file`.
fn check(what: &str, out: &Output, file: &Path, input: &[u8]) -> Result<i32, String> {
    // `rules check` reports on stdout, the others on stderr: both count.
    let both = [&out.stderr[..], &out.stdout[..]].concat();
    let err = String::from_utf8_lossy(&both);
    let code = out.status.code();
    let saved = || {
        let tag: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let p = fuzz::out_dir().join(format!("cli-{tag}-{}.bin", fuzz::run_seed()));
        let _ = std::fs::write(&p, input);
        p.display().to_string()
    };
    if err.contains("panicked") || !matches!(code, Some(0 | 2)) {
        return Err(format!(
            "{what}: exit {code:?} (input saved to {})\noutput: {err}",
            saved()
        ));
    }
    if let Some(b) = both
        .iter()
        .find(|&&b| (b < 0x20 && b != b'\n') || b == 0x7f)
    {
        return Err(format!(
            "{what}: raw control byte {b:#04x} in the output (input saved to {}): {err:?}",
            saved()
        ));
    }
    if code == Some(2) && !err.contains(&shown(file)) {
        return Err(format!(
            "{what}: exit 2 without naming {} (input saved to {}): {err}",
            shown(file),
            saved()
        ));
    }
    Ok(code.unwrap_or(-1))
}

fn rules_check(file: &Path) -> Output {
    run(&["rules".as_ref(), "check".as_ref(), file.as_os_str()])
}

#[test]
fn rules_check_refuses_hostile_rule_files_naming_them() {
    let d = Dir::new("rules");
    let sub = d.0.join("dir");
    std::fs::create_dir_all(&sub).unwrap();
    let odd_name = sub.join("a\nb\x1b[31m.yaml");
    std::fs::write(&odd_name, "- rule: y\n").unwrap();
    let cases: Vec<(&str, PathBuf)> = vec![
        (
            "escape sequence in a key",
            d.file(
                "esc.yaml",
                b"- rule: x\n  name: a\n  severity: high\n  condition: process.name = a\n  bogus\x1b]0;PWNED\x07: 1\n",
            ),
        ),
        ("invalid UTF-8", d.file("inv.yaml", b"\xff\xfe- rule: x\n")),
        ("NUL byte", d.file("nul.yaml", b"- rule: x\0\n")),
        (
            "deep block nesting",
            d.file("deep.yaml", "- ".repeat(100_000).as_bytes()),
        ),
        (
            "deep flow nesting",
            d.file("deepflow.yaml", "[".repeat(100_000).as_bytes()),
        ),
        (
            "64 KiB condition",
            d.file(
                "long.yaml",
                format!(
                    "- rule: x\n  name: n\n  severity: low\n  condition: process.name = {}\n  output: \"%\"\n  bogus: 1\n",
                    "A".repeat(64 << 10)
                )
                .as_bytes(),
            ),
        ),
        (
            "a condition nested 10,000 deep",
            d.file(
                "deepcond.yaml",
                format!(
                    "- rule: x\n  name: n\n  severity: low\n  condition: {}process.name = a{}\n",
                    "(".repeat(10_000),
                    ")".repeat(10_000)
                )
                .as_bytes(),
            ),
        ),
        (
            "17 MiB file",
            d.file("huge.yaml", &vec![b'#'; 17 << 20]),
        ),
        ("a file name with a newline and ESC", sub.clone()),
    ];
    for (what, p) in &cases {
        let out = rules_check(p);
        let file = if p == &sub { &odd_name } else { p };
        let code = check(what, &out, file, &std::fs::read(file).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code, 2, "{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn rules_check_on_mutated_corpus_exits_0_or_2() {
    let d = Dir::new("rules-mut");
    let seeds: Vec<Vec<u8>> = ["rules", "sigma"]
        .iter()
        .flat_map(|s| fuzz::read_corpus(&corpus(s)))
        .map(|(_, b)| b)
        .collect();
    assert!(seeds.len() >= 9);
    let mut rng = fuzz::Rng::new(fuzz::run_seed() ^ 1);
    eprintln!("VIGIL_FUZZ_SEED={}", fuzz::run_seed());
    let mut codes = [0usize; 3];
    for i in 0..60 {
        let base = rng.pick(&seeds).clone();
        let input = fuzz::mutate(&base, &seeds, &[], &mut rng);
        let p = d.file(&format!("m{i}.yml"), &input);
        let code =
            check("rules check", &rules_check(&p), &p, &input).unwrap_or_else(|e| panic!("{e}"));
        codes[code as usize] += 1;
    }
    assert!(codes[2] > 0, "some mutants are refused: {codes:?}");
}

#[test]
fn bad_configs_exit_2_naming_file_line_and_key() {
    let d = Dir::new("config");
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "control character in a comment",
            d.file("esc.toml", b"[agent]\n# \x1b]0;PWNED\x07\nevents = true\n"),
            ":2: ",
        ),
        (
            "invalid UTF-8",
            d.file("inv.toml", b"[agent]\nevents = \"\xff\"\n"),
            ":2: agent.events: invalid UTF-8 (byte 0xff)",
        ),
        (
            "deep arrays",
            d.file(
                "deep.toml",
                format!("[agent]\nx = {}", "[".repeat(100_000)).as_bytes(),
            ),
            ":2: agent.x: ",
        ),
        (
            "deep inline tables",
            d.file("deep2.toml", "a = {b = ".repeat(50_000).as_bytes()),
            ":1: a: ",
        ),
        (
            "huge number",
            d.file(
                "num.toml",
                b"[sensors]\nring_buffer_bytes = 99999999999999999999999\n",
            ),
            ":2: sensors.ring_buffer_bytes: ",
        ),
        (
            "unknown key with an escape sequence",
            d.file("key.toml", b"[outputs]\n\"x\x1b[31m\" = 1\n"),
            ":2: ",
        ),
        (
            "NaN rate",
            d.file("nan.toml", b"[outputs]\nrate_limit_per_sec = nan\n"),
            ":2: outputs.rate_limit_per_sec: ",
        ),
    ];
    for (what, p, want) in &cases {
        for cmd in [
            &["probe"][..],
            &["rules", "check"][..],
            &["replay", "/nonexistent"][..],
        ] {
            let mut args: Vec<&std::ffi::OsStr> = vec!["--config".as_ref(), p.as_os_str()];
            args.extend(cmd.iter().map(|s| std::ffi::OsStr::new(*s)));
            let out = run(&args);
            let code = check(what, &out, p, &std::fs::read(p).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(code, 2, "{what} ({cmd:?}): {err}");
            assert!(
                err.contains(&format!("{}{want}", shown(p))),
                "{what} ({cmd:?}): want `{}{want}` in: {err}",
                shown(p)
            );
        }
    }
}

#[test]
fn mutated_configs_exit_0_or_2() {
    let d = Dir::new("config-mut");
    let seeds: Vec<Vec<u8>> = fuzz::read_corpus(&corpus("config"))
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let mut rng = fuzz::Rng::new(fuzz::run_seed() ^ 2);
    eprintln!("VIGIL_FUZZ_SEED={}", fuzz::run_seed());
    let mut refused = 0;
    for i in 0..60 {
        let base = rng.pick(&seeds).clone();
        let input = fuzz::mutate(&base, &seeds, &[], &mut rng);
        let p = d.file(&format!("m{i}.toml"), &input);
        let out = run(&[
            "--config".as_ref(),
            p.as_os_str(),
            "rules".as_ref(),
            "check".as_ref(),
        ]);
        // A config that loads may still point at rule paths that do not
        // exist: then `rules check` names those, not the config.
        let text = String::from_utf8_lossy(&out.stdout);
        let file = if text.contains("rules loaded") && !text.contains(&shown(&p)) {
            PathBuf::from("rules loaded")
        } else {
            p.clone()
        };
        let code = check("config", &out, &file, &input).unwrap_or_else(|e| panic!("{e}"));
        refused += usize::from(code == 2);
    }
    assert!(refused > 0);
}

#[test]
fn hostile_captures_exit_2_naming_the_file_or_replay_what_is_valid() {
    let d = Dir::new("replay");
    let good = std::fs::read(corpus("capture").join("all-kinds.vcap")).expect("corpus capture");
    let mut bad_version = good.clone();
    bad_version[8] = 7;
    let mut huge_frame = good[..16].to_vec();
    huge_frame.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff]);
    let mut bad_ctx = good[..16].to_vec();
    bad_ctx.extend_from_slice(&[1, 5, 0, 0, 0]);
    bad_ctx.extend_from_slice(b"{\"a\x1b");
    let fatal: Vec<(&str, PathBuf)> = vec![
        ("empty", d.file("empty.vcap", b"")),
        (
            "bad magic",
            d.file("magic.vcap", b"NOTACAPTURE\n\x1b[31m...."),
        ),
        ("short header", d.file("short.vcap", &good[..10])),
        ("bad version", d.file("version.vcap", &bad_version)),
        ("4 GiB frame", d.file("huge.vcap", &huge_frame)),
        ("context not JSON", d.file("ctx.vcap", &bad_ctx)),
        ("cut inside the context", d.file("cut.vcap", &good[..30])),
        ("name with ESC", d.file("x\x1b[31m\n.vcap", b"garbage")),
    ];
    for (what, p) in &fatal {
        let out = run(&["replay".as_ref(), p.as_os_str()]);
        let code = check(what, &out, p, &std::fs::read(p).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code, 2, "{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Cut after some records: replays them and says where it ended.
    let p = d.file("tail.vcap", &good[..good.len() - 7]);
    let out = run(&[
        "--config".as_ref(),
        d.file("ev.toml", b"[agent]\nevents = true\n").as_os_str(),
        "replay".as_ref(),
        p.as_os_str(),
    ]);
    check("cut capture", &out, &p, &[]).unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("capture ends early") && err.contains(&shown(&p)),
        "{err}"
    );
    let lines: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        lines.len() >= 20,
        "records before the cut replayed: {}",
        lines.len()
    );
    for l in lines {
        serde_json::from_slice::<serde_json::Value>(l).expect("every replayed line is JSON");
    }
}

#[test]
fn mutated_captures_exit_0_or_2_and_write_json_lines() {
    let d = Dir::new("replay-mut");
    let seeds: Vec<Vec<u8>> = fuzz::read_corpus(&corpus("capture"))
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let mut rng = fuzz::Rng::new(fuzz::run_seed() ^ 3);
    eprintln!("VIGIL_FUZZ_SEED={}", fuzz::run_seed());
    let cfg = d.file("ev.toml", b"[agent]\nevents = true\n");
    for i in 0..40 {
        let base = rng.pick(&seeds).clone();
        let input = fuzz::mutate(&base, &seeds, &[], &mut rng);
        let p = d.file(&format!("m{i}.vcap"), &input);
        let out = run(&[
            "--config".as_ref(),
            cfg.as_os_str(),
            "replay".as_ref(),
            p.as_os_str(),
        ]);
        check("replay", &out, &p, &input).unwrap_or_else(|e| panic!("{e}"));
        for l in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert!(
                serde_json::from_slice::<serde_json::Value>(l).is_ok(),
                "replay of mutant {i} wrote a line that is not JSON: {}",
                String::from_utf8_lossy(l)
            );
        }
    }
}
