//! The JSON batch format of `bert forward`, shared by everyone who checks the model against
//! another implementation.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::BertConfig;
use crate::error::{ModelError, Result};
use crate::model::{BertForPreTraining, FullOutput};

/// `{"input_ids": [[…]], "token_type_ids": [[…]], "attention_mask": [[…]]}`. Token types default
/// to 0 and the mask to 1 when omitted. Other fields (labels, …) are ignored.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ForwardInputs {
    /// `[batch][seq]` token ids.
    pub input_ids: Vec<Vec<i64>>,
    /// `[batch][seq]` segment ids.
    #[serde(default)]
    pub token_type_ids: Option<Vec<Vec<i64>>>,
    /// `[batch][seq]` 1 for real tokens, 0 for padding.
    #[serde(default)]
    pub attention_mask: Option<Vec<Vec<i64>>>,
}

/// The four outputs, as nested arrays, named as HuggingFace names them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForwardOutputs {
    /// `[batch][seq][vocab]`.
    pub prediction_logits: Vec<Vec<Vec<f32>>>,
    /// `[batch][2]`.
    pub seq_relationship_logits: Vec<Vec<f32>>,
    /// `[batch][seq][hidden]`.
    pub last_hidden_state: Vec<Vec<Vec<f32>>>,
    /// `[batch][hidden]`.
    pub pooler_output: Vec<Vec<f32>>,
}

fn check_grid(name: &str, grid: &[Vec<i64>], batch: usize, seq: usize, below: i64) -> Result<()> {
    if grid.len() != batch {
        return Err(ModelError::InvalidInput(format!(
            "`{name}` has {} rows, `input_ids` has {batch}",
            grid.len()
        )));
    }
    for (r, row) in grid.iter().enumerate() {
        if row.len() != seq {
            return Err(ModelError::InvalidInput(format!(
                "`{name}` row {r} has {} entries, expected {seq} (all rows must be padded to the same length)",
                row.len()
            )));
        }
        if let Some((c, v)) = row.iter().enumerate().find(|(_, &v)| v < 0 || v >= below) {
            return Err(ModelError::InvalidInput(format!(
                "`{name}`[{r}][{c}] is {v}, expected a value in 0..{below}"
            )));
        }
    }
    Ok(())
}

impl ForwardInputs {
    /// Checks shapes and value ranges against the model config; returns `(batch, seq)`.
    pub fn validate(&self, config: &BertConfig) -> Result<(usize, usize)> {
        let batch = self.input_ids.len();
        let seq = self.input_ids.first().map_or(0, Vec::len);
        if batch == 0 || seq == 0 {
            return Err(ModelError::InvalidInput(
                "`input_ids` is empty; expected [[id, …], …]".into(),
            ));
        }
        if seq > config.max_position_embeddings {
            return Err(ModelError::InvalidInput(format!(
                "sequences have {seq} tokens, the model's max_position_embeddings is {}",
                config.max_position_embeddings
            )));
        }
        check_grid(
            "input_ids",
            &self.input_ids,
            batch,
            seq,
            config.vocab_size as i64,
        )?;
        if let Some(t) = &self.token_type_ids {
            check_grid(
                "token_type_ids",
                t,
                batch,
                seq,
                config.type_vocab_size as i64,
            )?;
        }
        if let Some(m) = &self.attention_mask {
            check_grid("attention_mask", m, batch, seq, 2)?;
        }
        Ok((batch, seq))
    }

