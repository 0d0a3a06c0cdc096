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

Layout, lowest first: :mod:`~jaxbench.attacks.per_example` (per-example array
helpers), :mod:`~jaxbench.attacks.checks` and :mod:`~jaxbench.attacks.metrics`
(pure functions of per-example outputs), :mod:`~jaxbench.attacks.threat`
(threat model, projection), :mod:`~jaxbench.attacks.losses`,
:mod:`~jaxbench.attacks.keys` (per-example randomness),
:mod:`~jaxbench.attacks.result` (AttackResult, finalize),
:mod:`~jaxbench.attacks.base` (the Attack contract, the Iterative loop, the
registry), then one module per algorithm family, and
:mod:`~jaxbench.attacks.refill` on top.

Adding an attack: write one module here whose class is decorated with
:func:`jaxbench.attacks.base.register` (or registers a factory with
``base.ATTACKS.register(name)``), plus its test. Every module of this package
is imported with the package, so nothing else needs to list it; in return,
modules here import only lower floors (never the runner).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Optional

from jaxbench.attacks.base import ATTACKS, Attack, Iterative  # noqa: F401  (public)
from jaxbench.attacks.result import AttackResult  # noqa: F401  (public)
from jaxbench.attacks.threat import AttackInputError, ThreatModel  # noqa: F401  (public)

# Attack modules register themselves on import.
for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")


def get(spec: str) -> Attack:
  """Builds an attack from a spec string, e.g. ``bim(eps=8/255, space='normalized')``.

  Raises:
    jaxbench.registry.SpecError: unknown attack or bad arguments.
    AttackInputError: values out of range (eps, bounds, ...).
  """
  return ATTACKS.get(spec)


def names() -> list[str]:
  """Registered attack names, sorted."""
  return ATTACKS.names()


def prepare(attack: Attack, model, load: Optional[Callable] = None) -> Attack:
  """Binds a model's normalisation and, for transfer attacks, the surrogate.

  Args:
    attack: from :func:`get`.
    model: the victim :class:`jaxbench.models.Model`.
    load: ``spec -> Model`` for surrogates (default ``jaxbench.models.load``).

  Returns:
    the attack, ready to run on ``model``.
  """
  attack = attack.for_model(model.preprocess)
  if not attack.needs_surrogate:
    return attack
  if load is None:
    from jaxbench import models as _models
    load = _models.load

  def bind(t):
    s = load(t.surrogate)
    if t.surrogate_preprocess == "victim":
      s = s.with_preprocess(model.preprocess)
    return t.with_surrogate(s.apply, s.params)
  return attack.with_surrogates(bind)
