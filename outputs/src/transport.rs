//! Transports: where encoded messages go, and how they are framed.
//! They know nothing of formats ([`crate::encode`] does that).
//!
//! | transport | framing | max message (default) |
//! | --- | --- | --- |
//! | stdout, file | one message per line | 1 MiB |
//! | unix datagram (`/dev/log`) | one datagram per message | 8 KiB |
//! | UDP | one datagram per message (RFC 5426) | 2 KiB (RFC 5426 §3.2 SHOULD) |
//! | TCP, TLS | RFC 6587 octet counting (`LEN SP MSG`), or newline | 8 KiB (rsyslog's default) |
//! | RELP | `TXNR syslog LEN MSG`, each acknowledged | 8 KiB |
//!
//! Stream transports check, before each batch, whether the peer has
//! closed the connection (a non-blocking peek), so a batch is not written
//! into a socket the receiver already left. Plain syslog over TCP or TLS
//! has no application acknowledgement: what the kernel accepted before the
//! receiver died without reading it is lost (RFC 6587 §3.4 warns of the
//! same); vigil counts a record `sent` when the kernel (or rustls) took it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::OutputError;

/// How a stream transport delimits messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6587 §3.4.1 octet counting: `<decimal length> SP <message>`.
    /// The default: messages may contain anything.
    OctetCounting,
    /// RFC 6587 §3.4.2 non-transparent framing: message then LF.
    Newline,
}

/// TLS settings (RFC 5425).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of the CA certificates the server's chain must lead to.
    pub ca: PathBuf,
    /// PEM client certificate chain for mutual TLS.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Name the server certificate must carry (default: the URL's host).
    pub server_name: Option<String>,
}

/// Where a sink delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportConfig {
    /// Standard output, one message per line.
    Stdout,
    /// A file, one message per line, created 0600.
    File {
        /// Path.
        path: PathBuf,
        /// Rotate when the file would pass this size (0: never).
        rotate_bytes: u64,
        /// Rotated files kept (`path.1` newest .. `path.N`).
        keep: u32,
    },
    /// A local syslog datagram socket (`/dev/log`).
    Unix {
        /// Socket path.
        path: PathBuf,
    },
    /// Syslog over UDP (RFC 5426).
    Udp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Syslog over TCP (RFC 6587).
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Framing.
        framing: Framing,
    },
    /// Syslog over RELP (rsyslog's Reliable Event Logging Protocol): every
    /// message is acknowledged by the receiver.
    Relp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Syslog over TLS (RFC 5425).
    Tls {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Framing (RFC 5425 mandates octet counting).
        framing: Framing,
        /// Certificates.
        tls: TlsSettings,
    },
}

impl TransportConfig {
    /// The default largest message for this transport (see the module
    /// table).
    pub fn default_max_size(&self) -> usize {
        match self {
            TransportConfig::Stdout | TransportConfig::File { .. } => 1 << 20,
            TransportConfig::Unix { .. } => 8192,
            TransportConfig::Udp { .. } => 2048,
            TransportConfig::Tcp { .. }
            | TransportConfig::Tls { .. }
            | TransportConfig::Relp { .. } => 8192,
        }
    }

    /// Whether the sink is remote or a socket (delivery may fail and be
    /// retried from the spool) rather than a local file or stdout.
    pub fn is_network(&self) -> bool {
        !matches!(self, TransportConfig::Stdout | TransportConfig::File { .. })
    }
}

/// Unblocks a transport stuck in a write from another thread (shutdown
/// past its deadline): shuts the socket down, so the write fails.
#[derive(Clone, Default, Debug)]
pub struct Interrupter(Arc<Mutex<Option<TcpStream>>>);

