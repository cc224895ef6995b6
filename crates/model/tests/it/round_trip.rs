//! Import → export and export → import keep every tensor bit for bit; bad folders get clear errors.

use std::path::Path;

use crate::support::*;
use bert_model::{
    load_model_dir, save_model_dir, save_model_dir_as, Architecture, BertConfig,
    BertForPreTraining, ModelError, ParamGroup,
};

#[test]
fn import_then_export_is_bit_exact() {
    let device = Default::default();
    for dir in fixture_dirs() {
        let (config, model, report) = load_model_dir::<Cpu>(&dir, 0, &device).unwrap();
        let out = scratch(&format!(
            "ie-{}",
            dir.file_name().unwrap().to_string_lossy()
        ));
        save_model_dir(&model, &config, &out, None).unwrap();
        let original = read_safetensors_f32(&dir.join("model.safetensors"));
        let exported = read_safetensors_f32(&out.join("model.safetensors"));
        let prefix = if report.layout == bert_model::SourceLayout::BaseModel {
            "bert."
        } else {
            ""
        };
        let mut compared = 0;
        for (name, tensor) in &original {
            let ours = format!("{prefix}{name}");
            if name.starts_with("cls.predictions.decoder") {
                continue; // tied duplicates of the word embeddings and the output bias
            }
            let got = exported
                .get(&ours)
                .unwrap_or_else(|| panic!("export lacks `{ours}`"));
            assert_eq!(got.0, tensor.0, "{ours}: shape");
            let same = got
                .1
                .iter()
                .zip(&tensor.1)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{ours}: values differ after import → export");
            compared += 1;
        }
        assert!(compared >= 16, "compared only {compared} tensors");
        let exported_config = BertConfig::load(&out.join("config.json")).unwrap();
        assert_eq!(exported_config, config);
    }
}

#[test]
fn export_then_import_is_bit_exact() {
    let device = Default::default();
    let mut config = BertConfig::preset("tiny").unwrap();
    config.vocab_size = 120;
    config.max_position_embeddings = 32;
    let model = BertForPreTraining::<Cpu>::new(&config, 7, &device);
    let out = scratch("ei");
    save_model_dir(&model, &config, &out, None).unwrap();
    let (config2, model2, report) = load_model_dir::<Cpu>(&out, 99, &device).unwrap();
    assert_eq!(config2, config);
    assert!(report.initialized.is_empty() && report.ignored.is_empty());
    let a = model.to_host_tensors().unwrap();
    let b = model2.to_host_tensors().unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.name, y.name);
        assert_eq!(x.shape, y.shape);
        assert!(
            x.values
                .iter()
                .zip(&y.values)
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            "{}",
            x.name
        );
    }
    // No temporary files are left behind.
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "left {name}");
    }
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let device = Default::default();
    let mut config = BertConfig::preset("tiny").unwrap();
    config.vocab_size = 64;
    let a = BertForPreTraining::<Cpu>::new(&config, 1, &device)
        .to_host_tensors()
        .unwrap();
    let b = BertForPreTraining::<Cpu>::new(&config, 1, &device)
        .to_host_tensors()
        .unwrap();
    let c = BertForPreTraining::<Cpu>::new(&config, 2, &device)
        .to_host_tensors()
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a[0].values, c[0].values);
    // The module's parameter count is the exported tensors' (the tied decoder counted once).
    let model = BertForPreTraining::<Cpu>::new(&config, 1, &device);
    assert_eq!(
        burn::module::Module::num_params(&model),
        a.iter().map(|t| t.values.len()).sum::<usize>()
    );
    // BERT initialisation: word embeddings N(0, 0.02) with a zero padding row, LayerNorm 1/0.
    let word = &a[0];
    assert!(
        word.values[..128].iter().all(|&v| v == 0.0),
        "padding row must start at zero"
    );
    let rest = &word.values[128..];
    let std = (rest.iter().map(|v| (v * v) as f64).sum::<f64>() / rest.len() as f64).sqrt();
    assert!((std - 0.02).abs() < 0.001, "word embedding std {std}");
    let ln = a
        .iter()
        .find(|t| t.name == "bert.embeddings.LayerNorm.weight")
        .unwrap();
    assert!(ln.values.iter().all(|&v| v == 1.0));
}

fn copy_fixture(dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(dir.join(f), to.join(f)).unwrap();
    }
}

