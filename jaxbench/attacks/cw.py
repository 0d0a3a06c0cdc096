"""Carlini & Wagner L2 (https://arxiv.org/abs/1608.04644).

Minimises ``||x - x0||_2^2 + c * max(z_y - max_{j!=y} z_j, -kappa)`` (targeted:
``max(max_{j!=t} z_j - z_t, -kappa)``) over ``x = lo + (hi - lo) * (tanh(w)
+ 1) / 2``, which keeps x inside the bounds without clipping, with optax Adam;
a per-example binary search over c keeps the smallest adversarial L2 found.

Distance: L2 in the threat model's space. A minimal-perturbation attack: with
``eps`` set, an example counts as broken only when its best L2 is <= eps (it
is returned unperturbed otherwise); ``eps=None`` reports pure minimal norms in
``diagnostics['min_eps']``. Costs ``binary_steps * steps`` forward+backward
passes plus one clean forward; no per-example early stop (every c runs its
full schedule, as in the original), so survivor refill does not apply.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax

from jaxbench.attacks import base, losses
from jaxbench.attacks.per_example import select
from jaxbench.attacks.threat import AttackInputError, ThreatModel


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class CarliniWagner(base.Attack):
  """C&W L2.

  Attributes:
    c_init: first trade-off constant.
    binary_steps: binary-search rounds over c (per example).
    steps: Adam steps per round (restarting from the clean image).
    lr: Adam learning rate in tanh-space.
    confidence: kappa, the margin the logits must clear.
  """
  threat: ThreatModel = ThreatModel(norm="l2", eps=None)
  c_init: float = 0.1
  binary_steps: int = 5
  steps: int = 100
  lr: float = 0.01
  confidence: float = 0.0

  name: ClassVar[str] = "cw"
  minimal: ClassVar[bool] = True
  norms: ClassVar[tuple] = ("l2",)

  def __post_init__(self):
    super().__post_init__()
    if self.binary_steps < 1 or self.steps < 1:
      raise AttackInputError("cw: binary_steps and steps must be >= 1")
    if not (self.c_init > 0 and self.lr > 0 and self.confidence >= 0):
      raise AttackInputError("cw: expected c_init > 0, lr > 0, confidence >= 0")

  def _attack(self, models, images, labels, keys, eps, targets, mask):
    tm = self.threat
    targeted = tm.targeted is not None
    z0 = tm.to_space(images)
    lo, hi = (jnp.asarray(b) for b in tm.bounds_np())
    n = images.shape[0]
    clean = base.clean_info(tm, keys, labels, targets, models.victim(z0))
    active = mask & clean["clean_correct"]
    cls = clean["target"] if targeted else labels

    def to_z(w):
      return lo + (hi - lo) * (jnp.tanh(w) + 1) / 2

    unit = jnp.clip(2 * (z0 - lo) / (hi - lo) - 1, -1 + 1e-6, 1 - 1e-6)
    w0 = jnp.arctanh(unit)
    opt = optax.adam(self.lr)

    def objective(w, c):
      z = to_z(w)
      logits = models.victim(z)
      d2 = jnp.sum((z - z0).reshape(n, -1) ** 2, axis=1)
      real = jnp.take_along_axis(logits, cls[:, None], axis=1)[:, 0]
      other = losses.other_max(logits, cls)
      f = (other - real) if targeted else (real - other)
      f = jnp.maximum(f, -self.confidence)
      return jnp.sum(d2 + c * f), (logits, d2, z)

    grad_fn = jax.grad(objective, has_aux=True)

    def inner(_, carry):
      w, ost, c, best_l2, best_z, found = carry
      g, (logits, d2, z) = grad_fn(w, c)
      adv = losses.is_adversarial(logits, labels, cls, targeted) & active
      l2 = jnp.sqrt(d2)
      better = adv & (l2 < best_l2)
      best_l2 = jnp.where(better, l2, best_l2)
      best_z = select(better, z, best_z)
      upd, ost = opt.update(g, ost)
      return optax.apply_updates(w, upd), ost, c, best_l2, best_z, found | adv

    def outer(_, carry):
      c, c_lo, c_hi, best_l2, best_z = carry
      found = jnp.zeros((n,), bool)
      _, _, _, best_l2, best_z, found = jax.lax.fori_loop(
          0, self.steps, inner, (w0, opt.init(w0), c, best_l2, best_z, found))
      c_hi = jnp.where(found, jnp.minimum(c_hi, c), c_hi)
      c_lo = jnp.where(found, c_lo, jnp.maximum(c_lo, c))
      c = jnp.where(found | (c_hi < 1e9), (c_lo + c_hi) / 2, c * 10)
      return c, c_lo, c_hi, best_l2, best_z

    init = (jnp.full((n,), self.c_init, jnp.float32), jnp.zeros((n,), jnp.float32),
            jnp.full((n,), 1e10, jnp.float32), jnp.full((n,), jnp.inf, jnp.float32), z0)
    c, _, _, best_l2, best_z = jax.lax.fori_loop(0, self.binary_steps, outer, init)
    ok = jnp.isfinite(best_l2) & (best_l2 <= eps)
    x = select(ok, best_z, z0)
    min_eps = jnp.where(clean["clean_correct"], best_l2, 0.0)
    evals = 1 + self.binary_steps * self.steps
    return {"x": x, **clean, "clean_correct": clean["clean_correct"],
            "queries": jnp.where(active, evals, 1).astype(jnp.int32),
            "steps": jnp.where(active, evals - 1, 0).astype(jnp.int32),
            "diag_min_eps": min_eps, "diag_c": c}
