//! Exports: OCI seccomp profiles and vigil rules. (The YAML whitelist is
//! [`crate::Whitelist`] serialised.)

use serde::Serialize;

use crate::doc::{ItemDoc, ProfileDoc};
use crate::error::{Error, Result};
use crate::generalise::unescape;
use crate::key::parse_key;
use crate::names::syscall_name;
use crate::observation::SyscallSet;
use crate::profile::bits;

/// Syscalls every exported seccomp profile allows, whatever was learned, and
/// why. runc (`libcontainer/standard_init_linux.go`) installs the filter in
/// `runc init` before it executes the container process: with
/// `noNewPrivileges` (the `runc spec` default) just before the `execve`, so
/// runc's own last steps and the Go runtime's threads run under the filter;
/// without it, earlier, before runc drops privileges (`finalizeNamespace`).
/// Then the dynamic loader and libc start the program, and at the end it
/// exits. The sensor may also have missed the first syscalls of a process
/// (the per-profile bitmap is enabled once the exec is seen).
pub const RUNTIME_SYSCALLS: &[(&str, &str)] = &[
    // runc init after the filter (noNewPrivileges): exec fifo, closing fds
    // (CVE-2024-21626 hardening), the exec itself (runc-dmz uses execveat).
    (
        "execve",
        "runc execs the container process under the filter",
    ),
    ("execveat", "runc-dmz / fexecve path"),
    (
        "openat",
        "runc opens the exec fifo; the loader opens libraries",
    ),
    ("write", "runc writes the exec fifo"),
    ("read", "the loader reads ELF headers"),
    ("close", "runc and the loader close fds"),
    ("close_range", "runc closes inherited fds before exec"),
    (
        "fcntl",
        "runc marks fds close-on-exec (close_range fallback)",
    ),
    (
        "getdents64",
        "runc lists /proc/self/fd (close_range fallback)",
    ),
    (
        "newfstatat",
        "runc LookPath/eaccess; the loader stats libraries",
    ),
    ("fstat", "glibc stats opened files"),
    (
        "fstatfs",
        "runc checks /proc/self/fd is procfs before closing fds",
    ),
    ("statfs", "runc/libc procfs checks by path"),
    ("faccessat2", "runc eaccess check of the executable"),
    ("faccessat", "faccessat2 fallback"),
    ("getpid", "runc reports its pid"),
    ("getppid", "runc checks its parent did not change"),
    ("kill", "runc kills itself if the parent changed"),
    // The Go runtime in runc init keeps running threads under the filter.
    ("futex", "Go runtime and glibc locking"),
    ("nanosleep", "Go runtime"),
    ("clock_nanosleep", "Go runtime / glibc sleep"),
    ("sched_yield", "Go runtime"),
    ("epoll_pwait", "Go runtime netpoller"),
    ("epoll_ctl", "Go runtime netpoller"),
    ("gettid", "Go runtime"),
    ("tgkill", "Go runtime preemption signals"),
    ("rt_sigaction", "Go runtime / glibc signal setup"),
    ("rt_sigprocmask", "Go runtime / glibc signal masks"),
    ("rt_sigreturn", "return from any signal handler"),
    ("sigaltstack", "Go runtime signal stacks"),
    ("madvise", "Go runtime memory"),
    ("clone", "Go runtime threads"),
    ("clone3", "Go runtime / glibc threads"),
    // Without noNewPrivileges the filter precedes finalizeNamespace.
    ("capget", "runc drops capabilities"),
    ("capset", "runc drops capabilities"),
    ("prctl", "runc sets keepcaps/bounding set/no_new_privs"),
    ("setgroups", "runc sets supplementary groups"),
    ("setresuid", "runc switches to the container user"),
    ("setresgid", "runc switches to the container group"),
    ("setuid", "Go's all-threads setuid in runc (runc 1.1)"),
    ("setgid", "Go's all-threads setgid in runc (runc 1.1)"),
    ("chdir", "runc enters the container's cwd"),
    // Dynamic loader and libc start-up.
    ("brk", "heap set-up"),
    ("arch_prctl", "TLS set-up (ARCH_SET_FS)"),
    ("mmap", "loader maps libraries"),
    ("mprotect", "loader applies RELRO"),
    ("munmap", "loader unmaps"),
    ("pread64", "loader reads program headers"),
    ("access", "loader checks ld.so.preload"),
    ("set_tid_address", "libc thread set-up"),
    ("set_robust_list", "libc thread set-up"),
    ("rseq", "glibc 2.35+ registers rseq"),
    ("prlimit64", "libc reads stack limits"),
    ("getrandom", "libc malloc/stack-protector seeding"),
    ("readlink", "/proc/self/exe lookups"),
    ("uname", "older libcs check the kernel version"),
    // Stopping.
    ("exit", "thread exit"),
    ("exit_group", "process exit"),
    (
        "restart_syscall",
        "restarting a syscall interrupted by a signal",
    ),
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Seccomp<'a> {
    default_action: &'a str,
    default_errno_ret: u32,
    architectures: [&'a str; 3],
    syscalls: Vec<SeccompRule<'a>>,
}

#[derive(Serialize)]
struct SeccompRule<'a> {
    names: Vec<&'a str>,
    action: &'a str,
}

