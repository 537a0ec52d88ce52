//! Configuration: a TOML file (every key optional, documented in
//! `docs/config.md`) plus command-line overrides. Errors name
//! `file:line: key: message`; the binary exits 2 on them.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use vigil_bpf::{Interest, SensorConfig, sensors};
pub use vigil_rules::printable;

/// A configuration error, located in its file.
///
/// Shown as `file:line: key: message`, control characters (from the file
/// name or the quoted text) escaped as `\u{1b}` so a hostile file cannot
/// break the line or send a terminal escape sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}:{line}: {}: {}",
    printable(file),
    printable(key),
    printable(message)
)]
pub struct ConfigError {
    /// File name as given.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// Dotted key (`sensors.ring_buffer_bytes`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// `[agent]` settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Data directory (baselines, spool); created 0700.
    pub data_dir: PathBuf,
    /// Emit every event, not only alerts.
    pub events: bool,
    /// `stdout` or a file path (created 0600).
    pub output: String,
    /// Parent-chain depth attached to events.
    pub ancestors: usize,
    /// Seconds between dedup-table sweeps and counter reads.
    pub housekeeping_interval_s: u64,
    /// Seconds between heartbeat records (`event.action: heartbeat`), so a
    /// SIEM notices when vigil goes silent; 0 = none.
    pub heartbeat_interval_s: u64,
    /// Write container start and stop records (`event.action:
    /// container-start|container-stop`) even when `events` is off.
    pub container_events: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            data_dir: PathBuf::from("/var/lib/vigil"),
            events: false,
            output: "stdout".into(),
            ancestors: 4,
            housekeeping_interval_s: 5,
            heartbeat_interval_s: 60,
            container_events: true,
        }
    }
}

/// `workers = 0` runs this many workers at most (or the host's CPUs if
/// fewer).
pub const AUTO_WORKERS_MAX: usize = 4;

/// `[pipeline]` settings: the threads behind the ring-buffer reader.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Threads running rules, baselines, encoding and output, sharded by
    /// process; 0: the host's CPUs, at most [`AUTO_WORKERS_MAX`]; 1 (the
    /// default): all on the ring-buffer reader's thread.
    pub workers: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        // 1: on the 2-core hosts measured, two workers ran a recorded mix
        // at 0.76-0.95x of one (README, "Pipeline workers").
        PipelineConfig { workers: 1 }
    }
}

impl PipelineConfig {
    /// The worker count `workers` stands for on this host.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(AUTO_WORKERS_MAX),
            n => n,
        }
    }
}

/// `[sensors]` settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SensorsConfig {
    /// Sensors not to attach (names as in `vigil probe`).
    pub disabled: Vec<String>,
    /// Bulk ring buffer size in bytes (power of two).
    pub ring_buffer_bytes: u32,
    /// Priority ring buffer size in bytes (power of two): alert candidates.
    pub priority_ring_buffer_bytes: u32,
    /// Alert candidates per second one process may put on the priority
    /// ring (past it they go to the bulk ring); 0: no limit.
    pub priority_rate: u32,
    /// Alert candidates one process may put on the priority ring at once.
    pub priority_burst: u32,
    /// Pending bytes that force a consumer wakeup.
    pub wakeup_bytes: u32,
    /// Drain interval bounding delivery latency (ms).
    pub drain_interval_ms: u64,
    /// Kernel-side dedup of repeated (process, object) records.
    pub dedup: bool,
    /// Report opens for write anywhere not ignored.
    pub open_writes: bool,
    /// Report every open below these prefixes.
    pub report_paths: Vec<String>,
    /// Never report opens below these prefixes.
    pub ignore_paths: Vec<String>,
    /// Ports whose connect/accept/listen are not reported.
    pub ignore_ports: Vec<u16>,
    /// TCP states whose entry tcp_state reports (names, e.g. "ESTABLISHED").
    pub tcp_states: Vec<String>,
    /// bash binary for the readline probe.
    pub bash_path: Option<PathBuf>,
    /// Per-program run-time statistics while running.
    pub bpf_stats: bool,
    /// Sampling window of the statistics in every perf interval, ms (0 =
    /// on all the time).
    pub bpf_stats_sample_ms: u64,
    /// Count KVM exits per VMM process (kvm tracepoints; counts only).
    pub kvm: bool,
}

impl Default for SensorsConfig {
    fn default() -> Self {
        let i = Interest::default();
        let s = SensorConfig::default();
        SensorsConfig {
            disabled: Vec::new(),
            ring_buffer_bytes: s.ring_bytes,
            priority_ring_buffer_bytes: s.priority_ring_bytes,
            priority_rate: s.priority_rate,
            priority_burst: s.priority_burst,
            wakeup_bytes: s.wakeup_bytes,
            drain_interval_ms: 10,
            dedup: s.dedup,
            open_writes: s.open_writes,
            report_paths: i.report_paths,
            ignore_paths: i.ignore_paths,
            ignore_ports: Vec::new(),
            tcp_states: i
                .tcp_states
                .iter()
                .filter_map(|n| {
                    vigil_bpf::TCP_STATES
                        .iter()
                        .find(|s| s.0 == *n)
                        .map(|s| s.1.to_string())
                })
                .collect(),
            bash_path: None,
            bpf_stats: s.bpf_stats,
            bpf_stats_sample_ms: 1000,
            kvm: true,
        }
    }
}

/// `[rules]` settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Load the embedded built-in rules.
    pub builtin: bool,
    /// Rule files or folders (vigil YAML and Sigma), loaded after the
    /// built-ins; a rule with a built-in's id replaces it. `PATH@LEVEL`
    /// gives that path its own minimum level.
    pub paths: Vec<PathBuf>,
    /// Rules from `paths` whose level is below this are not loaded
    /// (`informational`/`info`, `low`, `medium`, `high`, `critical`); the
    /// built-in rules are never filtered.
    pub min_level: String,
    /// Entries the Sigma correlation state may hold (one per group plus one
    /// per remembered time or value); past it the oldest group is dropped.
    pub correlation_max_entries: usize,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            builtin: true,
            paths: Vec::new(),
            min_level: "medium".into(),
            correlation_max_entries: vigil_rules::CorrState::DEFAULT_MAX_ENTRIES,
        }
    }
}

impl RulesConfig {
    /// The parsed `min_level` (validated when the file is read).
    pub fn min_level(&self) -> vigil_rules::Severity {
        vigil_rules::Severity::parse(&self.min_level).unwrap_or(vigil_rules::Severity::Medium)
    }
}

