"""CoOp: continuous context vectors for CLIP prompts, trained with optax (Zhou et al. 2022).

The prompt of class k is ``[SOT] v_1..v_M <class name>. [EOT]`` where v_1..v_M
are learned vectors in the token-embedding space: one set shared by all classes
(unified context) or one set per class (class-specific context). Both towers
are frozen; only the vectors are trained, with CoOp's recipe: SGD with momentum
0.9, weight decay 5e-4, learning rate 0.002 on a cosine schedule after one epoch
of constant warm-up at 1e-5, batches of 32 images of a k-shot split, the
cross-entropy of the model's own zero-shot logits.

The image features are computed once (no augmentation: CoOp's random crops and
flips are not reproduced). Each step runs the text tower forward and backward
over the K class prompts, sharded over the mesh's 'data' axis, and the batch of
image rows, also sharded over 'data'. One epoch is one compiled ``lax.scan``.
Batch order: a permutation per epoch from ``default_rng([seed, epoch])``.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxbench.models.api import Model
from jaxbench.zeroshot.learned import layout as layout_lib, tower


@dataclasses.dataclass(frozen=True)
class CoopConfig:
  """CoOp hyperparameters (defaults: the paper's, with 'a photo of a' initialisation).

  Attributes:
    num_tokens: M context vectors.
    class_specific: one context per class (CSC) instead of a shared one.
    init: text whose M token embeddings initialise the context ('' = random
      normal, std 0.02, from ``default_rng(seed)``).
    suffix: text after the context with '{}' for the class name.
    lr, momentum, weight_decay: SGD.
    epochs: passes over the k-shot split.
    batch_size: images per step.
    warmup_epochs, warmup_lr: constant warm-up before the cosine schedule.
    logit_scale: 'model' (CLIP's learned scale, as CoOp) or a float.
    seed: initialisation and batch-order seed.
  """
  num_tokens: int = 4
  class_specific: bool = False
  init: str = "a photo of a"
  suffix: str = "{}."
  lr: float = 0.002
  momentum: float = 0.9
  weight_decay: float = 5e-4
  epochs: int = 50
  batch_size: int = 32
  warmup_epochs: int = 1
  warmup_lr: float = 1e-5
  logit_scale: Union[str, float] = "model"
  seed: int = 0

  def __post_init__(self):
    for name in ("num_tokens", "epochs", "batch_size"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"coop {name} must be a positive integer, got {v!r}")
    if self.warmup_epochs < 0 or self.warmup_epochs >= self.epochs:
      raise ValueError(f"coop warmup_epochs {self.warmup_epochs} must be in [0, epochs "
                       f"{self.epochs})")


@dataclasses.dataclass
class CoopResult:
  """Trained context and its training curve.

  Attributes:
    ctx: float32 (M, W) or (K, M, W) context vectors.
    init_ctx: the starting vectors.
    losses, accuracies: float32 (steps,) per-step batch loss / accuracy.
    steps: optimiser steps taken.
    seconds: wall time of training.
  """
  ctx: np.ndarray
  init_ctx: np.ndarray
  losses: np.ndarray
  accuracies: np.ndarray
  steps: int
  seconds: float


def hyperparams(cfg: CoopConfig, steps_per_epoch: int) -> dict:
  """The optimiser's numbers as float32 scalars (traced: no recompilation per value)."""
  return {k: np.float32(v) for k, v in dict(
      lr=cfg.lr, warmup_lr=cfg.warmup_lr, momentum=cfg.momentum,
      weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_epochs * steps_per_epoch,
      total_steps=cfg.epochs * steps_per_epoch).items()}


def learning_rate(step, hp: dict):
  """Constant ``warmup_lr`` for the warm-up steps, then cosine from ``lr`` to 0.

  ``lr_t = lr * (1 + cos(pi * (t - warm) / (total - warm))) / 2`` after warm-up.
  """
  warm, total = hp["warmup_steps"], hp["total_steps"]
  span = jnp.maximum(total - warm, 1.0)
  t = jnp.clip(step - warm, 0.0, span)
  cosine = hp["lr"] * 0.5 * (1.0 + jnp.cos(jnp.pi * t / span))
  return jnp.where(step < warm, hp["warmup_lr"], cosine)


def optimizer(hp: dict) -> optax.GradientTransformation:
  """SGD with momentum and coupled weight decay (torch.optim.SGD's update), CoOp's schedule."""
  return optax.chain(optax.add_decayed_weights(hp["weight_decay"]),
                     optax.sgd(lambda count: learning_rate(count, hp),
                               momentum=hp["momentum"]))


def context_loss(arch, net, ids, eot, class_mask, ctx, feats, labels, weights, scale, bias,
                 mesh: Optional[Mesh] = None):
  """(loss, accuracy) of context vectors on image rows.

  Args:
    arch, net: the CLIP module and its (frozen) params.
    ids: int32 (K, L) prompt layout (slots at 1..M); eot int32 (K,).
    class_mask: bool (K,) False for classes padded for sharding.
    ctx: (M, W) shared or (K, M, W) class-specific context.
    feats, labels, weights: (B, D) unit image features, (B,), (B,) row weights.
    scale, bias: logit scale and bias.
  """
  x = tower.embed_ids(arch, net, ids)
  m = ctx.shape[-2]
  c = jnp.broadcast_to(ctx.astype(x.dtype), (x.shape[0], m, x.shape[-1]))
  x = tower.constrain(x.at[:, 1:1 + m].set(c), mesh, P("data"))
  text = tower.encode_embeddings(arch, net, x, eot)
  return tower.zeroshot_loss(text, feats, labels, weights, scale, bias, class_mask)


@functools.partial(jax.jit, static_argnames=("arch", "mesh"))
def train_epoch(arch, net, ids, eot, class_mask, ctx, opt_state, hp, feats, labels, order,
                weights, scale, bias, mesh=None):
  """One epoch of SGD steps as a ``lax.scan`` over batches.

  Args:
    opt_state: the optimiser state (``optimizer(hp).init(ctx)``).
    hp: :func:`hyperparams`.
    order: int32 (S, B) row indices of each step's batch (padding rows have
      weight 0 in ``weights`` (S, B)).

  Returns:
    (ctx, opt_state, losses (S,), accuracies (S,)).
  """
  opt = optimizer(hp)
  class_pad = ctx.ndim == 3 and ctx.shape[0] != ids.shape[0]

  def step(carry, xs):
    c, s = carry
    idx, w = xs
    f = tower.constrain(feats[idx], mesh, P("data"))
    l = tower.constrain(labels[idx], mesh, P("data"))
    w = tower.constrain(w, mesh, P("data"))

    def loss_fn(cc):
      full = _pad_ctx(cc, ids.shape[0]) if class_pad else cc
      return context_loss(arch, net, ids, eot, class_mask, full, f, l, w, scale, bias, mesh)

    (loss, acc), g = jax.value_and_grad(loss_fn, has_aux=True)(c)
    updates, s = opt.update(g, s, c)
    return (optax.apply_updates(c, updates), s), (loss, acc)

  (ctx, opt_state), (losses, accs) = jax.lax.scan(step, (ctx, opt_state), (order, weights))
  return ctx, opt_state, losses, accs


def _pad_ctx(ctx, k_padded: int):
  """Class-specific context padded with copies of class 0 for padded classes."""
  k = ctx.shape[0]
  return jnp.concatenate([ctx, jnp.broadcast_to(ctx[:1], (k_padded - k,) + ctx.shape[1:])])


def init_context(model: Model, layout: layout_lib.PromptLayout, cfg: CoopConfig) -> np.ndarray:
  """Initial vectors: the token embeddings of ``cfg.init`` or N(0, 0.02) from the seed."""
  net = model.params["net"]
  if cfg.init:
    tok = np.asarray(model.tokenize([cfg.init])[0])
    tok = tok[(tok != 0) & ~np.isin(tok, layout.specials)]
    if len(tok) != cfg.num_tokens:
      raise ValueError(f"coop init {cfg.init!r} is {len(tok)} tokens ({tok.tolist()}); "
                       f"num_tokens is {cfg.num_tokens}")
    ctx = np.asarray(tower.embed_ids(model.arch, net, jnp.asarray(tok)), np.float32)
  else:
    width = int(jax.eval_shape(lambda: tower.embed_ids(
        model.arch, net, jnp.zeros((1,), jnp.int32))).shape[-1])
    ctx = 0.02 * np.random.default_rng(cfg.seed).standard_normal(
        (cfg.num_tokens, width)).astype(np.float32)
  if cfg.class_specific:
    ctx = np.repeat(ctx[None], layout.num_classes, 0)
  return ctx


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int):
  """(order (S, B) int32, weights (S, B)): this epoch's shuffled batches, last padded."""
  perm = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)
  steps = -(-n // batch_size)
  order = np.zeros(steps * batch_size, np.int32)
  order[:n] = perm
  weights = np.zeros(steps * batch_size, np.float32)
  weights[:n] = 1.0
  return order.reshape(steps, batch_size), weights.reshape(steps, batch_size)


def train(model: Model, feats: np.ndarray, labels: np.ndarray, classnames: Sequence[str],
          cfg: CoopConfig = CoopConfig(), *, mesh: Optional[Mesh] = None,
          log_every: int = 0) -> CoopResult:
  """Trains CoOp context vectors on precomputed image features.

  Args:
    model: CLIP-family model (towers frozen).
    feats: float32 (N, D) image features of the k-shot split (normalised here).
    labels: int32 (N,) classes in [0, K).
    classnames: the K class names.
    cfg: hyperparameters.
    mesh: ('data', 'model') mesh; batch rows and class prompts split over 'data'
      (the batch size must then be a multiple of the data axis).
    log_every: print the mean loss every this many epochs (0: never).

  Returns:
    a :class:`CoopResult`.

  Raises:
    ValueError: prompts longer than the context, labels outside the classes,
      a batch size the mesh cannot split.
  """
  layout = layout_lib.make_layout(model, classnames, cfg.num_tokens, cfg.suffix)
  feats, labels = layout_lib.check_rows(layout, feats, labels)
  feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
  if mesh is not None and mesh.size == 1:
    mesh = None    # one device: no constraints, and the unsharded compilation
  d = tower.data_size(mesh)
  if cfg.batch_size % d:
    raise ValueError(f"coop batch_size {cfg.batch_size} is not a multiple of the mesh's data "
                     f"axis ({d} devices)")
  ids, eot, mask = tower.pad_classes(layout, d)
  scale, bias = tower.logit_scale_of(model, cfg.logit_scale)
  ctx0 = init_context(model, layout, cfg)
  steps_per_epoch = -(-len(labels) // cfg.batch_size)
  hp = hyperparams(cfg, steps_per_epoch)
  # Every epoch must see the same argument placement to reuse one compilation:
  # on a mesh everything is replicated up front (rows are split inside the step);
  # on one device the state goes back to the host between epochs (it is small).
  put = (lambda x: jax.device_put(x, NamedSharding(mesh, P()))) if mesh else np.asarray
  ctx = put(ctx0)
  state = jax.tree.map(put, optimizer(hp).init(jnp.asarray(ctx0)))
  ids, eot, mask, feats_d, labels_d = map(put, (ids, eot, mask, feats, labels))
  net = model.params["net"]
  losses, accs = [], []
  t0 = time.perf_counter()
  for epoch in range(cfg.epochs):
    order, w = epoch_batches(len(labels), cfg.batch_size, cfg.seed, epoch)
    ctx, state, lo, ac = train_epoch(model.arch, net, ids, eot, mask, ctx, state, hp, feats_d,
                                     labels_d, put(order), put(w), scale, bias, mesh=mesh)
    ctx, state = jax.tree.map(put, (ctx, state))
    losses.append(np.asarray(lo))
    accs.append(np.asarray(ac))
    if log_every and (epoch + 1) % log_every == 0:
      print(f"coop epoch {epoch + 1}/{cfg.epochs}: loss {losses[-1].mean():.4f} "
            f"acc {accs[-1].mean():.3f}", flush=True)
  ctx = np.asarray(ctx, np.float32)
  return CoopResult(ctx=ctx, init_ctx=ctx0, losses=np.concatenate(losses),
                    accuracies=np.concatenate(accs), steps=cfg.epochs * steps_per_epoch,
                    seconds=time.perf_counter() - t0)
