#!/usr/bin/env bash
# GPU benchmark and checks in one call of at most 10 minutes (issue 10), for a lent GPU machine
# or any CUDA box with PyTorch + transformers:
#   - ours at BERT-base phase 1 (seq 128, batch 256) in fp32 and bf16, and phase 2 (512 / 32);
#   - PyTorch on the same GPU doing the same work (MLM head on the masked positions only, SDPA
#     attention) in fp32, TF32 and bf16 autocast;
#   - CUDA with Burn's autotuning and with fusion (a second binary), with CubeCL's debug log and
#     the CPU load sampled, to tell compiling from a deadlock;
#   - numerics: tiny, dropout 0, CPU against CUDA; bf16 against fp32 over BERT-base's first steps.
# It reports seq/s, MFU against the dense bf16 peak, peak memory (nvidia-smi, per run) and the
# loss agreement, and leaves everything in $OUT (one archive).
#
# Usage: scripts/gpu_bench.sh PLAIN [FUSED]
#   PLAIN: `bert` built with `--features cuda` (one kernel per op, no autotuning);
#   FUSED: `bert` built with `--features cuda,cuda-fusion` (autotuning; `--device cuda` and
#          `--device cuda-fusion`). Either may be an .xz file (unpacked to /tmp).
# On the workplace's device machines: build both here, `strip` them, `xz -6` them into .gpu/
# (ignored by git; 6.7 and 8.1 MB), carry `.gpu/bert-plain.xz` and `.gpu/bert-fused.xz`, and run
# `BUDGET=545 bash scripts/gpu_bench.sh .gpu/bert-plain.xz .gpu/bert-fused.xz` with timeout 600.
# Environment: OUT (default ./gpu-bench-out), BUDGET seconds (default 540), STEPS (20),
# PEAK_TFLOPS (dense bf16 peak used for MFU; default 989, the H100/H200 SXM datasheet value).
set -u
OUT=${OUT:-gpu-bench-out}
BUDGET=${BUDGET:-540}
STEPS=${STEPS:-20}
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
mkdir -p "$OUT"
start=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - start))); }

unpack() { # path -> executable path
    case "$1" in
    *.xz)
        local dst="/tmp/$(basename "$1" .xz)"
        xz -dc "$1" >"$dst" && chmod +x "$dst" && echo "$dst"
        ;;
    *) echo "$1" ;;
    esac
}
PLAIN=$(unpack "${1:-target/release/bert}")
FUSED=""
[ -n "${2:-}" ] && FUSED=$(unpack "$2")

# cubecl-cuda loads the driver and NVRTC at run time.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}
done
export BERT_KERNEL_CACHE=/tmp/bert-kernels
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    nproc
    python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.version.cuda)"
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

run() { # name timeout command...
    local name=$1 limit=$2
    shift 2
    local l
    l=$(left)
    if [ "$l" -lt 15 ]; then
        echo "skip $name (budget spent)"
        return 1
    fi
    [ "$limit" -gt "$l" ] && limit=$l
    echo "== $name (limit ${limit}s)"
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -lms 250 \
        >"$OUT/$name.smi" 2>/dev/null &
    local smi=$!
    local t0
    t0=$(date +%s)
    timeout -k 5 "$limit" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"
    local rc=$?
    kill "$smi" 2>/dev/null
    echo "   rc=$rc in $(($(date +%s) - t0)) s"
    tail -c 400 "$OUT/$name.err"
    return $rc
}

# A run that may hang: also samples the CPU load of the process every 2 s (compiling kernels
# keeps cores busy; a deadlock leaves them idle).
run_watched() { # name timeout command...
    local name=$1
    (
        sleep 3
        for _ in $(seq 1 60); do
            pid=$(pgrep -n -f " bench --preset" || true)
            [ -z "$pid" ] && break
            echo "$(date +%s) $(ps -o %cpu=,nlwp=,rss= -p "$pid" 2>/dev/null)"
            sleep 2
        done
    ) >"$OUT/$name.cpu" 2>&1 &
    local watcher=$!
    run "$@"
    local rc=$?
    kill "$watcher" 2>/dev/null
    return $rc
}

export RUST_LOG=${RUST_LOG:-info,bert_train::bench=debug}
B="bench --preset base --warmup 3 --steps $STEPS --json"
P1="--seq 128 --batch 256"
P2="--seq 512 --batch 32"
TORCH="python3 scripts/bench_pytorch.py --preset base --device cuda --warmup 3 --steps $STEPS --masked-only --attn sdpa"

# 1. The two figures the issue's targets are about, first.
run p1-ours-bf16 75 "$PLAIN" $B $P1 --device cuda --precision bf16
run p1-torch-bf16 60 $TORCH $P1 --precision bf16
run p1-ours-fp32 75 "$PLAIN" $B $P1 --device cuda --precision fp32
run p1-torch-fp32 60 $TORCH $P1 --precision fp32

