//! What to fetch: the repo and revision asked for, and the files of its listing that a
//! dataset (Parquet files, optionally one folder, the first N) or a model (tokenizer files,
//! optionally config and weights) needs. Pure functions, tested offline.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use hf_hub::{Repo, RepoType};

use crate::error::{HubError, Result};
use crate::settings::DEFAULT_ENDPOINT;
use crate::text::preview;

/// The Hub's auto-converted Parquet branch.
pub const PARQUET_BRANCH: &str = "refs/convert/parquet";
/// The tokenizer files `--model` fetches when the repo has them, in this order.
const TOKENIZER_FILES: [&str; 4] = [
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];
/// What `--weights` adds (what `bert import` reads).
const WEIGHT_FILES: [&str; 2] = ["config.json", "model.safetensors"];

/// A dataset repo or a model repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepoKind {
    Dataset,
    Model,
}

/// One repo at one revision, for URLs and messages.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) kind: RepoKind,
    pub(crate) repo: String,
    pub(crate) revision: String,
}

impl Target {
    pub(crate) fn noun(&self) -> &'static str {
        match self.kind {
            RepoKind::Dataset => "dataset",
            RepoKind::Model => "model",
        }
    }

    pub(crate) fn hub_repo(&self, revision: &str) -> Repo {
        let kind = match self.kind {
            RepoKind::Dataset => RepoType::Dataset,
            RepoKind::Model => RepoType::Model,
        };
        Repo::with_revision(self.repo.clone(), kind, revision.to_string())
    }

    /// The listing URL hf-hub's `info_request` calls.
    pub(crate) fn listing_url(&self, endpoint: &str) -> String {
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
    pub(crate) fn page_url(&self, endpoint: &str) -> String {
        match self.kind {
            RepoKind::Dataset => format!("{endpoint}/datasets/{}", self.repo),
            RepoKind::Model => format!("{endpoint}/{}", self.repo),
        }
    }
}

/// A file of the repo listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteFile {
    /// Path in the repo, `/`-separated.
    pub(crate) name: String,
    /// Bytes, when the listing says.
    pub(crate) size: Option<u64>,
}

/// A file to fetch: where it is in the repo and where it goes under `--out`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) remote: String,
    pub(crate) local: PathBuf,
    pub(crate) size: Option<u64>,
}

/// `owner/name` (or a legacy `name`), as the Hub spells repo ids.
pub(crate) fn validate_repo_id(id: &str, flag: &str) -> Result<()> {
    if id.contains("://") || id.starts_with("huggingface.co/") {
        return Err(HubError::Request(format!(
            "--{flag} takes a repo id such as `wikimedia/wikipedia` or `google-bert/bert-base-uncased`, not a URL (`{id}`)"
        )));
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
        return Err(HubError::Request(format!(
            "--{flag} `{id}` is not a Hub repo id: expected `owner/name` (letters, digits, `-`, `_`, `.`), e.g. `wikimedia/wikipedia`"
        )));
    }
    Ok(())
}

/// A `--subset` folder: relative, `/`-separated, no `..`; returned without trailing `/`.
pub(crate) fn normalize_subset(subset: &str) -> Result<String> {
    let trimmed = subset.trim().trim_matches('/');
    let ok = !trimmed.is_empty()
        && !trimmed.contains('\\')
        && trimmed
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if !ok {
        return Err(HubError::Request(format!(
            "--subset `{subset}` must be a folder of the dataset repo, e.g. `20231101.en`"
        )));
    }
    Ok(trimmed.to_string())
}

/// A repo path as a relative local path; refuses anything that could leave `--out`.
pub(crate) fn safe_relative_path(name: &str) -> Result<PathBuf> {
    let bad = || {
        HubError::Hub(format!(
            "the Hub listed a file with an unsafe path `{name}`; refusing to write it"
        ))
    };
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
pub(crate) fn parquet_folders(files: &[RemoteFile]) -> Vec<String> {
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
pub(crate) fn select_dataset_files(
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
            return Err(HubError::Selection(format!(
                "dataset `{}` has no Parquet files at revision `{}` either ({} files: {shown}); the Hub may not have converted it — see {}",
                target.repo,
                target.revision,
                files.len(),
                target.page_url(DEFAULT_ENDPOINT)
            )));
        }
        return Err(HubError::Selection(format!(
            "dataset `{}` has no Parquet files at revision `{}` ({} files: {shown}); the Hub keeps an auto-converted Parquet copy of most datasets on the branch `{PARQUET_BRANCH}`: rerun with `--revision {PARQUET_BRANCH}`",
            target.repo,
            target.revision,
            files.len()
        )));
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
            return Err(HubError::Selection(format!(
                "dataset `{}` has no Parquet files under `{prefix}` at revision `{}`; {available}",
                target.repo, target.revision
            )));
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
pub(crate) fn select_model_files(
    target: &Target,
    files: &[RemoteFile],
    weights: bool,
) -> Result<Vec<Planned>> {
    let find = |name: &str| files.iter().find(|f| f.name == name);
    if !TOKENIZER_FILES[..2].iter().any(|n| find(n).is_some()) {
        return Err(HubError::Selection(format!(
            "model `{}` at revision `{}` has neither vocab.txt nor tokenizer.json ({} files: {})",
            target.repo,
            target.revision,
            files.len(),
            preview(
                &files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
                8
            )
        )));
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
                return Err(HubError::Selection(format!(
                    "model `{}` at revision `{}` has no `{name}`, which --weights needs{hint}",
                    target.repo, target.revision
                )));
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn dataset_target(revision: &str) -> Target {
        Target {
            kind: RepoKind::Dataset,
            repo: "wikimedia/wikipedia".into(),
            revision: revision.into(),
        }
    }

    pub(crate) fn model_target() -> Target {
        Target {
            kind: RepoKind::Model,
            repo: "google-bert/bert-base-uncased".into(),
            revision: "main".into(),
        }
    }

    pub(crate) fn files(names: &[(&str, u64)]) -> Vec<RemoteFile> {
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
}
