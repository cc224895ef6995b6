//! Data-pipeline benchmark on the shared corpora (skips when they are absent):
//! raw `tokenizers` throughput vs `prepare` throughput on the same text, peak memory for the
//! corpus once and ten times (each measurement in its own process, so VmHWM is its own), and
//! loader throughput with dynamic masking.
//!
//! Run: `cargo bench -p bert-data --bench prepare` (prints a Markdown table).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use bert_data::split_sentences;
use bert_data::{prepare, Cursor, LoaderConfig, MaskingMode, PrepareConfig, ShardSet, TrainLoader};
use bert_data::{CorpusOptions, CorpusReader};
use bert_data::{VocabTxtOptions, WordPieceTokenizer};
use rayon::prelude::*;

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let ok = p.join("corpora/books").is_dir()
        && p.join("corpora/wiki/foldoc.jsonl").is_file()
        && p.join("models/bert-uncased-wordpiece/vocab.txt").is_file();
    ok.then_some(p)
}

/// Peak resident set of this process in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Input folders: the shared corpora `repeat` times, through symlink folders in `scratch`.
fn inputs(shared: &Path, scratch: &Path, repeat: usize) -> Vec<String> {
    let mut out = Vec::new();
    for k in 0..repeat {
        let d = scratch.join(format!("copy{k}"));
        std::fs::create_dir_all(&d).unwrap();
        for (name, target) in [
            ("books", shared.join("corpora/books")),
            ("wiki", shared.join("corpora/wiki")),
        ] {
            let link = d.join(name);
            if !link.exists() {
                std::os::unix::fs::symlink(&target, &link).unwrap();
            }
        }
        out.push(d.display().to_string());
    }
    out
}

