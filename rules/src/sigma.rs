//! Native Sigma: converts a Sigma rule (the SigmaHQ `rules/linux` layout) to
//! vigil's condition tree, or says precisely why it cannot.
//!
//! Field names of Sysmon for Linux and of auditd map to vigil's ECS fields
//! through [`FIELD_MAP`] (documented in `rules/README.md`). String matching
//! is case-insensitive, as the Sigma specification says, except for `re`
//! (unless `|i`) and `|cased`. `*` and `?` are wildcards; `\*`, `\?` and
//! `\\` escape them; any other backslash is literal.

use crate::ast::{Cmp, Expr, Pred, StrOp, Test, parse_cidr};
use crate::schema::{Field, Type, cat};
use crate::yaml::{Kind, Node};
use crate::{LoadError, Rule, Ruleset, Severity, Skipped, Template};

/// Sigma field -> vigil field.
pub const FIELD_MAP: &[(&str, Field)] = &[
    ("Image", Field::ProcessExecutable),
    ("CommandLine", Field::ProcessCommandLine),
    ("ParentImage", Field::ProcessParentExecutable),
    ("ParentCommandLine", Field::ProcessParentCommandLine),
    ("User", Field::UserName),
    ("CurrentDirectory", Field::ProcessWorkingDirectory),
    ("ProcessId", Field::ProcessPid),
    ("ParentProcessId", Field::ProcessParentPid),
    ("TargetFilename", Field::FilePath),
    ("DestinationIp", Field::DestinationIp),
    ("DestinationPort", Field::DestinationPort),
    ("DestinationHostname", Field::DestinationDomain),
    ("SourceIp", Field::SourceIp),
    ("SourcePort", Field::SourcePort),
    // Sysmon for Linux: the audit login uid of the process
    ("LogonId", Field::Auid),
    ("Protocol", Field::NetworkTransport),
    // auditd
    ("exe", Field::ProcessExecutable),
    ("comm", Field::ProcessName),
    ("cwd", Field::ProcessWorkingDirectory),
    ("name", Field::FilePath),
    ("uid", Field::UserId),
    ("euid", Field::UserEffectiveId),
    ("auid", Field::Auid),
    ("pid", Field::ProcessPid),
    ("ppid", Field::ProcessParentPid),
    ("a0", Field::Arg0),
    ("a1", Field::Arg1),
    ("a2", Field::Arg2),
    ("a3", Field::Arg3),
    ("a4", Field::Arg4),
    ("a5", Field::Arg5),
    ("a6", Field::Arg6),
    ("a7", Field::Arg7),
    ("a8", Field::Arg8),
    ("a9", Field::Arg9),
];

/// auditd syscall names -> vigil actions.
const SYSCALL_ACTIONS: &[(&str, &str)] = &[
    ("execve", "exec"),
    ("execveat", "exec"),
    ("open", "open"),
    ("openat", "open"),
    ("openat2", "open"),
    ("creat", "open"),
    ("connect", "connect"),
    ("accept", "accept"),
    ("accept4", "accept"),
    ("listen", "listen"),
    ("ptrace", "ptrace"),
    ("init_module", "module"),
    ("finit_module", "module"),
    ("delete_module", "module"),
    ("bpf", "bpf"),
    ("memfd_create", "memfd-create"),
    ("mount", "mount"),
    ("umount2", "umount"),
    ("unshare", "unshare"),
    ("setns", "setns"),
    ("setuid", "setid"),
    ("setgid", "setid"),
    ("setreuid", "setid"),
    ("setregid", "setid"),
    ("setresuid", "setid"),
    ("setresgid", "setid"),
    ("setfsuid", "setid"),
    ("setfsgid", "setid"),
    ("capset", "capset"),
    ("rename", "rename"),
    ("renameat", "rename"),
    ("renameat2", "rename"),
    ("unlink", "unlink"),
    ("unlinkat", "unlink"),
    ("rmdir", "rmdir"),
    ("truncate", "truncate"),
    ("ftruncate", "truncate"),
    ("chmod", "chmod"),
    ("fchmod", "chmod"),
    ("fchmodat", "chmod"),
    ("chown", "chown"),
    ("fchown", "chown"),
    ("lchown", "chown"),
    ("fchownat", "chown"),
    ("link", "link"),
    ("linkat", "link"),
    ("symlink", "symlink"),
    ("symlinkat", "symlink"),
    ("mkdir", "mkdir"),
    ("mkdirat", "mkdir"),
    ("mknod", "mknod"),
    ("mknodat", "mknod"),
    ("personality", "personality"),
    ("sysinfo", "sysinfo"),
    ("syslog", "syslog"),
];

