//! `vigil probe`: what this kernel supports, from a real load and attach of
//! every sensor (the live table, not a static list).

use crate::config::Config;
use std::fmt::Write as _;
use vigil_bpf::{SensorState, SensorStatus, Sensors};

/// Kernel facts that decide what can run.
pub fn kernel_facts() -> Vec<(&'static str, String)> {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
    let mut v = Vec::new();
    v.push((
        "kernel",
        read("/proc/sys/kernel/osrelease").unwrap_or_else(|e| format!("unknown ({e})")),
    ));
    v.push((
        "btf",
        if std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            "/sys/kernel/btf/vmlinux (CO-RE and tp_btf available)".into()
        } else {
            "missing: tp_btf sensors fall back to tracepoints".into()
        },
    ));
    v.push((
        "lockdown",
        read("/sys/kernel/security/lockdown")
            .map(|t| lockdown_mode(&t))
            .unwrap_or_else(|_| "unknown (securityfs not mounted at /sys/kernel/security)".into()),
    ));
    v.push((
        "tracefs",
        match vigil_bpf::ensure_tracefs() {
            Ok((dir, true)) => format!("{dir} (mounted by vigil)"),
            Ok((dir, false)) => dir.to_string(),
            Err(e) => e.to_string(),
        },
    ));
    v.push((
        "memlock",
        match vigil_bpf::raise_memlock() {
            None => "RLIMIT_MEMLOCK raised".into(),
            Some(e) => format!(
                "RLIMIT_MEMLOCK not raised ({e}); fine: BPF memory is charged to the cgroup"
            ),
        },
    ));
    v.push((
        "cgroup2",
        crate::host::cgroup2_root()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| {
                "not mounted: container attribution uses /proc/PID/cgroup v1 paths".into()
            }),
    ));
    v.push((
        "modules",
        if std::path::Path::new("/proc/modules").exists() {
            "loadable kernel modules supported".into()
        } else {
            "not supported by this kernel (no /proc/modules: CONFIG_MODULES=n); nothing can be loaded, so the module sensor has nothing to watch".into()
        },
    ));
    v.push((
        "fentry/lsm",
        "not used by this build: every sensor has a tracepoint or tp_btf implementation".into(),
    ));
    v
}

/// The performance sensors (`[perf]`): runqlat and pidnss from a real load
/// of the scheduler object, cpustolen from /proc/stat.
pub fn perf_status(cfg: &Config) -> Vec<vigil_bpf::SensorStatus> {
    use vigil_bpf::sched::{SENSOR_NAMES, Sched, SchedConfig};
    let p = &cfg.perf;
    let mut v = match Sched::load(&SchedConfig {
        runqlat: p.runqlat,
        pidnss: p.pidnss,
        raw_tp_only: false,
    }) {
        Ok(s) => s.status().to_vec(),
        Err(e) => SENSOR_NAMES
            .iter()
            .map(|&name| SensorStatus {
                name,
                state: SensorState::Unavailable(vec![("sched.bpf.o".into(), e.to_string())]),
            })
            .collect(),
    };
    v.extend(perfsys_status(cfg));
    v.extend(ktools_status(cfg));
    v.push(xenhyper_status());
    v.push(profile_status(cfg));
    let stat = std::fs::read_to_string("/proc/stat").map(|t| crate::perf::parse_proc_stat(&t));
    v.push(SensorStatus {
        name: "cpustolen",
        state: match (p.cpu_steal, stat) {
            (false, _) => SensorState::Disabled,
            (true, Ok(cpus)) if !cpus.is_empty() => SensorState::Live {
                mechanism: format!(
                    "/proc/stat steal column ({} CPUs; the kernel's accounting)",
                    cpus.len()
                ),
                fell_back_from: Vec::new(),
            },
            (true, Ok(_)) => SensorState::Unavailable(vec![(
                "/proc/stat".into(),
                "no per-CPU lines with a steal column".into(),
            )]),
            (true, Err(e)) => SensorState::Unavailable(vec![("/proc/stat".into(), e.to_string())]),
        },
    });
    v
}

