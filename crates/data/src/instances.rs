//! Pre-training instances as Google's `create_instances_from_document` builds them (NSP), and
//! as ALBERT's builds them for sentence-order prediction
//! ([`create_sop_instances_from_document`]). The `mlm` objective's packed sequences are built
//! by `packing`.
//!
//! One deliberate deviation: the "random other document" for a negative NSP pair comes from a
//! bounded pool (the most recent `random_document_pool` documents of the same split) instead of
//! the whole corpus, which the original keeps in memory and so cannot process full Wikipedia on
//! an ordinary machine. With a pool of a few thousand documents the negatives are just as
//! unrelated; only documents far apart in the input order never pair up.

use std::collections::VecDeque;
use std::sync::Arc;

use bert_rng::Rng;

use crate::tokenizer::SpecialIds;

/// A tokenized document: its global index in the input order and its non-empty sentences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizedDoc {
    /// Position in the input order (unique per document).
    pub index: u64,
    /// Sentences as token ids, none empty.
    pub sentences: Vec<Vec<u32>>,
}

/// The bounded pool of recent documents that negative NSP segments are drawn from.
#[derive(Clone, Debug)]
pub struct DocPool {
    docs: VecDeque<Arc<TokenizedDoc>>,
    capacity: usize,
}

impl DocPool {
    /// An empty pool holding at most `capacity` documents (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            docs: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds a document, evicting the oldest when full.
    pub fn push(&mut self, doc: Arc<TokenizedDoc>) {
        if self.docs.len() == self.capacity {
            self.docs.pop_front();
        }
        self.docs.push_back(doc);
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// True when no document is held.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    fn get(&self, i: usize) -> &TokenizedDoc {
        &self.docs[i]
    }
}

/// Instance-building knobs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceParams {
    /// Total length including `[CLS]` and two `[SEP]` (at least 5).
    pub max_seq_length: usize,
    /// Probability that a document's target length is drawn uniformly from
    /// `2..=max_seq_length-3` instead of the maximum.
    pub short_seq_prob: f64,
}

/// One pre-training instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    /// `[CLS] A [SEP] B [SEP]` (`mlm`: `[CLS] s1 s2 … [SEP]`, with a `[SEP]` between
    /// documents), with masked tokens replaced when masked.
    pub input_ids: Vec<u32>,
    /// 0 for `[CLS] A [SEP]`, 1 for `B [SEP]` (`mlm`: all 0).
    pub token_type_ids: Vec<u8>,
    /// The pair label, stored in the shards' `nsp_labels`: for `mlm_nsp` 0 = B is the true
    /// continuation (IsNext), 1 = B is random; for `mlm_sop` 0 = in order, 1 = swapped; for
    /// `mlm` always 0.
    pub nsp_label: u8,
    /// Masked positions, ascending (empty for dynamic masking).
    pub masked_positions: Vec<u32>,
    /// Original ids at the masked positions.
    pub masked_labels: Vec<u32>,
}

/// Instances of one document and the counts the statistics tests need.
#[derive(Clone, Debug, Default)]
pub struct DocInstances {
    /// The instances, in document order.
    pub instances: Vec<Instance>,
    /// Negatives forced because the chunk had a single sentence (no coin was flipped).
    pub forced_random: usize,
    /// Sentences split inside: `mlm_sop` chunks of one sentence cut in two, `mlm` sentences
    /// longer than a sequence cut into pieces.
    pub split_sentences: usize,
}

/// A pair's token budget (`max_seq_length` less `[CLS]` and two `[SEP]`) and the document's
/// target length: the budget, or with probability `short_seq_prob` a length drawn from
/// `2..=budget` (once per document, as in the original). `None` when the budget is below 2.
fn pair_lengths(params: &InstanceParams, rng: &mut Rng) -> Option<(usize, usize)> {
    let max_num_tokens = params.max_seq_length.saturating_sub(3);
    if max_num_tokens < 2 {
        return None;
    }
    let mut target_seq_length = max_num_tokens;
    if rng.next_f64() < params.short_seq_prob {
        target_seq_length = rng.range_inclusive(2, max_num_tokens);
    }
    Some((max_num_tokens, target_seq_length))
}

