//! The capture format (`vigil record` / `vigil replay`), version 1.
//!
//! ```text
//! file    = magic "VIGILCAP" | u32 LE version (1) | u32 LE 0 | frame*
//! frame   = u8 type | u32 LE length | payload[length]
//! type 1  CONTEXT  JSON: abi version, hostname, boot offset, users/groups
//! type 2  RECORD   one raw ring-buffer sample, exactly as the kernel wrote it
//! type 3  LOOKUP   JSON: an answer the live host gave during enrichment
//!                  (/proc/PID/cgroup, a /proc read, a cgroup path); it
//!                  precedes the RECORD whose enrichment asked for it
//! type 4  SEED     JSON: the /proc snapshot taken after the sensors attached,
//!                  placed where it was applied relative to the records
//! type 5  SUMMARY  JSON: kernel counters at the end of the recording
//! ```
//!
//! Replay feeds RECORD frames through the same decoder and enricher, with
//! LOOKUP answers served back in order, so it reproduces the live enriched
//! events exactly. Unknown frame types are skipped (forward compatible);
//! a truncated final frame (recorder killed) ends the replay with a warning.

use crate::config::printable;
use crate::host::{Lookup, ProcSnapshot, Users};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// File magic.
pub const MAGIC: &[u8; 8] = b"VIGILCAP";
/// Format version written.
pub const VERSION: u32 = 1;
/// Largest frame accepted (hostile files cannot make us allocate more).
pub const MAX_FRAME: u32 = 64 << 20;

/// Frame types.
pub mod frame {
    /// Context (JSON).
    pub const CONTEXT: u8 = 1;
    /// Raw ring-buffer record.
    pub const RECORD: u8 = 2;
    /// Host lookup answer (JSON).
    pub const LOOKUP: u8 = 3;
    /// /proc seed (JSON).
    pub const SEED: u8 = 4;
    /// Final counters (JSON).
    pub const SUMMARY: u8 = 5;
}

/// What replay needs besides the records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// ABI version of the records.
    pub abi_version: u32,
    /// vigil version that recorded.
    pub vigil_version: String,
    /// Host name.
    pub hostname: String,
    /// Unix ns minus boot ns at recording start.
    pub boot_offset_ns: i64,
    /// User and group names.
    pub users: Users,
}

/// The seed frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seed {
    /// Boot ns when the scan was taken.
    pub at_ns: u64,
    /// Processes.
    pub procs: Vec<ProcSnapshot>,
}

/// A capture error, naming the file and offset.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// I/O failure.
    #[error("{}: {source}", printable(&path.display().to_string()))]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Not a capture, or a version this build cannot read.
    #[error("{}:{offset}: {}", printable(&path.display().to_string()), printable(message))]
    Format {
        /// File.
        path: PathBuf,
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        message: String,
    },
}

/// Writes a capture.
pub struct CaptureWriter {
    out: BufWriter<File>,
    path: PathBuf,
    /// Records written.
    pub records: u64,
}

impl CaptureWriter {
    /// Creates `path` (mode 0600, truncating) and writes the header and context.
    pub fn create(path: &Path, ctx: &Context) -> Result<CaptureWriter, CaptureError> {
        let io = |source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = vigil_outputs::private::open(path, vigil_outputs::private::How::Replace)
            .map_err(|e| io(e.into()))?;
        let mut w = CaptureWriter {
            out: BufWriter::with_capacity(1 << 20, f),
            path: path.to_path_buf(),
            records: 0,
        };
        w.out.write_all(MAGIC).map_err(io)?;
        w.out.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        w.out.write_all(&0u32.to_le_bytes()).map_err(io)?;
        w.json(frame::CONTEXT, ctx)?;
        Ok(w)
    }

    fn io(&self, source: io::Error) -> CaptureError {
        CaptureError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes one frame.
    pub fn frame(&mut self, ty: u8, payload: &[u8]) -> Result<(), CaptureError> {
        let len = u32::try_from(payload.len())
            .map_err(|_| self.io(io::ErrorKind::InvalidInput.into()))?;
        let r = self
            .out
            .write_all(&[ty])
            .and_then(|()| self.out.write_all(&len.to_le_bytes()))
            .and_then(|()| self.out.write_all(payload));
        r.map_err(|e| self.io(e))
    }

    /// Writes a JSON frame.
    pub fn json<T: Serialize>(&mut self, ty: u8, v: &T) -> Result<(), CaptureError> {
        let bytes = serde_json::to_vec(v).map_err(|e| self.io(io::Error::other(e)))?;
        self.frame(ty, &bytes)
    }

    /// Writes a raw record.
    pub fn record(&mut self, sample: &[u8]) -> Result<(), CaptureError> {
        self.records += 1;
        self.frame(frame::RECORD, sample)
    }

    /// Writes host answers.
    pub fn lookups(&mut self, l: Vec<Lookup>) -> Result<(), CaptureError> {
        for x in l {
            self.json(frame::LOOKUP, &x)?;
        }
        Ok(())
    }

    /// Flushes to disk.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        self.out.flush().map_err(|e| self.io(e))?;
        self.out.get_ref().sync_data().map_err(|e| self.io(e))
    }
}

