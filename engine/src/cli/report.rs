//! `vigil report`: run-queue latency from the perf history the agent kept
//! ([`crate::perf::History`]), drawn two ways:
//!
//! - per cgroup/container, an ASCII log2 histogram in the style of BCC's
//!   `runqlat` (`usecs : count distribution` with stars), and
//! - an SVG latency heat map (Brendan Gregg's): x = time (one column per
//!   interval, merged when there are many), y = log2 latency bucket,
//!   colour = number of waits; one panel for all cgroups, then one per
//!   busiest cgroup.
//!
//! Works while the agent runs (it appends whole lines) or after it stopped.

use crate::perf::{CgroupHist, HistoryLine, quantile_us, slot_bounds, total};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use vigil_bpf::sched::RQ_SLOTS;

/// Parses `--since`: a number with a unit `s`, `m`, `h` or `d` (`10m`).
pub fn parse_since(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a number and a unit, like 10m, 2h, 30s, 1d"))?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        u => return Err(format!("`{s}`: unknown unit `{u}` (s, m, h or d)")),
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("`{s}`: must be more than 0 and not absurdly large"))
}

/// One cgroup's waits over the whole report window.
#[derive(Debug, Clone)]
pub struct CgroupTotal {
    /// How to name it ([`CgroupHist::label`] of its newest line).
    pub label: String,
    /// Waits after a wakeup, per slot.
    pub wakeup: [u64; RQ_SLOTS],
    /// Waits after a preemption, per slot.
    pub preempted: [u64; RQ_SLOTS],
    /// Total wait, ns.
    pub sum_ns: u64,
}

impl CgroupTotal {
    /// Both kinds of waits, per slot.
    pub fn combined(&self) -> [u64; RQ_SLOTS] {
        let mut v = [0u64; RQ_SLOTS];
        for (k, s) in v.iter_mut().enumerate() {
            *s = self.wakeup[k].saturating_add(self.preempted[k]);
        }
        v
    }
}

fn add(dst: &mut [u64; RQ_SLOTS], src: &[u64]) {
    for (d, s) in dst.iter_mut().zip(src.iter()) {
        *d = d.saturating_add(*s);
    }
}

/// Lines with `t` within the last `since_s` seconds before `now` (Unix s).
pub fn window(lines: &[HistoryLine], since_s: u64, now: i64) -> Vec<&HistoryLine> {
    let from = now.saturating_sub(since_s as i64);
    let mut v: Vec<&HistoryLine> = lines.iter().filter(|l| l.t > from && l.t <= now).collect();
    v.sort_by_key(|l| l.t);
    v
}

/// Per cgroup id, busiest (most waits) first.
pub fn totals(lines: &[&HistoryLine]) -> Vec<(u64, CgroupTotal)> {
    let mut m: BTreeMap<u64, CgroupTotal> = BTreeMap::new();
    for l in lines {
        for c in &l.cgroups {
            let e = m.entry(c.id).or_insert_with(|| CgroupTotal {
                label: c.label(),
                wakeup: [0; RQ_SLOTS],
                preempted: [0; RQ_SLOTS],
                sum_ns: 0,
            });
            e.label = c.label();
            add(&mut e.wakeup, &c.wakeup);
            add(&mut e.preempted, &c.preempted);
            e.sum_ns = e.sum_ns.saturating_add(c.sum_ns);
        }
    }
    let mut v: Vec<(u64, CgroupTotal)> = m.into_iter().collect();
    v.sort_by(|a, b| {
        total(&b.1.combined())
            .cmp(&total(&a.1.combined()))
            .then(a.0.cmp(&b.0))
    });
    v
}

/// The `--json` form of the report: `{"since_s", "intervals", "from",
/// "to", "cgroups": [{"id", "label", "waits", "sum_ns", "wakeup": [..],
/// "preempted": [..]}], "slot_bounds_us": [[lo, hi], ..]}`: slot `k` of
/// the histograms counts waits in `slot_bounds_us[k]` (microseconds, `hi`
/// exclusive), busiest cgroup first.
pub fn render_json(lines: &[&HistoryLine], since_s: u64) -> serde_json::Value {
    use serde_json::json;
    let cgroups: Vec<serde_json::Value> = totals(lines)
        .into_iter()
        .map(|(id, t)| {
            json!({
                "id": id,
                "label": t.label,
                "waits": total(&t.combined()),
                "sum_ns": t.sum_ns,
                "wakeup": t.wakeup.to_vec(),
                "preempted": t.preempted.to_vec(),
            })
        })
        .collect();
    json!({
        "since_s": since_s,
        "intervals": lines.len(),
        "from": lines.first().map(|l| l.t),
        "to": lines.last().map(|l| l.t),
        "cgroups": cgroups,
        "slot_bounds_us": (0..RQ_SLOTS).map(|k| { let (lo, hi) = slot_bounds(k); [lo, hi] }).collect::<Vec<_>>(),
    })
}

