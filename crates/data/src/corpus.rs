//! Corpus readers: plain text, JSONL (and Parquet with the `parquet` feature), optionally
//! compressed, turned into a stream of raw documents (lists of paragraphs).
//!
//! Reading streams: one record at a time, whatever the file size. Errors name the file and
//! the 1-based line (or row) where they happened; with `skip_bad_records` a bad record is
//! skipped and counted instead.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, DataError, Result};
use crate::grouping::{Grouper, Grouping, Record};

/// How records are laid out in an input file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Decide per file from its extension (after any `.gz`, `.zst`, `.bz2`): `.jsonl`,
    /// `.json`, `.ndjson` are JSONL, `.parquet` is Parquet, anything else is plain text.
    #[default]
    Auto,
    /// Plain text: paragraphs separated by blank lines; a document is one paragraph block or
    /// one whole file (see `doc_per_file`).
    Text,
    /// One JSON object per line; the document text is in a named string field.
    Jsonl,
    /// Apache Parquet with a string column holding the document text.
    Parquet,
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "text" | "txt" => Ok(Self::Text),
            "jsonl" | "json" => Ok(Self::Jsonl),
            "parquet" => Ok(Self::Parquet),
            other => Err(format!(
                "unknown input format {other:?} (expected auto, text, jsonl or parquet)"
            )),
        }
    }
}

/// What to read and how.
#[derive(Clone, Debug)]
pub struct CorpusOptions {
    /// Files, directories (read recursively, in sorted order) or glob patterns.
    pub inputs: Vec<String>,
    /// Record layout, or `Auto` to decide by extension.
    pub format: InputFormat,
    /// JSONL / Parquet field holding the document text.
    pub text_field: String,
    /// Plain text: a whole file is one document (blank lines separate paragraphs) instead of
    /// every blank-line-separated block being a document.
    pub doc_per_file: bool,
    /// Skip (and count) malformed records instead of failing.
    pub skip_bad_records: bool,
    /// How each input's records are gathered into documents, by position in `inputs`; an
    /// input without an entry keeps one document per record.
    pub groupings: Vec<Grouping>,
}

impl Default for CorpusOptions {
    fn default() -> Self {
        Self {
            inputs: Vec::new(),
            format: InputFormat::Auto,
            text_field: "text".into(),
            doc_per_file: false,
            skip_bad_records: false,
            groupings: Vec::new(),
        }
    }
}

impl CorpusOptions {
    /// The grouping of input number `input`.
    fn grouping(&self, input: usize) -> Grouping {
        self.groupings.get(input).cloned().unwrap_or_default()
    }
}

/// One document as read: paragraphs whose hard line breaks are already joined with spaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawDocument {
    /// Non-empty paragraphs in order.
    pub paragraphs: Vec<String>,
}

/// Counters kept while reading.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusStats {
    /// Input files opened.
    pub files: u64,
    /// Documents returned.
    pub documents: u64,
    /// Records read (equal to `documents` unless records are grouped; empty ones count too).
    #[serde(default)]
    pub records: u64,
    /// Records skipped because they were malformed (only with `skip_bad_records`).
    pub bad_records: u64,
    /// Lines or records in which invalid UTF-8 was replaced by U+FFFD.
    pub invalid_utf8: u64,
}

/// Compression detected from a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
}

fn compression_of(path: &Path) -> (Compression, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    for (ext, c) in [
        (".gz", Compression::Gzip),
        (".zst", Compression::Zstd),
        (".zstd", Compression::Zstd),
        (".bz2", Compression::Bzip2),
    ] {
        if let Some(stem) = name.strip_suffix(ext) {
            return (c, stem.to_string());
        }
    }
    (Compression::None, name)
}

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
/// in the order the inputs were given. Hidden files (starting with `.`) inside directories are
/// ignored. An input that matches nothing is an error.
pub fn expand_inputs(inputs: &[String]) -> Result<Vec<PathBuf>> {
    Ok(expand_inputs_indexed(inputs)?
        .into_iter()
        .map(|(path, _)| path)
        .collect())
}

