"""Threshold calibration on synthetic near-duplicates.

A detector (an embedding model's cosine similarity, or a perceptual hash's Hamming
distance) flags a pair as overlap above (below) a threshold. The threshold is set from
synthetic data that has known answers:

* **positives**: each calibration image against near-duplicate copies of itself made by
  :func:`near_duplicate`: 'resize' (downscaled to 40-70 %), 'jpeg' (re-encoded at quality
  30-60), 'crop' (85-95 % of each side at a random offset), 'jitter' (brightness,
  contrast and saturation each scaled by 0.8-1.2);
* **negatives**: every image (and every copy) against every *other* original.

Rule: with ``lo`` the lowest positive score and ``hi`` the (1 - fpr) quantile of negative
scores (the maximum for ``fpr=0``), the threshold is the midpoint of the gap when
``lo > hi`` (every planted copy found, no unrelated pair flagged), otherwise just above
``hi`` (false positives capped, recall reported below 1). A hash radius is the largest
positive distance, but below half the smallest negative distance (a small sample
overestimates how far apart unrelated images always are) and at most
``max_hash_distance``.

Each copy's random parameters come from ``(seed, example id)``, never from list position.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageEnhance

from jaxbench.overlap import hashes as hashes_lib

TRANSFORMS = ("resize", "jpeg", "crop", "jitter")


def example_rng(seed: int, example_id: str, salt: str = "") -> np.random.Generator:
  """A generator seeded from (seed, example id, salt): stable across runs and batchings."""
  h = int.from_bytes(hashlib.sha256(f"{example_id}\x00{salt}".encode()).digest()[:8], "big")
  return np.random.default_rng([int(seed), h])


def near_duplicate(image: np.ndarray, transform: str, rng: np.random.Generator) -> np.ndarray:
  """A near-duplicate copy of a uint8 (H, W, 3) image.

  Args:
    image: uint8 RGB.
    transform: one of :data:`TRANSFORMS`.
    rng: parameter source.

  Returns:
    uint8 (H', W', 3) RGB (smaller for 'resize' and 'crop').
  """
  im = Image.fromarray(image)
  w, h = im.size
  if transform == "resize":
    f = rng.uniform(0.4, 0.7)
    im = im.resize((max(8, round(w * f)), max(8, round(h * f))), Image.BICUBIC)
  elif transform == "jpeg":
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=int(rng.integers(30, 61)))
    im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
  elif transform == "crop":
    fw, fh = rng.uniform(0.85, 0.95, size=2)
    cw, ch = max(8, round(w * fw)), max(8, round(h * fh))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    im = im.crop((x0, y0, x0 + cw, y0 + ch))
  elif transform == "jitter":
    b, c, s = rng.uniform(0.8, 1.2, size=3)
    im = ImageEnhance.Brightness(im).enhance(b)
    im = ImageEnhance.Contrast(im).enhance(c)
    im = ImageEnhance.Color(im).enhance(s)
  else:
    raise ValueError(f"unknown near-duplicate transform {transform!r}; known: {TRANSFORMS}")
  return np.asarray(im.convert("RGB"), np.uint8)


def make_copies(images: Sequence[np.ndarray], ids: Sequence[str], seed: int,
                transforms: Sequence[str] = TRANSFORMS) -> dict[str, list[np.ndarray]]:
  """{transform: [copy of image i for each i]}, parameters from (seed, id, transform)."""
  return {t: [near_duplicate(img, t, example_rng(seed, i, t)) for img, i in zip(images, ids)]
          for t in transforms}


def threshold_rule(pos: np.ndarray, neg: np.ndarray, fpr: float = 0.0) -> tuple[float, bool]:
  """(threshold, separable) for 'score >= threshold flags a pair' (see module docstring)."""
  lo = float(np.min(pos))
  hi = float(np.max(neg)) if fpr <= 0 else float(np.quantile(neg, 1.0 - fpr))
  if lo > hi:
    return (lo + hi) / 2.0, True
  return float(np.nextafter(np.float32(hi), np.float32(np.inf))), False


@dataclasses.dataclass
class Calibration:
  """A calibrated detector.

  Attributes:
    threshold: cosine similarity at or above which a pair is flagged.
    separable: every positive scored above every (quantile-capped) negative.
    recall: {transform: fraction of planted copies at or above threshold}.
    false_positive_rate: fraction of negative pairs at or above threshold.
    hash_radius: {hash name: Hamming radius at or below which a pair is flagged}.
    hash_recall: {hash name: {transform: recall at that radius}}.
    stats: score summaries (min/max/quantiles of positives and negatives).
  """
  threshold: float
  separable: bool
  recall: dict
  false_positive_rate: float
  hash_radius: dict
  hash_recall: dict
  stats: dict

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def calibrate(embed: Callable[[list[np.ndarray]], np.ndarray], images: Sequence[np.ndarray],
              ids: Sequence[str], *, seed: int = 0, transforms: Sequence[str] = TRANSFORMS,
              fpr: float = 0.0, hashes: Sequence[str] = ("phash", "dhash"),
              max_hash_distance: int = 12) -> Calibration:
  """Calibrates the embedding threshold and hash radii on synthetic near-duplicates.

  Args:
    embed: uint8 images (any sizes) -> float (n, D) L2-normalised embeddings.
    images: calibration images, uint8 (H, W, 3) (at least 2).
    ids: their example ids (seed the copies' parameters).
    seed: run seed.
    transforms: near-duplicate kinds to plant.
    fpr: tolerated false-positive rate on negatives (0: above every negative).
    hashes: perceptual hashes to calibrate too.
    max_hash_distance: upper bound on a hash radius.
  """
  if len(images) < 2:
    raise ValueError(f"calibration needs at least 2 images, got {len(images)}")
  n = len(images)
  copies = make_copies(images, ids, seed, transforms)
  flat = list(images) + [c for t in transforms for c in copies[t]]
  z = np.asarray(embed(flat), np.float64)
  orig = z[:n]
  off = ~np.eye(n, dtype=bool)
  pos, neg_parts = {}, [(orig @ orig.T)[off]]
  for j, t in enumerate(transforms):
    zc = z[n * (j + 1):n * (j + 2)]
    sims = zc @ orig.T
    pos[t] = np.diag(sims).copy()
    neg_parts.append(sims[off])
  neg = np.concatenate(neg_parts)
  all_pos = np.concatenate(list(pos.values()))
  thr, separable = threshold_rule(all_pos, neg, fpr)

  hash_radius, hash_recall = {}, {}
  for h in hashes:
    fn = hashes_lib.HASHES[h]
    ho = np.asarray([fn(im) for im in images], np.uint64)
    d_neg = [hashes_lib.hamming(ho[:, None], ho[None, :])[off]]
    d_pos = {}
    for t in transforms:
      hc = np.asarray([fn(im) for im in copies[t]], np.uint64)
      d = hashes_lib.hamming(hc[:, None], ho[None, :])
      d_pos[t] = np.diag(d).copy()
      d_neg.append(d[off])
    dn = np.concatenate(d_neg)
    dp = np.concatenate(list(d_pos.values()))
    # Half the closest negative distance: a small calibration sample overestimates the
    # low tail of unrelated-pair distances, so keep a wide margin below it.
    radius = int(min(dp.max(), -(-int(dn.min()) // 2) - 1, max_hash_distance))
    hash_radius[h] = max(radius, 0)
    hash_recall[h] = {t: float(np.mean(d_pos[t] <= hash_radius[h])) for t in transforms}

  q = lambda a: {p: float(np.quantile(a, p)) for p in (0.0, 0.01, 0.5, 0.99, 1.0)}
  return Calibration(
      threshold=float(thr), separable=separable,
      recall={t: float(np.mean(pos[t] >= thr)) for t in transforms},
      false_positive_rate=float(np.mean(neg >= thr)),
      hash_radius=hash_radius, hash_recall=hash_recall,
      stats={"positives": {t: q(v) for t, v in pos.items()}, "negatives": q(neg),
             "num_images": n, "num_negative_pairs": int(neg.size)})
