//! What the engine feeds the learner: one [`Observation`] per enriched event
//! (or per syscall-bitmap read).

use std::fmt;
use std::net::IpAddr;

/// Number of 64-bit words in a [`SyscallSet`] (512 syscall numbers; x86_64
/// numbers are below 470).
pub const SYSCALL_WORDS: usize = 8;

/// A set of syscall numbers as a bitmap: bit `n % 64` of word `n / 64` is
/// syscall `n`. This is the layout the engine reads from the per-profile BPF
/// map.
pub type SyscallSet = [u64; SYSCALL_WORDS];

/// One thing a process did, as the learner sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Wall-clock time of the event, ns since the Unix epoch.
    pub unix_ns: i64,
    /// Who did it.
    pub subject: Subject<'a>,
    /// What it did.
    pub behaviour: Behaviour<'a>,
}

/// The process an observation is about, reduced to what selects profiles.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Executable path (bytes: Linux paths need not be UTF-8).
    pub executable: &'a [u8],
    /// Which file that path named: a replaced binary is a new profile.
    pub identity: ExeIdentity,
    /// The container the process runs in, if any.
    pub container: Option<ContainerRef<'a>>,
}

/// Identity of an executable file beyond its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExeIdentity {
    /// The engine could not tell (the profile is keyed by path alone).
    Unknown,
    /// Inode identity: an upgrade (new inode, size or mtime) is a new profile.
    Inode {
        /// Device number of the file system.
        dev: u64,
        /// Inode number.
        ino: u64,
        /// Size in bytes.
        size: u64,
        /// Modification time, ns since the epoch.
        mtime_ns: i64,
    },
    /// SHA-256 of the executable's content.
    Sha256([u8; 32]),
}

/// A container as the engine identifies it. Which field keys the profile is
/// decided by [`crate::ContainerKeying`]; see [`crate::profile_keys`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerRef<'a> {
    /// Runtime container id (64 hex digits for docker/podman/containerd).
    pub id: Option<&'a str>,
    /// Image reference (`docker.io/library/nginx:1.27`), when the engine
    /// knows it: the only key that survives container restarts.
    pub image: Option<&'a str>,
    /// cgroup v2 path, the fallback when neither id nor image is known.
    pub cgroup_path: Option<&'a [u8]>,
}

/// Transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Anything else (raw, SCTP, ...), by IP protocol number.
    Other(u8),
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Tcp => f.write_str("tcp"),
            Transport::Udp => f.write_str("udp"),
            Transport::Other(p) => write!(f, "ip{p}"),
        }
    }
}

impl Transport {
    /// Parses the [`Display`](fmt::Display) form.
    pub fn parse(s: &str) -> Option<Transport> {
        match s {
            "tcp" => Some(Transport::Tcp),
            "udp" => Some(Transport::Udp),
            _ => s.strip_prefix("ip")?.parse().ok().map(Transport::Other),
        }
    }
}

/// How a file was opened, as a small bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access(pub u8);

impl Access {
    /// Opened for reading.
    pub const READ: Access = Access(1);
    /// Opened for writing (or appending, truncating).
    pub const WRITE: Access = Access(2);
    /// Opened for execution (`execve`, `O_PATH` exec, mmap exec).
    pub const EXEC: Access = Access(4);
    /// Created (`O_CREAT` that made a new file, `O_TMPFILE`).
    pub const CREATE: Access = Access(8);
    /// All bits this type defines.
    pub const ALL: Access = Access(15);

    /// Both sets' bits.
    #[must_use]
    pub fn union(self, o: Access) -> Access {
        Access(self.0 | o.0)
    }

    /// Bits of `self` not in `o`.
    #[must_use]
    pub fn minus(self, o: Access) -> Access {
        Access(self.0 & !o.0)
    }

