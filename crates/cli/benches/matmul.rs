//! The matrix products of one BERT pre-training step, timed one by one on the engines a CPU run
//! could use: flex's (the `gemm` crate with its AVX-512 kernels, what `bert train` runs) and
//! `matrixmultiply` (ndarray's default). `scripts/bench_matmul.py` times the same products in
//! PyTorch (oneDNN/MKL) and NumPy (OpenBLAS), so the four can be put side by side
//! (`docs/benchmarks.md`, issue 13).
//!
//! `cargo bench -p bert-cli --bench matmul -- [PRESET] [BATCH] [SEQ] [MASKED_PER_SEQ] [THREADS]`
//! (defaults: mini 32 128 20, threads = Rayon's default); with `--list` it prints the products as
//! JSON lines instead of timing them, the list the Python script times. Each product runs as in the step:
//! transposed operands are strided views, never copied first. Printed per product: how often a
//! step runs it, milliseconds and GFLOP/s per engine; then Σ count × time, the matrix-product
//! seconds of one step.

use std::time::Instant;

// The allocator and setting of the `bert` binary (`src/main.rs`): flex allocates every output,
// and with the system allocator re-faulting those pages would be timed as matrix-product time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bert_model::BertConfig;
use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};

/// One matrix product of the step: `batch` products of `[m, k] × [k, n]`.
struct Product {
    name: String,
    /// How many times one training step (forward + backward) runs it.
    per_step: usize,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    /// The left operand is a transposed view (stored `[k, m]`).
    lhs_t: bool,
    /// The right operand is a transposed view (stored `[n, k]`).
    rhs_t: bool,
}

impl Product {
    fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.k * self.n) as f64
    }
}

/// Every product of a step of `config` at `batch × seq` with `masked` MLM positions in all,
/// forward and backward (the gradient of a product `A·B` is `dC·Bᵀ` for `A` and `Aᵀ·dC` for `B`).
fn products(config: &BertConfig, batch: usize, seq: usize, masked: usize) -> Vec<Product> {
    let (h, i, v, layers) = (
        config.hidden_size,
        config.intermediate_size,
        config.vocab_size,
        config.num_hidden_layers,
    );
    let heads = config.num_attention_heads;
    let d = h / heads;
    let rows = batch * seq;
    let mut out = Vec::new();
    let mut linear = |name: &str, per_step: usize, m: usize, k: usize, n: usize| {
        let p = |suffix: &str, m, k, n, lhs_t, rhs_t| Product {
            name: format!("{name} {suffix}"),
            per_step,
            batch: 1,
            m,
            k,
            n,
            lhs_t,
            rhs_t,
        };
        out.push(p("fwd", m, k, n, false, false));
        out.push(p("dX", m, n, k, false, true));
        out.push(p("dW", k, m, n, true, false));
    };
    linear(&format!("q/k/v/out {h}x{h}"), 4 * layers, rows, h, h);
    linear(&format!("ffn in {h}x{i}"), layers, rows, h, i);
    linear(&format!("ffn out {i}x{h}"), layers, rows, i, h);
    linear(&format!("mlm transform {h}x{h}"), 1, masked, h, h);
    // The decoder multiplies by the word embeddings transposed: [masked, h] × [v, h]ᵀ.
    let b = batch * heads;
    for (suffix, m, k, n, lhs_t, rhs_t) in [
        ("fwd", masked, h, v, false, true),
        ("dX", masked, v, h, false, false),
        ("dW", v, masked, h, true, false),
    ] {
        out.push(Product {
            name: format!("mlm decoder {h}x{v} {suffix}"),
            per_step: 1,
            batch: 1,
            m,
            k,
            n,
            lhs_t,
            rhs_t,
        });
    }
    // Attention, per head: scores = Q·Kᵀ, context = P·V, and their gradients.
    for (name, m, k, n, lhs_t, rhs_t) in [
        ("attn scores Q.Kt fwd", seq, d, seq, false, true),
        ("attn scores dQ = dS.K", seq, seq, d, false, false),
        ("attn scores dK = dSt.Q", seq, seq, d, true, false),
        ("attn context P.V fwd", seq, seq, d, false, false),
        ("attn context dP = dC.Vt", seq, d, seq, false, true),
        ("attn context dV = Pt.dC", seq, seq, d, true, false),
    ] {
        out.push(Product {
            name: format!("{name} ({b}x)"),
            per_step: layers,
            batch: b,
            m,
            k,
            n,
            lhs_t,
            rhs_t,
        });
    }
    out
}

