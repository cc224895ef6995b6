//! Fine-tuning runs on small tasks whose labels follow from the text: a classifier from a random
//! start learns them (single sentences, pairs, scores), a run is a function of its seed, and a
//! split that does not fit the task is refused.

use std::path::Path;

use bert_data::{TaskExample, TaskLabel, VocabTxtOptions, WordPieceTokenizer};
use bert_finetune::{
    encode_examples, fine_tune, Encoded, EpochReport, Resumed, RunEvent, RunProgress, RunSettings,
};
use bert_model::{BertForSequenceClassification, ClassifierTask, Precision};
use bert_rng::Rng;
use bert_train::{LossScaler, Optimizer, OptimizerConfig, OptimizerKind};

type Ad = burn::backend::Autodiff<burn::backend::Flex>;

const WORDS: [&str; 12] = [
    "the", "bridge", "house", "old", "man", "was", "in", "a", "town", "green", "road", "small",
];

fn tokenizer() -> WordPieceTokenizer {
    let vocab =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tests/fixtures/sample-vocab.txt");
    WordPieceTokenizer::from_vocab_txt(&vocab, VocabTxtOptions::default())
        .expect("the sample vocabulary")
}

/// Six words; each is "river" with probability `p`.
fn sentence(rng: &mut Rng, p: f64) -> (String, usize) {
    let mut rivers = 0;
    let words: Vec<&str> = (0..6)
        .map(|_| {
            if (rng.next_u64() % 1000) as f64 / 1000.0 < p {
                rivers += 1;
                "river"
            } else {
                WORDS[(rng.next_u64() % WORDS.len() as u64) as usize]
            }
        })
        .collect();
    (words.join(" "), rivers)
}

/// Label 1 where the (second, for pairs) sentence names a river.
fn river_task(n: usize, seed: u64, pairs: bool) -> Vec<TaskExample> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let (a, in_a) = sentence(&mut rng, 0.1);
            let (b, in_b) = sentence(&mut rng, 0.1);
            let rivers = if pairs { in_b } else { in_a };
            TaskExample {
                text_a: a,
                text_b: pairs.then_some(b),
                label: TaskLabel::Class(u32::from(rivers > 0)),
            }
        })
        .collect()
}

fn settings(seed: u64) -> RunSettings {
    RunSettings {
        learning_rate: 2e-3,
        batch_size: 16,
        epochs: 4,
        warmup_proportion: 0.1,
        weight_decay: 0.01,
        max_grad_norm: 1.0,
        seed,
    }
}

fn run(
    task: &ClassifierTask,
    train: &[Encoded],
    eval: &[Encoded],
    s: &RunSettings,
) -> Vec<EpochReport> {
    run_in(Precision::Fp32, task, train, eval, s)
}

fn run_in(
    precision: Precision,
    task: &ClassifierTask,
    train: &[Encoded],
    eval: &[Encoded],
    s: &RunSettings,
) -> Vec<EpochReport> {
    let config = bert_testutil::small_bert_config(3000, 32);
    let mut model = BertForSequenceClassification::<Ad>::new(
        &config,
        task.outputs(),
        0.1,
        s.seed,
        &Default::default(),
    );
    model.set_precision(precision);
    let mut seen = 0;
    let (_, reports) = fine_tune(
        model,
        task,
        train,
        eval,
        s,
        0,
        &Default::default(),
        None,
        0,
        None,
        |event| {
            if let RunEvent::Epoch(_) = event {
                seen += 1;
            }
            Ok(())
        },
    )
    .expect("fine-tunes");
    assert_eq!(seen, s.epochs, "progress after every epoch");
    reports
}

fn binary() -> ClassifierTask {
    ClassifierTask::Classification {
        labels: vec!["no".into(), "yes".into()],
    }
}

#[test]
fn a_classifier_learns_a_single_sentence_and_a_pair_task() {
    let tok = tokenizer();
    for pairs in [false, true] {
        let train = encode_examples(&tok, &river_task(320, 1, pairs), 32).expect("encodes");
        let eval = encode_examples(&tok, &river_task(200, 2, pairs), 32).expect("encodes");
        let reports = run(&binary(), &train, &eval, &settings(5));
        let last = &reports[reports.len() - 1].eval;
        assert!(
            last.accuracy.expect("accuracy") >= 0.9 && last.f1.expect("two classes: F1") >= 0.85,
            "pairs {pairs}: {reports:#?}"
        );
        assert!(last.matthews.expect("MCC") > 0.7, "pairs {pairs}: {last:?}");
        assert!(reports[reports.len() - 1].train_loss < reports[0].train_loss);
    }
}

