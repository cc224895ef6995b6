#!/usr/bin/env python3
"""Downstream tasks made from plain text, for `bert finetune` (`docs/benchmarks.md`, "Does
pre-training help?").

- `--task word-order` (one sentence): is this sentence in its original word order? Half of the
  sentences keep their order (label `original`), the other half have their words shuffled
  (`shuffled`); every sentence is used once, so a model cannot compare a sentence with its own
  shuffle. Columns `sentence`, `label`.
- `--task next-sentence` (a pair): does the second sentence follow the first in its text (label
  `next`), or is it a sentence of another file (`random`)? Half and half. Columns `sentence1`,
  `sentence2`, `label`.

Files are assigned whole to one split (train or dev), so the dev split's sentences come from
texts the training split never saw. Output: GLUE-style TSVs.

    python3 scripts/make_text_tasks.py --task word-order --train A.txt B.txt --dev C.txt \
        --out DIR [--max-train 4000] [--max-dev 1000] [--seed 1]

Needs only the Python standard library. Sentences are cut at `.`, `!` or `?` followed by a
space; those of 6 to 30 words are kept; a shuffle that happens to restore the order is redrawn.
"""
import argparse
import os
import random
import re


def sentences(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"\s+", " ", text)
    for s in re.split(r"(?<=[.!?])\s+", text):
        words = s.split(" ")
        if 6 <= len(words) <= 30 and "\t" not in s:
            yield words


def build_pairs(paths, limit, rng):
    docs = [list(sentences(p)) for p in paths]
    if len(docs) < 2:
        raise SystemExit("next-sentence needs at least two files per split")
    starts = [(d, i) for d, doc in enumerate(docs) for i in range(len(doc) - 1)]
    rng.shuffle(starts)
    rows = []
    for k, (d, i) in enumerate(starts[:limit]):
        a = " ".join(docs[d][i])
        if k % 2 == 0:
            rows.append((a, " ".join(docs[d][i + 1]), "next"))
        else:
            other = rng.choice([e for e in range(len(docs)) if e != d])
            rows.append((a, " ".join(rng.choice(docs[other])), "random"))
    rng.shuffle(rows)
    return rows


def build(paths, limit, rng):
    pool = [w for p in paths for w in sentences(p)]
    rng.shuffle(pool)
    rows = []
    for i, words in enumerate(pool[:limit]):
        if i % 2 == 0:
            rows.append((" ".join(words), "original"))
        else:
            shuffled = words[:]
            while shuffled == words:
                rng.shuffle(shuffled)
            rows.append((" ".join(shuffled), "shuffled"))
    rng.shuffle(rows)
    return rows


def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n" if len(rows[0]) == 2 else "sentence1\tsentence2\tlabel\n")
        for row in rows:
            f.write("\t".join(row) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=["word-order", "next-sentence"], default="word-order")
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--dev", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-train", type=int, default=4000)
    ap.add_argument("--max-dev", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    make = build if a.task == "word-order" else build_pairs
    train = make(a.train, a.max_train, rng)
    dev = make(a.dev, a.max_dev, rng)
    write(os.path.join(a.out, "train.tsv"), train)
    write(os.path.join(a.out, "dev.tsv"), dev)
    print(f"{len(train)} training and {len(dev)} dev sentences in {a.out}")


if __name__ == "__main__":
    main()
