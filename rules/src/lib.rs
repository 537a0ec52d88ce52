//! vigil's rule engine: vigil YAML rules and native Sigma rules, compiled
//! together into one matcher.
//!
//! Its place in the flow: the engine hands every enriched event to
//! [`RuleSet::evaluate`] through the [`Fields`] trait, which this crate
//! defines and the engine implements, so this leaf crate does not depend on
//! the engine's event type (ripgrep's `matcher` / `regex` split).
//!
//! - [`Loader`] reads rule files and folders (vigil rules, Sigma rules, the
//!   embedded built-in set), reporting every error with `file:line` and every
//!   Sigma rule it cannot express with the reason ([`Report`]).
//! - [`RuleSet`] is the compiled result: see `compile.rs` for how one scan
//!   per field answers every rule. [`RuleSet::interest`] says which events
//!   any rule can match, so the engine keeps the rest in the kernel.
//!
//! The language is documented in `rules/README.md`.

#![deny(missing_docs)]

pub mod ast;
mod compile;
pub mod cond;
pub mod correlation;
mod prefilter;
pub mod schema;
pub mod sigma;
mod vigil;
pub mod yaml;

pub use compile::{EvalCounts, Scratch};
pub use correlation::{CorrState, Correlation};
pub use schema::{Field, Type, Value, cat};

use ast::{Cmp, Expr, StrOp, Test};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Access to an event's fields.
pub trait Fields {
    /// The event category (`process`, `file`, `network`, ...; see [`cat`]).
    fn category(&self) -> &str;
    /// The value of a field, if the event has it.
    fn field(&self, field: Field) -> Option<Value<'_>>;
}

/// Event actions and their categories, as `event.action` / `event.category`
/// carry them (`docs/events.md`; the engine tests that it agrees).
pub const ACTIONS: &[(&str, &str)] = &[
    ("exec", "process"),
    ("fork", "process"),
    ("exit", "process"),
    ("ptrace", "process"),
    ("process-vm-readv", "process"),
    ("process-vm-writev", "process"),
    ("signal", "process"),
    ("unshare", "process"),
    ("setns", "process"),
    ("readline", "process"),
    ("compat-syscall", "process"),
    ("personality", "process"),
    ("sysinfo", "host"),
    ("syslog", "host"),
    ("io-uring-setup", "process"),
    ("io-uring-op", "process"),
    ("io-uring-open", "file"),
    ("io-uring-file", "file"),
    ("io-uring-connect", "network"),
    ("open", "file"),
    ("memfd-create", "file"),
    ("rename", "file"),
    ("unlink", "file"),
    ("rmdir", "file"),
    ("truncate", "file"),
    ("chmod", "file"),
    ("chown", "file"),
    ("link", "file"),
    ("symlink", "file"),
    ("write", "file"),
    ("mkdir", "file"),
    ("mknod", "file"),
    ("utimes", "file"),
    ("connect", "network"),
    ("accept", "network"),
    ("listen", "network"),
    ("tcp-state", "network"),
    ("udp-send", "network"),
    ("dns-query", "network"),
    ("dns-answer", "network"),
    ("capable", "iam"),
    ("setid", "iam"),
    ("capset", "iam"),
    ("bpf", "host"),
    ("module", "driver"),
    ("mount", "configuration"),
    ("umount", "configuration"),
];

/// Whether a condition tests a field anywhere.
fn uses_field(e: &ast::Expr, f: Field) -> bool {
    match e {
        ast::Expr::And(v) | ast::Expr::Or(v) => v.iter().any(|x| uses_field(x, f)),
        ast::Expr::Not(x) => uses_field(x, f),
        ast::Expr::Const(_) => false,
        ast::Expr::Pred(p) => p.field == f,
    }
}

/// Alert severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Parses `info`/`informational`, `low`, `medium`, `high`, `critical`.
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" | "informational" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    /// The name as written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// ECS `event.severity` (0-100 style score: 21, 47, 73, 99 as Elastic's
    /// detection rules use, 0 for info).
    pub fn score(self) -> u64 {
        match self {
            Severity::Info => 0,
            Severity::Low => 21,
            Severity::Medium => 47,
            Severity::High => 73,
            Severity::Critical => 99,
        }
    }
}

/// Which language a rule was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ruleset {
    /// vigil YAML.
    Vigil,
    /// Sigma.
    Sigma,
}

impl Ruleset {
    /// `vigil` or `sigma` (ECS `rule.ruleset`).
    pub fn as_str(self) -> &'static str {
        match self {
            Ruleset::Vigil => "vigil",
            Ruleset::Sigma => "sigma",
        }
    }
}

/// An output template: text with `%field.name` placeholders (`%%` is `%`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Seg>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Field(Field),
}

