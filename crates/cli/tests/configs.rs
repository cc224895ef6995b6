//! Every shipped config parses and validates, so a typo never reaches a user.

use std::path::Path;

#[test]
fn shipped_configs_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut runs = 0;
    let mut prepares = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if table.contains_key("train") {
            let config = bert_train::RunConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            // Model presets resolve against the standard vocabulary size.
            if config.model.init_from.is_none() {
                config
                    .model_config(30522)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            runs += 1;
        }
        if let Some(prepare) = table.get("prepare") {
            let p: bert_data::PrepareConfig = prepare
                .clone()
                .try_into()
                .unwrap_or_else(|e| panic!("{}: [prepare]: {e}", path.display()));
            p.validate()
                .unwrap_or_else(|e| panic!("{}: [prepare]: {e}", path.display()));
            // The Hub's BookCorpus is one sentence per record: read ungrouped, its
            // next-sentence pairs would nearly all be random (issue 12).
            let wide = p.grouping();
            for input in p.inputs.iter().filter(|i| i.path().contains("bookcorpus")) {
                assert!(
                    !input.grouping(&wide).is_none(),
                    "{}: {} is read one sentence per document",
                    path.display(),
                    input.path()
                );
            }
            prepares += 1;
        }
    }
    assert!(runs >= 8, "found {runs} run configs");
    assert!(prepares >= 6, "found {prepares} prepare configs");
}