/// bf16 and fp16 matrix products (f32 accumulation and master weights; fp16 with dynamic loss
/// scaling) learn the pair task as f32 does; the scores differ from f32's, so the products did
/// run in the narrow type.
#[test]
fn bf16_and_fp16_runs_learn_the_pair_task() {
    let tok = tokenizer();
    let train = encode_examples(&tok, &river_task(320, 1, true), 32).expect("encodes");
    let eval = encode_examples(&tok, &river_task(200, 2, true), 32).expect("encodes");
    let fp32 = run(&binary(), &train, &eval, &settings(5));
    for precision in [Precision::Bf16, Precision::Fp16] {
        let narrow = run_in(precision, &binary(), &train, &eval, &settings(5));
        let last = &narrow[narrow.len() - 1];
        assert!(
            last.eval.accuracy.expect("accuracy") >= 0.9,
            "{precision}: {narrow:#?}"
        );
        assert_ne!(
            narrow, fp32,
            "the {precision} run computed what the fp32 run did"
        );
        let (a, b) = (last.train_loss, fp32[fp32.len() - 1].train_loss);
        assert!(
            (a - b).abs() <= 0.1 * b.max(0.05),
            "{precision} ends at train loss {a}, fp32 at {b}"
        );
    }
}

/// fp16's loss scaler as torch's GradScaler: a run whose scale is far too large (continued
/// from a checkpoint that says 2^40) skips every step whose gradients overflow, halving the
/// scale each time, then trains; the optimiser counts only the steps it applied.
#[test]
fn fp16_overflows_skip_the_step_and_halve_the_loss_scale() {
    let tok = tokenizer();
    let train = encode_examples(&tok, &river_task(320, 1, true), 32).expect("encodes");
    let eval = encode_examples(&tok, &river_task(200, 2, true), 32).expect("encodes");
    let s = settings(5);
    let config = bert_testutil::small_bert_config(3000, 32);
    let mut model =
        BertForSequenceClassification::<Ad>::new(&config, 2, 0.1, s.seed, &Default::default());
    model.set_precision(Precision::Fp16);
    let moments = vec![None; model.named_params_mut().len()];
    let start = 2f64.powi(40);
    let progress = RunProgress {
        step: 0,
        epoch: 0,
        next_batch: 0,
        loss_sum: 0.0,
        reports: Vec::new(),
        optimizer: Optimizer::new(OptimizerConfig {
            kind: OptimizerKind::Adamw,
            learning_rate: s.learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: s.weight_decay,
            bias_correction: true,
        }),
        loss_scaler: Some(LossScaler {
            scale: start,
            ..LossScaler::new()
        }),
    };
    let mut last: Option<RunProgress> = None;
    let (_, reports) = fine_tune(
        model,
        &binary(),
        &train,
        &eval,
        &s,
        0,
        &Default::default(),
        Some(Resumed { progress, moments }),
        1,
        None,
        |event| {
            if let RunEvent::Checkpoint { progress, .. } = event {
                last = Some(progress.clone());
            }
            Ok(())
        },
    )
    .expect("fine-tunes");
    let last = last.expect("checkpoints");
    let scaler = last.loss_scaler.expect("an fp16 run scales its loss");
    eprintln!(
        "from a scale of 2^40: {scaler:?} after {} steps, {} applied",
        last.step, last.optimizer.step
    );
    assert!(
        scaler.overflows >= 5 && scaler.scale <= start / 32.0,
        "{scaler:?}"
    );
    assert_eq!(
        last.optimizer.step + scaler.overflows,
        last.step,
        "skipped steps are not applied"
    );
    assert!(
        reports[reports.len() - 1].eval.accuracy.expect("accuracy") >= 0.8,
        "it trains once the scale fits: {reports:#?}"
    );
}

#[test]
fn a_regressor_learns_a_score() {
    let tok = tokenizer();
    let scored = |n, seed| -> Vec<TaskExample> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                let (a, rivers) = sentence(&mut rng, 0.25);
                TaskExample {
                    text_a: a,
                    text_b: None,
                    label: TaskLabel::Score(rivers as f32),
                }
            })
            .collect()
    };
    let train = encode_examples(&tok, &scored(320, 3), 32).expect("encodes");
    let eval = encode_examples(&tok, &scored(200, 4), 32).expect("encodes");
    let reports = run(&ClassifierTask::Regression, &train, &eval, &settings(6));
    let last = &reports[reports.len() - 1].eval;
    assert!(last.pearson.expect("Pearson") > 0.8, "{reports:#?}");
    assert!(last.spearman.expect("Spearman") > 0.8, "{reports:#?}");
    assert!(last.accuracy.is_none() && last.f1.is_none());
}

#[test]
fn a_run_is_a_function_of_its_seed() {
    let tok = tokenizer();
    let train = encode_examples(&tok, &river_task(64, 7, true), 32).expect("encodes");
    let eval = encode_examples(&tok, &river_task(32, 8, true), 32).expect("encodes");
    let s = RunSettings {
        epochs: 2,
        ..settings(11)
    };
    let a = run(&binary(), &train, &eval, &s);
    assert_eq!(a, run(&binary(), &train, &eval, &s));
    assert_ne!(
        a,
        run(&binary(), &train, &eval, &RunSettings { seed: 12, ..s })
    );
}

