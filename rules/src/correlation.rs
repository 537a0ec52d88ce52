//! Sigma correlation rules (`event_count`, `value_count`, `temporal`,
//! `temporal_ordered`), evaluated over the stream of rule matches.
//!
//! A correlation document names the rules it aggregates (`rules:`, by their
//! `name` or `id`), the fields that split events into groups (`group-by`),
//! a window (`timespan`) and a threshold (`condition`). The engine hands
//! every event's matches to [`crate::RuleSet::correlate`], which keeps the
//! per-group state in a [`CorrState`] bounded by a number of entries; when
//! the cap is reached the oldest group is dropped and counted
//! ([`CorrState::evictions`]).

use crate::schema::Field;
use crate::yaml::Node;
use crate::{LoadError, Rule, Ruleset, Seg, Severity, Skipped, Template};
use std::collections::{HashMap, VecDeque};

/// The correlation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// N events of the referenced rules in the window.
    EventCount,
    /// N distinct values of a field in the window.
    ValueCount,
    /// All (or N of) the referenced rules matched in the window, any order.
    Temporal,
    /// The referenced rules matched in the listed order within the window.
    TemporalOrdered,
}

impl Kind {
    /// The name as Sigma writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::EventCount => "event_count",
            Kind::ValueCount => "value_count",
            Kind::Temporal => "temporal",
            Kind::TemporalOrdered => "temporal_ordered",
        }
    }
}

/// The threshold comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `gt`.
    Gt,
    /// `gte`.
    Gte,
    /// `eq`.
    Eq,
}

/// A loaded correlation rule.
#[derive(Debug, Clone)]
pub struct Correlation {
    /// The alert's rule: id, title, level, tags, file and line of the
    /// correlation document (its condition is never evaluated).
    pub rule: Rule,
    /// Type.
    pub kind: Kind,
    /// Ids of the referenced rules, in the order written.
    pub refs: Vec<String>,
    /// Group-by fields (vigil fields).
    pub group_by: Vec<Field>,
    /// Window, nanoseconds.
    pub timespan_ns: u64,
    /// Comparison and threshold.
    pub op: Op,
    /// Threshold.
    pub count: u64,
    /// `value_count`: the field whose distinct values are counted.
    pub value_field: Option<Field>,
    /// `generate: true`: the referenced rules also raise their own alerts.
    pub generate: bool,
    /// Indices of the referenced rules in the rule set (after building).
    pub(crate) idx: Vec<usize>,
}

impl Correlation {
    /// How many matches (events, values or rules) fire the correlation.
    pub fn needed(&self) -> u64 {
        match self.op {
            Op::Gt => self.count.saturating_add(1),
            Op::Gte | Op::Eq => self.count.max(1),
        }
    }
}

/// How a reference in `rules:` resolved.
pub(crate) enum Ref {
    /// A loaded rule id.
    Rule(String),
    /// A rule that was skipped, with the reason.
    Skipped(String),
    /// A correlation (chains are not supported).
    Correlation,
}

/// Result of converting one correlation document.
pub(crate) enum Outcome {
    /// Loaded.
    Corr(Box<Correlation>),
    /// Not expressible.
    Skipped(Skipped),
}

/// Parses a Sigma timespan (`30s`, `5m`, `1h`, `2d`, `1w`, `1M` = 30 days,
/// `1y` = 365 days) into nanoseconds.
pub fn parse_timespan(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let secs: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'M' => 30 * 86_400,
        'y' => 365 * 86_400,
        _ => return None,
    };
    if n == 0 {
        return None;
    }
    n.checked_mul(secs)?.checked_mul(1_000_000_000)
}

/// A Sigma or ECS field name for `group-by` / `field`.
fn field_of(name: &str) -> Option<Field> {
    crate::sigma::FIELD_MAP
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .or_else(|| Field::by_name(name))
}

