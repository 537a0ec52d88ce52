//! `vigil baseline ...`: the learned baselines, offline (no root needed to
//! read a database the user can access). sled allows one process per
//! database: while `vigil run` holds it, these commands say so.

use crate::config::Config;
use vigil_baselines::{Baselines, Error, Mode};

/// What to do.
#[derive(Debug, Clone)]
pub enum Op {
    /// Profiles: mode, age, readiness to promote, counts, loss flag, process names.
    List,
    /// Everything learned by a profile (YAML whitelist).
    Show(String),
    /// Items seen since promotion.
    Diff(String),
    /// Start reporting drift (`locked`: drift kills, never learn more).
    Promote(String, bool),
    /// Back to learning.
    Demote(String),
    /// Forget what a profile learned.
    Reset(String),
    /// Export: `yaml`, `seccomp` or `rules`.
    Export(Vec<String>, String),
    /// Merge a YAML whitelist (union).
    Import(std::path::PathBuf, Option<Mode>),
    /// `list` with filters and a format.
    ListWith(ListFilter),
    /// `show`; `true`: JSON instead of YAML.
    ShowWith(String, bool),
    /// `diff`; `true`: compact JSON on one line.
    DiffWith(String, bool),
}

/// `vigil baseline list --mode M --name N --json`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only profiles in this mode.
    pub mode: Option<Mode>,
    /// Only profiles with this process name (comm or `argv[0]`), or whose
    /// key contains it.
    pub name: Option<String>,
    /// A JSON array instead of the table.
    pub json: bool,
}

impl ListFilter {
    /// Whether a profile passes the filters.
    pub fn matches(&self, p: &vigil_baselines::ProfileSummary) -> bool {
        self.mode.is_none_or(|m| p.mode == m)
            && self
                .name
                .as_ref()
                .is_none_or(|n| p.names.iter().any(|x| x == n) || p.profile.contains(n.as_str()))
    }
}

/// `vigil baseline list --json`: each profile as its summary plus `ready`
/// (the table's column text).
pub fn list_json(rows: &[vigil_baselines::ProfileSummary]) -> String {
    let v: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut o = serde_json::to_value(r).unwrap_or_default();
            if let Some(m) = o.as_object_mut() {
                m.insert("ready".into(), serde_json::json!(r.readiness.label()));
            }
            o
        })
        .collect();
    serde_json::Value::Array(v).to_string() + "\n"
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Runs one operation; returns (stdout text, exit code).
pub fn run(cfg: &Config, op: Op) -> (String, u8) {
    let dir = cfg.baselines_dir();
    // An import reads its file first (a bad file changes nothing) and may
    // create the store: that is how a fleet host that never learned gets a
    // reviewed whitelist.
    let import_text = match &op {
        Op::Import(path, _) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => return (format!("vigil: cannot read {}: {e}\n", path.display()), 2),
        },
        _ => None,
    };
    if !dir.exists() && import_text.is_some() {
        if let Err(e) = cfg.ensure_data_dir() {
            return (format!("vigil: {e}\n"), 1);
        }
    } else if !dir.exists() {
        return (
            format!(
                "vigil: no baselines at {} (vigil run learns them; --config sets agent.data_dir)\n",
                dir.display()
            ),
            1,
        );
    }
    let mut b = match Baselines::open(&dir, cfg.baselines.learner()) {
        Ok(b) => b,
        Err(Error::Locked { .. }) => {
            return (
                format!(
                    "vigil: the baselines database {} is in use by a running vigil; stop it first (sled allows one process)\n",
                    dir.display()
                ),
                1,
            );
        }
        Err(e) => return (format!("vigil: {e}\n"), 1),
    };
    let now = now_ns();
    let r: Result<String, Error> = match op {
        Op::List => Ok(vigil_baselines::render_list(&b.list_at(now), now)),
        Op::ListWith(f) => {
            let rows: Vec<_> = b
                .list_at(now)
                .into_iter()
                .filter(|p| f.matches(p))
                .collect();
            Ok(if f.json {
                list_json(&rows)
            } else {
                vigil_baselines::render_list(&rows, now)
            })
        }
        Op::Show(p) | Op::ShowWith(p, false) => b.export_yaml(&[p.as_str()]),
        Op::ShowWith(p, true) => b
            .baseline(&p)
            .map(|d| serde_json::to_string(&d).unwrap_or_default() + "\n"),
        Op::Diff(p) | Op::DiffWith(p, false) => b
            .diff(&p)
            .map(|d| serde_json::to_string_pretty(&d).unwrap_or_default() + "\n"),
        Op::DiffWith(p, true) => b
            .diff(&p)
            .map(|d| serde_json::to_string(&d).unwrap_or_default() + "\n"),
        Op::Promote(p, locked) => {
            let m = if locked {
                Mode::Locked
            } else {
                Mode::Monitoring
            };
            b.promote(&p, m, now).map(|()| format!("{p}: {m}\n"))
        }
        Op::Demote(p) => b.demote(&p, now).map(|()| format!("{p}: learning\n")),
        Op::Reset(p) => b.reset(&p, now).map(|()| format!("{p}: reset, learning\n")),
        Op::Export(ps, format) => match format.as_str() {
            "yaml" => {
                let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
                b.export_yaml(&refs)
            }
            "seccomp" | "rules" if ps.len() != 1 => {
                return (format!("vigil: --format {format} exports one profile\n"), 2);
            }
            "seccomp" => b.export_seccomp(&ps[0]).map_err(|e| match e {
                Error::Export(m) => Error::Export(format!(
                    "{m} (syscall sets are learned with `[baselines] syscalls = true`)"
                )),
                e => e,
            }),
            "rules" => b.export_rules(&ps[0]),
            f => {
                return (
                    format!("vigil: unknown export format `{f}` (yaml, seccomp, rules)\n"),
                    2,
                );
            }
        },
        Op::Import(path, mode) => b
            .import_yaml(import_text.as_deref().unwrap_or_default(), mode, now)
            .map(|s| {
                format!(
                    "imported {}: {} profiles created, {} merged, {} new items\n",
                    path.display(),
                    s.created.len(),
                    s.merged.len(),
                    s.new_items
                )
            }),
    };
    let r = r.and_then(|out| b.flush().map(|_| out));
    match r {
        Ok(s) => (s, 0),
        Err(e @ Error::NoSuchProfile(..)) => (
            format!("vigil: {e} (`vigil baseline list` names them)\n"),
            2,
        ),
        Err(e @ Error::Import(..)) => (format!("vigil: {e}\n"), 2),
        Err(e) => (format!("vigil: {e}\n"), 1),
    }
}
