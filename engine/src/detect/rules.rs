//! Rules in the engine: loading the configured rule sources, the rule
//! engine's view of an [`Event`] (its [`Fields`] implementation, by the same
//! ECS names the JSON output writes), and alert records.

use crate::config::Config;
use crate::ecs;
use crate::enrich::{Event, basename};
use std::borrow::Cow;
use vigil_bpf::abi::{self, kind};
use vigil_bpf::decode::Body;
use vigil_rules::{Field, Fields, Loader, Report, Rule, RuleSet, Value};

/// Loads the rules the configuration names (built-ins unless disabled, then
/// every file or folder in `rules.paths`, later ones overriding earlier ids).
pub fn load_rules(cfg: &Config) -> (RuleSet, Report) {
    let mut l = Loader::new();
    l.set_min_level(Some(cfg.rules.min_level()));
    if cfg.rules.builtin {
        l.add_builtin();
    }
    for p in &cfg.rules.paths {
        l.add_rules_arg(p);
    }
    l.load()
}

/// `N below min_level (low 3, info 2)`, or nothing.
pub fn below_level_summary(r: &Report) -> Option<String> {
    use std::collections::BTreeMap;
    if r.below_level.is_empty() {
        return None;
    }
    let mut by: BTreeMap<vigil_rules::Severity, usize> = BTreeMap::new();
    for b in &r.below_level {
        *by.entry(b.level).or_default() += 1;
    }
    let parts: Vec<String> = by
        .iter()
        .rev()
        .map(|(l, n)| format!("{} {n}", l.as_str()))
        .collect();
    Some(format!(
        "{} rules below their minimum level not loaded ({})",
        r.below_level.len(),
        parts.join(", ")
    ))
}

/// One line per error, for stderr.
pub fn render_errors(r: &Report) -> String {
    let mut s = String::new();
    for e in &r.errors {
        s.push_str(&format!("vigil: {e}\n"));
    }
    terminal_safe(&s).into_owned()
}

/// Report text with every control character but the line feeds between
/// lines escaped (`\u{1b}`): rule ids, names, skip reasons and errors
/// quote rule files, and a hostile file must not drive the terminal.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return s.into();
    }
    s.split('\n')
        .map(vigil_rules::printable)
        .collect::<Vec<_>>()
        .join("\n")
        .into()
}

/// The report `vigil rules check` prints.
pub fn check_report(set: &RuleSet, r: &Report, verbose: bool, took: std::time::Duration) -> String {
    use std::collections::BTreeMap;
    let mut s = String::new();
    for e in &r.errors {
        s.push_str(&format!("error: {e}\n"));
    }
    s.push_str(&format!(
        "{} files: {} rules loaded ({} vigil, {} Sigma, {} Sigma correlations), {} disabled, {} below min_level, {} Sigma rules skipped, {} errors ({:.0} ms)\n",
        r.files,
        set.len() + set.correlations().len(),
        r.vigil_rules,
        r.sigma_rules,
        r.correlations,
        r.disabled,
        r.below_level.len(),
        r.skipped.len(),
        r.errors.len(),
        took.as_secs_f64() * 1e3
    ));
    if let Some(b) = below_level_summary(r) {
        s.push_str(&format!("{b}\n"));
    }
    if verbose {
        for b in &r.below_level {
            s.push_str(&format!(
                "below level: {}: {}: {} < {}\n",
                b.file,
                b.rule,
                b.level.as_str(),
                b.min_level.as_str()
            ));
        }
    }
    if !r.sigma_by_category.is_empty() {
        let parts: Vec<String> = r
            .sigma_by_category
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        s.push_str(&format!(
            "Sigma loaded by logsource: {}\n",
            parts.join(", ")
        ));
    }
    let mut by: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for k in &r.skipped {
        *by.entry((k.class.as_str(), k.reason.as_str())).or_default() += 1;
    }
    if !by.is_empty() {
        s.push_str("skipped, by reason:\n");
        let mut rows: Vec<_> = by.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for ((class, reason), n) in rows {
            s.push_str(&format!("  {n:>4}  {class}: {reason}\n"));
        }
    }
    if verbose {
        for k in &r.skipped {
            s.push_str(&format!(
                "skip: {}: {}: {}: {}\n",
                k.file, k.rule, k.class, k.reason
            ));
        }
    }
    let (preds, fields) = set.stats();
    let scans: Vec<String> = fields.iter().map(|(f, n)| format!("{f} {n}")).collect();
    s.push_str(&format!(
        "compiled: {preds} distinct predicates; one regex scan per field ({})\n",
        if scans.is_empty() {
            "none".to_string()
        } else {
            scans.join(", ")
        }
    ));
    let all = &set.interest().all_opens_rules;
    if !all.is_empty() {
        s.push_str(&format!(
            "note: {} rules test files without a path prefix, so every open leaves the kernel{}\n",
            all.len(),
            if verbose {
                format!(": {}", all.join(", "))
            } else {
                " (-v lists them)".into()
            }
        ));
    }
    terminal_safe(&s).into_owned()
}

fn s(b: &[u8]) -> Option<Value<'_>> {
    Some(Value::Str(Cow::Borrowed(b)))
}

fn cow(c: Cow<'static, str>) -> Option<Value<'static>> {
    Some(Value::Str(match c {
        Cow::Borrowed(b) => Cow::Borrowed(b.as_bytes()),
        Cow::Owned(o) => Cow::Owned(o.into_bytes()),
    }))
}

fn owned(v: Vec<u8>) -> Option<Value<'static>> {
    Some(Value::Str(Cow::Owned(v)))
}

fn joined<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Option<Value<'static>> {
    let mut v = Vec::new();
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            v.push(b'|');
        }
        v.extend_from_slice(x.as_ref().as_bytes());
    }
    owned(v)
}

