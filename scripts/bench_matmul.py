#!/usr/bin/env python3
"""The matrix products of one BERT pre-training step, timed one by one in PyTorch (oneDNN/MKL on
x86) and NumPy (its bundled OpenBLAS): the reference for `cargo bench -p bert-cli --bench matmul`
(crates/cli/benches/matmul.rs), which times the same list on flex (`gemm`) and `matrixmultiply`.

    pip install torch numpy      # e.g. the venv of scripts/bench_vs_pytorch.sh
    cargo bench -p bert-cli --bench matmul -- mini 32 128 20 --list > /tmp/products.jsonl
    python3 scripts/bench_matmul.py /tmp/products.jsonl [--threads 2]

Transposed operands are strided views (`.T` / `.transpose`), as autograd makes them. Prints a
Markdown table: per product how often a step runs it, ms and GFLOP/s per engine, then
sum(count x time), the matrix-product seconds of one step.
"""
import argparse
import json
import os
import statistics
import time

def products(path):
    """(name, per_step, batch, m, k, n, lhs_t, rhs_t) from the Rust bench's `--list` output, so
    the two benches time one list."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue  # cargo's own lines, if they were captured too
            p = json.loads(line)
            out.append((p["name"], p["per_step"], p["batch"], p["m"], p["k"], p["n"],
                        p["lhs_t"], p["rhs_t"]))
    if not out:
        raise SystemExit(f"{path}: no products; write it with "
                         "`cargo bench -p bert-cli --bench matmul -- PRESET ... --list > FILE`")
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
    ap.add_argument("products", help="the products of a step: the Rust bench's `--list` output")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    # OpenBLAS reads its thread count when it loads.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    rows = products(args.products)
    print(f"{args.products}: {len(rows)} products, {args.threads} threads, "
          f"torch {torch.__version__}, numpy {np.__version__}")
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
