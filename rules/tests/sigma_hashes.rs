//! Sigma's `Hashes` field (Sysmon's `SHA256=...,MD5=...`) and a bare
//! `sha256` map to `process.hash.sha256`; values naming only hashes vigil
//! does not compute are skipped with the reason.

use vigil_rules::{Example, Field, Loader, Scratch, Value};

const H: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

fn sigma(id: &str, sel: &str) -> String {
    format!(
        "title: T {id}\nid: {id}\nlogsource:\n  product: linux\n  category: process_creation\ndetection:\n  sel:\n{sel}\n  condition: sel\nlevel: high\n"
    )
}

fn ev(hash: Option<&str>) -> Example {
    let mut values = vec![(Field::EventAction, Value::Str(b"exec".to_vec().into()))];
    if let Some(h) = hash {
        values.push((
            Field::ProcessHashSha256,
            Value::Str(h.as_bytes().to_vec().into()),
        ));
    }
    Example {
        line: 0,
        want: true,
        values,
    }
}

#[test]
fn hashes_match_process_hash_sha256() {
    let mut l = Loader::new();
    let upper = H.to_ascii_uppercase();
    l.add_source(
        "h1.yml",
        &sigma(
            "h-1",
            &format!("    Hashes|contains:\n      - 'SHA256={upper}'\n      - 'MD5=0123'"),
        ),
    );
    l.add_source(
        "h2.yml",
        &sigma(
            "h-2",
            &format!("    Hashes: 'MD5=00,SHA256={H},IMPHASH=11'"),
        ),
    );
    l.add_source("h3.yml", &sigma("h-3", &format!("    sha256: '{H}'")));
    l.add_source("h4.yml", &sigma("h-4", "    Hashes|contains: 'MD5=0123'"));
    let (set, r) = l.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(set.len(), 3, "skipped: {:?}", r.skipped);
    let sk = r
        .skipped
        .iter()
        .find(|s| s.rule == "T h-4" || s.rule == "h-4")
        .expect("h-4 skipped");
    assert!(sk.reason.contains("only SHA-256"), "{}", sk.reason);
    let mut scratch = Scratch::new();
    for (e, want) in [
        (ev(Some(H)), true),
        (ev(Some(&H.replace('a', "b"))), false),
        (ev(None), false),
    ] {
        let mut out = Vec::new();
        set.evaluate(&e, &mut scratch, &mut out);
        let ids: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
        if want {
            assert_eq!(ids, ["h-1", "h-2", "h-3"]);
        } else {
            assert!(ids.is_empty(), "{ids:?}");
        }
    }
}
