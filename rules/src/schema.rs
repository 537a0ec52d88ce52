//! The fields rules can address: ECS names, exactly as the JSON output
//! writes them (`docs/events.md` documents each), with their type and the
//! event categories that carry them.

use std::borrow::Cow;
use std::net::IpAddr;

/// Event categories (ECS `event.category`) as a bit set.
pub mod cat {
    /// `process`: exec, fork, exit, ptrace, unshare, setns, readline.
    pub const PROCESS: u8 = 1;
    /// `file`: open, memfd-create.
    pub const FILE: u8 = 2;
    /// `network`: connect, accept, listen, tcp-state.
    pub const NETWORK: u8 = 4;
    /// `iam`: capable, setid, capset.
    pub const IAM: u8 = 8;
    /// `host`: bpf.
    pub const HOST: u8 = 16;
    /// `driver`: module.
    pub const DRIVER: u8 = 32;
    /// `configuration`: mount, umount.
    pub const CONFIGURATION: u8 = 64;
    /// Every category.
    pub const ALL: u8 = 127;

    /// Category names and bits.
    pub const NAMES: &[(&str, u8)] = &[
        ("process", PROCESS),
        ("file", FILE),
        ("network", NETWORK),
        ("iam", IAM),
        ("host", HOST),
        ("driver", DRIVER),
        ("configuration", CONFIGURATION),
    ];

    /// The bit of a category name.
    pub fn bit(name: &str) -> Option<u8> {
        // A match (by length, then bytes) rather than a walk of NAMES: the
        // rule engine asks once per event.
        Some(match name {
            "process" => PROCESS,
            "file" => FILE,
            "network" => NETWORK,
            "iam" => IAM,
            "host" => HOST,
            "driver" => DRIVER,
            "configuration" => CONFIGURATION,
            _ => return None,
        })
    }

    /// Names of the categories in a set.
    pub fn names(set: u8) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(_, b)| set & b != 0)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// The type of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Bytes (paths, command lines; need not be UTF-8).
    Str,
    /// Integer.
    Int,
    /// Boolean.
    Bool,
    /// IP address (string operators see its text form; `cidr` its value).
    Ip,
}

/// A field value as rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// Bytes.
    Str(Cow<'a, [u8]>),
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
    /// IP address.
    Ip(IpAddr),
}

