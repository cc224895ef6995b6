//! `BertForSequenceClassification`: the encoder with a head on the pooled `[CLS]` output that
//! scores one input (a sentence or a sentence pair) for a class or a real value, as HuggingFace
//! `transformers` defines it. This is what fine-tuning on GLUE-style tasks trains, and its
//! folders load in `transformers` as that class (with `id2label`, `label2id`, `problem_type`).

use std::path::Path;

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

use crate::config::BertConfig;
use crate::error::{ModelError, Result};
use crate::hf::{self, Architecture, LoadReport, CONFIG_FILE, WEIGHTS_FILE};
use crate::init::Initializer;
use crate::model::BertModel;
use crate::params::ParamGroup;
use crate::precision::{self, to_f32, Precision};
use bert_fsutil::{create_dir_all, write_atomic};

/// What a classifier predicts: the head's outputs and how `config.json` states them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClassifierTask {
    /// One class per input (`problem_type = "single_label_classification"`); class `i` is
    /// `labels[i]` (`id2label`).
    Classification {
        /// Class names by id.
        labels: Vec<String>,
    },
    /// One real score per input (`num_labels = 1`, `problem_type = "regression"`), as STS-B.
    Regression,
}

impl ClassifierTask {
    /// Outputs of the head: the number of classes, or 1 for regression.
    pub fn outputs(&self) -> usize {
        match self {
            ClassifierTask::Classification { labels } => labels.len(),
            ClassifierTask::Regression => 1,
        }
    }

    /// `transformers`' `problem_type`.
    pub fn problem_type(&self) -> &'static str {
        match self {
            ClassifierTask::Classification { .. } => "single_label_classification",
            ClassifierTask::Regression => "regression",
        }
    }

    /// The task a `config.json` states, as `transformers` reads it: `problem_type` when present,
    /// else regression for one label; the classes from `id2label` (ids `0..n`), or `LABEL_0`,
    /// `LABEL_1` where it is absent (the library's default of two labels).
    pub fn from_hf_config(raw: &serde_json::Value, path: &Path) -> Result<Self> {
        let invalid = |message: String| ModelError::InvalidConfig {
            field: "id2label",
            message: format!("in `{}`: {message}", path.display()),
        };
        let labels: Vec<String> = match raw.get("id2label") {
            None | Some(serde_json::Value::Null) => vec!["LABEL_0".into(), "LABEL_1".into()],
            Some(serde_json::Value::Object(map)) => {
                let mut labels = vec![None; map.len()];
                for (id, name) in map {
                    let i: usize = id.parse().ok().filter(|i| *i < map.len()).ok_or_else(|| {
                        invalid(format!(
                            "key `{id}` is not an id in 0..{}: ids must number the labels from 0",
                            map.len()
                        ))
                    })?;
                    let name = name
                        .as_str()
                        .ok_or_else(|| invalid(format!("label of id {id} is not a string")))?;
                    labels[i] = Some(name.to_string());
                }
                labels
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        invalid("an id appears twice (as `1` and `01`, say)".to_string())
                    })?
            }
            Some(_) => return Err(invalid("expected an object of id → label".to_string())),
        };
        if labels.is_empty() {
            return Err(invalid("no labels".to_string()));
        }
        match raw.get("problem_type").and_then(|p| p.as_str()) {
            Some("regression") => Ok(ClassifierTask::Regression),
            Some("single_label_classification") | None if labels.len() > 1 => {
                Ok(ClassifierTask::Classification { labels })
            }
            None => Ok(ClassifierTask::Regression),
            Some(other) => Err(ModelError::InvalidConfig {
                field: "problem_type",
                message: format!(
                    "in `{}`: `{other}` is not supported; expected single_label_classification \
                     (with at least two labels) or regression",
                    path.display()
                ),
            }),
        }
    }

    /// Writes the task's keys into a `config.json` object.
    fn write_hf_config(&self, obj: &mut serde_json::Map<String, serde_json::Value>) {
        let labels = match self {
            ClassifierTask::Classification { labels } => labels.clone(),
            ClassifierTask::Regression => vec!["LABEL_0".to_string()],
        };
        let id2label: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.clone().into()))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i.into()))
            .collect();
        obj.insert("id2label".into(), id2label.into());
        obj.insert("label2id".into(), label2id.into());
        obj.insert("problem_type".into(), self.problem_type().into());
    }
}

/// The dropout before the head: `classifier_dropout` of `config.json`, or the hidden dropout
/// where it is null or absent (as `transformers` does).
fn classifier_dropout(raw: &serde_json::Value, config: &BertConfig) -> f64 {
    raw.get("classifier_dropout")
        .and_then(|d| d.as_f64())
        .unwrap_or(config.hidden_dropout_prob)
}

