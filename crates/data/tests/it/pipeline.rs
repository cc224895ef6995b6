//! End-to-end checks of prepare → shards → loader on generated corpora.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::*;
use bert_data::num_to_predict;
use bert_data::{prepare, MaskingMode, ShardSet};

fn read_dir_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for split in ["train", "validation"] {
        for e in std::fs::read_dir(dir.join(split)).unwrap() {
            let p = e.unwrap().path();
            out.insert(
                format!("{split}/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read(&p).unwrap(),
            );
        }
    }
    out
}

#[test]
fn static_masking_statistics_and_instance_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    write_jsonl(&corpus, &gen_docs(300, 1));
    let cfg = support::config(tmp.path(), vec![corpus.display().to_string()]);
    let report = prepare(&cfg).unwrap();
    assert!(report.train_instances > 3000, "{report:?}");
    assert!(report.validation_instances > 0, "{report:?}");

    let set = ShardSet::open(&cfg.out.join("train"), Some(&report.vocab_hash)).unwrap();
    let special = set.vocab().special();
    let params = set.header().masking_params;
    let (mut masked, mut as_mask, mut unchanged, mut tokens) = (0u64, 0u64, 0u64, 0u64);
    let mut is_next = 0u64;
    for i in 0..set.len() {
        let inst = set.instance(i);
        let len = inst.input_ids.len();
        tokens += len as u64;
        // Shape: fits, [CLS] A [SEP] B [SEP] with the right token types (checked on the
        // original ids: a random replacement may itself be a special id, as in the original).
        assert!(len <= cfg.max_seq_length, "instance {i} has {len} tokens");
        let mut orig = inst.input_ids.clone();
        for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
            orig[p as usize] = l;
        }
        assert_eq!(orig[0], special.cls);
        assert_eq!(orig[len - 1], special.sep);
        let seps: Vec<usize> = (0..len).filter(|&j| orig[j] == special.sep).collect();
        assert_eq!(seps.len(), 2, "instance {i}: {orig:?}");
        assert!(
            seps[0] >= 2 && seps[1] > seps[0] + 1,
            "A and B are non-empty"
        );
        for (j, &t) in inst.token_type_ids.iter().enumerate() {
            assert_eq!(t, u8::from(j > seps[0]), "instance {i} token type at {j}");
        }
        assert!(
            !orig.contains(&special.cls) || orig.iter().filter(|&&t| t == special.cls).count() == 1
        );
        // Masking: exactly the original's count, distinct sorted non-special positions.
        assert_eq!(inst.masked_positions.len(), num_to_predict(len, &params));
        assert!(inst.masked_positions.windows(2).all(|w| w[0] < w[1]));
        for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
            assert!(l != special.cls && l != special.sep);
            masked += 1;
            let now = inst.input_ids[p as usize];
            if now == special.mask {
                as_mask += 1;
            } else if now == l {
                unchanged += 1;
            }
        }
        is_next += u64::from(inst.nsp_label == 0);
    }
    let m = masked as f64;
    // Masked fraction: each instance masks round(0.15 * len) (capped at 10 ≥ 0.15 * 64), so
    // the overall fraction differs from 0.15 only by rounding, at most 0.5 per instance.
    let frac = m / tokens as f64;
    let rounding = 0.5 * set.len() as f64 / tokens as f64;
    assert!(
        (frac - 0.15).abs() <= rounding + 1e-9,
        "masked fraction {frac}"
    );
    // 80/10/10: each masked position independently becomes [MASK] with p = 0.8, stays with
    // p = 0.1 + 0.1/V (a random id can equal the original), else another id. For a share with
    // probability p over M positions the binomial sd is sqrt(p(1-p)/M); we allow 5 sd.
    let v = set.header().vocab_size as f64;
    for (count, p, what) in [
        (as_mask, 0.8, "[MASK]"),
        (unchanged, 0.1 + 0.1 / v, "unchanged"),
        (masked - as_mask - unchanged, 0.1 - 0.1 / v, "random"),
    ] {
        let share = count as f64 / m;
        let tol = 5.0 * (p * (1.0 - p) / m).sqrt();
        assert!(
            (share - p).abs() < tol,
            "{what} share {share} vs {p} ± {tol}"
        );
    }
    // NSP: every instance not forced negative (single-sentence chunk) got a fair coin; the
    // coins are independent, so IsNext ~ Binomial(N, 0.5) with N = instances - forced
    // (N is random, but each flip is fair whatever came before: optional stopping keeps the
    // mean N/2 and variance N/4). 5 sd = 2.5 sqrt(N). Training and validation are pooled in
    // the report's forced count, so check over both splits.
    let val = ShardSet::open(&cfg.out.join("validation"), None).unwrap();
    for i in 0..val.len() {
        is_next += u64::from(val.instance(i).nsp_label == 0);
    }
    let total = (set.len() + val.len()) as f64;
    let flips = total - report.forced_random_next as f64;
    assert!(
        flips > 0.5 * total,
        "{flips} coin flips of {total} instances"
    );
    let tol = 2.5 * flips.sqrt();
    assert!(
        (is_next as f64 - flips / 2.0).abs() < tol,
        "IsNext {is_next} of {flips} flips ± {tol}"
    );
}

