//! Benign: an ordinary developer workload (compile and link a C program,
//! `make`, a git repository with commits, `tar`, `grep -r`, `find`,
//! `sed -i` on the project's own file, `ls`, `ps`, `top`, `df`, `uname`,
//! `id`, `free`, a Python one-liner) runs under `vigil run` with the
//! built-in rules and whatever `--rules PATH[@LEVEL]` adds, as an
//! unprivileged user (`nobody`, in a project folder below /home that is its HOME;
//! `--as-root` runs it as root). Prints the alerts the workload raised, per
//! rule: every alert of a process whose working directory is the workload's,
//! and every `vigil_tampering` alert (process listers read other processes'
//! /proc files). `--max N` fails the run when more than N were raised.
//!
//! ```text
//! vigil-eval benign [--rules PATH[@LEVEL]]... [--as-root] [--max N]
//! ```

use crate::util::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// The workload, one shell command per line; tools the host lacks are
/// skipped by the script (and listed).
const WORKLOAD: &str = r#"
have() { command -v "$1" >/dev/null 2>&1 || { echo "skipped: $1 not installed"; return 1; }; }
printf 'int add(int a, int b) { return a + b; }\n' > add.c
printf 'int add(int, int);\nint main(void) { return add(1, 2) == 3 ? 0 : 1; }\n' > main.c
printf 'main: main.o add.o\n\tcc -o main main.o add.o\n%%.o: %%.c\n\tcc -O2 -c $<\nclean:\n\trm -f *.o main\n' > Makefile
if have cc; then cc -O2 -o main0 main.c add.c && ./main0; fi
if have make; then make -s && ./main && make -s clean; fi
if have git; then
  git init -q . && git add . && git -c user.name=dev -c user.email=dev@example.com commit -qm init
  echo '/* more */' >> add.c
  git status --short >/dev/null && git diff --stat >/dev/null
  git -c user.name=dev -c user.email=dev@example.com commit -qam more && git log --oneline >/dev/null
fi
mkdir -p src && printf 'pub fn f() {}\n' > src/lib.rs
tar czf src.tgz src && tar tzf src.tgz >/dev/null
sed -i 's/add/sum/' add.c
grep -rn sum . >/dev/null || true
find . -name '*.c' >/dev/null
ls -la >/dev/null
ps aux >/dev/null
if have top; then top -b -n 1 >/dev/null; fi
df -h >/dev/null
uname -a >/dev/null
id >/dev/null
if have free; then free -m >/dev/null; fi
if have python3; then python3 -c 'import os, json; print(json.dumps({"n": sum(range(10)), "cwd": os.getcwd()}))' >/dev/null; fi
"#;

pub fn main(args: &[String]) -> R<()> {
    let mut rules = Vec::new();
    let mut as_root = false;
    let mut max: Option<usize> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--rules" => {
                rules.push(args.get(i + 1).ok_or("--rules PATH[@LEVEL]")?.clone());
                i += 1;
            }
            "--as-root" => as_root = true,
            "--max" => {
                max = Some(
                    args.get(i + 1)
                        .and_then(|s| s.parse().ok())
                        .ok_or("--max N")?,
                );
                i += 1;
            }
            a => return Err(format!("benign: unknown argument {a}")),
        }
        i += 1;
    }
    let dir = TempDir::new("benign")?;
    // a project below /home, where developers work (a program built and
    // run below /tmp is what exec_from_temp_dir is for)
    let work = TempDir(std::path::PathBuf::from(format!(
        "/home/vigil-eval-benign-{}",
        std::process::id()
    )));
    let _ = std::fs::remove_dir_all(&work.0);
    std::fs::create_dir_all(&work.0).map_err(ctx("work dir"))?;
    let w2 = work.0.clone();
    let _rm = Guard::new(move || {
        let _ = std::fs::remove_dir_all(&w2);
    });
    std::fs::write(work.join("workload.sh"), WORKLOAD).map_err(ctx("workload script"))?;
    let events = dir.join("alerts.json");
    let mut extra = Vec::new();
    for r in &rules {
        extra.push("--rules".to_string());
        extra.push(r.clone());
    }
    let agent = Agent::start(AgentOpts {
        data_dir: &dir.join("vigil"),
        outputs: vec![events.display().to_string()],
        events: false,
        extra_toml: "heartbeat_interval_s = 0\n",
        args: extra,
    })?;
    let who = if as_root {
        "root"
    } else {
        "nobody (uid 65534)"
    };
    progress(format!(
        "benign: developer workload as {who} in {} (rules: built-ins{})",
        work.0.display(),
        rules.iter().map(|r| format!(" + {r}")).collect::<String>()
    ));
    let mut cmd;
    if as_root {
        cmd = Command::new("sh");
    } else {
        // the work folder (and only it) belongs to the workload's user
        sh(
            "chown",
            &["-R", "65534:65534", &work.0.display().to_string()],
        )?;
        cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "sh",
        ]);
    }
    let out = cmd
        .arg("workload.sh")
        .current_dir(&work.0)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &work.0)
        .env("LANG", "C.UTF-8")
        .output()
        .map_err(ctx("run the workload"))?;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "the workload failed ({}): {}{}",
            out.status,
            said,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::thread::sleep(Duration::from_secs(3));
    settle(&events, Duration::from_secs(1), Duration::from_secs(10));
    let _ = agent.stop()?;
    let wd = work.0.display().to_string();
    let mut by_rule: BTreeMap<String, (usize, String)> = BTreeMap::new();
    scan_json(&events, 0, |v| {
        if v["event"]["kind"] != "alert" {
            return;
        }
        let ours = v["process"]["working_directory"]
            .as_str()
            .is_some_and(|w| w.starts_with(&wd))
            || v["rule"]["id"] == "vigil_tampering";
        if ours {
            let id = match (v["rule"]["id"].as_str(), v["rule"]["name"].as_str()) {
                (Some(i), Some(n)) if n != i => format!("{n} [{i}]"),
                (Some(i), _) => i.to_string(),
                _ => "?".to_string(),
            };
            let e = by_rule.entry(id).or_insert((0, String::new()));
            e.0 += 1;
            if e.1.is_empty() {
                e.1 = v["process"]["command_line"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(60)
                    .collect();
            }
        }
    });
    let total: usize = by_rule.values().map(|e| e.0).sum();
    println!("\nbenign: developer workload as {who} (one run)");
    for l in said.lines().filter(|l| l.starts_with("skipped:")) {
        println!("  {l}");
    }
    let mut rows: Vec<_> = by_rule.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    for (id, (n, cmdline)) in &rows {
        println!("  {n:>5}  {id}  (first: {cmdline})");
    }
    println!(
        "  alerts raised by the workload: {total} from {} rules",
        rows.len()
    );
    if let Some(m) = max
        && total > m
    {
        return Err(format!("{total} alerts, more than --max {m}"));
    }
    Ok(())
}
