//! The fused attention's CubeCL kernels on Burn's wgpu backend against the composition from
//! Burn ops on flex: the context and the gradients of the queries, keys and values, with padding
//! and dropout (the same mask from the same seed), bare and under autodiff; and a small BERT
//! trained one step on wgpu (through the kernels) against the same model on flex.
//!
//! Without a GPU, wgpu runs on Mesa's lavapipe (a Vulkan device on the CPU:
//! `apt-get install mesa-vulkan-drivers libvulkan1`). Where no wgpu adapter exists these tests
//! say so on stderr (uncaptured) and pass, except in CI (`CI` set), which must have one.

use std::any::Any;
use std::io::Write;
use std::sync::OnceLock;

use crate::attention::{check_on, dims, key_bias, Case};
use crate::fused::{assert_close, host, tensor, values};
use crate::gradient::small_batch;
use crate::support::{Cpu, CpuAd};
use bert_model::fused::{self, cube, AttentionDropout};
use bert_model::BertForPreTraining;
use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::DType;

pub(crate) type Wgpu = cube::Wgpu;
pub(crate) type WgpuAd = Autodiff<Wgpu>;

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// Whether wgpu has an adapter to run on. Without one, CubeCL's wgpu runtime panics while it
/// starts (on its device thread; the caller then panics on the closed channel, `RecvError`), so
/// the first use is tried once, behind `catch_unwind`. In CI a missing adapter fails the test
/// instead of skipping it.
pub(crate) fn wgpu_ready(test: &str) -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let probe = std::panic::catch_unwind(|| host(tensor::<Wgpu, 1>(vec![1.5, -2.0], [2])));
        match probe {
            Ok(v) if v == [1.5, -2.0] => Ok(()),
            Ok(v) => Err(format!("a round trip through the device gave {v:?}")),
            Err(payload) => Err(panic_message(payload)),
        }
    });
    match ready {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{test}: CI is set, but wgpu did not start, no usable adapter? (panic: {why})")
        }
        Err(why) => {
            // Straight to the process's stderr: the test harness captures `eprintln!` of a
            // passing test, and a skip must show.
            let note = format!(
                "SKIPPED {test}: wgpu did not start, no usable adapter? (panic: {why}); without a \
                 GPU, install lavapipe: apt-get install mesa-vulkan-drivers libvulkan1\n"
            );
            let _ = std::io::stderr().write_all(note.as_bytes());
            false
        }
    }
}

/// The kernels on `Autodiff<Wgpu>` against the composition on `Autodiff<Flex>`.
fn check(case: Case) {
    check_on::<WgpuAd>(case);
}

/// The bare backend's forward pass (no autodiff) on `Wgpu` and the composition on flex.
fn forward(case: &Case) -> (Vec<f32>, Vec<f32>) {
    fn context<B: Backend>(case: &Case, fused_op: bool) -> Vec<f32> {
        let d = case.dims;
        let shape = [d.batch * d.seq, d.hidden()];
        let qkv = [5, 6, 7].map(|s| tensor::<B, 2>(values(d.elements(), s, 2.0), shape));
        let bias = tensor::<B, 2>(key_bias(d.batch, d.seq, &case.padding), [d.batch, d.seq]);
        host(if fused_op {
            fused::attention(qkv, bias, d, case.dropout)
                .unwrap_or_else(|_| panic!("f32 attention on wgpu is fused"))
        } else {
            fused::attention_composed(qkv, bias, d, case.dropout)
        })
    }
    (context::<Wgpu>(case, true), context::<Cpu>(case, false))
}

