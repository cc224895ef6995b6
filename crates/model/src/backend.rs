//! Which Burn backend a model runs on, where the choice of kernel depends on it.

use burn::tensor::backend::Backend;

/// Whether `B` is Burn's CPU backend (flex), bare (`flex`) or under autodiff (`autodiff<flex>`).
pub fn is_flex<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    name == "flex" || name == "autodiff<flex>"
}
