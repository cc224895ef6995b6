//! A WordPiece encoder for ASCII text that gives exactly the ids of HuggingFace's BERT tokenizer
//! (BERT normaliser, BERT pre-tokeniser, WordPiece) built from a `vocab.txt`, without its
//! per-character Unicode table lookups and per-piece allocations, which took most of
//! `bert prepare`'s time (docs/benchmarks.md, issue 13).
//!
//! Text is cut at ASCII whitespace into chunks. A chunk of ASCII characters without `[` is encoded
//! here; any other chunk (non-ASCII characters, or a `[` that may start a special token such as
//! `[MASK]`) is handed back to the caller for HuggingFace's tokenizer, consecutive ones together
//! as one slice of the text. Every step of the BERT
//! pipeline is local to a whitespace-separated chunk (the normaliser maps characters one by one,
//! NFD never reorders across a space, the pre-tokeniser splits at whitespace), so encoding chunk
//! by chunk gives the ids of encoding the whole text; the tests check that on the sample corpus
//! and, when present, on the shared corpora.

use ahash::AHashMap;

/// WordPiece tables for ASCII text: word-initial pieces and `##` continuations in two maps keyed
/// by their bytes, so a lookup never allocates.
#[derive(Clone, Debug)]
pub struct AsciiWordPiece {
    initial: AHashMap<Box<[u8]>, u32>,
    continuation: AHashMap<Box<[u8]>, u32>,
    /// Longest piece in bytes: the greedy search starts no longer than this.
    longest: usize,
    unk: u32,
    lowercase: bool,
    /// The longest word WordPiece splits; a longer one is `[UNK]` (HuggingFace's default: 100).
    max_chars_per_word: usize,
}

impl AsciiWordPiece {
    /// Tables for the ordered `tokens` of a vocabulary (id = position). `lowercase` as the BERT
    /// normaliser's (accent stripping does nothing to ASCII), `max_chars_per_word` as WordPiece's.
    pub fn new(tokens: &[String], unk: u32, lowercase: bool, max_chars_per_word: usize) -> Self {
        let (mut initial, mut continuation) = (AHashMap::new(), AHashMap::new());
        let mut longest = 0;
        for (id, token) in tokens.iter().enumerate() {
            let (map, piece) = match token.strip_prefix("##") {
                Some(rest) => (&mut continuation, rest),
                None => (&mut initial, token.as_str()),
            };
            longest = longest.max(piece.len());
            // HuggingFace's vocabulary map keeps the last id of a repeated token; `vocab.txt`
            // readers refuse repeats, so this is only for completeness.
            map.insert(piece.as_bytes().into(), id as u32);
        }
        Self {
            initial,
            continuation,
            longest,
            unk,
            lowercase,
            max_chars_per_word,
        }
    }

    /// Appends the ids of `text` to `ids`, and calls `fallback` with each run of consecutive
    /// chunks it cannot encode itself (one slice of `text`, the whitespace between them
    /// included), in order, for the caller to append their ids. Errors from `fallback` stop the
    /// encoding.
    pub fn encode<E>(
        &self,
        text: &str,
        ids: &mut Vec<u32>,
        mut fallback: impl FnMut(&str, &mut Vec<u32>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut word = Vec::with_capacity(32);
        // Byte range of `text` waiting for `fallback`: a run of chunks goes in one call, so text
        // that is mostly non-ASCII costs one HuggingFace call per text, not one per word.
        let mut pending: Option<(usize, usize)> = None;
        for chunk in text.split([' ', '\t', '\n', '\r']) {
            if chunk.is_empty() {
                continue;
            }
            if !chunk.is_ascii() || chunk.contains('[') {
                let start = chunk.as_ptr() as usize - text.as_ptr() as usize;
                let end = start + chunk.len();
                pending = Some((pending.map_or(start, |(s, _)| s), end));
                continue;
            }
            if let Some((start, end)) = pending.take() {
                fallback(&text[start..end], ids)?;
            }
            for &b in chunk.as_bytes() {
                if b.is_ascii_control() {
                    // The normaliser drops control characters (tab, newline and carriage
                    // return were split on above).
                    continue;
                }
                if b.is_ascii_punctuation() {
                    self.word(&word, ids);
                    word.clear();
                    self.word(&[b], ids);
                } else {
                    word.push(if self.lowercase {
                        b.to_ascii_lowercase()
                    } else {
                        b
                    });
                }
            }
            self.word(&word, ids);
            word.clear();
        }
        if let Some((start, end)) = pending {
            fallback(&text[start..end], ids)?;
        }
        Ok(())
    }

    /// WordPiece on one pre-tokenised word: greedy longest match from the left, `##` pieces
    /// after the first; the whole word is `[UNK]` if some part matches nothing.
    fn word(&self, word: &[u8], ids: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if word.len() > self.max_chars_per_word {
            ids.push(self.unk);
            return;
        }
        let before = ids.len();
        let mut start = 0;
        while start < word.len() {
            let map = if start == 0 {
                &self.initial
            } else {
                &self.continuation
            };
            let mut end = word.len().min(start + self.longest);
            let found = loop {
                if end == start {
                    break None;
                }
                if let Some(&id) = map.get(&word[start..end]) {
                    break Some(id);
                }
                end -= 1;
            };
            match found {
                Some(id) => {
                    ids.push(id);
                    start = end;
                }
                None => {
                    ids.truncate(before);
                    ids.push(self.unk);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_other_chunks_go_to_the_fallback_as_one_slice_each() {
        let tokens: Vec<String> = ["[UNK]", "a", "b", "##b", "."]
            .iter()
            .map(|t| t.to_string())
            .collect();
        let encoder = AsciiWordPiece::new(&tokens, 0, true, 100);
        let (mut ids, mut calls) = (Vec::new(), Vec::new());
        encoder
            .encode(
                "A caf\u{e9}  na\u{ef}ve\tabb. [MASK] \u{e7}a b",
                &mut ids,
                |chunk, ids| {
                    calls.push(chunk.to_string());
                    ids.push(99);
                    Ok::<(), ()>(())
                },
            )
            .unwrap();
        assert_eq!(calls, ["caf\u{e9}  na\u{ef}ve", "[MASK] \u{e7}a"]);
        assert_eq!(ids, [1, 99, 1, 3, 3, 4, 99, 2]);
    }
}
