//! Sigma fields closed after the SigmaHQ skip list: auditd `nametype:
//! CREATE` (a create of the PATH) and Sysmon's `LogonId` (the audit login
//! uid); auditd `key` stays skipped with its reason.

use vigil_rules::{Example, Field, Loader, RuleSet, Scratch, Value};

fn load(text: &str) -> (RuleSet, vigil_rules::Report) {
    let mut l = Loader::new();
    l.add_source("t.yml", text);
    l.load()
}

fn hits(set: &RuleSet, values: Vec<(Field, Value<'static>)>) -> bool {
    let ex = Example {
        line: 0,
        want: true,
        values,
    };
    let mut out = Vec::new();
    set.evaluate(&ex, &mut Scratch::new(), &mut out);
    !out.is_empty()
}

fn s(v: &str) -> Value<'static> {
    Value::Str(v.as_bytes().to_vec().into())
}

#[test]
fn nametype_create_is_an_open_that_creates() {
    let (set, r) = load(
        "title: Unit created\nlogsource:\n    product: linux\n    service: auditd\ndetection:\n    path:\n        type: 'PATH'\n        nametype: 'CREATE'\n    name:\n        name|startswith: '/etc/systemd/system/'\n    condition: path and name\nlevel: medium\n",
    );
    assert!(r.errors.is_empty() && r.skipped.is_empty(), "{r:?}");
    assert_eq!(set.len(), 1);
    let open = |flags: &str, outcome: &str, path: &str| {
        vec![
            (Field::EventAction, s("open")),
            (Field::EventOutcome, s(outcome)),
            (Field::OpenFlags, s(flags)),
            (Field::FilePath, s(path)),
        ]
    };
    assert!(hits(
        &set,
        open(
            "O_WRONLY|O_CREAT|O_TRUNC",
            "success",
            "/etc/systemd/system/x.service"
        )
    ));
    assert!(!hits(
        &set,
        open("O_RDONLY", "success", "/etc/systemd/system/x.service")
    ));
    assert!(!hits(
        &set,
        open(
            "O_WRONLY|O_CREAT",
            "failure",
            "/etc/systemd/system/x.service"
        )
    ));
    assert!(!hits(
        &set,
        open("O_WRONLY|O_CREAT", "success", "/etc/hosts")
    ));
    // other name types are not expressible
    let (set, r) = load(
        "title: Deleted\nlogsource:\n    product: linux\n    service: auditd\ndetection:\n    sel:\n        type: 'PATH'\n        nametype: 'DELETE'\n    condition: sel\n",
    );
    assert_eq!(set.len(), 0);
    assert!(r.skipped[0].reason.contains("only CREATE"), "{r:?}");
}

#[test]
fn logon_id_is_the_audit_login_uid() {
    let (set, r) = load(
        "title: Root login shell script\nlogsource:\n    product: linux\n    category: process_creation\ndetection:\n    sel:\n        User: root\n        LogonId: 0\n        CurrentDirectory: '/var/opt/x/tmp'\n    condition: sel\nlevel: high\n",
    );
    assert!(r.errors.is_empty() && r.skipped.is_empty(), "{r:?}");
    let ev = |auid: i64| {
        vec![
            (Field::EventAction, s("exec")),
            (Field::UserName, s("root")),
            (Field::Auid, Value::Int(auid)),
            (Field::ProcessWorkingDirectory, s("/var/opt/x/tmp")),
        ]
    };
    assert!(hits(&set, ev(0)));
    assert!(!hits(&set, ev(1000)));
}

#[test]
fn audit_key_stays_skipped_with_its_reason() {
    let (set, r) = load(
        "title: Keyed\nlogsource:\n    product: linux\n    service: auditd\ndetection:\n    sel:\n        type: 'SYSCALL'\n        exe|endswith: '/nc'\n        key: 'network_connect_4'\n    condition: sel\n",
    );
    assert_eq!(set.len(), 0);
    assert!(r.skipped[0].reason.contains("audit configuration"), "{r:?}");
}