macro_rules! fields {
    ($( $(#[$doc:meta])* $var:ident = $name:literal, $ty:ident, $cats:expr, $avail:literal; )*) => {
        /// A field rules can address. `Field::name` is its ECS name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Field {
            $( $(#[$doc])* $var, )*
        }

        impl Field {
            /// Every field.
            pub const ALL: &'static [Field] = &[$(Field::$var,)*];

            /// The ECS name (`process.executable`).
            pub fn name(self) -> &'static str {
                match self { $(Field::$var => $name,)* }
            }

            /// The value type.
            pub fn ty(self) -> Type {
                match self { $(Field::$var => Type::$ty,)* }
            }

            /// Categories whose events carry this field.
            pub fn categories(self) -> u8 {
                match self { $(Field::$var => $cats,)* }
            }

            /// Whether this build of vigil fills the field at all (a field
            /// named in Sigma's mapping that no sensor produces yet is not).
            pub fn available(self) -> bool {
                match self { $(Field::$var => $avail,)* }
            }
        }
    };
}

use cat::*;

fields! {
    /// `exec`, `open`, `connect`, ... (`docs/events.md`).
    EventAction = "event.action", Str, ALL, true;
    /// `process`, `file`, `network`, ...
    EventCategory = "event.category", Str, ALL, true;
    /// `start`, `end`, `access`, ...
    EventType = "event.type", Str, ALL, true;
    /// `success` or `failure`.
    EventOutcome = "event.outcome", Str, ALL, true;
    /// errno name of a failed call (`EPERM`).
    ErrorCode = "error.code", Str, ALL, true;
    /// Host name.
    HostHostname = "host.hostname", Str, ALL, true;
    /// Host pid.
    ProcessPid = "process.pid", Int, ALL, true;
    /// Task comm.
    ProcessName = "process.name", Str, ALL, true;
    /// Executable path.
    ProcessExecutable = "process.executable", Str, ALL, true;
    /// argv joined with spaces.
    ProcessCommandLine = "process.command_line", Str, ALL, true;
    /// argc.
    ProcessArgsCount = "process.args_count", Int, ALL, true;
    /// cwd at exec.
    ProcessWorkingDirectory = "process.working_directory", Str, ALL, true;
    /// Argument 0 of argv (`process.args.0`).
    Arg0 = "process.args.0", Str, ALL, true;
    /// Argument 1 of argv (`process.args.1`).
    Arg1 = "process.args.1", Str, ALL, true;
    /// Argument 2 of argv (`process.args.2`).
    Arg2 = "process.args.2", Str, ALL, true;
    /// Argument 3 of argv (`process.args.3`).
    Arg3 = "process.args.3", Str, ALL, true;
    /// Argument 4 of argv (`process.args.4`).
    Arg4 = "process.args.4", Str, ALL, true;
    /// Argument 5 of argv (`process.args.5`).
    Arg5 = "process.args.5", Str, ALL, true;
    /// Argument 6 of argv (`process.args.6`).
    Arg6 = "process.args.6", Str, ALL, true;
    /// Argument 7 of argv (`process.args.7`).
    Arg7 = "process.args.7", Str, ALL, true;
    /// Argument 8 of argv (`process.args.8`).
    Arg8 = "process.args.8", Str, ALL, true;
    /// Argument 9 of argv (`process.args.9`).
    Arg9 = "process.args.9", Str, ALL, true;
    /// Parent pid.
    ProcessParentPid = "process.parent.pid", Int, ALL, true;
    /// Parent executable's file name.
    ProcessParentName = "process.parent.name", Str, ALL, true;
    /// Parent executable.
    ProcessParentExecutable = "process.parent.executable", Str, ALL, true;
    /// Parent command line.
    ProcessParentCommandLine = "process.parent.command_line", Str, ALL, true;
    /// SHA-256 of the executable (lower-case hex; exec events and every
    /// later event of the process once hashed).
    ProcessHashSha256 = "process.hash.sha256", Str, ALL, true;
    /// SHA-256 of the parent's executable (lower-case hex), from the
    /// process table.
    ProcessParentHashSha256 = "process.parent.hash.sha256", Str, ALL, true;
    /// The executable's SHA-256 is on the known-bad hash list
    /// (`hash.known_bad_file`).
    HashKnownBad = "vigil.hash.known_bad", Bool, ALL, true;
    /// Executables of the parent chain (any of them matches), nearest first.
    AncestorsExecutable = "vigil.ancestors.executable", Str, ALL, true;
    /// Exit code.
    ProcessExitCode = "process.exit_code", Int, PROCESS, true;
    /// Real uid.
    UserId = "user.id", Int, ALL, true;
    /// Real user name.
    UserName = "user.name", Str, ALL, true;
    /// Effective uid.
    UserEffectiveId = "user.effective.id", Int, ALL, true;
    /// Effective user name.
    UserEffectiveName = "user.effective.name", Str, ALL, true;
    /// Real gid.
    GroupId = "group.id", Int, ALL, true;
    /// Group name.
    GroupName = "group.name", Str, ALL, true;
    /// Container id.
    ContainerId = "container.id", Str, ALL, true;
    /// Container runtime.
    ContainerRuntime = "container.runtime", Str, ALL, true;
    /// Container name (from the runtime's state: podman, docker).
    ContainerName = "container.name", Str, ALL, true;
    /// Container image (from the runtime's state: podman, docker).
    ContainerImage = "container.image.name", Str, ALL, true;
    /// Sensor name.
    Sensor = "vigil.sensor", Str, ALL, true;
    /// pid in the process's own pid namespace.
    NsPidOfProcess = "vigil.process.ns_pid", Int, ALL, true;
    /// Audit login uid.
    Auid = "vigil.process.auid", Int, ALL, true;
    /// pid namespace inode.
    NsPid = "vigil.ns.pid", Int, ALL, true;
    /// mnt namespace inode.
    NsMnt = "vigil.ns.mnt", Int, ALL, true;
    /// net namespace inode.
    NsNet = "vigil.ns.net", Int, ALL, true;
    /// Whether the process runs in the host's pid namespace.
    HostPidNs = "vigil.ns.host_pid", Bool, ALL, true;
    /// cgroup v2 id.
    CgroupId = "vigil.cgroup.id", Int, ALL, true;
    /// cgroup v2 path.
    CgroupPath = "vigil.cgroup.path", Str, ALL, true;
    /// The event touches vigil itself: a kill/stop signal to it (not from
    /// PID 1 or its parent), a ptrace of it, an open of its /proc
    /// directory (memory, environment), a detach of BPF links or programs.
    TargetsAgent = "vigil.targets_agent", Bool, ALL, true;
    /// A container escape the engine recognised in this event (`setns`,
    /// `proc-root-write`, `privileged-mount`): the process is a member of
    /// a container and the event reaches outside it.
    EscapeType = "vigil.escape.type", Str, ALL, true;
    /// Escape: id of the container the process belongs to (runtime id, or
    /// `pidns-<inode>` for a container without a runtime id).
    EscapeSourceId = "vigil.escape.source.container.id", Str, ALL, true;
    /// Escape: name of the container the process belongs to.
    EscapeSourceName = "vigil.escape.source.container.name", Str, ALL, true;
    /// Escape: what was reached: `host`, `container`, `process` (a
    /// namespace of a process outside any container) or `unknown`.
    EscapeTargetType = "vigil.escape.target.type", Str, ALL, true;
    /// Escape: id of the container reached (target type `container`).
    EscapeTargetId = "vigil.escape.target.container.id", Str, ALL, true;
    /// Escape: name of the container reached, or `host`.
    EscapeTargetName = "vigil.escape.target.container.name", Str, ALL, true;
    /// uid of the process inside its user namespace (only when that
    /// namespace maps uids: `user.id` is the host uid).
    UserNsId = "vigil.user.ns.id", Int, ALL, true;
    /// User name inside the container or user namespace (from its own
    /// `/etc/passwd`).
    UserNsName = "vigil.user.ns.name", Str, ALL, true;
    /// Signal number (signal events).
    SignalNumber = "vigil.signal.number", Int, PROCESS, true;
    /// Signal name (`SIGKILL`).
    SignalName = "vigil.signal.name", Str, PROCESS, true;
    /// Signal: the process signalled (host tgid).
    SignalTargetTgid = "vigil.signal.target_tgid", Int, PROCESS, true;
    /// Signal: the signalled process's executable.
    SignalTargetExecutable = "vigil.signal.target_executable", Str, PROCESS, true;
    /// Signal: the signalled process's executable file name.
    SignalTargetName = "vigil.signal.target_name", Str, PROCESS, true;
    /// Events were lost just before this one.
    AfterLoss = "vigil.after_loss", Bool, ALL, true;
    /// The name passed to execve.
    ExecFilename = "vigil.exec.filename", Str, PROCESS, true;
    /// The image is a memfd.
    ExecMemfd = "vigil.exec.memfd", Bool, PROCESS, true;
    /// The image's directory is world-writable.
    ExecWorldWritableDir = "vigil.exec.world_writable_dir", Bool, PROCESS, true;
    /// The image has no links.
    ExecUnlinked = "vigil.exec.unlinked", Bool, PROCESS, true;
    /// exec: what the new program's standard input is when it is a pipe
    /// (or FIFO), `pipe`, or a network (AF_INET/AF_INET6) socket,
    /// `network`; absent otherwise (a terminal, a file, /dev/null, a unix
    /// socket).
    ExecStdin = "vigil.exec.stdin", Str, PROCESS, true;
    /// exec: `network` when the new program's standard output is a network
    /// (AF_INET/AF_INET6) socket; absent otherwise.
    ExecStdout = "vigil.exec.stdout", Str, PROCESS, true;
    /// exec changed euid.
    ExecSetuid = "vigil.exec.setuid", Bool, PROCESS, true;
    /// exec changed egid.
    ExecSetgid = "vigil.exec.setgid", Bool, PROCESS, true;
    /// exec: the executable the process ran before this exec replaced it.
    ExecReplacedExecutable = "vigil.exec.replaced.executable", Str, PROCESS, true;
    /// exec: the command line the process ran before this exec replaced it.
    ExecReplacedCommandLine = "vigil.exec.replaced.command_line", Str, PROCESS, true;
    /// exec: the listed variables found in the new program's environment,
    /// `NAME=value`, one per line (`contains`/`regex` see each).
    ProcessEnvVars = "process.env_vars", Str, PROCESS, true;
    /// exec: the kernel's walk of the environment stopped at its step
    /// bound (later variables are unseen) or a kept variable was cut.
    EnvTruncated = "vigil.env.truncated", Bool, PROCESS, true;
    /// exec: the value of `LD_PRELOAD` in the new program's environment.
    EnvLdPreload = "vigil.env.LD_PRELOAD", Str, PROCESS, true;
    /// exec: the value of `LD_LIBRARY_PATH` in the new program's environment.
    EnvLdLibraryPath = "vigil.env.LD_LIBRARY_PATH", Str, PROCESS, true;
    /// exec: the value of `LD_AUDIT` in the new program's environment.
    EnvLdAudit = "vigil.env.LD_AUDIT", Str, PROCESS, true;
    /// exec: the value of `HISTFILE` in the new program's environment.
    EnvHistfile = "vigil.env.HISTFILE", Str, PROCESS, true;
    /// exec: the value of `HISTCONTROL` in the new program's environment.
    EnvHistcontrol = "vigil.env.HISTCONTROL", Str, PROCESS, true;
    /// exec: the value of `HISTSIZE` in the new program's environment.
    EnvHistsize = "vigil.env.HISTSIZE", Str, PROCESS, true;
    /// exec: the value of `HISTFILESIZE` in the new program's environment.
    EnvHistfilesize = "vigil.env.HISTFILESIZE", Str, PROCESS, true;
    /// exec: the value of `HISTIGNORE` in the new program's environment.
    EnvHistignore = "vigil.env.HISTIGNORE", Str, PROCESS, true;
    /// exec: the value of `PROMPT_COMMAND` in the new program's environment.
    EnvPromptCommand = "vigil.env.PROMPT_COMMAND", Str, PROCESS, true;
    /// exec: the value of `BASH_ENV` in the new program's environment.
    EnvBashEnv = "vigil.env.BASH_ENV", Str, PROCESS, true;
    /// exec: the value of `ENV` in the new program's environment.
    EnvEnv = "vigil.env.ENV", Str, PROCESS, true;
    /// exec: the value of `PYTHONPATH` in the new program's environment.
    EnvPythonpath = "vigil.env.PYTHONPATH", Str, PROCESS, true;
    /// exec: the value of `PYTHONSTARTUP` in the new program's environment.
    EnvPythonstartup = "vigil.env.PYTHONSTARTUP", Str, PROCESS, true;
    /// exec: the value of `PYTHONHOME` in the new program's environment.
    EnvPythonhome = "vigil.env.PYTHONHOME", Str, PROCESS, true;
    /// exec: the value of `PERL5LIB` in the new program's environment.
    EnvPerl5lib = "vigil.env.PERL5LIB", Str, PROCESS, true;
    /// exec: the value of `PERL5OPT` in the new program's environment.
    EnvPerl5opt = "vigil.env.PERL5OPT", Str, PROCESS, true;
    /// exec: the value of `RUBYOPT` in the new program's environment.
    EnvRubyopt = "vigil.env.RUBYOPT", Str, PROCESS, true;
    /// exec: the value of `NODE_OPTIONS` in the new program's environment.
    EnvNodeOptions = "vigil.env.NODE_OPTIONS", Str, PROCESS, true;
    /// Namespaces a fork child got anew (`mnt|pid`).
    ChildNewNamespaces = "vigil.child.new_namespaces", Str, PROCESS, true;
    /// File path.
    FilePath = "file.path", Str, FILE, true;
    /// File name.
    FileName = "file.name", Str, FILE, true;
    /// rename/link: the old name (the file is `file.path`, the new name).
    FileChangeSource = "vigil.file_change.source", Str, FILE, true;
    /// symlink: the link's target text.
    FileChangeTarget = "vigil.file_change.target", Str, FILE, true;
    /// chmod: the new mode in octal (`4755`).
    FileChangeMode = "vigil.file_change.mode", Str, FILE, true;
    /// chmod: the new mode has the setuid or setgid bit.
    FileChangeSetid = "vigil.file_change.setid", Bool, FILE, true;
    /// utimes: `set` (the call passed a time: timestomping) or `now`.
    FileChangeTimes = "vigil.file_change.times", Str, FILE, true;
    /// utimes: the new mtime (Unix seconds) when set to a passed value.
    FileChangeMtime = "vigil.file_change.mtime", Int, FILE, true;
    /// chown: the new owner uid (-1 = unchanged).
    FileChangeUid = "vigil.file_change.uid", Int, FILE, true;
    /// open flags joined with `|` (`O_WRONLY|O_CREAT`).
    OpenFlags = "vigil.open.flags", Str, FILE, true;
    /// The open asked for write access (O_WRONLY, O_RDWR, O_CREAT or O_TRUNC).
    OpenWrite = "vigil.open.write", Bool, FILE, true;
    /// The event wrote the file at `file.path`: an open asking for write
    /// access, or a successful rename, link or symlink whose destination
    /// (`file.path`) now names new content.
    FileWritten = "vigil.file.written", Bool, FILE, true;
    /// Existing files the process overwrote in the current 60-second
    /// window, counting this event (set only on such an overwrite: an
    /// in-place open of an existing file, a read file truncated, a rename
    /// to the same name plus an extension).
    FileOverwrites = "vigil.file.overwrites", Int, FILE, true;
    /// open: the open created the file (it did not exist before).
    OpenCreated = "vigil.open.created", Bool, FILE, true;
    /// Source address.
    SourceIp = "source.ip", Ip, NETWORK, true;
    /// Source port.
    SourcePort = "source.port", Int, NETWORK, true;
    /// Destination address.
    DestinationIp = "destination.ip", Ip, NETWORK, true;
    /// Destination port.
    DestinationPort = "destination.port", Int, NETWORK, true;
    /// The name the destination address was resolved from (the question of
    /// the DNS answer that returned it, seen by the `dns` sensor).
    DestinationDomain = "destination.domain", Str, NETWORK, true;
    /// DNS record: `query` or `answer`.
    DnsType = "dns.type", Str, NETWORK, true;
    /// DNS question name (lower case, no final dot).
    DnsQuestionName = "dns.question.name", Str, NETWORK, true;
    /// DNS question type (`A`, `AAAA`, `TXT`, ...).
    DnsQuestionType = "dns.question.type", Str, NETWORK, true;
    /// DNS response code (`NOERROR`, `NXDOMAIN`, ...).
    DnsResponseCode = "dns.response_code", Str, NETWORK, true;
    /// DNS query: distinct names the process, or its parent's children
    /// together, asked for in the current 60-second window (set only on the
    /// query that added a name).
    DnsDistinctNames = "vigil.dns.distinct_names", Int, NETWORK, true;
    /// DNS query: of those names, how many look generated (a long label of
    /// lower-case letters and digits with few vowels or a run of consonants).
    DnsRandomNames = "vigil.dns.random_names", Int, NETWORK, true;
    /// Listening address.
    ServerIp = "server.ip", Ip, NETWORK, true;
    /// Listening port.
    ServerPort = "server.port", Int, NETWORK, true;
    /// `tcp` / `udp`.
    NetworkTransport = "network.transport", Str, NETWORK, true;
    /// `ipv4` / `ipv6` / `unix`.
    NetworkType = "network.type", Str, NETWORK, true;
    /// `egress` / `ingress`.
    NetworkDirection = "network.direction", Str, NETWORK, true;
    /// AF_UNIX socket path.
    UnixPath = "vigil.unix.path", Str, NETWORK, true;
    /// New TCP state.
    TcpNewState = "vigil.tcp.new_state", Str, NETWORK, true;
    /// Capability name (`CAP_SYS_ADMIN`).
    CapabilityName = "vigil.capability.name", Str, IAM, true;
    /// Capability number.
    CapabilityId = "vigil.capability.id", Int, IAM, true;
    /// setid syscall (`setuid`, `setresgid`, ...).
    SetidSyscall = "vigil.setid.syscall", Str, IAM, true;
    /// A setuid-family call asks for id 0.
    SetidToRoot = "vigil.setid.to_root", Bool, IAM, true;
    /// ptrace request (`PTRACE_ATTACH`).
    PtraceRequest = "vigil.ptrace.request", Str, PROCESS, true;
    /// ptrace target pid.
    PtraceTargetPid = "vigil.ptrace.target_pid", Int, PROCESS, true;
    /// ptrace target executable.
    PtraceTargetExecutable = "vigil.ptrace.target_executable", Str, PROCESS, true;
    /// Whether the call came through the 32-bit (ia32) syscall gate.
    Compat = "vigil.compat", Bool, ALL, true;
    /// Syscall name of a `compat-syscall` record (ia32: `kill`, `bpf`, ...)
    /// or of a `personality`, `sysinfo` or `syslog` record.
    SyscallName = "vigil.syscall.name", Str, PROCESS | HOST, true;
    /// Syscall number of such a record (ia32 or x86-64 numbering).
    SyscallNr = "vigil.syscall.nr", Int, PROCESS | HOST, true;
    /// Argument 0 of such a call (`personality`: the persona; `syslog`:
    /// the action type).
    SyscallArg0 = "vigil.syscall.args.0", Int, PROCESS | HOST, true;
    /// Argument 1 of such a call.
    SyscallArg1 = "vigil.syscall.args.1", Int, PROCESS | HOST, true;
    /// Argument 2 of such a call (`syslog`: the length).
    SyscallArg2 = "vigil.syscall.args.2", Int, PROCESS | HOST, true;
    /// syslog(2) action name (`SYSLOG_ACTION_CLEAR`).
    SyslogAction = "vigil.syslog.action", Str, HOST, true;
    /// bpf command (`BPF_PROG_LOAD`).
    BpfCommand = "vigil.bpf.command", Str, HOST, true;
    /// BPF program or map name.
    BpfName = "vigil.bpf.name", Str, HOST, true;
    /// Module syscall.
    ModuleSyscall = "vigil.module.syscall", Str, DRIVER, true;
    /// Module name.
    ModuleName = "vigil.module.name", Str, DRIVER, true;
    /// memfd name.
    MemfdName = "vigil.memfd.name", Str, FILE, true;
    /// Mount source.
    MountSource = "vigil.mount.source", Str, CONFIGURATION, true;
    /// Mount target.
    MountTarget = "vigil.mount.target", Str, CONFIGURATION, true;
    /// Mount filesystem type.
    MountFstype = "vigil.mount.fstype", Str, CONFIGURATION, true;
    /// Unmount target.
    UmountTarget = "vigil.umount.target", Str, CONFIGURATION, true;
    /// unshare/setns namespace flags joined with `|`.
    NamespaceFlags = "vigil.namespace.flags", Str, PROCESS, true;
    /// setns target namespace inode.
    NamespaceTarget = "vigil.namespace.target", Int, PROCESS, true;
    /// A line read by bash.
    ReadlineLine = "vigil.readline.line", Str, PROCESS, true;
}

impl Field {
    /// The field with this ECS name.
    pub fn by_name(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The known field closest to a misspelled name, if one is close.
    pub fn suggest(name: &str) -> Option<&'static str> {
        // Nothing is close to a very long word, and the edit distance costs
        // its length times every field's (a 100 KB word in a condition took
        // 2 s; found by the hostile-input fuzzer).
        if name.len() > 96 {
            return None;
        }
        let mut best: Option<(usize, &'static str)> = None;
        for f in Field::ALL {
            let d = edit_distance(name, f.name());
            if best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, f.name()));
            }
        }
        // Also accept a unique field whose last segments match
        // (`executable` -> `process.executable`).
        match best {
            Some((d, n)) if d <= 3.max(name.len() * 2 / 3) => Some(n),
            _ => {
                let tail: Vec<_> = Field::ALL
                    .iter()
                    .filter(|f| f.name().ends_with(&format!(".{name}")))
                    .collect();
                if tail.len() == 1 {
                    Some(tail[0].name())
                } else {
                    None
                }
            }
        }
    }
}

/// Levenshtein distance (small inputs only).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a = a.as_bytes();
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for f in Field::ALL {
            assert!(seen.insert(f.name()), "duplicate {}", f.name());
            assert_eq!(Field::by_name(f.name()), Some(*f));
        }
    }

    #[test]
    fn no_suggestion_work_for_huge_words() {
        let w = "é".repeat(500_000);
        let t = std::time::Instant::now();
        assert_eq!(Field::suggest(&w), None);
        // a fixed bound, not a benchmark: quadratic work took seconds
        assert!(t.elapsed() < std::time::Duration::from_millis(100));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            Field::suggest("process.exectuable"),
            Some("process.executable")
        );
        assert_eq!(Field::suggest("proc.nmae"), Some("process.name"));
        assert_eq!(
            Field::suggest("capability.name"),
            Some("vigil.capability.name")
        );
        assert_eq!(Field::suggest("zzzzzzzzzzzzzzzzzzzzzz.qqqqqqqqq"), None);
    }
}
