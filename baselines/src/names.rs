//! Names of capabilities and x86_64 syscalls.

use crate::syscalls_x86_64::SYSCALLS;

const CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// `CAP_NET_BIND_SERVICE` for 10; `CAP_<n>` for numbers this table lacks
/// (the engine's `vigil.capability.name` uses the same spelling).
pub fn capability_name(cap: u8) -> String {
    match CAPS.get(usize::from(cap)) {
        Some(n) => format!("CAP_{n}"),
        None => format!("CAP_{cap}"),
    }
}

/// The name of an x86_64 syscall number, if the kernel defines it.
pub fn syscall_name(nr: u16) -> Option<&'static str> {
    SYSCALLS
        .binary_search_by_key(&nr, |&(n, _)| n)
        .ok()
        .map(|i| SYSCALLS[i].1)
}

/// The number of an x86_64 syscall name.
pub fn syscall_number(name: &str) -> Option<u16> {
    SYSCALLS
        .iter()
        .find(|&&(_, n)| n == name)
        .map(|&(nr, _)| nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_syscall_numbers() {
        // (number, name) from the x86_64 syscall table.
        let cases = [
            (0, "read"),
            (1, "write"),
            (2, "open"),
            (3, "close"),
            (9, "mmap"),
            (15, "rt_sigreturn"),
            (39, "getpid"),
            (59, "execve"),
            (60, "exit"),
            (101, "ptrace"),
            (158, "arch_prctl"),
            (202, "futex"),
            (231, "exit_group"),
            (257, "openat"),
            (262, "newfstatat"),
            (302, "prlimit64"),
            (317, "seccomp"),
            (321, "bpf"),
            (334, "rseq"),
            (435, "clone3"),
            (439, "faccessat2"),
            (450, "set_mempolicy_home_node"),
            (462, "mseal"),
        ];
        for (nr, name) in cases {
            assert_eq!(syscall_name(nr), Some(name), "{nr}");
            assert_eq!(syscall_number(name), Some(nr), "{name}");
        }
        assert_eq!(syscall_name(511), None);
        // Sorted and unique, so the binary search is sound.
        assert!(SYSCALLS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn capability_names() {
        assert_eq!(capability_name(0), "CAP_CHOWN");
        assert_eq!(capability_name(10), "CAP_NET_BIND_SERVICE");
        assert_eq!(capability_name(21), "CAP_SYS_ADMIN");
        assert_eq!(capability_name(40), "CAP_CHECKPOINT_RESTORE");
        assert_eq!(capability_name(63), "CAP_63");
    }
}
