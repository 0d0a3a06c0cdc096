"""ImageNet-P metrics: flip probability, top-5 distance, mFR and mT5D.

Per hendrycks/robustness ``ImageNet-P/test.py``:

* step = 1 for noise perturbations (name contains 'noise'), else the
  difficulty. For each offset i < step the sub-sequence frames[i::step] is
  scored pair by pair: noise sequences compare every frame with the
  sub-sequence's first frame (the reference never updates its "previous"
  prediction), the others compare consecutive frames.
* flip probability (FP): the mean of [pred(a) != pred(b)] over a video's pairs,
  then the mean over videos.
* top-5 distance (T5D): for a pair (a, b), with r_b(k) the 0-based rank of
  class k in frame b, sum over i < 5 of |i - min(r_b(top_a[i]), 5)|; it only
  needs each frame's top-5 classes. Averaged like FP.
* Normalised rates: FR_p = sum_d FP_{p,d} / sum_d FP^baseline_{p,d} over the
  difficulties evaluated (one difficulty: a plain ratio), mFR = mean_p FR_p;
  mT5D likewise. AlexNet's ImageNet-P rates are not in any reference code
  (ALEXNET_FP / ALEXNET_T5D are empty): pass the rates of a baseline model
  evaluated on the same sequences, and record which one.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

PERTURBATIONS = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter",
                 "brightness", "translate", "rotate", "tilt", "scale", "speckle_noise",
                 "gaussian_blur", "snow", "shear")
DIFFICULTIES = (1, 2, 3)
# The ten test perturbations mFR / mT5D average over (Hendrycks & Dietterich 2019,
# section 3: the other four are ImageNet-P's validation perturbations).
BENCHMARK = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow",
             "brightness", "translate", "rotate", "tilt", "scale")

# Not published in code; see the module docstring.
ALEXNET_FP: dict[tuple[str, int], float] = {}
ALEXNET_T5D: dict[tuple[str, int], float] = {}


def is_noise(perturbation: str) -> bool:
  return "noise" in perturbation


def _pairs(length: int, noise: bool, difficulty: int):
  """(a, b) frame index pairs the reference scores, in its order."""
  step = 1 if noise else difficulty
  pairs = []
  for i in range(step):
    frames = list(range(length))[i::step]
    for prev, cur in zip(frames[:-1], frames[1:]):
      pairs.append((frames[0] if noise else prev, cur))
  return pairs


def top5_distance(top_a, top_b) -> int:
  """sum_i |i - min(rank of top_a[i] in b, 5)| from two top-5 lists (best first)."""
  top_b = list(np.asarray(top_b)[:5])
  dist = 0
  for i, k in enumerate(np.asarray(top_a)[:5]):
    rank = top_b.index(k) if k in top_b else 5
    dist += abs(i - rank)
  return dist


def video_scores(preds: np.ndarray, noise: bool, difficulty: int) -> dict:
  """Flip probability (and T5D when top-5 is given) of one video.

  Args:
    preds: (T,) top-1 classes, or (T, K >= 5) classes sorted best first.
  Returns:
    {'flip_prob': float, 't5d': float (only with K >= 5), 'pairs': int}.
  """
  preds = np.asarray(preds)
  pairs = _pairs(len(preds), noise, difficulty)
  if not pairs:
    raise ValueError(f"a video of {len(preds)} frames has no frame pairs at "
                     f"difficulty {difficulty}")
  top1 = preds if preds.ndim == 1 else preds[:, 0]
  out = {"flip_prob": float(np.mean([top1[a] != top1[b] for a, b in pairs])),
         "pairs": len(pairs)}
  if preds.ndim == 2:
    if preds.shape[1] < 5:
      raise ValueError(f"top-5 distance needs (T, K >= 5) predictions, got {preds.shape}")
    out["t5d"] = float(np.mean([top5_distance(preds[a], preds[b]) for a, b in pairs]))
  return out


def scores(videos: Sequence[np.ndarray], perturbation: str, difficulty: int = 1) -> dict:
  """Mean over videos of the per-video flip probability (and T5D)."""
  if difficulty not in DIFFICULTIES:
    raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
  if not len(videos):
    raise ValueError("no videos to score")
  per = [video_scores(v, is_noise(perturbation), difficulty) for v in videos]
  out = {"flip_prob": float(np.mean([p["flip_prob"] for p in per])), "videos": len(per)}
  if all("t5d" in p for p in per):
    out["t5d"] = float(np.mean([p["t5d"] for p in per]))
  return out


def videos_from_ids(ids: Sequence[str], preds) -> list[np.ndarray]:
  """Groups per-frame predictions by video: ids '<video>/<frame index>' (any order)."""
  preds = np.asarray(preds)
  groups: dict[str, list] = {}
  for i, (key, p) in enumerate(zip(ids, preds)):
    video, _, frame = str(key).rpartition("/")
    if not video or not frame.isdigit():
      raise ValueError(f"frame id {key!r} is not of the form '<video>/<frame index>'")
    groups.setdefault(video, []).append((int(frame), i))
  videos = []
  for video in sorted(groups):
    frames = sorted(groups[video])
    if [f for f, _ in frames] != list(range(len(frames))):
      raise ValueError(f"video {video!r} has frames {[f for f, _ in frames]}, expected "
                       f"0..{len(frames) - 1}")
    videos.append(preds[[i for _, i in frames]])
  return videos


def make_sequence_metric_fn(perturbation: str, difficulty: int):
  """EvalSet hook: (ids, preds, correct) -> {'flip_prob', ['t5d']} for frame records."""
  def fn(ids, preds, correct):
    del correct
    out = scores(videos_from_ids(ids, preds), perturbation, difficulty)
    return {k: v for k, v in out.items() if k in ("flip_prob", "t5d")}
  fn.wants_top5 = True   # the runner then passes (N, 5) ranked classes, not top-1
  return fn


def normalized(rates: Mapping[tuple[str, int], float],
               baseline: Mapping[tuple[str, int], float],
               perturbations: Optional[Sequence[str]] = None) -> dict:
  """FR_p (or T5D ratio) per perturbation and their mean.

  Args:
    rates, baseline: {(perturbation, difficulty): FP or T5D}.
    perturbations: which to average (default: all in ``rates``).
  Returns:
    {'<p>': ratio, ..., 'mean': mean over perturbations, 'missing_baseline': [...]}.
    A perturbation lacking any baseline difficulty it was evaluated at is
    left out of the mean and listed.
  """
  names = sorted({p for p, _ in rates}) if perturbations is None else list(perturbations)
  out: dict = {}
  missing = []
  ratios = []
  for p in names:
    keys = [k for k in rates if k[0] == p]
    if not keys or any(k not in baseline for k in keys):
      missing.append(p)
      continue
    den = sum(baseline[k] for k in keys)
    if den <= 0:
      raise ValueError(f"baseline rate for {p} is {den}; cannot normalise")
    out[p] = sum(rates[k] for k in keys) / den
    ratios.append(out[p])
  if ratios and not missing:
    out["mean"] = float(np.mean(ratios))
  out["missing_baseline"] = missing
  return out


def mfr(rates: Mapping[tuple[str, int], float],
        baseline: Mapping[tuple[str, int], float],
        benchmark: Sequence[str] = BENCHMARK) -> dict:
  """mFR (or mT5D) over the benchmark perturbations, naming what is missing.

  Args:
    rates: {(perturbation, difficulty): FP or T5D} of the model.
    baseline: the same for the normalising model (AlexNet or a named reference).
    benchmark: the perturbations mFR averages over.

  Returns:
    {'per': {p: FR_p}, 'mfr': mean over ``benchmark`` or None when a benchmark
     perturbation is missing (from the model or the baseline), 'evaluated_mean': mean
     over the benchmark perturbations that both have (None if none), 'used': those,
     'missing': benchmark perturbations the model lacks, 'missing_baseline':
     benchmark perturbations the model has but the baseline lacks}.
  """
  norm = normalized(rates, baseline)
  have = {p for p, _ in rates}
  missing = [p for p in benchmark if p not in have]
  missing_base = [p for p in benchmark if p in have and p not in norm]
  used = [p for p in benchmark if p in norm]
  per = {p: v for p, v in norm.items() if p not in ("mean", "missing_baseline")}
  return {"per": per,
          "mfr": float(np.mean([per[p] for p in benchmark]))
          if not missing and not missing_base else None,
          "evaluated_mean": float(np.mean([per[p] for p in used])) if used else None,
          "used": used, "missing": missing, "missing_baseline": missing_base}
