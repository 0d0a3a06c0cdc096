"""White-box gradient attacks: FGSM, BIM, PGD, MIM, DIM.

One algorithm with switches, :class:`SignGradient`: ascend a loss along the
steepest direction for the norm (sign for L-inf, unit L2 otherwise), project
onto the ball and bounds after every step; optionally a random start (PGD),
momentum on the L1-normalised gradient (MIM) and input diversity (DIM).

* FGSM  Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572
* BIM   Kurakin et al. 2017, https://arxiv.org/abs/1607.02533
* PGD   Madry et al. 2018, https://arxiv.org/abs/1706.06083
* MIM   Dong et al. 2018, https://arxiv.org/abs/1710.06081
* DIM   Xie et al. 2019, https://arxiv.org/abs/1803.06978

Defaults follow RoZ (protocol.md §1.3): step 0.15*eps; BIM runs
``int(min(eps*255+4, 1.25*eps*255))`` steps (10 at 8/255) and MIM/DIM 19
updates, all stopping per example once the victim is fooled; MIM uses mu = 1.
DIM resizes to a random side in [floor(0.9*size), size] and zero-pads back
with probability 0.5 (RoZ's intended behaviour, not its channel-size bug), per
example and per step, at static shapes.

Distance: L-inf or L2 in the threat model's space. Each step costs one
forward+backward pass of the gradient source; DIM and transfer runs add a
plain forward where the clean prediction or early stop needs it.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import jax
import jax.numpy as jnp

from jaxbench.attacks import base, keys, losses
from jaxbench.attacks.per_example import expand
from jaxbench.attacks.threat import (AttackInputError, direction, project, roz_steps,
                                     roz_steps_array)


def diversity_params(key, h: int, prob: float, resize_rate: float):
  """(apply?, new side) for one example's input-diversity draw."""
  k1, k2 = jax.random.split(key)
  rnd = jax.random.randint(k1, (), int(resize_rate * h), h + 1)
  return jax.random.uniform(k2) < prob, rnd


def diverse(x: jax.Array, apply: jax.Array, rnd: jax.Array) -> jax.Array:
  """Resizes one (H, W, C) image to side ``rnd`` and zero-pads back to H x W.

  The resized image sits at offset ((H - rnd) // 2) as torchvision's pad with
  the odd pixel on the bottom/right places it. Bilinear, no antialiasing;
  differentiable in ``x``; static output shape.
  """
  h, w = x.shape[:2]
  rh = rnd.astype(jnp.float32)
  rw = jnp.floor(rh * w / h + 0.5)
  oh, ow = jnp.floor((h - rh) / 2), jnp.floor((w - rw) / 2)
  out = jax.image.scale_and_translate(
      x, x.shape, (0, 1), jnp.stack([rh / h, rw / w]), jnp.stack([oh, ow]),
      method="linear", antialias=False)
  rows = jnp.arange(h, dtype=jnp.float32)[:, None]
  cols = jnp.arange(w, dtype=jnp.float32)[None, :]
  inside = (rows >= oh) & (rows < oh + rh) & (cols >= ow) & (cols < ow + rw)
  out = jnp.where(inside[..., None], out, 0.0)
  return jnp.where(apply, out, x)


