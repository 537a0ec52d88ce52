//! Kill on match (`action: kill`): what the kernel can decide is compiled
//! into the sensor's maps ([`kernel_plan`]: exec of an executable below a
//! path prefix or of exactly one, exec of a memfd, exec from a
//! world-writable directory, killed at `sched_process_exec`; a successful
//! open of a path below a prefix or of exactly one, killed at the open's
//! exit; a connect to a port, killed at the connect's exit; all with
//! `bpf_send_signal(SIGKILL)`); every other kill rule kills from userspace
//! with `pidfd_send_signal` when its alert is raised. The alert says what
//! was done (`vigil.response.*`). Never pid 1, kernel threads, vigil
//! itself or its supervisor (its parent); `response.monitor` only reports
//! "would kill".

use crate::enrich::Event;
use vigil_bpf::abi::exec_flags;
use vigil_bpf::decode::Body;
use vigil_rules::ast::{Cmp, Expr, Pred, StrOp, Test};
use vigil_rules::{Action, Field, Rule, RuleSet};

/// What a kill rule compiles to in the kernel.
pub type KernelKill = vigil_bpf::KillPlan;

/// The syscall a kernel-decidable kill rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    Exec,
    Open,
    Connect,
}

fn action_of(p: &Pred) -> Option<On> {
    if p.field != Field::EventAction {
        return None;
    }
    let Test::Str {
        op: StrOp::Eq, pat, ..
    } = &p.test
    else {
        return None;
    };
    [
        ("exec", On::Exec),
        ("open", On::Open),
        ("connect", On::Connect),
    ]
    .into_iter()
    .find(|(n, _)| pat.eq_ignore_ascii_case(n.as_bytes()))
    .map(|(_, o)| o)
}

/// The kernel form of one selector for `on`: at exec
/// `process.executable startswith|= P` (case-sensitive),
/// `vigil.exec.memfd = true` or `vigil.exec.world_writable_dir = true`; at
/// open `file.path startswith|= P`; at connect `destination.port = N`; or
/// an `or` of those.
fn selector(on: On, e: &Expr, out: &mut KernelKill) -> bool {
    let path_ok = |pat: &Vec<u8>| !pat.is_empty() && pat.len() <= vigil_bpf::abi::LPM_MAX;
    match e {
        Expr::Pred(Pred {
            field,
            test: Test::Str { op, pat, ci: false },
        }) if path_ok(pat) && matches!(op, StrOp::Prefix | StrOp::Eq) => {
            let list = match (on, field, op) {
                (On::Exec, Field::ProcessExecutable, StrOp::Prefix) => &mut out.prefixes,
                (On::Exec, Field::ProcessExecutable, _) => &mut out.exec_exact,
                (On::Open, Field::FilePath, StrOp::Prefix) => &mut out.open_prefixes,
                (On::Open, Field::FilePath, _) => &mut out.open_exact,
                _ => return false,
            };
            list.push(pat.clone());
            true
        }
        Expr::Pred(Pred {
            field: Field::ExecMemfd,
            test: Test::Bool(true),
        }) if on == On::Exec => {
            out.memfd = true;
            true
        }
        Expr::Pred(Pred {
            field: Field::ExecWorldWritableDir,
            test: Test::Bool(true),
        }) if on == On::Exec => {
            out.world_writable_dir = true;
            true
        }
        Expr::Pred(Pred {
            field: Field::DestinationPort,
            test: Test::Int(Cmp::Eq, n),
        }) if on == On::Connect && (1..=65535).contains(n) => {
            out.ports.push(*n as u16);
            true
        }
        Expr::Or(items) => !items.is_empty() && items.iter().all(|i| selector(on, i, out)),
        _ => false,
    }
}

