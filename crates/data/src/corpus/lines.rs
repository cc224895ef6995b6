//! A line-oriented input file (plain text or JSONL) read one line at a time, with its line
//! number for error messages and invalid UTF-8 replaced and counted.

use std::io::BufRead;
use std::path::PathBuf;

use super::{CorpusStats, InputFormat};
use crate::error::{DataError, Result};

/// An open plain-text or JSONL file and where reading stands in it.
pub(super) struct LineFile {
    pub(super) path: PathBuf,
    pub(super) reader: Box<dyn BufRead + Send>,
    pub(super) format: InputFormat,
    /// JSONL field naming each record's document, when grouped by one.
    pub(super) id_field: Option<String>,
    /// Lines read so far (so the next line is `line + 1`).
    pub(super) line: u64,
    pub(super) buf: Vec<u8>,
    pub(super) done: bool,
}

/// Outcome of reading one line.
pub(super) enum LineRead {
    /// A line, without its line break.
    Line(String),
    /// The end of the file.
    Eof,
}

impl LineFile {
    /// The next line, counting invalid UTF-8 in `stats`; a read error names the line.
    pub(super) fn read_line(&mut self, stats: &mut CorpusStats) -> Result<LineRead> {
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