/// BERT with a sequence-level head: pooled output → dropout → linear to the task's outputs.
#[derive(Module, Debug)]
pub struct BertForSequenceClassification<B: Backend> {
    /// The encoder and pooler (`bert.` in HuggingFace names).
    pub bert: BertModel<B>,
    /// The head (`classifier`): hidden → classes (or 1 for regression).
    pub classifier: Linear<B>,
    dropout: Dropout,
    #[module(skip)]
    precision: Precision,
}

impl<B: Backend> BertForSequenceClassification<B> {
    /// A model whose every weight is fresh from `seed` (the baseline that shows what
    /// pre-training is worth).
    pub fn new(
        config: &BertConfig,
        outputs: usize,
        classifier_dropout: f64,
        seed: u64,
        device: &B::Device,
    ) -> Self {
        let mut init = Initializer::new(seed, config.initializer_range, device);
        let bert = BertModel::new(config, &mut init);
        let classifier = init.linear(config.hidden_size, outputs);
        Self::assemble(bert, classifier, classifier_dropout)
    }

    /// A pre-trained encoder with a fresh head drawn from `seed` (the start of fine-tuning).
    pub fn from_encoder(
        bert: BertModel<B>,
        config: &BertConfig,
        outputs: usize,
        classifier_dropout: f64,
        seed: u64,
        device: &B::Device,
    ) -> Self {
        let mut init = Initializer::new(seed, config.initializer_range, device);
        let classifier = init.linear(config.hidden_size, outputs);
        Self::assemble(bert, classifier, classifier_dropout)
    }

    fn assemble(bert: BertModel<B>, classifier: Linear<B>, classifier_dropout: f64) -> Self {
        Self {
            bert,
            classifier,
            dropout: DropoutConfig::new(classifier_dropout).init(),
            precision: Precision::Fp32,
        }
    }

    /// Outputs of the head.
    pub fn outputs(&self) -> usize {
        self.classifier.weight.val().dims()[1]
    }

    /// Dropout probability before the head.
    pub fn classifier_dropout(&self) -> f64 {
        self.dropout.prob
    }

    /// Sets the dropout probability before the head (`finetune.classifier_dropout`).
    pub fn set_classifier_dropout(&mut self, p: f64) {
        self.dropout = DropoutConfig::new(p).init();
    }

    /// Sets the float type of every matrix product (mixed precision); f32 is the default.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        self.bert.set_precision(precision);
    }

    /// The float type of the matrix products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Logits `[batch, outputs]` (f32) of a padded batch; `attention_mask` is 1 for real
    /// tokens and 0 for padding.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Tensor<B, 2> {
        let pooled = self
            .bert
            .forward(input_ids, token_type_ids, attention_mask)
            .pooler_output;
        let pooled = crate::dropout::apply(&self.dropout, pooled);
        to_f32(precision::linear(&self.classifier, pooled, self.precision))
    }
}

/// Loads a model folder as a classifier onto `device`.
///
/// - `task: None` reads the task from the folder's `config.json`: a fine-tuned
///   `BertForSequenceClassification` folder, ours or `transformers`'.
/// - `task: Some(..)` starts fine-tuning from any BERT folder (a pre-training checkpoint or
///   export, a HuggingFace model): the encoder and pooler are loaded, and the head too when the
///   folder holds one of the task's shape; otherwise the head is drawn from `seed` and the report
///   lists it.
///
/// Parts the folder lacks are initialised from `seed` and listed in the report; the
/// pre-training heads a folder may hold are left out.
pub fn load_classifier_dir<B: Backend>(
    dir: &Path,
    task: Option<ClassifierTask>,
    seed: u64,
    device: &B::Device,
) -> Result<(
    BertConfig,
    ClassifierTask,
    BertForSequenceClassification<B>,
    LoadReport,
)> {
    let (config, raw) = hf::read_model_config(dir)?;
    let task = match task {
        Some(task) => task,
        None => ClassifierTask::from_hf_config(&raw, &dir.join(CONFIG_FILE))?,
    };
    let (weights_path, mut tensors) = hf::read_weights(dir)?;
    let weight = tensors.remove("classifier.weight");
    let bias = tensors.remove("classifier.bias");
    let (pretraining, mut report) = hf::model_from_tensors::<B>(
        &config,
        &weights_path,
        tensors,
        seed,
        device,
        Architecture::ForSequenceClassification,
    )?;
    let mut model = BertForSequenceClassification::from_encoder(
        pretraining.bert,
        &config,
        task.outputs(),
        classifier_dropout(&raw, &config),
        seed,
        device,
    );
    let shape = [task.outputs(), config.hidden_size];
    match (weight, bias) {
        (Some(w), Some(b)) if w.shape == shape && b.shape == [task.outputs()] => {
            for mut row in model.named_params_mut() {
                let values = match row.hf_name.as_str() {
                    "classifier.weight" => hf::transpose(&w.values, shape[0], shape[1]),
                    "classifier.bias" => b.values.clone(),
                    _ => continue,
                };
                let n = values.len();
                row.param.set_flat(Tensor::<B, 1>::from_data(
                    TensorData::new(values, [n]),
                    device,
                ));
            }
        }
        (Some(w), _) => {
            tracing::warn!(
                "`{}`: its classifier head has shape {:?}, the task needs {shape:?}: a fresh head \
                 is drawn from the seed",
                weights_path.display(),
                w.shape
            );
            report.initialized.push(ParamGroup::Classifier);
        }
        _ => report.initialized.push(ParamGroup::Classifier),
    }
    Ok((config, task, model, report))
}

