//! Length-checked decoding of ring-buffer records into owned, typed events.
//!
//! One decoder per kind; every length is checked before it is used, so
//! truncated or garbage samples give a [`DecodeError`], never a panic.

use crate::abi::{self, Hdr, Pod, kind, read_pod};
use core::mem::size_of;

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The sample is shorter than the header or than its declared contents.
    #[error("record of {got} bytes is shorter than the {need} bytes it needs")]
    TooShort {
        /// Bytes the record needs.
        need: usize,
        /// Bytes available.
        got: usize,
    },
    /// The header's size field disagrees with the sample length.
    #[error("record header says {declared} bytes but the sample has {got}")]
    SizeMismatch {
        /// `hdr.size`.
        declared: u32,
        /// Sample length.
        got: usize,
    },
    /// Unknown event kind (newer kernel object or garbage).
    #[error("unknown event kind {0}")]
    UnknownKind(u16),
}

/// A decoded kernel record: the common header and the kind-specific body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelEvent {
    /// Common header (process identity, credentials, namespaces, time).
    pub hdr: Hdr,
    /// Kind-specific payload.
    pub body: Body,
}

/// Kind-specific payload. Strings are raw bytes exactly as the kernel gave
/// them (paths and arguments need not be UTF-8); encoders escape them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// `VG_EXEC`.
    Exec {
        /// Fixed fields.
        info: abi::Exec,
        /// Canonical path of the executable.
        path: Vec<u8>,
        /// Arguments (`argv[0]` first).
        argv: Vec<Vec<u8>>,
        /// Working directory.
        cwd: Vec<u8>,
        /// Filename as passed to execve.
        filename: Vec<u8>,
        /// The variables of [`ENV_NAMES`] found in the new image's
        /// environment, as `NAME=value`, in environment order (the first of
        /// each name, as `getenv` sees it). Every other variable is dropped
        /// when the record is decoded.
        env: Vec<Vec<u8>>,
    },
    /// `VG_FORK`.
    Fork(abi::Fork),
    /// `VG_EXIT`.
    Exit(abi::Exit),
    /// `VG_OPEN`.
    Open {
        /// Fixed fields.
        info: abi::Open,
        /// Canonical path (success) or base directory (failure, relative name).
        path: Vec<u8>,
        /// Name as passed (failure only).
        name: Vec<u8>,
    },
    /// `VG_CONNECT`, `VG_ACCEPT`, `VG_LISTEN`, `VG_UDP_SEND` (see `hdr.kind`).
    Sock {
        /// Fixed fields.
        info: abi::Sock,
        /// Unix socket path (AF_UNIX).
        unix_path: Vec<u8>,
    },
    /// `VG_DNS`: a DNS message sent to or received from port 53
    /// (`info.backlog` is the `sys::SEND*`/`sys::RECV*` that carried it).
    Dns {
        /// Fixed fields (remote = the DNS server in both directions).
        info: abi::Sock,
        /// The message in wire format, up to [`abi::DNS_MAX`] bytes (hostile:
        /// parse with bounds checks).
        message: Vec<u8>,
    },
    /// `VG_COMPAT`: a 32-bit syscall not translated into another kind
    /// (see [`crate::compat::translate`]).
    Compat {
        /// Fixed fields.
        info: abi::Compat,
        /// Open success: canonical path; else the base directory of a
        /// relative path argument.
        path: Vec<u8>,
        /// The path argument as passed.
        name: Vec<u8>,
        /// connect: the sockaddr bytes.
        addr: Vec<u8>,
    },
    /// `VG_SYSCALL`: personality, sysinfo or syslog (`info.nr`, see
    /// [`abi::RARE_CALLS`]) with its first three arguments.
    Syscall(abi::Syscall),
    /// `VG_IOURING`: a ring created or an operation submitted.
    IoUring {
        /// Fixed fields.
        info: abi::IoUring,
        /// Path as passed (open, unlink, mkdir; rename/link: the new name;
        /// connect: a unix socket path).
        name: Vec<u8>,
        /// The caller's cwd when `name` is relative to AT_FDCWD.
        cwd: Vec<u8>,
        /// rename/link: the old name; symlink: the target text.
        name2: Vec<u8>,
    },
    /// `VG_TCP_STATE`.
    TcpState(abi::TcpState),
    /// `VG_CAPABLE`.
    Capable(abi::Capable),
    /// `VG_SETID`.
    SetId(abi::SetId),
    /// `VG_CAPSET`.
    CapSet(abi::CapSet),
    /// `VG_PTRACE`.
    Ptrace(abi::Ptrace),
    /// `VG_BPF`.
    Bpf {
        /// Fixed fields.
        info: abi::Bpf,
        /// Program or map name from the attr.
        name: Vec<u8>,
    },
    /// `VG_MODULE`.
    Module {
        /// Fixed fields.
        info: abi::Module,
        /// Module file path (finit_module) or name (delete_module).
        target: Vec<u8>,
        /// Module parameters.
        params: Vec<u8>,
    },
    /// `VG_SIGNAL`.
    Signal(abi::Signal),
    /// `VG_FCHANGE`.
    FChange {
        /// Fixed fields.
        info: abi::FChange,
        /// Base directory of a relative name, or the fd's canonical path.
        base: Vec<u8>,
        /// The name as passed (empty for fd calls).
        name: Vec<u8>,
        /// Base directory of the second name (rename/link source).
        base2: Vec<u8>,
        /// The second name as passed; symlink: the link's target text.
        name2: Vec<u8>,
    },
    /// `VG_MEMFD`.
    Memfd {
        /// Fixed fields.
        info: abi::Memfd,
        /// memfd name.
        name: Vec<u8>,
    },
    /// `VG_MOUNT`.
    Mount {
        /// Fixed fields.
        info: abi::Mount,
        /// Source (device or directory).
        source: Vec<u8>,
        /// Target as passed.
        target: Vec<u8>,
        /// Filesystem type.
        fstype: Vec<u8>,
        /// Working directory when the target is relative.
        cwd: Vec<u8>,
    },
    /// `VG_UMOUNT`.
    Umount {
        /// Fixed fields.
        info: abi::Umount,
        /// Target as passed.
        target: Vec<u8>,
    },
    /// `VG_UNSHARE` and `VG_SETNS` (see `hdr.kind`).
    Ns(abi::Ns),
    /// `VG_READLINE`.
    Readline {
        /// The line bash read.
        line: Vec<u8>,
    },
}

