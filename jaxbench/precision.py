"""What ``precision='float32' | 'tf32' | 'bfloat16'`` means, on every backend.

JAX's default matmul precision is backend-dependent: float32 dots and
convolutions run as TF32 on NVIDIA GPUs (Ampere and later) and as one bf16 pass
on TPUs. A benchmark that says "float32" must not silently run either, so each
policy names both the dtype of parameters and activations and the precision of
every matmul and convolution:

=========  ==============  ================================================
policy     compute dtype   matmuls and convolutions
=========  ==============  ================================================
float32    float32         ``HIGHEST``: true float32 (6-pass bf16 on TPU)
tf32       float32         ``tensorfloat32``: TF32 on GPU (3-pass bf16 on TPU)
bfloat16   bfloat16        ``DEFAULT``: one bf16 pass, f32 accumulation
=========  ==============  ================================================

:func:`scope` applies a policy while a function is *traced* (it sets
``jax.default_matmul_precision``, which becomes the ``precision`` attribute of
each ``dot_general``/``convolution`` in the lowered program), so compiled steps,
attack gradients (the transposed dots inherit the forward precision) and the
head builder all carry it. Dots that name their own precision are unaffected.
"""
from __future__ import annotations

import contextlib
import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Policy:
  """Attributes:
    name: the config value ('float32', 'tf32', 'bfloat16').
    dtype: parameter and activation dtype.
    matmul: ``jax.default_matmul_precision`` value, or None to leave JAX's default.
  """
  name: str
  dtype: object
  matmul: str | None


POLICIES = {
    "float32": Policy("float32", jnp.float32, "highest"),
    "tf32": Policy("tf32", jnp.float32, "tensorfloat32"),
    "bfloat16": Policy("bfloat16", jnp.bfloat16, "default"),
}


def get(name: str) -> Policy:
  """The policy called ``name``.

  Raises:
    ValueError: an unknown name (lists the known ones).
  """
  if name not in POLICIES:
    raise ValueError(f"unknown precision {name!r}; known: {sorted(POLICIES)}")
  return POLICIES[name]


def scope(name: str):
  """Context manager applying policy ``name`` to everything traced inside it."""
  policy = get(name)
  if policy.matmul is None:
    return contextlib.nullcontext()
  return jax.default_matmul_precision(policy.matmul)


def describe(name: str) -> dict:
  """What a results row records: policy, dtypes, matmul precision and backend."""
  policy = get(name)
  return {"precision": policy.name, "compute_dtype": jnp.dtype(policy.dtype).name,
          "matmul_precision": policy.matmul or "default",
          "backend": jax.default_backend()}
