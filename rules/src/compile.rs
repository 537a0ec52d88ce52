//! Compilation of every rule's condition into one matcher.
//!
//! - Predicates are deduplicated across rules: the same test written in ten
//!   rules is one predicate.
//! - Per field, the literal prefilter (`prefilter.rs`) decides every
//!   prefix, suffix and contains test with one Aho-Corasick scan and gates
//!   glob and regex tests on their necessary literals; the patterns with no
//!   usable literal become one pattern each of a regex-automata
//!   `meta::Regex` built with `build_many` and `MatchKind::All`, scanned on
//!   every value. Unfiltered (the reference), every non-equality string test
//!   is a pattern of such a regex. Equality and `in` lists are hash lookups (exact, and on the
//!   ASCII-lowercased value for case-insensitive ones); integers are hash
//!   lookups plus the few range comparisons; booleans an array index.
//! - A rule is evaluated only when one of its *trigger* predicates held (a
//!   set of predicates of which at least one must hold for the rule to match,
//!   chosen to be specific), so the work per event follows what the event
//!   matched, not how many rules are loaded. Rules without such a set (only
//!   negations) are evaluated on every event of their categories.
//! - Per slot, only the fields holding some rule's trigger are read on
//!   every event; the others are read after the triggers, for the
//!   candidate rules that test them.

use crate::ast::{Cmp, Expr, Pred, StrOp, Test, in_cidr};
use crate::prefilter::{self, LitBuilder, LitScan, Need};
use crate::schema::{Field, Value, cat};
use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
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

