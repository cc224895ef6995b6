//! Arrow IPC input (HuggingFace `datasets`: `save_to_disk` folders and the `load_dataset`
//! cache): one record per row of a named string column, read one record batch at a time.
//!
//! Both IPC layouts are read, told apart by their first bytes: the file format (`ARROW1`
//! magic, a footer indexing the batches; pyarrow's `ipc.new_file`, Feather v2) and the stream
//! format (a sequence of messages ending with an end-of-stream marker; what `datasets`
//! writes). Buffers compressed with lz4 or zstd (pyarrow's `compression=` option) are
//! decompressed by the reader.
//!
//! Sizes written in the file are not trusted: `arrow-ipc`'s readers allocate what they say
//! before reading, so a corrupt or cut-off file could ask for gigabytes (or panic) instead of
//! failing with an error naming it. Streams go through the push decoder, which allocates only
//! as bytes arrive; a file-format footer's block sizes are checked against the file's size.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::reader::{read_footer_length, FileReader, FileReaderBuilder, StreamDecoder};
use arrow_schema::{DataType, Schema};

use super::text::paragraphs_of;
use super::{CorpusOptions, CorpusStats};
use crate::error::{io_err, DataError, Result};
use crate::record::Record;

/// The first bytes of the IPC file format (the stream format has no magic number).
const FILE_MAGIC: &[u8; 6] = b"ARROW1";

/// Bytes of a stream read at a time; a message larger than this is gathered by the decoder.
const STREAM_CHUNK: usize = 1 << 20;

/// An open Arrow IPC file streaming the text column (and the document id column, if any).
pub(crate) struct ArrowFile {
    path: PathBuf,
    batches: Batches,
    /// Column holding the document text.
    text_field: String,
    /// Column naming each row's document, when grouped by one.
    id_field: Option<String>,
    /// The record batch being read and the index of its next row.
    batch: Option<(RecordBatch, usize)>,
    /// Rows read so far (the next row is `row + 1`, 1-based in errors), over all batches.
    row: u64,
    size: u64,
    /// On-disk bytes of this file already added to `counter`.
    reported: u64,
    counter: Arc<AtomicU64>,
    finished: bool,
}

/// The record batches of one file, in either IPC layout.
enum Batches {
    /// The stream format, read front to back.
    Stream(Box<StreamBatches>),
    /// The file format, batch by batch through its footer's index.
    File {
        reader: Box<FileReader<BufReader<File>>>,
        /// Batches read so far, for the progress counter (the reader seeks, so the bytes it
        /// has read say little).
        done: usize,
    },
}

/// A stream-format file fed chunk by chunk to `arrow-ipc`'s push decoder, which (unlike its
/// `StreamReader`) allocates for a message only as its bytes arrive, and whose state at the
/// end of the file tells a finished stream from a cut-off one.
struct StreamBatches {
    file: File,
    decoder: StreamDecoder,
    /// Read but not yet decoded.
    pending: Buffer,
    /// A batch decoded while looking for the schema, not yet handed out.
    ready: Option<RecordBatch>,
    /// The stream's schema (set by `open`).
    schema: Arc<Schema>,
    /// Bytes read from the file.
    position: u64,
    at_end: bool,
}

impl StreamBatches {
    /// Reads up to the schema (the stream's first message).
    fn open(file: File) -> std::result::Result<Self, String> {
        let mut stream = Self {
            file,
            decoder: StreamDecoder::new(),
            pending: Buffer::from_vec(Vec::<u8>::new()),
            ready: None,
            schema: Arc::new(Schema::empty()),
            position: 0,
            at_end: false,
        };
        stream.schema = loop {
            if let Some(schema) = stream.decoder.schema() {
                break schema;
            }
            match stream.next_batch()? {
                Some(batch) => stream.ready = Some(batch),
                None => return Err("the stream holds no schema".into()),
            }
        };
        Ok(stream)
    }

