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
