#!/usr/bin/env python3
"""The matrix products of one BERT pre-training step, timed one by one in PyTorch (oneDNN/MKL on
x86) and NumPy (its bundled OpenBLAS): the reference for `cargo bench -p bert-cli --bench matmul`
(crates/cli/benches/matmul.rs), which times the same list on flex (`gemm`) and `matrixmultiply`.

    pip install torch numpy      # e.g. the venv of scripts/bench_vs_pytorch.sh
    python3 scripts/bench_matmul.py [--preset mini] [--batch 32] [--seq 128] [--masked-per-seq 20]
                                    [--threads 2]

Transposed operands are strided views (`.T` / `.transpose`), as autograd makes them. Prints a
Markdown table: per product how often a step runs it, ms and GFLOP/s per engine, then
sum(count x time), the matrix-product seconds of one step.
"""
import argparse
import os
import statistics
import time

PRESETS = {
    "tiny": (2, 128, 2, 512),
    "mini": (4, 256, 4, 1024),
    "small": (4, 512, 8, 2048),
    "medium": (8, 512, 8, 2048),
    "base": (12, 768, 12, 3072),
    "large": (24, 1024, 16, 4096),
}


def products(preset, batch, seq, masked, vocab=30522):
    """(name, per_step, batch, m, k, n, lhs_t, rhs_t), in the order of the Rust bench."""
    layers, h, heads, i = PRESETS[preset]
    d = h // heads
    rows = batch * seq
    out = []

    def linear(name, per_step, m, k, n):
        out.append((f"{name} fwd", per_step, 1, m, k, n, False, False))
        out.append((f"{name} dX", per_step, 1, m, n, k, False, True))
        out.append((f"{name} dW", per_step, 1, k, m, n, True, False))

    linear(f"q/k/v/out {h}x{h}", 4 * layers, rows, h, h)
    linear(f"ffn in {h}x{i}", layers, rows, h, i)
    linear(f"ffn out {i}x{h}", layers, rows, i, h)
    linear(f"mlm transform {h}x{h}", 1, masked, h, h)
    out.append((f"mlm decoder {h}x{vocab} fwd", 1, 1, masked, h, vocab, False, True))
    out.append((f"mlm decoder {h}x{vocab} dX", 1, 1, masked, vocab, h, False, False))
    out.append((f"mlm decoder {h}x{vocab} dW", 1, 1, vocab, masked, h, True, False))
    b = batch * heads
    for name, m, k, n, lt, rt in [
        ("attn scores Q.Kt fwd", seq, d, seq, False, True),
        ("attn scores dQ = dS.K", seq, seq, d, False, False),
        ("attn scores dK = dSt.Q", seq, seq, d, True, False),
        ("attn context P.V fwd", seq, seq, d, False, False),
        ("attn context dP = dC.Vt", seq, d, seq, False, True),
        ("attn context dV = Pt.dC", seq, seq, d, True, False),
    ]:
        out.append((f"{name} ({b}x)", layers, b, m, k, n, lt, rt))
    return out


def timed(f):
    """Median seconds over enough runs to fill ~0.4 s (at least 3), after one warm-up."""
    f()
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < 0.4 and len(times) < 50):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="mini", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--masked-per-seq", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    # OpenBLAS reads its thread count when it loads.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    masked = args.batch * args.masked_per_seq
    rows = products(args.preset, args.batch, args.seq, masked)
    print(f"preset {args.preset}, batch {args.batch}, seq {args.seq}, {masked} masked positions, "
          f"{args.threads} threads, torch {torch.__version__}, numpy {np.__version__}")
    print("| product | per step | PyTorch ms | GFLOP/s | NumPy (OpenBLAS) ms | GFLOP/s |")
    print("|---|---|---|---|---|---|")
    tot_t = tot_n = tot_f = 0.0
    rng = np.random.default_rng(0)
    for name, per_step, b, m, k, n, lt, rt in rows:
        a = rng.uniform(-1, 1, (b, k, m) if lt else (b, m, k)).astype(np.float32)
        c = rng.uniform(-1, 1, (b, n, k) if rt else (b, k, n)).astype(np.float32)
        an = a.transpose(0, 2, 1) if lt else a
        cn = c.transpose(0, 2, 1) if rt else c
        at, ct = torch.from_numpy(a), torch.from_numpy(c)
        at = at.transpose(1, 2) if lt else at
        ct = ct.transpose(1, 2) if rt else ct
        if b == 1:
            an, cn, at, ct = an[0], cn[0], at[0], ct[0]
        with torch.no_grad():
            t = timed(lambda: torch.matmul(at, ct))
        nm = timed(lambda: np.matmul(an, cn))
        flops = 2.0 * b * m * k * n
        tot_t += t * per_step
        tot_n += nm * per_step
        tot_f += flops * per_step
        print(f"| {name} | {per_step} | {t * 1e3:.2f} | {flops / t / 1e9:.1f} | "
              f"{nm * 1e3:.2f} | {flops / nm / 1e9:.1f} |")
    print(f"| **step total** ({tot_f / 1e9:.1f} GFLOP) | | **{tot_t:.3f} s** | "
          f"{tot_f / tot_t / 1e9:.1f} | **{tot_n:.3f} s** | {tot_f / tot_n / 1e9:.1f} |")


if __name__ == "__main__":
    main()