/// The kernel form of a kill rule's condition, when the kernel can decide
/// all of it: `event.action = exec|open|connect and <selector>` (see
/// `selector`). None: userspace decides.
pub fn kernel_plan(rule: &Rule) -> Option<KernelKill> {
    if rule.action != Action::Kill || !rule.enabled {
        return None;
    }
    let Expr::And(items) = &rule.condition else {
        return None;
    };
    let on = items.iter().find_map(|i| match i {
        Expr::Pred(p) => action_of(p),
        _ => None,
    })?;
    let mut out = KernelKill::default();
    let mut selectors = 0;
    for i in items {
        match i {
            Expr::Pred(p) if action_of(p) == Some(on) => {}
            other => {
                if !selector(on, other, &mut out) {
                    return None;
                }
                selectors += 1;
            }
        }
    }
    (selectors == 1).then_some(out)
}

/// The kernel plan of a whole rule set: the union of its kernel-decidable
/// kill rules, and their ids.
pub fn kernel_plan_of(set: &RuleSet) -> (KernelKill, Vec<String>) {
    let mut all = KernelKill::default();
    let mut ids = Vec::new();
    for r in set.rules() {
        if let Some(k) = kernel_plan(r) {
            all.prefixes.extend(k.prefixes);
            all.exec_exact.extend(k.exec_exact);
            all.memfd |= k.memfd;
            all.world_writable_dir |= k.world_writable_dir;
            all.open_prefixes.extend(k.open_prefixes);
            all.open_exact.extend(k.open_exact);
            all.ports.extend(k.ports);
            ids.push(r.id.clone());
        }
    }
    for v in [
        &mut all.prefixes,
        &mut all.exec_exact,
        &mut all.open_prefixes,
        &mut all.open_exact,
    ] {
        v.sort();
        v.dedup();
    }
    all.ports.sort_unstable();
    all.ports.dedup();
    (all, ids)
}

/// What was done about one alert of a kill rule (`vigil.response.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `killed`, `would-kill` (monitor mode), `refused` (a protected
    /// process), `failed` (the signal could not be sent) or `gone` (the
    /// process had exited, or its pid is another process's now).
    pub outcome: &'static str,
    /// `kernel` (at the tracepoint that saw the event) or `userspace`
    /// (`pidfd_send_signal` when the alert was raised).
    pub how: &'static str,
    /// Event to signal sent, ns (0 for the kernel: the signal is sent in
    /// the event's own tracepoint).
    pub latency_ns: u64,
    /// Why it was refused or failed.
    pub reason: Option<String>,
}

/// Applies kill rules.
#[derive(Debug, Clone)]
pub struct Responder {
    /// Report "would kill" only.
    pub monitor: bool,
    /// vigil's pid.
    pub me: u32,
    /// vigil's parent (its supervisor).
    pub supervisor: u32,
}

impl Responder {
    /// A responder for this process.
    pub fn new(monitor: bool) -> Responder {
        Responder {
            monitor,
            me: std::process::id(),
            // SAFETY: getppid has no preconditions.
            supervisor: unsafe { libc::getppid() } as u32,
        }
    }

