"""Effective and relative robustness (Taori et al. 2020), and the plain accuracy drop.

All accuracies here are fractions in [0, 1] (the results store's unit); the testbed
works in percent, which changes nothing but the printing.

Effective robustness. Over a set of *baseline* models (standard ImageNet training),
fit ordinary least squares of logit(OOD accuracy) on logit(ID accuracy)::

    beta(x) = sigmoid(a * logit(x) + b)          # the baseline's expected OOD accuracy
    rho(f)  = acc_ood(f) - beta(acc_id(f))       # accuracy beyond the baseline

The fit is ``scipy.stats.linregress`` in the testbed (``plotting/plotter.py``);
:func:`ols` is the same closed form.

0 % and 100 % (protocol.md section 3.1). logit(0) and logit(1) are infinite, so such
points cannot enter an OLS fit. The testbed's rule (``format_eff_robust`` in
``plotting/paper_appendix_eff_robust.py``): when a baseline has 0 % OOD accuracy
(ResNet-50 on ImageNet-A, which was filtered against it), its ID accuracy becomes a
*pivot*; one line is fitted on the baselines with ID accuracy below the pivot and
another on those above it, and a model is scored on the line of its side (ID <=
pivot: the lower line). The pivot baseline itself is in neither fit. We apply the
same rule to a baseline with 100 % OOD accuracy (the testbed never meets one), split
at every pivot when there are several, and, where a side has fewer than two
baselines to fit, use the line fitted on all finite baselines instead (recorded in
``BaselineFit.notes``). Baselines with 0 % or 100 % *ID* accuracy have no x
coordinate and are dropped (noted). When a *scored* model has 0 % or 100 % ID
accuracy, beta takes its limit (0 or 1 for a > 0); the testbed's own code returns NaN
there (``exp(inf) / (1 + exp(inf))``), which reports nothing useful.

Relative robustness (protocol.md section 3.2, the usual form): the OOD-accuracy
change an intervention causes, ``tau = acc_ood(f') - acc_ood(f)``, with ``f`` the
model without the intervention (CLIP vs CLIP-Auto, a supervised model vs the CLIP
model RoZ pairs it with). :func:`relative_robustness` also returns the change in
ID accuracy and in effective robustness, so a reader can tell a robustness gain from
an accuracy gain.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Optional, Sequence

import numpy as np

# RoZ's pairing of each CLIP backbone with the supervised model it is compared to
# (protocol.md section 2, ``load_pretrained_imagenet_models``): (zero-shot, supervised).
ROZ_PAIRS = (("RN50", "ResNet-50"), ("RN101", "ResNet-101"),
             ("RN50x4", "EfficientNet-B3"), ("ViT-B/32", "ViT-B/32@384"))

TESTBED_FITS_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources",
                                 "testbed_fits.json")


def logit(p) -> np.ndarray:
  """log(p / (1 - p)), elementwise; +-inf at 1 and 0.

  Args:
    p: accuracies in [0, 1] (scalar or array).
  """
  p = np.asarray(p, np.float64)
  if np.any((p < 0) | (p > 1)):
    raise ValueError(f"accuracies must be fractions in [0, 1], got {p}")
  with np.errstate(divide="ignore"):
    return np.log(p) - np.log1p(-p)


def sigmoid(z) -> np.ndarray:
  """1 / (1 + exp(-z)), stable for large |z| and exact at +-inf."""
  z = np.asarray(z, np.float64)
  out = np.empty_like(z)
  pos = z >= 0
  out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
  ez = np.exp(z[~pos])
  out[~pos] = ez / (1.0 + ez)
  return out


def ols(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
  """Slope and intercept of the least-squares line y = a x + b (as linregress).

  Args:
    x, y: equal-length finite sequences, at least two distinct x values.
  """
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if x.shape != y.shape or x.ndim != 1:
    raise ValueError(f"x and y must be 1-D and equal length, got {x.shape}, {y.shape}")
  if x.size < 2 or np.ptp(x) == 0:
    raise ValueError(f"a line fit needs at least two distinct x values, got {x.tolist()}")
  if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
    raise ValueError("a line fit needs finite values (logits of accuracies strictly "
                     "between 0 and 1)")
  xm, ym = x.mean(), y.mean()
  a = float(np.sum((x - xm) * (y - ym)) / np.sum((x - xm) ** 2))
  return a, float(ym - a * xm)


@dataclasses.dataclass(frozen=True)
class BaselineFit:
  """A (piecewise) line in logit space: the baseline's OOD accuracy given ID accuracy.

  Attributes:
    lines: ((a, b), ...) slope and intercept per segment, len(pivots) + 1 of them.
    pivots: ascending ID accuracies (fractions) where the fit splits; a model with
      ID accuracy x uses the first segment i with x <= pivots[i], else the last.
    baselines: names of the models the fit used (all segments).
    source: where the fit comes from ('user results', 'testbed ...').
    notes: what was dropped or replaced and why.
  """
  lines: tuple
  pivots: tuple = ()
  baselines: tuple = ()
  source: str = ""
  notes: tuple = ()

  def __post_init__(self):
    if len(self.lines) != len(self.pivots) + 1:
      raise ValueError(f"{len(self.lines)} lines for {len(self.pivots)} pivots; need "
                       "one more line than pivots")
    if list(self.pivots) != sorted(self.pivots):
      raise ValueError(f"pivots must ascend, got {self.pivots}")

  def line_for(self, acc_id: float) -> tuple[float, float]:
    for pivot, line in zip(self.pivots, self.lines):
      if acc_id <= pivot:
        return line
    return self.lines[-1]

  def predict_logit(self, acc_id) -> np.ndarray:
    """a * logit(x) + b per element (segment chosen by x)."""
    x = np.atleast_1d(np.asarray(acc_id, np.float64))
    lx = logit(x)
    out = np.empty_like(lx)
    for i, xi in enumerate(x):
      a, b = self.line_for(float(xi))
      with np.errstate(invalid="ignore"):
        out[i] = a * lx[i] + b if np.isfinite(lx[i]) or a != 0 else b
    return out

  def beta(self, acc_id) -> np.ndarray:
    """Baseline OOD accuracy at ID accuracy ``acc_id`` (fractions), same shape."""
    shape = np.shape(acc_id)
    return sigmoid(self.predict_logit(acc_id)).reshape(shape)

  def to_dict(self) -> dict:
    return {"lines": [list(l) for l in self.lines], "pivots": list(self.pivots),
            "baselines": list(self.baselines), "source": self.source,
            "notes": list(self.notes)}

  @classmethod
  def from_dict(cls, d: dict) -> "BaselineFit":
    return cls(lines=tuple(tuple(float(v) for v in l) for l in d["lines"]),
               pivots=tuple(float(p) for p in d.get("pivots", ())),
               baselines=tuple(d.get("baselines", ())), source=d.get("source", ""),
               notes=tuple(d.get("notes", ())))


def fit_baseline(acc_id: Sequence[float], acc_ood: Sequence[float],
                 names: Optional[Sequence[str]] = None, source: str = "") -> BaselineFit:
  """Fits the baseline line(s) with the testbed's 0 %/100 % pivot rule (module doc).

  Args:
    acc_id: (M,) ID accuracies of the baseline models, fractions in [0, 1].
    acc_ood: (M,) OOD accuracies of the same models.
    names: (M,) model names, recorded in the fit.
    source: recorded in the fit.

  Returns:
    A :class:`BaselineFit`.

  Raises:
    ValueError: fewer than two baselines with finite logits on both axes.
  """
  x = np.asarray(acc_id, np.float64)
  y = np.asarray(acc_ood, np.float64)
  names = list(names) if names is not None else [f"model{i}" for i in range(len(x))]
  if not (len(x) == len(y) == len(names)):
    raise ValueError(f"{len(x)} ID accuracies, {len(y)} OOD accuracies, {len(names)} names")
  logit(x), logit(y)  # range check
  notes = []
  keep = (x > 0) & (x < 1)
  for i in np.flatnonzero(~keep):
    notes.append(f"{names[i]}: ID accuracy {x[i]:.4f} has no logit; not used")
  edge = keep & ((y == 0) | (y == 1))
  pivots = sorted({float(x[i]) for i in np.flatnonzero(edge)})
  for i in np.flatnonzero(edge):
    notes.append(f"{names[i]}: OOD accuracy {y[i]:.0%} -> pivot at ID {x[i]:.4f} "
                 "(testbed rule: separate fits below and above)")
  finite = keep & ~edge
  if finite.sum() < 2:
    raise ValueError(f"need at least two baselines with ID and OOD accuracy strictly "
                     f"between 0 and 1, got {int(finite.sum())} of {len(x)}")
  lx, ly = logit(x), logit(y)
  overall = ols(lx[finite], ly[finite])
  bounds = [-np.inf] + pivots + [np.inf]
  lines = []
  for lo, hi in zip(bounds[:-1], bounds[1:]):
    seg = finite & (x > lo) & (x < hi)
    if seg.sum() >= 2 and np.ptp(x[seg]) > 0:
      lines.append(ols(lx[seg], ly[seg]))
    else:
      if pivots:
        notes.append(f"segment ({lo:.4f}, {hi:.4f}) holds {int(seg.sum())} baseline(s): "
                     "using the line fitted on all finite baselines there")
      lines.append(overall)
  used = [names[i] for i in np.flatnonzero(finite)]
  return BaselineFit(tuple(lines), tuple(pivots), tuple(used), source, tuple(notes))


def effective_robustness(fit: BaselineFit, acc_id, acc_ood) -> np.ndarray:
  """rho = acc_ood - beta(acc_id), elementwise (fractions; x100 for points)."""
  return np.asarray(acc_ood, np.float64) - fit.beta(acc_id)


def relative_robustness(acc_id_with: float, acc_ood_with: float, acc_id_without: float,
                        acc_ood_without: float, fit: Optional[BaselineFit] = None) -> dict:
  """What an intervention changes: OOD accuracy (tau), ID accuracy, effective robustness.

  Args:
    acc_id_with, acc_ood_with: the model with the intervention (f').
    acc_id_without, acc_ood_without: the model without it (f).
    fit: the shift's baseline fit; without one, 'delta_rho' is None.

  Returns:
    {'tau': acc_ood(f') - acc_ood(f), 'delta_id': acc_id(f') - acc_id(f),
     'delta_rho': rho(f') - rho(f) or None}.
  """
  out = {"tau": float(acc_ood_with - acc_ood_without),
         "delta_id": float(acc_id_with - acc_id_without), "delta_rho": None}
  if fit is not None:
    rho = effective_robustness(fit, [acc_id_with, acc_id_without],
                               [acc_ood_with, acc_ood_without])
    out["delta_rho"] = float(rho[0] - rho[1])
  return out


def accuracy_drop(acc_id, acc_ood) -> np.ndarray:
  """ID minus OOD accuracy (positive when accuracy falls under the shift)."""
  return np.asarray(acc_id, np.float64) - np.asarray(acc_ood, np.float64)


def load_testbed_fits(path: str = TESTBED_FITS_FILE) -> dict[str, BaselineFit]:
  """The published fits shipped with the package: {shift name: BaselineFit}.

  See ``jaxbench/report/fit_coefficients.py`` for how the file is computed and from
  which published accuracies.
  """
  with open(path) as f:
    blob = json.load(f)
  return {name: BaselineFit.from_dict(d) for name, d in blob["fits"].items()}


def is_finite_accuracy(p: float) -> bool:
  """True when p has a finite logit (0 < p < 1)."""
  return 0.0 < p < 1.0 and not math.isnan(p)
