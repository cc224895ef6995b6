//! Labelled examples of a downstream task, GLUE-style: one sentence or a sentence pair, with a
//! class or a real score, read from GLUE's TSV files, JSONL or Parquet (the Hub's `glue`
//! dataset) with configurable column names.
//!
//! Every bad row is an error naming the file, the line (TSV, JSONL; the header is line 1 of a
//! TSV) or row (Parquet, 1-based) and what was expected; a split without examples is an error
//! too. A TSV is read as GLUE writes it: tab-separated, a header row naming the columns, no
//! quoting (quotes are part of the text, as in QQP and MNLI).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

#[cfg(feature = "parquet")]
use parquet::file::reader::{FileReader, SerializedFileReader};
#[cfg(feature = "parquet")]
use parquet::record::Field;

use crate::error::{io_err, DataError, Result};

/// The file format of a task split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskFormat {
    /// GLUE's tab-separated files with a header row.
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet (the Hub's `glue` dataset).
    Parquet,
}

impl TaskFormat {
    /// The format of `path` from its extension (`.tsv`, `.jsonl`/`.json`, `.parquet`).
    pub fn of(path: &Path) -> Result<TaskFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("tsv") => Ok(TaskFormat::Tsv),
            Some("jsonl") | Some("json") => Ok(TaskFormat::Jsonl),
            Some("parquet") => Ok(TaskFormat::Parquet),
            _ => Err(DataError::Input {
                input: path.display().to_string(),
                message: "cannot tell the task file's format from its extension: expected \
                          .tsv (GLUE), .jsonl or .parquet"
                    .into(),
            }),
        }
    }
}

/// Which columns hold an example's texts and label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskColumns {
    /// The first (or only) sentence, e.g. `sentence` (SST-2, CoLA) or `sentence1` (MRPC).
    pub text_a: String,
    /// The second sentence of a pair task, e.g. `sentence2`, `question2`, `hypothesis`.
    pub text_b: Option<String>,
    /// The label, e.g. `label` (or `gold_label` in MNLI's TSV).
    pub label: String,
}

/// What a task's labels are.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelSpace {
    /// Classification over these class names, class `i` being `names[i]`. A label in a file is
    /// matched by its text (a string, or an integer's decimal text, as GLUE's TSVs write
    /// `0`/`1`); an integer that names no class is taken as a class index (the Hub's Parquet
    /// stores indices).
    Classes(Vec<String>),
    /// Regression: a real score (STS-B's 0–5).
    Score,
}

/// The label of one example.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TaskLabel {
    /// A class index into [`LabelSpace::Classes`].
    Class(u32),
    /// A real score.
    Score(f32),
}

#[cfg(feature = "parquet")]
impl RawLabel {
    /// The label of a Parquet field; `None` for a type no label has.
    fn of_field(field: Option<Field>) -> Option<RawLabel> {
        Some(match field? {
            Field::Str(s) => RawLabel::Text(s),
            Field::Byte(v) => RawLabel::Integer(v.into()),
            Field::Short(v) => RawLabel::Integer(v.into()),
            Field::Int(v) => RawLabel::Integer(v.into()),
            Field::Long(v) => RawLabel::Integer(v),
            Field::UByte(v) => RawLabel::Integer(v.into()),
            Field::UShort(v) => RawLabel::Integer(v.into()),
            Field::UInt(v) => RawLabel::Integer(v.into()),
            Field::Float(v) => RawLabel::Real(v.into()),
            Field::Double(v) => RawLabel::Real(v),
            Field::Bool(v) => RawLabel::Integer(v.into()),
            _ => return None,
        })
    }
}

/// One labelled example.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskExample {
    /// The first (or only) sentence.
    pub text_a: String,
    /// The second sentence of a pair.
    pub text_b: Option<String>,
    /// The label.
    pub label: TaskLabel,
}

/// A label value as a file stores it.
enum RawLabel {
    Text(String),
    Integer(i64),
    Real(f64),
}

