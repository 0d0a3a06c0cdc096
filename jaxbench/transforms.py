"""What a pass does to images before scoring: nothing, a shift, or an attack.

Transform specs in configs:
  'clean'                                   the images as loaded
  'shift:<spec>'                            a shift from :mod:`jaxbench.shifts`
  'attack:<spec>'                           an attack from :mod:`jaxbench.attacks`

Each is a class (:class:`Clean`, :class:`Shift`, :class:`Attack`) with one protocol
the engine calls without asking which it is:

* ``spec`` (canonical, the results key), ``host_fn`` (a host-side per-image function
  for the grain pipeline, or None), ``scores_clean`` (the step scores the clean
  images too, before transforming them);
* ``bind(model)`` fills model-dependent settings; ``device(...)`` transforms a batch
  on device and returns per-example extras;
* ``metrics(outputs, ...)`` makes the row metrics and row details from the pass's
  per-example outputs; ``default_suite(evalset)`` names the rows' suite when the
  config says ``suite='auto'``.

A shift is host-side (``host_fn(uint8 image, rng) -> uint8 image`` in the grain
pipeline; ``stage`` 'raw' or 'model_input') or device-side (``device_fn(keys,
images) -> images``). An attack follows the Attack contract. Both see per-example
keys derived from the run seed and the example id, never the batch position.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench import registry


@dataclasses.dataclass(frozen=True)
class MetricInputs:
  """What a transform needs besides the outputs to make its row metrics.

  Attributes:
    evalset: the pass's set (sequence metrics, class count).
    num_classes: classes of the scored logits (top-5 only when there are >= 5).
    example_id: index -> example id (without reading image bytes where possible).
  """
  evalset: Any
  num_classes: int
  example_id: Callable[[int], str]


@dataclasses.dataclass(frozen=True, eq=False)
class Transform:
  """The images as loaded (base of every transform: see the module docstring)."""
  spec: str                     # canonical, the results key
  obj: Any = None

  host_fn = None                # host-side per-image function, or None
  scores_clean = False          # the step also scores the untransformed images

  def bind(self, model) -> "Transform":
    """Fills model-dependent settings (nothing for clean images)."""
    del model
    return self

  def device(self, apply, params, images, labels, keys, mask=None):
    """Returns (images to score, per-example extras dict of (N, ...) arrays)."""
    del apply, params, labels, keys, mask
    return images, {}

  def metrics(self, outputs: dict, valid: np.ndarray, inputs: MetricInputs):
    """(metrics {name: value}, extra row details) from the per-example outputs.

    Top-1 (and top-5 with at least 5 classes) over the decodable examples, plus the
    set's sequence metrics (ImageNet-P flip probability, typographic success rate).
    """
    n_valid = int(valid.sum())
    metrics: dict[str, float] = {}
    details: dict = {}
    metrics["top1"] = float(outputs["correct1"][valid].mean()) if n_valid else 0.0
    if min(5, inputs.num_classes) == 5:
      metrics["top5"] = float(outputs["correct5"][valid].mean()) if n_valid else 0.0
    fn = inputs.evalset.sequence_metric_fn
    if fn is not None:
      ids = [inputs.example_id(int(i)) for i in outputs["index"][valid]]
      preds = outputs["top5" if getattr(fn, "wants_top5", False) else "pred"][valid]
      metrics.update(fn(ids, preds, outputs["correct1"][valid]))
      if hasattr(fn, "details"):
        details["sequence"] = fn.details(ids, outputs["pred"][valid])
    return metrics, details

  def default_suite(self, evalset=None) -> str:
    """The rows' suite under ``config.suite='auto'`` (when the set names none)."""
    del evalset
    return "zeroshot"


class Clean(Transform):
  """The images as loaded."""


class Shift(Transform):
  """A distribution shift from :mod:`jaxbench.shifts` (host- or device-side)."""

  @property
  def host_fn(self):   # noqa: D401  (the protocol attribute)
    return getattr(self.obj, "host_fn", None)

  @property
  def device_fn(self):
    return getattr(self.obj, "device_fn", None)

  def device(self, apply, params, images, labels, keys, mask=None):
    if self.device_fn is None:   # host-side: the pipeline already shifted the pixels
      return images, {}
    return jnp.clip(self.device_fn(keys, images), 0.0, 1.0), {}

  def metrics(self, outputs, valid, inputs):
    metrics, details = super().metrics(outputs, valid, inputs)
    prov = getattr(self.obj, "provenance", None)
    if isinstance(prov, dict):
      # What the shift object did (generated vs on disk, JPEG-85 save, ...).
      details["shift"] = prov
    return metrics, details

  def default_suite(self, evalset=None):
    return "typographic" if self.spec.startswith("shift:typographic") else "synthetic"


