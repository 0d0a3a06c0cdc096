"""Head-only training on frozen features: RoZ's CIFAR-10 supervised baselines.

RoZ (``train_clean_model.py``) replaces an ImageNet backbone's classifier by a new
``nn.Linear(D, 10)`` and optimises only that head: AdamW (lr 0.02, weight decay 0),
batch 32, 50 epochs, the learning rate divided by 1.5 whenever an epoch's loss
is higher than the previous epoch's (floor 1e-5), keeping the epoch with the best
*test* accuracy. That is the ``roz`` preset; each of its choices is recorded in
the head's recipe (``select='test'`` says the test set picked the epoch).

The ``clean`` default keeps the optimiser and schedule but selects the epoch on a
validation split carved from the training set by (seed, example id).

BatchNorm: RoZ left ``model.train()`` on, so the frozen backbone's BatchNorm
used batch statistics and updated its running averages while the head trained.
The ``roz`` preset says ``batchnorm='train'``: on a backbone with BatchNorm that
runs :func:`jaxbench.heads.bn_train.train` (the backbone runs every step); this
module's :func:`train` works on fixed features, i.e. ``batchnorm='frozen'`` (the
``clean`` default), or a backbone without BatchNorm, where both are the same.

Shuffling: epoch e visits the training examples in
``np.random.default_rng([seed, e]).permutation(n)`` order (or given
permutations), batches of ``batch_size`` with a final partial batch, as a
PyTorch ``DataLoader(shuffle=True, drop_last=False)``; the loss of a batch is
its mean cross-entropy and the epoch loss is the mean of its batch losses.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class HeadRecipe:
  """How a head is trained (recorded with the head).

  Attributes:
    lr: initial AdamW learning rate.
    weight_decay: AdamW's decoupled weight decay.
    betas, eps: AdamW's (PyTorch defaults).
    batch_size, epochs: mini-batch size and epoch count.
    lr_factor, lr_floor: after an epoch whose loss is higher than the previous
      epoch's, lr <- max(lr / lr_factor, lr_floor); lr_factor 1 disables it.
    select: 'test' (RoZ: the epoch with the best test accuracy), 'val' (best
      accuracy on the validation split) or 'last'.
    val_fraction: share of the training set carved off for 'val'.
    batchnorm: 'frozen' (features computed once, inference mode) or 'train'
      (RoZ: batch statistics, running averages updated; see the module docstring).
    preset: the preset name this recipe came from.
  """
  lr: float = 0.02
  weight_decay: float = 0.0
  betas: tuple = (0.9, 0.999)
  eps: float = 1e-8
  batch_size: int = 32
  epochs: int = 50
  lr_factor: float = 1.5
  lr_floor: float = 1e-5
  select: str = "val"
  val_fraction: float = 0.1
  batchnorm: str = "frozen"
  preset: str = "clean"

  def record(self) -> dict:
    d = dataclasses.asdict(self)
    d["betas"] = list(self.betas)
    d["method"] = "adamw_head"
    if self.select == "test":
      d["selection_note"] = "epoch chosen on the test set (RoZ's protocol: optimistic)"
    if self.preset == "roz" and self.batchnorm == "frozen":
      d["batchnorm_note"] = ("RoZ trained with BatchNorm in train mode (model.train()); "
                             "here BatchNorm is frozen (features in inference mode)")
    return d


PRESETS = {
    "roz": HeadRecipe(select="test", batchnorm="train", preset="roz"),
    "clean": HeadRecipe(select="val", preset="clean"),
}


def recipe(name: str = "clean", **overrides) -> HeadRecipe:
  """A preset (``roz`` or ``clean``) with field overrides."""
  if name not in PRESETS:
    raise ValueError(f"unknown head-training preset {name!r}; known: {sorted(PRESETS)}")
  r = dataclasses.replace(PRESETS[name], **overrides)
  if r.select not in ("test", "val", "last"):
    raise ValueError(f"head recipe select must be 'test', 'val' or 'last', got {r.select!r}")
  if r.batchnorm not in ("frozen", "train"):
    raise ValueError(f"head recipe batchnorm must be 'frozen' or 'train', got {r.batchnorm!r}")
  return r


def run_epochs(r, n: int, seed: int, permutations, train_epoch: Callable,
               accuracies: Callable, snapshot: Callable):
  """RoZ's epoch loop, shared by fixed-feature and train-mode-BatchNorm training.

  Each epoch: a permutation of the ``n`` examples from (seed, epoch) (or
  ``permutations[epoch]``), ``train_epoch(perm, lr) -> [per-batch loss]``, the
  history row with ``accuracies() -> {name_accuracy: value}``, selection of the
  first epoch with the best ``r.select`` accuracy (``snapshot()`` keeps its
  weights), then :func:`next_lr` on the epoch's mean loss.

  Returns:
    (best epoch, its snapshot, history rows).
  """
  lr, prev, history = float(r.lr), None, []
  best = (-1.0, -1, None)
  for epoch in range(r.epochs):
    perm = (np.asarray(permutations[epoch]) if permutations is not None
            else np.random.default_rng([int(seed), epoch]).permutation(n))
    losses = train_epoch(perm, lr)
    epoch_loss = float(np.mean(np.asarray(jnp.stack(losses))))
    row = {"epoch": epoch, "lr": lr, "loss": epoch_loss, **accuracies()}
    history.append(row)
    score = row.get(f"{r.select}_accuracy", 0.0) if r.select != "last" else float(epoch)
    if score > best[0]:
      best = (score, epoch, snapshot())
    lr, prev = next_lr(lr, prev, epoch_loss, r.lr_factor, r.lr_floor), epoch_loss
  return best[1], best[2], history


def next_lr(lr: float, prev_loss: Optional[float], loss: float, factor: float,
            floor: float) -> float:
  """RoZ's rule: divide lr by ``factor`` (not below ``floor``) when the epoch loss rose."""
  if prev_loss is not None and loss > prev_loss:
    return max(lr / factor, floor)
  return lr