#[test]
fn labels_that_do_not_fit_the_task_and_bad_settings_are_refused() {
    let tok = tokenizer();
    let mut examples = river_task(8, 9, false);
    examples[3].label = TaskLabel::Class(2);
    let train = encode_examples(&tok, &examples, 32).expect("encodes");
    let config = bert_testutil::small_bert_config(3000, 32);
    // The run's error, as text: it must not start, or must stop.
    let refused = |train: &[Encoded], eval: &[Encoded], s: &RunSettings| {
        let model =
            BertForSequenceClassification::<Ad>::new(&config, 2, 0.1, 0, &Default::default());
        fine_tune(
            model,
            &binary(),
            train,
            eval,
            s,
            0,
            &Default::default(),
            None,
            0,
            None,
            |_| Ok(()),
        )
        .expect_err("refused")
        .to_string()
    };
    let err = refused(&train, &train[..2], &settings(1));
    assert!(err.contains("training example 4"), "{err}");
    let ok = encode_examples(&tok, &river_task(8, 9, false), 32).expect("encodes");
    let err = refused(
        &ok,
        &ok,
        &RunSettings {
            batch_size: 0,
            ..settings(1)
        },
    );
    assert!(err.contains("finetune.batch_sizes"), "{err}");
    // A learning rate that blows the weights up stops the run at the first non-finite step
    // instead of training on NaN.
    let err = refused(
        &ok,
        &ok,
        &RunSettings {
            learning_rate: 1e30,
            batch_size: 2,
            warmup_proportion: 0.0,
            max_grad_norm: 0.0,
            ..settings(1)
        },
    );
    assert!(err.contains("not finite") && err.contains("step "), "{err}");
    let err = encode_examples(&tok, &river_task(2, 1, true), 3)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("max_seq_length"), "{err}");
}

/// A run stopped after any checkpoint and continued from it (weights, moments and position read
/// back from disk) ends exactly where the uninterrupted run ends: the same reports, bit for bit.
#[test]
fn a_run_continued_from_a_checkpoint_ends_as_the_uninterrupted_run() {
    use bert_finetune::checkpoint::{self, Snapshot};
    let tok = tokenizer();
    let train = encode_examples(&tok, &river_task(40, 11, true), 32).expect("encodes");
    let eval = encode_examples(&tok, &river_task(24, 12, true), 32).expect("encodes");
    let s = RunSettings {
        epochs: 2,
        ..settings(9)
    };
    let task = binary();
    let config = bert_testutil::small_bert_config(3000, 32);
    let fresh =
        || BertForSequenceClassification::<Ad>::new(&config, 2, 0.1, 9, &Default::default());
    let root = tempfile::tempdir().expect("temp dir");
    // 40 examples in batches of 16: 3 steps an epoch, 6 in all; a checkpoint after every step
    // but those that end an epoch, and after the first epoch (steps 1, 2, 3 and 4, 5).
    let mut saved = Vec::new();
    let (_, straight) = fine_tune(
        fresh(),
        &task,
        &train,
        &eval,
        &s,
        0,
        &Default::default(),
        None,
        1,
        None,
        |event| {
            if let RunEvent::Checkpoint {
                progress,
                model,
                moments,
            } = event
            {
                let at = root.path().join(format!("{}", progress.step));
                checkpoint::save(
                    &at,
                    Snapshot {
                        run: 0,
                        settings: &s,
                        progress,
                        model,
                        moments,
                        config: &config,
                        task: &task,
                    },
                )?;
                saved.push(progress.step);
            }
            Ok(())
        },
    )
    .expect("fine-tunes");
    assert_eq!(saved, vec![1, 2, 3, 4, 5]);
    for step in saved {
        let loaded = checkpoint::load_latest::<Ad>(
            &root.path().join(format!("{step}")),
            0,
            &s,
            &Default::default(),
        )
        .expect("loads")
        .expect("a checkpoint");
        assert_eq!(loaded.resumed.progress.step, step);
        let (_, resumed) = fine_tune(
            loaded.model,
            &task,
            &train,
            &eval,
            &s,
            0,
            &Default::default(),
            Some(loaded.resumed),
            0,
            None,
            |_| Ok(()),
        )
        .expect("continues");
        assert_eq!(resumed, straight, "continued from step {step}");
    }
    // A checkpoint of other settings is refused, naming the change.
    let other = RunSettings {
        learning_rate: 1e-3,
        ..s.clone()
    };
    let err =
        match checkpoint::load_latest::<Ad>(&root.path().join("3"), 0, &other, &Default::default())
        {
            Ok(_) => panic!("a checkpoint of other settings was taken"),
            Err(e) => e.to_string(),
        };
    assert!(err.contains("config changed"), "{err}");
}
