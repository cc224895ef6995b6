//! Every shipped config parses into the typed run config (every table, `[tokenizer]` and
//! `[prepare]` included) or prepare config and validates, and refuses an unknown key in each of
//! its tables, so a typo never reaches a user.

use std::path::Path;

/// Every table of a parsed TOML document, by dotted name (`data.masking`), the root excluded.
fn tables(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
    for (key, value) in table {
        if let toml::Value::Table(inner) = value {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            tables(&name, inner, out);
            out.push(name);
        }
    }
}

/// The `[prepare]` table's inputs that read the Hub's BookCorpus must group its one-sentence
/// records into documents: read ungrouped, its next-sentence pairs would nearly all be random
/// (issue 12).
fn check_bookcorpus_grouping(path: &Path, p: &bert_data::PrepareConfig) {
    let wide = p.grouping();
    for input in p.inputs.iter().filter(|i| i.path().contains("bookcorpus")) {
        assert!(
            !input.grouping(&wide).is_none(),
            "{}: {} is read one sentence per document",
            path.display(),
            input.path()
        );
    }
}

#[test]
fn shipped_configs_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let scratch = tempfile::tempdir().unwrap();
    let mut runs = 0;
    let mut prepares = 0;
    let mut tokenizers = 0;
    let mut finetunes = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut names = Vec::new();
        tables("", &table, &mut names);
        if table.contains_key("finetune") {
            let config = bert_finetune::FinetuneConfig::load(&path, &[])
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!config.runs().is_empty());
            for key in ["finetune.not_a_key", "finetune.task.not_a_key"] {
                let err = bert_finetune::FinetuneConfig::load(&path, &[format!("{key}=1")])
                    .expect_err(key)
                    .to_string();
                assert!(
                    err.contains("not_a_key"),
                    "{}: {key}: {err}",
                    path.display()
                );
            }
            finetunes += 1;
        } else if table.contains_key("train") {
            // The whole file, every table typed and validated.
            let config = bert_train::RunConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            // Model presets resolve against the standard vocabulary size.
            if config.model.init_from.is_none() {
                config
                    .model_config(30522)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            if let Some(p) = &config.prepare {
                check_bookcorpus_grouping(&path, p);
                prepares += 1;
            }
            tokenizers += usize::from(config.tokenizer.is_some());
            for name in std::iter::once(String::new()).chain(names) {
                let key = if name.is_empty() {
                    "not_a_key".to_string()
                } else {
                    format!("{name}.not_a_key")
                };
                let err = bert_train::RunConfig::load(&path, &[format!("{key}=1")])
                    .expect_err(&key)
                    .to_string();
                assert!(
                    err.contains("not_a_key") && (name.is_empty() || err.contains(&name)),
                    "{}: {key}: {err}",
                    path.display()
                );
            }
            runs += 1;
        } else {
            // A prepare file: its one table is `[prepare]`.
            assert_eq!(
                names,
                ["prepare"],
                "{}: a config without [train] holds only a [prepare] table",
                path.display()
            );
            let p = bert_train::load_prepare_config(&path).unwrap_or_else(|e| panic!("{e}"));
            p.validate()
                .unwrap_or_else(|e| panic!("{}: [prepare]: {e}", path.display()));
            check_bookcorpus_grouping(&path, &p);
            let typo = scratch.path().join(path.file_name().unwrap());
            std::fs::write(&typo, text.replace("[prepare]", "[prepare]\nnot_a_key = 1")).unwrap();
            let err = bert_train::load_prepare_config(&typo)
                .expect_err("an unknown key")
                .to_string();
            assert!(
                err.contains("[prepare]") && err.contains("not_a_key"),
                "{}: {err}",
                path.display()
            );
            prepares += 1;
        }
    }
    assert!(runs >= 8, "found {runs} run configs");
    assert!(prepares >= 6, "found {prepares} prepare configs");
    assert!(tokenizers >= 1, "found {tokenizers} [tokenizer] tables");
    assert!(finetunes >= 1, "found {finetunes} fine-tuning configs");
}
