"""What every attack returns, and the one step that produces it.

:class:`AttackResult` holds adversarial images, the success mask, queries and
per-example diagnostics. :func:`finalize` turns an attack's raw output into a
result the same way for every attack: project onto the ball and bounds,
restore untouched examples bit-exactly, and re-evaluate the victim once.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.attacks.losses import is_adversarial, looks_like_probabilities
from jaxbench.attacks.per_example import expand, norms
from jaxbench.attacks.threat import ThreatModel, project


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AttackResult:
  """What every attack returns.

  Attributes:
    adv_images: float32 (N, H, W, C) pixels, projected onto the ball and bounds.
    success: bool (N,): the example was classified correctly before the attack
      and the returned image is adversarial (one re-evaluation).
    queries: int32 (N,): model evaluations spent (forward or forward+backward).
    diagnostics: dict of (N, ...) arrays: clean_correct, adv_correct,
      clean_pred, adv_pred, target, linf, l2 (attack space), pixel_linf,
      in_ball, in_bounds, steps, zero_grad_frac, prob_like, eps, mask, and
      attack-specific entries.
  """
  adv_images: jax.Array
  success: jax.Array
  queries: jax.Array
  diagnostics: dict


def finalize(threat: ThreatModel, models, images, labels, raw: dict,
             mask) -> AttackResult:
  """Projects, restores untouched examples bit-exactly, re-evaluates once.

  Args:
    threat: the threat model (``raw['eps']`` may override eps per example).
    models: victim functions (:class:`jaxbench.attacks.base.Models`; only
      ``pixels(images) -> logits`` is used).
    images: (N, H, W, C) clean pixels.
    labels: (N,) int32.
    raw: attack output dict (see :class:`Attack`); ``raw['eps']`` (N,) radii.
    mask: (N,) bool, False for padding.

  Returns:
    :class:`AttackResult`; padding and examples misclassified before the
    attack come back as their clean images, bit for bit.
  """
  z0 = threat.to_space(images)
  lo, hi = threat.bounds_np()
  eps = raw["eps"]
  keep = ~(raw["clean_correct"] & mask)
  # eps is +inf for unbudgeted minimal attacks: the ball is then everything.
  z = project(raw["x"], z0, eps, threat.norm, lo, hi)
  z = jnp.where(expand(keep, z.ndim), z0, z)
  # Untouched elements come back bit-exact (no normalise/denormalise rounding).
  adv = jnp.where(z == z0, images, threat.to_pixels(z))
  logits = models.pixels(adv)
  pred = jnp.argmax(logits, axis=-1)
  targeted = threat.targeted is not None
  target = raw["target"]
  success = mask & raw["clean_correct"] & is_adversarial(logits, labels, target, targeted)
  dz = threat.to_space(adv) - z0
  linf, l2 = norms(dz)
  e = jnp.where(jnp.isfinite(eps), eps, jnp.inf)
  tol = 1e-5 * max(1.0, float(np.max(np.abs(np.concatenate(
      [np.ravel(lo), np.ravel(hi)])))))
  in_ball = (linf if threat.norm == "linf" else l2) <= e * (1 + 1e-5) + tol
  za = threat.to_space(adv)
  in_bounds = jnp.all(((za >= lo - tol) & (za <= hi + tol)).reshape(za.shape[0], -1), axis=1)
  diag = {
      "clean_correct": raw["clean_correct"] & mask,
      "clean_pred": raw["clean_pred"],
      "adv_pred": pred,
      "adv_correct": pred == labels,
      "target": target,
      "linf": linf,
      "l2": l2,
      "pixel_linf": norms(adv - images)[0],
      "in_ball": in_ball,
      "in_bounds": in_bounds,
      "eps": eps,
      "mask": mask,
      "steps": raw.get("steps", jnp.zeros_like(labels)),
      "zero_grad_frac": raw.get("zero_grad", jnp.zeros(labels.shape, jnp.float32)),
      "prob_like": raw.get("prob_like", looks_like_probabilities(logits)),
  }
  for k, v in raw.items():
    if k.startswith("diag_"):
      diag[k[5:]] = v
  return AttackResult(adv_images=adv, success=success,
                      queries=raw["queries"].astype(jnp.int32), diagnostics=diag)