fn config(shared: &Path, scratch: &Path, repeat: usize, masking: MaskingMode) -> PrepareConfig {
    PrepareConfig {
        inputs: inputs(shared, scratch, repeat)
            .into_iter()
            .map(Into::into)
            .collect(),
        doc_per_file: true,
        vocab: shared.join("models/bert-uncased-wordpiece/vocab.txt"),
        out: scratch.join(format!("out-{}-{repeat}", masking.as_str())),
        masking,
        dupe_factor: 5,
        // Small enough that the corpus once already fills several shards: peak memory is
        // then at its plateau (pool + one chunk + one shard buffer) in both runs.
        shard_size: 8_192,
        progress: false,
        // BENCH_THREADS=1 measures one core; the output is identical either way.
        threads: std::env::var("BENCH_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        ..PrepareConfig::default()
    }
}

/// Child mode: one measurement, one JSON line on stdout.
fn child(mode: &str, repeat: usize, shared: &Path, scratch: &Path) {
    match mode {
        "tokenize" => {
            let cfg = config(shared, scratch, repeat, MaskingMode::Dynamic);
            let tok =
                WordPieceTokenizer::from_vocab_txt(&cfg.vocab, VocabTxtOptions::default()).unwrap();
            let docs: Vec<Vec<String>> = CorpusReader::open(CorpusOptions {
                inputs: cfg.input_paths().iter().map(|p| p.to_string()).collect(),
                doc_per_file: true,
                ..Default::default()
            })
            .unwrap()
            .map(|d| d.unwrap().paragraphs)
            .collect();
            // The same sentences prepare tokenizes (segmentation is not timed here).
            let sentences: Vec<String> = docs
                .iter()
                .flatten()
                .flat_map(|p| split_sentences(p))
                .collect();
            let (raw, raw_all, raw_single) = time_tokens(&sentences, |s| {
                tok.inner().encode_fast(s, false).unwrap().len()
            });
            // What prepare calls: the ASCII encoder, HuggingFace for other text.
            let (ours, ours_all, ours_single) =
                time_tokens(&sentences, |s| tok.encode(s).unwrap().len());
            println!(
                "{}",
                serde_json::json!({
                    "raw_tokens": raw, "raw_all_cores_s": raw_all, "raw_one_core_s": raw_single,
                    "encode_tokens": ours, "encode_all_cores_s": ours_all,
                    "encode_one_core_s": ours_single,
                })
            );
        }
        "prepare-static" | "prepare-dynamic" => {
            let masking = if mode == "prepare-static" {
                MaskingMode::Static
            } else {
                MaskingMode::Dynamic
            };
            let cfg = config(shared, scratch, repeat, masking);
            let r = prepare(&cfg).unwrap();
            println!(
                "{}",
                serde_json::json!({
                    "tokens": r.tokens, "elapsed_s": r.elapsed_s,
                    "instances": r.train_instances + r.validation_instances,
                    "documents": r.documents, "peak_rss_mib": peak_rss_mib(),
                })
            );
        }
        "loader" => {
            let cfg = config(shared, scratch, 1, MaskingMode::Dynamic);
            let set = Arc::new(ShardSet::open(&cfg.out.join("train"), None).unwrap());
            let lc = LoaderConfig {
                batch_size: 32,
                prefetch: 8,
                ..LoaderConfig::default()
            };
            let mut loader = TrainLoader::new(set, lc, Cursor::default()).unwrap();
            let t = Instant::now();
            let batches = 3000;
            let mut seqs = 0;
            for _ in 0..batches {
                seqs += loader.next_batch().unwrap().batch_size;
            }
            println!(
                "{}",
                serde_json::json!({"sequences": seqs, "elapsed_s": t.elapsed().as_secs_f64()})
            );
        }
        other => panic!("unknown mode {other}"),
    }
}

fn run_child(mode: &str, repeat: usize, scratch: &Path) -> serde_json::Value {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--child",
            mode,
            &repeat.to_string(),
            &scratch.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{mode}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("{}");
    serde_json::from_str(line).unwrap()
}

// `bert` allocates through mimalloc; the bench measures prepare as the command runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tokens `count` gives over `sentences`, and the seconds it takes on all cores and on one.
fn time_tokens(sentences: &[String], count: impl Fn(&str) -> usize + Sync) -> (usize, f64, f64) {
    let t = Instant::now();
    let tokens: usize = sentences.par_iter().map(|s| count(s)).sum();
    let all_cores = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let one: usize = sentences.iter().map(|s| count(s)).sum();
    let one_core = t.elapsed().as_secs_f64();
    assert_eq!(tokens, one);
    (tokens, all_cores, one_core)
}

fn main() {
    let Some(shared) = shared() else {
        eprintln!("note: ../shared corpora or vocabulary not found; skipping the benchmark");
        return;
    };
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let repeat: usize = args[i + 2].parse().unwrap();
        child(&args[i + 1], repeat, &shared, Path::new(&args[i + 3]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes
    }
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tok = run_child("tokenize", 1, s);
    println!("| measurement | result |");
    println!("| --- | --- |");
    for (prefix, label, note) in [
        ("raw", "raw `tokenizers` encode", "sentences pre-split"),
        (
            "encode",
            "`WordPieceTokenizer::encode` (ASCII encoder, `tokenizers` for the rest)",
            "structural specials written in the text dropped",
        ),
    ] {
        let n = tok[format!("{prefix}_tokens")].as_f64().unwrap();
        let rate = |key: &str| n / tok[format!("{prefix}_{key}")].as_f64().unwrap();
        println!(
            "| {label}, {cores} cores | {:.0} tokens/s ({n} tokens; {note}) |",
            rate("all_cores_s")
        );
        println!("| {label}, 1 core | {:.0} tokens/s |", rate("one_core_s"));
    }
    for mode in ["prepare-dynamic", "prepare-static"] {
        for repeat in [1, 10] {
            let r = run_child(mode, repeat, s);
            let tk = r["tokens"].as_f64().unwrap();
            println!(
                "| `{mode}` ×{repeat} ({cores} cores, read+segment+tokenize+instances{}+write) | {:.0} tokens/s, {} instances, {:.1} s, peak RSS {:.0} MiB |",
                if mode == "prepare-static" { "+masks, dupe_factor 5" } else { "" },
                tk / r["elapsed_s"].as_f64().unwrap(),
                r["instances"],
                r["elapsed_s"].as_f64().unwrap(),
                r["peak_rss_mib"].as_f64().unwrap()
            );
        }
    }
    let l = run_child("loader", 1, s);
    println!(
        "| loader, dynamic masking, batch 32 padded to longest, prefetch 8 | {:.0} sequences/s |",
        l["sequences"].as_f64().unwrap() / l["elapsed_s"].as_f64().unwrap()
    );
}
