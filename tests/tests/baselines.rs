//! End to end as root: a small loopback service (reads a file and runs one
//! known child per request) is learned by the running agent, its profile is
//! promoted, and a second run in which it also spawns a shell, opens a new
//! file and connects to a new port raises exactly those three anomalies —
//! and nothing during its normal work.
//!
//! Then two real servers from Debian under their own load tools, each with
//! its data in a temporary directory, on loopback, as its Debian user:
//! redis under redis-benchmark and PostgreSQL under pgbench are learned,
//! promoted, and run under the same load again with no drift alert; then a
//! classic abuse of each (redis tricked into saving its dump as an
//! `authorized_keys`; PostgreSQL's `COPY ... TO PROGRAM` shell and `COPY TO`
//! a file) is alerted, naming the final file or the shell.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use vigil_baselines::{Baselines, Mode};
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;
use vigil_outputs::JsonLines;

mod common;
use common::{Shared, TempDir};

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the agent with baselines from `db`, runs the service, stops the
/// agent (which flushes), and returns what the agent wrote.
fn run_service(
    cfg: &Config,
    db: &std::path::Path,
    service: &std::path::Path,
    args: &[&str],
) -> Vec<serde_json::Value> {
    with_agent(cfg, db, || {
        let st = Command::new(service)
            .args(args)
            .status()
            .expect("run service");
        assert!(st.success(), "service failed");
    })
}

/// Runs the agent with baselines from `db` while `work` runs, stops the
/// agent (which flushes), and returns what the agent wrote.
fn with_agent(cfg: &Config, db: &Path, work: impl FnOnce()) -> Vec<serde_json::Value> {
    let b = Baselines::open(db, cfg.baselines.learner()).expect("open baselines");
    let out = Shared::default();
    let agent = Running::spawn(RunOptions {
        sink: Some(Box::new(JsonLines::writer(Box::new(out.clone()), "test"))),
        baselines: Some(b),
        ..RunOptions::new(cfg.clone())
    })
    .expect("agent starts");
    // Let the agent take its /proc seed first: this test is about what a
    // service learns, not about processes racing the agent's start-up.
    std::thread::sleep(Duration::from_millis(300));
    work();
    // Let the last events drain through the pipeline.
    std::thread::sleep(Duration::from_millis(500));
    agent.stop_and_detach().expect("agent stops");
    out.records()
}