/// A BCC-style log2 histogram (`usecs : count distribution`), rows from
/// the first to the last non-empty slot, 40 stars for the largest.
pub fn ascii_hist(slots: &[u64]) -> String {
    let mut out = String::new();
    let (Some(first), Some(last)) = (
        slots.iter().position(|&c| c > 0),
        slots.iter().rposition(|&c| c > 0),
    ) else {
        return out;
    };
    let max = slots.iter().copied().max().unwrap_or(1).max(1);
    let _ = writeln!(out, "{:>24} : count     distribution", "usecs");
    for (k, &c) in slots.iter().enumerate().take(last + 1).skip(first) {
        let (lo, hi) = slot_bounds(k);
        let hi = hi.saturating_sub(1).max(lo);
        let stars = ((c as u128 * 40).div_ceil(max as u128)) as usize;
        let stars = if c == 0 { 0 } else { stars.clamp(1, 40) };
        let _ = writeln!(
            out,
            "{lo:>10} -> {hi:<10} : {c:<9} |{:<40}|",
            "*".repeat(stars)
        );
    }
    out
}

fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.0} us")
    }
}

fn fmt_time(t: i64) -> String {
    let s = crate::ecs::rfc3339(t.saturating_mul(1_000_000_000));
    // 2025-01-02T03:04:05.000000000Z -> 2025-01-02 03:04:05Z
    let date = s.get(..10).unwrap_or("");
    let time = s.get(11..19).unwrap_or("");
    format!("{date} {time}Z")
}

/// The text report: window, then per cgroup (busiest first) a summary
/// line and its histogram; then pid-namespace switches and steal.
pub fn render_text(lines: &[&HistoryLine], since: &str) -> String {
    let mut out = String::new();
    if lines.is_empty() {
        let _ = writeln!(out, "no perf history in the last {since}");
        return out;
    }
    let (t0, t1) = (lines[0].t, lines[lines.len() - 1].t);
    let _ = writeln!(
        out,
        "Run-queue latency (time runnable tasks waited for a CPU), {} intervals from {} to {}:",
        lines.len(),
        fmt_time(t0 - lines[0].secs.round() as i64),
        fmt_time(t1)
    );
    let tots = totals(lines);
    if tots.is_empty() {
        let _ = writeln!(out, "\nno run-queue waits recorded in this window");
    }
    for (id, c) in &tots {
        let all = c.combined();
        let n = total(&all);
        let q = |x| quantile_us(&all, x).map(fmt_us).unwrap_or_default();
        let _ = writeln!(
            out,
            "\n{} [cgroup id {id}]: {n} waits ({} after wakeup, {} after preemption), mean {}, p50 {}, p99 {}",
            c.label,
            total(&c.wakeup),
            total(&c.preempted),
            fmt_us(c.sum_ns as f64 / n.max(1) as f64 / 1e3),
            q(0.5),
            q(0.99),
        );
        out.push_str(&ascii_hist(&all));
    }
    let ns: Vec<u64> = lines.iter().filter_map(|l| l.pidnss).collect();
    if !ns.is_empty() {
        let secs: f64 = lines
            .iter()
            .filter(|l| l.pidnss.is_some())
            .map(|l| l.secs)
            .sum();
        let n: u64 = ns.iter().sum();
        let _ = writeln!(
            out,
            "\npid-namespace switches: {n} ({:.1}/s)",
            n as f64 / secs.max(1e-3)
        );
    }
    let st: Vec<f64> = lines.iter().filter_map(|l| l.steal_max_pct).collect();
    if !st.is_empty() {
        let max = st.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "CPU steal: highest per-CPU share in an interval {max:.1}%"
        );
    }
    out
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

