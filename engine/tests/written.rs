//! The `written` counter counts deliveries: one per destination that
//! accepted a record (no root needed: records are constructed).

use std::sync::Arc;

mod common;
use vigil_bpf::abi;
use vigil_bpf::decode::encode_record;
use vigil_engine::agent::Pipeline;
use vigil_engine::config::Config;
use vigil_engine::host::RecordedHost;

#[test]
fn written_counts_one_delivery_per_destination() {
    let dir = std::env::temp_dir().join(format!("vigil-written-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = Config::default();
    cfg.agent.events = true;
    let ctx = common::test_context("h");
    let sink = vigil_outputs::JsonLines::file(&dir.join("sink.json")).unwrap();
    let mut p = Pipeline::new(&cfg, &ctx, Some(Box::new(sink)), None);
    let a = dir.join("a.json");
    let b = dir.join("b.json");
    let urls = [
        format!("file://{}", a.display()),
        format!("file://{}", b.display()),
    ];
    let outs = vigil_outputs::Outputs::open(&urls, None).unwrap();
    p.set_outputs(Arc::new(outs));
    let hdr = common::cat_open_hdr();
    let body = abi::Open {
        ret: 3,
        ..Default::default()
    };
    let mut host = RecordedHost::default();
    p.handle(&encode_record(hdr, &body, &[b"/srv/x"]), &mut host);
    p.flush();
    // the sink and both file outputs took the one record
    assert_eq!(p.stats.written, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fields are built only for encoders that read them: a CEF output next
/// to a JSON one still gets the event's fields (`filePath`), and the JSON
/// output is the same with or without the CEF output beside it.
#[test]
fn cef_outputs_get_fields_and_json_outputs_are_unchanged() {
    let dir = std::env::temp_dir().join(format!("vigil-fields-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = Config::default();
    cfg.agent.events = true;
    let ctx = common::test_context("h");
    let run = |urls: &[String]| {
        let mut p = Pipeline::new(&cfg, &ctx, None, None);
        let outs = Arc::new(vigil_outputs::Outputs::open(urls, None).unwrap());
        p.set_outputs(outs.clone());
        let body = abi::Open {
            ret: 3,
            ..Default::default()
        };
        let mut host = RecordedHost::default();
        p.handle(
            &encode_record(common::cat_open_hdr(), &body, &[b"/srv/x"]),
            &mut host,
        );
        p.flush();
        drop(p);
        let st = Arc::try_unwrap(outs)
            .ok()
            .expect("the pipeline let go of the outputs")
            .shutdown(std::time::Duration::from_secs(2));
        assert_eq!(st.iter().map(|s| s.dropped()).sum::<u64>(), 0);
    };
    let (json_alone, json, cef) = (
        dir.join("alone.json"),
        dir.join("beside.json"),
        dir.join("out.cef"),
    );
    run(&[format!("file://{}", json_alone.display())]);
    run(&[
        format!("file://{}", json.display()),
        format!("file://{}?format=cef", cef.display()),
    ]);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let (alone, beside, cef) = (read(&json_alone), read(&json), read(&cef));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(alone.contains("\"/srv/x\""), "{alone}");
    // @timestamp aside, the JSON record is the same
    let strip = |s: &str| {
        s.split_once(",\"event\"")
            .map(|(_, r)| r.to_string())
            .expect("an event member")
    };
    assert_eq!(strip(&alone), strip(&beside), "{alone}\n{beside}");
    assert!(cef.starts_with("CEF:0|vigil|"), "{cef}");
    assert!(
        cef.contains("filePath=/srv/x"),
        "CEF without the event's fields: {cef}"
    );
}
