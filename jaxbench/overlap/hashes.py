"""Perceptual hashes (pHash, dHash) on the host and Hamming-distance duplicate search.

Both hashes are 64-bit and packed into ``uint64`` (bit i of the 8x8 grid, row-major, is
bit 63 - i), so a Hamming distance is ``popcount(a ^ b)``.

* pHash (Zauner 2010, the variant ``imagehash.phash`` popularised): greyscale (ITU-R 601
  luma, PIL's 'L'), Lanczos resize to 32x32, 2-D DCT-II, keep the 8x8 lowest frequencies,
  threshold at their median. Robust to resizing, re-encoding and mild colour changes.
* dHash: greyscale, resize to 9 wide x 8 high, one bit per horizontal neighbour pair
  (right brighter than left). Cheap; catches exact and re-encoded copies.

:func:`match` finds every (query, corpus) pair within a Hamming radius ``r`` without the
all-pairs product: by the pigeonhole principle two 64-bit codes within distance ``r`` agree
exactly on at least one of ``r + 1`` disjoint bit bands, so candidates come from sorted band
lookups (multi-index hashing) and are then verified.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.fft
from PIL import Image


def _pack(bits: np.ndarray) -> np.uint64:
  """Packs 64 booleans (row-major 8x8) into a uint64, first bit most significant."""
  b = np.packbits(bits.astype(np.uint8).ravel())  # 8 bytes, big-endian bit order
  return np.uint64(int.from_bytes(b.tobytes(), "big"))


def unpack(h) -> np.ndarray:
  """bool (8, 8) bits of a packed hash (inverse of the packing above)."""
  b = np.frombuffer(int(h).to_bytes(8, "big"), np.uint8)
  return np.unpackbits(b).astype(bool).reshape(8, 8)


def _grey(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  im = Image.fromarray(image).convert("L").resize(size, Image.LANCZOS)
  return np.asarray(im, np.float64)


def phash(image: np.ndarray) -> np.uint64:
  """64-bit DCT perceptual hash of a uint8 (H, W, 3) RGB image."""
  px = _grey(image, (32, 32))
  dct = scipy.fft.dct(scipy.fft.dct(px, axis=0), axis=1)  # type II, unnormalised
  low = dct[:8, :8]
  return _pack(low > np.median(low))


def dhash(image: np.ndarray) -> np.uint64:
  """64-bit difference hash of a uint8 (H, W, 3) RGB image."""
  px = _grey(image, (9, 8))  # PIL sizes are (width, height)
  return _pack(px[:, 1:] > px[:, :-1])


HASHES: dict[str, Callable[[np.ndarray], np.uint64]] = {"phash": phash, "dhash": dhash}


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Elementwise Hamming distance of uint64 arrays (broadcasting)."""
  return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64),
                                         np.asarray(b, np.uint64))).astype(np.int32)


def _bands(r: int) -> list[tuple[int, int]]:
  """r + 1 disjoint (shift, width) bit bands covering 64 bits."""
  n = r + 1
  widths = [64 // n + (1 if i < 64 % n else 0) for i in range(n)]
  out, shift = [], 0
  for w in widths:
    out.append((shift, w))
    shift += w
  return out


def match(queries: np.ndarray, corpus: np.ndarray, max_distance: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """All pairs with Hamming distance <= max_distance.

  Args:
    queries: uint64 (Q,) hashes.
    corpus: uint64 (N,) hashes.
    max_distance: radius r in [0, 63].

  Returns:
    (query_index int64 (M,), corpus_index int64 (M,), distance int32 (M,)), sorted by
    (query, distance, corpus index); each pair once.
  """
  if not 0 <= max_distance < 64:
    raise ValueError(f"max_distance must be in [0, 63], got {max_distance}")
  q = np.asarray(queries, np.uint64)
  c = np.asarray(corpus, np.uint64)
  empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32))
  if q.size == 0 or c.size == 0:
    return empty
  qi_all, ci_all = [], []
  for shift, width in _bands(max_distance):
    mask = np.uint64((1 << width) - 1)
    cb = (c >> np.uint64(shift)) & mask
    qb = (q >> np.uint64(shift)) & mask
    order = np.argsort(cb, kind="stable")
    sorted_cb = cb[order]
    lo = np.searchsorted(sorted_cb, qb, "left")
    hi = np.searchsorted(sorted_cb, qb, "right")
    counts = hi - lo
    if counts.sum() == 0:
      continue
    qi = np.repeat(np.arange(q.size), counts)
    # Position within each query's [lo, hi) run.
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    ci = order[starts + np.arange(counts.sum())]
    qi_all.append(qi)
    ci_all.append(ci)
  if not qi_all:
    return empty
  qi = np.concatenate(qi_all)
  ci = np.concatenate(ci_all)
  pairs = np.unique(np.stack([qi, ci], 1), axis=0)
  qi, ci = pairs[:, 0], pairs[:, 1]
  d = hamming(q[qi], c[ci])
  keep = d <= max_distance
  qi, ci, d = qi[keep], ci[keep], d[keep]
  order = np.lexsort((ci, d, qi))
  return qi[order].astype(np.int64), ci[order].astype(np.int64), d[order]
