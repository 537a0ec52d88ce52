//! Userspace symbolization for the CPU profiler: user addresses through
//! the process's mappings (`/proc/PID/maps`) and the ELF symbol tables
//! (`.symtab`, else `.dynsym`) of the mapped files, read through
//! `/proc/PID/root` so container files resolve; JIT code through the
//! runtime's `/tmp/perf-PID.map`; kernel addresses through
//! [`crate::perf::collector::Kallsyms`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One executable mapping of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// Path as the process sees it (`[anon]`-like names start with `[`).
    pub path: String,
}

/// The executable mappings in `/proc/PID/maps` text.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let (Some(range), Some(perms), Some(off)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if !perms.contains('x') {
            continue;
        }
        let (_dev, _ino) = (it.next(), it.next());
        let path = it.collect::<Vec<_>>().join(" ");
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end), Ok(offset)) = (
            u64::from_str_radix(a, 16),
            u64::from_str_radix(b, 16),
            u64::from_str_radix(off, 16),
        ) else {
            continue;
        };
        out.push(Mapping {
            start,
            end,
            offset,
            path,
        });
    }
    out.sort_by_key(|m| m.start);
    out
}

/// A sorted symbol table: (start, size, name).
#[derive(Debug, Default, Clone)]
pub struct SymTab {
    syms: Vec<(u64, u64, String)>,
}

impl SymTab {
    /// A table from (start, size, name) rows.
    pub fn new(mut syms: Vec<(u64, u64, String)>) -> SymTab {
        syms.sort_by_key(|s| s.0);
        SymTab { syms }
    }

    /// The symbol covering `addr` (size 0 symbols cover up to the next).
    pub fn lookup(&self, addr: u64) -> Option<&str> {
        let i = self.syms.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        let (start, size, name) = &self.syms[i];
        let end = if *size > 0 {
            start.saturating_add(*size)
        } else {
            self.syms
                .get(i + 1)
                .map(|n| n.0)
                .unwrap_or(start.saturating_add(1 << 16))
        };
        (addr < end).then_some(name.as_str())
    }

    /// The start of the symbol covering `addr`.
    pub fn start_of(&self, addr: u64) -> Option<u64> {
        self.lookup(addr)?;
        let i = self.syms.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        Some(self.syms[i].0)
    }

    /// Symbols held.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// No symbols.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }
}

/// A perf map (`/tmp/perf-PID.map`: `START SIZE name`, hex) as a table.
pub fn parse_perf_map(text: &str) -> SymTab {
    SymTab::new(
        text.lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, ' ');
                let a = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
                let s = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
                Some((a, s, it.next()?.trim().to_string()))
            })
            .collect(),
    )
}

/// An ELF file's function symbols and its loadable segments.
#[derive(Debug, Default, Clone)]
pub struct ElfSyms {
    /// Function symbols by virtual address.
    pub syms: SymTab,
    /// PT_LOAD segments: (file offset, virtual address, file size).
    pub loads: Vec<(u64, u64, u64)>,
    /// Functions that set up a frame pointer, by start address: the offset
    /// from the start at which the frame is set (after `push %rbp; mov
    /// %rsp,%rbp`, and an `endbr64` before them).
    pub framed: HashMap<u64, u64>,
}

/// Where an x86-64 function's code has set up its frame pointer: the
/// offset after `[endbr64] push %rbp; mov %rsp,%rbp`, or None when it does
/// not start so (a function built without a frame, as GCC builds leaves
/// that use no stack).
pub fn frame_setup(code: &[u8]) -> Option<u64> {
    let (code, pre) = match code.strip_prefix(&[0xf3, 0x0f, 0x1e, 0xfa]) {
        Some(rest) => (rest, 4),
        None => (code, 0),
    };
    code.starts_with(&[0x55, 0x48, 0x89, 0xe5])
        .then_some(pre + 4)
}