/// The trailing strings of a record, sliced and length-checked.
struct Strings<'a> {
    parts: [&'a [u8]; abi::MAX_STR],
}

impl<'a> Strings<'a> {
    fn get(&self, i: usize) -> Vec<u8> {
        self.parts[i].to_vec()
    }
}

fn body<T: Pod>(rest: &[u8], total: usize) -> Result<T, DecodeError> {
    read_pod::<T>(rest).ok_or(DecodeError::TooShort {
        need: size_of::<Hdr>() + size_of::<T>(),
        got: total,
    })
}

/// Size of the fixed body for a kind, or `None` for unknown kinds.
pub fn body_size(k: u16) -> Option<usize> {
    Some(match k {
        kind::EXEC => size_of::<abi::Exec>(),
        kind::FORK => size_of::<abi::Fork>(),
        kind::EXIT => size_of::<abi::Exit>(),
        kind::OPEN => size_of::<abi::Open>(),
        kind::CONNECT | kind::ACCEPT | kind::LISTEN | kind::UDP_SEND | kind::DNS => {
            size_of::<abi::Sock>()
        }
        kind::TCP_STATE => size_of::<abi::TcpState>(),
        kind::IOURING => size_of::<abi::IoUring>(),
        kind::COMPAT => size_of::<abi::Compat>(),
        kind::SYSCALL => size_of::<abi::Syscall>(),
        kind::CAPABLE => size_of::<abi::Capable>(),
        kind::SETID => size_of::<abi::SetId>(),
        kind::CAPSET => size_of::<abi::CapSet>(),
        kind::PTRACE => size_of::<abi::Ptrace>(),
        kind::BPF => size_of::<abi::Bpf>(),
        kind::MODULE => size_of::<abi::Module>(),
        kind::MEMFD => size_of::<abi::Memfd>(),
        kind::FCHANGE => size_of::<abi::FChange>(),
        kind::SIGNAL => size_of::<abi::Signal>(),
        kind::MOUNT => size_of::<abi::Mount>(),
        kind::UMOUNT => size_of::<abi::Umount>(),
        kind::UNSHARE | kind::SETNS => size_of::<abi::Ns>(),
        kind::READLINE => size_of::<abi::Readline>(),
        _ => return None,
    })
}

/// The environment variables kept from an exec (`process.env_vars`): the
/// dynamic loader's injection points, the shell's history and start-up
/// hooks, and the interpreters' start-up and path hooks.
pub const ENV_NAMES: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "HISTFILE",
    "HISTCONTROL",
    "HISTSIZE",
    "HISTFILESIZE",
    "HISTIGNORE",
    "PROMPT_COMMAND",
    "BASH_ENV",
    "ENV",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYOPT",
    "NODE_OPTIONS",
];

