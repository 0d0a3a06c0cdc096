"""Head training with the frozen backbone's BatchNorm in train mode (RoZ's ``model.train()``).

RoZ trains only the new head, but with ``model.train()`` on: every BatchNorm of the
frozen backbone normalises each batch with that batch's statistics (biased
variance) and updates its running averages (momentum 0.1, unbiased variance), so
the backbone that is evaluated afterwards has new BatchNorm statistics. Features
cannot be computed once; each step runs the backbone.

jaxbench's BatchNorm (:class:`jaxbench.models.layers.BatchNorm`) is inference-only;
:func:`batch_stat_forward` swaps in train-mode normalisation with
``flax.linen.intercept_methods`` (no change to any model family) and returns the
batch statistics, which :func:`update_running` folds into the parameters.
Batches run on the default device (not sharded over a mesh): RoZ's batches of 32
are too small to split.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from jaxbench.heads import features as features_lib
from jaxbench.heads import train_head
from jaxbench.models import layers
from jaxbench.models.api import Model


def has_batchnorm(model: Model) -> bool:
  flat = traverse_util.flatten_dict(model.params["net"])
  return any(k[-1] == "var" and k[:-1] + ("mean",) in flat for k in flat)


def batch_stat_forward(fn):
  """Wraps ``fn(net, x) -> z`` so BatchNorm uses batch statistics.

  Returns:
    ``(net, x) -> (z, {param path tuple: (batch mean, unbiased batch var)})``.
  """
  def run(net, x):
    stats = {}

    def interceptor(next_fun, args, kwargs, ctx):
      if not (isinstance(ctx.module, layers.BatchNorm) and ctx.method_name == "__call__"):
        return next_fun(*args, **kwargs)
      m, h = ctx.module, args[0]
      scale = m.get_variable("params", "scale").astype(jnp.float32)
      bias = m.get_variable("params", "bias").astype(jnp.float32)
      hf = h.astype(jnp.float32)
      axes = tuple(range(hf.ndim - 1))
      mean = hf.mean(axes)
      var = hf.var(axes)
      n = hf.size // hf.shape[-1]
      stats[tuple(m.path)] = (mean, var * n / max(n - 1, 1))
      return ((hf - mean) * jax.lax.rsqrt(var + m.eps) * scale + bias).astype(h.dtype)

    with nn.intercept_methods(interceptor):
      z = fn(net, x)
    return z, stats
  return run


def update_running(net, stats, momentum: float):
  """PyTorch's running-average update: new = (1 - momentum) old + momentum batch."""
  flat = dict(traverse_util.flatten_dict(net))
  for path, (mean, var) in stats.items():
    for leaf, v in (("mean", mean), ("var", var)):
      key = path + (leaf,)
      if key not in flat:
        raise KeyError(f"BatchNorm statistics {'/'.join(key)} not in the backbone parameters")
      old = flat[key]
      flat[key] = ((1 - momentum) * old.astype(jnp.float32) + momentum * v).astype(old.dtype)
  return traverse_util.unflatten_dict(flat)


def bn_leaves(net) -> dict:
  """{'a/b/mean': array, ...}: every BatchNorm statistic of a backbone (host copies)."""
  flat = traverse_util.flatten_dict(net)
  return {"/".join(k): np.asarray(v) for k, v in flat.items()
          if k[-1] in ("mean", "var") and k[:-1] + ("scale",) in flat}


def set_bn_leaves(net, leaves: Mapping[str, np.ndarray]):
  """The backbone with the given BatchNorm statistics (see :func:`bn_leaves`)."""
  flat = dict(traverse_util.flatten_dict(net))
  for name, v in leaves.items():
    key = tuple(name.split("/"))
    if key not in flat or tuple(flat[key].shape) != tuple(v.shape):
      raise KeyError(f"BatchNorm statistic {name!r} {tuple(v.shape)} does not match the backbone")
    flat[key] = jnp.asarray(v, flat[key].dtype)
  return traverse_util.unflatten_dict(flat)


def _normalise(model: Model, images):
  return model.preprocess.normalize(images.astype(jnp.float32) / 255.0)


