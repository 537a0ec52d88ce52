//! Compilation of every rule's condition into one matcher.
//!
//! - Predicates are deduplicated across rules: the same test written in ten
//!   rules is one predicate.
//! - Per field, every string test except plain equality (prefix, suffix,
//!   contains, glob, regex, case-insensitive or not) of every rule becomes one
//!   pattern of a single regex-automata `meta::Regex` built with `new_many`
//!   semantics and `MatchKind::All`; one overlapping scan of the field answers
//!   all of them. Equality and `in` lists are hash lookups (exact, and on the
//!   ASCII-lowercased value for case-insensitive ones); integers are hash
//!   lookups plus the few range comparisons; booleans an array index.
//! - A rule is evaluated only when one of its *trigger* predicates held (a
//!   set of predicates of which at least one must hold for the rule to match,
//!   chosen to be specific), so the work per event follows what the event
//!   matched, not how many rules are loaded. Rules without such a set (only
//!   negations) are evaluated on every event of their categories.

use crate::ast::{Cmp, Expr, Pred, StrOp, Test, in_cidr};
use crate::schema::{Field, Value, cat};
use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Checks a user regex with the syntax the matcher uses.
pub(crate) fn check_regex(src: &str) -> Result<(), String> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(src)
        .map(|_| ())
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .to_string()
        })
}

fn push_literal(out: &mut String, lit: &[u8]) {
    for &b in lit {
        if b.is_ascii_alphanumeric() || b == b'/' || b == b'_' || b == b' ' {
            out.push(b as char);
        } else {
            let _ = write!(out, r"\x{:02x}", b);
        }
    }
}

fn push_glob(out: &mut String, pat: &[u8]) {
    let mut i = 0;
    while i < pat.len() {
        match pat[i] {
            b'*' => out.push_str("(?s:.*)"),
            b'?' => out.push_str("(?s:.)"),
            b'\\' if i + 1 < pat.len() => {
                i += 1;
                push_literal(out, &pat[i..=i]);
            }
            b => push_literal(out, &[b]),
        }
        i += 1;
    }
}

/// The regex source of a non-equality string test.
pub(crate) fn pattern(op: StrOp, pat: &[u8], ci: bool) -> String {
    let mut s = String::new();
    if ci {
        s.push_str("(?i)");
    }
    match op {
        StrOp::Eq => {
            s.push('^');
            push_literal(&mut s, pat);
            s.push('$');
        }
        StrOp::Prefix => {
            s.push('^');
            push_literal(&mut s, pat);
        }
        StrOp::Suffix => {
            push_literal(&mut s, pat);
            s.push('$');
        }
        StrOp::Contains => push_literal(&mut s, pat),
        StrOp::Glob => {
            s.push('^');
            push_glob(&mut s, pat);
            s.push('$');
        }
        StrOp::Regex => {
            // Group so the flag prefix cannot change the user's alternation.
            s.push_str("(?:");
            s.push_str(&String::from_utf8_lossy(pat));
            s.push(')');
        }
    }
    s
}

/// A compiled condition over predicate ids.
#[derive(Debug, Clone)]
enum CExpr {
    And(Vec<CExpr>),
    Or(Vec<CExpr>),
    Not(Box<CExpr>),
    Const(bool),
    P(u32),
}

impl CExpr {
    fn eval(&self, truth: &[u64]) -> bool {
        match self {
            CExpr::And(v) => v.iter().all(|e| e.eval(truth)),
            CExpr::Or(v) => v.iter().any(|e| e.eval(truth)),
            CExpr::Not(e) => !e.eval(truth),
            CExpr::Const(b) => *b,
            CExpr::P(p) => truth[*p as usize / 64] & (1 << (p % 64)) != 0,
        }
    }
}

#[derive(Default)]
struct FieldPlan {
    field: Option<Field>,
    cats: u8,
    exists: Vec<u32>,
    eq_cs: HashMap<Box<[u8]>, Vec<u32>>,
    eq_ci: HashMap<Box<[u8]>, Vec<u32>>,
    re: Option<(Regex, Vec<u32>)>,
    re_src: Vec<(String, u32)>,
    int_eq: HashMap<i64, Vec<u32>>,
    int_cmp: Vec<(Cmp, i64, u32)>,
    bools: [Vec<u32>; 2],
    cidrs: Vec<(IpAddr, u8, u32)>,
}

impl FieldPlan {
    fn has_str(&self) -> bool {
        !self.eq_cs.is_empty() || !self.eq_ci.is_empty() || self.re.is_some()
    }
}

/// What the compiled set needs per rule.
pub(crate) struct RuleInput<'a> {
    pub expr: &'a Expr,
    pub cats: u8,
}

