//! The vigil condition language.
//!
//! ```text
//! expr      := or
//! or        := and ("or" and)*
//! and       := unary ("and" unary)*
//! unary     := "not" unary | "(" expr ")" | "true" | "false" | MACRO | pred
//! pred      := FIELD "exists"
//!            | FIELD ("=" | "!=" | "<" | "<=" | ">" | ">=" | "ieq") value
//!            | FIELD ("in" | "iin" | "vin") list
//!            | FIELD STROP (value | list)
//! STROP     := startswith | endswith | contains | glob | regex | cidr
//!            | istartswith | iendswith | icontains | iglob
//! list      := "(" item ("," item)* ")"      item: value, or a list name
//! value     := "double-quoted" | 'single-quoted' | bareword | number
//! ```

use crate::ast::{Cmp, Expr, Pred, StrOp, Test, parse_cidr};
use crate::schema::{Field, Type};

/// Named lists and macros the parser can expand.
pub trait Env {
    /// Items of a named list.
    fn list(&self, name: &str) -> Option<Vec<String>>;
    /// The condition of a named macro (already parsed), or an error.
    fn macro_expr(&mut self, name: &str) -> Option<Result<Expr, String>>;
    /// The defined list whose name is closest to `name`, for an error's
    /// "did you mean" (none by default).
    fn suggest_list(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Whether a bareword list item has the shape of a list name: a letter,
/// then letters, digits and at least one `_`, not all in capitals
/// (`shell_binaries`, not `PTRACE_ATTACH`, `bash` or `php-fpm`). Such an
/// item that names no defined list is an error rather than a literal value
/// (a misspelt or missing list would otherwise match nothing, silently);
/// a literal of that shape is written quoted (`"rcu_sched"`).
pub fn looks_like_list_name(w: &str) -> bool {
    let b = w.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && b.contains(&b'_')
        && b.iter().any(u8::is_ascii_lowercase)
}

/// An environment with no lists or macros.
pub struct NoEnv;

impl Env for NoEnv {
    fn list(&self, _: &str) -> Option<Vec<String>> {
        None
    }
    fn macro_expr(&mut self, _: &str) -> Option<Result<Expr, String>> {
        None
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Op(&'static str),
    Quoted(String),
    Word(String),
}

const MAX_DEPTH: usize = 100;

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        match c {
            b'(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            b',' => {
                out.push((start, Tok::Comma));
                i += 1;
            }
            b'=' => {
                out.push((start, Tok::Op("=")));
                i += if b.get(i + 1) == Some(&b'=') { 2 } else { 1 };
            }
            b'!' if b.get(i + 1) == Some(&b'=') => {
                out.push((start, Tok::Op("!=")));
                i += 2;
            }
            b'<' | b'>' => {
                let eq = b.get(i + 1) == Some(&b'=');
                let op = match (c, eq) {
                    (b'<', true) => "<=",
                    (b'<', false) => "<",
                    (_, true) => ">=",
                    _ => ">",
                };
                out.push((start, Tok::Op(op)));
                i += if eq { 2 } else { 1 };
            }
            b'"' | b'\'' => {
                let q = c;
                i += 1;
                let mut v = Vec::new();
                loop {
                    match b.get(i) {
                        None => {
                            return Err(format!(
                                "unterminated string starting at column {}",
                                start + 1
                            ));
                        }
                        Some(&ch) if ch == q => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if q == b'"' => {
                            match b.get(i + 1) {
                                Some(&e @ (b'"' | b'\\')) => v.push(e),
                                Some(b'n') => v.push(b'\n'),
                                Some(b't') => v.push(b'\t'),
                                // Unknown escapes stay as written (regex
                                // sources keep their backslashes).
                                Some(&e) => {
                                    v.push(b'\\');
                                    v.push(e);
                                }
                                None => {
                                    return Err(format!(
                                        "unterminated string starting at column {}",
                                        start + 1
                                    ));
                                }
                            }
                            i += 2;
                        }
                        Some(&ch) => {
                            v.push(ch);
                            i += 1;
                        }
                    }
                }
                // The input is a &str and escapes only ever split at ASCII,
                // so this is valid UTF-8.
                out.push((start, Tok::Quoted(String::from_utf8_lossy(&v).into_owned())));
            }
            _ => {
                while i < b.len()
                    && !b[i].is_ascii_whitespace()
                    && !matches!(b[i], b'(' | b')' | b',' | b'=' | b'<' | b'>' | b'"' | b'\'')
                    && (b[i] != b'!' || b.get(i + 1) != Some(&b'='))
                {
                    i += 1;
                }
                if i == start {
                    return Err(format!(
                        "unexpected character `{}` at column {}",
                        c as char,
                        start + 1
                    ));
                }
                out.push((start, Tok::Word(s[start..i].to_string())));
            }
        }
    }
    Ok(out)
}

struct P<'e> {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    env: &'e mut dyn Env,
    depth: usize,
}

