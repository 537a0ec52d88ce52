//! `vigil-eval atomics`: detection coverage against a suite of attack
//! procedures in the Atomic Red Team format (one `atomics/T*/T*.yaml` per
//! technique), fetched by the user; nothing of it ships with vigil.
//!
//! ```text
//! vigil-eval atomics --dir DIR/atomics [--only T1053.003,GUID,...] [--rules PATH[@level]]...
//!                    [--timeout S] [--jobs N] [--json]
//! ```
//!
//! One `vigil run --no-baselines` (the built-in rules plus any `--rules`)
//! watches the whole run. Every Linux test with an `sh` or `bash` executor
//! runs, with its input arguments' defaults substituted, in a sandbox of its
//! own: `unshare --mount --pid --net --uts --ipc --fork --kill-child`, an
//! overlay over the root filesystem whose upper layer is a tmpfs (every
//! write is thrown away), `pivot_root` into it with the old root detached
//! (no path leads back to the host's files), a fresh /proc with /proc/sys
//! read-only, a read-only sysfs, a /dev of its own (null, zero, full,
//! random, urandom, tty, a private devpts; no disks), an empty /run (no
//! systemd or D-Bus to talk to), no network, and a bounding set without
//! CAP_SYS_ADMIN, SYS_MODULE, SYS_BOOT, SYS_TIME, AUDIT_CONTROL, MKNOD,
//! SYS_RAWIO, SYSLOG, BPF, PERFMON, MAC_*, WAKE_ALARM, LINUX_IMMUTABLE,
//! SYS_PACCT, BLOCK_SUSPEND. Its prerequisites run first (one that fails
//! gets its `get_prereq_command`, offline, and is checked again; still
//! failing, it skips the test, with the reason); then the command under a timeout, then
//! its cleanup. A test whose shell reports a program not found (the
//! suite targets several systems) is skipped, naming the program. A host
//! without `sudo` gets a pass-through one in the sandbox (the suite
//! prefixes many commands with it). When the sandbox's first process exits the kernel kills
//! everything left in its pid namespace.
//!
//! Attribution is strict: an alert counts for a test when its event came
//! from the test's pid namespace (`vigil.ns.pid`) between the start of the
//! test's command and the end of its process tree (the command and every
//! program it left running, up to the command's timeout; not its
//! prerequisites or cleanup), and its
//! rule does not fire on more than half of the tests that ran (such rules
//! are listed and ignored). A test is "detected by default" when a
//! built-in rule attributes to it, "detected" when any loaded rule does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_rules::yaml::{self, Node};

use crate::util::{self, Agent, AgentOpts, R, TempDir, ctx, progress};

/// Where the suite's folder appears inside the sandbox (`PathToAtomicsFolder`).
pub const SANDBOX_ATOMICS: &str = "/opt/atomic-red-team/atomics";

/// Capabilities removed from the sandbox's bounding set.
const DROP_CAPS: &str = "-sys_admin,-sys_module,-sys_boot,-sys_time,-audit_control,-mknod,\
-sys_rawio,-syslog,-bpf,-perfmon,-mac_admin,-mac_override,-wake_alarm,-linux_immutable,\
-sys_pacct,-block_suspend";

/// One procedure of the suite.
#[derive(Debug, Clone)]
pub struct Atomic {
    /// Technique id (`T1053.003`).
    pub technique: String,
    /// 1-based number of the test within its technique.
    pub number: usize,
    /// Test name.
    pub name: String,
    /// Test GUID.
    pub guid: String,
    /// Tactic (from the suite's Linux index; `unknown` without one).
    pub tactic: String,
    /// `sh` or `bash`.
    pub executor: String,
    /// The command, arguments substituted.
    pub command: String,
    /// Its cleanup command (may be empty).
    pub cleanup: String,
    /// Prerequisites: (description, check command, executor, command
    /// that gets it).
    pub prereqs: Vec<(String, String, String, String)>,
}

/// What happened to one test.
#[derive(Debug, Clone, Default)]
struct Outcome {
    skipped: Option<String>,
    pidns: u64,
    t0: i64,
    t1: i64,
    rc: Option<i32>,
    timed_out: bool,
}

fn scalar(n: &Node) -> String {
    n.as_str().unwrap_or("").to_string()
}