@dataclasses.dataclass(frozen=True)
class BNTrainResult:
  """``weight``/``bias`` of the selected epoch, its BatchNorm statistics (``bn``, see
  :func:`bn_leaves`), ``best_epoch``, per-epoch ``history`` and the ``recipe`` record."""
  weight: np.ndarray
  bias: np.ndarray
  bn: dict
  best_epoch: int
  history: list
  recipe: dict


def train(model: Model, images: np.ndarray, labels: np.ndarray, num_classes: int,
          r: train_head.HeadRecipe, *, seed: int = 0, momentum: float = 0.1,
          init: Optional[tuple] = None, eval_sets: Optional[Mapping[str, tuple]] = None,
          permutations: Optional[Sequence[np.ndarray]] = None,
          normalize: bool = False) -> BNTrainResult:
  """:func:`jaxbench.heads.train_head.train` with the backbone in train mode.

  Args:
    model: the frozen backbone (weights never change; BatchNorm statistics do).
    images: uint8 (N, H, W, 3) preprocessed training images; labels int (N,).
    eval_sets: {name: (uint8 images, labels)}, scored after every epoch with the
      updated statistics in inference mode (``model.eval()``).
    Other arguments: as :func:`jaxbench.heads.train_head.train`.
  """
  x_all = np.asarray(images)
  y_all = np.asarray(labels, np.int32)
  n = len(y_all)
  eval_sets = dict(eval_sets or {})
  if r.select in ("test", "val") and r.select not in eval_sets:
    raise ValueError(f"head recipe selects on {r.select!r} but no {r.select!r} eval set was "
                     f"given (have {sorted(eval_sets)})")
  fn = features_lib.feature_fn(model, normalize=normalize)
  fwd = batch_stat_forward(fn)
  net = model.params["net"]
  dim = int(jax.eval_shape(fn, net, jnp.zeros((1,) + x_all.shape[1:], jnp.float32)).shape[-1])
  w0, b0 = init if init is not None else train_head.torch_linear_init(num_classes, dim, seed)
  head = {"w": jnp.asarray(w0, jnp.float32), "b": jnp.asarray(b0, jnp.float32)}
  opt = train_head._optimizer(r)
  state = opt.init(head)

  @jax.jit
  def step(net, head, state, x, y):
    z, stats = fwd(net, _normalise(model, x))
    z = jax.lax.stop_gradient(z)
    loss, g = jax.value_and_grad(train_head._loss)(head, z, y)
    updates, state = opt.update(g, state, head)
    return update_running(net, stats, momentum), optax.apply_updates(head, updates), state, loss

  @jax.jit
  def logits(net, head, x):
    return fn(net, _normalise(model, x)) @ head["w"].T + head["b"]

  def accuracy(net, head, ex, ey, bs=256):
    preds = [np.asarray(logits(net, head, jnp.asarray(ex[i:i + bs]))).argmax(-1)
             for i in range(0, len(ey), bs)]
    return float(np.mean(np.concatenate(preds) == np.asarray(ey)))

  def train_epoch(perm, lr):
    nonlocal net, head, state
    state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    losses = []
    for s in range(0, n, r.batch_size):
      idx = perm[s:s + r.batch_size]
      net, head, state, loss = step(net, head, state, jnp.asarray(x_all[idx]),
                                    jnp.asarray(y_all[idx]))
      losses.append(loss)
    return losses

  def accuracies():
    return {f"{name}_accuracy": accuracy(net, head, ex, ey)
            for name, (ex, ey) in eval_sets.items()}

  def snapshot():
    return np.asarray(head["w"]), np.asarray(head["b"]), bn_leaves(net)

  best_epoch, (w, b, bn), history = train_head.run_epochs(
      r, n, seed, permutations, train_epoch, accuracies, snapshot)
  rec = r.record()
  rec.pop("batchnorm_note", None)
  rec["batchnorm"] = "train"
  rec["bn_momentum"] = momentum
  return BNTrainResult(w, b, bn, best_epoch, history, rec)
