"""What a pass does to images before scoring: nothing, a shift, or an attack.

Transform specs in configs:
  'clean'                                   the images as loaded
  'shift:<spec>'                            a shift from :mod:`jaxbench.shifts`
  'attack:<spec>'                           an attack from :mod:`jaxbench.attacks`

A shift is host-side (``host_fn(uint8 image, rng) -> uint8 image`` in the grain
pipeline; ``stage`` 'raw' or 'model_input') or device-side (``device_fn(keys,
images) -> images``). An attack follows the Attack contract. Both see per-example
keys derived from the run seed and the example id, never the batch position.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench import registry


@dataclasses.dataclass(frozen=True, eq=False)
class Transform:
  spec: str                     # canonical, the results key
  kind: str                     # 'clean' | 'shift' | 'attack'
  obj: Any = None
  host_fn: Optional[Callable] = None

  @property
  def device_fn(self):
    return getattr(self.obj, "device_fn", None) if self.kind == "shift" else None

  def bind(self, model) -> "Transform":
    """Fills model-dependent settings: normalised-space epsilon needs the model's
    mean/std, transfer attacks load and bind their surrogate model."""
    if self.kind == "attack":
      from jaxbench import attacks
      return dataclasses.replace(self, obj=attacks.prepare(self.obj, model))
    return self

  def device(self, apply, params, images, labels, keys, mask=None):
    """Returns (images to score, per-example extras dict of (N, ...) arrays).

    Attacks see the padding mask, so padded slots are neither attacked nor counted;
    their per-example diagnostics (attack-space norms, checks, stages) are kept.
    """
    if self.kind == "clean" or (self.kind == "shift" and self.device_fn is None):
      return images, {}
    if self.kind == "shift":
      return jnp.clip(self.device_fn(keys, images), 0.0, 1.0), {}
    from jaxbench.attacks import metrics as attack_metrics
    result = self.obj(apply, params, images, labels, keys, mask=mask)
    d = dict(result.diagnostics or {})
    d["success"] = result.success
    d["queries"] = result.queries
    n = images.shape[0]
    extras = {f"atk_{k}": jnp.asarray(v) for k, v in d.items()
              if k in attack_metrics.PER_EXAMPLE and jnp.ndim(v) >= 1 and
              jnp.shape(v)[0] == n}
    return result.adv_images, extras


def get(spec: str) -> Transform:
  """Resolves a transform spec string (see module docstring)."""
  spec = spec.strip()
  if spec == "clean":
    return Transform("clean", "clean")
  kind, sep, inner = spec.partition(":")
  if not sep or kind not in ("shift", "attack"):
    raise registry.SpecError(
        f"transform {spec!r}: expected 'clean', 'shift:<shift spec>' or "
        "'attack:<attack spec>'")
  if kind == "shift":
    from jaxbench import shifts
    obj = shifts.get(inner)
    canonical = "shift:" + registry.canonical(inner)
    return Transform(canonical, "shift", obj, getattr(obj, "host_fn", None))
  from jaxbench import attacks
  obj = attacks.get(inner)
  return Transform("attack:" + registry.canonical(inner), "attack", obj)


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
  from jaxbench.attacks import checks, metrics as attack_metrics
  atk = {k[len("atk_"):]: v for k, v in out.items() if k.startswith("atk_")}
  atk["clean_correct"] = out["clean_correct1"]
  atk["adv_correct"] = out["correct1"]
  atk.setdefault("mask", np.ones(len(out["correct1"]), bool))
  summary = attack_metrics.summarize(atk)
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
