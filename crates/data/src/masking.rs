//! Masked-LM masking exactly as Google's `create_masked_lm_predictions`: candidates are the
//! non-special tokens (grouped into whole words on request), shuffled; up to
//! `min(max_predictions_per_seq, max(1, round(len * masked_lm_prob)))` are chosen; each chosen
//! token becomes `[MASK]` (80%), stays (10%) or becomes a uniformly random vocabulary id (10%).
//!
//! The same function serves static masking (at prepare time) and dynamic masking (in the
//! loader, with an `Rng` keyed by seed, epoch and instance index).

use bert_rng::Rng;
use serde::{Deserialize, Serialize};

use crate::tokenizer::{SpecialIds, Vocab};

/// Masking knobs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskingParams {
    /// Fraction of tokens to predict (0.15 in BERT).
    pub masked_lm_prob: f64,
    /// Cap on predictions per sequence (20 for 128-token sequences in BERT).
    pub max_predictions_per_seq: usize,
    /// Mask whole words: a `##` piece is masked together with the piece before it.
    pub whole_word: bool,
}

impl Default for MaskingParams {
    fn default() -> Self {
        Self {
            masked_lm_prob: 0.15,
            max_predictions_per_seq: 20,
            whole_word: false,
        }
    }
}

/// What masking needs to know about the vocabulary.
#[derive(Clone, Debug)]
pub struct MaskTable {
    /// Number of ids; random replacements are uniform over `0..vocab_size` as in the original.
    pub vocab_size: u32,
    /// Special ids (never candidates; `mask` is the replacement token).
    pub special: SpecialIds,
    /// `continuation[id]`: the token starts with `##`.
    pub continuation: Vec<bool>,
}

impl MaskTable {
    /// The table for a vocabulary.
    pub fn from_vocab(vocab: &Vocab) -> Self {
        Self {
            vocab_size: vocab.len() as u32,
            special: vocab.special(),
            continuation: vocab.continuation().to_vec(),
        }
    }

    fn is_structural(&self, id: u32) -> bool {
        let s = &self.special;
        id == s.cls || id == s.sep || id == s.pad || id == s.mask
    }
}

/// Number of predictions for a sequence of `len` tokens (special tokens included, as in the
/// original). Python's `round` rounds half to even, and so does this.
pub fn num_to_predict(len: usize, params: &MaskingParams) -> usize {
    let raw = (len as f64 * params.masked_lm_prob).round_ties_even() as usize;
    params.max_predictions_per_seq.min(raw.max(1))
}

