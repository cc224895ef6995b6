//! `bert finetune` as users run it: a grid of runs on a GLUE-style TSV task from a model folder,
//! the table, `results.json`, and the best run exported as a classifier folder that loads with
//! its labels and gives the logits the run ended with; the random-initialisation baseline; and
//! bad task files refused with the file and line named.

use std::path::Path;

use crate::support::*;
use bert_model::{load_classifier_dir, save_model_dir, BertForPreTraining, ClassifierTask};
use bert_rng::Rng;

const WORDS: [&str; 12] = [
    "the", "bridge", "house", "old", "man", "was", "in", "a", "town", "green", "road", "small",
];

/// A TSV split of the river task: label `yes` where the second sentence names a river.
fn write_split(path: &Path, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let sentence = |rng: &mut Rng| {
        let mut river = false;
        let words: Vec<&str> = (0..6)
            .map(|_| {
                if rng.next_u64().is_multiple_of(10) {
                    river = true;
                    "river"
                } else {
                    WORDS[(rng.next_u64() % 12) as usize]
                }
            })
            .collect();
        (words.join(" "), river)
    };
    let mut text = String::from("index\tsentence1\tsentence2\tlabel\n");
    for i in 0..n {
        let (a, _) = sentence(&mut rng);
        let (b, river) = sentence(&mut rng);
        text.push_str(&format!(
            "{i}\t{a}\t{b}\t{}\n",
            if river { "yes" } else { "no" }
        ));
    }
    std::fs::write(path, text).expect("write the split");
}

/// A model folder with the sample vocabulary, as `bert train` exports one.
fn write_model(dir: &Path) {
    let config = bert_testutil::small_bert_config(3000, 32);
    let model = BertForPreTraining::<burn::backend::Flex>::new(&config, 3, &Default::default());
    let vocab_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tests/fixtures");
    std::fs::create_dir_all(dir).expect("model folder");
    std::fs::copy(vocab_dir.join("sample-vocab.txt"), dir.join("vocab.txt")).expect("vocab");
    save_model_dir(&model, &config, dir, None).expect("save the model");
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("finetune.toml");
    std::fs::write(
        &config,
        r#"[finetune]
init_from = "model"
out_dir = "out"
max_seq_length = 32
epochs = 4
learning_rates = [1e-3, 2e-3]
batch_sizes = [16]
seeds = [1, 2]

[finetune.task]
name = "river"
train = "train.tsv"
validation = "dev.tsv"
text_a = "sentence1"
text_b = "sentence2"
labels = ["no", "yes"]
"#,
    )
    .expect("write the config");
    config
}

