"""Overlap decisions and their effect on accuracy (the CLIP paper's method).

* :func:`embedding_pairs` / :func:`hash_pairs` turn search results into flagged
  :class:`Pair` records, each with both ids and its score.
* An evaluation example *overlaps* when any pair flags it; the **overlap rate** is the
  fraction of the evaluation set that overlaps.
* :func:`accuracy_split` splits per-example correctness into the overlapping ('dirty') and
  the clean subsets, as Radford et al. (2021, sec. 5) do: accuracy on each, their
  difference (overlap - clean), the change of overall accuracy that overlap explains
  (all - clean), a one-sided binomial test of the overlapping subset's accuracy against the
  clean accuracy as null, and a 99.5 % Clopper-Pearson interval on the overlapping subset.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Optional, Sequence

import numpy as np
from scipy import stats

from jaxbench.overlap.knn import TopK


@dataclasses.dataclass(frozen=True)
class Pair:
  """A flagged (evaluation example, corpus item) pair.

  Attributes:
    query_id: evaluation example id.
    corpus_id: corpus item id.
    score: cosine similarity ('embedding') or 1 - distance/64 (hashes).
    method: 'embedding', 'phash' or 'dhash'.
    rank: 0-based neighbour rank for 'embedding' pairs, -1 for hash pairs.
    distance: Hamming distance for hash pairs, -1 otherwise.
  """
  query_id: str
  corpus_id: str
  score: float
  method: str
  rank: int = -1
  distance: int = -1

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def embedding_pairs(query_ids: Sequence[str], topk: TopK, corpus_ids: Mapping[int, str],
                    threshold: float) -> list[Pair]:
  """Every neighbour with cosine >= threshold.

  Args:
    query_ids: Q evaluation ids, in the order of ``topk``'s rows.
    topk: search results.
    corpus_ids: ordinal -> corpus id for (at least) the flagged ordinals.
    threshold: calibrated cosine threshold.
  """
  out = []
  qi, ri = np.nonzero((topk.scores >= threshold) & (topk.ordinals >= 0))
  for q, r in zip(qi, ri):
    o = int(topk.ordinals[q, r])
    out.append(Pair(query_ids[q], corpus_ids[o], float(topk.scores[q, r]), "embedding",
                    rank=int(r)))
  return out


def hash_pairs(query_ids: Sequence[str], corpus_ids: Sequence[str], q_idx: np.ndarray,
               c_idx: np.ndarray, distances: np.ndarray, method: str) -> list[Pair]:
  """Pairs from :func:`jaxbench.overlap.hashes.match` run on ``query_ids`` x ``corpus_ids``."""
  return [Pair(query_ids[q], corpus_ids[c], 1.0 - int(d) / 64.0, method, distance=int(d))
          for q, c, d in zip(q_idx, c_idx, distances)]


def overlapping(pairs: Sequence[Pair]) -> set[str]:
  return {p.query_id for p in pairs}


def overlap_summary(query_ids: Sequence[str], pairs: Sequence[Pair]) -> dict:
  """Overlap rate overall and by method."""
  n = len(query_ids)
  if n == 0:
    raise ValueError("overlap rate of an empty evaluation set")
  by = {}
  for m in sorted({p.method for p in pairs}):
    by[m] = len({p.query_id for p in pairs if p.method == m}) / n
  flagged = overlapping(pairs)
  return {"n": n, "n_overlap": len(flagged), "overlap_rate": len(flagged) / n,
          "rate_by_method": by, "num_pairs": len(pairs)}


def accuracy_split(correct: Mapping[str, bool], overlap: set[str]) -> dict:
  """Accuracy on all, overlapping and clean examples and the CLIP paper's statistics.

  Args:
    correct: example id -> prediction correct (every evaluated example).
    overlap: ids flagged as overlapping (ids not in ``correct`` are ignored).

  Returns:
    dict with n_all, n_overlap, n_clean, acc_all, acc_overlap, acc_clean (fractions;
    None for an empty subset), overlap_minus_clean, all_minus_clean, p_value (one-sided,
    overlap > clean), ci_overlap (99.5 % Clopper-Pearson).
  """
  ids = list(correct)
  if not ids:
    raise ValueError("accuracy split of an empty evaluation")
  c = np.asarray([bool(correct[i]) for i in ids])
  o = np.asarray([i in overlap for i in ids])
  acc = lambda m: float(c[m].mean()) if m.any() else None
  a_all, a_ov, a_cl = acc(np.ones_like(o)), acc(o), acc(~o)
  out = {"n_all": len(ids), "n_overlap": int(o.sum()), "n_clean": int((~o).sum()),
         "acc_all": a_all, "acc_overlap": a_ov, "acc_clean": a_cl,
         "overlap_minus_clean": None, "all_minus_clean": None, "p_value": None,
         "ci_overlap": None}
  if a_cl is not None:
    out["all_minus_clean"] = a_all - a_cl
  if a_ov is not None:
    k, n = int(c[o].sum()), int(o.sum())
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.995, method="exact")
    out["ci_overlap"] = [float(ci.low), float(ci.high)]
  if a_ov is not None and a_cl is not None:
    out["overlap_minus_clean"] = a_ov - a_cl
    p = stats.binomtest(int(c[o].sum()), int(o.sum()), a_cl, alternative="greater").pvalue
    out["p_value"] = float(p) if math.isfinite(p) else None
  return out


def result_rows(*, model: str, dataset: str, transform: str, model_info: dict,
                provenance: dict, summary: Optional[dict] = None,
                split: Optional[dict] = None, details: Optional[dict] = None) -> list[dict]:
  """Rows in the results-store contract (suite 'overlap'), in the report's vocabulary.

  ``summary`` (from :func:`overlap_summary`) gives an 'overlap_rate' row; ``split`` (from
  :func:`accuracy_split`) gives 'acc_overlap', 'acc_clean_subset' and 'acc_diff'
  (overlap - clean) rows, each with the whole split (all, all - clean, p-value, interval)
  in ``details``. A metric of an empty subset is left out. The full-set accuracy is the
  runner's clean 'top1' row.
  """
  rows = []

  def add(metric, value, n, extra):
    rows.append({"key": f"{model}|{dataset}|{transform}|{metric}", "model": model,
                 "dataset": dataset, "transform": transform, "suite": "overlap",
                 "metric": metric, "value": float(value), "n": int(n),
                 "details": {**(details or {}), **extra}, "model_info": model_info,
                 "provenance": provenance})

  if summary is not None:
    add("overlap_rate", summary["overlap_rate"], summary["n"],
        {k: v for k, v in summary.items() if k not in ("overlap_rate", "n")})
  if split is not None:
    for metric, key, n in (("acc_overlap", "acc_overlap", split["n_overlap"]),
                           ("acc_clean_subset", "acc_clean", split["n_clean"]),
                           ("acc_diff", "overlap_minus_clean", split["n_all"])):
      if split[key] is not None:
        add(metric, split[key], n, {"split": split})
  return rows
