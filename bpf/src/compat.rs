//! 32-bit compat syscalls on x86_64 (`int 0x80`, ia32 binaries): the
//! syscalls:* tracepoints do not fire for them, so the `compat` sensor
//! watches the raw sys_enter/sys_exit for tasks in a compat syscall and
//! reports the calls in [`CALLS`]. [`translate`] turns the records into the
//! kinds the 64-bit sensors produce (open, connect, setid, ptrace), flagged
//! [`abi::flags::COMPAT`], so rules and baselines see them as usual.

use crate::abi::{self, compat_what as what, kind, sys};
use crate::decode::{Body, KernelEvent};

/// One reported ia32 syscall.
#[derive(Debug, Clone, Copy)]
pub struct CompatCall {
    /// ia32 syscall number (arch/x86/entry/syscalls/syscall_32.tbl).
    pub nr: u32,
    /// Its name.
    pub name: &'static str,
    /// `vg_compat_what`.
    pub what: u32,
    /// Index of the path argument (0xf: none).
    pub path_arg: u32,
    /// Index of the dirfd argument the path is relative to (0xf: none).
    pub dirfd_arg: u32,
    /// `vg_sys` id of the 64-bit equivalent, where one exists (0: none).
    pub vsys: u32,
}

impl CompatCall {
    /// The `compat_calls` map value.
    pub fn info(&self) -> u32 {
        self.what | (self.path_arg & 0xf) << 8 | (self.dirfd_arg & 0xf) << 12 | self.vsys << 16
    }
}

const N: u32 = 0xf;

macro_rules! c {
    ($nr:expr, $name:literal, $what:ident, $p:expr, $d:expr, $vsys:expr) => {
        CompatCall {
            nr: $nr,
            name: $name,
            what: what::$what,
            path_arg: $p,
            dirfd_arg: $d,
            vsys: $vsys,
        }
    };
}

/// The ia32 syscalls the compat sensor reports. execve/execveat are not
/// here: sched_process_exec reports every exec, 32-bit or not.
pub const CALLS: &[CompatCall] = &[
    c!(5, "open", OPEN, 0, N, sys::OPEN),
    c!(8, "creat", OPEN, 0, N, sys::CREAT),
    c!(295, "openat", OPEN, 1, 0, sys::OPENAT),
    c!(437, "openat2", OPEN, 1, 0, sys::OPENAT2),
    c!(362, "connect", CONNECT, N, N, 0),
    c!(102, "socketcall", SOCKETCALL, N, N, 0),
    c!(23, "setuid16", SETID, N, N, sys::SETUID),
    c!(46, "setgid16", SETID, N, N, sys::SETGID),
    c!(70, "setreuid16", SETID, N, N, sys::SETREUID),
    c!(164, "setresuid16", SETID, N, N, sys::SETRESUID),
    c!(213, "setuid32", SETID, N, N, sys::SETUID),
    c!(214, "setgid32", SETID, N, N, sys::SETGID),
    c!(203, "setreuid32", SETID, N, N, sys::SETREUID),
    c!(204, "setregid32", SETID, N, N, sys::SETREGID),
    c!(208, "setresuid32", SETID, N, N, sys::SETRESUID),
    c!(210, "setresgid32", SETID, N, N, sys::SETRESGID),
    c!(215, "setfsuid32", SETID, N, N, sys::SETFSUID),
    c!(216, "setfsgid32", SETID, N, N, sys::SETFSGID),
    c!(26, "ptrace", PTRACE, N, N, 0),
    c!(128, "init_module", OTHER, N, N, sys::INIT_MODULE),
    c!(350, "finit_module", OTHER, N, N, sys::FINIT_MODULE),
    c!(129, "delete_module", OTHER, 0, N, sys::DELETE_MODULE),
    c!(357, "bpf", OTHER, N, N, 0),
    c!(9, "link", OTHER, 1, N, sys::LINK),
    c!(10, "unlink", OTHER, 0, N, sys::UNLINK),
    c!(15, "chmod", OTHER, 0, N, sys::CHMOD),
    c!(38, "rename", OTHER, 1, N, sys::RENAME),
    c!(40, "rmdir", OTHER, 0, N, sys::RMDIR),
    c!(83, "symlink", OTHER, 1, N, sys::SYMLINK),
    c!(92, "truncate", OTHER, 0, N, sys::TRUNCATE),
    c!(212, "chown32", OTHER, 0, N, sys::CHOWN),
    c!(198, "lchown32", OTHER, 0, N, sys::LCHOWN),
    c!(298, "fchownat", OTHER, 1, 0, sys::FCHOWNAT),
    c!(301, "unlinkat", OTHER, 1, 0, sys::UNLINKAT),
    c!(302, "renameat", OTHER, 3, 2, sys::RENAMEAT),
    c!(353, "renameat2", OTHER, 3, 2, sys::RENAMEAT2),
    c!(303, "linkat", OTHER, 3, 2, sys::LINKAT),
    c!(304, "symlinkat", OTHER, 2, 1, sys::SYMLINKAT),
    c!(306, "fchmodat", OTHER, 1, 0, sys::FCHMODAT),
    c!(21, "mount", OTHER, 1, N, 0),
    c!(52, "umount2", OTHER, 0, N, 0),
    c!(310, "unshare", OTHER, N, N, 0),
    c!(346, "setns", OTHER, N, N, 0),
    c!(356, "memfd_create", OTHER, N, N, 0),
    c!(348, "process_vm_writev", OTHER, N, N, 0),
    c!(37, "kill", OTHER, N, N, 0),
];

