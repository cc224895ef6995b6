#!/usr/bin/env python3
"""Checks that TensorBoard itself reads a run's event file (`RUN/tb/`) as `bert train` meant it:
the scalars of every training step and evaluation equal `RUN/metrics.jsonl` (to f32), each
step once, and the fill-mask probes are text summaries. A metric the run does not log (NSP in an
`mlm` or `mlm_sop` run, SOP in the others) must be absent from both. Run by hand; the Rust suite does not
need Python.

    python3 -m venv /tmp/tbenv && /tmp/tbenv/bin/pip install tensorboard
    /tmp/tbenv/bin/python scripts/check_tensorboard.py runs/quickstart

Exit status 0 and one summary line when everything matches; otherwise the first difference.
"""
import json
import math
import sys

from tensorboard.backend.event_processing import event_accumulator

TRAIN = {
    "train/loss": "loss",
    "train/mlm_loss": "mlm_loss",
    "train/nsp_loss": "nsp_loss",
    "train/mlm_accuracy": "mlm_accuracy",
    "train/nsp_accuracy": "nsp_accuracy",
    "train/sop_loss": "sop_loss",
    "train/sop_accuracy": "sop_accuracy",
    "train/fill_rate": "fill_rate",
    "train/learning_rate": "lr",
    "train/grad_norm": "grad_norm",
}
EVAL = {
    "eval/mlm_loss": "mlm_loss",
    "eval/mlm_accuracy": "mlm_accuracy",
    "eval/nsp_loss": "nsp_loss",
    "eval/nsp_accuracy": "nsp_accuracy",
    "eval/sop_loss": "sop_loss",
    "eval/sop_accuracy": "sop_accuracy",
}


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)


def main(run):
    acc = event_accumulator.EventAccumulator(
        f"{run}/tb", size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    records = [json.loads(line) for line in open(f"{run}/metrics.jsonl") if line.strip()]
    checked = 0
    for kind, tags in (("train", TRAIN), ("eval", EVAL)):
        expected = [r for r in records if r["kind"] == kind]
        scalar_tags = set(acc.Tags().get("scalars", []))
        for tag, key in tags.items():
            logged = [r for r in expected if key in r]
            if not logged:
                if tag in scalar_tags:
                    sys.exit(f"{tag} is in TensorBoard but `{key}` in no {kind} record of metrics.jsonl")
                continue
            expected_here = logged
            got = acc.Scalars(tag)
            steps = [e.step for e in got]
            want = [r["step"] for r in expected_here]
            if steps != want:
                sys.exit(f"{tag}: steps {steps[:10]}… differ from metrics.jsonl {want[:10]}…")
            for e, r in zip(got, expected_here):
                if not close(e.value, r[key]):
                    sys.exit(f"{tag} step {e.step}: {e.value} in TensorBoard, {r[key]} in metrics.jsonl")
                checked += 1
    texts = [t for t in acc.Tags().get("tensors", []) if t.startswith("fill_mask/")]
    probes = sum(len(acc.Tensors(t)) for t in texts)
    print(f"{checked} scalars match metrics.jsonl; {probes} fill-mask texts under {len(texts)} tags")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
