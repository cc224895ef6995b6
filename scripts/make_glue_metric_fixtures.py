#!/usr/bin/env python3
"""Reference values of the GLUE metrics for the tests of `bert-finetune`'s `metrics` module.

GLUE scores a task by accuracy, F1 of the positive class (MRPC, QQP), Matthews correlation (CoLA)
and Pearson/Spearman correlation (STS-B). This script draws predictions and labels of every
shape the metrics meet (binary, three classes, one example, constant columns, ties, all wrong)
and stores what scikit-learn and SciPy compute for them, so the Rust implementation is held to
the libraries the GLUE numbers of the literature come from. The output is deterministic.

    python3 -m venv /tmp/metrics-env
    /tmp/metrics-env/bin/pip install scikit-learn scipy numpy
    /tmp/metrics-env/bin/python scripts/make_glue_metric_fixtures.py \
        > crates/finetune/tests/fixtures/glue_metrics.json
"""
import json
import sys
import warnings

import numpy as np
import scipy
import sklearn
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def none_if_nan(x):
    x = float(x)
    return None if np.isnan(x) else x


def classification(name, pred, gold):
    pred = [int(p) for p in pred]
    gold = [int(g) for g in gold]
    with warnings.catch_warnings():
        # sklearn warns (and returns 0) where F1 or MCC divides by zero: that 0 is the reference.
        warnings.simplefilter("ignore")
        case = {
            "name": name,
            "pred": pred,
            "gold": gold,
            "accuracy": float(accuracy_score(gold, pred)),
            "matthews": float(matthews_corrcoef(gold, pred)),
        }
        if set(pred) | set(gold) <= {0, 1}:
            case["f1"] = float(f1_score(gold, pred, pos_label=1, zero_division=0.0))
    return case


def regression(name, pred, gold):
    pred = [float(p) for p in pred]
    gold = [float(g) for g in gold]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = pearsonr(pred, gold).statistic if len(pred) >= 2 else float("nan")
        s = spearmanr(pred, gold).statistic if len(pred) >= 2 else float("nan")
    return {
        "name": name,
        "pred": pred,
        "gold": gold,
        "pearson": none_if_nan(p),
        "spearman": none_if_nan(s),
    }


def main():
    rng = np.random.default_rng(20261207)
    cls = []
    for n in (1, 2, 7, 100, 1000):
        gold = rng.integers(0, 2, n)
        # About 80% right: flip each label with probability 0.2.
        pred = np.where(rng.random(n) < 0.2, 1 - gold, gold)
        cls.append(classification(f"binary n={n}", pred, gold))
    gold = rng.integers(0, 2, 500)
    cls.append(classification("binary, all wrong", 1 - gold, gold))
    cls.append(classification("binary, all right", gold, gold))
    cls.append(classification("binary, one class predicted", np.zeros(50, int), rng.integers(0, 2, 50)))
    cls.append(classification("binary, no positive anywhere", np.zeros(20, int), np.zeros(20, int)))
    cls.append(classification("binary, skewed (CoLA-like, 70% positive)",
                              np.where(rng.random(300) < 0.9, 1, 0), np.where(rng.random(300) < 0.7, 1, 0)))
    for n in (3, 60, 1000):
        gold = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.35, rng.integers(0, 3, n), gold)
        cls.append(classification(f"three classes (MNLI-like) n={n}", pred, gold))

    reg = []
    for n in (2, 3, 50, 1000):
        gold = rng.uniform(0, 5, n)
        pred = gold + rng.normal(0, 1.0, n)
        reg.append(regression(f"STS-B-like n={n}", pred, gold))
    gold = np.round(rng.uniform(0, 5, 200) * 5) / 5  # STS-B scores come in steps of 0.2: ties
    pred = np.round((gold + rng.normal(0, 0.8, 200)) * 2) / 2
    reg.append(regression("ties on both sides", pred, gold))
    reg.append(regression("constant prediction", np.full(10, 2.5), rng.uniform(0, 5, 10)))
    reg.append(regression("perfectly anti-correlated", -np.arange(30.0), np.arange(30.0)))
    reg.append(regression("one example", [1.0], [2.0]))

    json.dump(
        {
            "generator": "scripts/make_glue_metric_fixtures.py",
            "scikit-learn": sklearn.__version__,
            "scipy": scipy.__version__,
            "numpy": np.__version__,
            "classification": cls,
            "regression": reg,
        },
        sys.stdout,
        indent=None,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
