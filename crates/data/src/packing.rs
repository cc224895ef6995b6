//! RoBERTa's input formats for the `mlm` objective: whole sentences packed into
//! `[CLS] s1 s2 … [SEP]`, one segment, token types all 0.
//!
//! - `full_sentences`: sentences follow each other across document boundaries, with one `[SEP]`
//!   (counted in the length) between the last sentence of a document and the first of the
//!   next. A sequence never starts with that `[SEP]`.
//! - `doc_sentences`: a document's last sequence ends with the document, however short.
//!
//! A sentence is appended whole while it fits in `max_seq_length - 2` tokens (less when a short
//! target was drawn); the only sentence ever split is one longer than a whole sequence, cut
//! into pieces of exactly `max_seq_length - 2` tokens, its remainder starting the next
//! sequence. Nothing is truncated and the last partial sequence is emitted by
//! [`Packer::finish`], so every token of the input lands in exactly one sequence.
//!
//! The packer is a streaming state machine: documents go in in input order, sequences come out
//! as they fill, and the only state carried from one document to the next is the sequence
//! being filled. `prepare` runs it sequentially per split (it is a copy of token ids, far
//! cheaper than tokenizing), so the output depends on the input order alone, never on threads
//! or chunking.

use bert_rng::Rng;

use crate::instances::{Instance, TokenizedDoc};
use crate::objective::MlmFormat;
use crate::tokenizer::SpecialIds;

/// Packs the sentences of consecutive documents into `mlm` sequences.
#[derive(Clone, Debug)]
pub struct Packer {
    format: MlmFormat,
    /// Content tokens per sequence: `max_seq_length - 2` (`[CLS]` and the final `[SEP]`).
    max_num_tokens: usize,
    short_seq_prob: f64,
    /// The current sequence's target: `max_num_tokens`, or a short draw.
    target: usize,
    rng: Rng,
    special: SpecialIds,
    /// Content of the sequence being filled (no `[CLS]`/final `[SEP]` yet).
    current: Vec<u32>,
    /// A document ended inside `current`: the next sentence is preceded by `[SEP]`.
    doc_ended: bool,
    /// Sequences emitted so far (numbers the next one; keys its masks in `prepare`).
    emitted: u64,
    /// Sentences longer than a sequence that were cut into pieces.
    split_sentences: u64,
}

impl Packer {
    /// A packer for sequences of at most `max_seq_length` tokens (at least 3). With probability
    /// `short_seq_prob` a sequence targets a length drawn uniformly from
    /// `2..=max_seq_length - 2` instead (as BERT's short sequences; `mlm` draws none unless the
    /// config asks); `rng` makes those draws.
    pub fn new(
        format: MlmFormat,
        max_seq_length: usize,
        short_seq_prob: f64,
        special: SpecialIds,
        rng: Rng,
    ) -> Self {
        let max_num_tokens = max_seq_length.saturating_sub(2).max(1);
        let mut packer = Self {
            format,
            max_num_tokens,
            short_seq_prob,
            target: max_num_tokens,
            rng,
            special,
            current: Vec::new(),
            doc_ended: false,
            emitted: 0,
            split_sentences: 0,
        };
        packer.draw_target();
        packer
    }

    /// Sequences emitted so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Sentences cut into pieces so far because they were longer than a sequence.
    pub fn split_sentences(&self) -> u64 {
        self.split_sentences
    }

    /// Appends a document's sentences, pushing every sequence that fills onto `out`.
    pub fn push_document(&mut self, doc: &TokenizedDoc, out: &mut Vec<Instance>) {
        for sentence in &doc.sentences {
            self.push_sentence(sentence, out);
        }
        if self.current.is_empty() {
            return;
        }
        match self.format {
            MlmFormat::DocSentences => self.emit(out),
            MlmFormat::FullSentences => self.doc_ended = true,
        }
    }

    /// Emits the last, partial sequence (if any): the end of the input is not a reason to
    /// drop tokens.
    pub fn finish(&mut self, out: &mut Vec<Instance>) {
        if !self.current.is_empty() {
            self.emit(out);
        }
    }

    fn push_sentence(&mut self, sentence: &[u32], out: &mut Vec<Instance>) {
        if sentence.is_empty() {
            return;
        }
        if !self.current.is_empty() {
            let sep = usize::from(self.doc_ended);
            if self.current.len() + sep + sentence.len() <= self.target {
                if self.doc_ended {
                    self.current.push(self.special.sep);
                    self.doc_ended = false;
                }
                self.current.extend_from_slice(sentence);
                return;
            }
            self.emit(out);
        }
        // An empty sequence takes the sentence whole when it fits a full sequence, even past
        // a short target (a sentence is never split for a short draw); a longer one is cut
        // into full-length pieces and its remainder starts the next sequence.
        let mut rest = sentence;
        if rest.len() > self.max_num_tokens {
            self.split_sentences += 1;
        }
        while rest.len() > self.max_num_tokens {
            let (piece, tail) = rest.split_at(self.max_num_tokens);
            self.current.extend_from_slice(piece);
            self.emit(out);
            rest = tail;
        }
        self.current.extend_from_slice(rest);
    }

