//! [`CorpusReader`]: streams raw documents from all inputs in order, opening each file with
//! the reader of its format and gathering its records into documents.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::decompress::{compression_of, open_lines, Compression};
use super::inputs::{detect_format, expand_inputs_indexed};
use super::jsonl::next_jsonl;
use super::lines::LineFile;
use super::sniff::{non_text_reason, peek_head};
use super::text::next_text;
use super::{CorpusOptions, CorpusStats, InputFormat, NonText};
use crate::error::{io_err, DataError, Result};
use crate::grouping::{Grouper, Grouping};
use crate::record::{RawDocument, Record};

/// Reader state for one open file.
enum FileReader {
    Lines(LineFile),
    #[cfg(feature = "parquet")]
    Parquet(super::parquet::ParquetFile),
    #[cfg(feature = "arrow")]
    Arrow(super::arrow::ArrowFile),
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
            #[cfg(not(feature = "arrow"))]
            if format == InputFormat::Arrow {
                return Err(DataError::Input {
                    input: f.display().to_string(),
                    message: "Arrow IPC input needs bert-data built with the `arrow` feature"
                        .into(),
                });
            }
            // The file format is read by seeking to its footer, which a decompressing reader
            // cannot do; `datasets` never compresses its files whole (only, optionally, their
            // buffers, which the reader handles).
            if format == InputFormat::Arrow && compression_of(f).0 != Compression::None {
                return Err(DataError::Input {
                    input: f.display().to_string(),
                    message: "an Arrow IPC file cannot be read compressed whole: decompress it \
                              (lz4 or zstd compression inside the file is read)"
                        .into(),
                });
            }
            let grouping = options.grouping(*input);
            if let (Some(field), InputFormat::Text) = (&grouping.document_id_field, format) {
                return Err(DataError::Input {
                    input: f.display().to_string(),
                    message: format!(
                        "document_id_field {field:?} needs JSONL or Parquet or Arrow records, \
                         and this file is read as plain text (use records_per_document, or \
                         doc_per_file for one document per file)"
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

    /// Makes `path` (from input number `input`) the file being read; a file that is not text
    /// is refused, or left out with `current` staying `None`, as `non_text` says.
    fn open_file(&mut self, path: PathBuf, input: usize) -> Result<()> {
        let format = detect_format(&path, self.options.format);
        let grouping = self.options.grouping(input);
        let id_field = grouping.document_id_field.clone();
        let file = match format {
            InputFormat::Parquet => self.open_parquet(&path, id_field.as_deref())?,
            InputFormat::Arrow => self.open_arrow(&path, id_field.as_deref())?,
            _ => match self.open_line_file(path, format, id_field)? {
                Some(file) => file,
                None => return Ok(()),
            },
        };
        self.stats.files += 1;
        self.grouping = grouping;
        self.current = Some(file);
        Ok(())
    }

    /// Opens a plain-text or JSONL file, `None` when it is not text and `non_text` says to
    /// leave it out.
    fn open_line_file(
        &mut self,
        path: PathBuf,
        format: InputFormat,
        id_field: Option<String>,
    ) -> Result<Option<FileReader>> {
        let (head, reader) =
            peek_head(open_lines(&path, self.bytes_read.clone())?).map_err(|e| {
                DataError::BadRecord {
                    path: path.clone(),
                    line: 1,
                    message: format!(
                        "cannot read the start of the file ({e}); it may be truncated or its \
                     compressed stream corrupt"
                    ),
                }
            })?;
        if let Some(reason) = non_text_reason(&head) {
            match self.options.non_text {
                NonText::Error => {
                    return Err(DataError::Input {
                        input: path.display().to_string(),
                        message: format!(
                            "not a text file: it {reason} (take it out of the inputs, or set \
                             non_text = \"skip\" to leave such files out)"
                        ),
                    })
                }
                NonText::Skip => {
                    tracing::warn!(
                        "skipping {}: not a text file: it {reason} (set non_text = \"error\" \
                         to refuse such files)",
                        path.display()
                    );
                    self.stats.skipped_files += 1;
                    return Ok(None);
                }
            }
        }
        Ok(Some(FileReader::Lines(LineFile {
            reader,
            path,
            format,
            id_field,
            line: 0,
            buf: Vec::new(),
            done: false,
        })))
    }

    /// Opens a Parquet file on the text column (and the id column, if any).
    #[cfg(feature = "parquet")]
    fn open_parquet(&self, path: &std::path::Path, id_field: Option<&str>) -> Result<FileReader> {
        Ok(FileReader::Parquet(super::parquet::ParquetFile::open(
            path,
            &self.options.text_field,
            id_field,
            self.bytes_read.clone(),
        )?))
    }

    /// Without the `parquet` feature, Parquet input is refused naming the file.
    #[cfg(not(feature = "parquet"))]
    fn open_parquet(&self, path: &std::path::Path, _: Option<&str>) -> Result<FileReader> {
        Err(DataError::Input {
            input: path.display().to_string(),
            message: "Parquet input needs bert-data built with the `parquet` feature".into(),
        })
    }

    /// Opens a Arrow IPC file on the text column (and the id column, if any).
    #[cfg(feature = "arrow")]
    fn open_arrow(&self, path: &std::path::Path, id_field: Option<&str>) -> Result<FileReader> {
        Ok(FileReader::Arrow(super::arrow::ArrowFile::open(
            path,
            &self.options.text_field,
            id_field,
            self.bytes_read.clone(),
        )?))
    }

    /// Without the `arrow` feature, Arrow IPC input is refused naming the file.
    #[cfg(not(feature = "arrow"))]
    fn open_arrow(&self, path: &std::path::Path, _: Option<&str>) -> Result<FileReader> {
        Err(DataError::Input {
            input: path.display().to_string(),
            message: "Arrow IPC input needs bert-data built with the `arrow` feature".into(),
        })
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
                #[cfg(feature = "arrow")]
                Some(FileReader::Arrow(file)) => {
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