/// `[outputs]` settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputsConfig {
    /// Output URLs (`docs/outputs.md`); empty = `agent.output`.
    pub urls: Vec<String>,
    /// Serve Prometheus metrics on this address (`127.0.0.1:9464`); off
    /// when empty.
    pub metrics_listen: String,
    /// Alerts of one rule let through at once (0: no rate limit) ...
    pub rate_limit_burst: u32,
    /// ... refilled at this many per second; the rest are counted and
    /// summarized (`event.action: alerts-suppressed`).
    pub rate_limit_per_sec: f64,
    /// Seconds to flush outputs at shutdown before spooling the rest.
    pub shutdown_timeout_s: u64,
}

impl Default for OutputsConfig {
    fn default() -> Self {
        OutputsConfig {
            urls: Vec::new(),
            metrics_listen: String::new(),
            rate_limit_burst: 50,
            rate_limit_per_sec: 5.0,
            shutdown_timeout_s: 5,
        }
    }
}

/// `[baselines]` settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselinesConfig {
    /// Learn baselines and report drift (database in `<data_dir>/baselines`).
    pub enabled: bool,
    /// Automatic promotion to monitoring after this many minutes without new
    /// behaviour ...
    pub quiet_period_min: u64,
    /// ... and at least this many observations.
    pub min_observations: u64,
    /// Promote automatically at all.
    pub auto_promote: bool,
    /// sled page cache in MiB.
    pub cache_mib: u64,
    /// Learn each learning profile's syscall set in the kernel (one bit per
    /// syscall per profile; no event per syscall) for seccomp exports. Off
    /// by default: while attached, every syscall on the host pays a hash
    /// lookup and a learning task's syscalls ~90 ns more (vigil-bench
    /// --baselines).
    pub syscalls: bool,
}

impl Default for BaselinesConfig {
    fn default() -> Self {
        let d = vigil_baselines::Config::default();
        BaselinesConfig {
            enabled: true,
            quiet_period_min: d.quiet_period.as_secs() / 60,
            min_observations: d.min_observations,
            auto_promote: d.auto_promote,
            cache_mib: d.cache_capacity >> 20,
            syscalls: false,
        }
    }
}

impl BaselinesConfig {
    /// The learner settings.
    pub fn learner(&self) -> vigil_baselines::Config {
        vigil_baselines::Config {
            quiet_period: std::time::Duration::from_secs(self.quiet_period_min * 60),
            min_observations: self.min_observations,
            auto_promote: self.auto_promote,
            cache_capacity: self.cache_mib << 20,
            ..vigil_baselines::Config::default()
        }
    }
}

/// `[perf]` settings: the scheduler sensors (run-queue latency per cgroup,
/// pid-namespace switches), CPU steal, their findings and the history
/// `vigil report` reads.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerfConfig {
    /// Run-queue latency histograms per cgroup (sensor `runqlat`).
    pub runqlat: bool,
    /// Context switches between pid namespaces (sensor `pidnss`).
    pub pidnss: bool,
    /// CPU steal time per CPU from /proc/stat (`cpustolen`).
    pub cpu_steal: bool,
    /// Seconds between collections (one metric record per cgroup, one
    /// pidnss and one steal record, one history line).
    pub interval_s: u64,
    /// Finding when a cgroup's p99 run-queue latency in an interval is
    /// above this many milliseconds (0: no finding).
    pub runqlat_p99_ms: f64,
    /// ... and it had at least this many waits in the interval.
    pub runqlat_min_samples: u64,
    /// Finding when a CPU's steal time in an interval is above this
    /// percentage of its time (0: no finding).
    pub steal_pct: f64,
    /// Keep the per-interval histograms in `<data_dir>/perf-history.jsonl`
    /// for `vigil report`.
    pub history: bool,
    /// Size cap of the history (the current file and one rotated `.1`
    /// together).
    pub history_max_bytes: u64,
    /// Syscall counters (sensor `syscount`): `errors` (failing syscalls per
    /// process, syscall and errno), `all` (also every syscall per
    /// process; costs a map update per syscall) or `off`.
    pub syscalls: String,
    /// Finding when a process fails more syscalls per second than this in
    /// an interval (0: no finding).
    pub syscalls_errors_per_s: f64,
    /// Finding when a process gets more EPERM/EACCES in an interval than
    /// this (0: no finding).
    pub syscalls_denied_max: u64,
    /// Processes per interval with a `syscall-errors` record (the most
    /// failing first).
    pub syscalls_top: usize,
    /// TCP retransmits and resets per connection (sensors `tcpretrans`,
    /// `tcpreset`).
    pub tcp: bool,
    /// Finding when one connection retransmits at least this many segments
    /// in an interval (0: no finding).
    pub tcp_retrans_max: u64,
    /// Finding when the host sends and receives at least this many resets
    /// in an interval (0: no finding).
    pub tcp_resets_max: u64,
    /// Block I/O latency per device and cgroup (sensor `biolatency`).
    pub bio: bool,
    /// Finding when the p99 device time of a (device, cgroup) in an
    /// interval is above this many milliseconds (0: no finding).
    pub bio_p99_ms: f64,
    /// ... and it completed at least this many requests in the interval.
    pub bio_min_samples: u64,
    /// vigil's own cost every interval (BPF run time from bpf_stats plus
    /// the agent's CPU time; record `vigil-cost`).
    pub self_cost: bool,
    /// Finding when vigil costs more than this percentage of one CPU in an
    /// interval (0: no finding).
    pub self_cpu_pct: f64,
    /// Kernel allocations per process, cache and call site (tool `kmem`).
    pub kmem: bool,
    /// Slab cache allocation rate by cache name (tool `slabratetop`).
    pub slabratetop: bool,
    /// Count 1 in this many kernel allocations (kmem, slabratetop; 1: all).
    pub kmem_sample: u32,
    /// Processes per interval with a `kmem` / `kpages` record (busiest first).
    pub kmem_top: usize,
    /// Kernel allocations outstanding longer than `memleak_min_age_s`,
    /// grouped by kernel stack (tool `memleak`).
    pub memleak: bool,
    /// Track 1 allocation address in this many (memleak; 1: all).
    pub memleak_sample: u32,
    /// Age in seconds from which an outstanding allocation is reported.
    pub memleak_min_age_s: u64,
    /// Stacks per interval with a `vigil.memleak` record (most bytes first).
    pub memleak_top: usize,
    /// Read/write latency of files on overlay mounts per cgroup and mount
    /// (tool `overlayfs`).
    pub overlayfs: bool,
    /// Bios held back by the block throttle (blk-throttle) per cgroup and
    /// device, with the time held (tool `blkthrot`).
    pub blkthrot: bool,
    /// Page allocations per process and order (tool `kpages`).
    pub kpages: bool,
    /// Count 1 in this many page allocations (1: all).
    pub kpages_sample: u32,
    /// Page migrations per process and reason (tool `numamove`).
    pub numamove: bool,
    /// Work item latency and run time per function (tool `workq`).
    pub workq: bool,
    /// Softirq time per vector (tool `softirqs`).
    pub softirqs: bool,
    /// Hard irq time per irq (tool `hardirqs`).
    pub hardirqs: bool,
    /// Tasklet time per function (tool `tasklets`).
    pub tasklets: bool,
    /// Finding `softirq-high` when softirqs take more than this percentage
    /// of one CPU in an interval (0: no finding).
    pub softirq_pct: f64,
    /// The heap-spray alert (`kmem-spray`, needs `kmem`).
    pub spray: bool,
    /// kmalloc allocations per second in one size class a process must
    /// pass for `kmem-spray` (0: never).
    pub spray_min_per_s: f64,
    /// ... and this many times its usual rate in that class.
    pub spray_factor: f64,
    /// ... and the class's share of the process's kmalloc allocations (0-1).
    pub spray_share: f64,
    /// Root processes need this many times `spray_min_per_s`.
    pub spray_root_factor: f64,
    /// The CPU profiler (tool `profile`): stacks sampled on every CPU.
    pub profile: bool,
    /// Samples per second per CPU (1..=1000; 49 or 99).
    pub profile_hz: u64,
    /// Processes per interval with a `vigil.profile` record (busiest first).
    pub profile_top: usize,
    /// Finding `cpu-hot` when the busiest container or host process uses
    /// more than this percentage of one CPU in an interval (0: none).
    pub profile_cpu_pct: f64,
}