def torch_linear_init(num_classes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``nn.Linear``'s default init, U(-1/sqrt(D), 1/sqrt(D)) for weight and bias, by seed."""
  rng = np.random.default_rng([int(seed), 0x4EAD])
  bound = 1.0 / np.sqrt(dim)
  w = rng.uniform(-bound, bound, (num_classes, dim)).astype(np.float32)
  b = rng.uniform(-bound, bound, (num_classes,)).astype(np.float32)
  return w, b


def _optimizer(r: HeadRecipe):
  return optax.inject_hyperparams(optax.adamw)(
      learning_rate=r.lr, b1=r.betas[0], b2=r.betas[1], eps=r.eps, weight_decay=r.weight_decay)


def _loss(params, x, y):
  logits = x @ params["w"].T + params["b"]
  return jnp.mean(jax.nn.logsumexp(logits, -1) -
                  jnp.take_along_axis(logits, y[:, None], -1)[:, 0])


@functools.partial(jax.jit, static_argnames=("opt",))
def _step(opt, params, state, x, y):
  loss, g = jax.value_and_grad(_loss)(params, x, y)
  updates, state = opt.update(g, state, params)
  return optax.apply_updates(params, updates), state, loss


@dataclasses.dataclass(frozen=True)
class TrainResult:
  """Attributes:
    weight: float32 (K, D) and bias (K,) of the selected epoch.
    best_epoch: 0-based index of that epoch.
    history: per epoch {'epoch', 'lr', 'loss', '<eval set>_accuracy', ...}.
    recipe: the recipe's record.
  """
  weight: np.ndarray
  bias: np.ndarray
  best_epoch: int
  history: list
  recipe: dict


def _accuracy(w, b, x, y) -> float:
  return float(np.mean(np.argmax(np.asarray(x, np.float32) @ w.T + b, -1) == np.asarray(y)))


def train(features, labels, num_classes: int, r: HeadRecipe, *, seed: int = 0,
          init: Optional[tuple[np.ndarray, np.ndarray]] = None,
          eval_sets: Optional[Mapping[str, tuple]] = None,
          permutations: Optional[Sequence[np.ndarray]] = None) -> TrainResult:
  """Trains a linear head on fixed features.

  Args:
    features: float (N, D) training features; labels: int (N,).
    num_classes: K.
    r: the recipe (:func:`recipe`).
    seed: shuffling and initialisation seed.
    init: (weight (K, D), bias (K,)) to start from; default :func:`torch_linear_init`.
    eval_sets: {name: (features, labels)} evaluated after every epoch; must hold
      'test' when ``r.select == 'test'`` and 'val' when ``r.select == 'val'``.
    permutations: per-epoch visiting orders (default: by (seed, epoch)).

  Returns:
    :class:`TrainResult`; the first epoch with the best selection accuracy wins.
  """
  if r.batchnorm != "frozen":
    raise ValueError("train_head.train works on fixed features (batchnorm='frozen'); "
                     "train-mode BatchNorm needs the images: jaxbench.heads.bn_train.train")
  x_all = np.asarray(features, np.float32)
  y_all = np.asarray(labels, np.int32)
  n, dim = x_all.shape
  eval_sets = dict(eval_sets or {})
  if r.select in ("test", "val") and r.select not in eval_sets:
    raise ValueError(f"head recipe selects on {r.select!r} but no {r.select!r} eval set was "
                     f"given (have {sorted(eval_sets)})")
  if y_all.size and (y_all.min() < 0 or y_all.max() >= num_classes):
    raise ValueError(f"training labels must lie in [0, {num_classes}), got "
                     f"[{y_all.min()}, {y_all.max()}]")
  w0, b0 = init if init is not None else torch_linear_init(num_classes, dim, seed)
  params = {"w": jnp.asarray(w0, jnp.float32), "b": jnp.asarray(b0, jnp.float32)}
  opt = _optimizer(r)
  state = opt.init(params)
  x_dev, y_dev = jnp.asarray(x_all), jnp.asarray(y_all)

  def train_epoch(perm, lr):
    nonlocal params, state
    state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    losses = []
    for s in range(0, n, r.batch_size):
      idx = jnp.asarray(perm[s:s + r.batch_size])
      params, state, loss = _step(opt, params, state, x_dev[idx], y_dev[idx])
      losses.append(loss)
    return losses

  def accuracies():
    w, b = np.asarray(params["w"]), np.asarray(params["b"])
    return {f"{name}_accuracy": _accuracy(w, b, ex, ey) for name, (ex, ey) in eval_sets.items()}

  def snapshot():
    return np.asarray(params["w"]).copy(), np.asarray(params["b"]).copy()

  best_epoch, (w, b), history = run_epochs(r, n, seed, permutations, train_epoch, accuracies,
                                           snapshot)
  return TrainResult(w, b, best_epoch, history, r.record())