/// The socket addresses of a network event: (source, destination).
type Ends = (
    Option<(std::net::IpAddr, u16)>,
    Option<(std::net::IpAddr, u16)>,
);

fn ends(ev: &Event) -> Ends {
    let h = &ev.k.hdr;
    match &ev.k.body {
        Body::Sock { info, .. } | Body::Dns { info, .. } if h.kind != kind::LISTEN => {
            let local = crate::event::ip(info.family, &info.laddr).map(|a| (a, info.lport));
            let remote = crate::event::ip(info.family, &info.raddr).map(|a| (a, info.rport));
            let bound = |e: Option<(std::net::IpAddr, u16)>| {
                e.filter(|(a, p)| *p != 0 || !a.is_unspecified())
            };
            if h.kind == kind::ACCEPT {
                (bound(remote), bound(local))
            } else {
                (bound(local), bound(remote))
            }
        }
        Body::IoUring { info, .. } if info.what == vigil_bpf::abi::uring::CONNECT => (
            None,
            crate::event::ip(info.family, &info.raddr).map(|a| (a, info.rport)),
        ),
        Body::TcpState(t) => (
            crate::event::ip(t.family, &t.saddr).map(|a| (a, t.sport)),
            crate::event::ip(t.family, &t.daddr).map(|a| (a, t.dport)),
        ),
        _ => (None, None),
    }
}

fn ev_domain(ev: &Event) -> Option<Value<'_>> {
    ev.domain.as_ref().and_then(|d| s(d.as_bytes()))
}

const WRITE_FLAGS: u32 = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u32;

/// The `vigil.env.*` fields of one variable each (`vigil.env.LD_PRELOAD`,
/// ...): one list, as a pattern, for the dispatch in `Fields::field` and the
/// lookup in `exec_field`.
macro_rules! env_var_field {
    () => {
        Field::EnvLdPreload
            | Field::EnvLdLibraryPath
            | Field::EnvLdAudit
            | Field::EnvHistfile
            | Field::EnvHistcontrol
            | Field::EnvHistsize
            | Field::EnvHistfilesize
            | Field::EnvHistignore
            | Field::EnvPromptCommand
            | Field::EnvBashEnv
            | Field::EnvEnv
            | Field::EnvPythonpath
            | Field::EnvPythonstartup
            | Field::EnvPythonhome
            | Field::EnvPerl5lib
            | Field::EnvPerl5opt
            | Field::EnvRubyopt
            | Field::EnvNodeOptions
    };
}

impl Fields for Event {
    fn category(&self) -> &str {
        ecs::classify_event(self).0
    }

    fn field(&self, f: Field) -> Option<Value<'_>> {
        match f {
            Field::EventAction
            | Field::EventCategory
            | Field::EventType
            | Field::EventOutcome
            | Field::ErrorCode
            | Field::HostHostname => event_field(self, f),
            Field::ProcessPid
            | Field::ProcessName
            | Field::ProcessExecutable
            | Field::ProcessCommandLine
            | Field::ProcessArgsCount
            | Field::ProcessWorkingDirectory
            | Field::Arg0
            | Field::Arg1
            | Field::Arg2
            | Field::Arg3
            | Field::Arg4
            | Field::Arg5
            | Field::Arg6
            | Field::Arg7
            | Field::Arg8
            | Field::Arg9
            | Field::ProcessHashSha256
            | Field::ProcessParentHashSha256
            | Field::HashKnownBad
            | Field::ProcessParentPid
            | Field::ProcessParentName
            | Field::ProcessParentExecutable
            | Field::ProcessParentCommandLine
            | Field::AncestorsExecutable
            | Field::ProcessExitCode
            | Field::UserId
            | Field::UserName
            | Field::UserEffectiveId
            | Field::UserEffectiveName
            | Field::GroupId
            | Field::GroupName
            | Field::ContainerId
            | Field::ContainerRuntime
            | Field::ContainerName
            | Field::ContainerImage => process_field(self, f),
            Field::Sensor
            | Field::Compat
            | Field::SyscallName
            | Field::SyscallNr
            | Field::SyscallArg0
            | Field::SyscallArg1
            | Field::SyscallArg2
            | Field::SyslogAction
            | Field::NsPidOfProcess
            | Field::Auid
            | Field::NsPid
            | Field::NsMnt
            | Field::NsNet
            | Field::HostPidNs
            | Field::CgroupId
            | Field::CgroupPath
            | Field::AfterLoss => record_field(self, f),
            Field::ExecReplacedExecutable
            | Field::ExecReplacedCommandLine
            | Field::ExecFilename
            | Field::ExecMemfd
            | Field::ExecWorldWritableDir
            | Field::ExecUnlinked
            | Field::ExecStdin
            | Field::ExecStdout
            | Field::ExecSetuid
            | Field::ExecSetgid
            | Field::EnvTruncated
            | Field::ProcessEnvVars
            | env_var_field!()
            | Field::ChildNewNamespaces => exec_field(self, f),
            Field::FilePath
            | Field::FileName
            | Field::FileChangeSource
            | Field::FileChangeTarget
            | Field::FileChangeMode
            | Field::FileChangeSetid
            | Field::FileChangeTimes
            | Field::FileChangeMtime
            | Field::FileChangeUid
            | Field::OpenFlags
            | Field::OpenWrite
            | Field::FileWritten
            | Field::FileOverwrites
            | Field::OpenCreated => file_field(self, f),
            Field::SourceIp
            | Field::SourcePort
            | Field::DestinationIp
            | Field::DestinationPort
            | Field::ServerIp
            | Field::ServerPort
            | Field::NetworkTransport
            | Field::NetworkType
            | Field::NetworkDirection
            | Field::UnixPath
            | Field::TcpNewState => network_field(self, f),
            Field::CapabilityName
            | Field::CapabilityId
            | Field::SetidSyscall
            | Field::SetidToRoot
            | Field::PtraceRequest
            | Field::PtraceTargetPid
            | Field::PtraceTargetExecutable
            | Field::BpfCommand
            | Field::BpfName
            | Field::ModuleSyscall
            | Field::ModuleName
            | Field::MemfdName
            | Field::MountSource
            | Field::MountTarget
            | Field::MountFstype
            | Field::UmountTarget
            | Field::NamespaceFlags
            | Field::NamespaceTarget
            | Field::ReadlineLine => kernel_field(self, f),
            Field::DestinationDomain
            | Field::DnsType
            | Field::DnsQuestionName
            | Field::DnsQuestionType
            | Field::DnsResponseCode
            | Field::DnsDistinctNames
            | Field::DnsRandomNames => dns_field(self, f),
            Field::TargetsAgent
            | Field::EscapeType
            | Field::EscapeSourceId
            | Field::EscapeSourceName
            | Field::EscapeTargetType
            | Field::EscapeTargetId
            | Field::EscapeTargetName
            | Field::UserNsId
            | Field::UserNsName
            | Field::SignalNumber
            | Field::SignalTargetTgid
            | Field::SignalTargetExecutable
            | Field::SignalTargetName
            | Field::SignalName => target_field(self, f),
            _ => None,
        }
    }
}

