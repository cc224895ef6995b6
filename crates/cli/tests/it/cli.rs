//! The `bert` binary as users run it: outputs on success, one clear error and no panic on failure.

use crate::support;

use std::path::Path;
use std::process::Command;

use crate::support::{assert_user_error, bert, fixture, read_f32, stderr};

fn flatten(v: &serde_json::Value) -> Vec<f32> {
    match v {
        serde_json::Value::Array(items) => items.iter().flat_map(flatten).collect(),
        serde_json::Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn forward_matches_huggingface_outputs() {
    let tmp = support::scratch("forward");
    let dir = tmp.path().to_path_buf();
    let fx = fixture("pretraining_v5");
    let out_path = dir.join("out.json");
    let out = bert(&[
        "forward",
        "--model",
        fx.to_str().unwrap(),
        "--inputs",
        fx.join("inputs.json").to_str().unwrap(),
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    for key in [
        "prediction_logits",
        "seq_relationship_logits",
        "last_hidden_state",
        "pooler_output",
    ] {
        let ours = flatten(&got[key]);
        let theirs = read_f32(&fx.join("expected.safetensors"), key);
        assert_eq!(ours.len(), theirs.len(), "{key}");
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-4, "{key}: max diff {worst}");
    }
}

#[test]
fn import_export_round_trip_through_the_cli() {
    let tmp = support::scratch("roundtrip");
    let dir = tmp.path().to_path_buf();
    let ckpt = dir.join("ckpt");
    let hf = dir.join("hf");
    let fx = fixture("base_model_v5");
    let out = bert(&[
        "import",
        "--hf",
        fx.to_str().unwrap(),
        "--out",
        ckpt.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("freshly initialised"),
        "user is told the heads are new: {}",
        stderr(&out)
    );
    let out = bert(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        hf.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a = read_f32(
        &fx.join("model.safetensors"),
        "encoder.layer.1.output.dense.weight",
    );
    let b = read_f32(
        &hf.join("model.safetensors"),
        "bert.encoder.layer.1.output.dense.weight",
    );
    assert_eq!(a, b);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(hf.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForPreTraining");
    assert_eq!(config["model_type"], "bert");
}

#[test]
fn user_errors_are_reported_without_panics() {
    let tmp = support::scratch("errors");
    let dir = tmp.path().to_path_buf();
    let fx = fixture("pretraining_v5");
    let fx_s = fx.to_str().unwrap();
    let out_s = dir.join("o.json");
    let out_s = out_s.to_str().unwrap();

    let missing = dir.join("nope");
    let out = bert(&[
        "forward",
        "--model",
        missing.to_str().unwrap(),
        "--inputs",
        "x.json",
        "--out",
        out_s,
    ]);
    assert_user_error(&out, &["x.json"]);

    let inputs = fx.join("inputs.json");
    let out = bert(&[
        "forward",
        "--model",
        missing.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--out",
        out_s,
    ]);
    assert_user_error(&out, &["nope", "not a model folder"]);

    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"input_ids\": [[1, 2], [3]]}").unwrap();
    let out = bert(&[
        "forward",
        "--model",
        fx_s,
        "--inputs",
        bad.to_str().unwrap(),
        "--out",
        out_s,
    ]);
    assert_user_error(&out, &["bad.json", "row 1"]);

    std::fs::write(&bad, "{\"input_ids\": [[1, 2, 500]]}").unwrap();
    let out = bert(&[
        "forward",
        "--model",
        fx_s,
        "--inputs",
        bad.to_str().unwrap(),
        "--out",
        out_s,
    ]);
    assert_user_error(&out, &["input_ids`[0][2] is 500", "0..99"]);

    std::fs::write(&bad, "[1, 2").unwrap();
    let out = bert(&[
        "forward",
        "--model",
        fx_s,
        "--inputs",
        bad.to_str().unwrap(),
        "--out",
        out_s,
    ]);
    assert_user_error(&out, &["bad.json", "not a valid input batch"]);

    let out = bert(&[
        "forward",
        "--model",
        fx_s,
        "--inputs",
        inputs.to_str().unwrap(),
        "--out",
        out_s,
        "--device",
        "tpu",
    ]);
    assert_user_error(&out, &["unknown device `tpu`"]);

    if !cfg!(feature = "cuda") {
        let out = bert(&[
            "forward",
            "--model",
            fx_s,
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out_s,
            "--device",
            "cuda:1",
        ]);
        assert_user_error(&out, &["--features cuda"]);
    }

    // Unwritable output: a directory where the file should go.
    let out = bert(&[
        "forward",
        "--model",
        fx_s,
        "--inputs",
        inputs.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_user_error(&out, &[dir.to_str().unwrap()]);
}

#[test]
fn train_config_errors_are_reported_without_panics() {
    let tmp = support::scratch("train-errors");
    let dir = tmp.path().to_path_buf();
    let cfg = dir.join("run.toml");
    let cfg_s = cfg.to_str().unwrap();

    // Missing config file.
    let out = bert(&["train", "--config", dir.join("nope.toml").to_str().unwrap()]);
    assert_user_error(&out, &["nope.toml"]);

    // Not TOML.
    std::fs::write(&cfg, "seed = [").unwrap();
    let out = bert(&["train", "--config", cfg_s]);
    assert_user_error(&out, &["run.toml"]);

    // Unknown key, named.
    let base = "out_dir = \"run\"\n[model]\npreset = \"tiny\"\n[data]\ntrain = \"shards/train\"\nbatch_size = 4\n[train]\nsteps = 10\n";
    std::fs::write(&cfg, format!("{base}lerning_rate = 1\n")).unwrap();
    let out = bert(&["train", "--config", cfg_s]);
    assert_user_error(&out, &["lerning_rate"]);

    // Impossible value, named.
    std::fs::write(&cfg, base.replace("batch_size = 4", "batch_size = 0")).unwrap();
    let out = bert(&["train", "--config", cfg_s]);
    assert_user_error(&out, &["data.batch_size"]);

    // Bad --set and bad device.
    std::fs::write(&cfg, base).unwrap();
    let out = bert(&["train", "--config", cfg_s, "--set", "novalue"]);
    assert_user_error(&out, &["key=value"]);
    let out = bert(&["train", "--config", cfg_s, "--set", "device=\"tpu\""]);
    assert_user_error(&out, &["device", "tpu"]);

    // Shards missing.
    let out = bert(&["train", "--config", cfg_s]);
    assert_user_error(&out, &["shards/train"]);

    // Output under a regular file: cannot create the run directory.
    let blocker = dir.join("file");
    std::fs::write(&blocker, "x").unwrap();
    let out = bert(&[
        "export",
        "--checkpoint",
        fixture("pretraining_v5").to_str().unwrap(),
        "--out",
        blocker.join("sub").to_str().unwrap(),
    ]);
    assert_user_error(&out, &["file/sub"]);
}

#[test]
fn plot_and_eval_errors_are_reported_without_panics() {
    let tmp = support::scratch("plot-errors");
    let dir = tmp.path().to_path_buf();
    let out = bert(&["plot", dir.to_str().unwrap()]);
    assert_user_error(&out, &["metrics.jsonl"]);
    let out = bert(&[
        "eval",
        "--checkpoint",
        fixture("pretraining_v5").to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
    ]);
    assert_user_error(&out, &[dir.to_str().unwrap()]);
    let out = bert(&[
        "fill-mask",
        "--model",
        fixture("pretraining_v5").to_str().unwrap(),
        "the [MASK] sat",
    ]);
    assert_user_error(&out, &["tokenizer.json or vocab.txt"]);
}

/// A device the binary was not built with is named with the feature that adds it; an unknown
/// device lists the valid ones. (Tests build the default binary: CPU only.) Numbers of
/// `bench` and `fill-mask` that make no sense are refused the same way, before any work.
#[test]
fn devices_missing_from_the_build_say_how_to_get_them() {
    for (device, feature) in [
        ("wgpu", "wgpu"),
        ("cuda", "cuda"),
        ("cuda-fusion", "cuda-fusion"),
        ("ndarray", "ndarray"),
    ] {
        if cfg!(feature = "wgpu") || cfg!(feature = "cuda") || cfg!(feature = "ndarray") {
            return;
        }
        let out = bert(&[
            "bench", "--preset", "tiny", "--steps", "1", "--device", device,
        ]);
        assert_user_error(
            &out,
            &[
                "not built into this binary",
                &format!("--features {feature}"),
            ],
        );
    }
    let out = bert(&["bench", "--device", "tpu"]);
    assert_user_error(&out, &["unknown device `tpu`", "cpu, wgpu, cuda"]);
    let out = bert(&["bench", "--peak-tflops", "0"]);
    assert_user_error(&out, &["--peak-tflops must be a positive number"]);
    let out = bert(&[
        "fill-mask",
        "--model",
        fixture("pretraining_v5").to_str().unwrap(),
        "--top-k",
        "0",
        "a [MASK] .",
    ]);
    assert_user_error(&out, &["--top-k must be at least 1"]);
}

/// Data-parallel arguments are checked before any work, each error saying what is missing.
#[test]
fn data_parallel_arguments_are_checked_before_any_work() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quickstart.toml");
    let config = config.to_str().unwrap();
    let train = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bert"))
            .args(["train", "--config", config])
            .args(extra)
            .env_remove("WORLD_SIZE")
            .env_remove("RANK")
            .env_remove("MASTER_ADDR")
            .env_remove("MASTER_PORT")
            .output()
            .expect("runs the bert binary")
    };
    assert_user_error(
        &train(&["--devices", "cpu,cuda:0"]),
        &["distributed.devices", "different backends"],
    );
    assert_user_error(&train(&["--world-size", "2"]), &["needs --rank"]);
    assert_user_error(
        &train(&["--world-size", "2", "--rank", "0"]),
        &["needs --coordinator", "MASTER_ADDR"],
    );
    assert_user_error(
        &train(&[
            "--world-size",
            "2",
            "--rank",
            "2",
            "--coordinator",
            "127.0.0.1:1",
        ]),
        &["--rank 2 must be below --world-size 2"],
    );
}

/// `--precision` takes fp32, bf16 or fp16; bf16 runs on the CPU backend (f32 accumulation).
#[test]
fn bench_precision_is_validated_and_bf16_runs_on_the_cpu() {
    let out = bert(&["bench", "--preset", "tiny", "--precision", "bfloat16"]);
    assert_user_error(&out, &["bfloat16", "fp32, bf16 or fp16"]);
    let out = bert(&[
        "bench",
        "--preset",
        "tiny",
        "--seq",
        "16",
        "--batch",
        "2",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--precision",
        "bf16",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["precision"], "bf16");
    assert!(report["losses"][0].as_f64().unwrap().is_finite());
    assert!(report["first_step_s"].as_f64().unwrap() > 0.0);
}

/// An unknown key in any table of a run config, `[tokenizer]` and `[prepare]` included, stops
/// `bert train` before any work with one line naming the file, the table and the key.
#[test]
fn unknown_keys_in_a_run_config_name_file_table_and_key() {
    let tmp = support::scratch("unknown-keys");
    let config = tmp.path().join("run.toml");
    let base = "out_dir = \"run\"\n[model]\npreset = \"tiny\"\n[data]\ntrain = \"data/train\"\n\
                batch_size = 2\n[train]\nsteps = 1\n";
    for (table, text) in [
        (
            "[tokenizer]",
            "[tokenizer]\ninputs = [\"corpus\"]\nout = \"tok\"\nlowercas = true\n",
        ),
        (
            "[prepare]",
            "[prepare]\ninputs = [\"corpus\"]\nvocab = \"tok/vocab.txt\"\nlowercas = true\n",
        ),
        ("[train]", "[checkpoint]\nkeep = 1\n"),
    ] {
        let text = if table == "[train]" {
            format!(
                "{}{text}",
                base.replace("steps = 1", "steps = 1\nlowercas = true")
            )
        } else {
            format!("{base}{text}")
        };
        std::fs::write(&config, text).unwrap();
        let out = bert(&["train", "--config", config.to_str().unwrap()]);
        assert_user_error(&out, &[config.to_str().unwrap(), table, "lowercas"]);
        assert!(!tmp.path().join("run").exists(), "no work done");
    }
}
