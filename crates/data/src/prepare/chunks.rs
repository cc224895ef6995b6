//! Reading the corpus on its own thread, one chunk of documents ahead of the workers. Chunk
//! boundaries depend only on the input (a document count or a text size), never on timing or
//! thread count, so the output does not either.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::corpus::{CorpusReader, CorpusStats, RawDocument};
use crate::error::{DataError, Result};

/// Documents per processing chunk (fixed: chunking must not depend on the machine).
const CHUNK_DOCS: usize = 1024;
/// Bytes of text per processing chunk, whichever limit is reached first.
const CHUNK_BYTES: usize = 16 << 20;

/// A chunk of documents, each with its index in the whole corpus.
pub(super) type Chunk = Vec<(u64, RawDocument)>;

/// Starts the reader thread (decompression and parsing run there): chunks arrive on the
/// receiver, then the first error if any; the thread returns the reader's counters.
pub(super) fn spawn_reader(
    reader: CorpusReader,
) -> Result<(Receiver<Result<Chunk>>, JoinHandle<CorpusStats>)> {
    let (chunk_tx, chunk_rx) = sync_channel::<Result<Chunk>>(1);
    let reader_thread = std::thread::Builder::new()
        .name("bert-data-reader".into())
        .spawn(move || read_chunks(reader, chunk_tx))
        .map_err(|e| DataError::Config(format!("cannot start the reader thread: {e}")))?;
    Ok((chunk_rx, reader_thread))
}

/// Reads documents in chunks of at most [`CHUNK_DOCS`] documents or [`CHUNK_BYTES`] of text
/// and sends them on, then the first error if any; returns the reader's counters.
fn read_chunks(
    mut reader: CorpusReader,
    tx: SyncSender<Result<Vec<(u64, RawDocument)>>>,
) -> CorpusStats {
    let mut next_doc_index = 0u64;
    loop {
        let mut chunk = Vec::new();
        let mut bytes = 0usize;
        let mut failure = None;
        while chunk.len() < CHUNK_DOCS && bytes < CHUNK_BYTES {
            match reader.next_document() {
                Ok(Some(doc)) => {
                    bytes += doc.paragraphs.iter().map(String::len).sum::<usize>();
                    chunk.push((next_doc_index, doc));
                    next_doc_index += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let end = chunk.is_empty();
        // A send fails only when the consumer stopped (it hit an error): stop too.
        if !end && tx.send(Ok(chunk)).is_err() {
            break;
        }
        if let Some(e) = failure {
            let _ = tx.send(Err(e));
            break;
        }
        if end {
            break;
        }
    }
    reader.stats().clone()
}