/// The event's classification and outcome.
fn event_field(ev: &Event, f: Field) -> Option<Value<'_>> {
    let h = &ev.k.hdr;
    match f {
        Field::EventAction => s(ecs::classify_event(ev).2.as_bytes()),
        Field::EventCategory => s(ecs::classify_event(ev).0.as_bytes()),
        Field::EventType => s(ecs::classify_event(ev).1.as_bytes()),
        Field::EventOutcome => {
            let r = ecs::syscall_ret(ev)?;
            s(if ecs::succeeded(h.kind, r) {
                b"success"
            } else {
                b"failure"
            })
        }
        Field::ErrorCode => {
            let r = ecs::syscall_ret(ev).filter(|r| *r < 0)?;
            cow(ecs::errno_str(r))
        }
        Field::HostHostname => None,
        _ => None,
    }
}

/// The process, its parent and ancestors, its users, groups and container.
fn process_field(ev: &Event, f: Field) -> Option<Value<'_>> {
    let h = &ev.k.hdr;
    let int = |n: i64| Some(Value::Int(n));
    let p = ev.process.as_deref();
    let parent = ev.ancestors.first();
    match f {
        Field::ProcessPid => int(h.pid.into()),
        Field::ProcessName => s(ev.k.comm()),
        Field::ProcessExecutable => p.filter(|p| !p.exe.is_empty()).and_then(|p| s(&p.exe)),
        Field::ProcessCommandLine => p
            .filter(|p| !p.cmdline.is_empty())
            .and_then(|p| s(&p.cmdline)),
        Field::ProcessArgsCount => p.and_then(|p| int(p.args.len() as i64)),
        Field::ProcessWorkingDirectory => p.filter(|p| !p.cwd.is_empty()).and_then(|p| s(&p.cwd)),
        Field::Arg0
        | Field::Arg1
        | Field::Arg2
        | Field::Arg3
        | Field::Arg4
        | Field::Arg5
        | Field::Arg6
        | Field::Arg7
        | Field::Arg8
        | Field::Arg9 => {
            let i = [
                Field::Arg0,
                Field::Arg1,
                Field::Arg2,
                Field::Arg3,
                Field::Arg4,
                Field::Arg5,
                Field::Arg6,
                Field::Arg7,
                Field::Arg8,
                Field::Arg9,
            ]
            .iter()
            .position(|x| *x == f)?;
            p.and_then(|p| p.args.get(i)).and_then(|a| s(a))
        }
        Field::ProcessHashSha256 => p
            .and_then(|p| p.hash.as_deref())
            .and_then(|x| s(x.as_bytes())),
        Field::ProcessParentHashSha256 => parent
            .and_then(|a| a.hash.as_deref())
            .and_then(|x| s(x.as_bytes())),
        Field::HashKnownBad => Some(Value::Bool(ev.hash_known_bad)),
        Field::ProcessParentPid => int(h.ppid.into()),
        Field::ProcessParentName => parent
            .filter(|a| !a.exe.is_empty())
            .and_then(|a| s(basename(&a.exe))),
        Field::ProcessParentExecutable => {
            parent.filter(|a| !a.exe.is_empty()).and_then(|a| s(&a.exe))
        }
        Field::ProcessParentCommandLine => parent
            .filter(|a| !a.cmdline.is_empty())
            .and_then(|a| s(&a.cmdline)),
        Field::AncestorsExecutable => {
            // Any ancestor: joined with NUL-free newlines so `contains`
            // and `glob` see each executable; equality tests use the
            // nearest. Rules use `contains`/`regex` on this field.
            // Joined once per chain (the enricher keeps it with the chain).
            let v = &ev.ancestors_executable;
            (!v.is_empty()).then(|| Value::Str(Cow::Borrowed(&v[..])))
        }
        Field::ProcessExitCode => match &ev.k.body {
            Body::Exit(x) => int(i64::from((x.status >> 8) & 0xff)),
            _ => None,
        },
        Field::UserId => int(h.uid.into()),
        Field::UserName => ev.user.as_deref().and_then(|u| s(u.as_bytes())),
        Field::UserEffectiveId => int(h.euid.into()),
        Field::UserEffectiveName => ev.euser.as_deref().and_then(|u| s(u.as_bytes())),
        Field::GroupId => int(h.gid.into()),
        Field::GroupName => ev.group.as_deref().and_then(|g| s(g.as_bytes())),
        Field::ContainerId => p
            .and_then(|p| p.container.as_deref())
            .and_then(|c| s(c.id.as_bytes())),
        Field::ContainerRuntime => p
            .and_then(|p| p.container.as_deref())
            .and_then(|c| s(c.runtime.as_bytes())),
        Field::ContainerName => ev
            .container_meta
            .as_deref()
            .and_then(|m| m.name.as_deref())
            .and_then(|n| s(n.as_bytes())),
        Field::ContainerImage => ev
            .container_meta
            .as_deref()
            .and_then(|m| m.image.as_deref())
            .and_then(|n| s(n.as_bytes())),
        _ => None,
    }
}

