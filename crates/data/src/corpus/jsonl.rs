//! JSONL records: one JSON object per line, the text in a named string field and, when the
//! input is grouped by one, the document id in another.

use super::lines::{LineFile, LineRead};
use super::text::paragraphs_of;
use super::{CorpusOptions, CorpusStats};
use crate::error::{DataError, Result};
use crate::record::Record;

/// Next record from a JSONL file; blank lines are skipped. A record whose text is empty is
/// returned with no paragraphs (it joins no document).
pub(super) fn next_jsonl(
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

/// How a JSON value's kind reads in an error message.
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
