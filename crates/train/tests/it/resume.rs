//! Checkpoint and resume continue the run bit for bit (in-process; the CLI test kills a child),
//! and damaged checkpoints (checksums, missing moments, another vocabulary) are caught.

use crate::support;
use crate::support::{scratch, SERIAL};

use std::path::Path;

use bert_train::read_metrics;
use bert_train::SyntheticData;
use bert_train::{train, RunOptions};
use bert_train::{DataFacts, DataProvider, TrainBatches};
use bert_train::{RunConfig, TrainError};

type B = burn::backend::Autodiff<burn::backend::Flex>;

pub(crate) fn config(out: &std::path::Path, steps: u64) -> RunConfig {
    config_with(out, steps, &[])
}

fn config_with(out: &std::path::Path, steps: u64, overrides: &[String]) -> RunConfig {
    let text = format!(
        r#"
        seed = 5
        out_dir = "{}"
        [model]
        preset = "tiny"
        hidden_size = 32
        num_attention_heads = 2
        intermediate_size = 64
        max_position_embeddings = 32
        [data]
        train = "unused"
        batch_size = 4
        [optimizer]
        learning_rate = 1e-3
        [schedule]
        warmup_steps = 2
        [train]
        steps = {steps}
        accumulation = 2
        [eval]
        every = 3
        max_batches = 1
        [checkpoint]
        every = 4
        keep = 2
        "#,
        out.display()
    );
    RunConfig::parse(&text, std::path::Path::new("run.toml"), overrides).unwrap()
}

/// `--resume` of `config`'s run on the default CPU device.
pub(crate) fn resume(config: &RunConfig, data: &dyn DataProvider) -> bert_train::RunSummary {
    let options = RunOptions {
        resume: true,
        progress: false,
    };
    train::<B>(config, data, &Default::default(), &options).unwrap()
}

/// Real data with a crash: fails when asked for batch number `fail_at` (like a killed run).
struct CrashingData {
    inner: SyntheticData,
    fail_at: u64,
}

struct CrashingStream<'a> {
    inner: Box<dyn TrainBatches + 'a>,
    served: u64,
    fail_at: u64,
}

impl TrainBatches for CrashingStream<'_> {
    fn next_batch(&mut self) -> bert_train::Result<bert_data::HostBatch> {
        if self.served == self.fail_at {
            return Err(TrainError::Provider("simulated crash".into()));
        }
        self.served += 1;
        self.inner.next_batch()
    }
    fn cursor(&self) -> serde_json::Value {
        self.inner.cursor()
    }
}

impl DataProvider for CrashingData {
    fn facts(&self) -> &DataFacts {
        self.inner.facts()
    }
    fn train(
        &self,
        cursor: Option<&serde_json::Value>,
    ) -> bert_train::Result<Box<dyn TrainBatches + '_>> {
        Ok(Box::new(CrashingStream {
            inner: self.inner.train(cursor)?,
            served: 0,
            fail_at: self.fail_at,
        }))
    }
    fn validation(
        &self,
        b: usize,
        m: Option<usize>,
    ) -> bert_train::Result<Option<Vec<bert_data::HostBatch>>> {
        self.inner.validation(b, m)
    }
}