/// What the record header and sensor say: sensor, compat syscalls, namespaces, cgroup, loss.
fn record_field(ev: &Event, f: Field) -> Option<Value<'_>> {
    let h = &ev.k.hdr;
    let int = |n: i64| Some(Value::Int(n));
    match f {
        Field::Sensor if h.flags & abi::flags::COMPAT != 0 => s(b"compat"),
        Field::Sensor => {
            vigil_bpf::sensors::sensor_of_kind(h.kind).and_then(|x| s(x.name.as_bytes()))
        }
        Field::Compat => Some(Value::Bool(h.flags & abi::flags::COMPAT != 0)),
        Field::SyscallName => match &ev.k.body {
            Body::Compat { info, .. } => {
                vigil_bpf::compat::call(info.nr).and_then(|c| s(c.name.as_bytes()))
            }
            Body::Syscall(c) => abi::RARE_CALLS
                .iter()
                .find(|r| r.0 == c.nr)
                .and_then(|r| s(r.1.as_bytes())),
            _ => None,
        },
        Field::SyscallNr => match &ev.k.body {
            Body::Compat { info, .. } => int(info.nr.into()),
            Body::Syscall(c) => int(c.nr.into()),
            _ => None,
        },
        Field::SyscallArg0 | Field::SyscallArg1 | Field::SyscallArg2 => {
            let i = match f {
                Field::SyscallArg0 => 0,
                Field::SyscallArg1 => 1,
                _ => 2,
            };
            match &ev.k.body {
                // ia32 arguments are 32 bits wide
                Body::Compat { info, .. } => int((info.args[i] & 0xffff_ffff) as i64),
                // the register as the kernel saw it; the calls reported
                // take 32-bit ints (personality, syslog) or pointers
                Body::Syscall(c) => int(c.args[i] as i64),
                _ => None,
            }
        }
        Field::SyslogAction => match &ev.k.body {
            Body::Syscall(c) if c.nr == 103 => {
                s(crate::ecs::syslog_action_name(c.args[0] & 0xffff_ffff).as_bytes())
            }
            _ => None,
        },
        Field::NsPidOfProcess => int(h.ns_pid.into()),
        Field::Auid => int(h.auid.into()),
        Field::NsPid => int(h.pidns.into()),
        Field::NsMnt => int(h.mntns.into()),
        Field::NsNet => int(h.netns.into()),
        Field::HostPidNs => Some(Value::Bool(h.pidns == crate::enrich::host_pidns())),
        Field::CgroupId => int(h.cgroup_id as i64),
        Field::CgroupPath => ev.cgroup_path.as_deref().and_then(|c| s(c.as_bytes())),
        Field::AfterLoss => Some(Value::Bool(ev.k.after_loss())),
        _ => None,
    }
}

/// What an exec replaced, its flags and environment, and the namespaces a fork created.
fn exec_field(ev: &Event, f: Field) -> Option<Value<'_>> {
    match f {
        Field::ExecReplacedExecutable => ev
            .replaced
            .as_deref()
            .filter(|r| !r.exe.is_empty())
            .and_then(|r| s(&r.exe)),
        Field::ExecReplacedCommandLine => ev
            .replaced
            .as_deref()
            .filter(|r| !r.args.is_empty())
            .and_then(|r| s(&r.cmdline)),
        Field::ExecFilename => match &ev.k.body {
            Body::Exec { filename, .. } => s(filename),
            _ => None,
        },
        Field::ExecMemfd
        | Field::ExecWorldWritableDir
        | Field::ExecUnlinked
        | Field::ExecSetuid
        | Field::ExecSetgid
        | Field::EnvTruncated => match &ev.k.body {
            Body::Exec { info, .. } => {
                let bit = match f {
                    Field::ExecMemfd => abi::exec_flags::MEMFD,
                    Field::ExecWorldWritableDir => abi::exec_flags::WWDIR,
                    Field::ExecUnlinked => abi::exec_flags::UNLINKED,
                    Field::ExecSetuid => abi::exec_flags::SETUID,
                    Field::EnvTruncated => abi::exec_flags::ENV_TRUNC,
                    _ => abi::exec_flags::SETGID,
                };
                Some(Value::Bool(info.exec_flags & bit != 0))
            }
            _ => None,
        },
        Field::ExecStdin => match &ev.k.body {
            Body::Exec { info, .. } if info.exec_flags & abi::exec_flags::STDIN_PIPE != 0 => {
                s(b"pipe")
            }
            Body::Exec { info, .. } if info.exec_flags & abi::exec_flags::STDIN_INET != 0 => {
                s(b"network")
            }
            _ => None,
        },
        Field::ExecStdout => match &ev.k.body {
            Body::Exec { info, .. } if info.exec_flags & abi::exec_flags::STDOUT_INET != 0 => {
                s(b"network")
            }
            _ => None,
        },
        Field::ProcessEnvVars => match &ev.k.body {
            Body::Exec { env, .. } if !env.is_empty() => owned(env.join(&b'\n')),
            _ => None,
        },
        env_var_field!() => {
            let Body::Exec { env, .. } = &ev.k.body else {
                return None;
            };
            if env.is_empty() {
                return None;
            }
            let name = f.name().strip_prefix("vigil.env.")?.as_bytes();
            env.iter().find_map(|e| {
                e.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(b"="))
                    .map(|v| Value::Str(Cow::Borrowed(v)))
            })
        }
        Field::ChildNewNamespaces => match &ev.k.body {
            Body::Fork(x) => joined(ecs::ns_flag_names(x.ns_flags.into())),
            _ => None,
        },
        _ => None,
    }
}

