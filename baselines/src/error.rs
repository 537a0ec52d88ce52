//! Typed errors of the baseline store and operations.

use std::path::PathBuf;

/// Everything that can go wrong opening, reading or writing baselines.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data directory could not be created, inspected or secured.
    #[error("baseline directory {path}: {what}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// The data directory is readable or writable by group or others.
    #[error(
        "baseline directory {path} has mode {mode:04o}: it must not be group or world accessible (chmod 700 it)"
    )]
    InsecureDir {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Another process (usually the running agent) holds the database lock.
    #[error("baseline database {path} is in use by another process (is `vigil run` running?)")]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// The database was written by a newer vigil; it is left untouched.
    #[error(
        "baseline database {path} has schema version {found}, this vigil understands up to {supported}; it was not modified"
    )]
    NewerSchema {
        /// The database directory.
        path: PathBuf,
        /// Version found in the `meta` tree.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The database holds data but no (or an unreadable) schema version.
    #[error(
        "baseline database {path} is not a vigil baseline database ({detail}); it was not modified"
    )]
    UnknownSchema {
        /// The database directory.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// A record in the database could not be decoded.
    #[error(
        "baseline database {path}: corrupt record in tree `{tree}`: {detail}; it was not modified"
    )]
    CorruptRecord {
        /// The database directory.
        path: PathBuf,
        /// The sled tree holding the record.
        tree: String,
        /// What is wrong.
        detail: String,
    },
    /// sled found its files corrupt (they are left as they are).
    #[error(
        "baseline database {path} is corrupt: {source}; it was not modified (move it aside to start afresh)"
    )]
    Corrupt {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// sled failed.
    #[error("baseline database {path}: {source}")]
    Storage {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// A profile named by an operation does not exist.
    #[error("no baseline profile `{0}`")]
    NoSuchProfile(String),
    /// An import document could not be parsed.
    #[error("import: {0}")]
    Import(String),
    /// An export could not be serialised.
    #[error("export: {0}")]
    Export(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
