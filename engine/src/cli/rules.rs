//! `vigil rules check|test|list`, and the rule loading `run` and `replay`
//! share ([`crate::detect`]).

use crate::config::Config;
use crate::detect;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::OutputArgs;

#[derive(Subcommand)]
pub(crate) enum RulesCmd {
    /// Load rule files and folders and report what loaded, what was skipped
    /// (with the reason) and every error (exit 2 on errors).
    Check {
        /// Files or folders (`PATH@LEVEL` sets their minimum level); none =
        /// the built-in rules plus the configured ones.
        paths: Vec<PathBuf>,
        /// List every skipped Sigma rule, not only counts per reason.
        #[arg(long, short)]
        verbose: bool,
        /// Print one JSON object (counts, every skipped rule, every error).
        #[arg(long)]
        json: bool,
    },
    /// Run every rule's embedded `examples` (exit 1 if one fails); rules
    /// below the minimum level are tested too.
    Test {
        /// Files or folders (`PATH@LEVEL` sets their minimum level); none =
        /// the built-in rules plus the configured ones.
        paths: Vec<PathBuf>,
    },
    /// Learned tuning: rule hits learned as normal for a program while its
    /// baseline profile was learning, and how many were demoted to events
    /// since (`<agent.data_dir>/tuning.json`).
    Tuning {
        /// Print the learned values as vigil rule `exceptions` instead.
        #[arg(long)]
        export: bool,
    },
    /// Print the loaded rules (id, severity, ruleset, categories, name).
    List {
        /// Files or folders (`PATH@LEVEL` sets their minimum level); none =
        /// the built-in rules plus the configured ones.
        paths: Vec<PathBuf>,
        /// Print a JSON array of rules instead of the table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn apply_rule_args(cfg: &mut Config, out: &OutputArgs) {
    if out.no_builtin_rules {
        cfg.rules.builtin = false;
    }
    cfg.rules.paths.extend(out.rules.iter().cloned());
}

pub(crate) fn load_rules_or_exit(cfg: &Config) -> Result<Arc<vigil_rules::RuleSet>, ExitCode> {
    let (set, report) = detect::load_rules(cfg);
    if !report.errors.is_empty() {
        for l in detect::render_errors(&report).lines() {
            log::error!("{l}");
        }
        log::error!(
            "{} errors in the rules; fix them (`vigil rules check` lists them)",
            report.errors.len()
        );
        return Err(ExitCode::from(2));
    }
    log::info!(
        "{} rules loaded ({} vigil, {} Sigma, {} Sigma correlations; {} below min_level {}, {} Sigma rules skipped, `vigil rules check` says why)",
        set.len() + set.correlations().len(),
        report.vigil_rules,
        report.sigma_rules,
        report.correlations,
        report.below_level.len(),
        cfg.rules.min_level().as_str(),
        report.skipped.len()
    );
    let all = &set.interest().all_opens_rules;
    if !all.is_empty() {
        log::warn!(
            "{} rules test files without a path prefix, so every open leaves the kernel (e.g. {})",
            all.len(),
            all[0]
        );
    }
    Ok(Arc::new(set))
}

fn rules_for(
    cfg: &Config,
    paths: &[PathBuf],
    all_levels: bool,
) -> (vigil_rules::RuleSet, vigil_rules::Report) {
    let mut l = vigil_rules::Loader::new();
    l.set_min_level(Some(cfg.rules.min_level()));
    l.ignore_levels(all_levels);
    if paths.is_empty() {
        if cfg.rules.builtin {
            l.add_builtin();
        }
        for p in &cfg.rules.paths {
            l.add_rules_arg(p);
        }
    } else {
        for p in paths {
            l.add_rules_arg(p);
        }
    }
    l.load()
}

pub(crate) fn rules_cmd(cfg: &Config, cmd: RulesCmd) -> ExitCode {
    match cmd {
        RulesCmd::Check {
            paths,
            verbose,
            json,
        } => {
            let t = std::time::Instant::now();
            let (set, r) = rules_for(cfg, &paths, false);
            if json {
                println!("{}", check_json(&set, &r));
            } else {
                print!("{}", detect::check_report(&set, &r, verbose, t.elapsed()));
            }
            if r.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        RulesCmd::Test { paths } => {
            let (set, r) = rules_for(cfg, &paths, true);
            if !r.errors.is_empty() {
                eprint!("{}", detect::render_errors(&r));
                return ExitCode::from(2);
            }
            let (n, failures) = set.test_examples();
            for f in &failures {
                println!("FAIL {}", detect::terminal_safe(f));
            }
            println!(
                "{} examples of {} rules: {} passed, {} failed",
                n,
                set.len(),
                n - failures.len(),
                failures.len()
            );
            if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        RulesCmd::Tuning { export } => {
            let path = cfg.tuning_path();
            match crate::detect::tuning::Tuning::open(&path) {
                Ok(t) => {
                    if export {
                        print!("{}", t.export());
                    } else {
                        print!("{}", t.report());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vigil: {}", detect::terminal_safe(&e));
                    ExitCode::from(2)
                }
            }
        }
        RulesCmd::List { paths, json } => {
            let (set, r) = rules_for(cfg, &paths, false);
            if !r.errors.is_empty() {
                eprint!("{}", detect::render_errors(&r));
                return ExitCode::from(2);
            }
            if json {
                let v: Vec<serde_json::Value> = set.rules().iter().map(rule_json).collect();
                println!("{}", serde_json::Value::Array(v));
                return ExitCode::SUCCESS;
            }
            for rule in set.rules() {
                println!(
                    "{:<40} {:<8} {:<6} {:<22} {}",
                    vigil_rules::printable(&rule.id),
                    rule.severity.as_str(),
                    rule.ruleset.as_str(),
                    vigil_rules::cat::names(rule.categories).join(","),
                    vigil_rules::printable(&rule.name)
                );
            }
            for c in set.correlations() {
                println!(
                    "{:<40} {:<8} {:<6} {:<22} {}",
                    vigil_rules::printable(&c.rule.id),
                    c.rule.severity.as_str(),
                    c.rule.ruleset.as_str(),
                    format!("correlation:{}", c.kind.as_str()),
                    vigil_rules::printable(&c.rule.name)
                );
            }
            if let Some(b) = detect::below_level_summary(&r) {
                eprintln!("vigil: {b}; `vigil rules check -v` lists them");
            }
            ExitCode::SUCCESS
        }
    }
}

/// One rule in `rules list --json`.
fn rule_json(rule: &vigil_rules::Rule) -> serde_json::Value {
    serde_json::json!({
        "id": rule.id,
        "name": rule.name,
        "severity": rule.severity.as_str(),
        "ruleset": rule.ruleset.as_str(),
        "categories": vigil_rules::cat::names(rule.categories),
        "tags": rule.tags,
        "file": rule.file,
        "line": rule.line,
    })
}

/// `rules check --json`: `{"ok", "files", "loaded", "vigil", "sigma",
/// "disabled", "sigma_by_category", "skipped": [{"file", "rule", "class",
/// "reason"}], "errors": [{"file", "line", "message"}]}`.
fn check_json(set: &vigil_rules::RuleSet, r: &vigil_rules::Report) -> serde_json::Value {
    use serde_json::json;
    json!({
        "ok": r.errors.is_empty(),
        "files": r.files,
        "loaded": set.len(),
        "vigil": r.vigil_rules,
        "sigma": r.sigma_rules,
        "disabled": r.disabled,
        "sigma_by_category": r.sigma_by_category,
        "skipped": r.skipped.iter().map(|s| json!({
            "file": s.file, "rule": s.rule, "class": s.class, "reason": s.reason,
        })).collect::<Vec<_>>(),
        "errors": r.errors.iter().map(|e| json!({
            "file": e.file, "line": e.line, "message": e.message,
        })).collect::<Vec<_>>(),
    })
}
