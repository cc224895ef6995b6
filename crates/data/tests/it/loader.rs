//! Loader: resumable cursor, rank partitioning, dynamic masks as a pure function, eval pass.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bert_data::num_to_predict;
use bert_data::{
    prepare, Cursor, EvalLoader, HostBatch, LoaderConfig, MaskingMode, ShardSet, TrainLoader,
};

fn dynamic_set(tmp: &Path) -> Arc<ShardSet> {
    let corpus = tmp.join("c.jsonl");
    support::write_jsonl(&corpus, &support::gen_docs(80, 11));
    let mut cfg = support::config(tmp, vec![corpus.display().to_string()]);
    cfg.masking = MaskingMode::Dynamic;
    cfg.shard_size = 97; // many shards, boundaries inside batches
    prepare(&cfg).unwrap();
    Arc::new(ShardSet::open(&cfg.out.join("train"), None).unwrap())
}

/// The `[CLS]`-row signature of each row of a batch, to identify instances.
fn rows(b: &HostBatch) -> Vec<Vec<i64>> {
    (0..b.batch_size)
        .map(|r| {
            let row = &b.input_ids[r * b.seq_len..(r + 1) * b.seq_len];
            let mut v = row.to_vec();
            // Undo masks so rows identify instances whatever the mask.
            for j in 0..b.max_predictions {
                let k = r * b.max_predictions + j;
                if b.masked_weights[k] > 0.0 {
                    v[b.masked_positions[k] as usize] = b.masked_labels[k];
                }
            }
            while v.last() == Some(&0) {
                v.pop();
            }
            v
        })
        .collect()
}

#[test]
fn cursor_restore_continues_the_identical_batch_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let set = dynamic_set(tmp.path());
    let n = set.len();
    let config = LoaderConfig {
        batch_size: 16,
        seed: 99,
        prefetch: 3,
        ..LoaderConfig::default()
    };
    // Enough steps to cross two epoch boundaries.
    let steps = 2 * n / 16 + 7;
    let mut straight = TrainLoader::new(set.clone(), config.clone(), Cursor::default()).unwrap();
    let reference: Vec<HostBatch> = (0..steps).map(|_| straight.next_batch().unwrap()).collect();
    assert!(straight.cursor().epoch >= 2, "{:?}", straight.cursor());
    for stop in [1, n / 16 - 1, n / 16, n / 16 + 3, steps - 1] {
        let mut first = TrainLoader::new(set.clone(), config.clone(), Cursor::default()).unwrap();
        for want in &reference[..stop] {
            assert_eq!(&first.next_batch().unwrap(), want);
        }
        // Save (through JSON, as a checkpoint would), drop, restore.
        let saved = serde_json::to_string(&first.cursor()).unwrap();
        drop(first);
        let cursor: Cursor = serde_json::from_str(&saved).unwrap();
        let mut resumed = TrainLoader::new(set.clone(), config.clone(), cursor).unwrap();
        for (k, want) in reference[stop..].iter().enumerate() {
            assert_eq!(
                &resumed.next_batch().unwrap(),
                want,
                "resume at {stop}, step {k}"
            );
        }
    }
    // Epochs differ in order and masks; batches are well formed.
    assert_ne!(rows(&reference[0]), rows(&reference[n / 16]));
    for b in &reference {
        assert_eq!(b.input_ids.len(), b.batch_size * b.seq_len);
        assert_eq!(b.masked_weights.len(), b.batch_size * b.max_predictions);
        assert!(b.seq_len <= 64);
    }
}