    /// The next record batch, `None` after the end-of-stream marker; an error says what is
    /// wrong (a read error, an undecodable message, or the end of the file before the marker).
    fn next_batch(&mut self) -> std::result::Result<Option<RecordBatch>, String> {
        if let Some(batch) = self.ready.take() {
            return Ok(Some(batch));
        }
        loop {
            // `decode` consumes `pending` unless it returns a batch.
            if let Some(batch) = self
                .decoder
                .decode(&mut self.pending)
                .map_err(|e| format!("cannot decode a message ({e})"))?
            {
                return Ok(Some(batch));
            }
            if self.at_end {
                return Ok(None);
            }
            let mut chunk = vec![0u8; STREAM_CHUNK];
            let n = loop {
                match self.file.read(&mut chunk) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("cannot read ({e})")),
                }
            };
            if n == 0 {
                self.at_end = true;
                if self.position == 0 {
                    return Err("the file is empty".into());
                }
                self.decoder
                    .finish()
                    .map_err(|_| "the file ends inside a message".to_string())?;
                // `finish` also accepts a stream cut off between two messages; after the
                // end-of-stream marker, though, the decoder refuses any further byte.
                let mut probe = Buffer::from_vec(vec![0u8]);
                if self.decoder.decode(&mut probe).is_ok() {
                    return Err("the file ends without Arrow's end-of-stream marker".into());
                }
                return Ok(None);
            }
            chunk.truncate(n);
            self.position += n as u64;
            self.pending = Buffer::from_vec(chunk);
        }
    }
}