impl Interrupter {
    fn set(&self, s: Option<TcpStream>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Shuts the current connection down (if any).
    pub fn interrupt(&self) {
        if let Some(s) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A connection to where messages go.
pub trait Transport: Send {
    /// (Re)connects. Local transports succeed at once.
    fn connect(&mut self) -> io::Result<()>;
    /// Whether the connection still looks usable (stream transports: the
    /// peer has not closed it). Called before each batch.
    fn alive(&mut self) -> bool {
        true
    }
    /// Sends messages in order, framed. An error means none of the batch
    /// can be assumed delivered (the caller resends it after reconnecting).
    fn send_batch(&mut self, msgs: &[Vec<u8>]) -> io::Result<()>;
    /// After a failed [`Transport::send_batch`]: how many of its first
    /// messages the receiver is known to have taken (RELP acknowledged
    /// them); 0 for transports without acknowledgements.
    fn delivered_before_error(&self) -> usize {
        0
    }
    /// Drops the connection.
    fn disconnect(&mut self) {}
    /// Reopens a file (after log rotation); others do nothing.
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Human description.
    fn describe(&self) -> String;
    /// A handle that can interrupt a blocked send.
    fn interrupter(&self) -> Interrupter {
        Interrupter::default()
    }
}

/// How long a stream write may block before the connection is given up
/// (the receiver is gone without closing; a slow but live receiver keeps
/// the connection, since the spool absorbs what it cannot take).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the transport for `cfg`.
pub fn open(cfg: &TransportConfig) -> Result<Box<dyn Transport>, OutputError> {
    Ok(match cfg {
        TransportConfig::Stdout => Box::new(Lines {
            out: None,
            file: None,
            what: "stdout".into(),
        }),
        TransportConfig::File {
            path,
            rotate_bytes,
            keep,
        } => {
            let rf = RotatingFile::open(path, *rotate_bytes, *keep)?;
            Box::new(Lines {
                out: None,
                file: Some(rf),
                what: format!("file:{}", path.display()),
            })
        }
        TransportConfig::Unix { path } => Box::new(UnixDgram {
            path: path.clone(),
            sock: None,
        }),
        TransportConfig::Udp { host, port } => Box::new(Udp {
            host: host.clone(),
            port: *port,
            sock: None,
        }),
        TransportConfig::Tcp {
            host,
            port,
            framing,
        } => Box::new(Tcp {
            host: host.clone(),
            port: *port,
            framing: *framing,
            sock: None,
            buf: Vec::new(),
            intr: Interrupter::default(),
        }),
        TransportConfig::Relp { host, port } => Box::new(Relp {
            host: host.clone(),
            port: *port,
            sock: None,
            reader: None,
            txnr: 1,
            buf: Vec::new(),
            acked: 0,
            intr: Interrupter::default(),
        }),
        TransportConfig::Tls {
            host,
            port,
            framing,
            tls,
        } => {
            let config = tls_client_config(tls)?;
            let name = tls.server_name.clone().unwrap_or_else(|| host.clone());
            let server_name = ServerName::try_from(name.clone()).map_err(|_| OutputError::Tls {
                what: format!("server name `{name}` is not a valid DNS name or IP address"),
            })?;
            Box::new(Tls {
                host: host.clone(),
                port: *port,
                framing: *framing,
                config,
                server_name,
                stream: None,
                buf: Vec::new(),
                intr: Interrupter::default(),
            })
        }
    })
}

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3).
fn tls_client_config(t: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, OutputError> {
    let bad = |what: String| OutputError::Tls { what };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&t.ca)
        .map_err(|e| bad(format!("CA file {}: {e}", t.ca.display())))?;
    let mut n = 0;
    for c in certs {
        let c = c.map_err(|e| bad(format!("CA file {}: {e}", t.ca.display())))?;
        roots
            .add(c)
            .map_err(|e| bad(format!("CA file {}: {e}", t.ca.display())))?;
        n += 1;
    }
    if n == 0 {
        return Err(bad(format!(
            "CA file {}: no PEM certificate in it",
            t.ca.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| bad(format!("TLS versions: {e}")))?
        .with_root_certificates(roots);
    let config = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| bad(format!("client certificate {}: {e}", cert.display())))?;
            if chain.is_empty() {
                return Err(bad(format!(
                    "client certificate {}: no PEM certificate in it",
                    cert.display()
                )));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| bad(format!("client key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(format!("client certificate and key: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(bad("`cert` and `key` must be given together".into())),
    };
    Ok(Arc::new(config))
}

struct Lines {
    out: Option<BufWriter<io::Stdout>>,
    file: Option<RotatingFile>,
    what: String,
}

impl Transport for Lines {
    fn connect(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn send_batch(&mut self, msgs: &[Vec<u8>]) -> io::Result<()> {
        if let Some(f) = self.file.as_mut() {
            for m in msgs {
                f.write_line(m)?;
            }
            return f.flush();
        }
        let out = self
            .out
            .get_or_insert_with(|| BufWriter::with_capacity(64 << 10, io::stdout()));
        for m in msgs {
            out.write_all(m)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
    fn reopen(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.reopen(),
            None => Ok(()),
        }
    }
    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// A file of lines, created 0600, rotated by size: `path` -> `path.1` ->
/// ... -> `path.keep` (the oldest is deleted).
pub struct RotatingFile {
    path: PathBuf,
    rotate_bytes: u64,
    keep: u32,
    out: BufWriter<File>,
    size: u64,
}

/// A file output opened for appending with [`crate::private::open`]
/// (created 0600; a regular file that group or others may read is
/// refused: alerts at rest must be private).
pub(crate) fn open_private(path: &Path) -> Result<File, OutputError> {
    use crate::private::{How, PrivateError};
    crate::private::open(path, How::Append).map_err(|e| match e {
        PrivateError::Io(source) => OutputError::Open {
            path: path.to_path_buf(),
            source,
        },
        PrivateError::Shared { mode } => OutputError::Permissions {
            path: path.to_path_buf(),
            mode,
        },
    })
}

impl RotatingFile {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path, rotate_bytes: u64, keep: u32) -> Result<RotatingFile, OutputError> {
        let f = open_private(path)?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingFile {
            path: path.to_path_buf(),
            rotate_bytes,
            keep,
            out: BufWriter::with_capacity(64 << 10, f),
            size,
        })
    }

    fn rotated(&self, i: u32) -> PathBuf {
        let mut s = self.path.as_os_str().to_owned();
        s.push(format!(".{i}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.keep == 0 {
            fs::remove_file(&self.path)?;
        } else {
            let _ = fs::remove_file(self.rotated(self.keep));
            for i in (1..self.keep).rev() {
                let from = self.rotated(i);
                if from.exists() {
                    fs::rename(&from, self.rotated(i + 1))?;
                }
            }
            fs::rename(&self.path, self.rotated(1))?;
        }
        let f = open_private(&self.path).map_err(io::Error::other)?;
        self.out = BufWriter::with_capacity(64 << 10, f);
        self.size = 0;
        Ok(())
    }

    /// Flushes and closes the file, then opens `path` again (created 0600
    /// if it is gone: logrotate renamed it). Nothing buffered is lost: it
    /// goes to the old file first.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let f = open_private(&self.path).map_err(io::Error::other)?;
        self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
        self.out = BufWriter::with_capacity(64 << 10, f);
        Ok(())
    }

    /// Writes `line` and a newline, rotating first if it would pass the
    /// size limit (a line longer than the limit gets a file of its own).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let n = line.len() as u64 + 1;
        if self.rotate_bytes > 0 && self.size > 0 && self.size + n > self.rotate_bytes {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        self.size += n;
        Ok(())
    }

    /// Flushes.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

struct UnixDgram {
    path: PathBuf,
    sock: Option<UnixDatagram>,
}

impl Transport for UnixDgram {
    fn connect(&mut self) -> io::Result<()> {
        let s = UnixDatagram::unbound()?;
        s.connect(&self.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        s.set_write_timeout(Some(WRITE_TIMEOUT))?;
        self.sock = Some(s);
        Ok(())
    }
    fn send_batch(&mut self, msgs: &[Vec<u8>]) -> io::Result<()> {
        let s = self.sock.as_ref().ok_or_else(not_connected)?;
        for m in msgs {
            s.send(m)?;
        }
        Ok(())
    }
    fn disconnect(&mut self) {
        self.sock = None;
    }
    fn describe(&self) -> String {
        format!("syslog+unix://{}", self.path.display())
    }
}

fn not_connected() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "not connected")
}

fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}: no address"),
        ));
    }
    Ok(addrs)
}

struct Udp {
    host: String,
    port: u16,
    sock: Option<UdpSocket>,
}

impl Transport for Udp {
    fn connect(&mut self) -> io::Result<()> {
        let mut last = None;
        for a in resolve(&self.host, self.port)? {
            let local: SocketAddr = if a.is_ipv4() {
                "0.0.0.0:0".parse().expect("addr")
            } else {
                "[::]:0".parse().expect("addr")
            };
            match UdpSocket::bind(local).and_then(|s| s.connect(a).map(|()| s)) {
                Ok(s) => {
                    self.sock = Some(s);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(not_connected))
    }
    fn send_batch(&mut self, msgs: &[Vec<u8>]) -> io::Result<()> {
        let s = self.sock.as_ref().ok_or_else(not_connected)?;
        for m in msgs {
            // A refused earlier datagram (ICMP port unreachable) shows up
            // here as ECONNREFUSED: the receiver is down.
            s.send(m)?;
        }
        Ok(())
    }
    fn disconnect(&mut self) {
        self.sock = None;
    }
    fn describe(&self) -> String {
        format!("syslog+udp://{}:{}", self.host, self.port)
    }
}

fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for a in resolve(host, port)? {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                s.set_read_timeout(Some(CONNECT_TIMEOUT))?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(io::Error::new(e.kind(), format!("{a}: {e}"))),
        }
    }
    Err(last.unwrap_or_else(not_connected))
}

/// Whether the peer closed (or reset) a connection: a non-blocking
/// MSG_PEEK read. Data waiting to be read counts as alive.
fn peer_closed(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: recv into a valid 1-byte buffer on an open socket.
    let n = unsafe {
        libc::recv(
            s.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n == 0 {
        return true;
    }
    if n < 0 {
        let e = io::Error::last_os_error();
        return e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted;
    }
    false
}

fn frame(buf: &mut Vec<u8>, framing: Framing, msgs: &[Vec<u8>]) {
    buf.clear();
    for m in msgs {
        match framing {
            Framing::OctetCounting => {
                crate::json::write_u64(buf, m.len() as u64);
                buf.push(b' ');
                buf.extend_from_slice(m);
            }
            Framing::Newline => {
                buf.extend_from_slice(m);
                buf.push(b'\n');
            }
        }
    }
}

struct Tcp {
    host: String,
    port: u16,
    framing: Framing,
    sock: Option<TcpStream>,
    buf: Vec<u8>,
    intr: Interrupter,
}

impl Transport for Tcp {
    fn connect(&mut self) -> io::Result<()> {
        let s = connect_tcp(&self.host, self.port)?;
        self.intr.set(s.try_clone().ok());
        self.sock = Some(s);
        Ok(())
    }
    fn alive(&mut self) -> bool {
        self.sock.as_ref().is_some_and(|s| !peer_closed(s))
    }
    fn send_batch(&mut self, msgs: &[Vec<u8>]) -> io::Result<()> {
        frame(&mut self.buf, self.framing, msgs);
        let s = self.sock.as_mut().ok_or_else(not_connected)?;
        s.write_all(&self.buf)
    }
    fn disconnect(&mut self) {
        self.intr.set(None);
        if let Some(s) = self.sock.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    fn describe(&self) -> String {
        format!("syslog+tcp://{}:{}", self.host, self.port)
    }
    fn interrupter(&self) -> Interrupter {
        self.intr.clone()
    }
}

/// RELP client (`syslog` command only, one session per connection).
///
/// Frames are `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The session
/// opens with `open` offering `relp_version=0` and `commands=syslog`; each
/// message is a `syslog` frame the server answers with `TXNR rsp 6 200 OK`.
/// A batch is written at once and then its acknowledgements are read; a
/// message counts as delivered only once acknowledged, so what a receiver
/// that goes away had not acknowledged is sent again on the next
/// connection (at least once: a receiver that wrote a message but died
/// before acknowledging it sees it twice).
struct Relp {
    host: String,
    port: u16,
    sock: Option<TcpStream>,
    reader: Option<io::BufReader<TcpStream>>,
    txnr: u64,
    buf: Vec<u8>,
    acked: usize,
    intr: Interrupter,
}

/// How long to wait for an acknowledgement.
pub const RELP_ACK_TIMEOUT: Duration = Duration::from_secs(30);

impl Relp {
    fn next_txnr(&mut self) -> u64 {
        let t = self.txnr;
        // RELP transaction numbers run 1..=999999999 and wrap to 1.
        self.txnr = if t >= 999_999_999 { 1 } else { t + 1 };
        t
    }

    fn frame(buf: &mut Vec<u8>, txnr: u64, cmd: &str, data: &[u8]) {
        crate::json::write_u64(buf, txnr);
        buf.push(b' ');
        buf.extend_from_slice(cmd.as_bytes());
        buf.push(b' ');
        crate::json::write_u64(buf, data.len() as u64);
        if !data.is_empty() {
            buf.push(b' ');
            buf.extend_from_slice(data);
        }
        buf.push(b'\n');
    }

    /// Reads one frame: (txnr, command, data).
    fn read_frame(r: &mut impl io::BufRead) -> io::Result<(u64, String, Vec<u8>)> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("RELP: {what}"));
        let mut field = |max: usize| -> io::Result<Vec<u8>> {
            let mut v = Vec::new();
            loop {
                let mut b = [0u8; 1];
                r.read_exact(&mut b)?;
                if b[0] == b' ' || b[0] == b'\n' {
                    v.push(b[0]);
                    return Ok(v);
                }
                v.push(b[0]);
                if v.len() > max {
                    return Err(bad("header field too long"));
                }
            }
        };
        let t = field(10)?;
        let txnr: u64 = std::str::from_utf8(&t[..t.len() - 1])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad transaction number"))?;
        let c = field(32)?;
        let cmd = String::from_utf8_lossy(&c[..c.len() - 1]).into_owned();
        let l = field(10)?;
        let len: usize = std::str::from_utf8(&l[..l.len() - 1])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad data length"))?;
        if len > 1 << 20 {
            return Err(bad("response too long"));
        }
        let mut data = vec![0u8; len];
        if *l.last().expect("field") == b' ' {
            r.read_exact(&mut data)?;
            let mut lf = [0u8; 1];
            r.read_exact(&mut lf)?;
            if lf[0] != b'\n' {
                return Err(bad("missing trailer"));
            }
        } else if len != 0 {
            return Err(bad("data length without data"));
        }
        Ok((txnr, cmd, data))
    }

    fn expect_ok(r: &mut impl io::BufRead, txnr: u64) -> io::Result<()> {
        let (t, cmd, data) = Self::read_frame(r)?;
        if cmd == "serverclose" {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "RELP: the server closed the session",
            ));
        }
        if cmd != "rsp" || t != txnr {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("RELP: expected the response to {txnr}, got `{t} {cmd}`"),
            ));
        }
        if !data.starts_with(b"200") {
            return Err(io::Error::other(format!(
                "RELP: transaction {txnr} refused: {}",
                String::from_utf8_lossy(&data)
            )));
        }
        Ok(())
    }
}

