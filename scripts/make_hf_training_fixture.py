#!/usr/bin/env python3
"""Reference for the training step: a few AdamW steps of HuggingFace `BertForPreTraining`
(or, with `--objective mlm`, of `BertForMaskedLM`: MLM loss only, one token type, no pooler and
no NSP head, as an `mlm` run trains).

Writes `crates/train/tests/fixtures/adamw_steps/` (`adamw_steps_mlm/` with `--objective mlm`):
  config.json, model.safetensors  the initial model (tiny, random, written by transformers)
  batches.json                    the micro-batches, in our loader's batch layout
  expected.json                   loss, MLM loss, NSP loss and global gradient norm per step,
                                  the learning rate per step, and the optimiser settings
  final.safetensors               every parameter after the last step (HuggingFace names)

The Rust test `crates/train/tests/torch_parity.rs` loads the initial model, runs our own
optimiser step (`TrainState::step`) on the same batches and compares each step's losses and
gradient norm and the final weights. Dropout is 0 so both sides are deterministic.

The optimiser is PyTorch's AdamW with BERT's settings (β 0.9/0.999, ε 1e-6, weight decay 0.01
on every parameter except biases and LayerNorm weights), global-norm clipping at 1.0
(`torch.nn.utils.clip_grad_norm_`) and a linear warm-up/decay learning rate.

Environment (PyPI only):
    python3 -m venv /tmp/hfenv5
    /tmp/hfenv5/bin/pip install torch "transformers>=5" safetensors numpy
    /tmp/hfenv5/bin/python scripts/make_hf_training_fixture.py
    /tmp/hfenv5/bin/python scripts/make_hf_training_fixture.py --objective mlm
"""
import argparse
import json
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining

STEPS = 12
BATCH, SEQ, PREDS = 4, 12, 3
PEAK_LR, WARMUP, MAX_NORM = 5e-3, 3, 1.0


def lr_at(step):
    # Our schedule: warm-up counts from 1, then linear decay to zero at STEPS.
    s = step + 1
    if s <= WARMUP:
        return PEAK_LR * s / WARMUP
    return PEAK_LR * max(0.0, 1.0 - (s - WARMUP) / (STEPS - WARMUP))


def make_batches(gen, vocab, mlm_only):
    batches = []
    for _ in range(STEPS):
        ids, types, mask, pos, labels, weights, nsp = [], [], [], [], [], [], []
        for r in range(BATCH):
            length = int(torch.randint(6, SEQ + 1, (1,), generator=gen))
            row = [2] + [int(x) for x in torch.randint(5, vocab, (length - 2,), generator=gen)] + [3]
            split = length // 2
            ids += row + [0] * (SEQ - length)
            if mlm_only:
                types += [0] * SEQ
            else:
                types += [0] * split + [1] * (length - split) + [0] * (SEQ - length)
            mask += [1] * length + [0] * (SEQ - length)
            real = int(torch.randint(1, PREDS + 1, (1,), generator=gen))
            chosen = sorted(int(p) for p in torch.randperm(length - 2, generator=gen)[:real] + 1)
            pos += chosen + [0] * (PREDS - real)
            labels += [int(x) for x in torch.randint(5, vocab, (real,), generator=gen)] + [0] * (PREDS - real)
            weights += [1.0] * real + [0.0] * (PREDS - real)
            label = int(torch.randint(0, 2, (1,), generator=gen))
            nsp.append(0 if mlm_only else label)
        batches.append(dict(batch_size=BATCH, seq_len=SEQ, max_predictions=PREDS, input_ids=ids,
                            token_type_ids=types, attention_mask=mask, masked_positions=pos,
                            masked_labels=labels, masked_weights=weights, nsp_labels=nsp))
    return batches


def to_torch(b):
    t = lambda k: torch.tensor(b[k]).view(BATCH, -1)
    labels = torch.full((BATCH, SEQ), -100, dtype=torch.long)
    pos, lab, w = t("masked_positions"), t("masked_labels"), t("masked_weights")
    for r in range(BATCH):
        for k in range(PREDS):
            if w[r, k] > 0:
                labels[r, pos[r, k]] = lab[r, k]
    return t("input_ids"), t("token_type_ids"), t("attention_mask"), labels, torch.tensor(b["nsp_labels"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objective", choices=["mlm_nsp", "mlm"], default="mlm_nsp")
    ap.add_argument("--out")
    args = ap.parse_args()
    mlm_only = args.objective == "mlm"
    if args.out is None:
        args.out = "crates/train/tests/fixtures/adamw_steps" + ("_mlm" if mlm_only else "")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    config = BertConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=16, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, initializer_range=0.1,
                        type_vocab_size=1 if mlm_only else 2)
    model = BertForMaskedLM(config) if mlm_only else BertForPreTraining(config)
    with torch.no_grad():  # non-trivial LayerNorm/bias values, so a wrong update shows
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    model.save_pretrained(args.out, safe_serialization=True)
    batches = make_batches(gen, config.vocab_size, mlm_only)

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=PEAK_LR, betas=(0.9, 0.999), eps=1e-6)
    model.train()
    records = []
    for step, b in enumerate(batches):
        ids, types, mask, labels, nsp = to_torch(b)
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
        logits = out.logits if mlm_only else out.prediction_logits
        mlm = torch.nn.functional.cross_entropy(logits.view(-1, config.vocab_size), labels.view(-1), ignore_index=-100)
        if mlm_only:
            nsp_loss = torch.zeros(())
            loss = mlm
        else:
            nsp_loss = torch.nn.functional.cross_entropy(out.seq_relationship_logits, nsp)
            loss = mlm + nsp_loss
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.step()
        records.append(dict(step=step + 1, loss=loss.item(), mlm_loss=mlm.item(), nsp_loss=nsp_loss.item(),
                            grad_norm=norm.item(), lr=lr_at(step)))
    final = {n: p.detach().clone().contiguous() for n, p in model.named_parameters() if n != "cls.predictions.decoder.weight"}
    final.pop("cls.predictions.decoder.bias", None)
    save_file(final, os.path.join(args.out, "final.safetensors"))
    with open(os.path.join(args.out, "batches.json"), "w") as f:
        json.dump(batches, f)
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(dict(objective=args.objective, steps=records, peak_lr=PEAK_LR, warmup_steps=WARMUP, total_steps=STEPS, max_grad_norm=MAX_NORM,
                       optimizer=dict(kind="adamw", beta1=0.9, beta2=0.999, epsilon=1e-6, weight_decay=0.01),
                       transformers=transformers.__version__, torch=torch.__version__), f, indent=1)
    for r in records:
        print(r)


if __name__ == "__main__":
    main()
