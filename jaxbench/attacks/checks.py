"""Sanity checks stored with every attack row (ideas from auto-attack's checks.py).

Each check is a pure function of an :class:`AttackResult` (or of a model and
a batch) that returns plain numbers/flags for the results row; :func:`warn`
turns the alarming ones into Python warnings. A flag is a reason to distrust a
robust accuracy, not a failure of the run:

* ``ball_and_bounds``: every returned example lies in its eps-ball and bounds.
* ``zero_gradient_fraction``: input-gradient elements that are exactly zero at
  the clean image (gradient masking, dead ReLUs, integer casts).
* ``determinism``: two forward passes on the same batch agree bit for bit
  (randomised defences make single-run robust accuracy meaningless).
* ``probability_outputs``: outputs look like probabilities, not logits
  (cross-entropy on softmax outputs has vanishing gradients).
* ``blackbox_beats_whitebox``: a score-based attack found more adversarial
  examples than the strongest white-box one, a classic sign of masking.
* ``min_eps_search``: minimal-perturbation attacks: how many examples have no
  minimal eps (never broken within the grid, DeepFool not converged), and a
  "> max grid" note when that makes the median +inf.
"""
from __future__ import annotations

import warnings
from typing import Callable, Collection, Mapping, Optional

import jax
import numpy as np

# Names of score-based (black-box) attacks: filled by
# :func:`jaxbench.attacks.base.register` from each class's ``score_based`` flag,
# so a new black-box attack needs no entry here.
BLACKBOX: set[str] = set()


class AttackWarning(UserWarning):
  """A sanity check flagged an attack result."""


def _np(x):
  return np.asarray(jax.device_get(x))


def _diag(result) -> Mapping:
  """Diagnostics of an AttackResult, or per-example outputs as
  :func:`jaxbench.attacks.metrics.outputs` returns (concatenated over batches)."""
  return result if isinstance(result, Mapping) else result.diagnostics


def ball_and_bounds(result) -> dict:
  """Counts of examples outside their ball / bounds (padding excluded)."""
  d = _diag(result)
  m = _np(d["mask"])
  return {"outside_ball": int(np.sum(m & ~_np(d["in_ball"]))),
          "outside_bounds": int(np.sum(m & ~_np(d["in_bounds"])))}


def zero_gradient_fraction(result) -> dict:
  """Mean fraction of exactly-zero gradient elements at the clean images, and
  the fraction of examples whose gradient is entirely zero."""
  d = _diag(result)
  m = _np(d["mask"]) & _np(d["clean_correct"])
  z = _np(d["zero_grad_frac"])[m]
  if z.size == 0:
    return {"zero_grad_frac": 0.0, "all_zero_grad_examples": 0.0}
  return {"zero_grad_frac": float(np.mean(z)),
          "all_zero_grad_examples": float(np.mean(z >= 1.0))}


def probability_outputs(result) -> dict:
  d = _diag(result)
  m = _np(d["mask"])
  p = _np(d["prob_like"])[m]
  return {"prob_like_frac": float(np.mean(p)) if p.size else 0.0}


def determinism(apply: Callable, params, images) -> dict:
  """Runs two forward passes; flags any difference in logits or predictions."""
  a = _np(apply(params, images))
  b = _np(apply(params, images))
  return {"deterministic": bool(np.array_equal(a, b)),
          "max_logit_diff": float(np.max(np.abs(a - b))) if a.size else 0.0,
          "pred_changes": int(np.sum(np.argmax(a, -1) != np.argmax(b, -1)))}


