//! Which files to read: inputs (files, directories, globs) expanded into a file list, and
//! the format each file is read as.
//!
//! A folder that HuggingFace `datasets` wrote (`save_to_disk`, or its cache) holds `.arrow`
//! data files next to JSON descriptions of them (`state.json`, `dataset_info.json`, and
//! `dataset_dict.json` above the splits); those JSON files are left out of a folder walk,
//! so that pointing at such a folder reads the data alone.

use std::path::{Path, PathBuf};

use super::decompress::compression_of;
use super::InputFormat;
use crate::error::{io_err, DataError, Result};

/// The format a file will be read as: `format` itself unless it is `Auto`.
pub fn detect_format(path: &Path, format: InputFormat) -> InputFormat {
    if format != InputFormat::Auto {
        return format;
    }
    let (_, stem) = compression_of(path);
    if stem.ends_with(".jsonl") || stem.ends_with(".json") || stem.ends_with(".ndjson") {
        InputFormat::Jsonl
    } else if stem.ends_with(".parquet") {
        InputFormat::Parquet
    } else if is_arrow_name(&stem) {
        InputFormat::Arrow
    } else {
        InputFormat::Text
    }
}

/// Expands inputs (files, directories, globs) into a sorted, de-duplicated file list per input,
/// in the order the inputs were given, each file with the position of the input it came from
/// (the first one, when inputs overlap). Hidden files (starting with `.`) inside directories
/// are ignored. An input that matches nothing is an error.
pub fn expand_inputs_indexed(inputs: &[String]) -> Result<Vec<(PathBuf, usize)>> {
    if inputs.is_empty() {
        return Err(DataError::Config("no inputs given".into()));
    }
    let mut out: Vec<(PathBuf, usize)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, input) in inputs.iter().enumerate() {
        let path = Path::new(input);
        let mut found = Vec::new();
        if path.is_file() {
            found.push(path.to_path_buf());
        } else if path.is_dir() {
            walk_dir(path, &mut found)?;
            if found.is_empty() {
                return Err(DataError::Input {
                    input: input.clone(),
                    message: "directory contains no files".into(),
                });
            }
        } else if input.contains(['*', '?', '[']) {
            let paths = glob::glob(input).map_err(|e| DataError::Input {
                input: input.clone(),
                message: format!("bad glob pattern: {e}"),
            })?;
            for entry in paths {
                let p = entry.map_err(|e| DataError::Input {
                    input: input.clone(),
                    message: e.to_string(),
                })?;
                if p.is_file() {
                    found.push(p);
                } else if p.is_dir() {
                    walk_dir(&p, &mut found)?;
                }
            }
            if found.is_empty() {
                return Err(DataError::Input {
                    input: input.clone(),
                    message: "glob matched no files".into(),
                });
            }
        } else {
            return Err(DataError::Input {
                input: input.clone(),
                message: "no such file or directory".into(),
            });
        }
        found.sort();
        for p in found {
            if seen.insert(p.clone()) {
                out.push((p, index));
            }
        }
    }
    Ok(out)
}

/// Whether a lower-case file name (without a compression extension) names an Arrow IPC
/// file: `.arrow` (`datasets`, file or stream), `.arrows` (the stream format's suggested
/// extension), `.feather` (Feather v2 is the file format), `.ipc`.
fn is_arrow_name(name: &str) -> bool {
    [".arrow", ".arrows", ".feather", ".ipc"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// The JSON files `datasets` writes next to its `.arrow` data files.
const DATASETS_SIDE_FILES: &[&str] = &["state.json", "dataset_info.json", "dataset_dict.json"];

/// Whether `path` names an Arrow IPC file by its extension.
fn is_arrow_file(path: &Path) -> bool {
    detect_format(path, InputFormat::Auto) == InputFormat::Arrow
}

/// Adds the files under `dir` to `out`, recursively, in sorted order; hidden files are left
/// out, and so are `datasets`' JSON side files in a folder whose tree holds `.arrow` files.
fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let start = out.len();
    walk_dir_all(dir, out)?;
    // Side files sit in the split folder (`state.json`, `dataset_info.json`) or one above
    // (`dataset_dict.json`); dropping them wherever an Arrow file is found in or below their
    // folder covers both, and leaves a JSON corpus of that name alone elsewhere.
    let found = &out[start..];
    let side: Vec<PathBuf> = found
        .iter()
        .filter(|p| {
            let is_side = p
                .file_name()
                .is_some_and(|n| DATASETS_SIDE_FILES.iter().any(|s| n == *s));
            is_side
                && p.parent().is_some_and(|folder| {
                    found
                        .iter()
                        .any(|f| f.starts_with(folder) && is_arrow_file(f))
                })
        })
        .cloned()
        .collect();
    if !side.is_empty() {
        for p in &side {
            tracing::debug!(
                "leaving out {}: a HuggingFace `datasets` description, not corpus text",
                p.display()
            );
        }
        let mut rest = out.split_off(start);
        rest.retain(|p| !side.contains(p));
        out.extend(rest);
    }
    Ok(())
}

fn walk_dir_all(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err("listing", dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(io_err("listing", dir))?;
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk_dir_all(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_detection() {
        let d = |p: &str| detect_format(Path::new(p), InputFormat::Auto);
        assert_eq!(d("a/wiki.jsonl.gz"), InputFormat::Jsonl);
        assert_eq!(d("x.JSON.zst"), InputFormat::Jsonl);
        assert_eq!(d("b.txt.bz2"), InputFormat::Text);
        assert_eq!(d("c.parquet"), InputFormat::Parquet);
        assert_eq!(d("ds/data-00000-of-00001.arrow"), InputFormat::Arrow);
        assert_eq!(d("t.Feather"), InputFormat::Arrow);
        assert_eq!(d("s.arrows"), InputFormat::Arrow);
        assert_eq!(d("README"), InputFormat::Text);
        assert_eq!(
            detect_format(Path::new("x.txt"), InputFormat::Jsonl),
            InputFormat::Jsonl
        );
    }

    #[test]
    fn datasets_side_files_are_left_out_of_a_folder_with_arrow_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let touch = |p: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "{}").unwrap();
        };
        for p in [
            "dict/dataset_dict.json",
            "dict/train/data-00000-of-00001.arrow",
            "dict/train/dataset_info.json",
            "dict/train/state.json",
            "plain/state.json",
            "plain/more.jsonl",
        ] {
            touch(p);
        }
        let names = |input: &Path| -> Vec<String> {
            expand_inputs_indexed(&[input.display().to_string()])
                .unwrap()
                .into_iter()
                .map(|(p, _)| p.strip_prefix(root).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            names(&root.join("dict")),
            ["dict/train/data-00000-of-00001.arrow"]
        );
        assert_eq!(
            names(&root.join("dict/train")),
            ["dict/train/data-00000-of-00001.arrow"]
        );
        // No Arrow file: a `state.json` is whatever the user says it is.
        assert_eq!(
            names(&root.join("plain")),
            ["plain/more.jsonl", "plain/state.json"]
        );
        // Named on its own, a side file is read.
        assert_eq!(
            names(&root.join("dict/train/state.json")),
            ["dict/train/state.json"]
        );
    }
}
