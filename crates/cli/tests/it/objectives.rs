//! The recipes after BERT through the `bert` binary, on the bundled sample: `mlm` (RoBERTa:
//! packed single segments, no NSP head, a `BertForMaskedLM` export, one token type) and
//! `mlm_sop` (ALBERT: sentence order), each prepared, inspected, trained, resumed, evaluated,
//! exported and imported again; and the refusals that stop a pair objective on a model of one
//! token type instead of a panic inside Burn.

use std::path::{Path, PathBuf};

use crate::support::{self, assert_user_error, bert, ok, read_safetensors};
use crate::train_cli::{small_model, write_config_with_model};

/// The bundled sample corpus.
fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sample")
}

/// A small vocabulary trained on the sample, once per scratch folder.
fn vocab(dir: &Path) -> PathBuf {
    let out = dir.join("vocab");
    if !out.join("vocab.txt").exists() {
        ok(bert(&[
            "tokenizer",
            "train",
            "--input",
            sample().to_str().unwrap(),
            "--vocab-size",
            "400",
            "--out",
            out.to_str().unwrap(),
        ]));
    }
    out.join("vocab.txt")
}

/// Prepares the sample for `objective` (`extra` flags appended) into `dir/name`.
fn prepare(dir: &Path, name: &str, objective: &str, extra: &[&str]) -> PathBuf {
    let vocab = vocab(dir);
    let out = dir.join(name);
    let corpus = sample();
    let mut args = vec![
        "prepare",
        "--input",
        corpus.to_str().unwrap(),
        "--vocab",
        vocab.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--objective",
        objective,
        "--max-seq-length",
        "48",
        "--validation-fraction",
        "0.1",
        "--seed",
        "5",
    ];
    if !extra.contains(&"--masking") {
        args.extend(["--masking", "dynamic"]);
    }
    args.extend_from_slice(extra);
    ok(bert(&args));
    out
}

/// A run config over `shards` into `dir/run` with `model` as its `[model]` table.
fn config(dir: &Path, shards: &Path, run: &str, model: &str, steps: u64) -> PathBuf {
    write_config_with_model(dir, shards, &dir.join(run), steps, 4, model)
}

/// Every JSON line of a run's `metrics.jsonl` of `kind`.
fn records(run: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == kind)
        .collect()
}

fn architecture(folder: &Path) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap())
            .unwrap();
    json["architectures"][0].as_str().unwrap().to_string()
}

