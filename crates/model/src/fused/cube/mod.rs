//! The fused ops on Burn's CubeCL backends (wgpu with the `wgpu` feature, CUDA with `cuda`):
//! [`AttentionKernels`](super::AttentionKernels) and [`FusedKernels`](super::FusedKernels) for
//! `CubeBackend<R, f32, _, _>` over any CubeCL runtime `R`, from one kernel source per op family
//! (WGSL on wgpu, C++ on CUDA). `Autodiff<B>` then has each op with its hand-written backward
//! pass (`fused/autodiff.rs`), and the bare backend its forward pass ([`super::FusedOps`],
//! [`super::AttentionOps`]). The AdamW update has a kernel too ([`adamw`]).
//!
//! Each kernel follows its flex counterpart in [`super::kernels`] formula for formula, with the
//! reductions of a row spread over a cube's units (tree reductions through shared memory, never
//! plane operations, which wgpu turns off on lavapipe where the tests run) and f32 statistics
//! where flex keeps f64 ones (WGSL has no f64).
//!
//! Dropout has no kernel here: flex draws its mask from a sequential xoshiro256** stream per
//! run of 32 768 elements ([`super::kernels::dropout`]), which a GPU could only reproduce with
//! one unit walking each run (or 256-bit jump-ahead matrices), far slower than the op itself. On
//! the CubeCL backends the model keeps Burn's dropout (`crate::dropout`), and the attention's
//! dropout its own counter-based mask, which the kernels do reproduce.
//!
//! Burn's fusion decorator (`Fusion<CubeBackend<…>>`) is not covered: the model crate does not
//! turn fusion on, so [`Wgpu`] is what `burn::backend::Wgpu` is in this crate's builds.

mod adamw;
mod attention;
mod attention_kernels;
mod cross_entropy;
mod gelu;
mod launch;
mod layer_norm;
mod ops;
mod reduce;
mod softmax;

use burn_cubecl::CubeBackend;

pub use adamw::adamw;
pub(crate) use attention::supports;
pub use attention::{MAX_HEAD_DIM, MAX_SEQ};

/// Burn's wgpu backend without fusion, f32: the type the fused ops are routed to on wgpu.
#[cfg(feature = "wgpu")]
pub type Wgpu = CubeBackend<cubecl::wgpu::WgpuRuntime, f32, i32, u32>;

/// Burn's CUDA backend without fusion, f32 (`burn::backend::Cuda` without Burn's `fusion`
/// feature): the type the fused ops are routed to on CUDA.
#[cfg(feature = "cuda")]
pub type Cuda = CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;
