#!/usr/bin/env python3
"""Check an exported folder against HuggingFace `transformers`.

Loads the folder as the class its `config.json` names (failing on any missing or unexpected
weight), and with `BertForSequenceClassification` (what fine-tuning uses) and the fast
tokenizer; tokenizes a sentence, runs the model, runs `bert forward` on the same ids, and
compares the outputs.

- `BertForPreTraining` (objectives `mlm_nsp`, `mlm_sop`): prediction and seq-relationship
  logits, last hidden state and pooler output.
- `BertForMaskedLM` (objective `mlm`): loaded through `AutoModelForMaskedLM`; prediction
  logits and last hidden state; then `pipeline("fill-mask")` must answer a masked sentence.

    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch transformers safetensors
    /tmp/hfenv/bin/python scripts/check_hf_export.py runs/quickstart/export [--bert target/release/bert]

Exit status 0 when everything matches within --tol (default 1e-4).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import (AutoModelForMaskedLM, AutoTokenizer, BertForPreTraining,
                          BertForSequenceClassification, pipeline)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--bert", default="target/release/bert")
    ap.add_argument("--text", default="The lighthouse keeper climbed the stairs before the storm reached the harbour.")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    with open(os.path.join(args.folder, "config.json")) as f:
        architecture = json.load(f).get("architectures", ["BertForPreTraining"])[0]
    masked_lm = architecture == "BertForMaskedLM"
    loader = AutoModelForMaskedLM if masked_lm else BertForPreTraining
    model, info = loader.from_pretrained(args.folder, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    print(f"{architecture} via {loader.__name__} ({type(model).__name__}) loading info: {info}")
    if problems:
        print(f"FAIL: loading reported {problems}")
        return 1
    BertForSequenceClassification.from_pretrained(args.folder, num_labels=2)
    print("BertForSequenceClassification: loaded (classifier head newly initialised, as expected for fine-tuning)")
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    enc = tokenizer(args.text, return_tensors="pt")
    print(f"tokenizer: {type(tokenizer).__name__}, {enc['input_ids'].shape[1]} tokens: "
          f"{tokenizer.convert_ids_to_tokens(enc['input_ids'][0])}")
    model.eval()
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    if masked_lm:
        theirs = {
            "prediction_logits": out.logits,
            "last_hidden_state": out.hidden_states[-1],
        }
        fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
        masked = f"the city lies on the {tokenizer.mask_token} of the river ."
        answers = fill(masked, top_k=3)
        print(f"pipeline('fill-mask') {masked!r}: "
              + ", ".join(f"{a['token_str']} ({a['score']:.3f})" for a in answers))
        if len(answers) != 3:
            print("FAIL: the fill-mask pipeline gave no answers")
            return 1
    else:
        theirs = {
            "prediction_logits": out.prediction_logits,
            "seq_relationship_logits": out.seq_relationship_logits,
            "last_hidden_state": out.hidden_states[-1],
            "pooler_output": model.bert.pooler(out.hidden_states[-1]),
        }
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "in.json")
        outputs = os.path.join(tmp, "out.json")
        with open(inputs, "w") as f:
            json.dump({k: v.tolist() for k, v in enc.items()}, f)
        subprocess.run([args.bert, "forward", "--model", args.folder, "--inputs", inputs, "--out", outputs,
                        "--log", "warn"], check=True)
        with open(outputs) as f:
            ours = json.load(f)
    worst_all = 0.0
    for key, value in theirs.items():
        diff = (torch.tensor(ours[key]) - value).abs().max().item()
        worst_all = max(worst_all, diff)
        print(f"{key:24} shape {tuple(value.shape)}  max |bert forward - transformers| = {diff:.3e}")
    ok = worst_all <= args.tol
    print("PASS" if ok else f"FAIL: difference {worst_all:.3e} exceeds {args.tol}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
