//! The literal prefilter changes nothing but speed: over constructed rules
//! (every string operator, case-sensitive or not, under `and`, `or`, `not`,
//! with existence and integer tests) and events built from the same
//! tokens, the prefiltered engine, the unfiltered engine and a naive
//! evaluator written here from the operators' definitions return the same
//! rules.

use proptest::prelude::*;
use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use vigil_rules::ast::{Cmp, Expr, Pred, StrOp, Test};
use vigil_rules::{Example, Field, Fields, Rule, RuleSet, Ruleset, Scratch, Severity, Value, cat};

const TOKENS: &[&str] = &[
    "a", "A", "ab", "aB", "-c", "-C", "/tmp/", "/TMP/", "curl", "CURL", " ", "x/y", "sh", "Sh",
    ".sh", "/bash", "bash", "wget", "1", "42", "é", "\\", "*",
];

const FIELDS: &[Field] = &[
    Field::ProcessCommandLine,
    Field::ProcessExecutable,
    Field::FilePath,
    Field::ProcessName,
];

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..5).prop_map(|v| v.concat())
}

fn escape(s: &str) -> String {
    regex_syntax::escape(s)
}

fn regex_src() -> impl Strategy<Value = String> {
    (
        prop::sample::select(TOKENS),
        prop::sample::select(TOKENS),
        0..9u8,
    )
        .prop_map(|(a, b, k)| {
            let (a, b) = (escape(a), escape(b));
            match k {
                0 => a,
                1 => format!("{a}|{b}"),
                2 => format!("{a}.*{b}"),
                3 => format!("(?:{a})+{b}"),
                4 => format!("{a}?{b}"),
                5 => format!("[a-c]{a}"),
                6 => r"\d+".to_string(),
                7 => format!("^{a}(?:{b}|x)$"),
                _ => format!(r"(?:{a}|{b})\s+\S"),
            }
        })
}

fn glob_src() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(TOKENS).prop_map(|t| t.replace('\\', "\\\\").replace('*', "\\*")),
            Just("*".to_string()),
            Just("?".to_string()),
        ],
        0..4,
    )
    .prop_map(|v| v.concat())
}