/// As [`expand_inputs`], each file with the position of the input it came from (the first
/// one, when inputs overlap).
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

/// Counts compressed bytes as they are read, for progress reporting.
struct CountingReader<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens a file for line reading, decompressing by extension.
fn open_lines(path: &Path, counter: Arc<AtomicU64>) -> Result<Box<dyn BufRead + Send>> {
    let file = File::open(path).map_err(io_err("opening", path))?;
    let raw = BufReader::with_capacity(
        1 << 16,
        CountingReader {
            inner: file,
            counter,
        },
    );
    const CAP: usize = 1 << 18;
    let reader: Box<dyn BufRead + Send> = match compression_of(path).0 {
        Compression::None => Box::new(BufReader::with_capacity(CAP, raw)),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            CAP,
            flate2::bufread::MultiGzDecoder::new(raw),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            CAP,
            zstd::stream::read::Decoder::with_buffer(raw).map_err(io_err("opening", path))?,
        )),
        Compression::Bzip2 => Box::new(BufReader::with_capacity(
            CAP,
            bzip2::bufread::MultiBzDecoder::new(raw),
        )),
    };
    Ok(reader)
}

/// Splits a text into paragraphs at blank lines, joining the lines of each with spaces.
pub fn paragraphs_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(line);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Reader state for one open file.
enum FileReader {
    Lines(LineFile),
    #[cfg(feature = "parquet")]
    Parquet(crate::parquet_input::ParquetFile),
}

struct LineFile {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    format: InputFormat,
    /// JSONL field naming each record's document, when grouped by one.
    id_field: Option<String>,
    /// Lines read so far (so the next line is `line + 1`).
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

/// Outcome of reading one line.
enum LineRead {
    Line(String),
    Eof,
}

impl LineFile {
    fn read_line(&mut self, stats: &mut CorpusStats) -> Result<LineRead> {
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => Ok(LineRead::Eof),
            Ok(_) => {
                self.line += 1;
                while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                    self.buf.pop();
                }
                let text = match String::from_utf8_lossy(&self.buf) {
                    std::borrow::Cow::Borrowed(s) => s.to_owned(),
                    std::borrow::Cow::Owned(s) => {
                        stats.invalid_utf8 += 1;
                        s
                    }
                };
                Ok(LineRead::Line(text))
            }
            Err(e) => Err(DataError::BadRecord {
                path: self.path.clone(),
                line: self.line + 1,
                message: format!(
                    "cannot read line ({e}); the file may be truncated or its compressed \
                     stream corrupt"
                ),
            }),
        }
    }
}

/// Streams raw documents from all inputs, in input order.
pub struct CorpusReader {
    files: std::vec::IntoIter<(PathBuf, usize)>,
    current: Option<FileReader>,
    /// Grouping of the open file's input.
    grouping: Grouping,
    grouper: Grouper,
    options: CorpusOptions,
    stats: CorpusStats,
    bytes_read: Arc<AtomicU64>,
    total_bytes: u64,
}