fn get_str(n: &Node, k: &str) -> String {
    n.get(k).map(scalar).unwrap_or_default()
}

/// Replaces `#{name}` with each argument's default and `PathToAtomicsFolder`
/// (with or without `$`) with the sandbox's path of the suite.
pub fn substitute(s: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = s.to_string();
    // defaults may name other arguments or the atomics folder: two rounds
    for _ in 0..2 {
        for (k, v) in args {
            out = out.replace(&format!("#{{{k}}}"), v);
        }
    }
    out.replace("$PathToAtomicsFolder", SANDBOX_ATOMICS)
        .replace("PathToAtomicsFolder", SANDBOX_ATOMICS)
}

/// GUID -> first tactic listed for it in `Indexes/Indexes-CSV/linux-index.csv`.
fn tactics(dir: &Path) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let Ok(text) = std::fs::read_to_string(dir.join("Indexes/Indexes-CSV/linux-index.csv")) else {
        return m;
    };
    for l in text.lines().skip(1) {
        let tactic = l.split(',').next().unwrap_or("").trim();
        // the GUID is the second-to-last field (names may contain commas)
        let f: Vec<&str> = l.rsplitn(3, ',').collect();
        if f.len() == 3 && !tactic.is_empty() {
            m.entry(f[1].trim().to_string())
                .or_insert_with(|| tactic.to_string());
        }
    }
    m
}

/// Every Linux test with an sh/bash executor below `dir` (`T*/T*.yaml`).
pub fn load(dir: &Path) -> R<Vec<Atomic>> {
    let tac = tactics(dir);
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(ctx(&dir.display().to_string()))? {
        let e = e.map_err(ctx("read_dir"))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('T') {
            continue;
        }
        let f = e.path().join(format!("{name}.yaml"));
        if f.is_file() {
            files.push(f);
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(ctx(&f.display().to_string()))?;
        let docs = yaml::parse(&text).map_err(|e| format!("{}: {e:?}", f.display()))?;
        let Some(doc) = docs.first() else { continue };
        let technique = get_str(doc, "attack_technique");
        let Some(tests) = doc.get("atomic_tests").and_then(|n| n.as_seq()) else {
            continue;
        };
        for (i, t) in tests.iter().enumerate() {
            let linux = t
                .get("supported_platforms")
                .and_then(|p| p.as_seq())
                .is_some_and(|p| p.iter().any(|x| x.as_str() == Some("linux")));
            let Some(ex) = t.get("executor") else {
                continue;
            };
            let executor = get_str(ex, "name");
            if !linux || !(executor == "sh" || executor == "bash") {
                continue;
            }
            let mut args = BTreeMap::new();
            if let Some(m) = t.get("input_arguments").and_then(|a| a.as_map()) {
                for (k, v) in m {
                    args.insert(scalar(k), get_str(v, "default"));
                }
            }
            let dep_exec = match get_str(t, "dependency_executor_name").as_str() {
                "sh" => "sh".to_string(),
                "bash" => "bash".to_string(),
                _ => executor.clone(),
            };
            let mut prereqs = Vec::new();
            if let Some(d) = t.get("dependencies").and_then(|d| d.as_seq()) {
                for dep in d {
                    prereqs.push((
                        get_str(dep, "description").trim().to_string(),
                        substitute(&get_str(dep, "prereq_command"), &args),
                        dep_exec.clone(),
                        substitute(&get_str(dep, "get_prereq_command"), &args),
                    ));
                }
            }
            let guid = get_str(t, "auto_generated_guid");
            out.push(Atomic {
                technique: technique.clone(),
                number: i + 1,
                name: get_str(t, "name"),
                tactic: tac
                    .get(&guid)
                    .cloned()
                    .unwrap_or_else(|| "unknown".to_string()),
                guid,
                executor,
                command: substitute(&get_str(ex, "command"), &args),
                cleanup: substitute(&get_str(ex, "cleanup_command"), &args),
                prereqs,
            });
        }
    }
    Ok(out)
}

/// Why a test cannot run here without a network, if it cannot.
pub fn needs_network(cmd: &str) -> Option<&'static str> {
    let has_url = cmd.contains("http://") || cmd.contains("https://") || cmd.contains("ftp://");
    if !has_url {
        return None;
    }
    for (tool, why) in [
        ("curl ", "downloads with curl"),
        ("wget ", "downloads with wget"),
        ("git clone", "clones a git repository"),
        ("pip install", "installs from PyPI"),
        ("pip3 install", "installs from PyPI"),
    ] {
        if cmd.contains(tool) {
            return Some(why);
        }
    }
    None
}

