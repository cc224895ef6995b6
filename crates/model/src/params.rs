//! The one table that names every parameter the way HuggingFace does.
//!
//! Import, export, checkpoints and the optimiser's weight-decay groups all read this table, so
//! a parameter cannot be named one way on the way out and another on the way in.

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{backend::Backend, Tensor};

use crate::classification::BertForSequenceClassification;
use crate::model::{BertForPreTraining, BertModel};

/// How a parameter is stored, which decides transposition and weight decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A linear weight: Burn stores `[in, out]`, HuggingFace (PyTorch) `[out, in]`.
    LinearWeight,
    /// A linear bias, or the MLM output bias.
    Bias,
    /// An embedding table `[rows, hidden]`, same layout on both sides.
    Embedding,
    /// A LayerNorm scale (`gamma`).
    LayerNormWeight,
    /// A LayerNorm shift (`beta`).
    LayerNormBias,
}

impl ParamKind {
    /// Whether BERT applies weight decay to this parameter (not to biases or LayerNorm).
    pub fn decays(self) -> bool {
        matches!(self, ParamKind::LinearWeight | ParamKind::Embedding)
    }
}

/// Which part of the model a parameter belongs to; heads may be absent from a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ParamGroup {
    /// Embeddings and encoder layers: always required.
    Encoder,
    /// The `[CLS]` pooler (absent from `BertForMaskedLM` files).
    Pooler,
    /// The MLM head (`cls.predictions`).
    MlmHead,
    /// The NSP head (`cls.seq_relationship`).
    NspHead,
    /// A fine-tuned classification or regression head (`classifier`).
    Classifier,
}

impl ParamGroup {
    /// How the part reads in messages.
    pub fn describe(self) -> &'static str {
        match self {
            ParamGroup::Encoder => "encoder",
            ParamGroup::Pooler => "pooler",
            ParamGroup::MlmHead => "MLM head (cls.predictions)",
            ParamGroup::NspHead => "NSP head (cls.seq_relationship)",
            ParamGroup::Classifier => "classifier head (classifier)",
        }
    }
}

/// A mutable reference to a parameter of either rank.
pub enum ParamMut<'a, B: Backend> {
    /// A vector (bias, LayerNorm).
    D1(&'a mut Param<Tensor<B, 1>>),
    /// A matrix (linear weight, embedding).
    D2(&'a mut Param<Tensor<B, 2>>),
}

impl<B: Backend> ParamMut<'_, B> {
    /// The parameter's shape in Burn's layout.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            ParamMut::D1(p) => p.val().dims().to_vec(),
            ParamMut::D2(p) => p.val().dims().to_vec(),
        }
    }

    /// Number of values.
    pub fn num_elements(&self) -> usize {
        self.dims().iter().product()
    }

    /// The values, flattened (row-major, Burn's layout).
    pub fn flat(&self) -> Tensor<B, 1> {
        match self {
            ParamMut::D1(p) => p.val(),
            ParamMut::D2(p) => p.val().reshape([-1]),
        }
    }

    /// Replaces the values with `values` (flattened, Burn's layout), keeping the parameter's
    /// id (the optimiser and the gradients find it by id) and making it require a gradient.
    pub fn set_flat(&mut self, values: Tensor<B, 1>) {
        match self {
            ParamMut::D1(p) => **p = Param::initialized(p.id, values.require_grad()),
            ParamMut::D2(p) => {
                let [rows, cols] = p.val().dims();
                **p = Param::initialized(p.id, values.reshape([rows, cols]).require_grad());
            }
        }
    }

    /// The values in HuggingFace layout (linear weights transposed to `[out, in]` when `kind`
    /// says so), with their shape, copied to the host; `name` names the tensor in errors.
    pub fn to_host_hf(&self, kind: ParamKind, name: &str) -> crate::Result<(Vec<usize>, Vec<f32>)> {
        match self {
            ParamMut::D1(p) => to_host(p.val(), name),
            ParamMut::D2(p) if kind == ParamKind::LinearWeight => {
                to_host(p.val().transpose(), name)
            }
            ParamMut::D2(p) => to_host(p.val(), name),
        }
    }
}

