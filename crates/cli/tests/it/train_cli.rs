//! The whole pipeline through the `bert` binary: tokenizer → prepare → train → kill → resume →
//! export → import → forward; and the exact-resume guarantee under SIGKILL.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bert, ok, read_safetensors};

/// A small corpus of made-up but word-statistically plausible documents.
pub(crate) fn write_corpus(dir: &Path) -> PathBuf {
    let subjects = [
        "the farmer",
        "a young doctor",
        "the old sailor",
        "my sister",
        "the teacher",
        "a tired traveller",
        "the mayor",
        "our neighbour",
    ];
    let verbs = [
        "walked to",
        "wrote about",
        "painted",
        "remembered",
        "visited",
        "described",
        "left",
        "repaired",
    ];
    let objects = [
        "the harbour",
        "a quiet village",
        "the northern bridge",
        "the long road",
        "an empty house",
        "the market square",
        "the river mill",
        "a small garden",
    ];
    let tails = [
        "before the storm",
        "in the spring",
        "after dinner",
        "with great care",
        "for the last time",
        "on a cold morning",
        "without a word",
        "at noon",
    ];
    let mut rng = bert_rng::Rng::new(7);
    let mut text = String::new();
    for _doc in 0..120 {
        let sentences = rng.range_inclusive(4, 12);
        for _ in 0..sentences {
            let s = format!(
                "{} {} {} {}. ",
                subjects[rng.below(8) as usize],
                verbs[rng.below(8) as usize],
                objects[rng.below(8) as usize],
                tails[rng.below(8) as usize]
            );
            let mut c = s.chars();
            let first = c.next().unwrap().to_uppercase().collect::<String>();
            text.push_str(&first);
            text.push_str(c.as_str());
        }
        text.push_str("\n\n");
    }
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// Trains a 200-piece vocabulary on `corpus` (once per folder) and prepares `shards-{masking}`
/// from it: sequences of 48, two dupes, a tenth for validation, seed 3.
pub(crate) fn prepare(dir: &Path, corpus: &Path, masking: &str) -> PathBuf {
    prepare_with_vocab(dir, corpus, masking, 200)
}

/// [`prepare`] with a vocabulary of `vocab_size` pieces.
pub(crate) fn prepare_with_vocab(
    dir: &Path,
    corpus: &Path,
    masking: &str,
    vocab_size: usize,
) -> PathBuf {
    let vocab = dir.join("vocab");
    if !vocab.join("vocab.txt").exists() {
        ok(bert(&[
            "tokenizer",
            "train",
            "--input",
            corpus.to_str().unwrap(),
            "--vocab-size",
            &vocab_size.to_string(),
            "--lowercase",
            "--out",
            vocab.to_str().unwrap(),
        ]));
    }
    let out = dir.join(format!("shards-{masking}"));
    ok(bert(&[
        "prepare",
        "--input",
        corpus.to_str().unwrap(),
        "--vocab",
        vocab.join("vocab.txt").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--masking",
        masking,
        "--max-seq-length",
        "48",
        "--dupe-factor",
        "2",
        "--validation-fraction",
        "0.1",
        "--seed",
        "3",
    ]));
    out
}

pub(crate) fn write_config(
    dir: &Path,
    shards: &Path,
    run: &Path,
    steps: u64,
    ckpt_every: u64,
) -> PathBuf {
    write_config_with_model(dir, shards, run, steps, ckpt_every, &small_model(""))
}

/// The `[model]` table of the tests' small model, with `extra` lines.
pub(crate) fn small_model(extra: &str) -> String {
    format!(
        "preset = \"tiny\"\nhidden_size = 32\nnum_attention_heads = 2\nintermediate_size = 64\n\
         max_position_embeddings = 64\n{extra}"
    )
}

/// [`write_config`] with `model` as the `[model]` table.
pub(crate) fn write_config_with_model(
    dir: &Path,
    shards: &Path,
    run: &Path,
    steps: u64,
    ckpt_every: u64,
    model: &str,
) -> PathBuf {
    let text = format!(
        r#"seed = 11
out_dir = "{run}"
export_dir = "{run}/export"
[model]
{model}
[data]
train = "{shards}/train"
validation = "{shards}/validation"
batch_size = 8
[optimizer]
learning_rate = 1e-3
[schedule]
warmup_steps = 3
[train]
steps = {steps}
accumulation = 2
[eval]
every = 5
max_batches = 2
[checkpoint]
every = {ckpt_every}
keep = 2
"#,
        run = run.display(),
        shards = shards.display()
    );
    let path = dir.join(format!(
        "run-{}.toml",
        run.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

pub(crate) fn losses(run: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .map(|v| {
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap().to_bits(),
            )
        })
        .collect()
}

#[test]
fn pipeline_end_to_end_with_resume_export_and_import() {
    let tmp = support::scratch("e2e");
    let dir = tmp.path().to_path_buf();
    let corpus = write_corpus(&dir);
    let _static = prepare(&dir, &corpus, "static");
    let shards = prepare(&dir, &corpus, "dynamic");
    let run = dir.join("run");
    // Train 6 steps, then resume the run extended to 12 (a safe change on resume).
    let config = write_config(&dir, &shards, &run, 12, 3);
    ok(bert(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--steps",
        "6",
    ]));
    // The resumed half fills two probe sentences at every evaluation (steps 10 and 12) and
    // after exporting.
    let out = ok(bert(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--resume",
        "--set",
        r#"eval.fill_mask=["the farmer [MASK] to the river .", "my [MASK] painted the [MASK] ."]"#,
    ]));
    assert!(out.contains("trained 12 steps (6 in this run)"), "{out}");
    assert!(out.contains("validation: MLM loss"), "{out}");
    for step in [10, 12] {
        for probe in [
            "the farmer [MASK] to the river .",
            "my [MASK] painted the [MASK] .",
        ] {
            assert!(
                out.lines().any(|l| l.contains(&format!("step={step}"))
                    && l.contains(&format!("fill-mask \"{probe}\""))),
                "no fill-mask line for {probe} at step {step}:\n{out}"
            );
        }
    }
    let after_export: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("fill-mask \""))
        .collect();
    assert_eq!(after_export.len(), 2, "{out}");
    assert_eq!(
        after_export[1].matches(" | ").count(),
        1,
        "two masks: {out}"
    );
    let export = run.join("export");
    for f in ["config.json", "model.safetensors", "vocab.txt"] {
        assert!(export.join(f).is_file(), "export lacks {f}");
    }
    // Import the export, export again, and check forward outputs are equal.
    let ckpt = dir.join("imported");
    ok(bert(&[
        "import",
        "--hf",
        export.to_str().unwrap(),
        "--out",
        ckpt.to_str().unwrap(),
    ]));
    let inputs = dir.join("inputs.json");
    std::fs::write(
        &inputs,
        r#"{"input_ids": [[2, 10, 11, 12, 3, 20, 21, 3]], "token_type_ids": [[0,0,0,0,0,1,1,1]]}"#,
    )
    .unwrap();
    let a = dir.join("a.json");
    let b = dir.join("b.json");
    ok(bert(&[
        "forward",
        "--model",
        export.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--out",
        a.to_str().unwrap(),
    ]));
    ok(bert(&[
        "forward",
        "--model",
        ckpt.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // `bert fill-mask` takes several sentences (one model load): a JSON line for each.
    let out = ok(bert(&[
        "fill-mask",
        "--model",
        export.to_str().unwrap(),
        "--top-k",
        "2",
        "--json",
        "the farmer [MASK] to the river .",
        "my [MASK] painted the [MASK] .",
    ]));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let masks: Vec<usize> = lines.iter().map(|v| v.as_array().unwrap().len()).collect();
    assert_eq!(masks, [1, 2], "{out}");
    assert_eq!(lines[1][1].as_array().unwrap().len(), 2, "{out}");
    // Evaluate the final checkpoint directly.
    let last = run.join("checkpoints/step-00000012");
    let out = ok(bert(&[
        "eval",
        "--checkpoint",
        last.to_str().unwrap(),
        "--data",
        shards.join("validation").to_str().unwrap(),
        "--json",
    ]));
    assert!(out.contains("mlm_accuracy"), "{out}");
    assert_eq!(losses(&run).len(), 12);
    // A flipped byte in a checkpoint's weights is caught by its checksum in `eval` and
    // `export` too, not loaded.
    let damaged = dir.join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for e in std::fs::read_dir(&last).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, damaged.join(p.file_name().unwrap())).unwrap();
    }
    let weights = damaged.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 7] ^= 0x10;
    std::fs::write(&weights, bytes).unwrap();
    for args in [
        vec![
            "eval",
            "--checkpoint",
            damaged.to_str().unwrap(),
            "--data",
            shards.join("validation").to_str().unwrap(),
        ],
        vec![
            "export",
            "--checkpoint",
            damaged.to_str().unwrap(),
            "--out",
            dir.join("damaged-export").to_str().unwrap(),
        ],
    ] {
        let out = bert(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("model.safetensors")
                && err.contains("is damaged")
                && err.contains("CRC32")
                && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.join("damaged-export").exists());
    // A config that changes the model is refused on resume, naming the key.
    let out = bert(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--resume",
        "--steps",
        "14",
        "--set",
        "model.num_hidden_layers=3",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("`model.num_hidden_layers` was unset and is now 3")
            && !err.contains("panicked"),
        "{err}"
    );
}

/// Kills `bert train` with SIGKILL at arbitrary moments (checkpoints every step, so often while
/// one is being written), resumes each time, and compares every step's loss, bit for bit, with
/// an uninterrupted run.
#[test]
#[cfg(unix)]
fn sigkill_at_any_moment_then_resume_gives_identical_losses() {
    let tmp = support::scratch("kill");
    let dir = tmp.path().to_path_buf();
    let corpus = write_corpus(&dir);
    let shards = prepare(&dir, &corpus, "dynamic");
    let steps = 24;
    let straight = dir.join("straight");
    let config = write_config(&dir, &shards, &straight, steps, 1);
    ok(bert(&["train", "--config", config.to_str().unwrap()]));
    let expected = losses(&straight);
    assert_eq!(expected.len(), steps as usize);

    let killed = dir.join("killed");
    let config = write_config(&dir, &shards, &killed, steps, 1);
    let mut rng = bert_rng::Rng::new(99);
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < deadline, "kill/resume loop did not finish");
        let mut args = vec!["train", "--config", config.to_str().unwrap()];
        if killed.join("checkpoints").exists() {
            args.push("--resume");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_bert"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill once the run has logged a few more steps (a random number), so kills land at
        // arbitrary points of the step loop, often inside a checkpoint write.
        if kills < 4 {
            let done = if killed.join("metrics.jsonl").exists() {
                losses(&killed).len()
            } else {
                0
            };
            let target = done + 1 + rng.below(5) as usize;
            while child.try_wait().unwrap().is_none() {
                let now = std::fs::read_to_string(killed.join("metrics.jsonl"))
                    .map(|t| t.lines().count())
                    .unwrap_or(0);
                if now >= target {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL on Unix
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "final resume failed");
        break;
    }
    eprintln!("killed the run {kills} times before letting it finish");
    assert!(
        kills >= 1,
        "the run finished before any kill; make it longer"
    );
    assert_eq!(
        losses(&killed),
        expected,
        "losses after {kills} kills differ from the uninterrupted run"
    );
}

/// A port p with p, p+1 and p+2 free on loopback: the orchestrator and two ranks' data services.
pub(crate) fn free_ports() -> u16 {
    loop {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = probe.local_addr().unwrap().port();
        drop(probe);
        if p < 65_000 && (1..=2).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok())
        {
            return p;
        }
    }
}

/// Starts rank `rank` of a two-process run of `config` on loopback.
fn spawn_rank(config: &Path, port: u16, rank: usize, extra: &[&str]) -> std::process::Child {
    let coordinator = format!("127.0.0.1:{port}");
    Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(["train", "--config", config.to_str().unwrap()])
        .args(["--world-size", "2", "--rank", &rank.to_string()])
        .args(["--coordinator", &coordinator])
        .args(["--set", "train.accumulation=1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Train losses as numbers, step by step.
fn loss_values(run: &Path) -> Vec<(u64, f64)> {
    losses(run)
        .into_iter()
        .map(|(s, bits)| (s, f64::from_bits(bits)))
        .collect()
}

fn assert_losses_close(a: &[(u64, f64)], b: &[(u64, f64)]) {
    assert_eq!(a.len(), b.len(), "{a:?}\nvs\n{b:?}");
    for ((sa, la), (sb, lb)) in a.iter().zip(b) {
        assert_eq!(sa, sb);
        assert!(
            (la - lb).abs() <= 1e-5 * la.abs().max(lb.abs()),
            "step {sa}: {la} vs {lb}"
        );
    }
}

/// Two `bert train` processes on loopback (global batch 2 ranks × 8 × 1) train exactly like one
/// process with the same global batch (1 × 8 × 2): losses and final weights to 1e-5; then a
/// `kill -9` of one rank stops the other with an error within the timeout, and `--resume` on
/// two processes continues the losses of the uninterrupted run.
#[test]
#[cfg(unix)]
fn two_processes_on_loopback_train_like_one_and_survive_a_killed_rank() {
    let tmp = support::scratch("two-processes");
    let dir = tmp.path().to_path_buf();
    let corpus = write_corpus(&dir);
    let shards = prepare(&dir, &corpus, "dynamic");
    let steps = 8;
    let single = dir.join("single");
    let config = write_config(&dir, &shards, &single, steps, 2);
    ok(bert(&["train", "--config", config.to_str().unwrap()]));

    let double = dir.join("double");
    let config = write_config(&dir, &shards, &double, steps, 2);
    let port = free_ports();
    let r0 = spawn_rank(&config, port, 0, &[]);
    let r1 = spawn_rank(&config, port, 1, &[]);
    let (ok1, text1) = finish(r1);
    let (ok0, text0) = finish(r0);
    assert!(ok0 && ok1, "rank 0:\n{text0}\nrank 1:\n{text1}");
    assert_losses_close(&loss_values(&single), &loss_values(&double));
    let (wa, wb) = (
        read_safetensors(&single.join("export/model.safetensors")),
        read_safetensors(&double.join("export/model.safetensors")),
    );
    assert_eq!(wa.len(), wb.len());
    for ((na, va), (_, vb)) in wa.iter().zip(&wb) {
        for (x, y) in va.iter().zip(vb) {
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1e-3),
                "{na}: {x} vs {y}"
            );
        }
    }
    // Only rank 0 wrote: one record per step.
    assert_eq!(loss_values(&double).len(), steps as usize);

    // Kill rank 1 after a few steps; rank 0 must stop on its own, with an error, quickly.
    let killed = dir.join("killed");
    let config = write_config(&dir, &shards, &killed, steps, 2);
    let port = free_ports();
    let timeout = ["--set", "distributed.timeout_s=5"];
    let r0 = spawn_rank(&config, port, 0, &timeout);
    let mut r1 = spawn_rank(&config, port, 1, &timeout);
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(killed.join("metrics.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 3
    {
        assert!(Instant::now() < deadline, "the two ranks never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    r1.kill().unwrap(); // SIGKILL
    r1.wait().unwrap();
    let killed_at = Instant::now();
    let (ok0, text0) = finish(r0);
    let stopped_after = killed_at.elapsed();
    assert!(!ok0, "rank 0 carried on without rank 1:\n{text0}");
    assert!(text0.contains("rank 0 of 2"), "{text0}");
    assert!(
        stopped_after < Duration::from_secs(60),
        "rank 0 took {stopped_after:?} to stop"
    );
    let port = free_ports();
    let r0 = spawn_rank(&config, port, 0, &["--resume"]);
    let r1 = spawn_rank(&config, port, 1, &["--resume"]);
    let (ok1, text1) = finish(r1);
    let (ok0, text0) = finish(r0);
    assert!(ok0 && ok1, "resume: rank 0:\n{text0}\nrank 1:\n{text1}");
    // Steps logged before the kill but after the last checkpoint are logged again by the
    // resumed run; the metrics log keeps the resumed ones.
    assert_losses_close(&loss_values(&single), &loss_values(&killed));
}

/// A rank that cannot reach its coordinator stops with an error naming itself within the
/// configured timeout.
#[test]
fn an_unreachable_coordinator_is_an_error_within_the_timeout() {
    let tmp = support::scratch("no-coordinator");
    let dir = tmp.path().to_path_buf();
    let corpus = write_corpus(&dir);
    let shards = prepare(&dir, &corpus, "dynamic");
    let run = dir.join("run");
    let config = write_config(&dir, &shards, &run, 4, 2);
    let port = free_ports();
    let started = Instant::now();
    let (ok1, text) = finish(spawn_rank(
        &config,
        port,
        1,
        &["--set", "distributed.timeout_s=3"],
    ));
    let waited = started.elapsed();
    assert!(!ok1, "{text}");
    assert!(
        text.contains("rank 1 of 2") && text.contains("distributed.timeout_s"),
        "{text}"
    );
    assert!(waited < Duration::from_secs(30), "took {waited:?}");
}

#[test]
fn out_moves_an_export_dir_inside_the_run_folder_with_the_run() {
    let tmp = support::scratch("out-export");
    let dir = tmp.path().to_path_buf();
    let corpus = write_corpus(&dir);
    let shards = prepare(&dir, &corpus, "dynamic");
    // The config exports to `{run}/export`; `--out` names another run folder.
    let config = write_config(&dir, &shards, &dir.join("run"), 4, 4);
    let other = dir.join("other");
    let out = ok(bert(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
    ]));
    assert!(
        out.contains(&format!("{}", other.join("export").display())),
        "{out}"
    );
    assert!(other.join("export/model.safetensors").is_file());
    assert!(
        !dir.join("run").exists(),
        "nothing is written to the config's run folder"
    );
}