impl Template {
    /// Parses a template, refusing unknown fields.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut segs = Vec::new();
        let mut lit = String::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                let ch = s[i..].chars().next().unwrap_or(' ');
                lit.push(ch);
                i += ch.len_utf8();
                continue;
            }
            if b.get(i + 1) == Some(&b'%') {
                lit.push('%');
                i += 2;
                continue;
            }
            let start = i + 1;
            let mut end = start;
            while end < b.len()
                && (b[end].is_ascii_alphanumeric() || b[end] == b'.' || b[end] == b'_')
            {
                end += 1;
            }
            // A trailing dot ends the sentence, not the name.
            while end > start && b[end - 1] == b'.' {
                end -= 1;
            }
            let name = &s[start..end];
            let f = Field::by_name(name).ok_or_else(|| match Field::suggest(name) {
                Some(sg) => format!("unknown field `%{name}` (did you mean `%{sg}`?)"),
                None => format!("unknown field `%{name}` (write `%%` for a percent sign)"),
            })?;
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            segs.push(Seg::Field(f));
            i = end;
        }
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        Ok(Template(segs))
    }

    /// The message of a Sigma rule: its title, then the key field, the
    /// executable and the pid.
    pub(crate) fn sigma(title: &str, key: Field) -> Template {
        let mut segs = vec![Seg::Lit(format!("{title}: "))];
        segs.push(Seg::Field(key));
        segs.push(Seg::Lit(" (".into()));
        if key != Field::ProcessExecutable {
            segs.push(Seg::Field(Field::ProcessExecutable));
            segs.push(Seg::Lit(", ".into()));
        }
        segs.push(Seg::Lit("pid ".into()));
        segs.push(Seg::Field(Field::ProcessPid));
        segs.push(Seg::Lit(")".into()));
        Template(segs)
    }

    /// Renders the template for an event (missing fields print `<NA>`).
    pub fn render(&self, ev: &dyn Fields) -> String {
        let mut out = String::new();
        for s in &self.0 {
            match s {
                Seg::Lit(l) => out.push_str(l),
                Seg::Field(f) => match ev.field(*f) {
                    None => out.push_str("<NA>"),
                    Some(v) => push_value(&mut out, &v),
                },
            }
        }
        out
    }
}

fn push_value(out: &mut String, v: &Value<'_>) {
    use std::fmt::Write as _;
    match v {
        Value::Str(b) => out.push_str(&String::from_utf8_lossy(b)),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Ip(ip) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// An example event embedded in a rule (`vigil rules test`).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Line in the rule file.
    pub line: usize,
    /// Whether the rule must match it.
    pub want: bool,
    /// Field values.
    pub values: Vec<(Field, Value<'static>)>,
}

impl Fields for Example {
    fn category(&self) -> &str {
        for (f, v) in &self.values {
            if let Value::Str(s) = v {
                if *f == Field::EventCategory {
                    return std::str::from_utf8(s).unwrap_or("");
                }
                if *f == Field::EventAction {
                    let a = std::str::from_utf8(s).unwrap_or("");
                    if let Some((_, c)) = ACTIONS.iter().find(|(x, _)| *x == a) {
                        return c;
                    }
                }
            }
        }
        "process"
    }
    fn field(&self, field: Field) -> Option<Value<'_>> {
        if field == Field::EventCategory {
            return Some(Value::Str(self.category().as_bytes().into()));
        }
        self.values
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.clone())
    }
}

/// A loaded rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Id (`rule:` in vigil files, `id:` in Sigma).
    pub id: String,
    /// Name (Sigma: title).
    pub name: String,
    /// Description.
    pub description: String,
    /// Severity.
    pub severity: Severity,
    /// Tags, e.g. MITRE ATT&CK `attack.t1059.004`.
    pub tags: Vec<String>,
    /// Language.
    pub ruleset: Ruleset,
    /// Source file (`builtin:NAME` for embedded rules).
    pub file: String,
    /// Line of the rule in its file.
    pub line: usize,
    /// Categories of events the rule is evaluated on ([`cat`] bits).
    pub categories: u8,
    /// The condition (exceptions folded in).
    pub condition: Expr,
    /// Output template.
    pub output: Option<Template>,
    /// Embedded examples.
    pub examples: Vec<Example>,
    /// Whether the rule is evaluated.
    pub enabled: bool,
    /// What a match does besides the alert (`action:`).
    pub action: Action,
    /// Write a capture around its alerts even when `capture.alerts` is
    /// `marked` (`capture: true`).
    pub capture: bool,
}

/// What a rule's match does besides raising its alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Alert only.
    #[default]
    Alert,
    /// Kill the process (SIGKILL): in the kernel at the event when the
    /// condition can be decided there, else from userspace.
    Kill,
}

impl Action {
    /// `alert` or `kill`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Kill => "kill",
        }
    }
}

impl Rule {
    /// A rule a loader builds from a parsed document (Sigma rules and
    /// correlations): enabled, alert only, no description, tags, examples
    /// or capture, evaluated on no category with a false condition and no
    /// output until the builder sets those (struct update syntax).
    pub fn generated(
        ruleset: Ruleset,
        file: &str,
        line: usize,
        id: String,
        name: String,
        severity: Severity,
    ) -> Rule {
        Rule {
            id,
            name,
            description: String::new(),
            severity,
            tags: Vec::new(),
            ruleset,
            file: file.to_string(),
            line,
            categories: 0,
            condition: Expr::Const(false),
            output: None,
            examples: Vec::new(),
            enabled: true,
            action: Action::Alert,
            capture: false,
        }
    }

    /// The distinct fields its condition tests, in first-use order.
    pub fn fields(&self) -> Vec<Field> {
        let mut ps = Vec::new();
        self.condition.preds(&mut ps);
        let mut out: Vec<Field> = Vec::new();
        for p in ps {
            if !out.contains(&p.field) {
                out.push(p.field);
            }
        }
        out
    }

    /// The alert's human message.
    pub fn message(&self, ev: &dyn Fields) -> String {
        match &self.output {
            Some(t) => t.render(ev),
            None => self.name.clone(),
        }
    }
}

/// Categories a condition can match when the rule does not say: those named
/// by `event.action`/`event.category` tests it requires, else those whose
/// events carry every category-specific field it tests positively.
pub fn infer_categories(e: &Expr) -> u8 {
    if let Some(acts) = required_values(e, Field::EventAction) {
        return acts
            .iter()
            .filter_map(|a| ACTIONS.iter().find(|(x, _)| x.as_bytes() == &a[..]))
            .filter_map(|(_, c)| cat::bit(c))
            .fold(0, |m, b| m | b);
    }
    if let Some(cs) = required_values(e, Field::EventCategory) {
        return cs
            .iter()
            .filter_map(|c| cat::bit(std::str::from_utf8(c).ok()?))
            .fold(0, |m, b| m | b);
    }
    let mut ps = Vec::new();
    e.preds(&mut ps);
    ps.iter().fold(cat::ALL, |m, p| m & p.field.categories())
}