/// Builds the instances of `doc`, drawing negatives from `pool` (which may contain `doc`
/// itself; like the original, ten tries are made to find another document).
pub fn create_instances_from_document(
    doc: &TokenizedDoc,
    pool: &DocPool,
    params: &InstanceParams,
    special: &SpecialIds,
    rng: &mut Rng,
) -> DocInstances {
    let mut out = DocInstances::default();
    let Some((max_num_tokens, target_seq_length)) = pair_lengths(params, rng) else {
        return out;
    };
    let sentences = &doc.sentences;
    let mut current_chunk: Vec<&[u32]> = Vec::new();
    let mut current_length = 0usize;
    let mut i = 0usize;
    while i < sentences.len() {
        let segment = &sentences[i];
        current_chunk.push(segment);
        current_length += segment.len();
        if i == sentences.len() - 1 || current_length >= target_seq_length {
            if !current_chunk.is_empty() {
                let a_end = if current_chunk.len() >= 2 {
                    rng.range_inclusive(1, current_chunk.len() - 1)
                } else {
                    1
                };
                let mut tokens_a: Vec<u32> = Vec::new();
                for s in &current_chunk[..a_end] {
                    tokens_a.extend_from_slice(s);
                }
                let mut tokens_b: Vec<u32> = Vec::new();
                let single = current_chunk.len() == 1;
                let is_random_next = single || rng.next_f64() < 0.5;
                if is_random_next {
                    if single {
                        out.forced_random += 1;
                    }
                    let target_b_length = target_seq_length.saturating_sub(tokens_a.len());
                    let random_doc = pick_other(doc, pool, rng);
                    let rs = &random_doc.sentences;
                    if !rs.is_empty() {
                        let start = rng.range_inclusive(0, rs.len() - 1);
                        for s in &rs[start..] {
                            tokens_b.extend_from_slice(s);
                            if tokens_b.len() >= target_b_length {
                                break;
                            }
                        }
                    }
                    // The unused A-side sentences go back: the next chunk starts with them.
                    let unused = current_chunk.len() - a_end;
                    i -= unused;
                } else {
                    for s in &current_chunk[a_end..] {
                        tokens_b.extend_from_slice(s);
                    }
                }
                let (a, b) = truncate_seq_pair(&tokens_a, &tokens_b, max_num_tokens, rng);
                // The original asserts both are non-empty; that holds for non-empty sentences,
                // and an instance without one side is skipped rather than fatal.
                if !a.is_empty() && !b.is_empty() {
                    out.instances.push(assemble(a, b, is_random_next, special));
                }
            }
            current_chunk.clear();
            current_length = 0;
        }
        i += 1;
    }
    out
}

/// Builds the sentence-order-prediction instances of `doc`, as ALBERT's
/// `create_instances_from_document` with `random_next_sentence = False`: chunks of consecutive
/// sentences up to the target length (short with `short_seq_prob`, drawn once per document as
/// in BERT), each cut at a random sentence boundary into A and B, which are swapped with
/// probability 0.5 (label 1 = swapped, 0 = in order), then truncated as BERT's pairs.
///
/// One deliberate deviation: ALBERT gives a chunk of a single sentence a B from another
/// document (an NSP negative, labelled as swapped). That mixes a second task into SOP, so here
/// the sentence is cut in two at a random token instead (and counted in `split_sentences`):
/// both segments stay consecutive text of one document and every label is a fair coin. A
/// one-token sentence alone in its chunk cannot make two segments and is skipped.
pub fn create_sop_instances_from_document(
    doc: &TokenizedDoc,
    params: &InstanceParams,
    special: &SpecialIds,
    rng: &mut Rng,
) -> DocInstances {
    let mut out = DocInstances::default();
    let Some((max_num_tokens, target_seq_length)) = pair_lengths(params, rng) else {
        return out;
    };
    let sentences = &doc.sentences;
    let mut current_chunk: Vec<&[u32]> = Vec::new();
    let mut current_length = 0usize;
    for (i, segment) in sentences.iter().enumerate() {
        current_chunk.push(segment);
        current_length += segment.len();
        if i + 1 < sentences.len() && current_length < target_seq_length {
            continue;
        }
        let (tokens_a, tokens_b): (Vec<u32>, Vec<u32>) = if current_chunk.len() >= 2 {
            let a_end = rng.range_inclusive(1, current_chunk.len() - 1);
            (
                current_chunk[..a_end].concat(),
                current_chunk[a_end..].concat(),
            )
        } else if segment.len() >= 2 {
            out.split_sentences += 1;
            let cut = rng.range_inclusive(1, segment.len() - 1);
            (segment[..cut].to_vec(), segment[cut..].to_vec())
        } else {
            current_chunk.clear();
            current_length = 0;
            continue;
        };
        let swapped = rng.next_f64() < 0.5;
        let (first, second) = if swapped {
            (&tokens_b, &tokens_a)
        } else {
            (&tokens_a, &tokens_b)
        };
        let (a, b) = truncate_seq_pair(first, second, max_num_tokens, rng);
        if !a.is_empty() && !b.is_empty() {
            out.instances.push(assemble(a, b, swapped, special));
        }
        current_chunk.clear();
        current_length = 0;
    }
    out
}

