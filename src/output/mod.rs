//! What users keep: continuous recordings, smart-record clips and snapshots,
//! all inside one media root and listed in its recordings index.
//!
//! - [`root`]: the media root and the path checks every configured path passes;
//! - [`name`]: file-name templates and UTC stamps;
//! - [`recorder`]: packets into segmented, crash-safe files;
//! - [`recover`]: how much of a file cut by a crash or a full disk is whole;
//! - [`index`]: the SQLite recordings index, its recovery and retention.

pub mod index;
pub mod name;
pub mod options;
pub mod recorder;
pub mod recover;
pub mod ring;
pub mod root;
pub mod snapshot;
