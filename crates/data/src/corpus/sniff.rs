//! Telling text from what is not: the first block of a file (after decompression) is checked
//! for a known binary format's magic number, NUL bytes, and the share of bytes that are
//! neither UTF-8 nor ordinary whitespace, so that images and archives in a corpus folder are
//! not tokenized as text.

use std::io::{BufRead, Cursor, Read};

/// Bytes looked at.
pub(super) const HEAD_BYTES: u64 = 8192;

/// Share of the first block that may be invalid UTF-8 or control characters: text in a legacy
/// encoding (Latin-1 accents) stays well below it, binary data is far above.
const MAX_NON_TEXT_SHARE: f64 = 0.10;

/// Formats recognised by their first bytes, as `(magic, name)`.
const MAGIC: &[(&[u8], &str)] = &[
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (also .docx, .xlsx, .epub)"),
    (
        b"\x1f\x8b",
        "gzip data (name it .gz to have it decompressed)",
    ),
    (
        b"\x28\xb5\x2f\xfd",
        "zstd data (name it .zst to have it decompressed)",
    ),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x7fELF", "an ELF executable"),
    (
        b"PAR1",
        "a Parquet file (name it .parquet, or set format = \"parquet\")",
    ),
    (
        b"ARROW1",
        "an Arrow IPC file (name it .arrow, or set format = \"arrow\")",
    ),
    // The stream format's continuation marker, which starts every message (`datasets`' own
    // files); no text starts with it, since 0xFF is never part of UTF-8.
    (
        b"\xff\xff\xff\xff",
        "an Arrow IPC stream (name it .arrow, or set format = \"arrow\")",
    ),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xff\xfe", "UTF-16 text (convert it to UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (convert it to UTF-8)"),
];

/// Why `head` (the first bytes of a file) is not text, or `None` when it reads as text.
pub(super) fn non_text_reason(head: &[u8]) -> Option<String> {
    if let Some((_, name)) = MAGIC.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Some(format!("starts like {name}"));
    }
    if head.len() >= 10 && head.starts_with(b"BZh") && &head[4..10] == b"1AY&SY" {
        return Some("starts like bzip2 data (name it .bz2 to have it decompressed)".into());
    }
    if let Some(at) = head.iter().position(|&b| b == 0) {
        return Some(format!("holds a NUL byte at offset {at}"));
    }
    let bad = non_text_bytes(head);
    let share = bad as f64 / head.len().max(1) as f64;
    (share > MAX_NON_TEXT_SHARE).then(|| {
        format!(
            "{:.0}% of its first {} bytes are not UTF-8 text",
            share * 100.0,
            head.len()
        )
    })
}

/// Bytes of invalid UTF-8 sequences and control characters other than whitespace; a sequence
/// cut off by the end of the block does not count.
fn non_text_bytes(head: &[u8]) -> usize {
    let mut bad = 0;
    let mut rest = head;
    loop {
        match std::str::from_utf8(rest) {
            Ok(text) => return bad + control_chars(text),
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                // Valid by construction.
                bad += control_chars(std::str::from_utf8(valid).unwrap_or(""));
                match e.error_len() {
                    Some(n) => {
                        bad += n;
                        rest = &after[n..];
                    }
                    None => return bad,
                }
            }
        }
    }
}

fn control_chars(text: &str) -> usize {
    text.chars()
        .filter(|&c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c' | '\x0b'))
        .count()
}

/// Reads the first block of `reader` and gives it back with a reader that still yields every
/// byte from the start.
pub(super) fn peek_head(
    mut reader: Box<dyn BufRead + Send>,
) -> std::io::Result<(Vec<u8>, Box<dyn BufRead + Send>)> {
    let mut head = Vec::with_capacity(HEAD_BYTES as usize);
    (&mut reader).take(HEAD_BYTES).read_to_end(&mut head)?;
    let replay = Cursor::new(head.clone());
    Ok((head, Box::new(replay.chain(reader))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_in_any_script_and_latin1_accents_are_text() {
        assert_eq!(non_text_reason(b""), None);
        assert_eq!(
            non_text_reason("Der Bär aß 東京 — «ok»\n\tx\r\n".as_bytes()),
            None
        );
        let latin1: Vec<u8> =
            b"caf\xe9 au lait, na\xefve r\xe9sum\xe9 of a long sentence here. ".repeat(20);
        assert_eq!(non_text_reason(&latin1), None);
        // A multi-byte character cut off by the end of the block.
        let mut cut = "word ".repeat(100).into_bytes();
        cut.extend_from_slice(&"é".as_bytes()[..1]);
        assert_eq!(non_text_reason(&cut), None);
    }

    #[test]
    fn binary_formats_nuls_and_noise_are_not_text() {
        let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";
        assert_eq!(non_text_reason(png).unwrap(), "starts like a PNG image");
        assert!(non_text_reason(b"PAR1....").unwrap().contains("Parquet"));
        for arrow in [
            &b"ARROW1\x00\x00\xff\xff"[..],
            b"\xff\xff\xff\xff\x10\x01\x00\x00",
        ] {
            let reason = non_text_reason(arrow).unwrap();
            assert!(
                reason.contains("Arrow IPC") && reason.contains("name it .arrow"),
                "{reason}"
            );
        }
        assert_eq!(
            non_text_reason(b"hello\x00world").unwrap(),
            "holds a NUL byte at offset 5"
        );
        let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251 + 1) as u8).collect();
        let reason = non_text_reason(&noise).unwrap();
        assert!(
            reason.ends_with("of its first 4096 bytes are not UTF-8 text"),
            "{reason}"
        );
    }

    #[test]
    fn the_peeked_reader_replays_every_byte() {
        let data: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let reader: Box<dyn BufRead + Send> = Box::new(Cursor::new(data.clone()));
        let (head, mut reader) = peek_head(reader).unwrap();
        assert_eq!(head.len(), HEAD_BYTES as usize);
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
    }
}