fn pred() -> impl Strategy<Value = Expr> {
    let field = prop::sample::select(FIELDS);
    let s = (
        field.clone(),
        prop::sample::select(
            &[
                StrOp::Eq,
                StrOp::Prefix,
                StrOp::Suffix,
                StrOp::Contains,
                StrOp::Glob,
                StrOp::Regex,
            ][..],
        ),
        any::<bool>(),
        text(),
        regex_src(),
        glob_src(),
    )
        .prop_map(|(field, op, ci, lit, re, glob)| {
            let pat = match op {
                StrOp::Regex => re,
                StrOp::Glob => glob,
                _ => lit,
            };
            Expr::Pred(Pred {
                field,
                test: Test::Str {
                    op,
                    pat: pat.into_bytes(),
                    ci,
                },
            })
        });
    prop_oneof![
        8 => s,
        1 => field.prop_map(|field| Expr::Pred(Pred { field, test: Test::Exists })),
        1 => (0..3i64).prop_map(|n| Expr::Pred(Pred {
            field: Field::UserId,
            test: Test::Int(Cmp::Ge, n * 500),
        })),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    pred().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

fn event() -> impl Strategy<Value = Example> {
    (
        any::<bool>(),
        prop::collection::vec(prop::option::of(text()), FIELDS.len()),
        prop::option::of(0..2000i64),
    )
        .prop_map(|(exec, vals, uid)| {
            let mut values = vec![(
                Field::EventAction,
                Value::Str(if exec { &b"exec"[..] } else { b"open" }.to_vec().into()),
            )];
            for (f, v) in FIELDS.iter().zip(vals) {
                if let Some(v) = v {
                    values.push((*f, Value::Str(v.into_bytes().into())));
                }
            }
            if let Some(u) = uid {
                values.push((Field::UserId, Value::Int(u)));
            }
            Example {
                line: 0,
                want: true,
                values,
            }
        })
}

fn rule(i: usize, condition: Expr) -> Rule {
    Rule {
        id: format!("r{i}"),
        name: format!("r{i}"),
        description: String::new(),
        severity: Severity::Low,
        tags: Vec::new(),
        ruleset: Ruleset::Vigil,
        file: "prop".into(),
        line: i + 1,
        categories: cat::ALL,
        condition,
        output: None,
        examples: Vec::new(),
        enabled: true,
        action: vigil_rules::Action::Alert,
        capture: false,
    }
}

/// `*` any run of bytes, `?` one byte, `\` escapes; whole value.
fn glob(p: &[u8], v: &[u8]) -> bool {
    match p.split_first() {
        None => v.is_empty(),
        Some((b'*', rest)) => (0..=v.len()).any(|i| glob(rest, &v[i..])),
        Some((b'?', rest)) => !v.is_empty() && glob(rest, &v[1..]),
        Some((b'\\', rest)) if !rest.is_empty() => {
            v.first() == Some(&rest[0]) && glob(&rest[1..], &v[1..])
        }
        Some((c, rest)) => v.first() == Some(c) && glob(rest, &v[1..]),
    }
}

fn naive_pred(p: &Pred, ev: &dyn Fields) -> bool {
    let Some(v) = ev.field(p.field) else {
        return false;
    };
    match (&p.test, v) {
        (Test::Exists, _) => true,
        (Test::Int(c, n), Value::Int(x)) => c.holds(x, *n),
        (Test::Str { op, pat, ci }, Value::Str(s)) => {
            let (pat, s) = if *ci {
                (pat.to_ascii_lowercase(), s.to_ascii_lowercase())
            } else {
                (pat.clone(), s.to_vec())
            };
            match op {
                StrOp::Eq => s == pat,
                StrOp::Prefix => s.starts_with(&pat),
                StrOp::Suffix => s.ends_with(&pat),
                StrOp::Contains => pat.is_empty() || s.windows(pat.len()).any(|w| w == pat),
                StrOp::Glob => glob(&pat, &s),
                StrOp::Regex => {
                    // The regex itself is not lowercased: (?i) does that.
                    let Test::Str { pat: src, .. } = &p.test else {
                        unreachable!()
                    };
                    let src = String::from_utf8_lossy(src);
                    let src = if *ci {
                        format!("(?i)(?:{src})")
                    } else {
                        format!("(?:{src})")
                    };
                    let re = Regex::builder()
                        .syntax(syntax::Config::new().unicode(false).utf8(false))
                        .build(&src)
                        .expect("generated regexes compile");
                    let raw = ev.field(p.field).expect("present");
                    let Value::Str(raw) = raw else { return false };
                    re.is_match(&raw[..])
                }
            }
        }
        _ => false,
    }
}

fn naive(e: &Expr, ev: &dyn Fields) -> bool {
    match e {
        Expr::And(v) => v.iter().all(|x| naive(x, ev)),
        Expr::Or(v) => v.iter().any(|x| naive(x, ev)),
        Expr::Not(x) => !naive(x, ev),
        Expr::Const(b) => *b,
        Expr::Pred(p) => naive_pred(p, ev),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn prefiltered_equals_unfiltered_and_naive(
        conds in prop::collection::vec(expr(), 1..10),
        events in prop::collection::vec(event(), 1..12),
    ) {
        let rules: Vec<Rule> = conds.iter().cloned().enumerate().map(|(i, c)| rule(i, c)).collect();
        let set = RuleSet::build(rules).expect("constructed rules compile");
        let mut scratch = Scratch::new();
        for ev in &events {
            let ids = |on: bool, scratch: &mut Scratch| {
                let mut out = Vec::new();
                set.evaluate_with(ev, scratch, &mut out, on);
                out.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
            };
            let on = ids(true, &mut scratch);
            let off = ids(false, &mut scratch);
            let want: Vec<String> = conds
                .iter()
                .enumerate()
                .filter(|(_, c)| naive(c, ev))
                .map(|(i, _)| format!("r{i}"))
                .collect();
            prop_assert_eq!(&off, &want, "unfiltered vs naive on {:?}", ev.values);
            prop_assert_eq!(&on, &want, "prefiltered vs naive on {:?}", ev.values);
        }
    }
}

#[test]
fn the_prefilter_skips_rules_and_counts_them() {
    // 50 rules on distinct literals: an event matching one evaluates one.
    let rules: Vec<Rule> = (0..50)
        .map(|i| {
            rule(
                i,
                Expr::Pred(Pred {
                    field: Field::ProcessCommandLine,
                    test: Test::Str {
                        op: StrOp::Contains,
                        pat: format!("tok{i}x").into_bytes(),
                        ci: true,
                    },
                }),
            )
        })
        .collect();
    let mut set = RuleSet::build(rules).expect("compiles");
    let ev = Example {
        line: 0,
        want: true,
        values: vec![
            (Field::EventAction, Value::Str(b"exec".to_vec().into())),
            (
                Field::ProcessCommandLine,
                Value::Str(b"run --TOK7X now".to_vec().into()),
            ),
        ],
    };
    for on in [true, false] {
        set.set_prefilter(on);
        assert_eq!(set.prefilter(), on);
        let mut scratch = Scratch::new();
        let mut out = Vec::new();
        set.evaluate(&ev, &mut scratch, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "r7");
        let c = scratch.counts();
        assert_eq!((c.events, c.eligible), (1, 50));
        assert_eq!(c.evaluated, if on { 1 } else { 50 });
        assert_eq!(c.skipped_per_event(), if on { 49.0 } else { 0.0 });
    }
}

/// An event that counts the reads of each field.
struct Counting<'a> {
    ev: &'a Example,
    reads: std::cell::RefCell<Vec<Field>>,
}

impl Fields for Counting<'_> {
    fn category(&self) -> &str {
        self.ev.category()
    }
    fn field(&self, f: Field) -> Option<Value<'_>> {
        self.reads.borrow_mut().push(f);
        self.ev.field(f)
    }
}

