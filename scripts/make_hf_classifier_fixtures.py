#!/usr/bin/env python3
"""Reference fixtures of HuggingFace `BertForSequenceClassification` for the Rust model tests.

Each fixture is a folder under `crates/model/tests/fixtures/classifier/` holding a tiny
randomly-initialised classifier written by `transformers` itself (`config.json` with
`id2label`/`label2id`/`problem_type`, and `model.safetensors`, via `save_pretrained`), the padded
inputs fed to it (`inputs.json`), the logits and pooled output it computed for them
(`expected.safetensors`, f32) and provenance (`meta.json`). The Rust tests load the folder as a
classifier, run the same inputs and compare.

  three_labels   single-label classification over three named classes (MNLI's shape),
                 gelu, hidden 32, 2 layers, 4 heads, classifier_dropout 0.2
  regression     one output, problem_type "regression" (STS-B's shape), relu, hidden 24,
                 2 layers, 6 heads

Weights, inputs and the perturbation are those of `scripts/make_hf_fixtures.py` (imported from
it): every parameter drawn by the script from its seed, so they are the same whatever
`transformers` version runs it. Eager attention, float32, on the CPU; byte-identical on a rerun.

    python3 -m venv /tmp/hfenv5
    /tmp/hfenv5/bin/pip install torch "transformers>=5" safetensors numpy
    /tmp/hfenv5/bin/python scripts/make_hf_classifier_fixtures.py   # from the workspace root

Ran with Python 3.11, torch 2.15.0, transformers 5.25.0.
"""

import json
import os
import platform
import sys

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from transformers import BertForSequenceClassification

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_hf_fixtures import make_config, make_inputs, perturb, safetensors_keys, to_f32  # noqa: E402

OUT = "crates/model/tests/fixtures/classifier"

FIXTURES = {
    "three_labels": dict(
        seed=2468,
        labels=["contradiction", "entailment", "neutral"],
        problem_type="single_label_classification",
        config=dict(
            vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, hidden_act="gelu", hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1, max_position_embeddings=16, type_vocab_size=2,
            layer_norm_eps=1e-12, initializer_range=0.02, pad_token_id=0, classifier_dropout=0.2,
        ),
    ),
    "regression": dict(
        seed=1357,
        labels=["LABEL_0"],
        problem_type="regression",
        config=dict(
            vocab_size=99, hidden_size=24, num_hidden_layers=2, num_attention_heads=6,
            intermediate_size=30, hidden_act="relu", hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1, max_position_embeddings=16, type_vocab_size=2,
            layer_norm_eps=1e-12, initializer_range=0.02, pad_token_id=0,
        ),
    ),
}


def build(name, spec):
    out_dir = os.path.join(OUT, name)
    os.makedirs(out_dir, exist_ok=True)
    seed = spec["seed"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = dict(spec["config"])
    cfg["id2label"] = {i: l for i, l in enumerate(spec["labels"])}
    cfg["label2id"] = {l: i for i, l in enumerate(spec["labels"])}
    cfg["problem_type"] = spec["problem_type"]
    config = make_config(cfg)
    model = BertForSequenceClassification(config)
    model.eval()
    perturb(model, gen)
    input_ids, token_type_ids, attention_mask = make_inputs(gen, cfg["vocab_size"], cfg["type_vocab_size"], False)
    args = dict(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
    with torch.no_grad():
        out = model(**args)
        pooled = model.bert(**args).pooler_output
    logits = to_f32(out.logits)
    assert logits.shape == (input_ids.shape[0], len(spec["labels"])), logits.shape
    assert np.abs(logits).std() > 0.05
    model.save_pretrained(out_dir, safe_serialization=True)
    save_file({"logits": logits, "pooler_output": to_f32(pooled)}, os.path.join(out_dir, "expected.safetensors"))
    with open(os.path.join(out_dir, "inputs.json"), "w") as f:
        json.dump({k: v.tolist() for k, v in args.items()}, f)
        f.write("\n")
    keys, st_meta = safetensors_keys(os.path.join(out_dir, "model.safetensors"))
    reloaded = BertForSequenceClassification.from_pretrained(out_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        diff = float((reloaded(**args).logits - out.logits).abs().max())
    assert diff < 1e-6, diff
    meta = {
        "generator": "scripts/make_hf_classifier_fixtures.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "seed": seed,
        "labels": spec["labels"],
        "problem_type": spec["problem_type"],
        "model_safetensors_keys": keys,
        "model_safetensors_metadata": st_meta,
    }
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"== {name}: logits {logits.shape}, {len(keys)} tensors, reload diff {diff}")


def main():
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:
        pass
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for name, spec in FIXTURES.items():
        build(name, spec)


if __name__ == "__main__":
    main()