impl Transport for Relp {
    fn connect(&mut self) -> io::Result<()> {
        let mut s = connect_tcp(&self.host, self.port)?;
        s.set_read_timeout(Some(RELP_ACK_TIMEOUT))?;
        self.intr.set(s.try_clone().ok());
        let mut reader = io::BufReader::new(s.try_clone()?);
        self.txnr = 1;
        let t = self.next_txnr();
        let offer = format!(
            "relp_version=0\nrelp_software=vigil,{},-\ncommands=syslog",
            env!("CARGO_PKG_VERSION")
        );
        let mut buf = Vec::new();
        Self::frame(&mut buf, t, "open", offer.as_bytes());
        s.write_all(&buf)?;
        Self::expect_ok(&mut reader, t)?;
        self.sock = Some(s);
        self.reader = Some(reader);
        Ok(())
    }
    fn alive(&mut self) -> bool {
        // The server sends nothing unasked but `serverclose`: any data
        // waiting, or EOF, means the session is over.
        self.sock.as_ref().is_some_and(|s| {
            let mut b = [0u8; 1];
            // SAFETY: recv into a valid 1-byte buffer on an open socket.
            let n = unsafe {
                libc::recv(
                    s.as_raw_fd(),
                    b.as_mut_ptr().cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
        }) && self.reader.as_ref().is_some_and(|r| r.buffer().is_empty())
    }
    fn send_batch(&mut self, msgs: &[Vec<u8>]) -> io::Result<()> {
        self.acked = 0;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut txnrs = Vec::with_capacity(msgs.len());
        for m in msgs {
            let t = self.next_txnr();
            txnrs.push(t);
            Self::frame(&mut buf, t, "syslog", m);
        }
        let res = (|| {
            let s = self.sock.as_mut().ok_or_else(not_connected)?;
            s.write_all(&buf)?;
            let r = self.reader.as_mut().ok_or_else(not_connected)?;
            for t in &txnrs {
                Self::expect_ok(r, *t)?;
                self.acked += 1;
            }
            Ok(())
        })();
        self.buf = buf;
        res
    }
    fn delivered_before_error(&self) -> usize {
        self.acked
    }
    fn disconnect(&mut self) {
        self.intr.set(None);
        self.reader = None;
        if let Some(mut s) = self.sock.take() {
            let mut buf = Vec::new();
            let t = self.next_txnr();
            Self::frame(&mut buf, t, "close", b"");
            let _ = s.write_all(&buf);
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    fn describe(&self) -> String {
        format!("syslog+relp://{}:{}", self.host, self.port)
    }
    fn interrupter(&self) -> Interrupter {
        self.intr.clone()
    }
}

struct Tls {
    host: String,
    port: u16,
    framing: Framing,
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    stream: Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
    buf: Vec<u8>,
    intr: Interrupter,
}

impl Transport for Tls {
    fn connect(&mut self) -> io::Result<()> {
        let mut sock = connect_tcp(&self.host, self.port)?;
        self.intr.set(sock.try_clone().ok());
        let mut conn = rustls::ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
        }
        self.stream = Some(rustls::StreamOwned::new(conn, sock));
        Ok(())
    }
    fn alive(&mut self) -> bool {
        let Some(st) = self.stream.as_mut() else {
            return false;
        };
        // Process whatever the server sent (session tickets, alerts,
        // close_notify) without blocking.
        if st.sock.set_nonblocking(true).is_err() {
            return false;
        }
        let mut ok = true;
        loop {
            match st.conn.read_tls(&mut st.sock) {
                Ok(0) => {
                    ok = false;
                    break;
                }
                Ok(_) => match st.conn.process_new_packets() {
                    Ok(state) => {
                        if state.plaintext_bytes_to_read() > 0 {
                            let mut sink = vec![0u8; state.plaintext_bytes_to_read()];
                            let _ = st.conn.reader().read(&mut sink);
                        }
                        if state.peer_has_closed() {
                            ok = false;
                            break;
                        }
                    }
                    Err(_) => {
                        ok = false;
                        break;
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        ok && st.sock.set_nonblocking(false).is_ok()
    }
    fn send_batch(&mut self, msgs: &[Vec<u8>]) -> io::Result<()> {
        frame(&mut self.buf, self.framing, msgs);
        let st = self.stream.as_mut().ok_or_else(not_connected)?;
        st.write_all(&self.buf)?;
        st.flush()
    }
    fn disconnect(&mut self) {
        self.intr.set(None);
        if let Some(mut st) = self.stream.take() {
            st.conn.send_close_notify();
            let _ = st.sock.set_nonblocking(true);
            let _ = st.conn.write_tls(&mut st.sock);
            let _ = st.sock.shutdown(Shutdown::Both);
        }
    }
    fn describe(&self) -> String {
        format!("syslog+tls://{}:{}", self.host, self.port)
    }
    fn interrupter(&self) -> Interrupter {
        self.intr.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_octet_and_newline() {
        let msgs = vec![b"<13>1 - - - - - - hi".to_vec(), b"x y".to_vec()];
        let mut b = Vec::new();
        frame(&mut b, Framing::OctetCounting, &msgs);
        assert_eq!(b, b"20 <13>1 - - - - - - hi3 x y");
        frame(&mut b, Framing::Newline, &msgs);
        assert_eq!(b, b"<13>1 - - - - - - hi\nx y\n");
    }

    #[test]
    fn relp_frames_and_hostile_responses() {
        let mut b = Vec::new();
        Relp::frame(&mut b, 7, "syslog", b"<13>1 x");
        Relp::frame(&mut b, 8, "close", b"");
        assert_eq!(b, b"7 syslog 7 <13>1 x\n8 close 0\n");
        let mut r = io::Cursor::new(&b"2 rsp 6 200 OK\n0 serverclose 0\n"[..]);
        assert!(Relp::expect_ok(&mut r, 2).is_ok());
        let e = Relp::expect_ok(&mut r, 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        // (input, what the error says)
        let bad: &[(&[u8], &str)] = &[
            (b"3 rsp 6 200 OK\n", "expected the response to 2"),
            (b"2 rsp 18 500 not acceptable\n", "refused"),
            (b"x rsp 0\n", "transaction number"),
            (b"2 rsp 99999999999 ", "header field too long"),
            (b"2 rsp 6 200 OKX", "trailer"),
            (b"2 rsp 5\n", "data length without data"),
            (b"2 rsp 3000000 x", "too long"),
            (b"2 rsp 6 20", "failed to fill"),
            (b"22222222222222 rsp", "too long"),
        ];
        for (input, want) in bad {
            let mut r = io::Cursor::new(*input);
            let e = Relp::expect_ok(&mut r, 2).unwrap_err().to_string();
            assert!(
                e.contains(want),
                "{:?}: {e}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// A fake RELP receiver on loopback: answers `open`, acknowledges the
    /// first `ack` syslog frames it reads, then dies (closes the socket
    /// without acknowledging the rest, as a SIGKILLed receiver does).
    fn dying_receiver(ack: usize) -> (u16, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = io::BufReader::new(s);
            let mut got = Vec::new();
            loop {
                let Ok((t, cmd, data)) = Relp::read_frame(&mut r) else {
                    return got;
                };
                if cmd == "open" {
                    w.write_all(format!("{t} rsp 6 200 OK\n").as_bytes())
                        .unwrap();
                    continue;
                }
                if got.len() == ack {
                    // dies with the frame unacknowledged
                    return got;
                }
                got.push(data);
                w.write_all(format!("{t} rsp 6 200 OK\n").as_bytes())
                    .unwrap();
            }
        });
        (port, h)
    }

    fn relp_to(port: u16) -> Relp {
        Relp {
            host: "127.0.0.1".into(),
            port,
            sock: None,
            reader: None,
            txnr: 1,
            buf: Vec::new(),
            acked: 0,
            intr: Interrupter::default(),
        }
    }

    /// Records written into the RELP send window of a receiver that dies
    /// before acknowledging them are reported undelivered (the sink keeps
    /// and resends them): exactly the acknowledged prefix counts, for a
    /// receiver that acknowledged some, none, or died while idle.
    #[test]
    fn relp_unacknowledged_window_is_not_delivered() {
        let batch: Vec<Vec<u8>> = (0..5).map(|i| format!("<13>1 m{i}").into_bytes()).collect();
        for ack in [0, 2, 4] {
            let (port, h) = dying_receiver(ack);
            let mut t = relp_to(port);
            t.connect().unwrap();
            assert!(t.send_batch(&batch).is_err(), "ack {ack}");
            assert_eq!(t.delivered_before_error(), ack);
            let got = h.join().unwrap();
            assert_eq!(got, batch[..ack].to_vec());
            t.disconnect();
        }
        // dies while the connection is idle (right after `open`): the
        // session is seen dead before the next batch is sent into it
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = io::BufReader::new(s);
            let (t, _, _) = Relp::read_frame(&mut r).unwrap();
            w.write_all(format!("{t} rsp 6 200 OK\n").as_bytes())
                .unwrap();
        });
        let mut t = relp_to(port);
        t.connect().unwrap();
        h.join().unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while t.alive() && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!t.alive(), "a closed session is not alive");
    }

    #[test]
    fn rotation_keeps_n_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("vigil-rot-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let p = d.join("a.json");
        let mut f = RotatingFile::open(&p, 100, 2).unwrap();
        for i in 0..10 {
            // 40 bytes + newline: two lines per file
            f.write_line(format!("{i:040}").as_bytes()).unwrap();
        }
        f.flush().unwrap();
        let mut names: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a.json", "a.json.1", "a.json.2"]);
        let read = |n: &str| fs::read_to_string(d.join(n)).unwrap();
        assert_eq!(read("a.json"), format!("{:040}\n{:040}\n", 8, 9));
        assert_eq!(read("a.json.1"), format!("{:040}\n{:040}\n", 6, 7));
        assert_eq!(read("a.json.2"), format!("{:040}\n{:040}\n", 4, 5));
        for n in &names {
            let m = fs::metadata(d.join(n)).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "{n}");
        }
        fs::remove_dir_all(&d).unwrap();
    }
}
