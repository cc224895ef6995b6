//! Model FLOPs and MFU: how much of the hardware a step uses. The FLOPs are those of the model's
//! matrix products (the same count for `bert bench` and the step log), and MFU divides the
//! achieved rate by the device's peak from a small table (or `train.peak_tflops` /
//! `$BERT_PEAK_TFLOPS`).

use bert_model::{BertConfig, Precision};

/// Forward FLOPs of one pre-training step (2 per multiply-add), counting the matmuls: the
/// encoder on every token, attention's two batched products, the MLM head on the masked
/// positions only, the pooler and the NSP head.
pub fn forward_flops(c: &BertConfig, batch: usize, seq: usize, predictions: usize) -> f64 {
    let (h, i, v, l) = (
        c.hidden_size as f64,
        c.intermediate_size as f64,
        c.vocab_size as f64,
        c.num_hidden_layers as f64,
    );
    let tokens = (batch * seq) as f64;
    let per_layer = tokens * (4.0 * h * h + 2.0 * h * i) * 2.0
        + 2.0 * 2.0 * (batch as f64) * (seq * seq) as f64 * h;
    let masked = (batch * predictions) as f64;
    let head = masked * (h * h + h * v) * 2.0 + batch as f64 * (h * h + 2.0 * h) * 2.0;
    l * per_layer + head
}

/// Training FLOPs of batches of `(batch, seq, predictions)`: forward and backward, the
/// backward counted as twice the forward.
pub fn train_flops(
    c: &BertConfig,
    batches: impl IntoIterator<Item = (usize, usize, usize)>,
) -> f64 {
    batches
        .into_iter()
        .map(|(b, s, p)| 3.0 * forward_flops(c, b, s, p))
        .sum()
}

/// A device's peak FLOP/s for a precision, and where the figure comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Peak {
    /// FLOP/s.
    pub flops: f64,
    /// E.g. "NVIDIA H200, dense bf16 (table)" or "train.peak_tflops".
    pub source: String,
}

/// Dense peaks in TFLOP/s by GPU name fragment: (bf16/fp16 tensor cores, fp32 without them).
/// Vendors' data sheets, SXM variants where there are several; without sparsity.
const GPUS: &[(&str, f64, f64)] = &[
    ("H200", 989.4, 66.9),
    ("H100", 989.4, 66.9),
    ("A100", 312.0, 19.5),
    ("L40S", 362.1, 91.6),
    ("A10G", 70.0, 31.2),
    ("L4", 121.0, 30.3),
];

/// The peak of `device` (`cpu`, `cuda`, `cuda:N`, `wgpu`) at `precision`: an override
/// (`train.peak_tflops`, else `$BERT_PEAK_TFLOPS`) wins; a CUDA GPU is looked up by the name
/// `nvidia-smi` gives; the CPU's is its theoretical vector peak (cores × clock × FLOPs per
/// cycle of its widest FMA). `None` where nothing is known (wgpu without an override).
pub fn device_peak(
    device: &str,
    precision: Precision,
    override_tflops: Option<f64>,
) -> Option<Peak> {
    let env = std::env::var("BERT_PEAK_TFLOPS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok());
    if let Some((t, source)) = override_tflops
        .map(|t| (t, "train.peak_tflops"))
        .or(env.map(|t| (t, "$BERT_PEAK_TFLOPS")))
    {
        return Some(Peak {
            flops: t * 1e12,
            source: source.into(),
        });
    }
    let half = !matches!(precision, Precision::Fp32);
    if let Some(index) = device.strip_prefix("cuda") {
        let index = index.strip_prefix(':').unwrap_or("0");
        let name = gpu_name(index)?;
        let (_, tensor, fp32) = GPUS.iter().find(|(n, ..)| name.contains(n))?;
        let (t, kind) = if half {
            (*tensor, "dense bf16/fp16")
        } else {
            (*fp32, "fp32")
        };
        return Some(Peak {
            flops: t * 1e12,
            source: format!("{name}, {kind} (table)"),
        });
    }
    if device == "cpu" {
        return cpu_peak();
    }
    None
}

/// The name of CUDA GPU `index`, from `nvidia-smi`.
fn gpu_name(index: &str) -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader", "-i", index])
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !name.is_empty()).then_some(name)
}

/// The CPU's theoretical fp32 peak: threads the run uses × clock × FLOPs per cycle (two FMA
/// units of 16 lanes with AVX-512, of 8 with AVX2). bf16 products on the CPU run at the same
/// rate or slower, so the figure is the same. Linux only (`/proc/cpuinfo`).
fn cpu_peak() -> Option<Peak> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let field = |key: &str| {
        info.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let mhz: f64 = field("cpu MHz")?.parse().ok()?;
    let flags = field("flags")?;
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let (per_cycle, isa) = if has("avx512f") {
        (64.0, "AVX-512")
    } else if has("fma") && has("avx2") {
        (32.0, "AVX2 FMA")
    } else {
        (8.0, "SSE")
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Some(Peak {
        flops: cores * mhz * 1e6 * per_cycle,
        source: format!(
            "CPU, theoretical: {cores} threads × {:.2} GHz × {per_cycle} FLOP/cycle ({isa})",
            mhz / 1000.0
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_follow_the_shapes() {
        let c = BertConfig::preset("base").unwrap();
        // BERT-base at 128 tokens: about 2 × 85 M encoder parameters × 128 tokens, plus
        // attention, per sequence forward.
        let f = forward_flops(&c, 1, 128, 20);
        assert!((2.2e10..2.5e10).contains(&f), "{f:e}");
        assert_eq!(
            train_flops(&c, [(8, 128, 20), (8, 128, 20)]),
            2.0 * 3.0 * forward_flops(&c, 8, 128, 20)
        );
    }

    #[test]
    fn an_override_wins_and_a_gpu_is_found_in_the_table() {
        let p = device_peak("wgpu", Precision::Bf16, Some(100.0)).unwrap();
        assert_eq!((p.flops, p.source.as_str()), (1e14, "train.peak_tflops"));
        let (_, bf16, fp32) = GPUS.iter().find(|g| g.0 == "H200").unwrap();
        assert!(bf16 > fp32);
    }
}
