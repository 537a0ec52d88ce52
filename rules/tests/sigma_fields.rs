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

#[test]
fn auditd_syscall_arguments_are_hex_numbers_of_the_syscall_record() {
    // SigmaHQ's ASLR rule: a0 is hexadecimal (ADDR_NO_RANDOMIZE = 0x0040000)
    let (set, r) = load(
        "title: ASLR off\nlogsource:\n    product: linux\n    service: auditd\ndetection:\n    selection:\n        type: 'SYSCALL'\n        SYSCALL: 'personality'\n        a0: 40000\n    condition: selection\nlevel: high\n",
    );
    assert!(r.errors.is_empty() && r.skipped.is_empty(), "{r:?}");
    let call = |action: &str, a0: i64| {
        vec![
            (Field::EventAction, s(action)),
            (Field::SyscallArg0, Value::Int(a0)),
        ]
    };
    assert!(hits(&set, call("personality", 0x40000)));
    assert!(!hits(&set, call("personality", 40000)));
    assert!(!hits(&set, call("personality", 0xffff_ffff)));
    assert!(!hits(&set, call("sysinfo", 0x40000)));
    // a0 of an EXECVE record stays argv[0]
    let (set, r) = load(
        "title: sysctl\nlogsource:\n    product: linux\n    service: auditd\ndetection:\n    selection:\n        type: 'EXECVE'\n        a0: 'sysctl'\n    condition: selection\nlevel: high\n",
    );
    assert!(r.skipped.is_empty(), "{r:?}");
    assert!(hits(
        &set,
        vec![(Field::EventAction, s("exec")), (Field::Arg0, s("sysctl"))]
    ));
    // a list is an OR; a value that is not hexadecimal skips the rule
    let (set, r) = load(
        "title: dmesg clear\nlogsource:\n    product: linux\n    service: auditd\ndetection:\n    selection:\n        type: 'SYSCALL'\n        SYSCALL: 'syslog'\n        a0:\n            - 4\n            - 5\n            - 6\n    condition: selection\nlevel: medium\n",
    );
    assert!(r.skipped.is_empty(), "{r:?}");
    for (a0, want) in [(4, true), (5, true), (6, true), (3, false), (10, false)] {
        assert_eq!(hits(&set, call("syslog", a0)), want, "a0 {a0}");
    }
    let (_, r) = load(
        "title: bad\nlogsource:\n    product: linux\n    service: auditd\ndetection:\n    selection:\n        type: 'SYSCALL'\n        SYSCALL: 'syslog'\n        a0: 'clear'\n    condition: selection\nlevel: medium\n",
    );
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    assert!(r.skipped[0].reason.contains("not a hexadecimal"), "{r:?}");
}

#[test]
fn add_user_is_useradd_landing_etc_passwd_and_service_stop_stays_skipped() {
    let (set, r) = load(
        "title: User added\nlogsource:\n    product: linux\n    service: auditd\ndetection:\n    selection:\n        type: 'ADD_USER'\n    condition: selection\nlevel: medium\n",
    );
    assert!(r.errors.is_empty() && r.skipped.is_empty(), "{r:?}");
    let rename = |name: &str, path: &str, outcome: &str| {
        vec![
            (Field::EventAction, s("rename")),
            (Field::EventOutcome, s(outcome)),
            (Field::ProcessName, s(name)),
            (Field::FilePath, s(path)),
        ]
    };
    assert!(hits(&set, rename("useradd", "/etc/passwd", "success")));
    assert!(hits(&set, rename("newusers", "/etc/passwd", "success")));
    assert!(!hits(&set, rename("useradd", "/etc/passwd", "failure")));
    assert!(!hits(&set, rename("useradd", "/etc/shadow", "success")));
    assert!(!hits(&set, rename("usermod", "/etc/passwd", "success")));
    assert!(!hits(
        &set,
        rename("useradd", "/tmp/x/etc/passwd", "success")
    ));
    let (_, r) = load(
        "title: Firewall stopped\nlogsource:\n    product: linux\n    service: auditd\ndetection:\n    selection:\n        type: 'SERVICE_STOP'\n        unit: ufw\n    condition: selection\nlevel: high\n",
    );
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    assert!(r.skipped[0].reason.contains("systemd (PID 1)"), "{r:?}");
}
