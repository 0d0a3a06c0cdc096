"""The zero-shot text head: class-name x template prompts -> (K, D) class weights.

    head[k] = normalize(mean_t normalize(encode_text(template_t(class_k))))
    logits  = logit_scale * normalize(encode_image(x)) @ head.T (+ logit_bias)

as in OpenAI's ``zeroshot_classifier``. The text tower runs once per (model,
classes, templates, tokenizer, precision); the result is cached in
``cache_dir`` under a content hash.

Speed: with a causal text tower pooled at the end-of-text token, tokens after a
prompt's EOT never influence its embedding. Prompts are therefore grouped into a
few fixed length buckets (:data:`BUCKETS`, then the full context) and each bucket
runs at its own length instead of the full 77-token context: most ImageNet
prompts need 16 tokens or fewer, which cuts the work about 4x. Each bucket runs
at one fixed batch shape, so building a head compiles at most one program per
bucket (and the persistent compilation cache keeps them across runs). Non-causal
towers (SigLIP) run at the full context. The text tower runs under the model's
precision policy (:mod:`jaxbench.precision`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import functools
import os
import time
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jaxbench import atomic, precision as precision_lib, progress, stopping
from jaxbench.models.api import Model
from jaxbench.zeroshot import prompts as prompts_lib


@dataclasses.dataclass(frozen=True, eq=False)
class ZeroShotHead:
  """Class weights and the scale that turns cosines into logits.

  Attributes:
    weights: float32 (K, D), unit-norm rows.
    logit_scale: multiplier of cosine similarities (CLIP: exp(learned) ~ 100).
    logit_bias: additive bias (SigLIP) or None.
    classnames, templates: what the head was built from.
    label_space: name of the space the K classes form ('imagenet1k', ...).
    tokenizer: description of the tokenizer used.
    key: content hash (model, tokenizer, prompts, precision).
  """
  weights: np.ndarray
  logit_scale: float
  logit_bias: Optional[float]
  classnames: tuple
  templates: tuple
  label_space: str
  tokenizer: str = ""
  key: str = ""
  template_set: str = ""
  classname_set: str = ""

  def info(self) -> dict:
    return {"classnames": self.classname_set or f"{len(self.classnames)} custom",
            "templates": self.template_set or list(self.templates),
            "num_classes": len(self.classnames), "num_templates": len(self.templates),
            "logit_scale": float(self.logit_scale),
            "logit_bias": None if self.logit_bias is None else float(self.logit_bias),
            "tokenizer": self.tokenizer, "key": self.key}


def _eot_lengths(ids: np.ndarray) -> np.ndarray:
  """Tokens up to and including each prompt's last non-pad token."""
  nonpad = ids != 0
  return np.where(nonpad.any(1), ids.shape[1] - np.argmax(nonpad[:, ::-1], axis=1), 1)


# Fixed prompt lengths (tokens) a causal tower runs at on an accelerator, where
# a head is compile-bound: a handful of programs per model however many distinct
# prompt lengths a template set has. The model's context is always the last
# bucket. On CPU the text tower is compute-bound (1000 x 80 prompts take minutes
# while a program compiles in a second), so there lengths round up to even
# numbers only (CPU_BUCKET), the least padding.
BUCKETS = (16, 24, 32, 48, 64)
CPU_BUCKET = 2
# Seconds between head-building progress lines.
_LOG_EVERY_S = 5.0

# A head cache shared by every workdir (``python -m jaxbench.main --head_cache_dir``,
# off when ''): a rerun in a new workdir reads the head instead of tokenizing and
# encoding 1000 x 80 prompts again. Used only for models whose weights carry a
# content hash (``provenance['sha256']``), which is part of the head's key.
SHARED_CACHE = {"dir": ""}


def set_shared_cache_dir(path: str) -> None:
  """Turns the cross-workdir head cache on in ``path`` ('' turns it off)."""
  SHARED_CACHE["dir"] = os.path.abspath(os.path.expanduser(path)) if path else ""


def _shared_path(model: Model, key: str) -> Optional[str]:
  if not SHARED_CACHE["dir"] or not model.provenance.get("sha256"):
    return None
  return os.path.join(SHARED_CACHE["dir"], f"head_{key}.npz")


