#!/usr/bin/env bash
# Data parallelism on the CPU, over loopback (issue 11):
#   1. `mini`, sequence 128, global batch 32: two `bert train` processes x 1 thread (16 rows
#      each) against one process x 1 thread (16 rows x 2 micro-batches), alternating, seq/s
#      from metrics.jsonl (median over the steps after the first two);
#   2. the all-reduce time per step at BERT-base size (110M parameters, 440 MB of f32
#      gradients) between two processes on loopback (`comm_s` in metrics.jsonl; the minimum
#      over the steps is the transfer itself, the median includes waiting for the other rank).
#
# Usage: scripts/bench_data_parallel.sh [path/to/bert]   (default target/release/bert)
# Needs ../shared/corpora and ../shared/models (the uncased BERT vocabulary).
set -euo pipefail
cd "$(dirname "$0")/.."
BERT=${1:-target/release/bert}
SHARED=${SHARED:-../shared}
STEPS=${STEPS:-12}
ROUNDS=${ROUNDS:-2}
W=$(mktemp -d /tmp/bench-dp.XXXXXX)
trap 'rm -rf "$W"' EXIT
VOCAB="$SHARED/models/bert-uncased-wordpiece/vocab.txt"

"$BERT" prepare --input "$SHARED/corpora/books" --vocab "$VOCAB" --out "$W/shards" \
    --masking dynamic --max-seq-length 128 --validation-fraction 0.01 --seed 1 >/dev/null

config() { # preset run_dir
    cat >"$W/$1.toml" <<EOF
seed = 3
out_dir = "$2"
[model]
preset = "$1"
[data]
train = "$W/shards/train"
batch_size = 16
pad_to_max_length = true
[optimizer]
learning_rate = 1e-4
[schedule]
warmup_steps = 2
[train]
steps = $STEPS
[checkpoint]
every = 100000
keep = 1
EOF
    echo "$W/$1.toml"
}

# median of a metrics.jsonl field over train records after the first two steps
median() { # file field
    python3 - "$1" "$2" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
vals = [r[sys.argv[2]] for r in rows if r.get("kind") == "train" and r["step"] > 2 and sys.argv[2] in r]
print(f"{statistics.median(vals):.4f}" if vals else "n/a")
EOF
}
minimum() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
vals = [r[sys.argv[2]] for r in rows if r.get("kind") == "train" and sys.argv[2] in r]
print(f"{min(vals):.4f}" if vals else "n/a")
EOF
}

two_processes() { # config port extra...
    local cfg=$1 port=$2
    shift 2
    RAYON_NUM_THREADS=1 "$BERT" train --config "$cfg" --world-size 2 --rank 0 \
        --coordinator "127.0.0.1:$port" "$@" >"$W/r0.log" 2>&1 &
    local p0=$!
    RAYON_NUM_THREADS=1 "$BERT" train --config "$cfg" --world-size 2 --rank 1 \
        --coordinator "127.0.0.1:$port" "$@" >"$W/r1.log" 2>&1 || { cat "$W/r1.log"; exit 1; }
    wait $p0 || { cat "$W/r0.log"; exit 1; }
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== mini, seq 128, global batch 32, $STEPS steps, 1 thread per process"
for round in $(seq "$ROUNDS"); do
    rm -rf "$W/one" "$W/two"
    cfg=$(config mini "$W/one")
    RAYON_NUM_THREADS=1 "$BERT" train --config "$cfg" --set train.accumulation=2 >/dev/null 2>&1
    one=$(median "$W/one/metrics.jsonl" seq_per_s)
    cfg=$(config mini "$W/two")
    two_processes "$cfg" $((29600 + round * 10))
    two=$(median "$W/two/metrics.jsonl" seq_per_s)
    comm=$(median "$W/two/metrics.jsonl" comm_s)
    ratio=$(python3 -c "print(f'{$two/$one:.2f}')")
    echo "round $round: one process $one seq/s | two processes $two seq/s (comm median $comm s/step) | ratio $ratio"
done

echo "== base (110M parameters), 2 processes on loopback, batch 1 per rank, seq 128"
rm -rf "$W/base"
cfg=$(config base "$W/base")
two_processes "$cfg" 29690 --set data.batch_size=1 --set train.steps=5
echo "all-reduce (comm_s) per step: min $(minimum "$W/base/metrics.jsonl" comm_s) s, median $(median "$W/base/metrics.jsonl" comm_s) s"
python3 - "$W/base/metrics.jsonl" <<'EOF'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("kind") == "train":
        print(f"  step {r['step']}: step {1/r['seq_per_s']*2:.2f} s, comm {r.get('comm_s', float('nan')):.2f} s")
EOF
