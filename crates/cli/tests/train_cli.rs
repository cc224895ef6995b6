//! The whole pipeline through the `bert` binary: tokenizer → prepare → train → kill → resume →
//! export → import → forward; and the exact-resume guarantee under SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(args)
        .output()
        .expect("runs the bert binary")
}

fn ok(out: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "command failed:\n{text}");
    text
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bert-train-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small corpus of made-up but word-statistically plausible documents.
fn write_corpus(dir: &Path) -> PathBuf {
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

fn prepare(dir: &Path, corpus: &Path, masking: &str) -> PathBuf {
    let vocab = dir.join("vocab");
    if !vocab.join("vocab.txt").exists() {
        ok(bert(&[
            "tokenizer",
            "train",
            "--input",
            corpus.to_str().unwrap(),
            "--vocab-size",
            "200",
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

fn write_config(dir: &Path, shards: &Path, run: &Path, steps: u64, ckpt_every: u64) -> PathBuf {
    let text = format!(
        r#"seed = 11
out_dir = "{run}"
export_dir = "{run}/export"
[model]
preset = "tiny"
hidden_size = 32
num_attention_heads = 2
intermediate_size = 64
max_position_embeddings = 64
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

fn losses(run: &Path) -> Vec<(u64, u64)> {
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
    let dir = scratch("e2e");
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
    let out = ok(bert(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--resume",
    ]));
    assert!(out.contains("trained 12 steps (6 in this run)"), "{out}");
    assert!(out.contains("validation: MLM loss"), "{out}");
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
        !out.status.success() && err.contains("`model`") && !err.contains("panicked"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills `bert train` with SIGKILL at arbitrary moments (checkpoints every step, so often while
/// one is being written), resumes each time, and compares every step's loss, bit for bit, with
/// an uninterrupted run.
#[test]
#[cfg(unix)]
fn sigkill_at_any_moment_then_resume_gives_identical_losses() {
    let dir = scratch("kill");
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
    let _ = std::fs::remove_dir_all(&dir);
}