/// Parses a condition.
pub fn parse(src: &str, env: &mut dyn Env) -> Result<Expr, String> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err("empty condition".into());
    }
    let mut p = P {
        toks,
        pos: 0,
        env,
        depth: 0,
    };
    let e = p.or()?;
    if let Some((at, t)) = p.toks.get(p.pos) {
        return Err(format!("unexpected {} at column {}", show(t), at + 1));
    }
    Ok(e)
}

fn show(t: &Tok) -> String {
    match t {
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Op(o) => format!("`{o}`"),
        Tok::Quoted(s) => format!("string \"{s}\""),
        Tok::Word(w) => format!("`{w}`"),
    }
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w == kw)
}

impl P<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn col(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|(c, _)| c + 1)
            .unwrap_or_else(|| self.toks.last().map(|(c, _)| c + 2).unwrap_or(1))
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }
    fn expected(&self, what: &str) -> String {
        match self.peek() {
            Some(t) => format!(
                "expected {what} at column {}, found {}",
                self.col(),
                show(t)
            ),
            None => format!("expected {what} at end of condition"),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut v = vec![self.and()?];
        while is_kw(self.peek(), "or") {
            self.pos += 1;
            v.push(self.and()?);
        }
        Ok(Expr::or(v))
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut v = vec![self.unary()?];
        while is_kw(self.peek(), "and") {
            self.pos += 1;
            v.push(self.unary()?);
        }
        Ok(Expr::and(v))
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("condition nested too deeply".into());
        }
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Tok::Word(w)) if w == "not" => {
                self.pos += 1;
                Ok(Expr::not(self.unary()?))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or()?;
                if self.next() != Some(Tok::RParen) {
                    self.pos -= 1;
                    return Err(self.expected("`)`"));
                }
                Ok(e)
            }
            Some(Tok::Word(w)) if w == "true" => {
                self.pos += 1;
                Ok(Expr::Const(true))
            }
            Some(Tok::Word(w)) if w == "false" => {
                self.pos += 1;
                Ok(Expr::Const(false))
            }
            Some(Tok::Word(w)) => {
                let w = w.clone();
                let col = self.col();
                self.pos += 1;
                if let Some(f) = Field::by_name(&w) {
                    return self.pred(f, &w);
                }
                if let Some(m) = self.env.macro_expr(&w) {
                    return m.map_err(|e| format!("in macro `{w}`: {e}"));
                }
                Err(match Field::suggest(&w) {
                    Some(s) => format!(
                        "unknown field or macro `{w}` at column {col} (did you mean `{s}`?)"
                    ),
                    None => format!("unknown field or macro `{w}` at column {col}"),
                })
            }
            _ => Err(self.expected("a field, macro, `not` or `(`")),
        }
    }

    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Quoted(s)) | Some(Tok::Word(s)) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(self.expected("a value"))
            }
        }
    }

    /// `(a, b, list_name)` with list names expanded; or a single value.
    fn values(&mut self, allow_single: bool) -> Result<Vec<String>, String> {
        if self.peek() != Some(&Tok::LParen) {
            if allow_single {
                return Ok(vec![self.value()?]);
            }
            return Err(self.expected("`(`"));
        }
        self.pos += 1;
        let mut out = Vec::new();
        if self.peek() == Some(&Tok::RParen) {
            self.pos += 1;
            return Ok(out);
        }
        loop {
            match self.next() {
                Some(Tok::Quoted(s)) => out.push(s),
                Some(Tok::Word(w)) => match self.env.list(&w) {
                    Some(items) => out.extend(items),
                    None if looks_like_list_name(&w) => {
                        self.pos -= 1;
                        let col = self.col();
                        let hint = match self.env.suggest_list(&w) {
                            Some(s) => format!(" (did you mean `{s}`?)"),
                            None => String::new(),
                        };
                        return Err(format!(
                            "unknown list `{w}` at column {col}{hint}; a literal value of that shape is written quoted (\"{w}\")"
                        ));
                    }
                    None => out.push(w),
                },
                _ => {
                    self.pos -= 1;
                    return Err(self.expected("a value or list name"));
                }
            }
            match self.next() {
                Some(Tok::Comma) => {}
                Some(Tok::RParen) => break,
                _ => {
                    self.pos -= 1;
                    return Err(self.expected("`,` or `)`"));
                }
            }
        }
        Ok(out)
    }

    fn pred(&mut self, f: Field, name: &str) -> Result<Expr, String> {
        let col = self.col();
        let op = match self.next() {
            Some(Tok::Op(o)) => o.to_string(),
            Some(Tok::Word(w)) => w,
            _ => {
                self.pos -= 1;
                return Err(self.expected(&format!("an operator after `{name}`")));
            }
        };
        let ty = f.ty();
        let bad = |what: &str| {
            Err(format!(
                "field `{name}` is {} and cannot be compared with `{what}` (column {col})",
                ty_name(ty)
            ))
        };
        match op.as_str() {
            "exists" => Ok(pred(f, Test::Exists)),
            "=" | "!=" | "ieq" => {
                let v = self.value()?;
                let e = if op == "ieq" {
                    if ty != Type::Str {
                        return bad(&op);
                    }
                    str_test(f, StrOp::Eq, &v, true)?
                } else {
                    eq_test(f, &v).map_err(|e| format!("{e} (column {col})"))?
                };
                Ok(if op == "!=" { Expr::not(e) } else { e })
            }
            "<" | "<=" | ">" | ">=" => {
                if ty != Type::Int {
                    return bad(&op);
                }
                let v = self.value()?;
                let n = parse_int(&v)
                    .ok_or_else(|| format!("`{v}` is not an integer (column {col})"))?;
                let c = match op.as_str() {
                    "<" => Cmp::Lt,
                    "<=" => Cmp::Le,
                    ">" => Cmp::Gt,
                    _ => Cmp::Ge,
                };
                Ok(pred(f, Test::Int(c, n)))
            }
            "in" | "iin" => {
                let vs = self.values(false)?;
                let mut alts = Vec::with_capacity(vs.len());
                for v in &vs {
                    alts.push(if op == "iin" {
                        if ty != Type::Str {
                            return bad(&op);
                        }
                        str_test(f, StrOp::Eq, v, true)?
                    } else {
                        eq_test(f, v).map_err(|e| format!("{e} (column {col})"))?
                    });
                }
                Ok(Expr::or(alts))
            }
            "vin" => {
                // A name as distributions install it: an item, or an item
                // followed by a version (`php-fpm8.2`, `python3.11`,
                // `redis-server-7`, `tomcat9`).
                if ty != Type::Str {
                    return bad(&op);
                }
                let vs = self.values(false)?;
                let mut alts = Vec::with_capacity(vs.len() + 1);
                let mut re = String::from("^(?:");
                for (i, v) in vs.iter().enumerate() {
                    alts.push(str_test(f, StrOp::Eq, v, false)?);
                    if i > 0 {
                        re.push('|');
                    }
                    crate::compile::push_literal(&mut re, v.as_bytes());
                }
                re.push_str(")[-_.]?[0-9][0-9.]*$");
                if !vs.is_empty() {
                    alts.push(str_test(f, StrOp::Regex, &re, false)?);
                }
                Ok(Expr::or(alts))
            }
            "cidr" => {
                if ty != Type::Ip {
                    return bad(&op);
                }
                let vs = self.values(true)?;
                let mut alts = Vec::new();
                for v in vs {
                    let (ip, len) = parse_cidr(&v)
                        .ok_or_else(|| format!("`{v}` is not a network (column {col})"))?;
                    alts.push(pred(f, Test::Cidr(ip, len)));
                }
                Ok(Expr::or(alts))
            }
            _ => {
                let (sop, ci) = match op.as_str() {
                    "startswith" => (StrOp::Prefix, false),
                    "endswith" => (StrOp::Suffix, false),
                    "contains" => (StrOp::Contains, false),
                    "glob" => (StrOp::Glob, false),
                    "regex" => (StrOp::Regex, false),
                    "istartswith" => (StrOp::Prefix, true),
                    "iendswith" => (StrOp::Suffix, true),
                    "icontains" => (StrOp::Contains, true),
                    "iglob" => (StrOp::Glob, true),
                    _ => {
                        return Err(format!(
                            "unknown operator `{op}` after `{name}` (column {col}); operators: = != < <= > >= ieq in iin vin exists startswith endswith contains glob regex cidr istartswith iendswith icontains iglob"
                        ));
                    }
                };
                if !matches!(ty, Type::Str | Type::Ip) {
                    return bad(&op);
                }
                let vs = self.values(true)?;
                let mut alts = Vec::new();
                for v in vs {
                    alts.push(str_test(f, sop, &v, ci).map_err(|e| format!("{e} (column {col})"))?);
                }
                Ok(Expr::or(alts))
            }
        }
    }
}

