#!/usr/bin/env python3
"""Fixture: a model fine-tuned by `bert finetune`, scored by `transformers`.

Builds `crates/finetune/tests/fixtures/hf_export/`:

  vocab.txt        a 25-token uncased WordPiece vocabulary (BERT's specials and the task's words)
  start/           a tiny randomly initialised `BertModel` written by `transformers`
                   (`save_pretrained`): the encoder the fine-tuning starts from
  train.tsv        160 sentence pairs, GLUE's TSV shape (MRPC's columns), label `yes` where the
  dev.tsv          second sentence names a river (32 pairs)
  finetune.toml    the `bert finetune` config: 6 epochs at lr 2e-3, batch 16, seed 3
  expected.json    what `transformers` computes with the export `bert finetune` wrote: the
                   logits of every dev pair (`AutoModelForSequenceClassification`, eager
                   attention, float32, inputs from `BertTokenizer` on the export's vocab.txt),
                   and the export's `id2label`
  meta.json        provenance

The Rust test (`crates/finetune/tests/it/hf_export.rs`) runs the same sweep in-process, loads
its export and holds its logits on the dev pairs to these to 1e-4: our fine-tuned export is
what `transformers` reads, and `transformers` gives what we give.

    python3 -m venv /tmp/hfenv
    /tmp/hfenv/bin/pip install torch "transformers>=5" safetensors numpy
    cargo build --release -p bert-cli
    /tmp/hfenv/bin/python scripts/make_finetune_export_fixture.py   # from the workspace root

`BERT=path/to/bert` picks another binary (default target/release/bert).
Ran with Python 3.11, torch and transformers as meta.json records.
"""

import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import AutoModelForSequenceClassification, BertConfig, BertModel, BertTokenizer

OUT = "crates/finetune/tests/fixtures/hf_export"
WORDS = ["the", "bridge", "house", "old", "man", "was", "in", "a", "town", "green", "road",
         "small", "near", "by", "stone", "long", "dark", "and", "river"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "##s"]
MAX_LEN = 24
SEED = 3


def split(n, rng):
    """n pairs; label `yes` where the second sentence holds "river"."""
    rows = ["index\tsentence1\tsentence2\tlabel"]
    for i in range(n):
        def sentence():
            words = [rng.choice(WORDS[:-1]) if rng.random() > 0.12 else "river" for _ in range(6)]
            return " ".join(words), "river" in words
        a, _ = sentence()
        b, river = sentence()
        rows.append(f"{i}\t{a}\t{b}\t{'yes' if river else 'no'}")
    return "\n".join(rows) + "\n"


CONFIG = f"""# `bert finetune` config of the transformers-export fixture (scripts/make_finetune_export_fixture.py).
[finetune]
init_from = "start"
tokenizer = "vocab.txt"
out_dir = "out"
max_seq_length = {MAX_LEN}
epochs = 6
learning_rates = [2e-3]
batch_sizes = [16]
seeds = [{SEED}]
checkpoint_every = 0

[finetune.task]
name = "river-pairs"
train = "train.tsv"
validation = "dev.tsv"
text_a = "sentence1"
text_b = "sentence2"
labels = ["no", "yes"]
"""


def main():
    transformers.utils.logging.disable_progress_bar()
    bert = os.environ.get("BERT", "target/release/bert")
    if not os.path.isfile(bert):
        sys.exit(f"{bert} is missing: cargo build --release -p bert-cli (or set BERT)")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    with open(os.path.join(OUT, "vocab.txt"), "w") as f:
        f.write("\n".join(SPECIALS + WORDS) + "\n")
    rng = random.Random(20261207)
    with open(os.path.join(OUT, "train.tsv"), "w") as f:
        f.write(split(160, rng))
    with open(os.path.join(OUT, "dev.tsv"), "w") as f:
        f.write(split(32, rng))
    with open(os.path.join(OUT, "finetune.toml"), "w") as f:
        f.write(CONFIG)

    torch.manual_seed(SEED)
    config = BertConfig(
        vocab_size=len(SPECIALS) + len(WORDS), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=48, hidden_act="gelu",
        max_position_embeddings=32, type_vocab_size=2, pad_token_id=0,
    )
    start = BertModel(config, add_pooling_layer=True)
    start.save_pretrained(os.path.join(OUT, "start"), safe_serialization=True)

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        run = subprocess.run(
            [bert, "finetune", "--config", os.path.join(OUT, "finetune.toml"),
             "--set", f'finetune.out_dir="{out}"', "--json"],
            check=True, capture_output=True, text=True,
        )
        report = json.loads(run.stdout)
        export = os.path.join(out, "export")
        model = AutoModelForSequenceClassification.from_pretrained(
            export, attn_implementation="eager").eval()
        tokenizer = BertTokenizer(os.path.join(export, "vocab.txt"), do_lower_case=True)
        with open(os.path.join(OUT, "dev.tsv")) as f:
            rows = [line.rstrip("\n").split("\t") for line in f][1:]
        enc = tokenizer([r[1] for r in rows], [r[2] for r in rows], padding=True,
                        truncation="longest_first", max_length=MAX_LEN, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits
        expected = {
            "id2label": {str(k): v for k, v in model.config.id2label.items()},
            "problem_type": model.config.problem_type,
            "logits": logits.tolist(),
            "input_ids": enc["input_ids"].tolist(),
        }
        accuracy = float((logits.argmax(-1) == torch.tensor(
            [1 if r[3] == "yes" else 0 for r in rows])).float().mean())
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f)
        f.write("\n")
    meta = {
        "generator": "scripts/make_finetune_export_fixture.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "bert_report_score": report["runs"][0]["score"],
        "transformers_accuracy": accuracy,
    }
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"== {OUT}: {len(rows)} dev pairs, bert's accuracy {meta['bert_report_score']}, "
          f"transformers' {accuracy}")


if __name__ == "__main__":
    main()
