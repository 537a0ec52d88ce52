//! The CPU profiler's collector (`vigil.profile`): every `perf.interval_s`
//! it reads the sample counts per (process, cgroup, kernel stack, user
//! stack) of [`vigil_bpf::profile::Profile`], symbolizes the stacks
//! ([`crate::perf::symbolize`], kernel frames from /proc/kallsyms), and
//! writes one metric record per busy process (samples, share of a CPU,
//! hottest function), one summary record (samples, idle, stacks that came
//! back empty or truncated and why), the `cpu-hot` finding (the process
//! or container burning the most CPU and its hottest function) and the
//! folded stacks `vigil report --flame` draws (`profile-folded.txt` in
//! the data directory, kept with the perf history).

use crate::config::PerfConfig;
use crate::ecs;
use crate::perf::PerfRecord;
use crate::perf::collector::{Collector, CounterDelta, Ctx, Deltas, Kallsyms, Output};
use crate::perf::sched::round1;
use crate::perf::symbolize::Symbolizer;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vigil_bpf::profile::{PF_KTHREAD, PF_USER_MODE, PfKey, Profile, ProfileStats};

/// Functions a complete user stack starts in (the outermost frame of a
/// thread or of `main`'s caller chain). A user stack whose outermost frame
/// is none of these was cut short: the frame-pointer chain broke in code
/// built without frame pointers.
pub const ENTRY_FUNCTIONS: &[&str] = &[
    "_start",
    "__libc_start_main",
    "__libc_start_call_main",
    "start_thread",
    "clone",
    "clone3",
    "__clone",
    "__clone3",
    "thread_start",
    "runtime.goexit",
    "runtime.goexit.abi0",
    "runtime.main",
    "runtime.mstart",
];

/// Why a stack is not whole (`vigil.profile.stacks_empty` /
/// `stacks_truncated`): printed in the summary record.
pub const EMPTY_REASON: &str = "user stack unreadable (bpf_get_stackid -EFAULT): no frame-pointer chain at the sampled instruction, or its pages were not present";
/// See [`EMPTY_REASON`].
pub const TRUNCATED_REASON: &str = "user stack ends before a thread entry function: a frame in code built without frame pointers (-fno-omit-frame-pointer) broke the chain";

/// One sample row after symbolization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    /// Process.
    pub tgid: u32,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Command name.
    pub comm: String,
    /// Frames outermost first: user frames, then kernel frames (`_[k]`).
    pub frames: Vec<String>,
    /// Samples.
    pub samples: u64,
    /// The user stack could not be taken.
    pub empty: bool,
    /// The user stack did not reach an entry function.
    pub truncated: bool,
    /// The sample hit kernel mode.
    pub kernel: bool,
}

impl Folded {
    /// `comm;frame;frame... count` (flamegraph.pl's input).
    pub fn line(&self) -> String {
        let mut s = sanitize(&self.comm);
        for f in &self.frames {
            s.push(';');
            s.push_str(&sanitize(f));
        }
        format!("{s} {}", self.samples)
    }

    /// The innermost frame (where the CPU was), or the command name.
    pub fn leaf(&self) -> &str {
        self.frames.last().map(String::as_str).unwrap_or(&self.comm)
    }
}

/// Frame names carry no `;`, newline or tab (the folded format's
/// separators).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if matches!(c, ';' | '\n' | '\t' | '\r') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Builds a folded row from raw stacks: `user` and `kernel` innermost first
/// as the kernel stores them, `name_user` / `name_kernel` resolving an
/// address.
pub fn fold(
    key: &PfKey,
    samples: u64,
    user: &[u64],
    kernel: &[u64],
    mut name_user: impl FnMut(u64) -> String,
    mut name_kernel: impl FnMut(u64) -> String,
) -> Folded {
    let kthread = key.flags & PF_KTHREAD != 0;
    let mut frames = Vec::with_capacity(user.len() + kernel.len() + 1);
    let empty = !kthread && user.is_empty();
    let mut truncated = false;
    if empty {
        frames.push("[missing user stack]".to_string());
    } else if !kthread {
        let names: Vec<String> = user.iter().rev().map(|&a| name_user(a)).collect();
        truncated = !names
            .first()
            .is_some_and(|n| ENTRY_FUNCTIONS.contains(&n.as_str()));
        if truncated {
            frames.push("[truncated]".to_string());
        }
        frames.extend(names);
    }
    for &a in kernel.iter().rev() {
        frames.push(format!("{}_[k]", name_kernel(a)));
    }
    Folded {
        tgid: key.tgid,
        cgroup_id: key.cgroup_id,
        comm: key.comm(),
        frames,
        samples,
        empty,
        truncated,
        kernel: key.flags & PF_USER_MODE == 0,
    }
}

