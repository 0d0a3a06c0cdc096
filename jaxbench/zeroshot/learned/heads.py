"""Learned prompts as ordinary zero-shot heads.

RoZ's CLIP-Auto replaces the 80 hand-written templates by learned prompts. A set
of discrete prompts (:func:`trigger_head`: normalise, mean, renormalise, as
templates are ensembled) or CoOp context vectors (:func:`context_head`) become a
plain :class:`~jaxbench.zeroshot.head.ZeroShotHead`, so every suite evaluates
with them exactly as with the 80 templates. :func:`load_learned_head` reads an
artifact or a RoZ log; :func:`head_for` is the runner's hook: ``templates=
'learned:PATH[:N]'`` or ``'learned:auto'`` loads learned prompts, anything else
builds the usual head.
"""
from __future__ import annotations

import functools
import hashlib
import os
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.models.api import Model
from jaxbench.zeroshot import head as head_lib
from jaxbench.zeroshot import prompts as prompts_lib
from jaxbench.zeroshot.learned.artifacts import artifact_path, load_artifact, load_context, \
    read_prompt_log
from jaxbench.zeroshot.learned.layout import check_trigger, decode, fill, make_layout
from jaxbench.zeroshot.learned.tower import embed_ids, encode_embeddings, logit_scale_of


def _head_from_weights(model: Model, weights: np.ndarray, names: tuple, templates: tuple,
                       scale: float, bias: Optional[float], label_space: str,
                       key_extra: str, template_set: str) -> head_lib.ZeroShotHead:
  key = hashlib.sha256((head_lib.head_key(model, names, templates) + key_extra).encode()
                       ).hexdigest()[:20]
  tok = getattr(model.tokenizer, "describe", "") or model.provenance.get("tokenizer", "")
  return head_lib.ZeroShotHead(weights=weights.astype(np.float32), logit_scale=float(scale),
                               logit_bias=bias, classnames=names, templates=templates,
                               label_space=label_space, tokenizer=tok, key=key,
                               template_set=template_set, classname_set="")


def _label_space(classnames, names) -> str:
  return "imagenet1k" if isinstance(classnames, str) and classnames == "imagenet" \
      else f"custom{len(names)}"


@functools.partial(jax.jit, static_argnames=("arch",))
def _encode_rows(arch, net, ids, eot):
  return encode_embeddings(arch, net, embed_ids(arch, net, ids), eot)


def encode_ids(model: Model, ids: np.ndarray, eot: np.ndarray, *,
               batch_size: int = 256) -> np.ndarray:
  """Unit text features (N, D) of prompts (N, L) pooled at ``eot`` (N,).

  Runs in chunks of ``batch_size`` (the last one padded): one compilation per
  prompt length whatever N is. Pooling at the given EOT positions equals the
  model's own ``encode_text`` (which finds them by argmax) for prompts without
  special tokens in their slots.
  """
  n = len(ids)
  chunk = batch_size
  out = []
  for s in range(0, n, chunk):
    i, e = ids[s:s + chunk], eot[s:s + chunk]
    pad = chunk - len(i)
    if pad:
      i = np.concatenate([i, np.repeat(i[-1:], pad, 0)])
      e = np.concatenate([e, np.repeat(e[-1:], pad, 0)])
    out.append(np.asarray(_encode_rows(model.arch, model.params["net"], jnp.asarray(i),
                                       jnp.asarray(e)))[:chunk - pad])
  return np.concatenate(out).astype(np.float32)