# 2. Autotuning and fusion: tiny first with the debug log, then BERT-base.
if [ -n "$FUSED" ]; then
    CUBECL_DEBUG_LOG="$OUT/cubecl-tiny-fusion.log" CUBECL_AUTOTUNE_LEVEL=minimal \
        run_watched tiny-fusion 50 "$FUSED" bench --preset tiny --seq 128 --batch 8 --steps 4 \
        --warmup 1 --device cuda-fusion --json
    fusion_ok=$?
    run_watched p1-tuned-bf16 90 "$FUSED" $B $P1 --device cuda --precision bf16
    if [ $fusion_ok -eq 0 ]; then
        run_watched p1-fusion-bf16 90 "$FUSED" $B $P1 --device cuda-fusion --precision bf16
    fi
fi

# 3. Phase 2 shapes, TF32, numerics.
run p2-ours-bf16 60 "$PLAIN" $B $P2 --device cuda --precision bf16
run p2-torch-bf16 45 $TORCH $P2 --precision bf16
run p1-torch-tf32 45 $TORCH $P1 --precision tf32
for d in cpu cuda; do
    run "tiny-$d" 30 "$PLAIN" bench --preset tiny --seq 128 --batch 8 --steps 4 --warmup 0 \
        --dropout 0 --device "$d" --json
done

python3 - "$OUT" "$PEAK_TFLOPS" <<'EOF' | tee "$OUT/summary.txt"
import json, os, sys
out, peak = sys.argv[1], float(sys.argv[2]) * 1e12
def load(n):
    try:
        return json.loads(open(os.path.join(out, n + ".json")).read().strip().splitlines()[-1])
    except Exception:
        return None
def smi_peak(n):
    try:
        return max(int(l.split(",")[0]) for l in open(os.path.join(out, n + ".smi")) if l.strip())
    except Exception:
        return None
def flops(b, s, preds, L=12, h=768, i=3072, v=30522):
    per_layer = b * s * (4 * h * h + 2 * h * i) * 2 + 2 * 2 * b * s * s * h
    head = b * preds * (h * h + h * v) * 2 + b * (h * h + 2 * h) * 2
    return 3 * (L * per_layer + head)
print("%-16s %9s %9s %8s %7s %10s %10s" % ("run", "seq/s", "step s", "first s", "MFU", "smi MiB", "alloc MiB"))
rows = {}
for n in ["p1-ours-bf16", "p1-tuned-bf16", "p1-fusion-bf16", "p1-torch-bf16", "p1-ours-fp32", "p1-torch-fp32",
          "p1-torch-tf32", "p2-ours-bf16", "p2-torch-bf16", "tiny-fusion"]:
    r = load(n)
    if not r:
        print("%-16s no result" % n)
        continue
    rows[n] = r
    b, s = (256, 128) if n.startswith("p1") else ((32, 512) if n.startswith("p2") else (8, 128))
    f = flops(b, s, round(0.15 * s)) / r["median_step_s"]
    print("%-16s %9.1f %9.4f %8.1f %6.1f%% %10s %10s" % (
        n, r["seq_per_s"], r["median_step_s"], r.get("first_step_s") or float("nan"),
        100 * f / peak if n != "tiny-fusion" else float("nan"), smi_peak(n), round(r.get("peak_device_mib") or 0) or "-"))
def ratio(a, b):
    if a in rows and b in rows:
        print("%s / %s = %.3f" % (a, b, rows[a]["seq_per_s"] / rows[b]["seq_per_s"]))
for a, b in [("p1-ours-bf16", "p1-torch-bf16"), ("p1-tuned-bf16", "p1-torch-bf16"), ("p1-fusion-bf16", "p1-torch-bf16"),
             ("p1-ours-fp32", "p1-torch-fp32"), ("p2-ours-bf16", "p2-torch-bf16")]:
    ratio(a, b)
a, b = rows.get("p1-ours-bf16"), rows.get("p1-ours-fp32")
if a and b:
    d = [abs(x - y) / abs(y) for x, y in zip(a["losses"], b["losses"])]
    print("bf16 vs fp32, BERT-base first %d steps: max rel loss diff %.2e (bf16 %s, fp32 %s)" % (
        len(d), max(d), [round(x, 4) for x in a["losses"][:5]], [round(x, 4) for x in b["losses"][:5]]))
c, g = load("tiny-cpu"), load("tiny-cuda")
if c and g:
    d = max(abs(x - y) / abs(x) for x, y in zip(c["losses"], g["losses"]))
    e = max(abs(x - y) / abs(x) for x, y in zip(c["grad_norms"], g["grad_norms"]))
    print("tiny cuda vs cpu, dropout 0: max rel diff loss %.2e, grad norm %.2e" % (d, e))
EOF

# One archive back instead of many small files; the summary stays beside it.
tar czf /tmp/gpu-bench.tgz -C "$OUT" . && find "$OUT" -type f ! -name summary.txt -delete \
    && mv /tmp/gpu-bench.tgz "$OUT/"
