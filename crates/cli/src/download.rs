//! `bert download` (cargo feature `hub`): fetch Parquet corpora and tokenizers (optionally
//! weights) from the HuggingFace Hub into a plain folder, through hf-hub's blocking (ureq) client
//! and its cache.
//!
//! The repo is listed once (`/api/{datasets,models}/REPO/revision/REV?blobs=true`: file names and
//! sizes, plus the commit the revision points at); the files are then fetched at that commit, so
//! a branch that moves mid-download cannot mix two versions. Each file lands in hf-hub's cache
//! (`$HF_HOME/hub`, resumable there) and is then hard-linked (same filesystem) or copied into
//! `--out` under a hidden temporary name and renamed, so a partial file never sits under its final
//! name. A file already in `--out` with the listed size is skipped.
//!
//! The selection logic and the error messages are pure functions, tested offline below; the
//! network path is tested against a loopback stand-in of the Hub.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgGroup, Args};
use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use serde::Deserialize;

/// The Hub's auto-converted Parquet branch.
const PARQUET_BRANCH: &str = "refs/convert/parquet";
/// The tokenizer files `--model` fetches when the repo has them, in this order.
const TOKENIZER_FILES: [&str; 4] = [
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];
/// What `--weights` adds (what `bert import` reads).
const WEIGHT_FILES: [&str; 2] = ["config.json", "model.safetensors"];
/// The default Hub, as in hf-hub.
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// `bert download`: Parquet corpora, tokenizers and weights from the HuggingFace Hub.
#[derive(Args, Debug)]
#[command(
    group(ArgGroup::new("source").required(true).multiple(false).args(["dataset", "model"])),
    after_help = "Examples:\n  \
bert download --dataset wikimedia/wikipedia --subset 20231101.en --out data/downloads/wikipedia\n  \
bert download --dataset wikimedia/wikipedia --subset 20231101.en --max-files 1 --out data/downloads/wiki-sample\n  \
bert download --dataset bookcorpus/bookcorpus --revision refs/convert/parquet --out data/downloads/bookcorpus\n  \
bert download --model google-bert/bert-base-uncased --out data/downloads/bert-base-uncased\n  \
bert download --model google-bert/bert-base-uncased --weights --out data/downloads/bert-base-uncased\n\n\
Then: bert prepare --input data/downloads/wikipedia data/downloads/bookcorpus \\\n      \
--vocab data/downloads/bert-base-uncased/vocab.txt --out data/shards\n\n\
Environment (as hf-hub reads it): HF_HOME (cache: $HF_HOME/hub, token file: $HF_HOME/token;\n\
default ~/.cache/huggingface), HF_ENDPOINT (default https://huggingface.co). HF_TOKEN, when set,\n\
takes precedence over the token file (gated or private repos). Files already in --out with the\n\
right size are skipped, so an interrupted download can be rerun. See docs/downloads.md."
)]
pub struct DownloadArgs {
    /// A dataset repo (e.g. wikimedia/wikipedia): fetches its Parquet files.
    #[arg(long, value_name = "REPO")]
    pub dataset: Option<String>,
    /// A model repo (e.g. google-bert/bert-base-uncased): fetches its tokenizer files.
    #[arg(long, value_name = "REPO")]
    pub model: Option<String>,
    /// Only the Parquet files under this folder of the dataset (e.g. 20231101.en).
    #[arg(long, conflicts_with = "model")]
    pub subset: Option<String>,
    /// Only the first N Parquet files (sorted by name): a laptop-sized sample.
    #[arg(long, value_name = "N", conflicts_with = "model", value_parser = parse_max_files)]
    pub max_files: Option<usize>,
    /// Also fetch config.json and model.safetensors (for `bert import`).
    #[arg(long, conflicts_with = "dataset")]
    pub weights: bool,
    /// Branch, tag or commit (refs/convert/parquet: the Hub's auto-converted Parquet files).
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Folder to write the files into (created).
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_max_files(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number of files, 1 or more".into()),
    }
}

/// Runs `bert download`.
pub fn download(args: &DownloadArgs) -> Result<()> {
    let settings = HubSettings::from_env()?;
    let progress = std::io::stderr().is_terminal();
    let summary = run(args, &settings, progress)?;
    println!(
        "{} file{}, {} in `{}` ({} downloaded, {} already present)",
        summary.files,
        if summary.files == 1 { "" } else { "s" },
        human_bytes(summary.bytes),
        args.out.display(),
        summary.fetched,
        summary.skipped
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Settings from the environment

/// Where the Hub is, where hf-hub caches, and the token: resolved as hf-hub 0.5 resolves them
/// (`ApiBuilder::from_env`), plus `HF_TOKEN` as the Python `huggingface_hub` reads it.
#[derive(Debug, Clone, PartialEq)]
struct HubSettings {
    /// HF_ENDPOINT, without a trailing `/`; default https://huggingface.co.
    endpoint: String,
    /// $HF_HOME/hub, or ~/.cache/huggingface/hub.
    cache_dir: PathBuf,
    /// HF_TOKEN when set and not empty. Without it hf-hub reads `$HF_HOME/token` (the file
    /// `huggingface-cli login` writes), which is the cache dir's sibling.
    token: Option<String>,
}

impl HubSettings {
    fn from_env() -> Result<Self> {
        Self::resolve(|name| std::env::var(name).ok())
    }

    fn resolve(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let non_empty = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let endpoint = match non_empty("HF_ENDPOINT") {
            Some(e) => {
                let e = e.trim().trim_end_matches('/').to_string();
                if !(e.starts_with("https://") || e.starts_with("http://")) {
                    bail!("HF_ENDPOINT is `{e}`; it must be a URL such as https://huggingface.co (or a mirror)");
                }
                e
            }
            None => DEFAULT_ENDPOINT.to_string(),
        };
        let cache_dir = match non_empty("HF_HOME") {
            Some(home) => PathBuf::from(home).join("hub"),
            None => match non_empty("HOME").or_else(|| non_empty("USERPROFILE")) {
                Some(home) => PathBuf::from(home).join(".cache").join("huggingface").join("hub"),
                None => bail!(
                    "no home folder (HOME is not set) for hf-hub's cache: set HF_HOME to the folder the HuggingFace cache should live in"
                ),
            },
        };
        let token = non_empty("HF_TOKEN").map(|t| t.trim().to_string());
        Ok(Self {
            endpoint,
            cache_dir,
            token,
        })
    }

    fn api(&self, progress: bool) -> Result<Api> {
        // `from_cache` reads the token file next to the cache, as `ApiBuilder::from_env` does.
        let mut builder = ApiBuilder::from_cache(Cache::new(self.cache_dir.clone()))
            .with_endpoint(self.endpoint.clone())
            .with_progress(progress)
            .with_retries(3)
            .with_user_agent("bert-cli", env!("CARGO_PKG_VERSION"));
        if let Some(token) = &self.token {
            builder = builder.with_token(Some(token.clone()));
        }
        builder
            .build()
            .map_err(|e| anyhow!("could not set up the HuggingFace Hub client: {e}"))
    }
}

// ---------------------------------------------------------------------------------------------
// What to fetch

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RepoKind {
    Dataset,
    Model,
}

/// One repo at one revision, for URLs and messages.
#[derive(Debug, Clone)]
struct Target {
    kind: RepoKind,
    repo: String,
    revision: String,
}

impl Target {
    fn noun(&self) -> &'static str {
        match self.kind {
            RepoKind::Dataset => "dataset",
            RepoKind::Model => "model",
        }
    }

    fn hub_repo(&self, revision: &str) -> Repo {
        let kind = match self.kind {
            RepoKind::Dataset => RepoType::Dataset,
            RepoKind::Model => RepoType::Model,
        };
        Repo::with_revision(self.repo.clone(), kind, revision.to_string())
    }

    /// The listing URL hf-hub's `info_request` calls.
    fn listing_url(&self, endpoint: &str) -> String {
        let prefix = match self.kind {
            RepoKind::Dataset => "datasets",
            RepoKind::Model => "models",
        };
        format!(
            "{endpoint}/api/{prefix}/{}/revision/{}",
            self.repo,
            self.revision.replace('/', "%2F")
        )
    }

    /// The repo's page, for people.
    fn page_url(&self, endpoint: &str) -> String {
        match self.kind {
            RepoKind::Dataset => format!("{endpoint}/datasets/{}", self.repo),
            RepoKind::Model => format!("{endpoint}/{}", self.repo),
        }
    }
}

/// A file of the repo listing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RemoteFile {
    /// Path in the repo, `/`-separated.
    name: String,
    /// Bytes, when the listing says.
    size: Option<u64>,
}

