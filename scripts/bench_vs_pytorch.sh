#!/usr/bin/env bash
# Training throughput of `bert bench` against PyTorch + transformers on the same machine, same
# shapes (seq 128, batch 32, fp32, AdamW, dropout 0.1), run alternately (the two interleave
# round by round, so background noise hits both), and the ratio of the medians.
#
#   scripts/bench_vs_pytorch.sh                 # tiny mini small, 3 rounds, 10 steps each
#   PRESETS="mini" ROUNDS=5 STEPS=20 scripts/bench_vs_pytorch.sh
#
# Installs its Python packages in a virtual environment ($VENV, default .venv-bench; PyPI's
# Linux torch wheel pulls CUDA libraries, ~5 GB, used here on the CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
PRESETS=${PRESETS:-"tiny mini small"}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-10}
THREADS=${THREADS:-$(nproc)}
VENV=${VENV:-.venv-bench}

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet torch transformers
fi
cargo build --release -p bert-cli >&2
BERT=target/release/bert
out=$(mktemp)
echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, ${THREADS} threads; torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')" >&2
for preset in $PRESETS; do
    for round in $(seq "$ROUNDS"); do
        "$VENV/bin/python" scripts/bench_pytorch.py --preset "$preset" --steps "$STEPS" --threads "$THREADS" \
            | sed "s/^{/{\"round\": $round, /" >> "$out"
        "$BERT" bench --preset "$preset" --steps "$STEPS" --json --log warn \
            | sed "s/^{/{\"impl\": \"burn\", \"preset\": \"$preset\", \"round\": $round, /" >> "$out"
    done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'preset':8} {'pytorch seq/s':>14} {'burn seq/s':>11} {'ratio':>6} {'pytorch MiB':>12} {'burn MiB':>9}")
for preset in dict.fromkeys(r["preset"] for r in rows):
    pt = [r for r in rows if r["preset"] == preset and r["impl"] == "pytorch"]
    bu = [r for r in rows if r["preset"] == preset and r["impl"] == "burn"]
    p = statistics.median(r["seq_per_s"] for r in pt)
    b = statistics.median(r["seq_per_s"] for r in bu)
    pm = max(r["peak_rss_mib"] for r in pt)
    bm = max(r["peak_rss_mib"] for r in bu)
    print(f"{preset:8} {p:14.2f} {b:11.2f} {b / p:6.2f} {pm:12.0f} {bm:9.0f}")
PY
rm -f "$out"
