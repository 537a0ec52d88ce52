//! CLI tests driving the real `vigil` binary in a temp dir (no root needed).

use std::path::PathBuf;
use std::process::Command;
use vigil_bpf::abi::{self, Hdr, kind};
use vigil_bpf::decode::encode_record;
use vigil_engine::capture::{CaptureWriter, Context};
use vigil_engine::host::Users;

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn bad_config_exits_2_naming_file_line_and_key() {
    let p = tmp("bad.toml");
    std::fs::write(
        &p,
        "[agent]\nevents = true\n[sensors]\nring_buffer_bytes = 1000\n",
    )
    .unwrap();
    let out = vigil()
        .arg("--config")
        .arg(&p)
        .arg("replay")
        .arg("/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4: sensors.ring_buffer_bytes:", p.display())),
        "{err}"
    );
}

#[test]
fn garbage_capture_exits_2_with_offset() {
    let p = tmp("garbage.vcap");
    std::fs::write(&p, b"not a capture at all").unwrap();
    let out = vigil().arg("replay").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad magic"), "{err}");
}

#[test]
fn replay_without_root_writes_ecs_json_lines() {
    let p = tmp("one.vcap");
    let ctx = Context {
        abi_version: abi::ABI_VERSION,
        vigil_version: "test".into(),
        hostname: "replay-host".into(),
        boot_offset_ns: 1_795_000_000_000_000_000,
        users: Users::default(),
    };
    let mut w = CaptureWriter::create(&p, &ctx).unwrap();
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
        ret: -2,
        ..Default::default()
    };
    // a failed relative open of "../etc/shadow" from /tmp, with a hostile byte
    w.record(&encode_record(hdr, &body, &[b"/tmp", b"../etc/shad\x1bow"]))
        .unwrap();
    w.record(b"\x01\x02garbage").unwrap();
    w.flush().unwrap();
    drop(w);
    let out_file = tmp("out.json");
    let out = vigil()
        .arg("replay")
        .arg(&p)
        .arg("--events")
        .arg("-o")
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 decode errors"), "{err}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["file"]["path"], "/etc/shad\u{1b}ow");
    assert_eq!(v["event"]["outcome"], "failure");
    assert_eq!(v["error"]["code"], "ENOENT");
    assert_eq!(v["host"]["hostname"], "replay-host");
    assert_eq!(v["@timestamp"], "2026-11-18T11:06:45.000000000Z");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "output files are private");
    std::fs::remove_file(&p).unwrap();
    std::fs::remove_file(&out_file).unwrap();
}