/// Result of converting one Sigma document.
pub enum Outcome {
    /// Loaded, with its logsource category (or `auditd`).
    Rule(Box<Rule>, String),
    /// Not expressible here.
    Skipped(Skipped),
}

struct Skip(&'static str, String);

fn skip<T>(class: &'static str, reason: impl Into<String>) -> Result<T, Skip> {
    Err(Skip(class, reason.into()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    ProcessCreation,
    NetworkConnection,
    FileEvent,
    Auditd,
}

/// Converts one Sigma document.
pub fn convert(file: &str, d: &Node) -> Result<Outcome, LoadError> {
    let title = d
        .get("title")
        .and_then(Node::as_str)
        .unwrap_or("")
        .to_string();
    let id = d
        .get("id")
        .and_then(Node::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| title.clone());
    let lerr = |line: usize, m: String| LoadError {
        file: file.to_string(),
        line,
        message: format!(
            "Sigma rule `{}`: {m}",
            if title.is_empty() { &id } else { &title }
        ),
    };
    if title.is_empty() {
        return Err(lerr(d.line, "field `title` is missing".into()));
    }
    match inner(d) {
        Ok((expr, src, cats)) => {
            let level = d.get("level").and_then(Node::as_str).unwrap_or("medium");
            let severity = Severity::parse(level).ok_or_else(|| {
                lerr(
                    d.get("level").map_or(d.line, |n| n.line),
                    format!("field `level`: `{level}` is not a Sigma level"),
                )
            })?;
            let tags = d
                .get("tags")
                .and_then(Node::as_seq)
                .map(|t| {
                    t.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let category = match src {
                Source::ProcessCreation => "process_creation",
                Source::NetworkConnection => "network_connection",
                Source::FileEvent => "file_event",
                Source::Auditd => "auditd",
            };
            let key_field = match src {
                Source::FileEvent => Field::FilePath,
                Source::NetworkConnection => Field::DestinationIp,
                _ => Field::ProcessCommandLine,
            };
            let output = Template::sigma(&title, key_field);
            Ok(Outcome::Rule(
                Box::new(Rule {
                    description: description(d),
                    tags,
                    categories: cats,
                    condition: expr,
                    output: Some(output),
                    ..Rule::generated(Ruleset::Sigma, file, d.line, id, title, severity)
                }),
                category.to_string(),
            ))
        }
        Err(Skip(class, reason)) => Ok(Outcome::Skipped(Skipped {
            file: file.to_string(),
            rule: title,
            class: class.to_string(),
            reason,
        })),
    }
}

fn inner(d: &Node) -> Result<(Expr, Source, u8), Skip> {
    let ls = match d.get("logsource") {
        Some(l) if l.as_map().is_some() => l,
        _ => return skip("logsource", "no logsource"),
    };
    let product = ls.get("product").and_then(Node::as_str).unwrap_or("");
    let category = ls.get("category").and_then(Node::as_str).unwrap_or("");
    let service = ls.get("service").and_then(Node::as_str).unwrap_or("");
    if product != "linux" {
        return skip(
            "logsource",
            format!("product `{product}`: vigil watches Linux hosts"),
        );
    }
    let (src, base) = match (category, service) {
        ("process_creation", "") => (
            Source::ProcessCreation,
            pred(Field::EventAction, StrOp::Eq, b"exec", false),
        ),
        ("network_connection", "") => (
            Source::NetworkConnection,
            Expr::or(vec![
                pred(Field::EventAction, StrOp::Eq, b"connect", false),
                pred(Field::EventAction, StrOp::Eq, b"accept", false),
                // Sysmon's event 3 includes UDP
                pred(Field::EventAction, StrOp::Eq, b"udp-send", false),
            ]),
        ),
        // Sysmon's FileCreate: a file created or overwritten.
        ("file_event", "") => (
            Source::FileEvent,
            Expr::and(vec![
                pred(Field::EventAction, StrOp::Eq, b"open", false),
                Expr::Pred(Pred {
                    field: Field::OpenWrite,
                    test: Test::Bool(true),
                }),
                pred(Field::EventOutcome, StrOp::Eq, b"success", false),
            ]),
        ),
        ("file_delete", "") => (
            Source::FileEvent,
            Expr::and(vec![
                Expr::or(vec![
                    pred(Field::EventAction, StrOp::Eq, b"unlink", false),
                    pred(Field::EventAction, StrOp::Eq, b"rmdir", false),
                ]),
                pred(Field::EventOutcome, StrOp::Eq, b"success", false),
            ]),
        ),
        ("", "auditd") => (Source::Auditd, Expr::Const(true)),
        ("", s) if !s.is_empty() => {
            return skip(
                "logsource",
                format!("service `{s}` is a log file; vigil reads kernel events, not logs"),
            );
        }
        ("", _) => {
            return skip(
                "logsource",
                "no category or service: a keyword search over any Linux log text, which vigil does not read",
            );
        }
        (c, _) => {
            return skip("logsource", format!("category `{c}` has no vigil sensor"));
        }
    };
    let det = d
        .get("detection")
        .ok_or(Skip("syntax", "no detection".into()))?;
    let entries = det
        .as_map()
        .ok_or(Skip("syntax", "detection is not a mapping".into()))?;
    let mut idents: Vec<(&str, &Node)> = Vec::new();
    let mut conds: Vec<&str> = Vec::new();
    for (k, v) in entries {
        let k = k.as_str().unwrap_or("");
        if k == "condition" {
            match &v.kind {
                Kind::Scalar(s, _) => conds.push(s),
                Kind::Seq(items) => conds.extend(items.iter().filter_map(Node::as_str)),
                _ => return skip("syntax", "condition is not a string"),
            }
        } else if k == "timeframe" {
            return skip("condition", "timeframe (correlation) is not supported");
        } else {
            idents.push((k, v));
        }
    }
    if conds.is_empty() {
        return skip("syntax", "no condition");
    }
    let mut alts = Vec::new();
    for c in conds {
        alts.push(condition(c, &idents, src)?);
    }
    let mut expr = Expr::and(vec![base, Expr::or(alts)]);
    // An auditd rule that names no record type tests EXECVE arguments
    // (a0, a1, ...) or the program (exe, comm): the exec answers it.
    if src == Source::Auditd && crate::required_values(&expr, Field::EventAction).is_none() {
        expr = Expr::and(vec![
            pred(Field::EventAction, StrOp::Eq, b"exec", false),
            expr,
        ]);
    }
    let cats = match src {
        Source::ProcessCreation => cat::PROCESS,
        Source::NetworkConnection => cat::NETWORK,
        Source::FileEvent => cat::FILE,
        Source::Auditd => crate::infer_categories(&expr),
    };
    let mut ps = Vec::new();
    expr.preds(&mut ps);
    if let Some(p) = ps.iter().find(|p| !p.field.available()) {
        return skip(
            "field",
            format!("field `{}` is not produced by this build", p.field.name()),
        );
    }
    if cats == 0 {
        return skip("logsource", "no event category can satisfy this rule");
    }
    Ok((expr, src, cats))
}

fn pred(field: Field, op: StrOp, pat: &[u8], ci: bool) -> Expr {
    Expr::Pred(Pred {
        field,
        test: Test::Str {
            op,
            pat: pat.to_vec(),
            ci,
        },
    })
}

// ---- condition -------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    L,
    R,
    Word(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, Skip> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' | ')' | ' ' | '\t' | '\n' | '\r' => {
                if !cur.is_empty() {
                    out.push(Tok::Word(std::mem::take(&mut cur)));
                }
                match c {
                    '(' => out.push(Tok::L),
                    ')' => out.push(Tok::R),
                    _ => {}
                }
            }
            '|' => {
                return skip(
                    "condition",
                    "aggregation (`| count()` ...) is not supported",
                );
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(Tok::Word(cur));
    }
    Ok(out)
}

struct CondP<'a> {
    t: Vec<Tok>,
    i: usize,
    idents: &'a [(&'a str, &'a Node)],
    src: Source,
    depth: usize,
}

fn condition(s: &str, idents: &[(&str, &Node)], src: Source) -> Result<Expr, Skip> {
    let t = lex(s)?;
    let mut p = CondP {
        t,
        i: 0,
        idents,
        src,
        depth: 0,
    };
    let e = p.or()?;
    if p.i != p.t.len() {
        return skip("syntax", format!("condition `{s}`: unexpected token"));
    }
    Ok(e)
}

impl CondP<'_> {
    fn word(&self) -> Option<&str> {
        match self.t.get(self.i) {
            Some(Tok::Word(w)) => Some(w),
            _ => None,
        }
    }
    fn or(&mut self) -> Result<Expr, Skip> {
        let mut v = vec![self.and()?];
        while self.word() == Some("or") {
            self.i += 1;
            v.push(self.and()?);
        }
        Ok(Expr::or(v))
    }
    fn and(&mut self) -> Result<Expr, Skip> {
        let mut v = vec![self.not()?];
        while self.word() == Some("and") {
            self.i += 1;
            v.push(self.not()?);
        }
        Ok(Expr::and(v))
    }
    fn not(&mut self) -> Result<Expr, Skip> {
        self.depth += 1;
        if self.depth > 100 {
            return skip("syntax", "condition nested too deeply");
        }
        let r = if self.word() == Some("not") {
            self.i += 1;
            self.not().map(Expr::not)
        } else {
            self.atom()
        };
        self.depth -= 1;
        r
    }
    fn atom(&mut self) -> Result<Expr, Skip> {
        match self.t.get(self.i).cloned() {
            Some(Tok::L) => {
                self.i += 1;
                let e = self.or()?;
                if self.t.get(self.i) != Some(&Tok::R) {
                    return skip("syntax", "unbalanced parentheses in condition");
                }
                self.i += 1;
                Ok(e)
            }
            Some(Tok::Word(w)) => {
                self.i += 1;
                let quant = match w.as_str() {
                    "1" | "any" => Some(false),
                    "all" => Some(true),
                    n if n.parse::<u32>().is_ok() => {
                        return skip(
                            "condition",
                            format!("`{n} of` (other than 1) is not supported"),
                        );
                    }
                    _ => None,
                };
                if let Some(all) = quant {
                    if self.word() != Some("of") {
                        return skip("syntax", format!("`{w}` must be followed by `of`"));
                    }
                    self.i += 1;
                    let pat = self
                        .word()
                        .ok_or(Skip("syntax", "`of` needs a name pattern".into()))?
                        .to_string();
                    self.i += 1;
                    let mut items = Vec::new();
                    for (name, node) in self.idents {
                        let m = if pat == "them" {
                            !name.starts_with('_')
                        } else {
                            glob_match(&pat, name)
                        };
                        if m {
                            items.push(ident(name, node, self.src)?);
                        }
                    }
                    if items.is_empty() {
                        return skip("syntax", format!("`{pat}` names no detection"));
                    }
                    return Ok(if all {
                        Expr::and(items)
                    } else {
                        Expr::or(items)
                    });
                }
                match self.idents.iter().find(|(n, _)| *n == w) {
                    Some((n, node)) => ident(n, node, self.src),
                    None => skip(
                        "syntax",
                        format!("condition names `{w}`, which the detection does not define"),
                    ),
                }
            }
            _ => skip("syntax", "condition ends early"),
        }
    }
}

fn glob_match(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((pre, rest)) => {
            if !s.starts_with(pre) {
                return false;
            }
            let s = &s[pre.len()..];
            if rest.is_empty() {
                return true;
            }
            (0..=s.len()).any(|i| s.is_char_boundary(i) && glob_match(rest, &s[i..]))
        }
    }
}

