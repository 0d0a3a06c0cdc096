"""Learned prompts: artifacts on disk and RoZ's prompt logs.

A learned prompt set is saved as JSON with its provenance (the model, the data by
ids, the settings, training metrics): AutoPrompt's ranked token-id prompts
(:func:`save_prompts`) or CoOp's context vectors, in an ``.npz`` beside the JSON
with their sha256 (:func:`save_context`). RoZ's published prompt logs (one
token-id sequence per line) are read and ranked as RoZ ranks them
(:func:`read_prompt_log`). Loading them as heads is
:mod:`jaxbench.zeroshot.learned.heads`' job.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
from typing import Optional, Sequence, Union

import numpy as np

from jaxbench import atomic
from jaxbench.models.api import Model
from jaxbench.zeroshot.learned.layout import decode

FORMAT = 1
# RoZ adds "a photo of a" (token ids, CLIP BPE) to every prompt log with count 1.
ROZ_DEFAULT_PROMPT = (320, 1125, 539, 320)


def rank_prompts(sequences: Sequence[Sequence[int]],
                 extra: Sequence[tuple[Sequence[int], int]] = ()) -> list[tuple[tuple, int]]:
  """Unique prompts ranked by frequency (ties: first appearance), as RoZ ranks its logs.

  Args:
    sequences: token-id sequences, one per occurrence.
    extra: (prompt, count) added to the counts (RoZ adds 'a photo of a' once).

  Returns:
    [(prompt ids tuple, count)] most frequent first.
  """
  counts: collections.Counter = collections.Counter()
  first: dict[tuple, int] = {}
  for n, s in enumerate(sequences):
    t = tuple(int(x) for x in s)
    counts[t] += 1
    first.setdefault(t, n)
  for s, c in extra:
    t = tuple(int(x) for x in s)
    counts[t] += int(c)
    first.setdefault(t, len(first) + len(sequences))
  return sorted(counts.items(), key=lambda kv: (-kv[1], first[kv[0]]))


_SEPARATORS = str.maketrans({c: " " for c in ",[]()"})


def read_prompt_log(path: str, *, add_default: bool = True) -> list[tuple[tuple, int]]:
  """RoZ's prompt logs: one token-id sequence per line (spaces, commas, brackets).

  Args:
    path: a ``*.log`` file (RoZ ``scripts/*/Prompts/ViT-B_32.log``).
    add_default: add 'a photo of a' (320 1125 539 320) with count 1, as RoZ does.

  Returns:
    [(prompt ids, count)] ranked by frequency.

  Raises:
    ValueError: a line that is not integers, or lines of differing lengths.
  """
  seqs = []
  with open(path) as f:
    for n, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      try:
        seqs.append(tuple(int(x) for x in line.translate(_SEPARATORS).split()))
      except ValueError as e:
        raise ValueError(f"{path}:{n}: expected whitespace-separated token ids, found "
                         f"{line[:80]!r}") from e
  if not seqs:
    raise ValueError(f"prompt log {path!r} has no token-id lines")
  lengths = sorted({len(s) for s in seqs})
  if len(lengths) > 1:
    raise ValueError(f"prompt log {path!r} mixes prompts of {lengths} tokens; one length "
                     "per file")
  extra = [(ROZ_DEFAULT_PROMPT, 1)] if add_default and lengths[0] == len(ROZ_DEFAULT_PROMPT) \
      else []
  return rank_prompts(seqs, extra)



def model_record(model: Model) -> dict:
  """What an artifact records about the model it was learned on."""
  prov = model.provenance or {}
  return {"name": model.name, "source": prov.get("source"), "revision": prov.get("revision"),
          "sha256": prov.get("sha256"), "tokenizer": prov.get("tokenizer"),
          "precision": model.precision, "context_length": model.context_length}


def save_prompts(path: str, *, model: Model, ranked: Sequence[tuple[Sequence[int], int]],
                 suffix: str, top_n: int, logit_scale: Union[str, float], data: dict,
                 seed: int, steps: int, settings: dict, metrics: dict,
                 losses: Optional[dict] = None) -> str:
  """Writes an AutoPrompt artifact (JSON): ranked prompts with ids, text and counts."""
  prompts = []
  for ids, count in ranked:
    row = {"ids": [int(x) for x in ids], "text": decode(ids), "count": int(count)}
    if losses and tuple(ids) in losses:
      row["loss"] = float(losses[tuple(ids)])
    prompts.append(row)
  doc = {"format": FORMAT, "method": "autoprompt", "model": model_record(model),
         "num_tokens": len(ranked[0][0]) if ranked else 0, "suffix": suffix,
         "top_n": int(top_n), "logit_scale": logit_scale, "seed": int(seed),
         "steps": int(steps), "data": data, "settings": settings, "metrics": metrics,
         "prompts": prompts}
  atomic.atomic_write_bytes(path, json.dumps(doc, indent=1, default=atomic.json_default).encode())
  return path


def save_context(path: str, *, model: Model, ctx: np.ndarray, classnames: Sequence[str],
                 suffix: str, logit_scale: Union[str, float], data: dict, seed: int,
                 steps: int, settings: dict, metrics: dict, init: str = "") -> str:
  """Writes a CoOp artifact: JSON (provenance) + ``<stem>.npz`` (the vectors)."""
  ctx = np.asarray(ctx, np.float32)
  npz = os.path.splitext(path)[0] + ".npz"
  atomic.atomic_savez(npz, ctx=ctx)
  doc = {"format": FORMAT, "method": "coop", "model": model_record(model),
         "num_tokens": int(ctx.shape[-2]), "class_specific": ctx.ndim == 3,
         "suffix": suffix, "logit_scale": logit_scale, "init": init,
         "classnames": list(classnames), "context_file": os.path.basename(npz),
         "context_sha256": hashlib.sha256(ctx.tobytes()).hexdigest(),
         "context_shape": list(ctx.shape), "seed": int(seed), "steps": int(steps),
         "data": data, "settings": settings, "metrics": metrics}
  atomic.atomic_write_bytes(path, json.dumps(doc, indent=1, default=atomic.json_default).encode())
  return path


def load_artifact(path: str) -> dict:
  """Reads a CLIP-Auto artifact (JSON), checking its method and keys."""
  if not os.path.exists(path):
    raise ValueError(f"learned-prompt file {path!r} does not exist")
  with open(path) as f:
    try:
      doc = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"learned-prompt file {path!r} is not JSON ({e}); RoZ token-id logs "
                       "must end in .log or .txt") from e
  method = doc.get("method")
  need = {"autoprompt": ("prompts", "suffix"),
          "coop": ("context_file", "suffix", "classnames", "context_sha256")}
  if method not in need:
    raise ValueError(f"{path!r}: unknown method {method!r}; expected 'autoprompt' or 'coop'")
  missing = [k for k in need[method] if k not in doc]
  if missing:
    raise ValueError(f"{path!r} ({method}) lacks keys {missing}")
  return doc


def load_context(path: str, doc: Optional[dict] = None) -> np.ndarray:
  doc = doc or load_artifact(path)
  npz = os.path.join(os.path.dirname(os.path.abspath(path)), doc["context_file"])
  if not os.path.exists(npz):
    raise ValueError(f"{path!r} refers to context vectors {npz!r}, which do not exist")
  ctx = np.load(npz)["ctx"].astype(np.float32)
  if hashlib.sha256(ctx.tobytes()).hexdigest() != doc["context_sha256"]:
    raise ValueError(f"context vectors {npz!r} do not match the sha256 recorded in {path!r}")
  return ctx



def artifact_path(workdir: str, model_name: str) -> str:
  """Where :func:`learn` writes the prompts learned for a model in a workdir."""
  slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_name).strip("_")
  return os.path.join(workdir, "clip_auto", f"{slug or 'model'}.json")