/// The sandbox's first process, before and after it pivots into the
/// overlay. `$1` is the test's host directory.
const SETUP: &str = r#"set -eu
D=$1
readlink /proc/self/ns/pid > "$D/pidns"
mount --make-rprivate /
mount -t tmpfs -o mode=0700,size=512m tmpfs "$D/ovl"
mkdir "$D/ovl/upper" "$D/ovl/work" "$D/ovl/root"
R="$D/ovl/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$D/ovl/upper,workdir=$D/ovl/work" "$R"
mount -t proc proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
for f in sysrq-trigger kcore; do
  if [ -e "$R/proc/$f" ]; then mount --bind "$R/proc/$f" "$R/proc/$f"; mount -o remount,bind,ro "$R/proc/$f"; fi
done
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o mode=755 tmpfs "$R/dev"
for n in null zero full random urandom tty; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs tmpfs "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
if ! command -v sudo >/dev/null 2>&1; then cp "$D/in/sudo" "$R/usr/local/bin/sudo"; chmod 755 "$R/usr/local/bin/sudo"; fi
mkdir -p "$R/run/vigil-atomic/in" "$R/run/vigil-atomic/out" "$R/opt/atomic-red-team/atomics" "$R/.oldroot"
mount --bind "$D/in" "$R/run/vigil-atomic/in"
mount -o remount,bind,ro "$R/run/vigil-atomic/in"
mount --bind "$D/out" "$R/run/vigil-atomic/out"
if [ -d "$R$2" ]; then mount --bind "$R$2" "$R/opt/atomic-red-team/atomics"; fi
cd "$R"
pivot_root . .oldroot
umount -l /.oldroot
rmdir /.oldroot 2>/dev/null || true
cd /
exec setpriv --bounding-set "$3" --inh-caps -all env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=xterm sh /run/vigil-atomic/in/init.sh
"#;

/// Pid 1 of the sandbox after the pivot: prerequisites, command, cleanup.
const INIT: &str = r#"I=/run/vigil-atomic/in
O=/run/vigil-atomic/out
T=$(cat $I/timeout)
cd /root 2>/dev/null || cd /
n=0
while [ -e "$I/prereq.$n" ]; do
  X=$(cat $I/prereq.$n.exec)
  if ! timeout -s KILL 20 "$X" -c "$(cat $I/prereq.$n)" </dev/null >/dev/null 2>&1; then
    timeout -s KILL 60 "$X" -c "$(cat $I/getprereq.$n)" </dev/null >/dev/null 2>&1
    if ! timeout -s KILL 20 "$X" -c "$(cat $I/prereq.$n)" </dev/null >/dev/null 2>&1; then
      echo "$n" > $O/prereq_failed
      exit 0
    fi
  fi
  n=$((n+1))
done
# processes other than this one that are running (not zombies) and were not
# there before the command started: the procedure's process tree (whatever
# it started ends up below the command or, orphaned, below this pid 1)
running() {
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = 1 ] && continue
    case " $PRE " in *" $p "*) continue ;; esac
    # (the group, so a process gone mid-scan prints no error: a
    # redirection that fails comes before a later 2>/dev/null)
    { read -r s < /proc/$p/stat; } 2>/dev/null || continue
    case "${s##*) }" in Z*) continue ;; esac
    return 0
  done
  return 1
}
PRE=""
for p in /proc/[0-9]*; do PRE="$PRE ${p#/proc/}"; done
END=$(( $(date +%s) + T ))
date +%s%N > $O/t0
timeout -s KILL "$T" "$(cat $I/exec)" -c "$(cat $I/command)" </dev/null >$O/stdout 2>$O/stderr
echo $? > $O/rc
# the window lasts while the procedure's process tree does (a program it
# left in the background, `busybox sh &`, may not even have exec'd when the
# command returns), up to the command's timeout
while running && [ "$(date +%s)" -lt "$END" ]; do sleep 0.05; done
date +%s%N > $O/t1
if [ -s $I/cleanup ]; then
  timeout -s KILL 20 "$(cat $I/exec)" -c "$(cat $I/cleanup)" </dev/null >/dev/null 2>&1
