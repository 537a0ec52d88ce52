//! vigil's outputs: encoders apart from transports (Vector's habit).
//!
//! - [`json::Writer`] builds one JSON object straight into bytes (no
//!   intermediate tree), escaping everything per RFC 8259; non-UTF-8 bytes
//!   become U+FFFD so every line is valid JSON.
//! - [`Sink`] is a transport for encoded records; [`JsonLines`] writes them
//!   one per line to stdout or a file created 0600.
//!
//! Issue #6 adds syslog (RFC 3164/5424, UDP/TCP/TLS), CEF, spooling and
//! Prometheus on top of the same two traits.

#![deny(missing_docs)]

pub mod json;

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A transport for encoded records.
pub trait Sink: Send {
    /// Writes one encoded record (without trailing newline).
    fn write_record(&mut self, record: &[u8]) -> io::Result<()>;
    /// Flushes buffered records.
    fn flush(&mut self) -> io::Result<()>;
    /// Human description (`stdout`, `file:/var/log/vigil.json`).
    fn describe(&self) -> String;
}

/// JSON lines to any writer.
pub struct JsonLines {
    out: BufWriter<Box<dyn Write + Send>>,
    what: String,
}

impl JsonLines {
    /// JSON lines on standard output.
    pub fn stdout() -> JsonLines {
        JsonLines {
            out: BufWriter::with_capacity(64 << 10, Box::new(io::stdout())),
            what: "stdout".into(),
        }
    }

    /// JSON lines appended to `path`, created with mode 0600 (an existing
    /// file keeps its mode but must not be group/world accessible).
    pub fn file(path: &Path) -> Result<JsonLines, OutputError> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| OutputError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        use std::os::unix::fs::MetadataExt;
        let md = f.metadata().map_err(|source| OutputError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = md.mode();
        // Regular files hold alerts at rest: they must be private. Devices
        // and pipes (/dev/null, a FIFO to a shipper) keep their own modes.
        if md.is_file() && mode & 0o077 != 0 {
            return Err(OutputError::Permissions {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        Ok(JsonLines {
            out: BufWriter::with_capacity(64 << 10, Box::new(f)),
            what: format!("file:{}", path.display()),
        })
    }

    /// JSON lines into an arbitrary writer (tests, benchmarks).
    pub fn writer(w: Box<dyn Write + Send>, what: &str) -> JsonLines {
        JsonLines {
            out: BufWriter::with_capacity(64 << 10, w),
            what: what.into(),
        }
    }
}

impl Sink for JsonLines {
    fn write_record(&mut self, record: &[u8]) -> io::Result<()> {
        self.out.write_all(record)?;
        self.out.write_all(b"\n")
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// Errors opening outputs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The output file could not be opened.
    #[error("cannot open output file {path}: {source}")]
    Open {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The output file is readable or writable by others.
    #[error(
        "output file {path} has mode {mode:o}; alerts must not be readable by others (chmod 600)"
    )]
    Permissions {
        /// File.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_sink_is_0600_and_refuses_open_files() {
        let dir = std::env::temp_dir().join(format!("vigil-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.json");
        let mut s = JsonLines::file(&p).unwrap();
        s.write_record(b"{\"a\":1}").unwrap();
        s.flush().unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"a\":1}\n");
        let q = dir.join("b.json");
        std::fs::write(&q, "").unwrap();
        std::fs::set_permissions(&q, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            JsonLines::file(&q),
            Err(OutputError::Permissions { mode: 0o644, .. })
        ));
        assert!(
            JsonLines::file(Path::new("/dev/null")).is_ok(),
            "devices keep their mode"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