#[test]
fn crashing_and_resuming_gives_identical_losses() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    let device = Default::default();
    let full_dir = scratch("full");
    let full = train::<B>(
        &config(&full_dir, 10),
        &data,
        &device,
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(full.steps, 10);

    // Crash while fetching the batches of step 7 (2 micro-batches a step); newest checkpoint: 4.
    let part_dir = scratch("part");
    let crashing = CrashingData {
        inner: data.clone(),
        fail_at: 12,
    };
    let err = train::<B>(
        &config(&part_dir, 10),
        &crashing,
        &device,
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("simulated crash"), "{err}");
    // Without --resume the directory is refused rather than overwritten.
    let err = train::<B>(
        &config(&part_dir, 10),
        &data,
        &device,
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Config { .. }), "{err}");
    let resumed = resume(&config(&part_dir, 10), &data);
    assert_eq!(resumed.steps_this_run, 6);

    let (a, ae) = read_metrics(&full_dir.join("metrics.jsonl")).unwrap();
    let (b, be) = read_metrics(&part_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(a.len(), 10);
    assert_eq!(
        b.len(),
        10,
        "steps 5-6 of the crashed run are replaced, not duplicated"
    );
    for (x, y) in a.iter().zip(&b) {
        let key = |r: &bert_train::StepRecord| {
            (
                r.step,
                r.loss.to_bits(),
                r.grad_norm.to_bits(),
                r.lr.to_bits(),
                r.mlm_accuracy.to_bits(),
            )
        };
        assert_eq!(key(x), key(y), "step {}", x.step);
    }
    assert_eq!(ae.len(), be.len());
    for (x, y) in ae.iter().zip(&be) {
        assert_eq!(
            (x.step, x.mlm_loss.to_bits(), x.nsp_loss.map(f64::to_bits)),
            (y.step, y.mlm_loss.to_bits(), y.nsp_loss.map(f64::to_bits))
        );
    }
    // The final weights and optimiser moments are identical, byte for byte.
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let x = std::fs::read(full_dir.join("checkpoints/step-00000010").join(file)).unwrap();
        let y = std::fs::read(part_dir.join("checkpoints/step-00000010").join(file)).unwrap();
        assert!(x == y, "{file} differs");
    }
    // keep = 2: only the two newest checkpoints remain.
    let ckpts = bert_train::list_checkpoints(&part_dir.join("checkpoints"));
    assert_eq!(ckpts.iter().map(|c| c.0).collect::<Vec<_>>(), vec![8, 10]);
}

#[test]
fn resume_refuses_a_different_model_and_names_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    let device = Default::default();
    let dir = scratch("mismatch");
    train::<B>(&config(&dir, 4), &data, &device, &RunOptions::default()).unwrap();
    let mut changed = config(&dir, 8);
    changed.model.num_hidden_layers = Some(3);
    let err = train::<B>(
        &changed,
        &data,
        &device,
        &RunOptions {
            resume: true,
            progress: false,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`model.num_hidden_layers` was unset and is now 3"),
        "{err}"
    );
    let mut changed = config(&dir, 8);
    changed.seed = 6;
    let err = train::<B>(
        &changed,
        &data,
        &device,
        &RunOptions {
            resume: true,
            progress: false,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`seed` was 5 and is now 6"), "{err}");
}

#[test]
fn mixed_precision_runs_resume_exactly_with_their_loss_scale() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    let device = Default::default();
    for precision in ["bf16", "fp16"] {
        let set = vec![format!("train.precision=\"{precision}\"")];
        let full_dir = scratch(&format!("{precision}-full"));
        train::<B>(
            &config_with(&full_dir, 8, &set),
            &data,
            &device,
            &RunOptions::default(),
        )
        .unwrap();
        // Crash while fetching step 7's batches (2 micro-batches a step), newest checkpoint 4.
        let part_dir = scratch(&format!("{precision}-part"));
        let crashing = CrashingData {
            inner: data.clone(),
            fail_at: 12,
        };
        let crashed = train::<B>(
            &config_with(&part_dir, 8, &set),
            &crashing,
            &device,
            &RunOptions::default(),
        );
        assert!(crashed.is_err());
        let resumed = resume(&config_with(&part_dir, 8, &set), &data);
        assert_eq!(resumed.steps_this_run, 4);
        let (a, _) = read_metrics(&full_dir.join("metrics.jsonl")).unwrap();
        let (b, _) = read_metrics(&part_dir.join("metrics.jsonl")).unwrap();
        assert_eq!(a.len(), 8);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (
                    x.step,
                    x.loss.to_bits(),
                    x.grad_norm.to_bits(),
                    x.loss_scale
                ),
                (
                    y.step,
                    y.loss.to_bits(),
                    y.grad_norm.to_bits(),
                    y.loss_scale
                ),
                "{precision}, step {}",
                x.step
            );
            assert_eq!(x.loss_scale.is_some(), precision == "fp16");
        }
        for file in [
            "model.safetensors",
            "optimizer.safetensors",
            "trainer_state.json",
        ] {
            let read = |d: &Path| std::fs::read(d.join("checkpoints/step-00000008").join(file));
            let (x, y) = (read(&full_dir).unwrap(), read(&part_dir).unwrap());
            if file == "trainer_state.json" {
                // Wall time differs; the loss scaler must not.
                let scaler = |bytes: &[u8]| {
                    serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["loss_scaler"]
                        .clone()
                };
                assert_eq!(scaler(&x), scaler(&y), "{precision}");
                assert_eq!(scaler(&x).is_null(), precision != "fp16");
            } else {
                assert!(x == y, "{precision}: {file} differs");
            }
        }
    }
}

