"""Losses an attack ascends, and the success test.

Every function takes logits (N, K) and int class ids (N,) and returns one
value per example (N,). :func:`attack_loss` picks a loss by name and sign so
that *ascending* it is the attack direction, untargeted or targeted.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxbench.attacks.threat import AttackInputError

LOSSES = ("ce", "margin", "dlr")


def other_max(logits: jax.Array, cls: jax.Array) -> jax.Array:
  """max_{j != cls} z_j per example: (N, K), (N,) -> (N,)."""
  k = logits.shape[-1]
  masked = jnp.where(jax.nn.one_hot(cls, k, dtype=bool), -jnp.inf, logits)
  return jnp.max(masked, axis=-1)


def _take(logits, cls):
  return jnp.take_along_axis(logits, cls[:, None], axis=-1)[:, 0]


def cross_entropy(logits, labels):
  """Per-example softmax cross-entropy, (N, K), (N,) -> (N,)."""
  return jax.nn.logsumexp(logits, axis=-1) - _take(logits, labels)


def margin(logits, labels):
  """z_y - max_{j != y} z_j, (N, K), (N,) -> (N,): positive while the label still wins."""
  return _take(logits, labels) - other_max(logits, labels)


def dlr(logits, labels):
  """Difference of logits ratio (Croce & Hein 2020), untargeted, to minimise.

  ``(z_y - max_{j != y} z_j) / (z_(1) - z_(3))`` with z_(i) the i-th largest
  logit; (N, K), (N,) -> (N,). Needs K >= 3.
  """
  s = jnp.sort(logits, axis=-1)
  return margin(logits, labels) / (s[:, -1] - s[:, -3] + 1e-12)


def dlr_targeted(logits, labels, targets):
  """Targeted DLR, to minimise: ``(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2)``.

  Args:
    logits: (N, K) with K >= 4.
    labels, targets: (N,) int class ids.

  Returns:
    (N,).
  """
  s = jnp.sort(logits, axis=-1)
  return (_take(logits, labels) - _take(logits, targets)) / (
      s[:, -1] - 0.5 * (s[:, -3] + s[:, -4]) + 1e-12)


def attack_loss(name: str, logits, labels, targets, targeted: bool):
  """Per-example loss whose *ascent* is the attack direction.

  Args:
    name: 'ce', 'margin' or 'dlr'.
    logits: (N, K).
    labels, targets: (N,) int; targets are read only when ``targeted``.
    targeted: move towards ``targets`` instead of away from ``labels``.

  Returns:
    (N,) losses.
  """
  if name == "ce":
    return -cross_entropy(logits, targets) if targeted else cross_entropy(logits, labels)
  if name == "margin":
    return margin(logits, targets) if targeted else -margin(logits, labels)
  if name == "dlr":
    return -dlr_targeted(logits, labels, targets) if targeted else -dlr(logits, labels)
  raise AttackInputError(f"loss={name!r}: expected one of {LOSSES}")


def is_adversarial(logits, labels, targets, targeted: bool):
  """(N,) bool: the prediction is the target (targeted) or not the label."""
  pred = jnp.argmax(logits, axis=-1)
  return pred == targets if targeted else pred != labels


def looks_like_probabilities(logits) -> jax.Array:
  """(N,) bool: rows in [0, 1] summing to 1 (softmax outputs, not logits)."""
  in_unit = jnp.all((logits >= 0) & (logits <= 1), axis=-1)
  return in_unit & (jnp.abs(jnp.sum(logits, axis=-1) - 1) < 1e-3)
