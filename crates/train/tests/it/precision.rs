//! `train.precision` is refused, before any work, on a backend that cannot run it.

use bert_train::RunConfig;
use bert_train::SyntheticData;
use bert_train::{train, RunOptions};

use crate::support::SERIAL;

#[test]
fn a_precision_the_backend_lacks_is_refused_with_the_key_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = std::env::temp_dir().join(format!("bert-train-precision-{}", std::process::id()));
    let text = format!(
        r#"
        out_dir = "{}"
        [model]
        preset = "tiny"
        [data]
        train = "unused"
        batch_size = 2
        [train]
        steps = 2
        precision = "bf16"
        "#,
        out.display()
    );
    let config = RunConfig::parse(&text, std::path::Path::new("run.toml"), &[]).unwrap();
    let data = SyntheticData::new(50, 2, 16, 3);
    // Burn's ndarray backend stores no half types.
    type B = burn::backend::Autodiff<burn::backend::NdArray>;
    let err = train::<B>(&config, &data, &Default::default(), &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.precision") && err.contains("bf16") && err.contains("ndarray"),
        "{err}"
    );
    assert!(
        !out.join("checkpoints").exists()
            || std::fs::read_dir(out.join("checkpoints")).unwrap().count() == 0,
        "nothing was trained"
    );
    let _ = std::fs::remove_dir_all(&out);
}
