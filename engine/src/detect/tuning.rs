//! Learned tuning: rule hits that are normal for a program.
//!
//! While a program's baseline profile is learning, every rule hit of its
//! processes is remembered as (rule, profile, the values of the fields the
//! rule tests). Once the profile is promoted, a hit of the same rule with the
//! same values is *demoted*: written as an event, not an alert, and counted
//! per rule. Path-like values are generalised as the baselines generalise
//! paths (`/proc/1234/stat` is `/proc/*/stat`). The state is kept in
//! `<agent.data_dir>/tuning.json` (0600); `vigil rules tuning` reports it
//! and `--export` writes the learned values as vigil rule `exceptions`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use vigil_rules::{Field, Fields, Rule, Type};

/// Distinct value tuples remembered per (rule, profile).
pub const MAX_TUPLES: usize = 256;

/// One (rule, profile) pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Rule id.
    pub rule: String,
    /// Rule name.
    pub rule_name: String,
    /// Profile (as `vigil baseline list` names it).
    pub profile: String,
    /// The fields whose values are remembered.
    pub fields: Vec<String>,
    /// Value tuples seen while the profile was learning.
    pub values: BTreeSet<Vec<String>>,
    /// Hits seen while learning.
    pub learned_hits: u64,
    /// Hits demoted to events since.
    pub demoted: u64,
    /// Tuples not remembered because [`MAX_TUPLES`] were.
    pub overflow: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<Entry>,
}

/// The tuning state.
#[derive(Debug, Default)]
pub struct Tuning {
    path: Option<PathBuf>,
    entries: BTreeMap<(String, String), Entry>,
    dirty: bool,
}

/// Fields that say what kind of event it is, or which process instance:
/// not what makes a hit normal.
fn skip_field(f: Field) -> bool {
    matches!(
        f,
        Field::EventAction
            | Field::EventCategory
            | Field::EventType
            | Field::EventOutcome
            | Field::ProcessPid
            | Field::ProcessParentPid
    ) || f.ty() == Type::Bool
}

/// The fields of a rule that tuning remembers.
pub fn tuned_fields(r: &Rule) -> Vec<Field> {
    r.fields().into_iter().filter(|f| !skip_field(*f)).collect()
}

fn value_text(ev: &dyn Fields, f: Field) -> String {
    let Some(v) = ev.field(f) else {
        return String::new();
    };
    match v {
        vigil_rules::Value::Str(b) => {
            let g = if b.contains(&b'/') {
                vigil_baselines::generalise_path(&b).into_owned()
            } else {
                b.into_owned()
            };
            String::from_utf8_lossy(&g).into_owned()
        }
        vigil_rules::Value::Int(i) => i.to_string(),
        vigil_rules::Value::Bool(b) => b.to_string(),
        vigil_rules::Value::Ip(a) => a.to_string(),
    }
}