def default_buckets() -> Union[int, Sequence[int]]:
  """:data:`BUCKETS` on an accelerator, multiples of :data:`CPU_BUCKET` on CPU."""
  return CPU_BUCKET if jax.default_backend() == "cpu" else BUCKETS


def bucket_lengths(lengths: np.ndarray, context: int,
                   bucket: Union[int, Sequence[int], None] = None) -> np.ndarray:
  """The length each prompt runs at: the smallest bucket >= its own length.

  Args:
    lengths: (N,) tokens each prompt needs (up to and including its EOT).
    context: the tower's context length (the largest bucket).
    bucket: fixed bucket lengths, or an int: lengths rounded up to multiples of
      it; None: :func:`default_buckets`.

  Returns:
    int (N,) lengths, each in ``bucket`` or equal to ``context``.
  """
  if bucket is None:
    bucket = default_buckets()
  if isinstance(bucket, (int, np.integer)):
    return np.minimum(context, -(-lengths // int(bucket)) * int(bucket))
  edges = np.asarray(sorted({int(b) for b in bucket if 0 < int(b) < context} | {context}))
  return edges[np.searchsorted(edges, np.minimum(lengths, context))]


def encode_prompts(model: Model, token_ids: np.ndarray, *, batch_size: int = 128,
                   bucket: Union[int, Sequence[int], None] = None,
                   encode=None) -> np.ndarray:
  """Unit-norm text embeddings (N, D) for token ids (N, context), length-bucketed.

  Args:
    model: a zero-shot model.
    token_ids: int32 (N, context) as ``model.tokenize`` returns (zero padded).
    batch_size: most prompts per compiled call.
    bucket: fixed bucket lengths, an int for lengths rounded up to its
      multiples, or None for :func:`default_buckets`; see :func:`bucket_lengths`.
    encode: optional jitted ``(params, ids) -> (n, D)``; defaults to
      ``model.encode_text`` under the model's precision policy.

  Returns:
    float32 (N, D) L2-normalised embeddings in the input order.
  """
  if encode is None:
    encode = _text_encoder(model)
  n, context = token_ids.shape
  lengths = _eot_lengths(token_ids) if model.causal_text else np.full(n, context)
  bucket_len = bucket_lengths(lengths, context, bucket)
  results: dict[int, np.ndarray] = {}
  t0 = last_log = time.perf_counter()
  done = 0
  for length in np.unique(bucket_len):
    idx = np.nonzero(bucket_len == length)[0]
    # One batch shape per bucket, so one program each: the bucket's prompts in
    # equal chunks of at most batch_size rows (a multiple of 8), the last padded.
    chunks = -(-len(idx) // batch_size)
    rows = min(batch_size, -(-(-(-len(idx) // chunks)) // 8) * 8)
    for start in range(0, len(idx), rows):
      stopping.check_local("while building a zero-shot head")   # SIGTERM between batches
      chunk = idx[start:start + rows]
      ids = token_ids[chunk, :length]
      pad = rows - len(chunk)
      if pad:
        ids = np.concatenate([ids, np.repeat(ids[-1:], pad, 0)])
      z = np.asarray(encode(model.params, ids))[:len(chunk)]
      for i, row in zip(chunk, z):
        results[int(i)] = row
      done += len(chunk)
      now = time.perf_counter()
      if now - last_log >= _LOG_EVERY_S and done < n:
        last_log = now
        rate = done / (now - t0)
        logging.info("zero-shot head: %d/%d prompts, %.1f prompts/s, ETA %s", done, n, rate,
                     progress.fmt_seconds((n - done) / rate))
  out = np.stack([results[i] for i in range(n)]).astype(np.float32)
  return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@functools.lru_cache(maxsize=4)
def _jit_text(net_text, precision: str):
  def encode(p, ids):
    with precision_lib.scope(precision):
      return net_text(p["net"], ids).astype(jnp.float32)
  return jax.jit(encode)


def _text_encoder(model: Model):
  """A jitted text encoder shared by every head of one model (one program per shape)."""
  return _jit_text(model.net_text, model.precision)


def _model_scale(model: Model) -> tuple[float, Optional[float]]:
  net = model.params["net"]
  scale = float(np.exp(np.asarray(net["logit_scale"], np.float32))) \
      if "logit_scale" in net else 100.0
  bias = float(np.asarray(net["logit_bias"], np.float32)) if "logit_bias" in net else None
  return scale, bias


def head_key(model: Model, classnames: Sequence[str], templates: Sequence[str]) -> str:
  h = hashlib.sha256()
  h.update(json.dumps({"model": model.name, "prov": model.provenance.get("sha256", {}),
                       "source": model.provenance.get("source"),
                       "tokenizer": model.provenance.get("tokenizer", ""),
                       "precision": model.precision, "classnames": list(classnames),
                       "templates": list(templates)}, sort_keys=True, default=str).encode())
  return h.hexdigest()[:20]


def build_head(model: Model, classnames: Union[str, Sequence[str]] = "imagenet",
               templates: Union[str, Sequence[str]] = "clip80", *,
               logit_scale: Union[str, float] = "model", label_space: Optional[str] = None,
               cache_dir: Optional[str] = None, batch_size: int = 128,
               bucket: Union[int, Sequence[int], None] = None) -> ZeroShotHead:
  """Builds (or loads from ``cache_dir``) the zero-shot head of ``model``.

  Args:
    model: zero-shot model (image and text towers, tokenizer).
    classnames: 'imagenet', another named set, or a list of K names.
    templates: 'clip80', 'clip7', 'photo', another named set, or a list.
    logit_scale: 'model' (the checkpoint's learned scale, with its bias if any)
      or a fixed float (RoZ uses 100).
    label_space: recorded name of the class space; 'imagenet1k' for the
      ImageNet names, else 'custom<K>' unless given.
    cache_dir: directory for ``head_<key>.npz``; None disables caching.

  Returns:
    a :class:`ZeroShotHead`.
  """
  names = prompts_lib.classnames(classnames)
  temps = prompts_lib.templates(templates)
  if label_space is None:
    label_space = "imagenet1k" if classnames == "imagenet" else f"custom{len(names)}"
  scale, bias = _model_scale(model)
  if logit_scale != "model":
    scale, bias = float(logit_scale), bias
  key = head_key(model, names, temps)
  path = os.path.join(cache_dir, f"head_{key}.npz") if cache_dir else None
  shared = _shared_path(model, key)
  weights = None
  for where in (path, shared):
    if where and os.path.exists(where):
      try:
        weights = np.load(where)["weights"]
      except (OSError, ValueError, KeyError) as e:   # a damaged cache file: rebuild
        logging.warning("zero-shot head cache %s unreadable (%s); building the head", where, e)
        continue
      logging.info("zero-shot head for %s: read %s", model.name, where)
      break
  if weights is None:
    t0 = time.perf_counter()
    logging.info("building the zero-shot head of %s: %d classes x %d templates = %d prompts",
                 model.name, len(names), len(temps), len(names) * len(temps))
    ids = model.tokenize(prompts_lib.prompts(names, temps))
    logging.info("tokenized %d prompts in %.1f s", len(ids), time.perf_counter() - t0)
    z = encode_prompts(model, ids, batch_size=batch_size, bucket=bucket)
    dt = time.perf_counter() - t0
    logging.info("zero-shot head of %s built in %.1f s (%.1f prompts/s, compilation "
                 "included)", model.name, dt, len(ids) / max(dt, 1e-9))
    z = z.reshape(len(names), len(temps), -1).mean(axis=1)
    weights = (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(
        np.float32)
  for where in (path, shared):
    if where and not os.path.exists(where):
      try:
        os.makedirs(os.path.dirname(where), exist_ok=True)
        atomic.atomic_savez(where, weights=weights)
      except OSError as e:
        if where == path:
          raise
        logging.warning("head cache %s not written (%s); the run goes on", where, e)
  tok = getattr(model.tokenizer, "describe", "") or model.provenance.get("tokenizer", "")
  return ZeroShotHead(weights=weights, logit_scale=scale, logit_bias=bias,
                      classnames=names, templates=temps, label_space=label_space,
                      tokenizer=tok, key=key,
                      template_set=templates if isinstance(templates, str) else "",
                      classname_set=classnames if isinstance(classnames, str) else "")
