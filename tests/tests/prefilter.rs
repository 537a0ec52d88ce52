//! The rule engine's literal prefilter returns exactly the matches of the
//! unfiltered engine, over real rule corpora and real events: the
//! built-in rules, the SigmaHQ-style corpus in `rules/tests/sigma`, the
//! fuzz corpus's rule files (`tests/corpus/{rules,sigma}`), and, when
//! `VIGIL_SIGMA_DIR` names a folder (e.g. SigmaHQ's `rules/linux`), every
//! Sigma rule in it; against the events of every recorded capture in
//! `tests/corpus/capture` replayed through the pipeline, and events built
//! from every string literal the loaded rules test (so rules do match).
//! No root needed.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use vigil_engine::config::Config;
use vigil_engine::enrich::Event;
use vigil_rules::ast::{Pred, Test};
use vigil_rules::{Example, Field, Fields, Loader, RuleSet, Scratch, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn captured_events() -> Vec<Event> {
    let dir = root().join("tests/corpus/capture");
    let mut caps: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("capture corpus")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "vcap"))
        .collect();
    caps.sort();
    assert!(caps.len() >= 3, "captures in {}", dir.display());
    let mut out = Vec::new();
    for p in caps {
        let (tx, rx) = mpsc::channel();
        vigil_engine::replay::replay(&p, &Config::default(), None, Some(tx), |_, _| {})
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.extend(rx.try_iter());
    }
    assert!(out.len() >= 20, "{} captured events", out.len());
    out
}

/// Events carrying each string literal the rules test, alone, in other
/// text, upper-cased, and all of one rule's literals together.
fn literal_events(set: &RuleSet) -> Vec<Example> {
    let s = |b: Vec<u8>| Value::Str(b.into());
    let mut out = Vec::new();
    for r in set.rules() {
        let mut ps: Vec<&Pred> = Vec::new();
        r.condition.preds(&mut ps);
        let mut together: Vec<(Field, Vec<u8>)> = Vec::new();
        for p in ps {
            let Test::Str { pat, .. } = &p.test else {
                continue;
            };
            for action in [&b"exec"[..], b"open", b"connect"] {
                for v in [
                    pat.clone(),
                    pat.to_ascii_uppercase(),
                    [&b"/usr/bin/x "[..], pat, b" tail"].concat(),
                    [&b"x"[..], pat].concat(),
                ] {
                    out.push(Example {
                        line: 0,
                        want: true,
                        values: vec![(Field::EventAction, s(action.to_vec())), (p.field, s(v))],
                    });
                }
            }
            match together.iter_mut().find(|(f, _)| *f == p.field) {
                Some((_, v)) => {
                    v.push(b' ');
                    v.extend_from_slice(pat);
                }
                None => together.push((p.field, pat.clone())),
            }
        }
        if let Some(a) = vigil_rules::required_values(&r.condition, Field::EventAction)
            .and_then(|a| a.into_iter().next())
        {
            let mut values = vec![(Field::EventAction, s(a))];
            values.extend(together.into_iter().map(|(f, v)| (f, s(v))));
            out.push(Example {
                line: 0,
                want: true,
                values,
            });
        }
    }
    out
}

/// Evaluates every event both ways; returns (matches, rules skipped per
/// event by the prefilter).
fn check(name: &str, set: &RuleSet, events: &[&dyn Fields]) -> (usize, f64) {
    let mut on_s = Scratch::new();
    let mut off_s = Scratch::new();
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let mut matches = 0;
    // Three passes with the same scratch: forwards, forwards again and
    // backwards, so that the prefiltered engine's cache of repeated field
    // values is cold, warm, and warm with other neighbours; the first pass's
    // matches are counted.
    let n = events.len();
    for pass in 0..3 {
        for k in 0..n {
            let i = if pass == 2 { n - 1 - k } else { k };
            let ev = events[i];
            on.clear();
            off.clear();
            set.evaluate_with(ev, &mut on_s, &mut on, true);
            set.evaluate_with(ev, &mut off_s, &mut off, false);
            let a: Vec<&str> = on.iter().map(|r| r.id.as_str()).collect();
            let b: Vec<&str> = off.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(
                a, b,
                "{name}: pass {pass}: event {i}: prefiltered vs unfiltered"
            );
            if pass == 0 {
                matches += a.len();
            }
        }
    }
    (matches, on_s.counts().skipped_per_event())
}

fn run(name: &str, paths: &[PathBuf], captured: &[Event]) {
    let mut l = Loader::new();
    l.add_builtin();
    for p in paths {
        l.add_path(p);
    }
    let (set, report) = l.load();
    assert!(set.len() > 50, "{name}: {} rules", set.len());
    let lits = literal_events(&set);
    let mut evs: Vec<&dyn Fields> = captured.iter().map(|e| e as &dyn Fields).collect();
    evs.extend(lits.iter().map(|e| e as &dyn Fields));
    let (matches, skipped) = check(name, &set, &evs);
    eprintln!(
        "{name}: {} rules ({} Sigma, {} load errors), {} events, {matches} matches, {skipped:.1} rules skipped per event",
        set.len(),
        report.sigma_rules,
        report.errors.len(),
        evs.len()
    );
    assert!(
        matches > 100,
        "{name}: only {matches} matches: the test would prove little"
    );
}

#[test]
fn prefilter_equals_unfiltered_on_corpora_and_captures() {
    let captured = captured_events();
    run("built-in", &[], &captured);
    run(
        "built-in + rules/tests/sigma",
        &[root().join("rules/tests/sigma/rules")],
        &captured,
    );
    run(
        "built-in + fuzz corpus rules",
        &[
            root().join("tests/corpus/rules"),
            root().join("tests/corpus/sigma"),
        ],
        &captured,
    );
    match std::env::var_os("VIGIL_SIGMA_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            assert!(
                d.is_dir(),
                "VIGIL_SIGMA_DIR={} is not a folder",
                d.display()
            );
            run(&format!("built-in + {}", d.display()), &[d], &captured);
        }
        None => eprintln!(
            "prefilter: VIGIL_SIGMA_DIR is not set: SigmaHQ's rules were not checked \
             (set it to a SigmaHQ rules/linux folder)"
        ),
    }
}

/// The literal events reach negated and `or` conditions too: a rule that
/// holds on an event without any literal of it (pure negation) still
/// matches with the prefilter on.
#[test]
fn rules_without_literals_still_match() {
    let mut l = Loader::new();
    l.add_source(
        "neg.yaml",
        "- rule: neg\n  condition: 'event.action = exec and not process.command_line contains \"zzz\"'\n",
    );
    let (set, r) = l.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let ev = Example {
        line: 0,
        want: true,
        values: vec![
            (Field::EventAction, Value::Str(b"exec".to_vec().into())),
            (
                Field::ProcessCommandLine,
                Value::Str(b"ls -l".to_vec().into()),
            ),
        ],
    };
    let (m, _) = check("neg", &set, &[&ev]);
    assert_eq!(m, 1);
}