/// Files: opened and changed paths, open flags, writes.
fn file_field(ev: &Event, f: Field) -> Option<Value<'_>> {
    let int = |n: i64| Some(Value::Int(n));
    match f {
        Field::FilePath => match &ev.k.body {
            Body::Open { .. } | Body::FChange { .. } | Body::IoUring { .. } => {
                ev.file_path.as_deref().and_then(s)
            }
            _ => None,
        },
        Field::FileName => match &ev.k.body {
            Body::Open { .. } | Body::FChange { .. } | Body::IoUring { .. } => {
                ev.file_path.as_deref().and_then(|p| s(basename(p)))
            }
            _ => None,
        },
        Field::FileChangeSource => match &ev.k.body {
            Body::FChange { info, .. } if !matches!(ecs::fchange_op(info.syscall).1, "symlink") => {
                ev.file_path2.as_deref().and_then(s)
            }
            _ => None,
        },
        Field::FileChangeTarget => match &ev.k.body {
            Body::FChange { info, .. } if ecs::fchange_op(info.syscall).1 == "symlink" => {
                ev.file_path2.as_deref().and_then(s)
            }
            _ => None,
        },
        Field::FileChangeMode => match &ev.k.body {
            Body::FChange { info, .. } if ecs::fchange_op(info.syscall).1 == "chmod" => {
                owned(format!("{:04o}", info.mode & 0o7777).into_bytes())
            }
            _ => None,
        },
        Field::FileChangeSetid => match &ev.k.body {
            Body::FChange { info, .. } if ecs::fchange_op(info.syscall).1 == "chmod" => {
                Some(Value::Bool(info.mode & 0o6000 != 0))
            }
            _ => None,
        },
        Field::FileChangeTimes => match &ev.k.body {
            Body::FChange { info, .. } if ecs::fchange_op(info.syscall).1 == "utimes" => {
                s(ecs::utime_times(info.mode).as_bytes())
            }
            _ => None,
        },
        Field::FileChangeMtime => match &ev.k.body {
            Body::FChange { info, .. }
                if ecs::fchange_op(info.syscall).1 == "utimes"
                    && info.mode & abi::utime::MTIME_SET != 0 =>
            {
                int(info.length as i64)
            }
            _ => None,
        },
        Field::FileChangeUid => match &ev.k.body {
            Body::FChange { info, .. } if ecs::fchange_op(info.syscall).1 == "chown" => {
                int(i64::from(info.uid as i32))
            }
            _ => None,
        },
        Field::OpenFlags => match &ev.k.body {
            Body::Open { info, .. } => joined(ecs::open_flag_names(info.flags)),
            _ => None,
        },
        Field::OpenWrite => match &ev.k.body {
            Body::Open { info, .. } => Some(Value::Bool(info.flags & WRITE_FLAGS != 0)),
            _ => None,
        },
        Field::FileWritten => ecs::file_written(ev).map(Value::Bool),
        Field::FileOverwrites if ev.overwrites > 0 => int(ev.overwrites.into()),
        Field::FileOverwrites => None,
        Field::OpenCreated => match &ev.k.body {
            Body::Open { info, .. } if info.ret >= 0 => {
                Some(Value::Bool(info.flags & abi::OPEN_CREATED != 0))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Network: socket ends, transport, direction, unix paths, TCP states.
fn network_field(ev: &Event, f: Field) -> Option<Value<'_>> {
    let h = &ev.k.hdr;
    let int = |n: i64| Some(Value::Int(n));
    match f {
        Field::SourceIp => ends(ev).0.map(|e| Value::Ip(e.0)),
        Field::SourcePort => ends(ev).0.and_then(|e| int(e.1.into())),
        Field::DestinationIp => ends(ev).1.map(|e| Value::Ip(e.0)),
        Field::DestinationPort => ends(ev).1.and_then(|e| int(e.1.into())),
        Field::ServerIp | Field::ServerPort => match &ev.k.body {
            Body::Sock { info, .. } if h.kind == kind::LISTEN => {
                let a = crate::event::ip(info.family, &info.laddr)?;
                if f == Field::ServerIp {
                    Some(Value::Ip(a))
                } else {
                    int(info.lport.into())
                }
            }
            _ => None,
        },
        Field::NetworkTransport => {
            let proto = match &ev.k.body {
                Body::Sock { info, .. } | Body::Dns { info, .. } => i32::from(info.protocol),
                Body::TcpState(_) => libc::IPPROTO_TCP,
                _ => return None,
            };
            match proto {
                libc::IPPROTO_TCP => s(b"tcp"),
                libc::IPPROTO_UDP => s(b"udp"),
                _ => None,
            }
        }
        Field::NetworkType => {
            let fam = match &ev.k.body {
                Body::Sock { info, .. } | Body::Dns { info, .. } => info.family,
                Body::TcpState(t) => t.family,
                _ => return None,
            };
            match i32::from(fam) {
                libc::AF_INET => s(b"ipv4"),
                libc::AF_INET6 => s(b"ipv6"),
                libc::AF_UNIX => s(b"unix"),
                _ => None,
            }
        }
        Field::NetworkDirection => match (h.kind, &ev.k.body) {
            (kind::DNS, Body::Dns { info, .. }) if crate::event::dns_is_answer(info) => {
                s(b"ingress")
            }
            (kind::CONNECT | kind::UDP_SEND | kind::DNS, _) => s(b"egress"),
            (kind::ACCEPT, _) => s(b"ingress"),
            (kind::LISTEN | kind::TCP_STATE, _) => s(b"unknown"),
            _ => None,
        },
        Field::UnixPath => match &ev.k.body {
            Body::Sock { unix_path, .. } if !unix_path.is_empty() => s(unix_path),
            _ => None,
        },
        Field::TcpNewState => match &ev.k.body {
            Body::TcpState(t) => s(ecs::tcp_state(t.newstate).as_bytes()),
            _ => None,
        },
        _ => None,
    }
}

/// Kernel surface: capabilities, set*id, ptrace, bpf, modules, memfd, mounts, namespaces, readline.
fn kernel_field(ev: &Event, f: Field) -> Option<Value<'_>> {
    let h = &ev.k.hdr;
    let int = |n: i64| Some(Value::Int(n));
    match f {
        Field::CapabilityName => match &ev.k.body {
            Body::Capable(c) => cow(ecs::cap_name(c.cap)),
            _ => None,
        },
        Field::CapabilityId => match &ev.k.body {
            Body::Capable(c) => int(c.cap.into()),
            _ => None,
        },
        Field::SetidSyscall => match &ev.k.body {
            Body::SetId(x) => s(ecs::setid_name(x.syscall).as_bytes()),
            _ => None,
        },
        Field::SetidToRoot => match &ev.k.body {
            Body::SetId(x) => Some(Value::Bool(x.id.contains(&0))),
            _ => None,
        },
        Field::PtraceRequest => match &ev.k.body {
            Body::Ptrace(x) => owned(ecs::ptrace_req(x.request).into_bytes()),
            _ => None,
        },
        Field::PtraceTargetPid => match &ev.k.body {
            Body::Ptrace(x) => int(x.target_pid.into()),
            _ => None,
        },
        Field::PtraceTargetExecutable => match &ev.k.body {
            Body::Ptrace(_) => ev
                .target
                .as_deref()
                .filter(|t| !t.exe.is_empty())
                .and_then(|t| s(&t.exe)),
            _ => None,
        },
        Field::BpfCommand => match &ev.k.body {
            Body::Bpf { info, .. } => owned(ecs::bpf_cmd(info.cmd).into_bytes()),
            _ => None,
        },
        Field::BpfName => match &ev.k.body {
            Body::Bpf { name, .. } if !name.is_empty() => s(name),
            _ => None,
        },
        Field::ModuleSyscall => match &ev.k.body {
            Body::Module { info, .. } => s(match info.syscall {
                abi::sys::INIT_MODULE => b"init_module",
                abi::sys::FINIT_MODULE => b"finit_module",
                _ => b"delete_module",
            }),
            _ => None,
        },
        Field::ModuleName => match &ev.k.body {
            Body::Module { info, target, .. }
                if info.syscall != abi::sys::FINIT_MODULE && !target.is_empty() =>
            {
                s(target)
            }
            _ => None,
        },
        Field::MemfdName => match &ev.k.body {
            Body::Memfd { name, .. } => s(name),
            _ => None,
        },
        Field::MountSource => match &ev.k.body {
            Body::Mount { source, .. } => s(source),
            _ => None,
        },
        Field::MountTarget => match &ev.k.body {
            Body::Mount { .. } => ev.file_path.as_deref().and_then(s),
            _ => None,
        },
        Field::MountFstype => match &ev.k.body {
            Body::Mount { fstype, .. } => s(fstype),
            _ => None,
        },
        Field::UmountTarget => match &ev.k.body {
            Body::Umount { target, .. } => s(target),
            _ => None,
        },
        Field::NamespaceFlags => match &ev.k.body {
            Body::Ns(n) => joined(ecs::ns_flag_names(n.flags)),
            _ => None,
        },
        Field::NamespaceTarget => match &ev.k.body {
            Body::Ns(n) if h.kind == kind::SETNS => int(n.target_ns as i64),
            _ => None,
        },
        Field::ReadlineLine => match &ev.k.body {
            Body::Readline { line } => s(line),
            _ => None,
        },
        _ => None,
    }
}

/// DNS: the domain, message type, question and response code.
fn dns_field(ev: &Event, f: Field) -> Option<Value<'_>> {
    match f {
        Field::DestinationDomain => ev_domain(ev),
        Field::DnsType => match &ev.k.body {
            Body::Dns { info, .. } if crate::event::dns_is_answer(info) => s(b"answer"),
            Body::Dns { .. } => s(b"query"),
            _ => None,
        },
        Field::DnsQuestionName => {
            let q = ev.dns.as_ref()?.questions.first()?;
            s(q.name.as_bytes())
        }
        Field::DnsQuestionType => {
            let q = ev.dns.as_ref()?.questions.first()?;
            Some(Value::Str(
                crate::dns::type_name(q.qtype).into_bytes().into(),
            ))
        }
        Field::DnsDistinctNames if ev.dns_names.distinct > 0 => {
            Some(Value::Int(ev.dns_names.distinct.into()))
        }
        Field::DnsRandomNames if ev.dns_names.distinct > 0 => {
            Some(Value::Int(ev.dns_names.random.into()))
        }
        Field::DnsResponseCode => match ev.dns.as_ref() {
            Some(m) if m.response => Some(Value::Str(
                crate::dns::rcode_name(m.rcode).into_bytes().into(),
            )),
            _ => None,
        },
        _ => None,
    }
}

