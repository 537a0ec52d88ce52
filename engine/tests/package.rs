//! Root test: `scripts/package.sh` builds the Debian package from the
//! release binary; `dpkg -i` installs it on this machine (no systemd as pid
//! 1: nothing may start); every file is where it belongs with its mode; the
//! installed `vigil --version` and `vigil probe` work; `systemd-analyze
//! verify` accepts the unit; `dpkg --purge` leaves nothing behind.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::require_root;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sh(cmd: &mut Command) -> (i32, String, String) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn mode(p: &str) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

/// Processes running the installed binary.
fn installed_agents() -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>()
            && std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|p| p == Path::new("/usr/bin/vigil"))
        {
            v.push(pid);
        }
    }
    v
}

/// Directories renamed out of the way, renamed back when dropped.
struct SetAside(Vec<(PathBuf, PathBuf)>);

impl SetAside {
    fn new(paths: &[&str]) -> SetAside {
        let mut v = Vec::new();
        for p in paths {
            let p = PathBuf::from(p);
            if std::fs::symlink_metadata(&p).is_ok() {
                let to =
                    PathBuf::from(format!("{}.vigil-test-{}", p.display(), std::process::id()));
                std::fs::rename(&p, &to)
                    .unwrap_or_else(|e| panic!("set aside {}: {e}", p.display()));
                v.push((p, to));
            }
        }
        SetAside(v)
    }
}

impl Drop for SetAside {
    fn drop(&mut self) {
        for (p, to) in &self.0 {
            let _ = std::fs::remove_dir_all(p);
            if let Err(e) = std::fs::rename(to, p) {
                eprintln!("cannot put {} back from {}: {e}", p.display(), to.display());
            }
        }
    }
}

fn purge() {
    let _ = Command::new("dpkg").args(["--purge", "vigil"]).output();
}