/// Values `field` must equal (exact, case-sensitive) for `e` to hold; None
/// when `e` does not pin the field.
pub fn required_values(e: &Expr, field: Field) -> Option<BTreeSet<Vec<u8>>> {
    match e {
        Expr::Pred(p) if p.field == field => match &p.test {
            Test::Str {
                op: StrOp::Eq,
                pat,
                ci: false,
            } => Some([pat.clone()].into()),
            _ => None,
        },
        Expr::And(v) => v
            .iter()
            .filter_map(|x| required_values(x, field))
            .reduce(|a, b| &a & &b),
        Expr::Or(v) => {
            let mut all = BTreeSet::new();
            for x in v {
                all.extend(required_values(x, field)?);
            }
            Some(all)
        }
        Expr::Const(false) => Some(BTreeSet::new()),
        _ => None,
    }
}

/// Path prefixes a file condition requires (one of them holds whenever the
/// condition does): from equality, prefix and glob tests on `file.path`.
fn required_prefixes(e: &Expr) -> Option<BTreeSet<Vec<u8>>> {
    match e {
        Expr::Pred(p) if p.field == Field::FilePath => match &p.test {
            Test::Str { op, pat, ci: false } => {
                let pre: Vec<u8> = match op {
                    StrOp::Eq | StrOp::Prefix => pat.clone(),
                    StrOp::Glob => pat
                        .iter()
                        .take_while(|b| !matches!(b, b'*' | b'?' | b'\\'))
                        .copied()
                        .collect(),
                    _ => return None,
                };
                pre.starts_with(b"/").then(|| [pre].into())
            }
            _ => None,
        },
        Expr::And(v) => v
            .iter()
            .filter_map(required_prefixes)
            .min_by_key(|s| s.len()),
        Expr::Or(v) => {
            let mut all = BTreeSet::new();
            for x in v {
                all.extend(required_prefixes(x)?);
            }
            Some(all)
        }
        Expr::Const(false) => Some(BTreeSet::new()),
        _ => None,
    }
}

/// Whether `e` can hold for an open event: it does not pin
/// `event.action` to values that leave out `open` and `io-uring-open`.
fn can_be_open(e: &Expr) -> bool {
    required_values(e, Field::EventAction)
        .is_none_or(|a| a.iter().any(|x| x == b"open" || x == b"io-uring-open"))
}

/// `e` as far as it can hold for an open event: the branches of an `or`
/// that need another `event.action` (an exec, a readline, a file change
/// such as an unlink) are left out. The kernel's path filter is about
/// opens; those other events come through their own interest.
fn open_part(e: &Expr) -> Expr {
    match e {
        Expr::Or(v) => Expr::Or(v.iter().filter(|x| can_be_open(x)).map(open_part).collect()),
        Expr::And(v) => Expr::And(v.iter().map(open_part).collect()),
        x => x.clone(),
    }
}

fn requires_true(e: &Expr, f: Field) -> bool {
    match e {
        Expr::Pred(p) => p.field == f && p.test == Test::Bool(true),
        Expr::And(v) => v.iter().any(|x| requires_true(x, f)),
        Expr::Or(v) => !v.is_empty() && v.iter().all(|x| requires_true(x, f)),
        _ => false,
    }
}

fn requires_write(e: &Expr) -> bool {
    requires_true(e, Field::OpenWrite) || requires_true(e, Field::FileWritten)
}

/// `e` as far as it can hold for an event of `action` (the branches of an
/// `or` that need another `event.action` left out).
fn action_part(e: &Expr, action: &[u8]) -> Expr {
    match e {
        Expr::Or(v) => Expr::Or(
            v.iter()
                .filter(|x| {
                    required_values(x, Field::EventAction)
                        .is_none_or(|a| a.iter().any(|y| y == action))
                })
                .map(|x| action_part(x, action))
                .collect(),
        ),
        Expr::And(v) => Expr::And(v.iter().map(|x| action_part(x, action)).collect()),
        x => x.clone(),
    }
}

/// Whether `e` holds only for a successful event: it requires
/// `event.outcome = success`, or a nonzero `vigil.file.overwrites` (only
/// successful opens and renames are counted there).
fn requires_success(e: &Expr) -> bool {
    match e {
        Expr::Pred(p) => match (&p.field, &p.test) {
            (
                Field::EventOutcome,
                Test::Str {
                    op: StrOp::Eq,
                    pat,
                    ci,
                },
            ) => {
                if *ci {
                    pat.eq_ignore_ascii_case(b"success")
                } else {
                    pat == b"success"
                }
            }
            (Field::FileOverwrites, Test::Int(c, n)) => match c {
                Cmp::Eq => *n != 0,
                Cmp::Gt => *n >= 0,
                Cmp::Ge => *n >= 1,
                _ => false,
            },
            _ => false,
        },
        Expr::And(v) => v.iter().any(requires_success),
        Expr::Or(v) => !v.is_empty() && v.iter().all(requires_success),
        Expr::Const(false) => true,
        _ => false,
    }
}

/// The values of integer field `field` that `e` requires (one of them holds
/// whenever `e` does), from `=` tests; None when `e` allows any value.
fn required_ints(e: &Expr, field: Field) -> Option<BTreeSet<i64>> {
    match e {
        Expr::Pred(p) if p.field == field => match &p.test {
            Test::Int(Cmp::Eq, n) => Some([*n].into()),
            Test::Str {
                op: StrOp::Eq, pat, ..
            } => std::str::from_utf8(pat)
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .map(|n| [n].into()),
            _ => None,
        },
        Expr::And(v) => v
            .iter()
            .filter_map(|x| required_ints(x, field))
            .reduce(|a, b| &a & &b),
        Expr::Or(v) => {
            let mut all = BTreeSet::new();
            for x in v {
                all.extend(required_ints(x, field)?);
            }
            Some(all)
        }
        Expr::Const(false) => Some(BTreeSet::new()),
        _ => None,
    }
}

