//! vigil's own rule files: a YAML list of `rule`, `list` and `macro` items
//! (reference: `rules/README.md`).

use crate::ast::Expr;
use crate::cond::{self, Env};
use crate::schema::{Field, Type, Value, cat};
use crate::yaml::Node;
use crate::{Example, LoadError, Rule, Ruleset, Severity, Template};
use std::collections::HashMap;
use std::net::IpAddr;

const RULE_KEYS: &[&str] = &[
    "rule",
    "name",
    "description",
    "severity",
    "tags",
    "for_events",
    "condition",
    "exceptions",
    "output",
    "enabled",
    "examples",
    "action",
    "capture",
];

/// A list or macro definition and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Def {
    pub file: String,
    pub line: usize,
    pub node: Node,
}

/// Lists and macros of every loaded file.
#[derive(Default)]
pub(crate) struct Defs {
    pub lists: HashMap<String, Def>,
    pub macros: HashMap<String, Def>,
    parsed: HashMap<String, Result<Expr, String>>,
    active: Vec<String>,
}

impl Env for Defs {
    fn list(&self, name: &str) -> Option<Vec<String>> {
        let d = self.lists.get(name)?;
        let items = d.node.get("items")?.as_seq()?;
        Some(
            items
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect(),
        )
    }

    fn suggest_list(&self, name: &str) -> Option<String> {
        if name.len() > 96 {
            return None;
        }
        self.lists
            .keys()
            .map(|k| (crate::schema::edit_distance(name, k), k))
            .filter(|(d, _)| *d <= 3.max(name.len() / 3))
            .min()
            .map(|(_, k)| k.clone())
    }

    fn macro_expr(&mut self, name: &str) -> Option<Result<Expr, String>> {
        if let Some(r) = self.parsed.get(name) {
            return Some(r.clone());
        }
        let d = self.macros.get(name)?.clone();
        if self.active.iter().any(|a| a == name) {
            return Some(Err(format!("macro `{name}` refers to itself")));
        }
        let src = match d.node.get("condition").and_then(Node::as_str) {
            Some(s) => s.to_string(),
            None => {
                return Some(Err(format!(
                    "macro `{name}` ({}:{}) has no condition",
                    d.file, d.line
                )));
            }
        };
        self.active.push(name.to_string());
        let r = cond::parse(&src, self);
        self.active.pop();
        self.parsed.insert(name.to_string(), r.clone());
        Some(r)
    }
}

/// First pass: collects lists and macros; returns the rule items.
pub(crate) fn collect<'a>(
    file: &str,
    doc: &'a Node,
    defs: &mut Defs,
    errors: &mut Vec<LoadError>,
) -> Vec<&'a Node> {
    let mut rules = Vec::new();
    let Some(items) = doc.as_seq() else {
        errors.push(LoadError::at(
            file,
            doc.line,
            "a vigil rule file is a list of `rule`, `list` and `macro` items",
        ));
        return rules;
    };
    for it in items {
        if let Some(n) = it.get("list").and_then(Node::as_str) {
            if it.get("items").and_then(Node::as_seq).is_none() {
                errors.push(LoadError::at(
                    file,
                    it.line,
                    &format!("list `{n}`: `items` must be a list"),
                ));
                continue;
            }
            defs.lists.insert(
                n.to_string(),
                Def {
                    file: file.into(),
                    line: it.line,
                    node: it.clone(),
                },
            );
        } else if let Some(n) = it.get("macro").and_then(Node::as_str) {
            defs.macros.insert(
                n.to_string(),
                Def {
                    file: file.into(),
                    line: it.line,
                    node: it.clone(),
                },
            );
        } else if it.get("rule").is_some() {
            rules.push(it);
        } else {
            errors.push(LoadError::at(
                file,
                it.line,
                "item is not a `rule`, `list` or `macro`",
            ));
        }
    }
    rules
}

fn str_field<'a>(n: &'a Node, key: &str) -> Result<Option<&'a str>, (usize, String)> {
    match n.get(key) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or_else(|| {
            (
                v.line,
                format!("field `{key}`: expected a string, found {}", v.describe()),
            )
        }),
    }
}

fn str_list(n: &Node, key: &str) -> Result<Vec<String>, (usize, String)> {
    match n.get(key) {
        None => Ok(Vec::new()),
        Some(v) => match v.as_seq() {
            Some(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| (i.line, format!("field `{key}`: items must be strings")))
                })
                .collect(),
            None => Err((
                v.line,
                format!("field `{key}`: expected a list, found {}", v.describe()),
            )),
        },
    }
}

