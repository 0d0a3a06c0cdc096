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
    """Fills model-dependent settings (normalised-space epsilon needs mean/std)."""
    if self.kind == "attack" and hasattr(self.obj, "for_model"):
      return dataclasses.replace(self, obj=self.obj.for_model(model.preprocess))
    return self

  def device(self, apply, params, images, labels, keys):
    """Returns (images to score, per-example extras dict of (N,) arrays)."""
    if self.kind == "clean" or (self.kind == "shift" and self.device_fn is None):
      return images, {}
    if self.kind == "shift":
      return jnp.clip(self.device_fn(keys, images), 0.0, 1.0), {}
    result = self.obj(apply, params, images, labels, keys)
    delta = (result.adv_images - images).reshape(images.shape[0], -1)
    extras = {"success": result.success.astype(jnp.bool_),
              "queries": jnp.asarray(result.queries, jnp.int32),
              "linf": jnp.max(jnp.abs(delta), axis=1),
              "l2": jnp.linalg.norm(delta, axis=1)}
    for k, v in (result.diagnostics or {}).items():
      v = jnp.asarray(v)
      if v.ndim == 1 and v.shape[0] == images.shape[0]:
        extras[f"diag_{k}"] = v
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


def attack_metrics(out: dict[str, np.ndarray]) -> dict[str, float]:
  """Robust accuracy etc. from per-example outputs of an attack pass.

  Robust accuracy counts an example only if it was classified correctly before
  the attack and the re-evaluated adversarial image is still correct;
  success rate is over initially correct examples.
  """
  clean = out["clean_correct1"].astype(bool)
  robust = out["correct1"].astype(bool) & clean
  n = max(len(clean), 1)
  fooled = clean & ~robust
  res = {"clean_acc": clean.sum() / n, "robust_acc": robust.sum() / n,
         "success_rate": fooled.sum() / max(clean.sum(), 1),
         "mean_queries": float(np.mean(out["queries"])) if len(clean) else 0.0}
  if fooled.any():
    res["mean_linf"] = float(np.mean(out["linf"][fooled]))
    res["median_linf"] = float(np.median(out["linf"][fooled]))
    res["mean_l2"] = float(np.mean(out["l2"][fooled]))
    res["median_l2"] = float(np.median(out["l2"][fooled]))
  return {k: float(v) for k, v in res.items()}