#[test]
fn bad_folders_get_errors_that_name_the_problem() {
    let device = Default::default();
    let missing = scratch("missing");
    let err = load_model_dir::<Cpu>(&missing, 0, &device).unwrap_err();
    assert!(matches!(err, ModelError::NotAModelDir { .. }), "{err}");

    let fixture = fixture_dirs()
        .into_iter()
        .find(|d| d.to_string_lossy().contains("pretraining"))
        .unwrap();
    let (config, model, _) = load_model_dir::<Cpu>(&fixture, 0, &device).unwrap();

    // No weights file.
    let dir = scratch("noweights");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture.join("config.json"), dir.join("config.json")).unwrap();
    let err = load_model_dir::<Cpu>(&dir, 0, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    // Wrong hidden size in config: shape mismatch names the tensor.
    let dir = scratch("shape");
    copy_fixture(&fixture, &dir);
    let mut wrong = config.clone();
    wrong.intermediate_size += 1;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(&wrong.to_hf_json()).unwrap(),
    )
    .unwrap();
    let err = load_model_dir::<Cpu>(&dir, 0, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("intermediate.dense") && err.contains("shape"),
        "{err}"
    );

    // Missing encoder tensor: a file with fewer layers than its config claims.
    let dir = scratch("layers");
    copy_fixture(&fixture, &dir);
    let mut more = config.clone();
    more.num_hidden_layers += 1;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(&more.to_hf_json()).unwrap(),
    )
    .unwrap();
    let err = load_model_dir::<Cpu>(&dir, 0, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("bert.encoder.layer.{}", config.num_hidden_layers)),
        "{err}"
    );

    // Corrupt weights file.
    let dir = scratch("corrupt");
    copy_fixture(&fixture, &dir);
    std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = load_model_dir::<Cpu>(&dir, 0, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid safetensors"), "{err}");

    // Bad config.json.
    let dir = scratch("badconfig");
    copy_fixture(&fixture, &dir);
    std::fs::write(dir.join("config.json"), "{\"hidden_size\": 32,").unwrap();
    let err = load_model_dir::<Cpu>(&dir, 0, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json") && err.contains("line"), "{err}");

    // Unknown encoder tensor: another architecture would lose weights silently.
    let dir = scratch("foreign");
    save_model_dir(&model, &config, &dir, None).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let extra = vec![0u8; 8];
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().collect();
    views.push((
        "bert.encoder.layer.0.attention.self.distance_embedding.weight".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &extra).unwrap(),
    ));
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(views, &None).unwrap(),
    )
    .unwrap();
    let err = load_model_dir::<Cpu>(&dir, 0, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("distance_embedding"), "{err}");
}

#[test]
fn a_masked_lm_export_holds_the_encoder_and_mlm_head_only_and_imports_back() {
    let device = Default::default();
    let mut config = BertConfig::preset("tiny").unwrap();
    config.vocab_size = 120;
    config.max_position_embeddings = 32;
    config.type_vocab_size = 1;
    let model = BertForPreTraining::<Cpu>::new(&config, 7, &device);
    let out = scratch("mlm-export");
    save_model_dir_as(&model, &config, &out, None, Architecture::ForMaskedLm).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(json["architectures"][0], "BertForMaskedLM");
    assert_eq!(json["type_vocab_size"], 1);
    let written = read_safetensors_f32(&out.join("model.safetensors"));
    assert!(
        written
            .keys()
            .all(|k| !k.starts_with("bert.pooler") && !k.starts_with("cls.seq_relationship")),
        "{:?}",
        written.keys().collect::<Vec<_>>()
    );
    assert!(written.contains_key("cls.predictions.bias"));
    assert!(written.contains_key("bert.embeddings.token_type_embeddings.weight"));
    // Import continues pre-training from it: the encoder and MLM head bit for bit, the two
    // absent heads freshly initialised and reported.
    let (config2, model2, report) = load_model_dir::<Cpu>(&out, 99, &device).unwrap();
    assert_eq!(config2, config);
    assert_eq!(
        report.initialized,
        vec![ParamGroup::Pooler, ParamGroup::NspHead]
    );
    let a = model.to_host_tensors().unwrap();
    let b = model2.to_host_tensors().unwrap();
    for (x, y) in a.iter().zip(&b) {
        if x.name.starts_with("bert.pooler") || x.name.starts_with("cls.seq_relationship") {
            continue;
        }
        assert_eq!(x, y, "{} changed through the MaskedLM export", x.name);
    }
}