/// The OCI `linux.seccomp` profile allowing `learned` plus
/// [`RUNTIME_SYSCALLS`]; everything else fails with `EPERM`. Learned numbers
/// without a name in the x86_64 table are left out (the format takes names).
pub fn seccomp_json(learned: &SyscallSet) -> Result<String> {
    let mut names: Vec<&str> = bits(learned).filter_map(syscall_name).collect();
    names.extend(RUNTIME_SYSCALLS.iter().map(|&(n, _)| n));
    names.sort_unstable();
    names.dedup();
    let s = Seccomp {
        default_action: "SCMP_ACT_ERRNO",
        default_errno_ret: 1,
        architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        syscalls: vec![SeccompRule {
            names,
            action: "SCMP_ACT_ALLOW",
        }],
    };
    serde_json::to_string_pretty(&s)
        .map(|mut j| {
            j.push('\n');
            j
        })
        .map_err(|e| Error::Export(e.to_string()))
}

/// One vigil rule.
#[derive(Debug, Serialize)]
struct Rule {
    rule: String,
    name: String,
    description: String,
    severity: &'static str,
    tags: Vec<&'static str>,
    for_events: Vec<&'static str>,
    condition: String,
    output: String,
}

/// A rule-language string literal.
fn lit(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('"');
    o
}

/// The item as rule text, if it can be one (valid UTF-8, no control chars).
fn text(item: &str) -> Option<String> {
    let b = unescape(item)?;
    let s = String::from_utf8(b).ok()?;
    (!s.chars().any(char::is_control)).then_some(s)
}

fn fnv(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| {
        (h ^ u32::from(x)).wrapping_mul(0x0100_0193)
    })
}

/// `not (field in (...) or field glob "..")` over paths, or "" for none.
fn path_allow(field: &str, items: &[ItemDoc], skipped: &mut Vec<String>) -> String {
    let mut exact = Vec::new();
    let mut globs = Vec::new();
    for it in items {
        match text(&it.item) {
            Some(t) if t.contains('*') => globs.push(format!("{field} glob {}", lit(&t))),
            Some(t) => exact.push(lit(&t)),
            None => skipped.push(it.item.clone()),
        }
    }
    let mut alts = Vec::new();
    if !exact.is_empty() {
        alts.push(format!("{field} in ({})", exact.join(", ")));
    }
    alts.extend(globs);
    if alts.is_empty() {
        String::new()
    } else {
        format!(" and not ({})", alts.join(" or "))
    }
}

