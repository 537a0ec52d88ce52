//! Least privilege: once the sensors are loaded and attached, outputs and
//! the metrics socket opened and the baselines database locked, the agent
//! keeps only the capabilities it still uses and drops the rest from its
//! effective, permitted, inheritable and bounding sets (so no exec'd or
//! exploited code can regain them).
//!
//! Kept:
//! - `CAP_BPF`, `CAP_PERFMON`: attach the syscall-set learner later, read
//!   program statistics;
//! - `CAP_SYS_PTRACE`: `/proc/PID/exe` and friends of other users'
//!   processes (enrichment, executable identities);
//! - `CAP_DAC_READ_SEARCH`: read `/proc` and `/etc/passwd`-style tables
//!   regardless of modes.
//!
//! Everything else (`CAP_SYS_ADMIN`, `CAP_SYS_MODULE`, `CAP_NET_ADMIN`,
//! `CAP_SETUID`, `CAP_DAC_OVERRIDE`, ...) is gone for the rest of the run.
//! Map updates (interest on SIGHUP, dedup sweeps) work on the map file
//! descriptors the agent already holds and need no capability.

/// Capabilities kept after start-up.
pub const KEEP: &[u32] = &[
    2,  // CAP_DAC_READ_SEARCH
    19, // CAP_SYS_PTRACE
    38, // CAP_PERFMON
    39, // CAP_BPF
];

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Drops every capability but [`KEEP`]; returns what was dropped from the
/// effective set, by number.
pub fn drop_to_runtime() -> Result<Vec<u32>, String> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a v3 header and two data words, as capget(2) says.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if r != 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    let held = |c: u32| data[(c / 32) as usize].effective & (1 << (c % 32)) != 0;
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40);
    let mut dropped = Vec::new();
    // The bounding set first: that needs CAP_SETPCAP, which goes next.
    for c in 0..=last {
        if KEEP.contains(&c) {
            continue;
        }
        if held(c) {
            dropped.push(c);
        }
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) };
    }
    let mut keep = [CapData::default(); 2];
    for &c in KEEP {
        let w = (c / 32) as usize;
        let bit = 1u32 << (c % 32);
        if data[w].permitted & bit != 0 {
            keep[w].permitted |= bit;
            keep[w].effective |= bit;
        }
    }
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset with a v3 header and two data words.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, keep.as_ptr()) };
    if r != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(dropped)
}
