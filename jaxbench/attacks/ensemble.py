"""Worst case over a list of attacks (AutoAttack's cascade).

Stage by stage, each attack runs only on the examples still robust after the
previous stages (a mask at static shapes: finished examples are "done" from
the start and cost nothing once a stage's loop has no work left). An example
counts as broken by a stage when that stage's projected output, re-evaluated
once, is adversarial; its image is then kept. Robust accuracy after every
stage is recorded per example in ``diagnostics['robust_stage']`` (N, S).

AutoAttack 'standard' (Croce & Hein 2020, https://arxiv.org/abs/2003.01690):
APGD-CE, APGD-T (targeted DLR, 9 target classes) and Square (5000 queries),
all at the ensemble's threat model. FAB-T is not included; for L2 Square is
omitted (L-inf only here), and the row records the stages actually run.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jaxbench import registry
from jaxbench.attacks import apgd, base, blackbox, keys, losses
from jaxbench.attacks.per_example import select
from jaxbench.attacks.threat import AttackInputError, ThreatModel, project, threat_kwargs


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ensemble(base.Attack):
  """Worst case over ``attacks`` (each gets this ensemble's threat model)."""
  attacks: tuple = ()

  name: ClassVar[str] = "ensemble"

  def __post_init__(self):
    super().__post_init__()
    if not self.attacks:
      raise AttackInputError(f"{self.name}: attacks=() is empty")
    for a in self.attacks:
      if not isinstance(a, base.Attack):
        raise AttackInputError(f"{self.name}: {a!r} is not an attack")
    synced = tuple(a.with_threat(self.threat) for a in self.attacks)
    object.__setattr__(self, "attacks", synced)

  @property
  def needs_surrogate(self) -> bool:
    return any(a.needs_surrogate for a in self.attacks)

  def with_surrogates(self, bind):
    return dataclasses.replace(self, attacks=tuple(a.with_surrogates(bind)
                                                   for a in self.attacks))

  def stage_names(self) -> list[str]:
    """Spec strings of the stages, in order (threat settings omitted)."""
    return [a.spec(threat=False) for a in self.attacks]

  def _split(self):
    parts = [a._split() for a in self.attacks]
    return (dataclasses.replace(self, attacks=tuple(p[0] for p in parts)),
            tuple(p[1] for p in parts))

  def _merge(self, dyn):
    return dataclasses.replace(
        self, attacks=tuple(a._merge(d) for a, d in zip(self.attacks, dyn)))

  def _attack(self, models, images, labels, key_raw, eps, targets, mask):
    tm = self.threat
    targeted = tm.targeted is not None
    z0 = tm.to_space(images)
    lo, hi = tm.bounds_np()
    clean = base.clean_info(tm, key_raw, labels, targets, models.victim(z0))
    robust = mask & clean["clean_correct"]
    x = z0
    queries = mask.astype(jnp.int32)
    stages = []
    for idx, a in enumerate(self.attacks):
      sm = a._models(models.apply, models.params, None)   # a transfer stage brings its surrogate
      kd = jax.random.key_data(keys.fold(key_raw, idx))
      raw = a._attack(sm, images, labels, kd, eps, clean["target"], robust)
      z = project(raw["x"], z0, raw.get("eps", eps), tm.norm, lo, hi)
      logits = models.victim(z)
      broken = robust & raw["clean_correct"] & losses.is_adversarial(
          logits, labels, clean["target"], targeted)
      x = select(broken, z, x)
      queries = queries + jnp.where(robust, raw["queries"] + 1, 0)
      robust = robust & ~broken
      stages.append(robust)
    return {"x": x, **clean, "queries": queries,
            "diag_robust_stage": jnp.stack(stages, axis=1)}


@base.ATTACKS.register("ensemble")
def make_ensemble(attacks=("apgd_ce", "apgd_t"), **kwargs) -> Ensemble:
  """``ensemble(attacks=[...], ...)``: each stage a spec string or an attack."""
  threat = base.pop_threat(kwargs)
  return Ensemble(threat=threat, attacks=tuple(base.build(a) for a in attacks), **kwargs)


def autoattack(threat: ThreatModel, version: str = "standard", **kw) -> Ensemble:
  """AutoAttack-style ensemble for a threat model ('standard' or 'fast')."""
  if version == "standard":
    stages = [apgd.APGDCE(threat=threat), apgd.APGDT(threat=threat)]
    if threat.norm == "linf":
      stages.append(blackbox.Square(threat=threat, n_queries=5000))
  elif version == "fast":
    stages = [apgd.APGDCE(threat=threat, steps=20),
              apgd.APGDT(threat=threat, steps=20, n_target_classes=3)]
  else:
    raise AttackInputError(f"autoattack: version={version!r}: expected 'standard' or 'fast'")
  return AutoAttack(threat=threat, attacks=tuple(stages), version=version, **kw)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AutoAttack(Ensemble):
  """:class:`Ensemble` with AutoAttack's stage list (see :func:`autoattack`)."""
  version: str = "standard"
  name: ClassVar[str] = "autoattack"

  def spec(self, threat: bool = True) -> str:
    kwargs = {} if self.version == "standard" else {"version": self.version}
    if threat:
      kwargs.update(threat_kwargs(self.threat))
    return registry.format_spec(self.name, (), kwargs)


@base.ATTACKS.register("autoattack")
def make_autoattack(version="standard", **kwargs) -> AutoAttack:
  """``autoattack(version='standard' | 'fast', ...)`` (see :func:`autoattack`)."""
  threat = base.pop_threat(kwargs)
  return autoattack(threat, version, **kwargs)