pub(crate) fn push_literal(out: &mut String, lit: &[u8]) {
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

/// FxHash (rustc's hasher): the lookup tables are built from rules and only
/// read with event values, so hash flooding cannot grow them; SipHash's
/// DoS resistance buys nothing here and cost 8% of evaluation.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Fx {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Per field, per regex group: the searches' caches and pattern sets.
type GroupCaches = (Vec<Vec<meta::Cache>>, Vec<Vec<PatternSet>>);

/// A compiled condition over predicate ids.
#[derive(Debug, Clone)]
enum CExpr {
    And(Vec<CExpr>),
    Or(Vec<CExpr>),
    Not(Box<CExpr>),
    Const(bool),
    P(u32),
    /// Every predicate of the masks holds: (word of the truth bits, bits).
    All(Box<[(u32, u64)]>),
    /// Some predicate of the masks holds (a Sigma list of values is one
    /// or two words, not a walk of its alternatives).
    Any(Box<[(u32, u64)]>),
}

impl CExpr {
    fn eval(&self, truth: &[u64]) -> bool {
        match self {
            CExpr::And(v) => v.iter().all(|e| e.eval(truth)),
            CExpr::Or(v) => v.iter().any(|e| e.eval(truth)),
            CExpr::Not(e) => !e.eval(truth),
            CExpr::Const(b) => *b,
            CExpr::P(p) => truth[*p as usize / 64] & (1 << (p % 64)) != 0,
            CExpr::All(m) => m.iter().all(|&(w, b)| truth[w as usize] & b == b),
            CExpr::Any(m) => m.iter().any(|&(w, b)| truth[w as usize] & b != 0),
        }
    }
}

/// The predicates as masks per 64-bit word of the truth bits, by word.
fn masks(ps: &[u32]) -> Box<[(u32, u64)]> {
    let mut m: Vec<(u32, u64)> = Vec::new();
    for &p in ps {
        let (w, b) = (p / 64, 1u64 << (p % 64));
        match m.iter_mut().find(|(x, _)| *x == w) {
            Some((_, bits)) => *bits |= b,
            None => m.push((w, b)),
        }
    }
    m.sort_unstable();
    m.into_boxed_slice()
}

/// The lengths of a map's keys (255 = 255 or more): a value of another
/// length is not hashed (a command line is rarely as long as any key).
#[derive(Default, Clone, Copy)]
struct Lens([u64; 4]);

impl Lens {
    fn of<V>(m: &FxMap<Box<[u8]>, V>) -> Lens {
        let mut l = Lens::default();
        for k in m.keys() {
            let n = k.len().min(255);
            l.0[n / 64] |= 1 << (n % 64);
        }
        l
    }
    fn any(&self) -> bool {
        self.0 != [0; 4]
    }
    #[inline]
    fn has(&self, len: usize) -> bool {
        let n = len.min(255);
        self.0[n / 64] & (1 << (n % 64)) != 0
    }
}

#[derive(Default)]
struct FieldPlan {
    field: Option<Field>,
    slots: u64,
    exists: Vec<u32>,
    eq_cs: FxMap<Box<[u8]>, Vec<u32>>,
    eq_ci: FxMap<Box<[u8]>, Vec<u32>>,
    /// `endswith "/name"` tests are lookups of the last path component.
    base_cs: FxMap<Box<[u8]>, Vec<u32>>,
    base_ci: FxMap<Box<[u8]>, Vec<u32>>,
    /// Key lengths of eq_cs, eq_ci, base_cs, base_ci.
    lens: [Lens; 4],
    /// Unfiltered: every non-equality string test of this field in
    /// regexes scanned on every value.
    full: ReGroups,
    /// Prefiltered: the tests without a necessary literal.
    rest: ReGroups,
    /// Prefiltered: one scan for the literals of every other test.
    lits: Vec<LitScan>,
    /// For each slot, the index into `lits` (u16::MAX: none).
    lits_for_slot: Vec<u16>,
    /// Prefiltered: glob and regex tests run when their literal occurred
    /// (regex, predicate).
    gated: Vec<(Regex, u32)>,
    /// Prefiltered: `contains ""` and its kin, true on every string value.
    str_true: Vec<u32>,
    re_src: Vec<(String, u32)>,
    int_eq: FxMap<i64, Vec<u32>>,
    int_cmp: Vec<(Cmp, i64, u32)>,
    bools: [Vec<u32>; 2],
    cidrs: Vec<(IpAddr, u8, u32)>,
}

impl FieldPlan {
    fn has_str(&self) -> bool {
        !self.eq_cs.is_empty()
            || !self.eq_ci.is_empty()
            || !self.base_cs.is_empty()
            || !self.base_ci.is_empty()
            || !self.full.re.is_empty()
    }
}

/// Regexes over one field: one per distinct set of patterns that the rules
/// of some slot need (an open scans only the patterns of rules about opens).
#[derive(Default)]
struct ReGroups {
    /// (regex, predicate of each pattern).
    re: Vec<(Regex, Vec<u32>)>,
    /// For each slot, the index into `re` (u16::MAX: none).
    for_slot: Vec<u16>,
}

/// The matcher's regex configuration (bytes, no Unicode).
fn regex_builder(kind: MatchKind) -> meta::Builder {
    let mut b = Regex::builder();
    b.syntax(syntax::Config::new().unicode(false).utf8(false))
        .configure(
            Regex::config()
                .match_kind(kind)
                .utf8_empty(false)
                .hybrid_cache_capacity(8 << 20)
                .nfa_size_limit(Some(64 << 20)),
        );
    b
}

/// Compiles `src` (pattern, predicate) into groups per slot.
fn groups(
    src: &[(String, u32)],
    pred_cats: &[u64],
    nslots: usize,
    field: Option<Field>,
    first_rule: &[usize],
) -> Result<ReGroups, CompileError> {
    let mut g = ReGroups {
        re: Vec::new(),
        for_slot: vec![u16::MAX; nslots],
    };
    let mut sets: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    for si in 0..nslots {
        let idx: Vec<usize> = src
            .iter()
            .enumerate()
            .filter(|(_, (_, id))| pred_cats[*id as usize] & (1 << si) != 0)
            .map(|(i, _)| i)
            .collect();
        if idx.is_empty() {
            continue;
        }
        match sets.iter_mut().find(|(g, _)| *g == idx) {
            Some((_, slots)) => slots.push(si),
            None => sets.push((idx, vec![si])),
        }
    }
    for (idx, slots) in sets {
        let pats: Vec<&str> = idx.iter().map(|&i| src[i].0.as_str()).collect();
        let re = regex_builder(MatchKind::All)
            .build_many(&pats)
            .map_err(|e| {
                let pid = e.pattern().map(|p| src[idx[p.as_usize()]].1).unwrap_or(0);
                compile_error(first_rule[pid as usize], field, &e)
            })?;
        let preds = idx.iter().map(|&i| src[i].1).collect();
        for si in slots {
            g.for_slot[si] = g.re.len() as u16;
        }
        g.re.push((re, preds));
    }
    Ok(g)
}

fn compile_error(rule: usize, field: Option<Field>, e: &meta::BuildError) -> CompileError {
    CompileError {
        rule,
        message: format!(
            "field `{}`: {}",
            field.map(Field::name).unwrap_or("?"),
            e.to_string().lines().last().unwrap_or("").trim()
        ),
    }
}

/// What the compiled set needs per rule.
pub(crate) struct RuleInput<'a> {
    pub expr: &'a Expr,
    pub cats: u8,
}

/// Evaluation slots: one per (category, action) of [`crate::ACTIONS`], then
/// one per category for events whose action is not in the table. A rule
/// that requires `event.action` to be one of a few values only occupies
/// those slots, so its fields are not even read on other events (a fork does
/// not scan command lines for rules about execs).
const _: () = assert!(
    crate::ACTIONS.len() + cat::NAMES.len() <= 64,
    "slots are a u64 mask"
);

fn slot_count() -> usize {
    crate::ACTIONS.len() + cat::NAMES.len()
}

