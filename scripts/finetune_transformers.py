#!/usr/bin/env python3
"""The same fine-tuning as `bert finetune`, in PyTorch with `transformers`: the reference its
scores are compared with (`docs/benchmarks.md`, "Does pre-training help?").

Takes a model folder (an export of `bert train`, or any BERT folder) and a GLUE-style TSV task,
and runs BERT's recipe as `bert finetune` runs it: `BertForSequenceClassification` with a fresh
head on the pooled output (dropout = the model's hidden dropout), AdamW (β 0.9/0.999, ε 1e-8,
weight decay 0.01 on everything but biases and LayerNorm weights, as `transformers`' Trainer),
linear warm-up over 10% of the steps then linear decay to 0, gradient clipping at norm 1, a
seeded shuffle per epoch, `[CLS] A [SEP] B [SEP]` truncated `longest_first`. After the last
epoch it scores the dev split (accuracy) and prints, per learning rate and batch size, the mean,
sample standard deviation, minimum and maximum over the seeds, and writes them as JSON.

    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch "transformers>=5"
    /tmp/hfenv/bin/python scripts/finetune_transformers.py --model runs/x/export \
        --train T/train.tsv --dev T/dev.tsv --text-a sentence1 --text-b sentence2 \
        --labels next random --max-seq-length 64 --epochs 3 --learning-rates 1e-4 3e-4 \
        --batch-size 32 --seeds 1 2 3 --out results-transformers.json

Not bit-identical to `bert finetune` (other random streams for the head, the shuffle and
dropout): the comparison is of the scores' spread over seeds.
"""

import argparse
import csv
import json
import statistics
import sys
import time

import torch
from transformers import BertForSequenceClassification, BertTokenizerFast, get_linear_schedule_with_warmup


def read_tsv(path, text_a, text_b, labels):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    a = [r[text_a] for r in rows]
    b = [r[text_b] for r in rows] if text_b else None
    y = [labels.index(r["label"]) for r in rows]
    return a, b, y


def encode(tokenizer, a, b, max_len):
    return tokenizer(a, b, truncation="longest_first", max_length=max_len, padding="longest",
                     return_tensors="pt")


def run(args, lr, seed, tokenizer, train, dev):
    torch.manual_seed(seed)
    labels = args.labels
    model = BertForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={l: i for i, l in enumerate(labels)}, attn_implementation="sdpa")
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    n = len(train[2])
    steps_per_epoch = (n + args.batch_size - 1) // args.batch_size
    total = steps_per_epoch * args.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, int(total * 0.1), total)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(args.epochs):
        model.train()
        for idx in torch.randperm(n, generator=gen).split(args.batch_size):
            idx = idx.tolist()
            enc = encode(tokenizer, [train[0][i] for i in idx],
                         [train[1][i] for i in idx] if train[1] else None, args.max_seq_length)
            out = model(**enc, labels=torch.tensor([train[2][i] for i in idx]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dev[2]), 64):
            sl = slice(start, start + 64)
            enc = encode(tokenizer, dev[0][sl], dev[1][sl] if dev[1] else None, args.max_seq_length)
            pred = model(**enc).logits.argmax(-1)
            correct += int((pred == torch.tensor(dev[2][sl])).sum())
    return correct / len(dev[2])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--text-a", required=True)
    p.add_argument("--text-b")
    p.add_argument("--labels", nargs="+", required=True)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--learning-rates", type=float, nargs="+", default=[2e-5, 3e-5, 5e-5])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = BertTokenizerFast.from_pretrained(args.model)
    train = read_tsv(args.train, args.text_a, args.text_b, args.labels)
    dev = read_tsv(args.dev, args.text_a, args.text_b, args.labels)
    results = []
    for lr in args.learning_rates:
        scores = []
        for seed in args.seeds:
            t = time.time()
            scores.append(run(args, lr, seed, tokenizer, train, dev))
            print(f"lr {lr:.1e} batch {args.batch_size} seed {seed}: accuracy {scores[-1]:.4f} "
                  f"({time.time() - t:.0f} s)", file=sys.stderr)
        sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
        results.append({"learning_rate": lr, "batch_size": args.batch_size, "scores": scores,
                        "mean": statistics.mean(scores), "sd": sd, "min": min(scores),
                        "max": max(scores)})
        print(f"{lr:>10.1e} {args.batch_size:>6}  mean {results[-1]['mean']:.4f} sd {sd:.4f} "
              f"min {min(scores):.4f} max {max(scores):.4f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": args.model, "torch": torch.__version__, "results": results}, f,
                      indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
