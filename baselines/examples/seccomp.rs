//! Prints the OCI seccomp profile vigil exports for a profile that learned
//! the syscalls named on the command line:
//! `cargo run -p vigil-baselines --example seccomp -- read write openat`.
//! (Used to check by hand that runc starts a workload under such a profile.)

use vigil_baselines::{SYSCALL_WORDS, seccomp_json, syscall_number};

fn main() {
    let mut set = [0u64; SYSCALL_WORDS];
    for name in std::env::args().skip(1) {
        match syscall_number(&name) {
            Some(n) => set[usize::from(n / 64)] |= 1 << (n % 64),
            None => {
                eprintln!("unknown x86_64 syscall `{name}`");
                std::process::exit(2);
            }
        }
    }
    match seccomp_json(&set) {
        Ok(j) => print!("{j}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
