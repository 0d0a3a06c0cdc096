"""Model specs for the demo: ``demo_clip`` and ``demo_cnn``, trained on first load.

    jaxbench.models.load("demo_clip")                         # CLIP, zero-shot
    jaxbench.models.load("demo_cnn(steps=60)")                # supervised baseline
    jaxbench.models.load("demo_clip(cache='/tmp/models', steps=200)")

A ``demo:`` layout (registered with :func:`jaxbench.models.register_layout`)
resolves these names: it trains the model with :mod:`jaxbench.demo.train` into
the cache (:mod:`jaxbench.demo.cache`; ``cache=`` argument, else
$JAXBENCH_DEMO_CACHE, else ``runs/demo/models`` under the current directory)
unless a complete checkpoint of the same training config is there, then loads
the saved directory through :func:`jaxbench.models.load` exactly as any
downloaded checkpoint (the CLIP in the transformers layout, the CNN in the
``jaxbench-cnn`` layout of :mod:`jaxbench.demo.cnn`). Every other spec argument
is a field of :class:`~jaxbench.demo.train.ClipTrainConfig` or
:class:`~jaxbench.demo.train.CnnTrainConfig` (``steps=``, ``seed=``,
``width=``...).

The returned model keeps the spec as its name and records the training config
and checkpoint directory in ``provenance['demo']``.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from jaxbench.demo import cache, cnn, train
from jaxbench.models import api

KINDS = {"clip": (train.ClipTrainConfig, train.train_clip),
         "cnn": (train.CnnTrainConfig, train.train_cnn)}


def checkpoint(kind: str, cache_dir: Optional[str] = None, *, checkpoint_every: int = 100,
               stop_after: Optional[int] = None, trained: Optional[dict] = None,
               **overrides) -> str:
  """Directory of a complete demo checkpoint, training it first when needed.

  Args:
    kind: 'clip' or 'cnn'.
    cache_dir: the cache root (see module docstring).
    checkpoint_every: steps between training-state checkpoints.
    stop_after: tests only (see :func:`jaxbench.demo.train.train_clip`).
    trained: when a dict and the model is trained now, receives its Flax params.
    **overrides: training config fields.

  Returns:
    the checkpoint directory.
  """
  if kind not in KINDS:
    raise ValueError(f"unknown demo model {kind!r}; known: {sorted(KINDS)}")
  cls, fn = KINDS[kind]
  cfg = train.make_config(cls, **overrides)
  identity = {"kind": kind, "recipe": train.RECIPE, **dataclasses.asdict(cfg)}
  path = cache.model_dir(cache_dir, kind, identity)
  return cache.ensure(
      path, identity,
      lambda tmp: fn(cfg, tmp, state_file=cache.state_path(path),
                     checkpoint_every=checkpoint_every, stop_after=stop_after,
                     trained=trained),
      what=f"demo {kind}")


def load(ref: str, revision: Optional[str] = None, spec: Optional[str] = None,
         cache: Optional[str] = None, precision: str = "float32", **overrides) -> api.Model:
  """The ``demo:`` layout's loader: ``ref`` is 'clip' or 'cnn'."""
  from jaxbench import models
  if revision is not None:
    raise ValueError(f"demo model {ref!r}: demo models have no revisions (got {revision!r})")
  path = checkpoint(ref, cache, **overrides)
  opts = {} if precision == "float32" else {"precision": precision}
  model = models.load(path, **opts)
  prov = dict(model.provenance)
  prov["demo"] = {"kind": ref, "checkpoint": path,
                  "train_config": dataclasses.asdict(
                      train.make_config(KINDS[ref][0], **overrides))}
  return dataclasses.replace(model, name=spec or f"demo_{ref}", provenance=prov)


def register() -> None:
  """Adds the ``demo:`` layout and the names ``demo_clip``, ``demo_cnn`` (idempotent)."""
  from jaxbench import models
  cnn.register()
  if "demo" not in models.LAYOUTS:
    models.register_layout(models.Layout("demo", "demo", lambda files, ref: False, load))
  for name in ("clip", "cnn"):
    if f"demo_{name}" not in models.NAMES:
      models.NAMES.register(f"demo_{name}", (lambda n=name: f"demo:{n}"))


register()
