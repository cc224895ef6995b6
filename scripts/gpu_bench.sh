#!/usr/bin/env bash
# GPU check and benchmark in one pass, for a lent GPU machine (or any CUDA box):
#   1. numerics: the tiny preset, dropout 0, same seed on cpu, cuda and wgpu; the per-step losses
#      and gradient norms must agree (they start from the same model and batches);
#   2. BERT-base phase 1 (seq 128, batch 256) on cuda, then the PyTorch reference on the same GPU
#      (fp32, and with TF32 allowed), then on wgpu.
# Everything is written to $OUT (default ./gpu-bench-out) and a summary table is printed last.
#
# Usage: scripts/gpu_bench.sh [path/to/bert]   (a release build with `--features wgpu,cuda`)
# On the workplace's device machines, carry the binary and the Vulkan loader debs (.gl/).
set -u
BIN=${1:-target/release/bert}
OUT=${OUT:-gpu-bench-out}
STEPS=${STEPS:-20}
BATCH=${BATCH:-256}
BUDGET=${BUDGET:-560}
mkdir -p "$OUT"
start=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - start))); }

# Vulkan loader for wgpu, when the machine has none.
if ! ldconfig -p | grep -q libvulkan.so.1 && ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
nproc >>"$OUT/gpu.txt"

# GPU memory in use, sampled twice a second for the whole script.
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -lms 500 \
    >"$OUT/nvsmi.csv" 2>/dev/null &
SMI=$!

run() { # name timeout args...
    local name=$1 limit=$2
    shift 2
    local l
    l=$(left)
    if [ "$l" -lt 20 ]; then
        echo "skip $name (budget spent)"
        return
    fi
    [ "$limit" -gt "$l" ] && limit=$l
    echo "== $name (limit ${limit}s)"
    local t0
    t0=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"
    echo "   rc=$? in $(($(date +%s) - t0)) s"
    tail -c 600 "$OUT/$name.err"
}

# cubecl-cuda loads the driver and NVRTC at run time.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}
done
ls /usr/local/cuda/lib64 2>/dev/null | grep -E "nvrtc|cudart" | head -5
# Per-step timings go to the .err files, so a run cut short still shows its steps.
export RUST_LOG=${RUST_LOG:-warn,bert_train::bench=debug}
run base-cuda 240 "$BIN" bench --preset base --seq 128 --batch "$BATCH" --steps "$STEPS" --warmup 3 --device cuda --json
run torch-fp32 90 python3 scripts/bench_pytorch.py --preset base --seq 128 --batch "$BATCH" --steps "$STEPS" --warmup 3 --device cuda
for d in cpu cuda; do
    run "tiny-$d" 60 "$BIN" bench --preset tiny --seq 128 --batch 8 --steps 4 --warmup 0 --dropout 0 --device "$d" --json
done
run base-wgpu 200 "$BIN" bench --preset base --seq 128 --batch "$BATCH" --steps "$STEPS" --warmup 3 --device wgpu --json
run tiny-wgpu 60 "$BIN" bench --preset tiny --seq 128 --batch 8 --steps 4 --warmup 0 --dropout 0 --device wgpu --json
run torch-tf32 60 python3 scripts/bench_pytorch.py --preset base --seq 128 --batch "$BATCH" --steps "$STEPS" --warmup 3 --device cuda --tf32
kill "$SMI" 2>/dev/null

python3 - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
def load(n):
    try:
        return json.loads(open(os.path.join(out, n + ".json")).read().strip().splitlines()[-1])
    except Exception:
        return None
peak = 0
try:
    for line in open(os.path.join(out, "nvsmi.csv")):
        peak = max(peak, int(line.split(",")[1].split()[0]))
except Exception:
    pass
print("peak GPU memory seen by nvidia-smi over the whole script: %d MiB" % peak)
for n in ["base-cuda", "base-wgpu", "torch-fp32", "torch-tf32"]:
    r = load(n)
    if r:
        extra = ""
        if "flops_per_s" in r:
            extra = " model %.1f TFLOP/s, loss %.3f->%.3f" % (r["flops_per_s"] / 1e12, r["losses"][0], r["losses"][-1])
        if r.get("peak_device_mib"):
            extra += " peak alloc %.0f MiB" % r["peak_device_mib"]
        print("%-11s %8.1f seq/s  median %.4f s%s" % (n, r["seq_per_s"], r["median_step_s"], extra))
    else:
        print("%-11s no result" % n)
ref = load("tiny-cpu")
for d in ["cuda", "wgpu"]:
    r = load("tiny-" + d)
    if ref and r:
        dl = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(ref["losses"], r["losses"]))
        dg = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(ref["grad_norms"], r["grad_norms"]))
        print("tiny %s vs cpu: max rel diff loss %.2e, grad norm %.2e  (cpu losses %s, %s %s)" % (
            d, dl, dg, [round(x, 5) for x in ref["losses"]], d, [round(x, 5) for x in r["losses"]]))
EOF

# One archive back instead of many small files.
tar czf /tmp/gpu-bench.tgz -C "$OUT" . && rm -f "$OUT"/*.json "$OUT"/*.err "$OUT"/*.csv "$OUT"/*.txt && mv /tmp/gpu-bench.tgz "$OUT/"