/// What a rule item asks: a new/replacing rule, or a change of `enabled`.
pub(crate) enum Item {
    Rule(Box<Rule>),
    Enable(String, bool),
}

/// Second pass: one rule item.
pub(crate) fn rule(file: &str, it: &Node, defs: &mut Defs) -> Result<Item, LoadError> {
    let id = it
        .get("rule")
        .and_then(Node::as_str)
        .unwrap_or("")
        .to_string();
    let err = |line: usize, msg: String| LoadError::at(file, line, &format!("rule `{id}`: {msg}"));
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(LoadError::at(
            file,
            it.line,
            &format!("rule id `{id}` must be non-empty [A-Za-z0-9_.-]"),
        ));
    }
    for (k, _) in it.as_map().unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        if !RULE_KEYS.contains(&key) {
            let hint = RULE_KEYS
                .iter()
                .filter(|_| key.len() <= 64)
                .min_by_key(|c| crate::schema::edit_distance(key, c))
                .filter(|c| crate::schema::edit_distance(key, c) <= 3)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(err(k.line, format!("unknown key `{key}`{hint}")));
        }
    }
    let enabled = match it.get("enabled") {
        None => true,
        Some(v) => match v.as_str() {
            Some("true") => true,
            Some("false") => false,
            _ => {
                return Err(err(
                    v.line,
                    "field `enabled`: expected true or false".into(),
                ));
            }
        },
    };
    if it.get("condition").is_none() {
        if it.as_map().map(|m| m.len()) == Some(2) && it.get("enabled").is_some() {
            return Ok(Item::Enable(id, enabled));
        }
        return Err(err(it.line, "field `condition` is missing".into()));
    }
    let name = str_field(it, "name")
        .map_err(|(l, e)| err(l, e))?
        .unwrap_or(&id)
        .to_string();
    let description = str_field(it, "description")
        .map_err(|(l, e)| err(l, e))?
        .unwrap_or("")
        .trim()
        .to_string();
    let severity = match str_field(it, "severity").map_err(|(l, e)| err(l, e))? {
        None => Severity::Medium,
        Some(s) => Severity::parse(s).ok_or_else(|| {
            err(
                it.get("severity").map_or(it.line, |n| n.line),
                format!("field `severity`: `{s}` is not one of info, low, medium, high, critical"),
            )
        })?,
    };
    let tags = str_list(it, "tags").map_err(|(l, e)| err(l, e))?;
    let mut cats = 0u8;
    for c in str_list(it, "for_events").map_err(|(l, e)| err(l, e))? {
        cats |= cat::bit(&c).ok_or_else(|| {
            err(
                it.get("for_events").map_or(it.line, |n| n.line),
                format!(
                    "field `for_events`: `{c}` is not a category ({})",
                    cat::names(cat::ALL).join(", ")
                ),
            )
        })?;
    }
    let cnode = it
        .get("condition")
        .ok_or_else(|| err(it.line, "field `condition` is missing".into()))?;
    let csrc = cnode
        .as_str()
        .ok_or_else(|| err(cnode.line, "field `condition`: expected a string".into()))?;
    let mut expr =
        cond::parse(csrc, defs).map_err(|e| err(cnode.line, format!("condition: {e}")))?;
    if let Some(ex) = it.get("exceptions") {
        let exc = exceptions(ex, defs).map_err(|(l, e)| err(l, format!("exceptions: {e}")))?;
        expr = Expr::and(vec![expr, Expr::not(exc)]);
    }
    if cats == 0 {
        cats = crate::infer_categories(&expr);
    }
    let output = match it.get("output") {
        None => None,
        Some(o) => Some(
            Template::parse(
                o.as_str()
                    .ok_or_else(|| err(o.line, "field `output`: expected a string".into()))?,
            )
            .map_err(|e| err(o.line, format!("output: {e}")))?,
        ),
    };
    let examples = match it.get("examples") {
        None => Vec::new(),
        Some(e) => examples(e).map_err(|(l, e)| err(l, format!("examples: {e}")))?,
    };
    let action = match str_field(it, "action").map_err(|(l, e)| err(l, e))? {
        None | Some("alert") => crate::Action::Alert,
        Some("kill") => crate::Action::Kill,
        Some(a) => {
            return Err(err(
                it.get("action").map_or(it.line, |n| n.line),
                format!(
                    "field `action`: `{}` is not one of alert, kill",
                    crate::printable(a)
                ),
            ));
        }
    };
    let capture = match it.get("capture") {
        None => false,
        Some(v) => match v.as_str() {
            Some("true") => true,
            Some("false") => false,
            _ => {
                return Err(err(
                    v.line,
                    "field `capture`: expected true or false".into(),
                ));
            }
        },
    };
    Ok(Item::Rule(Box::new(Rule {
        capture,
        action,
        id,
        name,
        description,
        severity,
        tags,
        ruleset: Ruleset::Vigil,
        file: file.to_string(),
        line: it.line,
        categories: cats,
        condition: expr,
        output,
        examples,
        enabled,
    })))
}