fn tensor_names(folder: &Path) -> Vec<String> {
    read_safetensors(&folder.join("model.safetensors"))
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn mlm_trains_without_nsp_exports_a_masked_lm_and_continues_from_it() {
    let tmp = support::scratch("objective-mlm");
    let dir = tmp.path();
    let shards = prepare(dir, "mlm", "mlm", &[]);
    let inspect = ok(bert(&[
        "inspect",
        shards.to_str().unwrap(),
        "--batch-size",
        "8",
    ]));
    assert!(
        inspect.contains("objective mlm (full_sentences)"),
        "{inspect}"
    );
    assert!(
        inspect.contains("fill rate") && !inspect.contains("NSP IsNext"),
        "{inspect}"
    );
    // RoBERTa's one-row token-type table.
    let cfg = config(dir, &shards, "run", &small_model("type_vocab_size = 1"), 8);
    let out = ok(bert(&["train", "--config", cfg.to_str().unwrap()]));
    assert!(!out.contains("NSP") && !out.contains("nsp_"), "{out}");
    assert!(
        out.contains("fill=") && out.contains("MLM accuracy"),
        "{out}"
    );
    let run = dir.join("run");
    let steps = records(&run, "train");
    assert_eq!(steps.len(), 8);
    for s in &steps {
        for key in ["nsp_loss", "nsp_accuracy", "sop_loss", "sop_accuracy"] {
            assert!(s.get(key).is_none(), "{key} in an mlm step: {s}");
        }
        let fill = s["fill_rate"].as_f64().unwrap();
        assert!(fill > 0.0 && fill <= 1.0, "{s}");
        assert_eq!(
            s["loss"], s["mlm_loss"],
            "the loss is the MLM loss alone: {s}"
        );
    }
    let evals = records(&run, "eval");
    assert!(!evals.is_empty() && evals.iter().all(|e| e.get("nsp_loss").is_none()));
    // The export is a BertForMaskedLM: no pooler, no NSP head, one token type.
    let export = run.join("export");
    assert_eq!(architecture(&export), "BertForMaskedLM");
    let names = tensor_names(&export);
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("bert.pooler") && !n.starts_with("cls.seq_relationship")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "cls.predictions.bias"));
    // So is an export of its checkpoint; the checkpoint itself keeps every tensor for resume.
    let ckpt = run.join("checkpoints/step-00000008");
    let again = dir.join("again");
    ok(bert(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]));
    assert_eq!(architecture(&again), "BertForMaskedLM");
    assert_eq!(tensor_names(&again), names);
    // `bert eval` reports MLM only.
    let eval = ok(bert(&[
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data",
        shards.join("validation").to_str().unwrap(),
    ]));
    assert!(
        eval.contains("MLM accuracy") && !eval.contains("NSP"),
        "{eval}"
    );
    // Resume extends the run; fill-mask works on the export.
    let out = ok(bert(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--resume",
        "--steps",
        "10",
    ]));
    assert!(out.contains("trained 10 steps (2 in this run)"), "{out}");
    ok(bert(&[
        "fill-mask",
        "--model",
        export.to_str().unwrap(),
        "the [MASK] was long .",
    ]));
    // Continued pre-training from the MaskedLM export (its pooler and NSP head are absent and
    // freshly initialised; an mlm run never uses them).
    let model = format!("init_from = \"{}\"", export.display());
    let cont = config(dir, &shards, "continued", &model, 4);
    let out = ok(bert(&["train", "--config", cont.to_str().unwrap()]));
    assert!(out.contains("trained 4 steps"), "{out}");
    assert_eq!(
        architecture(&dir.join("continued/export")),
        "BertForMaskedLM"
    );
    // The same one-token-type model on BERT's pair shards is refused, naming the fix, both as
    // `[model]` values and through `init_from`, instead of panicking inside Burn.
    let pairs = prepare(dir, "pairs", "mlm_nsp", &[]);
    for (name, model) in [
        ("one-type", small_model("type_vocab_size = 1")),
        ("one-type-init", model.clone()),
    ] {
        let cfg = config(dir, &pairs, name, &model, 4);
        assert_user_error(
            &bert(&["train", "--config", cfg.to_str().unwrap()]),
            &["type_vocab_size", "mlm_nsp", "objective = \"mlm\""],
        );
    }
}

#[test]
fn doc_sentences_and_sop_train_end_to_end_with_their_own_metrics() {
    let tmp = support::scratch("objective-sop");
    let dir = tmp.path();
    let doc = prepare(
        dir,
        "doc",
        "mlm",
        &[
            "--mlm-format",
            "doc_sentences",
            "--masking",
            "static",
            "--dupe-factor",
            "2",
        ],
    );
    let inspect = ok(bert(&["inspect", doc.to_str().unwrap()]));
    assert!(
        inspect.contains("objective mlm (doc_sentences)"),
        "{inspect}"
    );
    let cfg = config(dir, &doc, "doc-run", &small_model(""), 4);
    ok(bert(&["train", "--config", cfg.to_str().unwrap()]));
    assert_eq!(architecture(&dir.join("doc-run/export")), "BertForMaskedLM");

    let sop = prepare(dir, "sop", "mlm_sop", &[]);
    let inspect = ok(bert(&["inspect", sop.to_str().unwrap()]));
    assert!(
        inspect.contains("objective mlm_sop") && inspect.contains("SOP swapped"),
        "{inspect}"
    );
    let cfg = config(dir, &sop, "sop-run", &small_model(""), 8);
    let out = ok(bert(&["train", "--config", cfg.to_str().unwrap()]));
    assert!(
        out.contains("SOP accuracy") && !out.contains("NSP"),
        "{out}"
    );
    let run = dir.join("sop-run");
    for s in records(&run, "train") {
        assert!(s["sop_loss"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s.get("nsp_loss").is_none(), "{s}");
    }
    assert!(records(&run, "eval")
        .iter()
        .all(|e| e["sop_accuracy"].is_number()));
    // The SOP classifier is exported in the NSP head's place (0 = in order, 1 = swapped).
    let export = run.join("export");
    assert_eq!(architecture(&export), "BertForPreTraining");
    assert!(tensor_names(&export)
        .iter()
        .any(|n| n == "cls.seq_relationship.weight"));
    // A run of one objective does not resume on shards of another.
    let other = config(dir, &doc, "sop-run", &small_model(""), 10);
    assert_user_error(
        &bert(&["train", "--config", other.to_str().unwrap(), "--resume"]),
        &["objective was mlm_sop and is now mlm"],
    );
}
