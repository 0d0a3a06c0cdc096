"""L2-regularised multinomial logistic regression with L-BFGS, in JAX (linear probes).

The objective is scikit-learn's ``LogisticRegression(solver='lbfgs', C=C)``
(multinomial, intercept unpenalised) divided by the number of examples n, so it
has the same minimiser and stays O(1) whatever n is::

    f(W, b) = mean_i CE(x_i W^T + b, y_i) + ||W||^2 / (2 C n)

Softmax is invariant to adding one constant to every intercept, so b is only
defined up to that constant; like scikit-learn (whose L-BFGS started at zero never
leaves the sum-zero subspace) the returned intercepts sum to zero.

:func:`sweep` is the CLIP paper's protocol: fit every C of a grid on a training
split, keep the C with the best validation accuracy, refit on train + validation.
Successive fits are warm-started (ascending C), so a 9-value sweep costs a few
cold fits. Features may be sharded over a mesh's ``data`` axis: the loss is a mean
over rows, which XLA reduces across devices.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu

# The CLIP paper sweeps C over 1e-6..1e6; 9 log-spaced values over the useful part.
DEFAULT_CS = tuple(float(c) for c in np.logspace(-3, 5, 9))


@dataclasses.dataclass(frozen=True)
class Fit:
  """One fitted probe.

  Attributes:
    weights: float32 (K, D).
    bias: float32 (K,), summing to zero.
    C: inverse L2 strength (scikit-learn's ``C``).
    iterations: L-BFGS iterations run.
    grad_norm: max |gradient| of the (mean-scaled) objective at the end.
    objective: the objective's value at the end.
  """
  weights: np.ndarray
  bias: np.ndarray
  C: float
  iterations: int
  grad_norm: float
  objective: float


def objective(params, x, y, mask, l2):
  """Mean cross-entropy over rows with mask 1, plus l2/2 ||W||^2.

  Args:
    params: {'w': (K, D), 'b': (K,)}.
    x: (N, D) features; y: int32 (N,) labels; mask: (N,) 1 for real rows, 0 for padding.
    l2: 1 / (C n).
  """
  logits = x @ params["w"].T + params["b"]
  lse = jax.nn.logsumexp(logits, axis=-1)
  picked = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
  ce = jnp.sum((lse - picked) * mask) / jnp.sum(mask)
  return ce + 0.5 * l2 * jnp.sum(params["w"] ** 2)


@functools.partial(jax.jit, static_argnames=("max_iter", "memory", "fit_intercept"))
def _lbfgs(params, x, y, mask, l2, tol, *, max_iter: int, memory: int, fit_intercept: bool):
  def fun(p):
    if not fit_intercept:
      p = {"w": p["w"], "b": jnp.zeros_like(p["b"])}
    return objective(p, x, y, mask, l2)

  opt = optax.lbfgs(memory_size=memory)
  value_and_grad = optax.value_and_grad_from_state(fun)

  def step(carry):
    p, state = carry
    value, grad = value_and_grad(p, state=state)
    updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=fun)
    return optax.apply_updates(p, updates), state

  def gmax(state):
    g = otu.tree_get(state, "grad")
    return jnp.maximum(jnp.max(jnp.abs(g["w"])), jnp.max(jnp.abs(g["b"])))

  def cont(carry):
    _, state = carry
    it = otu.tree_get(state, "count")
    return (it == 0) | ((it < max_iter) & (gmax(state) >= tol))

  state = opt.init(params)
  params, state = jax.lax.while_loop(cont, step, (params, state))
  return (params, otu.tree_get(state, "count"), gmax(state),
          otu.tree_get(state, "value"))


def _device_data(features, labels, mesh, dtype=np.float32, mask=None):
  """(x, y, mask) on device; rows padded to a multiple of the data axis and sharded."""
  x = np.asarray(features, dtype)
  y = np.asarray(labels, np.int32)
  mask = np.ones(len(y), dtype) if mask is None else np.asarray(mask, dtype)
  if mesh is None:
    return jnp.asarray(x), jnp.asarray(y), jnp.asarray(mask)
  from jax.sharding import NamedSharding, PartitionSpec as P
  d = int(mesh.shape["data"])
  pad = (-len(y)) % d
  if pad:
    x = np.concatenate([x, np.zeros((pad, x.shape[1]), x.dtype)])
    y = np.concatenate([y, np.zeros(pad, y.dtype)])
    mask = np.concatenate([mask, np.zeros(pad, mask.dtype)])
  put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
  return put(x, P("data", None)), put(y, P("data")), put(mask, P("data"))


def fit(features, labels, num_classes: int, *, C: float, fit_intercept: bool = True,
        max_iter: int = 1000, tol: float = 1e-6, memory: int = 10, init: Optional[Fit] = None,
        mesh=None, dtype: str = "float32", _data=None) -> Fit:
  """Fits one multinomial probe.

  Args:
    features: float (N, D); labels: int (N,) in [0, num_classes).
    num_classes: K (classes absent from ``labels`` still get a row).
    C: inverse L2 strength, as scikit-learn's (must be > 0).
    fit_intercept: learn an unpenalised bias (scikit-learn's default) or none.
    max_iter: L-BFGS iterations at most.
    tol: stop when every |gradient| of the mean-scaled objective is below this.
    memory: L-BFGS history length.
    init: a previous fit to warm-start from.
    mesh: optional ('data', ...) mesh: rows are sharded over 'data'.
    dtype: 'float32' (default: fast, accurate to ~1e-7 in the gradient) or
      'float64' (the whole solve under ``jax.enable_x64``, for exact comparisons).

  Returns:
    :class:`Fit` (weights in ``dtype``).
  """
  if dtype not in ("float32", "float64"):
    raise ValueError(f"logistic regression dtype must be 'float32' or 'float64', got {dtype!r}")
  with jax.enable_x64(dtype == "float64"):
    return _fit(features, labels, num_classes, C=C, fit_intercept=fit_intercept,
                max_iter=max_iter, tol=tol, memory=memory, init=init, mesh=mesh,
                dtype=np.dtype(dtype), data=_data)


def _fit(features, labels, num_classes, *, C, fit_intercept, max_iter, tol, memory, init,
         mesh, dtype, data) -> Fit:
  if not C > 0:
    raise ValueError(f"logistic regression C must be > 0, got {C!r}")
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                     f"[{labels.min()}, {labels.max()}]")
  x, y, mask = data if data is not None else _device_data(features, labels, mesh, dtype)
  n, dim = len(labels), x.shape[1]
  if init is None:
    params = {"w": jnp.zeros((num_classes, dim), dtype), "b": jnp.zeros((num_classes,), dtype)}
  else:
    params = {"w": jnp.asarray(init.weights, dtype), "b": jnp.asarray(init.bias, dtype)}
  p, it, g, v = _lbfgs(params, x, y, mask, jnp.asarray(1.0 / (C * n), dtype),
                       jnp.asarray(tol, dtype), max_iter=int(max_iter), memory=int(memory),
                       fit_intercept=bool(fit_intercept))
  b = np.asarray(p["b"]) if fit_intercept else np.zeros(num_classes, dtype)
  return Fit(np.asarray(p["w"]), (b - b.mean()).astype(dtype), float(C), int(it),
             float(g), float(v))


def predict(fit_: Fit, features) -> np.ndarray:
  """int (N,) argmax class of ``features @ W^T + b``."""
  x = np.asarray(features, fit_.weights.dtype)
  return np.asarray(np.argmax(x @ fit_.weights.T + fit_.bias, axis=-1))


def accuracy(fit_: Fit, features, labels) -> float:
  return float(np.mean(predict(fit_, features) == np.asarray(labels)))


def validation_mask(ids: Sequence, seed: int, fraction: float) -> np.ndarray:
  """bool (N,): the examples carved off for validation, drawn by (seed, example id).

  An example is in the validation split when its (seed, id) score (see
  :func:`jaxbench.data.kshot.draw_scores`) falls in the lowest ``fraction`` of the
  score range: independent of the order the examples come in.
  """
  if not 0 < fraction < 1:
    raise ValueError(f"validation fraction must lie in (0, 1), got {fraction!r}")
  from jaxbench.data import kshot
  scores = kshot.draw_scores(int(seed), [str(i) for i in ids])
  return scores < np.uint64(int(fraction * 2.0**64))


@dataclasses.dataclass(frozen=True)
class Sweep:
  """Result of :func:`sweep`.

  Attributes:
    final: the probe refit on train + validation with the best C.
    best_C: the C chosen on validation accuracy.
    val_accuracy: {C: validation accuracy}, in sweep order.
    iterations: {C: L-BFGS iterations on the training split}.
  """
  final: Fit
  best_C: float
  val_accuracy: dict
  iterations: dict


def sweep(features, labels, num_classes: int, *, val_mask: np.ndarray,
          Cs: Sequence[float] = DEFAULT_CS, fit_intercept: bool = True, max_iter: int = 1000,
          tol: float = 1e-6, mesh=None, refit: bool = True, dtype: str = "float32") -> Sweep:
  """Chooses C on a validation split, then refits on all examples.

  Args:
    features: float (N, D); labels: int (N,).
    num_classes: K.
    val_mask: bool (N,): validation examples (see :func:`validation_mask`).
    Cs: the grid; fitted in ascending order, each warm-started from the previous.
    refit: refit on train + validation with the best C (the CLIP protocol); False
      returns the training-split fit.

  Returns:
    :class:`Sweep`. Ties in validation accuracy go to the smaller C (stronger L2).
  """
  features = np.asarray(features, np.float32)
  labels = np.asarray(labels)
  val_mask = np.asarray(val_mask, bool)
  if val_mask.shape != labels.shape or not val_mask.any() or val_mask.all():
    raise ValueError(f"val_mask must be a bool ({len(labels)},) array with both splits "
                     f"non-empty; got shape {val_mask.shape}, {int(val_mask.sum())} true")
  # One set of device arrays for every fit: the training fits mask the validation rows
  # out, the refit masks nothing, so all share one shape and one compiled solver.
  with jax.enable_x64(dtype == "float64"):
    x_d, y_d, train_m = _device_data(features, labels, mesh, np.dtype(dtype), mask=~val_mask)
    all_m = _device_data(np.zeros((len(labels), 1)), labels, mesh, np.dtype(dtype))[2]
  prev, fits, accs, iters = None, {}, {}, {}
  for C in sorted(float(c) for c in Cs):
    prev = fit(None, labels[~val_mask], num_classes, C=C, fit_intercept=fit_intercept,
               max_iter=max_iter, tol=tol, init=prev, dtype=dtype,
               _data=(x_d, y_d, train_m))
    fits[C] = prev
    accs[C] = accuracy(prev, features[val_mask], labels[val_mask])
    iters[C] = prev.iterations
  best = max(accs, key=lambda c: (accs[c], -c))
  final = fits[best]
  if refit:
    final = fit(None, labels, num_classes, C=best, fit_intercept=fit_intercept,
                max_iter=max_iter, tol=tol, init=fits[best], dtype=dtype,
                _data=(x_d, y_d, all_m))
  return Sweep(final, best, accs, iters)
