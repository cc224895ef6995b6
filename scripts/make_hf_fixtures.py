#!/usr/bin/env python3
"""Generate small HuggingFace `transformers` reference fixtures for the Rust model tests.

Each fixture is a directory holding a tiny randomly-initialised BERT checkpoint written by
HuggingFace itself (`config.json` + `model.safetensors`, via `save_pretrained`), the inputs
fed to it (`inputs.json`), the outputs HuggingFace computed for them (`expected.safetensors`,
all f32) and provenance (`meta.json`).  The Rust tests load the checkpoint, run the same
inputs and compare numerically.

Fixtures (the suffix `_v<N>` is the major version of the `transformers` that wrote them, so
running this script once per major version writes one set per version side by side):

  pretraining_v<N>        BertForPreTraining, gelu, H=32, 2 layers, 4 heads, I=37,
                          2 token types, layer_norm_eps=1e-12
  pretraining_relu_v<N>   BertForPreTraining, relu, H=24, 3 layers, 6 heads (head dim 4),
                          I=30, 3 token types, layer_norm_eps=1e-5
  base_model_v<N>         BertModel (with pooler, no heads, no `bert.` key prefix), gelu,
                          H=32, 2 layers, 2 heads, I=40

Every parameter is overwritten after construction (seeded): Linear/Embedding weights
~ N(0, 0.2), every Linear bias, LayerNorm bias and the MLM output bias `cls.predictions.bias`
~ N(0, 0.1), LayerNorm weights ~ 1 + N(0, 0.1).  The MLM decoder stays tied to the word
embeddings (and `cls.predictions.decoder.bias` to `cls.predictions.bias`), as HF ties them.
Because every value is drawn by this script (not by HF's initialiser), the weights, inputs
and labels are the same whatever `transformers` version runs it; only the provenance and the
file layout HF chooses may differ.  Reference outputs are computed with eager attention in
float32 on the CPU.  Running the script twice gives byte-identical files.

Environment (no GPU needed; the machine only needs to reach PyPI).  PyPI's Linux torch wheel
pulls the NVIDIA CUDA runtime packages (~5.5 GB per venv); that is fine, the script runs on
the CPU.  PyPI has no CPU-only torch wheel for Linux x86_64 (PyTorch publishes those on its
own package index only), so the plain PyPI install is the one documented here:

    python3 -m venv /tmp/hfenv4
    /tmp/hfenv4/bin/pip install torch "transformers<5" safetensors numpy
    python3 -m venv /tmp/hfenv5
    /tmp/hfenv5/bin/pip install torch "transformers>=5" safetensors numpy

    # from the workspace root:
    /tmp/hfenv4/bin/python scripts/make_hf_fixtures.py   # writes *_v4
    /tmp/hfenv5/bin/python scripts/make_hf_fixtures.py   # writes *_v5

Tested with Python 3.11, torch 2.15.0, safetensors 0.8.0, numpy 2.4.6 and transformers
4.57.6 / 5.24.0.

Options:  --out DIR   (default crates/model/tests/fixtures)
          --only NAME (repeatable; fixture base name without suffix, e.g. `pretraining`)

Files per fixture:
  config.json, model.safetensors  exactly what `save_pretrained(dir, safe_serialization=True)`
                                  writes
  inputs.json      input_ids / token_type_ids / attention_mask, each [3][9] (rows 1 and 2
                   right-padded with id 0, attention 0, token type 0); for the pre-training
                   fixtures also masked_positions / masked_labels [3][4] ints (padding slots
                   0), masked_weights [3][4] floats (1.0 real slot, 0.0 padding slot) and
                   next_sentence_label [3]
  expected.safetensors  prediction_logits [3,9,V], seq_relationship_logits [3,2],
                   last_hidden_state [3,9,H], pooler_output [3,H], and shape-[1] tensors
                   mlm_loss, nsp_loss, loss (= HF's total loss = mlm_loss + nsp_loss),
                   mlm_accuracy, nsp_accuracy (base_model: only last_hidden_state and
                   pooler_output)
  meta.json        versions, seed, config arguments, description, key list of
                   model.safetensors and what reloading it with from_pretrained reported

mlm_loss is the mean cross-entropy over the real masked slots (weight 1.0); nsp_loss the mean
over the batch; about half of the masked labels (and some NSP labels) are chosen equal to the
model's own argmax so that the accuracies are neither 0 nor 1.
"""