/// Picks the [`ENV_NAMES`] variables out of a NUL-separated environment
/// area (the kernel's copy, possibly cut mid-entry: a last entry without
/// its NUL is kept only when the area was not truncated).
pub fn env_vars(area: &[u8], truncated: bool) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut seen = [false; ENV_NAMES.len()];
    let mut entries: Vec<&[u8]> = area.split(|&b| b == 0).collect();
    if truncated && !area.ends_with(&[0]) {
        // the last entry was cut: its value is not the real one
        entries.pop();
    }
    for e in entries {
        let Some(eq) = e.iter().position(|&b| b == b'=') else {
            continue;
        };
        let name = &e[..eq];
        if let Some(i) = ENV_NAMES.iter().position(|n| n.as_bytes() == name)
            && !seen[i]
        {
            seen[i] = true;
            out.push(e.to_vec());
        }
    }
    out
}

/// Splits a NUL-separated argv blob into arguments.
fn split_argv(blob: &[u8]) -> Vec<Vec<u8>> {
    if blob.is_empty() {
        return Vec::new();
    }
    let blob = blob.strip_suffix(&[0]).unwrap_or(blob);
    blob.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// Decodes one ring-buffer sample.
pub fn decode(sample: &[u8]) -> Result<KernelEvent, DecodeError> {
    let total = sample.len();
    let hdr: Hdr = read_pod(sample).ok_or(DecodeError::TooShort {
        need: size_of::<Hdr>(),
        got: total,
    })?;
    if hdr.size as usize != total {
        return Err(DecodeError::SizeMismatch {
            declared: hdr.size,
            got: total,
        });
    }
    let bsize = body_size(hdr.kind).ok_or(DecodeError::UnknownKind(hdr.kind))?;
    let rest = &sample[size_of::<Hdr>()..];
    let strings_len: usize = hdr.str_len.iter().map(|&l| l as usize).sum();
    let need = size_of::<Hdr>() + bsize + strings_len;
    if total < need {
        return Err(DecodeError::TooShort { need, got: total });
    }
    let mut parts: [&[u8]; abi::MAX_STR] = [&[]; abi::MAX_STR];
    let mut off = bsize;
    for (i, &l) in hdr.str_len.iter().enumerate() {
        parts[i] = &rest[off..off + l as usize];
        off += l as usize;
    }
    let s = Strings { parts };
    let body = match hdr.kind {
        kind::EXEC => {
            let info: abi::Exec = body(rest, total)?;
            let env = if info.exec_flags & abi::exec_flags::ENV != 0 {
                env_vars(
                    &rest[off..],
                    info.exec_flags & abi::exec_flags::ENV_TRUNC != 0,
                )
            } else {
                Vec::new()
            };
            Body::Exec {
                info,
                path: s.get(0),
                argv: split_argv(s.parts[1]),
                cwd: s.get(2),
                filename: s.get(3),
                env,
            }
        }
        kind::FORK => Body::Fork(body(rest, total)?),
        kind::EXIT => Body::Exit(body(rest, total)?),
        kind::OPEN => Body::Open {
            info: body(rest, total)?,
            path: s.get(0),
            name: s.get(1),
        },
        kind::CONNECT | kind::ACCEPT | kind::LISTEN | kind::UDP_SEND => Body::Sock {
            info: body(rest, total)?,
            unix_path: s.get(0),
        },
        kind::DNS => Body::Dns {
            info: body(rest, total)?,
            message: s.get(0),
        },
        kind::TCP_STATE => Body::TcpState(body(rest, total)?),
        kind::COMPAT => Body::Compat {
            info: body(rest, total)?,
            path: s.get(0),
            name: s.get(1),
            addr: s.get(2),
        },
        kind::SYSCALL => Body::Syscall(body(rest, total)?),
        kind::IOURING => Body::IoUring {
            info: body(rest, total)?,
            name: s.get(0),
            cwd: s.get(1),
            name2: s.get(2),
        },
        kind::CAPABLE => Body::Capable(body(rest, total)?),
        kind::SETID => Body::SetId(body(rest, total)?),
        kind::CAPSET => Body::CapSet(body(rest, total)?),
        kind::PTRACE => Body::Ptrace(body(rest, total)?),
        kind::BPF => Body::Bpf {
            info: body(rest, total)?,
            name: s.get(0),
        },
        kind::MODULE => Body::Module {
            info: body(rest, total)?,
            target: s.get(0),
            params: s.get(1),
        },
        kind::FCHANGE => Body::FChange {
            info: body(rest, total)?,
            base: s.get(0),
            name: s.get(1),
            base2: s.get(2),
            name2: s.get(3),
        },
        kind::SIGNAL => Body::Signal(body(rest, total)?),
        kind::MEMFD => Body::Memfd {
            info: body(rest, total)?,
            name: s.get(0),
        },
        kind::MOUNT => Body::Mount {
            info: body(rest, total)?,
            source: s.get(0),
            target: s.get(1),
            fstype: s.get(2),
            cwd: s.get(3),
        },
        kind::UMOUNT => Body::Umount {
            info: body(rest, total)?,
            target: s.get(0),
        },
        kind::UNSHARE | kind::SETNS => Body::Ns(body(rest, total)?),
        kind::READLINE => Body::Readline { line: s.get(0) },
        other => return Err(DecodeError::UnknownKind(other)),
    };
    Ok(KernelEvent { hdr, body })
}

impl KernelEvent {
    /// Whether string `i` of the record was truncated in the kernel.
    pub fn truncated(&self, i: usize) -> bool {
        i < abi::MAX_STR && self.hdr.flags & (abi::flags::TRUNC0 << i) != 0
    }
    /// Whether this CPU lost records just before this one.
    pub fn after_loss(&self) -> bool {
        self.hdr.flags & abi::flags::LOSS != 0
    }
    /// The task's comm, without NUL padding.
    pub fn comm(&self) -> &[u8] {
        let end = self.hdr.comm.iter().position(|&b| b == 0).unwrap_or(16);
        &self.hdr.comm[..end]
    }
}

/// Encodes a record the way the kernel does (used by tests and fuzzing to
/// build well-formed samples; not on any hot path).
pub fn encode_record<T: Pod>(mut hdr: Hdr, body: &T, strings: &[&[u8]]) -> Vec<u8> {
    assert!(
        strings.len() <= abi::MAX_STR,
        "at most {} strings",
        abi::MAX_STR
    );
    let mut out = Vec::new();
    hdr.str_len = [0; abi::MAX_STR];
    for (i, s) in strings.iter().enumerate() {
        hdr.str_len[i] = u16::try_from(s.len()).expect("string fits u16");
    }
    let total = size_of::<Hdr>() + size_of::<T>() + strings.iter().map(|s| s.len()).sum::<usize>();
    hdr.size = total as u32;
    // SAFETY: Pod types are plain integer aggregates without padding holes.
    let hb =
        unsafe { core::slice::from_raw_parts((&hdr as *const Hdr).cast::<u8>(), size_of::<Hdr>()) };
    out.extend_from_slice(hb);
    // SAFETY: as above.
    let bb =
        unsafe { core::slice::from_raw_parts((body as *const T).cast::<u8>(), size_of::<T>()) };
    out.extend_from_slice(bb);
    for s in strings {
        out.extend_from_slice(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hdr(k: u16) -> Hdr {
        Hdr {
            kind: k,
            pid: 42,
            tid: 42,
            comm: *b"bash\0\0\0\0\0\0\0\0\0\0\0\0",
            ..Hdr::default()
        }
    }

    #[test]
    fn the_kernels_env_prefilter_covers_every_kept_name() {
        // env_candidate() in vigil.bpf.c: 8-byte prefixes (4 for `ENV=`)
        let src = include_str!("../c/vigil.bpf.c");
        let body = &src[src
            .find("static __always_inline int env_candidate")
            .unwrap()..];
        let body = &body[..body.find("\n}\n").unwrap()];
        let mut prefixes: Vec<Vec<u8>> = Vec::new();
        for w in body.split("W8(").skip(1) {
            let args = &w[..w.find(')').unwrap()];
            let p: Vec<u8> = args
                .split(',')
                .map(str::trim)
                .filter_map(|a| a.strip_prefix('\'').and_then(|a| a.strip_suffix('\'')))
                .map(|c| c.as_bytes()[0])
                .collect();
            prefixes.push(p);
        }
        assert_eq!(prefixes.len(), 17, "{prefixes:?}");
        for n in ENV_NAMES {
            let entry = format!("{n}=value");
            assert!(
                prefixes
                    .iter()
                    .any(|p| entry.as_bytes().starts_with(p) && (p.len() == 8 || p == b"ENV=")),
                "{n} is not copied by the kernel's prefilter"
            );
        }
    }

    #[test]
    fn exec_env_keeps_only_the_listed_variables() {
        let info = abi::Exec {
            exec_flags: abi::exec_flags::ENV,
            ..Default::default()
        };
        let mut rec = encode_record(hdr(kind::EXEC), &info, &[b"/bin/x", b"x", b"/", b"x"]);
        rec.extend_from_slice(
            b"SECRET=1\0LD_PRELOAD=/tmp/a.so\0HOME=/root\0LD_PRELOAD=/tmp/b.so\0HISTFILE=/dev/null\0NOEQ\0",
        );
        let n = rec.len() as u32;
        rec[4..8].copy_from_slice(&n.to_ne_bytes());
        let Body::Exec { env, .. } = decode(&rec).unwrap().body else {
            panic!("not an exec");
        };
        assert_eq!(
            env,
            vec![
                b"LD_PRELOAD=/tmp/a.so".to_vec(),
                b"HISTFILE=/dev/null".to_vec()
            ]
        );
        // a cut area loses its unterminated last entry
        assert_eq!(
            env_vars(b"HISTSIZE=0\0LD_AUDIT=/tmp/x", true),
            vec![b"HISTSIZE=0".to_vec()]
        );
        assert_eq!(
            env_vars(b"HISTSIZE=0\0LD_AUDIT=/tmp/x", false),
            vec![b"HISTSIZE=0".to_vec(), b"LD_AUDIT=/tmp/x".to_vec()]
        );
        // without the flag the trailing bytes are not read
        let mut rec = encode_record(hdr(kind::EXEC), &abi::Exec::default(), &[b"/bin/x"]);
        rec.extend_from_slice(b"LD_PRELOAD=/tmp/a.so\0");
        let n = rec.len() as u32;
        rec[4..8].copy_from_slice(&n.to_ne_bytes());
        let Body::Exec { env, .. } = decode(&rec).unwrap().body else {
            panic!("not an exec");
        };
        assert!(env.is_empty());
    }

    #[test]
    fn exec_round_trip() {
        let info = abi::Exec {
            ino: 7,
            argc: 2,
            ..Default::default()
        };
        let rec = encode_record(
            hdr(kind::EXEC),
            &info,
            &[b"/usr/bin/ls", b"ls\0-l", b"/tmp", b"ls"],
        );
        let ev = decode(&rec).unwrap();
        assert_eq!(ev.comm(), b"bash");
        match ev.body {
            Body::Exec {
                info: i,
                path,
                argv,
                cwd,
                filename,
                env,
            } => {
                assert!(env.is_empty());
                assert_eq!(i.ino, 7);
                assert_eq!(path, b"/usr/bin/ls");
                assert_eq!(argv, vec![b"ls".to_vec(), b"-l".to_vec()]);
                assert_eq!(cwd, b"/tmp");
                assert_eq!(filename, b"ls");
            }
            other => panic!("wrong body {other:?}"),
        }
    }

    #[test]
    fn empty_argument_is_kept() {
        assert_eq!(
            split_argv(b"a\0\0b"),
            vec![b"a".to_vec(), Vec::new(), b"b".to_vec()]
        );
        assert!(split_argv(b"").is_empty());
    }

    #[test]
    fn short_and_mismatched_records_are_errors() {
        let rec = encode_record(hdr(kind::OPEN), &abi::Open::default(), &[b"/etc/shadow"]);
        assert!(matches!(
            decode(&rec[..50]),
            Err(DecodeError::TooShort { .. })
        ));
        assert!(matches!(
            decode(&rec[..rec.len() - 1]),
            Err(DecodeError::SizeMismatch { .. })
        ));
        let mut bad = rec.clone();
        bad[0] = 99; // unknown kind
        assert_eq!(decode(&bad), Err(DecodeError::UnknownKind(99)));
        // string lengths pointing past the end
        let mut lie = rec;
        lie[80] = 0xff;
        lie[81] = 0x7f;
        assert!(matches!(decode(&lie), Err(DecodeError::TooShort { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// Garbage never panics the decoder.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }

        /// A valid record with corrupted header fields never panics either.
        #[test]
        fn corrupted_header_never_panics(k in 0u16..70, lens in proptest::array::uniform4(any::<u16>()),
                                         size in any::<u32>(), cut in 0usize..400) {
            let mut rec = encode_record(hdr(kind::EXEC), &abi::Exec::default(), &[b"/bin/x", b"x\0y", b"/", b"x"]);
            rec[0..2].copy_from_slice(&k.to_ne_bytes());
            rec[4..8].copy_from_slice(&size.to_ne_bytes());
            for (i, l) in lens.iter().enumerate() {
                rec[80 + 2 * i..82 + 2 * i].copy_from_slice(&l.to_ne_bytes());
            }
            let cut = cut.min(rec.len());
            let _ = decode(&rec[..cut]);
            let _ = decode(&rec);
        }
    }
}
