//! The `written` counter counts deliveries: one per destination that
//! accepted a record (no root needed: records are constructed).

use std::sync::Arc;
use vigil_bpf::abi::{self, Hdr, kind};
use vigil_bpf::decode::encode_record;
use vigil_engine::agent::Pipeline;
use vigil_engine::capture::Context;
use vigil_engine::config::Config;
use vigil_engine::host::{RecordedHost, Users};

#[test]
fn written_counts_one_delivery_per_destination() {
    let dir = std::env::temp_dir().join(format!("vigil-written-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = Config::default();
    cfg.agent.events = true;
    let ctx = Context {
        abi_version: abi::ABI_VERSION,
        vigil_version: "test".into(),
        hostname: "h".into(),
        boot_offset_ns: 1_795_000_000_000_000_000,
        users: Users::default(),
    };
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
    let hdr = Hdr {
        kind: kind::OPEN,
        pid: 4242,
        tid: 4242,
        ppid: 1,
        ts_ns: 5_000_000_000,
        comm: *b"cat\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ..Hdr::default()
    };
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
