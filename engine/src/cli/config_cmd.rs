//! `vigil config check FILE` and `vigil config show`: what an operator
//! asks of a configuration before restarting the agent with it. `check`
//! validates a file the way `vigil run` does (the configuration, its output
//! URLs, the rule files it names) without loading a sensor; `show` prints
//! the effective configuration, every key with the file line that set it or
//! `default`.

use crate::config::{Config, locate};
use std::path::Path;
use std::process::ExitCode;

/// Where one key's value came from.
fn source(text: Option<(&str, &str)>, table: &str, key: &str) -> String {
    match text {
        Some((text, file)) => match locate(text, table, key) {
            0 => "default".into(),
            line => format!("{file}:{line}"),
        },
        None => "default".into(),
    }
}

/// One row of `show`: table, key, value (TOML), source.
struct Row {
    table: String,
    key: String,
    value: toml::Value,
    source: String,
}

/// Every key of `cfg` with its source, in the configuration's order. Keys
/// whose value is unset (an optional key left out) are not listed.
fn rows(cfg: &Config, text: Option<(&str, &str)>) -> Vec<Row> {
    let Ok(toml::Value::Table(top)) = toml::Value::try_from(cfg) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (table, v) in top {
        let toml::Value::Table(keys) = v else {
            continue;
        };
        for (key, value) in keys {
            out.push(Row {
                source: source(text, &table, &key),
                table: table.clone(),
                key,
                value,
            });
        }
    }
    out
}

/// `show` as TOML: a valid configuration file, each key followed by a
/// comment naming its source.
fn render_toml(rows: &[Row]) -> String {
    let mut s = String::new();
    let mut table = "";
    for r in rows {
        if r.table != table {
            if !table.is_empty() {
                s.push('\n');
            }
            s.push_str(&format!("[{}]\n", r.table));
            table = &r.table;
        }
        s.push_str(&format!(
            "{} = {}  # {}\n",
            r.key,
            r.value,
            crate::config::printable(&r.source)
        ));
    }
    s
}

/// `show --json`: `{"table.key": {"value": ..., "source": "default"|"FILE:LINE"}}`.
fn render_json(rows: &[Row]) -> String {
    let mut m = serde_json::Map::new();
    for r in rows {
        m.insert(
            format!("{}.{}", r.table, r.key),
            serde_json::json!({
                "value": serde_json::to_value(&r.value).unwrap_or_default(),
                "source": r.source,
            }),
        );
    }
    serde_json::Value::Object(m).to_string() + "\n"
}

/// `vigil config show [--json]` of the configuration `--config` names
/// (`file`: its path and the text it was loaded from) or the defaults.
pub(crate) fn show(cfg: &Config, file: Option<(&Path, &str)>, json: bool) -> ExitCode {
    let name = file
        .map(|(f, _)| f.display().to_string())
        .unwrap_or_default();
    let rows = rows(cfg, file.map(|(_, text)| (text, name.as_str())));
    if json {
        print!("{}", render_json(&rows));
    } else {
        print!("{}", render_toml(&rows));
    }
    ExitCode::SUCCESS
}

/// `vigil config check FILE`: 0 and a summary when `vigil run` would
/// accept the file; 2 and the error (`file:line: key: message`) otherwise.
pub(crate) fn check(file: &Path) -> ExitCode {
    let (cfg, text) = match Config::load_with_text(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vigil: {e}");
            return ExitCode::from(2);
        }
    };
    let (set, report) = crate::detect::load_rules(&cfg);
    if !report.errors.is_empty() {
        eprint!("{}", crate::detect::render_errors(&report));
        eprintln!(
            "vigil: {}: {} errors in the rules it loads",
            file.display(),
            report.errors.len()
        );
        return ExitCode::from(2);
    }
    let name = file.display().to_string();
    let set_keys = rows(&cfg, Some((&text, &name)))
        .iter()
        .filter(|r| r.source != "default")
        .count();
    println!(
        "{}: ok ({} keys set, the rest default; {} rules: {} vigil, {} Sigma)",
        crate::config::printable(&name),
        set_keys,
        set.len() + set.correlations().len(),
        report.vigil_rules,
        report.sigma_rules,
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_names_the_line_of_each_set_key_and_default_for_the_rest() {
        let text = "# comment\n[agent]\nheartbeat_interval_s = 7\n\n[perf]\nprofile = true\n";
        let cfg = Config::parse(text, "v.toml").unwrap();
        let rows = rows(&cfg, Some((text, "v.toml")));
        let find = |t: &str, k: &str| rows.iter().find(|r| r.table == t && r.key == k).unwrap();
        assert_eq!(find("agent", "heartbeat_interval_s").source, "v.toml:3");
        assert_eq!(
            find("agent", "heartbeat_interval_s").value,
            toml::Value::Integer(7)
        );
        assert_eq!(find("perf", "profile").source, "v.toml:6");
        assert_eq!(find("agent", "data_dir").source, "default");
        // The TOML view is itself a configuration giving the same result.
        let shown = render_toml(&rows);
        assert!(
            shown.contains("heartbeat_interval_s = 7  # v.toml:3\n"),
            "{shown}"
        );
        let again = Config::parse(&shown, "shown.toml").unwrap();
        assert_eq!(again, cfg);
        // JSON: one member per key.
        let v: serde_json::Value = serde_json::from_str(&render_json(&rows)).unwrap();
        assert_eq!(v["perf.profile"]["value"], true);
        assert_eq!(v["perf.profile"]["source"], "v.toml:6");
        assert_eq!(v["agent.data_dir"]["source"], "default");
        assert_eq!(v.as_object().unwrap().len(), rows.len());
    }
}
