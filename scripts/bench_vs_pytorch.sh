#!/usr/bin/env bash
# Training throughput of `bert bench` against PyTorch + transformers on the same machine, same
# shapes (seq 128, batch 32, fp32, AdamW, dropout 0.1), run alternately (the three interleave
# round by round, so background noise hits all), and the ratios of the medians against two
# PyTorch peers:
#   - "full": `BertForPreTraining` as transformers runs it, the MLM decoder over all positions;
#   - "masked": the same work as ours, the MLM head on the gathered masked positions only (as
#     NVIDIA's BERT does): the peer to beat.
#
#   scripts/bench_vs_pytorch.sh                 # tiny mini small, 3 rounds, 10 steps each
#   PRESETS="mini" ROUNDS=5 STEPS=20 scripts/bench_vs_pytorch.sh
#   PRESETS="mini" SEQ=512 BATCH=8 FULL=0 scripts/bench_vs_pytorch.sh   # masked peer only
#
# UNFUSED=1 adds a fourth side: ours with the composed attention (`BERT_UNFUSED=attention`), so
# the fused op's own gain is measured in the same alternation.
#
# Installs its Python packages in a virtual environment ($VENV, default .venv-bench; PyPI's
# Linux torch wheel pulls CUDA libraries, ~5 GB, used here on the CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
PRESETS=${PRESETS:-"tiny mini small"}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-10}
THREADS=${THREADS:-$(nproc)}
SEQ=${SEQ:-128}
BATCH=${BATCH:-32}
FULL=${FULL:-1}
UNFUSED=${UNFUSED:-0}
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
        shape=(--preset "$preset" --seq "$SEQ" --batch "$BATCH" --steps "$STEPS")
        if [ "$FULL" = 1 ]; then
            "$VENV/bin/python" scripts/bench_pytorch.py "${shape[@]}" --threads "$THREADS" \
                | sed "s/^{/{\"round\": $round, /" >> "$out"
        fi
        "$VENV/bin/python" scripts/bench_pytorch.py "${shape[@]}" --threads "$THREADS" \
            --masked-only | sed "s/^{/{\"round\": $round, /" >> "$out"
        "$BERT" bench "${shape[@]}" --json --log warn \
            | sed "s/^{/{\"impl\": \"burn\", \"preset\": \"$preset\", \"round\": $round, /" >> "$out"
        if [ "$UNFUSED" = 1 ]; then
            BERT_UNFUSED=attention "$BERT" bench "${shape[@]}" --json --log warn \
                | sed "s/^{/{\"impl\": \"burn-composed-attention\", \"preset\": \"$preset\", \"round\": $round, /" >> "$out"
        fi
    done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'preset':8} {'burn seq/s':>11} {'pt full':>8} {'ratio':>6} {'pt masked':>10} {'ratio':>6}"
      f" {'composed':>9} {'fused/composed':>15}"
      f" {'burn MiB':>9} {'pt full MiB':>12} {'pt masked MiB':>14} {'composed MiB':>13}")
for preset in dict.fromkeys(r["preset"] for r in rows):
    def pick(impl, masked=None):
        return [r for r in rows if r["preset"] == preset and r["impl"] == impl
                and (masked is None or r.get("masked_only") == masked)]
    full, masked, burn = pick("pytorch", False), pick("pytorch", True), pick("burn")
    composed = pick("burn-composed-attention")
    med = lambda rs: statistics.median(r["seq_per_s"] for r in rs) if rs else float("nan")
    mem = lambda rs: max(r["peak_rss_mib"] for r in rs) if rs else float("nan")
    b, f, m, c = med(burn), med(full), med(masked), med(composed)
    print(f"{preset:8} {b:11.2f} {f:8.2f} {b / f:6.2f} {m:10.2f} {b / m:6.2f}"
          f" {c:9.2f} {b / c:15.2f}"
          f" {mem(burn):9.0f} {mem(full):12.0f} {mem(masked):14.0f} {mem(composed):13.0f}")
PY
rm -f "$out"