impl ElfSyms {
    /// Parses an ELF image; None when it is not one.
    pub fn parse(data: &[u8]) -> Option<ElfSyms> {
        use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
        let f = object::File::parse(data).ok()?;
        let pick = |it: object::SymbolIterator<'_, '_>| -> Vec<(u64, u64, String)> {
            it.filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
                .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
                .collect()
        };
        let mut syms = pick(f.symbols());
        if syms.is_empty() {
            syms = pick(f.dynamic_symbols());
        }
        let loads = f
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, s.address(), size)
            })
            .collect();
        let loads: Vec<(u64, u64, u64)> = loads;
        let mut framed = HashMap::new();
        for (a, _, _) in &syms {
            let Some((foff, vaddr, _)) = loads.iter().find(|(_, v, sz)| *a >= *v && *a < v + sz)
            else {
                continue;
            };
            let off = (a - vaddr + foff) as usize;
            if let Some(at) = data.get(off..off.saturating_add(8)).and_then(frame_setup) {
                framed.insert(*a, at);
            }
        }
        Some(ElfSyms {
            syms: SymTab::new(syms),
            loads,
            framed,
        })
    }

    /// Whether the code at a file offset runs without its own frame
    /// pointer (its function sets none, or has not set it yet); None when
    /// no function covers it.
    pub fn frameless_at_offset(&self, off: u64) -> Option<bool> {
        let (foff, vaddr, _) = self
            .loads
            .iter()
            .find(|(o, _, sz)| off >= *o && off < o + sz)?;
        let a = off - foff + vaddr;
        let start = self.syms.start_of(a)?;
        Some(match self.framed.get(&start) {
            Some(at) => a < start + at,
            None => true,
        })
    }

    /// The symbol at a file offset (through the segment holding it).
    pub fn at_offset(&self, off: u64) -> Option<&str> {
        let (foff, vaddr, _) = self
            .loads
            .iter()
            .find(|(o, _, sz)| off >= *o && off < o + sz)?;
        self.syms.lookup(off - foff + vaddr)
    }
}

/// Symbolizes the user addresses of processes, caching files' tables.
#[derive(Debug, Default)]
pub struct Symbolizer {
    files: HashMap<PathBuf, Option<ElfSyms>>,
    procs: HashMap<u32, (Vec<Mapping>, Option<SymTab>)>,
}

/// Upper bound of an ELF file vigil reads for symbols.
const MAX_ELF: u64 = 512 << 20;

impl Symbolizer {
    /// Forgets the process mappings read (call once per collection: they
    /// change as processes map and unmap).
    pub fn new_round(&mut self) {
        self.procs.clear();
        if self.files.len() > 512 {
            self.files.clear();
        }
    }

