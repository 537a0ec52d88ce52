//! The systemd notification protocol (`sd_notify(3)`), without libsystemd:
//! datagrams of `KEY=VALUE` lines to the socket named by `NOTIFY_SOCKET`
//! (a path, or `@name` for an abstract socket).
//!
//! The agent sends `READY=1` (with a `STATUS=` line) once its sensors are
//! attached, the process table seeded and its privileges dropped;
//! `WATCHDOG=1` from its event loop every half `WATCHDOG_USEC` when
//! systemd asks for a watchdog (`WatchdogSec=`), so a stalled loop gets
//! the service restarted; `RELOADING=1` ... `READY=1` around a SIGHUP
//! reload and `STOPPING=1` at shutdown. Without `NOTIFY_SOCKET` nothing is
//! sent.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
}

/// The watchdog timeout systemd asks for: `WATCHDOG_USEC` when set, > 0,
/// and `WATCHDOG_PID` (if set) is this process.
pub fn watchdog_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = pid
        && p.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    Some(Duration::from_micros(usec))
}

fn socket_addr(path: &str) -> io::Result<SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt as _;
        SocketAddr::from_abstract_name(name.as_bytes())
    } else if path.starts_with('/') {
        SocketAddr::from_pathname(path)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET={path:?}: neither an absolute path nor @abstract"),
        ))
    }
}

impl Notifier {
    /// From the environment systemd sets (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
    /// `WATCHDOG_PID`); `Ok(None)` when not started by a service manager
    /// that listens.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let path = path.to_string_lossy().into_owned();
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        let wd = watchdog_from(usec.as_deref(), pid.as_deref(), std::process::id());
        Notifier::connect(&path, wd).map(Some)
    }

    /// A notifier for socket `path` (`/run/...` or `@abstract`) and
    /// watchdog timeout `watchdog`.
    pub fn connect(path: &str, watchdog: Option<Duration>) -> io::Result<Notifier> {
        Ok(Notifier {
            sock: UnixDatagram::unbound()?,
            addr: socket_addr(path)?,
            watchdog,
        })
    }

    /// Sends one notification (newline-separated `KEY=VALUE` lines).
    pub fn send(&self, msg: &str) -> io::Result<()> {
        let n = self.sock.send_to_addr(msg.as_bytes(), &self.addr)?;
        if n != msg.len() {
            return Err(io::Error::other("short write to NOTIFY_SOCKET"));
        }
        Ok(())
    }

    /// How often to ping the watchdog: half its timeout (as sd_watchdog_enabled(3)
    /// recommends); `None` when systemd asked for none.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| (d / 2).max(Duration::from_millis(1)))
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!(
            "READY=1\nSTATUS={}\nMAINPID={}",
            one_line(status),
            std::process::id()
        ))
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1")
    }

    /// `RELOADING=1` with the monotonic time systemd's reload protocol wants.
    pub fn reloading(&self) -> io::Result<()> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"))
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1")
    }
}

/// A status text on one line (the protocol is line based).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (UnixDatagram, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "vigil-notify-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let l = UnixDatagram::bind(&path).unwrap();
        l.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (l, path)
    }

    fn recv(l: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = l.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_ready_watchdog_reloading_stopping_to_a_path_socket() {
        let (l, path) = listener();
        let n = Notifier::connect(path.to_str().unwrap(), Some(Duration::from_secs(10))).unwrap();
        n.ready("12/30 sensors live\nsecond line").unwrap();
        let m = recv(&l);
        let lines: Vec<&str> = m.lines().collect();
        assert_eq!(lines[0], "READY=1");
        assert_eq!(lines[1], "STATUS=12/30 sensors live second line");
        assert_eq!(lines[2], format!("MAINPID={}", std::process::id()));
        n.watchdog().unwrap();
        assert_eq!(recv(&l), "WATCHDOG=1");
        n.reloading().unwrap();
        let m = recv(&l);
        assert!(m.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{m}");
        let usec: u64 = m.rsplit('=').next().unwrap().parse().unwrap();
        assert!(usec > 0);
        n.stopping().unwrap();
        assert_eq!(recv(&l), "STOPPING=1");
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(5)));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn abstract_socket() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("vigil-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let l = UnixDatagram::bind_addr(&addr).unwrap();
        l.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::connect(&format!("@{name}"), None).unwrap();
        n.watchdog().unwrap();
        assert_eq!(recv(&l), "WATCHDOG=1");
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn no_listener_is_an_error_not_a_hang() {
        let dir = std::env::temp_dir().join(format!("vigil-notify-none-{}", std::process::id()));
        let n = Notifier::connect(dir.join("nobody.sock").to_str().unwrap(), None).unwrap();
        assert!(n.send("READY=1").is_err());
        assert!(Notifier::connect("relative.sock", None).is_err());
    }

    #[test]
    fn watchdog_settings() {
        assert_eq!(
            watchdog_from(Some("3000000"), None, 7),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            watchdog_from(Some("3000000"), Some("7"), 7),
            Some(Duration::from_secs(3))
        );
        assert_eq!(watchdog_from(Some("3000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_from(None, None, 7), None);
    }
}