def trigger_head(model: Model, triggers: Sequence[Sequence[int]],
                 classnames: Union[str, Sequence[str]] = "imagenet", *, suffix: str = "{}",
                 logit_scale: Union[str, float] = 100.0, label_space: Optional[str] = None,
                 source: str = "", batch_size: int = 256) -> head_lib.ZeroShotHead:
  """The ensemble head of discrete prompts (normalise, mean, renormalise: as templates).

  Args:
    model: CLIP-family model.
    triggers: N prompts of M token ids each (the slots after the start token).
    classnames: class-name set or list.
    suffix: text after the prompt tokens ('{}': RoZ's layout).
    logit_scale: 'model' or a float (RoZ: 100).
    source: recorded in the head's ``template_set`` (which file it came from).

  Raises:
    ValueError: prompts longer than the context, unknown or special token ids.
  """
  names = prompts_lib.classnames(classnames)
  trig = np.asarray(triggers, np.int64)
  if trig.ndim != 2 or not len(trig):
    raise ValueError(f"expected N prompts of M token ids, got an array of shape {trig.shape}")
  layout = make_layout(model, names, trig.shape[1], suffix)
  for t in trig:
    check_trigger(layout, t)
  ids = np.concatenate([fill(layout.ids, t) for t in trig.astype(np.int32)])   # (N*K, L)
  eot = np.tile(layout.eot, len(trig))
  z = encode_ids(model, ids, eot, batch_size=batch_size)
  z = z.reshape(len(trig), len(names), -1).mean(axis=0)
  weights = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
  scale, bias = logit_scale_of(model, logit_scale)
  templates = tuple(decode(t).replace("{", "{{").replace("}", "}}") + " "
                    + suffix for t in trig)
  digest = hashlib.sha256(trig.astype(np.int64).tobytes() + suffix.encode()).hexdigest()[:16]
  return _head_from_weights(model, weights, names, templates, scale, bias,
                            label_space or _label_space(classnames, names),
                            f"|triggers:{digest}", f"learned:{source or digest}")


@functools.partial(jax.jit, static_argnames=("arch",))
def _context_features(arch, net, ids, eot, ctx):
  x = embed_ids(arch, net, ids)
  m = ctx.shape[-2]
  ctx = jnp.broadcast_to(ctx.astype(x.dtype), (x.shape[0], m, x.shape[-1]))
  return encode_embeddings(arch, net, x.at[:, 1:1 + m].set(ctx), eot)


def context_head(model: Model, ctx: np.ndarray, classnames: Union[str, Sequence[str]],
                 *, suffix: str = "{}.", logit_scale: Union[str, float] = "model",
                 label_space: Optional[str] = None, source: str = "",
                 train_classnames: Optional[Sequence[str]] = None,
                 batch_size: int = 256) -> head_lib.ZeroShotHead:
  """The head of CoOp context vectors: one prompt per class, its slots the vectors.

  Args:
    ctx: float (M, W) shared vectors, or (K, M, W) one set per class (then
      ``classnames`` must be the classes it was trained on).
    train_classnames: the classes a class-specific context was learned for.

  Raises:
    ValueError: a width that is not the text tower's, or class-specific
      vectors asked for other classes.
  """
  names = prompts_lib.classnames(classnames)
  ctx = np.asarray(ctx, np.float32)
  layout = make_layout(model, names, ctx.shape[-2], suffix)
  width = int(jax.eval_shape(lambda: embed_ids(model.arch, model.params["net"],
                                               jnp.zeros((1,), jnp.int32))).shape[-1])
  if ctx.ndim not in (2, 3) or ctx.shape[-1] != width:
    raise ValueError(f"context vectors of shape {ctx.shape} do not fit {model.name!r}: "
                     f"expected (M, {width}) or (K, M, {width})")
  if ctx.ndim == 3:
    if train_classnames is not None and tuple(train_classnames) != names:
      raise ValueError("class-specific context vectors were learned for other classes "
                       f"({len(train_classnames)} classes, first {list(train_classnames)[:3]}); "
                       f"cannot build a head for {len(names)} classes {list(names)[:3]}")
    if ctx.shape[0] != len(names):
      raise ValueError(f"class-specific context has {ctx.shape[0]} classes, the head "
                       f"{len(names)}")
  feats = []
  for s in range(0, len(names), batch_size):
    c = ctx if ctx.ndim == 2 else ctx[s:s + batch_size]
    feats.append(np.asarray(_context_features(
        model.arch, model.params["net"], jnp.asarray(layout.ids[s:s + batch_size]),
        jnp.asarray(layout.eot[s:s + batch_size]), jnp.asarray(c))))
  weights = np.concatenate(feats)
  scale, bias = logit_scale_of(model, logit_scale)
  digest = hashlib.sha256(ctx.tobytes() + suffix.encode()).hexdigest()[:16]
  templates = (f"[{ctx.shape[-2]} learned context vectors] " + suffix,)
  return _head_from_weights(model, weights, names, templates, scale, bias,
                            label_space or _label_space(classnames, names),
                            f"|context:{digest}", f"learned:{source or digest}")