/// Median seconds of `f` over enough runs to fill ≈0.4 s (at least 3), after one warm-up run.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed().as_secs_f64() < 0.4 && times.len() < 50) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The product on flex, with transposed operands as strided views as autodiff makes them.
fn flex_seconds(p: &Product) -> f64 {
    let dev = Default::default();
    let dist = Distribution::Uniform(-1.0, 1.0);
    let lhs: Tensor<Flex, 3> = if p.lhs_t {
        Tensor::random([p.batch, p.k, p.m], dist, &dev).swap_dims(1, 2)
    } else {
        Tensor::random([p.batch, p.m, p.k], dist, &dev)
    };
    let rhs: Tensor<Flex, 3> = if p.rhs_t {
        Tensor::random([p.batch, p.n, p.k], dist, &dev).swap_dims(1, 2)
    } else {
        Tensor::random([p.batch, p.k, p.n], dist, &dev)
    };
    if p.batch == 1 {
        // The linear layers run 2-D products (`precision::linear`), not batched ones.
        let (l2, r2): (Tensor<Flex, 2>, Tensor<Flex, 2>) =
            (lhs.clone().squeeze_dim(0), rhs.clone().squeeze_dim(0));
        time(|| drop(l2.clone().matmul(r2.clone())))
    } else {
        time(|| drop(lhs.clone().matmul(rhs.clone())))
    }
}

/// Operand buffers of a product as stored, and their row/column strides (a transposed view
/// swaps them), shared by the engines called on raw pointers.
struct Operands {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    /// Row and column strides of `a` as the product reads it.
    rsa: isize,
    csa: isize,
    /// Row and column strides of `b` as the product reads it.
    rsb: isize,
    csb: isize,
}

impl Operands {
    fn new(p: &Product) -> Self {
        let fill = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|x| ((x * 7919 % 1000) as f32) / 500.0 - 1.0)
                .collect()
        };
        let (rsa, csa) = if p.lhs_t {
            (1, p.m as isize)
        } else {
            (p.k as isize, 1)
        };
        let (rsb, csb) = if p.rhs_t {
            (1, p.k as isize)
        } else {
            (p.n as isize, 1)
        };
        Self {
            a: fill(p.batch * p.m * p.k),
            b: fill(p.batch * p.k * p.n),
            c: vec![0f32; p.batch * p.m * p.n],
            rsa,
            csa,
            rsb,
            csb,
        }
    }
}

/// The product with `matrixmultiply::sgemm`, the rows (or batch entries) split over `threads`
/// scoped threads, since the crate itself runs on one.
fn matrixmultiply_seconds(p: &Product, threads: usize) -> f64 {
    let Operands {
        a,
        b,
        mut c,
        rsa,
        csa,
        rsb,
        csb,
    } = Operands::new(p);
    let (a, b) = (&a, &b);
    time(|| {
        let one = |c: &mut [f32], bi: usize, r0: usize, rows: usize| unsafe {
            matrixmultiply::sgemm(
                rows,
                p.k,
                p.n,
                1.0,
                a.as_ptr().add(bi * p.m * p.k).offset(r0 as isize * rsa),
                rsa,
                csa,
                b.as_ptr().add(bi * p.k * p.n),
                rsb,
                csb,
                0.0,
                c.as_mut_ptr(),
                p.n as isize,
                1,
            );
        };
        std::thread::scope(|s| {
            if p.batch >= threads {
                let per = p.batch.div_ceil(threads);
                for (t, chunk) in c.chunks_mut(per * p.m * p.n).enumerate() {
                    s.spawn(move || {
                        for (j, cm) in chunk.chunks_mut(p.m * p.n).enumerate() {
                            one(cm, t * per + j, 0, p.m);
                        }
                    });
                }
            } else {
                let per = p.m.div_ceil(threads);
                for (t, chunk) in c.chunks_mut(per * p.n).enumerate() {
                    let rows = chunk.len() / p.n;
                    s.spawn(move || one(chunk, 0, t * per, rows));
                }
            }
        });
    })
}