/// The kernel-work tools (`[perf]` kmem, slabratetop, kpages, numamove,
/// workq, softirqs, hardirqs, tasklets) from a real load of their object.
pub fn ktools_status(cfg: &Config) -> Vec<vigil_bpf::SensorStatus> {
    use vigil_bpf::ktools::{Ktools, SENSOR_NAMES};
    let kc = cfg.perf.ktools_config();
    if !kc.any() {
        return SENSOR_NAMES
            .iter()
            .map(|&name| SensorStatus {
                name,
                state: SensorState::Disabled,
            })
            .collect();
    }
    match Ktools::load(&kc) {
        Ok(k) => k.status().to_vec(),
        Err(e) => SENSOR_NAMES
            .iter()
            .map(|&name| SensorStatus {
                name,
                state: SensorState::Unavailable(vec![("ktools.bpf.o".into(), e.to_string())]),
            })
            .collect(),
    }
}

/// `xenhyper` (Xen hypercalls per guest CPU, the book's 16.3): this build
/// has no collector for it; the row says whether the host has the `xen:*`
/// tracepoints it would use.
pub fn xenhyper_status() -> vigil_bpf::SensorStatus {
    xenhyper_status_in(&["/sys/kernel/tracing", "/sys/kernel/debug/tracing"])
}

/// [`xenhyper_status`] against these tracefs directories.
pub fn xenhyper_status_in(tracefs: &[&str]) -> vigil_bpf::SensorStatus {
    let xen = tracefs
        .iter()
        .map(|d| std::path::Path::new(d).join("events/xen"))
        .find(|p| p.is_dir());
    let reason = match xen {
        Some(p) => format!(
            "{} exists (a Xen guest kernel), but this build has no xenhyper collector",
            p.display()
        ),
        None => "no xen tracepoints on this host (tracefs has no events/xen: not a Xen guest, or a kernel without CONFIG_XEN)".into(),
    };
    SensorStatus {
        name: "xenhyper",
        state: SensorState::Unavailable(vec![("tracepoint/xen/xen_mc_*".into(), reason)]),
    }
}

/// The CPU profiler (`[perf] profile`) from a real load and attach.
pub fn profile_status(cfg: &Config) -> vigil_bpf::SensorStatus {
    use vigil_bpf::profile::{Profile, ProfileConfig, SENSOR_NAMES};
    if !cfg.perf.profile {
        return SensorStatus {
            name: SENSOR_NAMES[0],
            state: SensorState::Disabled,
        };
    }
    match Profile::load(&ProfileConfig {
        hz: cfg.perf.profile_hz,
    }) {
        Ok(p) => p.status()[0].clone(),
        Err(e) => SensorStatus {
            name: SENSOR_NAMES[0],
            state: SensorState::Unavailable(vec![("profile.bpf.o".into(), e.to_string())]),
        },
    }
}