/// Whether `overlayfs` is on by default (its cost, README).
const OVERLAYFS_DEFAULT: bool = false;

impl Default for PerfConfig {
    fn default() -> Self {
        PerfConfig {
            runqlat: true,
            pidnss: true,
            cpu_steal: true,
            interval_s: 10,
            runqlat_p99_ms: 10.0,
            runqlat_min_samples: 50,
            steal_pct: 10.0,
            history: true,
            history_max_bytes: 16 << 20,
            // Off by default: any second program on raw sys_exit costs
            // every syscall on the host ~75 ns here (vigil-bench
            // --syscalls, docs/config.md).
            syscalls: "off".into(),
            syscalls_errors_per_s: 1000.0,
            syscalls_denied_max: 100,
            syscalls_top: 10,
            tcp: true,
            tcp_retrans_max: 10,
            tcp_resets_max: 100,
            bio: true,
            bio_p99_ms: 200.0,
            bio_min_samples: 20,
            self_cost: true,
            self_cpu_pct: 10.0,
            // Off by default: their programs run on every slab allocation
            // of the host, sampled or not (41-50 us of BPF per exec of the
            // exec loop, ~2 % of it; scripts/bpf-cost.sh, docs/config.md).
            kmem: false,
            slabratetop: false,
            kmem_sample: 10,
            kmem_top: 10,
            memleak: false,
            memleak_sample: 16,
            memleak_min_age_s: 60,
            memleak_top: 10,
            overlayfs: OVERLAYFS_DEFAULT,
            blkthrot: false,
            kpages: false,
            kpages_sample: 1,
            numamove: true,
            workq: true,
            softirqs: true,
            hardirqs: true,
            tasklets: true,
            softirq_pct: 50.0,
            spray: true,
            spray_min_per_s: 2000.0,
            spray_factor: 20.0,
            spray_share: 0.75,
            spray_root_factor: 4.0,
            profile: false,
            profile_hz: 49,
            profile_top: 10,
            profile_cpu_pct: 90.0,
        }
    }
}

impl PerfConfig {
    /// `syscalls` as a sensor mode (None: not a valid word).
    pub fn syscall_mode(&self) -> Option<vigil_bpf::perfsys::SyscallMode> {
        use vigil_bpf::perfsys::SyscallMode;
        match self.syscalls.as_str() {
            "errors" => Some(SyscallMode::Errors),
            "all" => Some(SyscallMode::All),
            "off" => Some(SyscallMode::Off),
            _ => None,
        }
    }

    /// What the system performance object should attach.
    pub fn perfsys_config(&self) -> vigil_bpf::perfsys::PerfsysConfig {
        vigil_bpf::perfsys::PerfsysConfig {
            syscalls: self
                .syscall_mode()
                .unwrap_or(vigil_bpf::perfsys::SyscallMode::Errors),
            tcp: self.tcp,
            bio: self.bio,
            raw_tp_only: false,
        }
    }

    /// What the kernel-work tools' object should attach.
    pub fn ktools_config(&self) -> vigil_bpf::ktools::KtoolsConfig {
        vigil_bpf::ktools::KtoolsConfig {
            kmem: self.kmem,
            slabratetop: self.slabratetop,
            kmem_sample: self.kmem_sample,
            memleak: self.memleak,
            memleak_sample: self.memleak_sample,
            overlayfs: self.overlayfs,
            blkthrot: self.blkthrot,
            kpages: self.kpages,
            kpages_sample: self.kpages_sample,
            numamove: self.numamove,
            workq: self.workq,
            softirqs: self.softirqs,
            hardirqs: self.hardirqs,
            tasklets: self.tasklets,
        }
    }

    /// Whether any system performance sensor is on.
    pub fn perfsys_on(&self) -> bool {
        self.syscall_mode() != Some(vigil_bpf::perfsys::SyscallMode::Off) || self.tcp || self.bio
    }
}

/// `[capture]` settings: a capture file around each alert.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// `all` (every alert), `marked` (alerts of rules with `capture:
    /// true`) or `off`.
    pub alerts: String,
    /// Seconds of raw records kept in memory and written before the alert.
    pub before_s: u64,
    /// Seconds of records written after it.
    pub after_s: u64,
    /// Bytes the in-memory ring holds at most.
    pub ring_bytes: usize,
    /// Bytes all capture files in `<data_dir>/captures` hold at most (the
    /// oldest are deleted); one file stops at a quarter of it.
    pub max_dir_bytes: u64,
    /// A new capture starts at most this often (seconds).
    pub min_interval_s: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            alerts: "all".into(),
            before_s: 10,
            after_s: 5,
            ring_bytes: 16 << 20,
            max_dir_bytes: 256 << 20,
            min_interval_s: 30,
        }
    }
}

impl Config {
    /// Where alert captures are written.
    pub fn captures_dir(&self) -> PathBuf {
        self.agent.data_dir.join("captures")
    }

