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
