//! Shard format: exact round trip, and refusal of corrupt, truncated, foreign, swapped,
//! out-of-range or unknown-version shard sets; full reads only for shards not verified before.

use crate::support;

use std::path::Path;

use bert_data::Instance;
use bert_data::MaskingParams;
use bert_data::{prepare, DataError, MaskingMode, ShardSet, Verify, Vocab};
use bert_data::{DatasetHeader, ShardWriter, FORMAT_NAME, FORMAT_VERSION};
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
            // Labels are original tokens: never one of the five special ids (0–4).
            let masked_labels = masked_positions
                .iter()
                .map(|_| 5 + rng.below(vocab_size as u64 - 5) as u32)
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
    write_set_with(
        dir,
        header(vocab, MaskingMode::Static),
        vocab,
        instances,
        shard_size,
    );
}

fn write_set_with(
    dir: &Path,
    header: DatasetHeader,
    vocab: &Vocab,
    instances: &[Instance],
    shard_size: usize,
) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("vocab.txt"), vocab.to_vocab_txt()).unwrap();
    let mut w = ShardWriter::create(dir, header, shard_size).unwrap();
    for inst in instances {
        w.push(inst).unwrap();
    }
    w.finish(serde_json::Value::Null).unwrap();
}

#[test]
fn static_shards_round_trip_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let vocab = Vocab::read_vocab_txt(&support::make_vocab(tmp.path())).unwrap();
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
    support::write_jsonl(&corpus, &support::gen_docs(30, 7));
    let mut cfg = support::config(tmp, vec![corpus.display().to_string()]);
    // Only the training split is damaged; 30 documents are too few to hold any out.
    cfg.validation_fraction = 0.0;
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

/// A valid static set of 1000 instances in 4 shards of 300 and its vocabulary.
fn valid_set(tmp: &Path) -> (std::path::PathBuf, Vocab, Vec<Instance>) {
    let vocab = Vocab::read_vocab_txt(&support::make_vocab(tmp)).unwrap();
    let instances = random_instances(1000, vocab.len() as u32, 11);
    let dir = tmp.join("set");
    write_set(&dir, &vocab, &instances, 300);
    (dir, vocab, instances)
}

#[test]
fn a_replaced_shard_with_a_valid_checksum_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, vocab, instances) = valid_set(tmp.path());
    // Another run's shard: same counts and sizes, other masks, its own valid checksum.
    let other: Vec<Instance> = instances
        .iter()
        .map(|i| Instance {
            masked_labels: i
                .masked_labels
                .iter()
                .map(|&l| 5 + (l - 5 + 1) % 400)
                .collect(),
            ..i.clone()
        })
        .collect();
    let other_dir = tmp.path().join("other");
    write_set(&other_dir, &vocab, &other, 300);
    let name = "shard-00001.safetensors";
    std::fs::copy(other_dir.join(name), dir.join(name)).unwrap();
    match ShardSet::open(&dir, None) {
        Err(DataError::ShardMismatch {
            path,
            field,
            expected_from,
            ..
        }) => {
            assert!(path.ends_with(name), "{}", path.display());
            assert_eq!(field, "checksum");
            assert_eq!(expected_from, "index.json");
        }
        r => panic!("expected a checksum mismatch with index.json, got {r:?}"),
    }
    // Two shards of the same set swapped: the position recorded in the header tells.
    std::fs::copy(dir.join("shard-00000.safetensors"), dir.join(name)).unwrap();
    let err = open_err(&dir, None);
    assert!(
        err.contains("shard_index is 0") && err.contains(name),
        "{err}"
    );
}

#[test]
fn masking_parameters_must_agree_with_the_index() {
    for (from, to, field) in [
        (
            "\"masked_lm_prob\": 0.15",
            "\"masked_lm_prob\": 0.2",
            "masked_lm_prob",
        ),
        (
            "\"max_predictions_per_seq\": 20",
            "\"max_predictions_per_seq\": 10",
            "max_predictions_per_seq",
        ),
        (
            "\"whole_word_masking\": false",
            "\"whole_word_masking\": true",
            "whole_word_masking",
        ),
        ("\"dupe_factor\": 1", "\"dupe_factor\": 5", "dupe_factor"),
        (
            "\"masking\": \"static\"",
            "\"masking\": \"dynamic\"",
            "masking",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _, _) = valid_set(tmp.path());
        let index = dir.join("index.json");
        let text = std::fs::read_to_string(&index).unwrap();
        assert!(text.contains(from), "{text}");
        std::fs::write(&index, text.replace(from, to)).unwrap();
        match ShardSet::open(&dir, None) {
            Err(DataError::ShardMismatch {
                path,
                field: f,
                found,
                expected,
                ..
            }) => {
                assert!(path.ends_with("shard-00000.safetensors"));
                assert_eq!(f, field);
                assert!(from.ends_with(&found) || from.ends_with(&format!("\"{found}\"")));
                assert!(to.ends_with(&expected) || to.ends_with(&format!("\"{expected}\"")));
            }
            r => panic!("{field}: expected a mismatch, got {r:?}"),
        }
    }
}