#[test]
fn ranks_partition_each_epoch_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let set = dynamic_set(tmp.path());
    let n = set.len();
    let (batch, world) = (4, 3);
    let steps = n / (batch * world);
    // Every instance exactly once per epoch across ranks (minus the dropped tail).
    let mut seen: BTreeMap<Vec<i64>, usize> = BTreeMap::new();
    for rank in 0..world {
        let cfg = LoaderConfig {
            batch_size: batch,
            world_size: world,
            rank,
            seed: 5,
            ..LoaderConfig::default()
        };
        let mut loader = TrainLoader::new(set.clone(), cfg, Cursor::default()).unwrap();
        for _ in 0..steps {
            for r in rows(&loader.next_batch().unwrap()) {
                *seen.entry(r).or_default() += 1;
            }
        }
        assert_eq!(
            loader.cursor(),
            Cursor {
                epoch: 0,
                position: (steps * batch * world) as u64
            }
        );
    }
    let distinct: std::collections::BTreeSet<Vec<i64>> = (0..n)
        .map(|i| {
            set.instance(i)
                .input_ids
                .iter()
                .map(|&t| t as i64)
                .collect()
        })
        .collect();
    assert_eq!(distinct.len(), n, "generated instances are all distinct");
    assert!(
        seen.values().all(|&c| c == 1),
        "an instance was served twice in one epoch"
    );
    assert_eq!(seen.len(), steps * batch * world);
    assert!(seen.keys().all(|r| distinct.contains(r)));
    assert!(
        n - steps * batch * world < batch * world,
        "only the incomplete tail is dropped"
    );
}

#[test]
fn dynamic_masks_are_a_pure_function_of_seed_epoch_index() {
    let tmp = tempfile::tempdir().unwrap();
    let set = dynamic_set(tmp.path());
    let params = set.header().masking_params;
    let mut differ_epoch = 0;
    let mut differ_seed = 0;
    for i in 0..set.len() {
        let a = set.masked_instance(i, 1, 0);
        assert_eq!(a, set.masked_instance(i, 1, 0), "same key, same masks");
        assert_eq!(
            a.masked_positions.len(),
            num_to_predict(a.input_ids.len(), &params)
        );
        differ_epoch += usize::from(a != set.masked_instance(i, 1, 1));
        differ_seed += usize::from(a != set.masked_instance(i, 2, 0));
    }
    // Two independent draws of ≥ 5 positions out of ≥ 5 candidates coincide rarely.
    assert!(
        differ_epoch > set.len() * 9 / 10,
        "{differ_epoch}/{}",
        set.len()
    );
    assert!(
        differ_seed > set.len() * 9 / 10,
        "{differ_seed}/{}",
        set.len()
    );
    // The loader serves exactly these masks, whatever the batch or rank layout.
    let cfg = LoaderConfig {
        batch_size: 8,
        seed: 1,
        pad_to_max_seq_length: true,
        ..LoaderConfig::default()
    };
    let order = bert_data::epoch_order(set.len(), 1, 0);
    let mut loader = TrainLoader::new(set.clone(), cfg, Cursor::default()).unwrap();
    let batch = loader.next_batch().unwrap();
    assert_eq!(batch.seq_len, 64);
    let expected: Vec<_> = order[..8]
        .iter()
        .map(|&i| set.masked_instance(i as usize, 1, 0))
        .collect();
    assert_eq!(batch, set.make_batch(&expected, true));
}

#[test]
fn eval_pass_is_ordered_complete_and_repeatable() {
    let tmp = tempfile::tempdir().unwrap();
    let set = dynamic_set(tmp.path());
    let n = set.len();
    let cfg = LoaderConfig {
        batch_size: 10,
        ..LoaderConfig::default()
    };
    let first: Vec<HostBatch> = EvalLoader::new(set.clone(), cfg.clone()).unwrap().collect();
    let again: Vec<HostBatch> = EvalLoader::new(set.clone(), cfg.clone()).unwrap().collect();
    assert_eq!(first, again, "every evaluation sees the same masks");
    assert_eq!(first.len(), n.div_ceil(10));
    assert_eq!(first.iter().map(|b| b.batch_size).sum::<usize>(), n);
    let last = n - 10 * (n.div_ceil(10) - 1);
    assert_eq!(
        first.last().unwrap().batch_size,
        last,
        "last partial batch kept"
    );
    let mut k = 0;
    for b in &first {
        for (r, row) in rows(b).into_iter().enumerate() {
            let want: Vec<i64> = set
                .instance(k)
                .input_ids
                .iter()
                .map(|&t| t as i64)
                .collect();
            assert_eq!(row, want, "batch row {r} is instance {k}");
            assert_eq!(b.nsp_labels[r], i64::from(set.instance(k).nsp_label));
            k += 1;
        }
    }
    // Two ranks split the batches between them.
    let mut total = 0;
    for rank in 0..2 {
        let l = EvalLoader::new(
            set.clone(),
            LoaderConfig {
                rank,
                world_size: 2,
                ..cfg.clone()
            },
        )
        .unwrap();
        let expected = l.num_batches();
        let got: Vec<HostBatch> = l.collect();
        assert_eq!(got.len(), expected);
        total += got.iter().map(|b| b.batch_size).sum::<usize>();
    }
    assert_eq!(total, n);
}

