"""DeepFool (Moosavi-Dezfooli et al. 2016, https://arxiv.org/abs/1511.04599).

A minimal-perturbation attack: linearise the classifier at the current point,
step to the nearest linearised decision boundary, repeat until the label
changes (at most ``max_iters`` times), then overshoot by 2%.

Distance: for ``norm='linf'`` the RoZ variant (protocol.md §1.3): the distance
to boundary k is ``|f_k| / ||w_k||_1`` and the step ``(pert + 1e-4) *
sign(w)``; for ``norm='l2'`` the original ``|f_k| / ||w_k||_2`` with step
``(pert + 1e-4) * w / ||w||_2``. Here f_k = z_k - z_label and w_k its input
gradient. RoZ counts an example robust iff the final ``||(1 + overshoot) *
r_tot||`` exceeds eps; an example whose minimal perturbation exceeds eps is
returned unperturbed (``project_exceeding=True`` returns its projection onto
the ball instead, a stronger but non-RoZ variant).

Non-convergence: an example still classified as its clean label after
``max_iters`` steps (a flat or saturated model, clipping at the bounds, too few
iterations) has no minimal perturbation. RoZ raises an error there; here it is
returned unperturbed, flagged in ``diagnostics['nonconverged']`` and its
``min_eps`` is +inf. Rule: such an example is *not* robust
(:func:`jaxbench.attacks.metrics.summarize` leaves it out of robust_acc and
counts it in ``deepfool_nonconverged``): failing to find the boundary is not
evidence that it lies beyond eps.

Candidates: every class (RoZ) or the top-k classes of the clean logits.

Class gradients. Generic path: one vector-Jacobian product per candidate class,
batched over classes with ``vmap`` and chunked. Zero-shot path: when
``params`` follows the Model contract of a zero-shot head (``params['head']``
(K, D), ``params['logit_scale']``), logits are ``s * u(x) @ W.T + b`` with
``u`` the normalised image embedding, which ``apply`` itself returns when the
head is replaced by the identity; then D vector-Jacobian products give
``du/dx`` and every class gradient is ``s * (W_k - W_label) @ du/dx``, a GEMM.
For CLIP (D = 512 < K = 1000) that halves the backward passes and turns the
rest into one large matrix product. On accelerators whose float32 matmuls use
TF32 the identity head rounds ``u`` like the model's own head does; the
reported robustness is always the re-evaluation of the returned images.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar, Optional

import jax
import jax.numpy as jnp

from jaxbench.attacks import base
from jaxbench.attacks.per_example import expand, norms, select
from jaxbench.attacks.threat import AttackInputError, ThreatModel, direction


def _dual_norm(w, norm):
  """(C, N) dual norms of class gradients (C, N, ...): L1 for L-inf, L2 for L2."""
  flat = w.reshape(w.shape[0], w.shape[1], -1)
  if norm == "linf":
    return jnp.sum(jnp.abs(flat), axis=-1)
  return jnp.sqrt(jnp.sum(flat * flat, axis=-1))


def embedding_head(params, num_out: int):
  """(params with an identity head, W, scale, bias, D) if ``params`` is a
  zero-shot head per the Model contract, else None."""
  if not isinstance(params, Mapping) or "head" not in params or "logit_scale" not in params:
    return None
  w = params["head"]
  if getattr(w, "ndim", 0) != 2 or w.shape[0] != num_out:
    return None
  d = w.shape[1]
  p2 = dict(params)
  p2["head"] = jnp.eye(d, dtype=w.dtype)
  p2["logit_scale"] = jnp.ones_like(params["logit_scale"])
  if "logit_bias" in params:
    p2["logit_bias"] = jnp.zeros_like(params["logit_bias"])
  return p2, w, params["logit_scale"], params.get("logit_bias", 0.0), d


@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class DeepFool(base.Iterative):
  """DeepFool with RoZ's settings by default.

  Attributes:
    overshoot: final perturbation is (1 + overshoot) * r_tot (RoZ: 0.02).
    max_iters: linearisation steps (RoZ: 50).
    candidates: None for every class (RoZ), or k for the clean top-k.
    class_chunk: classes per batched gradient/GEMM chunk (memory bound).
    jac_chunk: embedding rows per batched vector-Jacobian product (memory bound).
    embed: 'auto' (use the zero-shot structure when it has fewer embedding
      dimensions than candidate classes), 'never' or 'always'.
    project_exceeding: return the ball projection instead of the clean image
      when the minimal perturbation exceeds eps.
  """
  threat: ThreatModel = ThreatModel()
  overshoot: float = 0.02
  max_iters: int = 50
  candidates: Optional[int] = None
  class_chunk: int = 128
  jac_chunk: int = 128
  embed: str = "auto"
  project_exceeding: bool = False

  name: ClassVar[str] = "deepfool"
  minimal: ClassVar[bool] = True

  def __post_init__(self):
    super().__post_init__()
    if self.threat.targeted is not None:
      raise AttackInputError("deepfool is untargeted: targeted must be None")
    if self.embed not in ("auto", "never", "always"):
      raise AttackInputError(f"deepfool: embed={self.embed!r}: expected auto|never|always")
    if self.candidates is not None and self.candidates < 2:
      raise AttackInputError(f"deepfool: candidates={self.candidates!r}: expected >= 2")
    if (self.max_iters < 1 or self.class_chunk < 1 or self.jac_chunk < 1
        or self.overshoot < 0):
      raise AttackInputError("deepfool: max_iters, class_chunk, jac_chunk >= 1 and "
                             "overshoot >= 0")

  def init(self, images, labels, keys, eps, targets, mask):
    s = super().init(images, labels, keys, eps, targets, mask)
    s["r"] = jnp.zeros_like(s["x"])
    if self.candidates is not None:
      s["cand"] = jnp.zeros((images.shape[0], self.candidates), jnp.int32)
    return s

  # -- class gradients ------------------------------------------------------
  def _linearize(self, models: base.Models, z, num_classes: int):
    """logits (N, K) and grads(cls (C, N), label (N,)) -> (C, N, ...) of z_c - z_label."""
    n_cand = num_classes if self.candidates is None else self.candidates
    eh = None
    if self.embed != "never" and models.same:
      eh = embedding_head(models.params, num_classes)
      if eh is not None and self.embed == "auto" and eh[4] >= n_cand:
        eh = None
    if self.embed == "always" and eh is None:
      raise AttackInputError("deepfool: embed='always' needs a zero-shot head in params "
                             "('head' (K, D) and 'logit_scale')")
    if eh is None:
      logits, vjp = jax.vjp(models.victim, z)
      k = logits.shape[-1]

      def grads(cls, label):
        cot = jax.nn.one_hot(cls, k) - jax.nn.one_hot(label, k)[None]
        return jax.vmap(vjp)(cot.astype(logits.dtype))[0]
      return logits, grads

    p2, w, scale, bias, d = eh
    ufn = lambda zz: models.apply(p2, models.threat.to_pixels(zz))
    u, vjp_u = jax.vjp(ufn, z)
    hp = jax.lax.Precision.HIGHEST
    logits = scale * jnp.matmul(u, w.T, precision=hp) + bias
    # du/dz row by row: D vector-Jacobian products, jac_chunk at a time so the
    # backward pass's memory stays bounded.
    c = min(self.jac_chunk, d)
    nchunk = -(-d // c)
    eye = jnp.eye(nchunk * c, d, dtype=u.dtype).reshape(nchunk, c, d)
    jac = jax.lax.map(
        lambda rows: jax.vmap(vjp_u)(jnp.broadcast_to(rows[:, None, :], (c,) + u.shape))[0],
        eye)
    jac = jac.reshape((nchunk * c,) + z.shape)[:d]   # (D, N, H, W, C)

    def grads(cls, label):
      dw = scale * (w[cls] - w[label][None])        # (C, N, D)
      return jnp.einsum("cnd,dn...->cn...", dw, jac, precision=hp)
    return logits, grads

  def _nearest(self, logits, grads, label, cand):
    """Per example: (pert, w) of the nearest linearised boundary over candidates."""
    n, k = logits.shape
    if cand is None:
      classes = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32)[:, None], (k, n))
    else:
      classes = cand[:, 1:].T                      # (k-1, N), label excluded
    c = self.class_chunk
    total = classes.shape[0]
    nchunk = -(-total // c)
    pad = nchunk * c - total
    valid = jnp.concatenate([jnp.ones((total, n), bool), jnp.zeros((pad, n), bool)])
    classes = jnp.concatenate([classes, jnp.broadcast_to(label[None], (pad, n))])
    f_lab = jnp.take_along_axis(logits, label[:, None], axis=1)[:, 0]

    def body(carry, xs):
      best_p, best_w = carry
      cls, ok = xs
      ok = ok & (cls != label[None])
      f = jnp.take_along_axis(logits, cls.T, axis=1).T - f_lab[None]   # (C, N)
      w = grads(cls, label)                                            # (C, N, ...)
      p = jnp.abs(f) / _dual_norm(w, self.threat.norm)
      p = jnp.where(ok & jnp.isfinite(p), p, jnp.inf)
      i = jnp.argmin(p, axis=0)                                        # (N,)
      p_min = jnp.take_along_axis(p, i[None], axis=0)[0]
      w_min = jnp.take_along_axis(w, i.reshape((1, n) + (1,) * (w.ndim - 2)), axis=0)[0]
      better = p_min < best_p
      return (jnp.where(better, p_min, best_p),
              select(better, w_min, best_w)), None

    shape = jax.eval_shape(lambda: grads(classes[:1], label))
    init = (jnp.full((n,), jnp.inf, logits.dtype), jnp.zeros(shape.shape[1:], shape.dtype))
    (pert, w), _ = jax.lax.scan(
        body, init, (classes.reshape(nchunk, c, n), valid.reshape(nchunk, c, n)))
    return pert, w

  # -- state machine --------------------------------------------------------
  def step(self, models: base.Models, s: dict) -> dict:
    tm = self.threat
    z, t, r = s["x"], s["t"], s["r"]
    active = ~s["done"]
    z0 = tm.to_space(s["x0"])
    lo, hi = tm.bounds_np()
    k = jax.eval_shape(models.victim, z).shape[-1]
    logits, grads = self._linearize(models, z, k)
    first = active & (t == 0)
    s = self.record_clean(s, logits, first)
    if self.candidates is not None:
      if self.candidates > k:
        raise AttackInputError(f"deepfool: candidates={self.candidates} > {k} classes")
      top = jax.lax.top_k(logits, self.candidates)[1].astype(jnp.int32)
      s["cand"] = jnp.where(first[:, None], top, s["cand"])
    label = s["clean_pred"]      # RoZ attacks the clean prediction (== y when correct)
    pred = jnp.argmax(logits, axis=-1)
    fooled = (t > 0) & (pred != label)
    stop = self.not_attacked(s) | fooled | (t >= self.max_iters)

    pert, w = self._nearest(logits, grads, label, s.get("cand"))
    if tm.norm == "linf":
      step_dir = jnp.sign(w)
    else:
      step_dir = direction(w, "l2")
    ri = expand(pert + 1e-4, z.ndim) * step_dir
    ri = jnp.where(expand(jnp.isfinite(pert), z.ndim), ri, 0.0)
    r_new = r + ri
    z_new = jnp.clip(z0 + (1 + self.overshoot) * r_new, lo, hi)
    upd = active & ~stop
    s = base.update_where(s, upd, {"r": r_new, "x": z_new})
    return self.advance(s, active, stop, fooled)

  def output(self, s: dict) -> dict:
    out = super().output(s)
    linf, l2 = norms((1 + self.overshoot) * s["r"])
    pn = linf if self.threat.norm == "linf" else l2
    min_eps = jnp.where(s["fooled"], pn, jnp.inf)
    min_eps = jnp.where(s["clean_correct"], min_eps, 0.0)
    z0 = self.threat.to_space(s["x0"])
    keep = s["fooled"] & ((pn <= s["eps"]) | self.project_exceeding)
    out["x"] = select(keep, s["x"], z0)
    out["diag_min_eps"] = min_eps
    out["diag_iterations"] = jnp.maximum(s["t"] - 1, 0)
    # Attacked (clean-correct, not padding) but not fooled within max_iters.
    out["diag_nonconverged"] = s["clean_correct"] & ~s["fooled"]
    return out