/// The slot of an event: its action's when the action is in
/// [`crate::ACTIONS`] with this category, else its category's.
/// `actions` maps each action name to (index, category bit).
fn slot_of(actions: &FxMap<&'static [u8], (u8, u8)>, cbit: u8, action: Option<&[u8]>) -> usize {
    if let Some(a) = action
        && let Some(&(i, c)) = actions.get(a)
        && c == cbit
    {
        return usize::from(i);
    }
    crate::ACTIONS.len() + cat_index(cbit)
}

/// Each action of [`crate::ACTIONS`] to its index and category bit.
fn action_index() -> FxMap<&'static [u8], (u8, u8)> {
    crate::ACTIONS
        .iter()
        .enumerate()
        .map(|(i, (a, c))| (a.as_bytes(), (i as u8, cat::bit(c).unwrap_or(0))))
        .collect()
}

/// Slots a rule occupies, as a bit mask.
fn rule_slots(r: &RuleInput<'_>) -> u64 {
    let acts = crate::required_values(r.expr, Field::EventAction);
    let mut m = 0u64;
    for (i, (a, c)) in crate::ACTIONS.iter().enumerate() {
        let cb = cat::bit(c).unwrap_or(0);
        if r.cats & cb != 0 && acts.as_ref().is_none_or(|s| s.contains(a.as_bytes())) {
            m |= 1 << i;
        }
    }
    if acts.is_none() {
        for (ci, (_, cb)) in cat::NAMES.iter().enumerate() {
            if r.cats & cb != 0 {
                m |= 1 << (crate::ACTIONS.len() + ci);
            }
        }
    }
    m
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
    /// Per slot: the fields its rules test (index into `fields`, and the
    /// field itself, so a field the event lacks costs no look at its plan).
    slot_fields: Vec<Vec<(u16, Field)>>,
    /// Prefiltered, per slot: the fields holding a trigger predicate of
    /// some rule of the slot, read on every event of the slot.
    slot_eager: Vec<Vec<(u16, Field)>>,
    /// Prefiltered, per slot: the other fields, read only when a rule that
    /// tests them is a candidate (their predicates cannot make a rule of
    /// the slot a candidate, so an event with no candidate reading them
    /// never looks at them).
    slot_lazy: Vec<Vec<(u16, Field)>>,
    /// Per rule: the fields its condition tests (indices into `fields`).
    rule_fields: Vec<Box<[u16]>>,
    actions: FxMap<&'static [u8], (u8, u8)>,
    slot_always: Vec<Vec<u32>>,
    /// Unfiltered: every rule of each slot.
    slot_rules: Vec<Vec<u32>>,
    triggers: Vec<Vec<u32>>,
    rules: Vec<(u64, CExpr)>,
}

/// Rule evaluations counted by a [`Scratch`] since it was made or reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalCounts {
    /// Events evaluated.
    pub events: u64,
    /// Rules that could match by event category and action, summed over
    /// the events (the rules whose conditions would all be evaluated
    /// without the prefilter).
    pub eligible: u64,
    /// Rules whose condition was evaluated, summed over the events.
    pub evaluated: u64,
}

impl EvalCounts {
    /// Eligible rules skipped per event on average.
    pub fn skipped_per_event(&self) -> f64 {
        if self.events == 0 {
            return 0.0;
        }
        (self.eligible - self.evaluated) as f64 / self.events as f64
    }

    /// Eligible rules per event on average.
    pub fn eligible_per_event(&self) -> f64 {
        if self.events == 0 {
            return 0.0;
        }
        self.eligible as f64 / self.events as f64
    }
}

/// Per-thread scratch space for [`crate::RuleSet::evaluate`].
pub struct Scratch {
    generation: u64,
    truth: Vec<u64>,
    set: Vec<u32>,
    /// Per field: caches and pattern sets of `rest` (prefiltered) and of
    /// `full` (unfiltered, made on first use), caches of `gated`.
    caches: Vec<Vec<meta::Cache>>,
    patsets: Vec<Vec<PatternSet>>,
    full_caches: Option<GroupCaches>,
    gated_caches: Vec<Vec<meta::Cache>>,
    gates: Vec<u32>,
    counts: EvalCounts,
    mark: Vec<u32>,
    /// Per field: the epoch of the last event that needed it read lazily.
    fmark: Vec<u32>,
    epoch: u32,
    cands: Vec<u32>,
    lower: Vec<u8>,
    text: String,
    pub(crate) matched: Vec<u32>,
    hits: Vec<u32>,
    /// Predicates a string value decided, for values that repeat.
    memo: Vec<Memo>,
}

/// Entries of a [`Scratch`]'s value cache (direct-mapped, indexed by the
/// hash's top bits: the multiply mixes upwards).
const MEMO_BITS: u32 = 10;
const MEMO_SLOTS: usize = 1 << MEMO_BITS;
/// Longest value the cache keeps (longer ones are scanned every time).
const MEMO_MAX_LEN: usize = 1024;

