//! The model crate's integration tests, in one binary: outputs and pre-training losses against
//! HuggingFace transformers (`hf_parity`), import and export of HuggingFace folders bit for bit
//! (`round_trip`), gradients and mixed precision (`gradient`), the sequence classifier against
//! `transformers` (`classifier`), and the fused CPU ops against their composition from Burn ops
//! (`fused`, `attention`; with the `wgpu` feature also the CubeCL kernels on wgpu,
//! `attention_wgpu` and `fused_wgpu`).

mod support;

mod attention;
#[cfg(feature = "wgpu")]
mod attention_wgpu;
mod classifier;
mod fused;
#[cfg(feature = "wgpu")]
mod fused_wgpu;
mod gradient;
mod hf_parity;
mod round_trip;
