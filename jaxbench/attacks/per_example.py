"""Arrays with one row per example: broadcasting, selection and norms.

Every array an attack carries is (N, ...) with one row per example, and every
decision (stop, accept, restart) is an (N,) bool. These helpers apply an (N,)
value across the remaining axes, so that no attack writes its own reshapes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def expand(v: jax.Array, ndim: int) -> jax.Array:
  """Appends unit axes to per-example values so they broadcast over examples.

  Args:
    v: (N,) (or (N, ...)) per-example values.
    ndim: rank of the arrays ``v`` is combined with, e.g. 4 for (N, H, W, C).

  Returns:
    ``v`` reshaped to (N, 1, ..., 1) with ``ndim`` axes.
  """
  return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def select(pred: jax.Array, new, old):
  """Per-example ``where``: row i of ``new`` where ``pred[i]``, else of ``old``.

  Args:
    pred: (N,) bool.
    new, old: arrays (N, ...) or pytrees of them with the same structure.

  Returns:
    A pytree like ``new``.
  """
  return jax.tree.map(lambda a, b: jnp.where(expand(pred, a.ndim), a, b), new, old)


def norms(delta: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-example (L-inf, L2) norms.

  Args:
    delta: (N, ...) perturbations.

  Returns:
    (linf (N,), l2 (N,)).
  """
  flat = delta.reshape(delta.shape[0], -1)
  return jnp.max(jnp.abs(flat), axis=1), jnp.sqrt(jnp.sum(flat * flat, axis=1))


def zero_fraction(g: jax.Array) -> jax.Array:
  """(N,) float32 fraction of exactly-zero elements of each row of (N, ...) ``g``."""
  return jnp.mean((g == 0).reshape(g.shape[0], -1).astype(jnp.float32), axis=1)
