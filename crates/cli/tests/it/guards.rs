//! What stops an operator from losing work or training on nonsense, through the `bert` binary:
//! one writer per run folder and per prepare output, inputs that are not text, empty results,
//! checkpoints missing a tensor, temp files of killed writes, and errors that name their cause.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bert_fsutil::FolderLock;

use crate::support::{self, assert_user_error, bert, ok, stderr};
use crate::train_cli::{losses, prepare, write_config, write_corpus};

/// Starts `bert` with `args` in the background.
fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `child` holds every lock in `lock_files`, then stops it with SIGSTOP, so a
/// second command meets folders that are certainly in use. A `bert train` takes the run
/// folder's lock before it prepares and opens its shards, and their shared lock only then:
/// pausing it at the first would leave the shards unguarded.
#[cfg(unix)]
fn stop_once_locked(child: &mut Child, lock_files: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "{lock_files:?} never all locked");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first command ended before it could be paused; make it longer"
        );
        if lock_files.iter().all(|f| holds_lock(child.id(), f)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(child, "STOP");
}

/// Whether process `pid` holds a `flock` on `lock_file`, shared or exclusive, as the kernel's
/// lock table (`/proc/locks`: `1: FLOCK ADVISORY READ 1234 fe:00:5308877 0 EOF`) says.
#[cfg(target_os = "linux")]
fn holds_lock(pid: u32, lock_file: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(inode) = std::fs::metadata(lock_file).map(|m| m.ino()) else {
        return false;
    };
    let table = std::fs::read_to_string("/proc/locks").unwrap();
    table.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"FLOCK")
            && fields.get(4) == Some(&pid.to_string().as_str())
            && fields
                .get(5)
                .and_then(|dev_ino| dev_ino.rsplit(':').next())
                .is_some_and(|ino| ino == inode.to_string())
    })
}

/// Elsewhere there is no lock table to read: an exclusive holder is seen by the note it writes
/// into the lock file, and a shared one (which writes none) is assumed once the file exists.
#[cfg(all(unix, not(target_os = "linux")))]
fn holds_lock(pid: u32, lock_file: &Path) -> bool {
    std::fs::read_to_string(lock_file)
        .is_ok_and(|t| t.is_empty() || t.starts_with(&format!("process {pid} ")))
}

#[cfg(unix)]
fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the first command failed:\n{all}");
    all
}

#[test]
#[cfg(unix)]
fn a_second_train_on_a_busy_run_folder_is_refused_and_the_first_finishes_whole() {
    let tmp = support::scratch("busy-run");
    let dir = tmp.path();
    let corpus = write_corpus(dir);
    let shards = prepare(dir, &corpus, "dynamic");
    let run = dir.join("run");
    let steps = 40;
    let config = write_config(dir, &shards, &run, steps, 10);
    let config_s = config.to_str().unwrap();
    let mut first = spawn(&["train", "--config", config_s]);
    stop_once_locked(
        &mut first,
        &[run.join(".lock"), FolderLock::sibling_path(&shards)],
    );
    let second = bert(&["train", "--config", config_s]);
    let third = bert(&["train", "--config", config_s, "--resume"]);
    // Nor may a prepare replace the shards the run reads.
    let vocab = dir.join("vocab/vocab.txt");
    let reprepare = bert(&[
        "prepare",
        "--input",
        corpus.to_str().unwrap(),
        "--vocab",
        vocab.to_str().unwrap(),
        "--out",
        shards.to_str().unwrap(),
        "--validation-fraction",
        "0.1",
    ]);
    signal(&first, "CONT");
    let pid = first.id().to_string();
    for refused in [&second, &third] {
        assert_user_error(refused, &["is in use by process", &pid, "bert train"]);
    }
    assert_user_error(
        &reprepare,
        &["is in use", "a `bert train` reading these shards"],
    );
    finish(first);
    let steps_logged: Vec<u64> = losses(&run).into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps_logged, (1..=steps).collect::<Vec<_>>());
    let checkpoints: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    assert_eq!(checkpoints.len(), 2, "keep = 2: {checkpoints:?}");
    // Free again once the first has ended: a resume that has nothing left to do runs.
    let out = ok(bert(&["train", "--config", config_s, "--resume"]));
    assert!(
        out.contains(&format!("trained {steps} steps (0 in this run)")),
        "{out}"
    );
}

