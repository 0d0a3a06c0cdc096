"""Auto-PGD (Croce & Hein 2020, https://arxiv.org/abs/2003.01690).

APGD-CE ascends cross-entropy, APGD-DLR the difference-of-logits ratio and
APGD-T the targeted DLR towards each of the clean image's top runner-up
classes in turn. The step size starts at 2*eps and halves at checkpoints
p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06) (as
fractions of the iterations) when fewer than rho = 75% of the steps since the
last checkpoint raised the loss, or when the previous checkpoint did not halve
and the best loss has not improved since; a halving restarts from the best
point. Updates use momentum 0.75 (1.0 on the first).

Distance: L-inf or L2 in the threat model's space. Every example keeps its own
iteration counter, checkpoint window and run index (restart or target class),
so examples stop as soon as they are fooled and survivor refill applies.
Cost: one forward+backward per iteration, plus one at the clean image and one
at each run's random start.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jaxbench.attacks import base, keys, losses
from jaxbench.attacks.per_example import expand, select
from jaxbench.attacks.threat import AttackInputError, direction, project

APGD_LOSSES = ("ce", "dlr", "ce_t", "dlr_t")


def _start(key, x0, eps, norm):
  """APGD's random start: eps * t / ||t|| with t uniform (L-inf) or normal (L2)."""
  if norm == "linf":
    t = jax.random.uniform(key, x0.shape, x0.dtype, -1.0, 1.0)
    return x0 + eps * t / jnp.maximum(jnp.max(jnp.abs(t)), 1e-12)
  t = jax.random.normal(key, x0.shape, x0.dtype)
  return x0 + eps * t / (jnp.linalg.norm(t) + 1e-12)


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class APGD(base.Iterative):
  """APGD with AutoAttack's settings.

  Attributes:
    steps: iterations per run (AutoAttack: 100).
    loss: 'ce', 'dlr' (untargeted) or 'ce_t', 'dlr_t' (targeted at runner-up
      classes; success is still "label no longer predicted").
    n_restarts: random restarts (per target class for targeted losses).
    n_target_classes: runner-up classes tried by the targeted losses
      (AutoAttack: 9), capped at K - 1 and recorded.
    rho: checkpoint success-fraction threshold.
  """
  steps: int = 100
  loss: str = "ce"
  n_restarts: int = 1
  n_target_classes: int = 9
  rho: float = 0.75

  name: ClassVar[str] = "apgd"

  def __post_init__(self):
    super().__post_init__()
    if self.loss not in APGD_LOSSES:
      raise AttackInputError(f"{self.name}: loss={self.loss!r}: expected one of {APGD_LOSSES}")
    if self.threat.targeted is not None:
      raise AttackInputError(f"{self.name}: targeted modes are chosen by the loss "
                             "('ce_t', 'dlr_t'); threat.targeted must be None")
    if self.steps < 1 or self.n_restarts < 1 or self.n_target_classes < 1:
      raise AttackInputError(f"{self.name}: steps, n_restarts, n_target_classes >= 1")

  @property
  def targeted_loss(self) -> bool:
    """Whether the loss is targeted at runner-up classes ('ce_t', 'dlr_t')."""
    return self.loss.endswith("_t")

  def _schedule(self):
    """(first checkpoint, smallest window, window decrement) in iterations."""
    n = self.steps
    return max(int(0.22 * n), 1), max(int(0.06 * n), 1), max(int(0.03 * n), 1)

  def init(self, images, labels, keys, eps, targets, mask):
    s = super().init(images, labels, keys, eps, targets, mask)
    n = images.shape[0]
    zf = jnp.zeros((n,), jnp.float32)
    zi = jnp.zeros((n,), jnp.int32)
    s.update(x_old=s["x"], g=jnp.zeros_like(s["x"]), x_best=s["x"],
             g_best=jnp.zeros_like(s["x"]), l_best=zf, step=zf, c3=zi, k=zi,
             n_incr=zi, prev_l=zf, l_best_last=zf, reduced_last=jnp.zeros((n,), bool),
             i=jnp.full((n,), -1, jnp.int32), r=zi,
             cand=jnp.zeros((n, self.n_target_classes + 1), jnp.int32), n_tc=zi)
    return s

  def _loss(self, logits, y, tgt):
    """(N,) loss to ascend from logits (N, K), labels and targets (N,)."""
    if self.loss == "ce":
      return losses.cross_entropy(logits, y)
    if self.loss == "dlr":
      return -losses.dlr(logits, y)
    if self.loss == "ce_t":
      return -losses.cross_entropy(logits, tgt)
    return -losses.dlr_targeted(logits, y, tgt)

  def step(self, models: base.Models, s: dict) -> dict:
    tm = self.threat
    x, t, i = s["x"], s["t"], s["i"]
    active = ~s["done"]
    z0 = tm.to_space(s["x0"])
    lo, hi = tm.bounds_np()
    eps = s["eps"]
    pe = lambda v: expand(v, x.ndim)
    n_iter_2, n_iter_min, size_decr = self._schedule()
    logits, vjp = jax.vjp(models.victim, x)
    k_cls = logits.shape[-1]
    # AutoAttack's 9 target classes assume >= 10 classes: cap at K - 1.
    n_tc = min(self.n_target_classes, k_cls - 1)
    n_runs = self.n_restarts * (n_tc if self.targeted_loss else 1)
    if self.targeted_loss and (n_tc < 1 or (self.loss == "dlr_t" and k_cls < 4)):
      raise AttackInputError(f"{self.name}: {k_cls} classes are too few for loss "
                             f"{self.loss!r} (targeted DLR needs >= 4)")
    first = active & (t == 0)
    s = self.record_clean(s, logits, first)
    top = jax.lax.top_k(logits, n_tc + 1)[1].astype(jnp.int32)
    top = jnp.pad(top, ((0, 0), (0, self.n_target_classes - n_tc)), mode="edge")
    cand = jnp.where(first[:, None], top, s["cand"])
    tgt = jnp.take_along_axis(
        cand, jnp.minimum(s["r"] // self.n_restarts + 1, n_tc)[:, None], axis=1)[:, 0]
    loss = self._loss(logits, s["y"], tgt)
    cot = jax.grad(lambda l: jnp.sum(self._loss(l, s["y"], tgt)))(logits)
    (g,) = vjp(cot)
    fooled = (t > 0) & (jnp.argmax(logits, -1) != s["y"])

    # 1) bookkeeping of the evaluation just made.
    at_start = (t > 0) & (i == -1)
    after = (t > 0) & (i >= 0)
    l_best = jnp.where(at_start, loss, s["l_best"])
    x_best = select(at_start, x, s["x_best"])
    g_best = select(at_start, g, s["g_best"])
    improve = after & (loss > l_best)
    l_best = jnp.where(improve, loss, l_best)
    x_best = select(improve, x, x_best)
    g_best = select(improve, g, g_best)
    n_incr = jnp.where(after, s["n_incr"] + (loss > s["prev_l"]), 0)
    prev_l = jnp.where(after, loss, 0.0)     # AutoAttack compares step 0 with 0
    c3 = jnp.where(after, s["c3"] + 1, 0)
    k = jnp.where(at_start, n_iter_2, s["k"])
    step = jnp.where(at_start, 2.0 * eps, s["step"])
    reduced_last = jnp.where(at_start, False, s["reduced_last"])
    l_best_last = jnp.where(at_start, l_best, s["l_best_last"])
    at_ck = after & (c3 == k)
    osc = n_incr <= k * self.rho
    no_impr = ~reduced_last & (l_best_last >= l_best)
    halve = at_ck & (osc | no_impr)
    step = jnp.where(halve, step / 2, step)
    x_cur = select(halve, x_best, x)
    g_cur = select(halve, g_best, g)
    reduced_last = jnp.where(at_ck, osc | no_impr, reduced_last)
    l_best_last = jnp.where(at_ck, l_best, l_best_last)
    n_incr = jnp.where(at_ck, 0, n_incr)
    c3 = jnp.where(at_ck, 0, c3)
    k = jnp.where(at_ck, jnp.maximum(k - size_decr, n_iter_min), k)
    i_next = jnp.where(after, i + 1, jnp.where(at_start, 0, i))

    # 2) what comes next: a new run (random start), or the update i_next.
    run_over = after & (i_next >= self.steps)
    r_next = s["r"] + run_over.astype(jnp.int32)
    new_run = (t == 0) | run_over
    out_of_runs = run_over & (r_next >= n_runs)
    start_keys = keys.fold(s["key"], keys.TAG_START, r_next)
    start = jax.vmap(lambda kk, a, e: _start(kk, a, e, tm.norm))(start_keys, z0, eps)
    start = jnp.clip(start, lo, hi)
    a = jnp.where(i_next == 0, 1.0, 0.75)
    grad2 = x_cur - s["x_old"]
    x1 = project(x_cur + pe(step) * direction(g_cur, tm.norm), z0, eps, tm.norm, lo, hi)
    x1 = project(x_cur + (x1 - x_cur) * pe(a) + grad2 * pe(1 - a), z0, eps, tm.norm, lo, hi)

    stop = self.not_attacked(s) | fooled | out_of_runs
    upd = active & ~stop
    nxt = {
        "x": select(new_run, start, x1),
        "x_old": select(new_run, s["x_old"], x_cur),
        "g": g_cur, "x_best": x_best, "g_best": g_best, "l_best": l_best,
        "step": step, "c3": c3, "k": k, "n_incr": n_incr, "prev_l": prev_l,
        "l_best_last": l_best_last, "reduced_last": reduced_last,
        "i": jnp.where(new_run, -1, i_next), "r": jnp.where(t == 0, 0, r_next),
        "cand": cand,
    }
    s = base.update_where(s, upd, nxt)
    # A fooled example keeps the point that fooled it; an exhausted one its best.
    s["x"] = select(active & out_of_runs & ~fooled, x_best, s["x"])
    s["cand"] = jnp.where(first[:, None], cand, s["cand"])
    s["n_tc"] = jnp.where(first, n_tc if self.targeted_loss else 0, s["n_tc"])
    s = self.record_zero_grad(s, g, first)
    return self.advance(s, active, stop, fooled)

  def output(self, s):
    out = super().output(s)
    out["diag_runs"] = s["r"] + 1
    out["diag_n_target_classes"] = s["n_tc"]
    return out


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class APGDCE(APGD):
  """APGD on cross-entropy (AutoAttack's first stage)."""
  loss: str = "ce"
  name: ClassVar[str] = "apgd_ce"


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class APGDT(APGD):
  """APGD on the targeted DLR loss over 9 runner-up classes (AutoAttack's second stage)."""
  loss: str = "dlr_t"
  name: ClassVar[str] = "apgd_t"