fn strs(n: Option<&Node>) -> Option<Vec<String>> {
    match n {
        None => Some(Vec::new()),
        Some(n) => match n.as_seq() {
            Some(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect(),
            None => n.as_str().map(|s| vec![s.to_string()]),
        },
    }
}

/// Converts one correlation document; `resolve` maps a `rules:` entry.
pub(crate) fn convert(
    file: &str,
    d: &Node,
    resolve: &dyn Fn(&str) -> Option<Ref>,
) -> Result<Outcome, LoadError> {
    let title = d
        .get("title")
        .and_then(Node::as_str)
        .unwrap_or("")
        .to_string();
    let id = d
        .get("id")
        .and_then(Node::as_str)
        .or_else(|| d.get("name").and_then(Node::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| title.clone());
    let c = d.get("correlation").unwrap_or(d);
    let err = |n: Option<&Node>, m: String| LoadError {
        file: file.to_string(),
        line: n.map_or(c.line, |n| n.line),
        message: format!(
            "Sigma correlation `{}`: {m}",
            if title.is_empty() { &id } else { &title }
        ),
    };
    let skipped = |class: &str, reason: String| {
        Ok(Outcome::Skipped(Skipped {
            file: file.to_string(),
            rule: if title.is_empty() {
                id.clone()
            } else {
                title.clone()
            },
            class: class.to_string(),
            reason,
        }))
    };
    if title.is_empty() {
        return Err(err(None, "field `title` is missing".into()));
    }
    if c.as_map().is_none() {
        return Err(err(Some(c), "field `correlation` is not a mapping".into()));
    }
    let ty = c.get("type").and_then(Node::as_str).unwrap_or("");
    let kind = match ty {
        "event_count" => Kind::EventCount,
        "value_count" => Kind::ValueCount,
        "temporal" => Kind::Temporal,
        "temporal_ordered" => Kind::TemporalOrdered,
        "value_sum" | "value_avg" | "value_percentile" | "value_median" => {
            return skipped(
                "correlation",
                format!("correlation type `{ty}` is not supported"),
            );
        }
        "" => return Err(err(Some(c), "field `correlation.type` is missing".into())),
        t => {
            return Err(err(
                c.get("type"),
                format!("field `correlation.type`: `{t}` is not a correlation type"),
            ));
        }
    };
    let level = d.get("level").and_then(Node::as_str).unwrap_or("medium");
    let severity = Severity::parse(level).ok_or_else(|| {
        err(
            d.get("level"),
            format!("field `level`: `{level}` is not a Sigma level"),
        )
    })?;
    let names = strs(c.get("rules"))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            err(
                c.get("rules"),
                "field `correlation.rules`: a list of rule names or ids is required".into(),
            )
        })?;
    let mut refs = Vec::new();
    for n in &names {
        match resolve(n) {
            Some(Ref::Rule(id)) => refs.push(id),
            Some(Ref::Skipped(why)) => {
                return skipped(
                    "correlation",
                    format!("refers to rule `{n}`, which was skipped ({why})"),
                );
            }
            Some(Ref::Correlation) => {
                return skipped(
                    "correlation",
                    format!("refers to correlation `{n}`: chained correlations are not supported"),
                );
            }
            None => {
                return Err(err(
                    c.get("rules"),
                    format!("field `correlation.rules`: no loaded rule has the name or id `{n}`"),
                ));
            }
        }
    }
    if c.get("aliases").is_some() {
        return skipped(
            "correlation",
            "field aliases (`aliases`) are not supported".into(),
        );
    }
    let gb = strs(c.get("group-by")).ok_or_else(|| {
        err(
            c.get("group-by"),
            "field `correlation.group-by`: a list of field names is required".into(),
        )
    })?;
    let mut group_by = Vec::new();
    for g in &gb {
        match field_of(g) {
            Some(f) if f.available() => group_by.push(f),
            _ => {
                return skipped(
                    "field",
                    format!("group-by field `{g}` has no vigil equivalent"),
                );
            }
        }
    }
    let ts = c.get("timespan").or_else(|| c.get("timeframe"));
    let timespan_ns = match ts.and_then(Node::as_str) {
        None => {
            return Err(err(
                ts,
                "field `correlation.timespan` is missing (e.g. `5m`)".into(),
            ));
        }
        Some(t) => parse_timespan(t).ok_or_else(|| {
            err(
                ts,
                format!("field `correlation.timespan`: `{t}` is not a timespan (a number and s, m, h, d, w, M or y)"),
            )
        })?,
    };
    let generate = match c.get("generate").or_else(|| d.get("generate")) {
        None => false,
        Some(g) => match g.as_str() {
            Some("true") => true,
            Some("false") => false,
            _ => {
                return Err(err(
                    Some(g),
                    "field `generate`: `true` or `false` expected".into(),
                ));
            }
        },
    };
    // condition
    let mut op = Op::Gte;
    let mut count = refs.len() as u64;
    let mut value_field = None;
    let cond = c.get("condition");
    match cond {
        None if matches!(kind, Kind::Temporal | Kind::TemporalOrdered) => {}
        None => {
            return Err(err(
                None,
                "field `correlation.condition` is missing (e.g. `gte: 10`)".into(),
            ));
        }
        Some(cn) => {
            let m = cn.as_map().ok_or_else(|| {
                err(
                    Some(cn),
                    "field `correlation.condition`: a mapping such as `gte: 10` is required".into(),
                )
            })?;
            let mut ops = Vec::new();
            for (k, v) in m {
                let k = k.as_str().unwrap_or("");
                if k == "field" {
                    let f = v.as_str().unwrap_or("");
                    match field_of(f) {
                        Some(x) if x.available() => value_field = Some(x),
                        _ => {
                            return skipped(
                                "field",
                                format!("condition field `{f}` has no vigil equivalent"),
                            );
                        }
                    }
                    continue;
                }
                let n: u64 = v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                    err(
                        Some(v),
                        format!("field `correlation.condition.{k}`: a whole number is required"),
                    )
                })?;
                match k {
                    "gt" => ops.push((Op::Gt, n)),
                    "gte" => ops.push((Op::Gte, n)),
                    "eq" => ops.push((Op::Eq, n)),
                    "lt" | "lte" | "neq" => {
                        return skipped(
                            "correlation",
                            format!(
                                "condition `{k}` holds at the end of a window without events, which a stream of matches cannot show"
                            ),
                        );
                    }
                    _ => {
                        return Err(err(
                            Some(v),
                            format!(
                                "field `correlation.condition`: unknown operator `{k}` (gt, gte, eq, lt, lte, neq)"
                            ),
                        ));
                    }
                }
            }
            match ops.as_slice() {
                [(o, n)] => {
                    op = *o;
                    count = *n;
                }
                [] => {
                    return Err(err(
                        Some(cn),
                        "field `correlation.condition`: no comparison (`gte: N`)".into(),
                    ));
                }
                _ => {
                    return skipped(
                        "correlation",
                        "a condition with several comparisons (a range) is not supported".into(),
                    );
                }
            }
        }
    }
    if kind == Kind::ValueCount && value_field.is_none() {
        return Err(err(
            cond,
            "field `correlation.condition.field` is required for value_count".into(),
        ));
    }
    if kind == Kind::TemporalOrdered && (op != Op::Gte || count != refs.len() as u64) {
        return skipped(
            "correlation",
            "temporal_ordered with a condition other than all of its rules is not supported".into(),
        );
    }
    let tags = d
        .get("tags")
        .and_then(Node::as_seq)
        .map(|t| {
            t.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut segs = vec![Seg::Lit(format!(
        "{title} ({} {} {} within {})",
        kind.as_str(),
        match op {
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Eq => "=",
        },
        count,
        ts.and_then(Node::as_str).unwrap_or("")
    ))];
    for (i, f) in group_by.iter().enumerate() {
        segs.push(Seg::Lit(format!(
            "{}{}=",
            if i == 0 { "; " } else { ", " },
            f.name()
        )));
        segs.push(Seg::Field(*f));
    }
    let rule = Rule {
        description: crate::sigma::description(d),
        tags,
        output: Some(Template(segs)),
        ..Rule::generated(Ruleset::Sigma, file, d.line, id, title, severity)
    };
    Ok(Outcome::Corr(Box::new(Correlation {
        rule,
        kind,
        refs,
        group_by,
        timespan_ns,
        op,
        count,
        value_field,
        generate,
        idx: Vec::new(),
    })))
}

// ---- state -----------------------------------------------------------------

enum Group {
    /// event_count: the latest match times (at most the threshold).
    Times(VecDeque<u64>),
    /// value_count: value -> latest time.
    Values(HashMap<Vec<u8>, u64>),
    /// temporal: per referenced rule, its latest match time.
    Seen(Vec<Option<u64>>),
    /// temporal_ordered: per step, the start time of the latest sequence
    /// that reached it.
    Steps(Vec<Option<u64>>),
}

impl Group {
    fn entries(&self) -> usize {
        1 + match self {
            Group::Times(t) => t.len(),
            Group::Values(v) => v.len(),
            Group::Seen(s) | Group::Steps(s) => s.len(),
        }
    }
}

struct Slot {
    serial: u64,
    last: u64,
    group: Group,
}

type Key = (u32, Vec<u8>);

/// Per-group correlation state, bounded by a number of entries (one per
/// group plus one per remembered time or value).
pub struct CorrState {
    generation: u64,
    groups: HashMap<Key, Slot>,
    order: VecDeque<(Key, u64)>,
    serial: u64,
    entries: usize,
    max_entries: usize,
    evictions: u64,
    observed: u64,
}

impl Default for CorrState {
    fn default() -> Self {
        CorrState::new(CorrState::DEFAULT_MAX_ENTRIES)
    }
}

impl CorrState {
    /// Default cap on entries.
    pub const DEFAULT_MAX_ENTRIES: usize = 262_144;

    /// Empty state holding at most `max_entries` entries.
    pub fn new(max_entries: usize) -> CorrState {
        CorrState {
            generation: 0,
            groups: HashMap::new(),
            order: VecDeque::new(),
            serial: 0,
            entries: 0,
            max_entries: max_entries.max(1),
            evictions: 0,
            observed: 0,
        }
    }

    /// Groups held.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Entries held (at most the cap).
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Groups dropped, oldest first, to stay under the cap.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    pub(crate) fn reset_for(&mut self, generation: u64) {
        if self.generation != generation {
            self.groups.clear();
            self.order.clear();
            self.entries = 0;
            self.generation = generation;
        }
    }

    /// Drops groups with nothing inside their window.
    fn sweep(&mut self, now: u64, spans: &[u64]) {
        let mut freed = 0;
        self.groups.retain(|k, s| {
            let span = spans.get(k.0 as usize).copied().unwrap_or(0);
            let keep = now.saturating_sub(s.last) <= span;
            if !keep {
                freed += s.group.entries();
            }
            keep
        });
        self.entries -= freed;
        let groups = &self.groups;
        self.order
            .retain(|(k, serial)| groups.get(k).is_some_and(|s| s.serial == *serial));
    }

    fn make_room(&mut self, need: usize) {
        while self.entries + need > self.max_entries {
            let Some((k, serial)) = self.order.pop_front() else {
                break;
            };
            if self.groups.get(&k).is_some_and(|s| s.serial == serial)
                && let Some(s) = self.groups.remove(&k)
            {
                self.entries -= s.group.entries();
                self.evictions += 1;
            }
        }
    }

    /// Feeds one event's matches to correlation `ci`; `hits` are the
    /// positions in `c.refs` of the rules that matched. Returns whether it
    /// fired.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn observe(
        &mut self,
        ci: usize,
        c: &Correlation,
        hits: &[usize],
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        now: u64,
        spans: &[u64],
    ) -> bool {
        self.observed += 1;
        if self.observed.is_multiple_of(4096) {
            self.sweep(now, spans);
        }
        let k: Key = (ci as u32, key);
        let span = c.timespan_ns;
        let need = c.needed() as usize;
        if !self.groups.contains_key(&k) {
            self.make_room(1);
            self.serial += 1;
            let group = match c.kind {
                Kind::EventCount => Group::Times(VecDeque::new()),
                Kind::ValueCount => Group::Values(HashMap::new()),
                Kind::Temporal => Group::Seen(vec![None; c.refs.len()]),
                Kind::TemporalOrdered => Group::Steps(vec![None; c.refs.len()]),
            };
            self.entries += group.entries();
            self.groups.insert(
                k.clone(),
                Slot {
                    serial: self.serial,
                    last: now,
                    group,
                },
            );
            self.order.push_back((k.clone(), self.serial));
        }
        let Some(slot) = self.groups.get_mut(&k) else {
            return false;
        };
        slot.last = slot.last.max(now);
        let old = slot.group.entries();
        let live = |t: u64| now.saturating_sub(t) <= span;
        let fired = match &mut slot.group {
            Group::Times(t) => {
                t.retain(|&x| live(x));
                t.push_back(now);
                while t.len() > need {
                    t.pop_front();
                }
                t.len() >= need
            }
            Group::Values(v) => {
                v.retain(|_, x| live(*x));
                if let Some(val) = value
                    && (v.len() < need || v.contains_key(&val))
                {
                    v.insert(val, now);
                }
                v.len() >= need
            }
            Group::Seen(s) => {
                for &h in hits {
                    s[h] = Some(now);
                }
                for x in s.iter_mut() {
                    if x.is_some_and(|t| !live(t)) {
                        *x = None;
                    }
                }
                s.iter().filter(|x| x.is_some()).count() >= need
            }
            Group::Steps(s) => {
                for x in s.iter_mut() {
                    if x.is_some_and(|t| !live(t)) {
                        *x = None;
                    }
                }
                // Latest step first, so one event advances one step.
                let mut hs = hits.to_vec();
                hs.sort_unstable_by(|a, b| b.cmp(a));
                for h in hs {
                    if h == 0 {
                        s[0] = Some(now);
                    } else if let Some(start) = s[h - 1] {
                        s[h] = Some(s[h].map_or(start, |cur| cur.max(start)));
                    }
                }
                s.last().is_some_and(Option::is_some)
            }
        };
        let new = slot.group.entries();
        self.entries = self.entries + new - old;
        if fired {
            if let Some(s) = self.groups.remove(&k) {
                self.entries -= s.group.entries();
            }
        } else if self.entries > self.max_entries {
            self.make_room(0);
        }
        fired
    }
}

/// The group key of an event: each group-by field's value, length-prefixed
/// (a missing field is a distinct marker).
pub(crate) fn key_of(fields: &[Field], ev: &dyn crate::Fields) -> Vec<u8> {
    let mut k = Vec::new();
    for f in fields {
        match ev.field(*f).map(|v| value_bytes(&v)) {
            Some(b) => {
                k.extend_from_slice(&(b.len() as u32).to_le_bytes());
                k.extend_from_slice(&b);
            }
            None => k.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
    k
}

/// A value's bytes (numbers and addresses as text).
pub(crate) fn value_bytes(v: &crate::Value<'_>) -> Vec<u8> {
    match v {
        crate::Value::Str(s) => s.to_vec(),
        crate::Value::Int(i) => i.to_string().into_bytes(),
        crate::Value::Bool(b) => b.to_string().into_bytes(),
        crate::Value::Ip(a) => a.to_string().into_bytes(),
    }
}