#[test]
#[cfg(unix)]
fn a_second_prepare_into_a_busy_output_is_refused_and_the_first_finishes_whole() {
    let tmp = support::scratch("busy-prepare");
    let dir = tmp.path();
    let corpus = write_corpus(dir);
    prepare(dir, &corpus, "static");
    let vocab = dir.join("vocab/vocab.txt");
    let out = dir.join("again");
    let args = |seed: &'static str| {
        vec![
            "prepare".to_string(),
            "--input".into(),
            corpus.display().to_string(),
            "--vocab".into(),
            vocab.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--dupe-factor".into(),
            "20".into(),
            "--validation-fraction".into(),
            "0.1".into(),
            "--seed".into(),
            seed.into(),
        ]
    };
    let first_args = args("3");
    let mut first = spawn(&first_args.iter().map(String::as_str).collect::<Vec<_>>());
    stop_once_locked(&mut first, &[dir.join(".again.lock")]);
    let second_args = args("4");
    let second = bert(&second_args.iter().map(String::as_str).collect::<Vec<_>>());
    signal(&first, "CONT");
    assert_user_error(
        &second,
        &["again is in use by process", &first.id().to_string()],
    );
    finish(first);
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["prepare"]["seed"], 3, "{index}");
    ok(bert(&["inspect", out.join("train").to_str().unwrap()]));
}

/// Writes a folder with one text file, a PNG, an executable-like binary and a file of noise.
fn corpus_with_binaries(dir: &Path) -> PathBuf {
    let folder = dir.join("mixed");
    std::fs::create_dir_all(&folder).unwrap();
    let text = write_corpus(dir);
    std::fs::copy(&text, folder.join("a.txt")).unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    png.extend((0..3000u32).map(|i| (i * 31 % 256) as u8));
    std::fs::write(folder.join("figure.png"), png).unwrap();
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.extend((0..3000u32).map(|i| (i * 17 % 256) as u8));
    std::fs::write(folder.join("tool"), elf).unwrap();
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x80)
        .collect();
    std::fs::write(folder.join("noise.txt"), noise).unwrap();
    folder
}

#[test]
fn files_that_are_not_text_are_skipped_by_name_or_refused() {
    let tmp = support::scratch("binaries");
    let dir = tmp.path();
    let corpus = write_corpus(dir);
    prepare(dir, &corpus, "static");
    let folder = corpus_with_binaries(dir);
    let vocab = dir.join("vocab/vocab.txt");
    let base = [
        "prepare",
        "--input",
        folder.to_str().unwrap(),
        "--vocab",
        vocab.to_str().unwrap(),
        "--validation-fraction",
        "0.1",
    ];
    let skipped = dir.join("skipped");
    let mut args = base.to_vec();
    args.extend(["--out", skipped.to_str().unwrap()]);
    let out = bert(&args);
    let all = ok(out);
    for name in ["figure.png", "tool", "noise.txt"] {
        assert!(
            all.contains(&format!("skipping {}", folder.join(name).display())),
            "{name} not named: {all}"
        );
    }
    assert!(all.contains("PNG image"), "{all}");
    assert!(all.contains("3 left out as not text"), "{all}");
    let plain = dir.join("plain");
    ok(bert(&[
        "prepare",
        "--input",
        folder.join("a.txt").to_str().unwrap(),
        "--vocab",
        vocab.to_str().unwrap(),
        "--validation-fraction",
        "0.1",
        "--out",
        plain.to_str().unwrap(),
    ]));
    let index = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("index.json")).unwrap()).unwrap()
    };
    assert_eq!(
        index(&skipped)["report"]["train_instances"],
        index(&plain)["report"]["train_instances"],
        "the binaries added instances"
    );

    let refused = dir.join("refused");
    let mut args = base.to_vec();
    args.extend(["--out", refused.to_str().unwrap(), "--non-text", "error"]);
    let out = bert(&args);
    assert_user_error(&out, &["figure.png", "not a text file", "PNG image"]);
    assert!(
        !refused.exists(),
        "a refused prepare left {}",
        refused.display()
    );
}

