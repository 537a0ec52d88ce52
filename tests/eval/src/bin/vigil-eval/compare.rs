//! Head-to-head: the same workloads alternately under nothing, auditd
//! (watch-style rules; syscall rules auditing every failing open), vigil
//! (default sensors and rules, every event as JSON to a file) and bpftrace
//! (printing every event; only counting), in rounds; medians.

use crate::util::*;
use crate::work;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Watch-style rules (what most auditd deployments load): sensitive files
/// plus execve and connect.
const AUDIT_WATCH: &[&str] = &[
    "-w /etc/shadow -p rwa -k vg_cred",
    "-w /etc/gshadow -p rwa -k vg_cred",
    "-w /etc/passwd -p wa -k vg_ident",
    "-w /etc/group -p wa -k vg_ident",
    "-w /etc/sudoers -p wa -k vg_priv",
    "-w /etc/sudoers.d -p wa -k vg_priv",
    "-w /etc/ssh/sshd_config -p wa -k vg_ssh",
    "-w /root/.ssh -p wa -k vg_ssh",
    "-w /etc/cron.d -p wa -k vg_cron",
    "-w /etc/ld.so.preload -p wa -k vg_preload",
    "-a always,exit -F arch=b64 -S execve,execveat -k vg_exec",
    "-a always,exit -F arch=b64 -S connect -k vg_net",
];

/// Syscall rules equivalent to vigil's default sensors, plus every failing
/// open (the classic "unsuccessful file access" rule of audit guides).
const AUDIT_SYSCALL: &[&str] = &[
    "-a always,exit -F arch=b64 -S open,openat,openat2,creat -F success=0 -k vg_open_fail",
    "-a always,exit -F arch=b64 -S connect,accept,accept4,listen -k vg_net",
    "-a always,exit -F arch=b64 -S setuid,setgid,setreuid,setregid,setresuid,setresgid,setfsuid,setfsgid,capset -k vg_setid",
    "-a always,exit -F arch=b64 -S ptrace -k vg_ptrace",
    "-a always,exit -F arch=b64 -S init_module,finit_module,delete_module -k vg_module",
    "-a always,exit -F arch=b64 -S bpf -k vg_bpf",
    "-a always,exit -F arch=b64 -S memfd_create,mount,umount2,unshare,setns -k vg_ns",
];

/// bpftrace printing one line per event on the tracepoints the workloads
/// hit (pid and parent pid first, for attribution).
const BPFTRACE_PRINT: &str = r#"
tracepoint:syscalls:sys_enter_execve { printf("%d %d execve %s\n", pid, curtask->real_parent->tgid, str(args->filename)); }
tracepoint:syscalls:sys_enter_openat { printf("%d %d openat %s\n", pid, curtask->real_parent->tgid, str(args->filename)); }
tracepoint:syscalls:sys_enter_connect { printf("%d %d connect\n", pid, curtask->real_parent->tgid); }
tracepoint:syscalls:sys_enter_accept4 { printf("%d %d accept\n", pid, curtask->real_parent->tgid); }
"#;

/// bpftrace counting the same events in a map (no output per event).
const BPFTRACE_COUNT: &str = r#"
tracepoint:syscalls:sys_enter_execve, tracepoint:syscalls:sys_enter_openat,
tracepoint:syscalls:sys_enter_connect, tracepoint:syscalls:sys_enter_accept4 { @[probe] = count(); }
"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    Bare,
    AuditWatch,
    AuditSyscall,
    /// Default deployment: built-in rules, alerts only (the kernel keeps
    /// only what a rule or baseline can want).
    Vigil,
    /// The default deployment of another `vigil` binary (`--vigil-old
    /// PATH`: an older build, measured side by side with this one).
    VigilOld,
    /// Every event as a JSON line (`--events`).
    VigilEvents,
    BpftracePrint,
    BpftraceCount,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Bare => "bare",
            Tool::AuditWatch => "auditd watch",
            Tool::AuditSyscall => "auditd syscall",
            Tool::Vigil => "vigil",
            Tool::VigilOld => "vigil old",
            Tool::VigilEvents => "vigil events",
            Tool::BpftracePrint => "bpftrace print",
            Tool::BpftraceCount => "bpftrace count",
        }
    }
}

