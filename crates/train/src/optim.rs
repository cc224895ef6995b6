//! AdamW and LAMB as BERT pre-training uses them, with state that checkpoints can store.
//!
//! Burn's AdamW has other defaults (ε 1e-5, weight decay 1e-4), no per-parameter decay groups
//! and no LAMB; and we need its state under stable names for checkpoints. So the update rule is
//! written here, on flattened parameter vectors, once for every backend.

use bert_model::fused::{self, kernels::AdamwScalars, AdamwInputs};
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay (Loshchilov & Hutter), as in BERT.
    Adamw,
    /// LAMB (You et al.): Adam direction scaled per layer by the trust ratio `‖w‖ / ‖update‖`,
    /// for large-batch pre-training.
    Lamb,
}

/// The `[optimizer]` table: hyper-parameters of the optimiser (BERT's defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// `adamw` or `lamb`.
    pub kind: OptimizerKind,
    /// Peak learning rate (the schedule scales it).
    pub learning_rate: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the second-moment root.
    pub epsilon: f64,
    /// Decoupled weight decay, applied to linear weights and embeddings only (never to
    /// LayerNorm parameters or biases).
    pub weight_decay: f64,
    /// Divide the moments by `1 - β^t` (PyTorch/HuggingFace AdamW, NVIDIA LAMB). The original
    /// TensorFlow BERT optimiser did not; set `false` to reproduce it.
    pub bias_correction: bool,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adamw,
            learning_rate: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-6,
            weight_decay: 0.01,
            bias_correction: true,
        }
    }
}

impl OptimizerConfig {
    /// Checks the values no run can use, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(format!(
                "`optimizer.learning_rate` is {}, expected a positive number",
                self.learning_rate
            ));
        }
        for (key, b) in [
            ("optimizer.beta1", self.beta1),
            ("optimizer.beta2", self.beta2),
        ] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("`{key}` is {b}, expected a value in [0, 1)"));
            }
        }
        if self.epsilon.is_nan() || self.epsilon <= 0.0 {
            return Err("`optimizer.epsilon` must be positive".into());
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return Err("`optimizer.weight_decay` must be at least 0".into());
        }
        Ok(())
    }
}

/// The factor that brings a gradient of norm `grad_norm` down to `max_grad_norm` (1 when it is
/// below, or clipping is off with 0), as PyTorch's `clip_grad_norm_` computes it.
pub fn clip_factor(grad_norm: f64, max_grad_norm: f64) -> f64 {
    if max_grad_norm > 0.0 && grad_norm > max_grad_norm {
        max_grad_norm / (grad_norm + 1e-6)
    } else {
        1.0
    }
}

/// First and second moments of one parameter, flattened.
#[derive(Clone, Debug)]
pub struct Moments<B: Backend> {
    /// Exponential average of gradients.
    pub m: Tensor<B, 1>,
    /// Exponential average of squared gradients.
    pub v: Tensor<B, 1>,
}

/// One parameter handed to [`Optimizer::update`]: flattened value and (already scaled) gradient.
pub struct ParamSlot<'a, B: Backend> {
    /// Current value, flattened.
    pub value: Tensor<B, 1>,
    /// Gradient, flattened, summed over micro-batches.
    pub grad: Tensor<B, 1>,
    /// Factor applied to `grad` first (averaging over micro-batches, clipping, loss-scale
    /// removal): folded into the fused update instead of a pass of its own. 1 for none.
    pub grad_scale: f64,
    /// Whether weight decay (and for LAMB the trust ratio) applies.
    pub decay: bool,
    /// Its moments; `None` before the first update.
    pub moments: &'a mut Option<Moments<B>>,
}

/// The optimiser: configuration plus the step counter (moments live with the parameters).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    /// Hyper-parameters.
    pub config: OptimizerConfig,
    /// Number of updates applied so far.
    pub step: u64,
}

impl Optimizer {
    /// A fresh optimiser.
    pub fn new(config: OptimizerConfig) -> Self {
        Self { config, step: 0 }
    }

    /// Applies one update with learning rate `lr` and returns the new value of `slot`.
    /// Call [`Optimizer::finish_step`] once after all parameters of the step.
    ///
    /// AdamW runs as one fused pass (`bert_model::fused::adamw`) on the CPU backend and on the
    /// plain wgpu and CUDA backends (with `bert-model`'s features); LAMB and other backends
    /// compose it from tensor ops.
    pub fn update<B: Backend>(&self, slot: ParamSlot<'_, B>, lr: f64) -> Tensor<B, 1> {
        let c = &self.config;
        if c.kind != OptimizerKind::Adamw {
            return self.update_composed(slot, lr);
        }
        let (bias1, bias2) = self.bias_corrections();
        let scalars = AdamwScalars {
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            one_minus_beta1: (1.0 - c.beta1) as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
            epsilon: c.epsilon as f32,
            weight_decay: if slot.decay {
                c.weight_decay as f32
            } else {
                0.0
            },
            lr: lr as f32,
            bias1: bias1 as f32,
            bias2: bias2 as f32,
            grad_scale: slot.grad_scale as f32,
        };
        let inputs = AdamwInputs {
            value: slot.value,
            grad: slot.grad,
            moments: slot.moments.take().map(|Moments { m, v }| (m, v)),
        };
        match fused::adamw(inputs, scalars) {
            Ok((w, m, v)) => {
                *slot.moments = Some(Moments { m, v });
                w
            }
            Err(inputs) => {
                *slot.moments = inputs.moments.map(|(m, v)| Moments { m, v });
                self.update_composed(
                    ParamSlot {
                        value: inputs.value,
                        grad: inputs.grad,
                        grad_scale: slot.grad_scale,
                        decay: slot.decay,
                        moments: slot.moments,
                    },
                    lr,
                )
            }
        }
    }