#[test]
fn package_installs_checks_out_and_purges_cleanly() {
    if !require_root("package_installs_checks_out_and_purges_cleanly") {
        return;
    }
    let have = |c: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !vigil_rootgate::require(
        "package_installs_checks_out_and_purges_cleanly",
        "needs dpkg, dpkg-deb and systemd-analyze (scripts/install-deps.sh)",
        have("dpkg") && have("dpkg-deb") && have("systemd-analyze"),
    ) {
        return;
    }
    assert!(
        !Path::new("/run/systemd/system").exists(),
        "this test asserts that nothing starts where systemd does not run"
    );
    let (code, _, _) = sh(Command::new("dpkg").args(["-s", "vigil"]));
    assert_ne!(
        code, 0,
        "a vigil package is already installed; this test would remove it"
    );
    // A data directory of an earlier `vigil run` (the default is
    // /var/lib/vigil) is set aside for the test and put back afterwards:
    // purge removes the package's.
    let _aside = SetAside::new(&["/etc/vigil", "/var/lib/vigil", "/var/log/vigil"]);

    // Build: reuses the binary cargo built for this test (no recompiling).
    let (code, out, err) = sh(Command::new("bash")
        .arg(root().join("scripts/package.sh"))
        .env("VIGIL_BIN", env!("CARGO_BIN_EXE_vigil")));
    assert_eq!(code, 0, "package.sh: {err}");
    let deb = out
        .lines()
        .last()
        .expect("path on the last line")
        .to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).is_file(), "{out}");

    let result = std::panic::catch_unwind(|| {
        let (code, out, err) = sh(Command::new("dpkg").args(["-i", &deb]));
        assert_eq!(code, 0, "dpkg -i: {out}{err}");
        // Not started: no systemd here.
        assert!(installed_agents().is_empty(), "the package started vigil");

        // Files and modes.
        for (p, m) in [
            ("/usr/bin/vigil", 0o755),
            ("/etc/vigil/vigil.toml", 0o600),
            ("/var/lib/vigil", 0o700),
            ("/lib/systemd/system/vigil.service", 0o644),
            ("/etc/logrotate.d/vigil", 0o644),
            ("/usr/share/man/man1/vigil.1.gz", 0o644),
            ("/usr/share/man/man5/vigil.toml.5.gz", 0o644),
            ("/usr/share/bash-completion/completions/vigil", 0o644),
            ("/usr/share/zsh/vendor-completions/_vigil", 0o644),
            ("/usr/share/fish/vendor_completions.d/vigil.fish", 0o644),
            ("/usr/share/vigil/grafana/vigil.json", 0o644),
            ("/usr/share/doc/vigil/README.md", 0o644),
            ("/usr/share/doc/vigil/config.md", 0o644),
            ("/usr/share/doc/vigil/copyright", 0o644),
            ("/usr/share/doc/vigil/examples/rsyslog-relay.conf", 0o644),
        ] {
            assert_eq!(mode(p), m, "{p}: mode {:o}", mode(p));
            let md = std::fs::metadata(p).unwrap();
            assert_eq!((md.uid(), md.gid()), (0, 0), "{p} not root:root");
        }
        assert!(std::fs::metadata("/var/lib/vigil").unwrap().is_dir());
        // One man page per visible command.
        use clap::CommandFactory as _;
        let pages = vigil_engine::cli::generate::man_pages(vigil_engine::cli::Cli::command());
        assert!(pages.len() >= 15);
        for (name, _) in &pages {
            let p = format!("/usr/share/man/man1/{name}.gz");
            assert_eq!(mode(&p), 0o644, "{p}");
        }
        // The conffile is the generated default config, registered as such.
        let shipped = std::fs::read_to_string("/etc/vigil/vigil.toml").unwrap();
        assert_eq!(
            shipped,
            vigil_engine::cli::generate::default_config(vigil_engine::cli::generate::CONFIG_MD)
        );
        let (_, conffiles, _) =
            sh(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "vigil"]));
        assert!(conffiles.contains("/etc/vigil/vigil.toml"), "{conffiles}");
        assert!(conffiles.contains("/etc/logrotate.d/vigil"), "{conffiles}");
        // The logrotate snippet: the shipped file, accepted by logrotate
        // (debug mode: parses and plans, rotates nothing), reloading vigil
        // (SIGHUP reopens its file outputs) and recreating files 0600.
        let snippet = std::fs::read_to_string("/etc/logrotate.d/vigil").unwrap();
        assert_eq!(
            snippet,
            std::fs::read_to_string(root().join("packaging/vigil.logrotate")).unwrap()
        );
        assert!(snippet.contains("create 0600 root root"), "{snippet}");
        assert!(
            snippet.contains("systemctl reload vigil.service"),
            "{snippet}"
        );
        let state =
            std::env::temp_dir().join(format!("vigil-logrotate-state-{}", std::process::id()));
        let (code, out, err) = sh(Command::new("logrotate")
            .arg("-d")
            .arg("-s")
            .arg(&state)
            .arg("/etc/logrotate.d/vigil"));
        let _ = std::fs::remove_file(&state);
        assert_eq!(code, 0, "logrotate -d: {out}{err}");
        assert!(
            !format!("{out}{err}").contains("error:"),
            "logrotate -d: {out}{err}"
        );
        let dash = std::fs::read_to_string("/usr/share/vigil/grafana/vigil.json").unwrap();
        serde_json::from_str::<serde_json::Value>(&dash).expect("dashboard is JSON");

        // The installed binary.
        let (code, out, _) = sh(Command::new("/usr/bin/vigil").arg("--version"));
        assert_eq!(code, 0);
        assert_eq!(out.trim(), format!("vigil {}", env!("CARGO_PKG_VERSION")));
        let (code, out, err) =
            sh(Command::new("/usr/bin/vigil").args(["--config", "/etc/vigil/vigil.toml", "probe"]));
        assert_eq!(code, 0, "installed vigil probe: {err}");
        assert!(out.contains("sensors live"), "{out}");
        assert!(out.contains("exec         live"), "{out}");

        // The unit as installed.
        let (code, out, err) =
            sh(Command::new("systemd-analyze")
                .args(["verify", "/lib/systemd/system/vigil.service"]));
        assert_eq!(code, 0, "systemd-analyze verify: {out}{err}");
        let (code, out, _) = sh(Command::new("systemd-analyze").args([
            "security",
            "--offline=true",
            "/lib/systemd/system/vigil.service",
        ]));
        assert_eq!(code, 0);
        let score: f64 = out
            .lines()
            .find_map(|l| l.split("vigil.service: ").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no exposure score in {out}"));
        assert!(score <= 3.5, "exposure {score} (README says 3.4)");
        eprintln!("systemd-analyze security: exposure {score}");
        let (_, listed, _) = sh(Command::new("dpkg").args(["-L", "vigil"]));
        listed
    });
    let listed = match result {
        Ok(l) => l,
        Err(e) => {
            purge();
            std::panic::resume_unwind(e);
        }
    };

    // Purge: no file of the package, no data or log directory, no unit
    // enablement left.
    std::fs::write("/var/lib/vigil/leftover", b"learned").unwrap();
    let (code, out, err) = sh(Command::new("dpkg").args(["--purge", "vigil"]));
    assert_eq!(code, 0, "dpkg --purge: {out}{err}");
    let (code, _, _) = sh(Command::new("dpkg").args(["-s", "vigil"]));
    assert_ne!(code, 0, "still known to dpkg after purge");
    for p in listed.lines().map(str::trim).filter(|p| p.starts_with('/')) {
        let path = Path::new(p);
        if path.is_dir() && !path.starts_with("/etc/vigil") && !path.starts_with("/var/lib/vigil") {
            // Shared directories (/usr/share/man/man1, ...) stay.
            continue;
        }
        assert!(!path.exists(), "{p} left after purge");
    }
    for p in [
        "/etc/vigil",
        "/var/lib/vigil",
        "/var/log/vigil",
        "/usr/share/vigil",
        "/usr/share/doc/vigil",
        "/etc/systemd/system/multi-user.target.wants/vigil.service",
        "/etc/systemd/system/vigil.service",
        "/var/lib/systemd/deb-systemd-helper-enabled/vigil.service.dsh-also",
        "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/vigil.service",
    ] {
        assert!(
            std::fs::symlink_metadata(p).is_err(),
            "{p} left after purge"
        );
    }
}
