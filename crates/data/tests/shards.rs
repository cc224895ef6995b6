//! Shard format: exact round trip, and refusal of corrupt, truncated, foreign or unknown-version
//! shard sets.

mod common;

use std::path::Path;

use bert_data::instances::Instance;
use bert_data::masking::MaskingParams;
use bert_data::shard::{DatasetHeader, ShardWriter, FORMAT_NAME, FORMAT_VERSION};
use bert_data::{prepare, DataError, MaskingMode, ShardSet, Vocab};
use bert_rng::Rng;

fn header(vocab: &Vocab, masking: MaskingMode) -> DatasetHeader {
    DatasetHeader {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        split: "train".into(),
        vocab_hash: vocab.hash().into(),
        vocab_size: vocab.len(),
        max_seq_length: 64,
        masking,
        masking_params: MaskingParams::default(),
        dupe_factor: 1,
        instances: 0,
        tokens: 0,
    }
}

fn random_instances(n: usize, vocab_size: u32, seed: u64) -> Vec<Instance> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = rng.range_inclusive(5, 64);
            let a = rng.range_inclusive(1, len - 4);
            let input_ids: Vec<u32> = (0..len)
                .map(|_| rng.below(vocab_size as u64) as u32)
                .collect();
            let token_type_ids = (0..len).map(|j| u8::from(j > a + 1)).collect();
            let k = rng.range_inclusive(0, 10.min(len));
            let mut positions: Vec<u32> = (0..len as u32).collect();
            rng.shuffle(&mut positions);
            let mut masked_positions = positions[..k].to_vec();
            masked_positions.sort_unstable();
            let masked_labels = masked_positions
                .iter()
                .map(|_| rng.below(vocab_size as u64) as u32)
                .collect();
            Instance {
                input_ids,
                token_type_ids,
                nsp_label: rng.below(2) as u8,
                masked_positions,
                masked_labels,
            }
        })
        .collect()
}

fn write_set(dir: &Path, vocab: &Vocab, instances: &[Instance], shard_size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("vocab.txt"), vocab.to_vocab_txt()).unwrap();
    let mut w = ShardWriter::create(dir, header(vocab, MaskingMode::Static), shard_size).unwrap();
    for inst in instances {
        w.push(inst).unwrap();
    }
    w.finish(serde_json::Value::Null).unwrap();
}

#[test]
fn static_shards_round_trip_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let vocab = Vocab::read_vocab_txt(&common::make_vocab(tmp.path())).unwrap();
    let instances = random_instances(1000, vocab.len() as u32, 5);
    let dir = tmp.path().join("set");
    write_set(&dir, &vocab, &instances, 300);
    let set = ShardSet::open(&dir, Some(vocab.hash())).unwrap();
    assert_eq!(set.index().shards.len(), 4);
    assert_eq!(set.len(), instances.len());
    assert_eq!(set.header().instances, 1000);
    for (i, inst) in instances.iter().enumerate() {
        assert_eq!(&set.instance(i), inst, "instance {i}");
    }
}

#[test]
fn wide_vocabularies_store_u32_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tokens: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    tokens.extend((0..70_000).map(|i| format!("t{i}")));
    let vocab = Vocab::from_tokens(tokens, Path::new("big")).unwrap();
    let instances = random_instances(50, vocab.len() as u32, 6);
    assert!(instances
        .iter()
        .any(|i| i.input_ids.iter().any(|&t| t > 65_535)));
    let dir = tmp.path().join("set");
    write_set(&dir, &vocab, &instances, 1000);
    let set = ShardSet::open(&dir, None).unwrap();
    for (i, inst) in instances.iter().enumerate() {
        assert_eq!(&set.instance(i), inst);
    }
}

/// A small prepared set to damage.
fn prepared(tmp: &Path) -> (std::path::PathBuf, String) {
    let corpus = tmp.join("c.jsonl");
    common::write_jsonl(&corpus, &common::gen_docs(30, 7));
    let cfg = common::config(tmp, vec![corpus.display().to_string()]);
    let report = prepare(&cfg).unwrap();
    (cfg.out.join("train"), report.vocab_hash)
}

fn open_err(dir: &Path, hash: Option<&str>) -> String {
    match ShardSet::open(dir, hash) {
        Ok(_) => panic!("{} opened", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_flipped_byte_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, hash) = prepared(tmp.path());
    let shard = dir.join("shard-00000.safetensors");
    let clean = std::fs::read(&shard).unwrap();
    // Flip one byte in the middle of the data and one near the end.
    for at in [clean.len() / 2 + 3, clean.len() - 2] {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x10;
        std::fs::write(&shard, &bytes).unwrap();
        let err = open_err(&dir, Some(&hash));
        assert!(
            err.contains("checksum mismatch") && err.contains("shard-00000"),
            "{err}"
        );
    }
    std::fs::write(&shard, &clean).unwrap();
    ShardSet::open(&dir, Some(&hash)).unwrap();
}

#[test]
fn a_truncated_shard_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, hash) = prepared(tmp.path());
    let shard = dir.join("shard-00000.safetensors");
    let clean = std::fs::read(&shard).unwrap();
    for keep in [clean.len() - 1, clean.len() / 2, 5] {
        std::fs::write(&shard, &clean[..keep]).unwrap();
        let err = open_err(&dir, Some(&hash));
        assert!(
            err.contains("truncated") && err.contains("shard-00000"),
            "{err}"
        );
    }
}

#[test]
fn another_vocabulary_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, hash) = prepared(tmp.path());
    let other = "sha256:0000";
    match ShardSet::open(&dir, Some(other)) {
        Err(DataError::VocabMismatch {
            expected, found, ..
        }) => {
            assert_eq!(expected, other);
            assert_eq!(found, hash);
        }
        r => panic!("expected a vocabulary mismatch, got {r:?}"),
    }
    // A replaced vocab.txt next to the shards is caught too.
    let v = std::fs::read_to_string(dir.join("vocab.txt")).unwrap();
    std::fs::write(dir.join("vocab.txt"), v.replace("w7\n", "w7b\n")).unwrap();
    let err = open_err(&dir, None);
    assert!(err.contains("made with vocabulary"), "{err}");
}

#[test]
fn an_unknown_format_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = prepared(tmp.path());
    let index = dir.join("index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(
        &index,
        text.replace("\"format_version\": 1", "\"format_version\": 99"),
    )
    .unwrap();
    let err = open_err(&dir, None);
    assert!(err.contains("unknown format version 99"), "{err}");
    // The top-level output folder is not a split.
    let err = open_err(dir.parent().unwrap(), None);
    assert!(err.contains("open its train/ or validation/"), "{err}");
}