    /// The divisors `(1 − β1^t, 1 − β2^t)` of this step's moments, `(1, 1)` without bias
    /// correction; the fused and the composed update share them.
    fn bias_corrections(&self) -> (f64, f64) {
        let c = &self.config;
        if c.bias_correction {
            let t = (self.step + 1) as i32;
            (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t))
        } else {
            (1.0, 1.0)
        }
    }

    /// [`Optimizer::update`] composed from tensor ops, on every backend and for both rules.
    pub fn update_composed<B: Backend>(&self, slot: ParamSlot<'_, B>, lr: f64) -> Tensor<B, 1> {
        let c = &self.config;
        let g = if slot.grad_scale != 1.0 {
            slot.grad.mul_scalar(slot.grad_scale)
        } else {
            slot.grad
        };
        let (m, v) = match slot.moments.take() {
            Some(Moments { m, v }) => (
                m.mul_scalar(c.beta1) + g.clone().mul_scalar(1.0 - c.beta1),
                v.mul_scalar(c.beta2) + g.clone().powi_scalar(2).mul_scalar(1.0 - c.beta2),
            ),
            None => (
                g.clone().mul_scalar(1.0 - c.beta1),
                g.powi_scalar(2).mul_scalar(1.0 - c.beta2),
            ),
        };
        let (m_hat, v_hat) = if c.bias_correction {
            let (bias1, bias2) = self.bias_corrections();
            (m.clone().div_scalar(bias1), v.clone().div_scalar(bias2))
        } else {
            (m.clone(), v.clone())
        };
        let mut direction = m_hat / v_hat.sqrt().add_scalar(c.epsilon);
        *slot.moments = Some(Moments { m, v });
        let w = slot.value;
        let decay = if slot.decay { c.weight_decay } else { 0.0 };
        if decay != 0.0 {
            direction = direction + w.clone().mul_scalar(decay);
        }
        if c.kind == OptimizerKind::Lamb && slot.decay {
            // Trust ratio ‖w‖/‖u‖, 1 when either norm is zero; kept on the device (no sync).
            let w_norm = crate::reduce::sum_of_squares(w.clone()).sqrt();
            let u_norm = crate::reduce::sum_of_squares(direction.clone()).sqrt();
            let ok = w_norm
                .clone()
                .greater_elem(0.0)
                .bool_and(u_norm.clone().greater_elem(0.0));
            let ratio = (w_norm / u_norm.clone().clamp_min(1e-30))
                .mask_where(ok.bool_not(), u_norm.ones_like());
            direction = direction * ratio;
        }
        w - direction.mul_scalar(lr)
    }

    /// Marks the end of an optimiser step.
    pub fn finish_step(&mut self) {
        self.step += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    type B = burn::backend::Flex;

    fn t(v: &[f32]) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
    }

    fn host(x: Tensor<B, 1>) -> Vec<f64> {
        bert_model::host_values(x, "a test tensor").unwrap()
    }

    fn close(a: &[f64], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6 * (1.0 + y.abs()), "{a:?} vs {b:?}");
        }
    }

    /// Reference AdamW/LAMB in f64 on the host, written from the papers' formulas.
    fn reference(
        kind: OptimizerKind,
        w: &[f64],
        grads: &[Vec<f64>],
        decay: bool,
        lr: f64,
        c: &OptimizerConfig,
    ) -> Vec<f64> {
        let mut w = w.to_vec();
        let mut m = vec![0.0; w.len()];
        let mut v = vec![0.0; w.len()];
        for (step, g) in grads.iter().enumerate() {
            let t = (step + 1) as i32;
            let mut u = vec![0.0; w.len()];
            for i in 0..w.len() {
                m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g[i];
                v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g[i] * g[i];
                let (mh, vh) = if c.bias_correction {
                    (
                        m[i] / (1.0 - c.beta1.powi(t)),
                        v[i] / (1.0 - c.beta2.powi(t)),
                    )
                } else {
                    (m[i], v[i])
                };
                u[i] =
                    mh / (vh.sqrt() + c.epsilon) + if decay { c.weight_decay * w[i] } else { 0.0 };
            }
            let ratio = if kind == OptimizerKind::Lamb && decay {
                let wn = w.iter().map(|x| x * x).sum::<f64>().sqrt();
                let un = u.iter().map(|x| x * x).sum::<f64>().sqrt();
                if wn > 0.0 && un > 0.0 {
                    wn / un
                } else {
                    1.0
                }
            } else {
                1.0
            };
            for i in 0..w.len() {
                w[i] -= lr * ratio * u[i];
            }
        }
        w
    }

    /// Runs three updates through `update` (fused on this backend for AdamW) or
    /// `update_composed`, gradients given doubled with a `grad_scale` of ½ when `scaled`.
    fn run(kind: OptimizerKind, decay: bool, bias_correction: bool) {
        for composed in [false, true] {
            for scaled in [false, true] {
                run_one(kind, decay, bias_correction, composed, scaled);
            }
        }
    }

    fn run_one(
        kind: OptimizerKind,
        decay: bool,
        bias_correction: bool,
        composed: bool,
        scaled: bool,
    ) {
        let config = OptimizerConfig {
            kind,
            bias_correction,
            weight_decay: 0.1,
            ..Default::default()
        };
        let w0 = [0.5f32, -1.25, 2.0];
        let grads = [
            vec![0.1, -0.2, 0.3],
            vec![-0.05, 0.4, 0.0],
            vec![1.0, 1.0, -1.0],
        ];
        let lr = 0.01;
        let mut opt = Optimizer::new(config.clone());
        let mut w = t(&w0);
        let mut moments = None;
        for g in &grads {
            let factor = if scaled { 2.0 } else { 1.0 };
            let gf: Vec<f32> = g.iter().map(|&x| (x * factor) as f32).collect();
            let slot = ParamSlot {
                value: w,
                grad: t(&gf),
                grad_scale: 1.0 / factor,
                decay,
                moments: &mut moments,
            };
            w = if composed {
                opt.update_composed(slot, lr)
            } else {
                opt.update(slot, lr)
            };
            opt.finish_step();
        }
        let g64: Vec<Vec<f64>> = grads
            .iter()
            .map(|g| g.iter().map(|&x| x as f32 as f64).collect())
            .collect();
        let w64: Vec<f64> = w0.iter().map(|&x| x as f64).collect();
        close(&host(w), &reference(kind, &w64, &g64, decay, lr, &config));
        assert_eq!(opt.step, 3);
    }

    #[test]
    fn adamw_matches_hand_computed_updates() {
        run(OptimizerKind::Adamw, true, true);
        run(OptimizerKind::Adamw, false, true);
        run(OptimizerKind::Adamw, true, false);
    }

    #[test]
    fn fused_adamw_matches_the_composed_update_on_a_large_parameter() {
        // 100,003 elements: many parallel tasks and a ragged last one.
        let n = 100_003;
        let val = |i: usize, k: usize| ((i * 7919 + k * 104_729) % 2001) as f32 / 1000.0 - 1.0;
        let w0: Vec<f32> = (0..n).map(|i| val(i, 1)).collect();
        let opt = |step| Optimizer {
            config: OptimizerConfig::default(),
            step,
        };
        let (mut fused_w, mut composed_w) = (t(&w0), t(&w0));
        let (mut fused_m, mut composed_m) = (None, None);
        for step in 0..3u64 {
            let g: Vec<f32> = (0..n).map(|i| val(i, step as usize + 2) * 0.1).collect();
            let slot = |value, moments| ParamSlot {
                value,
                grad: t(&g),
                grad_scale: 0.7,
                decay: true,
                moments,
            };
            fused_w = opt(step).update(slot(fused_w, &mut fused_m), 1e-3);
            composed_w = opt(step).update_composed(slot(composed_w, &mut composed_m), 1e-3);
        }
        close(&host(fused_w), &host(composed_w));
        let (f, c) = (fused_m.expect("moments"), composed_m.expect("moments"));
        close(&host(f.m), &host(c.m));
        close(&host(f.v), &host(c.v));
    }

    #[test]
    fn lamb_matches_hand_computed_updates() {
        run(OptimizerKind::Lamb, true, true);
        run(OptimizerKind::Lamb, false, true);
    }

    #[test]
    fn first_adamw_step_by_hand() {
        // One step, bias-corrected: m̂ = g, v̂ = g², so the Adam direction is g/(|g|+ε) ≈ sign(g).
        // w = 1, g = 0.5, lr = 0.1, wd = 0.01: w' = 1 - 0.1·(0.5/(0.5+1e-6) + 0.01·1).
        let opt = Optimizer::new(OptimizerConfig::default());
        let mut moments = None;
        let w = opt.update(
            ParamSlot {
                value: t(&[1.0]),
                grad: t(&[0.5]),
                grad_scale: 1.0,
                decay: true,
                moments: &mut moments,
            },
            0.1,
        );
        let expected = 1.0 - 0.1 * (0.5 / (0.5 + 1e-6) + 0.01);
        assert!((host(w)[0] - expected).abs() < 1e-7);
        // A bias (decay = false) gets no weight decay.
        let mut moments = None;
        let b = opt.update(
            ParamSlot {
                value: t(&[1.0]),
                grad: t(&[0.5]),
                grad_scale: 1.0,
                decay: false,
                moments: &mut moments,
            },
            0.1,
        );
        assert!((host(b)[0] - (1.0 - 0.1 * 0.5 / (0.5 + 1e-6))).abs() < 1e-7);
    }
}
