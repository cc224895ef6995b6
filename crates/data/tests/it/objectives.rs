//! The three objectives end to end: `mlm` packing (RoBERTa's `full_sentences` and
//! `doc_sentences`), `mlm_sop` pairs (ALBERT), masking with each, the objective recorded in
//! the shards and checked, and sets made before objectives existed.
//!
//! The packing and SOP statistics run on a generated corpus whose every word is a distinct
//! vocabulary entry, so each token of an instance traces back to its document, sentence and
//! position, and sentence lengths are known exactly.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::support;
use bert_data::{
    inspect, num_to_predict, prepare, HostBatch, Instance, LoaderConfig, MaskCount, MaskingMode,
    MaskingParams, MlmFormat, Objective, ObjectiveSpec, PrepareConfig, PrepareReport, ShardSet,
    TrainLoader, FORMAT_VERSION, FORMAT_VERSION_OBJECTIVES,
};
use bert_rng::Rng;

const CLS: u32 = 2;
const SEP: u32 = 3;
/// Id of "." in the traced vocabulary (after the five special tokens).
const PERIOD: u32 = 5;
/// Id of word `t0`; word `tK` has id `FIRST_WORD + K`.
const FIRST_WORD: u32 = 6;

/// A corpus whose words are all distinct: sentence `s` of document `d` is `words[d][s]`
/// (word numbers), written as "Tn tn … tn." and tokenized as those words plus ".".
struct Traced {
    /// `words[doc][sentence]`: the word numbers of each sentence.
    words: Vec<Vec<Vec<u32>>>,
    /// Where each word lives: `(doc, sentence, position)`.
    home: HashMap<u32, (usize, usize, usize)>,
}

impl Traced {
    /// `docs` documents of 1–25 sentences of 2–8 words (3–9 tokens with the period); with
    /// `long_every`, about one sentence in that many has `long_len` words instead.
    fn generate(docs: usize, seed: u64, long_every: u64, long_len: usize) -> Self {
        let mut rng = Rng::new(seed);
        let mut next = 0u32;
        let mut words = Vec::with_capacity(docs);
        let mut home = HashMap::new();
        for d in 0..docs {
            let n = rng.range_inclusive(1, 25);
            let mut doc = Vec::with_capacity(n);
            for s in 0..n {
                let len = if long_every > 0 && rng.below(long_every) == 0 {
                    long_len
                } else {
                    rng.range_inclusive(2, 8)
                };
                let sentence: Vec<u32> = (next..next + len as u32).collect();
                for (p, &w) in sentence.iter().enumerate() {
                    home.insert(w, (d, s, p));
                }
                next += len as u32;
                doc.push(sentence);
            }
            words.push(doc);
        }
        Self { words, home }
    }

    fn word_count(&self) -> usize {
        self.home.len()
    }

