"""The attack contract and the loop shared by iterative attacks.

* :class:`Models`: the victim (and, for transfer attacks, the gradient source)
  as functions of attack-space inputs.
* :class:`Attack`: hyperparameters as a frozen dataclass with a pure, jittable
  ``__call__(apply, params, images, labels, keys) -> AttackResult``; a subclass
  implements ``_attack`` and :func:`~jaxbench.attacks.result.finalize` does the
  rest (projection, one re-evaluation, diagnostics).
* :class:`Iterative`: attacks written as a per-example state machine
  (``init`` / ``step`` / ``output``) so that every example keeps its own
  iteration counter; gradient, black-box, DeepFool, APGD and minimal-eps
  attacks are all written this way and share its bookkeeping
  (:meth:`Iterative.record_clean`, :meth:`Iterative.advance`, ...). The same
  step runs a whole batch to completion under ``lax.while_loop`` (:func:`run`)
  or a few iterations at a time with survivor refill
  (:mod:`jaxbench.attacks.refill`), with identical results.
* :data:`ATTACKS` and :func:`register`: an attack module registers its
  classes with a decorator, so adding an attack touches only its own module.

Conventions. Attacks work in *attack space* (:mod:`jaxbench.attacks.threat`);
images handed in and out are float32 NHWC in [0, 1] (the Model contract).
Every example's first model evaluation is at the clean image, which yields its
clean prediction: examples that are misclassified before the attack are not
attacked and count as failures of the model (RoZ). Randomness comes from
per-example keys only (:mod:`jaxbench.attacks.keys`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, ClassVar, Optional

import jax
import jax.numpy as jnp

from jaxbench import registry
from jaxbench.attacks import checks
from jaxbench.attacks.keys import TAG_TARGET, fold, is_typed_key, key_data
from jaxbench.attacks.losses import looks_like_probabilities
from jaxbench.attacks.per_example import select, zero_fraction
from jaxbench.attacks.result import AttackResult, finalize
from jaxbench.attacks.threat import (NORMS, THREAT_KEYS, AttackInputError, ThreatModel,
                                     threat_kwargs)


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
    """Whether the gradient source is the victim (no surrogate)."""
    return self.source_apply is None

  def victim(self, z):
    """Victim logits (N, K) at attack-space points z (N, H, W, C)."""
    return self.apply(self.params, self.threat.to_pixels(z))

  def source(self, z):
    """Gradient-source logits (N, K) at attack-space points z (N, H, W, C)."""
    if self.same:
      return self.victim(z)
    return self.source_apply(self.source_params, self.threat.to_pixels(z))

  def pixels(self, images):
    """Victim logits (N, K) at [0, 1] pixels (N, H, W, C)."""
    return self.apply(self.params, images)

  def victim_if(self, need: jax.Array, z):
    """Victim logits (N, K) at z when any example ``need``s them, else zeros.

    Steps whose victim forward serves only some examples (the clean record,
    early stopping, a finished probe) skip the pass when none needs it.

    Args:
      need: (N,) bool.
      z: (N, H, W, C) attack-space points.
    """
    shape = jax.eval_shape(self.victim, z)
    return jax.lax.cond(jnp.any(need), self.victim,
                        lambda zz: jnp.zeros(shape.shape, shape.dtype), z)


# --------------------------------------------------------------------------
# Registration: spec strings -> attacks.
# --------------------------------------------------------------------------
ATTACKS = registry.Registry("attack")


def pop_threat(kwargs: dict, default: ThreatModel = ThreatModel()) -> ThreatModel:
  """Removes the threat-model keywords from spec ``kwargs`` and builds the threat.

  Args:
    kwargs: spec keywords; ``norm``, ``eps``, ``space``, ``bounds`` and
      ``targeted`` are popped.
    default: settings for the keywords not given (an attack's default threat).

  Returns:
    the :class:`ThreatModel`.
  """
  tkw = {k: getattr(default, k) for k in THREAT_KEYS}
  for k in THREAT_KEYS:
    if k in kwargs:
      tkw[k] = kwargs.pop(k)
  return ThreatModel(**tkw)


def register(cls):
  """Class decorator: registers an attack under ``cls.name``.

  Its spec takes the threat-model keywords (defaults: the class's default
  ``threat``) and the class's own fields, e.g. ``bim(eps=8/255, steps=20)``.
  A ``score_based`` class is also listed for
  :func:`jaxbench.attacks.checks.blackbox_beats_whitebox`.
  Wrappers whose specs nest other specs register a factory with
  ``ATTACKS.register(name)`` instead and build the nested ones with :func:`build`.
  """
  default = next(f.default for f in dataclasses.fields(cls) if f.name == "threat")

  def factory(**kwargs):
    threat = pop_threat(kwargs, default)
    return cls(threat=threat, **kwargs)
  factory.__name__ = f"make_{cls.name}"
  factory.__doc__ = cls.__doc__
  ATTACKS.register(cls.name, factory)
  if cls.score_based:
    checks.BLACKBOX.add(cls.name)
  return cls


def build(spec_or_attack) -> "Attack":
  """An attack from a spec string (nested specs of wrappers), or the attack itself."""
  return ATTACKS.get(spec_or_attack) if isinstance(spec_or_attack, str) else spec_or_attack


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
  score_based: ClassVar[bool] = False    # uses the model's outputs only (black box)

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
    """A copy with another threat model (wrappers pass it on to their attacks)."""
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
    """JSON-ready identity: the spec string and the resolved threat model."""
    return {"attack": self.spec(), "threat": self.threat.describe()}

  @property
  def needs_surrogate(self) -> bool:
    """Whether this attack (or one it wraps) still lacks its surrogate model."""
    return False

  def with_surrogates(self, bind: Callable[["Attack"], "Attack"]) -> "Attack":
    """This attack with ``bind`` applied to every surrogate-driven attack in it.

    Args:
      bind: takes a transfer attack and returns it bound to its surrogate.

    Returns:
      the attack (unchanged for attacks without a surrogate).
    """
    return self

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
    """Static checks (shapes, targets) and value checks on concrete arrays.

    Args:
      images: (N, H, W, C) floats in [0, 1] (checked when concrete).
      labels: (N,) ints; targets, mask: (N,) or None.

    Raises:
      AttackInputError: naming the bad input and what was expected.
    """
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
    self.threat.require_stats()
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
    kd = keys if (keys is not None and not is_typed_key(keys)
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


def clean_info(threat: ThreatModel, keys, labels, targets, logits) -> dict:
  """Clean prediction, correctness, resolved target and probability flag.

  Args:
    threat: gives the targeted mode.
    keys: (N, ...) raw per-example key data (random targets).
    labels: (N,) int32; targets: (N,) int32 ('given' mode) or -1.
    logits: (N, K) at the clean images.

  Returns:
    dict of (N,) arrays: clean_pred (int32), clean_correct (bool), target
    (int32; -1 for untargeted runs) and prob_like (bool).
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


def update_where(s: dict, pred: jax.Array, new: dict) -> dict:
  """State ``s`` with the entries of ``new`` taken for the examples where ``pred``.

  Args:
    s: per-example state, a dict of (N, ...) arrays.
    pred: (N,) bool.
    new: some of ``s``'s entries, same shapes.

  Returns:
    a new dict (``s`` is not modified).
  """
  s = dict(s)
  s.update(select(pred, new, {k: s[k] for k in new}))
  return s


# --------------------------------------------------------------------------
# Iterative attacks: per-example state machines.
# --------------------------------------------------------------------------
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
    """The state before the first evaluation.

    Args:
      images: (N, H, W, C) clean pixels in [0, 1].
      labels: (N,) int; keys: (N, ...) raw key data; eps: (N,) radii;
      targets: (N,) int (-1 when unused); mask: (N,) bool, False for padding
        (which starts done).

    Returns:
      dict of (N, ...) arrays (see the class docstring); subclasses add theirs.
    """
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
    """One model evaluation for every unfinished example (see the class docstring)."""
    raise NotImplementedError

  def output(self, state: dict) -> dict:
    """The raw output :func:`~jaxbench.attacks.result.finalize` takes."""
    return {"x": state["x"], "eps": state["eps"], "clean_pred": state["clean_pred"],
            "clean_correct": state["clean_correct"], "target": state["target"],
            "queries": state["queries"], "steps": state["t"],
            "zero_grad": state["zero_grad"], "prob_like": state["prob_like"]}

  # -- bookkeeping shared by every step ------------------------------------
  def record_clean(self, s: dict, logits: jax.Array, at: jax.Array) -> dict:
    """Stores clean prediction/correctness/target for examples where ``at``.

    Args:
      s: state.
      logits: (N, K) at the current points, which are the clean images where
        ``at`` (the first evaluation).
      at: (N,) bool.

    Returns:
      the updated state.
    """
    info = clean_info(self.threat, s["key"], s["y"], s["target"], logits)
    s = dict(s)
    for k in ("clean_pred", "clean_correct", "target", "prob_like"):
      s[k] = jnp.where(at, info[k], s[k])
    return s

  @staticmethod
  def not_attacked(s: dict) -> jax.Array:
    """(N,) bool: at their first evaluation, examples misclassified when clean.

    They stop there and count as failures of the model (RoZ). Call after
    :meth:`record_clean`.
    """
    return (s["t"] == 0) & ~s["clean_correct"]

  @staticmethod
  def record_zero_grad(s: dict, g: jax.Array, at: jax.Array) -> dict:
    """Stores the fraction of exactly-zero gradient elements where ``at``.

    Args:
      s: state.
      g: (N, ...) input gradients.
      at: (N,) bool (the first evaluation: the gradient at the clean image).

    Returns:
      the updated state.
    """
    s = dict(s)
    s["zero_grad"] = jnp.where(at, zero_fraction(g), s["zero_grad"])
    return s

  @staticmethod
  def advance(s: dict, active: jax.Array, stop: jax.Array, fooled: jax.Array,
              extra_queries: Any = 0) -> dict:
    """Ends a step: every active example has spent one evaluation.

    Args:
      s: state.
      active: (N,) bool, the examples that were unfinished at this step.
      stop: (N,) bool, active examples that finish with this evaluation.
      fooled: (N,) bool, whether this evaluation fooled the victim.
      extra_queries: (N,) int or scalar, queries spent beyond the one
        evaluation (the finite differences of score-based attacks).

    Returns:
      the updated state: ``done``, ``fooled``, ``queries`` and ``t``.
    """
    s = dict(s)
    step = active.astype(jnp.int32)
    s["done"] = s["done"] | (active & stop)
    s["fooled"] = jnp.where(active, fooled, s["fooled"])
    s["queries"] = s["queries"] + step + extra_queries
    s["t"] = s["t"] + step
    return s

  def _attack(self, models, images, labels, keys, eps, targets, mask):
    state = self.init(images, labels, keys, eps, targets, mask)
    state = run(self, models, state)
    return self.output(state)


def run(attack: Iterative, models: Models, state: dict, n: Optional[int] = None) -> dict:
  """Steps until every example is done, or at most ``n`` steps (a refill chunk).

  Args:
    attack: the iterative attack whose ``step`` advances the state.
    models: victim (and gradient source).
    state: per-example state from ``attack.init`` (or a previous chunk).
    n: step limit; None runs to completion (capped at ``attack.max_evals``).

  Returns:
    the state after the loop.
  """
  limit = attack.max_evals if n is None else n

  def cond(c):
    s, i = c
    return jnp.any(~s["done"]) & (i < limit)

  def body(c):
    s, i = c
    return attack.step(models, s), i + 1

  state, _ = jax.lax.while_loop(cond, body, (state, jnp.int32(0)))
  return state