// ---- detection items -------------------------------------------------------

fn ident(name: &str, n: &Node, src: Source) -> Result<Expr, Skip> {
    match &n.kind {
        Kind::Map(entries) => map_item(entries, src),
        Kind::Seq(items) => {
            if items.iter().all(|i| i.as_map().is_some()) {
                let mut alts = Vec::new();
                for i in items {
                    alts.push(map_item(i.as_map().unwrap_or(&[]), src)?);
                }
                Ok(Expr::or(alts))
            } else {
                keywords(name, items, &[], src)
            }
        }
        Kind::Scalar(..) => keywords(name, std::slice::from_ref(n), &[], src),
    }
}

/// Field-less keyword search. Only meaningful where vigil has the text a log
/// line would hold: the command line of an exec (auditd EXECVE records,
/// process_creation).
fn keywords(name: &str, items: &[Node], mods: &[&str], src: Source) -> Result<Expr, Skip> {
    if !matches!(src, Source::Auditd | Source::ProcessCreation) {
        return skip(
            "keywords",
            format!("`{name}`: keyword search without a field"),
        );
    }
    let all = mods.contains(&"all");
    let mut alts = Vec::new();
    for it in items {
        let v = scalar(it)?.unwrap_or_default();
        let (op, pat) = sigma_string(&v, StrOp::Contains);
        alts.push(Expr::Pred(Pred {
            field: Field::ProcessCommandLine,
            test: Test::Str { op, pat, ci: true },
        }));
    }
    Ok(if all { Expr::and(alts) } else { Expr::or(alts) })
}

