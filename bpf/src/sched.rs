//! Scheduler sensors (`bpf/c/sched.bpf.c`), loaded as their own object:
//!
//! - `runqlat`: run-queue latency per cgroup v2 as log2 histograms of
//!   microseconds kept in a per-CPU BPF hash (no event per context switch),
//!   split by why the task waited ([`RQ_WAKEUP`]: it was woken;
//!   [`RQ_PREEMPTED`]: it lost the CPU while runnable).
//! - `pidnss`: context switches between tasks of different active pid
//!   namespaces, counted per (previous, next) namespace pair.
//!
//! Each program has a `tp_btf` implementation (direct BTF loads, cheapest)
//! and a `raw_tp` fallback; [`Sched::status`] says which one runs.

use crate::sensors::{SensorState, SensorStatus, explain};
use crate::{Error, ensure_tracefs, raise_memlock};
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::RawTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};

/// The compiled scheduler object, embedded.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sched.bpf.o"))
}

/// Histogram slots: slot 0 counts waits under 1 us, slot k >= 1 waits in
/// `[2^(k-1), 2^k)` us; the last slot also holds everything longer.
pub const RQ_SLOTS: usize = 32;
/// The task slept and was woken.
pub const RQ_WAKEUP: u32 = 0;
/// The task was preempted (still runnable) and waited to run again.
pub const RQ_PREEMPTED: u32 = 1;

/// Key of a run-queue latency histogram (`struct rq_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RqKey {
    /// cgroup v2 id of the task that waited.
    pub cgroup_id: u64,
    /// [`RQ_WAKEUP`] or [`RQ_PREEMPTED`].
    pub kind: u32,
    /// Padding (zero).
    pub _pad: u32,
}
const _: () = assert!(size_of::<RqKey>() == 16);

/// A run-queue latency histogram (`struct rq_hist`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RqHist {
    /// Counts per log2-microsecond slot.
    pub slots: [u64; RQ_SLOTS],
    /// Exact sum of the waits counted, in nanoseconds.
    pub sum_ns: u64,
}
const _: () = assert!(size_of::<RqHist>() == 8 * (RQ_SLOTS + 1));

impl Default for RqHist {
    fn default() -> Self {
        RqHist {
            slots: [0; RQ_SLOTS],
            sum_ns: 0,
        }
    }
}

/// A pid-namespace pair of a context switch (`struct ns_pair`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsPair {
    /// Active pid namespace (inode) of the task switched out.
    pub prev_ns: u32,
    /// Active pid namespace (inode) of the task switched in.
    pub next_ns: u32,
}
const _: () = assert!(size_of::<NsPair>() == 8);

// SAFETY: plain #[repr(C)] integers, every bit pattern valid, no padding
// bytes the kernel could leave uninitialized (explicit `_pad`).
unsafe impl aya::Pod for RqKey {}
// SAFETY: as above.
unsafe impl aya::Pod for RqHist {}
// SAFETY: as above.
unsafe impl aya::Pod for NsPair {}

impl crate::PerCpuSum for RqHist {
    fn add(&mut self, o: &Self) {
        for (s, v) in self.slots.iter_mut().zip(o.slots.iter()) {
            *s = s.wrapping_add(*v);
        }
        self.sum_ns = self.sum_ns.wrapping_add(o.sum_ns);
    }
}

/// Kernel-side counters of the scheduler object (`sched_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedStats {
    /// Waits not counted because the histogram map was full.
    pub hist_full: u64,
    /// Switches not counted because the pidnss map was full.
    pub pairs_full: u64,
    /// Tasks switched in with no recorded enqueue (started before the
    /// sensor, or their entry aged out of the LRU map).
    pub start_miss: u64,
}

/// What to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedConfig {
    /// Run-queue latency histograms.
    pub runqlat: bool,
    /// Pid-namespace switch counts.
    pub pidnss: bool,
    /// Skip `tp_btf` and attach the `raw_tp` fallback (tests of the
    /// fallback; kernels where tp_btf misbehaves).
    pub raw_tp_only: bool,
}

/// Names of the scheduler sensors as `vigil probe` shows them.
pub const SENSOR_NAMES: [&str; 2] = ["runqlat", "pidnss"];

/// The loaded scheduler sensors. Dropping it detaches them.
pub struct Sched {
    ebpf: Ebpf,
    status: Vec<SensorStatus>,
}

