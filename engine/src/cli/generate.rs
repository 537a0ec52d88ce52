//! `vigil generate DIR` (hidden; used by `scripts/package.sh`): man pages
//! and shell completions from the clap definitions, `vigil.toml(5)` and the
//! default `/etc/vigil/vigil.toml` from the configuration reference
//! (`docs/config.md`, embedded), so the three cannot drift apart.

use std::io::Write as _;
use std::path::Path;

/// The configuration reference, embedded at build time.
pub const CONFIG_MD: &str = include_str!("../../../docs/config.md");

/// The ```toml blocks of a Markdown text, in order.
pub fn toml_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match (&mut cur, line.trim_end()) {
            (None, "```toml") => cur = Some(String::new()),
            (Some(_), "```") => out.extend(cur.take()),
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// The default configuration file: every key of the reference's TOML
/// blocks commented out (`#key = value`, one line each) with its default,
/// the reference's comments kept, table headers left in place.
pub fn default_config(md: &str) -> String {
    let mut s = String::from(
        "# vigil configuration. Every key is optional; each one is shown here,\n\
         # commented out, with its default (remove the leading `#` to change it).\n\
         # Reference: vigil.toml(5), /usr/share/doc/vigil/config.md.\n\
         # Check a change with `vigil --config /etc/vigil/vigil.toml rules check`.\n",
    );
    for block in toml_blocks(md) {
        s.push('\n');
        let mut pending: Option<String> = None;
        for line in block.lines() {
            let t = line.trim();
            if let Some(p) = pending.as_mut() {
                // Continuation of a multi-line value: joined onto one line.
                p.push(' ');
                p.push_str(t);
                if value_complete(p) {
                    s.push('#');
                    s.push_str(p);
                    s.push('\n');
                    pending = None;
                }
                continue;
            }
            if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
                s.push_str(line);
                s.push('\n');
            } else if value_complete(t) {
                s.push('#');
                s.push_str(t);
                s.push('\n');
            } else {
                pending = Some(t.to_string());
            }
        }
        if let Some(p) = pending {
            s.push('#');
            s.push_str(&p);
            s.push('\n');
        }
    }
    s
}

/// Whether `key = value` is a whole TOML value (brackets balanced outside
/// strings).
fn value_complete(kv: &str) -> bool {
    let mut depth = 0i32;
    let mut in_str = false;
    let mut esc = false;
    for c in kv.chars() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    depth <= 0 && !in_str
}

/// The default configuration with every `#key = value` line uncommented
/// (what an operator gets by uncommenting all of it).
pub fn uncomment_all(cfg: &str) -> String {
    let mut s = String::new();
    for line in cfg.lines() {
        let key = line
            .strip_prefix('#')
            .filter(|r| r.starts_with(|c: char| c.is_ascii_lowercase()) && r.contains(" = "));
        s.push_str(key.unwrap_or(line));
        s.push('\n');
    }
    s
}

/// Escapes text for roff: backslashes, and a leading `.` or `'`.
fn roff_escape(l: &str) -> String {
    let e = l.replace('\\', "\\e").replace('-', "\\-");
    if e.starts_with('.') || e.starts_with('\'') {
        format!("\\&{e}")
    } else {
        e
    }
}

/// `vigil.toml(5)` from the configuration reference (Markdown: headings,
/// paragraphs, lists, code blocks).
pub fn config_man(md: &str, version: &str) -> String {
    let mut s = format!(
        ".TH VIGIL.TOML 5 \"\" \"vigil {version}\" \"File Formats\"\n\
         .SH NAME\nvigil.toml \\- vigil configuration file\n\
         .SH SYNOPSIS\n/etc/vigil/vigil.toml\n"
    );
    let mut in_code = false;
    let mut para = false;
    for line in md.lines() {
        let t = line.trim_end();
        if t.starts_with("```") {
            if in_code {
                s.push_str(".fi\n.in\n");
            } else {
                s.push_str(".PP\n.in +2\n.nf\n");
            }
            in_code = !in_code;
            para = false;
            continue;
        }
        if in_code {
            s.push_str(&roff_escape(t));
            s.push('\n');
            continue;
        }
        let plain = t.replace('`', "").replace("**", "");
        if let Some(h) = plain.strip_prefix("# ") {
            let _ = h;
            s.push_str(".SH DESCRIPTION\n");
            para = false;
        } else if let Some(h) = plain.strip_prefix("## ") {
            s.push_str(&format!(".SH \"{}\"\n", roff_escape(&h.to_uppercase())));
            para = false;
        } else if let Some(item) = plain.strip_prefix("- ") {
            s.push_str(".IP \\(bu 2\n");
            s.push_str(&roff_escape(item));
            s.push('\n');
            para = true;
        } else if plain.trim().is_empty() {
            para = false;
        } else {
            if !para {
                s.push_str(".PP\n");
                para = true;
            }
            s.push_str(&roff_escape(plain.trim_start()));
            s.push('\n');
        }
    }
    s.push_str(".SH FILES\n/etc/vigil/vigil.toml, /var/lib/vigil\n.SH SEE ALSO\nvigil(1)\n");
    s
}

fn write_file(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // Documentation and completions are meant to be world-readable.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    f.write_all(body)
}

/// Man pages of a command and every visible subcommand (`vigil.1`,
/// `vigil-rules-check.1`, ...), as (file name, roff).
pub fn man_pages(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out);
        }
        let man = clap_mangen::Man::new(cmd);
        let mut buf = Vec::new();
        if man.render(&mut buf).is_ok() {
            out.push((man.get_filename(), buf));
        }
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, &mut out);
    out.sort();
    out
}