fn scalar(n: &Node) -> Result<Option<String>, Skip> {
    match &n.kind {
        Kind::Scalar(..) if n.is_null() => Ok(None),
        Kind::Scalar(s, _) => Ok(Some(s.clone())),
        _ => skip("syntax", "a value must be a scalar"),
    }
}

/// Sysmon's `Hashes` (`SHA256=<hex>,MD5=<hex>,...`, usually with
/// `contains`) and a bare `sha256`: the SHA-256 parts become equality tests
/// on `process.hash.sha256` (case-insensitive); MD5, SHA1 and IMPHASH are
/// not computed, so a value naming only those is skipped.
fn hashes_item(fname: &str, mods: &[&str], values: &[&Node]) -> Result<Expr, Skip> {
    if let Some(m) = mods
        .iter()
        .find(|m| !matches!(**m, "contains" | "startswith" | "endswith"))
    {
        return skip(
            "modifier",
            format!("`{fname}|{m}`: hashes are matched whole"),
        );
    }
    let mut alts = Vec::new();
    for v in values {
        let Some(text) = scalar(v)? else {
            return skip("value", format!("{fname}: null"));
        };
        for part in text.split(',') {
            let part = part.trim();
            let hex = match part.split_once('=') {
                Some((alg, h)) if alg.eq_ignore_ascii_case("sha256") => h,
                Some(_) => continue,
                None if fname == "sha256" => part,
                None => continue,
            };
            let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return skip("value", format!("{fname}: `{hex}` is not a SHA-256"));
            }
            alts.push(pred(
                Field::ProcessHashSha256,
                StrOp::Eq,
                hex.to_ascii_lowercase().as_bytes(),
                true,
            ));
        }
    }
    if alts.is_empty() {
        return skip(
            "value",
            format!("{fname}: only SHA-256 hashes are computed (no SHA256= value)"),
        );
    }
    Ok(Expr::or(alts))
}

