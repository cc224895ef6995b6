//! Masked-LM masking. Candidates are the non-special tokens (grouped into whole words on
//! request). Two rules choose among them ([`MaskCount`]):
//! - `fixed`, exactly as Google's `create_masked_lm_predictions`: the candidates are shuffled
//!   and the first `min(max_predictions_per_seq, max(1, round(len * masked_lm_prob)))` taken;
//! - `bernoulli`, as HuggingFace's `DataCollatorForLanguageModeling` (RoBERTa, MosaicBERT):
//!   each candidate independently with probability `masked_lm_prob`, no cap.
//!
//! Each chosen token becomes `[MASK]` (80%), stays (10%) or becomes a uniformly random
//! vocabulary id (10%).
//!
//! The same function serves static masking (at prepare time) and dynamic masking (in the
//! loader, with an `Rng` keyed by seed, epoch and instance index).

use bert_rng::Rng;
use serde::{Deserialize, Serialize};

use crate::tokenizer::{SpecialIds, Vocab};

/// How many candidates a sequence gets masked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskCount {
    /// Google's BERT: exactly `min(max_predictions_per_seq, max(1, round(len * p)))` per
    /// sequence ([`num_to_predict`]).
    #[default]
    Fixed,
    /// HuggingFace / RoBERTa / MosaicBERT: every candidate (token, or whole word)
    /// independently with probability `p`; the count varies and has no cap.
    Bernoulli,
}

impl MaskCount {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Bernoulli => "bernoulli",
        }
    }
}

impl std::str::FromStr for MaskCount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fixed" => Ok(Self::Fixed),
            "bernoulli" => Ok(Self::Bernoulli),
            other => Err(format!(
                "unknown mask_count {other:?} (expected fixed or bernoulli)"
            )),
        }
    }
}

/// Masking knobs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskingParams {
    /// Fraction of tokens to predict (0.15 in BERT, 0.3 in MosaicBERT).
    pub masked_lm_prob: f64,
    /// Cap on predictions per sequence (20 for 128-token sequences in BERT); `fixed` only.
    pub max_predictions_per_seq: usize,
    /// Mask whole words: a `##` piece is masked together with the piece before it. (Index
    /// files written before the rename call it `whole_word`.)
    #[serde(alias = "whole_word")]
    pub whole_word_masking: bool,
    /// Fixed count per sequence (Google) or per-token Bernoulli draws (HuggingFace).
    #[serde(default)]
    pub count: MaskCount,
}

impl Default for MaskingParams {
    fn default() -> Self {
        Self {
            masked_lm_prob: 0.15,
            max_predictions_per_seq: 20,
            whole_word_masking: false,
            count: MaskCount::Fixed,
        }
    }
}

