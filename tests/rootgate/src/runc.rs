//! A runc bundle of a static busybox, for the root tests that run a
//! workload in a container (the seccomp round trips of `vigil-baselines`
//! and `vigil-tests`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `runc` can be run.
pub fn available() -> bool {
    Command::new("runc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A bundle under a directory: `rootfs/` (busybox, its applets, an
/// `/etc/hostname`) read-only, and `bundle/config.json` from `runc spec`
/// with no terminal.
pub struct Bundle {
    dir: PathBuf,
}

/// Deletes the container however the run ends.
struct Ctr<'a>(&'a str);

impl Drop for Ctr<'_> {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "-f", self.0])
            .stderr(Stdio::null())
            .status();
    }
}

impl Bundle {
    /// Builds the bundle in `dir` (which must exist) from the static
    /// `busybox`, with a symlink for each of `applets` in `/bin` and
    /// `hostname` (plus a newline) as `/etc/hostname`. Panics on any failure:
    /// it is test set-up.
    pub fn busybox(dir: &Path, busybox: &Path, applets: &[&str], hostname: &str) -> Bundle {
        let rootfs = dir.join("rootfs");
        for d in ["bin", "etc", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("create the rootfs");
        }
        std::fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
        for l in applets {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(l))
                .expect("link an applet");
        }
        std::fs::write(rootfs.join("etc/hostname"), format!("{hostname}\n"))
            .expect("write /etc/hostname");
        let bundle = dir.join("bundle");
        std::fs::create_dir(&bundle).expect("create the bundle");
        let st = Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .status()
            .expect("run runc spec");
        assert!(st.success(), "runc spec: {st}");
        let b = Bundle { dir: bundle };
        b.edit(|c| {
            c["root"] = serde_json::json!({"path": rootfs, "readonly": true});
            c["process"]["terminal"] = serde_json::json!(false);
        });
        b
    }

    fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let path = self.dir.join("config.json");
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read config.json"))
                .expect("config.json is JSON");
        f(&mut c);
        std::fs::write(&path, serde_json::to_vec_pretty(&c).expect("serialize"))
            .expect("write config.json");
    }

    /// Runs `sh -c script` as container `id`, with noNewPrivileges `nnp`
    /// and `seccomp` as `linux.seccomp` (null: none); returns (success,
    /// stdout, stderr), at most 4 KiB of each, and kills the container
    /// after 30 s. The container is deleted however the run ends.
    pub fn run(
        &self,
        id: &str,
        script: &str,
        nnp: bool,
        seccomp: &serde_json::Value,
    ) -> (bool, String, String) {
        self.edit(|c| {
            c["process"]["args"] = serde_json::json!(["sh", "-c", script]);
            c["process"]["noNewPrivileges"] = serde_json::json!(nnp);
            c["linux"]["seccomp"] = seccomp.clone();
        });
        let _guard = Ctr(id);
        let out_p = self.dir.join(format!("{id}.out"));
        let err_p = self.dir.join(format!("{id}.err"));
        let mut child = Command::new("runc")
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_p).expect("create the stdout file"))
            .stderr(std::fs::File::create(&err_p).expect("create the stderr file"))
            .spawn()
            .expect("spawn runc run");
        let start = Instant::now();
        let ok = loop {
            if let Some(st) = child.try_wait().expect("wait for runc") {
                break st.success();
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = Command::new("runc").args(["delete", "-f", id]).status();
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let head = |p: &Path| {
            let mut b = std::fs::read(p).unwrap_or_default();
            b.truncate(4096);
            String::from_utf8_lossy(&b).into_owned()
        };
        (ok, head(&out_p), head(&err_p))
    }
}