/// What an action targets: the agent, escapes, user namespaces, signals.
fn target_field(ev: &Event, f: Field) -> Option<Value<'_>> {
    let int = |n: i64| Some(Value::Int(n));
    match f {
        Field::TargetsAgent => Some(Value::Bool(targets_agent(ev))),
        Field::EscapeType => ev.escape.as_deref().and_then(|e| s(e.kind.as_bytes())),
        Field::EscapeSourceId => ev.escape.as_deref().and_then(|e| s(e.source_id.as_bytes())),
        Field::EscapeSourceName => ev
            .escape
            .as_deref()
            .and_then(|e| e.source_name.as_deref())
            .and_then(|n| s(n.as_bytes())),
        Field::EscapeTargetType => ev
            .escape
            .as_deref()
            .and_then(|e| s(e.target.type_name().as_bytes())),
        Field::EscapeTargetId => match ev.escape.as_deref().map(|e| &e.target) {
            Some(crate::lifecycle::Target::Container(id, _)) => s(id.as_bytes()),
            _ => None,
        },
        Field::EscapeTargetName => match ev.escape.as_deref().map(|e| &e.target) {
            Some(crate::lifecycle::Target::Container(id, name)) => {
                s(name.as_deref().unwrap_or(id).as_bytes())
            }
            Some(crate::lifecycle::Target::Host) => s(b"host"),
            Some(crate::lifecycle::Target::Process(pid)) => {
                owned(format!("pid {pid}").into_bytes())
            }
            Some(crate::lifecycle::Target::Unknown) => s(b"unknown"),
            None => None,
        },
        Field::UserNsId => ev
            .ns_user
            .as_ref()
            .and_then(|u| u.id)
            .and_then(|u| int(u.into())),
        Field::UserNsName => ev
            .ns_user
            .as_ref()
            .and_then(|u| u.name.as_deref())
            .and_then(|n| s(n.as_bytes())),
        Field::SignalNumber => match &ev.k.body {
            Body::Signal(g) => int(g.sig.into()),
            _ => None,
        },
        Field::SignalTargetTgid => match &ev.k.body {
            Body::Signal(g) => int(g.target_tgid.into()),
            _ => None,
        },
        Field::SignalTargetExecutable | Field::SignalTargetName => match &ev.k.body {
            Body::Signal(_) => {
                let t = ev.target.as_deref().filter(|t| !t.exe.is_empty())?;
                if f == Field::SignalTargetName {
                    s(basename(&t.exe))
                } else {
                    s(&t.exe)
                }
            }
            _ => None,
        },
        Field::SignalName => match &ev.k.body {
            Body::Signal(g) => s(ecs::signal_name(g.sig).as_bytes()),
            _ => None,
        },
        _ => None,
    }
}

