//! The literal prefilter: one Aho-Corasick scan per field for every
//! literal string test of every rule.
//!
//! - `contains`, `startswith` and `endswith` tests (case-sensitive or not)
//!   are decided by the scan alone: the automaton is ASCII
//!   case-insensitive and reports every occurrence of every literal, so a
//!   case-insensitive test holds when its literal occurs (at the start, at
//!   the end, anywhere), and a case-sensitive one when an occurrence is also
//!   equal byte for byte.
//! - A glob or regex test gets a *necessary literal set* from its syntax
//!   tree ([`required`]): a set of byte strings one of which occurs,
//!   ignoring ASCII case, in every value the pattern matches. Its own
//!   regex runs only when one of them occurred. A pattern without such a
//!   set (`\d+`, `.*`, an alternation with one branch of classes) is run
//!   on every value, as before.
//!
//! Skipping is sound at the level of predicates: a predicate left out is
//! one whose literal did not occur, so it is false, which is what full
//! evaluation would have computed. Rule conditions (with `not`, `or`,
//! `1 of`, ...) are then evaluated over exact predicate values.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_syntax::hir::{Class, Hir, HirKind};
use std::collections::HashMap;

/// What an occurrence of a literal means for one predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// The predicate holds when the literal occurs anywhere.
    Contains,
    /// ... when it occurs at the start.
    Prefix,
    /// ... when it occurs at the end.
    Suffix,
    /// The predicate's own regex (this index into the field's gated list)
    /// must run.
    Gate(u32),
}

#[derive(Debug, Clone)]
struct Use {
    pred: u32,
    need: Need,
    /// For case-sensitive tests: the exact bytes an occurrence must equal.
    exact: Option<Box<[u8]>>,
}

/// The literals of one field and what each one decides.
pub(crate) struct LitScan {
    ac: AhoCorasick,
    uses: Vec<Vec<Use>>,
}

/// Collects literals before building a [`LitScan`].
#[derive(Default)]
pub(crate) struct LitBuilder {
    index: HashMap<Vec<u8>, usize>,
    lits: Vec<Vec<u8>>,
    uses: Vec<Vec<Use>>,
}

impl LitBuilder {
    /// Adds a non-empty literal for `pred`; `ci` = ASCII case-insensitive.
    pub(crate) fn add(&mut self, lit: &[u8], ci: bool, pred: u32, need: Need) {
        debug_assert!(!lit.is_empty());
        let low = lit.to_ascii_lowercase();
        let i = *self.index.entry(low.clone()).or_insert_with(|| {
            self.lits.push(low);
            self.uses.push(Vec::new());
            self.lits.len() - 1
        });
        let exact = (!ci && lit.iter().any(u8::is_ascii_alphabetic)).then(|| lit.into());
        self.uses[i].push(Use { pred, need, exact });
    }

    pub(crate) fn build(self) -> Result<LitScan, String> {
        // A DFA is the fastest Aho-Corasick; past a few thousand literals
        // its tables grow large, so the contiguous NFA takes over.
        let kind = if self.lits.len() <= 4000 {
            AhoCorasickKind::DFA
        } else {
            AhoCorasickKind::ContiguousNFA
        };
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(kind))
            .build(&self.lits)
            .map_err(|e| e.to_string())?;
        Ok(LitScan {
            ac,
            uses: self.uses,
        })
    }
}

impl LitScan {
    /// Scans `hay` once: predicates decided true go to `preds`, gated
    /// patterns whose literal occurred to `gates` (either may repeat).
    pub(crate) fn scan(&self, hay: &[u8], preds: &mut Vec<u32>, gates: &mut Vec<u32>) {
        for m in self.ac.find_overlapping_iter(hay) {
            let (s, e) = (m.start(), m.end());
            for u in &self.uses[m.pattern().as_usize()] {
                if let Some(x) = &u.exact
                    && hay[s..e] != x[..]
                {
                    continue;
                }
                match u.need {
                    Need::Contains => preds.push(u.pred),
                    Need::Prefix if s == 0 => preds.push(u.pred),
                    Need::Suffix if e == hay.len() => preds.push(u.pred),
                    Need::Prefix | Need::Suffix => {}
                    Need::Gate(g) => gates.push(g),
                }
            }
        }
    }
}

/// Most strings a set may hold while literals are combined.
/// Longest literal the shared scan holds; longer ones are tested by their
/// regex (a gate's literal is cut to this length, which keeps it necessary).
pub(crate) const MAX_LIT: usize = 256;

const MAX_SET: usize = 64;

/// What a piece of a pattern tells about the values it matches: the
/// finite set of (lowercased) strings it matches exactly, when small, and
/// a set of strings one of which every match contains.
#[derive(Debug, Clone, Default)]
struct Info {
    exact: Option<Vec<Vec<u8>>>,
    req: Option<Vec<Vec<u8>>>,
}

/// A set usable as a requirement: non-empty, no empty string.
fn usable(s: &[Vec<u8>]) -> bool {
    !s.is_empty() && s.iter().all(|x| !x.is_empty())
}