fn map_item(entries: &[(Node, Node)], src: Source) -> Result<Expr, Skip> {
    let with_syscall = entries.iter().any(|(k, _)| {
        matches!(
            k.as_str().and_then(|k| k.split('|').next()),
            Some("SYSCALL" | "syscall")
        )
    });
    let mut conj = Vec::new();
    for (k, v) in entries {
        let key = k.as_str().unwrap_or("");
        let mut parts = key.split('|');
        let fname = parts.next().unwrap_or("");
        let mods: Vec<&str> = parts.collect();
        let values: Vec<&Node> = match &v.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        if fname.is_empty() {
            let items: Vec<Node> = values.into_iter().cloned().collect();
            conj.push(keywords(key, &items, &mods, src)?);
            continue;
        }
        conj.push(field_item(fname, &mods, &values, src, with_syscall)?);
    }
    Ok(Expr::and(conj))
}

fn field_item(
    fname: &str,
    mods: &[&str],
    values: &[&Node],
    src: Source,
    with_syscall: bool,
) -> Result<Expr, Skip> {
    if src == Source::Auditd && (fname == "type" || fname == "SYSCALL" || fname == "syscall") {
        return audit_type(fname, values, with_syscall);
    }
    if src == Source::Auditd && fname == "key" {
        return skip(
            "field",
            "auditd `key` names a rule of the host's audit configuration (`-k`), which kernel events do not carry",
        );
    }
    if src == Source::Auditd && fname == "nametype" {
        // PATH record of a name the syscall created: an open that asks to
        // create the file.
        let mut alts = Vec::new();
        for v in values {
            match scalar(v)?.map(|t| t.to_ascii_uppercase()).as_deref() {
                Some("CREATE") => alts.push(Expr::and(vec![
                    pred(Field::OpenFlags, StrOp::Contains, b"O_CREAT", false),
                    pred(Field::EventOutcome, StrOp::Eq, b"success", false),
                ])),
                other => {
                    return skip(
                        "field",
                        format!(
                            "nametype `{}`: only CREATE has a vigil equivalent",
                            other.unwrap_or("null")
                        ),
                    );
                }
            }
        }
        return Ok(Expr::or(alts));
    }
    if src == Source::Auditd && with_syscall && matches!(fname, "a0" | "a1" | "a2" | "a3") {
        return syscall_arg(fname, mods, values);
    }
    if fname == "Initiated" {
        let mut alts = Vec::new();
        for v in values {
            let dir: &[u8] = match scalar(v)?.as_deref() {
                Some("true") => b"egress",
                Some("false") => b"ingress",
                other => return skip("value", format!("Initiated: `{}`", other.unwrap_or("null"))),
            };
            alts.push(pred(Field::NetworkDirection, StrOp::Eq, dir, false));
        }
        return Ok(Expr::or(alts));
    }
    if fname == "Hashes" || fname == "sha256" {
        return hashes_item(fname, mods, values);
    }
    let field = match FIELD_MAP.iter().find(|(n, _)| *n == fname) {
        Some((_, f)) => *f,
        None => return skip("field", format!("field `{fname}` has no vigil equivalent")),
    };
    let mut all = false;
    let mut op = StrOp::Eq;
    let mut cased = false;
    let mut re_flags = String::new();
    let mut b64: Option<bool> = None;
    let mut windash = false;
    let mut cidr = false;
    let mut cmp: Option<Cmp> = None;
    let mut exists = false;
    let mut in_re = false;
    for m in mods {
        match *m {
            "contains" => op = StrOp::Contains,
            "startswith" => op = StrOp::Prefix,
            "endswith" => op = StrOp::Suffix,
            "all" => all = true,
            "re" => {
                op = StrOp::Regex;
                in_re = true;
            }
            "i" | "m" | "s" if in_re => re_flags.push_str(m),
            "cased" => cased = true,
            "base64" => b64 = Some(false),
            "base64offset" => b64 = Some(true),
            "windash" => windash = true,
            "cidr" => cidr = true,
            "gt" => cmp = Some(Cmp::Gt),
            "gte" => cmp = Some(Cmp::Ge),
            "lt" => cmp = Some(Cmp::Lt),
            "lte" => cmp = Some(Cmp::Le),
            "exists" => exists = true,
            "wide" | "utf16" | "utf16le" | "utf16be" => {
                return skip(
                    "modifier",
                    format!("`{m}`: UTF-16 text does not occur in Linux events"),
                );
            }
            other => return skip("modifier", format!("modifier `{other}` is not supported")),
        }
    }
    let mut alts = Vec::new();
    for v in values {
        let Some(text) = scalar(v)? else {
            // `Field: null`: the field is absent.
            alts.push(Expr::not(Expr::Pred(Pred {
                field,
                test: Test::Exists,
            })));
            continue;
        };
        if exists {
            let p = Expr::Pred(Pred {
                field,
                test: Test::Exists,
            });
            alts.push(if text == "true" { p } else { Expr::not(p) });
            continue;
        }
        if cidr {
            if field.ty() != Type::Ip {
                return skip(
                    "modifier",
                    format!("cidr on `{fname}`, which is not an address"),
                );
            }
            let (ip, len) =
                parse_cidr(&text).ok_or(Skip("value", format!("`{text}` is not a network")))?;
            alts.push(Expr::Pred(Pred {
                field,
                test: Test::Cidr(ip, len),
            }));
            continue;
        }
        if let Some(c) = cmp {
            let n: i64 = text
                .parse()
                .map_err(|_| Skip("value", format!("`{text}` is not a number")))?;
            if field.ty() != Type::Int {
                return skip(
                    "modifier",
                    format!("numeric comparison on `{fname}`, which is not a number"),
                );
            }
            alts.push(Expr::Pred(Pred {
                field,
                test: Test::Int(c, n),
            }));
            continue;
        }
        match field.ty() {
            Type::Int => {
                if op != StrOp::Eq || b64.is_some() {
                    return skip(
                        "modifier",
                        format!("string modifier on numeric field `{fname}`"),
                    );
                }
                let n: i64 = text
                    .parse()
                    .map_err(|_| Skip("value", format!("`{fname}`: `{text}` is not a number")))?;
                alts.push(Expr::Pred(Pred {
                    field,
                    test: Test::Int(Cmp::Eq, n),
                }));
                continue;
            }
            Type::Bool => return skip("field", format!("`{fname}` is boolean")),
            Type::Ip if op == StrOp::Eq && !text.contains(['*', '?']) => {
                // Exact address: compare values, so `::1` and `0:0::1` agree.
                if let Some((ip, len)) = parse_cidr(&text).filter(|_| !text.contains('/')) {
                    alts.push(Expr::Pred(Pred {
                        field,
                        test: Test::Cidr(ip, len),
                    }));
                    continue;
                }
            }
            _ => {}
        }
        if op == StrOp::Regex {
            let mut src = String::new();
            if !re_flags.is_empty() {
                src = format!("(?{re_flags})");
            }
            src.push_str(&text);
            crate::compile::check_regex(&src)
                .map_err(|e| Skip("regex", format!("regex `{text}`: {e}")))?;
            alts.push(Expr::Pred(Pred {
                field,
                test: Test::Str {
                    op: StrOp::Regex,
                    pat: src.into_bytes(),
                    ci: false,
                },
            }));
            continue;
        }
        let mut variants = vec![text.clone()];
        if windash {
            variants = windash_variants(&text);
        }
        if let Some(offset) = b64 {
            let mut out = Vec::new();
            for v in &variants {
                let raw = unescape(v);
                if offset {
                    out.extend(base64_offsets(&raw));
                } else {
                    out.push(base64(&raw));
                }
            }
            // Encoded text is matched exactly (base64 is case-sensitive).
            for e in out {
                alts.push(Expr::Pred(Pred {
                    field,
                    test: Test::Str {
                        op: if op == StrOp::Eq && offset {
                            StrOp::Contains
                        } else {
                            op
                        },
                        pat: e.into_bytes(),
                        ci: false,
                    },
                }));
            }
            continue;
        }
        for v in variants {
            let (sop, pat) = sigma_string(&v, op);
            alts.push(Expr::Pred(Pred {
                field,
                test: Test::Str {
                    op: sop,
                    pat,
                    ci: !cased,
                },
            }));
        }
    }
    Ok(if all { Expr::and(alts) } else { Expr::or(alts) })
}