/// Writes `DIR/man/man1/*.1`, `DIR/man/man5/vigil.toml.5`,
/// `DIR/completions/{vigil.bash,_vigil,vigil.fish}` and `DIR/vigil.toml`.
pub fn generate(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    use clap_complete::Shell;
    let mut written = Vec::new();
    let man1 = dir.join("man/man1");
    let man5 = dir.join("man/man5");
    let comp = dir.join("completions");
    for d in [&man1, &man5, &comp] {
        std::fs::create_dir_all(d)?;
    }
    let version = cmd.get_version().unwrap_or("").to_string();
    for (name, body) in man_pages(cmd.clone()) {
        let p = man1.join(name);
        write_file(&p, &body)?;
        written.push(p);
    }
    let p = man5.join("vigil.toml.5");
    write_file(&p, config_man(CONFIG_MD, &version).as_bytes())?;
    written.push(p);
    for (shell, name) in [
        (Shell::Bash, "vigil.bash"),
        (Shell::Zsh, "_vigil"),
        (Shell::Fish, "vigil.fish"),
    ] {
        let mut buf = Vec::new();
        let mut c = cmd.clone();
        clap_complete::generate(shell, &mut c, "vigil", &mut buf);
        let p = comp.join(name);
        write_file(&p, &buf)?;
        written.push(p);
    }
    let p = dir.join("vigil.toml");
    write_file(&p, default_config(CONFIG_MD).as_bytes())?;
    written.push(p);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::collections::BTreeSet;

    /// Dotted leaf keys of a TOML table.
    fn leaves(v: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_table() {
                    leaves(v, &key, out);
                } else {
                    out.insert(key);
                }
            }
        }
    }

    fn reference() -> String {
        toml_blocks(CONFIG_MD).concat()
    }

    #[test]
    fn reference_values_are_the_defaults() {
        let cfg = Config::parse(&reference(), "docs/config.md").expect("reference parses");
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn every_key_is_in_the_reference() {
        let code = toml::Value::try_from(Config::default()).expect("serializes");
        let mut code_keys = BTreeSet::new();
        leaves(&code, "", &mut code_keys);
        let doc: toml::Value = toml::from_str(&reference()).expect("reference is TOML");
        let mut doc_keys = BTreeSet::new();
        leaves(&doc, "", &mut doc_keys);
        let missing: Vec<_> = code_keys.difference(&doc_keys).collect();
        assert!(
            missing.is_empty(),
            "keys not in docs/config.md: {missing:?}"
        );
        assert!(code_keys.len() > 50, "{code_keys:?}");
    }

    #[test]
    fn default_config_is_all_commented_and_uncomments_to_the_defaults() {
        let text = default_config(CONFIG_MD);
        // As shipped: nothing set.
        let parsed: toml::Value = toml::from_str(&text).expect("shipped file is TOML");
        let mut set = BTreeSet::new();
        leaves(&parsed, "", &mut set);
        assert!(set.is_empty(), "keys set in the shipped file: {set:?}");
        assert_eq!(
            Config::parse(&text, "vigil.toml").expect("parses"),
            Config::default()
        );
        // Every key uncommented: the defaults, and every documented key.
        let all = uncomment_all(&text);
        assert_eq!(
            Config::parse(&all, "vigil.toml").expect("uncommented parses"),
            Config::default()
        );
        let uncommented: toml::Value = toml::from_str(&all).expect("TOML");
        let mut got = BTreeSet::new();
        leaves(&uncommented, "", &mut got);
        let doc: toml::Value = toml::from_str(&reference()).expect("TOML");
        let mut want = BTreeSet::new();
        leaves(&doc, "", &mut want);
        assert_eq!(got, want);
    }

    #[test]
    fn multi_line_values_are_joined() {
        let md = "```toml\n[a]\nx = [\"1\",\n     \"2\"]\ny = 3\n```\n";
        let c = default_config(md);
        assert!(c.contains("#x = [\"1\", \"2\"]\n"), "{c}");
        assert!(c.contains("#y = 3\n"), "{c}");
        assert!(c.contains("\n[a]\n"), "{c}");
    }

    #[test]
    fn config_man_page_has_every_key_and_escapes_roff() {
        let m = config_man(CONFIG_MD, "0.1.0");
        assert!(m.starts_with(".TH VIGIL.TOML 5"));
        for k in [
            "data_dir",
            "ring_buffer_bytes",
            "quiet_period_min",
            "self_cpu_pct",
        ] {
            assert!(m.contains(&k.replace('-', "\\-")), "{k}");
        }
        assert!(config_man("```\n.dangerous\n```\n", "x").contains("\n\\&.dangerous\n"));
    }

    #[test]
    fn one_man_page_per_visible_command() {
        use clap::CommandFactory as _;
        let pages = man_pages(crate::cli::Cli::command());
        let names: Vec<&str> = pages.iter().map(|p| p.0.as_str()).collect();
        for n in [
            "vigil.1",
            "vigil-run.1",
            "vigil-probe.1",
            "vigil-rules-check.1",
            "vigil-baseline-list.1",
            "vigil-report.1",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
        let list = &pages
            .iter()
            .find(|p| p.0 == "vigil-baseline-list.1")
            .unwrap()
            .1;
        let list = String::from_utf8_lossy(list);
        assert!(list.contains("json"), "{list}");
    }
}
