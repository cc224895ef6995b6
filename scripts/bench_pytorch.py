#!/usr/bin/env python3
"""PyTorch + transformers reference for `bert bench`: the median full training step
(forward, backward, AdamW) of `BertForPreTraining`, fp32, dropout 0.1, on synthetic batches
shaped like real ones (15% of positions labelled for MLM, NSP labels), after warm-up.

Prints one JSON line with `seq_per_s`, `median_step_s`, `peak_rss_mib` (same keys as
`bert bench --json`). Installed by `scripts/bench_vs_pytorch.sh` (which runs both alternately).
"""
import argparse
import json
import resource
import statistics
import time

import torch
from transformers import BertConfig, BertForPreTraining

PRESETS = {
    "tiny": (2, 128, 2, 512),
    "mini": (4, 256, 4, 1024),
    "small": (4, 512, 8, 2048),
    "medium": (8, 512, 8, 2048),
    "base": (12, 768, 12, 3072),
    "large": (24, 1024, 16, 4096),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="mini")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA (PyTorch's default is off)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers, hidden, heads, inter = PRESETS[args.preset]
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=inter, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model = BertForPreTraining(config).to(dev)
    model.train()
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, eps=1e-6)
    b, s = args.batch, args.seq
    preds = max(1, round(0.15 * s))
    times = []
    for i in range(args.warmup + args.steps):
        ids = torch.randint(5, config.vocab_size, (b, s))
        labels = torch.full((b, s), -100)
        for r in range(b):
            pos = torch.randperm(s - 1)[:preds] + 1
            labels[r, pos] = torch.randint(5, config.vocab_size, (preds,))
        types = (torch.arange(s) >= s // 2).long().expand(b, s)
        nsp = torch.randint(0, 2, (b,))
        ids, labels, types, nsp = ids.to(dev), labels.to(dev), types.to(dev), nsp.to(dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(input_ids=ids, token_type_ids=types, attention_mask=torch.ones_like(ids), labels=labels,
                    next_sentence_label=nsp)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
    med = statistics.median(times)
    print(json.dumps({"impl": "pytorch", "preset": args.preset, "seq_per_s": b / med, "median_step_s": med,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "peak_device_mib": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
                      "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
                      "tf32": args.tf32, "batch": b, "seq": s,
                      "torch": torch.__version__, "threads": args.threads}))


if __name__ == "__main__":
    main()