/// One cached string value: what `eval_str` decided for it. A value is
/// stored the second time its hash lands in the entry (`seen`), so values
/// seen once (a unique command line, a fresh temporary file) cost one hash
/// and no copy.
#[derive(Default)]
struct Memo {
    seen: u64,
    hash: u64,
    key: (u16, u8),
    value: Vec<u8>,
    preds: Vec<u32>,
    full: bool,
}

/// Hash of a field value for the cache (FxHash-style over 8-byte words).
fn memo_hash(fi: usize, si: usize, b: &[u8]) -> u64 {
    let mut h = Fx::default();
    h.write_usize(fi << 8 | si);
    h.write_usize(b.len());
    h.write(b);
    h.finish()
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
            full_caches: None,
            gated_caches: Vec::new(),
            gates: Vec::new(),
            counts: EvalCounts::default(),
            mark: Vec::new(),
            fmark: Vec::new(),
            epoch: 0,
            cands: Vec::new(),
            lower: Vec::new(),
            text: String::new(),
            matched: Vec::new(),
            hits: Vec::new(),
            memo: Vec::new(),
        }
    }
}

impl Scratch {
    /// Rule evaluations counted so far.
    pub fn counts(&self) -> EvalCounts {
        self.counts
    }

    /// Sets the counts back to zero.
    pub fn reset_counts(&mut self) {
        self.counts = EvalCounts::default();
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
/// hold on most events of a category, so prefer anything else. The
/// classification fields weigh more than any sum of other weights a rule
/// reaches, so a rule is triggered by them only when nothing else can
/// trigger it (`ld_preload_env_injection`'s two existence tests are
/// preferred to `event.action = exec`). An integer equality holds more
/// often than a string one (`process.args_count = 2` on every exec with
/// one argument), so a short list of names is preferred to it.
fn weight(p: &Pred) -> u32 {
    match p.field {
        Field::EventAction | Field::EventCategory | Field::EventType | Field::EventOutcome => {
            1_000_000
        }
        _ => match p.test {
            Test::Bool(_) | Test::Exists => 500,
            Test::Str { op: StrOp::Eq, .. } | Test::Cidr(..) => 1,
            Test::Str { .. } => 3,
            Test::Int(Cmp::Eq, _) => 4,
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
            let mut w = 0u32;
            let mut all = Vec::new();
            for x in v {
                let (xw, t) = triggers(x, ids)?;
                w = w.saturating_add(xw);
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
        let masks: Vec<u64> = rules.iter().map(rule_slots).collect();
        let mut pred_cats: Vec<u64> = Vec::new();
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
                pred_cats[id as usize] |= masks[ri];
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
            fp.slots |= pred_cats[id as usize];
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
                Test::Str {
                    op: StrOp::Suffix,
                    pat,
                    ci,
                } if pat.len() > 1 && pat[0] == b'/' && !pat[1..].contains(&b'/') => {
                    let name = &pat[1..];
                    if *ci {
                        fp.base_ci
                            .entry(name.to_ascii_lowercase().into_boxed_slice())
                            .or_default()
                            .push(id)
                    } else {
                        fp.base_cs.entry(name.into()).or_default().push(id)
                    }
                }
                Test::Str { op, pat, ci } => fp.re_src.push((pattern(*op, pat, *ci), id)),
                Test::Int(Cmp::Eq, n) => fp.int_eq.entry(*n).or_default().push(id),
                Test::Int(c, n) => fp.int_cmp.push((*c, *n, id)),
                Test::Bool(b) => fp.bools[usize::from(*b)].push(id),
                Test::Cidr(ip, len) => fp.cidrs.push((*ip, *len, id)),
            }
        }
        let nslots = slot_count();
        for fp in &mut fields {
            fp.lens = [
                Lens::of(&fp.eq_cs),
                Lens::of(&fp.eq_ci),
                Lens::of(&fp.base_cs),
                Lens::of(&fp.base_ci),
            ];
            if fp.re_src.is_empty() {
                continue;
            }
            let src = std::mem::take(&mut fp.re_src);
            fp.full = groups(&src, &pred_cats, nslots, fp.field, &first_rule)?;
            // The prefilter's share: literals, gated regexes, the rest.
            let mut adds: Vec<(Vec<u8>, bool, u32, Need)> = Vec::new();
            let mut rest = Vec::new();
            for (re_src, id) in src {
                let Test::Str { op, pat, ci } = &order[id as usize].test else {
                    continue;
                };
                let need = match op {
                    StrOp::Contains => Some(Need::Contains),
                    StrOp::Prefix => Some(Need::Prefix),
                    StrOp::Suffix => Some(Need::Suffix),
                    _ => None,
                };
                if let Some(need) = need {
                    if pat.is_empty() {
                        fp.str_true.push(id);
                    } else if pat.len() > prefilter::MAX_LIT {
                        // A very long literal would make the shared scan's
                        // automaton slow to build (periodic text is
                        // quadratic there): the regex tests it alone.
                        rest.push((re_src, id));
                    } else {
                        adds.push((pat.clone(), *ci, id, need));
                    }
                    continue;
                }
                // A gate of one or two bytes opens on most values: such a
                // pattern is cheaper in the shared regex than on its own.
                match prefilter::required(&re_src).filter(|set| set.iter().all(|l| l.len() >= 3)) {
                    Some(set) => {
                        let re = regex_builder(MatchKind::LeftmostFirst)
                            .build(&re_src)
                            .map_err(|e| compile_error(first_rule[id as usize], fp.field, &e))?;
                        let g = fp.gated.len() as u32;
                        fp.gated.push((re, id));
                        for mut l in set {
                            // Part of a necessary literal is necessary too.
                            l.truncate(prefilter::MAX_LIT);
                            adds.push((l, true, id, Need::Gate(g)));
                        }
                    }
                    None => rest.push((re_src, id)),
                }
            }
            fp.rest = groups(&rest, &pred_cats, nslots, fp.field, &first_rule)?;
            // One literal scan per distinct set of literals that the rules
            // of some slot need (an open does not scan exec rules' literals).
            fp.lits_for_slot = vec![u16::MAX; nslots];
            let mut sets: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
            for si in 0..nslots {
                let idx: Vec<usize> = (0..adds.len())
                    .filter(|&i| pred_cats[adds[i].2 as usize] & (1 << si) != 0)
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                match sets.iter_mut().find(|(g, _)| *g == idx) {
                    Some((_, slots)) => slots.push(si),
                    None => sets.push((idx, vec![si])),
                }
            }
            for (idx, slots) in sets {
                let mut b = LitBuilder::default();
                for i in idx {
                    let (l, ci, id, need) = &adds[i];
                    b.add(l, *ci, *id, *need);
                }
                let scan = b.build().map_err(|e| CompileError {
                    rule: 0,
                    message: format!(
                        "field `{}`: literal scan: {e}",
                        fp.field.map(Field::name).unwrap_or("?")
                    ),
                })?;
                for si in slots {
                    fp.lits_for_slot[si] = fp.lits.len() as u16;
                }
                fp.lits.push(scan);
            }
        }
        let mut slot_fields: Vec<Vec<(u16, Field)>> = vec![Vec::new(); nslots];
        for (fi, fp) in fields.iter().enumerate() {
            let Some(f) = fp.field else { continue };
            for (si, slot) in slot_fields.iter_mut().enumerate() {
                if fp.slots & (1 << si) != 0 {
                    slot.push((fi as u16, f));
                }
            }
        }
        let mut trig: Vec<Vec<u32>> = vec![Vec::new(); order.len()];
        let mut slot_always: Vec<Vec<u32>> = vec![Vec::new(); nslots];
        let mut slot_rules: Vec<Vec<u32>> = vec![Vec::new(); nslots];
        let mut compiled = Vec::with_capacity(rules.len());
        for (ri, r) in rules.iter().enumerate() {
            for (si, slot) in slot_rules.iter_mut().enumerate() {
                if masks[ri] & (1 << si) != 0 {
                    slot.push(ri as u32);
                }
            }
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
                    for (si, slot) in slot_always.iter_mut().enumerate() {
                        if masks[ri] & (1 << si) != 0 {
                            slot.push(ri as u32);
                        }
                    }
                }
            }
            compiled.push((masks[ri], lower(r.expr, &ids)));
        }
        // Fields per predicate and per rule; per slot, the fields of the
        // triggers of its rules are eager, the rest lazy.
        let mut pred_field = vec![0u16; order.len()];
        for (p, fi) in order.iter().zip(pred_field.iter_mut()) {
            *fi = field_ix.get(&p.field).copied().unwrap_or(0) as u16;
        }
        let mut eager = vec![vec![false; fields.len()]; nslots];
        for (p, rs) in trig.iter().enumerate() {
            for &r in rs {
                for (si, e) in eager.iter_mut().enumerate() {
                    if masks[r as usize] & (1 << si) != 0 {
                        e[usize::from(pred_field[p])] = true;
                    }
                }
            }
        }
        let (mut slot_eager, mut slot_lazy) = (vec![Vec::new(); nslots], vec![Vec::new(); nslots]);
        for (si, fs) in slot_fields.iter().enumerate() {
            for &(fi, f) in fs {
                if eager[si][usize::from(fi)] {
                    slot_eager[si].push((fi, f));
                } else {
                    slot_lazy[si].push((fi, f));
                }
            }
        }
        let rule_fields = rules
            .iter()
            .map(|r| {
                let mut ps = Vec::new();
                r.expr.preds(&mut ps);
                let mut fs: Vec<u16> = ps
                    .iter()
                    .filter_map(|p| ids.get(p).map(|&id| pred_field[id as usize]))
                    .collect();
                fs.sort_unstable();
                fs.dedup();
                fs.into_boxed_slice()
            })
            .collect();
        Ok(Matcher {
            npreds: order.len(),
            fields,
            slot_fields,
            slot_eager,
            slot_lazy,
            rule_fields,
            actions: action_index(),
            slot_always,
            slot_rules,
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
        (s.caches, s.patsets) = self.caches(|f| &f.rest);
        s.full_caches = None;
        s.gated_caches = self
            .fields
            .iter()
            .map(|f| f.gated.iter().map(|(r, _)| r.create_cache()).collect())
            .collect();
        s.mark = vec![0; self.rules.len()];
        s.fmark = vec![0; self.fields.len()];
        s.epoch = 0;
        s.memo.clear();
        s.memo.resize_with(MEMO_SLOTS, Memo::default);
    }

    fn caches(&self, which: impl Fn(&FieldPlan) -> &ReGroups) -> GroupCaches {
        let caches = self
            .fields
            .iter()
            .map(|f| which(f).re.iter().map(|(r, _)| r.create_cache()).collect())
            .collect();
        let sets = self
            .fields
            .iter()
            .map(|f| {
                which(f)
                    .re
                    .iter()
                    .map(|(r, _)| PatternSet::new(r.pattern_len()))
                    .collect()
            })
            .collect();
        (caches, sets)
    }

    /// Indices of the rules that match, ascending. `filtered`: the literal
    /// prefilter decides string tests and only triggered rules are
    /// evaluated; otherwise every test of the event's fields is scanned
    /// with the full regexes and every rule of the slot is evaluated.
    pub(crate) fn eval(
        &self,
        ev: &dyn crate::Fields,
        s: &mut Scratch,
        out: &mut Vec<u32>,
        filtered: bool,
    ) {
        if !filtered && s.full_caches.is_none() {
            s.full_caches = Some(self.caches(|f| &f.full));
        }
        let Some(cbit) = cat::bit(ev.category()) else {
            return;
        };
        let si = match ev.field(Field::EventAction) {
            Some(Value::Str(a)) => slot_of(&self.actions, cbit, Some(&a)),
            _ => slot_of(&self.actions, cbit, None),
        };
        for p in s.set.drain(..) {
            s.truth[p as usize / 64] = 0;
        }
        s.epoch = s.epoch.wrapping_add(1);
        if s.epoch == 0 {
            s.mark.iter_mut().for_each(|m| *m = 0);
            s.fmark.iter_mut().for_each(|m| *m = 0);
            s.epoch = 1;
        }
        s.cands.clear();
        let fields = if filtered {
            &self.slot_eager[si]
        } else {
            &self.slot_fields[si]
        };
        for &(fi, field) in fields {
            if let Some(v) = ev.field(field) {
                self.eval_field(fi as usize, v, si, s, filtered);
            }
        }
        s.counts.events += 1;
        s.counts.eligible += self.slot_rules[si].len() as u64;
        if !filtered {
            s.counts.evaluated += self.slot_rules[si].len() as u64;
            for &r in &self.slot_rules[si] {
                if self.rules[r as usize].1.eval(&s.truth) {
                    out.push(r);
                }
            }
            return;
        }
        for &r in &self.slot_always[si] {
            if s.mark[r as usize] != s.epoch {
                s.mark[r as usize] = s.epoch;
                s.cands.push(r);
            }
        }
        let lazy = &self.slot_lazy[si];
        if !lazy.is_empty() && !s.cands.is_empty() {
            // The fields the candidate rules of this slot test that no
            // trigger needed: read them now, each once.
            if s.fmark.len() != self.fields.len() {
                s.fmark = vec![0; self.fields.len()];
            }
            let mut need = false;
            for &r in &s.cands {
                if self.rules[r as usize].0 & (1 << si) != 0 {
                    for &fi in &self.rule_fields[r as usize] {
                        s.fmark[usize::from(fi)] = s.epoch;
                        need = true;
                    }
                }
            }
            if need {
                for &(fi, field) in lazy {
                    if s.fmark[usize::from(fi)] == s.epoch
                        && let Some(v) = ev.field(field)
                    {
                        self.eval_field(fi as usize, v, si, s, filtered);
                    }
                }
            }
        }
        s.cands.sort_unstable();
        for &r in &s.cands {
            let (slots, e) = &self.rules[r as usize];
            if slots & (1 << si) != 0 {
                s.counts.evaluated += 1;
                if e.eval(&s.truth) {
                    out.push(r);
                }
            }
        }
    }

    /// The tests of field `fi` on its value `v`.
    fn eval_field(&self, fi: usize, v: Value<'_>, si: usize, s: &mut Scratch, filtered: bool) {
        let fp = &self.fields[fi];
        for &p in &fp.exists {
            self.hit(p, s);
        }
        match v {
            Value::Str(b) => self.eval_str(fi, si, &b, s, filtered),
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
                    self.eval_str(fi, si, t.as_bytes(), s, filtered);
                    s.text = t;
                }
            }
        }
    }