/// The system performance sensors (`[perf]` syscalls, tcp, bio) from a
/// real load of the perfsys object, and `selfcost` (bpf_stats).
pub fn perfsys_status(cfg: &Config) -> Vec<vigil_bpf::SensorStatus> {
    use vigil_bpf::perfsys::{Perfsys, SENSOR_NAMES};
    let p = &cfg.perf;
    let mut v = match Perfsys::load(&p.perfsys_config()) {
        Ok(s) => s.status().to_vec(),
        Err(e) => SENSOR_NAMES
            .iter()
            .map(|&name| SensorStatus {
                name,
                state: SensorState::Unavailable(vec![("perfsys.bpf.o".into(), e.to_string())]),
            })
            .collect(),
    };
    v.push(SensorStatus {
        name: "selfcost",
        state: if !p.self_cost {
            SensorState::Disabled
        } else if !cfg.sensors.bpf_stats {
            SensorState::Live {
                mechanism: "agent CPU time only (getrusage); BPF run time not counted: sensors.bpf_stats = false".into(),
                fell_back_from: Vec::new(),
            }
        } else {
            match vigil_bpf::bpf_stats_available() {
                Ok(()) => SensorState::Live {
                    mechanism: if cfg.sensors.bpf_stats_sample_ms == 0
                        || cfg.sensors.bpf_stats_sample_ms >= p.interval_s.max(1) * 1000
                    {
                        "BPF_ENABLE_STATS run time and count of every vigil program (on all the time), agent CPU time (getrusage)".into()
                    } else {
                        format!(
                            "BPF_ENABLE_STATS run time and count of every vigil program (sampled {} ms of every {} s), agent CPU time (getrusage)",
                            cfg.sensors.bpf_stats_sample_ms,
                            p.interval_s.max(1)
                        )
                    },
                    fell_back_from: Vec::new(),
                },
                Err(e) => SensorState::Live {
                    mechanism: "agent CPU time only (getrusage)".into(),
                    fell_back_from: vec![("BPF_ENABLE_STATS".into(), e)],
                },
            }
        },
    });
    v
}

/// What `vigil probe` found: kernel facts, then every sensor's state from
/// a real load and attach (or why nothing loaded) and the attach time.
pub struct ProbeResult {
    /// Kernel facts, as (name, value).
    pub facts: Vec<(&'static str, String)>,
    /// Every sensor (security, then performance), or the load error.
    pub sensors: Result<Vec<SensorStatus>, String>,
    /// Time to load and attach the security sensors, ms.
    pub attach_ms: u128,
}

impl ProbeResult {
    /// Sensors live.
    pub fn live(&self) -> usize {
        self.sensors
            .as_ref()
            .map(|v| v.iter().filter(|s| s.is_live()).count())
            .unwrap_or(0)
    }

    /// The `--json` form: `{"kernel": {name: value}, "sensors": [{"name",
    /// "state" (live|unavailable|disabled), "mechanism", "fell_back_from" |
    /// "reasons": [{"mechanism", "reason"}]}], "live", "total",
    /// "attach_ms", "error"}`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let kernel: serde_json::Map<String, serde_json::Value> = self
            .facts
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        let pairs = |v: &[(String, String)]| -> Vec<serde_json::Value> {
            v.iter()
                .map(|(m, r)| json!({"mechanism": m, "reason": r}))
                .collect()
        };
        let (sensors, error) = match &self.sensors {
            Ok(v) => (
                v.iter()
                    .map(|s| match &s.state {
                        SensorState::Live {
                            mechanism,
                            fell_back_from,
                        } => json!({"name": s.name, "state": "live", "mechanism": mechanism,
                                    "fell_back_from": pairs(fell_back_from)}),
                        SensorState::Unavailable(f) => {
                            json!({"name": s.name, "state": "unavailable", "reasons": pairs(f)})
                        }
                        SensorState::Disabled => json!({"name": s.name, "state": "disabled"}),
                    })
                    .collect::<Vec<_>>(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e.clone())),
        };
        json!({
            "kernel": kernel,
            "sensors": sensors,
            "live": self.live(),
            "total": sensors.len(),
            "attach_ms": self.attach_ms as u64,
            "error": error,
        })
    }
}

/// Loads and attaches every sensor and collects what is live.
pub fn probe_result(cfg: &Config) -> ProbeResult {
    let facts = kernel_facts();
    match Sensors::load(&cfg.sensor_config(), &cfg.interest()) {
        Ok(sensors) => {
            let mut all: Vec<SensorStatus> = sensors.status().to_vec();
            all.extend(perf_status(cfg));
            ProbeResult {
                facts,
                sensors: Ok(all),
                attach_ms: sensors.attach_time.as_millis(),
            }
        }
        Err(e) => ProbeResult {
            facts,
            sensors: Err(e.to_string()),
            attach_ms: 0,
        },
    }
}