    /// Writes the vocabulary (`[PAD] [UNK] [CLS] [SEP] [MASK] . t0 t1 …`) and the corpus
    /// (JSONL, one document per record); returns a prepare config over them.
    fn write(&self, dir: &Path) -> PrepareConfig {
        let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."]
            .iter()
            .map(|s| s.to_string())
            .collect();
        vocab.extend((0..self.word_count()).map(|w| format!("t{w}")));
        let vocab_path = dir.join("vocab.txt");
        std::fs::write(&vocab_path, vocab.join("\n") + "\n").unwrap();
        let texts: Vec<String> = self
            .words
            .iter()
            .map(|doc| {
                doc.iter()
                    .map(|s| {
                        let mut text = s
                            .iter()
                            .map(|w| format!("t{w}"))
                            .collect::<Vec<_>>()
                            .join(" ");
                        // A capital starts each sentence, so the segmenter splits after ".".
                        text.replace_range(0..1, "T");
                        text + "."
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let corpus = dir.join("traced.jsonl");
        support::write_jsonl(&corpus, &texts);
        PrepareConfig {
            inputs: vec![corpus.display().to_string().into()],
            vocab: vocab_path,
            out: dir.join("out"),
            max_seq_length: 64,
            max_predictions_per_seq: 10,
            shard_size: 300,
            validation_fraction: 0.1,
            dupe_factor: 1,
            masking: MaskingMode::Dynamic,
            progress: false,
            ..PrepareConfig::default()
        }
    }

    /// The tokens of sentence `(d, s)`: its words and the period.
    fn sentence_tokens(&self, d: usize, s: usize) -> Vec<u32> {
        let mut t: Vec<u32> = self.words[d][s].iter().map(|w| FIRST_WORD + w).collect();
        t.push(PERIOD);
        t
    }

    /// The document a word token belongs to (`None` for ".", `[SEP]`…).
    fn doc_of(&self, token: u32) -> Option<usize> {
        let w = token.checked_sub(FIRST_WORD)?;
        self.home.get(&w).map(|h| h.0)
    }

    /// Sentence length in tokens of the sentence holding word token `token`.
    fn home_of(&self, token: u32) -> Option<(usize, usize, usize)> {
        let w = token.checked_sub(FIRST_WORD)?;
        self.home.get(&w).copied()
    }
}

/// Every instance of a split folder, with static masks undone (original ids restored).
fn originals(dir: &Path) -> (ShardSet, Vec<Instance>) {
    let set = ShardSet::open(dir, None).unwrap();
    let all = (0..set.len())
        .map(|i| {
            let mut inst = set.instance(i);
            for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
                inst.input_ids[p as usize] = l;
            }
            inst
        })
        .collect();
    (set, all)
}

/// The content of an `mlm` instance: between `[CLS]` and the final `[SEP]`.
fn content(inst: &Instance) -> &[u32] {
    &inst.input_ids[1..inst.input_ids.len() - 1]
}

/// Documents of the corpus in each split, in input order, from the words the split holds.
fn docs_in(corpus: &Traced, instances: &[Instance]) -> Vec<usize> {
    let mut docs: Vec<usize> = instances
        .iter()
        .flat_map(|i| i.input_ids.iter().filter_map(|&t| corpus.doc_of(t)))
        .collect();
    docs.sort_unstable();
    docs.dedup();
    docs
}

fn prepared(cfg: &PrepareConfig) -> (PrepareReport, PathBuf, PathBuf) {
    let report = prepare(cfg).unwrap();
    (report, cfg.out.join("train"), cfg.out.join("validation"))
}

#[test]
fn full_sentences_pack_whole_sentences_to_the_length_using_every_token_once() {
    let tmp = tempfile::tempdir().unwrap();
    // One sentence in ~400 has 150 words: longer than a 64-token sequence.
    let corpus = Traced::generate(400, 7, 400, 150);
    let long_sentences = corpus
        .words
        .iter()
        .flatten()
        .filter(|s| s.len() == 150)
        .count();
    assert!(long_sentences > 0);
    let cfg = PrepareConfig {
        objective: Objective::Mlm,
        ..corpus.write(tmp.path())
    };
    let (report, train, validation) = prepared(&cfg);
    assert_eq!(report.split_sentences, long_sentences as u64);
    let max = cfg.max_seq_length;
    let mut all_words = 0usize;
    let (mut near_full, mut total) = (0usize, 0usize);
    for dir in [train, validation] {
        let (set, instances) = originals(&dir);
        assert_eq!(
            set.objective(),
            ObjectiveSpec::new(Objective::Mlm, Some(MlmFormat::FullSentences))
        );
        assert_eq!(set.header().format_version, FORMAT_VERSION_OBJECTIVES);
        let shard_md = std::fs::read(dir.join("shard-00000.safetensors")).unwrap();
        let head = String::from_utf8_lossy(&shard_md[..4096.min(shard_md.len())]).into_owned();
        assert!(head.contains("\"objective\":\"mlm\""), "{head}");
        assert!(head.contains("\"mlm_format\":\"full_sentences\""), "{head}");
        total += instances.len();
        for (i, inst) in instances.iter().enumerate() {
            let len = inst.input_ids.len();
            assert!(len <= max, "instance {i}: {len} tokens");
            assert_eq!(inst.input_ids[0], CLS);
            assert_eq!(inst.input_ids[len - 1], SEP);
            assert!(inst.token_type_ids.iter().all(|&t| t == 0), "instance {i}");
            assert_eq!(inst.nsp_label, 0);
            near_full += usize::from(max - len <= 10);
            // Sentences are whole: a sequence starts at a sentence start and ends with a
            // period, unless it holds a piece of a sentence longer than a sequence.
            let c = content(inst);
            let (d0, first_s, first_p) = corpus.home_of(c[0]).unwrap();
            let first_long = corpus.words[d0][first_s].len() == 150;
            assert!(
                first_p == 0 || first_long,
                "instance {i} starts mid-sentence"
            );
            let last = *c.last().unwrap();
            let ends_long = corpus
                .home_of(last)
                .is_some_and(|(d, s, _)| corpus.words[d][s].len() == 150);
            assert!(
                last == PERIOD || ends_long,
                "instance {i} ends mid-sentence"
            );
            // A [SEP] inside the content separates two documents: never first or last.
            for (j, &t) in c.iter().enumerate() {
                if t == SEP {
                    assert!(j > 0 && j + 1 < c.len(), "instance {i}");
                    let before = c[..j].iter().rev().find_map(|&t| corpus.doc_of(t));
                    let after = c[j + 1..].iter().find_map(|&t| corpus.doc_of(t));
                    assert!(before < after, "instance {i}: [SEP] not between documents");
                }
            }
        }
        // The split's stream, in order, is its documents' sentences with a [SEP] between
        // documents: nothing lost, repeated or reordered.
        let stream: Vec<u32> = instances.iter().flat_map(|i| content(i).to_vec()).collect();
        let mut expected = Vec::new();
        for (k, &d) in docs_in(&corpus, &instances).iter().enumerate() {
            if k > 0 {
                expected.push(SEP);
            }
            for s in 0..corpus.words[d].len() {
                expected.extend(corpus.sentence_tokens(d, s));
            }
        }
        // A [SEP] that would have started a sequence is dropped, so compare without them,
        // after checking the ones present are the documents' separators.
        assert!(stream.iter().filter(|&&t| t == SEP).count() <= expected.len());
        let strip = |v: &[u32]| v.iter().copied().filter(|&t| t != SEP).collect::<Vec<_>>();
        assert_eq!(strip(&stream), strip(&expected), "{dir:?}");
        all_words += stream.iter().filter(|&&t| t >= FIRST_WORD).count();
    }
    assert_eq!(all_words, corpus.word_count());
    // Sentences have at most 9 tokens, so a sequence ends at most 9 short of the length; only
    // those cut short by a long sentence, and each split's last, end earlier.
    let share = near_full as f64 / total as f64;
    assert!(
        share >= 0.95,
        "{share} of {total} instances within 10 tokens"
    );
}

#[test]
fn doc_sentences_never_cross_a_document() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = Traced::generate(300, 8, 0, 0);
    let cfg = PrepareConfig {
        objective: Objective::Mlm,
        mlm_format: Some(MlmFormat::DocSentences),
        ..corpus.write(tmp.path())
    };
    let (_, train, validation) = prepared(&cfg);
    let mut seen = vec![0usize; corpus.word_count()];
    let mut per_doc: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for dir in [train, validation] {
        let (set, instances) = originals(&dir);
        assert_eq!(
            set.objective(),
            ObjectiveSpec::new(Objective::Mlm, Some(MlmFormat::DocSentences))
        );
        for (i, inst) in instances.iter().enumerate() {
            let c = content(inst);
            assert!(inst.input_ids.len() <= cfg.max_seq_length);
            assert!(!c.contains(&SEP), "instance {i} crosses a document");
            let docs: Vec<usize> = c.iter().filter_map(|&t| corpus.doc_of(t)).collect();
            assert!(docs.windows(2).all(|w| w[0] == w[1]), "instance {i}");
            assert_eq!(*c.last().unwrap(), PERIOD);
            per_doc.entry(docs[0]).or_default().extend_from_slice(c);
            for &t in c.iter().filter(|&&t| t >= FIRST_WORD) {
                seen[(t - FIRST_WORD) as usize] += 1;
            }
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "every word exactly once");
    for (d, tokens) in per_doc {
        let expected: Vec<u32> = (0..corpus.words[d].len())
            .flat_map(|s| corpus.sentence_tokens(d, s))
            .collect();
        assert_eq!(tokens, expected, "document {d}");
    }
}

#[test]
fn static_mlm_uses_every_token_once_per_dupe_and_never_masks_a_separator() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = Traced::generate(200, 9, 0, 0);
    let cfg = PrepareConfig {
        objective: Objective::Mlm,
        masking: MaskingMode::Static,
        dupe_factor: 3,
        ..corpus.write(tmp.path())
    };
    let (_, train, validation) = prepared(&cfg);
    let mut seen = vec![0usize; corpus.word_count()];
    let mut inner_seps = 0usize;
    for dir in [train, validation] {
        let set = ShardSet::open(&dir, None).unwrap();
        let params = set.header().masking_params;
        for i in 0..set.len() {
            let stored = set.instance(i);
            let len = stored.input_ids.len();
            assert_eq!(stored.masked_positions.len(), num_to_predict(len, &params));
            let mut orig = stored.input_ids.clone();
            for (&p, &l) in stored.masked_positions.iter().zip(&stored.masked_labels) {
                assert!(l != CLS && l != SEP, "instance {i}: a special token masked");
                orig[p as usize] = l;
            }
            inner_seps += orig[1..len - 1].iter().filter(|&&t| t == SEP).count();
            for &t in orig.iter().filter(|&&t| t >= FIRST_WORD) {
                seen[(t - FIRST_WORD) as usize] += 1;
            }
        }
    }
    assert!(
        inner_seps > 0,
        "full_sentences puts [SEP]s inside sequences"
    );
    assert!(
        seen.iter().all(|&n| n == 3),
        "every word once per dupe pass"
    );
}

#[test]
fn sop_pairs_are_consecutive_segments_of_one_document_swapped_half_the_time() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = Traced::generate(1000, 10, 0, 0);
    for masking in [MaskingMode::Dynamic, MaskingMode::Static] {
        let cfg = PrepareConfig {
            objective: Objective::MlmSop,
            masking,
            dupe_factor: 2,
            out: tmp.path().join(format!("out-{}", masking.as_str())),
            ..corpus.write(tmp.path())
        };
        let (report, train, validation) = prepared(&cfg);
        assert_eq!(report.forced_random_next, 0);
        let (mut swapped, mut total) = (0u64, 0u64);
        for dir in [train, validation] {
            let (set, instances) = originals(&dir);
            assert_eq!(set.objective(), ObjectiveSpec::new(Objective::MlmSop, None));
            for (i, inst) in instances.iter().enumerate() {
                let ids = &inst.input_ids;
                assert!(ids.len() <= cfg.max_seq_length);
                let seps: Vec<usize> = (0..ids.len()).filter(|&j| ids[j] == SEP).collect();
                assert_eq!(seps.len(), 2, "instance {i}");
                assert_eq!(seps[1], ids.len() - 1);
                for (j, &t) in inst.token_type_ids.iter().enumerate() {
                    assert_eq!(t, u8::from(j > seps[0]), "instance {i} token type at {j}");
                }
                let (first, second) = (&ids[1..seps[0]], &ids[seps[0] + 1..seps[1]]);
                let (a, b) = if inst.nsp_label == 1 {
                    (second, first)
                } else {
                    (first, second)
                };
                // Words of A precede the words of B in one document, each side contiguous
                // (words are numbered in corpus order); untruncated pairs meet exactly.
                let words = |s: &[u32]| -> Vec<u32> {
                    s.iter().filter(|&&t| t >= FIRST_WORD).copied().collect()
                };
                let (wa, wb) = (words(a), words(b));
                if wa.is_empty() || wb.is_empty() {
                    continue; // a side of only a period: nothing to place
                }
                let doc = corpus.doc_of(wa[0]);
                assert!(wa.iter().chain(&wb).all(|&t| corpus.doc_of(t) == doc));
                for side in [&wa, &wb] {
                    assert!(side.windows(2).all(|w| w[1] == w[0] + 1), "instance {i}");
                }
                assert!(wb[0] > *wa.last().unwrap(), "instance {i}: B before A");
                if ids.len() < cfg.max_seq_length {
                    assert_eq!(wb[0], wa.last().unwrap() + 1, "instance {i}: a gap");
                }
                swapped += u64::from(inst.nsp_label);
                total += 1;
            }
        }
        // Every label is a fair coin: Binomial(total, 0.5), sd = sqrt(total)/2; 5 sd.
        let dev = (swapped as f64 - total as f64 / 2.0).abs();
        let five_sd = 2.5 * (total as f64).sqrt();
        assert!(total > 500, "{total} pairs");
        assert!(dev < five_sd, "{swapped} swapped of {total} ({masking:?})");
    }
}

/// A batch's fill rate is real tokens over its padded slots.
fn check_fill(batch: &HostBatch) -> f64 {
    let rate = batch.fill_rate();
    assert!(rate > 0.0 && rate <= 1.0);
    let real = batch.attention_mask.iter().filter(|&&m| m == 1).count();
    assert!((rate - real as f64 / (batch.batch_size * batch.seq_len) as f64).abs() < 1e-12);
    rate
}

#[test]
fn every_objective_prepares_masks_and_loads_with_either_masking() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    support::write_jsonl(&corpus, &support::gen_docs(150, 3));
    let base = support::config(tmp.path(), vec![corpus.display().to_string()]);
    let specs = [
        (Objective::MlmNsp, None),
        (Objective::Mlm, None),
        (Objective::Mlm, Some(MlmFormat::DocSentences)),
        (Objective::MlmSop, None),
    ];
    let mut mean_fill = BTreeMap::new();
    for (objective, mlm_format) in specs {
        for (masking, whole_word_masking, mask_count) in [
            (MaskingMode::Static, true, MaskCount::Fixed),
            (MaskingMode::Dynamic, false, MaskCount::Bernoulli),
            (MaskingMode::Dynamic, true, MaskCount::Fixed),
        ] {
            let spec = ObjectiveSpec::new(objective, mlm_format);
            let cfg = PrepareConfig {
                objective,
                mlm_format,
                masking,
                whole_word_masking,
                mask_count,
                dupe_factor: 2,
                out: tmp.path().join(format!(
                    "{}-{}-{whole_word_masking}-{}",
                    spec.describe().replace([' ', '(', ')'], ""),
                    masking.as_str(),
                    mask_count.as_str()
                )),
                ..base.clone()
            };
            let report = prepare(&cfg).unwrap();
            let dir = cfg.out.join("train");
            // Opening verifies every shard, special-token masks included.
            let set = ShardSet::open(&dir, Some(&report.vocab_hash)).unwrap();
            assert_eq!(set.objective(), spec);
            let version = if objective == Objective::MlmNsp {
                FORMAT_VERSION
            } else {
                FORMAT_VERSION_OBJECTIVES
            };
            assert_eq!(set.header().format_version, version);
            set.check_recipe(&cfg, "the test's recipe").unwrap();
            // [data.masking] on a dynamic set works whatever the objective.
            let set = if masking == MaskingMode::Dynamic {
                let params = MaskingParams {
                    masked_lm_prob: 0.3,
                    ..*set.masking()
                };
                set.with_masking(params).unwrap()
            } else {
                set
            };
            let special = set.vocab().special();
            let continuation = set.vocab().continuation().to_vec();
            let set = std::sync::Arc::new(set);
            let loader_cfg = LoaderConfig {
                batch_size: 16,
                prefetch: 1,
                ..LoaderConfig::default()
            };
            let mut loader = TrainLoader::new(set.clone(), loader_cfg, Default::default()).unwrap();
            let (mut real, mut slots) = (0usize, 0usize);
            for _ in 0..10 {
                let batch = loader.next_batch().unwrap();
                check_fill(&batch);
                real += batch.real_tokens();
                slots += batch.padded_slots();
                for r in 0..batch.batch_size {
                    let row = &batch.input_ids[r * batch.seq_len..(r + 1) * batch.seq_len];
                    let tt = &batch.token_type_ids[r * batch.seq_len..(r + 1) * batch.seq_len];
                    if objective == Objective::Mlm {
                        assert!(tt.iter().all(|&t| t == 0));
                        assert_eq!(batch.nsp_labels[r], 0);
                    }
                    let preds = batch.max_predictions;
                    let slots_r = r * preds..(r + 1) * preds;
                    let masked: Vec<(i64, i64)> = slots_r
                        .filter(|&k| batch.masked_weights[k] > 0.0)
                        .map(|k| (batch.masked_positions[k], batch.masked_labels[k]))
                        .collect();
                    let mut orig: Vec<i64> = row.to_vec();
                    for &(p, l) in &masked {
                        let l32 = l as u32;
                        assert!(l32 != special.cls && l32 != special.sep && l32 != special.pad);
                        orig[p as usize] = l;
                    }
                    if whole_word_masking {
                        // A masked `##` piece's word start is masked too (whole words).
                        let is_masked = |p: usize| masked.iter().any(|&(q, _)| q as usize == p);
                        for &(p, l) in &masked {
                            let p = p as usize;
                            if continuation[l as usize] && p > 0 {
                                let prev = orig[p - 1] as u32;
                                let prev_special = prev == special.cls || prev == special.sep;
                                assert!(
                                    prev_special || is_masked(p - 1),
                                    "{}: row {r} masks a piece without its word",
                                    cfg.out.display()
                                );
                            }
                        }
                    }
                }
            }
            mean_fill
                .entry(spec.describe())
                .or_insert(bert_data::fill_rate(real, slots));
            // `bert inspect` states the objective and the fill rates.
            let shown = inspect(&cfg.out, 1, 5).unwrap();
            assert_eq!(shown.splits[0].objective, spec);
            assert!(shown.splits[0].fill_rate > 0.0 && shown.splits[0].fill_rate <= 1.0);
            assert!(shown.splits[0].batch_fill_rate >= shown.splits[0].fill_rate - 1e-12);
            let text = shown.to_string();
            assert!(
                text.contains(&format!("objective {}", spec.describe())),
                "{text}"
            );
            assert!(text.contains("fill rate"), "{text}");
        }
    }
    // Packing across documents leaves no short document tails: fuller than within them.
    // (These sentences average 14 tokens, so a sequence ends about 7 short of 64.)
    let full = mean_fill["mlm (full_sentences)"];
    assert!(full > 0.85, "{mean_fill:?}");
    assert!(full > mean_fill["mlm (doc_sentences)"], "{mean_fill:?}");
}