    /// The string tests of field `fi` on value `b`. Prefiltered, a value
    /// whose scan is more than hash lookups (literals or regexes to run) is
    /// looked up in the scratch's value cache first: the predicates a value
    /// makes true depend only on the field, the slot and the bytes (each
    /// predicate belongs to one field, and a field is read once per event),
    /// so replaying them is exactly what a new scan would decide.
    fn eval_str(&self, fi: usize, si: usize, b: &[u8], s: &mut Scratch, filtered: bool) {
        let fp = &self.fields[fi];
        let scans = |li: &[u16]| li.get(si).is_some_and(|&i| i != u16::MAX);
        if !filtered
            || b.len() > MEMO_MAX_LEN
            || s.memo.is_empty()
            || !(scans(&fp.lits_for_slot) || scans(&fp.rest.for_slot))
        {
            self.scan_str(fi, si, b, s, filtered);
            return;
        }
        let h = memo_hash(fi, si, b);
        let key = (fi as u16, si as u8);
        let slot = (h >> (64 - MEMO_BITS)) as usize;
        {
            let m = &s.memo[slot];
            if m.full && m.hash == h && m.key == key && m.value[..] == *b {
                let preds = std::mem::take(&mut s.memo[slot].preds);
                for &p in &preds {
                    self.hit(p, s);
                }
                s.memo[slot].preds = preds;
                return;
            }
        }
        let start = s.set.len();
        self.scan_str(fi, si, b, s, filtered);
        let m = &mut s.memo[slot];
        if m.seen == h {
            m.hash = h;
            m.key = key;
            m.value.clear();
            m.value.extend_from_slice(b);
            m.preds.clear();
            m.preds.extend_from_slice(&s.set[start..]);
            m.full = true;
        } else {
            m.seen = h;
        }
    }