/// An error building the matcher: which rule's pattern failed.
#[derive(Debug)]
pub(crate) struct CompileError {
    pub rule: usize,
    pub message: String,
}

/// All rules, compiled.
pub(crate) struct Matcher {
    npreds: usize,
    fields: Vec<FieldPlan>,
    cat_fields: [Vec<u16>; 7],
    cat_always: [Vec<u32>; 7],
    triggers: Vec<Vec<u32>>,
    rules: Vec<(u8, CExpr)>,
}

/// Per-thread scratch space for [`crate::RuleSet::evaluate`].
pub struct Scratch {
    generation: u64,
    truth: Vec<u64>,
    set: Vec<u32>,
    caches: Vec<Option<meta::Cache>>,
    patsets: Vec<Option<PatternSet>>,
    mark: Vec<u32>,
    epoch: u32,
    cands: Vec<u32>,
    lower: Vec<u8>,
    text: String,
    pub(crate) matched: Vec<u32>,
}

impl Scratch {
    /// Empty scratch; sized on first use.
    pub fn new() -> Scratch {
        Scratch {
            generation: u64::MAX,
            truth: Vec::new(),
            set: Vec::new(),
            caches: Vec::new(),
            patsets: Vec::new(),
            mark: Vec::new(),
            epoch: 0,
            cands: Vec::new(),
            lower: Vec::new(),
            text: String::new(),
            matched: Vec::new(),
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

fn cat_index(bit: u8) -> usize {
    bit.trailing_zeros() as usize
}

/// Weight of a predicate as a trigger: generic ones (the action, booleans)
/// hold on most events of a category, so prefer anything else.
fn weight(p: &Pred) -> u32 {
    match p.field {
        Field::EventAction | Field::EventCategory | Field::EventType | Field::EventOutcome => 1000,
        _ => match p.test {
            Test::Bool(_) | Test::Exists => 500,
            Test::Int(Cmp::Eq, _) | Test::Str { op: StrOp::Eq, .. } | Test::Cidr(..) => 1,
            Test::Str { .. } => 3,
            Test::Int(..) => 50,
        },
    }
}

/// Trigger set: predicates at least one of which holds whenever `e` holds;
/// None when no such set exists (e holds through negation alone).
fn triggers(e: &Expr, ids: &HashMap<&Pred, u32>) -> Option<(u32, Vec<u32>)> {
    match e {
        Expr::Pred(p) => Some((weight(p), vec![ids[p]])),
        Expr::Const(true) | Expr::Not(_) => None,
        Expr::Const(false) => Some((0, Vec::new())),
        Expr::And(v) => v
            .iter()
            .filter_map(|x| triggers(x, ids))
            .min_by_key(|(w, t)| (*w, t.len())),
        Expr::Or(v) => {
            let mut w = 0;
            let mut all = Vec::new();
            for x in v {
                let (xw, t) = triggers(x, ids)?;
                w += xw;
                all.extend(t);
            }
            Some((w, all))
        }
    }
}

impl Matcher {
    pub(crate) fn build(rules: &[RuleInput<'_>]) -> Result<Matcher, CompileError> {
        // Deduplicate predicates.
        let mut ids: HashMap<&Pred, u32> = HashMap::new();
        let mut order: Vec<&Pred> = Vec::new();
        let mut pred_cats: Vec<u8> = Vec::new();
        let mut first_rule: Vec<usize> = Vec::new();
        for (ri, r) in rules.iter().enumerate() {
            let mut ps = Vec::new();
            r.expr.preds(&mut ps);
            for p in ps {
                let id = *ids.entry(p).or_insert_with(|| {
                    order.push(p);
                    pred_cats.push(0);
                    first_rule.push(ri);
                    (order.len() - 1) as u32
                });
                pred_cats[id as usize] |= r.cats;
            }
        }
        // Group by field.
        let mut field_ix: HashMap<Field, usize> = HashMap::new();
        let mut fields: Vec<FieldPlan> = Vec::new();
        for (id, p) in order.iter().enumerate() {
            let id = id as u32;
            let fi = *field_ix.entry(p.field).or_insert_with(|| {
                fields.push(FieldPlan {
                    field: Some(p.field),
                    ..FieldPlan::default()
                });
                fields.len() - 1
            });
            let fp = &mut fields[fi];
            fp.cats |= pred_cats[id as usize];
            match &p.test {
                Test::Exists => fp.exists.push(id),
                Test::Str {
                    op: StrOp::Eq,
                    pat,
                    ci: false,
                } => fp
                    .eq_cs
                    .entry(pat.clone().into_boxed_slice())
                    .or_default()
                    .push(id),
                Test::Str {
                    op: StrOp::Eq,
                    pat,
                    ci: true,
                } => fp
                    .eq_ci
                    .entry(pat.to_ascii_lowercase().into_boxed_slice())
                    .or_default()
                    .push(id),
                Test::Str { op, pat, ci } => fp.re_src.push((pattern(*op, pat, *ci), id)),
                Test::Int(Cmp::Eq, n) => fp.int_eq.entry(*n).or_default().push(id),
                Test::Int(c, n) => fp.int_cmp.push((*c, *n, id)),
                Test::Bool(b) => fp.bools[usize::from(*b)].push(id),
                Test::Cidr(ip, len) => fp.cidrs.push((*ip, *len, id)),
            }
        }
        for fp in &mut fields {
            if fp.re_src.is_empty() {
                continue;
            }
            let pats: Vec<&str> = fp.re_src.iter().map(|(s, _)| s.as_str()).collect();
            let re = Regex::builder()
                .syntax(syntax::Config::new().unicode(false).utf8(false))
                .configure(
                    Regex::config()
                        .match_kind(MatchKind::All)
                        .utf8_empty(false)
                        .hybrid_cache_capacity(8 << 20)
                        .nfa_size_limit(Some(64 << 20)),
                )
                .build_many(&pats)
                .map_err(|e| {
                    let pid = e.pattern().map(|p| fp.re_src[p.as_usize()].1).unwrap_or(0);
                    CompileError {
                        rule: first_rule[pid as usize],
                        message: format!(
                            "field `{}`: {}",
                            fp.field.map(Field::name).unwrap_or("?"),
                            e.to_string().lines().last().unwrap_or("").trim()
                        ),
                    }
                })?;
            let preds = fp.re_src.iter().map(|(_, id)| *id).collect();
            fp.re = Some((re, preds));
            fp.re_src = Vec::new();
        }
        let mut cat_fields: [Vec<u16>; 7] = Default::default();
        for (fi, fp) in fields.iter().enumerate() {
            for (ci, slot) in cat_fields.iter_mut().enumerate() {
                if fp.cats & (1 << ci) != 0 {
                    slot.push(fi as u16);
                }
            }
        }
        let mut trig: Vec<Vec<u32>> = vec![Vec::new(); order.len()];
        let mut cat_always: [Vec<u32>; 7] = Default::default();
        let mut compiled = Vec::with_capacity(rules.len());
        for (ri, r) in rules.iter().enumerate() {
            match triggers(r.expr, &ids) {
                Some((_, t)) => {
                    let mut t = t;
                    t.sort_unstable();
                    t.dedup();
                    for p in t {
                        trig[p as usize].push(ri as u32);
                    }
                }
                None => {
                    for (ci, slot) in cat_always.iter_mut().enumerate() {
                        if r.cats & (1 << ci) != 0 {
                            slot.push(ri as u32);
                        }
                    }
                }
            }
            compiled.push((r.cats, lower(r.expr, &ids)));
        }
        Ok(Matcher {
            npreds: order.len(),
            fields,
            cat_fields,
            cat_always,
            triggers: trig,
            rules: compiled,
        })
    }

    pub(crate) fn prepare(&self, s: &mut Scratch, generation: u64) {
        if s.generation == generation {
            return;
        }
        s.generation = generation;
        s.truth = vec![0; self.npreds.div_ceil(64)];
        s.set.clear();
        s.caches = self
            .fields
            .iter()
            .map(|f| f.re.as_ref().map(|(r, _)| r.create_cache()))
            .collect();
        s.patsets = self
            .fields
            .iter()
            .map(|f| f.re.as_ref().map(|(r, _)| PatternSet::new(r.pattern_len())))
            .collect();
        s.mark = vec![0; self.rules.len()];
        s.epoch = 0;
    }

    /// Indices of the rules that match, ascending.
    pub(crate) fn eval(&self, ev: &dyn crate::Fields, s: &mut Scratch, out: &mut Vec<u32>) {
        let Some(cbit) = cat::bit(ev.category()) else {
            return;
        };
        let ci = cat_index(cbit);
        for p in s.set.drain(..) {
            s.truth[p as usize / 64] = 0;
        }
        s.epoch = s.epoch.wrapping_add(1);
        if s.epoch == 0 {
            s.mark.iter_mut().for_each(|m| *m = 0);
            s.epoch = 1;
        }
        s.cands.clear();
        for &fi in &self.cat_fields[ci] {
            let fp = &self.fields[fi as usize];
            let Some(field) = fp.field else { continue };
            let Some(v) = ev.field(field) else { continue };
            for &p in &fp.exists {
                self.hit(p, s);
            }
            match v {
                Value::Str(b) => self.eval_str(fi as usize, &b, s),
                Value::Int(n) => {
                    if let Some(ps) = fp.int_eq.get(&n) {
                        for &p in ps {
                            self.hit(p, s);
                        }
                    }
                    for &(c, k, p) in &fp.int_cmp {
                        if c.holds(n, k) {
                            self.hit(p, s);
                        }
                    }
                }
                Value::Bool(b) => {
                    for &p in &fp.bools[usize::from(b)] {
                        self.hit(p, s);
                    }
                }
                Value::Ip(ip) => {
                    for &(net, len, p) in &fp.cidrs {
                        if in_cidr(ip, net, len) {
                            self.hit(p, s);
                        }
                    }
                    if fp.has_str() {
                        let mut t = std::mem::take(&mut s.text);
                        t.clear();
                        let _ = write!(t, "{ip}");
                        self.eval_str(fi as usize, t.as_bytes(), s);
                        s.text = t;
                    }
                }
            }
        }
        for &r in &self.cat_always[ci] {
            if s.mark[r as usize] != s.epoch {
                s.mark[r as usize] = s.epoch;
                s.cands.push(r);
            }
        }
        s.cands.sort_unstable();
        for &r in &s.cands {
            let (cats, e) = &self.rules[r as usize];
            if cats & cbit != 0 && e.eval(&s.truth) {
                out.push(r);
            }
        }
    }

    fn eval_str(&self, fi: usize, b: &[u8], s: &mut Scratch) {
        let fp = &self.fields[fi];
        if let Some(ps) = fp.eq_cs.get(b) {
            for &p in ps {
                self.hit(p, s);
            }
        }
        if !fp.eq_ci.is_empty() {
            let mut low = std::mem::take(&mut s.lower);
            low.clear();
            low.extend(b.iter().map(u8::to_ascii_lowercase));
            if let Some(ps) = fp.eq_ci.get(&low[..]) {
                for &p in ps {
                    self.hit(p, s);
                }
            }
            s.lower = low;
        }
        if let Some((re, preds)) = &fp.re
            && let (Some(mut cache), Some(mut set)) = (s.caches[fi].take(), s.patsets[fi].take())
        {
            set.clear();
            re.which_overlapping_matches_with(&mut cache, &Input::new(b), &mut set);
            for pid in set.iter() {
                self.hit(preds[pid.as_usize()], s);
            }
            s.caches[fi] = Some(cache);
            s.patsets[fi] = Some(set);
        }
    }

    #[inline]
    fn hit(&self, p: u32, s: &mut Scratch) {
        let (w, bit) = (p as usize / 64, 1u64 << (p % 64));
        if s.truth[w] & bit != 0 {
            return;
        }
        s.truth[w] |= bit;
        s.set.push(p);
        for &r in &self.triggers[p as usize] {
            if s.mark[r as usize] != s.epoch {
                s.mark[r as usize] = s.epoch;
                s.cands.push(r);
            }
        }
    }

    /// Number of distinct predicates.
    pub(crate) fn predicates(&self) -> usize {
        self.npreds
    }

    /// Patterns per regex-scanned field.
    pub(crate) fn regex_fields(&self) -> Vec<(&'static str, usize)> {
        self.fields
            .iter()
            .filter_map(|f| Some((f.field?.name(), f.re.as_ref()?.0.pattern_len())))
            .collect()
    }
}

fn lower(e: &Expr, ids: &HashMap<&Pred, u32>) -> CExpr {
    match e {
        Expr::And(v) => CExpr::And(v.iter().map(|x| lower(x, ids)).collect()),
        Expr::Or(v) => CExpr::Or(v.iter().map(|x| lower(x, ids)).collect()),
        Expr::Not(x) => CExpr::Not(Box::new(lower(x, ids))),
        Expr::Const(b) => CExpr::Const(*b),
        Expr::Pred(p) => CExpr::P(ids[p]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(pattern(StrOp::Prefix, b"/tmp/", false), "^/tmp/");
        assert_eq!(pattern(StrOp::Suffix, b".sh", true), r"(?i)\x2esh$");
        assert_eq!(
            pattern(StrOp::Glob, br"/a/*\*?", false),
            r"^/a/(?s:.*)\x2a(?s:.)$"
        );
        assert_eq!(pattern(StrOp::Contains, "é".as_bytes(), false), r"\xc3\xa9");
        assert_eq!(pattern(StrOp::Regex, b"a|b", true), "(?i)(?:a|b)");
    }
}