/// Checks the footer of a file-format file of `size` bytes, and that every block it indexes
/// lies inside the file: `arrow-ipc` allocates what a block's lengths say, and panics on some
/// impossible ones.
fn check_footer(file: &mut File, size: u64) -> std::result::Result<(), String> {
    let mut tail = [0u8; 10];
    if size < (FILE_MAGIC.len() + tail.len()) as u64 {
        return Err(format!("{size} bytes is too short for an Arrow IPC file"));
    }
    let io = |e: std::io::Error| format!("cannot read ({e})");
    file.seek(SeekFrom::End(-(tail.len() as i64))).map_err(io)?;
    file.read_exact(&mut tail).map_err(io)?;
    let footer_len = read_footer_length(tail)
        .map_err(|_| "no Arrow IPC footer at its end (`ARROW1` is missing there)".to_string())?;
    let Some(data_end) = size.checked_sub(tail.len() as u64 + footer_len as u64) else {
        return Err(format!(
            "its footer claims {footer_len} bytes, more than the file holds"
        ));
    };
    let mut footer = vec![0u8; footer_len];
    file.seek(SeekFrom::Start(data_end)).map_err(io)?;
    file.read_exact(&mut footer).map_err(io)?;
    let footer =
        arrow_ipc::root_as_footer(&footer).map_err(|e| format!("unreadable footer ({e})"))?;
    if footer.schema().is_none() {
        return Err("its footer holds no schema".into());
    }
    let blocks = footer
        .recordBatches()
        .into_iter()
        .flatten()
        .chain(footer.dictionaries().into_iter().flatten());
    for block in blocks {
        let inside = u64::try_from(block.offset()).ok().and_then(|offset| {
            let meta = u64::try_from(block.metaDataLength())
                .ok()
                .filter(|&m| m >= 8)?;
            let body = u64::try_from(block.bodyLength()).ok()?;
            offset.checked_add(meta)?.checked_add(body)
        });
        if inside.is_none_or(|end| end > data_end) {
            return Err(format!(
                "its footer indexes a block (offset {}, {} + {} bytes) outside the file's \
                 {data_end} bytes of data",
                block.offset(),
                block.metaDataLength(),
                block.bodyLength()
            ));
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(())
}

impl Batches {
    /// Opens `path` in the layout its first bytes say, all columns.
    fn open(path: &Path, size: u64) -> Result<Self> {
        let mut file = File::open(path).map_err(io_err("opening", path))?;
        let bad = |layout: &str, why: String| DataError::BadRecord {
            path: path.to_path_buf(),
            line: 0,
            message: format!(
                "not a readable Arrow IPC {layout}: {why}; the file may be truncated or corrupt"
            ),
        };
        let mut head = Vec::with_capacity(FILE_MAGIC.len());
        file.by_ref()
            .take(FILE_MAGIC.len() as u64)
            .read_to_end(&mut head)
            .map_err(io_err("reading", path))?;
        if head == FILE_MAGIC {
            check_footer(&mut file, size).map_err(|why| bad("file", why))?;
            let reader = FileReaderBuilder::new()
                .build(BufReader::new(file))
                .map_err(|e| bad("file", e.to_string()))?;
            Ok(Batches::File {
                reader: Box::new(reader),
                done: 0,
            })
        } else {
            file.seek(SeekFrom::Start(0))
                .map_err(io_err("reading", path))?;
            let stream = StreamBatches::open(file).map_err(|why| bad("stream", why))?;
            Ok(Batches::Stream(Box::new(stream)))
        }
    }

    /// Limits the file format to the columns `projection` lists, sparing the decoding (and
    /// decompression) of the others; the stream decoder has no projection and reads all.
    fn project(self, path: &Path, projection: Vec<usize>) -> Result<Self> {
        match self {
            Batches::File { reader, done } => {
                // The file already open, whose footer `check_footer` has passed (not whatever
                // the path names now).
                let file = reader.get_ref().get_ref();
                let file = file.try_clone().map_err(io_err("opening", path))?;
                let mut file = BufReader::new(file);
                file.seek(SeekFrom::Start(0))
                    .map_err(io_err("reading", path))?;
                let reader = FileReaderBuilder::new()
                    .with_projection(projection)
                    .build(file)
                    .map_err(|e| DataError::BadRecord {
                        path: path.to_path_buf(),
                        line: 0,
                        message: format!("not a readable Arrow IPC file: {e}"),
                    })?;
                Ok(Batches::File {
                    reader: Box::new(reader),
                    done,
                })
            }
            stream @ Batches::Stream(_) => Ok(stream),
        }
    }

    fn schema(&self) -> Arc<Schema> {
        match self {
            Batches::Stream(stream) => stream.schema.clone(),
            Batches::File { reader, .. } => reader.schema(),
        }
    }
}

/// Whether `data_type` is one the text column may have.
fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Whether `data_type` is one the document id column may have.
fn is_id(data_type: &DataType) -> bool {
    is_string(data_type) || data_type.is_integer()
}

/// The string at `row` of a string column, `None` when it is null (or the column is of
/// another type, which `ArrowFile::open` has ruled out).
fn str_at(column: &dyn Array, row: usize) -> Option<&str> {
    if column.is_null(row) {
        return None;
    }
    match column.data_type() {
        DataType::Utf8 => column.as_string_opt::<i32>().map(|a| a.value(row)),
        DataType::LargeUtf8 => column.as_string_opt::<i64>().map(|a| a.value(row)),
        DataType::Utf8View => column.as_string_view_opt().map(|a| a.value(row)),
        _ => None,
    }
}

/// The document id at `row` as text (integers in decimal, as the Parquet reader writes them),
/// `None` when it is null.
fn id_at(column: &dyn Array, row: usize) -> Option<String> {
    if column.is_null(row) {
        return None;
    }
    macro_rules! int {
        ($t:ty) => {
            column
                .as_primitive_opt::<$t>()
                .map(|a| a.value(row).to_string())
        };
    }
    match column.data_type() {
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        _ => str_at(column, row).map(str::to_owned),
    }
}

impl ArrowFile {
    /// Opens `path` (either IPC layout) and projects it onto the `text_field` column and the
    /// `id_field` column, if any; an error lists the columns that exist when one is missing,
    /// and names the type of a column that is not a string (or, for the id, an integer).
    pub(crate) fn open(
        path: &Path,
        text_field: &str,
        id_field: Option<&str>,
        counter: Arc<AtomicU64>,
    ) -> Result<Self> {
        let size = std::fs::metadata(path)
            .map_err(io_err("reading", path))?
            .len();
        let bad = |message: String| DataError::BadRecord {
            path: path.to_path_buf(),
            line: 0,
            message,
        };
        let batches = Batches::open(path, size)?;
        let schema = batches.schema();
        let fields = schema.fields();
        let column = |name: &str, setting: &str, ok: fn(&DataType) -> bool, wanted: &str| {
            let Some((index, field)) = fields.iter().enumerate().find(|(_, f)| f.name() == name)
            else {
                let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
                return Err(bad(format!(
                    "no column {name:?} (columns: {}); set {setting}",
                    names.join(", ")
                )));
            };
            if !ok(field.data_type()) {
                return Err(bad(format!(
                    "column {name:?} holds {} values (expected {wanted}); set {setting}",
                    field.data_type()
                )));
            }
            Ok(index)
        };
        let mut projection = vec![column(text_field, "text_field", is_string, "strings")?];
        if let Some(id) = id_field {
            let index = column(id, "document_id_field", is_id, "strings or integers")?;
            if !projection.contains(&index) {
                projection.push(index);
            }
        }
        let batches = batches.project(path, projection)?;
        Ok(Self {
            path: path.to_path_buf(),
            batches,
            text_field: text_field.to_owned(),
            id_field: id_field.map(str::to_owned),
            batch: None,
            row: 0,
            size,
            reported: 0,
            counter,
            finished: false,
        })
    }

    /// Brings the progress counter up to `bytes` of this file.
    fn report(&mut self, bytes: u64) {
        let bytes = bytes.min(self.size);
        if bytes > self.reported {
            self.counter
                .fetch_add(bytes - self.reported, Ordering::Relaxed);
            self.reported = bytes;
        }
    }

    /// The next record batch, `None` at the end of the file.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let next = match &mut self.batches {
            Batches::Stream(stream) => stream.next_batch().transpose(),
            Batches::File { reader, .. } => reader.next().map(|r| r.map_err(|e| e.to_string())),
        };
        let after = self.row;
        let bad = |message: String| DataError::BadRecord {
            path: self.path.clone(),
            line: after + 1,
            message,
        };
        match next {
            Some(Ok(batch)) => {
                let progress = match &mut self.batches {
                    Batches::Stream(stream) => stream.position,
                    Batches::File { reader, done } => {
                        *done += 1;
                        let total = reader.num_batches().max(1) as u64;
                        self.size * (*done as u64).min(total) / total
                    }
                };
                self.report(progress);
                Ok(Some(batch))
            }
            // A batch that cannot be decoded cannot be stepped over: the next one starts at an
            // unknown place (stream) or may be cut off too.
            Some(Err(why)) => Err(bad(format!(
                "after row {after}: {why}; the file is truncated or corrupt (or its writer \
                 never finished it)"
            ))),
            None => {
                self.report(self.size);
                Ok(None)
            }
        }
    }

    /// The next record, `None` at the end of the file.
    pub(crate) fn next_record(
        &mut self,
        _options: &CorpusOptions,
        _stats: &mut CorpusStats,
    ) -> Result<Option<Record>> {
        if self.finished {
            return Ok(None);
        }
        // Step to the next row, over empty batches.
        let (batch, index) = loop {
            match self.batch.take() {
                Some((batch, index)) if index < batch.num_rows() => break (batch, index),
                _ => match self.next_batch() {
                    Ok(Some(batch)) => self.batch = Some((batch, 0)),
                    Ok(None) => {
                        self.finished = true;
                        return Ok(None);
                    }
                    Err(e) => {
                        self.finished = true;
                        return Err(e);
                    }
                },
            }
        };
        self.row += 1;
        let result = self.record_at(&batch, index);
        self.batch = Some((batch, index + 1));
        result.map(Some)
    }

    /// The record of row `index` of `batch` (row `self.row` of the file).
    fn record_at(&self, batch: &RecordBatch, index: usize) -> Result<Record> {
        let bad = |message: String| DataError::BadRecord {
            path: self.path.clone(),
            line: self.row,
            message,
        };
        // Present: the batch is projected onto the columns `open` checked.
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| bad(format!("row {}: no column {name:?}", self.row)))
        };
        let text = str_at(column(&self.text_field)?.as_ref(), index).ok_or_else(|| {
            bad(format!(
                "row {}: column {:?} is null (expected document text)",
                self.row, self.text_field
            ))
        })?;
        let key = match self.id_field.as_deref() {
            None => None,
            Some(id) => Some(id_at(column(id)?.as_ref(), index).ok_or_else(|| {
                bad(format!(
                    "row {}: document id column {id:?} is null",
                    self.row
                ))
            })?),
        };
        Ok(Record {
            paragraphs: paragraphs_of(text),
            key,
        })
    }
}
