"""Threat model, attack result, projection, losses and the attack driver.

Everything an attack algorithm needs but is not the algorithm:

* :class:`ThreatModel`: norm (L-inf or L2), epsilon, the space epsilon is
  measured in (pixel [0, 1] or the model's normalised space, RoZ's convention),
  bounds in that space, and the targeted mode.
* :class:`AttackResult`: adversarial images, success mask, queries and
  per-example diagnostics.
* :func:`project` onto the epsilon ball and the bounds, applied to every result
  before its single re-evaluation (:func:`finalize`).
* Losses to *ascend*: cross-entropy, margin and DLR, untargeted or targeted.
* :class:`Attack`: hyperparameters as a frozen dataclass with a pure, jittable
  ``__call__(apply, params, images, labels, keys) -> AttackResult``.
* :class:`Iterative`: attacks written as a per-example state machine
  (``init`` / ``step`` / ``output``) so that every example keeps its own
  iteration counter. The same step runs a whole batch to completion under
  ``lax.while_loop`` or a few iterations at a time with survivor refill
  (:mod:`jaxbench.attacks.refill`), with identical results.

Conventions. Attacks work in *attack space*: pixels for ``space='pixel'``,
``(x - mean) / std`` for ``space='normalized'``. Images handed in and out are
always float32 NHWC in [0, 1] (the Model contract); with RoZ's normalised bounds
[-1.8, 2.15] a returned pixel may leave [0, 1] by up to ~0.09 (channel 2),
exactly as RoZ's clamp allows. Every example's first model evaluation is at the
clean image, which yields its clean prediction: examples that are misclassified
before the attack are not attacked and count as failures of the model (RoZ).
Randomness comes from per-example keys only (``fold_in(key(seed), example_id)``
by the caller), never from batch position.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, ClassVar, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench import registry

NORMS = ("linf", "l2")
SPACES = ("pixel", "normalized")
TARGETED = (None, "random", "least_likely", "given")
ROZ_BOUNDS = (-1.8, 2.15)
# Tags folded into per-example keys so that independent draws never collide.
TAG_TARGET, TAG_START, TAG_STEP = 0x7A11, 0x57A7, 0x5E9


class AttackInputError(ValueError):
  """Bad attack hyperparameters or inputs (names the value and what was expected)."""


def roz_steps(eps: float) -> int:
  """RoZ/Kurakin iteration rule ``int(min(eps*255 + 4, 1.25*eps*255))`` (10 at 8/255)."""
  return int(min(eps * 255 + 4, 1.25 * eps * 255))


def _roz_steps_array(eps: jax.Array) -> jax.Array:
  # float32 eps*255 can land just below an integer (8/255*255 = 7.9999995):
  # a small guard keeps the host rule's integer.
  return jnp.floor(jnp.minimum(eps * 255 + 4, 1.25 * eps * 255) + 1e-4).astype(jnp.int32)


# --------------------------------------------------------------------------
# Threat model.
# --------------------------------------------------------------------------
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
    return self.space == "pixel" or self.mean is not None

  def with_stats(self, mean: Sequence[float], std: Sequence[float]) -> "ThreatModel":
    """Sets the model's normalisation and checks the bounds against it."""
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

  def _need_stats(self):
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
        self._need_stats()
        m, s = np.asarray(self.mean), np.asarray(self.std)
        b = ((0 - m) / s, (1 - m) / s)
    return np.asarray(b[0], np.float32), np.asarray(b[1], np.float32)

  def to_space(self, images: jax.Array) -> jax.Array:
    """[0, 1] pixels -> attack space."""
    if self.space == "pixel":
      return images
    self._need_stats()
    return (images - jnp.asarray(self.mean, images.dtype)) / jnp.asarray(self.std, images.dtype)

  def to_pixels(self, z: jax.Array) -> jax.Array:
    """Attack space -> pixels (what ``apply`` takes)."""
    if self.space == "pixel":
      return z
    self._need_stats()
    return z * jnp.asarray(self.std, z.dtype) + jnp.asarray(self.mean, z.dtype)

  def describe(self) -> dict:
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


