//! Test support: root gating that cannot silently skip in CI, temporary
//! directories removed on drop, free loopback ports, a real rsyslogd on
//! loopback (killed on drop), test certificates from openssl, and a parser
//! of RFC 5424 structured data.
//!
//! (The outputs crate is a leaf: it cannot use `vigil-tests`; this mirrors
//! its `require_root`.)

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::BTreeMap;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether a test needing root (and the real daemons CI installs) may
/// run. As root: appends the name to `$VIGIL_ROOT_TESTS_LOG` and returns
/// true. Not root: panics under `VIGIL_REQUIRE_ROOT_TESTS=1`, else prints
/// `SKIP` and returns false. With `need_rsyslog`, a missing rsyslogd is
/// treated the same way.
pub fn require_root(test_name: &str, need_rsyslog: bool) -> bool {
    vigil_rootgate::require_root(test_name)
        && (!need_rsyslog
            || vigil_rootgate::require(
                test_name,
                &format!(
                    "{RSYSLOGD} is missing (scripts/install-deps.sh installs rsyslog and rsyslog-gnutls)"
                ),
                Path::new(RSYSLOGD).exists(),
            ))
}

pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "vigil-test-marker-outputs-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback TCP port nobody listens on right now.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback UDP port nobody uses right now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 20 ms until it returns Some or `d` passes.
pub fn wait_for<T>(d: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + d;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Certificates for a TLS test (EC P-256, valid for 2 days): a CA, a
/// server certificate for `localhost` and 127.0.0.1, a client certificate.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl (Debian package openssl) must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn make_certs(dir: &Path) -> Certs {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=vigil test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ];
    a.extend(ec);
    a.extend([
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &a);
    for (name, cn, san) in [
        (
            "server",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ),
        ("client", "vigil-client", "subjectAltName=DNS:vigil-client"),
    ] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let subj = format!("/CN={cn}");
        let mut a = vec!["req", "-new", "-subj", &subj, "-keyout", &key, "-out", &csr];
        a.extend(ec);
        openssl(dir, &a);
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            format!("{san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
    }
    Certs {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    }
}

/// Which inputs an rsyslogd serves, and on which ports (0: pick).
#[derive(Clone)]
pub struct RsyslogSpec {
    pub udp: bool,
    pub tcp_port: Option<u16>,
    /// (port, certificates); clients must present a certificate signed by
    /// the CA (x509/certvalid).
    pub tls: Option<(u16, PathBuf, PathBuf, PathBuf)>,
    /// RELP (imrelp) on this port (0: pick).
    pub relp_port: Option<u16>,
}

/// A real rsyslogd in the foreground with a generated configuration,
/// writing every message as one JSON object per line (its parsed
/// properties plus the raw message) to `out.log`. Killed on drop.
pub struct Rsyslog {
    pub dir: PathBuf,
    pub udp_port: u16,
    pub tcp_port: u16,
    pub tls_port: u16,
    pub relp_port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    pub fn start(dir: &Path, spec: &RsyslogSpec) -> Rsyslog {
        let mut r = Rsyslog {
            dir: dir.to_path_buf(),
            udp_port: if spec.udp { free_udp_port() } else { 0 },
            tcp_port: spec.tcp_port.unwrap_or(0),
            tls_port: spec.tls.as_ref().map_or(0, |t| t.0),
            relp_port: match spec.relp_port {
                Some(0) => free_tcp_port(),
                Some(p) => p,
                None => 0,
            },
            child: None,
        };
        r.spawn(spec);
        r
    }

    fn spawn(&mut self, spec: &RsyslogSpec) {
        let d = &self.dir;
        let work = d.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut conf = format!(
            "global(workDirectory=\"{}\" maxMessageSize=\"256k\"",
            work.display()
        );
        if let Some((_, ca, cert, key)) = &spec.tls {
            conf += &format!(
                " defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                ca.display(),
                cert.display(),
                key.display()
            );
        }
        conf += ")\n";
        if spec.udp {
            conf += &format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{}\")\n",
                self.udp_port
            );
        }
        if spec.tcp_port.is_some() {
            conf += &format!(
                "module(load=\"imptcp\")\ninput(type=\"imptcp\" address=\"127.0.0.1\" port=\"{}\" listenPortFileName=\"{}\")\n",
                self.tcp_port,
                d.join("tcp.port").display()
            );
        }
        if spec.tls.is_some() {
            conf += &format!(
                "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"x509/certvalid\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{}\" listenPortFileName=\"{}\")\n",
                self.tls_port,
                d.join("tls.port").display()
            );
        }
        if spec.relp_port.is_some() {
            // imrelp acknowledges a message once it is in the main queue;
            // a direct queue runs the actions first, so an acknowledged
            // message is in the file (rsyslog's advice for reliable chains).
            conf += "main_queue(queue.type=\"Direct\")\n";
            conf += &format!(
                "module(load=\"imrelp\")\ninput(type=\"imrelp\" port=\"{}\")\n",
                self.relp_port
            );
        }
        conf += &format!(
            r#"template(name="j" type="list" option.jsonf="on") {{
  property(outname="pri" name="pri" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="raw" name="rawmsg" format="jsonf")
  property(outname="input" name="inputname" format="jsonf")
}}
*.* action(type="omfile" file="{}" template="j")
"#,
            d.join("out.log").display()
        );
        std::fs::write(d.join("rsyslog.conf"), conf).unwrap();
        let _ = std::fs::remove_file(d.join("tcp.port"));
        let _ = std::fs::remove_file(d.join("tls.port"));
        let log = std::fs::File::create(d.join("rsyslogd.log")).unwrap();
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn rsyslogd");
        self.child = Some(child);
        let dir = d.clone();
        let read_port = |f: &str| {
            wait_for(Duration::from_secs(10), || {
                std::fs::read_to_string(dir.join(f))
                    .ok()
                    .and_then(|s| s.trim().parse::<u16>().ok())
                    .filter(|&p| p != 0)
            })
            .unwrap_or_else(|| {
                panic!(
                    "rsyslogd wrote no {f}: {}",
                    std::fs::read_to_string(dir.join("rsyslogd.log")).unwrap_or_default()
                )
            })
        };
        // A given port: wait until it is taken (rsyslog writes the port
        // file only for port 0).
        let taken = |p: u16, what: &str| {
            wait_for(Duration::from_secs(10), || {
                TcpListener::bind(("127.0.0.1", p)).is_err().then_some(p)
            })
            .unwrap_or_else(|| {
                panic!(
                    "rsyslogd does not listen on {what} {p}: {}",
                    std::fs::read_to_string(dir.join("rsyslogd.log")).unwrap_or_default()
                )
            })
        };
        match spec.tcp_port {
            Some(0) => self.tcp_port = read_port("tcp.port"),
            Some(p) => self.tcp_port = taken(p, "tcp"),
            None => {}
        }
        match &spec.tls {
            Some((0, ..)) => self.tls_port = read_port("tls.port"),
            Some((p, ..)) => self.tls_port = taken(*p, "tls"),
            None => {}
        }
        if spec.relp_port.is_some() {
            taken(self.relp_port, "relp");
        }
        if spec.udp {
            // imudp has no port file: wait until the port is taken.
            let p = self.udp_port;
            wait_for(Duration::from_secs(10), || {
                UdpSocket::bind(("127.0.0.1", p)).is_err().then_some(())
            })
            .unwrap_or_else(|| panic!("rsyslogd does not listen on udp {p}: {}", self.log()));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.log")).unwrap_or_default()
    }

    /// SIGTERM, then wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill on the pid of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports.
    pub fn restart(&mut self, spec: &RsyslogSpec) {
        self.stop();
        let mut s = spec.clone();
        if s.tcp_port.is_some() {
            s.tcp_port = Some(self.tcp_port);
        }
        if let Some(t) = s.tls.as_mut() {
            t.0 = self.tls_port;
        }
        if s.relp_port.is_some() {
            s.relp_port = Some(self.relp_port);
        }
        self.spawn(&s);
    }

    /// The records written so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        let s = std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default();
        // rsyslogd may be writing the last line: complete lines only
        let done = s.rfind('\n').map_or("", |i| &s[..=i]);
        done.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("rsyslog line {l:?}: {e}")))
            .collect()
    }

    /// Waits until at least `n` records are written (30 s at most).
    pub fn wait_records(&self, n: usize) -> Vec<serde_json::Value> {
        let mut last = Vec::new();
        let got = wait_for(Duration::from_secs(30), || {
            last = self.records();
            (last.len() >= n).then(|| last.clone())
        });
        got.unwrap_or_else(|| {
            panic!(
                "rsyslog wrote {} of {n} records; its log: {}",
                last.len(),
                self.log()
            )
        })
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Parses RFC 5424 structured data (`[id k="v" ...][...]`) into
/// id -> ordered (name, value) pairs, undoing the `\"` `\\` `\]` escapes.
pub fn parse_sd(sd: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    let b: Vec<char> = sd.chars().collect();
    let mut i = 0;
    while i < b.len() {
        assert_eq!(b[i], '[', "SD element must start with [ in {sd:?} at {i}");
        i += 1;
        let start = i;
        while b[i] != ' ' && b[i] != ']' {
            i += 1;
        }
        let id: String = b[start..i].iter().collect();
        let mut params = Vec::new();
        while b[i] == ' ' {
            i += 1;
            let ns = i;
            while b[i] != '=' {
                i += 1;
            }
            let name: String = b[ns..i].iter().collect();
            i += 1;
            assert_eq!(b[i], '"', "value must be quoted in {sd:?}");
            i += 1;
            let mut v = String::new();
            loop {
                match b[i] {
                    '\\' if matches!(b.get(i + 1), Some('"' | '\\' | ']')) => {
                        v.push(b[i + 1]);
                        i += 2;
                    }
                    '"' => {
                        i += 1;
                        break;
                    }
                    c => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            params.push((name, v));
        }
        assert_eq!(b[i], ']', "SD element must end with ] in {sd:?}");
        i += 1;
        out.insert(id, params);
    }
    out
}

/// Unescapes a CEF extension value (`\=`, `\\`, `\n`, `\r`) and splits
/// `k=v k2=v2` on the unescaped `=` of each key.
pub fn parse_cef_ext(ext: &str) -> Vec<(String, String)> {
    // Keys are [A-Za-z0-9]+ preceded by a space (or the start) and
    // followed by an unescaped '='.
    let c: Vec<char> = ext.chars().collect();
    let mut starts = Vec::new(); // (key start, '=' index)
    let mut i = 0;
    while i < c.len() {
        if c[i] == '\\' {
            i += 2;
            continue;
        }
        if c[i] == '=' {
            let mut k = i;
            while k > 0 && c[k - 1].is_ascii_alphanumeric() {
                k -= 1;
            }
            if k == 0 || c[k - 1] == ' ' {
                starts.push((k, i));
            }
        }
        i += 1;
    }
    let mut out = Vec::new();
    for (n, &(k, eq)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(c.len(), |&(k2, _)| k2 - 1);
        let key: String = c[k..eq].iter().collect();
        let mut v = String::new();
        let mut j = eq + 1;
        while j < end {
            if c[j] == '\\' && j + 1 < end {
                v.push(match c[j + 1] {
                    'n' => '\n',
                    'r' => '\r',
                    x => x,
                });
                j += 2;
            } else {
                v.push(c[j]);
                j += 1;
            }
        }
        out.push((key, v));
    }
    out
}
