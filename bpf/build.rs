//! Compiles each C object (bpf/c/*.bpf.c) with clang into $OUT_DIR/<name>.bpf.o,
//! which the crate embeds with `include_bytes_aligned!`, so a copied binary runs alone.
//!
//! vmlinux.h: a vendored `bpf/c/vmlinux.h` is used when present (reproducible builds,
//! no BTF needed at build time); otherwise it is generated from the build host's
//! /sys/kernel/btf/vmlinux with bpftool. CO-RE relocations make the object portable
//! to other kernels either way.
use std::{env, path::PathBuf, process::Command};

fn find_tool(env_var: &str, candidates: &[&str]) -> String {
    if let Ok(v) = env::var(env_var) {
        return v;
    }
    for c in candidates {
        let ok = Command::new(c)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return (*c).to_string();
        }
    }
    panic!(
        "none of {candidates:?} found; run scripts/install-deps.sh (apt-get install clang-19 bpftool libbpf-dev) or set {env_var}"
    );
}

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let c_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("c");
    for entry in std::fs::read_dir(&c_dir).expect("read bpf/c") {
        let p = entry.expect("dir entry").path();
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed={}", c_dir.display());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=BPFTOOL");

    let inc_dir = if c_dir.join("vmlinux.h").exists() {
        c_dir.clone()
    } else {
        let gen_dir = out.join("vmlinux");
        std::fs::create_dir_all(&gen_dir).expect("mkdir vmlinux");
        let bpftool = find_tool("BPFTOOL", &["bpftool", "/usr/sbin/bpftool"]);
        let o = Command::new(&bpftool)
            .args([
                "btf",
                "dump",
                "file",
                "/sys/kernel/btf/vmlinux",
                "format",
                "c",
            ])
            .output()
            .expect("run bpftool");
        assert!(
            o.status.success(),
            "bpftool btf dump failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::write(gen_dir.join("vmlinux.h"), o.stdout).expect("write vmlinux.h");
        gen_dir
    };

    let clang = find_tool("CLANG", &["clang-19", "clang"]);
    // Every `*.bpf.c` becomes its own object `$OUT_DIR/<name>.bpf.o`: the
    // security sensors (vigil.bpf.c) and optional groups loaded separately.
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&c_dir)
        .expect("read bpf/c")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();
    for src in sources {
        let name = src.file_name().expect("file name").to_string_lossy();
        let obj = out.join(name.replace(".bpf.c", ".bpf.o"));
        let output = Command::new(&clang)
            .args([
                "-O2",
                "-g",
                "-target",
                "bpf",
                "-D__TARGET_ARCH_x86",
                "-mcpu=v3",
            ])
            .args(["-Wall", "-Werror"])
            .arg(format!("-I{}", inc_dir.display()))
            .arg(format!("-I{}", c_dir.display()))
            .arg("-I/usr/include/x86_64-linux-gnu")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .output()
            .expect("spawn clang");
        if !output.status.success() {
            panic!(
                "clang failed compiling bpf/c/{name}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