/// What events the loaded rules can ever match: the engine turns this into
/// the kernel's interest maps so nothing else leaves the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interest {
    /// Per category name, the actions rules need (None = every action).
    pub actions: BTreeMap<&'static str, Option<BTreeSet<String>>>,
    /// Open events below these prefixes.
    pub file_prefixes: BTreeSet<Vec<u8>>,
    /// Every open that asks for write access.
    pub all_file_writes: bool,
    /// Every open (a rule tests files by name or suffix only).
    pub all_file_opens: bool,
    /// Rules that need every open (costly; `vigil rules check` names them).
    pub all_opens_rules: Vec<String>,
    /// Some rule tests `destination.domain`: the DNS answers must be seen
    /// (they fill the IP -> name cache) even if no rule matches them.
    pub domains: bool,
    /// The prefixes of `file_prefixes` below which a rule can match a
    /// failed open too (the others: successful opens only).
    pub failed_open_prefixes: BTreeSet<Vec<u8>>,
    /// With `all_file_opens`: some of those rules can match a failed open.
    pub all_failed_opens: bool,
    /// Some rule can match a failed inet connect to any port.
    pub failed_connects_any: bool,
    /// Destination ports of the failed inet connects rules can match
    /// (besides `failed_connects_any`).
    pub failed_connect_ports: BTreeSet<u16>,
}

impl Interest {
    /// Whether some rule can match events of this category and action.
    pub fn wants(&self, category: &str, action: &str) -> bool {
        match self.actions.get(category) {
            None => false,
            Some(None) => true,
            Some(Some(a)) => a.contains(action),
        }
    }

    fn add(&mut self, r: &Rule) {
        if uses_field(&r.condition, Field::DestinationDomain) {
            self.domains = true;
        }
        let acts = required_values(&r.condition, Field::EventAction).map(|s| {
            s.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect::<BTreeSet<_>>()
        });
        for (name, bit) in cat::NAMES {
            if r.categories & bit == 0 {
                continue;
            }
            let a = acts.as_ref().map(|all| {
                all.iter()
                    .filter(|x| ACTIONS.iter().any(|(n, c)| n == x && c == name))
                    .cloned()
                    .collect::<BTreeSet<_>>()
            });
            if matches!(&a, Some(s) if s.is_empty()) {
                continue;
            }
            let slot = self
                .actions
                .entry(name)
                .or_insert_with(|| Some(BTreeSet::new()));
            match (slot.as_mut(), a) {
                (Some(have), Some(more)) => have.extend(more),
                (_, None) => *slot = None,
                (None, Some(_)) => {}
            }
        }
        // Opens of the agent's own /proc directory are always reported.
        let opens = acts.as_ref().is_none_or(|a| a.contains("open"));
        if r.categories & cat::FILE != 0
            && opens
            && self.wants("file", "open")
            && !requires_true(&r.condition, Field::TargetsAgent)
        {
            let opens = open_part(&r.condition);
            // a failed open is an `open` event of outcome failure
            let failed = !requires_success(&action_part(&r.condition, b"open"));
            match required_prefixes(&opens) {
                Some(p) => {
                    if failed {
                        self.failed_open_prefixes.extend(p.iter().cloned());
                    }
                    self.file_prefixes.extend(p)
                }
                None if requires_write(&opens) => self.all_file_writes = true,
                None => {
                    self.all_file_opens = true;
                    self.all_failed_opens |= failed;
                    self.all_opens_rules.push(r.id.clone());
                }
            }
        }
        // Failed inet connects: the ports rules can match them on (a rule
        // on `vigil.unix.path` matches unix sockets only).
        if r.categories & cat::NETWORK != 0 && acts.as_ref().is_none_or(|a| a.contains("connect")) {
            let c = action_part(&r.condition, b"connect");
            if !requires_success(&c) && required_values(&c, Field::UnixPath).is_none() {
                match required_ints(&c, Field::DestinationPort) {
                    Some(ports) => self
                        .failed_connect_ports
                        .extend(ports.into_iter().filter_map(|p| u16::try_from(p).ok())),
                    None => self.failed_connects_any = true,
                }
            }
        }
    }
}

/// A problem in a rule file: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// File.
    pub file: String,
    /// 1-based line (0 = the whole file).
    pub line: usize,
    /// What is wrong (names the rule and field).
    pub message: String,
}

impl LoadError {
    fn at(file: &str, line: usize, message: &str) -> LoadError {
        LoadError {
            file: file.to_string(),
            line,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for LoadError {
    /// `file:line: message`, with control characters (from the file name
    /// or quoted rule text) shown escaped (`\u{1b}`), so a hostile rule
    /// file cannot put a line break or a terminal escape sequence into
    /// the message a person reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, message) = (printable(&self.file), printable(&self.message));
        if self.line == 0 {
            write!(f, "{file}: {message}")
        } else {
            write!(f, "{file}:{}: {message}", self.line)
        }
    }
}

/// `s` with control characters (C0, DEL, C1) escaped as `\u{..}`.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

impl std::error::Error for LoadError {}

/// A Sigma rule vigil did not load, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// File.
    pub file: String,
    /// Rule id or title.
    pub rule: String,
    /// Short reason class (`logsource`, `field`, `modifier`, ...), for counts.
    pub class: String,
    /// Reason.
    pub reason: String,
}

/// What loading found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Rule files read.
    pub files: usize,
    /// Enabled vigil rules loaded.
    pub vigil_rules: usize,
    /// Sigma rules loaded.
    pub sigma_rules: usize,
    /// Sigma rules loaded per logsource category.
    pub sigma_by_category: BTreeMap<String, usize>,
    /// Rules present but disabled.
    pub disabled: usize,
    /// Sigma rules not loaded, with reasons.
    pub skipped: Vec<Skipped>,
    /// Errors (any error makes `vigil run` and `vigil rules check` exit 2).
    pub errors: Vec<LoadError>,
    /// Rules not loaded because their level is below their source's
    /// minimum level ([`Loader::set_min_level`], `PATH@LEVEL`).
    pub below_level: Vec<BelowLevel>,
    /// Sigma correlation rules loaded.
    pub correlations: usize,
}