fi
echo done > $O/finished
"#;

/// A pass-through `sudo` placed in the sandbox when the host has none
/// (everything there runs as root already): skips sudo's options, runs the
/// rest.
const SUDO_SHIM: &str = r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    -u|-g|-p|-C|-h|-r|-t|-U|-D) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -eq 0 ] && exit 0
exec "$@"
"#;

fn write0600(p: &Path, s: &str) -> R<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)
        .map_err(ctx(&p.display().to_string()))?;
    f.write_all(s.as_bytes())
        .map_err(ctx(&p.display().to_string()))
}

fn mkdir0700(p: &Path) -> R<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(ctx(&p.display().to_string()))
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Runs one test in its sandbox below `base`; `atomics` is the suite's
/// folder on the host.
fn run_one(a: &Atomic, base: &Path, atomics: &Path, timeout_s: u64) -> R<Outcome> {
    if let Some(why) = needs_network(&a.command) {
        return Ok(Outcome {
            skipped: Some(format!("needs a network download ({why})")),
            ..Outcome::default()
        });
    }
    let d = base;
    for sub in ["in", "out", "ovl"] {
        mkdir0700(&d.join(sub))?;
    }
    let inn = d.join("in");
    write0600(&inn.join("init.sh"), INIT)?;
    write0600(&inn.join("sudo"), SUDO_SHIM)?;
    write0600(&inn.join("timeout"), &timeout_s.to_string())?;
    write0600(&inn.join("exec"), &a.executor)?;
    write0600(&inn.join("command"), &a.command)?;
    write0600(&inn.join("cleanup"), &a.cleanup)?;
    for (i, (_, cmd, ex, get)) in a.prereqs.iter().enumerate() {
        write0600(&inn.join(format!("prereq.{i}")), cmd)?;
        write0600(&inn.join(format!("getprereq.{i}")), get)?;
        write0600(&inn.join(format!("prereq.{i}.exec")), ex)?;
    }
    let setup = d.join("setup.sh");
    write0600(&setup, SETUP)?;
    let atomics_abs = std::fs::canonicalize(atomics).map_err(ctx("atomics dir"))?;
    let mut child = Command::new("unshare")
        .args([
            "--mount",
            "--pid",
            "--net",
            "--uts",
            "--ipc",
            "--fork",
            "--kill-child",
            "sh",
        ])
        .arg(&setup)
        .arg(d)
        .arg(&atomics_abs)
        .arg(DROP_CAPS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ctx("spawn unshare"))?;
    let pid = child.id();
    let _guard = util::Guard::new(move || util::signal(pid, libc::SIGKILL));
    // prerequisites (20 + 60 + 20 s each at most), command, cleanup (20 s), setup
    let limit = Duration::from_secs(timeout_s + 100 * a.prereqs.len() as u64 + 35);
    let end = Instant::now() + limit;
    let mut timed_out = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(25)),
            _ => {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let out = d.join("out");
    let pidns = read_trim(&d.join("pidns"))
        .and_then(|s| {
            s.trim_start_matches("pid:[")
                .trim_end_matches(']')
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    if let Some(n) = read_trim(&out.join("prereq_failed")) {
        let desc = n
            .parse::<usize>()
            .ok()
            .and_then(|i| a.prereqs.get(i))
            .map(|p| p.0.lines().next().unwrap_or("").to_string())
            .unwrap_or_default();
        return Ok(Outcome {
            skipped: Some(format!("prerequisite not met: {desc}")),
            pidns,
            ..Outcome::default()
        });
    }
    if let Some(prog) = std::fs::read_to_string(out.join("stderr"))
        .ok()
        .and_then(|e| missing_program(&e))
    {
        return Ok(Outcome {
            skipped: Some(format!("a program it runs is not installed here: {prog}")),
            pidns,
            ..Outcome::default()
        });
    }
    let t0 = read_trim(&out.join("t0")).and_then(|s| s.parse::<i64>().ok());
    let Some(t0) = t0 else {
        let first = err.lines().next().unwrap_or("").to_string();
        return Ok(Outcome {
            skipped: Some(format!("sandbox setup failed: {first}")),
            ..Outcome::default()
        });
    };
    // a command killed together with the sandbox has no end mark: its
    // window ends now
    let t1 = read_trim(&out.join("t1"))
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(now_ns);
    Ok(Outcome {
        skipped: None,
        pidns,
        t0,
        t1,
        rc: read_trim(&out.join("rc")).and_then(|s| s.parse().ok()),
        timed_out,
    })
}

/// The first program the shell could not find, from its stderr (dash:
/// `sh: 1: kldstat: not found`, bash: `bash: line 1: kldstat: command not
/// found`).
pub fn missing_program(stderr: &str) -> Option<String> {
    for l in stderr.lines() {
        let l = l.trim_end();
        let Some(rest) = l
            .strip_suffix(": command not found")
            .or_else(|| l.strip_suffix(": not found"))
        else {
            continue;
        };
        if !(l.starts_with("sh: ") || l.starts_with("bash: ")) {
            continue;
        }
        if let Some(prog) = rest.rsplit(": ").next() {
            return Some(prog.trim().to_string());
        }
    }
    None
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Rule ids `vigil rules list --json [PATH]` prints.
fn rule_ids(path: Option<&str>) -> R<BTreeSet<String>> {
    let bin = util::vigil_bin()?;
    let mut c = Command::new(bin);
    c.args(["rules", "list", "--json"]);
    if let Some(p) = path {
        c.arg(p);
    }
    let out = c.output().map_err(ctx("vigil rules list"))?;
    if !out.status.success() {
        return Err(format!(
            "vigil rules list {path:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(ctx("vigil rules list --json"))?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

struct Opts {
    dir: PathBuf,
    only: Vec<String>,
    rules: Vec<String>,
    timeout: u64,
    jobs: usize,
    json: bool,
}

fn parse(args: &[String]) -> R<Opts> {
    let mut o = Opts {
        dir: PathBuf::new(),
        only: vec![],
        rules: vec![],
        timeout: 20,
        jobs: 2,
        json: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => o.dir = PathBuf::from(val()?),
            "--only" => o
                .only
                .extend(val()?.split(',').map(|s| s.trim().to_string())),
            "--rules" => o.rules.push(val()?),
            "--timeout" => o.timeout = val()?.parse().map_err(ctx("--timeout"))?,
            "--jobs" => o.jobs = val()?.parse::<usize>().map_err(ctx("--jobs"))?.max(1),
            "--json" => o.json = true,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.dir.as_os_str().is_empty() {
        return Err("--dir DIR (the suite's atomics folder) is required".into());
    }
    Ok(o)
}

fn selected(a: &Atomic, only: &[String]) -> bool {
    only.is_empty()
        || only.iter().any(|o| {
            a.guid == *o
                || a.technique == *o
                || a.technique.starts_with(&format!("{o}."))
                || format!("{}-{}", a.technique, a.number) == *o
        })
}

/// An alert reduced to what attribution needs.
struct Hit {
    rule: String,
    pidns: u64,
    ts: i64,
}

/// Entry point.
pub fn main(args: &[String]) -> R<()> {
    let o = parse(args).inspect_err(|_| {
        eprintln!(
            "usage: vigil-eval atomics --dir DIR [--only T1234,T1234.001-2,GUID] [--rules PATH]... [--timeout S] [--jobs N] [--json]"
        );
    })?;
    for tool in ["unshare", "setpriv", "timeout"] {
        if util::sh("sh", &["-c", &format!("command -v {tool}")]).is_err() {
            return Err(format!("{tool} not found (util-linux, coreutils)"));
        }
    }
    let all = load(&o.dir)?;
    let tests: Vec<Atomic> = all.into_iter().filter(|a| selected(a, &o.only)).collect();
    if tests.is_empty() {
        return Err(format!(
            "no Linux sh/bash test selected in {}",
            o.dir.display()
        ));
    }
    let builtin = rule_ids(None)?;
    let tmp = TempDir::new("atomics")?;
    let alerts = tmp.join("alerts.jsonl");
    let mut args = vec!["--no-baselines".to_string()];
    for r in &o.rules {
        args.push("--rules".into());
        args.push(r.clone());
    }
    progress(format!(
        "atomics: {} tests from {}; starting vigil",
        tests.len(),
        o.dir.display()
    ));
    let agent = Agent::start(AgentOpts {
        data_dir: &tmp.join("agent"),
        outputs: vec![format!("file://{}?kinds=alert", alerts.display())],
        events: false,
        extra_toml: "",
        args,
    })?;
    let queue = Arc::new(Mutex::new((0..tests.len()).collect::<Vec<_>>()));
    let results: Arc<Mutex<Vec<Option<Outcome>>>> = Arc::new(Mutex::new(vec![None; tests.len()]));
    let tests = Arc::new(tests);
    let base = tmp.0.clone();
    let mut handles = Vec::new();
    for _ in 0..o.jobs {
        let (q, res, tests, base, dir) = (
            queue.clone(),
            results.clone(),
            tests.clone(),
            base.clone(),
            o.dir.clone(),
        );
        let timeout = o.timeout;
        handles.push(std::thread::spawn(move || {
            loop {
                let Some(i) = q.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                    break;
                };
                let a = &tests[i];
                let d = base.join(format!("t{i}"));
                let r = run_one(a, &d, &dir, timeout).unwrap_or_else(|e| Outcome {
                    skipped: Some(format!("runner error: {e}")),
                    ..Outcome::default()
                });
                let _ = std::fs::remove_dir_all(&d);
                progress(format!(
                    "{} #{} {}: {}",
                    a.technique,
                    a.number,
                    a.name,
                    r.skipped.as_deref().unwrap_or(if r.timed_out {
                        "ran (timed out)"
                    } else {
                        "ran"
                    })
                ));
                res.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            }
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    // let the last events through the pipeline before stopping
    std::thread::sleep(Duration::from_secs(2));
    let summary = agent.stop()?;
    // the agent's exit summary (sensor table, drops): evidence when a test
    // that should alert did not
    for l in summary.lines().filter(|l| !l.trim().is_empty()) {
        progress(format!("agent: {l}"));
    }
    let mut hits = Vec::new();
    util::scan_json(&alerts, 0, |v| {
        if v["event"]["kind"] != "alert" {
            return;
        }
        let ts = v["@timestamp"]
            .as_str()
            .and_then(vigil_engine::cli::report_tools::parse_rfc3339);
        let (Some(rule), Some(pidns), Some(ts)) = (
            v["rule"]["id"].as_str(),
            v["vigil"]["ns"]["pid"].as_u64(),
            ts,
        ) else {
            return;
        };
        hits.push(Hit {
            rule: rule.to_string(),
            pidns,
            ts,
        });
    });
    let results: Vec<Outcome> = results
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|r| r.clone().unwrap_or_default())
        .collect();
    report(&tests, &results, &hits, &builtin, o.json);
    Ok(())
}

fn head(cmd: &str) -> String {
    let l = cmd
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let mut s: String = l.chars().take(90).collect();
    if l.chars().count() > 90 {
        s.push_str("...");
    }
    s
}

fn report(tests: &[Atomic], res: &[Outcome], hits: &[Hit], builtin: &BTreeSet<String>, json: bool) {
    // rules attributed to each test that ran
    let mut per_test: Vec<BTreeSet<String>> = vec![BTreeSet::new(); tests.len()];
    let ran: Vec<usize> = (0..tests.len())
        .filter(|&i| res[i].skipped.is_none())
        .collect();
    // a test claims an alert from its pid namespace within its window
    let claims = |r: &Outcome, h: &Hit| h.pidns == r.pidns && h.ts >= r.t0 && h.ts <= r.t1;
    for &i in &ran {
        for h in hits {
            if claims(&res[i], h) {
                per_test[i].insert(h.rule.clone());
            }
        }
    }
    let mut rule_tests: BTreeMap<String, usize> = BTreeMap::new();
    for &i in &ran {
        for r in &per_test[i] {
            *rule_tests.entry(r.clone()).or_default() += 1;
        }
    }
    let noisy: BTreeSet<String> = rule_tests
        .iter()
        .filter(|&(_, &n)| ran.len() >= 10 && n * 2 > ran.len())
        .map(|(r, _)| r.clone())
        .collect();
    let detected = |i: usize, default_only: bool| -> Vec<String> {
        per_test[i]
            .iter()
            .filter(|r| !noisy.contains(*r) && (!default_only || builtin.contains(*r)))
            .cloned()
            .collect()
    };
    let mut tactics: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for &i in &ran {
        let e = tactics.entry(tests[i].tactic.clone()).or_default();
        e.0 += 1;
        if !detected(i, true).is_empty() {
            e.1 += 1;
        }
        if !detected(i, false).is_empty() {
            e.2 += 1;
        }
    }
    let tot = tactics
        .values()
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    let pct = |n: usize, d: usize| {
        if d == 0 {
            0.0
        } else {
            100.0 * n as f64 / d as f64
        }
    };
    if json {
        let doc = serde_json::json!({
            "tests": tests.iter().enumerate().map(|(i, a)| serde_json::json!({
                "technique": a.technique, "number": a.number, "name": a.name, "guid": a.guid,
                "tactic": a.tactic,
                "skipped": res[i].skipped,
                "timed_out": res[i].timed_out,
                "rc": res[i].rc,
                "rules": per_test[i],
                // the attribution window: pid namespace and wall-clock ns
                "pidns": res[i].pidns,
                "window": [res[i].t0, res[i].t1],
                "detected_default": res[i].skipped.is_none() && !detected(i, true).is_empty(),
                "detected": res[i].skipped.is_none() && !detected(i, false).is_empty(),
            })).collect::<Vec<_>>(),
            "tactics": tactics.iter().map(|(t, c)| serde_json::json!({
                "tactic": t, "run": c.0, "detected_default": c.1, "detected": c.2,
            })).collect::<Vec<_>>(),
            "run": tot.0, "detected_default": tot.1, "detected": tot.2,
            "skipped": tests.len() - tot.0,
            "noisy_rules": noisy,
            // alerts no test's window claimed (a host process, a cleanup,
            // or a late timestamp): what to look at when a test is missed
            "unattributed": hits.iter().filter(|h| !ran.iter().any(|&i| claims(&res[i], h))).take(100).map(|h| serde_json::json!({
                "rule": h.rule, "pidns": h.pidns, "ts": h.ts,
            })).collect::<Vec<_>>(),
        });
        println!("{doc}");
        return;
    }
    println!(
        "{:<22} {:>4} {:>9} {:>6} {:>9} {:>6}",
        "tactic", "run", "built-in", "rate", "all rules", "rate"
    );
    for (t, c) in &tactics {
        println!(
            "{:<22} {:>4} {:>9} {:>5.0}% {:>9} {:>5.0}%",
            t,
            c.0,
            c.1,
            pct(c.1, c.0),
            c.2,
            pct(c.2, c.0)
        );
    }
    println!(
        "{:<22} {:>4} {:>9} {:>5.0}% {:>9} {:>5.0}%",
        "total",
        tot.0,
        tot.1,
        pct(tot.1, tot.0),
        tot.2,
        pct(tot.2, tot.0)
    );
    println!(
        "\nskipped: {} of {} tests",
        tests.len() - tot.0,
        tests.len()
    );
    if !noisy.is_empty() {
        println!("rules ignored (fired on more than half of the tests): {noisy:?}");
    }
    println!("\nrules that detected tests (built-in marked *):");
    for (r, n) in &rule_tests {
        if !noisy.contains(r) {
            let star = if builtin.contains(r) { "*" } else { " " };
            println!("  {star}{r}: {n}");
        }
    }
    println!("\nmisses (no built-in rule; + = an optional rule detected it):");
    for &i in &ran {
        if detected(i, true).is_empty() {
            let a = &tests[i];
            let plus = if detected(i, false).is_empty() {
                " "
            } else {
                "+"
            };
            println!(
                " {plus}{:<18} {:<10} #{:<2} {} | {}",
                a.tactic,
                a.technique,
                a.number,
                a.name,
                head(&a.command)
            );
        }
    }
    println!("\nskipped:");
    for (i, a) in tests.iter().enumerate() {
        if let Some(why) = &res[i].skipped {
            println!("  {:<10} #{:<2} {}: {why}", a.technique, a.number, a.name);
        }
    }
}