/// Writes a folder that `transformers.BertForSequenceClassification.from_pretrained` (and
/// `AutoModelForSequenceClassification`, `pipeline("text-classification")`) loads:
/// `config.json` with the task's labels and `model.safetensors`, each written atomically, and
/// the tokenizer files found in `tokenizer_dir`.
pub fn save_classifier_dir<B: Backend>(
    model: &BertForSequenceClassification<B>,
    config: &BertConfig,
    task: &ClassifierTask,
    dir: &Path,
    tokenizer_dir: Option<&Path>,
) -> Result<()> {
    if model.outputs() != task.outputs() {
        return Err(ModelError::InvalidInput(format!(
            "the classifier has {} outputs, its task {}",
            model.outputs(),
            task.outputs()
        )));
    }
    create_dir_all(dir)?;
    write_atomic(
        &dir.join(WEIGHTS_FILE),
        &hf::host_tensors_to_safetensors(model.to_host_tensors()?)?,
    )?;
    let mut json = config.to_hf_json();
    let obj = json
        .as_object_mut()
        .expect("a config serialises to an object");
    obj.insert(
        "architectures".into(),
        serde_json::json!([Architecture::ForSequenceClassification.hf_name()]),
    );
    obj.insert(
        "classifier_dropout".into(),
        model.classifier_dropout().into(),
    );
    task.write_hf_config(obj);
    let text = serde_json::to_string_pretty(&json).expect("JSON values always serialise");
    write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())?;
    if let Some(src) = tokenizer_dir {
        hf::copy_tokenizer_files(src, dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(raw: serde_json::Value) -> Result<ClassifierTask> {
        ClassifierTask::from_hf_config(&raw, Path::new("config.json"))
    }

    fn ok(raw: serde_json::Value) -> ClassifierTask {
        task(raw).expect("a valid task")
    }

    #[test]
    fn the_task_is_read_as_transformers_reads_it() {
        assert_eq!(
            ok(json!({"id2label": {"1": "pos", "0": "neg"}})),
            ClassifierTask::Classification {
                labels: vec!["neg".into(), "pos".into()]
            }
        );
        assert_eq!(
            ok(json!({})),
            ClassifierTask::Classification {
                labels: vec!["LABEL_0".into(), "LABEL_1".into()]
            }
        );
        assert_eq!(
            ok(json!({"id2label": {"0": "LABEL_0"}})),
            ClassifierTask::Regression
        );
        assert_eq!(
            ok(json!({"id2label": {"0": "a", "1": "b"}, "problem_type": "regression"})),
            ClassifierTask::Regression
        );
    }

    #[test]
    fn bad_label_tables_are_refused_by_name() {
        for raw in [
            json!({"id2label": {"0": "a", "2": "b"}}),
            json!({"id2label": {"0": "a", "x": "b"}}),
            json!({"id2label": {"0": 5}}),
            json!({"id2label": ["a", "b"]}),
            json!({"id2label": {}}),
            json!({"id2label": {"0": "a", "1": "b"}, "problem_type": "multi_label_classification"}),
            json!({"id2label": {"0": "a"}, "problem_type": "single_label_classification"}),
        ] {
            let err = task(raw.clone()).expect_err("refused").to_string();
            assert!(err.contains("config.json"), "{raw}: {err}");
        }
    }

    #[test]
    fn the_written_keys_read_back() {
        for t in [
            ClassifierTask::Classification {
                labels: vec![
                    "entailment".into(),
                    "neutral".into(),
                    "contradiction".into(),
                ],
            },
            ClassifierTask::Regression,
        ] {
            let mut obj = serde_json::Map::new();
            t.write_hf_config(&mut obj);
            assert_eq!(ok(serde_json::Value::Object(obj)), t);
        }
    }
}