/// (tp_btf program, raw_tp program, tracepoint).
const WAKEUP: (&str, &str, &str) = ("vg_rq_wakeup", "vg_rq_wakeup_raw", "sched_wakeup");
const WAKEUP_NEW: (&str, &str, &str) = (
    "vg_rq_wakeup_new",
    "vg_rq_wakeup_new_raw",
    "sched_wakeup_new",
);
const SWITCH: (&str, &str, &str) = ("vg_rq_switch", "vg_rq_switch_raw", "sched_switch");

impl Sched {
    /// Loads the object and attaches what `cfg` asks for, each program with
    /// the best mechanism that works here. Errors only when the object
    /// itself cannot be loaded; sensors that cannot attach are reported in
    /// [`Sched::status`].
    pub fn load(cfg: &SchedConfig) -> Result<Sched, Error> {
        ensure_tracefs()?;
        let _ = raise_memlock();
        let btf = if cfg.raw_tp_only {
            None
        } else {
            Btf::from_sys_fs().ok()
        };
        let (rq, ns) = (u8::from(cfg.runqlat), u8::from(cfg.pidnss));
        let ebpf = EbpfLoader::new()
            .btf(btf.as_ref())
            // `rq_ts` is task-local storage, which aya creates but does not wrap
            .allow_unsupported_maps()
            .override_global("cfg_runqlat", &rq, true)
            .override_global("cfg_pidnss", &ns, true)
            .load(object())
            .map_err(Error::Load)?;
        let mut me = Sched {
            ebpf,
            status: Vec::new(),
        };
        let mut sw: Option<Result<String, Vec<(String, String)>>> = None;
        if cfg.runqlat || cfg.pidnss {
            sw = Some(me.attach(SWITCH, btf.as_ref()));
        }
        let runqlat = if !cfg.runqlat {
            SensorState::Disabled
        } else {
            let w = me.attach(WAKEUP, btf.as_ref());
            let wn = me.attach(WAKEUP_NEW, btf.as_ref());
            let s = sw.clone().unwrap_or_else(|| Err(Vec::new()));
            match (w, wn, s) {
                (Ok(a), Ok(b), Ok(c)) => SensorState::Live {
                    mechanism: format!("{a}, {b}, {c} (log2 histograms per cgroup)"),
                    fell_back_from: Vec::new(),
                },
                (a, b, c) => {
                    let mut why = Vec::new();
                    for r in [a, b, c] {
                        if let Err(e) = r {
                            why.extend(e);
                        }
                    }
                    SensorState::Unavailable(why)
                }
            }
        };
        let pidnss = if !cfg.pidnss {
            SensorState::Disabled
        } else {
            match sw.unwrap_or_else(|| Err(Vec::new())) {
                Ok(m) => SensorState::Live {
                    mechanism: format!("{m} (counts per pid-namespace pair)"),
                    fell_back_from: Vec::new(),
                },
                Err(why) => SensorState::Unavailable(why),
            }
        };
        me.status = vec![
            SensorStatus {
                name: SENSOR_NAMES[0],
                state: runqlat,
            },
            SensorStatus {
                name: SENSOR_NAMES[1],
                state: pidnss,
            },
        ];
        Ok(me)
    }

