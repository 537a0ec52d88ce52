//! vigil's baseline learner: what each program and each container normally
//! does, kept in sled, with anomalies on drift and whitelist exports.
//!
//! The engine builds an [`Observation`] per enriched event (and per
//! syscall-bitmap read) and calls [`Baselines::observe`], which updates
//! memory only and returns the [`Anomaly`]s of promoted profiles (or resolves
//! a process's profiles once with [`Baselines::resolve`] and passes the
//! [`ProfileRef`] to [`Baselines::observe_ref`] per event). Every few
//! seconds it calls [`Baselines::tick`] (automatic promotion) and
//! [`Baselines::flush`] (one sled transaction for everything that changed);
//! on ring-buffer drops it calls [`Baselines::note_loss`]. The CLI uses
//! [`Baselines::open`] and the operations (`list`, `show`, `promote`,
//! `demote`, `reset`, `diff`, `export_*`, `import_yaml`).
//!
//! See `docs/baselines.md` for the profile key scheme, generalisation rules,
//! modes, storage layout and export formats.

#![deny(missing_docs)]

mod baselines;
mod doc;
mod error;
mod export;
mod generalise;
mod key;
mod names;
mod observation;
mod profile;
mod store;
mod syscalls_x86_64;

pub use baselines::{
    Anomaly, Baselines, Config, FlushStats, ImportSummary, MAX_ITEM_LEN, ProfileRef,
};
pub use doc::{
    ItemDoc, ProfileDoc, ProfileSummary, Readiness, WHITELIST_FORMAT, Whitelist, human_duration,
    render_list,
};
pub use error::{Error, Result};
pub use export::{RUNTIME_SYSCALLS, seccomp_json};
pub use generalise::{
    NO_PID_PREFIXES, PROTECTED_PREFIXES, escape, generalise_into, generalise_into_for,
    generalise_path, generalise_path_for, is_protected, unescape,
};
pub use key::{ContainerKeying, ProfileKeys, profile_keys};
pub use names::{capability_name, syscall_name, syscall_number};
pub use observation::{
    Access, Behaviour, ContainerRef, ExeIdentity, Observation, SYSCALL_WORDS, Subject, SyscallSet,
    Transport,
};
pub use profile::{Kind, Mode};
pub use store::SCHEMA_VERSION;
