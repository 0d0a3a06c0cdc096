"""Score-based black-box attacks: NES, SPSA and Square (L-inf).

Only ``apply``'s outputs are used, never its gradients; every model evaluation
of an example counts as one query (``AttackResult.queries``).

* NES (Ilyas et al. 2018, https://arxiv.org/abs/1804.08598): q antithetic
  Gaussian directions u, sigma = 0.001, on the margin z_y - max_{j!=y} z_j;
  g = sum_i (m(x + sigma u_i) - m(x - sigma u_i)) u_i / (2 q sigma); then a
  signed step of 0.15*eps and projection, for RoZ's BIM iteration count,
  stopping per example once fooled (protocol.md §1.3).
* SPSA (Uesato et al. 2018, https://arxiv.org/abs/1802.05666): the same with
  Rademacher directions u in {-1, +1}, as RoZ runs it.
* Square (Andriushchenko et al. 2020, https://arxiv.org/abs/1912.00049):
  random search over square patches of +-eps, the patch side following the
  paper's schedule; a proposal is kept when it lowers the margin.

Directions are drawn from (example key, step, direction index), so an
estimate does not depend on the batch or on ``chunk``, the number of
directions evaluated together: memory stays bounded at any q.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar, Optional

import jax
import jax.numpy as jnp

from jaxbench.attacks import base, keys, losses
from jaxbench.attacks.per_example import expand, select
from jaxbench.attacks.threat import AttackInputError, project, roz_steps_array

DISTRIBUTIONS = ("gaussian", "rademacher")


def sample_direction(key, j, shape, distribution: str, dtype=jnp.float32):
  """Direction j of one example: N(0, I) or uniform {-1, +1}^d.

  Args:
    key: the example's typed key (this step's).
    j: direction index (int or int scalar array).
    shape: the example's shape, e.g. (H, W, C).
    distribution: 'gaussian' or 'rademacher'.
    dtype: float dtype.

  Returns:
    an array of ``shape``.
  """
  k = jax.random.fold_in(key, j)
  if distribution == "gaussian":
    return jax.random.normal(k, shape, dtype)
  return jax.random.rademacher(k, shape, dtype)


def estimate_gradient(loss_fn: Callable, x: jax.Array, keys, q: int, sigma: float,
                      distribution: str = "gaussian", chunk: int = 20) -> jax.Array:
  """Antithetic finite-difference gradient estimate, directions in chunks.

  Args:
    loss_fn: (N, C, ...) -> (N, C) per-example losses of C perturbed copies.
    x: (N, ...) points.
    keys: (N,) typed per-example keys.
    q: directions per example (2q evaluations).
    sigma: finite-difference scale.
    distribution: 'gaussian' (NES) or 'rademacher' (SPSA).
    chunk: directions evaluated per model call (per example).

  Returns:
    (N, ...) estimate of d loss / dx.
  """
  if distribution not in DISTRIBUTIONS:
    raise AttackInputError(f"distribution={distribution!r}: expected {DISTRIBUTIONS}")
  c = max(1, min(chunk, q))
  nchunk = -(-q // c)
  shape = x.shape[1:]

  def body(g, ci):
    j = ci * c + jnp.arange(c)
    u = jax.vmap(lambda k: jax.vmap(
        lambda jj: sample_direction(k, jj, shape, distribution, x.dtype))(j))(keys)
    xs = jnp.concatenate([x[:, None] + sigma * u, x[:, None] - sigma * u], axis=1)
    l = loss_fn(xs)                                      # (N, 2C)
    diff = (l[:, :c] - l[:, c:]) * (j < q)[None]
    return g + jnp.einsum("nc,nc...->n...", diff, u), None

  g, _ = jax.lax.scan(body, jnp.zeros_like(x), jnp.arange(nchunk))
  return g / (2 * q * sigma)


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class NES(base.Iterative):
  """Score-based signed-gradient attack with estimated gradients (RoZ's NES).

  Attributes:
    q: directions per step (2q queries per step, plus one success check).
    sigma: finite-difference scale (RoZ: 0.001, in threat-space units).
    steps: updates; None = RoZ's BIM rule (10 at 8/255).
    step_ratio: step as a fraction of eps (RoZ: 0.15).
    loss: 'margin' (RoZ), 'ce' or 'dlr'.
    chunk: directions per model call per example.
    early_stop: stop once fooled (RoZ checks after every step).
  """
  q: int = 100
  sigma: float = 0.001
  steps: Optional[int] = None
  step_ratio: float = 0.15
  loss: str = "margin"
  chunk: int = 20
  early_stop: bool = True

  name: ClassVar[str] = "nes"
  distribution: ClassVar[str] = "gaussian"
  score_based: ClassVar[bool] = True

  def __post_init__(self):
    super().__post_init__()
    if self.q < 1 or self.chunk < 1 or not self.sigma > 0:
      raise AttackInputError(f"{self.name}: expected q >= 1, chunk >= 1, sigma > 0")
    if self.steps is not None and self.steps < 0:
      raise AttackInputError(f"{self.name}: steps={self.steps!r}: expected >= 0")
    if self.loss not in losses.LOSSES:
      raise AttackInputError(f"{self.name}: loss={self.loss!r}: expected one of {losses.LOSSES}")

  def init(self, images, labels, keys, eps, targets, mask):
    s = super().init(images, labels, keys, eps, targets, mask)
    n = images.shape[0]
    s["n_steps"] = (roz_steps_array(s["eps"]) if self.steps is None
                    else jnp.full((n,), self.steps, jnp.int32))
    return s

  def step(self, models: base.Models, s: dict) -> dict:
    tm = self.threat
    targeted = tm.targeted is not None
    x, t = s["x"], s["t"]
    active = ~s["done"]
    z0 = tm.to_space(s["x0"])
    lo, hi = tm.bounds_np()
    logits = models.victim(x)
    s = self.record_clean(s, logits, active & (t == 0))
    fooled = losses.is_adversarial(logits, s["y"], s["target"], targeted)
    stop = (self.not_attacked(s) | ((t > 0) & self.early_stop & fooled)
            | (t >= s["n_steps"]))
    upd = active & ~stop
    y, tg = s["y"], s["target"]

    def loss_fn(xs):
      nn, cc = xs.shape[:2]
      l = models.victim(xs.reshape((nn * cc,) + xs.shape[2:])).reshape(nn, cc, -1)
      return jax.vmap(lambda li: losses.attack_loss(self.loss, li, y, tg, targeted),
                      in_axes=1, out_axes=1)(l)

    step_keys = keys.fold(s["key"], keys.TAG_STEP, t)
    g = jax.lax.cond(
        jnp.any(upd),
        lambda: estimate_gradient(loss_fn, x, step_keys, self.q, self.sigma,
                                  self.distribution, self.chunk),
        lambda: jnp.zeros_like(x))
    alpha = expand(self.step_ratio * s["eps"], x.ndim)
    x_new = project(x + alpha * jnp.sign(g), z0, s["eps"], tm.norm, lo, hi)
    s = base.update_where(s, upd, {"x": x_new})
    # Each update costs 2q finite-difference queries besides the success check.
    return self.advance(s, active, stop, fooled, 2 * self.q * upd.astype(jnp.int32))


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class SPSA(NES):
  """RoZ's SPSA: NES with Rademacher directions."""
  name: ClassVar[str] = "spsa"
  distribution: ClassVar[str] = "rademacher"


def p_schedule(p_init: float, i: jax.Array, n_queries: int) -> jax.Array:
  """Square attack's fraction of pixels changed at iteration i (the paper's
  piecewise schedule, rescaled to a budget of n_queries)."""
  it = (i * 10000) // n_queries
  thresholds = jnp.asarray([10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000])
  halvings = jnp.sum(it[..., None] > thresholds, axis=-1)
  return p_init / (2.0 ** halvings)


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Square(base.Iterative):
  """Square attack, L-inf.

  Attributes:
    n_queries: proposals per example (including the initial stripes).
    p_init: initial fraction of pixels in the square (0.8 as AutoAttack).
  """
  n_queries: int = 5000
  p_init: float = 0.8

  name: ClassVar[str] = "square"
  norms: ClassVar[tuple] = ("linf",)
  score_based: ClassVar[bool] = True

  def __post_init__(self):
    super().__post_init__()
    if self.n_queries < 1 or not 0 < self.p_init <= 1:
      raise AttackInputError("square: expected n_queries >= 1 and 0 < p_init <= 1")

  def init(self, images, labels, keys, eps, targets, mask):
    s = super().init(images, labels, keys, eps, targets, mask)
    s["cand"] = s["x"]
    s["m_best"] = jnp.full((images.shape[0],), jnp.inf, jnp.float32)
    return s

  def _margin(self, logits, s):
    """(N,) margin to minimise: the label's, or minus the target's."""
    if self.threat.targeted is not None:
      return -losses.margin(logits, s["target"])
    return losses.margin(logits, s["y"])

  def step(self, models: base.Models, s: dict) -> dict:
    tm = self.threat
    targeted = tm.targeted is not None
    t = s["t"]
    active = ~s["done"]
    z0 = tm.to_space(s["x0"])
    lo, hi = tm.bounds_np()
    n, h, w, ch = z0.shape
    eps = expand(s["eps"], z0.ndim)
    logits = models.victim(s["cand"])
    first = active & (t == 0)
    s = self.record_clean(s, logits, first)
    m = self._margin(logits, s)
    accept = active & (t > 0) & (m < s["m_best"])
    x_best = select(accept, s["cand"], s["x"])
    m_best = jnp.where(accept, m, s["m_best"])
    fooled = (t > 0) & losses.is_adversarial(logits, s["y"], s["target"], targeted)
    fooled = fooled & accept | (s["fooled"] & (t > 0))
    stop = self.not_attacked(s) | fooled | (t >= self.n_queries)

    step_keys = keys.fold(s["key"], keys.TAG_STEP, t)
    # The first candidate: vertical stripes of +-eps (one sign per column/channel).
    stripes = jax.vmap(lambda k: jax.random.rademacher(k, (1, w, ch), z0.dtype))(step_keys)
    init_cand = jnp.clip(z0 + eps * stripes, lo, hi)
    # Later candidates: one square of side s_i with a fresh sign per channel.
    i = jnp.maximum(t - 1, 0)
    p = p_schedule(self.p_init, i, self.n_queries)
    side = jnp.clip(jnp.round(jnp.sqrt(p * h * w)), 1, h - 1).astype(jnp.int32)

    def square(k, sd):
      k1, k2, k3 = jax.random.split(k, 3)
      # Every position, the last row/column included (AutoAttack's
      # randint(0, h - s) never places a square there).
      r0 = jax.random.randint(k1, (), 0, h - sd + 1)
      c0 = jax.random.randint(k2, (), 0, w - sd + 1)
      sign = jax.random.rademacher(k3, (ch,), z0.dtype)
      rows = jnp.arange(h)[:, None]
      cols = jnp.arange(w)[None, :]
      win = (rows >= r0) & (rows < r0 + sd) & (cols >= c0) & (cols < c0 + sd)
      return win, sign

    win, sign = jax.vmap(square)(step_keys, side)
    delta = jnp.where(win[..., None], eps * sign[:, None, None, :], x_best - z0)
    prop = jnp.clip(z0 + delta, lo, hi)
    cand = select(t == 0, init_cand, prop)

    upd = active & ~stop
    s = base.update_where(s, active, {
        "x": x_best, "m_best": jnp.where(t == 0, jnp.inf, m_best)})
    s = base.update_where(s, upd, {"cand": cand})
    return self.advance(s, active, stop, fooled)
