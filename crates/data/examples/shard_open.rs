//! Start-up cost of opening a prepared split (what `bert train` does before its first step).
//!
//! `shard_open prepare <out> <repeat>`: prepares the shared corpora (`../shared/corpora`, listed
//! `repeat` times through symlinked folders) with the shipped static recipe (128 tokens,
//! `dupe_factor` 5) into `<out>`. `shard_open open <split folder> [times] [always]`: opens the
//! split `times` times in a row (with `always`: reading every shard in full each time, as
//! before verified shards were recorded) and prints the seconds each open took.
//!
//! Run: `cargo run --release -p bert-data --example shard_open -- open /tmp/x/train 3`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bert_data::{prepare, MaskingMode, PrepareConfig, ShardSet, Verify};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// The shared corpora `repeat` times, as symlinked folders under `scratch`.
fn inputs(scratch: &Path, repeat: usize) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for k in 0..repeat {
        let d = scratch.join(format!("copy{k}"));
        std::fs::create_dir_all(&d)?;
        for name in ["books", "wiki"] {
            let link = d.join(name);
            if !link.exists() {
                std::os::unix::fs::symlink(shared().join("corpora").join(name), &link)?;
            }
        }
        out.push(d.display().to_string());
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["prepare", out, repeat] => {
            let out = PathBuf::from(out);
            let scratch = PathBuf::from(format!("{}-inputs", out.display()));
            let config = PrepareConfig {
                inputs: inputs(&scratch, repeat.parse()?)?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                doc_per_file: true,
                vocab: shared().join("models/bert-uncased-wordpiece/vocab.txt"),
                out,
                masking: MaskingMode::Static,
                dupe_factor: 5,
                progress: false,
                ..PrepareConfig::default()
            };
            let report = prepare(&config)?;
            println!(
                "prepared {} train instances in {:.1} s",
                report.train_instances, report.elapsed_s
            );
        }
        ["open", dir, rest @ ..] => {
            let times: usize = rest.first().map_or(Ok(1), |t| t.parse())?;
            let verify = match rest.get(1) {
                Some(&"always") => Verify::Always,
                _ => Verify::Once,
            };
            for k in 0..times {
                let start = Instant::now();
                let set = ShardSet::open_with(Path::new(dir), None, verify)?;
                let v = set.verification();
                println!(
                    "open {k}: {:.3} s ({} instances, {} shards: {} read in full, {} trusted)",
                    start.elapsed().as_secs_f64(),
                    set.len(),
                    set.index().shards.len(),
                    v.verified,
                    v.trusted
                );
            }
        }
        _ => {
            return Err(
                "usage: shard_open prepare <out> <repeat> | open <split folder> [times]".into(),
            )
        }
    }
    Ok(())
}