import argparse
import json
import os
import platform
import warnings

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.numpy import save_file
from transformers import BertConfig, BertForPreTraining, BertModel

BATCH = 3
SEQ = 9
MAX_PRED = 4
# real lengths of the three rows: row 0 unpadded, rows 1 and 2 padded by different amounts
LENGTHS = [9, 7, 5]
# number of real masked slots per row (the rest of the MAX_PRED slots are padding)
N_MASKED = [4, 3, 2]
PAD_ID = 0

W_STD = 0.2
B_STD = 0.1
LN_STD = 0.1

FIXTURES = {
    "pretraining": dict(
        seed=1234,
        kind="pretraining",
        description="BertForPreTraining, gelu, hidden 32, 2 layers, 4 heads, intermediate 37, "
        "2 token types, layer_norm_eps 1e-12, all parameters perturbed",
        config=dict(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            hidden_act="gelu",
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            max_position_embeddings=16,
            type_vocab_size=2,
            layer_norm_eps=1e-12,
            initializer_range=0.02,
            pad_token_id=0,
        ),
    ),
    "pretraining_relu": dict(
        seed=5678,
        kind="pretraining",
        description="BertForPreTraining, relu, hidden 24, 3 layers, 6 heads (head dim 4), "
        "intermediate 30, 3 token types, layer_norm_eps 1e-5, all parameters perturbed",
        config=dict(
            vocab_size=99,
            hidden_size=24,
            num_hidden_layers=3,
            num_attention_heads=6,
            intermediate_size=30,
            hidden_act="relu",
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            max_position_embeddings=16,
            type_vocab_size=3,
            layer_norm_eps=1e-5,
            initializer_range=0.02,
            pad_token_id=0,
        ),
    ),
    "base_model": dict(
        seed=4321,
        kind="base",
        description="BertModel with pooler (no heads, keys without 'bert.' prefix), gelu, "
        "hidden 32, 2 layers, 2 heads, intermediate 40, all parameters perturbed",
        config=dict(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=40,
            hidden_act="gelu",
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            max_position_embeddings=16,
            type_vocab_size=2,
            layer_norm_eps=1e-12,
            initializer_range=0.02,
            pad_token_id=0,
        ),
    ),
}


def major_version():
    return int(transformers.__version__.split(".")[0])


def make_config(cfg):
    config = BertConfig(**cfg)
    # Reference outputs use the plain (eager) attention math.  Set after construction so that
    # it is not a constructor argument that some versions would write into config.json.
    config._attn_implementation = "eager"
    return config


@torch.no_grad()
def perturb(model, gen):
    """Overwrite every parameter, shared (tied) ones once, in a fixed order."""
    done = set()

    def normal_(p, mean, std):
        if id(p) in done:
            return
        done.add(id(p))
        p.copy_(mean + std * torch.randn(p.shape, generator=gen, dtype=torch.float32))

    for name, module in sorted(model.named_modules(), key=lambda kv: kv[0]):
        if isinstance(module, torch.nn.LayerNorm):
            normal_(module.weight, 1.0, LN_STD)
            normal_(module.bias, 0.0, B_STD)
        elif isinstance(module, torch.nn.Linear):
            normal_(module.weight, 0.0, W_STD)
            if module.bias is not None:
                normal_(module.bias, 0.0, B_STD)
        elif isinstance(module, torch.nn.Embedding):
            normal_(module.weight, 0.0, W_STD)
    # Whatever is left (the MLM output bias `cls.predictions.bias`, unless the decoder's
    # bias is the same Parameter and was drawn above) is a bias.
    for name, p in sorted(model.named_parameters(remove_duplicate=False), key=lambda kv: kv[0]):
        if id(p) not in done:
            if not name.endswith("bias"):
                raise RuntimeError(f"unexpected uncovered parameter {name}")
            normal_(p, 0.0, B_STD)
    n_unique = len({id(p) for p in model.parameters()})
    assert len(done) == n_unique, (len(done), n_unique)


