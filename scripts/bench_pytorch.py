#!/usr/bin/env python3
"""PyTorch + transformers reference for `bert bench`: the median full training step
(forward, backward, global-norm clip, AdamW) of `BertForPreTraining`, dropout 0.1, on synthetic
batches shaped like real ones (15% of positions labelled for MLM, NSP labels), after warm-up.

Two heads:
- default: HuggingFace's own forward, the MLM decoder over every position;
- `--masked-only`: the same work as ours (and NVIDIA's BERT): the encoder, then the MLM head on
  the gathered masked positions only, then both cross-entropies.

Precision (`--precision`): fp32 (PyTorch's default, no TF32), tf32 (TF32 matmuls allowed),
bf16 (`torch.autocast(dtype=torch.bfloat16)` around the forward, fp32 master weights; the
usual mixed-precision recipe). `--attn sdpa` uses PyTorch's fused attention kernels.

Prints one JSON line with `seq_per_s`, `median_step_s`, `peak_rss_mib` (same keys as
`bert bench --json`), `first_step_s`, per-step `losses`, and on CUDA the peak memory allocated and
reserved by PyTorch's caching allocator. Run by `scripts/bench_vs_pytorch.sh` (CPU, alternating
with ours) and `scripts/gpu_bench.sh` (GPU).
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
    ap.add_argument("--tf32", action="store_true", help="same as --precision tf32")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    ap.add_argument("--masked-only", action="store_true",
                    help="MLM head on the gathered masked positions only (the same work as ours)")
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    ap.add_argument("--dropout", type=float, default=0.1)
    args = ap.parse_args()
    if args.tf32:
        args.precision = "tf32"
    dev = torch.device(args.device)
    if dev.type == "cuda":
        tf32 = args.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    autocast_dtype = torch.bfloat16 if args.precision == "bf16" else None
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers, hidden, heads, inter = PRESETS[args.preset]
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=inter, hidden_dropout_prob=args.dropout,
                        attention_probs_dropout_prob=args.dropout)
    config._attn_implementation = args.attn
    model = BertForPreTraining(config).to(dev)
    model.train()
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, eps=1e-6)
    b, s = args.batch, args.seq
    preds = max(1, round(0.15 * s))
    times = []
    losses = []
    first_step_s = None
    ce = torch.nn.CrossEntropyLoss()

    def forward(ids, types, labels, nsp):
        if not args.masked_only:
            return model(input_ids=ids, token_type_ids=types, attention_mask=torch.ones_like(ids), labels=labels,
                         next_sentence_label=nsp).loss
        seq_out, pooled = model.bert(input_ids=ids, token_type_ids=types, attention_mask=torch.ones_like(ids),
                                     return_dict=False)[:2]
        flat = labels.reshape(-1)
        where = (flat != -100).nonzero().squeeze(1)
        gathered = seq_out.reshape(-1, seq_out.shape[-1]).index_select(0, where)
        mlm_logits = model.cls.predictions(gathered)
        nsp_logits = model.cls.seq_relationship(pooled)
        return ce(mlm_logits.float(), flat.index_select(0, where)) + ce(nsp_logits.float(), nsp)

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
        with torch.autocast(device_type=dev.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            loss = forward(ids, types, labels, nsp)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if first_step_s is None:
            first_step_s = dt
        if i >= args.warmup:
            times.append(dt)
    med = statistics.median(times)
    cuda = dev.type == "cuda"
    print(json.dumps({"impl": "pytorch", "preset": args.preset, "seq_per_s": b / med, "median_step_s": med,
                      "min_step_s": min(times), "max_step_s": max(times), "first_step_s": first_step_s,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "peak_device_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                      "peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
                      "device": torch.cuda.get_device_name() if cuda else "cpu",
                      "precision": args.precision, "masked_only": args.masked_only, "attn": args.attn,
                      "losses": losses, "batch": b, "seq": s, "masked": preds,
                      "attn_used": model.config._attn_implementation, "torch": torch.__version__, "threads": args.threads}))


if __name__ == "__main__":
    main()