/// The ECS fields syslog structured data and CEF extensions carry, in
/// order (`docs/outputs.md` maps them to CEF keys).
pub fn record_fields(ev: &Event) -> Vec<(&'static str, Vec<u8>)> {
    const F: &[Field] = &[
        Field::EventAction,
        Field::EventCategory,
        Field::EventOutcome,
        Field::ProcessCommandLine,
        Field::ProcessParentExecutable,
        Field::ProcessParentPid,
        Field::UserName,
        Field::UserId,
        Field::ContainerId,
        Field::FilePath,
        Field::FileName,
        Field::NetworkTransport,
        Field::SourceIp,
        Field::SourcePort,
        Field::DestinationIp,
        Field::DestinationPort,
    ];
    let mut out = Vec::with_capacity(F.len());
    for f in F {
        let v = match ev.field(*f) {
            Some(Value::Str(b)) => b.into_owned(),
            Some(Value::Int(n)) => n.to_string().into_bytes(),
            Some(Value::Bool(b)) => b.to_string().into_bytes(),
            Some(Value::Ip(ip)) => ip.to_string().into_bytes(),
            None => continue,
        };
        out.push((f.name(), v));
    }
    out
}

/// The agent's own pid and its parent's (its service manager), set by a
/// live run; 0 when unknown (replays).
static AGENT: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();

/// Records this process as the agent to protect.
pub fn protect_this_process() {
    // SAFETY: getppid has no preconditions.
    let ppid = unsafe { libc::getppid() } as u32;
    let _ = AGENT.set((std::process::id(), ppid));
}

fn targets_agent(ev: &Event) -> bool {
    let Some(&(me, parent)) = AGENT.get() else {
        return false;
    };
    let h = &ev.k.hdr;
    match &ev.k.body {
        // The sensor also reports signals between other processes; PID 1
        // and the parent are the service manager stopping vigil.
        Body::Signal(g) => g.target_tgid == me && h.pid != 1 && h.pid != parent,
        Body::Ptrace(p) => p.target_pid > 0 && p.target_pid as u32 == me,
        Body::Open { .. } => ev
            .file_path
            .as_deref()
            .is_some_and(|p| sensitive_proc_file(p, me)),
        // Detaching or replacing links and programs (vigil's are the ones
        // that matter; the call does not say whose).
        Body::Bpf { info, .. } => matches!(info.cmd, 9 | 29 | 34),
        _ => false,
    }
}