/// A change that makes an instance invalid.
type Damage = Box<dyn Fn(&mut Instance)>;

/// Writes `instances` with instance 307 (record 7 of shard 1) changed by `damage`, and
/// returns the error opening the set gives.
fn open_with_damaged(damage: impl Fn(&mut Instance)) -> DataError {
    let tmp = tempfile::tempdir().unwrap();
    let vocab = Vocab::read_vocab_txt(&support::make_vocab(tmp.path())).unwrap();
    let mut instances = random_instances(1000, vocab.len() as u32, 11);
    // A long instance with many predictions, so every kind of damage applies.
    let len = 60;
    instances[307] = Instance {
        input_ids: (0..len).map(|j| 10 + j as u32).collect(),
        token_type_ids: (0..len).map(|j| u8::from(j > 30)).collect(),
        nsp_label: 0,
        masked_positions: (1..=20).map(|j| j * 2).collect(),
        masked_labels: (1..=20).map(|j| 100 + j).collect(),
    };
    for inst in &mut instances[307..308] {
        damage(inst);
    }
    let dir = tmp.path().join("set");
    write_set(&dir, &vocab, &instances, 300);
    match ShardSet::open(&dir, None) {
        Ok(_) => panic!("a damaged set opened"),
        Err(e) => e,
    }
}

#[test]
fn out_of_range_values_name_the_shard_and_the_record() {
    let vocab_size = 6 + support::WORDS as u32 + 10;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "token 5 has id 416, expected below vocab_size 416",
            Box::new(move |i| i.input_ids[5] = vocab_size),
        ),
        (
            "token 3 has token type 2",
            Box::new(|i| i.token_type_ids[3] = 2),
        ),
        ("NSP label 2", Box::new(|i| i.nsp_label = 2)),
        (
            "65 tokens, expected at most max_seq_length 64",
            Box::new(|i| {
                i.input_ids.extend([7; 5]);
                i.token_type_ids.extend([1; 5]);
            }),
        ),
        (
            "masked label 416, expected below vocab_size",
            Box::new(move |i| i.masked_labels[4] = vocab_size),
        ),
        (
            "21 predictions, expected at most max_predictions_per_seq 20",
            Box::new(|i| {
                i.masked_positions.push(41);
                i.masked_labels.push(9);
            }),
        ),
        (
            "masked position 60 is outside the instance's 60 tokens",
            Box::new(|i| {
                i.masked_positions[19] = 60;
            }),
        ),
        (
            "masked positions not ascending at position 4",
            Box::new(|i| {
                i.masked_positions[2] = 4;
            }),
        ),
        (
            "masked position 2 holds special token id 2",
            Box::new(|i| i.masked_labels[0] = 2),
        ),
        (
            "masked position 2 holds special token id 0",
            Box::new(|i| i.masked_labels[0] = 0),
        ),
    ];
    for (want, damage) in cases {
        match open_with_damaged(damage) {
            e @ DataError::ShardRecord { .. } => {
                let DataError::ShardRecord {
                    path,
                    record,
                    message,
                } = &e
                else {
                    unreachable!()
                };
                assert!(
                    path.ends_with("shard-00001.safetensors"),
                    "{}",
                    path.display()
                );
                assert_eq!(*record, 7, "{want}");
                assert!(message.contains(want), "{message} (wanted {want})");
                let shown = e.to_string();
                assert!(
                    shown.contains("shard-00001.safetensors: instance 7: "),
                    "{shown}"
                );
            }
            e => panic!("{want}: expected a record error, got {e:?}"),
        }
    }
}