def _random_start(key, x0, eps, norm):
  """A uniform point of the L-inf box, or of the L2 ball, around one example."""
  if norm == "linf":
    return x0 + jax.random.uniform(key, x0.shape, x0.dtype, -1.0, 1.0) * eps
  k1, k2 = jax.random.split(key)
  d = jax.random.normal(k1, x0.shape, x0.dtype)
  d = d / jnp.maximum(jnp.linalg.norm(d), 1e-12)
  r = eps * jax.random.uniform(k2, (), x0.dtype) ** (1.0 / x0.size)
  return x0 + d * jnp.where(jnp.isfinite(r), r, 0.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SignGradient(base.Iterative):
  """Iterated steepest ascent with projection (the family FGSM...DIM).

  Attributes:
    steps: number of gradient updates; None = RoZ's rule
      ``int(min(eps*255+4, 1.25*eps*255))``.
    step_size: absolute step in threat-space units; None = step_ratio * eps.
    step_ratio: step as a fraction of eps (RoZ: 0.15).
    random_start: start from a uniform point of the ball (one extra
      evaluation: the first is always at the clean image).
    momentum: mu for MIM (g <- mu*g + grad/mean|grad|), None for none. The
      mean-|grad| normaliser is RoZ's L1 norm divided by the element count, a
      per-example constant that the sign step ignores.
    diversity_prob: probability of DIM's resize-and-pad per example and step.
    resize_rate: DIM's smallest side as a fraction of the input side.
    early_stop: stop an example once the victim misclassifies it (RoZ).
    loss: 'ce', 'margin' or 'dlr' (see :func:`jaxbench.attacks.losses.attack_loss`).
  """
  steps: Optional[int] = None
  step_size: Optional[float] = None
  step_ratio: float = 0.15
  random_start: bool = False
  momentum: Optional[float] = None
  diversity_prob: float = 0.0
  resize_rate: float = 0.9
  early_stop: bool = True
  loss: str = "ce"

  name: ClassVar[str] = "sign_gradient"

  def __post_init__(self):
    super().__post_init__()
    if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 0):
      raise AttackInputError(f"{self.name}: steps={self.steps!r}: expected an int >= 0")
    if self.step_size is not None and not self.step_size >= 0:
      raise AttackInputError(f"{self.name}: step_size={self.step_size!r}: expected >= 0")
    if not self.step_ratio > 0:
      raise AttackInputError(f"{self.name}: step_ratio={self.step_ratio!r}: expected > 0")
    if not 0 <= self.diversity_prob <= 1:
      raise AttackInputError(f"{self.name}: diversity_prob={self.diversity_prob!r}: "
                             "expected a probability in [0, 1]")
    if not 0 < self.resize_rate <= 1:
      raise AttackInputError(f"{self.name}: resize_rate={self.resize_rate!r}: "
                             "expected (0, 1]")
    if self.loss not in losses.LOSSES:
      raise AttackInputError(f"{self.name}: loss={self.loss!r}: expected one of {losses.LOSSES}")

  def num_steps(self, eps: float) -> int:
    """Gradient updates at radius ``eps`` (float)."""
    return roz_steps(eps) if self.steps is None else self.steps

  def init(self, images, labels, keys, eps, targets, mask):
    s = super().init(images, labels, keys, eps, targets, mask)
    n = images.shape[0]
    steps = (roz_steps_array(s["eps"]) if self.steps is None
             else jnp.full((n,), self.steps, jnp.int32))
    s["n_evals"] = steps + int(self.random_start)
    if self.momentum is not None:
      s["m"] = jnp.zeros_like(s["x"])
    return s

  def step(self, models: base.Models, s: dict) -> dict:
    tm = self.threat
    targeted = tm.targeted is not None
    x, t = s["x"], s["t"]
    active = ~s["done"]
    z0 = tm.to_space(s["x0"])
    lo, hi = tm.bounds_np()
    di = self.diversity_prob > 0
    keys_t = keys.fold(s["key"], keys.TAG_STEP, t)

    if di:
      h = x.shape[1]
      flags, rnd = jax.vmap(
          lambda k: diversity_params(k, h, self.diversity_prob, self.resize_rate))(keys_t)
      src = lambda z: models.source(jax.vmap(diverse)(z, flags, rnd))
    else:
      flags = jnp.zeros(t.shape, bool)
      src = models.source
    logits_src, vjp = jax.vjp(src, x)

    # Victim logits at the un-transformed x: for the clean record at the
    # first evaluation and for early stopping.
    if models.same and not di:
      vlogits = logits_src
    else:
      need = active & ((t == 0) | self.early_stop)
      if models.same:
        need = need & flags
      plain = models.victim_if(need, x)
      vlogits = jnp.where(flags[:, None], plain, logits_src) if models.same else plain

    s = self.record_clean(s, vlogits, active & (t == 0))
    fooled = losses.is_adversarial(vlogits, s["y"], s["target"], targeted)
    cot = jax.grad(lambda l: jnp.sum(losses.attack_loss(
        self.loss, l, s["y"], s["target"], targeted)))(logits_src)
    (g,) = vjp(cot)

    stop = (self.not_attacked(s)
            | ((t > 0) & self.early_stop & fooled)
            | (t >= s["n_evals"]))
    eps = s["eps"]
    alpha = (jnp.full_like(eps, self.step_size) if self.step_size is not None
             else self.step_ratio * eps)
    new = {}
    if self.momentum is not None:
      flat = jnp.abs(g).reshape(g.shape[0], -1)
      gn = g / expand(jnp.maximum(jnp.mean(flat, axis=1), 1e-30), g.ndim)
      new["m"] = self.momentum * s["m"] + gn
      d = direction(new["m"], tm.norm)
    else:
      d = direction(g, tm.norm)
    x_new = project(x + expand(alpha, x.ndim) * d, z0, eps, tm.norm, lo, hi)
    if self.random_start:
      start = jax.vmap(lambda k, a, e: _random_start(k, a, e, tm.norm))(
          keys.fold(s["key"], keys.TAG_START), z0, eps)
      first = expand(t == 0, x.ndim)
      x_new = jnp.where(first, project(start, z0, eps, tm.norm, lo, hi), x_new)
      if self.momentum is not None:
        new["m"] = jnp.where(first, s["m"], new["m"])
    new["x"] = x_new
    upd = active & ~stop
    s = base.update_where(s, upd, new)
    s = self.record_zero_grad(s, g, active & (t == 0))
    # An update that reaches the step budget finishes the example now.
    return self.advance(s, active, stop | (t + 1 >= s["n_evals"]), fooled)


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class FGSM(SignGradient):
  """Fast gradient sign method: one step of size eps (L2: fast gradient method)."""
  steps: Optional[int] = 1
  step_ratio: float = 1.0
  name: ClassVar[str] = "fgsm"


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class BIM(SignGradient):
  """Basic iterative method, RoZ settings: step 0.15*eps, rule steps, early stop."""
  name: ClassVar[str] = "bim"


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class PGD(SignGradient):
  """Projected gradient descent: random start, 10 steps of 0.25*eps (2.5*eps/steps)."""
  steps: Optional[int] = 10
  step_ratio: float = 0.25
  random_start: bool = True
  early_stop: bool = False
  name: ClassVar[str] = "pgd"


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class MIM(SignGradient):
  """Momentum iterative method, RoZ settings: mu=1, 19 updates of 0.15*eps."""
  steps: Optional[int] = 19
  momentum: Optional[float] = 1.0
  name: ClassVar[str] = "mim"


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class DIM(SignGradient):
  """Diverse-inputs MIM, RoZ settings: MIM plus resize-and-pad with p=0.5."""
  steps: Optional[int] = 19
  momentum: Optional[float] = 1.0
  diversity_prob: float = 0.5
  name: ClassVar[str] = "dim"
