"""Per-attack metrics as pure functions of per-example outputs.

The runner concatenates per-example outputs over the whole evaluation set
(:func:`outputs` of each batch's :class:`AttackResult`, padding masked) and
calls :func:`summarize` once. Definitions (protocol.md §3.6, RoZ):

* clean_acc: fraction of examples classified correctly before the attack.
* robust_acc: fraction classified correctly before *and* after the attack
  (examples misclassified before the attack count as failures of the model),
  from one re-evaluation of the returned images. Examples on which DeepFool
  did not converge (per-example ``nonconverged``: still classified correctly
  after ``max_iters`` linearisation steps, so no minimal perturbation was
  found) are *not* counted robust: RoZ stops with an error on them, and
  counting the unperturbed image as robust would overstate robustness. They
  are counted in ``deepfool_nonconverged`` (a number of examples), so
  ``robust_acc + deepfool_nonconverged / n`` is the value had they been
  counted robust.
* success_rate: fraction of initially correct examples the attack broke
  (targeted: the target class is predicted).
* mean/median perturbation norms (attack space, and pixel L-inf) over the
  successful examples; queries per attacked example; RoZ's "medium
  perturbation", the median minimal eps over all examples (0 for initially
  misclassified, inf for never broken), for minimal attacks; robust accuracy
  after every stage of an ensemble.
* median_min_eps is +inf (RoZ prints 1e10) when more than half of the examples
  (half, for an even count) were never broken within the grid, or DeepFool
  did not converge on them: it is kept as ``float('inf')``, which results.jsonl
  stores as ``Infinity`` (Python's json, which wrote and reads every row), and
  :func:`jaxbench.attacks.checks.min_eps_search` adds a "> max grid" note to
  the row's details.

All values are fractions in [0, 1] or plain numbers; NaN where undefined
(e.g. mean norm with no successful example).
"""
from __future__ import annotations

from typing import Mapping

import jax
import numpy as np

PER_EXAMPLE = ("success", "queries", "clean_correct", "adv_correct", "linf", "l2",
               "pixel_linf", "in_ball", "in_bounds", "mask", "min_eps", "robust_stage",
               "steps", "zero_grad_frac", "prob_like", "eps", "nonconverged")


def outputs(result) -> dict:
  """Host numpy per-example outputs of one result (what the store keeps)."""
  d = dict(result.diagnostics)
  d["success"] = result.success
  d["queries"] = result.queries
  return {k: np.asarray(jax.device_get(v)) for k, v in d.items()
          if k in PER_EXAMPLE}


def _stat(fn, x):
  x = np.asarray(x, np.float64)
  return float(fn(x)) if x.size else float("nan")


def summarize(out) -> dict:
  """Metrics from per-example outputs (a dict as :func:`outputs`, or a result).

  Returns:
    dict: n, clean_acc, robust_acc, success_rate, mean/median_{linf,l2,pixel_linf},
    mean/median_queries, and when present median_min_eps (+inf when more than
    half have none), mean_min_eps (finite values), min_eps_found,
    deepfool_nonconverged (count), stage_robust_acc (list), outside_ball,
    outside_bounds.
  """
  if not isinstance(out, Mapping):
    out = outputs(out)
  m = out["mask"].astype(bool)
  n = int(m.sum())
  cc = out["clean_correct"].astype(bool) & m
  robust = cc & out["adv_correct"].astype(bool)
  if "nonconverged" in out:
    # No minimal perturbation found is not evidence of robustness (module docstring).
    nonconv = out["nonconverged"].astype(bool) & m
    robust = robust & ~nonconv
  succ = out["success"].astype(bool) & m
  res = {
      "n": n,
      "clean_acc": float(cc.sum() / n) if n else float("nan"),
      "robust_acc": float(robust.sum() / n) if n else float("nan"),
      "success_rate": float(succ.sum() / cc.sum()) if cc.sum() else float("nan"),
      "outside_ball": int((m & ~out["in_ball"].astype(bool)).sum()),
      "outside_bounds": int((m & ~out["in_bounds"].astype(bool)).sum()),
  }
  for k in ("linf", "l2", "pixel_linf"):
    res[f"mean_{k}"] = _stat(np.mean, out[k][succ])
    res[f"median_{k}"] = _stat(np.median, out[k][succ])
  q = out["queries"][cc]
  res["mean_queries"] = _stat(np.mean, q)
  res["median_queries"] = _stat(np.median, q)
  if "min_eps" in out:
    me = np.asarray(out["min_eps"], np.float64)[m]
    res["median_min_eps"] = _stat(np.median, me)
    fin = me[np.isfinite(me)]
    res["mean_min_eps"] = _stat(np.mean, fin)
    res["min_eps_found"] = float(np.isfinite(me).mean()) if me.size else float("nan")
  if "nonconverged" in out:
    res["deepfool_nonconverged"] = int(nonconv.sum())
  if "robust_stage" in out:
    rs = out["robust_stage"].astype(bool)[m]
    res["stage_robust_acc"] = [float(v) for v in rs.mean(axis=0)] if n else []
  return res