/// A file to fetch: where it is in the repo and where it goes under `--out`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    remote: String,
    local: PathBuf,
    size: Option<u64>,
}

/// `owner/name` (or a legacy `name`), as the Hub spells repo ids.
fn validate_repo_id(id: &str, flag: &str) -> Result<()> {
    if id.contains("://") || id.starts_with("huggingface.co/") {
        bail!(
            "--{flag} takes a repo id such as `wikimedia/wikipedia` or `google-bert/bert-base-uncased`, not a URL (`{id}`)"
        );
    }
    let parts: Vec<&str> = id.split('/').collect();
    let well_formed = !id.is_empty()
        && parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if !well_formed {
        bail!(
            "--{flag} `{id}` is not a Hub repo id: expected `owner/name` (letters, digits, `-`, `_`, `.`), e.g. `wikimedia/wikipedia`"
        );
    }
    Ok(())
}

/// A `--subset` folder: relative, `/`-separated, no `..`; returned without trailing `/`.
fn normalize_subset(subset: &str) -> Result<String> {
    let trimmed = subset.trim().trim_matches('/');
    let ok = !trimmed.is_empty()
        && !trimmed.contains('\\')
        && trimmed
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if !ok {
        bail!("--subset `{subset}` must be a folder of the dataset repo, e.g. `20231101.en`");
    }
    Ok(trimmed.to_string())
}

