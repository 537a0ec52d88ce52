//! sled storage: one tree per kind, a `profiles` tree of per-profile state
//! and a `meta` tree with the schema version.
//!
//! Layout (schema 2; schema 1 is the same layout with items generalised by
//! the older, narrower rules, and is migrated on open: see
//! [`crate::Baselines::open`]):
//! - `meta`: `schema` -> u32 LE version; `last_loss_ns` -> i64 LE.
//! - `profiles`: profile key -> JSON of the profile's mode and counters.
//! - `spawn`, `file`, `connect`, `listen`, `accept`, `capability`, `uid`:
//!   profile key -> the whole set, items sorted, each
//!   `u16 LE length ‖ item ‖ 27-byte entry` (first seen, last seen, count as
//!   LE i64/i64/u64; access, access new since promotion, flags). One value
//!   per profile and kind, not one per item: sled's space and time
//!   amplification on many small keys was 10x (141 MiB vs 12 MiB and 950 ms
//!   vs 13 ms for 90,000 items in one transaction, measured here).
//! - `syscall`: profile key -> 128 bytes (learned bitmap, since-promotion
//!   bitmap; 8 LE u64 each).
//!
//! Every write goes through one multi-tree sled transaction followed by
//! `Db::flush`, so a kill -9 leaves either the state before or after it.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, Transactional, Tree};

use crate::error::{Error, Result};
use crate::profile::{Kind, Meta, Profile, Syscalls, decode_set, encode_set};

/// Schema version this build writes (it reads this and every older one).
///
/// - 1: the first layout.
/// - 2: the same layout; file and spawn items generalised by the wider rules
///   (numbered and random names, rotated logs, protected directories).
///   A schema 1 database is migrated when opened for writing: its items are
///   generalised again (idempotent on patterns) and merged where two become
///   one.
pub const SCHEMA_VERSION: u32 = 2;

const META: &str = "meta";
const PROFILES: &str = "profiles";
const SCHEMA_KEY: &[u8] = b"schema";
const LOSS_KEY: &[u8] = b"last_loss_ns";

/// Indices into `Store::trees`: one per kind (Kind::index), then profiles, meta.
const T_PROFILES: usize = 8;
const T_META: usize = 9;

/// The open database.
pub(crate) struct Store {
    path: PathBuf,
    db: sled::Db,
    trees: Vec<Tree>,
    /// Schema version found on open (this build's for a new database).
    found: u32,
}