#[test]
fn a_sweep_reports_every_grid_point_and_exports_the_best_run() {
    let dir = scratch("finetune_sweep");
    write_model(&dir.join("model"));
    write_split(&dir.join("train.tsv"), 320, 1);
    write_split(&dir.join("dev.tsv"), 160, 2);
    let config = write_config(&dir);
    let out = bert(&["finetune", "--config", config.to_str().expect("utf-8")]);
    let all = ok(out);
    assert!(
        all.contains("river") && all.contains("<- best") && all.contains("best run:"),
        "{all}"
    );
    assert!(
        all.contains("run 4/4") && all.contains("epoch 4/4"),
        "progress per epoch: {all}"
    );
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/results.json")).expect("results.json"),
    )
    .expect("JSON");
    assert_eq!(results["runs"].as_array().expect("runs").len(), 4);
    assert_eq!(results["grid"].as_array().expect("grid").len(), 2);
    assert_eq!(results["metric"], "accuracy");
    let best = results["best_run"].as_u64().expect("a best run") as usize;
    let best_score = results["runs"][best]["score"].as_f64().expect("a score");
    assert!(best_score >= 0.9, "the task is learnt: {best_score}");
    for (i, run) in results["runs"].as_array().expect("runs").iter().enumerate() {
        assert!(run["score"].as_f64().expect("score") <= best_score);
        assert_eq!(run["epochs"].as_array().expect("epochs").len(), 4);
        // Each run's log: 20 steps an epoch, then the epoch's scores.
        let log = std::fs::read_to_string(dir.join(format!("out/metrics/run-{:04}.jsonl", i + 1)))
            .expect("the run's metrics log");
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), 4 * 21, "{log}");
        assert_eq!(lines[20]["kind"], "eval");
        assert_eq!(lines[20]["step"], 20);
        assert_eq!(lines[20]["eval"], run["epochs"][0]["eval"]);
        let first = &lines[0];
        assert_eq!(first["kind"], "train");
        assert_eq!(first["step"], 1);
        assert!(first["lr"].as_f64().expect("lr") > 0.0 && first["applied"] == true);
        assert!(first["grad_norm"].as_f64().expect("grad norm") > 0.0);
    }
    // The export loads as the task's classifier and scores what the best run scored.
    let export = dir.join("out/export");
    assert!(
        export.join("vocab.txt").is_file(),
        "the tokenizer travels with the export"
    );
    let (_, task, _, report) =
        load_classifier_dir::<burn::backend::Flex>(&export, None, 0, &Default::default())
            .expect("the export loads");
    assert_eq!(
        task,
        ClassifierTask::Classification {
            labels: vec!["no".into(), "yes".into()]
        }
    );
    assert!(report.initialized.is_empty());
    let again = bert(&[
        "finetune",
        "--config",
        config.to_str().expect("utf-8"),
        "--set",
        "finetune.init_from=\"out/export\"",
        "--set",
        "finetune.epochs=1",
        "--set",
        "finetune.learning_rates=[1e-9]",
        "--set",
        "finetune.seeds=[1]",
        "--set",
        "finetune.out_dir=\"again\"",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(assert_ok(&again).trim()).expect("--json");
    let rescored = json["runs"][0]["score"].as_f64().expect("score");
    assert!(
        (rescored - best_score).abs() < 0.02,
        "{rescored} against {best_score}"
    );
}

#[test]
fn the_random_initialisation_baseline_and_bad_task_files() {
    let dir = scratch("finetune_baseline");
    write_model(&dir.join("model"));
    write_split(&dir.join("train.tsv"), 64, 1);
    write_split(&dir.join("dev.tsv"), 32, 2);
    let config = write_config(&dir);
    let config = config.to_str().expect("utf-8");
    let out = bert(&[
        "finetune",
        "--config",
        config,
        "--set",
        "finetune.random_init=true",
        "--set",
        "finetune.epochs=1",
        "--set",
        "finetune.learning_rates=[1e-3]",
        "--set",
        "finetune.seeds=[1]",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(assert_ok(&out).trim()).expect("--json");
    assert_eq!(json["random_init"], true);
    // A label outside the declared set, named with its file and line.
    let text = std::fs::read_to_string(dir.join("train.tsv")).expect("read");
    std::fs::write(
        dir.join("train.tsv"),
        format!("{text}64\ta b\tc d\tmaybe\n"),
    )
    .expect("write");
    let out = bert(&["finetune", "--config", config]);
    let train = dir.join("train.tsv");
    assert_user_error(
        &out,
        &[&format!("{}:66:", train.display()), "\"maybe\"", "no, yes"],
    );
    // A missing column.
    let out = bert(&[
        "finetune",
        "--config",
        config,
        "--set",
        "finetune.task.text_b=\"question\"",
    ]);
    assert_user_error(&out, &["question", "sentence1, sentence2"]);
    // A key that does not exist, and a metric the task does not report.
    let out = bert(&[
        "finetune",
        "--config",
        config,
        "--set",
        "finetune.learning_rate=1e-3",
    ]);
    assert_user_error(&out, &["learning_rate"]);
    let out = bert(&[
        "finetune",
        "--config",
        config,
        "--set",
        "finetune.metric=\"pearson\"",
    ]);
    assert_user_error(&out, &["finetune.metric", "accuracy, f1, matthews"]);
    // A precision that does not exist.
    let out = bert(&[
        "finetune",
        "--config",
        config,
        "--set",
        "finetune.precision=\"fp8\"",
    ]);
    assert_user_error(&out, &["fp8"]);
}

/// The newest checkpoint of a sweep as (run, step), from its folder name
/// (`run-0001-step-00000005`), or `None` before the first.
fn newest_checkpoint(out: &Path) -> Option<(u64, u64)> {
    std::fs::read_dir(out.join("checkpoints"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (run, step) = name.strip_prefix("run-")?.split_once("-step-")?;
            Some((run.parse().ok()?, step.parse().ok()?))
        })
        .max()
}

/// The sweep's progress as a number that grows with every checkpoint and finished run.
fn position(out: &Path) -> u64 {
    let finished = std::fs::read_to_string(out.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["runs"].as_array().map(|r| r.len() as u64))
        .unwrap_or(0);
    let (run, step) = newest_checkpoint(out).unwrap_or((0, 0));
    (finished * 1000).max(run * 1000 + step)
}

/// Kills `bert finetune` with SIGKILL at arbitrary moments (a checkpoint after every step, so
/// often while one is being written or the export replaced), resumes each time, and compares the
/// results and the exported model with an uninterrupted sweep's: they are the same, bit for bit.
/// Without `--resume`, the folder of a stopped sweep is refused rather than overwritten.
#[test]
#[cfg(unix)]
fn sigkill_at_any_moment_then_resume_gives_the_same_results_and_export() {
    kill_and_resume("finetune_kill", &[], 4);
}

/// The same with three data-parallel replicas (`finetune.devices`): rank 0 writes the
/// checkpoints, every rank continues from them, and the result is the uninterrupted
/// three-replica sweep's, bit for bit.
#[test]
#[cfg(unix)]
fn sigkill_then_resume_of_a_data_parallel_sweep_gives_the_same_results_and_export() {
    kill_and_resume(
        "finetune_kill_replicas",
        &["--set", "finetune.devices=[\"cpu\", \"cpu\", \"cpu\"]"],
        2,
    );
}

#[cfg(unix)]
fn kill_and_resume(name: &str, extra: &[&str], max_kills: usize) {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = scratch(name);
    write_model(&dir.join("model"));
    write_split(&dir.join("train.tsv"), 80, 3);
    write_split(&dir.join("dev.tsv"), 40, 4);
    let config = write_config(&dir);
    let config = config.to_str().expect("utf-8");
    let args = |out: &str| -> Vec<String> {
        [
            "finetune",
            "--config",
            config,
            "--set",
            "finetune.epochs=2",
            "--set",
            "finetune.checkpoint_every=1",
            "--set",
            "finetune.seeds=[1]",
            "--set",
            &format!("finetune.out_dir=\"{out}\""),
            "--json",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let run = |args: &[String]| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        bert(&refs)
    };
    let straight: serde_json::Value =
        serde_json::from_str(assert_ok(&run(&args("straight"))).trim()).expect("--json");

    let killed = dir.join("killed");
    let mut rng = Rng::new(7);
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    let last = loop {
        assert!(
            Instant::now() < deadline,
            "the kill/resume loop did not finish"
        );
        let mut a = args("killed");
        if killed.exists() {
            a.push("--resume".into());
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_bert"))
            .args(&a)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("runs the bert binary");
        if kills < max_kills {
            // 80 examples in batches of 16: 5 steps an epoch, 10 a run, 2 runs.
            let target = position(&killed) + 1 + rng.below(4);
            while child.try_wait().expect("wait").is_none() && position(&killed) < target {
                std::thread::sleep(Duration::from_millis(1));
            }
            if child.try_wait().expect("wait").is_none() {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaped");
                kills += 1;
                if kills == 1 {
                    let refused = run(&args("killed"));
                    assert_user_error(&refused, &["--resume", "killed"]);
                }
                continue;
            }
        }
        let out = child.wait_with_output().expect("finishes");
        break serde_json::from_str::<serde_json::Value>(assert_ok(&out).trim()).expect("--json");
    };
    eprintln!("killed the sweep {kills} times before letting it finish");
    assert!(
        kills >= 1,
        "the sweep finished before any kill; make it longer"
    );
    for key in ["runs", "grid", "best_point", "best_run", "metric", "inputs"] {
        assert_eq!(last[key], straight[key], "`{key}` after {kills} kills");
    }
    let weights =
        |out: &str| std::fs::read(dir.join(out).join("export/model.safetensors")).expect("export");
    assert!(
        weights("killed") == weights("straight"),
        "the exported weights differ"
    );
    // The runs' logs hold each step once, as the uninterrupted sweep logged it.
    for run in ["run-0001.jsonl", "run-0002.jsonl"] {
        let log = |out: &str| {
            std::fs::read_to_string(dir.join(out).join("metrics").join(run)).expect("a log")
        };
        assert_eq!(log("killed"), log("straight"), "{run} after {kills} kills");
    }
    assert!(
        !killed.join("checkpoints").exists(),
        "a finished sweep leaves no checkpoints"
    );
    // Resuming a finished sweep runs nothing and reports it again; a changed grid is refused.
    let again: serde_json::Value = serde_json::from_str(
        assert_ok(&run(&[args("killed"), vec!["--resume".into()]].concat())).trim(),
    )
    .expect("--json");
    assert_eq!(again["runs"], straight["runs"]);
    let mut changed = args("killed");
    changed.extend(["--resume", "--set", "finetune.learning_rates=[5e-4, 2e-3]"].map(String::from));
    assert_user_error(&run(&changed), &["cannot resume", "run 1"]);
}

/// The per-epoch training losses and evaluation scores of a `--json` report's only run.
fn epoch_scores(report: &serde_json::Value) -> Vec<(f64, f64, f64)> {
    report["runs"][0]["epochs"]
        .as_array()
        .expect("epochs")
        .iter()
        .map(|e| {
            (
                e["train_loss"].as_f64().expect("train loss"),
                e["eval"]["loss"].as_f64().expect("eval loss"),
                e["eval"]["accuracy"].as_f64().expect("accuracy"),
            )
        })
        .collect()
}

#[test]
fn data_parallel_fine_tuning_on_three_replicas_gives_the_one_device_run() {
    let dir = scratch("finetune_data_parallel");
    write_model(&dir.join("model"));
    // Without dropout the split of a batch between replicas is the only difference, so the
    // runs must agree to rounding.
    let config_json = dir.join("model/config.json");
    let mut model_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_json).expect("config.json"))
            .expect("JSON");
    model_config["hidden_dropout_prob"] = 0.0.into();
    model_config["attention_probs_dropout_prob"] = 0.0.into();
    std::fs::write(&config_json, model_config.to_string()).expect("write config.json");
    // 322 examples in batches of 16 end with a batch of 2: one of the three replicas then has
    // nothing to do and still takes part in the step.
    write_split(&dir.join("train.tsv"), 322, 1);
    write_split(&dir.join("dev.tsv"), 161, 2);
    let config = write_config(&dir);
    let sweep = |extra: &[&str]| -> (serde_json::Value, String) {
        let mut args = vec![
            "finetune",
            "--config",
            config.to_str().expect("utf-8"),
            "--json",
            "--set",
            "finetune.epochs=4",
            "--set",
            "finetune.learning_rates=[2e-3]",
            "--set",
            "finetune.seeds=[3]",
            "--set",
            "finetune.classifier_dropout=0.0",
            "--set",
            "finetune.checkpoint_every=7",
        ];
        args.extend_from_slice(extra);
        let out = bert(&args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "failed: {stderr}");
        (serde_json::from_str(stdout.trim()).expect("--json"), stderr)
    };
    let (one, _) = sweep(&[]);
    let (three, log) = sweep(&[
        "--devices",
        "cpu,cpu,cpu",
        "--set",
        "finetune.out_dir=\"out3\"",
    ]);
    assert!(log.contains("data parallel: 3 replicas"), "{log}");
    let (a, b) = (epoch_scores(&one), epoch_scores(&three));
    assert_eq!(a.len(), 4);
    assert_eq!(b.len(), 4);
    for (epoch, (x, y)) in a.iter().zip(&b).enumerate() {
        let close = |p: f64, q: f64| (p - q).abs() <= 1e-4 * p.abs().max(1.0);
        assert!(
            close(x.0, y.0) && close(x.1, y.1),
            "epoch {}: losses on one device {x:?}, on three {y:?}",
            epoch + 1
        );
        assert!(
            (x.2 - y.2).abs() <= 1.0 / 161.0 + 1e-9,
            "epoch {}: accuracy {} against {}",
            epoch + 1,
            x.2,
            y.2
        );
    }
    assert!(a[3].2 >= 0.8, "the task is learnt: {a:?}");
    // The exports hold the same weights to rounding.
    let weights = |out: &str| read_safetensors(&dir.join(out).join("export/model.safetensors"));
    for ((name, x), (other, y)) in weights("out").iter().zip(&weights("out3")) {
        assert_eq!(name, other);
        let worst = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{name}: weights differ by {worst}");
    }
}

/// Starts process `rank` of a two-process `bert finetune` on loopback.
#[cfg(unix)]
fn spawn_process(args: &[String], port: u16, rank: usize) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(args)
        .args(["--world-size", "2", "--rank", &rank.to_string()])
        .args(["--coordinator", &format!("127.0.0.1:{port}")])
        .args(["--log", "warn"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs the bert binary")
}

/// A finished process's success and its standard output, then standard error.
#[cfg(unix)]
fn outcome(child: std::process::Child) -> (bool, String, String) {
    let out = child.wait_with_output().expect("finishes");
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

/// Two `bert finetune` processes on loopback, one replica each (torchrun-style flags), give the
/// sweep of one process with two replicas, bit for bit, and both print it; process 0 alone
/// writes. A killed process stops the other within `finetune.timeout_s` with an error naming
/// its rank, and `--resume` on two processes then finishes with the uninterrupted results.
#[test]
#[cfg(unix)]
fn two_processes_fine_tune_like_two_replicas_and_survive_a_killed_process() {
    use std::time::{Duration, Instant};
    let dir = scratch("finetune_two_processes");
    write_model(&dir.join("model"));
    write_split(&dir.join("train.tsv"), 160, 5);
    write_split(&dir.join("dev.tsv"), 80, 6);
    let config = write_config(&dir);
    let args = |out: &str, extra: &[&str]| -> Vec<String> {
        [
            "finetune",
            "--config",
            config.to_str().expect("utf-8"),
            "--json",
            "--set",
            "finetune.epochs=2",
            "--set",
            "finetune.seeds=[1]",
            "--set",
            "finetune.checkpoint_every=2",
            "--set",
            &format!("finetune.out_dir=\"{out}\""),
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let json = |stdout: &str| -> serde_json::Value {
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("--json prints the report ({e}): {stdout}"))
    };
    let local_args = args("local", &["--devices", "cpu,cpu"]);
    let local_refs: Vec<&str> = local_args.iter().map(String::as_str).collect();
    let local = json(&assert_ok(&bert(&local_refs)));
    let same = |report: &serde_json::Value, what: &str| {
        for key in ["runs", "grid", "best_point", "best_run", "metric", "inputs"] {
            assert_eq!(report[key], local[key], "{what}: `{key}`");
        }
    };
    let weights =
        |out: &str| std::fs::read(dir.join(out).join("export/model.safetensors")).expect("export");

    let port = crate::train_cli::free_ports();
    let p0 = spawn_process(&args("procs", &[]), port, 0);
    let p1 = spawn_process(&args("procs", &[]), port, 1);
    let (ok1, out1, err1) = outcome(p1);
    let (ok0, out0, err0) = outcome(p0);
    assert!(ok0 && ok1, "process 0:\n{err0}\nprocess 1:\n{err1}");
    same(&json(&out0), "process 0");
    same(&json(&out1), "process 1");
    assert!(
        weights("procs") == weights("local"),
        "the exported weights differ"
    );

    // Kill process 1 once a checkpoint is written; process 0 must stop on its own, quickly.
    let timeout = ["--set", "finetune.timeout_s=5"];
    let killed_args = args("killed", &timeout);
    let port = crate::train_cli::free_ports();
    let p0 = spawn_process(&killed_args, port, 0);
    let mut p1 = spawn_process(&killed_args, port, 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    while position(&dir.join("killed")) == 0 {
        assert!(
            Instant::now() < deadline,
            "the two processes never got going"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    p1.kill().expect("SIGKILL");
    p1.wait().expect("reaped");
    let killed_at = Instant::now();
    let (ok0, _, err0) = outcome(p0);
    let stopped_after = killed_at.elapsed();
    assert!(!ok0, "process 0 carried on without process 1");
    assert!(err0.contains("of 2"), "the error names the rank: {err0}");
    assert!(
        stopped_after < Duration::from_secs(60),
        "process 0 took {stopped_after:?} to stop"
    );
    let mut resume = killed_args.clone();
    resume.push("--resume".into());
    let port = crate::train_cli::free_ports();
    let p0 = spawn_process(&resume, port, 0);
    let p1 = spawn_process(&resume, port, 1);
    let (ok1, _, err1) = outcome(p1);
    let (ok0, out0, err0) = outcome(p0);
    assert!(ok0 && ok1, "process 0:\n{err0}\nprocess 1:\n{err1}");
    same(&json(&out0), "resumed");
    assert!(
        weights("killed") == weights("local"),
        "the resumed sweep's export differs"
    );
}
