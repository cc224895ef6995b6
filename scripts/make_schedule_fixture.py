#!/usr/bin/env python3
"""Learning-rate values of the published schedules, for `crates/train/tests/schedule.rs`.

Each rule is written out here from its source, independently of our Rust code:

- Google BERT, `optimization.py` `create_optimizer`: `tf.train.polynomial_decay(init_lr,
  global_step, num_train_steps, end_learning_rate=0.0, power=1.0, cycle=False)`, then, while
  `global_step < num_warmup_steps`, `init_lr * global_step / num_warmup_steps` instead.
- NVIDIA DeepLearningExamples BERT, `schedulers.py` `PolyWarmUpScheduler.get_lr`:
  `progress = last_epoch / total_steps`; `base_lr * progress / warmup` while `progress <
  warmup` (warmup is a proportion), else `base_lr * (1 - progress) ** degree`.
- HuggingFace `transformers` `get_linear_schedule_with_warmup`: `current_step / warmup` while
  `current_step < warmup`, else `max(0, (total - current_step) / max(1, total - warmup))`.

Our step k (0-based, the k-th update) is the references' global step k + 1, so that the first
update does not run at a rate of zero; the fixture lists (k, rate at global step k + 1).

Usage: python3 scripts/make_schedule_fixture.py  (standard library only)
"""
import json
import pathlib


def google(init_lr, warmup, total, power, g):
    decayed = init_lr * (1.0 - min(g, total) / total) ** power
    if warmup and g < warmup:
        return init_lr * g / warmup
    return decayed


def nvidia(base_lr, warmup_proportion, total, degree, g):
    progress = g / total
    if progress < warmup_proportion:
        return base_lr * progress / warmup_proportion
    return base_lr * max(0.0, 1.0 - progress) ** degree


def huggingface_linear(lr, warmup, total, g):
    if g < warmup:
        return lr * g / max(1, warmup)
    return lr * max(0.0, (total - g) / max(1, total - warmup))


def main():
    cases = []
    total = 1000
    steps = list(range(0, total + 5))
    cases.append({
        "source": "google polynomial_decay + warm-up",
        "peak_lr": 1e-4, "warmup_steps": 100, "total_steps": total, "power": 1.0,
        "decay_over": "run",
        "rates": [[k, google(1e-4, 100, total, 1.0, k + 1)] for k in steps],
    })
    cases.append({
        "source": "nvidia PolyWarmUpScheduler (LAMB phase 1 shape)",
        "peak_lr": 6e-3, "warmup_steps": 250, "total_steps": total, "power": 0.5,
        "decay_over": "run",
        "rates": [[k, nvidia(6e-3, 0.25, total, 0.5, k + 1)] for k in steps],
    })
    cases.append({
        "source": "huggingface get_linear_schedule_with_warmup",
        "peak_lr": 5e-5, "warmup_steps": 60, "total_steps": total, "power": 1.0,
        "decay_over": "after_warmup",
        "rates": [[k, huggingface_linear(5e-5, 60, total, k + 1)] for k in steps],
    })
    out = pathlib.Path(__file__).resolve().parent.parent / "crates/train/tests/fixtures/lr_schedules.json"
    out.write_text(json.dumps(cases, indent=None) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