/// The user stack as the kernel gave it (innermost first), with the
/// caller of a frameless leaf put back: when the sampled function set up
/// no frame pointer, the frame-pointer walk went from the sampled
/// instruction straight to the caller's caller, and `sp_ret` (the return
/// address at the stack pointer, 0 when none) is the missing caller.
pub fn with_leaf_caller(user: &[u64], sp_ret: u64, leaf_frameless: bool) -> Vec<u64> {
    let mut v = user.to_vec();
    if leaf_frameless && sp_ret != 0 && !v.is_empty() && v.get(1) != Some(&sp_ret) {
        v.insert(1, sp_ret);
    }
    v
}

/// One process in an interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcProfile {
    /// Process.
    pub tgid: u32,
    /// cgroup v2 id (of the most samples).
    pub cgroup_id: u64,
    /// Command name.
    pub comm: String,
    /// Samples.
    pub samples: u64,
    /// Of which in kernel mode.
    pub kernel: u64,
    /// Self samples per function (leaf frame), most first.
    pub functions: Vec<(String, u64)>,
}

/// Sums folded rows per process, busiest first.
pub fn per_process(rows: &[Folded]) -> Vec<ProcProfile> {
    let mut m: BTreeMap<u32, (ProcProfile, HashMap<String, u64>)> = BTreeMap::new();
    for r in rows {
        let e = m.entry(r.tgid).or_insert_with(|| {
            (
                ProcProfile {
                    tgid: r.tgid,
                    cgroup_id: r.cgroup_id,
                    comm: r.comm.clone(),
                    ..ProcProfile::default()
                },
                HashMap::new(),
            )
        });
        e.0.samples += r.samples;
        if r.kernel {
            e.0.kernel += r.samples;
        }
        *e.1.entry(r.leaf().to_string()).or_default() += r.samples;
    }
    let mut out: Vec<ProcProfile> = m
        .into_values()
        .map(|(mut p, f)| {
            let mut f: Vec<(String, u64)> = f.into_iter().collect();
            f.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            p.functions = f;
            p
        })
        .collect();
    out.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.tgid.cmp(&b.tgid)));
    out
}

/// The folded-stacks file the agent appends to and `vigil report --flame`
/// reads: one line per (interval, stack): `unix_s<TAB>cgroup<TAB>folded count`.
pub const FOLDED_FILE: &str = "profile-folded.txt";

/// Appends folded lines, keeping at most `max_bytes` (the older half
/// rotates to `.1`). Files are 0600.
#[derive(Debug)]
pub struct FoldedLog {
    path: PathBuf,
    max_bytes: u64,
    failed: bool,
}

impl FoldedLog {
    /// The log in `dir`.
    pub fn new(dir: &Path, max_bytes: u64) -> FoldedLog {
        FoldedLog {
            path: dir.join(FOLDED_FILE),
            max_bytes: max_bytes.max(64 << 10),
            failed: false,
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends lines.
    pub fn append(&mut self, lines: &[String]) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if lines.is_empty() {
            return Ok(());
        }
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() > self.max_bytes / 2) {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            std::fs::rename(&self.path, old)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        let mut buf = String::new();
        for l in lines {
            buf.push_str(l);
            buf.push('\n');
        }
        f.write_all(buf.as_bytes())
    }
}

/// Cumulative figures (summary, tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileTotals {
    /// Samples counted per stack.
    pub samples: u64,
    /// Samples whose user stack was empty.
    pub empty: u64,
    /// Samples whose user stack was truncated.
    pub truncated: u64,
    /// `cpu-hot` findings.
    pub findings: u64,
}