impl Tuning {
    /// Reads `path` (missing: empty). A file that cannot be read is an
    /// error naming it.
    pub fn open(path: &Path) -> Result<Tuning, String> {
        let mut t = Tuning {
            path: Some(path.to_path_buf()),
            ..Tuning::default()
        };
        let text = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(t),
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        };
        let f: File = serde_json::from_str(&text)
            .map_err(|e| format!("{}:{}: tuning state: {e}", path.display(), e.line()))?;
        for e in f.entries {
            t.entries.insert((e.rule.clone(), e.profile.clone()), e);
        }
        Ok(t)
    }

    /// The entries, by rule then profile.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Offers one hit of `rule` by a process whose profile is `profile`
    /// (`learning`: the profile is learning). Returns true when the hit is
    /// normal for the program and must be demoted to an event.
    pub fn offer(&mut self, rule: &Rule, profile: &str, learning: bool, ev: &dyn Fields) -> bool {
        let fields = tuned_fields(rule);
        if fields.is_empty() {
            return false;
        }
        let values: Vec<String> = fields.iter().map(|f| value_text(ev, *f)).collect();
        let key = (rule.id.clone(), profile.to_string());
        if learning {
            let e = self.entries.entry(key).or_insert_with(|| Entry {
                rule: rule.id.clone(),
                rule_name: rule.name.clone(),
                profile: profile.to_string(),
                fields: fields.iter().map(|f| f.name().to_string()).collect(),
                ..Entry::default()
            });
            e.learned_hits += 1;
            if e.values.len() < MAX_TUPLES || e.values.contains(&values) {
                e.values.insert(values);
            } else {
                e.overflow += 1;
            }
            self.dirty = true;
            return false;
        }
        match self.entries.get_mut(&key) {
            Some(e) if e.values.contains(&values) => {
                e.demoted += 1;
                self.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// Writes the state if it changed (0600, replaced atomically).
    pub fn save(&mut self) -> Result<(), String> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let f = File {
            version: 1,
            entries: self.entries.values().cloned().collect(),
        };
        let text = serde_json::to_string_pretty(&f).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut w = vigil_outputs::private::open(&tmp, vigil_outputs::private::How::Replace)
                .map_err(|e| format!("{}: {e}", tmp.display()))?;
            w.write_all(text.as_bytes())
                .map_err(|e| format!("{}: {e}", tmp.display()))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.dirty = false;
        Ok(())
    }

    /// The `vigil rules tuning` report.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let mut by_rule: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
        for e in self.entries.values() {
            let x = by_rule.entry(&e.rule).or_default();
            x.0 += e.demoted;
            x.1 += 1;
        }
        s.push_str(&format!(
            "{} rules with hits learned as normal for {} programs; {} hits demoted to events\n",
            by_rule.len(),
            self.entries
                .values()
                .map(|e| e.profile.as_str())
                .collect::<BTreeSet<_>>()
                .len(),
            by_rule.values().map(|x| x.0).sum::<u64>()
        ));
        s.push_str(&format!(
            "{:<40} {:>8} {:>8} {:>8}  {}\n",
            "rule", "learned", "values", "demoted", "profile"
        ));
        for e in self.entries.values() {
            s.push_str(&format!(
                "{:<40} {:>8} {:>8} {:>8}  {}\n",
                vigil_rules::printable(&e.rule),
                e.learned_hits,
                e.values.len(),
                e.demoted,
                vigil_rules::printable(&e.profile)
            ));
        }
        crate::detect::terminal_safe(&s).into_owned()
    }

    /// The learned values as vigil rule `exceptions`, one block per rule:
    /// the program's executable and the rule's fields (`glob` where the
    /// value was generalised, `=` otherwise).
    pub fn export(&self) -> String {
        let mut s = String::from(
            "# Learned tuning: add each block to the rule's `exceptions:` (vigil rules),\n# or to a vigil rule wrapping the Sigma rule.\n",
        );
        let mut by_rule: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in self.entries.values() {
            by_rule.entry(&e.rule).or_default().push(e);
        }
        for (rule, es) in by_rule {
            s.push_str(&format!("- rule: {}\n", yaml_str(rule)));
            s.push_str(&format!("  # {}\n", es[0].rule_name.replace('\n', " ")));
            s.push_str("  exceptions:\n");
            for e in es {
                let exe = e
                    .profile
                    .strip_prefix("exe:")
                    .unwrap_or(&e.profile)
                    .split(['#', '@'])
                    .next()
                    .unwrap_or("")
                    .to_string();
                let mut fields = vec!["process.executable".to_string()];
                let mut comps = vec!["=".to_string()];
                let skip_exe = e.fields.iter().position(|f| f == "process.executable");
                for (i, f) in e.fields.iter().enumerate() {
                    if Some(i) == skip_exe {
                        continue;
                    }
                    fields.push(f.clone());
                    let glob = e
                        .values
                        .iter()
                        .any(|v| v.get(i).is_some_and(|x| x.contains('*')));
                    comps.push(if glob { "glob" } else { "=" }.to_string());
                }
                s.push_str(&format!(
                    "    - name: {}\n      fields: [{}]\n      comps: [{}]\n      values:\n",
                    yaml_str(&format!("learned_{}", e.profile)),
                    fields.join(", "),
                    comps.join(", ")
                ));
                for v in &e.values {
                    let mut row = vec![yaml_str(&exe)];
                    for (i, x) in v.iter().enumerate() {
                        if Some(i) == skip_exe {
                            continue;
                        }
                        row.push(yaml_str(x));
                    }
                    s.push_str(&format!("        - [{}]\n", row.join(", ")));
                }
            }
        }
        s
    }
}

/// A double-quoted YAML scalar.
fn yaml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