/// A repo path as a relative local path; refuses anything that could leave `--out`.
fn safe_relative_path(name: &str) -> Result<PathBuf> {
    let bad =
        || anyhow!("the Hub listed a file with an unsafe path `{name}`; refusing to write it");
    if name.is_empty() || name.contains('\\') || name.contains(':') {
        return Err(bad());
    }
    let mut out = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(c) => out.push(c),
            _ => return Err(bad()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn is_parquet(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".parquet")
}

/// The top-level folders that hold Parquet files (the dataset's subsets / configs), sorted.
fn parquet_folders(files: &[RemoteFile]) -> Vec<String> {
    files
        .iter()
        .filter(|f| is_parquet(&f.name))
        .filter_map(|f| f.name.split_once('/').map(|(dir, _)| dir.to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The Parquet files of a dataset listing: under `subset/` when given (the prefix is stripped
/// from the local path), sorted by name, the first `max_files`.
fn select_dataset_files(
    target: &Target,
    files: &[RemoteFile],
    subset: Option<&str>,
    max_files: Option<usize>,
) -> Result<Vec<Planned>> {
    let mut parquet: Vec<&RemoteFile> = files.iter().filter(|f| is_parquet(&f.name)).collect();
    if parquet.is_empty() {
        let mut names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        let shown = preview(&names, 8);
        if target.revision == PARQUET_BRANCH {
            bail!(
                "dataset `{}` has no Parquet files at revision `{}` either ({} files: {shown}); the Hub may not have converted it — see {}",
                target.repo,
                target.revision,
                files.len(),
                target.page_url(DEFAULT_ENDPOINT)
            );
        }
        bail!(
            "dataset `{}` has no Parquet files at revision `{}` ({} files: {shown}); the Hub keeps an auto-converted Parquet copy of most datasets on the branch `{PARQUET_BRANCH}`: rerun with `--revision {PARQUET_BRANCH}`",
            target.repo,
            target.revision,
            files.len()
        );
    }
    let mut selected: Vec<Planned> = Vec::new();
    if let Some(subset) = subset {
        let prefix = format!("{subset}/");
        parquet.retain(|f| f.name.starts_with(&prefix));
        if parquet.is_empty() {
            let folders = parquet_folders(files);
            let available = if folders.is_empty() {
                "its Parquet files are at the top level: leave out --subset".to_string()
            } else {
                let names: Vec<&str> = folders.iter().map(String::as_str).collect();
                format!("folders with Parquet files: {}", preview(&names, 12))
            };
            bail!(
                "dataset `{}` has no Parquet files under `{prefix}` at revision `{}`; {available}",
                target.repo,
                target.revision
            );
        }
        for f in &parquet {
            selected.push(Planned {
                remote: f.name.clone(),
                local: safe_relative_path(&f.name[prefix.len()..])?,
                size: f.size,
            });
        }
    } else {
        for f in &parquet {
            selected.push(Planned {
                remote: f.name.clone(),
                local: safe_relative_path(&f.name)?,
                size: f.size,
            });
        }
    }
    selected.sort_by(|a, b| a.remote.cmp(&b.remote));
    if let Some(n) = max_files {
        selected.truncate(n);
    }
    Ok(selected)
}

/// The tokenizer files a model repo has (and config + weights with `weights`), in a fixed order.
fn select_model_files(
    target: &Target,
    files: &[RemoteFile],
    weights: bool,
) -> Result<Vec<Planned>> {
    let find = |name: &str| files.iter().find(|f| f.name == name);
    if !TOKENIZER_FILES[..2].iter().any(|n| find(n).is_some()) {
        bail!(
            "model `{}` at revision `{}` has neither vocab.txt nor tokenizer.json ({} files: {})",
            target.repo,
            target.revision,
            files.len(),
            preview(
                &files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
                8
            )
        );
    }
    let mut wanted: Vec<&str> = TOKENIZER_FILES.to_vec();
    if weights {
        for name in WEIGHT_FILES {
            if find(name).is_none() {
                let others: Vec<&str> = files
                    .iter()
                    .map(|f| f.name.as_str())
                    .filter(|n| {
                        n.ends_with(".bin") || n.ends_with(".safetensors") || n.ends_with(".h5")
                    })
                    .collect();
                let hint = if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (it has {}; `bert import` reads safetensors only)",
                        preview(&others, 4)
                    )
                };
                bail!(
                    "model `{}` at revision `{}` has no `{name}`, which --weights needs{hint}",
                    target.repo,
                    target.revision
                );
            }
        }
        wanted.extend(WEIGHT_FILES);
    }
    Ok(wanted
        .into_iter()
        .filter_map(find)
        .map(|f| Planned {
            remote: f.name.clone(),
            local: PathBuf::from(&f.name),
            size: f.size,
        })
        .collect())
}

/// `a, b, c, … (N more)`.
fn preview(names: &[&str], max: usize) -> String {
    let mut s = names
        .iter()
        .take(max)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > max {
        s.push_str(&format!(", … ({} more)", names.len() - max));
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

/// `1.2 GB`, decimal units as the Hub shows them.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

// ---------------------------------------------------------------------------------------------
// Failures, as one paragraph each

/// What went wrong talking to the Hub.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    /// The Hub answered with an HTTP error status.
    Status(u16),
    /// No answer: DNS, connection, TLS, timeout, proxy.
    Network(String),
    /// Anything else (cache folder, malformed answer).
    Other(String),
}

fn classify_ureq(e: &ureq::Error) -> Failure {
    match e {
        ureq::Error::StatusCode(code) => Failure::Status(*code),
        ureq::Error::Json(_) | ureq::Error::BodyExceedsLimit(_) => {
            Failure::Other(format!("unexpected answer: {e}"))
        }
        other => Failure::Network(other.to_string()),
    }
}

fn classify_api_error(e: &ApiError) -> Failure {
    match e {
        ApiError::RequestError(inner) => classify_ureq(inner),
        ApiError::TooManyRetries(inner) => classify_api_error(inner),
        ApiError::IoError(io) => Failure::Network(format!("I/O error: {io}")),
        ApiError::MissingHeader(_) | ApiError::InvalidHeader(_) => Failure::Other(format!(
            "unexpected answer ({e}); is HF_ENDPOINT a HuggingFace Hub or a mirror of one?"
        )),
        ApiError::LockAcquisition(path) => Failure::Other(format!(
            "another process is downloading the same file (lock `{}`); wait for it, or delete the lock if no download is running",
            path.display()
        )),
        ApiError::InvalidResume => Failure::Other(
            "a partial download in hf-hub's cache is corrupt; delete the `.part` files under the cache folder and rerun".into(),
        ),
        other => Failure::Other(other.to_string()),
    }
}

/// One paragraph: what failed, the URL, and what to do about it.
fn failure_message(
    what: &str,
    url: &str,
    target: &Target,
    settings: &HubSettings,
    failure: &Failure,
) -> String {
    let env_hint = format!(
        "check your network (and HTTPS_PROXY if you need a proxy), or set HF_ENDPOINT to a reachable Hub mirror (now {}) and HF_HOME to where hf-hub should keep its cache and token (now {})",
        settings.endpoint,
        settings
            .cache_dir
            .parent()
            .unwrap_or(&settings.cache_dir)
            .display()
    );
    match failure {
        Failure::Network(detail) => format!(
            "could not {what}: the HuggingFace Hub did not answer at {url} ({detail}); {env_hint}"
        ),
        Failure::Status(code @ (401 | 403)) => format!(
            "could not {what}: the Hub refused access (HTTP {code}) at {url}; the {} repo `{}` does not exist, is private, or is gated — check the repo id (--dataset for datasets, --model for models), accept its terms at {} if it is gated, and set HF_TOKEN (or log in so that $HF_HOME/token exists)",
            target.noun(),
            target.repo,
            target.page_url(&settings.endpoint)
        ),
        Failure::Status(404) => format!(
            "could not {what}: not found (HTTP 404) at {url}; check the {} repo id `{}` and --revision `{}`{}",
            target.noun(),
            target.repo,
            target.revision,
            if target.kind == RepoKind::Dataset && target.revision != PARQUET_BRANCH {
                format!(" (datasets converted by the Hub live on `--revision {PARQUET_BRANCH}`)")
            } else {
                String::new()
            }
        ),
        Failure::Status(code) => format!(
            "could not {what}: the Hub answered HTTP {code} at {url}; try again later (rerunning skips the files already in --out and resumes partial ones in hf-hub's cache), or {env_hint}"
        ),
        Failure::Other(detail) => format!("could not {what} ({url}): {detail}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Network and files

#[derive(Deserialize)]
struct Listing {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<ListedFile>,
}

#[derive(Deserialize)]
struct ListedFile {
    rfilename: String,
    size: Option<u64>,
    lfs: Option<ListedLfs>,
}

#[derive(Deserialize)]
struct ListedLfs {
    size: Option<u64>,
}

/// The repo's files with sizes, and the commit the revision points at (when the Hub says).
fn list_repo(
    repo: &ApiRepo,
    target: &Target,
    settings: &HubSettings,
) -> Result<(Option<String>, Vec<RemoteFile>)> {
    let url = target.listing_url(&settings.endpoint);
    let what = format!(
        "list the files of {} `{}` at revision `{}`",
        target.noun(),
        target.repo,
        target.revision
    );
    let fail = |f: Failure| anyhow!(failure_message(&what, &url, target, settings, &f));
    let mut response = repo
        .info_request()
        .query("blobs", "true")
        .call()
        .map_err(|e| fail(classify_ureq(&e)))?;
    let text = response
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .map_err(|e| fail(classify_ureq(&e)))?;
    let listing: Listing = serde_json::from_str(&text).map_err(|e| {
        fail(Failure::Other(format!(
            "the answer is not a repo listing: {e}"
        )))
    })?;
    let files = listing
        .siblings
        .into_iter()
        .map(|s| RemoteFile {
            size: s.size.or(s.lfs.and_then(|l| l.size)),
            name: s.rfilename,
        })
        .collect();
    Ok((listing.sha.filter(|s| !s.is_empty()), files))
}

/// The size of `path` when it is a regular file (following links).
fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// Whether `dest` already holds the file: same size as listed. Unknown sizes are fetched again.
fn already_present(dest: &Path, size: Option<u64>) -> bool {
    matches!((size, file_size(dest)), (Some(want), Some(have)) if want == have)
}

/// The hidden temporary name `dest` is written under before the rename (`bert prepare` skips
/// hidden files, so a leftover never passes for a corpus file).
fn temp_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    Linked,
    Copied,
}

/// Puts `src` (a file of hf-hub's cache, usually a symlink to a blob) at `dest`: a hard link to
/// the blob where the filesystem allows (no second copy), a copy otherwise; through a temporary
/// name and a rename either way.
fn place_file(src: &Path, dest: &Path) -> Result<Placed> {
    let blob = std::fs::canonicalize(src)
        .with_context(|| format!("resolving `{}` in hf-hub's cache", src.display()))?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating `{}`", parent.display()))?;
    }
    let tmp = temp_name(dest);
    if tmp.exists() {
        std::fs::remove_file(&tmp).with_context(|| format!("removing `{}`", tmp.display()))?;
    }
    let placed = match std::fs::hard_link(&blob, &tmp) {
        Ok(()) => Placed::Linked,
        Err(_) => {
            std::fs::copy(&blob, &tmp)
                .with_context(|| format!("copying `{}` to `{}`", blob.display(), tmp.display()))?;
            Placed::Copied
        }
    };
    std::fs::rename(&tmp, dest)
        .with_context(|| format!("renaming `{}` to `{}`", tmp.display(), dest.display()))?;
    Ok(placed)
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Summary {
    files: usize,
    bytes: u64,
    fetched: usize,
    skipped: usize,
}

/// Lists, selects and fetches; prints one line per file.
fn run(args: &DownloadArgs, settings: &HubSettings, progress: bool) -> Result<Summary> {
    let (kind, repo_id, flag) = match (&args.dataset, &args.model) {
        (Some(d), None) => (RepoKind::Dataset, d, "dataset"),
        (None, Some(m)) => (RepoKind::Model, m, "model"),
        _ => bail!("give exactly one of --dataset and --model"),
    };
    validate_repo_id(repo_id, flag)?;
    let revision = args.revision.trim();
    if revision.is_empty() || revision.contains(char::is_whitespace) {
        bail!(
            "--revision `{}` is not a branch, tag or commit",
            args.revision
        );
    }
    let subset = args.subset.as_deref().map(normalize_subset).transpose()?;
    let target = Target {
        kind,
        repo: repo_id.clone(),
        revision: revision.to_string(),
    };

    let api = settings.api(progress)?;
    tracing::info!(
        "listing {} `{}` at `{}` ({})",
        target.noun(),
        target.repo,
        target.revision,
        settings.endpoint
    );
    let (commit, files) = list_repo(
        &api.repo(target.hub_repo(&target.revision)),
        &target,
        settings,
    )?;
    let plan = match kind {
        RepoKind::Dataset => {
            select_dataset_files(&target, &files, subset.as_deref(), args.max_files)?
        }
        RepoKind::Model => select_model_files(&target, &files, args.weights)?,
    };
    if kind == RepoKind::Dataset && subset.is_none() {
        let folders = parquet_folders(&files);
        if folders.len() > 1 {
            let names: Vec<&str> = folders.iter().map(String::as_str).collect();
            tracing::warn!(
                "no --subset: taking Parquet files from {} folders ({}); pass --subset to take one",
                folders.len(),
                preview(&names, 6)
            );
        }
    }
    // Fetch at the listed commit, so a branch that moves mid-download cannot mix versions.
    let pinned = commit.clone().unwrap_or_else(|| target.revision.clone());
    let known: u64 = plan.iter().filter_map(|p| p.size).sum();
    tracing::info!(
        "{} file{} selected ({}{}) at commit {}, into `{}`",
        plan.len(),
        if plan.len() == 1 { "" } else { "s" },
        human_bytes(known),
        if plan.iter().any(|p| p.size.is_none()) {
            " + unknown sizes"
        } else {
            ""
        },
        pinned,
        args.out.display()
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating `{}`", args.out.display()))?;

    let hub_repo = api.repo(target.hub_repo(&pinned));
    let mut summary = Summary::default();
    for (i, file) in plan.iter().enumerate() {
        let dest = args.out.join(&file.local);
        summary.files += 1;
        if already_present(&dest, file.size) {
            let size = file.size.unwrap_or_default();
            summary.bytes += size;
            summary.skipped += 1;
            println!(
                "  present     {:>9}  {}",
                human_bytes(size),
                file.local.display()
            );
            continue;
        }
        tracing::info!(
            "[{}/{}] {} ({})",
            i + 1,
            plan.len(),
            file.remote,
            file.size
                .map(human_bytes)
                .unwrap_or_else(|| "size unknown".into())
        );
        let url = hub_repo.url(&file.remote);
        let what = format!(
            "download `{}` of {} `{}`",
            file.remote,
            target.noun(),
            target.repo
        );
        let fail = |e: &ApiError| {
            anyhow!(failure_message(
                &what,
                &url,
                &target,
                settings,
                &classify_api_error(e)
            ))
        };
        // `get` reuses hf-hub's cache; a cached file of the wrong size is fetched once more.
        let mut cached = hub_repo.get(&file.remote).map_err(|e| fail(&e))?;
        if file.size.is_some() && file_size(&cached) != file.size {
            tracing::warn!(
                "`{}` in hf-hub's cache has the wrong size; fetching it again",
                cached.display()
            );
            cached = hub_repo.download(&file.remote).map_err(|e| fail(&e))?;
        }
        let have = file_size(&cached).ok_or_else(|| {
            anyhow!(
                "hf-hub returned `{}`, which is not a file",
                cached.display()
            )
        })?;
        if let Some(want) = file.size {
            if have != want {
                bail!(
                    "`{}` downloaded from {url} has {have} bytes, but the Hub lists {want}; rerun to fetch it again",
                    file.remote
                );
            }
        }
        let placed = place_file(&cached, &dest)?;
        tracing::debug!(
            "{:?} `{}` -> `{}`",
            placed,
            cached.display(),
            dest.display()
        );
        summary.bytes += have;
        summary.fetched += 1;
        println!(
            "  downloaded  {:>9}  {}",
            human_bytes(have),
            file.local.display()
        );
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};

    #[derive(Parser, Debug)]
    struct TestCli {
        #[command(subcommand)]
        command: TestCommand,
    }

    #[derive(Subcommand, Debug)]
    enum TestCommand {
        Download(DownloadArgs),
    }

    fn parse(args: &[&str]) -> std::result::Result<DownloadArgs, clap::Error> {
        let argv = ["bert", "download"].iter().chain(args).copied();
        TestCli::try_parse_from(argv).map(|cli| match cli.command {
            TestCommand::Download(a) => a,
        })
    }

    fn dataset_target(revision: &str) -> Target {
        Target {
            kind: RepoKind::Dataset,
            repo: "wikimedia/wikipedia".into(),
            revision: revision.into(),
        }
    }

    fn model_target() -> Target {
        Target {
            kind: RepoKind::Model,
            repo: "google-bert/bert-base-uncased".into(),
            revision: "main".into(),
        }
    }

    fn files(names: &[(&str, u64)]) -> Vec<RemoteFile> {
        names
            .iter()
            .map(|(n, s)| RemoteFile {
                name: n.to_string(),
                size: Some(*s),
            })
            .collect()
    }

    fn wikipedia_listing() -> Vec<RemoteFile> {
        let mut v = vec![
            (".gitattributes".to_string(), 10),
            ("README.md".to_string(), 20),
        ];
        // Deliberately unsorted, other languages around the subset, one prefix look-alike.
        for i in [2u64, 0, 1] {
            v.push((
                format!("20231101.en/train-{i:05}-of-00003.parquet"),
                100 + i,
            ));
        }
        v.push(("20231101.ab/train-00000-of-00001.parquet".into(), 7));
        v.push(("20231101.en-x/train-00000-of-00001.parquet".into(), 8));
        v.push(("20231101.fr/train-00000-of-00001.parquet".into(), 9));
        v.into_iter()
            .map(|(name, s)| RemoteFile {
                name,
                size: Some(s),
            })
            .collect()
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        TestCli::command().debug_assert();
    }

    #[test]
    fn arguments_parse_and_validate() {
        let a = parse(&[
            "--dataset",
            "wikimedia/wikipedia",
            "--subset",
            "20231101.en",
            "--out",
            "o",
            "--max-files",
            "2",
        ])
        .unwrap();
        assert_eq!(a.dataset.as_deref(), Some("wikimedia/wikipedia"));
        assert_eq!(a.subset.as_deref(), Some("20231101.en"));
        assert_eq!(a.max_files, Some(2));
        assert_eq!(a.revision, "main");
        let a = parse(&[
            "--model",
            "google-bert/bert-base-uncased",
            "--weights",
            "--out",
            "o",
        ])
        .unwrap();
        assert!(a.weights && a.model.is_some() && a.dataset.is_none());
        let a = parse(&[
            "--dataset",
            "bookcorpus/bookcorpus",
            "--revision",
            "refs/convert/parquet",
            "--out",
            "o",
        ])
        .unwrap();
        assert_eq!(a.revision, "refs/convert/parquet");

        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(kind(&["--out", "o"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["--dataset", "a/b", "--model", "c/d", "--out", "o"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["--dataset", "a/b"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["--model", "a/b", "--subset", "x", "--out", "o"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["--model", "a/b", "--max-files", "1", "--out", "o"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["--dataset", "a/b", "--weights", "--out", "o"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["--subset", "x", "--out", "o"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["--dataset", "a/b", "--max-files", "0", "--out", "o"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["--dataset", "a/b", "--max-files", "x", "--out", "o"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn repo_ids_are_checked() {
        for ok in [
            "wikimedia/wikipedia",
            "bookcorpus",
            "google-bert/bert-base-uncased",
            "a_b/c.d-e",
        ] {
            validate_repo_id(ok, "dataset").unwrap();
        }
        for bad in ["", "a/b/c", "/a", "a/", "../x", "a/..", "a b/c", "a/b?c"] {
            assert!(validate_repo_id(bad, "dataset").is_err(), "{bad:?}");
        }
        let err = validate_repo_id(
            "https://huggingface.co/datasets/wikimedia/wikipedia",
            "dataset",
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a URL"), "{err}");
    }

    #[test]
    fn subsets_and_paths_are_checked() {
        assert_eq!(normalize_subset("20231101.en").unwrap(), "20231101.en");
        assert_eq!(
            normalize_subset("/plain_text/train/").unwrap(),
            "plain_text/train"
        );
        for bad in ["", "/", "..", "a/../b", "a\\b", "a//b"] {
            assert!(normalize_subset(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            safe_relative_path("a/b.parquet").unwrap(),
            PathBuf::from("a").join("b.parquet")
        );
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a\\b", "c:x", "./"] {
            assert!(safe_relative_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dataset_selection_filters_sorts_strips_and_truncates() {
        let t = dataset_target("main");
        let listing = wikipedia_listing();
        let plan = select_dataset_files(&t, &listing, Some("20231101.en"), None).unwrap();
        let remote: Vec<&str> = plan.iter().map(|p| p.remote.as_str()).collect();
        assert_eq!(
            remote,
            [
                "20231101.en/train-00000-of-00003.parquet",
                "20231101.en/train-00001-of-00003.parquet",
                "20231101.en/train-00002-of-00003.parquet"
            ]
        );
        assert_eq!(plan[0].local, PathBuf::from("train-00000-of-00003.parquet"));
        assert_eq!(plan[2].size, Some(102));

        let two = select_dataset_files(&t, &listing, Some("20231101.en"), Some(2)).unwrap();
        assert_eq!(two, plan[..2].to_vec());
        let many = select_dataset_files(&t, &listing, Some("20231101.en"), Some(99)).unwrap();
        assert_eq!(many.len(), 3);

        // No subset: every Parquet file, paths kept so the folders cannot collide.
        let all = select_dataset_files(&t, &listing, None, None).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].remote, "20231101.ab/train-00000-of-00001.parquet");
        assert_eq!(
            all[0].local,
            PathBuf::from("20231101.ab").join("train-00000-of-00001.parquet")
        );
        assert!(all.iter().all(|p| p.remote.ends_with(".parquet")));
        assert_eq!(
            parquet_folders(&listing),
            ["20231101.ab", "20231101.en", "20231101.en-x", "20231101.fr"]
        );

        // Nested subsets (the Parquet branch's config/split layout).
        let branch = files(&[
            ("plain_text/train/0001.parquet", 2),
            ("plain_text/train/0000.parquet", 1),
            ("plain_text/test/0000.parquet", 3),
        ]);
        let plan = select_dataset_files(
            &dataset_target(PARQUET_BRANCH),
            &branch,
            Some("plain_text/train"),
            None,
        )
        .unwrap();
        assert_eq!(
            plan.iter().map(|p| p.local.clone()).collect::<Vec<_>>(),
            [PathBuf::from("0000.parquet"), PathBuf::from("0001.parquet")]
        );
    }

    #[test]
    fn dataset_selection_explains_what_is_missing() {
        let listing = wikipedia_listing();
        let err =
            select_dataset_files(&dataset_target("main"), &listing, Some("20231101.de"), None)
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("under `20231101.de/`")
                && err.contains("20231101.en")
                && err.contains("20231101.fr"),
            "{err}"
        );

        let scripts = files(&[("bookcorpus.py", 10), ("README.md", 20)]);
        let err = select_dataset_files(&dataset_target("main"), &scripts, None, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no Parquet files")
                && err.contains("--revision refs/convert/parquet")
                && err.contains("bookcorpus.py"),
            "{err}"
        );
        let err = select_dataset_files(&dataset_target(PARQUET_BRANCH), &scripts, None, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("either") && !err.contains("rerun with"),
            "{err}"
        );

        let top = files(&[("train.parquet", 1)]);
        let err = select_dataset_files(&dataset_target("main"), &top, Some("en"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("leave out --subset"), "{err}");
    }

    #[test]
    fn model_selection_takes_what_exists() {
        let t = model_target();
        let repo = files(&[
            ("config.json", 570),
            ("model.safetensors", 440_000_000),
            ("pytorch_model.bin", 440_000_000),
            ("tokenizer.json", 466_000),
            ("tokenizer_config.json", 48),
            ("vocab.txt", 232_000),
        ]);
        let names = |p: Vec<Planned>| p.into_iter().map(|p| p.remote).collect::<Vec<_>>();
        assert_eq!(
            names(select_model_files(&t, &repo, false).unwrap()),
            ["vocab.txt", "tokenizer.json", "tokenizer_config.json"]
        );
        assert_eq!(
            names(select_model_files(&t, &repo, true).unwrap()),
            [
                "vocab.txt",
                "tokenizer.json",
                "tokenizer_config.json",
                "config.json",
                "model.safetensors"
            ]
        );

        let only_bin = files(&[
            ("config.json", 1),
            ("pytorch_model.bin", 2),
            ("vocab.txt", 3),
        ]);
        let err = select_model_files(&t, &only_bin, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("pytorch_model.bin"),
            "{err}"
        );
        assert_eq!(
            names(select_model_files(&t, &only_bin, false).unwrap()),
            ["vocab.txt"]
        );

        let none = files(&[("config.json", 1), ("model.safetensors", 2)]);
        let err = select_model_files(&t, &none, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("neither vocab.txt nor tokenizer.json"),
            "{err}"
        );
    }

    #[test]
    fn sizes_read_like_the_hub() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_000), "1.0 kB");
        assert_eq!(human_bytes(231_508), "231.5 kB");
        assert_eq!(human_bytes(440_473_133), "440.5 MB");
        assert_eq!(human_bytes(11_100_000_000), "11.1 GB");
        assert_eq!(preview(&[], 3), "none");
        assert_eq!(preview(&["a", "b", "c", "d"], 2), "a, b, … (2 more)");
    }

    #[test]
    fn settings_follow_hf_hub() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            let map: HashMap<&str, &str> = pairs.iter().copied().collect();
            move |k: &str| map.get(k).map(|v| v.to_string())
        };
        let s = HubSettings::resolve(env(&[("HOME", "/home/u")])).unwrap();
        assert_eq!(s.endpoint, "https://huggingface.co");
        assert_eq!(s.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(s.token, None);
        let s = HubSettings::resolve(env(&[
            ("HOME", "/home/u"),
            ("HF_HOME", "/data/hf"),
            ("HF_ENDPOINT", "https://hf-mirror.example/"),
            ("HF_TOKEN", " hf_abc \n"),
        ]))
        .unwrap();
        assert_eq!(s.endpoint, "https://hf-mirror.example");
        assert_eq!(s.cache_dir, PathBuf::from("/data/hf/hub"));
        assert_eq!(s.token.as_deref(), Some("hf_abc"));
        let s = HubSettings::resolve(env(&[
            ("HF_HOME", "/data/hf"),
            ("HF_TOKEN", ""),
            ("HF_ENDPOINT", ""),
        ]))
        .unwrap();
        assert_eq!(
            (s.token, s.endpoint.as_str()),
            (None, "https://huggingface.co")
        );
        assert!(
            HubSettings::resolve(env(&[("HOME", "/h"), ("HF_ENDPOINT", "huggingface.co")]))
                .is_err()
        );
        let err = HubSettings::resolve(env(&[])).unwrap_err().to_string();
        assert!(err.contains("HF_HOME"), "{err}");
    }

    #[test]
    fn failures_read_as_one_paragraph() {
        let settings = HubSettings {
            endpoint: DEFAULT_ENDPOINT.into(),
            cache_dir: PathBuf::from("/root/.cache/huggingface/hub"),
            token: None,
        };
        let t = dataset_target("main");
        let url = t.listing_url(&settings.endpoint);
        assert_eq!(
            url,
            "https://huggingface.co/api/datasets/wikimedia/wikipedia/revision/main"
        );
        assert_eq!(
            dataset_target(PARQUET_BRANCH).listing_url("https://h"),
            "https://h/api/datasets/wikimedia/wikipedia/revision/refs%2Fconvert%2Fparquet"
        );
        let offline = classify_ureq(&ureq::Error::HostNotFound);
        assert!(matches!(offline, Failure::Network(_)));
        let msg = failure_message("list the files", &url, &t, &settings, &offline);
        for needle in [
            url.as_str(),
            "check your network",
            "HF_ENDPOINT",
            "HF_HOME",
            "/root/.cache/huggingface",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from {msg}");
        }
        assert!(!msg.contains('\n'));

        let denied = classify_ureq(&ureq::Error::StatusCode(401));
        let msg = failure_message("list the files", &url, &t, &settings, &denied);
        assert!(
            msg.contains("HTTP 401") && msg.contains("HF_TOKEN") && msg.contains("gated"),
            "{msg}"
        );
        let msg = failure_message("list", &url, &t, &settings, &Failure::Status(404));
        assert!(msg.contains("--revision refs/convert/parquet"), "{msg}");
        let msg = failure_message(
            "list",
            &url,
            &model_target(),
            &settings,
            &Failure::Status(404),
        );
        assert!(!msg.contains("refs/convert"), "{msg}");
        let msg = failure_message(
            "get",
            &url,
            &t,
            &settings,
            &classify_api_error(&ApiError::TooManyRetries(Box::new(ApiError::RequestError(
                Box::new(ureq::Error::StatusCode(503)),
            )))),
        );
        assert!(
            msg.contains("HTTP 503") && msg.contains("try again later"),
            "{msg}"
        );
    }

    #[test]
    fn present_files_are_recognised_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.parquet");
        assert!(!already_present(&p, Some(3)));
        std::fs::write(&p, b"abc").unwrap();
        assert!(already_present(&p, Some(3)));
        assert!(!already_present(&p, Some(4)));
        assert!(!already_present(&p, None));
        assert!(!already_present(dir.path(), Some(0)));
        assert_eq!(temp_name(&p), dir.path().join(".a.parquet.partial"));
    }

    #[cfg(unix)]
    #[test]
    fn placing_resolves_cache_symlinks_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        let snap = dir.path().join("snapshots/abc/sub");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(blobs.join("etag1"), b"parquet bytes").unwrap();
        // hf-hub's snapshot entries are relative symlinks to the blobs.
        std::os::unix::fs::symlink("../../../blobs/etag1", snap.join("f.parquet")).unwrap();
        let out = dir.path().join("out/deeper");
        let dest = out.join("f.parquet");
        place_file(&snap.join("f.parquet"), &dest).unwrap();
        let meta = std::fs::symlink_metadata(&dest).unwrap();
        assert!(meta.is_file(), "a real file, not a (broken) link");
        assert_eq!(std::fs::read(&dest).unwrap(), b"parquet bytes");
        assert!(!temp_name(&dest).exists());
        // A stale partial file and a wrong-sized old copy are both replaced.
        std::fs::remove_file(&dest).unwrap();
        std::fs::write(&dest, b"old").unwrap();
        std::fs::write(temp_name(&dest), b"stale").unwrap();
        place_file(&snap.join("f.parquet"), &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"parquet bytes");
        assert!(!temp_name(&dest).exists());
        assert!(place_file(&snap.join("missing"), &out.join("x")).is_err());
    }

    // --- Against a loopback stand-in of the Hub (no internet needed) -------------------------

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    /// Serves a repo listing at `/api/...` and file bytes at `/.../resolve/COMMIT/...`, with the
    /// headers hf-hub reads (etag, x-repo-commit, Content-Range). Counts file downloads.
    struct FakeHub {
        endpoint: String,
        downloads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    fn fake_hub(
        listing_path: &'static str,
        listing: String,
        files: Vec<(&'static str, Vec<u8>)>,
    ) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let downloads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = downloads.clone();
        std::thread::spawn(move || {
            // Bounded: the test process ends it; each connection carries one request.
            for stream in listener.incoming().take(200).flatten() {
                serve_one(stream, listing_path, &listing, &files, &counter);
            }
        });
        FakeHub {
            endpoint,
            downloads,
        }
    }

    fn serve_one(
        mut stream: TcpStream,
        listing_path: &str,
        listing: &str,
        files: &[(&str, Vec<u8>)],
        counter: &std::sync::atomic::AtomicUsize,
    ) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let mut range_start: Option<u64> = None;
        let mut range_end: Option<u64> = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("range: bytes=") {
                let (a, b) = r.trim().split_once('-').unwrap();
                range_start = a.parse().ok();
                range_end = b.parse().ok();
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let (path, _query) = path.split_once('?').unwrap_or((&path, ""));
        let reply = |stream: &mut TcpStream, status: &str, headers: &[String], body: &[u8]| {
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for h in headers {
                head.push_str(h);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        };
        if path == listing_path {
            reply(
                &mut stream,
                "200 OK",
                &["Content-Type: application/json".into()],
                listing.as_bytes(),
            );
            return;
        }
        for (name, bytes) in files {
            if path.ends_with(&format!("/resolve/{COMMIT}/{name}")) {
                let start = range_start.unwrap_or(0) as usize;
                let end = range_end
                    .map(|e| e as usize + 1)
                    .unwrap_or(bytes.len())
                    .min(bytes.len());
                if range_end.is_none() {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let headers = [
                    format!("ETag: \"etag-{}\"", name.replace('/', "-")),
                    format!("X-Repo-Commit: {COMMIT}"),
                    format!(
                        "Content-Range: bytes {start}-{}/{}",
                        end.saturating_sub(1),
                        bytes.len()
                    ),
                ];
                reply(
                    &mut stream,
                    "206 Partial Content",
                    &headers,
                    &bytes[start..end],
                );
                return;
            }
        }
        reply(
            &mut stream,
            "404 Not Found",
            &[],
            b"{\"error\":\"Entry not found\"}",
        );
    }

    fn settings_for(endpoint: &str, home: &Path) -> HubSettings {
        HubSettings {
            endpoint: endpoint.to_string(),
            cache_dir: home.join("hub"),
            token: None,
        }
    }

    #[test]
    fn downloads_a_dataset_subset_and_resumes() {
        let a: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let b = b"second shard".to_vec();
        let listing = serde_json::json!({
            "sha": COMMIT,
            "siblings": [
                {"rfilename": "README.md", "size": 5},
                {"rfilename": "20231101.en/train-00001-of-00002.parquet", "size": b.len(), "lfs": {"size": b.len()}},
                {"rfilename": "20231101.en/train-00000-of-00002.parquet", "size": a.len()},
                {"rfilename": "20231101.fr/train-00000-of-00001.parquet", "size": 1},
            ]
        })
        .to_string();
        let hub = fake_hub(
            "/api/datasets/wikimedia/wikipedia/revision/main",
            listing,
            vec![
                ("20231101.en/train-00000-of-00002.parquet", a.clone()),
                ("20231101.en/train-00001-of-00002.parquet", b.clone()),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("wikipedia");
        let args = parse(&[
            "--dataset",
            "wikimedia/wikipedia",
            "--subset",
            "20231101.en",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        let settings = settings_for(&hub.endpoint, &dir.path().join("hf"));

        let first = run(&args, &settings, false).unwrap();
        assert_eq!(
            first,
            Summary {
                files: 2,
                bytes: (a.len() + b.len()) as u64,
                fetched: 2,
                skipped: 0
            }
        );
        assert_eq!(
            std::fs::read(out.join("train-00000-of-00002.parquet")).unwrap(),
            a
        );
        assert_eq!(
            std::fs::read(out.join("train-00001-of-00002.parquet")).unwrap(),
            b
        );
        assert_eq!(hub.downloads.load(std::sync::atomic::Ordering::SeqCst), 2);
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "train-00000-of-00002.parquet",
                "train-00001-of-00002.parquet"
            ],
            "no temporary files left"
        );

        // Rerun: both present. Then a truncated file is replaced, from hf-hub's cache.
        let again = run(&args, &settings, false).unwrap();
        assert_eq!((again.fetched, again.skipped), (0, 2));
        std::fs::remove_file(out.join("train-00001-of-00002.parquet")).unwrap();
        std::fs::write(out.join("train-00001-of-00002.parquet"), b"short").unwrap();
        let repaired = run(&args, &settings, false).unwrap();
        assert_eq!((repaired.fetched, repaired.skipped), (1, 1));
        assert_eq!(
            std::fs::read(out.join("train-00001-of-00002.parquet")).unwrap(),
            b
        );
        assert_eq!(
            hub.downloads.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "served from the cache"
        );

        // --max-files 1 on a fresh folder.
        let out1 = dir.path().join("sample");
        let args1 = parse(&[
            "--dataset",
            "wikimedia/wikipedia",
            "--subset",
            "20231101.en",
            "--max-files",
            "1",
            "--out",
            out1.to_str().unwrap(),
        ])
        .unwrap();
        let one = run(&args1, &settings, false).unwrap();
        assert_eq!((one.files, one.bytes), (1, a.len() as u64));
        assert!(out1.join("train-00000-of-00002.parquet").is_file());
        assert!(!out1.join("train-00001-of-00002.parquet").exists());
    }

    #[test]
    fn downloads_model_tokenizer_files() {
        let vocab = b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n".to_vec();
        let listing = serde_json::json!({
            "sha": COMMIT,
            "siblings": [
                {"rfilename": "config.json", "size": 2},
                {"rfilename": "model.safetensors", "size": 10},
                {"rfilename": "vocab.txt", "size": vocab.len()},
                {"rfilename": "tokenizer_config.json", "size": 2},
            ]
        })
        .to_string();
        let hub = fake_hub(
            "/api/models/google-bert/bert-base-uncased/revision/main",
            listing,
            vec![
                ("vocab.txt", vocab.clone()),
                ("tokenizer_config.json", b"{}".to_vec()),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("bert");
        let args = parse(&[
            "--model",
            "google-bert/bert-base-uncased",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        let summary = run(
            &args,
            &settings_for(&hub.endpoint, &dir.path().join("hf")),
            false,
        )
        .unwrap();
        assert_eq!((summary.files, summary.fetched), (2, 2));
        assert_eq!(std::fs::read(out.join("vocab.txt")).unwrap(), vocab);
        assert!(out.join("tokenizer_config.json").is_file());
        assert!(
            !out.join("model.safetensors").exists(),
            "weights only with --weights"
        );
    }

    #[test]
    fn unreachable_hub_is_a_clear_error() {
        // A port nothing listens on: connection refused, as offline as it gets without DNS.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        let args = parse(&[
            "--dataset",
            "wikimedia/wikipedia",
            "--subset",
            "20231101.en",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        let err = run(
            &args,
            &settings_for(&endpoint, &dir.path().join("hf")),
            false,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with(
                "could not list the files of dataset `wikimedia/wikipedia` at revision `main`"
            ),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "{endpoint}/api/datasets/wikimedia/wikipedia/revision/main"
            )),
            "{msg}"
        );
        assert!(
            msg.contains("check your network")
                && msg.contains("HF_ENDPOINT")
                && msg.contains("HF_HOME"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        assert!(
            !out.exists(),
            "nothing is created before the listing succeeds"
        );
    }

    #[test]
    fn missing_repo_and_missing_parquet_are_explained() {
        let listing = serde_json::json!({"sha": COMMIT, "siblings": [{"rfilename": "bookcorpus.py", "size": 3}]}).to_string();
        let hub = fake_hub(
            "/api/datasets/bookcorpus/bookcorpus/revision/main",
            listing,
            vec![],
        );
        let dir = tempfile::tempdir().unwrap();
        let settings = settings_for(&hub.endpoint, &dir.path().join("hf"));
        let out = dir.path().join("o");
        let args = parse(&[
            "--dataset",
            "bookcorpus/bookcorpus",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        let msg = run(&args, &settings, false).unwrap_err().to_string();
        assert!(msg.contains("--revision refs/convert/parquet"), "{msg}");
        let args = parse(&[
            "--dataset",
            "nobody/nothing",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        let msg = run(&args, &settings, false).unwrap_err().to_string();
        assert!(
            msg.contains("HTTP 404") && msg.contains("nobody/nothing"),
            "{msg}"
        );
    }
}
