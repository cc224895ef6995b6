//! Seeded weight initialisation, as BERT does it, from our own frozen RNG.
//!
//! Burn's initialisers draw from the backend's generator, whose stream differs between
//! backends and versions. Drawing on the host from `bert_rng` makes a seed give the same
//! initial weights on CPU, wgpu and CUDA, forever.

use bert_rng::Rng;
use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{backend::Backend, Tensor, TensorData};

/// Draws BERT's initial weights: normal(0, `std`) for matrices, zeros for biases, ones/zeros
/// for LayerNorm.
pub struct Initializer<'a, B: Backend> {
    rng: Rng,
    std: f64,
    device: &'a B::Device,
}

impl<'a, B: Backend> Initializer<'a, B> {
    /// An initialiser whose draws all follow from `seed`.
    pub fn new(seed: u64, std: f64, device: &'a B::Device) -> Self {
        Self {
            rng: Rng::new(seed),
            std,
            device,
        }
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &'a B::Device {
        self.device
    }

    /// A matrix of normal(0, std) values.
    pub fn normal(&mut self, rows: usize, cols: usize) -> Param<Tensor<B, 2>> {
        let values: Vec<f32> = (0..rows * cols)
            .map(|_| (self.rng.normal() * self.std) as f32)
            .collect();
        Param::from_tensor(Tensor::from_data(
            TensorData::new(values, [rows, cols]),
            self.device,
        ))
    }

    /// A vector of zeros.
    pub fn zeros(&mut self, len: usize) -> Param<Tensor<B, 1>> {
        Param::from_tensor(Tensor::zeros([len], self.device))
    }

    /// A linear layer `d_in → d_out`; Burn stores its weight as `[d_in, d_out]`.
    pub fn linear(&mut self, d_in: usize, d_out: usize) -> Linear<B> {
        Linear {
            weight: self.normal(d_in, d_out),
            bias: Some(self.zeros(d_out)),
        }
    }

    /// An embedding table; the padding row, if any, starts at zero as in HuggingFace.
    pub fn embedding(
        &mut self,
        rows: usize,
        dim: usize,
        padding_idx: Option<usize>,
    ) -> Embedding<B> {
        let mut values: Vec<f32> = (0..rows * dim)
            .map(|_| (self.rng.normal() * self.std) as f32)
            .collect();
        if let Some(pad) = padding_idx.filter(|&p| p < rows) {
            values[pad * dim..(pad + 1) * dim].fill(0.0);
        }
        let weight = Tensor::from_data(TensorData::new(values, [rows, dim]), self.device);
        Embedding {
            weight: Param::from_tensor(weight),
        }
    }

    /// A LayerNorm with weight one and bias zero.
    pub fn layer_norm(&mut self, dim: usize, eps: f64) -> LayerNorm<B> {
        LayerNormConfig::new(dim)
            .with_epsilon(eps)
            .init(self.device)
    }
}