/// `exceptions: [{name, fields: [...], comps: [...], values: [[...], ...]}]`
fn exceptions(n: &Node, defs: &mut Defs) -> Result<Expr, (usize, String)> {
    let items = n.as_seq().ok_or((n.line, "expected a list".to_string()))?;
    let mut alts = Vec::new();
    for e in items {
        let fields = str_list(e, "fields")?;
        if fields.is_empty() {
            return Err((e.line, "each exception needs `fields`".into()));
        }
        let comps = str_list(e, "comps")?;
        if !comps.is_empty() && comps.len() != fields.len() {
            return Err((e.line, "`comps` must have one operator per field".into()));
        }
        let values = e.get("values").and_then(Node::as_seq).ok_or((
            e.line,
            "each exception needs `values` (a list of tuples)".to_string(),
        ))?;
        for tuple in values {
            let vals: Vec<&Node> = match tuple.as_seq() {
                Some(t) => t.iter().collect(),
                None if fields.len() == 1 => vec![tuple],
                None => return Err((tuple.line, "a value tuple must be a list".into())),
            };
            if vals.len() != fields.len() {
                return Err((
                    tuple.line,
                    format!(
                        "tuple has {} values for {} fields",
                        vals.len(),
                        fields.len()
                    ),
                ));
            }
            let mut conj = Vec::new();
            for (i, (f, v)) in fields.iter().zip(vals).enumerate() {
                let op = comps.get(i).map(String::as_str).unwrap_or("=");
                let v = v
                    .as_str()
                    .ok_or((v.line, "values must be scalars".to_string()))?;
                let src = format!("{f} {op} {}", quote(v));
                conj.push(cond::parse(&src, defs).map_err(|e| (tuple.line, e))?);
            }
            alts.push(Expr::and(conj));
        }
    }
    Ok(Expr::or(alts))
}

/// Quotes a value for the condition language.
pub fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

fn examples(n: &Node) -> Result<Vec<Example>, (usize, String)> {
    let items = n.as_seq().ok_or((n.line, "expected a list".to_string()))?;
    let mut out = Vec::new();
    for e in items {
        let (want, ev) = match (e.get("match"), e.get("no_match")) {
            (Some(m), None) => (true, m),
            (None, Some(m)) => (false, m),
            _ => {
                return Err((
                    e.line,
                    "each example is `match: {fields}` or `no_match: {fields}`".into(),
                ));
            }
        };
        let map = ev.as_map().ok_or((
            ev.line,
            "an example event is a mapping of field: value".to_string(),
        ))?;
        let mut values = Vec::new();
        for (k, v) in map {
            let key = k.as_str().unwrap_or("");
            let f = Field::by_name(key).ok_or_else(|| {
                (
                    k.line,
                    match Field::suggest(key) {
                        Some(s) => format!("unknown field `{key}` (did you mean `{s}`?)"),
                        None => format!("unknown field `{key}`"),
                    },
                )
            })?;
            let text = v
                .as_str()
                .ok_or((v.line, format!("field `{key}`: expected a scalar")))?;
            values.push((f, owned_value(f, text).map_err(|e| (v.line, e))?));
        }
        out.push(Example {
            line: e.line,
            want,
            values,
        });
    }
    Ok(out)
}

/// Parses an example value by the field's type.
pub(crate) fn owned_value(f: Field, text: &str) -> Result<Value<'static>, String> {
    Ok(match f.ty() {
        Type::Str => Value::Str(text.as_bytes().to_vec().into()),
        Type::Int => Value::Int(
            cond::parse_int(text)
                .ok_or_else(|| format!("field `{}`: `{text}` is not a number", f.name()))?,
        ),
        Type::Bool => Value::Bool(match text {
            "true" => true,
            "false" => false,
            _ => {
                return Err(format!(
                    "field `{}`: `{text}` is not true or false",
                    f.name()
                ));
            }
        }),
        Type::Ip => Value::Ip(
            text.parse::<IpAddr>()
                .map_err(|_| format!("field `{}`: `{text}` is not an IP address", f.name()))?,
        ),
    })
}
