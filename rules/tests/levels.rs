//! Minimum levels: `Loader::set_min_level`, `PATH@LEVEL`, built-ins exempt,
//! correlation inputs kept, and the report of what was left out.

use std::path::{Path, PathBuf};
use vigil_rules::{Loader, Severity, split_level};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/correlation")
}

#[test]
fn split_level_reads_a_level_suffix_only() {
    assert_eq!(
        split_level(Path::new("/r/sigma@high")),
        (PathBuf::from("/r/sigma"), Some(Severity::High))
    );
    assert_eq!(
        split_level(Path::new("x.yml@informational")),
        (PathBuf::from("x.yml"), Some(Severity::Info))
    );
    // not a level: the whole text is the path
    assert_eq!(
        split_level(Path::new("/r/user@host/rules")),
        (PathBuf::from("/r/user@host/rules"), None)
    );
    assert_eq!(
        split_level(Path::new("@high")),
        (PathBuf::from("@high"), None)
    );
}

#[test]
fn min_level_filters_path_rules_and_reports_them() {
    let all = {
        let mut l = Loader::new();
        l.add_path(&dir().join("unsupported.yml"));
        l.load()
    };
    assert_eq!(all.0.len(), 1);
    assert!(all.1.below_level.is_empty());
    let mut l = Loader::new();
    l.set_min_level(Some(Severity::Medium));
    l.add_path(&dir().join("unsupported.yml"));
    let (set, r) = l.load();
    assert_eq!(set.len(), 0);
    assert_eq!(r.below_level.len(), 1);
    assert_eq!(r.below_level[0].level, Severity::Low);
    assert_eq!(r.below_level[0].min_level, Severity::Medium);
    // a per-path level overrides the default
    let mut l = Loader::new();
    l.set_min_level(Some(Severity::Medium));
    l.add_rules_arg(&PathBuf::from(format!(
        "{}@low",
        dir().join("unsupported.yml").display()
    )));
    let (set, r) = l.load();
    assert_eq!(set.len(), 1);
    assert!(r.below_level.is_empty());
    // ignore_levels loads everything but still says what a run leaves out
    let mut l = Loader::new();
    l.set_min_level(Some(Severity::High));
    l.ignore_levels(true);
    l.add_path(&dir().join("unsupported.yml"));
    let (set, r) = l.load();
    assert_eq!(set.len(), 1);
    assert_eq!(r.below_level.len(), 1);
}

#[test]
fn builtins_are_never_filtered() {
    let mut l = Loader::new();
    l.add_builtin();
    let n = l.load().0.len();
    let mut l = Loader::new();
    l.set_min_level(Some(Severity::Critical));
    l.add_builtin();
    let (set, r) = l.load();
    assert_eq!(set.len(), n);
    assert!(r.below_level.is_empty());
}

#[test]
fn rules_feeding_a_kept_correlation_load_whatever_their_level() {
    // base rule low, correlation high: min_level high keeps both
    let mut l = Loader::new();
    l.set_min_level(Some(Severity::High));
    l.add_path(&dir().join("event_count.yml"));
    let (set, r) = l.load();
    assert_eq!(set.len(), 1);
    assert_eq!(set.correlations().len(), 1);
    assert!(set.is_quiet(&set.rules()[0]));
    assert!(r.below_level.is_empty());
    // critical drops the correlation, and with it the base rule
    let mut l = Loader::new();
    l.set_min_level(Some(Severity::Critical));
    l.add_path(&dir().join("event_count.yml"));
    let (set, r) = l.load();
    assert_eq!(set.len(), 0);
    assert_eq!(set.correlations().len(), 0);
    assert_eq!(r.below_level.len(), 2);
}

const LOW_VIGIL_RULE: &str = "- rule: local_low
  name: Local low rule
  description: a local rule of low severity
  condition: event.action = exec and process.name = vg-low
  severity: low
";

#[test]
fn the_default_level_filters_sigma_rules_only_and_a_path_level_filters_vigil_rules_too() {
    // the operator's own vigil rule loads whatever its severity
    let mut l = Loader::new();
    l.set_min_level(Some(Severity::Critical));
    l.add_source("local.yaml", LOW_VIGIL_RULE);
    let (set, r) = l.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(set.len(), 1);
    assert!(r.below_level.is_empty());
    // a level given for the path applies to it
    let d = std::env::temp_dir().join(format!("vigil-levels-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("local.yaml");
    std::fs::write(&f, LOW_VIGIL_RULE).unwrap();
    let mut l = Loader::new();
    l.add_rules_arg(&PathBuf::from(format!("{}@medium", f.display())));
    let (set, r) = l.load();
    assert_eq!(set.len(), 0);
    assert_eq!(r.below_level.len(), 1);
    assert_eq!(r.below_level[0].rule, "local_low");
    assert_eq!(r.below_level[0].min_level, Severity::Medium);
    std::fs::remove_dir_all(&d).unwrap();
}