impl CorpusReader {
    /// Expands the inputs and prepares to read them; fails if an input matches nothing, or
    /// if a file cannot be read as its input's settings ask.
    pub fn open(options: CorpusOptions) -> Result<Self> {
        let files = expand_inputs_indexed(&options.inputs)?;
        let mut total_bytes = 0;
        for (f, input) in &files {
            total_bytes += std::fs::metadata(f).map_err(io_err("reading", f))?.len();
            let format = detect_format(f, options.format);
            #[cfg(not(feature = "parquet"))]
            if format == InputFormat::Parquet {
                return Err(DataError::Input {
                    input: f.display().to_string(),
                    message: "Parquet input needs bert-data built with the `parquet` feature"
                        .into(),
                });
            }
            let grouping = options.grouping(*input);
            if let (Some(field), InputFormat::Text) = (&grouping.document_id_field, format) {
                return Err(DataError::Input {
                    input: f.display().to_string(),
                    message: format!(
                        "document_id_field {field:?} needs JSONL or Parquet records, and this \
                         file is read as plain text (use records_per_document, or doc_per_file \
                         for one document per file)"
                    ),
                });
            }
        }
        Ok(Self {
            files: files.into_iter(),
            current: None,
            grouping: Grouping::default(),
            grouper: Grouper::default(),
            options,
            stats: CorpusStats::default(),
            bytes_read: Arc::new(AtomicU64::new(0)),
            total_bytes,
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> &CorpusStats {
        &self.stats
    }

    /// Total size of the input files on disk (compressed), for a progress bar.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// A shared counter of on-disk bytes consumed, readable from another thread.
    pub fn progress_counter(&self) -> Arc<AtomicU64> {
        self.bytes_read.clone()
    }

    /// On-disk bytes consumed so far, for a progress bar.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// The next document, or `None` at the end of the last file.
    pub fn next_document(&mut self) -> Result<Option<RawDocument>> {
        loop {
            if let Some(doc) = self.grouper.pop() {
                self.stats.documents += 1;
                return Ok(Some(doc));
            }
            if self.current.is_none() {
                let Some((path, input)) = self.files.next() else {
                    return Ok(None);
                };
                self.open_file(path, input)?;
            }
            match self.next_record()? {
                Some(record) => {
                    self.stats.records += 1;
                    self.grouper.push(record, &self.grouping);
                }
                None => {
                    self.current = None;
                    self.grouper.close();
                }
            }
        }
    }

    /// Makes `path` (from input number `input`) the file being read.
    fn open_file(&mut self, path: PathBuf, input: usize) -> Result<()> {
        self.stats.files += 1;
        self.grouping = self.options.grouping(input);
        let id_field = self.grouping.document_id_field.clone();
        let format = detect_format(&path, self.options.format);
        self.current = Some(match format {
            #[cfg(feature = "parquet")]
            InputFormat::Parquet => FileReader::Parquet(crate::parquet_input::ParquetFile::open(
                &path,
                &self.options.text_field,
                id_field.as_deref(),
                self.bytes_read.clone(),
            )?),
            _ => FileReader::Lines(LineFile {
                reader: open_lines(&path, self.bytes_read.clone())?,
                path,
                format,
                id_field,
                line: 0,
                buf: Vec::new(),
                done: false,
            }),
        });
        Ok(())
    }

    /// The next record of the open file, `None` at its end; malformed records are skipped
    /// (and counted) when `skip_bad_records` allows it.
    fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            let (result, file_done) = match self.current.as_mut() {
                Some(FileReader::Lines(file)) => {
                    let r = if file.format == InputFormat::Jsonl {
                        next_jsonl(file, &self.options, &mut self.stats)
                    } else {
                        next_text(file, &self.options, &mut self.stats)
                    };
                    (r, file.done)
                }
                #[cfg(feature = "parquet")]
                Some(FileReader::Parquet(file)) => {
                    (file.next_record(&self.options, &mut self.stats), false)
                }
                None => return Ok(None),
            };
            match result {
                Err(e @ DataError::BadRecord { .. }) if self.options.skip_bad_records => {
                    tracing::warn!("skipping bad record: {e}");
                    self.stats.bad_records += 1;
                    if file_done {
                        return Ok(None);
                    }
                }
                other => return other,
            }
        }
    }
}

impl Iterator for CorpusReader {
    type Item = Result<RawDocument>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_document().transpose()
    }
}

/// Next non-empty plain-text record (a paragraph block, or the whole file with
/// `doc_per_file`) from `file`, `None` at its end.
fn next_text(
    file: &mut LineFile,
    options: &CorpusOptions,
    stats: &mut CorpusStats,
) -> Result<Option<Record>> {
    if file.done {
        return Ok(None);
    }
    let mut doc = RawDocument::default();
    let mut para = String::new();
    loop {
        let line = match file.read_line(stats) {
            Ok(LineRead::Line(l)) => l,
            Ok(LineRead::Eof) => {
                file.done = true;
                break;
            }
            Err(e) => {
                // A broken stream cannot be resynchronised: the rest of the file is lost.
                file.done = true;
                return Err(e);
            }
        };
        let line = line.trim();
        if line.is_empty() {
            if !para.is_empty() {
                doc.paragraphs.push(std::mem::take(&mut para));
                if !options.doc_per_file {
                    break;
                }
            }
        } else {
            if !para.is_empty() {
                para.push(' ');
            }
            para.push_str(line);
        }
    }
    if !para.is_empty() {
        doc.paragraphs.push(para);
    }
    Ok((!doc.paragraphs.is_empty()).then_some(Record {
        paragraphs: doc.paragraphs,
        key: None,
    }))
}

