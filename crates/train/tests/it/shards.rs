//! Opening prepared shards for a run: the masking a run config's `[prepare]` table states must
//! be the masking of the shards it trains on.

use std::path::Path;

use crate::support;

use bert_train::RunConfig;

fn config(shards: &Path, prepare_table: &str) -> RunConfig {
    let text = format!(
        r#"
        out_dir = "run"
        [model]
        preset = "tiny"
        [data]
        train = "{shards}/train"
        batch_size = 4
        [train]
        steps = 1
        [prepare]
        inputs = ["corpus.txt"]
        vocab = "vocab/vocab.txt"
        out = "{shards}"
        {prepare_table}
        "#,
        shards = shards.display()
    );
    RunConfig::parse(&text, Path::new("shards.toml"), &[]).unwrap()
}

#[test]
fn the_prepare_table_masking_must_match_the_shards() {
    let dir = support::scratch_dir("recipe");
    // Dynamic masking, 64 tokens, 10 predictions (see `support::prepare_shards`).
    let shards = support::prepare_shards(&dir);
    let same = "masking = \"dynamic\"\nmax_seq_length = 64\nmax_predictions_per_seq = 10";
    config(&shards, same).open_shards().unwrap();
    for (table, want) in [
        (
            "masking = \"static\"\nmax_seq_length = 64\nmax_predictions_per_seq = 10",
            "masking is dynamic there but static in the run config's [prepare] table",
        ),
        (
            "masking = \"dynamic\"\nmax_seq_length = 128\nmax_predictions_per_seq = 10",
            "max_seq_length is 64 there but 128",
        ),
        (
            "masking = \"dynamic\"\nmax_seq_length = 64\nmax_predictions_per_seq = 10\n\
             masked_lm_prob = 0.2",
            "masked_lm_prob is 0.15 there but 0.2",
        ),
        (
            "masking = \"dynamic\"\nmax_seq_length = 64\nmax_predictions_per_seq = 20",
            "max_predictions_per_seq is 10 there but 20",
        ),
    ] {
        let err = match config(&shards, table).open_shards() {
            Ok(_) => panic!("{table}: opened"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{err}");
        assert!(err.contains("train/index.json"), "{err}");
        let out = format!("delete `{}`", shards.display());
        assert!(err.contains(&out), "{err}");
        assert!(err.contains("prepares the data again"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