    /// Runs the model (put it in eval mode first: no autodiff backend, so no dropout).
    pub fn run<B: Backend>(
        &self,
        model: &BertForPreTraining<B>,
        config: &BertConfig,
        device: &B::Device,
    ) -> Result<ForwardOutputs> {
        let (batch, seq) = self.validate(config)?;
        let grid = |g: Option<&Vec<Vec<i64>>>, fill: i64| -> Tensor<B, 2, Int> {
            let flat: Vec<i64> = match g {
                Some(g) => g.iter().flatten().copied().collect(),
                None => vec![fill; batch * seq],
            };
            Tensor::from_data(TensorData::new(flat, [batch, seq]), device)
        };
        let out = model.forward_full(
            grid(Some(&self.input_ids), 0),
            grid(self.token_type_ids.as_ref(), 0),
            grid(self.attention_mask.as_ref(), 1),
        );
        ForwardOutputs::from_full(out)
    }
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>, what: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let dims = t.dims().to_vec();
    Ok((dims, crate::host::host_values(t, what)?))
}

fn nest2((dims, v): (Vec<usize>, Vec<f32>)) -> Vec<Vec<f32>> {
    v.chunks(dims[1].max(1)).map(<[f32]>::to_vec).collect()
}

fn nest3((dims, v): (Vec<usize>, Vec<f32>)) -> Vec<Vec<Vec<f32>>> {
    let inner = dims[2].max(1);
    v.chunks(dims[1] * inner)
        .map(|row| row.chunks(inner).map(<[f32]>::to_vec).collect())
        .collect()
}

impl ForwardOutputs {
    /// Reads a [`FullOutput`] back to nested arrays.
    pub fn from_full<B: Backend>(out: FullOutput<B>) -> Result<Self> {
        Ok(Self {
            prediction_logits: nest3(host(out.prediction_logits, "the prediction logits")?),
            seq_relationship_logits: nest2(host(
                out.seq_relationship_logits,
                "the next-sentence logits",
            )?),
            last_hidden_state: nest3(host(out.last_hidden_state, "the last hidden state")?),
            pooler_output: nest2(host(out.pooler_output, "the pooler output")?),
        })
    }
}

/// One candidate for a masked position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Vocabulary id.
    pub id: u32,
    /// Softmax probability over the whole vocabulary.
    pub probability: f32,
}

/// Fill-mask: the `top_k` most probable ids at each of `positions` of one sequence `ids`
/// (which must already carry `[CLS]`, `[SEP]` and `[MASK]` ids).
pub fn fill_mask<B: Backend>(
    model: &BertForPreTraining<B>,
    config: &BertConfig,
    ids: &[i64],
    positions: &[usize],
    top_k: usize,
    device: &B::Device,
) -> Result<Vec<Vec<Prediction>>> {
    let inputs = ForwardInputs {
        input_ids: vec![ids.to_vec()],
        token_type_ids: None,
        attention_mask: None,
    };
    let (_, seq) = inputs.validate(config)?;
    if let Some(&bad) = positions.iter().find(|&&p| p >= seq) {
        return Err(ModelError::InvalidInput(format!(
            "mask position {bad} is outside the {seq}-token sequence"
        )));
    }
    let tensor = |fill: Option<i64>| -> Tensor<B, 2, Int> {
        let data = match fill {
            Some(v) => vec![v; seq],
            None => ids.to_vec(),
        };
        Tensor::from_data(TensorData::new(data, [1, seq]), device)
    };
    let encoded = model
        .bert
        .forward(tensor(None), tensor(Some(0)), tensor(Some(1)));
    let hidden = encoded.last_hidden_state.dims()[2];
    let index: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
    let gathered = encoded.last_hidden_state.reshape([seq, hidden]).select(
        0,
        Tensor::from_data(TensorData::new(index, [positions.len()]), device),
    );
    let probs =
        burn::tensor::activation::softmax(model.mlm.forward(gathered, model.word_embeddings()), 1);
    let vocab = probs.dims()[1];
    let values: Vec<f32> = crate::host::host_values(probs, "the fill-mask probabilities")?;
    Ok(values
        .chunks(vocab.max(1))
        .map(|row| {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            order
                .into_iter()
                .take(top_k)
                .map(|i| Prediction {
                    id: i as u32,
                    probability: row[i],
                })
                .collect()
        })
        .collect())
}
