//! Dropout that draws its masks on the host on the CPU backend.
//!
//! Burn's `Dropout` samples a Bernoulli tensor through the backend's generic sampler (ChaCha,
//! one element at a time) and then multiplies and divides: on the CPU backend that was about 9%
//! of a training step. On flex the mask is drawn here with `bert_rng` (xoshiro256**, two
//! decisions per draw) with the `1/(1-p)` scale folded into its values, so forward and backward
//! are one multiply each. On GPU backends uploading masks would cost far more than sampling them
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
pub fn seed(seed: u64) {
    HOST_RNG.with(|rng| *rng.borrow_mut() = Some(Rng::new(seed)));
}

/// Applies `dropout` to `x`: identity outside training (no autodiff) or with probability 0.
pub fn apply<B: Backend, const D: usize>(dropout: &Dropout, x: Tensor<B, D>) -> Tensor<B, D> {
    let p = dropout.prob;
    if !B::ad_enabled(&x.device()) || p == 0.0 {
        return x;
    }
    if !is_flex::<B>(&x.device()) {
        return dropout.forward(x);
    }
    let shape = x.shape();
    let mask = HOST_RNG.with(|rng| {
        let mut rng = rng.borrow_mut();
        host_mask(
            rng.get_or_insert_with(|| Rng::new(0)),
            shape.num_elements(),
            p,
        )
    });
    let mask = Tensor::<B, D>::from_data(TensorData::new(mask, shape), &x.device());
    // Under mixed precision `x` may be a half type; a binary op needs both sides in one type.
    let mask = mask.cast(FloatDType::from(x.dtype()));
    x * mask
}

/// `n` mask values drawn from `rng`: 0 with probability `p`, else `1/(1-p)`.
fn host_mask(rng: &mut Rng, n: usize, p: f64) -> Vec<f32> {
    let keep_scale = (1.0 / (1.0 - p)) as f32;
    // A 32-bit uniform against a 32-bit threshold: P(drop) = p to within 2^-32.
    let threshold = (p * 4_294_967_296.0).round().min(u32::MAX as f64) as u64;
    let mut mask = Vec::with_capacity(n);
    let value = |bits: u64| if bits < threshold { 0.0 } else { keep_scale };
    while mask.len() + 2 <= n {
        let r = rng.next_u64();
        mask.push(value(r & 0xffff_ffff));
        mask.push(value(r >> 32));
    }
    if mask.len() < n {
        mask.push(value(rng.next_u64() & 0xffff_ffff));
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_drops_at_the_stated_rate_and_keeps_the_expectation() {
        let mut rng = Rng::new(7);
        let n = 1_000_001;
        for p in [0.1, 0.5] {
            let mask = host_mask(&mut rng, n, p);
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
        let a = host_mask(&mut Rng::new(11), 1000, 0.1);
        let b = host_mask(&mut Rng::new(11), 1000, 0.1);
        let c = host_mask(&mut Rng::new(12), 1000, 0.1);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
