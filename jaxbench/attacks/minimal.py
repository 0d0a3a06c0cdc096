"""Minimal-epsilon mode: per-example binary search over a grid of radii.

RoZ's second mode (``attack_one_sample`` with ``search='binary'``, protocol.md
§1.3): for each image, binary search a sorted grid of epsilons for the
smallest one at which the attack succeeds, assuming success is monotone in
eps; report the median over images. Misclassified images get 0, images never
broken +inf (RoZ: 1e10); a median of +inf means more than half of the images
(half, for an even count) were never broken within the grid, i.e. "> max
grid". RoZ's grids: {1..9}/1000 (white-box FGSM/BIM/MIM/DIM), {1..600}/1000
transfer ({1..100}/1000 for FGSM), {1..10}/1000 NES and {1..30}/1000 SPSA.

Iterations per probe: RoZ's ``search_attack`` runs BIM, NES and SPSA with a
fixed ``steps = 20`` at every radius (MIM/DIM keep their 19/9 updates, FGSM
its one step), never the eps-dependent rule ``int(min(eps*255 + 4,
1.25*eps*255))`` of the fixed-eps mode, which would give 0 updates at eps
0.001-0.003 and 157 at 0.6. So an inner attack that leaves its step count to
that rule (``steps=None``, also inside a transfer attack) runs ``steps`` (20)
updates per probe here.

The search is a state machine over the inner attack's state: when an
example's inner run finishes, its result is checked with one victim forward,
its interval is halved and the inner state restarts at the new radius, all
per example, so examples needing fewer rounds leave early (and survivor refill
applies). The recursion is RoZ's: probe index (lo + hi) // 2 of [lo, hi);
success -> [lo, mid), failure -> [mid + 1, hi); the answer is the last success.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from jaxbench.attacks import base, losses
from jaxbench.attacks.per_example import select
from jaxbench.attacks.threat import AttackInputError, project

ROZ_WHITE_GRID = tuple(i / 1000 for i in range(1, 10))
ROZ_SEARCH_STEPS = 20


def fixed_steps(attack: base.Attack, steps: int) -> base.Attack:
  """``attack`` with ``steps`` updates where it (or the attack it wraps, for
  transfer) would otherwise follow the eps-dependent rule (``steps=None``).

  Args:
    attack: any attack; returned unchanged when no step count is left to the rule.
    steps: updates per probe (int >= 1).

  Returns:
    the attack with the rule replaced by ``steps``.
  """
  names = {f.name for f in dataclasses.fields(attack)}
  if "attack" in names and isinstance(attack.attack, base.Attack):
    inner = fixed_steps(attack.attack, steps)
    if inner is not attack.attack:
      attack = dataclasses.replace(attack, attack=inner)
  if "steps" in names and attack.steps is None:
    attack = dataclasses.replace(attack, steps=steps)
  return attack


@dataclasses.dataclass(frozen=True, kw_only=True)
class MinEps(base.Iterative):
  """Binary search for each example's minimal successful eps.

  Attributes:
    attack: an iterative attack (its eps is replaced per example).
    grid: sorted radii in the threat space (RoZ white-box: 0.001 .. 0.009).
    steps: updates per probe for an inner attack whose step count would follow
      the eps-dependent rule (``steps=None``; RoZ's search: 20 at every radius).
  """
  attack: base.Iterative = None
  grid: tuple = ROZ_WHITE_GRID
  steps: int = ROZ_SEARCH_STEPS

  name: ClassVar[str] = "min_eps"
  minimal: ClassVar[bool] = True

  def __post_init__(self):
    if not isinstance(self.attack, base.Iterative):
      raise AttackInputError(f"min_eps: attack must be an iterative attack, got "
                             f"{type(self.attack).__name__}")
    grid = tuple(float(g) for g in self.grid)
    if not grid or any(g < 0 for g in grid) or list(grid) != sorted(grid):
      raise AttackInputError(f"min_eps: grid={self.grid!r}: expected sorted radii >= 0")
    if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
      raise AttackInputError(f"min_eps: steps={self.steps!r}: expected an int >= 1")
    object.__setattr__(self, "grid", grid)
    object.__setattr__(self, "attack", fixed_steps(self.attack, self.steps).with_threat(
        dataclasses.replace(self.threat, eps=grid[-1])))
    super().__post_init__()

  @property
  def needs_surrogate(self) -> bool:
    return self.attack.needs_surrogate

  def with_surrogates(self, bind):
    return dataclasses.replace(self, attack=self.attack.with_surrogates(bind))

  def _split(self):
    st, dyn = self.attack._split()
    return dataclasses.replace(self, attack=st), dyn

  def _merge(self, dyn):
    return dataclasses.replace(self, attack=self.attack._merge(dyn))

  def _models(self, apply, params, dyn):
    return self.attack._models(apply, params, dyn)

  def init(self, images, labels, keys, eps, targets, mask):
    n = images.shape[0]
    g = len(self.grid)
    lo = jnp.zeros((n,), jnp.int32)
    hi = jnp.full((n,), g, jnp.int32)
    grid = jnp.asarray(self.grid, jnp.float32)
    inner = self.attack.init(images, labels, keys, grid[(lo + hi) // 2], targets, mask)
    s = super().init(images, labels, keys, eps, targets, mask)
    s.update(inner=inner, lo=lo, hi=hi, best=jnp.full((n,), -1, jnp.int32),
             rounds=jnp.zeros((n,), jnp.int32), best_x=s["x"])
    return s

  def step(self, models, s):
    grid = jnp.asarray(self.grid, jnp.float32)
    active = ~s["done"]
    inner = self.attack.step(models, s["inner"])
    newly = active & inner["done"]
    cc = inner["clean_correct"]
    # One victim forward settles the finished probes.
    logits = models.victim_if(newly, inner["x"])
    adv = losses.is_adversarial(logits, inner["y"], inner["target"],
                              self.threat.targeted is not None)
    z0 = self.threat.to_space(s["x0"])
    xin = project(inner["x"], z0, inner["eps"], self.threat.norm,
                       *self.threat.bounds_np())
    succ = newly & cc & adv
    mid = (s["lo"] + s["hi"]) // 2
    best = jnp.where(succ, mid, s["best"])
    best_x = select(succ, xin, s["best_x"])
    hi = jnp.where(succ, mid, s["hi"])
    lo = jnp.where(newly & ~succ, mid + 1, s["lo"])
    finished = newly & (~cc | (lo >= hi))
    restart = newly & ~finished

    s = dict(s)
    first = newly & (s["rounds"] == 0)
    for k in ("clean_pred", "clean_correct", "prob_like", "zero_grad", "target"):
      s[k] = jnp.where(first, inner[k], s[k])
    s["queries"] = s["queries"] + jnp.where(newly, inner["queries"] + 1, 0)
    # The same per-example key every round: a random target stays the same.
    fresh = self.attack.init(inner["x0"], inner["y"], s["key"],
                             grid[jnp.clip((lo + hi) // 2, 0, len(self.grid) - 1)],
                             s["target"], jnp.ones_like(active))
    s["inner"] = select(restart, fresh, inner)
    s.update(lo=lo, hi=hi, best=best, best_x=best_x,
             rounds=s["rounds"] + restart.astype(jnp.int32))
    s["done"] = s["done"] | finished
    s["fooled"] = jnp.where(newly, succ, s["fooled"])
    s["t"] = s["t"] + active.astype(jnp.int32)
    return s

  def output(self, s):
    grid = jnp.asarray(self.grid, jnp.float32)
    out = super().output(s)
    found = s["best"] >= 0
    z0 = self.threat.to_space(s["x0"])
    out["x"] = select(found, s["best_x"], z0)
    out["eps"] = jnp.where(found, grid[jnp.maximum(s["best"], 0)], grid[-1])
    min_eps = jnp.where(found, grid[jnp.maximum(s["best"], 0)], jnp.inf)
    out["diag_min_eps"] = jnp.where(s["clean_correct"], min_eps, 0.0)
    out["diag_rounds"] = s["rounds"] + 1
    return out


@base.ATTACKS.register("min_eps")
def make_min_eps(attack="bim(steps=20)", grid=ROZ_WHITE_GRID, **kwargs) -> MinEps:
  """``min_eps(attack='bim(steps=20)', grid=(...), steps=20, ...)``: ``attack`` is a
  spec string or an iterative attack; ``grid`` any sequence of radii."""
  threat = base.pop_threat(kwargs)
  return MinEps(threat=threat, attack=base.build(attack), grid=tuple(grid), **kwargs)