/// Creates the data directory 0700 if missing; refuses one that group or
/// others can access.
pub(crate) fn secure_dir(path: &Path) -> Result<()> {
    let dir_err = |what, source| Error::Dir {
        path: path.to_path_buf(),
        what,
        source,
    };
    match fs::metadata(path) {
        Ok(m) => {
            if !m.is_dir() {
                return Err(dir_err(
                    "is not a directory",
                    std::io::Error::from(std::io::ErrorKind::NotADirectory),
                ));
            }
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(Error::InsecureDir {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|e| dir_err("cannot create", e))?;
            // DirBuilder's mode is filtered by the umask; make it exact.
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .map_err(|e| dir_err("cannot chmod 0700", e))
        }
        Err(e) => Err(dir_err("cannot stat", e)),
    }
}

/// Makes sled's files in `dir` 0600 and its directories 0700 (sled creates
/// them with the process umask). Only sled's own names are touched (`conf`,
/// `db`, `snap.*`, `blobs/`), in case the directory is shared.
pub(crate) fn tighten(dir: &Path) -> Result<()> {
    tighten_in(dir, true)
}

fn tighten_in(dir: &Path, top: bool) -> Result<()> {
    let rd = fs::read_dir(dir).map_err(|e| Error::Dir {
        path: dir.to_path_buf(),
        what: "cannot list",
        source: e,
    })?;
    for ent in rd.flatten() {
        let name = ent.file_name();
        let name = name.to_string_lossy();
        let ours = !top || matches!(&*name, "conf" | "db" | "blobs") || name.starts_with("snap.");
        if !ours {
            continue;
        }
        // sled may remove old snapshots meanwhile: a vanished file is fine.
        let Ok(m) = fs::symlink_metadata(ent.path()) else {
            continue;
        };
        if m.file_type().is_symlink() {
            continue;
        }
        let p = ent.path();
        let want = if m.is_dir() { 0o700 } else { 0o600 };
        if m.permissions().mode() & 0o777 != want {
            match fs::set_permissions(&p, fs::Permissions::from_mode(want)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::Dir {
                        path: p.clone(),
                        what: "cannot restrict permissions",
                        source: e,
                    });
                }
            }
        }
        if m.is_dir() {
            tighten_in(&p, false)?;
        }
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the database in `dir`, checking the schema.
    pub(crate) fn open(dir: &Path, cache_bytes: u64) -> Result<Store> {
        secure_dir(dir)?;
        let path = dir.to_path_buf();
        let had_files = fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // vigil flushes explicitly; no background flusher thread timing.
            .flush_every_ms(None);
        // sled's I/O threads hold the file lock a moment after the last
        // handle is dropped (a write job finishing): a database closed in
        // this process an instant ago is retried for up to 1 s before it
        // counts as held by someone else (CI once failed on exactly that).
        let mut tries = 0;
        let db = loop {
            match config.open().map_err(|e| map_sled(&path, e)) {
                Err(Error::Locked { .. }) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                r => break r?,
            }
        };
        let storage = |e| Error::Storage {
            path: path.clone(),
            source: e,
        };
        // Check the version before creating any tree in an existing database.
        let names: Vec<Vec<u8>> = db.tree_names().iter().map(|n| n.to_vec()).collect();
        let has_meta = names.iter().any(|n| n == META.as_bytes());
        let mut schema = SCHEMA_VERSION;
        if has_meta {
            let meta = db.open_tree(META).map_err(storage)?;
            match meta.get(SCHEMA_KEY).map_err(storage)? {
                Some(v) if v.len() == 4 => {
                    let found = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                    if found > SCHEMA_VERSION {
                        return Err(Error::NewerSchema {
                            path,
                            found,
                            supported: SCHEMA_VERSION,
                        });
                    }
                    if found == 0 {
                        return Err(Error::UnknownSchema {
                            path,
                            detail: "schema version 0".into(),
                        });
                    }
                    schema = found;
                }
                Some(v) => {
                    return Err(Error::UnknownSchema {
                        path,
                        detail: format!("schema version record of {} bytes", v.len()),
                    });
                }
                None => {
                    return Err(Error::UnknownSchema {
                        path,
                        detail: "meta tree without a schema version".into(),
                    });
                }
            }
        } else {
            // No meta tree: only a brand-new (empty) database may be initialised.
            let foreign =
                names.iter().any(|n| n.as_slice() != b"__sled__default") || !db.is_empty();
            if foreign {
                return Err(Error::UnknownSchema {
                    path,
                    detail: "data without a vigil schema version".into(),
                });
            }
            let _ = had_files;
            let meta = db.open_tree(META).map_err(storage)?;
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_le_bytes()[..])
                .map_err(storage)?;
        }
        let mut trees = Vec::with_capacity(10);
        for k in Kind::ALL {
            trees.push(db.open_tree(k.name()).map_err(storage)?);
        }
        trees.push(db.open_tree(PROFILES).map_err(storage)?);
        trees.push(db.open_tree(META).map_err(storage)?);
        db.flush().map_err(storage)?;
        tighten(dir)?;
        Ok(Store {
            path,
            db,
            trees,
            found: schema,
        })
    }

    /// The schema version the database had when opened.
    pub(crate) fn schema(&self) -> u32 {
        self.found
    }

    /// Records that the database now has this build's schema (after a
    /// migration has been written).
    pub(crate) fn set_current_schema(&mut self) -> Result<()> {
        self.trees[T_META]
            .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_le_bytes()[..])
            .map_err(|e| self.storage(e))?;
        self.db.flush().map_err(|e| self.storage(e))?;
        self.found = SCHEMA_VERSION;
        Ok(())
    }

    fn storage(&self, e: sled::Error) -> Error {
        map_sled(&self.path, e)
    }

    fn corrupt(&self, tree: &str, detail: String) -> Error {
        Error::CorruptRecord {
            path: self.path.clone(),
            tree: tree.into(),
            detail,
        }
    }

    /// Loads every profile and the last recorded loss time.
    pub(crate) fn load(&self) -> Result<(Vec<Profile>, Option<i64>)> {
        let mut out: Vec<Profile> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for kv in self.trees[T_PROFILES].iter() {
            let (k, v) = kv.map_err(|e| self.storage(e))?;
            let meta: Meta = serde_json::from_slice(&v).map_err(|e| {
                self.corrupt(PROFILES, format!("profile {}: {e}", crate::escape(&k)))
            })?;
            let mut p = Profile::new(&k, meta.last_seen_ns);
            p.meta = meta;
            p.meta_dirty = false;
            index.insert(k.to_vec(), out.len());
            out.push(p);
        }
        for kind in Kind::SETS {
            for kv in self.trees[kind.index()].iter() {
                let (k, v) = kv.map_err(|e| self.storage(e))?;
                let bad = |d: &str| {
                    self.corrupt(
                        kind.name(),
                        format!("{d} for profile {}", crate::escape(&k)),
                    )
                };
                let set = decode_set(&v).ok_or_else(|| bad("malformed set"))?;
                let &i = index
                    .get(&k[..])
                    .ok_or_else(|| bad("set of an unknown profile"))?;
                out[i].sets[kind.index()] = set;
            }
        }
        for kv in self.trees[Kind::Syscall.index()].iter() {
            let (k, v) = kv.map_err(|e| self.storage(e))?;
            let s = Syscalls::decode(&v).ok_or_else(|| {
                self.corrupt("syscall", format!("bad bitmap for {}", crate::escape(&k)))
            })?;
            if let Some(&i) = index.get(&k[..]) {
                out[i].syscalls = s;
            }
        }
        let loss = self.trees[T_META]
            .get(LOSS_KEY)
            .map_err(|e| self.storage(e))?
            .and_then(|v| v.as_ref().try_into().ok().map(i64::from_le_bytes));
        Ok((out, loss))
    }

    /// Writes what is marked dirty in `profiles` (sets, meta, syscalls) and
    /// the last loss time in one transaction, then flushes.
    pub(crate) fn write(&self, profiles: &[&Profile], last_loss: Option<i64>) -> Result<()> {
        let mut batches: Vec<Batch> = (0..10).map(|_| Batch::default()).collect();
        for p in profiles {
            if p.meta_dirty {
                batches[T_PROFILES].insert(&p.key[..], meta_bytes(&p.meta));
            }
            if p.syscalls_dirty {
                batches[Kind::Syscall.index()].insert(&p.key[..], p.syscalls.encode());
            }
            for kind in Kind::SETS {
                if p.dirty_kinds & (1 << kind.index()) == 0 {
                    continue;
                }
                let set = &p.sets[kind.index()];
                if set.is_empty() {
                    batches[kind.index()].remove(&p.key[..]);
                } else {
                    batches[kind.index()].insert(&p.key[..], encode_set(set));
                }
            }
        }
        if let Some(t) = last_loss {
            batches[T_META].insert(LOSS_KEY, &t.to_le_bytes()[..]);
        }
        let r: std::result::Result<(), TransactionError<()>> =
            self.trees.as_slice().transaction(|t| {
                for (i, b) in batches.iter().enumerate() {
                    t[i].apply_batch(b)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        match r {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return Err(self.storage(e)),
            Err(TransactionError::Abort(())) => unreachable!("the closure never aborts"),
        }
        self.db.flush().map_err(|e| self.storage(e))?;
        tighten(&self.path)
    }

    /// Bytes on disk.
    pub(crate) fn size_on_disk(&self) -> Result<u64> {
        self.db.size_on_disk().map_err(|e| self.storage(e))
    }
}

fn meta_bytes(m: &Meta) -> Vec<u8> {
    serde_json::to_vec(m).unwrap_or_default()
}

fn map_sled(path: &Path, e: sled::Error) -> Error {
    if let sled::Error::Io(io) = &e
        && (io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().contains("could not acquire lock"))
    {
        return Error::Locked {
            path: path.to_path_buf(),
        };
    }
    if let sled::Error::Corruption { .. } = e {
        return Error::Corrupt {
            path: path.to_path_buf(),
            source: e,
        };
    }
    Error::Storage {
        path: path.to_path_buf(),
        source: e,
    }
}
