"""Parameter sharding for towers too large to replicate: FSDP over the ``model`` mesh axis.

Rule: a leaf with at least ``min_size`` elements is split along its *largest*
dimension that the ``model`` axis divides (ties: the later dimension, which for
Flax kernels ``(..., in, out)`` is the output features); smaller leaves, and
leaves no dimension of which divides, are replicated. Under ``jax.jit`` XLA
all-gathers each weight where it is used, so sharded and replicated evaluation
compute the same function; only memory per device differs (about 1/``model``
of the large weights).

Batches stay sharded over the ``data`` axis as usual; the two axes are
independent, so a (data=2, model=4) mesh on 8 devices holds each weight in 4
pieces and each batch in 2.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DEFAULT_MIN_SIZE = 1 << 18      # 256k elements (1 MiB in fp32): smaller leaves replicate


def leaf_spec(shape: tuple[int, ...], n: int, axis: str = "model",
              min_size: int = DEFAULT_MIN_SIZE) -> P:
  """PartitionSpec of one leaf under the FSDP rule (see module docstring)."""
  if n <= 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  best = None
  for d, size in enumerate(shape):
    if size % n == 0 and (best is None or size >= shape[best]):
      best = d
  if best is None:
    return P()
  return P(*([None] * best + [axis]))


def param_shardings(params: Any, mesh: Mesh, *, axis: str = "model",
                    min_size: int = DEFAULT_MIN_SIZE) -> Any:
  """A pytree of NamedSharding matching ``params`` (arrays or ShapeDtypeStructs).

  Args:
    params: the parameter pytree (e.g. ``model.params``).
    mesh: a mesh with an ``axis`` axis (size 1 replicates everything).
    axis: the mesh axis weights are split over.
    min_size: leaves with fewer elements are replicated.

  Raises:
    ValueError: the mesh has no such axis.
  """
  if axis not in mesh.shape:
    raise ValueError(f"mesh axes {tuple(mesh.shape)} have no {axis!r} axis to shard "
                     "parameters over")
  n = mesh.shape[axis]
  return jax.tree.map(lambda x: NamedSharding(mesh, leaf_spec(tuple(np.shape(x)), n, axis,
                                                              min_size)), params)


def sharded_fraction(params: Any, shardings: Any) -> float:
  """Fraction of parameter elements that are split (for logs and tests)."""
  total = split = 0
  for x, s in zip(jax.tree.leaves(params), jax.tree.leaves(
      shardings, is_leaf=lambda t: isinstance(t, NamedSharding))):
    size = int(np.prod(np.shape(x), dtype=np.int64))
    total += size
    if any(p is not None for p in s.spec):
      split += size
  return split / max(total, 1)