/// Next record from a JSONL file; blank lines are skipped. A record whose text is empty is
/// returned with no paragraphs (it joins no document).
fn next_jsonl(
    file: &mut LineFile,
    options: &CorpusOptions,
    stats: &mut CorpusStats,
) -> Result<Option<Record>> {
    loop {
        if file.done {
            return Ok(None);
        }
        let line = match file.read_line(stats) {
            Ok(LineRead::Line(l)) => l,
            Ok(LineRead::Eof) => {
                file.done = true;
                return Ok(None);
            }
            Err(e) => {
                file.done = true;
                return Err(e);
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let (text, key) = jsonl_record(&line, &options.text_field, file.id_field.as_deref())
            .map_err(|message| DataError::BadRecord {
                path: file.path.clone(),
                line: file.line,
                message,
            })?;
        return Ok(Some(Record {
            paragraphs: paragraphs_of(&text),
            key,
        }));
    }
}

/// Extracts the text field of one JSONL record, or says what is wrong with it.
#[cfg(test)]
fn jsonl_text(line: &str, field: &str) -> std::result::Result<String, String> {
    jsonl_record(line, field, None).map(|(text, _)| text)
}

/// Extracts the text field of one JSONL record and, when `id_field` is given, the value
/// naming its document; or says what is wrong with the record.
fn jsonl_record(
    line: &str,
    field: &str,
    id_field: Option<&str>,
) -> std::result::Result<(String, Option<String>), String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("malformed JSON: {e}"))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(format!(
            "expected a JSON object with a string field {field:?}, found {}",
            json_kind(&value)
        ));
    };
    let text = match map.remove(field) {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => {
            return Err(format!(
                "field {field:?} must be a string, found {}",
                json_kind(&other)
            ))
        }
        None => {
            return Err(format!(
                "record has no field {field:?} (expected a string with the document text; \
                 set text_field to use another field)"
            ))
        }
    };
    let key = match id_field {
        None => None,
        Some(id) => Some(match map.remove(id) {
            Some(serde_json::Value::String(s)) => s,
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
            Some(other) => {
                return Err(format!(
                    "document id field {id:?} must be a string or a number, found {}",
                    json_kind(&other)
                ))
            }
            None => {
                return Err(format!(
                    "record has no field {id:?} (document_id_field: consecutive records with \
                     one value of it form a document)"
                ))
            }
        }),
    };
    Ok((text, key))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_join_wrapped_lines() {
        assert_eq!(
            paragraphs_of("a b\nc\n\n\n d \n"),
            vec!["a b c".to_string(), "d".to_string()]
        );
    }

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

    #[test]
    fn jsonl_errors_say_what_is_expected() {
        assert!(jsonl_text("{\"text\": 3}", "text")
            .unwrap_err()
            .contains("must be a string"));
        assert!(jsonl_text("{\"body\": \"x\"}", "text")
            .unwrap_err()
            .contains("no field \"text\""));
        assert!(jsonl_text("{\"text\": ", "text")
            .unwrap_err()
            .contains("malformed JSON"));
        assert_eq!(jsonl_text("{\"t\": \"a\"}", "t").unwrap(), "a");
        let rec = |line: &str| jsonl_record(line, "t", Some("book"));
        assert_eq!(
            rec("{\"t\": \"a\", \"book\": 7}").unwrap(),
            ("a".into(), Some("7".into()))
        );
        assert!(rec("{\"t\": \"a\"}")
            .unwrap_err()
            .contains("no field \"book\""));
        assert!(rec("{\"t\": \"a\", \"book\": null}")
            .unwrap_err()
            .contains("must be a string or a number"));
    }
}
