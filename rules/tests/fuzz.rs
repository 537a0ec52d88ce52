//! Hostile input: rule YAML, Sigma YAML and conditions give errors, never
//! panics, and whatever compiles evaluates without panicking.

use proptest::prelude::*;
use vigil_rules::{Example, Field, Loader, Scratch, Value, cond};

const TOKENS: &[&str] = &[
    "process.name",
    "file.path",
    "destination.port",
    "destination.ip",
    "vigil.exec.memfd",
    "container.id",
    "=",
    "!=",
    "<",
    ">=",
    "in",
    "iin",
    "startswith",
    "endswith",
    "contains",
    "glob",
    "iglob",
    "regex",
    "cidr",
    "exists",
    "and",
    "or",
    "not",
    "(",
    ")",
    ",",
    "\"a*b\"",
    "'x'",
    "\"(\"",
    "\"[\"",
    "\"\\\\\"",
    "10.0.0.0/8",
    "4444",
    "true",
    "bash",
    "\"\"",
    "\"é\"",
    "*",
    "?",
    "\"",
    "%",
];

fn event() -> Example {
    Example {
        line: 0,
        want: true,
        values: vec![
            (Field::EventAction, Value::Str(b"open".to_vec().into())),
            (Field::ProcessName, Value::Str(b"ba\xffsh".to_vec().into())),
            (Field::FilePath, Value::Str(b"/etc/\n*x".to_vec().into())),
            (Field::DestinationPort, Value::Int(4444)),
            (Field::DestinationIp, Value::Ip("10.1.1.1".parse().unwrap())),
            (Field::ExecMemfd, Value::Bool(true)),
        ],
    }
}

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn conditions_from_arbitrary_text(s in "\\PC{0,80}") {
        let _ = cond::parse(&s, &mut cond::NoEnv);
    }

    #[test]
    fn conditions_from_tokens_compile_and_evaluate(toks in proptest::collection::vec(0..TOKENS.len(), 1..14)) {
        let src: Vec<&str> = toks.iter().map(|&i| TOKENS[i]).collect();
        let src = src.join(" ");
        let mut l = Loader::new();
        l.add_source("f.yaml", &format!("- rule: r\n  for_events: [file]\n  condition: {}\n", yaml_quote(&src)));
        let (set, _) = l.load();
        let mut out = Vec::new();
        set.evaluate(&event(), &mut Scratch::new(), &mut out);
    }

    #[test]
    fn rule_files_from_arbitrary_text(s in "\\PC{0,200}") {
        let mut l = Loader::new();
        l.add_source("f.yaml", &s);
        let _ = l.load();
    }

    #[test]
    fn rule_files_from_yaml_shaped_text(parts in proptest::collection::vec(
        prop_oneof![
            Just("- rule: a\n"), Just("  condition: "), Just("process.name = x\n"), Just("- list: l\n"),
            Just("  items: [a, b]\n"), Just("- macro: m\n"), Just("  condition: m\n"), Just("  exceptions:\n"),
            Just("    - fields: [process.name]\n"), Just("      values: [[a]]\n"), Just("  examples:\n"),
            Just("    - match: {process.name: x}\n"), Just("  output: \"%process.name %\"\n"), Just("  enabled: false\n"),
            Just("  severity: high\n"), Just("{"), Just("["), Just(": "), Just("&a "), Just("*a "), Just("\n"),
            Just("---\n"), Just("  tags: 1\n"), Just("  for_events: [x]\n"),
        ], 0..30)) {
        let s: String = parts.concat();
        let mut l = Loader::new();
        l.add_source("f.yaml", &s);
        let (set, _) = l.load();
        let mut out = Vec::new();
        set.evaluate(&event(), &mut Scratch::new(), &mut out);
        let _ = set.test_examples();
    }

    #[test]
    fn sigma_rules_from_random_detections(
        field in prop_oneof![Just("Image"), Just("CommandLine"), Just("DestinationIp"), Just("DestinationPort"),
                             Just("TargetFilename"), Just("a0"), Just("type"), Just("SYSCALL"), Just(""), Just("Nope")],
        mods in proptest::collection::vec(prop_oneof![
            Just("contains"), Just("startswith"), Just("endswith"), Just("all"), Just("re"), Just("i"),
            Just("base64"), Just("base64offset"), Just("windash"), Just("cidr"), Just("gt"), Just("lte"),
            Just("exists"), Just("cased"), Just("wide"), Just("bogus")], 0..4),
        value in "\\PC{0,20}",
        cat in prop_oneof![Just("category: process_creation"), Just("category: network_connection"),
                           Just("category: file_event"), Just("service: auditd")],
        condition in prop_oneof![Just("sel"), Just("1 of sel*"), Just("all of them"), Just("not sel"),
                                 Just("sel and ("), Just("3 of sel"), Just("sel | count() > 1"), Just("x")],
    ) {
        let key = std::iter::once(field).chain(mods.iter().copied()).collect::<Vec<_>>().join("|");
        let doc = format!(
            "title: T\nid: t\nlogsource:\n  product: linux\n  {cat}\ndetection:\n  sel:\n    {}: {}\n  condition: {}\nlevel: high\n",
            yaml_quote(&key), yaml_quote(&value), yaml_quote(condition)
        );
        let mut l = Loader::new();
        l.add_source("s.yml", &doc);
        let (set, _) = l.load();
        let mut out = Vec::new();
        set.evaluate(&event(), &mut Scratch::new(), &mut out);
    }
}
