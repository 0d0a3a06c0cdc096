"""Transfer attacks: craft on a surrogate model, score on the victim.

RoZ's transfer setting (protocol.md §1.3): FGSM/BIM/MIM/DIM gradients come
from a torchvision ResNet-152 fed the *same* CLIP-normalised tensor as the
victim, without early stopping (success is only checked on the victim at the
end); MIM and DIM run 9 updates instead of 19.

A :class:`Transfer` wraps any :class:`~jaxbench.attacks.gradient.SignGradient`
attack. The surrogate is named by a model spec (``surrogate='resnet152_tv'``);
the runner loads it and binds it with :meth:`Transfer.with_surrogate` (or
:func:`prepare` does both). The victim is evaluated once on the clean images
(clean accuracy, the target of targeted modes) and once on the result.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Optional

from jaxbench.attacks import base, gradient
from jaxbench.attacks.threat import AttackInputError


@dataclasses.dataclass(frozen=True, kw_only=True)
class Transfer(base.Iterative):
  """A gradient attack computed on a surrogate.

  Attributes:
    attack: the inner attack (its threat model is replaced by this one's).
    surrogate: model spec of the surrogate (RoZ: torchvision ResNet-152).
    surrogate_preprocess: 'victim' feeds the surrogate the victim's
      normalisation (RoZ), 'own' keeps the surrogate's.
    early_stop: stop once the *victim* is fooled (RoZ: False; True costs a
      victim forward per step).
    surrogate_apply: bound ``apply`` of the surrogate (see with_surrogate).
    surrogate_params: its parameters (not part of the attack's identity).
  """
  attack: gradient.SignGradient = gradient.BIM()
  surrogate: str = "resnet152_tv"
  surrogate_preprocess: str = "victim"
  early_stop: bool = False
  surrogate_apply: Optional[Callable] = None
  surrogate_params: Any = dataclasses.field(default=None, compare=False, hash=False)

  name: ClassVar[str] = "transfer"

  def __post_init__(self):
    if not isinstance(self.attack, gradient.SignGradient):
      raise AttackInputError(f"transfer: attack must be a gradient attack "
                             f"(fgsm|bim|pgd|mim|dim), got {type(self.attack).__name__}")
    if self.surrogate_preprocess not in ("victim", "own"):
      raise AttackInputError("transfer: surrogate_preprocess must be 'victim' or 'own'")
    inner = dataclasses.replace(self.attack, threat=self.threat, early_stop=self.early_stop)
    object.__setattr__(self, "attack", inner)
    super().__post_init__()

  @property
  def needs_surrogate(self) -> bool:
    return self.surrogate_apply is None

  def with_surrogates(self, bind):
    return bind(self)

  def with_surrogate(self, apply: Callable, params) -> "Transfer":
    """Binds the surrogate's ``apply`` and parameters."""
    return dataclasses.replace(self, surrogate_apply=apply, surrogate_params=params)

  def spec(self, threat: bool = True) -> str:
    bare = dataclasses.replace(self, surrogate_apply=None, surrogate_params=None)
    return base.Attack.spec(bare, threat)

  def _split(self):
    return dataclasses.replace(self, surrogate_params=None), self.surrogate_params

  def _merge(self, dyn):
    return dataclasses.replace(self, surrogate_params=dyn)

  def _models(self, apply, params, dyn):
    if self.surrogate_apply is None:
      raise AttackInputError(
          f"transfer: no surrogate bound; load {self.surrogate!r} and call "
          "attack.with_surrogate(model.apply, model.params) (or attacks.prepare)")
    return base.Models(apply, params, self.threat, self.surrogate_apply,
                       self.surrogate_params if dyn is None else dyn)

  def __call__(self, apply, params, images, labels, keys=None, *, targets=None, mask=None):
    if self.surrogate_apply is None:
      self._models(apply, params, None)
    return super().__call__(apply, params, images, labels, keys, targets=targets, mask=mask)

  # The state machine is the inner attack's, with the surrogate as source.
  def init(self, *args):
    return self.attack.init(*args)

  def step(self, models, state):
    return self.attack.step(models, state)

  def output(self, state):
    return self.attack.output(state)


@base.ATTACKS.register("transfer")
def make_transfer(attack="bim", surrogate="resnet152_tv", **kwargs) -> Transfer:
  """``transfer(attack='bim', surrogate='resnet152_tv', ...)``: ``attack`` is a spec
  string or an attack; threat keywords and Transfer's fields ride along."""
  threat = base.pop_threat(kwargs)
  return Transfer(threat=threat, attack=base.build(attack), surrogate=surrogate, **kwargs)