/// An argument test of an auditd SYSCALL record (`a0`..`a3` beside a
/// `SYSCALL:` test): auditd writes syscall arguments in hexadecimal without
/// `0x`, so `a0: 40000` is 0x40000; each value becomes an equality on
/// `vigil.syscall.args.N`.
fn syscall_arg(fname: &str, mods: &[&str], values: &[&Node]) -> Result<Expr, Skip> {
    let field = match fname {
        "a0" => Field::SyscallArg0,
        "a1" => Field::SyscallArg1,
        "a2" => Field::SyscallArg2,
        _ => {
            return skip(
                "field",
                format!("auditd SYSCALL `{fname}`: vigil records the first three arguments"),
            );
        }
    };
    if let Some(m) = mods.first() {
        return skip(
            "modifier",
            format!("auditd SYSCALL `{fname}|{m}`: arguments are numbers, tested for equality"),
        );
    }
    let mut alts = Vec::new();
    for v in values {
        let t = scalar(v)?.unwrap_or_default();
        let hex = t.trim().trim_start_matches("0x");
        match u64::from_str_radix(hex, 16) {
            Ok(n) => alts.push(Expr::Pred(Pred {
                field,
                test: Test::Int(Cmp::Eq, n as i64),
            })),
            Err(_) => {
                return skip(
                    "value",
                    format!("auditd SYSCALL `{fname}`: `{t}` is not a hexadecimal argument"),
                );
            }
        }
    }
    Ok(Expr::or(alts))
}