    /// The alert capture settings (None: `capture.alerts = off`).
    pub fn capture_settings(&self) -> Option<crate::capture::alert::CaptureSettings> {
        let c = &self.capture;
        (c.alerts != "off").then(|| crate::capture::alert::CaptureSettings {
            dir: self.captures_dir(),
            before_ns: c.before_s.saturating_mul(1_000_000_000),
            after_ns: c.after_s.saturating_mul(1_000_000_000),
            ring_bytes: c.ring_bytes,
            max_dir_bytes: c.max_dir_bytes,
            min_interval_ns: c.min_interval_s.saturating_mul(1_000_000_000),
        })
    }
}

/// `[response]` settings: kill on match (`action: kill` rules).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseConfig {
    /// Monitor mode: kill rules report `vigil.response.outcome:
    /// would-kill` and kill nothing (`vigil run --dry-run`).
    pub monitor: bool,
}

/// `[hash]` settings: executable hashes (`process.hash.sha256`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashConfig {
    /// Hash the executable of every exec (SHA-256).
    pub enabled: bool,
    /// Executables larger than this are not hashed (`vigil.hash.skipped:
    /// too-large`).
    pub max_bytes: u64,
    /// How long an exec event waits for its hash before it is written with
    /// `vigil.hash.pending` (the hash follows in an `exec-hash` record);
    /// all execs together wait at most 200 ms in any second.
    pub wait_ms: u64,
    /// Hashes kept, per (device, inode, size, mtime, ctime).
    pub cache_entries: usize,
    /// Files queued to the hashing worker at most (past it:
    /// `vigil.hash.skipped: queue-full`).
    pub queue: usize,
    /// A file of known-bad SHA-256s (one a line; `sha256sum` output works):
    /// a hash on it sets `vigil.hash.known_bad`. SIGHUP reloads it.
    pub known_bad_file: Option<PathBuf>,
}

impl Default for HashConfig {
    fn default() -> Self {
        HashConfig {
            enabled: true,
            max_bytes: 64 << 20,
            wait_ms: 50,
            cache_entries: 16_384,
            queue: 1024,
            known_bad_file: None,
        }
    }
}

