"""Learned prompts: the frozen text tower run on token embeddings, and the loss.

Both learners replace the slot embeddings of a :class:`~jaxbench.zeroshot.learned.
layout.PromptLayout` and run the text tower from there (:func:`embed_ids`,
:func:`encode_embeddings`); both minimise the same zero-shot cross-entropy
(:func:`zeroshot_loss`) with the classes padded to the mesh (:func:`pad_classes`)
and the model's or a fixed logit scale (:func:`logit_scale_of`).
"""
from __future__ import annotations

from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxbench.models.api import Model, l2_normalize
from jaxbench.zeroshot.learned.layout import PromptLayout

def embed_ids(arch, net, ids):
  """Token embeddings (..., W) of ids."""
  return arch.apply({"params": net}, ids, method="embed_tokens")


def encode_embeddings(arch, net, x, eot):
  """Unit-norm text features (N, D) float32 from token embeddings (N, L, W)."""
  z = arch.apply({"params": net}, x, eot, method="encode_text_embeddings")
  return l2_normalize(z.astype(jnp.float32))


def token_matrix(arch, net, vocab: int):
  """The (V, W) token-embedding table (by embedding every id: layout-agnostic)."""
  return embed_ids(arch, net, jnp.arange(vocab, dtype=jnp.int32))


def constrain(x, mesh: Optional[Mesh], spec: P):
  """Sharding constraint when a mesh is given (no-op on a single device)."""
  if mesh is None or mesh.size == 1:
    return x
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def zeroshot_loss(text, feats, labels, weights, scale, bias=None, class_mask=None):
  """Mean cross-entropy and accuracy of zero-shot logits.

  Args:
    text: float32 (K, D) unit class embeddings.
    feats: float32 (B, D) unit image embeddings.
    labels: int32 (B,) in [0, K).
    weights: float32 (B,) 1 for real rows, 0 for padding.
    scale: logit scale (RoZ: 100; CLIP's learned exp(scale) ~ 100).
    bias: optional additive logit bias.
    class_mask: optional bool (K,) False for padded classes (never predicted).

  Returns:
    (loss, accuracy): weighted means over the rows, float32 scalars.
  """
  logits = scale * feats @ text.T
  if bias is not None:
    logits = logits + bias
  if class_mask is not None:
    logits = jnp.where(class_mask[None], logits, -jnp.inf)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  n = jnp.maximum(weights.sum(), 1.0)
  acc = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return (weights * ce).sum() / n, (weights * acc).sum() / n


def pad_classes(layout: PromptLayout, multiple: int):
  """Layout ids/eot padded to a multiple of ``multiple`` classes, plus the class mask."""
  k = layout.num_classes
  kp = -(-k // multiple) * multiple
  ids = np.concatenate([layout.ids, np.repeat(layout.ids[:1], kp - k, 0)])
  eot = np.concatenate([layout.eot, np.repeat(layout.eot[:1], kp - k)])
  return ids, eot, np.arange(kp) < k


def data_size(mesh: Optional[Mesh]) -> int:
  return 1 if mesh is None else int(mesh.shape["data"])


def logit_scale_of(model: Model, logit_scale: Union[str, float]) -> tuple[float, Optional[float]]:
  """(scale, bias): the model's own ('model') or a fixed scale (RoZ: 100)."""
  net = model.params["net"]
  scale = float(np.exp(np.asarray(net["logit_scale"], np.float32))) \
      if "logit_scale" in net else 100.0
  bias = float(np.asarray(net["logit_bias"], np.float32)) if "logit_bias" in net else None
  if logit_scale != "model":
    scale = float(logit_scale)
  return scale, bias