/// auditd `type:` / `SYSCALL:` values -> the vigil action they imply.
fn audit_type(fname: &str, values: &[&Node], with_syscall: bool) -> Result<Expr, Skip> {
    let mut alts = Vec::new();
    for v in values {
        let t = scalar(v)?.unwrap_or_default();
        if fname == "type" {
            match t.to_ascii_uppercase().as_str() {
                "EXECVE" => alts.push(pred(Field::EventAction, StrOp::Eq, b"exec", false)),
                "PATH" => alts.push(pred(Field::EventAction, StrOp::Eq, b"open", false)),
                // Every audited syscall has a SYSCALL record. With a
                // `SYSCALL:` test in the same selection that test names the
                // event; without one (only exe/comm), the rule asks whether
                // the program ran, which its exec answers.
                "SYSCALL" if with_syscall => alts.push(Expr::Const(true)),
                "SYSCALL" => alts.push(pred(Field::EventAction, StrOp::Eq, b"exec", false)),
                // useradd and newusers (shadow-utils; Debian's adduser runs
                // useradd) write ADD_USER once the account is in place,
                // which is their rename of the new passwd file over
                // /etc/passwd.
                "ADD_USER" => alts.push(Expr::and(vec![
                    pred(Field::EventAction, StrOp::Eq, b"rename", false),
                    pred(Field::EventOutcome, StrOp::Eq, b"success", false),
                    pred(Field::FilePath, StrOp::Eq, b"/etc/passwd", false),
                    Expr::or(
                        [&b"useradd"[..], b"newusers", b"luseradd"]
                            .iter()
                            .map(|n| pred(Field::ProcessName, StrOp::Eq, n, false))
                            .collect(),
                    ),
                ])),
                "SERVICE_STOP" => {
                    return skip(
                        "auditd",
                        "auditd record type `SERVICE_STOP` is written by systemd (PID 1) when a unit's stop job ends: a state of the service manager, not a kernel event (a stop is a D-Bus request to PID 1, which runs ExecStop= or signals the unit's cgroup; oneshot units such as ufw and iptables have no process whose exit would show it)",
                    );
                }
                other => {
                    return skip(
                        "auditd",
                        format!("auditd record type `{other}` has no vigil event"),
                    );
                }
            }
        } else {
            let name = t.to_ascii_lowercase();
            match SYSCALL_ACTIONS.iter().find(|(s, _)| *s == name) {
                Some((_, a)) => alts.push(pred(Field::EventAction, StrOp::Eq, a.as_bytes(), false)),
                None => {
                    return skip(
                        "auditd",
                        format!("syscall `{t}` is not watched by a vigil sensor"),
                    );
                }
            }
        }
    }
    Ok(Expr::or(alts))
}