/// The product with the `gemm` crate called directly, as flex calls it (`swapped` false) or as
/// the transposed problem `Cᵀ = Bᵀ·Aᵀ` (`swapped` true; same memory, operands' roles swapped).
fn gemm_seconds(p: &Product, swapped: bool) -> f64 {
    let Operands {
        a,
        b,
        mut c,
        rsa,
        csa,
        rsb,
        csb,
    } = Operands::new(p);
    let par = if p.batch == 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let c_ptr = c.as_mut_ptr() as usize;
    time(|| {
        let one = |bi: usize| unsafe {
            let (a, b) = (
                a.as_ptr().add(bi * p.m * p.k),
                b.as_ptr().add(bi * p.k * p.n),
            );
            let c = (c_ptr as *mut f32).add(bi * p.m * p.n);
            if swapped {
                gemm::gemm(
                    p.n,
                    p.m,
                    p.k,
                    c,
                    p.n as isize,
                    1,
                    false,
                    b,
                    rsb,
                    csb,
                    a,
                    rsa,
                    csa,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            } else {
                gemm::gemm(
                    p.m,
                    p.n,
                    p.k,
                    c,
                    1,
                    p.n as isize,
                    false,
                    a,
                    csa,
                    rsa,
                    b,
                    csb,
                    rsb,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        };
        if p.batch == 1 {
            one(0);
        } else {
            use rayon::prelude::*;
            (0..p.batch).into_par_iter().for_each(one);
        }
    })
}

fn main() {
    // SAFETY: sets a plain integer option (mimalloc 3's `mi_option_purge_delay`, as `bert` does).
    unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    // `cargo bench` passes `--bench`; besides `--list`, only positional values are ours.
    let list = std::env::args().any(|a| a == "--list");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.to_string());
    let preset = arg(0, "mini");
    let number = |i: usize, default: &str| -> usize {
        arg(i, default)
            .parse()
            .unwrap_or_else(|e| panic!("argument {} must be a number: {e}", i + 1))
    };
    let (batch, seq, per_seq) = (number(1, "32"), number(2, "128"), number(3, "20"));
    let threads = number(4, &rayon_threads().to_string());
    let config = BertConfig::preset(&preset).unwrap_or_else(|e| panic!("{e}"));
    let products = products(&config, batch, seq, batch * per_seq);
    if list {
        // The one list of a step's products: `scripts/bench_matmul.py` reads it from here.
        for p in &products {
            println!(
                "{}",
                serde_json::json!({
                    "name": p.name, "per_step": p.per_step, "batch": p.batch,
                    "m": p.m, "k": p.k, "n": p.n, "lhs_t": p.lhs_t, "rhs_t": p.rhs_t,
                })
            );
        }
        return;
    }
    println!(
        "preset {preset}, batch {batch}, seq {seq}, {} masked positions, {threads} threads",
        batch * per_seq
    );
    println!(
        "| product | per step | flex (gemm) ms | GFLOP/s | matrixmultiply ms | GFLOP/s | gemm direct ms | gemm Cᵀ=BᵀAᵀ ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (mut flex_total, mut mm_total, mut flops_total) = (0.0, 0.0, 0.0);
    let (mut direct_total, mut swapped_total) = (0.0, 0.0);
    for p in &products {
        let f = flex_seconds(p);
        let mm = matrixmultiply_seconds(p, threads);
        let (direct, swapped) = (gemm_seconds(p, false), gemm_seconds(p, true));
        direct_total += direct * p.per_step as f64;
        swapped_total += swapped * p.per_step as f64;
        flex_total += f * p.per_step as f64;
        mm_total += mm * p.per_step as f64;
        flops_total += p.flops() * p.per_step as f64;
        println!(
            "| {} | {} | {:.2} | {:.1} | {:.2} | {:.1} | {:.2} | {:.2} |",
            p.name,
            p.per_step,
            f * 1e3,
            p.flops() / f / 1e9,
            mm * 1e3,
            p.flops() / mm / 1e9,
            direct * 1e3,
            swapped * 1e3
        );
    }
    println!(
        "| **step total** ({:.1} GFLOP) | | **{:.3} s** | {:.1} | **{:.3} s** | {:.1} | **{:.3} s** | **{:.3} s** |",
        flops_total / 1e9,
        flex_total,
        flops_total / flex_total / 1e9,
        mm_total,
        flops_total / mm_total / 1e9,
        direct_total,
        swapped_total
    );
}

/// Rayon's thread count (what flex uses): `RAYON_NUM_THREADS` or the number of CPUs.
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
