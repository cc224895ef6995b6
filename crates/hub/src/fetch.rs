//! The download itself: list the repo once, select, fetch each file at the listed commit into
//! hf-hub's cache, and place it into the output folder.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiError, ApiRepo};
use serde::Deserialize;

use crate::error::{HubError, Result};
use crate::failure::{classify_api_error, classify_ureq, failure_message, Failure};
use crate::place::{already_present, file_size, place_file};
use crate::select::{
    normalize_subset, parquet_folders, select_dataset_files, select_model_files, validate_repo_id,
    RemoteFile, RepoKind, Target,
};
use crate::settings::HubSettings;
use crate::text::{human_bytes, preview};

/// The Hub's answer to a revision listing, the fields read (names, sizes, the commit).
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
pub(crate) fn list_repo(
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
    let fail = |f: Failure| HubError::Hub(failure_message(&what, &url, target, settings, &f));
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

/// Which repo to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A dataset repo (e.g. `wikimedia/wikipedia`): its Parquet files.
    Dataset(String),
    /// A model repo (e.g. `google-bert/bert-base-uncased`): its tokenizer files.
    Model(String),
}

/// What `bert download` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadRequest {
    /// The repo.
    pub source: Source,
    /// Datasets: only the Parquet files under this folder (e.g. `20231101.en`).
    pub subset: Option<String>,
    /// Datasets: only the first N Parquet files, sorted by name.
    pub max_files: Option<usize>,
    /// Models: also `config.json` and `model.safetensors` (for `bert import`).
    pub weights: bool,
    /// Branch, tag or commit.
    pub revision: String,
    /// Folder the files are written into (created).
    pub out: PathBuf,
}

/// One file of the plan, as it is dealt with (for a line of output per file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEvent<'a> {
    /// Already in the output folder with the listed size: skipped.
    Present {
        /// Path under the output folder.
        local: &'a Path,
        /// Its size.
        bytes: u64,
    },
    /// Fetched (or taken from hf-hub's cache) and placed.
    Downloaded {
        /// Path under the output folder.
        local: &'a Path,
        /// Its size.
        bytes: u64,
    },
}

/// What a download did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DownloadSummary {
    /// Files selected.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files fetched and placed.
    pub fetched: usize,
    /// Files already present.
    pub skipped: usize,
}

/// Lists, selects and fetches; `on_file` hears of every file of the plan as it is dealt with.
/// `progress` draws hf-hub's progress bars.
pub fn download(
    request: &DownloadRequest,
    settings: &HubSettings,
    progress: bool,
    mut on_file: impl FnMut(FileEvent<'_>),
) -> Result<DownloadSummary> {
    let (kind, repo_id, flag) = match &request.source {
        Source::Dataset(d) => (RepoKind::Dataset, d, "dataset"),
        Source::Model(m) => (RepoKind::Model, m, "model"),
    };
    validate_repo_id(repo_id, flag)?;
    let revision = request.revision.trim();
    if revision.is_empty() || revision.contains(char::is_whitespace) {
        return Err(HubError::Request(format!(
            "--revision `{}` is not a branch, tag or commit",
            request.revision
        )));
    }
    let subset = request
        .subset
        .as_deref()
        .map(normalize_subset)
        .transpose()?;
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
            select_dataset_files(&target, &files, subset.as_deref(), request.max_files)?
        }
        RepoKind::Model => select_model_files(&target, &files, request.weights)?,
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
        request.out.display()
    );
    bert_fsutil::create_dir_all(&request.out)?;

    let hub_repo = api.repo(target.hub_repo(&pinned));
    let mut summary = DownloadSummary::default();
    for (i, file) in plan.iter().enumerate() {
        let dest = request.out.join(&file.local);
        summary.files += 1;
        if already_present(&dest, file.size) {
            let size = file.size.unwrap_or_default();
            summary.bytes += size;
            summary.skipped += 1;
            on_file(FileEvent::Present {
                local: &file.local,
                bytes: size,
            });
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
            HubError::Hub(failure_message(
                &what,
                &url,
                &target,
                settings,
                &classify_api_error(e),
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
            HubError::Download(format!(
                "hf-hub returned `{}`, which is not a file",
                cached.display()
            ))
        })?;
        if let Some(want) = file.size {
            if have != want {
                return Err(HubError::Download(format!(
                    "`{}` downloaded from {url} has {have} bytes, but the Hub lists {want}; rerun to fetch it again",
                    file.remote
                )));
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
        on_file(FileEvent::Downloaded {
            local: &file.local,
            bytes: have,
        });
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};

    /// A dataset request, as `bert download --dataset REPO [--subset S] [--max-files N] --out OUT`.
    fn dataset(
        repo: &str,
        subset: Option<&str>,
        max_files: Option<usize>,
        out: &Path,
    ) -> DownloadRequest {
        DownloadRequest {
            source: Source::Dataset(repo.into()),
            subset: subset.map(String::from),
            max_files,
            weights: false,
            revision: "main".into(),
            out: out.to_path_buf(),
        }
    }

    /// A model request, as `bert download --model REPO --out OUT`.
    fn model(repo: &str, out: &Path) -> DownloadRequest {
        DownloadRequest {
            source: Source::Model(repo.into()),
            subset: None,
            max_files: None,
            weights: false,
            revision: "main".into(),
            out: out.to_path_buf(),
        }
    }

    fn run(
        request: &DownloadRequest,
        settings: &HubSettings,
        progress: bool,
    ) -> Result<DownloadSummary> {
        download(request, settings, progress, |_| {})
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
        let args = dataset("wikimedia/wikipedia", Some("20231101.en"), None, &out);
        let settings = settings_for(&hub.endpoint, &dir.path().join("hf"));

        let first = run(&args, &settings, false).unwrap();
        assert_eq!(
            first,
            DownloadSummary {
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
        let args1 = dataset("wikimedia/wikipedia", Some("20231101.en"), Some(1), &out1);
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
        let args = model("google-bert/bert-base-uncased", &out);
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
        let args = dataset("wikimedia/wikipedia", Some("20231101.en"), None, &out);
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
        let args = dataset("bookcorpus/bookcorpus", None, None, &out);
        let msg = run(&args, &settings, false).unwrap_err().to_string();
        assert!(msg.contains("--revision refs/convert/parquet"), "{msg}");
        let args = dataset("nobody/nothing", None, None, &out);
        let msg = run(&args, &settings, false).unwrap_err().to_string();
        assert!(
            msg.contains("HTTP 404") && msg.contains("nobody/nothing"),
            "{msg}"
        );
    }
}