    /// No bit set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// From `openat` flags (`O_ACCMODE`, `O_CREAT`, `O_TRUNC`, `O_APPEND`,
    /// `O_TMPFILE`; `__FMODE_EXEC` is reported by the engine as exec).
    pub fn from_open_flags(flags: u32) -> Access {
        const O_WRONLY: u32 = 0o1;
        const O_RDWR: u32 = 0o2;
        const O_CREAT: u32 = 0o100;
        const O_TRUNC: u32 = 0o1000;
        const O_APPEND: u32 = 0o2000;
        const O_TMPFILE: u32 = 0o20000000;
        let mut a = match flags & 3 {
            O_WRONLY => Access::WRITE,
            O_RDWR => Access::READ.union(Access::WRITE),
            _ => Access::READ,
        };
        if flags & (O_TRUNC | O_APPEND) != 0 {
            a = a.union(Access::WRITE);
        }
        if flags & O_CREAT != 0 || flags & O_TMPFILE == O_TMPFILE {
            a = a.union(Access::CREATE);
        }
        a
    }

    /// Parses the [`Display`](fmt::Display) form (`rwxc`, any subset, `-` for none).
    pub fn parse(s: &str) -> Option<Access> {
        let mut a = Access::default();
        for c in s.chars() {
            a = a.union(match c {
                'r' => Access::READ,
                'w' => Access::WRITE,
                'x' => Access::EXEC,
                'c' => Access::CREATE,
                '-' => Access::default(),
                _ => return None,
            });
        }
        Some(a)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (bit, c) in [(1, 'r'), (2, 'w'), (4, 'x'), (8, 'c')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// What a process did.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour<'a> {
    /// It executed a child program (fork+exec or exec of a child): the
    /// subject is the parent.
    Spawn {
        /// Executable path of the child.
        child: &'a [u8],
    },
    /// It opened a file.
    Open {
        /// Absolute, normalised path (bytes).
        path: &'a [u8],
        /// How.
        access: Access,
    },
    /// It connected to a remote peer.
    Connect {
        /// Remote address.
        ip: IpAddr,
        /// Remote port.
        port: u16,
        /// Protocol.
        transport: Transport,
    },
    /// It listened on a local port.
    Listen {
        /// Local port.
        port: u16,
        /// Protocol.
        transport: Transport,
    },
    /// It accepted an inbound connection.
    Accept {
        /// The remote peer's address, when known. Learned only when
        /// [`crate::Config::learn_inbound_peers`] is set; the remote port is
        /// ephemeral and never learned.
        peer: Option<IpAddr>,
        /// Local port the connection arrived on.
        port: u16,
        /// Protocol.
        transport: Transport,
    },
    /// It used a capability (`cap_capable` returned a verdict).
    Capability {
        /// Capability number (`CAP_NET_BIND_SERVICE` = 10).
        cap: u8,
    },
    /// It changed uid (setuid family; effective uid before and after).
    UidChange {
        /// uid before.
        from: u32,
        /// uid after.
        to: u32,
    },
    /// Syscalls it made, as a bitmap read from the per-profile BPF map.
    Syscalls {
        /// The syscall numbers.
        set: &'a SyscallSet,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_from_open_flags() {
        // (flags, access): O_RDONLY 0, O_WRONLY 1, O_RDWR 2, O_CREAT 0o100,
        // O_TRUNC 0o1000, O_APPEND 0o2000, O_TMPFILE 0o20200000.
        let cases: &[(u32, &str)] = &[
            (0, "r"),
            (0o1, "w"),
            (0o2, "rw"),
            (0o101, "wc"),
            (0o1000, "rw"),
            (0o2001, "w"),
            (0o20200002, "rwc"),
            (0o200000, "r"), // O_DIRECTORY alone
        ];
        for &(flags, want) in cases {
            assert_eq!(
                Access::from_open_flags(flags).to_string(),
                want,
                "{flags:#o}"
            );
        }
        for s in ["r", "w", "rwxc", "-", "xc"] {
            assert_eq!(Access::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Access::parse("rz"), None);
    }

    #[test]
    fn transport_text_round_trips() {
        for t in [Transport::Tcp, Transport::Udp, Transport::Other(132)] {
            assert_eq!(Transport::parse(&t.to_string()), Some(t));
        }
        assert_eq!(Transport::parse("sctp"), None);
    }
}