#[test]
fn the_objective_is_checked_against_the_recipe_and_old_sets_read_as_mlm_nsp() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    support::write_jsonl(&corpus, &support::gen_docs(60, 4));
    let base = support::config(tmp.path(), vec![corpus.display().to_string()]);

    // An mlm set against an mlm_nsp recipe (and the other format) is refused by name.
    let mlm = PrepareConfig {
        objective: Objective::Mlm,
        out: tmp.path().join("mlm"),
        ..base.clone()
    };
    prepare(&mlm).unwrap();
    let set = ShardSet::open(&mlm.out.join("train"), None).unwrap();
    let err = set
        .check_recipe(&base, "the run config's [prepare] table")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("objective is mlm there but mlm_nsp in the run config's [prepare] table"),
        "{err}"
    );
    let doc = PrepareConfig {
        mlm_format: Some(MlmFormat::DocSentences),
        ..mlm.clone()
    };
    let err = set
        .check_recipe(&doc, "the recipe")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mlm_format is full_sentences there but doc_sentences"),
        "{err}"
    );

    // mlm_nsp shards carry no objective key and keep format version 1, as before objectives.
    let nsp = PrepareConfig {
        out: tmp.path().join("nsp"),
        ..base.clone()
    };
    prepare(&nsp).unwrap();
    let dir = nsp.out.join("train");
    let shard = std::fs::read(dir.join("shard-00000.safetensors")).unwrap();
    let head = String::from_utf8_lossy(&shard[..4096.min(shard.len())]).into_owned();
    assert!(!head.contains("objective"), "{head}");
    assert!(head.contains("\"format_version\":\"1\""), "{head}");
    // An index written before objectives has no objective key: it reads as mlm_nsp.
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let map = index.as_object_mut().unwrap();
    assert_eq!(map.remove("objective"), Some("mlm_nsp".into()));
    assert!(map.get("mlm_format").is_none());
    std::fs::write(&index_path, serde_json::to_vec_pretty(&index).unwrap()).unwrap();
    let old = ShardSet::open(&dir, None).unwrap();
    assert_eq!(old.objective(), ObjectiveSpec::MLM_NSP);
    old.check_recipe(&nsp, "the recipe").unwrap();
    let err = old
        .check_recipe(&mlm, "the recipe")
        .unwrap_err()
        .to_string();
    assert!(err.contains("objective is mlm_nsp there but mlm"), "{err}");

    // A shard moved into a set of another objective is refused by its header.
    let mlm_train = mlm.out.join("train");
    std::fs::copy(
        dir.join("shard-00000.safetensors"),
        mlm_train.join("shard-00000.safetensors"),
    )
    .unwrap();
    let err = ShardSet::open(&mlm_train, None).unwrap_err().to_string();
    assert!(err.contains("shard-00000"), "{err}");
}

