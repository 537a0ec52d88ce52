//! The BPF programs' licence strings agree with the licences the workspace
//! declares: every `bpf/c/*.bpf.c` carries a GPL-2.0 SPDX line and a
//! `SEC("license")` string the kernel reads as GPL v2, the compiled objects
//! embedded in the binary carry that same string in their `license`
//! section, and LICENSE, LICENSE-GPL-2.0 and LICENSE-APACHE say so.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The `SEC("license")` strings of a C source.
fn source_licences(src: &str) -> Vec<String> {
    src.lines()
        .filter(|l| l.contains("SEC(\"license\")"))
        .map(|l| {
            let v = l.split('=').nth(1).expect("SEC(\"license\") = \"...\"");
            v.trim()
                .trim_end_matches(';')
                .trim()
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

fn u16_at(b: &[u8], o: usize) -> usize {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize
}
fn u32_at(b: &[u8], o: usize) -> usize {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize
}
fn u64_at(b: &[u8], o: usize) -> usize {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize
}

/// The NUL-terminated contents of the `license` section of an ELF64
/// little-endian object.
fn object_licence(elf: &[u8]) -> Option<String> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let shoff = u64_at(elf, 0x28);
    let shentsize = u16_at(elf, 0x3a);
    let shnum = u16_at(elf, 0x3c);
    let shstrndx = u16_at(elf, 0x3e);
    let sh = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(elf, sh(shstrndx) + 0x18);
    for i in 0..shnum {
        let name_off = strtab + u32_at(elf, sh(i));
        let name = &elf[name_off..];
        let name = &name[..name.iter().position(|&c| c == 0)?];
        if name == b"license" {
            let off = u64_at(elf, sh(i) + 0x18);
            let size = u64_at(elf, sh(i) + 0x20);
            let data = &elf[off..off + size];
            let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
            return Some(String::from_utf8_lossy(&data[..end]).into_owned());
        }
    }
    None
}

/// The kernel's licence strings that mean GPL v2 (include/linux/license.h,
/// `license_is_gpl_compatible`, restricted to those without a second
/// licence: the programs are GPL-2.0-only).
const GPL_V2: [&str; 2] = ["GPL", "GPL v2"];

#[test]
fn every_bpf_source_declares_gpl_v2_in_its_spdx_line_and_licence_section() {
    let dir = root().join("bpf/c");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".bpf.c") {
            continue;
        }
        n += 1;
        let src = read(&p);
        let spdx = src.lines().next().unwrap_or("");
        assert!(
            spdx.contains("SPDX-License-Identifier: GPL-2.0")
                && !spdx.contains(" OR ")
                && !spdx.contains("GPL-2.0+")
                && !spdx.contains("or-later"),
            "{name}: first line must be the GPL-2.0 SPDX identifier, is {spdx:?}"
        );
        let lic = source_licences(&src);
        assert_eq!(lic.len(), 1, "{name}: one SEC(\"license\"), found {lic:?}");
        assert!(
            GPL_V2.contains(&lic[0].as_str()),
            "{name}: licence string {:?} is not one the kernel reads as GPL v2",
            lic[0]
        );
    }
    assert!(n >= 4, "found only {n} bpf/c/*.bpf.c files");
}

#[test]
fn the_embedded_objects_carry_the_sources_licence_string() {
    for name in ["vigil", "sched", "ktools", "perfsys"] {
        let obj = Path::new(env!("OUT_DIR")).join(format!("{name}.bpf.o"));
        let elf = std::fs::read(&obj).unwrap_or_else(|e| panic!("{}: {e}", obj.display()));
        let got =
            object_licence(&elf).unwrap_or_else(|| panic!("{name}.bpf.o: no license section"));
        let src = source_licences(&read(&root().join(format!("bpf/c/{name}.bpf.c"))));
        assert_eq!(vec![got], src, "{name}.bpf.o");
    }
}

#[test]
fn the_licence_files_name_the_two_licences_the_workspace_declares() {
    let cargo = read(&root().join("Cargo.toml"));
    let decl = cargo
        .lines()
        .find(|l| l.trim_start().starts_with("license ="))
        .expect("workspace license");
    assert!(
        decl.contains("Apache-2.0") && decl.contains("GPL-2.0-only"),
        "{decl}"
    );
    let gpl = read(&root().join("LICENSE-GPL-2.0"));
    assert!(
        gpl.contains("GNU GENERAL PUBLIC LICENSE") && gpl.contains("Version 2, June 1991"),
        "LICENSE-GPL-2.0 is not the GPL version 2 text"
    );
    let apache = read(&root().join("LICENSE-APACHE"));
    assert!(
        apache.contains("Apache License") && apache.contains("Version 2.0, January 2004"),
        "LICENSE-APACHE is not the Apache License 2.0 text"
    );
    let top = read(&root().join("LICENSE"));
    for must in [
        "bpf/c/*.bpf.c",
        "GPL-2.0-only",
        "LICENSE-GPL-2.0",
        "LICENSE-APACHE",
    ] {
        assert!(top.contains(must), "LICENSE does not mention {must}");
    }
}

#[test]
fn the_elf_reader_finds_a_licence_section_and_rejects_garbage() {
    assert_eq!(object_licence(b"not an elf"), None);
    assert_eq!(
        source_licences("char LICENSE[] SEC(\"license\") = \"GPL\";"),
        ["GPL"]
    );
}