// ---- Damaged checkpoints (issue 12, item 4) ----

/// Captures what `tracing` logs at WARN and above on this thread while `f` runs.
fn with_warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || LogSink(sink.clone()))
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buf.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    (out, text)
}

struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Flips one bit near the end of `path`: inside the tensor data, so the file still parses and
/// only a checksum can tell.
fn flip_a_bit(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() - 5;
    bytes[i] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// Something that damages a file.
type Damage = fn(&Path);

fn truncate_half(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

fn try_train(
    config: &RunConfig,
    data: &dyn DataProvider,
    resume: bool,
) -> bert_train::Result<bert_train::RunSummary> {
    let options = RunOptions {
        resume,
        progress: false,
    };
    train::<B>(config, data, &Default::default(), &options)
}

/// A run of `steps` steps on the standard synthetic data in a fresh scratch folder `name`.
fn trained_run(name: &str, steps: u64) -> support::Scratch {
    let dir = scratch(name);
    let data = SyntheticData::new(50, 4, 16, 3);
    try_train(&config(&dir, steps), &data, false).unwrap();
    dir
}

/// A config that starts from `init_from` (3 steps: just beyond the warm-up).
fn init_from_config(out: &Path, init_from: &Path, optimizer: &str) -> RunConfig {
    config_with(
        out,
        3,
        &[
            format!("model.init_from=\"{}\"", init_from.display()),
            format!("model.init_optimizer=\"{optimizer}\""),
        ],
    )
}

/// The synthetic data under another vocabulary hash (same size), as shards prepared with
/// another `vocab.txt` of the same length would be.
struct OtherVocab {
    inner: SyntheticData,
    facts: DataFacts,
}

impl OtherVocab {
    fn new(hash: &str) -> Self {
        let inner = SyntheticData::new(50, 4, 16, 3);
        let mut facts = inner.facts().clone();
        facts.vocab_hash = hash.to_string();
        Self { inner, facts }
    }
}

impl DataProvider for OtherVocab {
    fn facts(&self) -> &DataFacts {
        &self.facts
    }
    fn train(
        &self,
        cursor: Option<&serde_json::Value>,
    ) -> bert_train::Result<Box<dyn TrainBatches + '_>> {
        self.inner.train(cursor)
    }
    fn validation(
        &self,
        b: usize,
        m: Option<usize>,
    ) -> bert_train::Result<Option<Vec<bert_data::HostBatch>>> {
        self.inner.validation(b, m)
    }
}

#[test]
fn a_flipped_bit_in_a_weight_file_is_caught_by_its_checksum() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    let source = trained_run("crc-source", 4);
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let case = scratch(&format!("crc-{file}"));
        copy_dir(&source, &case);
        let ckpt = case.join("checkpoints/step-00000004");
        flip_a_bit(&ckpt.join(file));
        // Named explicitly (`init_from`): an error naming the file, never silently used.
        let out = scratch(&format!("crc-init-{file}"));
        let err = try_train(&init_from_config(&out, &ckpt, "carry"), &data, false)
            .err()
            .unwrap_or_else(|| panic!("a damaged {file} was used"));
        let text = err.to_string();
        assert!(
            matches!(&err, TrainError::Checksum { path, expected, actual }
                if *path == ckpt.join(file) && expected.crc32 != actual.crc32),
            "{text}"
        );
        assert!(text.contains("CRC32"), "{text}");
        // The only checkpoint of a run: `--resume` has nothing good to go back to.
        let err = try_train(&config(&case, 8), &data, true)
            .err()
            .unwrap_or_else(|| panic!("resumed from a damaged {file}"));
        let text = err.to_string();
        assert!(
            text.contains("step-00000004") && text.contains(file),
            "{text}"
        );
        std::fs::remove_dir_all(&case).unwrap();
        let _ = std::fs::remove_dir_all(&out);
    }
    std::fs::remove_dir_all(&source).unwrap();
}

