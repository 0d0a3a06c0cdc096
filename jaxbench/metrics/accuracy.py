"""Top-k accuracy as jittable accumulators.

One pass over a dataset feeds every metric: the runner keeps a state pytree,
calls :func:`update` on each (padded, sharded) batch inside its compiled step,
:func:`merge` combines states (e.g. across passes or hosts) and
:func:`finalize` turns the counts into fractions on the host.

State: {'n': int32 (), 'top1': int32 (), 'top5': int32 (), ...}, exact integer
counts (float32 sums would stop being exact past 2**24 examples).

Labels are either int class indices (N,) in the set's label space (-1 means
unlabelled, not counted) or a multi-hot mask (N, K) for multi-label sets
(ImageNet-Vid-Robust frames): a top-k prediction is correct when any of the k
highest-scoring classes is in the example's label set. Ties between logits are
broken towards the lower class index, as ``argmax`` does.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def init(ks: Sequence[int] = (1, 5)) -> dict:
  """An empty state counting top-k hits for each k in ``ks``."""
  state = {"n": jnp.zeros((), jnp.int32)}
  for k in ks:
    if int(k) < 1:
      raise ValueError(f"top-k needs k >= 1, got {k}")
    state[f"top{int(k)}"] = jnp.zeros((), jnp.int32)
  return state


def _ks(state: dict) -> list[int]:
  return sorted(int(key[3:]) for key in state if key.startswith("top"))


def _valid(labels: jax.Array, mask: jax.Array | None) -> jax.Array:
  if labels.ndim == 2:
    valid = jnp.any(labels.astype(bool), axis=-1)
  else:
    valid = labels >= 0
  if mask is not None:
    valid = valid & mask.astype(bool)
  return valid


def topk_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
  """Per-example top-k correctness.

  Args:
    logits: (N, K) float logits in the set's label space.
    labels: int (N,) class indices, or bool/int (N, K) multi-hot masks.
    k: how many top classes count (clipped to K).

  Returns:
    bool (N,): the label (any label, for multi-hot) is among the k classes with
    the highest logits. Unlabelled rows (-1 / empty mask) are False.
  """
  num_classes = logits.shape[-1]
  k = min(int(k), num_classes)
  if k == 1:
    top = jnp.argmax(logits, axis=-1)[:, None]  # argmax: first index among ties
  else:
    _, top = jax.lax.top_k(logits, k)  # (N, k); ties: lower index first
  if labels.ndim == 2:
    if labels.shape != logits.shape:
      raise ValueError(f"multi-hot labels {labels.shape} do not match logits {logits.shape}")
    hit = jnp.take_along_axis(labels.astype(bool), top, axis=-1)
    return jnp.any(hit, axis=-1)
  return jnp.any(top == labels[:, None].astype(top.dtype), axis=-1) & (labels >= 0)


def predictions(logits: jax.Array) -> jax.Array:
  """Top-1 class (int32 (N,)) in the set's label space."""
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def update(state: dict, logits: jax.Array, labels: jax.Array,
           mask: jax.Array | None = None) -> dict:
  """Adds a batch to the counts. Pure and jittable.

  Args:
    state: from :func:`init` (or a previous update).
    logits: (N, K) logits in the set's label space (after projection).
    labels: int (N,) (-1 = unlabelled) or multi-hot (N, K).
    mask: bool (N,), False for padding rows; None counts every row.

  Returns:
    The new state.
  """
  valid = _valid(labels, mask)
  new = {"n": state["n"] + jnp.sum(valid, dtype=jnp.int32)}
  for k in _ks(state):
    hit = topk_correct(logits, labels, k) & valid
    new[f"top{k}"] = state[f"top{k}"] + jnp.sum(hit, dtype=jnp.int32)
  return new


def merge(a: dict, b: dict) -> dict:
  """Sum of two states with the same keys."""
  if set(a) != set(b):
    raise ValueError(f"cannot merge accuracy states with keys {sorted(a)} and {sorted(b)}")
  return {key: a[key] + b[key] for key in a}


def finalize(state: dict) -> dict:
  """Fractions in [0, 1] and the example count, as Python numbers.

  Returns:
    {'n': int, 'top1': float, 'top5': float, ...}; fractions are NaN when n == 0.
  """
  state = jax.device_get(state)
  n = int(np.asarray(state["n"]))
  out = {"n": n}
  for k in _ks(state):
    hits = int(np.asarray(state[f"top{k}"]))
    out[f"top{k}"] = hits / n if n else float("nan")
  return out
