//! `vigil report --flame`: the CPU profiler's folded stacks the agent kept
//! (`profile-folded.txt` in the data directory), summed over the window
//! and, with `--cgroup`, the cgroups whose path contains the text; writes
//! them folded (flamegraph.pl's input) and as a flame graph SVG (inferno).

use crate::perf::profile::FOLDED_FILE;
use std::collections::BTreeMap;
use std::path::Path;

/// Sums the folded lines (`unix_s<TAB>cgroup<TAB>stack count`) at or after
/// `from` (Unix s) whose cgroup contains `cgroup`; returns (stack -> count,
/// lines that did not parse).
pub fn aggregate<'a>(
    lines: impl Iterator<Item = &'a str>,
    from: i64,
    cgroup: Option<&str>,
) -> (BTreeMap<String, u64>, usize) {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    let mut bad = 0;
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let mut it = l.splitn(3, '\t');
        let (Some(t), Some(cg), Some(rest)) = (it.next(), it.next(), it.next()) else {
            bad += 1;
            continue;
        };
        let Ok(t) = t.parse::<i64>() else {
            bad += 1;
            continue;
        };
        let Some((stack, n)) = rest.rsplit_once(' ') else {
            bad += 1;
            continue;
        };
        let Ok(n) = n.parse::<u64>() else {
            bad += 1;
            continue;
        };
        if t < from || cgroup.is_some_and(|c| !cg.contains(c)) {
            continue;
        }
        *out.entry(stack.to_string()).or_default() += n;
    }
    (out, bad)
}

/// The folded text of an aggregate (one `stack count` line each).
pub fn folded_text(m: &BTreeMap<String, u64>) -> String {
    let mut s = String::new();
    for (k, n) in m {
        s.push_str(k);
        s.push(' ');
        s.push_str(&n.to_string());
        s.push('\n');
    }
    s
}

/// A flame graph SVG of folded text.
pub fn svg(folded: &str, title: &str) -> Result<Vec<u8>, String> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    opts.count_name = "samples".into();
    let mut out = Vec::new();
    inferno::flamegraph::from_lines(&mut opts, folded.lines(), &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// `vigil report --flame OUT`: writes `OUT.folded` and `OUT.svg` (0600)
/// from the folded stacks in `dir` of the last `since`, prints the top
/// functions. Exit code 0, 1 (no stacks, cannot read or write), 2 (bad
/// `--since`).
pub fn run(dir: &Path, out: &Path, since: &str, cgroup: Option<&str>) -> u8 {
    let since_s = match super::report::parse_since(since) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vigil: --since {e}");
            return 2;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut text = String::new();
    let mut found = false;
    for name in [format!("{FOLDED_FILE}.1"), FOLDED_FILE.to_string()] {
        if let Ok(t) = std::fs::read_to_string(dir.join(&name)) {
            found = true;
            text.push_str(&t);
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    if !found {
        eprintln!(
            "vigil: {}: no folded stacks (the agent writes them while [perf] profile and history are on)",
            dir.join(FOLDED_FILE).display()
        );
        return 1;
    }
    let (agg, bad) = aggregate(text.lines(), now - since_s as i64, cgroup);
    if bad > 0 {
        eprintln!("vigil: {bad} folded lines did not parse and were skipped");
    }
    if agg.is_empty() {
        eprintln!("vigil: no samples in the last {since}");
        return 1;
    }
    let folded = folded_text(&agg);
    let base = out.to_string_lossy().to_string();
    let (fp, sp) = (format!("{base}.folded"), format!("{base}.svg"));
    if let Err(e) = write_private(Path::new(&fp), folded.as_bytes()) {
        eprintln!("vigil: {fp}: {e}");
        return 1;
    }
    let title = match cgroup {
        Some(c) => format!("vigil CPU profile, last {since}, cgroup ~ {c}"),
        None => format!("vigil CPU profile, last {since}"),
    };
    match svg(&folded, &title) {
        Ok(s) => {
            if let Err(e) = write_private(Path::new(&sp), &s) {
                eprintln!("vigil: {sp}: {e}");
                return 1;
            }
        }
        Err(e) => {
            eprintln!("vigil: flame graph: {e}");
            return 1;
        }
    }
    let total: u64 = agg.values().sum();
    let mut leaf: BTreeMap<&str, u64> = BTreeMap::new();
    for (k, n) in &agg {
        *leaf.entry(k.rsplit(';').next().unwrap_or(k)).or_default() += n;
    }
    let mut top: Vec<(&str, u64)> = leaf.into_iter().collect();
    top.sort_by_key(|b| std::cmp::Reverse(b.1));
    println!("{total} samples in the last {since}; wrote {fp} and {sp}");
    println!("{:>8} {:>6}  function", "samples", "share");
    for (f, n) in top.iter().take(15) {
        println!("{n:>8} {:>5.1}%  {f}", 100.0 * *n as f64 / total as f64);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_sum_by_window_and_cgroup() {
        let text = "100\t/sys/fs/cgroup/a\tbusy;main;spin 5\n\
                    200\t/sys/fs/cgroup/a\tbusy;main;spin 3\n\
                    200\t/sys/fs/cgroup/b\tsh;main 2\n\
                    garbage\n\
                    200\t-\tx;y notanumber\n";
        let (m, bad) = aggregate(text.lines(), 150, None);
        assert_eq!(bad, 2);
        assert_eq!(m.get("busy;main;spin"), Some(&3));
        assert_eq!(m.get("sh;main"), Some(&2));
        let (m, _) = aggregate(text.lines(), 0, Some("/a"));
        assert_eq!(m.len(), 1);
        assert_eq!(m.get("busy;main;spin"), Some(&8));
        let f = folded_text(&m);
        assert_eq!(f, "busy;main;spin 8\n");
        let s = svg(&f, "t").expect("svg");
        let s = String::from_utf8(s).unwrap();
        assert!(
            s.contains("<svg") && s.contains("spin"),
            "{}",
            &s[..200.min(s.len())]
        );
    }
}