/// The better of two requirements: the longer shortest literal, then the
/// fewer literals.
fn best(a: Option<Vec<Vec<u8>>>, b: Option<Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    let score = |s: &Vec<Vec<u8>>| {
        (
            s.iter().map(Vec::len).min().unwrap_or(0),
            usize::MAX - s.len(),
        )
    };
    match (a.filter(|s| usable(s)), b.filter(|s| usable(s))) {
        (Some(a), Some(b)) => Some(if score(&b) > score(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn dedup(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort_unstable();
    v.dedup();
    v
}

fn cross(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len().saturating_mul(b.len()) > MAX_SET {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    Some(dedup(out))
}

fn class_bytes(c: &Class) -> Option<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    match c {
        Class::Bytes(b) => {
            for r in b.ranges() {
                if usize::from(r.end() - r.start()) >= MAX_SET {
                    return None;
                }
                for x in r.start()..=r.end() {
                    out.push(vec![x.to_ascii_lowercase()]);
                }
            }
        }
        Class::Unicode(u) => {
            for r in u.ranges() {
                let (a, z) = (u32::from(r.start()), u32::from(r.end()));
                if z > 0x7f || z - a >= MAX_SET as u32 {
                    return None;
                }
                for x in a..=z {
                    out.push(vec![(x as u8).to_ascii_lowercase()]);
                }
            }
        }
    }
    let out = dedup(out);
    (out.len() <= 8).then_some(out)
}

fn info(h: &Hir) -> Info {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Info {
            exact: Some(vec![Vec::new()]),
            req: None,
        },
        HirKind::Literal(l) => Info {
            exact: Some(vec![l.0.to_ascii_lowercase()]),
            req: None,
        },
        HirKind::Class(c) => Info {
            exact: class_bytes(c),
            req: None,
        },
        HirKind::Capture(c) => info(&c.sub),
        HirKind::Repetition(r) => {
            if r.min == 0 {
                return Info {
                    exact: (r.max == Some(0)).then(|| vec![Vec::new()]),
                    req: None,
                };
            }
            let s = info(&r.sub);
            let exact = match (&s.exact, r.max) {
                (Some(e), Some(max)) if max == r.min && r.min <= 4 => {
                    let mut acc = vec![Vec::new()];
                    let mut ok = true;
                    for _ in 0..r.min {
                        match cross(&acc, e) {
                            Some(n) => acc = n,
                            None => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    ok.then_some(acc)
                }
                _ => None,
            };
            // One repetition of the piece is in every match.
            Info {
                req: best(s.req, s.exact.clone()),
                exact,
            }
        }
        HirKind::Concat(parts) => {
            let mut req: Option<Vec<Vec<u8>>> = None;
            let mut run: Vec<Vec<u8>> = vec![Vec::new()];
            let mut whole = true;
            for p in parts {
                let pi = info(p);
                match &pi.exact {
                    Some(e) => match cross(&run, e) {
                        Some(n) => run = n,
                        None => {
                            // Too many combinations: what was combined so
                            // far is required; start again from this piece.
                            req = best(req, Some(std::mem::take(&mut run)));
                            run = e.clone();
                            whole = false;
                        }
                    },
                    None => {
                        req = best(req, Some(std::mem::replace(&mut run, vec![Vec::new()])));
                        whole = false;
                    }
                }
                req = best(req, pi.req);
            }
            if whole {
                Info {
                    exact: Some(run),
                    req,
                }
            } else {
                Info {
                    exact: None,
                    req: best(req, Some(run)),
                }
            }
        }
        HirKind::Alternation(alts) => {
            let infos: Vec<Info> = alts.iter().map(info).collect();
            let mut exact = Some(Vec::new());
            let mut req = Some(Vec::new());
            for i in infos {
                exact = match (exact, i.exact.clone()) {
                    (Some(mut a), Some(b)) if a.len() + b.len() <= MAX_SET => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                };
                req = match (req, best(i.req, i.exact)) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                };
            }
            Info {
                exact: exact.map(dedup),
                req: req.map(dedup),
            }
        }
    }
}

/// A necessary literal set of a regex source (parsed with the matcher's
/// syntax: bytes, no Unicode): every value the regex matches contains,
/// ignoring ASCII case, one of the returned non-empty strings. None when
/// no such set was found (the regex must run on every value).
pub(crate) fn required(src: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(src)
        .ok()?;
    let i = info(&hir);
    best(i.req, i.exact).map(dedup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Option<Vec<String>> {
        required(s).map(|v| {
            v.into_iter()
                .map(|x| String::from_utf8_lossy(&x).into_owned())
                .collect()
        })
    }

    #[test]
    fn literals_of_patterns() {
        assert_eq!(req("abc"), Some(vec!["abc".into()]));
        assert_eq!(req("(?i)AbC"), Some(vec!["abc".into()]));
        assert_eq!(
            req(r"^(?s:.*)/tmp/(?s:.*)\x2esh$"),
            Some(vec!["/tmp/".into()])
        );
        assert_eq!(
            req(r"(?:curl|wget)\s+http"),
            Some(vec!["http".into()]),
            "the longest required piece wins"
        );
        assert_eq!(
            req(r"(?:curl|wget)\s+\S"),
            Some(vec!["curl".into(), "wget".into()])
        );
        assert_eq!(req(r"\d+"), None);
        assert_eq!(req(r"(?s:.*)"), None);
        assert_eq!(req(r"a|\d"), None, "a branch without a literal");
        assert_eq!(req(r"(?:ab)+c"), Some(vec!["ab".into()]));
        assert_eq!(req(r"x?y"), Some(vec!["y".into()]));
        assert_eq!(req(r"ba[sz]h"), Some(vec!["bash".into(), "bazh".into()]));
        assert_eq!(req(""), None);
        assert_eq!(req("(unclosed"), None);
    }
}
