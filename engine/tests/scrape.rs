//! Root tests of the real binary with real collectors: a Prometheus server
//! (Debian's `prometheus`) on loopback scrapes `vigil run --metrics` and a
//! vigil series is read back through its HTTP API; PCP's pmcd with the
//! OpenMetrics PMDA (formerly pmdaprometheus) pointed at the same
//! `/metrics` serves a vigil metric that `pminfo -f` reads back. Both
//! servers are private (their own ports, configuration and data under a
//! temporary directory) and stopped after.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::{Stopped, free_port, require_root, spawn_with_stderr, wait_line};

/// `GET path` over HTTP/1.0; the body (None: no connection or not 200).
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    if !s.starts_with("HTTP/1.1 200") && !s.starts_with("HTTP/1.0 200") {
        return None;
    }
    Some(s[s.find("\r\n\r\n")? + 4..].to_string())
}

/// `vigil run --no-baselines --metrics 127.0.0.1:PORT`, once its sensors
/// are live.
fn start_vigil(dir: &Path, port: u16) -> (Stopped, mpsc::Receiver<String>) {
    start_vigil_with(dir, port, "")
}

fn start_vigil_with(dir: &Path, port: u16, extra: &str) -> (Stopped, mpsc::Receiver<String>) {
    let cfg = dir.join("vigil.toml");
    std::fs::write(
        &cfg,
        format!("[agent]\nhousekeeping_interval_s = 1\n[rules]\nbuiltin = false\n{extra}"),
    )
    .unwrap();
    let (child, rx) = spawn_with_stderr(
        common::vigil()
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--no-baselines", "-o"])
            .arg(dir.join("out.json"))
            .arg("--metrics")
            .arg(format!("127.0.0.1:{port}")),
    );
    let s = Stopped(child, "vigil");
    // Telemetry registers when the pipeline starts, after "sensors live".
    wait_line(&rx, "vigil: ready", Duration::from_secs(30));
    (s, rx)
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tool the test needs; CI requires it (scripts/install-deps.sh installs it).
fn tool(path: &str, package: &str) -> bool {
    vigil_rootgate::require(
        path,
        &format!("missing: apt-get install {package} (scripts/install-deps.sh)"),
        Path::new(path).exists(),
    )
}

#[test]
fn prometheus_scrapes_vigil_and_serves_a_vigil_series_back() {
    if !require_root("prometheus_scrapes_vigil_and_serves_a_vigil_series_back")
        || !tool("/usr/bin/prometheus", "prometheus")
    {
        return;
    }
    let dir = tempdir("prometheus");
    let vport = free_port();
    let (vigil, _rx) = start_vigil(&dir, vport);
    let direct = http_get(vport, "/metrics").expect("vigil serves /metrics");
    assert!(
        direct.contains("vigil_memory_resident_bytes{kind=\"total\"}"),
        "{direct}"
    );

    let pport = free_port();
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: vigil\n    static_configs:\n      - targets: ['127.0.0.1:{vport}']\n"
        ),
    )
    .unwrap();
    let prom = Stopped(
        Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus"),
        "prometheus",
    );
    let query = |q: &str| -> Option<serde_json::Value> {
        let body = http_get(pport, &format!("/api/v1/query?query={q}"))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let r = v["data"]["result"].as_array()?;
        (v["status"] == "success" && !r.is_empty()).then(|| v["data"]["result"].clone())
    };
    let t = Instant::now();
    let mut got = None;
    while t.elapsed() < Duration::from_secs(60) && got.is_none() {
        got = query("vigil_memory_resident_bytes%7Bkind%3D%22total%22%7D");
        if got.is_none() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let got =
        got.unwrap_or_else(|| panic!("no vigil series in Prometheus after 60 s; its log:\n{log}"));
    eprintln!(
        "Prometheus served vigil_memory_resident_bytes after {:?}: {got}",
        t.elapsed()
    );
    let s = &got[0];
    assert_eq!(s["metric"]["job"], "vigil", "{s}");
    assert_eq!(s["metric"]["instance"], format!("127.0.0.1:{vport}"), "{s}");
    let rss: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
    assert!(rss > 1e6, "vigil's resident memory: {rss}");
    // the scrape itself is healthy
    let up = query("up%7Bjob%3D%22vigil%22%7D").expect("up series");
    assert_eq!(up[0]["value"][1], "1", "{up}");
    drop(prom);
    drop(vigil);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_agents_metrics_pass_promtool_check_metrics() {
    if !require_root("the_agents_metrics_pass_promtool_check_metrics")
        || !tool("/usr/bin/promtool", "prometheus")
    {
        return;
    }
    let dir = tempdir("promtool");
    let vport = free_port();
    // A short perf interval, so the kernel-work tools' series (softirq and
    // hardirq time among them) are there to be checked.
    let (vigil, _rx) = start_vigil_with(&dir, vport, "[perf]\ninterval_s = 2\n");
    let t = Instant::now();
    let body = loop {
        let b = http_get(vport, "/metrics").expect("vigil serves /metrics");
        if b.contains("vigil_softirq_seconds_total{") || t.elapsed() > Duration::from_secs(30) {
            break b;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(body.contains("vigil_softirq_seconds_total{"), "{body}");
    assert!(!body.contains("_nanoseconds"), "{body}");
    // no worker panicked: the loss counter is there, at zero
    assert!(
        body.lines()
            .any(|l| l == "vigil_pipeline_worker_lost_events_total 0"),
        "{body}"
    );
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(vigil);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every series the Grafana dashboard plots is in a live agent's /metrics
/// (the kernel-work tools, memleak, kpages and the profiler on, a
/// compaction run for numamove), except the series that only appear with
/// activity this test does not make: overlay-mount I/O, a full memleak
/// table, broken profiler stacks.
#[test]
fn grafana_dashboard_series_are_in_a_live_agents_metrics() {
    if !require_root("grafana_dashboard_series_are_in_a_live_agents_metrics") {
        return;
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../outputs/grafana/vigil.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut series: Vec<String> = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("vigil_") {
                let tok: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let base = tok.strip_suffix("_bucket").unwrap_or(&tok).to_string();
                if !series.contains(&base) {
                    series.push(base);
                }
            }
        }
    }
    // every kernel-work tool has series, and the dashboard plots one
    for tool in vigil_bpf::ktools::SENSOR_NAMES {
        let (_, tool_series) = vigil_engine::perf::ktools::TOOL_SERIES
            .iter()
            .find(|(t, _)| *t == tool)
            .unwrap_or_else(|| panic!("ktools tool {tool} has no Prometheus series"));
        assert!(
            tool_series.iter().any(|s| series.iter().any(|d| d == s)),
            "{tool}: none of {tool_series:?} on the dashboard"
        );
    }
    // only with activity the test does not make
    let activity_only = [
        // tasklets run a few times an hour on this VM
        "vigil_tasklet_seconds_total",
        "vigil_overlayfs_calls_total",
        "vigil_overlayfs_seconds_total",
        "vigil_memleak_untracked_total",
        // blkthrot: only while a cgroup's I/O is throttled
        "vigil_blkthrot_bios_total",
        "vigil_blkthrot_bytes_total",
        "vigil_blkthrot_seconds_total",
        "vigil_profile_broken_stacks_total",
        // outputs: only with a network sink, spooling, errors or drops
        "vigil_output_records_spooled_total",
        "vigil_output_records_resent_total",
        "vigil_output_records_dropped_total",
        "vigil_output_spool_records",
        "vigil_output_spool_bytes",
        "vigil_output_connected",
        "vigil_output_errors_total",
        "vigil_output_records_truncated_total",
        "vigil_alerts_total",
        "vigil_alerts_suppressed_total",
        // rule timings: this agent runs without rules (builtin = false)
        "vigil_rule_evaluation_seconds",
    ];
    let dir = tempdir("grafana");
    let vport = free_port();
    let (vigil, _rx) = start_vigil_with(
        &dir,
        vport,
        "[perf]\ninterval_s = 2\nkmem = true\nslabratetop = true\nmemleak = true\nkpages = true\nprofile = true\n",
    );
    let t = Instant::now();
    let missing = loop {
        let _ = std::fs::write("/proc/sys/vm/compact_memory", "1");
        let b = http_get(vport, "/metrics").expect("vigil serves /metrics");
        let missing: Vec<&String> = series
            .iter()
            .filter(|s| !activity_only.contains(&s.as_str()))
            .filter(|s| !b.contains(&format!("# TYPE {s} ")))
            .collect();
        if missing.is_empty() || t.elapsed() > Duration::from_secs(40) {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(1000));
    };
    drop(vigil);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        missing.is_empty(),
        "dashboard series not in /metrics after {:?}: {missing:?}",
        t.elapsed()
    );
    assert!(series.len() >= 25, "{series:?}");
}

#[test]
fn pcp_openmetrics_pmda_reads_a_vigil_metric() {
    if !require_root("pcp_openmetrics_pmda_reads_a_vigil_metric")
        || !tool("/usr/lib/pcp/bin/pmcd", "pcp")
        || !tool(
            "/var/lib/pcp/pmdas/openmetrics/pmdaopenmetrics.python",
            "pcp",
        )
        || !tool(
            "/usr/lib/python3/dist-packages/requests",
            "python3-requests",
        )
    {
        return;
    }
    let dir = tempdir("pcp");
    let vport = free_port();
    let (vigil, _rx) = start_vigil(&dir, vport);
    // The OpenMetrics PMDA's configuration: one URL file per source; the
    // source's name is the file's (metrics appear as openmetrics.vigil.*).
    let confd = dir.join("config.d");
    std::fs::create_dir_all(&confd).unwrap();
    std::fs::write(
        confd.join("vigil.url"),
        format!("http://127.0.0.1:{vport}/metrics\n"),
    )
    .unwrap();
    // A private pmcd: its own port, configuration (only this PMDA, domain
    // 144 as the PMDA registers) and namespace.
    let pmcd_conf = dir.join("pmcd.conf");
    std::fs::write(
        &pmcd_conf,
        format!(
            "openmetrics 144 pipe binary notready /usr/bin/python3 /var/lib/pcp/pmdas/openmetrics/pmdaopenmetrics.python -c {} -l {}\n",
            confd.display(),
            dir.join("openmetrics.log").display()
        ),
    )
    .unwrap();
    let pmns = dir.join("root");
    std::fs::write(&pmns, "root {\n    openmetrics 144:*:*\n}\n").unwrap();
    let port = free_port();
    let pmcd = Stopped(
        Command::new("/usr/lib/pcp/bin/pmcd")
            .arg("-f")
            .arg("-p")
            .arg(port.to_string())
            .arg("-c")
            .arg(&pmcd_conf)
            .arg("-n")
            .arg(&pmns)
            .arg("-l")
            .arg(dir.join("pmcd.log"))
            .arg("-s")
            .arg(dir.join("pmcd.socket"))
            .arg("-i")
            .arg("127.0.0.1")
            // the PMDA (python) starts and takes its first scrape before it
            // answers: more than pmcd's default 3 s on a loaded machine
            .args(["-q", "30", "-t", "10", "-A"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pmcd"),
        "pmcd",
    );
    let host = format!("127.0.0.1:{port}");
    let t = Instant::now();
    let mut last = String::new();
    let mut ok = None;
    while t.elapsed() < Duration::from_secs(60) && ok.is_none() {
        let out = Command::new("pminfo")
            .args([
                "-h",
                &host,
                "-f",
                "openmetrics.vigil.vigil_memory_resident_bytes",
            ])
            .output()
            .unwrap();
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && last.contains("value") {
            ok = Some(last.clone());
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let logs = ["pmcd.log", "openmetrics.log"]
        .iter()
        .map(|l| {
            format!(
                "{l}:\n{}",
                std::fs::read_to_string(dir.join(l)).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let out = ok.unwrap_or_else(|| panic!("pminfo never read the vigil metric: {last}\n{logs}"));
    eprintln!("pminfo -f after {:?}:\n{out}", t.elapsed());
    // one instance per label set, e.g. `inst [0 or "0 kind:total"] value 12345678`
    let v: f64 = out
        .lines()
        .filter(|l| l.contains("kind:total"))
        .find_map(|l| l.rsplit("value ").next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no kind:total instance with a value: {out}"));
    assert!(v > 1e6, "vigil's resident memory through PCP: {v}");
    drop(pmcd);
    drop(vigil);
    let _ = std::fs::remove_dir_all(&dir);
}