# --------------------------------------------------------------------------
# Projection and norms.
# --------------------------------------------------------------------------
def _per_example(v: jax.Array, ndim: int) -> jax.Array:
  return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def norms(delta: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-example (L-inf, L2) norms of (N, ...) perturbations."""
  flat = delta.reshape(delta.shape[0], -1)
  return jnp.max(jnp.abs(flat), axis=1), jnp.sqrt(jnp.sum(flat * flat, axis=1))


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
  e = _per_example(eps.astype(x.dtype), x.ndim)
  if norm == "linf":
    return jnp.clip(x, jnp.maximum(x0 - e, lo), jnp.minimum(x0 + e, hi))
  delta = x - x0
  n = _per_example(norms(delta)[1], x.ndim)
  factor = jnp.minimum(1.0, e / jnp.maximum(n, 1e-12))
  return jnp.clip(x0 + delta * factor, lo, hi)


def direction(g: jax.Array, norm: str) -> jax.Array:
  """Steepest-ascent unit step for a gradient: sign for L-inf, g/||g||_2 for L2."""
  if norm == "linf":
    return jnp.sign(g)
  n = _per_example(norms(g)[1], g.ndim)
  return g / jnp.maximum(n, 1e-12)


# --------------------------------------------------------------------------
# Losses (to ascend) and success.
# --------------------------------------------------------------------------
def _other_max(logits: jax.Array, cls: jax.Array) -> jax.Array:
  k = logits.shape[-1]
  masked = jnp.where(jax.nn.one_hot(cls, k, dtype=bool), -jnp.inf, logits)
  return jnp.max(masked, axis=-1)


def _take(logits, cls):
  return jnp.take_along_axis(logits, cls[:, None], axis=-1)[:, 0]


def cross_entropy(logits, labels):
  """Per-example softmax cross-entropy, (N, K), (N,) -> (N,)."""
  return jax.nn.logsumexp(logits, axis=-1) - _take(logits, labels)


def margin(logits, labels):
  """z_y - max_{j != y} z_j: positive while the label still wins."""
  return _take(logits, labels) - _other_max(logits, labels)


def dlr(logits, labels):
  """Difference of logits ratio (Croce & Hein 2020), untargeted, to minimise."""
  s = jnp.sort(logits, axis=-1)
  return margin(logits, labels) / (s[:, -1] - s[:, -3] + 1e-12)


def dlr_targeted(logits, labels, targets):
  s = jnp.sort(logits, axis=-1)
  return (_take(logits, labels) - _take(logits, targets)) / (
      s[:, -1] - 0.5 * (s[:, -3] + s[:, -4]) + 1e-12)


LOSSES = ("ce", "margin", "dlr")


def attack_loss(name: str, logits, labels, targets, targeted: bool):
  """Per-example loss whose *ascent* is the attack direction."""
  if name == "ce":
    return -cross_entropy(logits, targets) if targeted else cross_entropy(logits, labels)
  if name == "margin":
    return margin(logits, targets) if targeted else -margin(logits, labels)
  if name == "dlr":
    return -dlr_targeted(logits, labels, targets) if targeted else -dlr(logits, labels)
  raise AttackInputError(f"loss={name!r}: expected one of {LOSSES}")


def is_adversarial(logits, labels, targets, targeted: bool):
  pred = jnp.argmax(logits, axis=-1)
  return pred == targets if targeted else pred != labels


def looks_like_probabilities(logits) -> jax.Array:
  """(N,) bool: rows in [0, 1] summing to 1 (softmax outputs, not logits)."""
  in_unit = jnp.all((logits >= 0) & (logits <= 1), axis=-1)
  return in_unit & (jnp.abs(jnp.sum(logits, axis=-1) - 1) < 1e-3)


# --------------------------------------------------------------------------
# Result.
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# Keys.
# --------------------------------------------------------------------------
def key_data(keys, n: int) -> jax.Array:
  """Per-example raw key data (N, ...) from keys (N,), one key, or None.

  A single key (or None = key(0)) is split by batch position, which ties the
  randomness to the batch layout; pass per-example keys
  ``fold_in(key(seed), example_index)`` for batch-independent results.
  """
  if keys is None:
    keys = jax.random.key(0)
  keys = jnp.asarray(keys) if not _is_typed_key(keys) else keys
  if not _is_typed_key(keys):
    if keys.dtype != jnp.uint32 or keys.shape[-1:] != (2,):
      raise AttackInputError(f"keys: expected a typed key array (N,) or raw uint32 "
                             f"keys (N, 2), got {keys.dtype} {keys.shape}")
    keys = jax.random.wrap_key_data(keys)
  if keys.shape == ():
    keys = jax.random.split(keys, n)
  if keys.shape != (n,):
    raise AttackInputError(f"keys: expected shape ({n},) (one per example) or a "
                           f"single key, got {keys.shape}")
  return jax.random.key_data(keys)


def _is_typed_key(x) -> bool:
  return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def fold(key_raw: jax.Array, *tags) -> jax.Array:
  """Per-example typed keys folded with tags (ints or (N,) int arrays)."""
  keys = jax.random.wrap_key_data(key_raw)
  for tag in tags:
    tag = jnp.broadcast_to(jnp.asarray(tag, jnp.uint32), keys.shape)
    keys = jax.vmap(jax.random.fold_in)(keys, tag)
  return keys


# --------------------------------------------------------------------------
# Models seen by an attack.
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Models:
  """The victim (and gradient source) as functions of attack-space inputs.

  ``source`` is the model whose gradients drive the attack: the victim itself,
  or a surrogate for transfer attacks. Built inside traced code only.
  """
  apply: Callable
  params: Any
  threat: ThreatModel
  source_apply: Optional[Callable] = None
  source_params: Any = None

  @property
  def same(self) -> bool:
    return self.source_apply is None

  def victim(self, z):
    return self.apply(self.params, self.threat.to_pixels(z))

  def source(self, z):
    if self.same:
      return self.victim(z)
    return self.source_apply(self.source_params, self.threat.to_pixels(z))

  def pixels(self, images):
    return self.apply(self.params, images)


# --------------------------------------------------------------------------
# Attack base.
# --------------------------------------------------------------------------
def _traced(*xs) -> bool:
  return any(isinstance(l, jax.core.Tracer) for x in xs for l in jax.tree.leaves(x))


@jax.jit
def _value_range(x):
  """(min, max) of an array in one program (one device-to-host copy for both)."""
  return jnp.min(x), jnp.max(x)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Attack:
  """Hyperparameters of an attack; ``__call__`` runs it.

  Subclasses implement ``_attack(models, images, labels, keys, eps, targets,
  mask) -> raw`` where ``raw`` is a dict with at least ``x`` (attack-space
  adversarial images), ``clean_pred``, ``clean_correct``, ``target``,
  ``queries``; :func:`finalize` turns it into an :class:`AttackResult`.
  """
  threat: ThreatModel = ThreatModel()

  name: ClassVar[str] = "attack"
  minimal: ClassVar[bool] = False        # minimal-perturbation: eps may be None
  norms: ClassVar[tuple] = NORMS

  def __post_init__(self):
    if self.threat.norm not in self.norms:
      raise AttackInputError(f"{self.name}: norm={self.threat.norm!r} is not supported; "
                             f"expected one of {self.norms}")
    if self.threat.eps is None and not self.minimal:
      raise AttackInputError(f"{self.name}: eps=None is only allowed for "
                             "minimal-perturbation attacks (deepfool, cw)")

  # -- configuration ------------------------------------------------------
  def for_model(self, preprocess) -> "Attack":
    """Binds the model's normalisation (needed for ``space='normalized'``)."""
    return self.with_threat(self.threat.with_stats(preprocess.mean, preprocess.std))

  def with_threat(self, threat: ThreatModel) -> "Attack":
    return dataclasses.replace(self, threat=threat)

  def spec(self, threat: bool = True) -> str:
    """Canonical spec string of the non-default settings (results key).

    Args:
      threat: include the threat-model settings (nested attacks omit them:
        they inherit their parent's).
    """
    kwargs = {}
    for f in dataclasses.fields(self):
      if f.name == "threat" or not f.compare:
        continue
      v = getattr(self, f.name)
      default = f.default if f.default is not dataclasses.MISSING else (
          f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
      if v != default:
        kwargs[f.name] = v.spec(threat=False) if isinstance(v, Attack) else (
            [a.spec(threat=False) if isinstance(a, Attack) else a for a in v]
            if isinstance(v, tuple) and v and isinstance(v[0], Attack) else v)
    if threat:
      kwargs.update(threat_kwargs(self.threat))
    return registry.format_spec(self.name, (), kwargs)

  def describe(self) -> dict:
    return {"attack": self.spec(), "threat": self.threat.describe()}

  # -- pieces for subclasses ---------------------------------------------
  def _models(self, apply, params, dyn) -> Models:
    return Models(apply, params, self.threat)

  def _split(self):
    """(hashable static copy, dynamic pytree): arrays an attack carries (surrogates)."""
    return self, None

  def _merge(self, dyn) -> "Attack":
    return self

  def _attack(self, models, images, labels, keys, eps, targets, mask) -> dict:
    raise NotImplementedError

  # -- running -----------------------------------------------------------
  def check_inputs(self, images, labels, targets=None, mask=None):
    """Static checks (shapes, targets) and value checks on concrete arrays."""
    if images.ndim != 4:
      raise AttackInputError(f"{self.name}: images must be (N, H, W, C), got {images.shape}")
    n = images.shape[0]
    if labels.shape != (n,):
      raise AttackInputError(f"{self.name}: labels must be ({n},), got {labels.shape}")
    if self.threat.targeted == "given" and targets is None:
      raise AttackInputError(f"{self.name}: targeted='given' needs targets=(N,) class ids")
    if targets is not None and targets.shape != (n,):
      raise AttackInputError(f"{self.name}: targets must be ({n},), got {targets.shape}")
    if mask is not None and mask.shape != (n,):
      raise AttackInputError(f"{self.name}: mask must be ({n},), got {mask.shape}")
    self.threat._need_stats()
    if not _traced(images):
      lo, hi = (float(v) for v in jax.device_get(_value_range(images)))   # one host sync
      if lo < -1e-6 or hi > 1 + 1e-6:
        raise AttackInputError(
            f"{self.name}: images must be floats in [0, 1] (the Model contract), got "
            f"values in [{lo:g}, {hi:g}]; divide uint8 images by 255")

  def __call__(self, apply, params, images, labels, keys=None, *, targets=None,
               mask=None) -> AttackResult:
    """Runs the attack.

    Args:
      apply: ``apply(params, images01) -> logits`` (N, K); pure, jittable.
      params: its parameters (any pytree).
      images: float32 (N, H, W, C) in [0, 1].
      labels: int (N,) true classes.
      keys: (N,) per-example keys, a single key (split by position) or None.
      targets: int (N,) target classes for ``targeted='given'``.
      mask: bool (N,): False marks padding, which is left untouched.

    Returns:
      :class:`AttackResult` (see there). When called outside ``jit`` the run
      is compiled once per (attack, apply) and flagged diagnostics (outputs that
      look like probabilities) are raised as warnings.
    """
    images = jnp.asarray(images, jnp.float32) if not _traced(images) else images
    labels = jnp.asarray(labels, jnp.int32) if not _traced(labels) else labels
    self.check_inputs(images, labels, targets, mask)
    if _traced(images, labels, params, keys, targets, mask):
      return self._trace(apply, params, None, images, labels, keys, targets, mask)
    static, dyn = self._split()
    result = _jit_call(static.erase_eps(), apply, params, dyn, images, labels,
                       key_data(keys, images.shape[0]), targets, mask,
                       self.eps_array(images.shape[0]))
    from jaxbench.attacks import checks  # noqa: cyclic at import time
    checks.warn(result, self.name)
    return result

  def eps_array(self, n: int) -> jax.Array:
    """(n,) float32 radii: the threat's eps, +inf for unbudgeted minimal attacks."""
    return jnp.full((n,), jnp.inf if self.threat.eps is None else self.threat.eps,
                    jnp.float32)

  def erase_eps(self) -> "Attack":
    """A copy whose eps is a placeholder: eps travels as an array instead, so
    one compiled program serves every radius (eps sweeps, RoZ's grids)."""
    tm = self.threat
    return self.with_threat(dataclasses.replace(tm, eps=None if tm.eps is None else 0.0))

  def _trace(self, apply, params, dyn, images, labels, keys, targets, mask, eps=None):
    attack = self._merge(dyn) if dyn is not None else self
    n = images.shape[0]
    kd = keys if (keys is not None and not _is_typed_key(keys)
                  and getattr(keys, "shape", None) == (n, 2)) else key_data(keys, n)
    models = attack._models(apply, params, dyn)
    eps = attack.eps_array(n) if eps is None else eps
    mask = jnp.ones((n,), bool) if mask is None else mask.astype(bool)
    tg = jnp.full((n,), -1, jnp.int32) if targets is None else targets.astype(jnp.int32)
    raw = attack._attack(models, images, labels.astype(jnp.int32), kd, eps, tg, mask)
    raw.setdefault("eps", eps)
    return finalize(attack.threat, models, images, labels.astype(jnp.int32), raw, mask)


@functools.partial(jax.jit, static_argnames=("attack", "apply"))
def _jit_call(attack, apply, params, dyn, images, labels, keys, targets, mask, eps):
  return attack._trace(apply, params, dyn, images, labels, keys, targets, mask, eps)


def finalize(threat: ThreatModel, models: Models, images, labels, raw: dict,
             mask) -> AttackResult:
  """Projects, restores untouched examples bit-exactly, re-evaluates once.

  Args:
    threat: the threat model (``raw['eps']`` may override eps per example).
    models: victim functions.
    images: (N, H, W, C) clean pixels.
    labels: (N,) int32.
    raw: attack output dict (see :class:`Attack`); ``raw['eps']`` (N,) radii.
    mask: (N,) bool, False for padding.
  """
  z0 = threat.to_space(images)
  lo, hi = threat.bounds_np()
  eps = raw["eps"]
  keep = ~(raw["clean_correct"] & mask)
  # eps is +inf for unbudgeted minimal attacks: the ball is then everything.
  z = project(raw["x"], z0, eps, threat.norm, lo, hi)
  z = jnp.where(_per_example(keep, z.ndim), z0, z)
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


def clean_info(threat: ThreatModel, keys, labels, targets, logits) -> dict:
  """Clean prediction, correctness, resolved target and probability flag.

  Args:
    threat: gives the targeted mode.
    keys: (N, ...) raw per-example key data (random targets).
    labels: (N,) int32; targets: (N,) int32 ('given' mode) or -1.
    logits: (N, K) at the clean images.
  """
  pred = jnp.argmax(logits, axis=-1).astype(jnp.int32)
  k = logits.shape[-1]
  mode = threat.targeted
  if mode == "random":
    r = jax.vmap(lambda kk: jax.random.randint(kk, (), 0, k - 1))(fold(keys, TAG_TARGET))
    target = jnp.where(r >= labels, r + 1, r).astype(jnp.int32)
  elif mode == "least_likely":
    target = jnp.argmin(logits, axis=-1).astype(jnp.int32)
  else:
    target = targets
  return {"clean_pred": pred, "clean_correct": pred == labels, "target": target,
          "prob_like": looks_like_probabilities(logits)}


# --------------------------------------------------------------------------
# Iterative attacks: per-example state machines.
# --------------------------------------------------------------------------
def select(pred: jax.Array, new, old):
  """Per-example ``where`` over matching pytrees (pred (N,) bool)."""
  return jax.tree.map(lambda a, b: jnp.where(_per_example(pred, a.ndim), a, b), new, old)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Iterative(Attack):
  """An attack written as ``init`` / ``step`` / ``output`` over per-example state.

  The state is a dict of (N, ...) arrays. Common entries: ``x0`` clean pixels,
  ``x`` current attack-space point, ``y``, ``target``, ``key`` (raw key data),
  ``eps``, ``t`` (model evaluations so far), ``done``, ``clean_pred``,
  ``clean_correct``, ``fooled`` (at the last evaluation), ``queries``,
  ``zero_grad``, ``prob_like``. ``step`` advances every unfinished example by
  one evaluation and leaves finished ones bit-identical, so running a batch
  to completion, or in chunks with finished examples swapped for fresh ones,
  gives the same per-example results.
  """
  max_evals: ClassVar[int] = 1_000_000   # safety cap on loop trips

  def init(self, images, labels, keys, eps, targets, mask) -> dict:
    n = images.shape[0]
    return {
        "x0": images, "x": self.threat.to_space(images), "y": labels.astype(jnp.int32),
        "key": keys, "eps": eps.astype(jnp.float32),
        "target": targets.astype(jnp.int32), "t": jnp.zeros((n,), jnp.int32),
        "done": ~mask, "clean_pred": jnp.full((n,), -1, jnp.int32),
        "clean_correct": jnp.zeros((n,), bool), "fooled": jnp.zeros((n,), bool),
        "queries": jnp.zeros((n,), jnp.int32), "zero_grad": jnp.zeros((n,), jnp.float32),
        "prob_like": jnp.zeros((n,), bool),
    }

  def step(self, models: Models, state: dict) -> dict:
    raise NotImplementedError

  def output(self, state: dict) -> dict:
    return {"x": state["x"], "eps": state["eps"], "clean_pred": state["clean_pred"],
            "clean_correct": state["clean_correct"], "target": state["target"],
            "queries": state["queries"], "steps": state["t"],
            "zero_grad": state["zero_grad"], "prob_like": state["prob_like"]}

  def record_clean(self, s: dict, logits: jax.Array, at: jax.Array) -> dict:
    """Stores clean prediction/correctness/target for examples where ``at``."""
    info = clean_info(self.threat, s["key"], s["y"], s["target"], logits)
    s = dict(s)
    for k in ("clean_pred", "clean_correct", "target", "prob_like"):
      s[k] = jnp.where(at, info[k], s[k])
    return s

  def _attack(self, models, images, labels, keys, eps, targets, mask):
    state = self.init(images, labels, keys, eps, targets, mask)
    state = run(self, models, state)
    return self.output(state)


def run(attack: Iterative, models: Models, state: dict, n: Optional[int] = None) -> dict:
  """Steps until every example is done, or at most ``n`` steps (a refill chunk)."""
  limit = attack.max_evals if n is None else n

  def cond(c):
    s, i = c
    return jnp.any(~s["done"]) & (i < limit)

  def body(c):
    s, i = c
    return attack.step(models, s), i + 1

  state, _ = jax.lax.while_loop(cond, body, (state, jnp.int32(0)))
  return state