impl LabelSpace {
    fn parse(&self, raw: RawLabel) -> std::result::Result<TaskLabel, String> {
        match self {
            LabelSpace::Classes(names) => {
                let by_name = |text: &str| names.iter().position(|n| n == text);
                let found = match &raw {
                    RawLabel::Text(t) => by_name(t.trim()),
                    RawLabel::Integer(i) => by_name(&i.to_string())
                        .or_else(|| usize::try_from(*i).ok().filter(|i| *i < names.len())),
                    RawLabel::Real(_) => None,
                };
                found.map(|i| TaskLabel::Class(i as u32)).ok_or_else(|| {
                    format!(
                        "label {} is not one of the declared labels ({})",
                        raw.describe(),
                        names.join(", ")
                    )
                })
            }
            LabelSpace::Score => {
                let value = match &raw {
                    RawLabel::Text(t) => t.trim().parse::<f64>().ok(),
                    RawLabel::Integer(i) => Some(*i as f64),
                    RawLabel::Real(r) => Some(*r),
                };
                value
                    .filter(|v| v.is_finite())
                    .map(|v| TaskLabel::Score(v as f32))
                    .ok_or_else(|| format!("label {} is not a finite number", raw.describe()))
            }
        }
    }
}

impl RawLabel {
    fn describe(&self) -> String {
        match self {
            RawLabel::Text(t) => format!("{t:?}"),
            RawLabel::Integer(i) => i.to_string(),
            RawLabel::Real(r) => r.to_string(),
        }
    }
}

/// Reads every example of one split (a train, validation or test file).
pub fn read_task_split(
    path: &Path,
    format: TaskFormat,
    columns: &TaskColumns,
    labels: &LabelSpace,
) -> Result<Vec<TaskExample>> {
    let examples = match format {
        TaskFormat::Tsv => read_tsv(path, columns, labels)?,
        TaskFormat::Jsonl => read_jsonl(path, columns, labels)?,
        #[cfg(feature = "parquet")]
        TaskFormat::Parquet => read_parquet(path, columns, labels)?,
        #[cfg(not(feature = "parquet"))]
        TaskFormat::Parquet => {
            return Err(DataError::Input {
                input: path.display().to_string(),
                message: "this build reads no Parquet (the `parquet` feature of bert-data is off)"
                    .into(),
            })
        }
    };
    if examples.is_empty() {
        return Err(DataError::Input {
            input: path.display().to_string(),
            message: "the split holds no examples".into(),
        });
    }
    Ok(examples)
}

fn bad(path: &Path, line: u64, message: String) -> DataError {
    DataError::BadRecord {
        path: path.to_path_buf(),
        line,
        message,
    }
}

fn read_tsv(path: &Path, columns: &TaskColumns, labels: &LabelSpace) -> Result<Vec<TaskExample>> {
    let file = File::open(path).map_err(io_err("opening", path))?;
    let mut lines = BufReader::new(file).lines();
    let header = match lines.next() {
        Some(line) => line.map_err(io_err("reading", path))?,
        None => {
            return Err(DataError::Input {
                input: path.display().to_string(),
                message: "the split holds no examples (not even a header row)".into(),
            })
        }
    };
    let names: Vec<&str> = header.trim_end_matches('\r').split('\t').collect();
    let index = |name: &str| {
        names.iter().position(|n| *n == name).ok_or_else(|| {
            bad(
                path,
                1,
                format!(
                    "no column {name:?} in the header (columns: {})",
                    names.join(", ")
                ),
            )
        })
    };
    let a = index(&columns.text_a)?;
    let b = columns.text_b.as_deref().map(index).transpose()?;
    let l = index(&columns.label)?;
    let mut examples = Vec::new();
    for (i, line) in lines.enumerate() {
        let number = i as u64 + 2;
        let line = line.map_err(io_err("reading", path))?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != names.len() {
            return Err(bad(
                path,
                number,
                format!(
                    "{} tab-separated fields where the header has {}",
                    fields.len(),
                    names.len()
                ),
            ));
        }
        let label = labels
            .parse(RawLabel::Text(fields[l].to_string()))
            .map_err(|m| bad(path, number, m))?;
        examples.push(TaskExample {
            text_a: fields[a].to_string(),
            text_b: b.map(|b| fields[b].to_string()),
            label,
        });
    }
    Ok(examples)
}