/// A rule left out because its level is below the minimum of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BelowLevel {
    /// File.
    pub file: String,
    /// Rule id.
    pub rule: String,
    /// The rule's level.
    pub level: Severity,
    /// The minimum level that applied.
    pub min_level: Severity,
}

/// The minimum level of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MinLevel {
    /// Built-in rules: never filtered by level.
    Builtin,
    /// The loader's default ([`Loader::set_min_level`]).
    Default,
    /// Given for this path (`PATH@LEVEL`).
    At(Severity),
}

/// Splits a `--rules` argument `PATH@LEVEL` into the path and the minimum
/// level (`info`, `informational`, `low`, `medium`, `high`, `critical`). A
/// path whose text after the last `@` is not a level is returned whole.
pub fn split_level(arg: &Path) -> (std::path::PathBuf, Option<Severity>) {
    if let Some(s) = arg.to_str()
        && let Some((p, l)) = s.rsplit_once('@')
        && let Some(level) = Severity::parse(l)
        && !p.is_empty()
    {
        return (std::path::PathBuf::from(p), Some(level));
    }
    (arg.to_path_buf(), None)
}

/// Reads rule sources and builds a [`RuleSet`].
#[derive(Default)]
pub struct Loader {
    sources: Vec<(String, String, MinLevel)>,
    errors: Vec<LoadError>,
    min_level: Option<Severity>,
    ignore_levels: bool,
}

/// The embedded built-in rules (`rules/builtin/*.yaml`).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "builtin:process.yaml",
        include_str!("../builtin/process.yaml"),
    ),
    ("builtin:file.yaml", include_str!("../builtin/file.yaml")),
    (
        "builtin:privilege.yaml",
        include_str!("../builtin/privilege.yaml"),
    ),
    (
        "builtin:network.yaml",
        include_str!("../builtin/network.yaml"),
    ),
    (
        "builtin:kernel.yaml",
        include_str!("../builtin/kernel.yaml"),
    ),
    (
        "builtin:containers.yaml",
        include_str!("../builtin/containers.yaml"),
    ),
    (
        "builtin:defense.yaml",
        include_str!("../builtin/defense.yaml"),
    ),
    (
        "builtin:persistence.yaml",
        include_str!("../builtin/persistence.yaml"),
    ),
    (
        "builtin:collection.yaml",
        include_str!("../builtin/collection.yaml"),
    ),
    (
        "builtin:syscalls.yaml",
        include_str!("../builtin/syscalls.yaml"),
    ),
    (
        "builtin:changes.yaml",
        include_str!("../builtin/changes.yaml"),
    ),
];

/// Files larger than this are refused (a rule file is text a person wrote).
const MAX_FILE: u64 = 16 << 20;

impl Loader {
    /// An empty loader.
    pub fn new() -> Loader {
        Loader::default()
    }

    /// Adds the embedded built-in rules.
    pub fn add_builtin(&mut self) {
        for (n, t) in BUILTIN {
            self.sources
                .push((n.to_string(), t.to_string(), MinLevel::Builtin));
        }
    }

    /// The minimum level of the Sigma rules of every source added without
    /// a level of its own: a Sigma rule whose `level` is lower is not
    /// loaded and is listed in [`Report::below_level`]. vigil-format rules
    /// (the operator's own) and the built-ins load at every level unless
    /// their path carries one (`PATH@LEVEL`, which applies to both
    /// languages). `None` (the default of a new loader) loads every level.
    pub fn set_min_level(&mut self, level: Option<Severity>) {
        self.min_level = level;
    }

    /// Loads every rule whatever its level (for `vigil rules test`, which
    /// checks the examples of all rules); [`Report::below_level`] still
    /// says which rules a run would leave out.
    pub fn ignore_levels(&mut self, on: bool) {
        self.ignore_levels = on;
    }

    /// Adds one source text under a display name.
    pub fn add_source(&mut self, name: &str, text: &str) {
        self.sources
            .push((name.to_string(), text.to_string(), MinLevel::Default));
    }

    /// Adds a rule file, or every `*.yml`/`*.yaml` below a folder (sorted).
    pub fn add_path(&mut self, path: &Path) {
        self.add_path_inner(path, MinLevel::Default);
    }

    /// [`Loader::add_path`] with a minimum level for this path's rules
    /// (`None`: the loader's default).
    pub fn add_path_at(&mut self, path: &Path, level: Option<Severity>) {
        self.add_path_inner(path, level.map_or(MinLevel::Default, MinLevel::At));
    }

    /// Adds a `--rules` argument: `PATH` or `PATH@LEVEL` ([`split_level`]).
    pub fn add_rules_arg(&mut self, arg: &Path) {
        let (p, l) = split_level(arg);
        self.add_path_at(&p, l);
    }