#[test]
fn a_promoted_service_reports_exactly_its_new_behaviour() {
    if !vigil_tests::require_root("a_promoted_service_reports_exactly_its_new_behaviour") {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    let dir = TempDir(PathBuf::from(format!(
        "/run/{}",
        vigil_tests::unique_marker("vigil-baseline-test")
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let work = dir.0.join("srv");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("data"), b"payload").unwrap();
    std::fs::write(work.join("other"), b"secret").unwrap();
    let service = dir.0.join("svc");
    std::fs::copy(common::trigger_bin(), &service).unwrap();
    std::fs::set_permissions(&service, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.0.join("db");

    let mut cfg = Config::default();
    cfg.agent.events = false;
    cfg.agent.housekeeping_interval_s = 1;
    cfg.sensors.drain_interval_ms = 5;
    // The service's files are ordinary paths: report opens below them.
    cfg.sensors
        .report_paths
        .push(format!("{}/", work.display()));
    cfg.baselines.auto_promote = false;

    let port = free_port();
    let port2 = free_port();
    let l2 = std::net::TcpListener::bind(("127.0.0.1", port2)).unwrap();
    let (p, p2, w) = (
        port.to_string(),
        port2.to_string(),
        work.display().to_string(),
    );

    // 1. Learn.
    let recs = run_service(&cfg, &db, &service, &["service", &p, &p2, &w, "5", "0"]);
    assert!(
        recs.iter().all(|r| r["rule"]["ruleset"] != "baseline"),
        "learning raised anomalies: {recs:#?}"
    );

    // 2. Review and promote the service's profile.
    let mut b = Baselines::open(&db, cfg.baselines.learner()).unwrap();
    let svc = service.display().to_string();
    // The profile of this very file: path plus its device, inode, size, mtime.
    let ino = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&service).unwrap().ino()
    };
    let key = b
        .list()
        .into_iter()
        .map(|s| s.profile)
        .find(|k| k.starts_with(&format!("exe:{svc}@i")) && k.contains(&format!(":{ino}:")))
        .unwrap_or_else(|| {
            panic!(
                "no profile for {svc}: {:?}",
                b.list().iter().map(|s| &s.profile).collect::<Vec<_>>()
            )
        });
    let learned = b.show(&key).unwrap();
    // Its child (/bin/true, forked then exec'd) has a profile of its own,
    // never one under the service's path.
    assert_eq!(
        b.list()
            .iter()
            .filter(|s| s.profile.starts_with(&format!("exe:{svc}")))
            .count(),
        1,
        "{:?}",
        b.list().iter().map(|s| &s.profile).collect::<Vec<_>>()
    );
    assert!(
        learned.spawn.iter().any(|i| i.item == "/usr/bin/true"),
        "{learned:?}"
    );
    assert!(
        learned.file.iter().any(|i| i.item.ends_with("/srv/data")),
        "{learned:?}"
    );
    assert!(
        learned
            .listen
            .iter()
            .any(|i| i.item == format!("tcp/{port}")),
        "{learned:?}"
    );
    b.promote(&key, Mode::Monitoring, 1).unwrap();
    drop(b);

    // 3. Normal work again: nothing.
    let recs = run_service(&cfg, &db, &service, &["service", &p, &p2, &w, "3", "0"]);
    // (capability anomalies: see step 4)
    let anomalies: Vec<_> = recs
        .iter()
        .filter(|r| r["rule"]["ruleset"] == "baseline")
        .filter(|r| r["vigil"]["baseline"]["kind"] != "capability")
        .collect();
    assert!(
        anomalies.is_empty(),
        "normal work raised anomalies: {anomalies:#?}"
    );

    // 4. New behaviour: exactly three anomalies.
    let recs = run_service(&cfg, &db, &service, &["service", &p, &p2, &w, "3", "1"]);
    drop(l2);
    // Capability anomalies are left out: the kernel also runs capability
    // checks of its own in a process's context (memory accounting asks for
    // CAP_SYS_ADMIN on some mmaps), which cap_capable cannot tell from a
    // program's use, so whether the service "used" one varies between runs.
    let mut got: Vec<(String, String)> = recs
        .iter()
        .filter(|r| r["rule"]["ruleset"] == "baseline")
        .filter(|r| r["vigil"]["baseline"]["kind"] != "capability")
        .map(|r| {
            assert_eq!(r["vigil"]["baseline"]["profile"], key.as_str(), "{r}");
            assert_eq!(r["event"]["kind"], "alert");
            (
                r["vigil"]["baseline"]["kind"].as_str().unwrap().to_string(),
                r["vigil"]["baseline"]["item"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(
        got[0],
        ("connect".to_string(), format!("tcp/127.0.0.1:{port2}"))
    );
    assert_eq!(got[1].0, "file");
    assert!(got[1].1.ends_with("/srv/other"), "{got:?}");
    assert_eq!(got[2].0, "spawn");
    assert!(
        got[2].1.ends_with("dash") || got[2].1.ends_with("/sh"),
        "{got:?}"
    );
}

/// A server process in a process group of its own, which is killed (and
/// the leader reaped) if the test ends early: `runuser` cannot pass a
/// SIGKILL on to the server it runs.
struct Server(Option<std::process::Child>, &'static str);

impl Server {
    fn spawn(what: &'static str, cmd: &mut Command) -> Server {
        use std::os::unix::process::CommandExt;
        let c = cmd
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Server(Some(c), what)
    }

    /// Waits for a clean exit (after the test asked it to stop).
    fn wait(mut self) {
        let mut c = self.0.take().unwrap();
        let ok = vigil_tests::wait_for(Duration::from_secs(20), || c.try_wait().unwrap());
        match ok {
            Some(st) => assert!(st.success(), "{} exited with {st}", self.1),
            None => {
                unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
                let _ = c.wait();
                panic!("{} did not stop", self.1);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

/// Runs a command to completion; panics with its output unless it succeeds.
fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `runuser -u USER -- PROG ARGS...`
fn as_user(user: &str, prog: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", user, "--", prog]);
    c
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// A directory for one server test: traversable by the server's user
/// (0711), holding the baselines database (0700) and the server's data.
fn server_dir(name: &str) -> TempDir {
    let dir = TempDir(PathBuf::from(format!(
        "/run/{}",
        vigil_tests::unique_marker(name)
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o711)).unwrap();
    dir
}

/// A directory owned by `user`, 0700.
fn user_dir(path: &Path, user: &str) {
    std::fs::create_dir_all(path).unwrap();
    run(Command::new("chown").arg(format!("{user}:")).arg(path));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn server_cfg(data: &Path) -> Config {
    let mut cfg = Config::default();
    cfg.agent.events = false;
    cfg.agent.housekeeping_interval_s = 1;
    cfg.sensors.drain_interval_ms = 5;
    // Learn the server's reads in its data directory too, not only writes.
    cfg.sensors
        .report_paths
        .push(format!("{}/", data.display()));
    cfg.baselines.auto_promote = false;
    cfg
}

/// Promotes the profiles `list` names `name` (the name the operator knows,
/// whatever file it runs), after checking they learned file items ending
/// in each of `patterns` (numbered names as one pattern); returns their keys.
fn promote_named(
    cfg: &Config,
    db: &Path,
    name: &str,
    exe_prefix: &str,
    patterns: &[&str],
) -> Vec<String> {
    let mut b = Baselines::open(db, cfg.baselines.learner()).unwrap();
    let rows = b.list();
    let keys: Vec<String> = rows
        .iter()
        .filter(|r| r.names.iter().any(|n| n == name))
        .map(|r| r.profile.clone())
        .collect();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with(exe_prefix)),
        "no profile named {name} running {exe_prefix}: {:#?}",
        rows.iter()
            .map(|r| (&r.profile, &r.names))
            .collect::<Vec<_>>()
    );
    let listing = vigil_baselines::render_list(&rows, now_ns());
    eprintln!("vigil baseline list:\n{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l.contains(name) && l.contains(exe_prefix)),
        "{listing}"
    );
    let files: Vec<String> = keys
        .iter()
        .flat_map(|k| b.show(k).unwrap().file)
        .map(|i| i.item)
        .collect();
    for p in patterns {
        assert!(
            files.iter().any(|f| f.ends_with(p)),
            "no learned file ending in {p}: {files:#?}"
        );
    }
    for k in &keys {
        b.promote(k, Mode::Monitoring, now_ns()).unwrap();
    }
    keys
}

/// Baseline alerts of `recs` before and from `marker` (event time).
fn split_alerts(
    recs: &[serde_json::Value],
    marker: i64,
) -> (Vec<String>, Vec<(String, String, String)>) {
    let at = vigil_engine::ecs::rfc3339(marker);
    let mut before = Vec::new();
    let mut after = Vec::new();
    for r in recs.iter().filter(|r| r["rule"]["ruleset"] == "baseline") {
        let b = &r["vigil"]["baseline"];
        let t = (
            b["profile"].as_str().unwrap_or("").to_string(),
            b["kind"].as_str().unwrap_or("").to_string(),
            b["item"].as_str().unwrap_or("").to_string(),
        );
        if r["@timestamp"].as_str().unwrap_or("") < at.as_str() {
            before.push(format!("{t:?} {}", r["message"]));
        } else {
            after.push(t);
        }
    }
    (before, after)
}

/// `inner` run as pid 1 of a pid namespace of its own after `skip`
/// short-lived processes there: the server's pids are small (1 or 2 digits)
/// and differ from one run to the next, as in containers or after the pid
/// counter wrapped. Arguments pass through `"$@"`, never through the shell.
fn in_pid_ns(skip: usize, inner: &Command) -> Command {
    let mut c = Command::new("unshare");
    c.args([
        "--pid",
        "--fork",
        "--kill-child",
        "--",
        "sh",
        "-c",
        "i=0; while [ \"$i\" -lt \"$0\" ]; do (:); i=$((i+1)); done; exec \"$@\"",
    ]);
    c.arg(skip.to_string());
    c.arg(inner.get_program()).args(inner.get_args());
    c
}

/// The host pid of the process that is `ns_pid` in the pid namespace
/// `unshare` (host pid) made for its children.
fn host_pid_in_ns_of(unshare: u32, ns_pid: i32) -> i32 {
    let ns =
        std::fs::read_link(format!("/proc/{unshare}/ns/pid_for_children")).expect("pid namespace");
    for d in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = d.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()
            .as_ref()
            != Some(&ns)
        {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let last = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse::<i32>().ok());
        if last == Some(ns_pid) {
            return pid;
        }
    }
    panic!("no process {ns_pid} in the pid namespace of {unshare}'s children");
}

/// redis, learned under redis-benchmark (plus a SAVE and a BGSAVE, as its
/// default save points would do), promoted by the name `redis-server`
/// (Debian's `/usr/bin/redis-server` is a symlink to `redis-check-rdb`),
/// reruns the load with no drift alert; then `CONFIG SET dir` to a
/// `.ssh` directory, `dbfilename authorized_keys` and `SAVE` is alerted,
/// naming `authorized_keys` (the rename of redis's temp file onto it).
#[test]
fn redis_under_its_benchmark_then_config_set_dir_abuse() {
    if !vigil_tests::require_root("redis_under_its_benchmark_then_config_set_dir_abuse") {
        return;
    }
    let name = "redis_under_its_benchmark_then_config_set_dir_abuse";
    if !vigil_rootgate::require(
        name,
        "needs redis-server and redis-benchmark (scripts/install-deps.sh)",
        Path::new("/usr/bin/redis-server").exists()
            && Path::new("/usr/bin/redis-benchmark").exists(),
    ) {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    let dir = server_dir("vigil-baseline-redis");
    let data = dir.0.join("data");
    user_dir(&data, "redis");
    // The attacker's target: a home's .ssh the redis user can write (on
    // Debian redis's own home, /var/lib/redis).
    let victim = dir.0.join("victim");
    user_dir(&victim, "redis");
    user_dir(&victim.join(".ssh"), "redis");
    let db = dir.0.join("db");
    let cfg = server_cfg(&data);
    let port = free_port().to_string();
    let cli = |args: &[&str]| {
        run(Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args))
    };
    // Each run in a pid namespace of its own, its pids offset by `skip`:
    // the main process's and its bgsave child's `temp-PID.rdb` have small
    // pids that differ between the learning run and the checked one.
    let serve = |attack: Option<&Path>, skip: usize| {
        // Protected configs (dir, dbfilename) are settable at run time only
        // with this: the default before redis 7, and still how many are run.
        let srv = Server::spawn(
            "redis-server",
            &mut in_pid_ns(
                skip,
                as_user("redis", "/usr/bin/redis-server").args([
                    "--port",
                    &port,
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    data.to_str().unwrap(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--enable-protected-configs",
                    "yes",
                    "--logfile",
                    "",
                ]),
            ),
        );
        vigil_tests::wait_for(Duration::from_secs(10), || {
            Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &port, "PING"])
                .output()
                .ok()
                .filter(|o| o.stdout.starts_with(b"PONG"))
        })
        .expect("redis answers PING");
        run(Command::new("redis-benchmark").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            "-n",
            "20000",
            "-c",
            "8",
            "-t",
            "set,get,incr,lpush,lpop,sadd,hset",
        ]));
        cli(&["SAVE"]);
        cli(&["BGSAVE"]);
        vigil_tests::wait_for(Duration::from_secs(10), || {
            cli(&["INFO", "persistence"])
                .contains("rdb_bgsave_in_progress:0")
                .then_some(())
        })
        .expect("BGSAVE finishes");
        let marker = now_ns();
        if let Some(ssh) = attack {
            std::thread::sleep(Duration::from_millis(300));
            cli(&["CONFIG", "SET", "dir", ssh.to_str().unwrap()]);
            cli(&["CONFIG", "SET", "dbfilename", "authorized_keys"]);
            cli(&[
                "SET",
                "x",
                "\n\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIvigiltest attacker\n\n",
            ]);
            cli(&["SAVE"]);
        }
        cli(&["SHUTDOWN", "NOSAVE"]);
        srv.wait();
        marker
    };

    // 0. A server with data, as one is learned in production: the first
    // start of an empty one (no dump to load) is not what it does later.
    serve(None, 3);

    // 1. Learn.
    let mut marker = 0;
    let recs = with_agent(&cfg, &db, || marker = serve(None, 7));
    let (before, after) = split_alerts(&recs, marker);
    assert!(
        before.is_empty() && after.is_empty(),
        "learning raised: {before:#?} {after:#?}"
    );

    // 2. Promote by the name the operator knows.
    let keys = promote_named(
        &cfg,
        &db,
        "redis-server",
        "exe:/usr/bin/redis-check-rdb@",
        &["/data/temp-*.rdb", "/data/dump.rdb"],
    );

    // 3. The same load again, then the abuse.
    let ssh = victim.join(".ssh");
    let recs = with_agent(&cfg, &db, || marker = serve(Some(&ssh), 40));
    let (before, after) = split_alerts(&recs, marker);
    assert!(before.is_empty(), "drift under the same load: {before:#?}");
    let keys_file = format!("{}/authorized_keys", ssh.display());
    assert!(
        after
            .iter()
            .any(|(p, k, i)| keys.contains(p) && k == "file" && *i == keys_file),
        "no alert naming {keys_file}: {after:#?}"
    );
    assert!(
        std::fs::read(ssh.join("authorized_keys")).is_ok_and(|b| b.starts_with(b"REDIS")),
        "the abuse did write the dump"
    );
    // Every alert is the abuse: files in the .ssh directory.
    for (p, k, i) in &after {
        assert!(
            keys.contains(p) && k == "file" && i.starts_with(&format!("{}/", ssh.display())),
            "unexpected alert {p} {k} {i}: {after:#?}"
        );
    }
}

/// PostgreSQL, learned under pgbench (initialisation with its parallel
/// index build, the TPC-B-like run, a sort that spills to temporary
/// files), promoted by the name `postgres`, reruns the load with no drift
/// alert; then `COPY ... TO PROGRAM` (a shell spawned by the server) and
/// `COPY ... TO` a file outside its data directory are alerted, naming the
/// shell and the file.
#[test]
fn postgres_under_pgbench_then_copy_to_program_abuse() {
    if !vigil_tests::require_root("postgres_under_pgbench_then_copy_to_program_abuse") {
        return;
    }
    let bin = Path::new("/usr/lib/postgresql/15/bin");
    if !vigil_rootgate::require(
        "postgres_under_pgbench_then_copy_to_program_abuse",
        "needs postgresql-15 and pgbench (scripts/install-deps.sh)",
        bin.join("postgres").exists() && bin.join("pgbench").exists(),
    ) {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    let dir = server_dir("vigil-baseline-postgres");
    let data = dir.0.join("data");
    user_dir(&data, "postgres");
    let victim = dir.0.join("victim");
    user_dir(&victim, "postgres");
    let db = dir.0.join("db");
    let cfg = server_cfg(&data);
    let port = free_port().to_string();
    let tool = |t: &str| bin.join(t).display().to_string();
    run(as_user("postgres", &tool("initdb")).args([
        "-D",
        data.to_str().unwrap(),
        "-A",
        "trust",
        "-U",
        "postgres",
        "--no-sync",
    ]));
    let psql = |sql: &str| {
        run(as_user("postgres", &tool("psql")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-X",
            "-q",
            "-c",
            sql,
        ]))
    };
    // Each run in a pid namespace of its own, its pids offset by `skip`
    // (small backend pids in `pgsql_tmp<pid>.<n>`, a leader's in its
    // parallel workers' fileset, different in every run).
    let serve = |attack: bool, skip: usize| {
        let srv = Server::spawn(
            "postgres",
            &mut in_pid_ns(
                skip,
                as_user("postgres", &tool("postgres")).args([
                    "-D",
                    data.to_str().unwrap(),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-k",
                    "",
                ]),
            ),
        );
        vigil_tests::wait_for(Duration::from_secs(20), || {
            Command::new(tool("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
                .status()
                .ok()
                .filter(|s| s.success())
        })
        .expect("postgres accepts connections");
        let pgbench = |args: &[&str]| {
            run(as_user("postgres", &tool("pgbench"))
                .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
                .args(args)
                .arg("postgres"))
        };
        pgbench(&["-i", "-q", "-s", "2"]);
        pgbench(&["-c", "4", "-j", "2", "-T", "4"]);
        // A sort larger than work_mem spills to pgsql_tmp<pid>.<n>.
        psql(
            "SET work_mem = '64kB'; SET max_parallel_workers_per_gather = 0; \
             SELECT count(*) FROM (SELECT aid FROM pgbench_accounts ORDER BY abalance, filler DESC) s",
        );
        let marker = now_ns();
        if attack {
            std::thread::sleep(Duration::from_millis(300));
            psql("COPY (SELECT 1) TO PROGRAM 'id > /dev/null'");
            psql(&format!(
                "COPY (SELECT 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIvigiltest attacker') TO '{}/.bashrc'",
                victim.display()
            ));
        }
        // Fast shutdown (SIGINT to the postmaster, whose pid in its file is
        // the one in its namespace).
        let pid: i32 = std::fs::read_to_string(data.join("postmaster.pid"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let pid = host_pid_in_ns_of(srv.0.as_ref().unwrap().id(), pid);
        unsafe { libc::kill(pid, libc::SIGINT) };
        srv.wait();
        marker
    };

    // A server that has run before, as one is learned in production: the
    // first start of a fresh cluster finds no temporary-file directory to
    // clean, which every later start does.
    serve(false, 3);

    let mut marker = 0;
    let recs = with_agent(&cfg, &db, || marker = serve(false, 7));
    let (before, after) = split_alerts(&recs, marker);
    assert!(
        before.is_empty() && after.is_empty(),
        "learning raised: {before:#?} {after:#?}"
    );

    let pg = format!("exe:{}@", bin.join("postgres").display());
    let keys = promote_named(
        &cfg,
        &db,
        "postgres",
        &pg,
        &[
            "/base/pgsql_tmp/pgsql_tmp*.*",
            "/base/pgsql_tmp/pgsql_tmp*.*.fileset/*.*",
            "/data/base/*/*",
        ],
    );

    let recs = with_agent(&cfg, &db, || marker = serve(true, 40));
    let (before, after) = split_alerts(&recs, marker);
    assert!(before.is_empty(), "drift under the same load: {before:#?}");
    assert!(
        after.iter().any(|(p, k, i)| keys.contains(p)
            && k == "spawn"
            && (i.ends_with("/dash") || i.ends_with("/sh") || i.ends_with("/bash"))),
        "no alert for the shell: {after:#?}"
    );
    // Named as learned items are: the temporary directory's ids are `*`.
    let file = String::from_utf8(
        vigil_baselines::generalise_path(format!("{}/.bashrc", victim.display()).as_bytes())
            .into_owned(),
    )
    .unwrap();
    assert!(file.ends_with("/victim/.bashrc"), "{file}");
    assert!(
        after
            .iter()
            .any(|(p, k, i)| keys.contains(p) && k == "file" && *i == file),
        "no alert naming {file}: {after:#?}"
    );
}