impl MaskingParams {
    /// Checks ranges, naming the keys as the configs spell them.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.masked_lm_prob > 0.0 && self.masked_lm_prob <= 1.0) {
            return Err(format!(
                "masked_lm_prob {} must be in (0, 1]",
                self.masked_lm_prob
            ));
        }
        if self.count == MaskCount::Fixed && self.max_predictions_per_seq == 0 {
            return Err("max_predictions_per_seq must be at least 1".into());
        }
        Ok(())
    }

    /// Masked slots per row of a batch of `instances` masked with these parameters: the cap
    /// for a fixed count; for Bernoulli draws the batch's largest count rounded up to a
    /// multiple of 8, so that shapes (and GPU kernels) repeat from batch to batch.
    pub fn batch_slots(&self, counts: impl Iterator<Item = usize>) -> usize {
        match self.count {
            MaskCount::Fixed => self.max_predictions_per_seq,
            MaskCount::Bernoulli => counts.max().unwrap_or(0).max(1).next_multiple_of(8),
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
        if params.whole_word_masking && is_cont && prev_candidate == Some(i.wrapping_sub(1)) {
            if let Some(g) = groups.last_mut() {
                g.push(i as u32);
                prev_candidate = Some(i);
                continue;
            }
        }
        groups.push(vec![i as u32]);
        prev_candidate = Some(i);
    }
    let chosen: Vec<&Vec<u32>> = match params.count {
        MaskCount::Fixed => {
            rng.shuffle(&mut groups);
            let want = num_to_predict(ids.len(), params);
            let mut chosen = Vec::new();
            let mut count = 0;
            for group in &groups {
                if count >= want {
                    break;
                }
                if count + group.len() > want {
                    continue;
                }
                // Groups are disjoint by construction, so the original's "already covered"
                // check can never fire here.
                count += group.len();
                chosen.push(group);
            }
            chosen
        }
        MaskCount::Bernoulli => groups
            .iter()
            .filter(|_| rng.next_f64() < params.masked_lm_prob)
            .collect(),
    };
    let mut picked: Vec<(u32, u32)> = Vec::with_capacity(chosen.iter().map(|g| g.len()).sum());
    for group in chosen {
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
            whole_word_masking: true,
            count: MaskCount::Fixed,
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

    /// A sequence of `n` ordinary tokens between `[CLS]` and `[SEP]`.
    fn plain(n: usize) -> Vec<u32> {
        [2].into_iter()
            .chain((0..n).map(|i| 10 + (i % 40) as u32))
            .chain([3])
            .collect()
    }

    /// Masks `runs` sequences of `n` tokens; returns the per-sequence counts and the numbers
    /// of masked positions that became `[MASK]`, stayed, or changed to another id.
    fn survey(p: &MaskingParams, n: usize, runs: u64) -> (Vec<usize>, [u64; 3]) {
        let t = table();
        let orig = plain(n);
        let mut counts = Vec::new();
        let mut kinds = [0u64; 3];
        for seed in 0..runs {
            let mut ids = orig.clone();
            let (pos, labels) = mask_sequence(&mut ids, p, &t, &mut Rng::keyed(&[seed, 9]));
            counts.push(pos.len());
            for (&q, &l) in pos.iter().zip(&labels) {
                assert!(q >= 1 && q as usize <= n, "never [CLS] or [SEP]");
                let now = ids[q as usize];
                kinds[if now == 4 {
                    0
                } else if now == l {
                    1
                } else {
                    2
                }] += 1;
            }
        }
        (counts, kinds)
    }

    fn mean_var(xs: &[usize]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<usize>() as f64 / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn bernoulli_masks_each_token_with_the_rate_and_no_cap() {
        // 4,000 sequences of 100 candidates at p = 0.15 and at MosaicBERT's 0.3.
        for rate in [0.15, 0.3] {
            let p = MaskingParams {
                masked_lm_prob: rate,
                max_predictions_per_seq: 5,
                count: MaskCount::Bernoulli,
                ..MaskingParams::default()
            };
            let (n, runs) = (100usize, 4000u64);
            let (counts, kinds) = survey(&p, n, runs);
            let (mean, var) = mean_var(&counts);
            // Count ~ Binomial(100, p): mean 100p (sd of the mean sqrt(100p(1-p)/4000)),
            // variance 100p(1-p) (sd of the sample variance ≈ var·sqrt(2/4000)); 5 sd each.
            let want_mean = n as f64 * rate;
            let want_var = n as f64 * rate * (1.0 - rate);
            let tol_mean = 5.0 * (want_var / runs as f64).sqrt();
            assert!(
                (mean - want_mean).abs() < tol_mean,
                "rate {rate}: mean {mean}"
            );
            let tol_var = 5.0 * want_var * (2.0 / runs as f64).sqrt();
            assert!(
                (var - want_var).abs() < tol_var,
                "rate {rate}: variance {var} vs {want_var}"
            );
            assert!(
                counts.iter().any(|&c| c > 5),
                "the fixed cap does not apply"
            );
            let m = kinds.iter().sum::<u64>() as f64;
            for (k, share) in [(0, 0.8), (1, 0.1 + 0.1 / 100.0), (2, 0.1 - 0.1 / 100.0)] {
                let tol = 5.0 * (share * (1.0 - share) / m).sqrt();
                let got = kinds[k] as f64 / m;
                assert!((got - share).abs() < tol, "rate {rate}: kind {k} {got}");
            }
        }
    }

    #[test]
    fn fixed_count_at_a_configured_rate_masks_exactly_round_len_times_rate() {
        let p = MaskingParams {
            masked_lm_prob: 0.3,
            max_predictions_per_seq: 1000,
            ..MaskingParams::default()
        };
        let (counts, _) = survey(&p, 98, 200);
        // 100 tokens with [CLS] and [SEP]: round(30.0) = 30 every time.
        assert!(counts.iter().all(|&c| c == 30), "{counts:?}");
        assert_eq!(
            p.batch_slots([3, 30].into_iter()),
            1000,
            "fixed: the cap is the width"
        );
        let b = MaskingParams {
            count: MaskCount::Bernoulli,
            ..p
        };
        assert_eq!(b.batch_slots([3, 30, 17].into_iter()), 32);
        assert_eq!(b.batch_slots(std::iter::empty()), 8);
    }

    #[test]
    fn bernoulli_whole_words_are_masked_together_at_the_word_rate() {
        let t = table();
        let p = MaskingParams {
            masked_lm_prob: 0.3,
            max_predictions_per_seq: 1,
            whole_word_masking: true,
            count: MaskCount::Bernoulli,
        };
        // Words: [10 ##60 ##61] [11] [12 ##62] [13] [14 ##63]; 5 words.
        let orig: Vec<u32> = vec![2, 10, 60, 61, 11, 12, 62, 13, 14, 63, 3];
        let mut words_masked = 0u64;
        let runs = 4000u64;
        for seed in 0..runs {
            let mut ids = orig.clone();
            let (pos, _) = mask_sequence(&mut ids, &p, &t, &mut Rng::keyed(&[seed, 3]));
            let has = |i: u32| pos.contains(&i);
            assert_eq!(has(1), has(2));
            assert_eq!(has(2), has(3));
            assert_eq!(has(5), has(6));
            assert_eq!(has(8), has(9));
            words_masked += [1u32, 4, 5, 7, 8].iter().filter(|&&i| has(i)).count() as u64;
        }
        let share = words_masked as f64 / (5 * runs) as f64;
        let tol = 5.0 * (0.3 * 0.7 / (5 * runs) as f64).sqrt();
        assert!((share - 0.3).abs() < tol, "word share {share}");
    }

    #[test]
    fn parameters_are_checked() {
        let ok = MaskingParams::default();
        assert!(ok.validate().is_ok());
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            let p = MaskingParams {
                masked_lm_prob: bad,
                ..ok
            };
            assert!(p.validate().unwrap_err().contains("masked_lm_prob"));
        }
        assert!("poisson"
            .parse::<MaskCount>()
            .unwrap_err()
            .contains("fixed or bernoulli"));
    }
}