/// Whether `path` is one of the agent's /proc files that expose its memory
/// or reach through its descriptors or root. Process listers read the
/// public files (`ps`: `stat`, `status`, `cmdline`, `environ`; `top`:
/// `statm`; `lsof`: `maps` and the `fd/` listing; `find /` walks the
/// directories), which are not tampering; `mem`, `pagemap`, `auxv`,
/// `syscall` and an entry below `fd/`, `map_files/`, `root/` or `cwd/` are.
fn sensitive_proc_file(path: &[u8], me: u32) -> bool {
    const FILES: &[&[u8]] = &[b"mem", b"pagemap", b"auxv", b"syscall"];
    const THROUGH: &[&[u8]] = &[b"fd", b"map_files", b"root", b"cwd"];
    let prefix = format!("/proc/{me}/");
    let Some(rest) = path.strip_prefix(prefix.as_bytes()) else {
        return false;
    };
    let mut parts = rest.split(|&b| b == b'/');
    let mut first = parts.next().unwrap_or(b"");
    if first == b"task" {
        // /proc/PID/task/TID/<file>
        let _tid = parts.next();
        first = parts.next().unwrap_or(b"");
    }
    if FILES.contains(&first) {
        return true;
    }
    THROUGH.contains(&first) && parts.next().is_some_and(|p| !p.is_empty())
}

/// MITRE ATT&CK technique ids from Sigma-style tags (`attack.t1059.004`).
pub fn techniques(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter_map(|t| t.strip_prefix("attack."))
        .filter(|t| {
            t.len() >= 5
                && t.starts_with('t')
                && t[1..].chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .map(|t| t.to_ascii_uppercase())
        .collect()
}

/// An alert record: the event's ECS fields plus the rule's.
pub fn encode_alert(ev: &Event, hostname: &str, rule: &Rule) -> Vec<u8> {
    encode_alert_with(ev, hostname, rule, None, None)
}

/// An alert record with what a kill rule did (`vigil.response.*`) and the
/// capture around it (`vigil.capture.path`).
pub fn encode_alert_with(
    ev: &Event,
    hostname: &str,
    rule: &Rule,
    response: Option<&crate::detect::response::Response>,
    capture: Option<&str>,
) -> Vec<u8> {
    let message = rule.message(ev);
    ecs::encode_with(
        ev,
        hostname,
        "alert",
        |w| {
            w.u64("event.severity", rule.severity.score())
                .str("message", message.as_bytes())
                .str("rule.id", rule.id.as_bytes())
                .str("rule.name", rule.name.as_bytes())
                .str("rule.ruleset", rule.ruleset.as_str());
            if !rule.description.is_empty() {
                w.str("rule.description", rule.description.as_bytes());
            }
            if !rule.tags.is_empty() {
                w.strs("tags", rule.tags.iter());
            }
            let t = techniques(&rule.tags);
            if !t.is_empty() {
                w.str("threat.framework", "MITRE ATT&CK")
                    .strs("threat.technique.id", t.iter());
            }
        },
        |w| {
            if let Some(p) = capture {
                w.str("vigil.capture.path", p.as_bytes());
            }
            if let Some(r) = response {
                w.str("vigil.response.action", "kill")
                    .str("vigil.response.outcome", r.outcome)
                    .str("vigil.response.how", r.how)
                    .u64("vigil.response.latency_ns", r.latency_ns);
                if let Some(why) = &r.reason {
                    w.str("vigil.response.reason", why.as_bytes());
                }
            }
            w.str("vigil.severity", rule.severity.as_str());
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_table_agrees_with_the_encoder() {
        for a in ecs::FCHANGE_ACTIONS {
            assert!(vigil_rules::ACTIONS.contains(&(*a, "file")), "{a} missing");
        }
        for k in 0..=u16::from(u8::MAX) {
            let (c, _, a) = ecs::classify(k);
            if a == "unknown" || a == "file-change" || a == "syscall" {
                continue;
            }
            assert!(
                vigil_rules::ACTIONS.contains(&(a, c)),
                "kind {k}: ({a}, {c}) missing from vigil_rules::ACTIONS"
            );
        }
        for (a, c) in vigil_rules::ACTIONS {
            assert!(
                (0..=255u16).any(|k| ecs::classify(k).2 == *a && ecs::classify(k).0 == *c)
                    || (*c == "file" && ecs::FCHANGE_ACTIONS.contains(a))
                    || (*c == "process" && ecs::PROCESS_VM_ACTIONS.contains(a))
                    || ecs::RARE_CALL_CLASSES
                        .iter()
                        .any(|r| r.1 == *c && r.3 == *a)
                    || *a == "dns-answer"
                    || ecs::IOURING_ACTIONS.contains(&(*c, *a)),
                "vigil_rules::ACTIONS has ({a}, {c}), which no event kind produces"
            );
        }
    }

    #[test]
    fn sensitive_proc_files() {
        assert!(sensitive_proc_file(b"/proc/42/mem", 42));
        assert!(!sensitive_proc_file(b"/proc/42/environ", 42));
        assert!(!sensitive_proc_file(b"/proc/42/maps", 42));
        assert!(!sensitive_proc_file(b"/proc/42/fd", 42));
        assert!(!sensitive_proc_file(b"/proc/42/fd/", 42));
        assert!(!sensitive_proc_file(b"/proc/42/statm", 42));
        assert!(sensitive_proc_file(b"/proc/42/root/etc/shadow", 42));
        assert!(sensitive_proc_file(b"/proc/42/task/43/fd/3", 42));
        assert!(sensitive_proc_file(b"/proc/42/task/43/mem", 42));
        assert!(sensitive_proc_file(b"/proc/42/fd/3", 42));
        assert!(!sensitive_proc_file(b"/proc/42/status", 42));
        assert!(!sensitive_proc_file(b"/proc/42/stat", 42));
        assert!(!sensitive_proc_file(b"/proc/42/cmdline", 42));
        assert!(!sensitive_proc_file(b"/proc/421/mem", 42));
        assert!(!sensitive_proc_file(b"/proc/4/mem", 42));
    }

    #[test]
    fn technique_ids() {
        let t = techniques(&[
            "attack.execution".into(),
            "attack.t1059.004".into(),
            "attack.t1611".into(),
        ]);
        assert_eq!(t, vec!["T1059.004", "T1611"]);
    }
}