fn ty_name(t: Type) -> &'static str {
    match t {
        Type::Str => "a string",
        Type::Int => "a number",
        Type::Bool => "a boolean",
        Type::Ip => "an IP address",
    }
}

fn pred(field: Field, test: Test) -> Expr {
    Expr::Pred(Pred { field, test })
}

/// Parses a decimal or 0x-hex integer.
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok();
    }
    s.parse().ok()
}

/// `field = value` for the field's type.
pub fn eq_test(f: Field, v: &str) -> Result<Expr, String> {
    match f.ty() {
        Type::Str => Ok(pred(
            f,
            Test::Str {
                op: StrOp::Eq,
                pat: v.as_bytes().to_vec(),
                ci: false,
            },
        )),
        Type::Int => parse_int(v)
            .map(|n| pred(f, Test::Int(Cmp::Eq, n)))
            .ok_or_else(|| format!("field `{}` is a number; `{v}` is not", f.name())),
        Type::Bool => match v {
            "true" | "1" => Ok(pred(f, Test::Bool(true))),
            "false" | "0" => Ok(pred(f, Test::Bool(false))),
            _ => Err(format!(
                "field `{}` is a boolean; `{v}` is not true or false",
                f.name()
            )),
        },
        Type::Ip => match parse_cidr(v) {
            Some((ip, len)) if !v.contains('/') => Ok(pred(f, Test::Cidr(ip, len))),
            _ => Err(format!(
                "field `{}` is an IP address; `{v}` is not one (use `cidr` for networks)",
                f.name()
            )),
        },
    }
}