#[test]
fn invalid_objective_settings_are_refused_naming_the_key() {
    let good = PrepareConfig {
        inputs: vec!["corpus".into()],
        vocab: PathBuf::from("vocab.txt"),
        ..PrepareConfig::default()
    };
    good.validate().unwrap();
    // An unknown objective, as a config table would give it.
    let mut table = serde_json::to_value(&good).unwrap();
    table["objective"] = "roberta".into();
    let err = serde_json::from_value::<PrepareConfig>(table.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("objective") && err.contains("roberta"),
        "{err}"
    );
    assert!(
        err.contains("mlm_sop"),
        "the message lists the choices: {err}"
    );
    table["objective"] = "mlm".into();
    table["mlm_format"] = "sentences".into();
    let err = serde_json::from_value::<PrepareConfig>(table)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mlm_format"), "{err}");
    // mlm_format with another objective means nothing: refused rather than ignored.
    for objective in [Objective::MlmNsp, Objective::MlmSop] {
        let bad = PrepareConfig {
            objective,
            mlm_format: Some(MlmFormat::DocSentences),
            ..good.clone()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("mlm_format") && err.contains(objective.as_str()),
            "{err}"
        );
    }
    // short_seq_prob: the objective's default unless set; an explicit value is honoured.
    let mlm = PrepareConfig {
        objective: Objective::Mlm,
        ..good.clone()
    };
    assert_eq!(mlm.effective_short_seq_prob(), 0.0);
    assert_eq!(good.effective_short_seq_prob(), 0.1);
    let asked = PrepareConfig {
        short_seq_prob: Some(0.2),
        ..mlm
    };
    assert_eq!(asked.effective_short_seq_prob(), 0.2);
    let bad = PrepareConfig {
        short_seq_prob: Some(1.5),
        ..asked
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("short_seq_prob"));
}

#[test]
fn mlm_output_does_not_depend_on_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = Traced::generate(300, 11, 0, 0);
    let mut outputs = Vec::new();
    for threads in [1, 3] {
        let cfg = PrepareConfig {
            objective: Objective::Mlm,
            masking: MaskingMode::Static,
            dupe_factor: 2,
            short_seq_prob: Some(0.1),
            threads,
            out: tmp.path().join(format!("out-{threads}")),
            ..corpus.write(tmp.path())
        };
        prepare(&cfg).unwrap();
        let mut files = BTreeMap::new();
        for split in ["train", "validation"] {
            for e in std::fs::read_dir(cfg.out.join(split)).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if name.ends_with(".safetensors") {
                    files.insert(format!("{split}/{name}"), std::fs::read(&p).unwrap());
                }
            }
        }
        outputs.push(files);
    }
    assert!(!outputs[0].is_empty());
    assert!(
        outputs[0] == outputs[1],
        "shards differ between 1 and 3 threads"
    );
}
