//! Fetch Parquet corpora and tokenizers (optionally weights) from the HuggingFace Hub into a
//! plain folder, through hf-hub's blocking (ureq) client and its cache: the library behind
//! `bert download` (the CLI's `hub` feature).
//!
//! The repo is listed once (`/api/{datasets,models}/REPO/revision/REV?blobs=true`: file names and
//! sizes, plus the commit the revision points at); the files are then fetched at that commit, so
//! a branch that moves mid-download cannot mix two versions. Each file lands in hf-hub's cache
//! (`$HF_HOME/hub`, resumable there) and is then hard-linked (same filesystem) or copied into
//! the output folder under a hidden temporary name, fsynced and renamed (`place`),
//! so a partial file never sits under its final name. A file already there with the listed size
//! is skipped.
//!
//! `select` (which files) and `failure` (the error messages) are pure functions, tested
//! offline; [`fetch`](mod@fetch) (the network path) is tested against a loopback stand-in of
//! the Hub.

#![warn(missing_docs)]

mod error;
mod failure;
mod fetch;
mod place;
mod select;
mod settings;
mod text;

pub use error::{HubError, Result};
pub use fetch::{download, DownloadRequest, DownloadSummary, FileEvent, Source};
pub use select::PARQUET_BRANCH;
pub use settings::HubSettings;
pub use text::human_bytes;