#[test]
fn wgpu_attention_matches_the_composition_at_every_length_and_head_size() {
    if !wgpu_ready("wgpu_attention_matches_the_composition_at_every_length_and_head_size") {
        return;
    }
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
fn wgpu_attention_matches_the_composition_with_dropout_from_the_same_seed() {
    if !wgpu_ready("wgpu_attention_matches_the_composition_with_dropout_from_the_same_seed") {
        return;
    }
    // A seed with both halves non-zero: the kernels take it as two u32 halves.
    let seed = 0x1234_5678_9abc_def0;
    for (seq, head_dim) in [(1, 32), (7, 64), (128, 32), (128, 64)] {
        check(Case {
            dims: dims(2, seq, 3, head_dim),
            padding: vec![seq / 3, 0],
            dropout: Some(AttentionDropout { seed, p: 0.1 }),
        });
    }
}

#[test]
fn wgpu_attention_matches_the_composition_at_seq_512() {
    if !wgpu_ready("wgpu_attention_matches_the_composition_at_seq_512") {
        return;
    }
    for head_dim in [32, 64] {
        check(Case {
            dims: dims(2, 512, 2, head_dim),
            padding: vec![0, 200],
            dropout: Some(AttentionDropout { seed: 7, p: 0.1 }),
        });
    }
}

#[test]
fn wgpu_attention_without_autodiff_matches_the_composition_and_repeats_exactly() {
    if !wgpu_ready("wgpu_attention_without_autodiff_matches_the_composition_and_repeats_exactly") {
        return;
    }
    assert!(fused::attention_is_fused::<Wgpu>(DType::F32));
    assert!(fused::attention_is_fused::<WgpuAd>(DType::F32));
    assert!(!fused::attention_is_fused::<Wgpu>(DType::F16));
    let case = Case {
        dims: dims(2, 70, 4, 32),
        padding: vec![3, 0],
        dropout: Some(AttentionDropout { seed: 3, p: 0.2 }),
    };
    let (fused_context, composed) = forward(&case);
    assert_close("context without autodiff", &fused_context, &composed, 1e-5);
    assert_eq!(
        forward(&case).0,
        fused_context,
        "the same mask from the same seed"
    );
}

#[test]
fn wgpu_attention_takes_strided_views_such_as_column_blocks_of_one_projection() {
    if !wgpu_ready("wgpu_attention_takes_strided_views_such_as_column_blocks_of_one_projection") {
        return;
    }
    // Q, K and V as column blocks of one `[rows, 3 · hidden]` matrix (a fused projection's
    // output): views with a row stride of 3 · hidden, which the kernels must not read as
    // contiguous rows.
    let d = dims(2, 9, 2, 32);
    let (rows, hidden) = (d.batch * d.seq, d.hidden());
    let fused_qkv = values(rows * 3 * hidden, 8, 2.0);
    let block = |t: usize| -> Vec<f32> {
        fused_qkv
            .chunks_exact(3 * hidden)
            .flat_map(|row| row[t * hidden..(t + 1) * hidden].iter().copied())
            .collect()
    };
    let bias = key_bias(d.batch, d.seq, &[2, 0]);
    let dropout = Some(AttentionDropout { seed: 5, p: 0.1 });
    let all = tensor::<Wgpu, 2>(fused_qkv.clone(), [rows, 3 * hidden]);
    let views = [0, 1, 2].map(|t| all.clone().slice([0..rows, t * hidden..(t + 1) * hidden]));
    let context = fused::attention(views, tensor::<Wgpu, 2>(bias.clone(), [2, 9]), d, dropout)
        .unwrap_or_else(|_| panic!("f32 attention on wgpu is fused"));
    let want = fused::attention_composed(
        [0, 1, 2].map(|t| tensor::<Cpu, 2>(block(t), [rows, hidden])),
        tensor::<Cpu, 2>(bias, [2, 9]),
        d,
        dropout,
    );
    assert_close(
        "context of strided views",
        &host(context),
        &host(want),
        1e-5,
    );
}

#[test]
fn wgpu_attention_covers_more_rows_than_one_grid_dimension_holds() {
    if !wgpu_ready("wgpu_attention_covers_more_rows_than_one_grid_dimension_holds") {
        return;
    }
    // 66 000 query rows, one cube each: past the 65 535 cubes a grid dimension usually holds,
    // so the launch spreads them over two.
    let case = Case {
        dims: dims(33_000, 2, 1, 32),
        padding: vec![0, 1],
        dropout: Some(AttentionDropout { seed: 9, p: 0.3 }),
    };
    let (fused_context, composed) = forward(&case);
    assert_close("context over a 2-D grid", &fused_context, &composed, 1e-5);
}

#[test]
fn wgpu_attention_leaves_sequences_past_the_kernels_bound_to_the_composition() {
    if !wgpu_ready("wgpu_attention_leaves_sequences_past_the_kernels_bound_to_the_composition") {
        return;
    }
    let d = dims(1, cube::MAX_SEQ + 1, 1, 4);
    let shape = [d.seq, d.hidden()];
    let qkv = [1, 2, 3].map(|s| tensor::<Wgpu, 2>(values(d.elements(), s, 1.0), shape));
    let bias = tensor::<Wgpu, 2>(vec![0.0; d.seq], [1, d.seq]);
    assert!(fused::attention(qkv, bias, d, None).is_err());
}

/// Pre-training loss and the gradients of layer 0's query weight and of the word embeddings.
fn model_loss_and_grads<B: AutodiffBackend>() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let device = Default::default();
    // Dropout off (the small config's), so flex's host masks and wgpu's device masks agree.
    let config = bert_testutil::small_bert_config(80, 16);
    let model = BertForPreTraining::<B>::new(&config, 3, &device);
    let out = model.forward_pretraining(small_batch::<B>(&device));
    let grads = out.loss.backward();
    let query = model.bert.layers[0].attention.query.weight.grad(&grads);
    let word = model.bert.embeddings.word.weight.grad(&grads);
    (
        host(out.loss.inner()),
        host(query.expect("layer 0's query weight gets a gradient")),
        host(word.expect("the word embeddings get a gradient")),
    )
}

#[test]
fn bert_on_wgpu_with_the_fused_attention_trains_as_on_flex() {
    if !wgpu_ready("bert_on_wgpu_with_the_fused_attention_trains_as_on_flex") {
        return;
    }
    assert!(fused::attention_is_fused::<WgpuAd>(DType::F32));
    let (loss, query, word) = model_loss_and_grads::<WgpuAd>();
    let (want_loss, want_query, want_word) = model_loss_and_grads::<CpuAd>();
    // Gradients are held to their largest element: they are far below 1, where `assert_close`
    // (relative to 1 + |b|) would let a 1% error in the attention's backward pass through.
    // Observed: 3e-7 of it for the query weight (the other fused ops, LayerNorm, GELU and the
    // cross-entropy, run on both backends' own kernels; dropout is off).
    assert_close("loss", &loss, &want_loss, 1e-5);
    assert_close_to_scale("layer 0 query weight gradient", &query, &want_query, 1e-5);
    assert_close_to_scale("word embedding gradient", &word, &want_word, 1e-5);
}

/// Largest `|a − b|` within `tol` of the largest `|b|`.
pub(crate) fn assert_close_to_scale(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    assert!(a.iter().all(|v| v.is_finite()), "{what}: non-finite values");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: the reference is all zeros");
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= tol * scale,
        "{what}: wgpu and flex differ by {diff:e}, {:e} of the largest element {scale:e} \
         (tolerance {tol:e})",
        diff / scale
    );
}
