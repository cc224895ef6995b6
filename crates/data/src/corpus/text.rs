//! Plain-text records: paragraphs separated by blank lines, one record per paragraph block
//! (or one per file with `doc_per_file`).

use super::lines::{LineFile, LineRead};
use super::{CorpusOptions, CorpusStats};
use crate::error::Result;
use crate::record::{RawDocument, Record};

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

/// Next non-empty plain-text record (a paragraph block, or the whole file with
/// `doc_per_file`) from `file`, `None` at its end.
pub(super) fn next_text(
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
}