impl<B: burn::tensor::backend::AutodiffBackend> ParamMut<'_, B> {
    /// The gradient in `grads`, flattened, on the inner backend; `None` when the parameter
    /// took no part in the loss.
    pub fn grad_flat(&self, grads: &B::Gradients) -> Option<Tensor<B::InnerBackend, 1>> {
        match self {
            ParamMut::D1(p) => p.grad(grads),
            ParamMut::D2(p) => p.grad(grads).map(|g| g.reshape([-1])),
        }
    }
}

/// One row of the naming table.
pub struct NamedParam<'a, B: Backend> {
    /// Full HuggingFace `BertForPreTraining` name, e.g. `bert.encoder.layer.0.output.dense.weight`.
    pub hf_name: String,
    /// Storage kind.
    pub kind: ParamKind,
    /// Model part.
    pub group: ParamGroup,
    /// The parameter itself.
    pub param: ParamMut<'a, B>,
}

impl<B: Backend> NamedParam<'_, B> {
    /// The parameter copied to the host in HuggingFace names and layout.
    fn into_host(self) -> crate::Result<HostTensor> {
        let (shape, values) = self.param.to_host_hf(self.kind, &self.hf_name)?;
        Ok(HostTensor {
            name: self.hf_name,
            shape,
            values,
        })
    }
}

struct Table<'a, B: Backend> {
    rows: Vec<NamedParam<'a, B>>,
    group: ParamGroup,
}

impl<'a, B: Backend> Table<'a, B> {
    fn d1(&mut self, name: String, kind: ParamKind, p: &'a mut Param<Tensor<B, 1>>) {
        self.rows.push(NamedParam {
            hf_name: name,
            kind,
            group: self.group,
            param: ParamMut::D1(p),
        });
    }
    fn d2(&mut self, name: String, kind: ParamKind, p: &'a mut Param<Tensor<B, 2>>) {
        self.rows.push(NamedParam {
            hf_name: name,
            kind,
            group: self.group,
            param: ParamMut::D2(p),
        });
    }
    fn linear(&mut self, prefix: &str, linear: &'a mut Linear<B>) {
        self.d2(
            format!("{prefix}.weight"),
            ParamKind::LinearWeight,
            &mut linear.weight,
        );
        if let Some(bias) = linear.bias.as_mut() {
            self.d1(format!("{prefix}.bias"), ParamKind::Bias, bias);
        }
    }
    fn layer_norm(&mut self, prefix: &str, norm: &'a mut LayerNorm<B>) {
        self.d1(
            format!("{prefix}.weight"),
            ParamKind::LayerNormWeight,
            &mut norm.gamma,
        );
        if let Some(beta) = norm.beta.as_mut() {
            self.d1(format!("{prefix}.bias"), ParamKind::LayerNormBias, beta);
        }
    }
}

impl<'a, B: Backend> Table<'a, B> {
    /// The encoder's rows (embeddings, layers) and the pooler's, named `bert.…`.
    fn bert(&mut self, bert: &'a mut BertModel<B>) {
        self.group = ParamGroup::Encoder;
        let emb = &mut bert.embeddings;
        self.d2(
            "bert.embeddings.word_embeddings.weight".into(),
            ParamKind::Embedding,
            &mut emb.word.weight,
        );
        self.d2(
            "bert.embeddings.position_embeddings.weight".into(),
            ParamKind::Embedding,
            &mut emb.position.weight,
        );
        self.d2(
            "bert.embeddings.token_type_embeddings.weight".into(),
            ParamKind::Embedding,
            &mut emb.token_type.weight,
        );
        self.layer_norm("bert.embeddings.LayerNorm", &mut emb.layer_norm);
        for (i, layer) in bert.layers.iter_mut().enumerate() {
            let p = format!("bert.encoder.layer.{i}");
            let att = &mut layer.attention;
            self.linear(&format!("{p}.attention.self.query"), &mut att.query);
            self.linear(&format!("{p}.attention.self.key"), &mut att.key);
            self.linear(&format!("{p}.attention.self.value"), &mut att.value);
            self.linear(&format!("{p}.attention.output.dense"), &mut att.output);
            self.layer_norm(
                &format!("{p}.attention.output.LayerNorm"),
                &mut att.layer_norm,
            );
            self.linear(&format!("{p}.intermediate.dense"), &mut layer.intermediate);
            self.linear(&format!("{p}.output.dense"), &mut layer.output);
            self.layer_norm(&format!("{p}.output.LayerNorm"), &mut layer.layer_norm);
        }
        self.group = ParamGroup::Pooler;
        self.linear("bert.pooler.dense", &mut bert.pooler);
    }
}