/// The entry for an ia32 syscall number.
pub fn call(nr: u32) -> Option<&'static CompatCall> {
    CALLS.iter().find(|c| c.nr == nr)
}

/// The inet/unix remote end of a raw sockaddr.
fn sockaddr(info: &mut abi::Sock, raw: &[u8]) -> Vec<u8> {
    if raw.len() < 2 {
        return Vec::new();
    }
    info.family = u16::from_ne_bytes([raw[0], raw[1]]);
    let port = |r: &[u8]| r.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]]));
    match i32::from(info.family) {
        libc::AF_INET => {
            if let (Some(p), Some(a)) = (port(raw), raw.get(4..8)) {
                info.rport = p;
                info.raddr[..4].copy_from_slice(a);
            }
            Vec::new()
        }
        libc::AF_INET6 => {
            if let (Some(p), Some(a)) = (port(raw), raw.get(8..24)) {
                info.rport = p;
                info.raddr.copy_from_slice(a);
            }
            Vec::new()
        }
        libc::AF_UNIX => {
            let path = &raw[2..];
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            path[..end].to_vec()
        }
        _ => Vec::new(),
    }
}

/// Turns a `VG_COMPAT` record for an open, connect, setid or ptrace into
/// the record the 64-bit sensor would have produced (flagged
/// [`abi::flags::COMPAT`]); other compat records keep their kind and are
/// flagged too.
pub fn translate(mut k: KernelEvent) -> KernelEvent {
    let Body::Compat {
        info,
        path,
        name,
        addr,
    } = &mut k.body
    else {
        return k;
    };
    // Every record of this sensor is a 32-bit call, translated or not.
    k.hdr.flags |= abi::flags::COMPAT;
    let w = info.info & 0xff;
    let vsys = info.info >> 16;
    let a = info.args;
    let i32a = |i: usize| a[i] as u32 as i32;
    let body = match w {
        what::OPEN => {
            let (dfd, flags, mode) = match vsys {
                // bit 31 is the kernel's "created" mark, unknown here
                sys::OPEN => (
                    libc::AT_FDCWD,
                    a[1] as u32 & !abi::OPEN_CREATED,
                    a[2] as u32,
                ),
                sys::CREAT => (
                    libc::AT_FDCWD,
                    (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u32,
                    a[1] as u32,
                ),
                sys::OPENAT => (i32a(0), a[2] as u32 & !abi::OPEN_CREATED, a[3] as u32),
                _ => (i32a(0), 0, 0),
            };
            Body::Open {
                info: abi::Open {
                    ret: info.ret,
                    ino: info.ino,
                    flags,
                    mode,
                    dev: info.dev,
                    syscall: vsys,
                    dfd,
                    foreign_mntns: 0,
                },
                path: std::mem::take(path),
                name: if info.ret >= 0 {
                    Vec::new()
                } else {
                    std::mem::take(name)
                },
            }
        }
        what::CONNECT | what::SOCKETCALL => {
            // socketcall: only connect (call 3) carries an address
            if w == what::SOCKETCALL && a[0] != 3 {
                return k;
            }
            let fd = if w == what::CONNECT { i32a(0) } else { i32a(2) };
            let mut s = abi::Sock {
                ret: info.ret,
                fd,
                ..abi::Sock::default()
            };
            let unix_path = sockaddr(&mut s, addr);
            if !matches!(
                i32::from(s.family),
                libc::AF_INET | libc::AF_INET6 | libc::AF_UNIX
            ) {
                return k;
            }
            k.hdr.kind = kind::CONNECT;
            k.hdr.flags |= abi::flags::COMPAT;
            k.body = Body::Sock { info: s, unix_path };
            return k;
        }
        what::SETID => {
            let id = |i: usize| -> i32 {
                // the 16-bit calls pass -1 as 0xffff
                let v = i32a(i);
                if info.nr < 200 && v == 0xffff { -1 } else { v }
            };
            let ids = match vsys {
                sys::SETUID | sys::SETGID | sys::SETFSUID | sys::SETFSGID => [id(0), -1, -1],
                sys::SETREUID | sys::SETREGID => [id(0), id(1), -1],
                _ => [id(0), id(1), id(2)],
            };
            Body::SetId(abi::SetId {
                ret: info.ret,
                syscall: vsys,
                id: ids,
            })
        }
        what::PTRACE => Body::Ptrace(abi::Ptrace {
            ret: info.ret,
            request: i64::from(i32a(0)),
            target_pid: i32a(1),
            syscall: 0,
        }),
        _ => return k,
    };
    k.hdr.kind = match w {
        what::OPEN => kind::OPEN,
        what::SETID => kind::SETID,
        _ => kind::PTRACE,
    };
    k.hdr.flags |= abi::flags::COMPAT;
    k.body = body;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers agree with the kernel headers' ia32 table, where the
    /// build host has them.
    #[test]
    fn numbers_match_unistd_32() {
        let Ok(h) = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_32.h") else {
            return;
        };
        for c in CALLS {
            let name = match c.name {
                "setuid16" => "setuid",
                "setgid16" => "setgid",
                "setreuid16" => "setreuid",
                "setresuid16" => "setresuid",
                n => n,
            };
            let line = format!("#define __NR_{name} {}\n", c.nr);
            assert!(h.contains(&line), "{name} is not {} in unistd_32.h", c.nr);
        }
    }

    fn rec(nr: u32, ret: i64, args: [u64; 6], strings: [&[u8]; 3]) -> KernelEvent {
        let c = call(nr).unwrap();
        KernelEvent {
            hdr: abi::Hdr {
                kind: kind::COMPAT,
                ..abi::Hdr::default()
            },
            body: Body::Compat {
                info: abi::Compat {
                    ret,
                    nr,
                    info: c.info(),
                    args,
                    ..abi::Compat::default()
                },
                path: strings[0].to_vec(),
                name: strings[1].to_vec(),
                addr: strings[2].to_vec(),
            },
        }
    }

    #[test]
    fn opens_connects_and_setid_become_their_kinds() {
        let k = translate(rec(
            5,
            3,
            [0x1000, 0, 0, 0, 0, 0],
            [b"/etc/shadow", b"", b""],
        ));
        assert_eq!(k.hdr.kind, kind::OPEN);
        assert!(k.hdr.flags & abi::flags::COMPAT != 0);
        match k.body {
            Body::Open { info, path, .. } => {
                assert_eq!(path, b"/etc/shadow");
                assert_eq!(info.syscall, sys::OPEN);
                assert_eq!(info.dfd, libc::AT_FDCWD);
            }
            b => panic!("{b:?}"),
        }
        let mut sa = vec![2u8, 0, 0x1f, 0x90, 10, 1, 2, 3];
        sa.extend_from_slice(&[0; 8]);
        let k = translate(rec(102, 0, [3, 0x2000, 0, 0, 0, 0], [b"", b"", &sa]));
        assert_eq!(k.hdr.kind, kind::CONNECT);
        match k.body {
            Body::Sock { info, .. } => {
                assert_eq!(info.rport, 8080);
                assert_eq!(&info.raddr[..4], &[10, 1, 2, 3]);
            }
            b => panic!("{b:?}"),
        }
        let k = translate(rec(23, 0, [0, 0, 0, 0, 0, 0], [b"", b"", b""]));
        match k.body {
            Body::SetId(s) => assert_eq!(s.id, [0, -1, -1]),
            b => panic!("{b:?}"),
        }
        // other socketcalls and other syscalls stay compat records
        let k = translate(rec(102, 0, [1, 0, 0, 0, 0, 0], [b"", b"", b""]));
        assert_eq!(k.hdr.kind, kind::COMPAT);
        let k = translate(rec(10, 0, [0; 6], [b"", b"/tmp/x", b""]));
        assert_eq!(k.hdr.kind, kind::COMPAT);
        // hostile: short sockaddr
        let k = translate(rec(362, 0, [3, 0, 1, 0, 0, 0], [b"", b"", &[2]]));
        assert_eq!(k.hdr.kind, kind::COMPAT);
    }
}