    fn scan_str(&self, fi: usize, si: usize, b: &[u8], s: &mut Scratch, filtered: bool) {
        let fp = &self.fields[fi];
        if fp.lens[0].has(b.len())
            && let Some(ps) = fp.eq_cs.get(b)
        {
            for &p in ps {
                self.hit(p, s);
            }
        }
        // the last path component, only for fields with basename tests
        // (memrchr: a command line is long)
        let base = if fp.lens[2].any() || fp.lens[3].any() {
            memchr::memrchr(b'/', b).map(|i| &b[i + 1..])
        } else {
            None
        };
        if let Some(name) = base
            && fp.lens[2].has(name.len())
            && let Some(ps) = fp.base_cs.get(name)
        {
            for &p in ps {
                self.hit(p, s);
            }
        }
        if fp.lens[1].has(b.len()) {
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
        if let Some(name) = base
            && fp.lens[3].has(name.len())
        {
            let mut low = std::mem::take(&mut s.lower);
            low.clear();
            low.extend(name.iter().map(u8::to_ascii_lowercase));
            if let Some(ps) = fp.base_ci.get(&low[..]) {
                for &p in ps {
                    self.hit(p, s);
                }
            }
            s.lower = low;
        }
        if filtered {
            let li = fp.lits_for_slot.get(si).copied().unwrap_or(u16::MAX);
            if let Some(lits) = fp.lits.get(usize::from(li)) {
                let (mut hits, mut gates) =
                    (std::mem::take(&mut s.hits), std::mem::take(&mut s.gates));
                hits.clear();
                gates.clear();
                lits.scan(b, &mut hits, &mut gates);
                // A literal that occurs several times reports its gate as
                // often: run each gated regex once.
                if gates.len() > 1 {
                    gates.sort_unstable();
                    gates.dedup();
                }
                for &p in &hits {
                    self.hit(p, s);
                }
                for &g in &gates {
                    let (re, p) = &fp.gated[g as usize];
                    if s.truth[*p as usize / 64] & (1 << (p % 64)) != 0 {
                        continue;
                    }
                    let input = Input::new(b).earliest(true);
                    if re
                        .search_half_with(&mut s.gated_caches[fi][g as usize], &input)
                        .is_some()
                    {
                        self.hit(*p, s);
                    }
                }
                (s.hits, s.gates) = (hits, gates);
            }
            for &p in &fp.str_true {
                self.hit(p, s);
            }
        }
        let mut hits = std::mem::take(&mut s.hits);
        hits.clear();
        {
            let (groups, caches, patsets) = if filtered {
                (&fp.rest, &mut s.caches, &mut s.patsets)
            } else {
                let Some((c, p)) = s.full_caches.as_mut() else {
                    s.hits = hits;
                    return;
                };
                (&fp.full, c, p)
            };
            let ri = groups.for_slot.get(si).copied().unwrap_or(u16::MAX) as usize;
            if let Some((re, preds)) = groups.re.get(ri) {
                let set = &mut patsets[fi][ri];
                re.which_overlapping_matches_with(&mut caches[fi][ri], &Input::new(b), set);
                // Iterating a set walks every pattern's bit: skip it when
                // empty (the common case) and stop at the last match.
                if !set.is_empty() {
                    hits.extend(set.iter().take(set.len()).map(|pid| preds[pid.as_usize()]));
                    // Clearing walks every pattern: only when something is
                    // set (the set starts empty and is left empty).
                    set.clear();
                }
            }
        }
        for &p in &hits {
            self.hit(p, s);
        }
        s.hits = hits;
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
            .filter(|f| !f.full.re.is_empty())
            .filter_map(|f| {
                Some((
                    f.field?.name(),
                    f.full.re.iter().map(|(r, _)| r.pattern_len()).max()?,
                ))
            })
            .collect()
    }
}

/// The compiled form of a condition: the plain predicates of an `and` or
/// an `or` become one mask test ([`CExpr::All`], [`CExpr::Any`]) placed
/// first (it is the cheapest), the other operands follow in order. Both
/// connectives are commutative and free of side effects, so the value is
/// the same.
fn lower(e: &Expr, ids: &HashMap<&Pred, u32>) -> CExpr {
    let split = |v: &[Expr], all: bool| {
        let ps: Vec<u32> = v
            .iter()
            .filter_map(|x| match x {
                Expr::Pred(p) => Some(ids[p]),
                _ => None,
            })
            .collect();
        let mut out = Vec::with_capacity(v.len());
        if ps.len() >= 2 {
            let m = masks(&ps);
            out.push(if all { CExpr::All(m) } else { CExpr::Any(m) });
            out.extend(
                v.iter()
                    .filter(|x| !matches!(x, Expr::Pred(_)))
                    .map(|x| lower(x, ids)),
            );
        } else {
            out.extend(v.iter().map(|x| lower(x, ids)));
        }
        if out.len() == 1 {
            return out.pop().unwrap_or(CExpr::Const(all));
        }
        if all { CExpr::And(out) } else { CExpr::Or(out) }
    };
    match e {
        Expr::And(v) => split(v, true),
        Expr::Or(v) => split(v, false),
        Expr::Not(x) => CExpr::Not(Box::new(lower(x, ids))),
        Expr::Const(b) => CExpr::Const(*b),
        Expr::Pred(p) => CExpr::P(ids[p]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mask form of `and`/`or` gives what the tree gives, for every
    /// assignment of the predicates (including predicates in two words).
    #[test]
    fn masks_equal_the_tree() {
        let preds: Vec<Pred> = (0..70)
            .map(|i| Pred {
                field: Field::ProcessPid,
                test: Test::Int(Cmp::Eq, i),
            })
            .collect();
        let ids: HashMap<&Pred, u32> = preds.iter().zip(0u32..).collect();
        let p = |i: usize| Expr::Pred(preds[i].clone());
        let e = Expr::And(vec![
            p(0),
            Expr::Or(vec![p(1), p(65), Expr::Not(Box::new(p(2))), p(69)]),
            Expr::Or(vec![p(3)]),
            Expr::And(vec![p(64), p(4)]),
            Expr::Or(vec![]),
        ]);
        let e2 = Expr::Or(vec![
            e.clone(),
            Expr::And(vec![p(5), p(66)]),
            Expr::And(vec![]),
        ]);
        fn naive(e: &Expr, t: &dyn Fn(usize) -> bool, preds: &[Pred]) -> bool {
            match e {
                Expr::And(v) => v.iter().all(|x| naive(x, t, preds)),
                Expr::Or(v) => v.iter().any(|x| naive(x, t, preds)),
                Expr::Not(x) => !naive(x, t, preds),
                Expr::Const(b) => *b,
                Expr::Pred(p) => t(preds.iter().position(|q| q == p).unwrap_or(0)),
            }
        }
        let used = [0usize, 1, 2, 3, 4, 5, 64, 65, 66, 69];
        for bits in 0u32..(1 << used.len()) {
            let on = |i: usize| {
                used.iter()
                    .position(|&u| u == i)
                    .is_some_and(|k| bits & (1 << k) != 0)
            };
            let mut truth = vec![0u64; 2];
            for i in 0..70 {
                if on(i) {
                    truth[i / 64] |= 1 << (i % 64);
                }
            }
            for x in [&e, &e2] {
                assert_eq!(
                    lower(x, &ids).eval(&truth),
                    naive(x, &on, &preds),
                    "{bits:b}"
                );
            }
        }
    }

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