/// White (none) through yellow to dark red (most), on a log scale.
fn heat_colour(c: u64, max: u64) -> String {
    let t = ((1.0 + c as f64).ln() / (1.0 + max.max(1) as f64).ln()).clamp(0.0, 1.0);
    let (r, g, b) = if t < 0.5 {
        let u = t * 2.0;
        (255.0, 255.0 - 55.0 * u, 200.0 - 200.0 * u)
    } else {
        let u = (t - 0.5) * 2.0;
        (255.0 - 75.0 * u, 200.0 - 200.0 * u, 0.0)
    };
    format!("#{:02x}{:02x}{:02x}", r as u8, g as u8, b as u8)
}

fn slot_label(k: usize) -> String {
    let lo = slot_bounds(k).0;
    if lo >= 1_000_000 {
        format!("{}s", lo / 1_000_000)
    } else if lo >= 1000 {
        format!("{}ms", lo / 1000)
    } else {
        format!("{lo}us")
    }
}

/// Most columns a panel gets; longer windows merge neighbouring intervals.
const MAX_COLS: usize = 240;
/// Panels after the "all cgroups" one.
const MAX_PANELS: usize = 6;

/// The SVG heat map of `lines` (time order).
pub fn render_svg(lines: &[&HistoryLine]) -> String {
    // Columns: groups of consecutive intervals.
    let per_col = lines.len().div_ceil(MAX_COLS).max(1);
    let cols: Vec<&[&HistoryLine]> = lines.chunks(per_col).collect();
    let tots = totals(lines);
    let mut panels: Vec<(String, Option<u64>)> = vec![("all cgroups".into(), None)];
    for (id, c) in tots.iter().take(MAX_PANELS) {
        panels.push((c.label.clone(), Some(*id)));
    }
    let grid = |id: Option<u64>| -> Vec<[u64; RQ_SLOTS]> {
        cols.iter()
            .map(|chunk| {
                let mut v = [0u64; RQ_SLOTS];
                for l in chunk.iter() {
                    for c in l.cgroups.iter().filter(|c| id.is_none_or(|i| i == c.id)) {
                        add(&mut v, &CgroupHist::combined(c));
                    }
                }
                v
            })
            .collect()
    };
    let (left, top, cell_h, plot_w, gap) = (70.0, 40.0, 12.0, 720.0, 70.0);
    let cell_w = plot_w / cols.len().max(1) as f64;
    let mut body = String::new();
    let mut y0 = top;
    for (title, id) in &panels {
        let g = grid(*id);
        let lo = g
            .iter()
            .filter_map(|v| v.iter().position(|&c| c > 0))
            .min()
            .unwrap_or(0);
        let hi = g
            .iter()
            .filter_map(|v| v.iter().rposition(|&c| c > 0))
            .max()
            .unwrap_or(0)
            .max(lo);
        let rows = hi - lo + 1;
        let max = g.iter().flat_map(|v| v.iter().copied()).max().unwrap_or(0);
        let ph = rows as f64 * cell_h;
        let _ = writeln!(
            body,
            "<text x=\"{left}\" y=\"{:.1}\" class=\"t\">{} (max {max} waits per cell)</text>",
            y0 - 8.0,
            xml_escape(title)
        );
        let _ = writeln!(
            body,
            "<rect x=\"{left}\" y=\"{y0:.1}\" width=\"{plot_w}\" height=\"{ph:.1}\" fill=\"#ffffff\" stroke=\"#999999\"/>"
        );
        for (ci, v) in g.iter().enumerate() {
            let chunk = cols[ci];
            let t = chunk.last().map(|l| l.t).unwrap_or(0);
            for (k, &c) in v.iter().enumerate().take(hi + 1).skip(lo) {
                if c == 0 {
                    continue;
                }
                let (a, b) = slot_bounds(k);
                let x = left + ci as f64 * cell_w;
                let y = y0 + (hi - k) as f64 * cell_h;
                let _ = writeln!(
                    body,
                    "<rect x=\"{x:.2}\" y=\"{y:.1}\" width=\"{:.2}\" height=\"{cell_h}\" fill=\"{}\"><title>{}: {c} waits of {a}-{} us</title></rect>",
                    cell_w.max(0.5),
                    heat_colour(c, max),
                    fmt_time(t),
                    b.saturating_sub(1).max(a)
                );
            }
        }
        for k in lo..=hi {
            if (k - lo) % 2 == 0 || rows <= 8 {
                let y = y0 + (hi - k) as f64 * cell_h + cell_h * 0.75;
                let _ = writeln!(
                    body,
                    "<text x=\"{:.1}\" y=\"{y:.1}\" class=\"a\" text-anchor=\"end\">{}</text>",
                    left - 4.0,
                    slot_label(k)
                );
            }
        }
        let yb = y0 + ph + 14.0;
        if let (Some(f), Some(l)) = (lines.first(), lines.last()) {
            let _ = writeln!(
                body,
                "<text x=\"{left}\" y=\"{yb:.1}\" class=\"a\">{}</text>",
                fmt_time(f.t)
            );
            let _ = writeln!(
                body,
                "<text x=\"{:.1}\" y=\"{yb:.1}\" class=\"a\" text-anchor=\"end\">{}</text>",
                left + plot_w,
                fmt_time(l.t)
            );
        }
        y0 += ph + gap;
    }
    let height = y0 - gap + 30.0;
    let width = left + plot_w + 20.0;
    let mut out = String::new();
    let _ = writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">"
    );
    let _ = writeln!(
        out,
        "<style>text {{ font-family: monospace; }} .t {{ font-size: 13px; }} .a {{ font-size: 10px; fill: #444444; }}</style>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"18\" class=\"t\">vigil run-queue latency heat map: x time, y wait (log2 buckets), colour waits per cell</text>"
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

/// `vigil report`: reads the history in `dir`, prints the text report for
/// the last `since` to stdout and writes the heat map to `svg` (mode 0600).
/// Returns the exit code (0 ok, 1 no history or cannot write, 2 bad
/// `--since`).
pub fn run(dir: &std::path::Path, since: &str, svg: Option<&std::path::Path>, json: bool) -> u8 {
    let since_s = match parse_since(since) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vigil: --since {e}");
            return 2;
        }
    };
    let (lines, bad) = match crate::perf::read_history(dir) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("vigil: {e}");
            return 1;
        }
    };
    if bad > 0 {
        eprintln!("vigil: {bad} history lines did not parse and were skipped");
    }
    let now = (crate::host::boot_offset_ns() + crate::agent::boot_now_ns() as i64)
        .div_euclid(1_000_000_000);
    let w = window(&lines, since_s, now);
    if json {
        println!("{}", render_json(&w, since_s));
    } else {
        print!("{}", render_text(&w, since));
    }
    if let Some(path) = svg {
        use std::io::Write as _;
        let r = vigil_outputs::private::open(path, vigil_outputs::private::How::Replace)
            .map_err(std::io::Error::from)
            .and_then(|mut f| f.write_all(render_svg(&w).as_bytes()));
        match r {
            Ok(()) => eprintln!(
                "vigil: heat map of {} intervals written to {}",
                w.len(),
                path.display()
            ),
            Err(e) => {
                eprintln!("vigil: --svg {}: {e}", path.display());
                return 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: i64, cgroups: Vec<CgroupHist>) -> HistoryLine {
        HistoryLine {
            t,
            secs: 10.0,
            cgroups,
            pidnss: Some(100),
            steal_max_pct: Some(1.5),
        }
    }

    fn cg(id: u64, path: &str, wakeup: Vec<u64>) -> CgroupHist {
        CgroupHist {
            id,
            path: Some(path.into()),
            container: None,
            wakeup,
            preempted: vec![],
            sum_ns: 1000,
        }
    }

    /// A minimal XML well-formedness check: tags balance, attributes are
    /// quoted, text has no bare `<` or `&` outside entities.
    fn well_formed(s: &str) -> Result<usize, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut elements = 0;
        let mut rest = s;
        while let Some(i) = rest.find('<') {
            let text = &rest[..i];
            for (j, _) in text.match_indices('&') {
                let ent = &text[j..];
                if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| ent.starts_with(e))
                {
                    return Err(format!("bare & in {text:?}"));
                }
            }
            let end = rest[i..].find('>').ok_or("unterminated tag")? + i;
            let tag = &rest[i + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("stray </{name}>"))?;
                if open != name {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
                continue;
            }
            if tag.contains('<') || !tag.matches('"').count().is_multiple_of(2) {
                return Err(format!("bad tag {tag:?}"));
            }
            elements += 1;
            let name = tag
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('/');
            if !tag.ends_with('/') {
                stack.push(name.to_string());
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?}"));
        }
        if !rest.trim().is_empty() {
            return Err("text after the root".into());
        }
        Ok(elements)
    }

    fn history() -> Vec<HistoryLine> {
        let mut v = Vec::new();
        for i in 0..30 {
            // victim: waits of 1-4 ms; quiet: 4-16 us
            let mut slow = vec![0u64; 13];
            slow[11] = 10 + i as u64;
            slow[12] = 40;
            v.push(line(
                1_700_000_000 + i * 10,
                vec![
                    cg(2, "/victim<&>", slow),
                    cg(3, "/quiet", vec![0, 0, 0, 5, 20]),
                ],
            ));
        }
        v
    }

    #[test]
    fn since_parses_units() {
        assert_eq!(parse_since("10m"), Ok(600));
        assert_eq!(parse_since("2h"), Ok(7200));
        assert_eq!(parse_since("45"), Ok(45));
        assert!(parse_since("10x").unwrap_err().contains("unknown unit"));
        assert!(parse_since("m").is_err());
        assert!(parse_since("0s").is_err());
    }

    #[test]
    fn window_keeps_the_recent_lines() {
        let h = history();
        let now = 1_700_000_000 + 29 * 10;
        assert_eq!(window(&h, 60, now).len(), 6);
        assert_eq!(window(&h, 100_000, now).len(), 30);
        assert!(window(&h, 60, now - 100_000).is_empty());
    }

    #[test]
    fn ascii_histogram_has_bcc_shape() {
        let h = history();
        let w = window(&h, 100_000, 1_700_001_000);
        let text = render_text(&w, "10m");
        // busiest first: the victim (30 * ~65 waits) before the quiet one
        let v = text.find("cgroup /victim<&>").expect(&text);
        let q = text.find("cgroup /quiet").expect(&text);
        assert!(v < q, "{text}");
        assert!(text.contains("usecs : count     distribution"), "{text}");
        // victim rows: 1024 -> 2047 and 2048 -> 4095, the larger has 40 stars
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with("2048 -> 4095"))
            .expect(&text);
        assert!(row.contains(&format!("|{}|", "*".repeat(40))), "{row}");
        assert!(row.contains(": 1200 "), "{row}");
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with("1024 -> 2047"))
            .expect(&text);
        let stars = row.matches('*').count();
        assert!((25..40).contains(&stars), "{row}");
        // quiet: 4 -> 7 and 8 -> 15 only, nothing from 0 up
        assert!(text.contains("         4 -> 7          : 150 "), "{text}");
        assert!(!text.contains("         0 -> 0 "), "{text}");
        assert!(text.contains("p50 2."), "victim p50 in ms: {text}");
        assert!(
            text.contains("pid-namespace switches: 3000 (10.0/s)"),
            "{text}"
        );
    }

    #[test]
    fn svg_heat_map_is_well_formed() {
        let h = history();
        let w = window(&h, 100_000, 1_700_001_000);
        let svg = render_svg(&w);
        assert!(svg.starts_with("<?xml"), "{svg}");
        assert!(svg.ends_with("</svg>\n"));
        let n = well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(n > 100, "{n} elements");
        // three panels (all, victim, quiet), the path escaped
        assert_eq!(svg.matches("waits per cell)</text>").count(), 3, "{svg}");
        assert!(svg.contains("/victim&lt;&amp;&gt;"));
        // 30 columns x (2 victim + 2 quiet) slots in the "all" panel
        let cells = svg.matches("<rect ").count();
        assert_eq!(cells, 3 + 30 * 4 + 30 * 2 + 30 * 2, "{cells}");
        // the busiest cell is dark red, an empty slot has no cell
        assert!(svg.contains("fill=\"#b40000\""), "{svg}");
        // many intervals merge into at most MAX_COLS columns
        let many: Vec<HistoryLine> = (0..1000)
            .map(|i| line(i, vec![cg(1, "/a", vec![1])]))
            .collect();
        let w: Vec<&HistoryLine> = many.iter().collect();
        let svg = render_svg(&w);
        well_formed(&svg).unwrap();
        assert!(svg.matches("<rect ").count() <= 2 * (MAX_COLS + 1));
        // and an empty window still renders
        well_formed(&render_svg(&[])).unwrap();
    }
}