/// The profiler's collector.
pub struct ProfileCollector {
    pf: Profile,
    cfg: PerfConfig,
    counts: Deltas<PfKey, u64>,
    sym: Symbolizer,
    last_at: Instant,
    last_stats: ProfileStats,
    log: Option<FoldedLog>,
    cgroups: HashMap<u64, Option<String>>,
    /// Cumulative figures.
    pub totals: ProfileTotals,
    /// The last interval's folded rows (tests, `vigil run --verbose`).
    pub last_rows: Vec<Folded>,
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A finite figure (a NaN or an infinity is left out of the record).
fn put_f64(w: &mut vigil_outputs::json::Writer, key: &str, v: f64) {
    if v.is_finite() {
        w.f64(key, v);
    }
}

/// `vigil.profile.top`: the five hottest functions as `[name, samples]`.
fn top_functions(w: &mut vigil_outputs::json::Writer, functions: &[(String, u64)]) {
    w.str_u64_pairs(
        "vigil.profile.top",
        functions.iter().take(5).map(|(f, n)| (f.as_bytes(), *n)),
    );
}

impl ProfileCollector {
    /// A collector of a loaded profiler; the folded stacks go to
    /// `data_dir` when given.
    pub fn new(pf: Profile, cfg: &PerfConfig, data_dir: Option<&Path>) -> ProfileCollector {
        Kallsyms::preload();
        ProfileCollector {
            last_stats: pf.stats(),
            pf,
            cfg: cfg.clone(),
            counts: Deltas::default(),
            sym: Symbolizer::default(),
            last_at: Instant::now(),
            log: data_dir.map(|d| FoldedLog::new(d, cfg.history_max_bytes)),
            cgroups: HashMap::new(),
            totals: ProfileTotals::default(),
            last_rows: Vec::new(),
        }
    }

    /// The profiler.
    pub fn profile(&self) -> &Profile {
        &self.pf
    }

    /// The folded-stacks file, when kept.
    pub fn folded_path(&self) -> Option<&Path> {
        self.log.as_ref().map(FoldedLog::path)
    }

    fn cgroup(&mut self, id: u64, host: &mut dyn crate::host::Host) -> Option<String> {
        if let Some(Some(p)) = self.cgroups.get(&id) {
            return Some(p.clone());
        }
        let p = host.cgroup_path(id);
        self.cgroups.insert(id, p.clone());
        p
    }
}

impl Collector for ProfileCollector {
    fn name(&self) -> &'static str {
        "profile"
    }

    fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>) {
        out.push(("profile_keys", self.counts.len()));
    }

    fn collect(&mut self, ctx: &mut Ctx<'_>) -> Output {
        let now = Instant::now();
        let secs = now.duration_since(self.last_at).as_secs_f64().max(1e-3);
        self.last_at = now;
        let mut out = Output::default();
        if !self.pf.is_live() {
            return out;
        }
        let counts = self.pf.counts().unwrap_or_default();
        let (changed, forget) = self.counts.step(counts, |k| !alive(k.tgid));
        if !forget.is_empty() {
            let _ = self.pf.forget(&forget);
            let live: HashSet<i32> = self
                .counts
                .keys()
                .flat_map(|k| [k.kstack, k.ustack])
                .collect();
            let dead: Vec<i32> = forget
                .iter()
                .flat_map(|k| [k.kstack, k.ustack])
                .filter(|i| *i >= 0 && !live.contains(i))
                .collect();
            self.pf.forget_stacks(&dead);
        }
        self.sym.new_round();
        let ks = Kallsyms::preload();
        let mut rows = Vec::with_capacity(changed.len());
        for (k, n) in &changed {
            let mut user = self.pf.stack(k.ustack);
            if k.sp_ret != 0 && !user.is_empty() {
                let frameless = self.sym.frameless(k.tgid, user[0]);
                user = with_leaf_caller(&user, k.sp_ret, frameless);
            }
            let kernel = self.pf.stack(k.kstack);
            let sym = &mut self.sym;
            rows.push(fold(
                k,
                *n,
                &user,
                &kernel,
                |a| sym.user(k.tgid, a),
                |a| ks.name(a),
            ));
        }
        let stats = self.pf.stats();
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let (samples_all, idle) = (
            d(stats.samples, self.last_stats.samples),
            d(stats.idle, self.last_stats.idle),
        );
        let lost =
            d(stats.full, self.last_stats.full) + d(stats.stack_full, self.last_stats.stack_full);
        self.last_stats = stats;
        let counted: u64 = rows.iter().map(|r| r.samples).sum();
        let empty: u64 = rows.iter().filter(|r| r.empty).map(|r| r.samples).sum();
        let truncated: u64 = rows.iter().filter(|r| r.truncated).map(|r| r.samples).sum();
        self.totals.samples += counted;
        self.totals.empty += empty;
        self.totals.truncated += truncated;
        let hz = self.pf.hz() as f64;
        let cpu_pct = |n: u64| round1(100.0 * n as f64 / (hz * secs));
        let ts = ecs::rfc3339(ctx.unix_ns);
        let hostname = ctx.hostname.to_string();
        let header = |w: &mut vigil_outputs::json::Writer, dataset: &str, action: &str| {
            w.str("@timestamp", ts.as_bytes())
                .str("event.kind", "metric")
                .str("event.module", "vigil")
                .str("event.dataset", dataset)
                .str("event.action", action)
                .str("host.hostname", hostname.as_bytes());
        };
        if samples_all > 0 || counted > 0 {
            let mut w = vigil_outputs::json::Writer::new();
            header(&mut w, "vigil.profile", "cpu-profile-summary");
            put_f64(
                &mut w,
                "vigil.profile.interval_s",
                (secs * 100.0).round() / 100.0,
            );
            w.u64("vigil.profile.hz", self.pf.hz())
                .u64("vigil.profile.samples", counted)
                .u64("vigil.profile.idle_samples", idle)
                .u64("vigil.profile.lost_samples", lost)
                .u64("vigil.profile.stacks_empty", empty)
                .u64("vigil.profile.stacks_truncated", truncated);
            put_f64(&mut w, "vigil.profile.cpu_pct", cpu_pct(counted));
            if empty > 0 {
                w.str("vigil.profile.stacks_empty_reason", EMPTY_REASON);
            }
            if truncated > 0 {
                w.str("vigil.profile.stacks_truncated_reason", TRUNCATED_REASON);
            }
            out.records.push(PerfRecord {
                json: w.finish(),
                finding: None,
            });
            for (what, n) in [("empty", empty), ("truncated", truncated)] {
                if n > 0 {
                    out.counters.push(CounterDelta {
                        name: "vigil_profile_broken_stacks_total",
                        help: "Profiler samples whose user stack came back empty or truncated (frame pointers missing).",
                        labels: vec![("kind", what.to_string())],
                        delta: n,
                        scale: 1.0,
                    });
                }
            }
        }
        let procs = per_process(&rows);
        let mut by_container: BTreeMap<String, u64> = BTreeMap::new();
        for p in &procs {
            let path = self.cgroup(p.cgroup_id, ctx.host);
            let container = path.as_deref().and_then(crate::container::from_cgroup_path);
            *by_container
                .entry(container.as_ref().map(|c| c.id.clone()).unwrap_or_default())
                .or_default() += p.samples;
        }
        for (c, n) in &by_container {
            out.counters.push(CounterDelta {
                name: "vigil_profile_samples_total",
                help: "CPU profiler samples (perf.profile_hz per CPU) per container (empty: host processes).",
                labels: vec![("container", c.clone())],
                delta: *n,
                scale: 1.0,
            });
        }
        for (i, p) in procs.iter().enumerate() {
            if i >= self.cfg.profile_top.max(1) {
                break;
            }
            let path = self.cgroup(p.cgroup_id, ctx.host);
            let container = path.as_deref().and_then(crate::container::from_cgroup_path);
            let mut w = vigil_outputs::json::Writer::new();
            header(&mut w, "vigil.profile", "cpu-profile");
            w.u64("process.pid", p.tgid.into())
                .str("process.name", p.comm.as_bytes());
            if let Some(c) = &container {
                w.str("container.id", c.id.as_bytes())
                    .str("container.runtime", c.runtime);
            }
            // dotted keys nest: every vigil.cgroup.* before vigil.profile.*
            if let Some(path) = &path {
                w.str("vigil.cgroup.path", path.as_bytes());
            }
            w.u64("vigil.profile.samples", p.samples)
                .u64("vigil.profile.kernel_samples", p.kernel);
            put_f64(&mut w, "vigil.profile.cpu_pct", cpu_pct(p.samples));
            if let Some((f, n)) = p.functions.first() {
                w.str("vigil.profile.hottest", f.as_bytes());
                put_f64(
                    &mut w,
                    "vigil.profile.hottest_pct",
                    round1(100.0 * *n as f64 / p.samples.max(1) as f64),
                );
            }
            top_functions(&mut w, &p.functions);
            out.records.push(PerfRecord {
                json: w.finish(),
                finding: None,
            });
        }
        // cpu-hot: the container (or host process) burning the most CPU
        if self.cfg.profile_cpu_pct > 0.0
            && let Some((cid, n)) = by_container.iter().max_by_key(|(_, n)| **n)
        {
            let pct = cpu_pct(*n);
            let top = procs.iter().find(|p| {
                let path = self.cgroups.get(&p.cgroup_id).cloned().flatten();
                path.as_deref()
                    .and_then(crate::container::from_cgroup_path)
                    .map(|c| c.id)
                    .unwrap_or_default()
                    == *cid
            });
            let top = if cid.is_empty() { procs.first() } else { top };
            if pct >= self.cfg.profile_cpu_pct
                && let Some(p) = top
            {
                let (who_pct, who) = if cid.is_empty() {
                    (
                        cpu_pct(p.samples),
                        format!("process {} (pid {})", p.comm, p.tgid),
                    )
                } else {
                    (
                        pct,
                        format!("container {cid} (busiest: {} pid {})", p.comm, p.tgid),
                    )
                };
                let hot = p.functions.first().map(|f| f.0.as_str()).unwrap_or("?");
                if who_pct >= self.cfg.profile_cpu_pct {
                    self.totals.findings += 1;
                    let msg = format!(
                        "{who} used {who_pct:.1}% of one CPU in {secs:.0} s (threshold {}%); hottest function {hot}",
                        self.cfg.profile_cpu_pct
                    );
                    let mut w = vigil_outputs::json::Writer::new();
                    header(&mut w, "vigil.finding", "cpu-hot");
                    w.str("message", msg.as_bytes())
                        .u64("process.pid", p.tgid.into())
                        .str("process.name", p.comm.as_bytes());
                    if !cid.is_empty() {
                        w.str("container.id", cid.as_bytes());
                    }
                    // dotted keys nest: vigil.finding.* together, then vigil.profile.*
                    w.str("vigil.finding.name", "cpu-hot")
                        .str("vigil.finding.metric", "vigil.profile.cpu_pct");
                    put_f64(&mut w, "vigil.finding.value", who_pct);
                    put_f64(&mut w, "vigil.finding.threshold", self.cfg.profile_cpu_pct);
                    w.str("vigil.finding.unit", "percent")
                        .str("vigil.profile.hottest", hot.as_bytes());
                    out.records.push(PerfRecord {
                        json: w.finish(),
                        finding: Some(crate::perf::collector::Finding::new(
                            "cpu-hot",
                            "Hottest CPU consumer",
                            msg,
                        )),
                    });
                }
            }
        }
        if self.log.is_some() {
            let t = ctx.unix_ns / 1_000_000_000;
            let lines: Vec<String> = rows
                .iter()
                .map(|r| {
                    let cg = self
                        .cgroups
                        .get(&r.cgroup_id)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| "-".into());
                    format!("{t}\t{}\t{}", sanitize(&cg), r.line())
                })
                .collect();
            if let Some(log) = self.log.as_mut()
                && let Err(e) = log.append(&lines)
                && !log.failed
            {
                log.failed = true;
                log::error!("profile: cannot write {}: {e}", log.path.display());
            }
        }
        self.last_rows = rows;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tgid: u32, flags: u32) -> PfKey {
        let mut k = PfKey {
            tgid,
            cgroup_id: 7,
            flags,
            ..PfKey::default()
        };
        k.comm[..4].copy_from_slice(b"busy");
        k
    }

    /// The hottest functions, as serde_json wrote them before (names
    /// escaped, five at most).
    #[test]
    fn top_functions_are_name_and_sample_pairs() {
        let f: Vec<(String, u64)> = ["busy \"x\"", "main", "a", "b", "c", "d"]
            .iter()
            .zip([30, 2, 1, 1, 1, 1])
            .map(|(f, n)| (f.to_string(), n))
            .collect();
        let mut w = vigil_outputs::json::Writer::new();
        top_functions(&mut w, &f);
        let text = String::from_utf8(w.finish()).unwrap();
        assert_eq!(
            text,
            r#"{"vigil":{"profile":{"top":[["busy \"x\"",30],["main",2],["a",1],["b",1],["c",1]]}}}"#
        );
        let old: Vec<serde_json::Value> = f
            .iter()
            .take(5)
            .map(|(f, n)| serde_json::json!([f, n]))
            .collect();
        assert_eq!(
            text,
            format!(
                r#"{{"vigil":{{"profile":{{"top":{}}}}}}}"#,
                serde_json::Value::Array(old)
            )
        );
        let mut w = vigil_outputs::json::Writer::new();
        top_functions(&mut w, &[]);
        assert_eq!(w.finish(), br#"{"vigil":{"profile":{"top":[]}}}"#);
    }

    #[test]
    fn a_frameless_leaf_gets_its_caller_back() {
        // leaf ip, then (frame-pointer walk) the caller's caller
        let walked = [0x1153, 0x7f00_0000_2000];
        assert_eq!(
            with_leaf_caller(&walked, 0x11a2, true),
            vec![0x1153, 0x11a2, 0x7f00_0000_2000]
        );
        // a leaf with its own frame: the walk already has its caller
        assert_eq!(with_leaf_caller(&walked, 0x11a2, false), walked.to_vec());
        // no return address at sp, or already there, or no stack
        assert_eq!(with_leaf_caller(&walked, 0, true), walked.to_vec());
        let has = [0x1153, 0x11a2, 0x2000];
        assert_eq!(with_leaf_caller(&has, 0x11a2, true), has.to_vec());
        assert!(with_leaf_caller(&[], 0x11a2, true).is_empty());
        // folded: _start ... main, leaf
        let names: HashMap<u64, &str> = [
            (0x1153, "vigil_busy_spin"),
            (0x11a2, "main"),
            (0x7f00_0000_2000, "__libc_start_call_main"),
        ]
        .into();
        let f = fold(
            &key(5, PF_USER_MODE),
            3,
            &with_leaf_caller(&walked, 0x11a2, true),
            &[],
            |a| names[&a].to_string(),
            |a| format!("{a:#x}"),
        );
        assert!(
            f.line()
                .ends_with(";__libc_start_call_main;main;vigil_busy_spin 3"),
            "{}",
            f.line()
        );
    }

    #[test]
    fn folding_orders_frames_and_flags_broken_stacks() {
        let names = |a: u64| match a {
            1 => "busy_spin".to_string(),
            2 => "main".to_string(),
            3 => "__libc_start_call_main".to_string(),
            _ => format!("{a:#x}"),
        };
        let f = fold(&key(5, PF_USER_MODE), 9, &[1, 2, 3], &[], names, |_| {
            "k".into()
        });
        assert_eq!(f.line(), "busy;__libc_start_call_main;main;busy_spin 9");
        assert!(!f.empty && !f.truncated && !f.kernel);
        assert_eq!(f.leaf(), "busy_spin");
        let t = fold(&key(5, PF_USER_MODE), 2, &[1, 2], &[], names, |_| {
            "k".into()
        });
        assert!(t.truncated);
        assert_eq!(t.line(), "busy;[truncated];main;busy_spin 2");
        let e = fold(&key(5, 0), 1, &[], &[10, 11], names, |a| format!("k{a}"));
        assert!(e.empty && e.kernel);
        assert_eq!(e.line(), "busy;[missing user stack];k11_[k];k10_[k] 1");
        // kernel threads have no user stack and that is not a broken one
        let kt = fold(&key(6, PF_KTHREAD), 1, &[], &[10], names, |a| {
            format!("k;{a}")
        });
        assert!(!kt.empty && !kt.truncated);
        assert_eq!(kt.line(), "busy;k_10_[k] 1");
    }

    #[test]
    fn processes_sum_and_rank_their_hottest_function() {
        let names = |a: u64| {
            if a == 1 {
                "hot".to_string()
            } else {
                "cold".to_string()
            }
        };
        let rows = vec![
            fold(&key(5, PF_USER_MODE), 9, &[1], &[], names, |_| "k".into()),
            fold(&key(5, PF_USER_MODE), 2, &[2], &[], names, |_| "k".into()),
            fold(&key(8, PF_USER_MODE), 20, &[2], &[], names, |_| "k".into()),
        ];
        let p = per_process(&rows);
        assert_eq!(p[0].tgid, 8);
        assert_eq!(p[1].samples, 11);
        assert_eq!(p[1].functions[0], ("hot".to_string(), 9));
    }

    #[test]
    fn folded_log_appends_private_lines_and_rotates() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = std::env::temp_dir().join(format!("vigil-folded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let mut l = FoldedLog::new(&d, 64 << 10);
        let line = format!("1\t-\t{} 1", "x".repeat(1000));
        for _ in 0..40 {
            l.append(std::slice::from_ref(&line)).unwrap();
        }
        let m = std::fs::metadata(l.path()).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert!(m.len() <= 33 << 10, "rotated: {}", m.len());
        assert!(d.join(format!("{FOLDED_FILE}.1")).exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