#[test]
fn resume_skips_a_damaged_newest_checkpoint_and_names_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    // every = 4, keep = 2: checkpoints 4 and 8.
    let source = trained_run("skip-source", 8);
    let damages: [(&str, Damage); 5] = [
        ("model.safetensors", flip_a_bit),
        ("optimizer.safetensors", flip_a_bit),
        ("model.safetensors", truncate_half),
        ("trainer_state.json", truncate_half),
        ("optimizer.safetensors", |p| {
            std::fs::remove_file(p).unwrap()
        }),
    ];
    for (i, (file, damage)) in damages.into_iter().enumerate() {
        let case = scratch(&format!("skip-{i}"));
        copy_dir(&source, &case);
        damage(&case.join("checkpoints/step-00000008").join(file));
        let (resumed, warnings) = with_warnings(|| try_train(&config(&case, 10), &data, true));
        let resumed = resumed.unwrap_or_else(|e| panic!("case {i} ({file}): {e}"));
        assert_eq!(
            resumed.steps_this_run, 6,
            "case {i} ({file}): resumed from step 4"
        );
        assert!(
            warnings.contains("step-00000008") && warnings.contains(file),
            "case {i} ({file}): {warnings}"
        );
        // The damaged checkpoint was written again when the run passed step 8.
        let again = bert_train::list_checkpoints(&case.join("checkpoints"));
        assert_eq!(again.iter().map(|c| c.0).collect::<Vec<_>>(), vec![8, 10]);
        std::fs::remove_dir_all(&case).unwrap();
    }
    // Nothing good left: an error that lists every checkpoint tried and why.
    let case = scratch("skip-none");
    copy_dir(&source, &case);
    flip_a_bit(&case.join("checkpoints/step-00000008/model.safetensors"));
    truncate_half(&case.join("checkpoints/step-00000004/trainer_state.json"));
    let err =
        try_train(&config(&case, 10), &data, true).expect_err("no good checkpoint, yet resumed");
    let text = err.to_string();
    assert!(
        matches!(&err, TrainError::NoUsableCheckpoint { tried, .. } if tried.len() == 2),
        "{text}"
    );
    assert!(
        text.contains("step-00000008/model.safetensors") && text.contains("step-00000004"),
        "{text}"
    );
    std::fs::remove_dir_all(&case).unwrap();
    std::fs::remove_dir_all(&source).unwrap();
}

