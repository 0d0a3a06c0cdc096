"""The threat model: where adversarial examples may lie, and projection onto it.

* :class:`ThreatModel`: norm (L-inf or L2), epsilon, the space epsilon is
  measured in (pixel [0, 1] or the model's normalised space, RoZ's convention),
  bounds in that space, and the targeted mode; bad settings raise
  :class:`AttackInputError` naming the value and what was expected.
* :func:`project` onto the epsilon ball intersected with the bounds, and
  :func:`direction`, the steepest-ascent unit step for a norm.
* :func:`roz_steps`: RoZ's eps-dependent iteration count.

Attack space is pixels for ``space='pixel'`` and ``(x - mean) / std`` for
``space='normalized'``; images outside are always float32 NHWC in [0, 1]. With
RoZ's normalised bounds [-1.8, 2.15] a returned pixel may leave [0, 1] by up to
~0.09 (channel 2), exactly as RoZ's clamp allows.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.attacks.per_example import expand, norms

NORMS = ("linf", "l2")
SPACES = ("pixel", "normalized")
TARGETED = (None, "random", "least_likely", "given")
ROZ_BOUNDS = (-1.8, 2.15)


class AttackInputError(ValueError):
  """Bad attack hyperparameters or inputs (names the value and what was expected)."""


def roz_steps(eps: float) -> int:
  """RoZ/Kurakin iteration rule ``int(min(eps*255 + 4, 1.25*eps*255))`` (10 at 8/255).

  Args:
    eps: radius (float, threat-space units).

  Returns:
    the number of updates (int >= 0).
  """
  return int(min(eps * 255 + 4, 1.25 * eps * 255))


def roz_steps_array(eps: jax.Array) -> jax.Array:
  """:func:`roz_steps` per example, inside traced code.

  Args:
    eps: (N,) float32 radii.

  Returns:
    (N,) int32 update counts, equal to the host rule's.
  """
  # float32 eps*255 can land just below an integer (8/255*255 = 7.9999995):
  # a small guard keeps the host rule's integer.
  return jnp.floor(jnp.minimum(eps * 255 + 4, 1.25 * eps * 255) + 1e-4).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class ThreatModel:
  """Where adversarial examples may lie.

  Attributes:
    norm: 'linf' or 'l2'.
    eps: radius in units of ``space``; None for minimal-perturbation attacks
      run without a budget (DeepFool, C&W).
    space: 'pixel' ([0, 1] images) or 'normalized' (``(x - mean) / std`` with
      the model's mean/std; RoZ's convention, set by :meth:`Attack.for_model`).
    bounds: box in ``space`` units. None means (0, 1) in pixel space and RoZ's
      (-1.8, 2.15) in normalised space; 'auto' means the image of [0, 1]
      per channel; or (lo, hi) with scalars or per-channel triples.
    targeted: None (untargeted), 'random' (a uniformly drawn wrong class),
      'least_likely' (the clean image's lowest logit) or 'given' (``targets``).
    mean, std: per-channel statistics of the model's normalisation; required
      in normalised space.
  """
  norm: str = "linf"
  eps: Optional[float] = 8 / 255
  space: str = "pixel"
  bounds: Any = None
  targeted: Optional[str] = None
  mean: Optional[tuple] = None
  std: Optional[tuple] = None

  def __post_init__(self):
    if self.norm not in NORMS:
      raise AttackInputError(f"norm={self.norm!r}: expected one of {NORMS}")
    if self.space not in SPACES:
      raise AttackInputError(f"space={self.space!r}: expected one of {SPACES}")
    if self.targeted not in TARGETED:
      raise AttackInputError(f"targeted={self.targeted!r}: expected one of {TARGETED}")
    if self.eps is not None:
      eps = self.eps
      if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise AttackInputError(f"eps={eps!r}: expected a finite number >= 0")
      if self.norm == "linf" and self.space == "pixel" and eps > 1:
        raise AttackInputError(
            f"eps={eps!r} is outside [0, 1] for an L-inf attack in pixel space "
            f"(images are floats in [0, 1]); did you mean eps={eps:g}/255?")
    if isinstance(self.bounds, str) and self.bounds not in ("auto", "roz"):
      raise AttackInputError(f"bounds={self.bounds!r}: expected None, 'auto', 'roz' "
                             "or (lo, hi)")
    if self.bounds is not None and not isinstance(self.bounds, str):
      if len(self.bounds) != 2:
        raise AttackInputError(f"bounds={self.bounds!r}: expected (lo, hi)")
      lo, hi = (np.asarray(b, np.float64) for b in self.bounds)
      if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        raise AttackInputError(f"bounds={self.bounds!r}: expected finite lo < hi")
      if self.space == "pixel" and (np.any(lo < 0) or np.any(hi > 1)):
        raise AttackInputError(
            f"bounds={self.bounds!r} are inconsistent with the model's input range "
            "[0, 1] in pixel space (images are floats in [0, 1], not 0..255)")
    if self.space == "pixel" and self.bounds == "roz":
      raise AttackInputError("bounds='roz' are normalised-space bounds; use space='normalized'")
    if (self.mean is None) != (self.std is None):
      raise AttackInputError("mean and std must be given together")
    if self.eps is not None and self.norm == "linf" and (self.bounds != "auto"
                                                          or self.mean is not None):
      lo, hi = self.bounds_np()
      if self.eps > float(np.max(hi - lo)):
        raise AttackInputError(f"eps={self.eps!r} exceeds the width of the bounds "
                               f"{float(np.max(hi - lo)):.3f} in {self.space} space")

  # -- spaces ---------------------------------------------------------------
  @property
  def resolved(self) -> bool:
    """Whether attack space is fully known (pixel space, or mean/std bound)."""
    return self.space == "pixel" or self.mean is not None

  def with_stats(self, mean: Sequence[float], std: Sequence[float]) -> "ThreatModel":
    """Sets the model's normalisation and checks the bounds against it.

    Args:
      mean, std: per-channel statistics (C,) of the model's preprocessing.

    Returns:
      a copy with ``mean``/``std`` set.
    """
    tm = dataclasses.replace(self, mean=tuple(float(m) for m in mean),
                             std=tuple(float(s) for s in std))
    if tm.space == "normalized":
      lo, hi = tm.bounds_np()
      img_lo = (0.0 - np.asarray(tm.mean)) / np.asarray(tm.std)
      img_hi = (1.0 - np.asarray(tm.mean)) / np.asarray(tm.std)
      # RoZ's [-1.8, 2.15] rounds CLIP's exact range (-1.79226, 2.14589699)
      # outward; a box that cuts off valid images by more is a mistake.
      tol = 0.01
      if np.any(lo > img_lo + tol) or np.any(hi < img_hi - tol):
        raise AttackInputError(
            f"bounds={self.bounds!r} in normalised units cut off this model's input "
            f"range: [0, 1] pixels normalise to lo={np.round(img_lo, 4).tolist()}, "
            f"hi={np.round(img_hi, 4).tolist()} with mean={tm.mean}, std={tm.std}. "
            "Use bounds='auto', or feed the model CLIP's preprocessing as RoZ does")
    return tm

  def require_stats(self):
    """Raises :class:`AttackInputError` unless normalised space has its mean/std."""
    if not self.resolved:
      raise AttackInputError(
          "space='normalized' needs the model's mean/std: call "
          "attack.for_model(model.preprocess) before running the attack")

  def bounds_np(self) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) float32 arrays, scalar or per-channel (C,), in attack space."""
    b = self.bounds
    if self.space == "pixel":
      if b is None or b == "auto":
        b = (0.0, 1.0)
    else:
      if b is None or b == "roz":
        b = ROZ_BOUNDS
      elif b == "auto":
        self.require_stats()
        m, s = np.asarray(self.mean), np.asarray(self.std)
        b = ((0 - m) / s, (1 - m) / s)
    return np.asarray(b[0], np.float32), np.asarray(b[1], np.float32)

  def to_space(self, images: jax.Array) -> jax.Array:
    """[0, 1] pixels (N, H, W, C) -> attack space (N, H, W, C)."""
    if self.space == "pixel":
      return images
    self.require_stats()
    return (images - jnp.asarray(self.mean, images.dtype)) / jnp.asarray(self.std, images.dtype)

  def to_pixels(self, z: jax.Array) -> jax.Array:
    """Attack space (N, H, W, C) -> pixels (N, H, W, C), what ``apply`` takes."""
    if self.space == "pixel":
      return z
    self.require_stats()
    return z * jnp.asarray(self.std, z.dtype) + jnp.asarray(self.mean, z.dtype)

  def describe(self) -> dict:
    """JSON-ready settings: norm, eps, space, resolved bounds (lists) and targeted."""
    lo, hi = self.bounds_np() if self.resolved or self.bounds != "auto" else (None, None)
    return {"norm": self.norm, "eps": self.eps, "space": self.space,
            "bounds": None if lo is None else [np.asarray(lo).tolist(), np.asarray(hi).tolist()],
            "targeted": self.targeted}


THREAT_KEYS = ("norm", "eps", "space", "bounds", "targeted")


def threat_kwargs(tm: ThreatModel) -> dict:
  """Spec kwargs of a threat model's non-default settings (mean/std excluded:
  they come from the model, not the spec)."""
  tm0 = ThreatModel()
  return {k: getattr(tm, k) for k in THREAT_KEYS if getattr(tm, k) != getattr(tm0, k)}


def project(x: jax.Array, x0: jax.Array, eps: Optional[jax.Array], norm: str,
            lo, hi) -> jax.Array:
  """Projects ``x`` onto the eps-ball around ``x0`` intersected with [lo, hi].

  Args:
    x, x0: (N, H, W, C) in attack space; ``x0`` must lie in [lo, hi].
    eps: (N,) radii, or None for no ball.
    norm: 'linf' or 'l2'.
    lo, hi: scalars or (C,) bounds.

  Returns:
    (N, H, W, C): for L-inf the exact box intersection; for L2 the radial
    projection followed by clipping, which stays in the ball because clipping
    towards a box that contains ``x0`` never lengthens the perturbation.
  """
  if eps is None:
    return jnp.clip(x, lo, hi)
  e = expand(eps.astype(x.dtype), x.ndim)
  if norm == "linf":
    return jnp.clip(x, jnp.maximum(x0 - e, lo), jnp.minimum(x0 + e, hi))
  delta = x - x0
  n = expand(norms(delta)[1], x.ndim)
  factor = jnp.minimum(1.0, e / jnp.maximum(n, 1e-12))
  return jnp.clip(x0 + delta * factor, lo, hi)


def direction(g: jax.Array, norm: str) -> jax.Array:
  """Steepest-ascent unit step for a gradient: sign for L-inf, g/||g||_2 for L2.

  Args:
    g: (N, ...) gradients.
    norm: 'linf' or 'l2'.

  Returns:
    (N, ...) directions.
  """
  if norm == "linf":
    return jnp.sign(g)
  n = expand(norms(g)[1], g.ndim)
  return g / jnp.maximum(n, 1e-12)