def make_inputs(gen, vocab, type_vocab, with_type2):
    input_ids = torch.zeros(BATCH, SEQ, dtype=torch.long)
    token_type_ids = torch.zeros(BATCH, SEQ, dtype=torch.long)
    attention_mask = torch.zeros(BATCH, SEQ, dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        input_ids[b, :n] = torch.randint(1, vocab, (n,), generator=gen)
        attention_mask[b, :n] = 1
        # segment A then segment B (type 1) for the real tokens; padding keeps type 0
        split = (n + 1) // 2 + 1
        token_type_ids[b, split:n] = 1
    if with_type2:
        assert type_vocab >= 3
        token_type_ids[0, SEQ - 2 :] = 2
        token_type_ids[2, LENGTHS[2] - 1] = 2
    return input_ids, token_type_ids, attention_mask


def make_masked_positions(gen):
    positions = torch.zeros(BATCH, MAX_PRED, dtype=torch.long)
    weights = torch.zeros(BATCH, MAX_PRED, dtype=torch.float32)
    for b, (n, k) in enumerate(zip(LENGTHS, N_MASKED)):
        perm = torch.randperm(n, generator=gen)[:k]
        positions[b, :k] = torch.sort(perm).values
        weights[b, :k] = 1.0
    return positions, weights


def tensor1(x):
    return np.asarray([float(x)], dtype=np.float32)


def to_f32(t):
    return np.ascontiguousarray(t.detach().to(torch.float32).cpu().numpy())


def safetensors_keys(path):
    out = {}
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
        for k in sorted(f.keys()):
            sl = f.get_slice(k)
            out[k] = f"{sl.get_dtype()}{list(sl.get_shape())}"
    return out, meta


def reload_check(cls, out_dir, ref_model, args):
    """Reload the saved folder with from_pretrained; return loading info and max output diff."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded, info = cls.from_pretrained(out_dir, output_loading_info=True, attn_implementation="eager")
    loaded.eval()
    with torch.no_grad():
        a = ref_model(**args)
        b = loaded(**args)
    diffs = []
    for k in a.keys():
        if isinstance(a[k], torch.Tensor) and a[k] is not None and b.get(k) is not None:
            diffs.append(float((a[k] - b[k]).abs().max()))
    info = {k: sorted(list(v)) if not isinstance(v, (str, int, float)) else v for k, v in info.items()}
    info = {k: [str(x) for x in v] if isinstance(v, list) else v for k, v in info.items()}
    return info, max(diffs), [str(w.message) for w in caught]


def build(name, spec, out_root):
    suffix = f"_v{major_version()}"
    out_dir = os.path.join(out_root, name + suffix)
    os.makedirs(out_dir, exist_ok=True)

    seed = spec["seed"]
    cfg = spec["config"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    config = make_config(cfg)
    is_pretraining = spec["kind"] == "pretraining"
    cls = BertForPreTraining if is_pretraining else BertModel
    model = cls(config) if is_pretraining else BertModel(config, add_pooling_layer=True)
    model.eval()
    perturb(model, gen)
    if is_pretraining:
        # the normal HF tie must have survived the perturbation
        dec = model.cls.predictions.decoder
        assert dec.weight is model.bert.embeddings.word_embeddings.weight
        assert torch.equal(dec.bias, model.cls.predictions.bias)

    vocab = cfg["vocab_size"]
    input_ids, token_type_ids, attention_mask = make_inputs(
        gen, vocab, cfg["type_vocab_size"], with_type2=cfg["type_vocab_size"] >= 3
    )
    args = dict(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
    inputs = {
        "input_ids": input_ids.tolist(),
        "token_type_ids": token_type_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
    }

    expected = {}
    summary = {}
    with torch.no_grad():
        base = model.bert if is_pretraining else model
        base_out = base(**args)
        expected["last_hidden_state"] = to_f32(base_out.last_hidden_state)
        expected["pooler_output"] = to_f32(base_out.pooler_output)

        if is_pretraining:
            out = model(**args)
            logits = out.prediction_logits
            nsp_logits = out.seq_relationship_logits
            assert torch.allclose(logits, model.cls(base_out.last_hidden_state, base_out.pooler_output)[0])

            positions, weights = make_masked_positions(gen)
            labels = torch.zeros(BATCH, MAX_PRED, dtype=torch.long)
            slot = 0
            for b in range(BATCH):
                for j in range(N_MASKED[b]):
                    p = positions[b, j]
                    top = int(logits[b, p].argmax())
                    if slot % 2 == 0:
                        lab = top  # a hit
                    else:
                        lab = int(torch.randint(1, vocab, (1,), generator=gen))
                        if lab == top:
                            lab = lab % (vocab - 1) + 1
                    labels[b, j] = lab
                    slot += 1
            nsp_top = nsp_logits.argmax(-1)
            next_sentence_label = torch.tensor(
                [int(nsp_top[0]), 1 - int(nsp_top[1]), int(nsp_top[2])], dtype=torch.long
            )

            full_labels = torch.full((BATCH, SEQ), -100, dtype=torch.long)
            for b in range(BATCH):
                for j in range(MAX_PRED):
                    if weights[b, j] > 0:
                        full_labels[b, positions[b, j]] = labels[b, j]
            out_l = model(**args, labels=full_labels, next_sentence_label=next_sentence_label)
            assert torch.equal(out_l.prediction_logits, logits)
            hf_loss = float(out_l.loss)

            mlm_loss_t = F.cross_entropy(logits.reshape(-1, vocab), full_labels.reshape(-1), ignore_index=-100)
            nsp_loss_t = F.cross_entropy(nsp_logits.reshape(-1, 2), next_sentence_label.reshape(-1))
            # independent route: gather the masked slots and weight them
            gathered = torch.gather(logits, 1, positions.unsqueeze(-1).expand(-1, -1, vocab))
            per_slot = F.cross_entropy(gathered.reshape(-1, vocab), labels.reshape(-1), reduction="none")
            mlm_loss_w = (per_slot * weights.reshape(-1)).sum() / weights.sum()
            assert abs(float(mlm_loss_t) - float(mlm_loss_w)) < 1e-6, (mlm_loss_t, mlm_loss_w)
            assert abs(float(mlm_loss_t + nsp_loss_t) - hf_loss) < 1e-5, (mlm_loss_t, nsp_loss_t, hf_loss)

            hits = (gathered.argmax(-1) == labels).float() * weights
            mlm_acc = float(hits.sum() / weights.sum())
            nsp_acc = float((nsp_logits.argmax(-1) == next_sentence_label).float().mean())
            assert 0.0 < mlm_acc < 1.0 and 0.0 < nsp_acc < 1.0

            expected["prediction_logits"] = to_f32(logits)
            expected["seq_relationship_logits"] = to_f32(nsp_logits)
            expected["mlm_loss"] = tensor1(mlm_loss_t)
            expected["nsp_loss"] = tensor1(nsp_loss_t)
            expected["loss"] = tensor1(out_l.loss)
            expected["mlm_accuracy"] = tensor1(mlm_acc)
            expected["nsp_accuracy"] = tensor1(nsp_acc)

            inputs["masked_positions"] = positions.tolist()
            inputs["masked_labels"] = labels.tolist()
            inputs["masked_weights"] = weights.tolist()
            inputs["next_sentence_label"] = next_sentence_label.tolist()
            summary.update(
                mlm_loss=float(mlm_loss_t), nsp_loss=float(nsp_loss_t), loss=hf_loss,
                mlm_accuracy=mlm_acc, nsp_accuracy=nsp_acc,
            )

    # sanity: the pooled / hidden outputs are non-trivial
    assert np.abs(expected["last_hidden_state"]).std() > 0.1

    model.save_pretrained(out_dir, safe_serialization=True)
    save_file(expected, os.path.join(out_dir, "expected.safetensors"))
    with open(os.path.join(out_dir, "inputs.json"), "w") as f:
        json.dump(inputs, f)
        f.write("\n")

    keys, st_meta = safetensors_keys(os.path.join(out_dir, "model.safetensors"))
    info, reload_diff, reload_warnings = reload_check(cls, out_dir, model, args)
    assert reload_diff < 1e-5, f"reloaded model differs by {reload_diff}"

    meta = {
        "description": spec["description"],
        "generator": "scripts/make_hf_fixtures.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "safetensors_version": __import__("safetensors").__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "seed": seed,
        "model_class": cls.__name__,
        "attn_implementation": "eager",
        "config": cfg,
        "perturbation": {
            "weights": f"N(0, {W_STD})",
            "biases_incl_cls.predictions.bias": f"N(0, {B_STD})",
            "layernorm_weight": f"1 + N(0, {LN_STD})",
            "layernorm_bias": f"N(0, {B_STD})",
        },
        "batch": BATCH,
        "seq_len": SEQ,
        "real_lengths": LENGTHS,
        "model_safetensors_metadata": st_meta,
        "model_safetensors_keys": keys,
        "reload_loading_info": info,
    }
    if summary:
        meta["expected_scalars"] = summary
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")

    # ---- summary ----
    print(f"== {name}{suffix}  ({cls.__name__}, transformers {transformers.__version__}, torch {torch.__version__})")
    for fn in sorted(os.listdir(out_dir)):
        print(f"   {fn:24s} {os.path.getsize(os.path.join(out_dir, fn)):8d} bytes")
    print(f"   model.safetensors: {len(keys)} tensors, metadata={st_meta}")
    for probe in [
        "cls.predictions.decoder.weight",
        "cls.predictions.decoder.bias",
        "cls.predictions.bias",
        "bert.embeddings.position_ids",
        "embeddings.position_ids",
        "bert.embeddings.token_type_ids",
    ]:
        print(f"     {probe:34s} {'PRESENT' if probe in keys else 'absent'}")
    gb = [k for k in keys if "gamma" in k or "beta" in k]
    print(f"     gamma/beta keys: {gb if gb else 'none'}")
    print(f"     dtypes: {sorted({v.split('[')[0] for v in keys.values()})}")
    print(f"   reload: missing={info.get('missing_keys')} unexpected={info.get('unexpected_keys')} "
          f"mismatched={info.get('mismatched_keys')} max|diff|={reload_diff}")
    if reload_warnings:
        print(f"   reload python warnings: {reload_warnings}")
    if summary:
        print("   " + ", ".join(f"{k}={v:.6f}" for k, v in summary.items()))
    return out_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="crates/model/tests/fixtures")
    ap.add_argument("--only", action="append", choices=sorted(FIXTURES))
    a = ap.parse_args()
    try:  # keep the output short: no "Loading weights" / "Writing shards" bars
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:
        pass
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    for name in a.only or list(FIXTURES):
        build(name, FIXTURES[name], a.out)
    total = 0
    for root, _, files in os.walk(a.out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"total size under {a.out}: {total} bytes")


if __name__ == "__main__":
    main()
