"""The compiled step of a pass, and the cache that lets later passes reuse it.

``make_step`` returns a jitted ``(params, counts, batch) -> (per-example outputs,
counts)``: the step applies the transform, scores the model, projects logits to
the set's label space and accumulates top-1/top-5 counts on device.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from jaxbench import parallel, precision as precision_lib, transforms
from jaxbench.models.api import Model

# Jitted steps by everything their trace depends on (see make_step): passes that
# share a model, transform and projection reuse one program (and jax's compiled
# executables for it) instead of re-jitting a fresh closure per pass.
_STEPS: "collections.OrderedDict[tuple, Callable]" = collections.OrderedDict()
_STEPS_MAX = 32


def _step_key(model: Model, transform: transforms.Transform, mesh, seed, project,
              multilabel, num_classes, param_shardings) -> tuple:
  """What a step's trace depends on, besides argument shapes (jit's own cache key).

  The model enters through its functions, preprocessing, kind and precision;
  params (head included) are arguments, so a new head of the same shape reuses
  the step. Functions are keyed by identity and kept alive by the key.
  """
  leaves, treedef = jax.tree.flatten(param_shardings)
  return (model.kind, model.preprocess, model.precision, model.net_logits, model.net_image,
          transform.spec, type(transform), mesh, int(seed), project, bool(multilabel),
          int(num_classes), treedef, tuple(leaves))


def make_step(model: Model, transform: transforms.Transform, mesh, *, seed: int,
              project: Optional[Callable], multilabel: bool, num_classes: int,
              param_shardings) -> Callable:
  """A jitted ``(params, counts, batch) -> (per-example outputs, counts)``.

  One jitted function per :func:`_step_key`: a later pass with the same model
  functions, transform, projection and shapes runs the already compiled program.
  """
  key = _step_key(model, transform, mesh, seed, project, multilabel, num_classes,
                  param_shardings)
  try:
    hash(key)
  except TypeError:   # an unhashable projection object: build this step uncached
    return _make_step(model, transform, mesh, seed=seed, project=project,
                      multilabel=multilabel, num_classes=num_classes,
                      param_shardings=param_shardings)
  if key in _STEPS:
    _STEPS.move_to_end(key)
    return _STEPS[key]
  step = _make_step(model, transform, mesh, seed=seed, project=project,
                    multilabel=multilabel, num_classes=num_classes,
                    param_shardings=param_shardings)
  _STEPS[key] = step
  while len(_STEPS) > _STEPS_MAX:
    _STEPS.popitem(last=False)
  return step


def programs(step) -> int:
  """Compiled specialisations of a jitted step (-1 where jax does not say)."""
  size = getattr(step, "_cache_size", None)
  return int(size()) if size is not None else -1


@dataclasses.dataclass(frozen=True, eq=False)
class Scorer:
  """The model as a step scores it: logits projected to the set's label space, top-k
  correctness (k = min(5, classes)). Hashed by identity; :func:`scorer` returns one
  object per (model functions, projection, k, multilabel), so compiled functions
  that take it as a static argument (survivor refill's) are reused across passes."""
  model: object
  project: Optional[Callable]
  k: int
  multilabel: bool

  def __call__(self, params, x):
    logits = self.model.apply(params, x)
    return self.project(logits) if self.project is not None else logits

  def scored_and_finite(self, params, x):
    # Finiteness is judged on the model's own logits: projections put -inf in
    # columns no ImageNet class maps to (YTBB), which is not a model failure.
    logits = self.model.apply(params, x)
    finite = jnp.all(jnp.isfinite(logits), axis=1)
    return (self.project(logits) if self.project is not None else logits), finite

  def correctness(self, logits, batch):
    """(top-k class ids (N, k), top-1 hit (N,), top-k hit (N,))."""
    top = jax.lax.top_k(logits, self.k)[1]
    if self.multilabel:
      hit = jnp.take_along_axis(batch["labels"], top, axis=1)
    else:
      hit = top == batch["label"][:, None]
    return top, hit[:, 0], hit.any(axis=1)


_SCORERS: dict = {}


def scorer(model: Model, project, num_classes: int, multilabel: bool) -> Scorer:
  """The one :class:`Scorer` per (model functions, projection, k, multilabel)."""
  k = min(5, int(num_classes))
  key = (model.kind, model.preprocess, model.precision, model.net_logits, model.net_image,
         project, bool(multilabel), k)
  try:
    hash(key)
  except TypeError:   # an unhashable projection: a fresh scorer (compiled per pass)
    return Scorer(model, project, k, bool(multilabel))
  if key not in _SCORERS:
    if len(_SCORERS) > 32:
      _SCORERS.clear()
    _SCORERS[key] = Scorer(model, project, k, bool(multilabel))
  return _SCORERS[key]


def _make_step(model: Model, transform: transforms.Transform, mesh, *, seed: int,
               project: Optional[Callable], multilabel: bool, num_classes: int,
               param_shardings) -> Callable:
  score = scorer(model, project, num_classes, multilabel)
  scored, scored_and_finite, correctness = score, score.scored_and_finite, score.correctness

  def step(params, counts, batch):
    # The precision policy covers the whole step (model, attack, device-side
    # shifts): 'float32' lowers every dot and convolution at HIGHEST.
    with precision_lib.scope(model.precision):
      return step_body(params, counts, batch)

  def step_body(params, counts, batch):
    mask = batch["mask"]
    x = batch["image"].astype(jnp.float32) / 255.0
    keys = transforms.example_keys(seed, batch["uid"])
    out = {}
    if transform.scores_clean:
      _, clean1, _ = correctness(scored(params, x), batch)
      out["clean_correct1"] = clean1 & mask
    x, extras = transform.device(scored, params, x, batch["label"], keys, mask=mask)
    logits, finite = scored_and_finite(params, x)
    logits = jnp.where(finite[:, None], logits, -jnp.inf)
    top, c1, c5 = correctness(logits, batch)
    c1, c5 = c1 & finite & mask, c5 & finite & mask
    out.update(extras)
    out.update({"index": batch["index"], "bad": batch["bad"], "pred": top[:, 0],
                "top5": top, "correct1": c1, "correct5": c5, "finite": finite | ~mask})
    counts = {"n": counts["n"] + mask.sum(), "correct1": counts["correct1"] + c1.sum(),
              "correct5": counts["correct5"] + c5.sum()}
    return out, counts

  bs = parallel.batch_sharding(mesh)
  rep = parallel.replicated(mesh)
  return jax.jit(step, in_shardings=(param_shardings, rep, bs), out_shardings=(bs, rep),
                 donate_argnums=(1,))