def load_learned_head(model: Model, path: str,
                      classnames: Union[str, Sequence[str]] = "imagenet", *,
                      top_n: Optional[int] = None,
                      logit_scale: Union[str, float, None] = None,
                      label_space: Optional[str] = None) -> head_lib.ZeroShotHead:
  """A zero-shot head from learned prompts, usable by every suite like any other head.

  Args:
    model: the CLIP-family model to evaluate (normally the one the prompts were
      learned on; recorded in the artifact).
    path: an AutoPrompt or CoOp artifact (``.json``), or a RoZ prompt log
      (``.log``/``.txt``: one token-id sequence per line, ranked by frequency,
      'a photo of a' added once).
    classnames: the head's classes (a named set or a list). A discrete or a
      shared CoOp context transfers to any classes; a class-specific context
      only to its own.
    top_n: prompts ensembled (discrete only); default the artifact's ``top_n``,
      all prompts for a log (0 or None = all).
    logit_scale: override the recorded scale ('model' or a float); RoZ logs
      default to 100.

  Returns:
    a :class:`~jaxbench.zeroshot.head.ZeroShotHead`.
  """
  base = os.path.basename(path)
  if path.endswith((".log", ".txt")) or base.endswith("log"):
    if not os.path.exists(path):
      raise ValueError(f"prompt log {path!r} does not exist")
    ranked = read_prompt_log(path)
    n = top_n or len(ranked)
    return trigger_head(model, [r[0] for r in ranked[:n]], classnames, suffix="{}",
                        logit_scale=100.0 if logit_scale is None else logit_scale,
                        label_space=label_space, source=f"{base}:top{n}")
  doc = load_artifact(path)
  scale = doc.get("logit_scale", 100.0) if logit_scale is None else logit_scale
  if doc["method"] == "autoprompt":
    ranked = [tuple(p["ids"]) for p in doc["prompts"]]
    if not ranked:
      raise ValueError(f"{path!r} holds no prompts")
    n = top_n if top_n is not None else doc.get("top_n", 0)
    n = n or len(ranked)
    return trigger_head(model, ranked[:n], classnames, suffix=doc["suffix"], logit_scale=scale,
                        label_space=label_space, source=f"{base}:top{n}")
  ctx = load_context(path, doc)
  return context_head(model, ctx, classnames, suffix=doc["suffix"], logit_scale=scale,
                      label_space=label_space, source=base,
                      train_classnames=doc["classnames"])



def head_for(model: Model, classnames: Union[str, Sequence[str]] = "imagenet",
             templates: Union[str, Sequence[str]] = "clip80", *,
             workdir: Optional[str] = None, **build_kwargs) -> head_lib.ZeroShotHead:
  """Drop-in for :func:`~jaxbench.zeroshot.build_head` that also takes learned prompts.

  ``templates`` of the form 'learned:PATH' or 'learned:PATH:N' (N prompts of a
  discrete set) loads :func:`load_learned_head`; 'learned:auto' is what
  :func:`learn` wrote for this model in ``workdir`` (default: the parent of
  ``cache_dir``, i.e. the run's workdir when the runner passes
  ``workdir/heads``). Anything else goes to ``build_head`` unchanged, so the
  runner can call this for every suite.
  """
  if not (isinstance(templates, str) and templates.startswith("learned:")):
    return head_lib.build_head(model, classnames, templates, **build_kwargs)
  spec = templates[len("learned:"):]
  path, n = spec, ""
  if ":" in spec and spec.rsplit(":", 1)[-1].isdigit():
    path, n = spec.rsplit(":", 1)
  if path == "auto":
    cache_dir = build_kwargs.get("cache_dir")
    workdir = workdir or (os.path.dirname(os.path.abspath(cache_dir)) if cache_dir else None)
    if not workdir:
      raise ValueError("templates='learned:auto' needs the workdir the prompts were learned "
                       "in (pass workdir= or cache_dir=WORKDIR/heads)")
    path = artifact_path(workdir, model.name)
    if not os.path.exists(path):
      raise ValueError(f"templates='learned:auto': no learned prompts for model "
                       f"{model.name!r} at {path!r}; run the clip_auto learning step first "
                       "(configs/clip_auto.py)")
  scale = build_kwargs.get("logit_scale")
  return load_learned_head(model, os.path.expanduser(path), classnames,
                           top_n=int(n) if n else None,
                           logit_scale=None if scale in (None, "model") else scale,
                           label_space=build_kwargs.get("label_space"))


def accuracy(head: head_lib.ZeroShotHead, feats: np.ndarray, labels: np.ndarray) -> float:
  """Top-1 accuracy of a head on unit image features (host side, for reports)."""
  logits = feats @ head.weights.T
  return float((np.argmax(logits, 1) == labels).mean())