/// Rewrites the optimiser file of `ckpt` without `name`'s moments, keeping its metadata and
/// recording the new file's checksum, so that only the missing moment is wrong.
fn drop_moments(ckpt: &Path, name: &str) {
    let path = ckpt.join("optimizer.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let metadata = safetensors::SafeTensors::read_metadata(&bytes)
        .unwrap()
        .1
        .metadata()
        .clone();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with(&format!("{name}.exp_avg")))
        .collect();
    let new = safetensors::serialize(kept, &metadata).unwrap();
    std::fs::write(&path, &new).unwrap();
    let state_path = ckpt.join("trainer_state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    if let Some(digest) = state
        .get_mut("files")
        .and_then(|f| f.get_mut("optimizer.safetensors"))
    {
        *digest = serde_json::json!({
            "bytes": new.len(),
            "crc32": format!("{:08x}", crc32fast::hash(&new)),
        });
    }
    std::fs::write(&state_path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
}

#[test]
fn a_missing_optimizer_moment_is_an_error_naming_the_parameter() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    let run = trained_run("moments-source", 4);
    let ckpt = run.join("checkpoints/step-00000004");
    let name = "bert.encoder.layer.0.attention.self.query.weight";
    drop_moments(&ckpt, name);

    let out = scratch("moments-carry");
    let err = try_train(&init_from_config(&out, &ckpt, "carry"), &data, false)
        .expect_err("carried zero moments for a parameter the checkpoint lacks");
    assert!(
        matches!(&err, TrainError::MissingMoments { parameter, .. } if parameter == name),
        "{err}"
    );
    // `fresh` does not read the optimiser file, so the same checkpoint starts a new optimiser.
    let out_fresh = scratch("moments-fresh");
    try_train(&init_from_config(&out_fresh, &ckpt, "fresh"), &data, false).unwrap();
    // Resuming the run: its only checkpoint is unusable, and the error says why.
    let err = try_train(&config(&run, 8), &data, true).expect_err("resumed with zero moments");
    assert!(err.to_string().contains(name), "{err}");
}

/// 50 tokens: the special ones, then made-up words.
fn fifty_tokens() -> Vec<String> {
    let mut tokens: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .map(String::from)
        .to_vec();
    tokens.extend((5..50).map(|i| format!("word{i}")));
    tokens
}

#[test]
fn init_from_refuses_weights_trained_on_another_vocabulary() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = trained_run("vocab-source", 4);
    let ckpt = run.join("checkpoints/step-00000004");
    let other = "sha256:0123456789abcdef";

    // A checkpoint of ours records its data's vocabulary hash.
    let out = scratch("vocab-ckpt");
    let err = try_train(
        &init_from_config(&out, &ckpt, "carry"),
        &OtherVocab::new(other),
        false,
    )
    .expect_err("weights of another vocabulary were used");
    assert!(
        matches!(&err, TrainError::VocabMismatch { init_hash, data_hash, .. }
            if init_hash == "synthetic-50" && data_hash == other),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("synthetic-50")
            && text.contains(other)
            && text.contains("trainer_state.json"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&out);
    try_train(
        &init_from_config(&out, &ckpt, "carry"),
        &OtherVocab::new("synthetic-50"),
        false,
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&out);

    // A HuggingFace folder: the hash of its `vocab.txt`.
    let hf = scratch("vocab-hf");
    std::fs::create_dir_all(&hf).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(ckpt.join(file), hf.join(file)).unwrap();
    }
    let tokens = fifty_tokens();
    std::fs::write(hf.join("vocab.txt"), tokens.join("\n") + "\n").unwrap();
    let hash = bert_data::vocab_hash(&tokens);
    let err = try_train(
        &init_from_config(&out, &hf, "fresh"),
        &OtherVocab::new(other),
        false,
    )
    .expect_err("an HF folder with another vocab.txt was used");
    let text = err.to_string();
    assert!(
        text.contains(&hash) && text.contains(other) && text.contains("vocab.txt"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&out);
    try_train(
        &init_from_config(&out, &hf, "fresh"),
        &OtherVocab::new(&hash),
        false,
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&out);

    // No vocabulary at all: only the size can be compared, and a warning says so.
    std::fs::remove_file(hf.join("vocab.txt")).unwrap();
    let (result, warnings) = with_warnings(|| {
        try_train(
            &init_from_config(&out, &hf, "fresh"),
            &OtherVocab::new(other),
            false,
        )
    });
    result.unwrap();
    assert!(warnings.contains("vocabulary"), "{warnings}");
}

/// Rewrites `ckpt` as a version before checksums wrote it: no `files` in the state, no list
/// of parameters without moments in the optimiser file.
fn make_legacy(ckpt: &Path) {
    let path = ckpt.join("optimizer.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    std::fs::write(&path, safetensors::serialize(st.tensors(), &None).unwrap()).unwrap();
    let state_path = ckpt.join("trainer_state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state.as_object_mut().unwrap().remove("files");
    std::fs::write(&state_path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
}

#[test]
fn checkpoints_from_before_checksums_resume_with_a_warning() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    // The same run resumed from its untouched checkpoint, for comparison.
    let reference = trained_run("legacy-reference", 4);
    try_train(&config(&reference, 8), &data, true).unwrap();
    let run = trained_run("legacy", 4);
    make_legacy(&run.join("checkpoints/step-00000004"));
    let (resumed, warnings) = with_warnings(|| try_train(&config(&run, 8), &data, true));
    assert_eq!(resumed.unwrap().steps_this_run, 4);
    assert!(
        warnings.contains("step-00000004") && warnings.contains("no checksums"),
        "{warnings}"
    );
    // Unverified, but loaded exactly: the run ends where an uninterrupted one does.
    let weights = |d: &Path| std::fs::read(d.join("checkpoints/step-00000008/model.safetensors"));
    assert!(weights(&reference).unwrap() == weights(&run).unwrap());
    // A legacy file that lacks one parameter's moments is still refused.
    let again = trained_run("legacy-missing", 4);
    let ckpt = again.join("checkpoints/step-00000004");
    make_legacy(&ckpt);
    drop_moments(&ckpt, "cls.predictions.transform.dense.weight");
    let out = scratch("legacy-missing-carry");
    let err = try_train(&init_from_config(&out, &ckpt, "carry"), &data, false)
        .expect_err("carried zero moments from a legacy file");
    assert!(matches!(err, TrainError::MissingMoments { .. }), "{err}");
}

/// `bert` runs a one-device CPU command on a thread of rayon's pool (to spare the CPU backend a
/// hand-off per operation); the run must be the same bits as on any other thread.
#[test]
fn a_run_on_a_rayon_pool_thread_gives_the_same_bits() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    let here_dir = scratch("here");
    let pool_dir = scratch("pool");
    let run = |dir: &Path| {
        train::<B>(
            &config(dir, 6),
            &data,
            &Default::default(),
            &RunOptions::default(),
        )
        .unwrap()
    };
    run(&here_dir);
    let on_pool = rayon::scope(|_| {
        assert!(rayon::current_thread_index().is_some());
        run(&pool_dir)
    });
    assert_eq!(on_pool.steps, 6);
    let (a, ae) = read_metrics(&here_dir.join("metrics.jsonl")).unwrap();
    let (b, be) = read_metrics(&pool_dir.join("metrics.jsonl")).unwrap();
    assert_eq!((a.len(), ae.len()), (b.len(), be.len()));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (x.loss.to_bits(), x.grad_norm.to_bits()),
            (y.loss.to_bits(), y.grad_norm.to_bits()),
            "step {}",
            x.step
        );
    }
    for (x, y) in ae.iter().zip(&be) {
        assert_eq!(
            x.mlm_loss.to_bits(),
            y.mlm_loss.to_bits(),
            "step {}",
            x.step
        );
    }
    let file = "checkpoints/step-00000006/model.safetensors";
    let x = std::fs::read(here_dir.join(file)).unwrap();
    let y = std::fs::read(pool_dir.join(file)).unwrap();
    assert!(x == y, "the weights differ");
    std::fs::remove_dir_all(&here_dir).unwrap();
    std::fs::remove_dir_all(&pool_dir).unwrap();
}