class Attack(Transform):
  """An attack from :mod:`jaxbench.attacks` (the Attack contract)."""

  scores_clean = True   # robust = correct before AND after: the step scores both

  def bind(self, model) -> "Attack":
    """Normalised-space epsilon needs the model's mean/std; transfer attacks load
    and bind their surrogate model."""
    from jaxbench import attacks
    return dataclasses.replace(self, obj=attacks.prepare(self.obj, model))

  def device(self, apply, params, images, labels, keys, mask=None):
    """Attacks see the padding mask, so padded slots are neither attacked nor counted;
    their per-example diagnostics (attack-space norms, checks, stages) are kept."""
    result = self.obj(apply, params, images, labels, keys, mask=mask)
    return result.adv_images, attack_extras(result, images.shape[0])

  def metrics(self, outputs, valid, inputs):
    values, checks_row = attack_metrics({k: a[valid] for k, a in outputs.items()})
    return values, {"checks": checks_row, "attack": self.spec}

  def default_suite(self, evalset=None):
    return "adv"


def attack_extras(result, n: int) -> dict:
  """The ``atk_*`` per-example outputs of an AttackResult for a batch of ``n``: its
  success, queries and the per-example diagnostics :mod:`jaxbench.attacks.metrics`
  summarises ((n, ...) arrays only)."""
  from jaxbench.attacks import metrics as attack_metrics
  d = dict(result.diagnostics or {})
  d["success"] = result.success
  d["queries"] = result.queries
  return {f"atk_{k}": jnp.asarray(v) for k, v in d.items()
          if k in attack_metrics.PER_EXAMPLE and jnp.ndim(v) >= 1 and jnp.shape(v)[0] == n}


def _shift(inner: str) -> Shift:
  from jaxbench import shifts
  return Shift("shift:" + registry.canonical(inner), shifts.get(inner))


def _attack(inner: str) -> Attack:
  from jaxbench import attacks
  return Attack("attack:" + registry.canonical(inner), attacks.get(inner))


# 'prefix:<spec>' -> builder of the transform it names.
PREFIXES: dict[str, Callable[[str], Transform]] = {"shift": _shift, "attack": _attack}


def get(spec: str) -> Transform:
  """Resolves a transform spec string (see module docstring)."""
  spec = spec.strip()
  if spec == "clean":
    return Clean("clean")
  prefix, sep, inner = spec.partition(":")
  if not sep or prefix not in PREFIXES:
    raise registry.SpecError(
        f"transform {spec!r}: expected 'clean', 'shift:<shift spec>' or "
        "'attack:<attack spec>'")
  return PREFIXES[prefix](inner)


def canonical(spec: str) -> str:
  """The canonical spelling of a transform spec, without building it."""
  prefix, sep, inner = spec.partition(":")
  return f"{prefix}:{registry.canonical(inner)}" if sep else spec


def example_keys(seed: int, uids: jax.Array) -> jax.Array:
  """(N,) typed keys: fold_in(key(seed), uid) per example."""
  base = jax.random.key(seed)
  return jax.vmap(lambda u: jax.random.fold_in(base, u))(uids)


def attack_metrics(out: dict[str, np.ndarray]) -> tuple[dict[str, float], dict]:
  """(metrics, checks) of an attack pass from its per-example outputs.

  The reported clean and robust accuracy are the runner's own re-evaluation of the
  clean and returned images (``clean_correct1``, ``correct1``): robust only if
  correct before and after. Norms, queries, per-stage robust accuracy and minimal
  epsilons come from :func:`jaxbench.attacks.metrics.summarize` (norms in the
  attack's own space); the sanity checks from :func:`jaxbench.attacks.checks.summary`.
  """
  from jaxbench.attacks import checks, metrics as attack_metrics_lib
  atk = {k[len("atk_"):]: v for k, v in out.items() if k.startswith("atk_")}
  atk["clean_correct"] = out["clean_correct1"]
  atk["adv_correct"] = out["correct1"]
  atk.setdefault("mask", np.ones(len(out["correct1"]), bool))
  summary = attack_metrics_lib.summarize(atk)
  metrics = {k: v for k, v in summary.items()
             if k != "n" and isinstance(v, (int, float, np.floating, np.integer))
             and k not in ("outside_ball", "outside_bounds")}
  for i, v in enumerate(summary.get("stage_robust_acc", []) or []):
    metrics[f"stage{i}_robust_acc"] = v
  checks_row = {k: (float(v) if isinstance(v, (np.floating, float)) else v)
                for k, v in checks.summary(atk).items()}
  # NaN (e.g. norms when nothing was fooled) is left out: the report lists it missing.
  # +inf is a value (median_min_eps when most examples were never broken: "> max
  # grid", noted in the checks); results.jsonl stores it as Infinity.
  return {k: float(v) for k, v in metrics.items() if not np.isnan(v)}, checks_row