/// Renders the probe report; returns (text, number of live sensors).
pub fn probe(cfg: &Config) -> (String, usize) {
    let r = probe_result(cfg);
    (render(&r), r.live())
}

/// The probe report as a table.
pub fn render(r: &ProbeResult) -> String {
    let mut out = String::new();
    for (k, v) in &r.facts {
        let _ = writeln!(out, "{k:<11} {v}");
    }
    let _ = writeln!(out);
    let all = match &r.sensors {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(out, "sensors: cannot load: {e}");
            return out;
        }
    };
    let _ = writeln!(out, "{:<12} {:<12} MECHANISM / REASON", "SENSOR", "STATE");
    let mut live = 0;
    for s in all {
        match &s.state {
            SensorState::Live {
                mechanism,
                fell_back_from,
            } => {
                live += 1;
                let _ = writeln!(out, "{:<12} {:<12} {}", s.name, "live", mechanism);
                for (m, why) in fell_back_from {
                    let _ = writeln!(out, "{:<12} {:<12}   (not {m}: {why})", "", "");
                }
            }
            SensorState::Unavailable(fails) => {
                let _ = writeln!(
                    out,
                    "{:<12} {:<12} unavailable on this kernel",
                    s.name, "UNAVAILABLE"
                );
                for (m, why) in fails {
                    let _ = writeln!(out, "{:<12} {:<12}   {m}: {why}", "", "");
                }
            }
            SensorState::Disabled => {
                let _ = writeln!(
                    out,
                    "{:<12} {:<12} disabled by configuration",
                    s.name, "disabled"
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{live}/{} sensors live, attached in {} ms",
        all.len(),
        r.attach_ms
    );
    out
}

/// The kernel's lockdown mode from `/sys/kernel/security/lockdown`, whose
/// text lists the modes with the active one in brackets
/// (`none [integrity] confidentiality`): `integrity (of: none, integrity,
/// confidentiality)`. Text of another shape is shown as it is.
fn lockdown_mode(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let active = words
        .iter()
        .find(|w| w.starts_with('[') && w.ends_with(']') && w.len() > 2);
    match active {
        Some(a) => {
            let all: Vec<&str> = words.iter().map(|w| w.trim_matches(['[', ']'])).collect();
            format!("{} (of: {})", &a[1..a.len() - 1], all.join(", "))
        }
        None => text.trim().to_string(),
    }
}

#[cfg(test)]
mod lockdown_tests {
    use super::lockdown_mode;

    #[test]
    fn the_bracketed_mode_is_the_active_one() {
        assert_eq!(
            lockdown_mode("none [integrity] confidentiality\n"),
            "integrity (of: none, integrity, confidentiality)"
        );
        assert_eq!(
            lockdown_mode("[none] integrity confidentiality"),
            "none (of: none, integrity, confidentiality)"
        );
        assert_eq!(lockdown_mode("weird"), "weird");
        assert_eq!(lockdown_mode("[]"), "[]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xenhyper_says_why_not() {
        let none = xenhyper_status_in(&["/nonexistent-tracefs"]);
        let SensorState::Unavailable(r) = &none.state else {
            panic!("{none:?}");
        };
        assert_eq!(none.name, "xenhyper");
        assert!(
            r[0].1.starts_with("no xen tracepoints on this host"),
            "{r:?}"
        );
        let d = std::env::temp_dir().join(format!("vigil-xen-{}", std::process::id()));
        std::fs::create_dir_all(d.join("events/xen")).unwrap();
        let some = xenhyper_status_in(&[d.to_str().unwrap()]);
        let _ = std::fs::remove_dir_all(&d);
        let SensorState::Unavailable(r) = &some.state else {
            panic!("{some:?}");
        };
        assert!(r[0].1.contains("no xenhyper collector"), "{r:?}");
    }
}