#[test]
fn same_seed_gives_byte_identical_shards_with_1_and_2_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    write_jsonl(&corpus, &gen_docs(120, 2));
    let mut outs = Vec::new();
    for threads in [1, 2] {
        let mut cfg = support::config(tmp.path(), vec![corpus.display().to_string()]);
        cfg.threads = threads;
        cfg.out = tmp.path().join(format!("out{threads}"));
        cfg.shard_size = 200;
        prepare(&cfg).unwrap();
        outs.push(read_dir_bytes(&cfg.out));
    }
    assert!(
        outs[0]
            .keys()
            .filter(|k| k.ends_with(".safetensors"))
            .count()
            > 2
    );
    assert_eq!(
        outs[0].keys().collect::<Vec<_>>(),
        outs[1].keys().collect::<Vec<_>>()
    );
    for (k, v) in &outs[0] {
        if k.ends_with("index.json") {
            continue; // records the thread count in the prepare config
        }
        assert!(v == &outs[1][k], "{k} differs between 1 and 2 threads");
    }
    // And a different seed changes them.
    let mut cfg = support::config(tmp.path(), vec![corpus.display().to_string()]);
    cfg.seed += 1;
    cfg.out = tmp.path().join("other");
    cfg.shard_size = 200;
    prepare(&cfg).unwrap();
    let other = read_dir_bytes(&cfg.out);
    assert_ne!(
        other["train/shard-00000.safetensors"],
        outs[0]["train/shard-00000.safetensors"]
    );
}

#[test]
fn plain_text_books_and_compressed_inputs_read_alike() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let docs = gen_docs(40, 3);
    let text = docs.join("\n\n\n");
    let dir = tmp.path().join("books");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), &text).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(dir.join("sub/b.txt.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        dir.join("sub/c.txt.zst"),
        zstd::encode_all(text.as_bytes(), 3).unwrap(),
    )
    .unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(text.as_bytes()).unwrap();
    std::fs::write(dir.join("sub/d.txt.bz2"), bz.finish().unwrap()).unwrap();

    let read = |input: &Path, doc_per_file: bool| {
        let mut r = bert_data::CorpusReader::open(bert_data::CorpusOptions {
            inputs: vec![input.display().to_string()],
            doc_per_file,
            ..Default::default()
        })
        .unwrap();
        let docs: Vec<_> = r.by_ref().collect::<Result<_, _>>().unwrap();
        (docs, r.stats().clone())
    };
    let (single, _) = read(&dir.join("a.txt"), false);
    // Blank-line separated: every paragraph is a document.
    let paragraphs: usize = docs.iter().map(|d| d.split("\n\n").count()).sum();
    assert_eq!(single.len(), paragraphs);
    let (all, stats) = read(&dir, false);
    assert_eq!(stats.files, 4);
    assert_eq!(all.len(), 4 * single.len());
    for k in 1..4 {
        assert_eq!(all[k * single.len()..(k + 1) * single.len()], single[..]);
    }
    // One document per file.
    let (per_file, _) = read(&dir, true);
    assert_eq!(per_file.len(), 4);
    assert_eq!(per_file[0].paragraphs.len(), paragraphs);
    // Globs.
    let (globbed, _) = read(&tmp.path().join("books/sub/*.txt.*"), true);
    assert_eq!(globbed.len(), 3);
}

#[test]
fn dynamic_shards_hold_unmasked_instances() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    write_jsonl(&corpus, &gen_docs(60, 4));
    let mut cfg = support::config(tmp.path(), vec![corpus.display().to_string()]);
    cfg.masking = MaskingMode::Dynamic;
    let report = prepare(&cfg).unwrap();
    let set = ShardSet::open(&cfg.out.join("train"), None).unwrap();
    assert_eq!(set.header().masking, MaskingMode::Dynamic);
    assert_eq!(set.header().dupe_factor, 1);
    assert_eq!(set.len() as u64, report.train_instances);
    let mask = set.vocab().special().mask;
    for i in 0..set.len() {
        let inst = set.instance(i);
        assert!(inst.masked_positions.is_empty());
        assert!(!inst.input_ids.contains(&mask));
    }
}