    fn add_path_inner(&mut self, path: &Path, level: MinLevel) {
        let mut files = Vec::new();
        if let Err(e) = walk(path, &mut files) {
            self.errors
                .push(LoadError::at(&path.display().to_string(), 0, &e));
            return;
        }
        files.sort();
        for f in files {
            let name = f.display().to_string();
            match std::fs::metadata(&f) {
                Ok(m) if m.len() > MAX_FILE => {
                    self.errors
                        .push(LoadError::at(&name, 0, "file larger than 16 MiB"));
                    continue;
                }
                _ => {}
            }
            match std::fs::read(&f) {
                Ok(b) => match String::from_utf8(b) {
                    Ok(t) => self.sources.push((name, t, level)),
                    Err(_) => self.errors.push(LoadError::at(&name, 0, "not UTF-8")),
                },
                Err(e) => self
                    .errors
                    .push(LoadError::at(&name, 0, &format!("cannot read: {e}"))),
            }
        }
    }

    /// Parses, checks and compiles everything added.
    pub fn load(self) -> (RuleSet, Report) {
        let mut report = Report {
            files: self.sources.len(),
            errors: self.errors,
            ..Report::default()
        };
        let mut defs = vigil::Defs::default();
        let mut docs = Vec::new();
        // Per file: the minimum level, and whether it was given for that
        // path (`PATH@LEVEL` applies to vigil rules too; the loader's
        // default applies to Sigma rules only).
        let mut min_of: BTreeMap<&str, (Option<Severity>, bool)> = BTreeMap::new();
        for (name, text, lvl) in &self.sources {
            min_of.insert(
                name,
                match lvl {
                    MinLevel::Builtin => (None, false),
                    MinLevel::Default => (self.min_level, false),
                    MinLevel::At(l) => (Some(*l), true),
                },
            );
            match yaml::parse(text) {
                Ok(d) => docs.push((name.as_str(), d)),
                Err(e) => {
                    report
                        .errors
                        .push(LoadError::at(name, e.line, &format!("YAML: {}", e.message)))
                }
            }
        }
        // Pass 1: lists and macros everywhere; sort documents by language.
        let mut vigil_items = Vec::new();
        let mut sigma_docs = Vec::new();
        let mut corr_docs = Vec::new();
        for (name, ds) in &docs {
            for d in ds {
                if d.as_seq().is_some() {
                    for it in vigil::collect(name, d, &mut defs, &mut report.errors) {
                        vigil_items.push((*name, it));
                    }
                } else if d.get("detection").is_some() {
                    sigma_docs.push((*name, d));
                } else if d.get("correlation").is_some() {
                    corr_docs.push((*name, d));
                } else if d.is_null() {
                } else {
                    report.errors.push(LoadError::at(
                        name,
                        d.line,
                        "neither a vigil rule file (a list of rule/list/macro items) nor a Sigma rule (a mapping with `detection`)",
                    ));
                }
            }
        }
        // Pass 2: rules. A later rule with the same id replaces an earlier
        // one (user files override built-ins); `{rule: X, enabled: false}`
        // switches one off.
        let mut rules: Vec<Rule> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for (name, it) in vigil_items {
            match vigil::rule(name, it, &mut defs) {
                Ok(vigil::Item::Rule(r)) => match index.get(&r.id) {
                    Some(&i) => rules[i] = *r,
                    None => {
                        index.insert(r.id.clone(), rules.len());
                        rules.push(*r);
                    }
                },
                Ok(vigil::Item::Enable(id, on)) => match index.get(&id) {
                    Some(&i) => rules[i].enabled = on,
                    None => report.errors.push(LoadError::at(
                        name,
                        it.line,
                        &format!("rule `{id}`: no earlier rule with this id to enable or disable"),
                    )),
                },
                Err(e) => report.errors.push(e),
            }
        }
        // Sigma `name`s (and ids) correlations may refer to.
        let mut refs: BTreeMap<String, correlation::Ref> = BTreeMap::new();
        let mut cat_of: BTreeMap<String, String> = BTreeMap::new();
        for (name, d) in sigma_docs {
            let sname = d.get("name").and_then(yaml::Node::as_str);
            match sigma::convert(name, d) {
                Ok(sigma::Outcome::Rule(r, category)) => {
                    if let Some(n) = sname {
                        refs.insert(n.to_string(), correlation::Ref::Rule(r.id.clone()));
                    }
                    if let Some(&i) = index.get(&r.id) {
                        report.errors.push(LoadError::at(
                            name,
                            d.line,
                            &format!(
                                "rule `{}`: id already used by {}:{}",
                                r.id, rules[i].file, rules[i].line
                            ),
                        ));
                        continue;
                    }
                    cat_of.insert(r.id.clone(), category);
                    index.insert(r.id.clone(), rules.len());
                    rules.push(*r);
                }
                Ok(sigma::Outcome::Skipped(s)) => {
                    for k in sname
                        .into_iter()
                        .chain(d.get("id").and_then(yaml::Node::as_str))
                    {
                        refs.insert(
                            k.to_string(),
                            correlation::Ref::Skipped(format!("{}: {}", s.class, s.reason)),
                        );
                    }
                    report.skipped.push(s)
                }
                Err(e) => report.errors.push(e),
            }
        }
        for (_, d) in &corr_docs {
            for k in ["name", "id"] {
                if let Some(n) = d.get(k).and_then(yaml::Node::as_str) {
                    refs.insert(n.to_string(), correlation::Ref::Correlation);
                }
            }
        }
        let mut corrs: Vec<Correlation> = Vec::new();
        for (name, d) in corr_docs {
            let resolve = |n: &str| match refs.get(n) {
                Some(correlation::Ref::Rule(id)) => Some(correlation::Ref::Rule(id.clone())),
                Some(correlation::Ref::Skipped(w)) => Some(correlation::Ref::Skipped(w.clone())),
                Some(correlation::Ref::Correlation) => Some(correlation::Ref::Correlation),
                None => index
                    .get(n)
                    .filter(|&&i| rules[i].enabled)
                    .map(|_| correlation::Ref::Rule(n.to_string())),
            };
            match correlation::convert(name, d, &resolve) {
                Ok(correlation::Outcome::Corr(c)) => {
                    if index.contains_key(&c.rule.id)
                        || corrs.iter().any(|x| x.rule.id == c.rule.id)
                    {
                        report.errors.push(LoadError::at(
                            name,
                            d.line,
                            &format!("correlation `{}`: id already used", c.rule.id),
                        ));
                        continue;
                    }
                    corrs.push(*c)
                }
                Ok(correlation::Outcome::Skipped(s)) => report.skipped.push(s),
                Err(e) => report.errors.push(e),
            }
        }
        report.disabled = rules.iter().filter(|r| !r.enabled).count();
        rules.retain(|r| r.enabled);
        // Levels: correlations first; the rules a kept correlation refers
        // to load whatever their level (they feed it).
        let min_for = |file: &str, ruleset: Ruleset| -> Option<Severity> {
            match min_of.get(file).copied() {
                Some((m, true)) => m,
                Some((m, false)) if ruleset == Ruleset::Sigma => m,
                _ => None,
            }
        };
        let below = |file: &str, level: Severity, ruleset: Ruleset| -> Option<Severity> {
            if self.ignore_levels {
                return None;
            }
            min_for(file, ruleset).filter(|m| level < *m)
        };
        let mut below_level = Vec::new();
        corrs.retain(
            |c| match below(&c.rule.file, c.rule.severity, c.rule.ruleset) {
                Some(m) => {
                    below_level.push(BelowLevel {
                        file: c.rule.file.clone(),
                        rule: c.rule.id.clone(),
                        level: c.rule.severity,
                        min_level: m,
                    });
                    false
                }
                None => true,
            },
        );
        let fed: BTreeSet<&str> = corrs
            .iter()
            .flat_map(|c| c.refs.iter().map(String::as_str))
            .collect();
        rules.retain(|r| {
            if fed.contains(r.id.as_str()) {
                return true;
            }
            match below(&r.file, r.severity, r.ruleset) {
                Some(m) => {
                    below_level.push(BelowLevel {
                        file: r.file.clone(),
                        rule: r.id.clone(),
                        level: r.severity,
                        min_level: m,
                    });
                    false
                }
                None => true,
            }
        });
        if self.ignore_levels {
            // Report what a run would leave out.
            for r in &rules {
                if let Some(m) = min_for(&r.file, r.ruleset)
                    && r.severity < m
                    && !fed.contains(r.id.as_str())
                {
                    below_level.push(BelowLevel {
                        file: r.file.clone(),
                        rule: r.id.clone(),
                        level: r.severity,
                        min_level: m,
                    });
                }
            }
        }
        report.below_level = below_level;
        for r in &rules {
            if let Some(c) = cat_of.get(&r.id) {
                *report.sigma_by_category.entry(c.clone()).or_default() += 1;
            }
        }
        report.correlations = corrs.len();
        report.vigil_rules = rules.iter().filter(|r| r.ruleset == Ruleset::Vigil).count();
        report.sigma_rules = rules.iter().filter(|r| r.ruleset == Ruleset::Sigma).count();
        match RuleSet::build(rules) {
            Ok(mut set) => {
                set.add_correlations(corrs);
                (set, report)
            }
            Err(e) => {
                report.errors.push(e);
                (RuleSet::empty(), report)
            }
        }
    }
}

