//! The CPU profiler (`bpf/c/profile.bpf.c`), loaded as its own object: a
//! perf_event software CPU clock at [`ProfileConfig::hz`] on every online
//! CPU runs one BPF program that takes the kernel and user stack ids of
//! the interrupted task (stack-trace map; the kernel unwinds with frame
//! pointers) and counts the sample per (process, cgroup v2, stacks) in a
//! per-CPU hash. Symbols are resolved in userspace (the engine).

use crate::sensors::{SensorState, SensorStatus, explain};
use crate::{Error, raise_memlock};
use aya::programs::perf_event::{
    PerfEvent, PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent,
};
use aya::{Ebpf, EbpfLoader};

/// The compiled object, embedded.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/profile.bpf.o"))
}

/// [`PfKey::flags`]: the sample hit user mode (no kernel stack).
pub const PF_USER_MODE: u32 = 1;
/// [`PfKey::flags`]: a kernel thread (no user stack).
pub const PF_KTHREAD: u32 = 2;
/// `-EFAULT`: the stack id of a side that has no stack (user-mode sample:
/// kernel side; kernel thread: user side), or whose unwinding failed.
pub const STACK_EFAULT: i32 = -14;

/// One (process, cgroup, kernel stack, user stack) (`struct pf_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PfKey {
    /// cgroup v2 id of the sampled task.
    pub cgroup_id: u64,
    /// Process.
    pub tgid: u32,
    /// Kernel stack id, or -errno of `bpf_get_stackid`.
    pub kstack: i32,
    /// User stack id, or -errno.
    pub ustack: i32,
    /// [`PF_USER_MODE`], [`PF_KTHREAD`].
    pub flags: u32,
    /// Command name of the sampled thread (NUL-padded).
    pub comm: [u8; 16],
    /// The user stack word at the sampled stack pointer when it is a
    /// return address (a call instruction precedes it), else 0: the caller
    /// of a leaf function without a frame, which the frame-pointer walk
    /// skips.
    pub sp_ret: u64,
}
const _: () = assert!(size_of::<PfKey>() == 48);

// SAFETY: plain #[repr(C)] integers and bytes, every bit pattern valid, no
// implicit padding (size asserted).
unsafe impl aya::Pod for PfKey {}

impl PfKey {
    /// The command name.
    pub fn comm(&self) -> String {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.comm[..end]).into_owned()
    }
}

/// Kernel-side counters (`pf_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileStats {
    /// Samples taken, idle included.
    pub samples: u64,
    /// Samples of the idle task (not counted per stack).
    pub idle: u64,
    /// Samples lost: the count map was full.
    pub full: u64,
    /// Kernel-mode samples whose kernel stack could not be taken.
    pub kstack_err: u64,
    /// Samples of user processes whose user stack could not be taken (no
    /// frame pointer at the interrupted instruction, a page not present).
    pub ustack_err: u64,
    /// Stacks not stored: the stack map was full or its bucket taken.
    pub stack_full: u64,
}

/// Default sampling frequency (Hz): 49 avoids lockstep with timers that
/// run at 50 or 100 Hz.
pub const DEFAULT_HZ: u64 = 49;

/// What to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileConfig {
    /// Samples per second per CPU (1..=1000; 49 by default, 99 for finer
    /// profiles).
    pub hz: u64,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig { hz: DEFAULT_HZ }
    }
}

/// Names of the tools as `vigil probe` shows them.
pub const SENSOR_NAMES: [&str; 1] = ["profile"];

/// The loaded profiler. Dropping it detaches it.
pub struct Profile {
    ebpf: Ebpf,
    status: Vec<SensorStatus>,
    hz: u64,
}

fn online_cpus() -> Result<Vec<u32>, String> {
    aya::util::online_cpus().map_err(|(f, e)| format!("{f}: {e}"))
}

impl Profile {
    /// Loads the object and attaches the sampling program on every online
    /// CPU. Errors only when the object cannot be loaded; a profiler that
    /// cannot attach (no perf_event, `perf_event_paranoid`, no CPU clock)
    /// is reported in [`Profile::status`].
    pub fn load(cfg: &ProfileConfig) -> Result<Profile, Error> {
        Self::load_prog(cfg, "vg_pf_sample")
    }