/// Reads a capture frame by frame.
pub struct CaptureReader<R: Read> {
    input: R,
    path: PathBuf,
    offset: u64,
    /// The context frame.
    pub context: Context,
}

impl CaptureReader<BufReader<File>> {
    /// Opens a capture and reads its header and context.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let f = File::open(path).map_err(|source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::new(BufReader::with_capacity(1 << 20, f), path)
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the header and context from any reader.
    pub fn new(mut input: R, path: &Path) -> Result<Self, CaptureError> {
        let fmt = |offset, message: String| CaptureError::Format {
            path: path.to_path_buf(),
            offset,
            message,
        };
        let mut head = [0u8; 16];
        input
            .read_exact(&mut head)
            .map_err(|_| fmt(0, "file is shorter than the 16-byte capture header".into()))?;
        if &head[..8] != MAGIC {
            return Err(fmt(0, "not a vigil capture (bad magic)".into()));
        }
        let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(fmt(
                8,
                format!(
                    "capture format version {version} is not supported (this vigil reads {VERSION})"
                ),
            ));
        }
        let mut r = CaptureReader {
            input,
            path: path.to_path_buf(),
            offset: 16,
            context: Context {
                abi_version: 0,
                vigil_version: String::new(),
                hostname: String::new(),
                boot_offset_ns: 0,
                users: Users::default(),
            },
        };
        match r.next_frame()? {
            Some((frame::CONTEXT, payload)) => {
                r.context = serde_json::from_slice(&payload)
                    .map_err(|e| fmt(16, format!("context frame: {e}")))?;
            }
            _ => return Err(fmt(16, "first frame is not the context".into())),
        }
        if r.context.abi_version != vigil_bpf::abi::ABI_VERSION {
            return Err(fmt(
                16,
                format!(
                    "records use kernel ABI {} but this vigil decodes ABI {}",
                    r.context.abi_version,
                    vigil_bpf::abi::ABI_VERSION
                ),
            ));
        }
        Ok(r)
    }

    /// Byte offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Next frame, `None` at a clean end of file. A frame cut short by a
    /// killed recorder is an error naming its offset.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, CaptureError> {
        let start = self.offset;
        let mut h = [0u8; 5];
        let mut got = 0;
        while got < 5 {
            match self.input.read(&mut h[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(CaptureError::Format {
                        path: self.path.clone(),
                        offset: start,
                        message: "truncated frame header".into(),
                    });
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        let len = u32::from_le_bytes(h[1..5].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            return Err(CaptureError::Format {
                path: self.path.clone(),
                offset: start,
                message: format!("frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"),
            });
        }
        let mut payload = vec![0u8; len as usize];
        self.input
            .read_exact(&mut payload)
            .map_err(|_| CaptureError::Format {
                path: self.path.clone(),
                offset: start,
                message: format!("truncated frame: {len} bytes announced"),
            })?;
        self.offset += 5 + u64::from(len);
        Ok(Some((h[0], payload)))
    }

    /// Parses a JSON frame payload, naming the offset on failure.
    pub fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        payload: &[u8],
        what: &str,
    ) -> Result<T, CaptureError> {
        serde_json::from_slice(payload).map_err(|e| CaptureError::Format {
            path: self.path.clone(),
            offset: self.offset,
            message: format!("{what} frame: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            abi_version: vigil_bpf::abi::ABI_VERSION,
            vigil_version: "t".into(),
            hostname: "h".into(),
            boot_offset_ns: 5,
            users: Users::default(),
        }
    }

    #[test]
    fn round_trip_and_hostile_files() {
        let dir = std::env::temp_dir().join(format!("vigil-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.vcap");
        let mut w = CaptureWriter::create(&p, &ctx()).unwrap();
        w.record(b"abc").unwrap();
        w.flush().unwrap();
        drop(w);
        let mut r = CaptureReader::open(&p).unwrap();
        assert_eq!(r.context, ctx());
        assert_eq!(
            r.next_frame().unwrap(),
            Some((frame::RECORD, b"abc".to_vec()))
        );
        assert_eq!(r.next_frame().unwrap(), None);

        let bytes = std::fs::read(&p).unwrap();
        // truncated last frame
        let cut = &bytes[..bytes.len() - 1];
        let mut r = CaptureReader::new(cut, &p).unwrap();
        assert!(matches!(r.next_frame(), Err(CaptureError::Format { .. })));
        // bad magic, bad version, huge frame
        assert!(CaptureReader::new(&b"NOTACAPTURE....."[..], &p).is_err());
        let mut v2 = bytes.clone();
        v2[8] = 9;
        let e = CaptureReader::new(&v2[..], &p).err().unwrap().to_string();
        assert!(e.contains("version 9"), "{e}");
        let mut huge = bytes[..16].to_vec();
        huge.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert!(CaptureReader::new(&huge[..], &p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