/// Converts a Sigma string with wildcards for a base operator into a vigil
/// string test: wildcard-free values stay literal; others become globs.
fn sigma_string(v: &str, op: StrOp) -> (StrOp, Vec<u8>) {
    let has_wild = {
        let b = v.as_bytes();
        let mut i = 0;
        let mut w = false;
        while i < b.len() {
            match b[i] {
                b'\\' if matches!(b.get(i + 1), Some(b'*' | b'?' | b'\\')) => i += 1,
                b'*' | b'?' => w = true,
                _ => {}
            }
            i += 1;
        }
        w
    };
    if !has_wild {
        return (op, unescape(v));
    }
    let mut g = Vec::new();
    if matches!(op, StrOp::Contains | StrOp::Suffix) {
        g.push(b'*');
    }
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if matches!(b.get(i + 1), Some(b'*' | b'?' | b'\\')) => {
                g.push(b'\\');
                g.push(b[i + 1]);
                i += 1;
            }
            b'\\' => g.extend_from_slice(b"\\\\"),
            c => g.push(c),
        }
        i += 1;
    }
    if matches!(op, StrOp::Contains | StrOp::Prefix) {
        g.push(b'*');
    }
    (StrOp::Glob, g)
}

/// Removes Sigma escapes (`\*` `\?` `\\`) from a wildcard-free value.
fn unescape(v: &str) -> Vec<u8> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && matches!(b.get(i + 1), Some(b'*' | b'?' | b'\\')) {
            i += 1;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn windash_variants(v: &str) -> Vec<String> {
    // A dash that starts a word may be written with any of these.
    let mut out = vec![v.to_string()];
    for alt in ["/", "\u{2013}", "\u{2014}", "\u{2015}"] {
        let mut s = String::new();
        let mut prev_space = true;
        for c in v.chars() {
            if c == '-' && prev_space {
                s.push_str(alt);
            } else {
                s.push(c);
            }
            prev_space = c == ' ';
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The three encodings of `v` at byte offsets 0, 1, 2 of a longer text,
/// without the characters that depend on the unknown neighbours (Sigma's
/// `base64offset`).
pub fn base64_offsets(v: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..3usize {
        let mut data = vec![b' '; i];
        data.extend_from_slice(v);
        let enc = base64(&data);
        let start = [0, 2, 3][i];
        let cut = match (v.len() + i) % 3 {
            0 => 0,
            1 => 3,
            _ => 2,
        };
        let end = enc.len().saturating_sub(cut);
        if start < end {
            out.push(enc[start..end].to_string());
        }
    }
    out
}

/// A Sigma document's `description:`, trimmed (empty when absent).
pub(crate) fn description(d: &Node) -> String {
    d.get("description")
        .and_then(Node::as_str)
        .unwrap_or("")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_sigma() {
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
        // pySigma's documented example for `/bin/bash`.
        assert_eq!(
            base64_offsets(b"/bin/bash"),
            vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
        );
    }

    #[test]
    fn wildcards_and_escapes() {
        assert_eq!(
            sigma_string("/tmp/", StrOp::Prefix),
            (StrOp::Prefix, b"/tmp/".to_vec())
        );
        assert_eq!(
            sigma_string("a*b", StrOp::Eq),
            (StrOp::Glob, b"a*b".to_vec())
        );
        assert_eq!(
            sigma_string("a*b", StrOp::Contains),
            (StrOp::Glob, b"*a*b*".to_vec())
        );
        assert_eq!(
            sigma_string(r"a\*b", StrOp::Eq),
            (StrOp::Eq, b"a*b".to_vec())
        );
        assert_eq!(
            sigma_string(r"c:\x", StrOp::Eq),
            (StrOp::Eq, br"c:\x".to_vec())
        );
        assert_eq!(
            sigma_string(r"c:\x?", StrOp::Suffix),
            (StrOp::Glob, br"*c:\\x?".to_vec())
        );
        assert!(glob_match("selection_*", "selection_a"));
        assert!(!glob_match("filter*", "selection"));
        assert_eq!(windash_variants("-e x").len(), 5);
    }
}