fn read_jsonl(path: &Path, columns: &TaskColumns, labels: &LabelSpace) -> Result<Vec<TaskExample>> {
    let file = File::open(path).map_err(io_err("opening", path))?;
    let mut examples = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let number = i as u64 + 1;
        let line = line.map_err(io_err("reading", path))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| bad(path, number, format!("not a JSON object: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| bad(path, number, "not a JSON object".into()))?;
        let text = |name: &str| match object.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(bad(
                path,
                number,
                format!("field {name:?} is not a string ({other})"),
            )),
            None => Err(bad(
                path,
                number,
                format!(
                    "no field {name:?} (fields: {})",
                    object.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
        };
        let raw = match object.get(&columns.label) {
            Some(serde_json::Value::String(s)) => RawLabel::Text(s.clone()),
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(i) => RawLabel::Integer(i),
                None => RawLabel::Real(n.as_f64().unwrap_or(f64::NAN)),
            },
            Some(other) => {
                return Err(bad(
                    path,
                    number,
                    format!("label field {:?} holds {other}", columns.label),
                ))
            }
            None => {
                return Err(bad(
                    path,
                    number,
                    format!("no label field {:?}", columns.label),
                ))
            }
        };
        let label = labels.parse(raw).map_err(|m| bad(path, number, m))?;
        examples.push(TaskExample {
            text_a: text(&columns.text_a)?,
            text_b: columns.text_b.as_deref().map(text).transpose()?,
            label,
        });
    }
    Ok(examples)
}

#[cfg(feature = "parquet")]
fn read_parquet(
    path: &Path,
    columns: &TaskColumns,
    labels: &LabelSpace,
) -> Result<Vec<TaskExample>> {
    let file = File::open(path).map_err(io_err("opening", path))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| bad(path, 0, format!("not a readable Parquet file: {e}")))?;
    let fields: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let wanted = [
        Some(&columns.text_a),
        columns.text_b.as_ref(),
        Some(&columns.label),
    ];
    for name in wanted.into_iter().flatten() {
        if !fields.contains(name) {
            return Err(bad(
                path,
                0,
                format!("no column {name:?} (columns: {})", fields.join(", ")),
            ));
        }
    }
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| bad(path, 0, format!("cannot read rows: {e}")))?;
    let mut examples = Vec::new();
    for (i, row) in rows.enumerate() {
        let number = i as u64 + 1;
        let row = row.map_err(|e| bad(path, number, format!("cannot decode the row: {e}")))?;
        let field = |name: &str| {
            row.get_column_iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, f)| f.clone())
        };
        let text = |name: &str| match field(name) {
            Some(Field::Str(s)) => Ok(s),
            Some(Field::Null) | None => Err(bad(path, number, format!("column {name:?} is null"))),
            Some(other) => Err(bad(
                path,
                number,
                format!("column {name:?} is not a string ({other})"),
            )),
        };
        let value = field(&columns.label);
        let described = value
            .as_ref()
            .map_or("nothing".to_string(), |f| f.to_string());
        let raw = RawLabel::of_field(value).ok_or_else(|| {
            bad(
                path,
                number,
                format!("label column {:?} holds {described}", columns.label),
            )
        })?;
        let label = labels.parse(raw).map_err(|m| bad(path, number, m))?;
        examples.push(TaskExample {
            text_a: text(&columns.text_a)?,
            text_b: columns.text_b.as_deref().map(text).transpose()?,
            label,
        });
    }
    Ok(examples)
}
