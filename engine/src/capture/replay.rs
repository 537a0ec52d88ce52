//! `vigil replay`: re-run decoding, enrichment, rules and baselines over a
//! capture, offline and without root.

use crate::agent::{Pipeline, PipelineStats};
use crate::capture::{CaptureError, CaptureReader, Seed, frame};
use crate::config::Config;
use crate::enrich::Event;
use crate::host::{Lookup, RecordedHost};
use std::path::Path;
use std::sync::mpsc;
use vigil_outputs::Sink;

/// What a replay ends with.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Records replayed.
    pub records: u64,
    /// Pipeline counters.
    pub pipeline: PipelineStats,
    /// Host lookups the capture could not answer.
    pub lookup_misses: u64,
    /// Frames of unknown type skipped.
    pub skipped_frames: u64,
    /// Error that ended the replay early (truncated capture).
    pub truncated: Option<String>,
}

/// Replays `path` into `sink` (and `tap`). `progress` is called every
/// 100,000 records with the count and byte offset.
pub fn replay(
    path: &Path,
    cfg: &Config,
    sink: Option<Box<dyn Sink>>,
    tap: Option<mpsc::Sender<Event>>,
    progress: impl FnMut(u64, u64),
) -> Result<ReplaySummary, CaptureError> {
    replay_with(path, cfg, None, sink, tap, progress)
}

/// [`replay`] evaluating `rules`.
pub fn replay_with(
    path: &Path,
    cfg: &Config,
    rules: Option<std::sync::Arc<vigil_rules::RuleSet>>,
    sink: Option<Box<dyn Sink>>,
    tap: Option<mpsc::Sender<Event>>,
    progress: impl FnMut(u64, u64),
) -> Result<ReplaySummary, CaptureError> {
    replay_checked(path, cfg, rules, None, sink, tap, progress).map(|(s, _)| s)
}

/// [`replay_with`] that also offers every event to `baselines`: profiles
/// that are learning learn from the capture, promoted ones report drift
/// into the output as in a live run. The baselines are handed back at the
/// end (flush them to persist what was learned; a
/// [`vigil_baselines::Baselines::snapshot`] persists nothing).
pub fn replay_checked(
    path: &Path,
    cfg: &Config,
    rules: Option<std::sync::Arc<vigil_rules::RuleSet>>,
    baselines: Option<vigil_baselines::Baselines>,
    sink: Option<Box<dyn Sink>>,
    tap: Option<mpsc::Sender<Event>>,
    mut progress: impl FnMut(u64, u64),
) -> Result<(ReplaySummary, Option<vigil_baselines::Baselines>), CaptureError> {
    let mut r = CaptureReader::open(path)?;
    let ctx = r.context.clone();
    let mut pipeline = Pipeline::new(cfg, &ctx, sink, tap);
    if let Some(rules) = rules {
        pipeline.set_rules(rules);
    }
    if let Some(b) = baselines {
        pipeline.set_learner(crate::learn::Learner::new(b, false));
        match crate::detect::tuning::Tuning::open(&cfg.tuning_path()) {
            Ok(t) => pipeline.set_tuning(t),
            Err(e) => eprintln!("vigil: tuning: {e}; learned tuning is off for this replay"),
        }
    }
    let mut host = RecordedHost::default();
    let mut sum = ReplaySummary::default();
    let mut seeded: Option<Seed> = None;
    loop {
        let f = match r.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e @ CaptureError::Format { .. }) if sum.records > 0 => {
                sum.truncated = Some(e.to_string());
                break;
            }
            Err(e) => return Err(e),
        };
        match f {
            (frame::RECORD, payload) => {
                // The live run looked the seeded containers up right after
                // the seed; those answers precede the first record's.
                if let Some(s) = seeded.take() {
                    pipeline
                        .enricher()
                        .seed_containers(&s.procs, s.at_ns, &mut host);
                    pipeline.emit_lifecycle();
                }
                pipeline.handle(&payload, &mut host);
                sum.records += 1;
                if sum.records % 100_000 == 0 {
                    progress(sum.records, r.offset());
                }
            }
            (frame::LOOKUP, payload) => host.push(r.parse::<Lookup>(&payload, "lookup")?),
            (frame::SEED, payload) => {
                let s: Seed = r.parse(&payload, "seed")?;
                pipeline.enricher().seed(&s.procs, s.at_ns);
                seeded = Some(s);
            }
            (frame::SUMMARY, _) => {}
            _ => sum.skipped_frames += 1,
        }
    }
    pipeline.flush();
    pipeline.save_tuning();
    sum.pipeline = pipeline.stats.clone();
    sum.lookup_misses = host.misses;
    let baselines = pipeline.take_learner().map(|l| l.baselines);
    Ok((sum, baselines))
}

