//! Which files to read: inputs (files, directories, globs) expanded into a file list, and
//! the format each file is read as.

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

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
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
            walk_dir(&p, out)?;
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
        assert_eq!(d("README"), InputFormat::Text);
        assert_eq!(
            detect_format(Path::new("x.txt"), InputFormat::Jsonl),
            InputFormat::Jsonl
        );
    }
}