    /// Why this pid must never be killed (None: it may be). `no_exe`: its
    /// executable is unknown (with parent 2: a kernel thread).
    fn protected_pid(&self, pid: u32, ppid: u32, no_exe: bool) -> Option<&'static str> {
        if pid <= 1 {
            return Some("pid 1");
        }
        if pid == self.me {
            return Some("vigil itself");
        }
        if pid == self.supervisor {
            return Some("vigil's supervisor");
        }
        // kernel threads: children of kthreadd (pid 2) with no executable
        if pid == 2 || (ppid == 2 && no_exe) {
            return Some("kernel thread");
        }
        None
    }

    fn protected(&self, ev: &Event) -> Option<&'static str> {
        let h = &ev.k.hdr;
        self.protected_pid(
            h.pid,
            h.ppid,
            ev.process.as_ref().is_none_or(|p| p.exe.is_empty()),
        )
    }

    /// Kills `pid` (the instance started at `start_ns`, 0: any) from
    /// userspace for drift of a locked baseline seen in an event at
    /// `event_ns`; `ppid`/`no_exe` as for the protection check.
    pub fn kill_drift(
        &self,
        pid: u32,
        start_ns: u64,
        ppid: u32,
        no_exe: bool,
        event_ns: u64,
        now_boot_ns: u64,
    ) -> Response {
        let user = |outcome, reason: Option<String>| Response {
            outcome,
            how: "userspace",
            latency_ns: now_boot_ns.saturating_sub(event_ns),
            reason,
        };
        if let Some(why) = self.protected_pid(pid, ppid, no_exe) {
            return user("refused", Some(why.into()));
        }
        if self.monitor {
            return user("would-kill", None);
        }
        match kill_pid(pid, start_ns) {
            Ok(()) => user("killed", None),
            Err(KillError::Gone) => user("gone", None),
            Err(KillError::Os(e)) => user("failed", Some(e)),
        }
    }

    /// Acts on an alert of a kill rule. `now_boot_ns`: the boot clock now.
    pub fn respond(&self, ev: &Event, now_boot_ns: u64) -> Response {
        let h = &ev.k.hdr;
        {
            use vigil_bpf::abi::kill_flags as kf;
            let kernel = |outcome, reason: Option<&str>| Response {
                outcome,
                how: "kernel",
                latency_ns: 0,
                reason: reason.map(str::to_string),
            };
            if h.flags & kf::KILLED != 0 {
                return kernel("killed", None);
            }
            if h.flags & kf::WOULD_KILL != 0 {
                return kernel("would-kill", None);
            }
            if h.flags & kf::KILL_REFUSED != 0 {
                return kernel("refused", Some("protected process"));
            }
            if h.flags & kf::KILL_FAILED != 0 {
                return kernel("failed", Some("bpf_send_signal failed"));
            }
        }
        if let Body::Exec { info, .. } = &ev.k.body {
            let f = info.exec_flags;
            let kernel = |outcome, reason: Option<&str>| Response {
                outcome,
                how: "kernel",
                latency_ns: 0,
                reason: reason.map(str::to_string),
            };
            if f & exec_flags::KILLED != 0 {
                return kernel("killed", None);
            }
            if f & exec_flags::WOULD_KILL != 0 {
                return kernel("would-kill", None);
            }
            if f & exec_flags::KILL_REFUSED != 0 {
                return kernel("refused", Some("protected process"));
            }
            if f & exec_flags::KILL_FAILED != 0 {
                return kernel("failed", Some("bpf_send_signal failed"));
            }
        }
        let latency_ns = now_boot_ns.saturating_sub(h.ts_ns);
        let user = |outcome, reason: Option<String>| Response {
            outcome,
            how: "userspace",
            latency_ns,
            reason,
        };
        if let Some(why) = self.protected(ev) {
            return user("refused", Some(why.into()));
        }
        if self.monitor {
            return user("would-kill", None);
        }
        match kill_pid(h.pid, h.start_ns) {
            Ok(()) => user("killed", None),
            Err(KillError::Gone) => user("gone", None),
            Err(KillError::Os(e)) => user("failed", Some(e)),
        }
    }
}

enum KillError {
    Gone,
    Os(String),
}

/// Start time of `pid` in ns since boot, from /proc/PID/stat (field 22,
/// clock ticks).
fn start_ns_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the comm may hold spaces and parentheses: fields follow the last ')'
    let rest = &stat[stat.rfind(')')? + 2..];
    let ticks: u64 = rest.split(' ').nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks.saturating_mul(1_000_000_000) / hz)
}