/// Masks `ids` in place and returns `(positions, labels)` sorted by position, labels being
/// the original ids.
pub fn mask_sequence(
    ids: &mut [u32],
    params: &MaskingParams,
    table: &MaskTable,
    rng: &mut Rng,
) -> (Vec<u32>, Vec<u32>) {
    // Candidate groups: one per token, or one per whole word.
    let mut groups: Vec<Vec<u32>> = Vec::with_capacity(ids.len());
    let mut prev_candidate: Option<usize> = None;
    for (i, &id) in ids.iter().enumerate() {
        if table.is_structural(id) {
            continue;
        }
        let is_cont = table
            .continuation
            .get(id as usize)
            .copied()
            .unwrap_or(false);
        // The original also glues a `##` piece that follows `[SEP]` to the last word of
        // segment A; requiring adjacency avoids that cross-segment "word".
        if params.whole_word && is_cont && prev_candidate == Some(i.wrapping_sub(1)) {
            if let Some(g) = groups.last_mut() {
                g.push(i as u32);
                prev_candidate = Some(i);
                continue;
            }
        }
        groups.push(vec![i as u32]);
        prev_candidate = Some(i);
    }
    rng.shuffle(&mut groups);
    let want = num_to_predict(ids.len(), params);
    let mut picked: Vec<(u32, u32)> = Vec::with_capacity(want);
    for group in &groups {
        if picked.len() >= want {
            break;
        }
        if picked.len() + group.len() > want {
            continue;
        }
        // Groups are disjoint by construction, so the original's "already covered" check
        // can never fire here.
        for &pos in group {
            let original = ids[pos as usize];
            let replacement = if rng.next_f64() < 0.8 {
                table.special.mask
            } else if rng.next_f64() < 0.5 {
                original
            } else {
                rng.below(u64::from(table.vocab_size)) as u32
            };
            ids[pos as usize] = replacement;
            picked.push((pos, original));
        }
    }
    picked.sort_unstable_by_key(|&(p, _)| p);
    picked.into_iter().unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> MaskTable {
        let mut continuation = vec![false; 100];
        for c in continuation.iter_mut().skip(50) {
            *c = true;
        }
        MaskTable {
            vocab_size: 100,
            special: SpecialIds {
                pad: 0,
                unk: 1,
                cls: 2,
                sep: 3,
                mask: 4,
            },
            continuation,
        }
    }

    #[test]
    fn count_follows_the_original_rounding() {
        let p = MaskingParams::default();
        assert_eq!(num_to_predict(128, &p), 19); // 19.2
        assert_eq!(num_to_predict(10, &p), 2); // 1.5 -> 2 (half to even)
        assert_eq!(num_to_predict(30, &p), 4); // 4.5 -> 4 (half to even)
        assert_eq!(num_to_predict(3, &p), 1); // max(1, ..)
        assert_eq!(num_to_predict(512, &p), 20); // cap
    }

    #[test]
    fn never_masks_structure_and_labels_are_originals() {
        let t = table();
        let p = MaskingParams::default();
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            let orig: Vec<u32> = [2]
                .into_iter()
                .chain((0..40).map(|i| 10 + i % 30))
                .chain([3])
                .chain((0..20).map(|i| 10 + i))
                .chain([3])
                .collect();
            let mut ids = orig.clone();
            let (pos, labels) = mask_sequence(&mut ids, &p, &t, &mut rng);
            assert_eq!(pos.len(), num_to_predict(orig.len(), &p));
            assert!(pos.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
            for (&q, &l) in pos.iter().zip(&labels) {
                assert_eq!(orig[q as usize], l);
                assert!(![2, 3].contains(&l));
            }
            for (i, (&a, &b)) in orig.iter().zip(&ids).enumerate() {
                if a != b {
                    assert!(pos.contains(&(i as u32)));
                }
            }
        }
    }

    #[test]
    fn whole_words_are_masked_together() {
        let t = table();
        let p = MaskingParams {
            masked_lm_prob: 0.3,
            max_predictions_per_seq: 40,
            whole_word: true,
        };
        // Words: 10 ##60 ##61 | 11 | 12 ##62 | ... ; [SEP] then a ## piece starting B.
        let orig: Vec<u32> = vec![2, 10, 60, 61, 11, 12, 62, 13, 14, 63, 3, 64, 15, 16, 3];
        let (mut alone, mut with_a_word) = (0, 0);
        for seed in 0..300 {
            let mut ids = orig.clone();
            let (pos, _) = mask_sequence(&mut ids, &p, &t, &mut Rng::new(seed));
            let has = |i: u32| pos.contains(&i);
            assert_eq!(has(1), has(2));
            assert_eq!(has(2), has(3));
            assert_eq!(has(5), has(6));
            assert_eq!(has(8), has(9));
            assert!(pos.len() <= num_to_predict(orig.len(), &p));
            // The ## piece right after [SEP] (position 11) is its own group: it is masked
            // without segment A's last word (positions 8–9), and that word without it.
            if has(11) && !has(9) {
                alone += 1;
            }
            if has(9) && !has(11) {
                with_a_word += 1;
            }
        }
        assert!(alone > 0 && with_a_word > 0, "{alone} / {with_a_word}");
    }
}