/// vigil rules alerting on behaviour outside `doc`'s baseline.
pub fn rules_yaml(key: &[u8], doc: &ProfileDoc) -> String {
    let parts = parse_key(key);
    let exe = parts
        .exe
        .as_deref()
        .and_then(|e| String::from_utf8(e.to_vec()).ok());
    let mut sel = Vec::new();
    let mut spawn_sel = Vec::new();
    let mut slug = String::new();
    let mut notes = Vec::new();
    if let Some((what, v)) = &parts.container {
        let v = String::from_utf8_lossy(v).into_owned();
        let c = match *what {
            "image" => format!("container.image.name = {}", lit(&v)),
            "id" => format!("container.id = {}", lit(&v)),
            _ => format!("vigil.cgroup.path glob {}", lit(&v)),
        };
        sel.push(c.clone());
        spawn_sel.push(c);
        slug.push_str(&v);
        slug.push('_');
    }
    if let Some(e) = &exe {
        sel.push(format!("process.executable = {}", lit(e)));
        spawn_sel.push(format!("process.parent.executable = {}", lit(e)));
        slug.push_str(e.rsplit('/').next().unwrap_or(e));
    } else if parts.exe.is_some() {
        notes.push("the executable path is not UTF-8: rules cannot name it".to_string());
    }
    let slug: String = slug
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    let id = |kind: &str| format!("baseline_{slug}_{:08x}_{kind}", fnv(key));
    let who = doc.profile.clone();
    let mut rules = Vec::new();
    let mut skipped = Vec::new();
    let mut push = |kind: &str,
                    cat: &'static str,
                    action: &str,
                    sel: &[String],
                    allow: String,
                    what: &str,
                    out: &str| {
        if sel.is_empty() {
            return;
        }
        rules.push(Rule {
            rule: id(kind),
            name: format!("{what} outside the learned baseline of {who}"),
            description: format!(
                "Generated by `vigil baseline export --format rules` from profile {who}: alerts on any {action} the profile did not do while learning."
            ),
            severity: "medium",
            tags: vec!["vigil.baseline"],
            for_events: vec![cat],
            condition: format!("{} and event.action = {}{allow}", sel.join(" and "), lit(action)),
            output: out.to_string(),
        });
    };
    push(
        "exec",
        "process",
        "exec",
        &spawn_sel,
        path_allow("process.executable", &doc.spawn, &mut skipped),
        "Process",
        "%process.parent.executable spawned %process.executable outside its baseline",
    );
    push(
        "open",
        "file",
        "open",
        &sel,
        path_allow("file.path", &doc.file, &mut skipped),
        "File open",
        "%process.executable opened %file.path outside its baseline",
    );
    // Connections: `tcp/1.2.3.4:443`, `udp/[::1]:53`.
    let mut alts = Vec::new();
    for it in &doc.connect {
        let addr = it.item.split_once('/').map(|x| x.1).unwrap_or("");
        match addr.parse::<std::net::SocketAddr>() {
            Ok(a) => alts.push(format!(
                "(destination.ip = {} and destination.port = {})",
                lit(&a.ip().to_string()),
                a.port()
            )),
            Err(_) => skipped.push(it.item.clone()),
        }
    }
    let allow = if alts.is_empty() {
        String::new()
    } else {
        format!(" and not ({})", alts.join(" or "))
    };
    push(
        "connect",
        "network",
        "connect",
        &sel,
        allow,
        "Connection",
        "%process.executable connected to %destination.ip:%destination.port outside its baseline",
    );
    let ports = |items: &[ItemDoc], skipped: &mut Vec<String>| -> Vec<String> {
        let mut v = Vec::new();
        for it in items {
            let p = it.item.split_once('/').map(|x| x.1).unwrap_or("");
            let (port, peer) = match p.split_once(" from ") {
                Some((a, b)) => (a, Some(b)),
                None => (p, None),
            };
            match (port.parse::<u16>(), peer) {
                (Ok(n), None) => v.push(format!("destination.port = {n}")),
                (Ok(n), Some(ip)) => v.push(format!(
                    "(destination.port = {n} and source.ip = {})",
                    lit(ip)
                )),
                _ => skipped.push(it.item.clone()),
            }
        }
        v
    };
    let listen: Vec<String> = ports(&doc.listen, &mut skipped)
        .into_iter()
        .map(|s| s.replace("destination.port", "server.port"))
        .collect();
    let allow = if listen.is_empty() {
        String::new()
    } else {
        format!(" and not ({})", listen.join(" or "))
    };
    push(
        "listen",
        "network",
        "listen",
        &sel,
        allow,
        "Listening port",
        "%process.executable listens on %server.port outside its baseline",
    );
    let accept = ports(&doc.accept, &mut skipped);
    let allow = if accept.is_empty() {
        String::new()
    } else {
        format!(" and not ({})", accept.join(" or "))
    };
    push(
        "accept",
        "network",
        "accept",
        &sel,
        allow,
        "Inbound connection",
        "%process.executable accepted a connection on %destination.port outside its baseline",
    );
    let caps: Vec<String> = doc.capability.iter().map(|c| lit(&c.item)).collect();
    let allow = if caps.is_empty() {
        String::new()
    } else {
        format!(" and not vigil.capability.name in ({})", caps.join(", "))
    };
    push(
        "capable",
        "iam",
        "capable",
        &sel,
        allow,
        "Capability use",
        "%process.executable used %vigil.capability.name outside its baseline",
    );
    let mut head = format!(
        "# vigil rules generated from the baseline of {who}.\n\
         # Each rule alerts on one kind of behaviour the profile did not show while learning.\n\
         # `glob`: `*` matches any characters within one path segment.\n"
    );
    if !doc.uid.is_empty() {
        head.push_str(&format!(
            "# Not expressed as rules: uid transitions ({}); use the learner's monitoring mode.\n",
            doc.uid
                .iter()
                .map(|u| u.item.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !doc.syscalls.is_empty() {
        head.push_str("# Not expressed as rules: syscalls; use `--format seccomp`.\n");
    }
    for n in notes {
        head.push_str(&format!("# Note: {n}.\n"));
    }
    for s in skipped {
        head.push_str(&format!(
            "# Left out (not expressible as a rule literal): {s}\n"
        ));
    }
    if rules.is_empty() {
        head.push_str("[]\n");
        return head;
    }
    head + &serde_norway::to_string(&rules).unwrap_or_default()
}
