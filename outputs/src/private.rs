//! The one way vigil opens a file it writes data into: created with mode
//! 0600, so alerts, captures, spools and state are never readable by
//! group or others, whatever the umask.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// How [`open`] opens the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Append to it, creating it when missing. An existing regular file
    /// that group or others may access is refused: what it already holds
    /// is exposed, and vigil does not change the modes of files it did not
    /// create. Devices and pipes (`/dev/null`, a FIFO to a shipper) keep
    /// their own modes.
    Append,
    /// Replace its content (truncate), creating it when missing; an
    /// existing regular file is set to mode 0600 before anything is
    /// written (its old content is gone).
    Replace,
    /// Create it; fails when it exists.
    New,
}

/// Why [`open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivateError {
    /// Opening or inspecting it failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// [`How::Append`] to a regular file group or others may access.
    #[error("mode {mode:o} lets group or others read it (chmod 600)")]
    Shared {
        /// Its mode (permission bits).
        mode: u32,
    },
}

impl From<PrivateError> for io::Error {
    fn from(e: PrivateError) -> io::Error {
        match e {
            PrivateError::Io(e) => e,
            e @ PrivateError::Shared { .. } => {
                io::Error::new(io::ErrorKind::PermissionDenied, e.to_string())
            }
        }
    }
}

/// Opens `path` for writing as a private file (mode 0600), as `how` says.
pub fn open(path: &Path, how: How) -> Result<File, PrivateError> {
    let mut o = OpenOptions::new();
    o.mode(0o600);
    match how {
        How::Append => o.create(true).append(true),
        How::Replace => o.create(true).write(true).truncate(true),
        How::New => o.create_new(true).write(true),
    };
    let f = o.open(path)?;
    let md = f.metadata()?;
    if md.is_file() && md.mode() & 0o077 != 0 {
        match how {
            How::Append => {
                return Err(PrivateError::Shared {
                    mode: md.mode() & 0o7777,
                });
            }
            How::Replace | How::New => {
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn files_are_created_private_and_shared_ones_refused_or_reset() {
        let dir = std::env::temp_dir().join(format!("vigil-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let d = &dir;
        for how in [How::Append, How::Replace, How::New] {
            let p = d.as_path().join(format!("{how:?}"));
            open(&p, how).unwrap();
            assert_eq!(mode(&p), 0o600, "{how:?} creates 0600");
        }
        assert!(matches!(
            open(&d.as_path().join("New"), How::New),
            Err(PrivateError::Io(e)) if e.kind() == io::ErrorKind::AlreadyExists
        ));
        let shared = d.as_path().join("shared");
        std::fs::write(&shared, "old alerts\n").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
        match open(&shared, How::Append) {
            Err(e @ PrivateError::Shared { mode: 0o644 }) => {
                assert_eq!(io::Error::from(e).kind(), io::ErrorKind::PermissionDenied)
            }
            r => panic!("appending to a 0644 file: {r:?}"),
        }
        assert_eq!(mode(&shared), 0o644, "left as it was");
        open(&shared, How::Replace).unwrap();
        assert_eq!(mode(&shared), 0o600, "replaced content: made private");
        assert_eq!(std::fs::read(&shared).unwrap(), b"");
        // Devices keep their modes.
        open(Path::new("/dev/null"), How::Append).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