impl<B: Backend> BertForPreTraining<B> {
    /// Every parameter with its HuggingFace name, in a fixed order (embeddings, layers, pooler,
    /// MLM head, NSP head). The tied decoder weight is not listed: it *is* the word embedding.
    pub fn named_params_mut(&mut self) -> Vec<NamedParam<'_, B>> {
        let mut t = Table {
            rows: Vec::new(),
            group: ParamGroup::Encoder,
        };
        t.bert(&mut self.bert);
        t.group = ParamGroup::MlmHead;
        t.d1(
            "cls.predictions.bias".into(),
            ParamKind::Bias,
            &mut self.mlm.bias,
        );
        t.linear("cls.predictions.transform.dense", &mut self.mlm.transform);
        t.layer_norm(
            "cls.predictions.transform.LayerNorm",
            &mut self.mlm.layer_norm,
        );
        t.group = ParamGroup::NspHead;
        t.linear("cls.seq_relationship", &mut self.nsp);
        t.rows
    }
}

impl<B: Backend> BertForSequenceClassification<B> {
    /// Every parameter with its HuggingFace `BertForSequenceClassification` name, in a fixed
    /// order (embeddings, layers, pooler, classifier).
    pub fn named_params_mut(&mut self) -> Vec<NamedParam<'_, B>> {
        let mut t = Table {
            rows: Vec::new(),
            group: ParamGroup::Encoder,
        };
        t.bert(&mut self.bert);
        t.group = ParamGroup::Classifier;
        t.linear("classifier", &mut self.classifier);
        t.rows
    }

    /// Every parameter as a host tensor in HuggingFace names and layout.
    pub fn to_host_tensors(&self) -> crate::Result<Vec<HostTensor>> {
        let mut model = self.clone();
        model
            .named_params_mut()
            .into_iter()
            .map(NamedParam::into_host)
            .collect()
    }
}

/// A host-side copy of one parameter in HuggingFace layout.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// HuggingFace name.
    pub name: String,
    /// Shape in HuggingFace layout (`[out, in]` for linear weights).
    pub shape: Vec<usize>,
    /// Row-major f32 values.
    pub values: Vec<f32>,
}

fn to_host<B: Backend, const D: usize>(
    t: Tensor<B, D>,
    name: &str,
) -> crate::Result<(Vec<usize>, Vec<f32>)> {
    let shape = t.dims().to_vec();
    Ok((shape, crate::host::host_values(t, name)?))
}

impl<B: Backend> BertForPreTraining<B> {
    /// All parameters as host tensors in HuggingFace names and layout (linear weights
    /// transposed to `[out, in]`). The model is cloned to walk the table; Burn tensors are
    /// reference-counted, so the clone copies no weights.
    pub fn to_host_tensors(&self) -> crate::Result<Vec<HostTensor>> {
        self.to_host_tensors_where(|_| true)
    }

    /// [`to_host_tensors`](Self::to_host_tensors) of the parameters whose group `keep` accepts
    /// (an export without the heads its class lacks).
    pub fn to_host_tensors_where(
        &self,
        keep: impl Fn(ParamGroup) -> bool,
    ) -> crate::Result<Vec<HostTensor>> {
        let mut model = self.clone();
        model
            .named_params_mut()
            .into_iter()
            .filter(|row| keep(row.group))
            .map(NamedParam::into_host)
            .collect()
    }
}
