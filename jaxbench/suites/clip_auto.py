"""CLIP-Auto / CoOp: learn prompts on a k-shot train split, then evaluate with them.

Before the passes, :func:`jaxbench.zeroshot.learned.clip_auto.learn` writes
``WORKDIR/clip_auto/<model>.json`` per model (kept when present unless
``overwrite``); the passes read them through ``zeroshot.templates='learned:auto'``.
"""
from __future__ import annotations

import os

from jaxbench.engine.keys import Key
from jaxbench.suites.base import SUITES, Suite, describe_set

SECTIONS = {
    "clip_auto": Key({
        "method": Key("autoprompt", "'autoprompt' (RoZ's CLIP-Auto) or 'coop'"),
        "train": Key("image_folder(root='~/data/imagenet/train')",
                     "the labelled training set (a jaxbench.data.catalog spec)"),
        "k": Key(16, "images per class (1, 2, 4, 8, 16)"),
        "split_seed": Key(0, "seed of the k-shot split"),
        "classnames": Key("", "'' = zeroshot.classnames; 'dataset' = the train set's"),
        "overwrite": Key(False, "learn again even when the prompts exist"),
        "feature_batch_size": Key(0, "0 = batch_size"),
        # AutoPrompt (Shin et al. 2020) defaults with RoZ's 4 tokens and 40 candidates.
        "autoprompt": Key({
            "num_tokens": 4, "iterations": 100, "restarts": 4, "num_candidates": 40,
            "batch_size": 32, "accumulation_steps": 10, "init": "a photo of a",
            "random_restarts": True, "suffix": "{}", "logit_scale": 100.0, "top_n": 0,
            "candidate_chunk": 10,
            "exclude_tokens": Key((), "token ids never proposed", in_base=False),
            "seed": Key(0, "search seed (default: config.seed)", in_base=False),
        }, "jaxbench.zeroshot.learned.autoprompt.AutoPromptConfig"),
        # CoOp (Zhou et al. 2022): SGD 0.002, cosine, 1 warm-up epoch at 1e-5, batch 32.
        "coop": Key({
            "num_tokens": 4, "class_specific": False, "init": "a photo of a",
            "suffix": "{}.", "lr": 0.002, "momentum": 0.9, "weight_decay": 5e-4,
            "epochs": 50, "batch_size": 32, "warmup_epochs": 1, "warmup_lr": 1e-5,
            "logit_scale": "model",
            "seed": Key(0, "init and batch-order seed (default: config.seed)",
                        in_base=False),
        }, "jaxbench.zeroshot.learned.coop.CoopConfig"),
    }, "prompt learning"),
}


class ClipAuto(Suite):
  name = "clip_auto"
  sections = SECTIONS

  def phases(self, config, workdir):
    ca = dict(config.clip_auto) if "clip_auto" in config else {}
    method = ca.get("method", "autoprompt")
    s = dict(ca.get(method) or {})
    if method == "autoprompt":
      steps = (f"AutoPrompt: {s.get('num_tokens')} trigger tokens, {s.get('restarts')} "
               f"restart(s) x {s.get('iterations')} iterations, {s.get('num_candidates')} "
               f"candidates, {s.get('accumulation_steps')} x {s.get('batch_size')} images "
               "per iteration")
    else:
      steps = (f"CoOp{' (class-specific)' if s.get('class_specific') else ''}: "
               f"{s.get('num_tokens')} context vectors, {s.get('epochs')} epochs of batch "
               f"{s.get('batch_size')}, SGD lr {s.get('lr')}")
    k = int(ca.get("k", 16))
    split_seed = ca.get("split_seed", 0)
    out_dir = os.path.join(os.path.abspath(os.path.expanduser(workdir)) if workdir
                           else "WORKDIR", "clip_auto")
    lines = [f"learn prompts: {steps}; on a {k}-shot split (seed {split_seed}) of "
             f"{describe_set(str(ca.get('train')), config)}; class names "
             f"{ca.get('classnames') or dict(config.zeroshot).get('classnames', 'imagenet')!r}"]
    present = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
    keep = "" if ca.get("overwrite") else " (an existing file is kept)"
    for m in config.models:
      lines.append(f"  model={m} -> {out_dir}/<model name>.json{keep}")
    if present:
      lines.append(f"  already in {out_dir}: {', '.join(present)}")
    return lines

  def prepare(self, config, workdir, mesh, print_fn=print):
    from jaxbench.zeroshot.learned import clip_auto
    clip_auto.learn(config, workdir, mesh=mesh, print_fn=print_fn)


SUITES.register("clip_auto", ClipAuto)