/// A string test, validating regexes.
pub fn str_test(f: Field, op: StrOp, v: &str, ci: bool) -> Result<Expr, String> {
    if op == StrOp::Regex {
        crate::compile::check_regex(v).map_err(|e| format!("bad regex `{v}`: {e}"))?;
    }
    Ok(pred(
        f,
        Test::Str {
            op,
            pat: v.as_bytes().to_vec(),
            ci,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct E(HashMap<String, Vec<String>>, HashMap<String, String>);
    impl Env for E {
        fn list(&self, n: &str) -> Option<Vec<String>> {
            self.0.get(n).cloned()
        }
        fn macro_expr(&mut self, n: &str) -> Option<Result<Expr, String>> {
            let src = self.1.get(n)?.clone();
            Some(parse(&src, &mut NoEnv))
        }
    }

    fn p(s: &str) -> Result<Expr, String> {
        let mut lists = HashMap::new();
        lists.insert(
            "shells".to_string(),
            vec!["bash".to_string(), "sh".to_string()],
        );
        let mut macros = HashMap::new();
        macros.insert("spawned".to_string(), "event.action = exec".to_string());
        parse(s, &mut E(lists, macros))
    }

    fn s(f: Field, op: StrOp, v: &str, ci: bool) -> Expr {
        pred(
            f,
            Test::Str {
                op,
                pat: v.as_bytes().to_vec(),
                ci,
            },
        )
    }

    #[test]
    fn undefined_list_names_are_errors_not_literals() {
        let e = p("process.name in (shell, zsh)").unwrap();
        assert_eq!(
            e,
            Expr::or(vec![
                s(Field::ProcessName, StrOp::Eq, "shell", false),
                s(Field::ProcessName, StrOp::Eq, "zsh", false),
            ])
        );
        let err = p("process.name in (zsh, my_shells)").unwrap_err();
        assert!(
            err.starts_with("unknown list `my_shells` at column 23"),
            "{err}"
        );
        // In a string operator's list too.
        let err = p("process.name startswith (tmp_dirs)").unwrap_err();
        assert!(err.contains("unknown list `tmp_dirs`"), "{err}");
        // Quoted, or in capitals, it is a literal.
        assert!(p("process.name in (\"rcu_sched\", 'oom_reaper')").is_ok());
        assert!(p("vigil.ptrace.request in (PTRACE_ATTACH, PTRACE_SEIZE)").is_ok());
        assert!(looks_like_list_name("shell_binaries"));
        assert!(looks_like_list_name("hunt_v2_tools"));
        for w in [
            "bash",
            "php-fpm",
            "PTRACE_ATTACH",
            "_x",
            "9_a",
            "a.b_c",
            "/tmp/x_y",
        ] {
            assert!(!looks_like_list_name(w), "{w}");
        }
    }

    #[test]
    fn precedence_and_lists() {
        let e = p("spawned and process.name in (shells, zsh) or not user.id = 0").unwrap();
        let want = Expr::or(vec![
            Expr::and(vec![
                s(Field::EventAction, StrOp::Eq, "exec", false),
                Expr::or(vec![
                    s(Field::ProcessName, StrOp::Eq, "bash", false),
                    s(Field::ProcessName, StrOp::Eq, "sh", false),
                    s(Field::ProcessName, StrOp::Eq, "zsh", false),
                ]),
            ]),
            Expr::not(pred(Field::UserId, Test::Int(Cmp::Eq, 0))),
        ]);
        assert_eq!(e, want);
    }

    #[test]
    fn operators_and_quotes() {
        assert_eq!(
            p(r#"file.path startswith "/etc/\"x\"""#).unwrap(),
            s(Field::FilePath, StrOp::Prefix, "/etc/\"x\"", false)
        );
        assert_eq!(
            p("process.executable iglob '/TMP/*'").unwrap(),
            s(Field::ProcessExecutable, StrOp::Glob, "/TMP/*", true)
        );
        assert_eq!(
            p("destination.port >= 1024").unwrap(),
            pred(Field::DestinationPort, Test::Int(Cmp::Ge, 1024))
        );
        assert!(
            matches!(p("destination.ip cidr (10.0.0.0/8, 192.168.0.0/16)").unwrap(), Expr::Or(v) if v.len() == 2)
        );
        assert_eq!(
            p("vigil.exec.memfd = true").unwrap(),
            pred(Field::ExecMemfd, Test::Bool(true))
        );
        assert_eq!(
            p("container.id exists").unwrap(),
            pred(Field::ContainerId, Test::Exists)
        );
        assert!(matches!(p("process.name != bash").unwrap(), Expr::Not(_)));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = p("process.nmae = bash").unwrap_err();
        assert!(e.contains("did you mean `process.name`"), "{e}");
        let e = p("destination.port = http").unwrap_err();
        assert!(e.contains("is a number"), "{e}");
        let e = p("process.name < 3").unwrap_err();
        assert!(e.contains("cannot be compared"), "{e}");
        let e = p("(process.name = a").unwrap_err();
        assert!(e.contains("expected `)`"), "{e}");
        let e = p("process.name = 'a").unwrap_err();
        assert!(e.contains("unterminated"), "{e}");
        let e = p("process.name frob x").unwrap_err();
        assert!(e.contains("unknown operator"), "{e}");
        let e = p("process.command_line regex '(['").unwrap_err();
        assert!(e.contains("bad regex"), "{e}");
        assert!(p("").is_err());
        assert!(p("process.name = a b").is_err());
        let deep = "(".repeat(500) + "true" + &")".repeat(500);
        assert!(p(&deep).is_err());
    }
}