    fn emit(&mut self, out: &mut Vec<Instance>) {
        let mut input_ids = Vec::with_capacity(self.current.len() + 2);
        input_ids.push(self.special.cls);
        input_ids.append(&mut self.current);
        input_ids.push(self.special.sep);
        out.push(Instance {
            token_type_ids: vec![0; input_ids.len()],
            input_ids,
            nsp_label: 0,
            masked_positions: Vec::new(),
            masked_labels: Vec::new(),
        });
        self.doc_ended = false;
        self.emitted += 1;
        self.draw_target();
    }

    fn draw_target(&mut self) {
        self.target = self.max_num_tokens;
        // No draw at all when short sequences are off, so that the stream of a packer that
        // never draws is not consumed either.
        if self.short_seq_prob > 0.0 && self.rng.next_f64() < self.short_seq_prob {
            self.target = self
                .rng
                .range_inclusive(2.min(self.max_num_tokens), self.max_num_tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECIAL: SpecialIds = SpecialIds {
        pad: 0,
        unk: 1,
        cls: 2,
        sep: 3,
        mask: 4,
    };

    /// Documents whose tokens are all distinct (and above the special ids), so every token
    /// can be traced back to its document and sentence.
    fn docs(lengths: &[&[usize]]) -> Vec<TokenizedDoc> {
        let mut next = 100u32;
        lengths
            .iter()
            .enumerate()
            .map(|(d, ls)| TokenizedDoc {
                index: d as u64,
                sentences: ls
                    .iter()
                    .map(|&n| {
                        let s: Vec<u32> = (next..next + n as u32).collect();
                        next += n as u32;
                        s
                    })
                    .collect(),
            })
            .collect()
    }

    fn pack(format: MlmFormat, max: usize, docs: &[TokenizedDoc]) -> Vec<Instance> {
        let mut p = Packer::new(format, max, 0.0, SPECIAL, Rng::new(1));
        let mut out = Vec::new();
        for d in docs {
            p.push_document(d, &mut out);
        }
        p.finish(&mut out);
        out
    }

    fn content(i: &Instance) -> &[u32] {
        &i.input_ids[1..i.input_ids.len() - 1]
    }

    #[test]
    fn full_sentences_cross_documents_with_one_sep() {
        // max 12 → 10 content tokens. Doc 0: 4 + 3; doc 1: 2 + 5; doc 2: 6.
        let d = docs(&[&[4, 3], &[2, 5], &[6]]);
        let out = pack(MlmFormat::FullSentences, 12, &d);
        let c: Vec<&[u32]> = out.iter().map(content).collect();
        // 4 + 3 = 7, + [SEP] + 2 = 10: fits exactly; + 5 does not.
        assert_eq!(c[0].len(), 10);
        assert_eq!(c[0][7], SPECIAL.sep);
        // 5, then [SEP] + 6 = 12 > 10: the document's [SEP] is not carried over.
        assert_eq!(c[1], &d[1].sentences[1][..]);
        assert_eq!(c[2], &d[2].sentences[0][..]);
        for i in &out {
            assert_eq!(i.input_ids[0], SPECIAL.cls);
            assert_eq!(*i.input_ids.last().unwrap(), SPECIAL.sep);
            assert!(i.token_type_ids.iter().all(|&t| t == 0));
            assert_eq!(i.nsp_label, 0);
        }
    }

    #[test]
    fn doc_sentences_never_cross_a_document() {
        let d = docs(&[&[4, 3], &[2, 5], &[6]]);
        let out = pack(MlmFormat::DocSentences, 12, &d);
        let c: Vec<Vec<u32>> = out.iter().map(|i| content(i).to_vec()).collect();
        assert_eq!(
            c,
            vec![
                d[0].sentences.concat(),
                d[1].sentences.concat(),
                d[2].sentences.concat()
            ]
        );
    }

    #[test]
    fn only_a_sentence_longer_than_the_sequence_is_split() {
        // 10 content tokens; a 25-token sentence becomes 10 + 10 + 5, the 5 continuing with
        // the next sentence.
        let d = docs(&[&[3, 25, 4]]);
        let out = pack(MlmFormat::FullSentences, 12, &d);
        let lens: Vec<usize> = out.iter().map(|i| content(i).len()).collect();
        assert_eq!(lens, vec![3, 10, 10, 9]);
        let all: Vec<u32> = out.iter().flat_map(|i| content(i).to_vec()).collect();
        assert_eq!(all, d[0].sentences.concat());
    }

    #[test]
    fn short_draws_only_when_asked_and_never_split_a_sentence() {
        let d = docs(&[&[3; 200]]);
        let full = pack(MlmFormat::FullSentences, 32, &d);
        // 30 content tokens of 3-token sentences: every sequence but the last is full.
        assert!(full[..full.len() - 1]
            .iter()
            .all(|i| i.input_ids.len() == 32));
        let mut p = Packer::new(MlmFormat::FullSentences, 32, 0.5, SPECIAL, Rng::new(9));
        let mut out = Vec::new();
        p.push_document(&d[0], &mut out);
        p.finish(&mut out);
        assert!(out.iter().filter(|i| i.input_ids.len() < 29).count() > 5);
        let all: Vec<u32> = out.iter().flat_map(|i| content(i).to_vec()).collect();
        assert_eq!(all, d[0].sentences.concat());
        assert!(out.iter().all(|i| content(i).len().is_multiple_of(3)));
    }
}
