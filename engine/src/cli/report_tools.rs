//! `vigil report --tool TOOL --records FILE`: BCC-style text views of the
//! kernel-work tools, summed over the metric records vigil wrote
//! (`event.dataset: vigil.<tool>`) in the window: `kmem`, `slabratetop`,
//! `memleak`, `overlayfs`, `blkthrot`, `kpages`, `numamove`, `workq`, `softirqs`, `hardirqs`,
//! `tasklets`, and the CPU profiler (`profile`: samples, share of a CPU and
//! hottest functions per process, and how many stacks came back empty or
//! truncated). memleak's view is the last collection in the window (what
//! is outstanding then), not a sum.

use serde_json::Value;
use std::collections::BTreeMap;

/// The tools with a text view: every kernel-work tool, named as `vigil
/// probe` shows them, and the CPU profiler (`profile`).
pub fn tools() -> impl Iterator<Item = &'static str> {
    vigil_bpf::ktools::SENSOR_NAMES
        .into_iter()
        .chain(["profile"])
}

/// profile view per process: (comm, samples, kernel samples, cpu% x
/// intervals, intervals, samples per function from the records' top 5).
type ProfileSums = (String, u64, u64, f64, u64, BTreeMap<String, u64>);

fn ts_of(r: &Value) -> Option<i64> {
    let s = r["@timestamp"].as_str()?;
    parse_rfc3339(s)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]Z` (vigil's `@timestamp`) as ns since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let frac = &s[19..s.len() - 1];
    let ns = match frac.strip_prefix('.') {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()) => {
            f.parse::<i64>().ok()? * 10i64.pow(9 - f.len() as u32)
        }
        None if frac.is_empty() => 0,
        _ => return None,
    };
    // days from civil (H. Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000) + ns)
}

/// blkthrot view: (bios, bytes, timed bios, ms held, worst p99 us).
type ThrotSums = (u64, u64, u64, f64, f64);

/// overlayfs view: (calls, bytes, errors, latency us x calls, worst p99).
type OverlaySums = (u64, u64, u64, f64, f64);

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Renders the view of `tool` from JSON lines `text`, keeping records not
/// older than `since_s` before `now_s` (None: all). Lines that are not
/// JSON objects are counted in the second value.
pub fn render(tool: &str, text: &str, since_s: Option<u64>, now_s: i64) -> (String, usize) {
    let dataset = format!("vigil.{tool}");
    let mut bad = 0;
    let mut recs = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(r) = serde_json::from_str::<Value>(line) else {
            bad += 1;
            continue;
        };
        if r["event"]["dataset"] != dataset.as_str() || r["event"]["kind"] != "metric" {
            continue;
        }
        if let (Some(s), Some(t)) = (since_s, ts_of(&r))
            && t.div_euclid(1_000_000_000) < now_s - s as i64
        {
            continue;
        }
        recs.push(r);
    }
    let mut out = String::new();
    let secs: f64 = recs
        .iter()
        .filter(|r| r["event"]["action"] != "kmem-sites" && r["event"]["action"] != "memleak-table")
        .filter_map(|r| r["vigil"][tool]["interval_s"].as_f64())
        .fold(0.0, f64::max);
    let n = recs.len();
    out.push_str(&format!(
        "{tool}: {n} records{}\n\n",
        if secs > 0.0 {
            format!(" ({secs:.0} s intervals)")
        } else {
            String::new()
        }
    ));
    match tool {
        "memleak" => {
            // the last collection: its table record and the groups with
            // the same timestamp
            let last = recs
                .iter()
                .filter_map(|r| r["@timestamp"].as_str())
                .max()
                .unwrap_or("")
                .to_string();
            let now: Vec<&Value> = recs
                .iter()
                .filter(|r| r["@timestamp"].as_str() == Some(last.as_str()))
                .collect();
            if let Some(t) = now.iter().find(|r| r["event"]["action"] == "memleak-table") {
                let m = &t["vigil"]["memleak"];
                out.push_str(&format!(
                    "at {last}: {} allocations tracked, {} outstanding >= {} s ({} bytes) in {} stacks, sampled 1 in {}; {} not tracked (table full)\n\n",
                    u(&m["tracked"]),
                    u(&m["outstanding_allocs"]),
                    u(&m["min_age_s"]),
                    u(&m["outstanding_bytes"]),
                    u(&m["groups"]),
                    u(&m["sample"]).max(1),
                    u(&m["untracked"]),
                ));
            }
            let mut groups: Vec<&&Value> = now
                .iter()
                .filter(|r| r["event"]["action"] == "memleak")
                .collect();
            groups.sort_by(|a, b| {
                u(&b["vigil"]["memleak"]["bytes"]).cmp(&u(&a["vigil"]["memleak"]["bytes"]))
            });
            for r in groups.iter().take(20) {
                let m = &r["vigil"]["memleak"];
                out.push_str(&format!(
                    "{} bytes in {} allocations ({}) from pid {} {}, oldest {:.1} s:\n",
                    u(&m["bytes"]),
                    u(&m["allocs"]),
                    m["cache"].as_str().unwrap_or("?"),
                    u(&r["process"]["pid"]),
                    r["process"]["name"].as_str().unwrap_or("-"),
                    m["oldest_s"].as_f64().unwrap_or(0.0),
                ));
                let frames = m["stack"].as_array().cloned().unwrap_or_default();
                if frames.is_empty() {
                    out.push_str("\t[stack not stored]\n");
                }
                for f in frames {
                    out.push_str(&format!("\t{}\n", f.as_str().unwrap_or("?")));
                }
                out.push('\n');
            }
        }
        "overlayfs" => {
            // (cgroup or container, mount, op) -> (calls, bytes, errors,
            // latency us x calls, max p99)
            let mut by: BTreeMap<(String, String, &str), OverlaySums> = BTreeMap::new();
            for r in &recs {
                let o = &r["vigil"]["overlayfs"];
                let who = r["container"]["id"]
                    .as_str()
                    .map(|c| c.chars().take(12).collect::<String>())
                    .or_else(|| o["cgroup"].as_str().map(str::to_string))
                    .unwrap_or_else(|| u(&o["cgroup_id"]).to_string());
                let mount = o["mount"]
                    .as_str()
                    .or_else(|| o["dev"].as_str())
                    .unwrap_or("?")
                    .to_string();
                for op in ["read", "write"] {
                    let v = &o[op];
                    let n = u(&v["count"]);
                    if n == 0 {
                        continue;
                    }
                    let e = by.entry((who.clone(), mount.clone(), op)).or_default();
                    e.0 += n;
                    e.1 += u(&v["bytes"]);
                    e.2 += u(&v["errors"]);
                    e.3 += v["avg_us"].as_f64().unwrap_or(0.0) * n as f64;
                    e.4 = e.4.max(v["p99_us"].as_f64().unwrap_or(0.0));
                }
            }
            let mut v: Vec<_> = by.into_iter().collect();
            v.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(&b.0)));
            out.push_str(&format!(
                "{:<32} {:<40} {:<5} {:>10} {:>14} {:>7} {:>10} {:>10}\n",
                "CGROUP/CONTAINER", "MOUNT", "OP", "CALLS", "BYTES", "ERRORS", "AVG_us", "P99_us"
            ));
            for ((who, mount, op), (n, b, err, lat, p99)) in v.iter().take(30) {
                out.push_str(&format!(
                    "{who:<32} {mount:<40} {op:<5} {n:>10} {b:>14} {err:>7} {:>10.1} {p99:>10.1}\n",
                    lat / (*n).max(1) as f64
                ));
            }
        }
        "blkthrot" => {
            // (cgroup or container, device, op) -> sums
            let mut by: BTreeMap<(String, String, &str), ThrotSums> = BTreeMap::new();
            for r in &recs {
                let o = &r["vigil"]["blkthrot"];
                let who = r["container"]["id"]
                    .as_str()
                    .map(|c| c.chars().take(12).collect::<String>())
                    .or_else(|| o["cgroup"].as_str().map(str::to_string))
                    .unwrap_or_else(|| u(&o["cgroup_id"]).to_string());
                let dev = match (o["device"].as_str(), o["dev"].as_str()) {
                    (Some(n), Some(d)) => format!("{n} ({d})"),
                    (None, Some(d)) => d.to_string(),
                    (Some(n), None) => n.to_string(),
                    (None, None) => "?".into(),
                };
                for op in ["read", "write"] {
                    let v = &o[op];
                    let n = u(&v["bios"]);
                    if n == 0 {
                        continue;
                    }
                    let e = by.entry((who.clone(), dev.clone(), op)).or_default();
                    e.0 += n;
                    e.1 += u(&v["bytes"]);
                    e.2 += u(&v["timed"]);
                    e.3 += v["held_ms"].as_f64().unwrap_or(0.0);
                    e.4 = e.4.max(v["p99_us"].as_f64().unwrap_or(0.0));
                }
            }
            let mut v: Vec<_> = by.into_iter().collect();
            v.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(&b.0)));
            out.push_str(&format!(
                "{:<32} {:<20} {:<5} {:>8} {:>14} {:>12} {:>10} {:>10}\n",
                "CGROUP/CONTAINER", "DEVICE", "OP", "BIOS", "BYTES", "HELD_ms", "AVG_us", "P99_us"
            ));
            for ((who, dev, op), (n, b, timed, ms, p99)) in v.iter().take(30) {
                out.push_str(&format!(
                    "{who:<32} {dev:<20} {op:<5} {n:>8} {b:>14} {ms:>12.1} {:>10.1} {p99:>10.1}\n",
                    ms * 1000.0 / (*timed).max(1) as f64
                ));
            }
        }
        "slabratetop" => {
            let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for r in &recs {
                for c in r["vigil"]["slabratetop"]["caches"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let e = by
                        .entry(c["cache"].as_str().unwrap_or("?").into())
                        .or_default();
                    e.0 += u(&c["allocs"]);
                    e.1 += u(&c["bytes"]);
                }
            }
            let mut v: Vec<_> = by.into_iter().collect();
            v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
            out.push_str(&format!(
                "{:<32} {:>12} {:>14}\n",
                "CACHE", "ALLOCS", "BYTES"
            ));
            for (c, (a, b)) in v.iter().take(30) {
                out.push_str(&format!("{c:<32} {a:>12} {b:>14}\n"));
            }
        }
        "kmem" | "kpages" => {
            let mut by: BTreeMap<u64, (String, u64, u64, BTreeMap<String, u64>)> = BTreeMap::new();
            let mut sites: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for r in &recs {
                if r["event"]["action"] == "kmem-sites" {
                    for s in r["vigil"]["kmem"]["sites"].as_array().into_iter().flatten() {
                        let k = format!(
                            "{} ({})",
                            s["site"].as_str().unwrap_or("?"),
                            s["cache"].as_str().unwrap_or("?")
                        );
                        let e = sites.entry(k).or_default();
                        e.0 += u(&s["allocs"]);
                        e.1 += u(&s["bytes"]);
                    }
                    continue;
                }
                let pid = u(&r["process"]["pid"]);
                let e = by.entry(pid).or_default();
                if let Some(n) = r["process"]["name"].as_str() {
                    e.0 = n.into();
                }
                if tool == "kmem" {
                    e.1 += u(&r["vigil"]["kmem"]["allocs"]);
                    e.2 += u(&r["vigil"]["kmem"]["bytes"]);
                    for c in r["vigil"]["kmem"]["caches"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        *e.3.entry(c["cache"].as_str().unwrap_or("?").into())
                            .or_default() += u(&c["allocs"]);
                    }
                } else {
                    e.1 += u(&r["vigil"]["kpages"]["pages"]);
                    for (o, c) in r["vigil"]["kpages"]["by_order"]
                        .as_object()
                        .into_iter()
                        .flatten()
                    {
                        *e.3.entry(format!("order {o}")).or_default() += u(c);
                    }
                }
            }
            let mut v: Vec<_> = by.into_iter().collect();
            v.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(&b.0)));
            if tool == "kmem" {
                out.push_str(&format!(
                    "{:>8} {:<16} {:>12} {:>14}  {}\n",
                    "PID", "COMM", "ALLOCS", "BYTES", "TOP CACHE"
                ));
            } else {
                out.push_str(&format!(
                    "{:>8} {:<16} {:>12}  {}\n",
                    "PID", "COMM", "PAGES", "TOP ORDER"
                ));
            }
            for (pid, (comm, a, b, m)) in v.iter().take(20) {
                let top = m
                    .iter()
                    .max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0)))
                    .map(|(k, n)| format!("{k} ({n})"))
                    .unwrap_or_default();
                if tool == "kmem" {
                    out.push_str(&format!("{pid:>8} {comm:<16} {a:>12} {b:>14}  {top}\n"));
                } else {
                    out.push_str(&format!("{pid:>8} {comm:<16} {a:>12}  {top}\n"));
                }
            }
            if !sites.is_empty() {
                let mut s: Vec<_> = sites.into_iter().collect();
                s.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(&b.0)));
                out.push_str(&format!(
                    "\n{:<60} {:>12} {:>14}\n",
                    "CALL SITE (CACHE)", "ALLOCS", "BYTES"
                ));
                for (k, (a, b)) in s.iter().take(20) {
                    out.push_str(&format!("{k:<60} {a:>12} {b:>14}\n"));
                }
            }
        }
        "profile" => {
            let (mut samples, mut idle, mut lost, mut empty, mut trunc) = (0, 0, 0, 0, 0);
            let mut hz = 0;
            let mut by: BTreeMap<u64, ProfileSums> = BTreeMap::new();
            for r in &recs {
                let p = &r["vigil"]["profile"];
                if r["event"]["action"] == "cpu-profile-summary" {
                    samples += u(&p["samples"]);
                    idle += u(&p["idle_samples"]);
                    lost += u(&p["lost_samples"]);
                    empty += u(&p["stacks_empty"]);
                    trunc += u(&p["stacks_truncated"]);
                    hz = hz.max(u(&p["hz"]));
                    continue;
                }
                if r["event"]["action"] != "cpu-profile" {
                    continue;
                }
                let e = by.entry(u(&r["process"]["pid"])).or_default();
                if let Some(n) = r["process"]["name"].as_str() {
                    e.0 = n.into();
                }
                e.1 += u(&p["samples"]);
                e.2 += u(&p["kernel_samples"]);
                e.3 += p["cpu_pct"].as_f64().unwrap_or(0.0);
                e.4 += 1;
                for f in p["top"].as_array().into_iter().flatten() {
                    if let (Some(name), Some(n)) = (f[0].as_str(), f[1].as_u64()) {
                        *e.5.entry(name.into()).or_default() += n;
                    }
                }
            }
            out.push_str(&format!(
                "{samples} samples at {hz} Hz ({idle} idle, {lost} lost); stacks empty: {empty}, truncated: {trunc}\n\n"
            ));
            out.push_str(&format!(
                "{:>8} {:<16} {:>9} {:>7} {:>8}  {}\n",
                "PID", "COMM", "SAMPLES", "CPU%", "KERNEL%", "HOTTEST FUNCTIONS (SAMPLES)"
            ));
            let mut v: Vec<_> = by.into_iter().collect();
            v.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(&b.0)));
            for (pid, (comm, n, k, pct, iv, funcs)) in v.iter().take(30) {
                let mut f: Vec<_> = funcs.iter().collect();
                f.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let hot: Vec<String> = f
                    .iter()
                    .take(3)
                    .map(|(n, c)| format!("{n} ({c})"))
                    .collect();
                out.push_str(&format!(
                    "{pid:>8} {comm:<16} {n:>9} {:>7.1} {:>8.1}  {}\n",
                    pct / (*iv).max(1) as f64,
                    100.0 * *k as f64 / (*n).max(1) as f64,
                    hot.join(", ")
                ));
            }
        }
        "numamove" => {
            let mut by: BTreeMap<(u64, String), (String, u64, u64, f64)> = BTreeMap::new();
            for r in &recs {
                let m = &r["vigil"]["numamove"];
                let e = by
                    .entry((
                        u(&r["process"]["pid"]),
                        m["reason"].as_str().unwrap_or("?").into(),
                    ))
                    .or_default();
                if let Some(n) = r["process"]["name"].as_str() {
                    e.0 = n.into();
                }
                e.1 += u(&m["pages"]);
                e.2 += u(&m["failed"]);
                e.3 += m["ms"].as_f64().unwrap_or(0.0);
            }
            out.push_str(&format!(
                "{:>8} {:<16} {:<20} {:>10} {:>8} {:>10}\n",
                "PID", "COMM", "REASON", "PAGES", "FAILED", "TIME_ms"
            ));
            for ((pid, reason), (comm, p, f, ms)) in &by {
                out.push_str(&format!(
                    "{pid:>8} {comm:<16} {reason:<20} {p:>10} {f:>8} {ms:>10.1}\n"
                ));
            }
        }
        _ => {
            // workq, softirqs, hardirqs, tasklets
            let key = match tool {
                "softirqs" => "vectors",
                "hardirqs" => "irqs",
                _ => "functions",
            };
            let mut by: BTreeMap<String, (u64, u64, f64, u64)> = BTreeMap::new();
            for r in &recs {
                for f in r["vigil"][tool][key].as_array().into_iter().flatten() {
                    let e = by
                        .entry(f["name"].as_str().unwrap_or("?").into())
                        .or_default();
                    let c = u(&f["count"]);
                    e.0 += c;
                    e.1 += u(&f["run_us"]);
                    if let Some(l) = f["avg_latency_us"].as_f64() {
                        e.2 += l * c as f64;
                        e.3 += c;
                    }
                }
            }
            let mut v: Vec<_> = by.into_iter().collect();
            v.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(&b.0)));
            let label = match tool {
                "softirqs" => "SOFTIRQ",
                "hardirqs" => "HARDIRQ",
                _ => "FUNCTION",
            };
            if tool == "workq" {
                out.push_str(&format!(
                    "{label:<48} {:>10} {:>14} {:>14}\n",
                    "COUNT", "TOTAL_usecs", "AVG_LAT_usecs"
                ));
            } else {
                out.push_str(&format!(
                    "{label:<48} {:>10} {:>14}\n",
                    "COUNT", "TOTAL_usecs"
                ));
            }
            for (name, (c, us, lat, nl)) in v.iter().take(30) {
                if tool == "workq" {
                    let l = if *nl > 0 {
                        format!("{:.1}", lat / *nl as f64)
                    } else {
                        "-".into()
                    };
                    out.push_str(&format!("{name:<48} {c:>10} {us:>14} {l:>14}\n"));
                } else {
                    out.push_str(&format!("{name:<48} {c:>10} {us:>14}\n"));
                }
            }
        }
    }
    (out, bad)
}

/// `vigil report --tool`: reads `records` (vigil's JSON lines output),
/// prints the view. Exit code: 0 ok, 1 cannot read, 2 bad tool or since.
pub fn run(tool: &str, records: &std::path::Path, since: &str) -> u8 {
    if !tools().any(|t| t == tool) {
        let all: Vec<_> = tools().collect();
        eprintln!("vigil: --tool `{tool}` is not one of {}", all.join(", "));
        return 2;
    }
    let since_s = match super::report::parse_since(since) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vigil: --since {e}");
            return 2;
        }
    };
    let text = match std::fs::read_to_string(records) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("vigil: --records {}: {e}", records.display());
            return 1;
        }
    };
    let now = (crate::host::boot_offset_ns() + crate::agent::boot_now_ns() as i64)
        .div_euclid(1_000_000_000);
    let (view, bad) = render(tool, &text, Some(since_s), now);
    if bad > 0 {
        eprintln!(
            "vigil: {}: {bad} lines were not JSON and were skipped",
            records.display()
        );
    }
    print!("{view}");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECS: &str = r#"{"@timestamp":"2026-12-04T18:24:01.8Z","event":{"kind":"metric","dataset":"vigil.slabratetop","action":"slabratetop"},"vigil":{"slabratetop":{"interval_s":2.0,"caches":[{"cache":"filp","allocs":10,"bytes":2560},{"cache":"dentry","allocs":30,"bytes":5760}]}}}
{"@timestamp":"2026-12-04T18:24:03.8Z","event":{"kind":"metric","dataset":"vigil.slabratetop","action":"slabratetop"},"vigil":{"slabratetop":{"interval_s":2.0,"caches":[{"cache":"filp","allocs":25,"bytes":6400}]}}}
not json
{"@timestamp":"2026-12-04T18:24:03.8Z","event":{"kind":"metric","dataset":"vigil.softirqs","action":"softirqs"},"vigil":{"softirqs":{"interval_s":2.0,"vectors":[{"name":"rcu","count":5,"run_us":40},{"name":"timer","count":3,"run_us":90}]}}}
{"@timestamp":"2026-12-04T18:24:03.8Z","event":{"kind":"metric","dataset":"vigil.kmem","action":"kmem"},"process":{"pid":42,"name":"python3"},"vigil":{"kmem":{"interval_s":2.0,"allocs":100,"bytes":12800,"caches":[{"cache":"kmalloc-128","allocs":90,"bytes":11520}]}}}
"#;

    #[test]
    fn slabratetop_sums_caches_over_records_busiest_first() {
        let (v, bad) = render("slabratetop", RECS, None, 0);
        assert_eq!(bad, 1);
        let rows: Vec<&str> = v
            .lines()
            .filter(|l| l.starts_with("filp") || l.starts_with("dentry"))
            .collect();
        assert_eq!(rows.len(), 2);
        assert!(
            rows[0].starts_with("filp") && rows[0].contains(" 35 ") && rows[0].ends_with(" 8960"),
            "{v}"
        );
        assert!(rows[1].starts_with("dentry"), "{v}");
        assert!(
            v.starts_with("slabratetop: 2 records (2 s intervals)"),
            "{v}"
        );
    }

    #[test]
    fn softirqs_and_kmem_views() {
        let (v, _) = render("softirqs", RECS, None, 0);
        let timer = v.lines().position(|l| l.starts_with("timer")).unwrap();
        let rcu = v.lines().position(|l| l.starts_with("rcu")).unwrap();
        assert!(timer < rcu, "most time first: {v}");
        let (v, _) = render("kmem", RECS, None, 0);
        assert!(
            v.lines()
                .any(|l| l.contains("python3") && l.contains("kmalloc-128 (90)")),
            "{v}"
        );
    }

    #[test]
    fn memleak_shows_the_last_collection_with_its_stacks() {
        let recs = r#"{"@timestamp":"2026-12-04T18:24:01.8Z","event":{"kind":"metric","dataset":"vigil.memleak","action":"memleak"},"process":{"pid":7,"name":"old"},"vigil":{"memleak":{"interval_s":1.0,"cache":"kmalloc-cg-1k","allocs":5,"bytes":5120,"oldest_s":3.0,"stack":["alloc_pipe_info+0x8a"]}}}
{"@timestamp":"2026-12-04T18:24:02.8Z","event":{"kind":"metric","dataset":"vigil.memleak","action":"memleak-table"},"vigil":{"memleak":{"interval_s":1.0,"tracked":900,"outstanding_allocs":600,"outstanding_bytes":307200,"groups":2,"untracked":0,"min_age_s":2,"sample":1}}}
{"@timestamp":"2026-12-04T18:24:02.8Z","event":{"kind":"metric","dataset":"vigil.memleak","action":"memleak"},"process":{"pid":42,"name":"keeper"},"vigil":{"memleak":{"interval_s":1.0,"cache":"kmalloc-cg-192","allocs":300,"bytes":57600,"oldest_s":4.0,"stack":["alloc_pipe_info+0x5b","create_pipe_files+0x3c","do_pipe2+0x50"]}}}
{"@timestamp":"2026-12-04T18:24:02.8Z","event":{"kind":"metric","dataset":"vigil.memleak","action":"memleak"},"process":{"pid":42,"name":"keeper"},"vigil":{"memleak":{"interval_s":1.0,"cache":"kmalloc-cg-1k","allocs":300,"bytes":307200,"oldest_s":4.0,"stack":[]}}}
"#;
        let (v, _) = render("memleak", recs, None, 0);
        assert!(
            v.contains("900 allocations tracked, 600 outstanding >= 2 s"),
            "{v}"
        );
        let big = v
            .find("307200 bytes in 300 allocations (kmalloc-cg-1k) from pid 42 keeper")
            .expect(&v);
        let small = v
            .find("57600 bytes in 300 allocations (kmalloc-cg-192)")
            .expect(&v);
        assert!(big < small, "most bytes first: {v}");
        assert!(v.contains("\tcreate_pipe_files+0x3c\n"), "{v}");
        assert!(v.contains("[stack not stored]"), "{v}");
        assert!(!v.contains("pid 7 old"), "only the last collection: {v}");
    }

    #[test]
    fn blkthrot_sums_bios_bytes_and_time_held_per_cgroup_device_and_op() {
        let recs = r#"{"@timestamp":"2026-12-07T12:24:01.8Z","event":{"kind":"metric","dataset":"vigil.blkthrot","action":"blkthrot"},"vigil":{"blkthrot":{"interval_s":1.0,"cgroup_id":9,"cgroup":"/vigil-test-blkthrot","hierarchy":"blkio","dev":"7:0","device":"loop0","read":{"bios":8,"bytes":524288,"timed":8,"held_ms":400.0,"avg_us":50000.0,"p50_us":49152.0,"p99_us":65536.0,"max_us":65536}}}}
{"@timestamp":"2026-12-07T12:24:02.8Z","event":{"kind":"metric","dataset":"vigil.blkthrot","action":"blkthrot"},"vigil":{"blkthrot":{"interval_s":1.0,"cgroup_id":9,"cgroup":"/vigil-test-blkthrot","hierarchy":"blkio","dev":"7:0","device":"loop0","read":{"bios":8,"bytes":524288,"timed":8,"held_ms":1200.0,"avg_us":150000.0,"p99_us":262144.0,"max_us":262144}}}}
not json
"#;
        let (v, bad) = render("blkthrot", recs, None, 0);
        assert_eq!(bad, 1);
        assert!(v.starts_with("blkthrot: 2 records"), "{v}");
        let row = v
            .lines()
            .find(|l| l.starts_with("/vigil-test-blkthrot"))
            .unwrap_or_else(|| panic!("{v}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        // cgroup, "loop0", "(7:0)", op, bios, bytes, held ms, avg us, p99
        assert_eq!(
            cols,
            [
                "/vigil-test-blkthrot",
                "loop0",
                "(7:0)",
                "read",
                "16",
                "1048576",
                "1600.0",
                "100000.0",
                "262144.0"
            ],
            "{v}"
        );
    }

    #[test]
    fn overlayfs_sums_calls_and_bytes_per_cgroup_mount_and_op() {
        let recs = r#"{"@timestamp":"2026-12-04T18:24:01.8Z","event":{"kind":"metric","dataset":"vigil.overlayfs","action":"overlayfs"},"vigil":{"overlayfs":{"interval_s":1.0,"cgroup_id":9,"cgroup":"/vigil-test-a","dev":"0:41","mount":"/tmp/m","read":{"count":10,"bytes":655360,"errors":0,"avg_us":2.0,"p99_us":8.0,"max_us":8},"write":{"count":16,"bytes":1048576,"errors":1,"avg_us":30.0,"p99_us":64.0,"max_us":64}}}}
{"@timestamp":"2026-12-04T18:24:02.8Z","event":{"kind":"metric","dataset":"vigil.overlayfs","action":"overlayfs"},"vigil":{"overlayfs":{"interval_s":1.0,"cgroup_id":9,"cgroup":"/vigil-test-a","dev":"0:41","mount":"/tmp/m","read":{"count":30,"bytes":1966080,"errors":0,"avg_us":6.0,"p99_us":16.0,"max_us":16}}}}
"#;
        let (v, _) = render("overlayfs", recs, None, 0);
        let read = v.lines().find(|l| l.contains(" read ")).expect(&v);
        assert!(
            read.starts_with("/vigil-test-a") && read.contains("/tmp/m"),
            "{v}"
        );
        assert!(read.contains(" 40 ") && read.contains(" 2621440 "), "{v}");
        // (10 x 2 + 30 x 6) / 40 = 5.0 us average, the worst p99 16
        assert!(read.contains(" 5.0 ") && read.ends_with(" 16.0"), "{v}");
        let write = v.lines().find(|l| l.contains(" write ")).expect(&v);
        assert!(write.contains(" 1048576 ") && write.contains(" 1 "), "{v}");
        assert!(v.starts_with("overlayfs: 2 records"), "{v}");
    }

    #[test]
    fn timestamps_parse_as_vigil_writes_them() {
        let t = 1_764_872_641_816_736_814i64;
        assert_eq!(parse_rfc3339(&crate::ecs::rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn profile_sums_samples_and_hottest_functions_per_process() {
        let recs = r#"{"@timestamp":"2026-12-04T18:24:01.8Z","event":{"kind":"metric","dataset":"vigil.profile","action":"cpu-profile-summary"},"vigil":{"profile":{"interval_s":1.0,"hz":99,"samples":90,"idle_samples":100,"lost_samples":0,"stacks_empty":3,"stacks_truncated":5,"cpu_pct":90.9}}}
{"@timestamp":"2026-12-04T18:24:01.8Z","event":{"kind":"metric","dataset":"vigil.profile","action":"cpu-profile"},"process":{"pid":42,"name":"busy"},"vigil":{"profile":{"samples":80,"kernel_samples":8,"cpu_pct":80.8,"hottest":"spin","top":[["spin",70],["main",10]]}}}
{"@timestamp":"2026-12-04T18:24:02.8Z","event":{"kind":"metric","dataset":"vigil.profile","action":"cpu-profile-summary"},"vigil":{"profile":{"interval_s":1.0,"hz":99,"samples":60,"idle_samples":130,"lost_samples":1,"stacks_empty":0,"stacks_truncated":2,"cpu_pct":60.6}}}
{"@timestamp":"2026-12-04T18:24:02.8Z","event":{"kind":"metric","dataset":"vigil.profile","action":"cpu-profile"},"process":{"pid":42,"name":"busy"},"vigil":{"profile":{"samples":40,"kernel_samples":0,"cpu_pct":40.4,"top":[["spin",40]]}}}
{"@timestamp":"2026-12-04T18:24:02.8Z","event":{"kind":"metric","dataset":"vigil.profile","action":"cpu-profile"},"process":{"pid":7,"name":"other"},"vigil":{"profile":{"samples":20,"kernel_samples":20,"cpu_pct":20.2,"top":[["do_syscall_64_[k]",20]]}}}
"#;
        let (v, bad) = render("profile", recs, None, 0);
        assert_eq!(bad, 0);
        assert!(v.starts_with("profile: 5 records (1 s intervals)"), "{v}");
        assert!(
            v.contains("150 samples at 99 Hz (230 idle, 1 lost); stacks empty: 3, truncated: 7"),
            "{v}"
        );
        let rows: Vec<&str> = v
            .lines()
            .filter(|l| l.contains("busy") || l.contains("other"))
            .collect();
        assert_eq!(rows.len(), 2, "{v}");
        assert!(
            rows[0].contains("42 busy") && rows[0].contains(" 120 "),
            "{v}"
        );
        assert!(rows[0].contains("60.6") && rows[0].contains("6.7"), "{v}");
        assert!(rows[0].contains("spin (110), main (10)"), "{v}");
        assert!(rows[1].contains("do_syscall_64_[k] (20)"), "{v}");
        let all: Vec<_> = tools().collect();
        // every kernel-work tool, then the profiler
        assert_eq!(
            all.len(),
            vigil_bpf::ktools::SENSOR_NAMES.len() + 1,
            "{all:?}"
        );
        assert_eq!((all[0], *all.last().unwrap()), ("kmem", "profile"));
        assert!(all.contains(&"blkthrot"), "{all:?}");
    }

    #[test]
    fn the_window_drops_old_records() {
        let now = parse_rfc3339("2026-12-04T18:24:03.9Z").unwrap() / 1_000_000_000;
        let (v, _) = render("slabratetop", RECS, Some(1), now);
        assert!(v.starts_with("slabratetop: 1 records"), "{v}");
    }
}