const TOOLS: [Tool; 8] = [
    Tool::Bare,
    Tool::AuditWatch,
    Tool::AuditSyscall,
    Tool::Vigil,
    Tool::VigilOld,
    Tool::VigilEvents,
    Tool::BpftracePrint,
    Tool::BpftraceCount,
];

struct Workload {
    name: &'static str,
    full: u64,
    quick: u64,
    what: &'static str,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "exec",
        full: 2000,
        quick: 300,
        what: "fork + exec /bin/true",
    },
    Workload {
        name: "openat",
        full: 200_000,
        quick: 40_000,
        what: work::OPENAT_MIX,
    },
    Workload {
        name: "connect",
        full: 20_000,
        quick: 4000,
        what: "TCP connect to a closed loopback port (refused)",
    },
    Workload {
        name: "build",
        full: 20,
        quick: 3,
        what: "clang-19 -O1 -c of a C file with 8 system headers",
    },
];

/// Restores the kernel's audit state as the brief requires: no rules,
/// disabled, and `-a never,task` so later processes do not pay for audit.
pub fn audit_restore() {
    let _ = sh("auditctl", &["-D"]);
    let _ = sh("auditctl", &["-e", "0"]);
    let _ = sh("auditctl", &["-a", "never,task"]);
}

/// One configuration, running.
struct Setup {
    tool: Tool,
    /// Where its records go (JSON lines, audit log, bpftrace output).
    out: Option<PathBuf>,
    /// Processes whose CPU is the tool's own (the agent, auditd + kauditd,
    /// bpftrace).
    cpu_pids: Vec<u32>,
    agent: Option<Agent>,
    child: Option<KillOnDrop>,
    _audit: Option<Guard>,
}