#[test]
fn whole_word_masking_masks_every_piece_of_a_word() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    write_jsonl(&corpus, &gen_docs(60, 8));
    let mut cfg = support::config(tmp.path(), vec![corpus.display().to_string()]);
    cfg.whole_word_masking = true;
    cfg.dupe_factor = 2;
    prepare(&cfg).unwrap();
    let set = ShardSet::open(&cfg.out.join("train"), None).unwrap();
    assert!(set.header().masking_params.whole_word_masking);
    let cont = set.vocab().continuation().to_vec();
    let params = set.header().masking_params;
    let mut checked = 0;
    for i in 0..set.len() {
        let inst = set.instance(i);
        let mut orig = inst.input_ids.clone();
        for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
            orig[p as usize] = l;
        }
        let masked: std::collections::BTreeSet<u32> =
            inst.masked_positions.iter().copied().collect();
        assert!(masked.len() <= num_to_predict(orig.len(), &params));
        for j in 1..orig.len() {
            // A word piece and the piece before it are masked together (or neither).
            if cont[orig[j] as usize] {
                // A piece that starts a segment (its word was cut by truncation) stands alone.
                let sp = set.vocab().special();
                if orig[j - 1] == sp.sep || orig[j - 1] == sp.cls {
                    continue;
                }
                assert_eq!(
                    masked.contains(&(j as u32)),
                    masked.contains(&(j as u32 - 1)),
                    "instance {i} position {j}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "the corpus has word pieces ({checked})");
}

/// Masked share of candidate tokens (all but `[CLS]`/`[SEP]`) over instances, the largest
/// count in one instance, and the number of candidates.
fn masked_share(instances: &[bert_data::Instance]) -> (f64, usize, usize) {
    let (mut masked, mut candidates, mut most) = (0usize, 0usize, 0usize);
    for inst in instances {
        masked += inst.masked_positions.len();
        candidates += inst.input_ids.len() - 3;
        most = most.max(inst.masked_positions.len());
    }
    (masked as f64 / candidates as f64, most, candidates)
}

#[test]
fn bernoulli_masking_at_a_configured_rate_static_and_dynamic() {
    use bert_data::{MaskCount, MaskingParams};
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    write_jsonl(&corpus, &gen_docs(150, 12));

    // Static: prepared with MosaicBERT's rate and per-token draws; the 10-prediction cap of
    // the fixed rule does not apply.
    let mut cfg = support::config(tmp.path(), vec![corpus.display().to_string()]);
    cfg.masked_lm_prob = 0.3;
    cfg.mask_count = MaskCount::Bernoulli;
    cfg.dupe_factor = 2;
    prepare(&cfg).unwrap();
    let set = ShardSet::open(&cfg.out.join("train"), None).unwrap();
    assert_eq!(set.header().masking_params.count, MaskCount::Bernoulli);
    let instances: Vec<_> = (0..set.len()).map(|i| set.instance(i)).collect();
    let (share, most, n) = masked_share(&instances);
    let tol = 5.0 * (0.3 * 0.7 / n as f64).sqrt();
    assert!((share - 0.3).abs() < tol, "static share {share} ± {tol}");
    assert!(most > 10, "largest count {most}: no cap");
    // Static masks cannot be redrawn by the loader.
    let err = ShardSet::open(&cfg.out.join("train"), None)
        .unwrap()
        .with_masking(MaskingParams::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("static shards") && err.contains("bert prepare"),
        "{err}"
    );

    // Dynamic: prepared with Google's rule, redrawn by the loader with Bernoulli at 0.3.
    let mut cfg = support::config(tmp.path(), vec![corpus.display().to_string()]);
    cfg.out = tmp.path().join("dynamic");
    cfg.masking = MaskingMode::Dynamic;
    prepare(&cfg).unwrap();
    let params = MaskingParams {
        masked_lm_prob: 0.3,
        count: MaskCount::Bernoulli,
        ..MaskingParams::default()
    };
    let set = ShardSet::open(&cfg.out.join("train"), None)
        .unwrap()
        .with_masking(params)
        .unwrap();
    assert_eq!(*set.masking(), params);
    let instances: Vec<_> = (0..set.len())
        .map(|i| set.masked_instance(i, 5, 0))
        .collect();
    let (share, most, n) = masked_share(&instances);
    let tol = 5.0 * (0.3 * 0.7 / n as f64).sqrt();
    assert!((share - 0.3).abs() < tol, "dynamic share {share} ± {tol}");
    // Batches are as wide as their largest count, rounded up to a multiple of 8, and carry
    // every prediction.
    for chunk in instances.chunks(16) {
        let batch = set.make_batch(chunk, false);
        let largest = chunk
            .iter()
            .map(|i| i.masked_positions.len())
            .max()
            .unwrap();
        assert_eq!(batch.max_predictions, largest.max(1).next_multiple_of(8));
        let weights: f32 = batch.masked_weights.iter().sum();
        let count: usize = chunk.iter().map(|i| i.masked_positions.len()).sum();
        assert_eq!(weights as usize, count);
    }
    assert!(most > 10);
    // An out-of-range rate is refused.
    let err = ShardSet::open(&cfg.out.join("train"), None)
        .unwrap()
        .with_masking(MaskingParams {
            masked_lm_prob: 0.0,
            ..params
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("masked_lm_prob"), "{err}");
}