#[test]
fn fields_only_non_triggers_test_are_read_for_candidates() {
    // The trigger is the command line literal; the executable is tested
    // only as a further condition, so it is read only when the literal hit.
    let cmd = |p: &str| Pred {
        field: Field::ProcessCommandLine,
        test: Test::Str {
            op: StrOp::Contains,
            pat: p.as_bytes().to_vec(),
            ci: false,
        },
    };
    let exe = Pred {
        field: Field::ProcessExecutable,
        test: Test::Str {
            op: StrOp::Suffix,
            pat: b"/curl".to_vec(),
            ci: false,
        },
    };
    let cond = Expr::And(vec![Expr::Pred(cmd("--upload")), Expr::Pred(exe)]);
    let set = RuleSet::build(vec![rule(0, cond)]).expect("compiles");
    let ev = |cmdline: &str| Example {
        line: 0,
        want: true,
        values: vec![
            (Field::EventAction, Value::Str(b"exec".to_vec().into())),
            (
                Field::ProcessCommandLine,
                Value::Str(cmdline.as_bytes().to_vec().into()),
            ),
            (
                Field::ProcessExecutable,
                Value::Str(b"/usr/bin/curl".to_vec().into()),
            ),
        ],
    };
    let mut scratch = Scratch::new();
    for (cmdline, hit) in [("ls -la", false), ("curl --upload x", true), ("cat", false)] {
        let e = ev(cmdline);
        for on in [true, false] {
            let c = Counting {
                ev: &e,
                reads: Default::default(),
            };
            let mut out = Vec::new();
            set.evaluate_with(&c, &mut scratch, &mut out, on);
            assert_eq!(out.len(), usize::from(hit), "{cmdline} prefilter {on}");
            let read_exe = c.reads.borrow().contains(&Field::ProcessExecutable);
            // Unfiltered reads every field; prefiltered only when needed.
            assert_eq!(read_exe, hit || !on, "{cmdline} prefilter {on}");
        }
    }
}
