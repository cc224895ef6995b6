//! The WordPiece vocabulary learner: byte-pair-style merges over word counts with a `##`
//! continuation prefix, as HuggingFace's `WordPieceTrainer` does, but deterministic.
//!
//! HuggingFace's trainer numbers symbols in the iteration order of a randomly seeded hash map
//! and breaks ties between equally frequent pairs by those numbers, so the same corpus gave a
//! different `vocab.txt` on every run (three runs on `data/sample`: three different files).
//! Here words are visited in sorted order, symbols are numbered in that order, and ties go to
//! the pair of smaller ids, so a corpus always gives the same vocabulary.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// The continuation prefix of word-internal pieces.
pub const CONTINUATION: &str = "##";

/// Learning parameters.
#[derive(Clone, Debug)]
pub struct LearnOptions {
    /// Target size, `specials` included.
    pub vocab_size: usize,
    /// A pair must occur at least this often (counting word frequencies) to be merged.
    pub min_frequency: u64,
    /// Keep at most this many characters (the most frequent; ties to the smaller code point).
    pub limit_alphabet: usize,
}

/// Learns a vocabulary: `specials` first, then the kept characters in code-point order, then
/// continuation characters and merged pieces in the order they were created.
pub fn learn(
    counts: &BTreeMap<String, u64>,
    specials: &[&str],
    options: &LearnOptions,
) -> Vec<String> {
    let mut vocab: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
    let mut ids: HashMap<String, u32> = vocab
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), i as u32))
        .collect();
    let mut intern = |s: String, vocab: &mut Vec<String>| -> u32 {
        if let Some(&id) = ids.get(&s) {
            return id;
        }
        let id = vocab.len() as u32;
        ids.insert(s.clone(), id);
        vocab.push(s);
        id
    };

    // Alphabet: character frequencies weighted by word counts; the rarest beyond the limit go.
    let mut chars: BTreeMap<char, u64> = BTreeMap::new();
    for (word, &n) in counts {
        for c in word.chars() {
            *chars.entry(c).or_default() += n;
        }
    }
    let mut kept: Vec<(char, u64)> = chars.into_iter().collect();
    if kept.len() > options.limit_alphabet {
        kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        kept.truncate(options.limit_alphabet);
    }
    kept.sort_by_key(|k| k.0);
    let alphabet: HashSet<char> = kept.iter().map(|k| k.0).collect();
    for (c, _) in &kept {
        intern(c.to_string(), &mut vocab);
    }

    // Words as symbol ids; characters outside the alphabet are dropped, as HuggingFace does.
    let mut words: Vec<Vec<u32>> = Vec::with_capacity(counts.len());
    let mut freqs: Vec<i64> = Vec::with_capacity(counts.len());
    for (word, &n) in counts {
        let mut symbols = Vec::with_capacity(word.len());
        for (i, c) in word.chars().filter(|c| alphabet.contains(c)).enumerate() {
            let piece = if i == 0 {
                c.to_string()
            } else {
                format!("{CONTINUATION}{c}")
            };
            symbols.push(intern(piece, &mut vocab));
        }
        words.push(symbols);
        freqs.push(n as i64);
    }

    let mut pair_counts: HashMap<(u32, u32), i64> = HashMap::new();
    let mut pair_words: HashMap<(u32, u32), HashSet<usize>> = HashMap::new();
    for (w, symbols) in words.iter().enumerate() {
        for pair in symbols.windows(2) {
            let pair = (pair[0], pair[1]);
            *pair_counts.entry(pair).or_default() += freqs[w];
            pair_words.entry(pair).or_default().insert(w);
        }
    }
    // Highest count first; among equals the smaller (left id, right id).
    let mut heap: BinaryHeap<(i64, Reverse<(u32, u32)>)> = pair_counts
        .iter()
        .map(|(&pair, &count)| (count, Reverse(pair)))
        .collect();

    while vocab.len() < options.vocab_size {
        let Some((count, Reverse(pair))) = heap.pop() else {
            break;
        };
        let current = pair_counts.get(&pair).copied().unwrap_or(0);
        if current != count {
            // A stale entry: the pair's count changed since it was pushed.
            if current > 0 {
                heap.push((current, Reverse(pair)));
            }
            continue;
        }
        if (count as u64) < options.min_frequency || count <= 0 {
            break;
        }
        let (a, b) = pair;
        let right = &vocab[b as usize];
        let merged = format!(
            "{}{}",
            vocab[a as usize],
            right.strip_prefix(CONTINUATION).unwrap_or(right)
        );
        let new = intern(merged, &mut vocab);
        let mut touched: Vec<(u32, u32)> = Vec::new();
        let mut holders: Vec<usize> = pair_words
            .remove(&pair)
            .unwrap_or_default()
            .into_iter()
            .collect();
        holders.sort_unstable();
        for w in holders {
            let n = freqs[w];
            let symbols = &mut words[w];
            let mut i = 0;
            while i + 1 < symbols.len() {
                if symbols[i] != a || symbols[i + 1] != b {
                    i += 1;
                    continue;
                }
                let mut shift = |p: (u32, u32), delta: i64| {
                    *pair_counts.entry(p).or_default() += delta;
                    if delta > 0 {
                        pair_words.entry(p).or_default().insert(w);
                        touched.push(p);
                    }
                };
                if i > 0 {
                    shift((symbols[i - 1], a), -n);
                    shift((symbols[i - 1], new), n);
                }
                if i + 2 < symbols.len() {
                    shift((b, symbols[i + 2]), -n);
                    shift((new, symbols[i + 2]), n);
                }
                symbols[i] = new;
                symbols.remove(i + 1);
                i += 1;
            }
        }
        pair_counts.remove(&pair);
        touched.sort_unstable();
        touched.dedup();
        for p in touched {
            if let Some(&c) = pair_counts.get(&p) {
                if c > 0 {
                    heap.push((c, Reverse(p)));
                }
            }
        }
    }
    vocab
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(words: &[(&str, u64)]) -> BTreeMap<String, u64> {
        words.iter().map(|(w, n)| (w.to_string(), *n)).collect()
    }

    fn options(vocab_size: usize) -> LearnOptions {
        LearnOptions {
            vocab_size,
            min_frequency: 2,
            limit_alphabet: 1000,
        }
    }

    #[test]
    fn merges_the_most_frequent_pairs_first() {
        let c = counts(&[
            ("hug", 10),
            ("pug", 5),
            ("pun", 12),
            ("bun", 4),
            ("hugs", 5),
        ]);
        let vocab = learn(&c, &["[UNK]"], &options(100));
        // Alphabet in code-point order after the specials.
        assert_eq!(&vocab[..7], &["[UNK]", "b", "g", "h", "n", "p", "s"]);
        // "##u"+"##g" occurs 20 times (hug, pug, hugs) and "##u"+"##n" 16: "##ug" comes first.
        let ug = vocab.iter().position(|t| t == "##ug").unwrap();
        let un = vocab.iter().position(|t| t == "##un").unwrap();
        assert!(ug < un, "{vocab:?}");
        assert!(vocab.contains(&"hug".to_string()), "{vocab:?}");
        assert!(vocab.contains(&"pun".to_string()), "{vocab:?}");
    }

    #[test]
    fn respects_the_size_and_the_minimum_frequency() {
        let c = counts(&[("ab", 3), ("cd", 1)]);
        let vocab = learn(&c, &["[UNK]"], &options(100));
        assert!(vocab.contains(&"ab".to_string()));
        assert!(
            !vocab.contains(&"cd".to_string()),
            "cd occurs once: {vocab:?}"
        );
        // [UNK], a b c d, ##b ##d: 7 before any merge; the initial symbols are always kept.
        assert_eq!(learn(&c, &["[UNK]"], &options(7)).len(), 7);
        let one_merge = learn(&c, &["[UNK]"], &options(8));
        assert_eq!(one_merge.len(), 8);
        assert_eq!(one_merge[7], "ab");
    }

    #[test]
    fn limits_the_alphabet_to_the_most_frequent_characters() {
        let c = counts(&[("aab", 5), ("c", 1)]);
        let vocab = learn(
            &c,
            &[],
            &LearnOptions {
                vocab_size: 100,
                min_frequency: 2,
                limit_alphabet: 2,
            },
        );
        assert!(vocab.contains(&"a".to_string()));
        assert!(!vocab.contains(&"c".to_string()), "{vocab:?}");
    }

    #[test]
    fn repeated_symbols_are_merged_left_to_right() {
        let c = counts(&[("aaa", 4)]);
        let vocab = learn(&c, &[], &options(100));
        assert_eq!(vocab, ["a", "##a", "aa", "aaa"]);
    }

    #[test]
    fn the_same_counts_give_the_same_vocabulary() {
        let words: Vec<(String, u64)> = (0..500u64)
            .map(|i| (format!("w{}x{}", i % 37, i % 11), 1 + i % 5))
            .collect();
        let c: BTreeMap<String, u64> = words.into_iter().collect();
        let first = learn(&c, &["[PAD]"], &options(200));
        for _ in 0..3 {
            assert_eq!(learn(&c, &["[PAD]"], &options(200)), first);
        }
    }
}