#[test]
fn a_restart_reads_only_the_headers_of_unchanged_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, instances) = valid_set(tmp.path());
    let first = ShardSet::open(&dir, None).unwrap().verification();
    assert_eq!((first.verified, first.trusted), (4, 0));
    assert!(dir.join(".verified.json").is_file());
    // Files checked within two seconds of their last change are not trusted yet: a change in
    // the same time-stamp tick would not show.
    let racy = ShardSet::open(&dir, None).unwrap().verification();
    assert_eq!((racy.verified, racy.trusted), (4, 0));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let settled = ShardSet::open(&dir, None).unwrap().verification();
    assert_eq!((settled.verified, settled.trusted), (4, 0));
    let second = ShardSet::open(&dir, None).unwrap();
    assert_eq!(
        (
            second.verification().verified,
            second.verification().trusted
        ),
        (0, 4)
    );
    assert_eq!(second.instance(999), instances[999]);
    // Asking for it reads everything again.
    let always = ShardSet::open_with(&dir, None, Verify::Always)
        .unwrap()
        .verification();
    assert_eq!((always.verified, always.trusted), (4, 0));

    // A shard written again (same bytes) is read again; the others are not.
    let shard = dir.join("shard-00002.safetensors");
    let clean = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &clean).unwrap();
    let third = ShardSet::open(&dir, None).unwrap().verification();
    assert_eq!((third.verified, third.trusted), (1, 3));

    // A byte flipped in place right after its check, size and modification time kept: still
    // caught (the write changed the status-change time, or, within the same tick, the check
    // was too recent to be trusted).
    let mtime = std::fs::metadata(&shard).unwrap().modified().unwrap();
    let mut bytes = clean.clone();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&shard)
            .unwrap();
        f.seek(SeekFrom::Start(at as u64)).unwrap();
        f.write_all(&bytes[at..at + 1]).unwrap();
        f.set_modified(mtime).unwrap();
    }
    assert_eq!(
        std::fs::metadata(&shard).unwrap().modified().unwrap(),
        mtime
    );
    match ShardSet::open(&dir, None) {
        Err(DataError::ShardChecksum { path, .. }) => assert_eq!(path, shard),
        r => panic!("expected a checksum error, got {r:?}"),
    }

    // An unreadable or foreign record costs one full read, never an error.
    std::fs::write(&shard, &clean).unwrap();
    std::fs::write(dir.join(".verified.json"), "{not json").unwrap();
    let fourth = ShardSet::open(&dir, None).unwrap().verification();
    assert_eq!((fourth.verified, fourth.trusted), (4, 0));
}

#[test]
fn a_read_only_data_folder_still_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, _) = valid_set(tmp.path());
    // The record cannot be written where `.verified.json` is a folder: warn, open anyway.
    std::fs::create_dir(dir.join(".verified.json")).unwrap();
    let s = ShardSet::open(&dir, None).unwrap().verification();
    assert_eq!((s.verified, s.trusted), (4, 0));
}

/// An `mlm` set is one segment with no pair label: a second segment or a label there (a set
/// written by another tool, or edited with its checksum recomputed) would reach a model of one
/// token type and index past its table, so opening the set refuses it, naming the record.
#[test]
fn an_mlm_set_with_a_second_segment_or_a_pair_label_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let vocab = Vocab::read_vocab_txt(&support::make_vocab(tmp.path())).unwrap();
    let one_segment = |n: usize, seed: u64| -> Vec<Instance> {
        random_instances(n, vocab.len() as u32, seed)
            .into_iter()
            .map(|mut i| {
                i.token_type_ids.iter_mut().for_each(|t| *t = 0);
                i.nsp_label = 0;
                i
            })
            .collect()
    };
    let spec = bert_data::ObjectiveSpec::new(bert_data::Objective::Mlm, None);
    let write = |name: &str, instances: &[Instance]| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vocab.txt"), vocab.to_vocab_txt()).unwrap();
        let mut w =
            ShardWriter::create_for(&dir, header(&vocab, MaskingMode::Static), spec, 50).unwrap();
        for inst in instances {
            w.push(inst).unwrap();
        }
        w.finish(serde_json::Value::Null).unwrap();
        dir
    };
    let good = write("good", &one_segment(120, 3));
    let set = ShardSet::open(&good, None).unwrap();
    assert_eq!(set.objective(), spec);
    for (name, damage, want) in [
        (
            "types",
            (|i: &mut Instance| i.token_type_ids[4] = 1) as fn(&mut Instance),
            "token 4 has token type 1, expected 0 in an `mlm` set",
        ),
        (
            "labels",
            |i: &mut Instance| i.nsp_label = 1,
            "pair label 1, expected 0 in an `mlm` set",
        ),
    ] {
        let mut instances = one_segment(120, 3);
        damage(&mut instances[57]);
        let dir = write(name, &instances);
        match ShardSet::open(&dir, None) {
            Err(DataError::ShardRecord {
                path,
                record,
                message,
            }) => {
                assert!(
                    path.ends_with("shard-00001.safetensors"),
                    "{}",
                    path.display()
                );
                assert_eq!(record, 7);
                assert!(message.contains(want), "{message}");
            }
            Err(e) => panic!("{name}: expected a record error, got {e}"),
            Ok(_) => panic!("{name}: a damaged mlm set opened"),
        }
    }
}