impl HashConfig {
    /// The hasher's settings.
    pub fn settings(&self) -> crate::hash::HashSettings {
        crate::hash::HashSettings {
            max_bytes: self.max_bytes,
            wait: std::time::Duration::from_millis(self.wait_ms),
            cache_entries: self.cache_entries,
            queue: self.queue,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[agent]`.
    pub agent: AgentConfig,
    /// `[sensors]`.
    pub sensors: SensorsConfig,
    /// `[pipeline]`.
    pub pipeline: PipelineConfig,
    /// `[rules]`.
    pub rules: RulesConfig,
    /// `[baselines]`.
    pub baselines: BaselinesConfig,
    /// `[outputs]`.
    pub outputs: OutputsConfig,
    /// `[perf]`.
    pub perf: PerfConfig,
    /// `[hash]`.
    pub hash: HashConfig,
    /// `[response]`.
    pub response: ResponseConfig,
    /// `[capture]`.
    pub capture: CaptureConfig,
}

impl Config {
    /// Where remote outputs spool records they cannot deliver yet.
    pub fn spool_dir(&self) -> PathBuf {
        self.agent.data_dir.join("spool")
    }

    /// Learned tuning state: `<agent.data_dir>/tuning.json`.
    pub fn tuning_path(&self) -> PathBuf {
        self.agent.data_dir.join("tuning.json")
    }

    /// Where the baselines database lives.
    pub fn baselines_dir(&self) -> PathBuf {
        self.agent.data_dir.join("baselines")
    }

    /// Creates the data directory (0700) if missing and refuses one that
    /// others can read or write.
    pub fn ensure_data_dir(&self) -> Result<(), String> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let d = &self.agent.data_dir;
        if !d.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(|e| format!("cannot create data directory {}: {e}", d.display()))?;
        }
        let m = std::fs::metadata(d).map_err(|e| format!("data directory {}: {e}", d.display()))?;
        if !m.is_dir() {
            return Err(format!("data directory {} is not a directory", d.display()));
        }
        if m.mode() & 0o077 != 0 {
            return Err(format!(
                "data directory {} has mode {:o}; it holds baselines and spooled alerts and must not be accessible to others (chmod 700)",
                d.display(),
                m.mode() & 0o7777
            ));
        }
        Ok(())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    // bytes, not `&text[..offset]`: an offset inside a character must not panic
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The parser's message, or one describing the character at `offset` when
/// the parser gave none (toml reports a control character in a comment
/// with an empty message, which left `file:line: key: ` saying nothing).
fn toml_message(msg: &str, text: &str, offset: usize) -> String {
    let msg = msg.trim();
    if !msg.is_empty() {
        return msg.to_string();
    }
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let col = text[..at].chars().rev().take_while(|&c| c != '\n').count();
    match text[at..].chars().next() {
        Some(c) if c.is_control() => format!(
            "control character U+{:04X} at column {} is not allowed in TOML (not even in a comment)",
            c as u32,
            col + 1
        ),
        Some(c) => format!(
            "invalid TOML at column {} (`{}`)",
            col + 1,
            c.escape_debug()
        ),
        None => "invalid TOML at the end of the file".into(),
    }
}

/// Finds the line where `table.key` is set (0 when absent).
pub(crate) fn locate(text: &str, table: &str, key: &str) -> usize {
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') && t.ends_with(']') {
            current = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        } else if current == table
            && let Some((k, _)) = t.split_once('=')
            && k.trim() == key
        {
            return i + 1;
        }
    }
    0
}

/// The table and key around a byte offset (for parse errors).
fn key_at(text: &str, offset: usize) -> String {
    let mut table = String::new();
    let mut key = String::new();
    let mut pos = 0;
    for l in text.lines() {
        let end = pos + l.len() + 1;
        let t = l.trim();
        if t.starts_with('[') && t.ends_with(']') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            key.clear();
        } else if let Some((k, _)) = t.split_once('=') {
            key = k.trim().to_string();
        }
        if end > offset {
            break;
        }
        pos = end;
    }
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

/// Closest known name, for "did you mean".
fn suggest<'a>(word: &str, options: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    fn dist(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push(
                    (prev[j] + usize::from(ca != *cb))
                        .min(prev[j + 1] + 1)
                        .min(cur[j] + 1),
                );
            }
            prev = cur;
        }
        prev[b.len()]
    }
    if word.len() > 64 {
        return None; // nothing is close, and the distance is quadratic
    }
    options
        .map(|o| (dist(word, o), o))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, o)| o)
}

impl Config {
    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let off = e.span().map(|s| s.start).unwrap_or(0);
            ConfigError {
                file: file.into(),
                line: if e.span().is_some() {
                    line_of(text, off)
                } else {
                    0
                },
                key: key_at(text, off),
                message: toml_message(e.message(), text, off),
            }
        })?;
        cfg.validate(text, file)?;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_text(path).map(|(cfg, _)| cfg)
    }

    /// Reads and parses a file, and returns the text it parsed with the
    /// configuration: the commands that point at keys in the file
    /// (`vigil config show`, `vigil config check`) read it once.
    pub fn load_with_text(path: &Path) -> Result<(Config, String), ConfigError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            key: "-".into(),
            message: format!("cannot read: {e}"),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            // Name the line and key of the first bad byte, like a parse error.
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes());
            ConfigError {
                file: file.clone(),
                line: line_of(&text, at),
                key: key_at(&text, at),
                message: format!("invalid UTF-8 (byte {:#04x})", e.as_bytes()[at]),
            }
        })?;
        let cfg = Self::parse(&text, &file)?;
        Ok((cfg, text))
    }

    fn validate(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let err = |table: &str, key: &str, message: String| ConfigError {
            file: file.into(),
            line: locate(text, table, key),
            key: format!("{table}.{key}"),
            message,
        };
        if let Some(p) = &self.hash.known_bad_file
            && let Err(e) = crate::hash::load_hash_list(p)
        {
            return Err(err("hash", "known_bad_file", e));
        }
        if !matches!(self.capture.alerts.as_str(), "all" | "marked" | "off") {
            return Err(err(
                "capture",
                "alerts",
                format!("`{}` is not one of all, marked, off", self.capture.alerts),
            ));
        }
        if self.hash.cache_entries == 0 || self.hash.queue == 0 {
            let key = if self.hash.queue == 0 {
                "queue"
            } else {
                "cache_entries"
            };
            return Err(err("hash", key, "must be at least 1".into()));
        }
        let s = &self.sensors;
        for name in &s.disabled {
            if sensors::sensor(name).is_none() {
                let hint = suggest(name, sensors::SENSORS.iter().map(|s| s.name))
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                return Err(err(
                    "sensors",
                    "disabled",
                    format!("unknown sensor `{name}`{hint}"),
                ));
            }
        }
        if !self.outputs.metrics_listen.is_empty()
            && self
                .outputs
                .metrics_listen
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(err(
                "outputs",
                "metrics_listen",
                format!("`{}` is not an address:port", self.outputs.metrics_listen),
            ));
        }
        // The outputs parse here, so a bad URL is a configuration error
        // naming its line (exit 2), before any sensor is loaded.
        let outputs = self
            .outputs
            .urls
            .iter()
            .map(|u| ("outputs", "urls", u))
            .chain(std::iter::once(("agent", "output", &self.agent.output)));
        for (table, key, u) in outputs {
            let url = if u.starts_with('/') {
                format!("file://{u}")
            } else {
                u.clone()
            };
            if let Err(e) = vigil_outputs::url::parse(&url) {
                return Err(err(table, key, e.to_string()));
            }
        }
        let r = self.outputs.rate_limit_per_sec;
        if r.is_nan() || r < 0.0 {
            return Err(err(
                "outputs",
                "rate_limit_per_sec",
                "must be a number >= 0".into(),
            ));
        }
        if vigil_rules::Severity::parse(&self.rules.min_level).is_none() {
            return Err(err(
                "rules",
                "min_level",
                format!(
                    "`{}` is not a level (informational, low, medium, high, critical)",
                    self.rules.min_level
                ),
            ));
        }
        if self.rules.correlation_max_entries == 0 {
            return Err(err(
                "rules",
                "correlation_max_entries",
                "must be at least 1".into(),
            ));
        }
        if self.baselines.min_observations == 0 {
            return Err(err(
                "baselines",
                "min_observations",
                "must be at least 1".into(),
            ));
        }
        if !s.ring_buffer_bytes.is_power_of_two() || s.ring_buffer_bytes < 4096 {
            return Err(err(
                "sensors",
                "ring_buffer_bytes",
                format!(
                    "{} is not a power of two of at least 4096",
                    s.ring_buffer_bytes
                ),
            ));
        }
        if !s.priority_ring_buffer_bytes.is_power_of_two() || s.priority_ring_buffer_bytes < 4096 {
            return Err(err(
                "sensors",
                "priority_ring_buffer_bytes",
                format!(
                    "{} is not a power of two of at least 4096",
                    s.priority_ring_buffer_bytes
                ),
            ));
        }
        if s.wakeup_bytes >= s.ring_buffer_bytes || s.wakeup_bytes >= s.priority_ring_buffer_bytes {
            return Err(err(
                "sensors",
                "wakeup_bytes",
                format!(
                    "{} must be smaller than ring_buffer_bytes and priority_ring_buffer_bytes",
                    s.wakeup_bytes
                ),
            ));
        }
        if s.priority_rate > 0 && s.priority_burst == 0 {
            return Err(err(
                "sensors",
                "priority_burst",
                "must be at least 1 when priority_rate is set".into(),
            ));
        }
        if s.drain_interval_ms == 0 || s.drain_interval_ms > 1000 {
            return Err(err(
                "sensors",
                "drain_interval_ms",
                "must be 1..=1000".into(),
            ));
        }
        for (key, list) in [
            ("report_paths", &s.report_paths),
            ("ignore_paths", &s.ignore_paths),
        ] {
            for p in list {
                if !p.starts_with('/') || p.len() > 256 {
                    return Err(err(
                        "sensors",
                        key,
                        format!("`{p}` must be an absolute path prefix of at most 256 bytes"),
                    ));
                }
            }
        }
        for st in &s.tcp_states {
            if !vigil_bpf::TCP_STATES.iter().any(|x| x.1 == st) {
                let hint = suggest(st, vigil_bpf::TCP_STATES.iter().map(|x| x.1))
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                return Err(err(
                    "sensors",
                    "tcp_states",
                    format!("unknown TCP state `{st}`{hint}"),
                ));
            }
        }
        let p = &self.perf;
        if p.interval_s == 0 || p.interval_s > 3600 {
            return Err(err("perf", "interval_s", "must be 1..=3600".into()));
        }
        for (key, v) in [
            ("runqlat_p99_ms", p.runqlat_p99_ms),
            ("steal_pct", p.steal_pct),
        ] {
            if v.is_nan() || v < 0.0 {
                return Err(err("perf", key, "must be a number >= 0".into()));
            }
        }
        for (key, v) in [
            ("syscalls_errors_per_s", p.syscalls_errors_per_s),
            ("bio_p99_ms", p.bio_p99_ms),
            ("self_cpu_pct", p.self_cpu_pct),
        ] {
            if v.is_nan() || v < 0.0 {
                return Err(err("perf", key, "must be a number >= 0".into()));
            }
        }
        if p.syscall_mode().is_none() {
            let hint = suggest(&p.syscalls, ["errors", "all", "off"].into_iter())
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            return Err(err(
                "perf",
                "syscalls",
                format!(
                    "`{}` is not one of \"errors\", \"all\", \"off\"{hint}",
                    p.syscalls
                ),
            ));
        }
        for (key, v) in [
            ("softirq_pct", p.softirq_pct),
            ("spray_min_per_s", p.spray_min_per_s),
            ("spray_factor", p.spray_factor),
            ("spray_root_factor", p.spray_root_factor),
        ] {
            if v.is_nan() || v < 0.0 {
                return Err(err("perf", key, "must be a number >= 0".into()));
            }
        }
        if p.spray_share.is_nan() || !(0.0..=1.0).contains(&p.spray_share) {
            return Err(err(
                "perf",
                "spray_share",
                "must be a number in 0..=1".into(),
            ));
        }
        for (key, v) in [
            ("kmem_sample", p.kmem_sample),
            ("kpages_sample", p.kpages_sample),
            ("memleak_sample", p.memleak_sample),
        ] {
            if v == 0 || v > 1_000_000 {
                return Err(err("perf", key, "must be 1..=1000000".into()));
            }
        }
        if p.profile_hz == 0 || p.profile_hz > 1000 {
            return Err(err("perf", "profile_hz", "must be 1..=1000".into()));
        }
        if p.profile_top == 0 || p.profile_top > 1000 {
            return Err(err("perf", "profile_top", "must be 1..=1000".into()));
        }
        if p.profile_cpu_pct.is_nan() || p.profile_cpu_pct < 0.0 {
            return Err(err(
                "perf",
                "profile_cpu_pct",
                "must be a number >= 0".into(),
            ));
        }
        if p.kmem_top == 0 || p.kmem_top > 1000 {
            return Err(err("perf", "kmem_top", "must be 1..=1000".into()));
        }
        if p.memleak_top == 0 || p.memleak_top > 1000 {
            return Err(err("perf", "memleak_top", "must be 1..=1000".into()));
        }
        if p.memleak_min_age_s == 0 || p.memleak_min_age_s > 86_400 {
            return Err(err("perf", "memleak_min_age_s", "must be 1..=86400".into()));
        }
        if p.syscalls_top > 1000 {
            return Err(err("perf", "syscalls_top", "must be at most 1000".into()));
        }
        if p.steal_pct > 100.0 {
            return Err(err("perf", "steal_pct", "must be at most 100".into()));
        }
        if p.history_max_bytes < 64 << 10 {
            return Err(err(
                "perf",
                "history_max_bytes",
                "must be at least 65536".into(),
            ));
        }
        if self.pipeline.workers > 64 {
            return Err(err("pipeline", "workers", "must be at most 64".into()));
        }
        if self.agent.ancestors > 64 {
            return Err(err("agent", "ancestors", "must be at most 64".into()));
        }
        if self.agent.output != "stdout" && !self.agent.output.starts_with('/') {
            return Err(err(
                "agent",
                "output",
                format!(
                    "`{}` must be \"stdout\" or an absolute file path",
                    self.agent.output
                ),
            ));
        }
        Ok(())
    }

    /// The loader settings this configuration asks for.
    pub fn sensor_config(&self) -> SensorConfig {
        let s = &self.sensors;
        SensorConfig {
            ring_bytes: s.ring_buffer_bytes,
            priority_ring_bytes: s.priority_ring_buffer_bytes,
            priority_rate: s.priority_rate,
            priority_burst: s.priority_burst,
            wakeup_bytes: s.wakeup_bytes,
            dedup: s.dedup,
            open_writes: s.open_writes,
            self_tgid: std::process::id(),
            disabled: s.disabled.iter().cloned().collect::<HashSet<_>>(),
            bash_path: s.bash_path.clone(),
            bpf_stats: s.bpf_stats,
        }
    }

    /// What leaves the kernel for an agent running `rules`: with `--events`
    /// everything the sensors see ([`Config::interest`]); otherwise only the
    /// kinds some rule can match (plus exec/fork/exit, which keep the
    /// process table), with the rules' file prefixes added to
    /// `report_paths`.
    pub fn interest_for(&self, rules: &vigil_rules::Interest) -> Interest {
        let mut i = self.interest();
        // A prefix whose rules all need a successful open reports the
        // failed opens below it only if `report_paths` asks for them.
        for p in &rules.file_prefixes {
            let failed = rules.failed_open_prefixes.contains(p);
            let p = String::from_utf8_lossy(p).into_owned();
            let list = if failed {
                &mut i.report_paths
            } else {
                &mut i.report_ok_paths
            };
            if !list.contains(&p) {
                list.push(p);
            }
        }
        if rules.all_file_opens {
            let list = if rules.all_failed_opens {
                &mut i.report_paths
            } else {
                &mut i.report_ok_paths
            };
            if !list.iter().any(|p| p == "/") {
                list.push("/".into());
            }
        }
        // Alerts only: a failed inet connect leaves the kernel only to a
        // port some rule can match it on (baselines learn successful
        // connects only); with `--events` every one does.
        if !self.agent.events && !rules.failed_connects_any {
            i.failed_connect_ports = Some(rules.failed_connect_ports.clone());
        }
        use vigil_bpf::abi::kind;
        let wanted = |k: u16| {
            let (c, _, a) = crate::ecs::classify(k);
            // compat syscalls are rare and become opens, connects...
            matches!(k, kind::EXEC | kind::FORK | kind::EXIT | kind::COMPAT)
                || rules.wants(c, a)
                || (k == kind::DNS && (rules.domains || rules.wants(c, "dns-answer")))
                || (k == kind::IOURING
                    && crate::ecs::IOURING_ACTIONS
                        .iter()
                        .any(|(c, a)| rules.wants(c, a)))
                || (k == kind::FCHANGE
                    && crate::ecs::FCHANGE_ACTIONS
                        .iter()
                        .any(|a| rules.wants(c, a)))
                || (k == kind::PTRACE
                    && crate::ecs::PROCESS_VM_ACTIONS
                        .iter()
                        .any(|a| rules.wants(c, a)))
                || (k == kind::SYSCALL
                    && crate::ecs::RARE_CALL_CLASSES
                        .iter()
                        .any(|r| rules.wants(r.1, r.3)))
        };
        // The syscall sensor reports only the calls some rule can match
        // (all of them with `--events`).
        if !self.agent.events {
            i.rare_calls = crate::ecs::RARE_CALL_CLASSES
                .iter()
                .filter(|r| rules.wants(r.1, r.3))
                .map(|r| r.0)
                .collect();
        }
        // Kinds no rule can match are bulk: with `--events` they are
        // emitted, to the bulk ring; otherwise they are not emitted.
        let unwanted: Vec<u16> = i.kinds.iter().copied().filter(|&k| !wanted(k)).collect();
        i.bulk_kinds.extend(unwanted);
        if !self.agent.events {
            i.kinds.retain(|&k| wanted(k));
        }
        i
    }

    /// The kernel interest of the sensors alone: every kind of an enabled
    /// sensor, the configured paths, ports and TCP states.
    pub fn interest(&self) -> Interest {
        let s = &self.sensors;
        let disabled: HashSet<&str> = s.disabled.iter().map(String::as_str).collect();
        Interest {
            kinds: sensors::SENSORS
                .iter()
                .filter(|sp| !disabled.contains(sp.name))
                .flat_map(|sp| sp.kinds.iter().copied())
                .collect(),
            report_paths: s.report_paths.clone(),
            report_ok_paths: Vec::new(),
            failed_connect_ports: None,
            ignore_paths: s.ignore_paths.clone(),
            caps: (0..64).collect(),
            ignore_ports: s.ignore_ports.iter().copied().collect::<BTreeSet<_>>(),
            tcp_states: s
                .tcp_states
                .iter()
                .filter_map(|n| vigil_bpf::TCP_STATES.iter().find(|x| x.1 == n).map(|x| x.0))
                .collect(),
            bulk_kinds: Interest::default().bulk_kinds,
            rare_calls: Interest::default().rare_calls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_with_text_returns_the_text_it_parsed() {
        let dir = std::env::temp_dir().join(format!("vigil-cfg-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("v.toml");
        let text = "# c\n[agent]\nheartbeat_interval_s = 7\n";
        std::fs::write(&p, text).unwrap();
        let (cfg, read) = Config::load_with_text(&p).unwrap();
        assert_eq!(read, text);
        assert_eq!(cfg.agent.heartbeat_interval_s, 7);
        std::fs::write(&p, "[agent]\nheartbeat_interval_s = \"x\"\n").unwrap();
        let e = Config::load_with_text(&p).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "agent.heartbeat_interval_s"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kernel_work_tool_keys_parse_and_bad_values_are_located() {
        let c = Config::parse(
            "[perf]\nkmem = false\nslabratetop = true\nkmem_sample = 10\nkmem_top = 3\nkpages = true\nkpages_sample = 4\nmemleak = true\nmemleak_sample = 4\nmemleak_min_age_s = 30\nmemleak_top = 5\nnumamove = false\nworkq = false\nsoftirqs = false\nhardirqs = false\ntasklets = false\nsoftirq_pct = 20.0\nspray = false\nspray_min_per_s = 500.0\nspray_factor = 5.0\nspray_share = 0.9\nspray_root_factor = 2.0\n",
            "v.toml",
        )
        .unwrap();
        let k = c.perf.ktools_config();
        assert!(!k.kmem && k.slabratetop && k.kpages && !k.numamove && !k.workq);
        assert!(!k.softirqs && !k.hardirqs && !k.tasklets);
        assert_eq!(
            (k.kmem_sample, k.kpages_sample, c.perf.kmem_top),
            (10, 4, 3)
        );
        assert!(k.memleak && k.memleak_sample == 4);
        assert_eq!((c.perf.memleak_min_age_s, c.perf.memleak_top), (30, 5));
        assert_eq!(c.perf.softirq_pct, 20.0);
        assert!(!c.perf.spray);
        assert_eq!(
            (
                c.perf.spray_min_per_s,
                c.perf.spray_factor,
                c.perf.spray_share,
                c.perf.spray_root_factor
            ),
            (500.0, 5.0, 0.9, 2.0)
        );
        assert!(PerfConfig::default().ktools_config().any());
        for (text, key) in [
            ("[perf]\nkmem_sample = 0\n", "kmem_sample"),
            ("[perf]\nkpages_sample = 0\n", "kpages_sample"),
            ("[perf]\nkmem_top = 0\n", "kmem_top"),
            ("[perf]\nmemleak_sample = 0\n", "memleak_sample"),
            ("[perf]\nmemleak_min_age_s = 0\n", "memleak_min_age_s"),
            ("[perf]\nmemleak_top = 2000\n", "memleak_top"),
            ("[perf]\nspray_share = 1.5\n", "spray_share"),
            ("[perf]\nspray_min_per_s = -1.0\n", "spray_min_per_s"),
            ("[perf]\nsoftirq_pct = -2.0\n", "softirq_pct"),
        ] {
            let e = Config::parse(text, "v.toml").unwrap_err();
            assert!(e.to_string().contains(key), "{key}: {e}");
            assert!(e.to_string().contains("v.toml"), "{e}");
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("", "x.toml").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = Config::parse(
            "[agent]\nevents = true\n\n[sensors]\nring_bufer_bytes = 4096\n",
            "v.toml",
        )
        .unwrap_err();
        assert_eq!(e.file, "v.toml");
        assert_eq!(e.line, 5);
        assert_eq!(e.key, "sensors.ring_bufer_bytes");
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn control_character_in_a_comment_has_a_message() {
        // toml's own message for this is empty (found by the fuzzer)
        let e = Config::parse("[agent]\n# a \x1b]0;title\x07 b\nevents = true\n", "v.toml")
            .unwrap_err();
        assert_eq!(e.file, "v.toml");
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("U+001B") && e.message.contains("column 5"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_located() {
        let e = Config::parse("[sensors]\ndedup = \"yes\"\n", "v.toml").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "sensors.dedup"));
    }

    #[test]
    fn pipeline_workers_default_to_1_are_bounded_and_0_is_the_hosts_cpus_capped() {
        let e = Config::parse("[pipeline]\nworkers = 65\n", "v.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "v.toml:2: pipeline.workers: must be at most 64"
        );
        let c = Config::parse("[pipeline]\nworkers = 3\n", "v.toml").unwrap();
        assert_eq!(c.pipeline.worker_count(), 3);
        assert_eq!(Config::default().pipeline.worker_count(), 1);
        let c = Config::parse("[pipeline]\nworkers = 0\n", "v.toml").unwrap();
        let auto = c.pipeline.worker_count();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(auto, cpus.min(AUTO_WORKERS_MAX));
        assert!(auto >= 1);
    }

    #[test]
    fn semantic_errors_are_located() {
        let e = Config::parse("[sensors]\n\nring_buffer_bytes = 5000\n", "v.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "v.toml:3: sensors.ring_buffer_bytes: 5000 is not a power of two of at least 4096"
        );
        let e = Config::parse("[sensors]\ndisabled = [\"readlin\"]\n", "v.toml").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("did you mean `readline`"), "{e}");
        let e = Config::parse("[sensors]\ntcp_states = [\"ESTABLISHD\"]\n", "v.toml").unwrap_err();
        assert!(e.message.contains("did you mean `ESTABLISHED`"), "{e}");
        let e = Config::parse("[sensors]\nreport_paths = [\"etc/\"]\n", "v.toml").unwrap_err();
        assert_eq!(e.key, "sensors.report_paths");
    }

    #[test]
    fn perf_section_is_validated_and_located() {
        let c = Config::parse("[perf]\nrunqlat = false\ninterval_s = 2\n", "v.toml").unwrap();
        assert!(!c.perf.runqlat && c.perf.pidnss);
        assert_eq!(c.perf.interval_s, 2);
        let e = Config::parse("[perf]\n\ninterval_s = 0\n", "v.toml").unwrap_err();
        assert_eq!(e.to_string(), "v.toml:3: perf.interval_s: must be 1..=3600");
        let e = Config::parse("[perf]\nsteal_pct = 101\n", "v.toml").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "perf.steal_pct"));
        let e = Config::parse("[perf]\ntcp = true\nsyscalls = \"erors\"\n", "v.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "v.toml:3: perf.syscalls: `erors` is not one of \"errors\", \"all\", \"off\" (did you mean `errors`?)"
        );
        let c = Config::parse("[perf]\nsyscalls = \"all\"\nbio = false\n", "v.toml").unwrap();
        assert_eq!(
            c.perf.perfsys_config().syscalls,
            vigil_bpf::perfsys::SyscallMode::All
        );
        assert!(!c.perf.perfsys_config().bio && c.perf.perfsys_on());
        let e = Config::parse("[perf]\nself_cpu_pct = -1\n", "v.toml").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "perf.self_cpu_pct"));
        let e = Config::parse("[perf]\nrunqlat_p99 = 3\n", "v.toml").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "perf.runqlat_p99"));
    }

    #[test]
    fn disabling_a_sensor_removes_its_interest() {
        let c = Config::parse("[sensors]\ndisabled = [\"readline\"]\n", "v.toml").unwrap();
        assert!(!c.interest().kinds.contains(&vigil_bpf::abi::kind::READLINE));
        assert!(c.interest().kinds.contains(&vigil_bpf::abi::kind::EXEC));
        assert!(c.sensor_config().disabled.contains("readline"));
    }

    #[test]
    fn failed_opens_and_connects_leave_the_kernel_only_where_a_rule_can_match_them() {
        let c = Config::default();
        let mut l = vigil_rules::Loader::new();
        l.add_builtin();
        let (set, _) = l.load();
        let i = c.interest_for(set.interest());
        // the rules that test files by name match successful opens only
        assert!(
            i.report_ok_paths.iter().any(|p| p == "/"),
            "{:?}",
            i.report_ok_paths
        );
        assert!(
            !i.report_paths.iter().any(|p| p == "/"),
            "{:?}",
            i.report_paths
        );
        // configured report paths keep their failed opens
        assert!(i.report_paths.iter().any(|p| p == "/etc/"));
        // failed connects: the ports of the connect rules (miner/C2 ports,
        // ssh to web or DNS ports), not every port
        let ports = i.failed_connect_ports.expect("a port set");
        for p in [4444, 3333, 6667, 443, 53] {
            assert!(ports.contains(&p), "{p}: {ports:?}");
        }
        assert!(!ports.contains(&1), "{ports:?}");
        // a rule on connects without a port: every failed connect
        let mut l = vigil_rules::Loader::new();
        l.add_source(
            "n.yaml",
            "- rule: any_connect\n  name: n\n  description: d\n  severity: low\n  for_events: [network]\n  condition: event.action = connect and process.name = nc\n  output: o\n",
        );
        let (set2, r) = l.load();
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(c.interest_for(set2.interest()).failed_connect_ports, None);
        // ... and one that needs success (or a unix socket) adds no port
        let mut l = vigil_rules::Loader::new();
        l.add_source(
            "n.yaml",
            "- rule: ok_connect\n  name: n\n  description: d\n  severity: low\n  for_events: [network]\n  condition: event.action = connect and event.outcome = success\n  output: o\n- rule: unix_connect\n  name: n\n  description: d\n  severity: low\n  for_events: [network]\n  condition: event.action = connect and vigil.unix.path = /run/x.sock\n  output: o\n",
        );
        let (set3, r) = l.load();
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(
            c.interest_for(set3.interest()).failed_connect_ports,
            Some(BTreeSet::new())
        );
        // --events: every failed connect
        let mut c = Config::default();
        c.agent.events = true;
        assert_eq!(c.interest_for(set.interest()).failed_connect_ports, None);
    }

    #[test]
    fn rare_syscalls_leave_the_kernel_only_for_a_rule_that_wants_them() {
        use vigil_bpf::abi::kind;
        let c = Config::default();
        let mut l = vigil_rules::Loader::new();
        l.add_builtin();
        let (set, _) = l.load();
        let i = c.interest_for(set.interest());
        assert!(!i.kinds.contains(&kind::SYSCALL), "no built-in wants them");
        assert!(i.rare_calls.is_empty());
        let mut l = vigil_rules::Loader::new();
        l.add_source(
            "p.yml",
            "title: p\nlogsource:\n    product: linux\n    service: auditd\ndetection:\n    s:\n        type: SYSCALL\n        SYSCALL: personality\n    condition: s\nlevel: high\n",
        );
        let (set, r) = l.load();
        assert!(r.errors.is_empty() && r.skipped.is_empty(), "{r:?}");
        let i = c.interest_for(set.interest());
        assert!(i.kinds.contains(&kind::SYSCALL));
        assert_eq!(i.rare_calls.iter().copied().collect::<Vec<_>>(), [135]);
        // --events: every call
        let mut c = Config::default();
        c.agent.events = true;
        assert_eq!(c.interest_for(set.interest()).rare_calls.len(), 3);
    }
}