def blackbox_beats_whitebox(robust_acc: Mapping[str, float],
                            blackbox: Optional[Collection[str]] = None,
                            tol: float = 0.0) -> dict:
  """Compares robust accuracies keyed by attack spec (same model and eps).

  Args:
    robust_acc: attack spec -> robust accuracy in [0, 1].
    blackbox: names of score-based attacks (default: the registered ones,
      nes, spsa and square).
    tol: margin in accuracy below which no flag is raised.

  Returns:
    {'flag': bool, 'best_blackbox': spec, 'best_whitebox': spec}; the flag is
    set when some black-box attack leaves fewer robust examples than every
    white-box attack (by more than ``tol``).
  """
  blackbox = BLACKBOX if blackbox is None else blackbox

  def is_bb(spec):
    name = spec.split("(")[0]
    return name in blackbox
  bb = {k: v for k, v in robust_acc.items() if is_bb(k)}
  wb = {k: v for k, v in robust_acc.items() if not is_bb(k) and not k.startswith("transfer")}
  if not bb or not wb:
    return {"flag": False, "best_blackbox": None, "best_whitebox": None}
  kb = min(bb, key=bb.get)
  kw = min(wb, key=wb.get)
  return {"flag": bool(bb[kb] < wb[kw] - tol), "best_blackbox": kb, "best_whitebox": kw}


def min_eps_search(result) -> dict:
  """Examples without a minimal eps, for rows of minimal attacks ({} otherwise).

  Returns:
    min_eps_never_broken: examples (padding excluded) whose minimal eps is +inf;
    deepfool_nonconverged: DeepFool examples not fooled within max_iters (when
      the attack reports them); min_eps_max_radius: the largest radius tried on
      the never-broken ones (the grid's last; DeepFool: its eps); and, when the
      median minimal eps is +inf, median_min_eps_note, e.g. "> max grid (0.009):
      6 of 10 examples never broken within the grid" (DeepFool: "inf: DeepFool
      did not converge within max_iters on 6 of 10 examples").
  """
  d = _diag(result)
  if "min_eps" not in d:
    return {}
  m = _np(d["mask"]).astype(bool)
  me = _np(d["min_eps"]).astype(np.float64)[m]
  never = ~np.isfinite(me)
  out = {"min_eps_never_broken": int(never.sum())}
  nonconv = None
  if "nonconverged" in d:
    nonconv = int(np.sum(_np(d["nonconverged"]).astype(bool) & m))
    out["deepfool_nonconverged"] = nonconv
  radius = None
  if "eps" in d and never.any():
    radius = float(np.max(_np(d["eps"]).astype(np.float64)[m][never]))
    out["min_eps_max_radius"] = radius
  if me.size and not np.isfinite(np.median(me)):
    k = f"{int(never.sum())} of {me.size} examples"
    if nonconv is not None:
      note = f"inf: DeepFool did not converge within max_iters on {k}"
    else:
      where = f" ({radius:g})" if radius is not None else ""
      note = f"> max grid{where}: {k} never broken within the grid"
    out["median_min_eps_note"] = note
  return out


def summary(result) -> dict:
  """All per-result checks in one dict for the results row.

  Args:
    result: an :class:`AttackResult` or per-example outputs (a mapping).
  """
  out = {}
  out.update(ball_and_bounds(result))
  out.update(zero_gradient_fraction(result))
  out.update(probability_outputs(result))
  out.update(min_eps_search(result))
  return out


def warn(result, name: str = "attack"):
  """Raises Python warnings for flagged checks of a concrete result."""
  s = summary(result)
  if s["prob_like_frac"] > 0.5:
    warnings.warn(f"{name}: the model's outputs look like probabilities (rows in [0, 1] "
                  "summing to 1), not logits; gradients of the attack loss on softmax "
                  "outputs are tiny and robust accuracy will be overestimated",
                  AttackWarning, stacklevel=3)
  if s["outside_ball"] or s["outside_bounds"]:
    warnings.warn(f"{name}: {s['outside_ball']} examples outside the eps-ball and "
                  f"{s['outside_bounds']} outside the bounds", AttackWarning, stacklevel=3)
  if s.get("deepfool_nonconverged"):
    warnings.warn(f"{name}: DeepFool did not converge within max_iters on "
                  f"{s['deepfool_nonconverged']} examples; they are not counted robust "
                  "(deepfool_nonconverged)", AttackWarning, stacklevel=3)
  if s["all_zero_grad_examples"] > 0.1:
    warnings.warn(f"{name}: {100 * s['all_zero_grad_examples']:.0f}% of examples have an "
                  "all-zero input gradient (gradient masking?)", AttackWarning, stacklevel=3)