#[test]
fn loader_refuses_bad_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let set = dynamic_set(tmp.path());
    let n = set.len() as u64;
    let too_big = LoaderConfig {
        batch_size: set.len() + 1,
        ..LoaderConfig::default()
    };
    assert!(TrainLoader::new(set.clone(), too_big, Cursor::default()).is_err());
    let bad_rank = LoaderConfig {
        rank: 2,
        world_size: 2,
        ..LoaderConfig::default()
    };
    assert!(TrainLoader::new(set.clone(), bad_rank, Cursor::default()).is_err());
    let past = Cursor {
        epoch: 0,
        position: n + 1,
    };
    let err = TrainLoader::new(set, LoaderConfig::default(), past)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("past the"), "{err}");
}

#[test]
fn a_limited_evaluation_is_a_fixed_sample_of_the_whole_set() {
    let tmp = tempfile::tempdir().unwrap();
    let set = dynamic_set(tmp.path());
    let n = set.len();
    assert!(n > 400, "{n} instances");
    let cfg = LoaderConfig {
        batch_size: 10,
        ..LoaderConfig::default()
    };
    // The instance index of every row, found by its unmasked ids.
    let by_ids: std::collections::HashMap<Vec<i64>, usize> = (0..n)
        .map(|i| {
            let ids = set
                .instance(i)
                .input_ids
                .iter()
                .map(|&t| t as i64)
                .collect();
            (ids, i)
        })
        .collect();
    let indices = |batches: &[HostBatch]| -> Vec<usize> {
        batches.iter().flat_map(rows).map(|r| by_ids[&r]).collect()
    };
    let take = 10;
    let sample: Vec<HostBatch> = EvalLoader::sampled(set.clone(), cfg.clone(), take * 10)
        .unwrap()
        .collect();
    assert_eq!(sample.len(), take);
    let picked = indices(&sample);
    assert_eq!(picked.len(), take * 10);
    assert!(
        picked.windows(2).all(|w| w[0] < w[1]),
        "distinct, in set order"
    );
    // Drawn from the whole set, not its first batches: every tenth of the set is visited
    // (a uniform sample of 100 misses a given tenth with probability 0.9^100 ≈ 3e-5).
    for tenth in 0..10 {
        let (lo, hi) = (tenth * n / 10, (tenth + 1) * n / 10);
        assert!(
            picked.iter().any(|&i| (lo..hi).contains(&i)),
            "no instance in {lo}..{hi}: {picked:?}"
        );
    }
    // The same sample and masks at every evaluation; another eval seed draws another.
    let again: Vec<HostBatch> = EvalLoader::sampled(set.clone(), cfg.clone(), take * 10)
        .unwrap()
        .collect();
    assert_eq!(sample, again);
    let other = LoaderConfig {
        eval_seed: 99,
        ..cfg.clone()
    };
    let other: Vec<HostBatch> = EvalLoader::sampled(set.clone(), other, take * 10)
        .unwrap()
        .collect();
    assert_ne!(indices(&other), picked);
    // Two ranks split the sample's batches between them.
    let mut split = Vec::new();
    for rank in 0..2 {
        let rank_cfg = LoaderConfig {
            rank,
            world_size: 2,
            ..cfg.clone()
        };
        let pass = EvalLoader::sampled(set.clone(), rank_cfg, take * 10).unwrap();
        assert_eq!(pass.num_batches(), take / 2);
        split.extend(indices(&pass.collect::<Vec<_>>()));
    }
    split.sort_unstable();
    assert_eq!(split, picked);
    // A sample as large as the set is the set.
    let all: Vec<HostBatch> = EvalLoader::sampled(set.clone(), cfg.clone(), n + 5)
        .unwrap()
        .collect();
    assert_eq!(indices(&all), (0..n).collect::<Vec<_>>());
}