    fn proc(&mut self, tgid: u32) -> &(Vec<Mapping>, Option<SymTab>) {
        self.procs.entry(tgid).or_insert_with(|| {
            let maps = std::fs::read_to_string(format!("/proc/{tgid}/maps"))
                .map(|t| parse_maps(&t))
                .unwrap_or_default();
            let nspid = std::fs::read_to_string(format!("/proc/{tgid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("NSpid:"))
                        .and_then(|l| l.split_whitespace().last()?.parse::<u32>().ok())
                })
                .unwrap_or(tgid);
            let perf_map = [
                format!("/proc/{tgid}/root/tmp/perf-{nspid}.map"),
                format!("/tmp/perf-{tgid}.map"),
            ]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|t| parse_perf_map(&t));
            (maps, perf_map)
        })
    }

    fn file(&mut self, tgid: u32, path: &str) -> Option<&ElfSyms> {
        let full = Path::new(&format!("/proc/{tgid}/root")).join(path.trim_start_matches('/'));
        self.files
            .entry(full.clone())
            .or_insert_with(|| {
                let meta = std::fs::metadata(&full).ok()?;
                if !meta.is_file() || meta.len() > MAX_ELF {
                    return None;
                }
                ElfSyms::parse(&std::fs::read(&full).ok()?)
            })
            .as_ref()
    }

    /// Whether the user address `addr` of `tgid` (a sampled instruction)
    /// is in an ELF function that runs without its own frame pointer
    /// there; false when unknown (no file, no symbol, JIT code).
    pub fn frameless(&mut self, tgid: u32, addr: u64) -> bool {
        let m = {
            let (maps, jit) = self.proc(tgid);
            if jit.as_ref().and_then(|j| j.lookup(addr)).is_some() {
                return false;
            }
            let i = maps.partition_point(|m| m.start <= addr);
            match i
                .checked_sub(1)
                .and_then(|i| maps.get(i))
                .filter(|m| addr < m.end && m.path.starts_with('/'))
            {
                Some(m) => m.clone(),
                None => return false,
            }
        };
        let off = addr - m.start + m.offset;
        self.file(tgid, &m.path)
            .and_then(|e| e.frameless_at_offset(off))
            .unwrap_or(false)
    }

    /// The name of a user address of `tgid`: `function`, else
    /// `[file basename]` when the file has no symbol there, else the
    /// address in hex.
    pub fn user(&mut self, tgid: u32, addr: u64) -> String {
        let (m, jit) = {
            let (maps, jit) = self.proc(tgid);
            let i = maps.partition_point(|m| m.start <= addr);
            let m = i
                .checked_sub(1)
                .and_then(|i| maps.get(i))
                .filter(|m| addr < m.end)
                .cloned();
            (
                m,
                jit.as_ref()
                    .and_then(|j| j.lookup(addr))
                    .map(str::to_string),
            )
        };
        if let Some(j) = jit {
            return j;
        }
        let Some(m) = m else {
            return format!("{addr:#x}");
        };
        if m.path.starts_with('/') {
            let off = addr - m.start + m.offset;
            let base = m.path.rsplit('/').next().unwrap_or(&m.path).to_string();
            return match self.file(tgid, &m.path).and_then(|e| e.at_offset(off)) {
                Some(n) => n.to_string(),
                None => format!("[{base}]"),
            };
        }
        format!("{addr:#x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_executable_mappings() {
        let m = parse_maps(
            "55d0c0000000-55d0c0001000 r--p 00000000 fe:01 123 /usr/bin/busy\n\
             55d0c0001000-55d0c0002000 r-xp 00001000 fe:01 123 /usr/bin/busy\n\
             7f0000000000-7f0000001000 rwxp 00000000 00:00 0 \n\
             7f1000000000-7f1000100000 r-xp 00028000 fe:01 9 /usr/lib/x86_64-linux-gnu/libc.so.6\n",
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].start, 0x55d0c0001000);
        assert_eq!(m[0].offset, 0x1000);
        assert_eq!(m[0].path, "/usr/bin/busy");
        assert_eq!(m[1].path, "");
    }

    #[test]
    fn symbol_tables_cover_sizes_and_gaps() {
        let t = SymTab::new(vec![
            (0x2000, 0, "b".into()),
            (0x1000, 0x10, "a".into()),
            (0x3000, 0x100, "c".into()),
        ]);
        assert_eq!(t.lookup(0x1008), Some("a"));
        assert_eq!(t.lookup(0x1010), None);
        assert_eq!(t.lookup(0x2fff), Some("b"));
        assert_eq!(t.lookup(0x30ff), Some("c"));
        assert_eq!(t.lookup(0x3100), None);
        assert_eq!(t.lookup(0x10), None);
        let j = parse_perf_map("7f00001000 40 LazyCompile:*hot app.js:3\nbad line\n");
        assert_eq!(j.lookup(0x7f00001020), Some("LazyCompile:*hot app.js:3"));
        assert_eq!(j.len(), 1);
    }

    #[test]
    fn frame_setup_is_found_after_an_optional_endbr64() {
        assert_eq!(frame_setup(&[0x55, 0x48, 0x89, 0xe5, 0x90]), Some(4));
        assert_eq!(
            frame_setup(&[0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5]),
            Some(8)
        );
        // GCC's frameless leaf: test %rdi,%rdi first
        assert_eq!(frame_setup(&[0x48, 0x85, 0xff, 0x74, 0x26]), None);
        assert_eq!(frame_setup(&[0x55]), None);
        let e = ElfSyms {
            syms: SymTab::new(vec![
                (0x1149, 0x2c, "leaf".into()),
                (0x1175, 0x95, "main".into()),
            ]),
            loads: vec![(0x1000, 0x1000, 0x1000)],
            framed: [(0x1175, 4)].into(),
        };
        assert_eq!(e.frameless_at_offset(0x1153), Some(true));
        assert_eq!(e.frameless_at_offset(0x1175), Some(true), "before push");
        assert_eq!(e.frameless_at_offset(0x119d), Some(false));
        assert_eq!(e.frameless_at_offset(0x1300), None);
    }

    #[test]
    fn own_executable_resolves_a_function_of_its_own() {
        // this test binary's own text: the address of a function in it
        // resolves to that function through /proc/self/maps and the ELF
        #[inline(never)]
        fn marker_function_for_symbolizer() -> u64 {
            std::hint::black_box(7)
        }
        let addr = marker_function_for_symbolizer as *const () as usize as u64;
        let mut s = Symbolizer::default();
        let name = s.user(std::process::id(), addr);
        assert!(
            name.contains("marker_function_for_symbolizer"),
            "resolved to {name}"
        );
        assert!(ElfSyms::parse(b"not an elf").is_none());
    }
}