#[test]
fn an_empty_corpus_and_an_empty_validation_split_are_errors() {
    let tmp = support::scratch("empty-corpus");
    let dir = tmp.path();
    let corpus = write_corpus(dir);
    prepare(dir, &corpus, "static");
    let vocab = dir.join("vocab/vocab.txt");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let blank = dir.join("blank.txt");
    std::fs::write(&blank, "  \n\n\t\n   \n").unwrap();
    let out_dir = dir.join("out");
    let prep = |input: &Path, fraction: &str| {
        bert(&[
            "prepare",
            "--input",
            input.to_str().unwrap(),
            "--vocab",
            vocab.to_str().unwrap(),
            "--validation-fraction",
            fraction,
            "--out",
            out_dir.to_str().unwrap(),
        ])
    };
    for input in [&empty, &blank] {
        let out = prep(input, "0.1");
        assert_user_error(
            &out,
            &[
                "no train instances",
                input.to_str().unwrap(),
                "hold no text",
            ],
        );
        assert!(!out_dir.exists());
    }
    assert_user_error(&prep(&corpus, "1.0"), &["validation_fraction 1", "below 1"]);
    // 120 documents at one in a million: none for validation.
    assert_user_error(
        &prep(&corpus, "0.000001"),
        &[
            "validation_fraction 0.000001",
            "none of the",
            "set validation_fraction = 0",
        ],
    );
    // No validation split asked: the folder is empty, and a run naming it is refused before
    // it trains rather than evaluated as a loss of 0.
    ok(prep(&corpus, "0"));
    let run = dir.join("run");
    let config = write_config(dir, &out_dir, &run, 4, 2);
    let out = bert(&["train", "--config", config.to_str().unwrap()]);
    assert_user_error(&out, &["`data.validation`", "holds no instances"]);
    assert!(!run.join("metrics.jsonl").exists());
    // `bert eval` on it is an error too.
    let out = bert(&[
        "eval",
        "--checkpoint",
        support::fixture("pretraining_v5").to_str().unwrap(),
        "--data",
        out_dir.join("validation").to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", stderr(&out));
}

/// Rewrites a checkpoint's `model.safetensors` without `drop` and records the new file's size
/// and checksum, as a damaged-but-consistent checkpoint would have them.
fn drop_tensor(checkpoint: &Path, drop: &str) {
    let path = checkpoint.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != drop)
        .collect();
    assert_eq!(kept.len() + 1, st.len(), "{drop} not in {}", path.display());
    let out = safetensors::serialize(kept, &None).unwrap();
    std::fs::write(&path, out).unwrap();
    let state_path = checkpoint.join("trainer_state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["files"]["model.safetensors"] =
        serde_json::to_value(bert_train::FileDigest::of_file(&path).unwrap()).unwrap();
    std::fs::write(&state_path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
}

#[test]
fn a_checkpoint_missing_a_tensor_is_skipped_on_resume_as_damaged() {
    let tmp = support::scratch("missing-tensor");
    let dir = tmp.path();
    let corpus = write_corpus(dir);
    let shards = prepare(dir, &corpus, "dynamic");
    let run = dir.join("run");
    let config = write_config(dir, &shards, &run, 8, 2);
    let config_s = config.to_str().unwrap();
    ok(bert(&["train", "--config", config_s, "--steps", "4"]));
    let newest = run.join("checkpoints/step-00000004");
    drop_tensor(&newest, "cls.seq_relationship.weight");
    // Named directly, it is an error, not a model with a fresh head.
    let out = bert(&[
        "export",
        "--checkpoint",
        newest.to_str().unwrap(),
        "--out",
        dir.join("export").to_str().unwrap(),
    ]);
    assert_user_error(&out, &["step-00000004", "lacks the weights", "damaged"]);
    // On resume it is skipped for the older one.
    let out = ok(bert(&["train", "--config", config_s, "--resume"]));
    assert!(
        out.contains("skipping damaged checkpoint") && out.contains("lacks the weights"),
        "{out}"
    );
    assert!(out.contains("trained 8 steps (6 in this run)"), "{out}");
}

#[test]
#[cfg(unix)]
fn a_killed_exports_temp_file_is_removed_by_the_next_export() {
    let tmp = support::scratch("export-temp");
    let out = tmp.path().join("exported");
    std::fs::create_dir_all(&out).unwrap();
    // A process that has ended: its pid names no running process now.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let leftover = out.join(format!(".model.safetensors.tmp-{}", gone.id()));
    std::fs::write(&leftover, vec![7u8; 4096]).unwrap();
    // A live writer's file is left alone.
    let live = out.join(format!(".model.safetensors.tmp-{}", std::process::id()));
    std::fs::write(&live, b"in progress").unwrap();
    ok(bert(&[
        "export",
        "--checkpoint",
        support::fixture("pretraining_v5").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        !leftover.exists(),
        "the killed export's temp file is still there"
    );
    assert!(live.exists());
    assert!(out.join("model.safetensors").is_file());
}

#[test]
fn a_coordinator_port_in_use_is_named_at_once() {
    let tmp = support::scratch("port-in-use");
    let dir = tmp.path();
    let corpus = write_corpus(dir);
    let shards = prepare(dir, &corpus, "dynamic");
    let config = write_config(dir, &shards, &dir.join("run"), 4, 2);
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = Instant::now();
    let out = bert(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--world-size",
        "2",
        "--rank",
        "0",
        "--coordinator",
        &format!("127.0.0.1:{port}"),
        "--set",
        "distributed.timeout_s=60",
    ]);
    assert_user_error(
        &out,
        &[
            &format!("port {port}"),
            "another program is listening on it",
            "--coordinator",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}: the timeout, not the check",
        started.elapsed()
    );
}

#[test]
fn errors_name_the_real_source() {
    let tmp = support::scratch("error-sources");
    let dir = tmp.path();
    let corpus = write_corpus(dir);
    let shards = prepare(dir, &corpus, "dynamic");
    let run = dir.join("run");
    let config = write_config(dir, &shards, &run, 4, 2);
    let config_s = config.to_str().unwrap();
    // A bad --set value is the command line's, not the file's.
    let out = bert(&["train", "--config", config_s, "--set", "train.steps=many"]);
    assert_user_error(&out, &["`--set train.steps=many`", "train.steps"]);
    assert!(!stderr(&out).contains(config_s), "{}", stderr(&out));
    let out = bert(&["train", "--config", config_s, "--set", "data.batch_size=0"]);
    assert_user_error(&out, &["`--set data.batch_size=0`", "at least 1"]);
    // A model value names the file and the key.
    let out = bert(&[
        "train",
        "--config",
        config_s,
        "--set",
        "model.num_attention_heads=3",
    ]);
    assert_user_error(
        &out,
        &["model.num_attention_heads", "must divide hidden_size"],
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let bad_model = dir.join("bad-model.toml");
    std::fs::write(
        &bad_model,
        text.replace("num_attention_heads = 2", "num_attention_heads = 3"),
    )
    .unwrap();
    let out = bert(&["train", "--config", bad_model.to_str().unwrap()]);
    assert_user_error(
        &out,
        &[bad_model.to_str().unwrap(), "`model.num_attention_heads`"],
    );
    // A refused resume lists the changed keys in the config's words.
    ok(bert(&["train", "--config", config_s]));
    let out = bert(&[
        "train",
        "--config",
        config_s,
        "--resume",
        "--set",
        "model.hidden_size=64",
        "--set",
        "optimizer.weight_decay=0.5",
    ]);
    assert_user_error(
        &out,
        &[
            "`model.hidden_size` was 32 and is now 64",
            "`optimizer.weight_decay` was",
        ],
    );
    assert!(!stderr(&out).contains("ModelSection"), "{}", stderr(&out));
    // An OS error is written once.
    let blocker = dir.join("file");
    std::fs::write(&blocker, "x").unwrap();
    let out = bert(&[
        "export",
        "--checkpoint",
        support::fixture("pretraining_v5").to_str().unwrap(),
        "--out",
        blocker.join("sub").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.matches("(os error").count(), 1, "{err}");
}

#[test]
fn a_prepare_table_is_ignored_for_shards_it_does_not_make() {
    let tmp = support::scratch("other-shards");
    let dir = tmp.path();
    let corpus = write_corpus(dir);
    let shards = prepare(dir, &corpus, "dynamic");
    let run = dir.join("run");
    let config = write_config(dir, &shards, &run, 4, 4);
    // A [prepare] table that makes another folder, with other settings than the shards'.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[prepare]\ninputs = [\"{}\"]\nvocab = \"{}\"\nout = \"{}\"\nmax_seq_length = 32\n",
        corpus.display(),
        dir.join("vocab/vocab.txt").display(),
        dir.join("elsewhere").display()
    ));
    std::fs::write(&config, text).unwrap();
    let out = ok(bert(&["train", "--config", config.to_str().unwrap()]));
    assert!(out.contains("neither run nor checked"), "{out}");
    assert!(!dir.join("elsewhere").exists());
}
