"""Adversarial attacks: jitted, vmapped, sharded; built from spec strings.

    attack = jaxbench.attacks.get("bim(eps=8/255, space='normalized')")
    attack = jaxbench.attacks.prepare(attack, model)     # mean/std, surrogate
    result = attack(model.apply, model.params, images01, labels, keys)
    row = jaxbench.attacks.metrics.summarize(result)

Registered names (threat-model keywords ``eps``, ``norm``, ``space``, ``bounds``
and ``targeted`` are accepted by all):

* white-box: fgsm, bim, pgd, mim, dim, deepfool, cw, apgd, apgd_ce, apgd_t
* score-based black-box: nes, spsa, square
* wrappers: transfer(attack='bim', surrogate='resnet152_tv'),
  min_eps(attack='bim(steps=20)', grid=(...)), ensemble(attacks=[...]),
  autoattack(version='standard')

Nested attack specs are strings; they inherit the wrapper's threat model.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from jaxbench import registry
from jaxbench.attacks import apgd, base, blackbox, cw, deepfool, ensemble, gradient
from jaxbench.attacks import minimal, transfer
from jaxbench.attacks.base import (Attack, AttackInputError, AttackResult,  # noqa: F401
                                   Iterative, ThreatModel)

ATTACKS = registry.Registry("attack")


def _pop_threat(kwargs: dict, defaults: Optional[dict] = None) -> base.ThreatModel:
  tkw = dict(defaults or {})
  for k in base.THREAT_KEYS:
    if k in kwargs:
      tkw[k] = kwargs.pop(k)
  return base.ThreatModel(**tkw)


def _simple(cls, threat_defaults=None):
  def factory(**kwargs):
    threat = _pop_threat(kwargs, threat_defaults)
    return cls(threat=threat, **kwargs)
  factory.__name__ = f"make_{cls.name}"
  factory.__doc__ = cls.__doc__
  return factory


for _cls in (gradient.FGSM, gradient.BIM, gradient.PGD, gradient.MIM, gradient.DIM,
             deepfool.DeepFool, apgd.APGD, apgd.APGDCE, apgd.APGDT,
             blackbox.NES, blackbox.SPSA, blackbox.Square):
  ATTACKS.register(_cls.name, _simple(_cls))
ATTACKS.register("cw", _simple(cw.CarliniWagner, {"norm": "l2", "eps": None}))


def _sub(spec_or_attack):
  return get(spec_or_attack) if isinstance(spec_or_attack, str) else spec_or_attack


@ATTACKS.register("transfer")
def _transfer(attack="bim", surrogate="resnet152_tv", **kwargs):
  threat = _pop_threat(kwargs)
  return transfer.Transfer(threat=threat, attack=_sub(attack), surrogate=surrogate, **kwargs)


@ATTACKS.register("min_eps")
def _min_eps(attack="bim(steps=20)", grid=minimal.ROZ_WHITE_GRID, **kwargs):
  threat = _pop_threat(kwargs)
  return minimal.MinEps(threat=threat, attack=_sub(attack), grid=tuple(grid), **kwargs)


@ATTACKS.register("ensemble")
def _ensemble(attacks=("apgd_ce", "apgd_t"), **kwargs):
  threat = _pop_threat(kwargs)
  return ensemble.Ensemble(threat=threat, attacks=tuple(_sub(a) for a in attacks), **kwargs)


@ATTACKS.register("autoattack")
def _autoattack(version="standard", **kwargs):
  threat = _pop_threat(kwargs)
  return ensemble.autoattack(threat, version, **kwargs)


def get(spec: str) -> Attack:
  """Builds an attack from a spec string, e.g. ``bim(eps=8/255, space='normalized')``.

  Raises:
    jaxbench.registry.SpecError: unknown attack or bad arguments.
    AttackInputError: values out of range (eps, bounds, ...).
  """
  return ATTACKS.get(spec)


def names() -> list[str]:
  return ATTACKS.names()


def prepare(attack: Attack, model, load: Optional[Callable] = None) -> Attack:
  """Binds a model's normalisation and, for transfer attacks, the surrogate.

  Args:
    attack: from :func:`get`.
    model: the victim :class:`jaxbench.models.Model`.
    load: ``spec -> Model`` for surrogates (default ``jaxbench.models.load``).
  """
  attack = attack.for_model(model.preprocess)
  stages = attack.attacks if isinstance(attack, ensemble.Ensemble) else (attack,)
  if any(isinstance(a, transfer.Transfer) and a.needs_surrogate for a in stages) or (
      isinstance(attack, minimal.MinEps) and isinstance(attack.attack, transfer.Transfer)):
    if load is None:
      from jaxbench import models as _models
      load = _models.load

    def bind(t: transfer.Transfer):
      s = load(t.surrogate)
      if t.surrogate_preprocess == "victim":
        s = s.with_preprocess(model.preprocess)
      return t.with_surrogate(s.apply, s.params)
    if isinstance(attack, transfer.Transfer):
      attack = bind(attack)
    elif isinstance(attack, minimal.MinEps):
      attack = dataclasses.replace(attack, attack=bind(attack.attack))
    else:
      attack = dataclasses.replace(attack, attacks=tuple(
          bind(a) if isinstance(a, transfer.Transfer) else a for a in stages))
  return attack