/// The process tree of `pid` in replayed events: its ancestors (as its
/// events name them), itself and every descendant seen (by fork and exec
/// records), each with its events in order (`time action detail`).
pub fn render_tree(events: &[Event], pid: u32) -> String {
    use std::collections::{BTreeMap, BTreeSet};
    use vigil_bpf::decode::Body;
    let mut parent: BTreeMap<u32, u32> = BTreeMap::new();
    let mut exe: BTreeMap<u32, String> = BTreeMap::new();
    let mut lines: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut chain: Vec<(u32, String)> = Vec::new();
    for ev in events {
        let h = &ev.k.hdr;
        parent.entry(h.pid).or_insert(h.ppid);
        if let Body::Fork(f) = &ev.k.body {
            parent.insert(f.child_pid, h.pid);
        }
        if let Some(p) = &ev.process {
            exe.insert(h.pid, String::from_utf8_lossy(&p.exe).into_owned());
        }
        if h.pid == pid && chain.is_empty() {
            chain = ev
                .ancestors
                .iter()
                .map(|a| (a.pid, String::from_utf8_lossy(&a.exe).into_owned()))
                .collect();
        }
        let (_, _, action) = crate::ecs::classify_event(ev);
        let detail = match &ev.k.body {
            Body::Fork(f) => format!("child {}", f.child_pid),
            Body::Exec { .. } => ev
                .process
                .as_ref()
                .map(|p| String::from_utf8_lossy(&p.cmdline).into_owned())
                .unwrap_or_default(),
            _ => ev
                .file_path
                .as_deref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
        };
        lines.entry(h.pid).or_default().push(format!(
            "{} {action} {}",
            crate::ecs::rfc3339(ev.unix_ns),
            crate::config::printable(&detail)
        ));
    }
    let mut out = String::new();
    for (depth, (p, e)) in chain.iter().rev().enumerate() {
        out.push_str(&format!(
            "{}{p} {}\n",
            "  ".repeat(depth),
            crate::config::printable(e)
        ));
    }
    let base = chain.len();
    let mut kids: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for (&c, &p) in &parent {
        if c != p {
            kids.entry(p).or_default().insert(c);
        }
    }
    let mut stack = vec![(pid, base)];
    let mut seen = BTreeSet::new();
    while let Some((p, d)) = stack.pop() {
        if !seen.insert(p) {
            continue;
        }
        let pad = "  ".repeat(d);
        let name = exe.get(&p).map(String::as_str).unwrap_or("?");
        out.push_str(&format!("{pad}{p} {}\n", crate::config::printable(name)));
        for l in lines.get(&p).into_iter().flatten() {
            out.push_str(&format!("{pad}  | {l}\n"));
        }
        if let Some(k) = kids.get(&p) {
            for &c in k.iter().rev() {
                stack.push((c, d + 1));
            }
        }
    }
    if !lines.contains_key(&pid) && !parent.contains_key(&pid) {
        out.push_str(&format!("(no events of pid {pid} in the capture)\n"));
    }
    out
}