/// SIGKILL through a pidfd, so a pid reused after the process exited is
/// never signalled: the pidfd is opened first, then the start time checked.
fn kill_pid(pid: u32, start_ns: u64) -> Result<(), KillError> {
    // SAFETY: plain syscalls with integer arguments; the fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as i32;
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ESRCH) {
            Err(KillError::Gone)
        } else {
            Err(KillError::Os(format!("pidfd_open: {e}")))
        };
    }
    let r = (|| {
        if start_ns != 0 {
            match start_ns_of(pid) {
                // /proc's start time has clock-tick resolution
                Some(s) if s.abs_diff(start_ns) <= 20_000_000 => {}
                _ => return Err(KillError::Gone),
            }
        }
        // SAFETY: fd is a valid pidfd; null siginfo is allowed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                Err(KillError::Gone)
            } else {
                Err(KillError::Os(format!("pidfd_send_signal: {e}")))
            }
        }
    })();
    // SAFETY: fd was opened above and is not used after.
    unsafe { libc::close(fd) };
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(src: &str) -> RuleSet {
        let mut l = vigil_rules::Loader::new();
        l.add_source("t.yaml", src);
        let (set, r) = l.load();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        set
    }

    #[test]
    fn kernel_decidable_kill_rules_compile_to_prefixes_and_memfd() {
        let set = rules(
            "- rule: k1\n  action: kill\n  condition: event.action = exec and process.executable startswith '/dev/shm/'\n\
             - rule: k2\n  action: kill\n  condition: event.action = exec and (process.executable startswith '/tmp/a/' or process.executable startswith '/tmp/b/')\n\
             - rule: k3\n  action: kill\n  condition: event.action = exec and vigil.exec.memfd = true\n\
             - rule: k4\n  action: kill\n  condition: event.action = exec and vigil.exec.world_writable_dir = true\n\
             - rule: k5\n  action: kill\n  condition: event.action = open and (file.path = '/etc/shadow' or file.path startswith '/root/.ssh/')\n\
             - rule: k6\n  action: kill\n  condition: event.action = connect and destination.port in (4444, 31337)\n\
             - rule: k7\n  action: kill\n  condition: event.action = exec and process.executable = '/usr/bin/nc'\n\
             - rule: u1\n  action: kill\n  condition: event.action = exec and process.executable startswith '/tmp/' and user.id = 0\n\
             - rule: u2\n  action: kill\n  condition: event.action = open and file.path startswith '/etc/' and process.name = 'cat'\n\
             - rule: u3\n  action: kill\n  condition: event.action = connect and destination.port > 1024\n\
             - rule: u4\n  action: kill\n  condition: event.action = open and process.executable startswith '/tmp/'\n\
             - rule: u5\n  action: kill\n  condition: event.action = exec and file.path = '/etc/shadow'\n\
             - rule: u6\n  action: kill\n  condition: event.action = open and file.path contains 'shadow'\n\
             - rule: a1\n  condition: event.action = exec and process.executable startswith '/x/'\n",
        );
        let (k, ids) = kernel_plan_of(&set);
        assert_eq!(ids, ["k1", "k2", "k3", "k4", "k5", "k6", "k7"]);
        assert!(k.memfd && k.world_writable_dir);
        assert_eq!(
            k.prefixes,
            [
                b"/dev/shm/".to_vec(),
                b"/tmp/a/".to_vec(),
                b"/tmp/b/".to_vec()
            ]
        );
        assert_eq!(k.exec_exact, [b"/usr/bin/nc".to_vec()]);
        assert_eq!(k.open_exact, [b"/etc/shadow".to_vec()]);
        assert_eq!(k.open_prefixes, [b"/root/.ssh/".to_vec()]);
        assert_eq!(k.ports, [4444, 31337]);
        let none = rules("- rule: a\n  condition: event.action = exec\n");
        assert!(kernel_plan_of(&none).0.is_empty());
    }

    #[test]
    fn bad_action_is_an_error_with_line() {
        let mut l = vigil_rules::Loader::new();
        l.add_source(
            "t.yaml",
            "- rule: k\n  action: explode\n  condition: event.action = exec\n",
        );
        let (_, r) = l.load();
        assert_eq!(r.errors.len(), 1);
        let e = r.errors[0].to_string();
        assert!(e.contains("t.yaml:2") && e.contains("explode"), "{e}");
    }

    #[test]
    fn start_time_of_this_process_is_read() {
        let s = start_ns_of(std::process::id()).expect("own stat");
        assert!(s > 0);
    }
}
