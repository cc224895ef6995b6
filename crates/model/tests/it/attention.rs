//! The fused attention op against its composition from Burn ops: the context and the gradients
//! of the queries, keys and values, with padding and dropout (the same mask from the same seed),
//! at the sequence lengths and head sizes the presets use.

use crate::fused::{assert_close, host, tensor, values};
use crate::support::{Cpu, CpuAd};
use bert_model::fused::{self, AttentionDims, AttentionDropout};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

/// `[batch, seq]` key bias: the last `padding[b]` keys of sequence `b` are padding.
pub(crate) fn key_bias(batch: usize, seq: usize, padding: &[usize]) -> Vec<f32> {
    (0..batch * seq)
        .map(|i| {
            let (b, j) = (i / seq, i % seq);
            if j >= seq - padding[b % padding.len()].min(seq - 1) {
                -10_000.0
            } else {
                0.0
            }
        })
        .collect()
}

/// One shape of attention with its padding and dropout.
pub(crate) struct Case {
    pub(crate) dims: AttentionDims,
    pub(crate) padding: Vec<usize>,
    pub(crate) dropout: Option<AttentionDropout>,
}

impl Case {
    /// How a failure names the case.
    pub(crate) fn label(&self) -> String {
        format!(
            "seq {} head_dim {} padding {:?} dropout {:?}",
            self.dims.seq, self.dims.head_dim, self.padding, self.dropout
        )
    }
}

/// Context and `[dq, dk, dv]` of `loss = Σ context ∘ w` on backend `B`, fused or composed.
pub(crate) fn run<B: AutodiffBackend>(case: &Case, fused_op: bool) -> (Vec<f32>, [Vec<f32>; 3]) {
    let dims = case.dims;
    let shape = [dims.batch * dims.seq, dims.hidden()];
    let n = dims.elements();
    let qkv: [Tensor<B, 2>; 3] =
        [1, 2, 3].map(|s| tensor::<B, 2>(values(n, s, 2.0), shape).require_grad());
    let bias = tensor::<B, 2>(
        key_bias(dims.batch, dims.seq, &case.padding),
        [dims.batch, dims.seq],
    );
    let context = if fused_op {
        fused::attention(qkv.clone(), bias, dims, case.dropout)
            .unwrap_or_else(|_| panic!("f32 attention on {} is fused", std::any::type_name::<B>()))
    } else {
        fused::attention_composed(qkv.clone(), bias, dims, case.dropout)
    };
    let w = tensor::<B, 2>(values(n, 4, 1.0), shape);
    let grads = (context.clone() * w).sum().backward();
    let d = qkv.map(|t| host(t.grad(&grads).expect("gradient of q, k and v")));
    (host(context), d)
}

/// The fused op on `B` against the composition on flex, context and gradients to 1e-5.
pub(crate) fn check_on<B: AutodiffBackend>(case: Case) {
    let label = case.label();
    let (fused_context, fused_grads) = run::<B>(&case, true);
    let (context, grads) = run::<CpuAd>(&case, false);
    assert_close(&format!("{label}: context"), &fused_context, &context, 1e-5);
    for (name, (f, c)) in ["dq", "dk", "dv"]
        .iter()
        .zip(fused_grads.iter().zip(&grads))
    {
        assert_close(&format!("{label}: {name}"), f, c, 1e-5);
    }
}

fn check(case: Case) {
    check_on::<CpuAd>(case);
}

pub(crate) fn dims(batch: usize, seq: usize, heads: usize, head_dim: usize) -> AttentionDims {
    AttentionDims {
        batch,
        seq,
        heads,
        head_dim,
    }
}

#[test]
fn fused_attention_matches_the_composition_at_every_length_and_head_size() {
    for seq in [1, 7, 128] {
        for head_dim in [32, 64] {
            check(Case {
                dims: dims(3, seq, 2, head_dim),
                padding: vec![0, seq / 2, seq.saturating_sub(2)],
                dropout: None,
            });
        }
    }
}

#[test]
fn fused_attention_matches_the_composition_with_dropout_from_the_same_seed() {
    for (seq, head_dim) in [(1, 32), (7, 64), (128, 32), (128, 64)] {
        check(Case {
            dims: dims(2, seq, 3, head_dim),
            padding: vec![seq / 3, 0],
            dropout: Some(AttentionDropout { seed: 42, p: 0.1 }),
        });
    }
}

#[test]
fn fused_attention_matches_the_composition_at_seq_512() {
    for head_dim in [32, 64] {
        check(Case {
            dims: dims(2, 512, 2, head_dim),
            padding: vec![0, 200],
            dropout: Some(AttentionDropout { seed: 7, p: 0.1 }),
        });
    }
}

#[test]
fn fused_attention_without_autodiff_gives_the_same_context_whatever_the_thread_count() {
    let d = dims(2, 70, 4, 32);
    let shape = [d.batch * d.seq, d.hidden()];
    let n = d.elements();
    let forward = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool")
            .install(|| {
                let qkv = [5, 6, 7].map(|s| tensor::<Cpu, 2>(values(n, s, 2.0), shape));
                let bias = tensor::<Cpu, 2>(key_bias(2, 70, &[3, 0]), [2, 70]);
                let dropout = Some(AttentionDropout { seed: 3, p: 0.2 });
                host(
                    fused::attention(qkv, bias, d, dropout)
                        .unwrap_or_else(|_| panic!("f32 on flex is fused")),
                )
            })
    };
    let one = forward(1);
    assert_eq!(forward(3), one, "bit-identical whatever the thread count");
    let qkv = [5, 6, 7].map(|s| tensor::<Cpu, 2>(values(n, s, 2.0), shape));
    let bias = tensor::<Cpu, 2>(key_bias(2, 70, &[3, 0]), [2, 70]);
    let composed = host(fused::attention_composed(
        qkv,
        bias,
        d,
        Some(AttentionDropout { seed: 3, p: 0.2 }),
    ));
    assert_close("context without autodiff", &one, &composed, 1e-5);
}

#[test]
fn padded_keys_get_no_attention_and_no_gradient() {
    let d = dims(1, 9, 2, 32);
    let case = Case {
        dims: d,
        padding: vec![4],
        dropout: None,
    };
    let (_, [_, dk, dv]) = run::<CpuAd>(&case, true);
    // Keys 5..9 of the one sequence are padding: their key and value rows get nothing back.
    for row in 5..9 {
        let at = row * d.hidden();
        assert!(
            dk[at..at + d.hidden()].iter().all(|&g| g == 0.0),
            "dk row {row}"
        );
        assert!(
            dv[at..at + d.hidden()].iter().all(|&g| g == 0.0),
            "dv row {row}"
        );
    }
    assert!(dv[..d.hidden()].iter().any(|&g| g != 0.0));
}

#[test]
fn half_precision_inputs_take_the_composition() {
    let d = dims(1, 4, 1, 32);
    let qkv = [1, 2, 3].map(|s| {
        tensor::<Cpu, 2>(values(d.elements(), s, 1.0), [4, 32]).cast(burn::tensor::FloatDType::BF16)
    });
    let bias = tensor::<Cpu, 2>(vec![0.0; 4], [1, 4]);
    assert!(fused::attention(qkv, bias, d, None).is_err());
    assert!(!fused::attention_is_fused::<CpuAd>(
        burn::tensor::DType::BF16
    ));
    assert!(fused::attention_is_fused::<CpuAd>(burn::tensor::DType::F32));
    assert!(fused::attention_is_fused::<Cpu>(burn::tensor::DType::F32));
}