/// A random document of the pool other than `doc` if ten draws find one (else the last draw,
/// as in the original); `doc` itself when the pool is empty.
fn pick_other<'a>(doc: &'a TokenizedDoc, pool: &'a DocPool, rng: &mut Rng) -> &'a TokenizedDoc {
    if pool.is_empty() {
        return doc;
    }
    let mut pick = pool.get(0);
    for _ in 0..10 {
        pick = pool.get(rng.below(pool.len() as u64) as usize);
        if pick.index != doc.index {
            break;
        }
    }
    pick
}

/// Truncates the longer of the two sides, one token at a time from a randomly chosen end,
/// until they fit `max_num_tokens` together.
pub fn truncate_seq_pair<'a>(
    a: &'a [u32],
    b: &'a [u32],
    max_num_tokens: usize,
    rng: &mut Rng,
) -> (&'a [u32], &'a [u32]) {
    let (mut a, mut b) = (a, b);
    while a.len() + b.len() > max_num_tokens {
        let longer = if a.len() > b.len() { &mut a } else { &mut b };
        if rng.next_f64() < 0.5 {
            *longer = &longer[1..];
        } else {
            *longer = &longer[..longer.len() - 1];
        }
    }
    (a, b)
}

/// `[CLS] a [SEP] b [SEP]`, token types 0 up to the first `[SEP]` and 1 after; `label` is the
/// pair label (NSP: random next; SOP: swapped).
fn assemble(a: &[u32], b: &[u32], label: bool, special: &SpecialIds) -> Instance {
    let len = a.len() + b.len() + 3;
    let mut input_ids = Vec::with_capacity(len);
    input_ids.push(special.cls);
    input_ids.extend_from_slice(a);
    input_ids.push(special.sep);
    input_ids.extend_from_slice(b);
    input_ids.push(special.sep);
    let mut token_type_ids = vec![0u8; a.len() + 2];
    token_type_ids.resize(len, 1);
    Instance {
        input_ids,
        token_type_ids,
        nsp_label: u8::from(label),
        masked_positions: Vec::new(),
        masked_labels: Vec::new(),
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

    fn doc(index: u64, sentence_lengths: &[usize]) -> TokenizedDoc {
        let mut next = 1000 * (index as u32 + 1);
        let sentences = sentence_lengths
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|_| {
                        next += 1;
                        next
                    })
                    .collect()
            })
            .collect();
        TokenizedDoc { index, sentences }
    }

    #[test]
    fn truncation_keeps_a_contiguous_middle_of_the_longer_side() {
        let a: Vec<u32> = (0..30).collect();
        let b: Vec<u32> = (100..110).collect();
        let mut rng = Rng::new(3);
        let (ta, tb) = truncate_seq_pair(&a, &b, 20, &mut rng);
        assert_eq!(ta.len() + tb.len(), 20);
        assert_eq!(
            tb,
            &b[..],
            "the shorter side is untouched until both are equal"
        );
        assert!(a.windows(ta.len()).any(|w| w == ta));
    }

    #[test]
    fn continuations_are_true_continuations() {
        let params = InstanceParams {
            max_seq_length: 32,
            short_seq_prob: 0.1,
        };
        let mut pool = DocPool::new(10);
        let docs: Vec<Arc<TokenizedDoc>> = (0..5)
            .map(|i| Arc::new(doc(i, &[5, 7, 3, 9, 4, 6, 8, 2, 5, 7, 6])))
            .collect();
        for d in &docs {
            pool.push(d.clone());
        }
        let mut positives = 0;
        for seed in 0..50 {
            let d = &docs[(seed % 5) as usize];
            let out =
                create_instances_from_document(d, &pool, &params, &SPECIAL, &mut Rng::new(seed));
            let flat: Vec<u32> = d.sentences.concat();
            for inst in &out.instances {
                assert!(inst.input_ids.len() <= 32);
                assert_eq!(inst.input_ids[0], SPECIAL.cls);
                assert_eq!(*inst.input_ids.last().unwrap(), SPECIAL.sep);
                let sep = inst
                    .input_ids
                    .iter()
                    .position(|&t| t == SPECIAL.sep)
                    .unwrap();
                let a = &inst.input_ids[1..sep];
                let b = &inst.input_ids[sep + 1..inst.input_ids.len() - 1];
                assert!(!a.is_empty() && !b.is_empty());
                assert!(a.iter().all(|&t| t / 1000 == d.index as u32 + 1));
                if inst.nsp_label == 0 {
                    positives += 1;
                    // A then B, contiguous in the document (up to truncation at the seams).
                    let ab: Vec<u32> = a.iter().chain(b).copied().collect();
                    let start = flat.iter().position(|&t| t == ab[0]).unwrap();
                    let end = flat.iter().position(|&t| t == *ab.last().unwrap()).unwrap();
                    assert!(end >= start);
                    assert!(b.iter().all(|&t| t / 1000 == d.index as u32 + 1));
                } else {
                    // Random B comes from another document of the pool.
                    assert!(b.iter().all(|&t| t / 1000 != d.index as u32 + 1));
                }
            }
        }
        assert!(positives > 0);
    }

    #[test]
    fn is_next_pairs_are_contiguous_sentences_of_one_document() {
        let params = InstanceParams {
            max_seq_length: 24,
            short_seq_prob: 0.1,
        };
        let max_num_tokens = params.max_seq_length - 3;
        let lengths = [5, 7, 3, 9, 4, 6, 8, 2, 5, 7, 6, 3, 4];
        let docs: Vec<Arc<TokenizedDoc>> = (0..4).map(|i| Arc::new(doc(i, &lengths))).collect();
        let mut pool = DocPool::new(8);
        for d in &docs {
            pool.push(d.clone());
        }
        let (mut exact, mut truncated) = (0, 0);
        for seed in 0..200 {
            let d = &docs[(seed % 4) as usize];
            let flat: Vec<u32> = d.sentences.concat();
            let mut starts = vec![0usize];
            for s in &d.sentences {
                starts.push(starts.last().unwrap() + s.len());
            }
            let at = |t: u32| flat.iter().position(|&x| x == t).unwrap();
            let out =
                create_instances_from_document(d, &pool, &params, &SPECIAL, &mut Rng::new(seed));
            for inst in out.instances.iter().filter(|i| i.nsp_label == 0) {
                let sep = inst
                    .input_ids
                    .iter()
                    .position(|&t| t == SPECIAL.sep)
                    .unwrap();
                let a = &inst.input_ids[1..sep];
                let b = &inst.input_ids[sep + 1..inst.input_ids.len() - 1];
                let (a0, b0) = (at(a[0]), at(b[0]));
                // Each side is one stretch of the document, and B follows A.
                assert_eq!(
                    &flat[a0..a0 + a.len()],
                    a,
                    "seed {seed}: A is not contiguous"
                );
                assert_eq!(
                    &flat[b0..b0 + b.len()],
                    b,
                    "seed {seed}: B is not contiguous"
                );
                assert!(b0 >= a0 + a.len(), "seed {seed}: B starts inside A");
                if a.len() + b.len() < max_num_tokens {
                    // Nothing was truncated: A is whole sentences, B starts right after A at
                    // a sentence boundary.
                    exact += 1;
                    assert!(starts.contains(&a0), "seed {seed}: A starts mid-sentence");
                    assert_eq!(b0, a0 + a.len(), "seed {seed}: a gap between A and B");
                    assert!(starts.contains(&b0), "seed {seed}: B starts mid-sentence");
                } else {
                    truncated += 1;
                }
            }
        }
        assert!(
            exact > 20 && truncated > 20,
            "{exact} exact, {truncated} truncated"
        );
    }

    #[test]
    fn put_back_covers_the_document_exactly_once() {
        // With no short sequences and no truncation needed, the A-sides (plus B for positives)
        // of consecutive instances tile the document: a negative pair's unused sentences are
        // put back and start the next chunk, so nothing is skipped or repeated.
        let params = InstanceParams {
            max_seq_length: 1000,
            short_seq_prob: 0.0,
        };
        let d = doc(0, &[3, 4, 5, 6, 7, 8]);
        let mut pool = DocPool::new(4);
        pool.push(Arc::new(doc(1, &[2, 2])));
        let mut saw_negative_with_put_back = false;
        for seed in 0..100 {
            let out =
                create_instances_from_document(&d, &pool, &params, &SPECIAL, &mut Rng::new(seed));
            let mut covered: Vec<u32> = Vec::new();
            for inst in &out.instances {
                let sep = inst
                    .input_ids
                    .iter()
                    .position(|&t| t == SPECIAL.sep)
                    .unwrap();
                covered.extend_from_slice(&inst.input_ids[1..sep]);
                if inst.nsp_label == 0 {
                    covered.extend_from_slice(&inst.input_ids[sep + 1..inst.input_ids.len() - 1]);
                }
            }
            assert_eq!(covered, d.sentences.concat(), "seed {seed}");
            saw_negative_with_put_back |= out.instances.len() > 1;
        }
        assert!(saw_negative_with_put_back);
    }

    #[test]
    fn sop_segments_are_consecutive_text_of_one_document_swapped_half_the_time() {
        let params = InstanceParams {
            max_seq_length: 32,
            short_seq_prob: 0.1,
        };
        let max_num_tokens = params.max_seq_length - 3;
        let lengths = [5, 7, 3, 9, 4, 6, 8, 2, 5, 7, 6, 3, 4, 40, 1, 6];
        let (mut swapped, mut total, mut exact) = (0u64, 0u64, 0u64);
        for seed in 0..400u64 {
            let d = doc(seed % 7, &lengths);
            let flat: Vec<u32> = d.sentences.concat();
            let at = |t: u32| flat.iter().position(|&x| x == t).unwrap();
            let out =
                create_sop_instances_from_document(&d, &params, &SPECIAL, &mut Rng::new(seed));
            assert_eq!(out.forced_random, 0);
            for inst in &out.instances {
                assert!(inst.input_ids.len() <= params.max_seq_length);
                let sep = inst
                    .input_ids
                    .iter()
                    .position(|&t| t == SPECIAL.sep)
                    .unwrap();
                let first = &inst.input_ids[1..sep];
                let second = &inst.input_ids[sep + 1..inst.input_ids.len() - 1];
                assert!(!first.is_empty() && !second.is_empty());
                for (j, &t) in inst.token_type_ids.iter().enumerate() {
                    assert_eq!(t, u8::from(j > sep));
                }
                // In document order, A comes before B; the label says which is first.
                let (a, b) = if inst.nsp_label == 1 {
                    (second, first)
                } else {
                    (first, second)
                };
                let (a0, b0) = (at(a[0]), at(b[0]));
                assert_eq!(&flat[a0..a0 + a.len()], a, "seed {seed}: A not contiguous");
                assert_eq!(&flat[b0..b0 + b.len()], b, "seed {seed}: B not contiguous");
                assert!(b0 >= a0 + a.len(), "seed {seed}: B before A");
                if a.len() + b.len() < max_num_tokens {
                    exact += 1;
                    assert_eq!(b0, a0 + a.len(), "seed {seed}: a gap between A and B");
                }
                swapped += u64::from(inst.nsp_label);
                total += 1;
            }
        }
        assert!(exact > 100, "{exact} untruncated pairs");
        // Each label is a fair coin: Binomial(total, 0.5), sd = sqrt(total)/2; 5 sd.
        let dev = (swapped as f64 - total as f64 / 2.0).abs();
        assert!(
            dev < 2.5 * (total as f64).sqrt(),
            "{swapped} swapped of {total}"
        );
    }
}