fn walk(p: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), String> {
    let md = std::fs::metadata(p).map_err(|e| format!("cannot read: {e}"))?;
    if md.is_file() {
        out.push(p.to_path_buf());
        return Ok(());
    }
    let rd = std::fs::read_dir(p).map_err(|e| format!("cannot read folder: {e}"))?;
    for e in rd {
        let e = e.map_err(|e| format!("cannot read folder: {e}"))?;
        let path = e.path();
        let ft = e.file_type().map_err(|e| e.to_string())?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if ft.is_file()
            && matches!(
                path.extension().and_then(|x| x.to_str()),
                Some("yml" | "yaml")
            )
        {
            out.push(path);
        }
    }
    Ok(())
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A compiled set of rules.
pub struct RuleSet {
    rules: Vec<Rule>,
    matcher: compile::Matcher,
    interest: Interest,
    generation: u64,
    prefilter: bool,
    correlations: Vec<Correlation>,
    /// Per rule: it only feeds correlations (`generate: false`).
    quiet: Vec<bool>,
    /// Per rule: the correlations it feeds, with its position in each.
    feeds: Vec<Vec<(usize, usize)>>,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl RuleSet {
    /// A set with no rules.
    pub fn empty() -> RuleSet {
        match RuleSet::build(Vec::new()) {
            Ok(s) => s,
            Err(_) => unreachable!("an empty rule set always compiles"),
        }
    }

    /// Compiles rules.
    pub fn build(rules: Vec<Rule>) -> Result<RuleSet, LoadError> {
        let inputs: Vec<compile::RuleInput<'_>> = rules
            .iter()
            .map(|r| compile::RuleInput {
                expr: &r.condition,
                cats: r.categories,
            })
            .collect();
        let matcher = compile::Matcher::build(&inputs).map_err(|e| {
            let r = &rules[e.rule];
            LoadError::at(&r.file, r.line, &format!("rule `{}`: {}", r.id, e.message))
        })?;
        let mut interest = Interest::default();
        for r in &rules {
            interest.add(r);
        }
        Ok(RuleSet {
            matcher,
            interest,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            prefilter: true,
            quiet: vec![false; rules.len()],
            feeds: vec![Vec::new(); rules.len()],
            rules,
            correlations: Vec::new(),
        })
    }

    fn add_correlations(&mut self, mut corrs: Vec<Correlation>) {
        let pos: BTreeMap<&str, usize> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        for (ci, c) in corrs.iter_mut().enumerate() {
            c.idx = c
                .refs
                .iter()
                .filter_map(|id| pos.get(id.as_str()).copied())
                .collect();
            for (step, &ri) in c.idx.iter().enumerate() {
                self.feeds[ri].push((ci, step));
            }
        }
        for (ri, f) in self.feeds.iter().enumerate() {
            self.quiet[ri] = !f.is_empty() && f.iter().all(|(ci, _)| !corrs[*ci].generate);
        }
        self.correlations = corrs;
    }

    /// The Sigma correlation rules.
    pub fn correlations(&self) -> &[Correlation] {
        &self.correlations
    }

    fn index_of(&self, r: &Rule) -> Option<usize> {
        let base = self.rules.as_ptr() as usize;
        let at = r as *const Rule as usize;
        let size = std::mem::size_of::<Rule>().max(1);
        let i = at.checked_sub(base)? / size;
        (i < self.rules.len() && std::ptr::eq(&self.rules[i], r)).then_some(i)
    }

    /// Whether a rule only feeds correlations (referenced by a correlation
    /// with `generate: false`, Sigma's default): its matches raise no
    /// alert of their own.
    pub fn is_quiet(&self, r: &Rule) -> bool {
        self.index_of(r).is_some_and(|i| self.quiet[i])
    }

    /// Feeds one event's matches (from [`RuleSet::evaluate`]) to the
    /// correlations; appends the rule of each correlation that fired.
    /// `now_ns` is the event's time. The state is cleared when the set
    /// differs from the one it was used with.
    pub fn correlate<'s>(
        &'s self,
        state: &mut CorrState,
        matched: &[&Rule],
        event: &dyn Fields,
        now_ns: u64,
        out: &mut Vec<&'s Rule>,
    ) {
        if self.correlations.is_empty() {
            return;
        }
        state.reset_for(self.generation);
        let mut hits: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for r in matched {
            if let Some(i) = self.index_of(r) {
                for &(ci, step) in &self.feeds[i] {
                    hits.entry(ci).or_default().push(step);
                }
            }
        }
        if hits.is_empty() {
            return;
        }
        let spans: Vec<u64> = self.correlations.iter().map(|c| c.timespan_ns).collect();
        for (ci, steps) in hits {
            let c = &self.correlations[ci];
            let key = correlation::key_of(&c.group_by, event);
            let value = match c.value_field {
                Some(f) => match event.field(f) {
                    Some(v) => Some(correlation::value_bytes(&v)),
                    // value_count counts values: an event without the
                    // field adds none.
                    None => continue,
                },
                None => None,
            };
            if state.observe(ci, c, &steps, key, value, now_ns, &spans) {
                out.push(&c.rule);
            }
        }
    }

    /// Number of rules loaded.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is loaded.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// What the rules can match (for the kernel's interest maps).
    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// Distinct predicates after deduplication, and patterns per scanned
    /// field (for `vigil rules check`).
    pub fn stats(&self) -> (usize, Vec<(&'static str, usize)>) {
        (self.matcher.predicates(), self.matcher.regex_fields())
    }

    /// Whether [`RuleSet::evaluate`] uses the literal prefilter (the
    /// default; see `compile.rs` and `prefilter.rs`).
    pub fn prefilter(&self) -> bool {
        self.prefilter
    }

    /// Switches the literal prefilter on or off. Off, every field the
    /// slot's rules test is read (on, fields no trigger needs are read only
    /// for candidate rules), every string test of
    /// the event's fields is scanned with the full regexes and every rule
    /// of the event's category and action is evaluated: the reference the
    /// prefilter is checked against. Both give the same matches.
    pub fn set_prefilter(&mut self, on: bool) {
        self.prefilter = on;
    }

    /// The rules matching `event`, appended to `out` in load order.
    pub fn evaluate<'s>(
        &'s self,
        event: &dyn Fields,
        scratch: &mut Scratch,
        out: &mut Vec<&'s Rule>,
    ) {
        self.evaluate_with(event, scratch, out, self.prefilter);
    }

    /// [`RuleSet::evaluate`] with the prefilter on or off for this call.
    pub fn evaluate_with<'s>(
        &'s self,
        event: &dyn Fields,
        scratch: &mut Scratch,
        out: &mut Vec<&'s Rule>,
        prefilter: bool,
    ) {
        self.matcher.prepare(scratch, self.generation);
        let mut ix = std::mem::take(&mut scratch.matched);
        ix.clear();
        self.matcher.eval(event, scratch, &mut ix, prefilter);
        out.extend(ix.iter().map(|&i| &self.rules[i as usize]));
        scratch.matched = ix;
    }

    /// Runs every rule's embedded examples; returns the failures as
    /// `file:line: rule X: example ...` messages, and the number run.
    pub fn test_examples(&self) -> (usize, Vec<String>) {
        let mut scratch = Scratch::new();
        let mut failures = Vec::new();
        let mut n = 0;
        for r in &self.rules {
            for ex in &r.examples {
                n += 1;
                let mut out = Vec::new();
                self.evaluate(ex, &mut scratch, &mut out);
                let hit = out.iter().any(|m| m.id == r.id);
                if hit != ex.want {
                    failures.push(format!(
                        "{}:{}: rule `{}`: example {} but {}",
                        r.file,
                        ex.line,
                        r.id,
                        if ex.want {
                            "must match"
                        } else {
                            "must not match"
                        },
                        if hit { "it matched" } else { "it did not" }
                    ));
                }
            }
        }
        (n, failures)
    }
}
