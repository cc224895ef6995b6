//! Opening an input file for reading, decompressed by its extension (`.gz`, `.zst`, `.bz2`),
//! with a counter of the on-disk bytes consumed for progress reporting.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{io_err, Result};

/// Compression detected from a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
}

/// The compression of `path` by its extension, and its lower-case file name without that
/// extension.
pub(super) fn compression_of(path: &Path) -> (Compression, String) {
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
pub(super) fn open_lines(path: &Path, counter: Arc<AtomicU64>) -> Result<Box<dyn BufRead + Send>> {
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
