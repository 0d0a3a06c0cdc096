"""Per-example random keys.

Randomness comes from per-example keys only (``fold_in(key(seed), example_id)``
by the caller), never from batch position, so an example's draws do not depend
on the batch it runs in. Attacks carry raw key data (N, 2) uint32 in their
state and fold it with a tag per independent draw (:data:`TAG_TARGET`,
:data:`TAG_START`, :data:`TAG_STEP`) and, where a draw repeats, the iteration.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxbench.attacks.threat import AttackInputError

# Tags folded into per-example keys so that independent draws never collide.
TAG_TARGET, TAG_START, TAG_STEP = 0x7A11, 0x57A7, 0x5E9


def is_typed_key(x) -> bool:
  """Whether ``x`` is a typed JAX key array (``jax.random.key``), not raw data."""
  return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def key_data(keys, n: int) -> jax.Array:
  """Per-example raw key data from keys (N,), one key, or None.

  A single key (or None = key(0)) is split by batch position, which ties the
  randomness to the batch layout; pass per-example keys
  ``fold_in(key(seed), example_index)`` for batch-independent results.

  Args:
    keys: typed keys (N,) or (), raw uint32 key data (N, 2) or (2,), or None.
    n: number of examples.

  Returns:
    (N, ...) uint32 raw key data ((N, 2) for JAX's default threefry keys).
  """
  if keys is None:
    keys = jax.random.key(0)
  keys = jnp.asarray(keys) if not is_typed_key(keys) else keys
  if not is_typed_key(keys):
    if keys.dtype != jnp.uint32 or keys.shape[-1:] != (2,):
      raise AttackInputError(f"keys: expected a typed key array (N,) or raw uint32 "
                             f"keys (N, 2), got {keys.dtype} {keys.shape}")
    keys = jax.random.wrap_key_data(keys)
  if keys.shape == ():
    keys = jax.random.split(keys, n)
  if keys.shape != (n,):
    raise AttackInputError(f"keys: expected shape ({n},) (one per example) or a "
                           f"single key, got {keys.shape}")
  return jax.random.key_data(keys)


def fold(key_raw: jax.Array, *tags) -> jax.Array:
  """Per-example typed keys folded with tags.

  Args:
    key_raw: (N, ...) uint32 raw key data (as :func:`key_data` returns).
    *tags: ints or (N,) int arrays, folded in order.

  Returns:
    (N,) typed keys.
  """
  keys = jax.random.wrap_key_data(key_raw)
  for tag in tags:
    tag = jnp.broadcast_to(jnp.asarray(tag, jnp.uint32), keys.shape)
    keys = jax.vmap(jax.random.fold_in)(keys, tag)
  return keys
