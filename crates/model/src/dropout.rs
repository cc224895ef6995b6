//! Dropout that draws its masks on the host on the CPU backend.
//!
//! Burn's `Dropout` samples a Bernoulli tensor through the backend's generic sampler (ChaCha,
//! one element at a time) and then multiplies and divides: on the CPU backend that was about 9%
//! of a training step. On flex the mask is drawn here with `bert_rng` (xoshiro256**, two
//! decisions per draw) with the `1/(1-p)` scale folded into its values, as one fused op
//! ([`crate::fused::dropout`]): the mask is drawn and applied in one parallel pass, and the
//! backward pass regenerates it from the layer's seed instead of keeping it. On GPU backends uploading masks would cost far more than sampling them
//! on the device, so Burn's dropout stays.
//!
//! The host generator belongs to the thread: [`seed`] it before each forward pass on the thread
//! that runs it (the trainer seeds it per step and micro-batch, next to `Backend::seed`), so
//! data-parallel replicas on threads of one process draw their own streams.

use std::cell::RefCell;

use bert_rng::Rng;
use burn::nn::Dropout;
use burn::tensor::{backend::Backend, FloatDType, Tensor, TensorData};

use crate::backend::is_flex;

thread_local! {
    static HOST_RNG: RefCell<Option<Rng>> = const { RefCell::new(None) };
}

/// Seeds this thread's host generator that draws dropout masks on the CPU backend.
pub fn seed_dropout(seed: u64) {
    HOST_RNG.with(|rng| *rng.borrow_mut() = Some(Rng::new(seed)));
}

/// Applies `dropout` to `x`: identity outside training (no autodiff) or with probability 0.
pub fn apply<B: Backend, const D: usize>(dropout: &Dropout, x: Tensor<B, D>) -> Tensor<B, D> {
    let p = dropout.prob;
    if !B::ad_enabled(&x.device()) || p == 0.0 {
        return x;
    }
    if !is_flex::<B>() {
        return dropout.forward(x);
    }
    // One draw per dropout layer from this thread's generator seeds the layer's mask, which
    // the fused op draws in parallel runs and regenerates in the backward pass.
    let Some(seed) = draw_seed::<B>(dropout, &x.device()) else {
        return x;
    };
    crate::fused::dropout(x, seed, p, |x| {
        let shape = x.shape();
        let mask = host_mask(seed, shape.num_elements(), p);
        let mask = Tensor::<B, D>::from_data(TensorData::new(mask, shape), &x.device());
        // Under mixed precision `x` may be a half type; a binary op needs both sides in one type.
        let mask = mask.cast(FloatDType::from(x.dtype()));
        x * mask
    })
}

/// The mask seed of `dropout` for a fused op that draws its own mask (the attention's
/// probabilities), drawn from this thread's generator as [`apply`] draws it: `None` outside
/// training (no autodiff) or with probability 0, where nothing is drawn.
pub fn draw_seed<B: Backend>(dropout: &Dropout, device: &B::Device) -> Option<u64> {
    if !B::ad_enabled(device) || dropout.prob == 0.0 {
        return None;
    }
    Some(HOST_RNG.with(|rng| {
        rng.borrow_mut()
            .get_or_insert_with(|| Rng::new(0))
            .next_u64()
    }))
}

/// The `n` mask values of `(seed, p)`: 0 with probability `p`, else `1/(1-p)`; the same mask
/// the fused op applies ([`crate::fused::kernels::dropout`]).
fn host_mask(seed: u64, n: usize, p: f64) -> Vec<f32> {
    let mut mask = vec![1.0; n];
    crate::fused::kernels::dropout(&mut mask, seed, p);
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_drops_at_the_stated_rate_and_keeps_the_expectation() {
        let n = 1_000_001;
        for p in [0.1, 0.5] {
            let mask = host_mask(7, n, p);
            assert_eq!(mask.len(), n);
            let dropped = mask.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
            // Binomial standard deviation at n = 1e6 is at most 5e-4: 5 sigma.
            assert!((dropped - p).abs() < 2.5e-3, "p = {p}: dropped {dropped}");
            let mean = mask.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 5e-3, "p = {p}: mean {mean}");
        }
    }

    #[test]
    fn same_seed_same_mask() {
        // Local generators: the process-wide one is shared with any test running beside this.
        let a = host_mask(11, 100_000, 0.1);
        let b = host_mask(11, 100_000, 0.1);
        let c = host_mask(12, 100_000, 0.1);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