fn audit_lost() -> u64 {
    sh("auditctl", &["-s"])
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("lost ").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

fn start(tool: Tool, dir: &Path, vigil_toml: &str, old: Option<&Path>) -> R<Setup> {
    let mut s = Setup {
        tool,
        out: None,
        cpu_pids: Vec::new(),
        agent: None,
        child: None,
        _audit: None,
    };
    match tool {
        Tool::Bare => {}
        Tool::AuditWatch | Tool::AuditSyscall => {
            let conf = dir.join("audit");
            std::fs::create_dir_all(conf.join("plugins.d")).map_err(ctx("audit dir"))?;
            let log = conf.join("audit.log");
            let _ = std::fs::remove_file(&log);
            std::fs::write(
                conf.join("auditd.conf"),
                format!(
                    "local_events = yes\nwrite_logs = yes\nlog_file = {}\nlog_format = ENRICHED\n\
                     flush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 100000\n\
                     max_log_file_action = IGNORE\nspace_left = 75\nspace_left_action = IGNORE\n\
                     admin_space_left = 50\nadmin_space_left_action = IGNORE\n\
                     disk_full_action = IGNORE\ndisk_error_action = IGNORE\npriority_boost = 4\n\
                     name_format = NONE\nq_depth = 2000\noverflow_action = SYSLOG\n\
                     plugin_dir = {}\nend_of_event_timeout = 2\n",
                    log.display(),
                    conf.join("plugins.d").display()
                ),
            )
            .map_err(ctx("auditd.conf"))?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(
                conf.join("auditd.conf"),
                std::fs::Permissions::from_mode(0o600),
            );
            // From here on the kernel's audit state is ours: restore it
            // whatever happens (drop, error, signal).
            s._audit = Some(Guard::new(audit_restore));
            let child = std::process::Command::new("auditd")
                .args(["-n", "-s", "nochange", "-c"])
                .arg(&conf)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(ctx("start auditd (scripts/install-deps.sh installs it)"))?;
            let pid = child.id();
            s.child = Some(KillOnDrop(Some(child)));
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                let st = sh("auditctl", &["-s"])?;
                if st.lines().any(|l| l == format!("pid {pid}")) {
                    break;
                }
                if Instant::now() > end {
                    return Err(format!(
                        "auditd (pid {pid}) did not register with the kernel"
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Debian's /etc/audit/rules.d/audit.rules preamble
            sh("auditctl", &["-D"])?;
            sh(
                "auditctl",
                &["-b", "8192", "--backlog_wait_time", "60000", "-f", "1"],
            )?;
            let mut rules: Vec<&str> = AUDIT_WATCH.to_vec();
            if tool == Tool::AuditSyscall {
                rules.retain(|r| !r.contains("-S connect ") || r.contains("-S connect,"));
                rules.extend_from_slice(AUDIT_SYSCALL);
            }
            for r in rules {
                let args: Vec<&str> = r.split_whitespace().collect();
                if let Err(e) = sh("auditctl", &args) {
                    // a watch on a path this host lacks is not fatal
                    if !r.starts_with("-w") {
                        return Err(e);
                    }
                }
            }
            sh("auditctl", &["-e", "1"])?;
            s.out = Some(log);
            s.cpu_pids = vec![pid];
            s.cpu_pids.extend(pids_named("kauditd"));
        }
        Tool::Vigil | Tool::VigilOld | Tool::VigilEvents => {
            let out = dir.join("vigil.json");
            let _ = std::fs::remove_file(&out);
            let _ = std::fs::remove_dir_all(dir.join("vigil"));
            let bin = match (tool, old) {
                (Tool::VigilOld, Some(p)) => p.to_path_buf(),
                _ => vigil_bin()?,
            };
            let a = Agent::start_with(
                &bin,
                AgentOpts {
                    data_dir: &dir.join("vigil"),
                    outputs: vec![format!("file://{}", out.display())],
                    events: tool == Tool::VigilEvents,
                    extra_toml: vigil_toml,
                    args: vec![],
                },
            )?;
            s.cpu_pids = vec![a.pid];
            s.agent = Some(a);
            s.out = Some(out);
        }
        Tool::BpftracePrint | Tool::BpftraceCount => {
            let out = dir.join("bpftrace.out");
            let _ = std::fs::remove_file(&out);
            let script = if tool == Tool::BpftracePrint {
                BPFTRACE_PRINT
            } else {
                BPFTRACE_COUNT
            };
            let child = std::process::Command::new("bpftrace")
                .arg("-o")
                .arg(&out)
                .args(["-e", script])
                .env("BPFTRACE_STRLEN", "200")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(ctx("start bpftrace (scripts/install-deps.sh installs it)"))?;
            let pid = child.id();
            s.child = Some(KillOnDrop(Some(child)));
            // ready when it printed "Attaching N probes..." to its output
            let end = Instant::now() + Duration::from_secs(60);
            loop {
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                if text.contains("Attaching") {
                    break;
                }
                if Instant::now() > end {
                    return Err("bpftrace did not attach within 60 s".into());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_millis(500));
            s.cpu_pids = vec![pid];
            if tool == Tool::BpftracePrint {
                s.out = Some(out);
            }
        }
    }
    Ok(s)
}

impl Setup {
    fn cpu(&self) -> u64 {
        self.cpu_pids.iter().map(|&p| cpu_ns(p)).sum()
    }

    /// Events the vigil agent decoded so far (all processes), from its
    /// metrics. The agent refreshes that series at its housekeeping tick
    /// (every [`HOUSEKEEPING_S`] s), so a reading taken right after a
    /// workload still shows the count from before it: read only through
    /// [`Setup::settled`].
    fn decoded(&self) -> Option<f64> {
        self.agent
            .as_ref()
            .and_then(|a| a.metric("vigil_sensor_events_total").ok())
    }

    /// Decoded events and drops once the agent has refreshed its metrics
    /// after everything so far: for a vigil agent, one housekeeping
    /// interval and a half second later (the ring is drained long before).
    /// Other tools' drop counters are read at once.
    fn settled(&self) -> (Option<f64>, u64) {
        if self.agent.is_some() {
            std::thread::sleep(Duration::from_millis(HOUSEKEEPING_S * 1000 + 500));
        }
        (self.decoded(), self.lost())
    }

    fn lost(&self) -> u64 {
        match self.tool {
            Tool::AuditWatch | Tool::AuditSyscall => audit_lost(),
            Tool::Vigil | Tool::VigilOld | Tool::VigilEvents => {
                self.agent
                    .as_ref()
                    .and_then(|a| a.metric("vigil_sensor_dropped_events_total").ok())
                    .unwrap_or(0.0) as u64
            }
            // bpftrace writes "Lost N events" into its output
            Tool::BpftracePrint => self
                .out
                .as_ref()
                .and_then(|o| std::fs::read_to_string(o).ok())
                .map(|t| {
                    t.lines()
                        .filter_map(|l| {
                            l.strip_prefix("Lost ")?
                                .split(' ')
                                .next()?
                                .parse::<u64>()
                                .ok()
                        })
                        .sum()
                })
                .unwrap_or(0),
            _ => 0,
        }
    }

    fn out_len(&self) -> u64 {
        self.out
            .as_ref()
            .and_then(|o| std::fs::metadata(o).ok())
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Records about process `pid` or its children written since `from`.
    fn records_about(&self, from: u64, pid: u32) -> Option<u64> {
        let out = self.out.as_ref()?;
        let mut n = 0u64;
        match self.tool {
            Tool::Vigil | Tool::VigilOld | Tool::VigilEvents => {
                scan_json(out, from, |v| {
                    if v["event"]["kind"] == "metric" {
                        return;
                    }
                    let p = v["process"]["pid"].as_u64();
                    let pp = v["process"]["parent"]["pid"].as_u64();
                    if p == Some(pid as u64) || pp == Some(pid as u64) {
                        n += 1;
                    }
                });
            }
            Tool::AuditWatch | Tool::AuditSyscall => {
                let data = read_from(out, from);
                let (a, b) = (format!(" pid={pid} "), format!(" ppid={pid} "));
                for l in data.split(|&c| c == b'\n') {
                    if l.starts_with(b"type=SYSCALL ") {
                        let l = String::from_utf8_lossy(l);
                        if l.contains(&a) || l.contains(&b) {
                            n += 1;
                        }
                    }
                }
            }
            Tool::BpftracePrint => {
                let data = read_from(out, from);
                let ps = pid.to_string();
                for l in data.split(|&c| c == b'\n') {
                    let l = String::from_utf8_lossy(l);
                    let mut it = l.split(' ');
                    if it.next() == Some(&ps) || it.next() == Some(&ps) {
                        n += 1;
                    }
                }
            }
            _ => return None,
        }
        Some(n)
    }

    fn stop(mut self) -> R<()> {
        if let Some(a) = self.agent.take() {
            a.stop()?;
        }
        // auditd first (it unregisters from the kernel on SIGTERM), then
        // the kernel's rules and switch
        if let Some(mut c) = self.child.take()
            && let Some(ch) = c.0.as_mut()
        {
            signal(ch.id(), libc::SIGTERM);
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end && matches!(ch.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if matches!(self.tool, Tool::AuditWatch | Tool::AuditSyscall) {
            audit_restore();
        }
        Ok(())
    }
}

fn read_from(p: &Path, from: u64) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut v = Vec::new();
    if let Ok(mut f) = std::fs::File::open(p)
        && f.seek(std::io::SeekFrom::Start(from)).is_ok()
    {
        let _ = f.read_to_end(&mut v);
    }
    v
}

/// vigil's default `agent.housekeeping_interval_s`: the agent refreshes
/// its per-sensor metrics at that tick.
const HOUSEKEEPING_S: u64 = 5;

#[derive(Default, Clone)]
struct Cell {
    ns: Vec<f64>,
    ratio: Vec<f64>,
    agent_cpu: Vec<f64>,
    records: Vec<f64>,
    decoded: Vec<f64>,
    lost: u64,
}

/// `vigil-eval compare [--quick] [--rounds N] [--scale F] [--only TOOL,..]`
pub fn main(args: &[String]) -> R<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut rounds = if quick { 1 } else { 5 };
    let mut scale = 1.0f64;
    let mut only: Option<Vec<String>> = None;
    let mut vigil_toml = String::new();
    let mut old: Option<PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => {}
            "--rounds" => {
                rounds = args
                    .get(i + 1)
                    .and_then(|s| s.parse().ok())
                    .ok_or("--rounds N")?;
                i += 1;
            }
            "--scale" => {
                scale = args
                    .get(i + 1)
                    .and_then(|s| s.parse().ok())
                    .ok_or("--scale F")?;
                i += 1;
            }
            "--only" => {
                only = Some(
                    args.get(i + 1)
                        .ok_or("--only bare,vigil,...")?
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                );
                i += 1;
            }
            "--vigil-toml" => {
                // settings appended to vigil's config (after its [agent]
                // table): what one sensor or option costs, e.g.
                // `--vigil-toml $'[perf]\nrunqlat = false'`
                let t = args.get(i + 1).ok_or("--vigil-toml 'TOML'")?;
                vigil_toml.push_str(t);
                vigil_toml.push('\n');
                i += 1;
            }
            "--vigil-old" => {
                // another vigil binary (an older build) as one more tool,
                // in the same rounds: before/after ratios from one run
                let p = PathBuf::from(args.get(i + 1).ok_or("--vigil-old PATH")?);
                if !p.is_file() {
                    return Err(format!("--vigil-old {}: no such file", p.display()));
                }
                old = Some(p);
                i += 1;
            }
            a => return Err(format!("compare: unknown argument {a}")),
        }
        i += 1;
    }
    let tools: Vec<Tool> = TOOLS
        .iter()
        .copied()
        .filter(|t| *t != Tool::VigilOld || old.is_some())
        .filter(|t| {
            *t == Tool::Bare
                || (*t == Tool::VigilOld && only.is_none())
                || only.as_ref().is_none_or(|o| {
                    o.iter()
                        .any(|x| t.name().replace(' ', "-") == *x || t.name() == x)
                })
        })
        .collect();
    let dir = TempDir::new("compare")?;
    let build_dir = dir.join("build");
    std::fs::create_dir_all(&build_dir).map_err(ctx("build dir"))?;
    let mut cells = vec![vec![Cell::default(); tools.len()]; WORKLOADS.len()];
    let mut idle: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    // vigil's "N/M sensors live in T ms", per tool, every round
    let mut live_ms: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    let t0 = Instant::now();
    for r in 0..rounds {
        // rotate the order each round so drift does not favour one tool
        let order: Vec<usize> = (0..tools.len()).map(|k| (k + r) % tools.len()).collect();
        let mut bare_ns = [f64::NAN; WORKLOADS.len()];
        let mut round_ns = vec![[f64::NAN; WORKLOADS.len()]; tools.len()];
        for &ti in &order {
            let tool = tools[ti];
            progress(format!(
                "compare: round {}/{rounds}, {} ({:.0}s elapsed)",
                r + 1,
                tool.name(),
                t0.elapsed().as_secs_f64()
            ));
            let setup = start(tool, &dir.0, &vigil_toml, old.as_deref())?;
            if let Some(ms) = setup.agent.as_ref().and_then(|a| live_ms_of(&a.live_line)) {
                live_ms[ti].push(ms);
            }
            // the tool's own CPU while nothing runs (timers, housekeeping,
            // periodic collectors): subtracted from its CPU per workload
            let idle_rate = if tool == Tool::Bare {
                0.0
            } else {
                // vigil loads its performance objects (verifier: ~1 s of
                // CPU) right after it reports ready: let start-up finish
                std::thread::sleep(Duration::from_secs(4));
                let c0 = setup.cpu();
                let t = Instant::now();
                std::thread::sleep(Duration::from_secs(2));
                setup.cpu().saturating_sub(c0) as f64 / t.elapsed().as_secs_f64()
            };
            idle[ti].push(idle_rate / 1e7);
            // the counts before the first workload (start-up's records are
            // decoded and counted well within the idle window above)
            let (mut dec_prev, mut lost_prev) = (setup.decoded(), setup.lost());
            for (wi, w) in WORKLOADS.iter().enumerate() {
                let n = (((if quick { w.quick } else { w.full }) as f64) * scale).max(1.0) as u64;
                let n_s = n.to_string();
                let off = setup.out_len();
                let t_w = Instant::now();
                let cpu0 = setup.cpu();
                let ran = work::run(&[w.name, &n_s, &build_dir.display().to_string()])?;
                if let Some(o) = &setup.out {
                    settle(o, Duration::from_millis(300), Duration::from_secs(3));
                } else if tool != Tool::Bare {
                    std::thread::sleep(Duration::from_millis(200));
                }
                let cpu = (setup.cpu().saturating_sub(cpu0) as f64
                    - idle_rate * t_w.elapsed().as_secs_f64())
                .max(0.0);
                let c = &mut cells[wi][ti];
                let per_op = ran.wall_ns / ran.ops.max(1) as f64;
                c.ns.push(per_op);
                round_ns[ti][wi] = per_op;
                if tool == Tool::Bare {
                    bare_ns[wi] = per_op;
                }
                if tool != Tool::Bare {
                    c.agent_cpu.push(cpu / ran.ops.max(1) as f64);
                }
                if let Some(k) = setup.records_about(off, ran.pid) {
                    c.records.push(k as f64 / ran.ops.max(1) as f64);
                }
                let (dec_now, lost_now) = setup.settled();
                if let (Some(a), Some(b)) = (dec_prev, dec_now) {
                    c.decoded.push((b - a) / ran.ops.max(1) as f64);
                }
                c.lost += lost_now.saturating_sub(lost_prev);
                (dec_prev, lost_prev) = (dec_now, lost_now);
            }
            setup.stop()?;
        }
        for (ti, row) in round_ns.iter().enumerate() {
            for wi in 0..WORKLOADS.len() {
                if bare_ns[wi].is_finite() && row[wi].is_finite() {
                    cells[wi][ti].ratio.push(row[wi] / bare_ns[wi]);
                }
            }
        }
    }
    // the kernel as found: checked, not assumed
    let st = sh("auditctl", &["-s"]).unwrap_or_default();
    let rules = sh("auditctl", &["-l"]).unwrap_or_default();
    let restored = st.lines().any(|l| l == "enabled 0") && rules.trim() == "-a never,task";

    println!(
        "\nvigil-eval compare: {} round(s) in {:.0} s, medians (ratio: median over rounds of ns/op against the bare run of the same round)\n",
        rounds,
        t0.elapsed().as_secs_f64()
    );
    for (wi, w) in WORKLOADS.iter().enumerate() {
        let n = (((if quick { w.quick } else { w.full }) as f64) * scale).max(1.0) as u64;
        println!("{} ({} ops: {})", w.name, n, w.what);
        println!(
            "  {:<16} {:>12} {:>8} {:>16} {:>12} {:>12} {:>10}",
            "tool", "ns/op", "x bare", "tool CPU ns/op", "records/op", "decoded/op", "lost"
        );
        for (ti, t) in tools.iter().enumerate() {
            let c = &cells[wi][ti];
            println!(
                "  {:<16} {:>12.0} {:>7.2}x {:>16} {:>12} {:>12} {:>10}",
                t.name(),
                median(&c.ns),
                median(&c.ratio),
                if c.agent_cpu.is_empty() {
                    "-".into()
                } else {
                    format!("{:.0}", median(&c.agent_cpu))
                },
                if c.records.is_empty() {
                    "-".into()
                } else {
                    format!("{:.3}", median(&c.records))
                },
                if c.decoded.is_empty() {
                    "-".into()
                } else {
                    format!("{:.2}", median(&c.decoded))
                },
                if matches!(t, Tool::Bare | Tool::BpftraceCount) {
                    "-".into()
                } else {
                    c.lost.to_string()
                },
            );
        }
        println!();
    }
    let idle_line: Vec<String> = tools
        .iter()
        .enumerate()
        .filter(|(_, t)| **t != Tool::Bare)
        .map(|(i, t)| format!("{} {:.2}%", t.name(), median(&idle[i])))
        .collect();
    println!(
        "tools' own CPU while idle (% of one CPU): {}",
        idle_line.join(", ")
    );
    for (ti, t) in tools.iter().enumerate() {
        if !live_ms[ti].is_empty() {
            let all: Vec<String> = live_ms[ti].iter().map(|m| format!("{m:.0}")).collect();
            println!(
                "{}: start to all sensors attached (\"sensors live in\"), median {:.0} ms (rounds: {} ms)",
                t.name(),
                median(&live_ms[ti]),
                all.join(", ")
            );
        }
    }
    if let Some(p) = &old {
        println!("vigil old: {}", p.display());
    }
    println!(
        "tool CPU: the tool's own processes (vigil agent; auditd + kauditd; bpftrace) per op, from /proc/PID/task/*/schedstat,\n\
         minus its idle rate over the same time;\n\
         the BPF programs and audit's syscall hooks run in the workload and are in its ns/op.\n\
         records/op: records about the workload process or its children (by pid / parent pid) in the tool's output:\n\
         vigil JSON lines (alerts only for `vigil`), audit SYSCALL records, bpftrace lines.\n\
         decoded/op: events vigil's agent decoded from its ring buffers per op (every process on the host, after the kernel's filters and dedup),\n\
         from its metrics read one housekeeping interval after each workload (the agent refreshes them at that tick); lost likewise.\n\
         lost: auditctl -s lost, vigil's drop counters, bpftrace 'Lost N events'.\n\
         audit state after the run: {}",
        if restored {
            "restored (enabled 0, rules: -a never,task)"
        } else {
            "NOT RESTORED"
        }
    );
    if !restored {
        return Err(format!("audit state not restored: {st} / {rules}"));
    }
    // vigil must have delivered events of the workloads it is meant to see
    if let Some(vi) = tools.iter().position(|t| *t == Tool::Vigil) {
        // the default deployment alerts on the reads of /etc/shadow
        let d = median(&cells[1][vi].records);
        if d.is_nan() || d <= 0.0 {
            return Err("vigil (alerts) raised no alert for the reads of /etc/shadow".into());
        }
    }
    if let Some(vi) = tools.iter().position(|t| *t == Tool::VigilEvents) {
        for (wi, w) in WORKLOADS.iter().enumerate() {
            let d = median(&cells[wi][vi].records);
            let want = match w.name {
                "exec" => 1.0,    // exec + fork + exit of each child
                "openat" => 0.24, // the failing /etc opens (1 in 4)
                "connect" => 0.9, // every refused connect
                _ => 0.0,
            };
            if d < want {
                return Err(format!(
                    "vigil delivered {d:.3} records/op for {}, expected at least {want}",
                    w.name
                ));
            }
        }
    }
    Ok(())
}

/// T from vigil's `N/M sensors live in T ms` line.
fn live_ms_of(line: &str) -> Option<f64> {
    let rest = line.split("sensors live in ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::live_ms_of;

    #[test]
    fn start_up_time_is_read_from_the_live_line() {
        assert_eq!(
            live_ms_of("vigil: 41/44 sensors live in 612 ms (3 unavailable: ...)"),
            Some(612.0)
        );
        assert_eq!(live_ms_of("vigil: starting"), None);
    }
}