    /// Loads only the benchmark's counting program on the same clock (the
    /// floor of any perf_event program; `vigil-bench --profile`).
    pub fn load_floor(cfg: &ProfileConfig) -> Result<Profile, Error> {
        let p = Self::load_prog(cfg, "vg_pf_floor")?;
        if let Some(SensorState::Unavailable(why)) = p.status.first().map(|s| &s.state) {
            return Err(Error::Program {
                prog: "vg_pf_floor",
                message: why.first().map(|w| w.1.clone()).unwrap_or_default(),
            });
        }
        Ok(p)
    }

    fn load_prog(cfg: &ProfileConfig, prog: &'static str) -> Result<Profile, Error> {
        if !(1..=1000).contains(&cfg.hz) {
            return Err(Error::Config {
                key: "perf.profile_hz",
                message: format!("{} is outside 1..=1000", cfg.hz),
            });
        }
        let _ = raise_memlock();
        let ebpf = EbpfLoader::new().load(object()).map_err(Error::Load)?;
        let mut me = Profile {
            ebpf,
            status: Vec::new(),
            hz: cfg.hz,
        };
        let hz = cfg.hz;
        let mech = "perf_event/cpu-clock";
        let r = (|| -> Result<usize, String> {
            let cpus = online_cpus()?;
            let p: &mut PerfEvent = me
                .ebpf
                .program_mut(prog)
                .ok_or("missing from object")?
                .try_into()
                .map_err(|e| explain(&e))?;
            p.load().map_err(|e| format!("load: {}", explain(&e)))?;
            for cpu in &cpus {
                p.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu: *cpu },
                    SamplePolicy::Frequency(hz),
                    false,
                )
                .map_err(|e| format!("attach on CPU {cpu}: {}", explain(&e)))?;
            }
            Ok(cpus.len())
        })();
        let state = match r {
            Ok(n) => SensorState::Live {
                mechanism: format!(
                    "{mech} at {hz} Hz on {n} CPUs (kernel and user stacks by frame pointers; samples per process, cgroup and stack)"
                ),
                fell_back_from: Vec::new(),
            },
            Err(e) => SensorState::Unavailable(vec![(mech.to_string(), e)]),
        };
        me.status = vec![SensorStatus {
            name: SENSOR_NAMES[0],
            state,
        }];
        Ok(me)
    }

    /// What attached ([`SENSOR_NAMES`]).
    pub fn status(&self) -> &[SensorStatus] {
        &self.status
    }

    /// Whether the profiler samples.
    pub fn is_live(&self) -> bool {
        self.status.iter().any(|s| s.is_live())
    }

    /// The sampling frequency.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// Samples per (process, cgroup, stacks) so far (cumulative).
    pub fn counts(&self) -> Result<Vec<(PfKey, u64)>, Error> {
        crate::read_per_cpu(&self.ebpf, "pf_counts")
    }

    /// Forgets count entries (idle keys, processes gone).
    pub fn forget(&mut self, keys: &[PfKey]) -> Result<(), Error> {
        crate::remove_per_cpu::<PfKey, u64>(&mut self.ebpf, "pf_counts", keys)
    }

    /// The instruction pointers of a stored stack, innermost first (empty
    /// when the id is unknown).
    pub fn stack(&self, id: i32) -> Vec<u64> {
        crate::read_stack(&self.ebpf, "pf_stacks", id)
    }

    /// Removes stored stacks no longer referenced.
    pub fn forget_stacks(&mut self, ids: &[i32]) {
        crate::forget_stacks(&mut self.ebpf, "pf_stacks", ids);
    }

    /// The object's own counters.
    pub fn stats(&self) -> ProfileStats {
        let get = |i: u32| crate::stat_slot(&self.ebpf, "pf_stats", i);
        ProfileStats {
            samples: get(0),
            idle: get(1),
            full: get(2),
            kstack_err: get(3),
            ustack_err: get(4),
            stack_full: get(5),
        }
    }

    /// Runs of the counting floor ([`Profile::load_floor`]).
    pub fn floor_runs(&self) -> u64 {
        crate::stat_slot(&self.ebpf, "pf_stats", 7)
    }

    /// Run count and time of this object's programs.
    pub fn program_stats(&self) -> Vec<crate::ProgramStat> {
        crate::program_stats_of(&self.ebpf)
    }
}