    /// tp_btf, then raw_tp. Ok(mechanism) or every (mechanism, reason).
    fn attach(
        &mut self,
        (btf_prog, raw_prog, tp): (&'static str, &'static str, &'static str),
        btf: Option<&Btf>,
    ) -> Result<String, Vec<(String, String)>> {
        let mut fails: Vec<(String, String)> = Vec::new();
        match btf {
            Some(btf) => {
                let r = crate::attach_tp_btf(&mut self.ebpf, btf_prog, tp, btf);
                match r {
                    Ok(()) => return Ok(format!("tp_btf/{tp}")),
                    Err(e) => fails.push((format!("tp_btf/{tp}"), e)),
                }
            }
            None => fails.push((
                format!("tp_btf/{tp}"),
                "not tried: no kernel BTF (/sys/kernel/btf/vmlinux) or raw_tp_only".into(),
            )),
        }
        let r = (|| -> Result<(), String> {
            let p: &mut RawTracePoint = self
                .ebpf
                .program_mut(raw_prog)
                .ok_or("missing from object")?
                .try_into()
                .map_err(|e| explain(&e))?;
            p.load().map_err(|e| format!("load: {}", explain(&e)))?;
            p.attach(tp)
                .map_err(|e| format!("attach: {}", explain(&e)))?;
            Ok(())
        })();
        match r {
            Ok(()) => Ok(format!("raw_tp/{tp} (not {}: {})", fails[0].0, fails[0].1)),
            Err(e) => {
                fails.push((format!("raw_tp/{tp}"), e));
                Err(fails)
            }
        }
    }

    /// What attached, per sensor ([`SENSOR_NAMES`]).
    pub fn status(&self) -> &[SensorStatus] {
        &self.status
    }

    /// Whether a sensor is live.
    pub fn is_live(&self, name: &str) -> bool {
        self.status.iter().any(|s| s.name == name && s.is_live())
    }

    fn map(&self, name: &'static str) -> Result<&aya::maps::Map, Error> {
        self.ebpf.map(name).ok_or(Error::Map {
            name,
            source: aya::maps::MapError::InvalidName { name: name.into() },
        })
    }

    /// Every histogram so far (cumulative since load), summed over CPUs.
    pub fn runqlat(&self) -> Result<Vec<(RqKey, RqHist)>, Error> {
        crate::read_per_cpu(&self.ebpf, "rq_hist")
    }

    /// Forgets the histograms of these cgroups (gone from the host).
    pub fn forget_cgroups(&mut self, ids: &[u64]) -> Result<(), Error> {
        let keys: Vec<RqKey> = ids
            .iter()
            .flat_map(|&id| {
                [RQ_WAKEUP, RQ_PREEMPTED].map(|kind| RqKey {
                    cgroup_id: id,
                    kind,
                    _pad: 0,
                })
            })
            .collect();
        self.remove_keys::<RqKey, RqHist>("rq_hist", &keys)
    }

    /// Removes pid-namespace pairs from the kernel's map (namespaces gone
    /// or idle: their counts start again from zero). The map holds 4,096
    /// pairs; without this, pairs of containers long gone would fill it and
    /// new pairs would go uncounted (`pairs_full`).
    pub fn forget_pidns_pairs(&mut self, pairs: &[NsPair]) -> Result<(), Error> {
        self.remove_keys::<NsPair, u64>("pidns_switch", pairs)
    }

    fn remove_keys<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
        keys: &[K],
    ) -> Result<(), Error> {
        crate::remove_per_cpu::<K, V>(&mut self.ebpf, name, keys)
    }

    /// Pid-namespace switches so far (cumulative), per pair, summed over CPUs.
    pub fn pidns_switches(&self) -> Result<Vec<(NsPair, u64)>, Error> {
        crate::read_per_cpu(&self.ebpf, "pidns_switch")
    }

    /// The object's own counters.
    pub fn stats(&self) -> Result<SchedStats, Error> {
        self.map("sched_stats")?;
        let get = |i: u32| crate::stat_slot(&self.ebpf, "sched_stats", i);
        Ok(SchedStats {
            hist_full: get(0),
            pairs_full: get(1),
            start_miss: get(2),
        })
    }

    /// Loads the object with only the benchmark's counting programs on
    /// `sched_wakeup` and `sched_switch` (the floor of any tool that hooks
    /// both; `vigil-bench --sched`).
    pub fn load_floor() -> Result<Sched, Error> {
        let ebpf = crate::load_floor(
            object(),
            &[
                ("vg_rq_floor_wakeup", "sched_wakeup"),
                ("vg_rq_floor_switch", "sched_switch"),
            ],
        )?;
        Ok(Sched {
            ebpf,
            status: Vec::new(),
        })
    }

    /// Runs of the counting floor programs ([`Sched::load_floor`]).
    pub fn floor_runs(&self) -> u64 {
        crate::stat_slot(&self.ebpf, "sched_stats", 3)
    }

    /// Run count and time of this object's programs (zero unless bpf_stats
    /// is on; vigil's own cost).
    pub fn program_stats(&self) -> Vec<crate::ProgramStat> {
        crate::program_stats_of(&self.ebpf)
    }

    /// Entries in the enqueue-time map of the raw_tp fallback (diagnostics;
    /// the tp_btf programs keep their stamps in task-local storage).
    pub fn pending_stamps(&self) -> usize {
        self.map("rq_start")
            .ok()
            .and_then(|m| BpfHashMap::<&MapData, u32, u64>::try_from(m).ok())
            .map(|m| m.keys().count())
            .unwrap_or(0)
    }
}
