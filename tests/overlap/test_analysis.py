"""Overlap analysis (jaxbench/overlap/analysis.py): accuracy split (hand-computed), flagged
pairs, rows."""
import math

import numpy as np
import pytest
from scipy import stats

from jaxbench.overlap import analysis
from jaxbench.overlap.knn import TopK


def test_accuracy_split_matches_hand_computation():
  ids = list("abcdefghij")
  correct = dict(zip(ids, [1, 1, 0, 1, 0, 0, 1, 0, 1, 1]))
  split = analysis.accuracy_split(correct, {"a", "b", "c", "d", "zzz"})
  # overlap a-d: 3/4; clean e-j: 3/6; all 6/10.
  assert split["n_overlap"] == 4 and split["n_clean"] == 6 and split["n_all"] == 10
  assert split["acc_overlap"] == pytest.approx(0.75)
  assert split["acc_clean"] == pytest.approx(0.5)
  assert split["acc_all"] == pytest.approx(0.6)
  assert split["overlap_minus_clean"] == pytest.approx(0.25)
  assert split["all_minus_clean"] == pytest.approx(0.1)
  # One-sided binomial: P(X >= 3 | n=4, p=0.5) = (C(4,3) + C(4,4)) / 16.
  assert split["p_value"] == pytest.approx((4 + 1) / 16)
  # Clopper-Pearson 99.5 %: upper bound for x=3 of n=4 from the Beta quantile, and the
  # lower one from Beta(3, 2).
  lo, hi = split["ci_overlap"]
  assert lo == pytest.approx(stats.beta.ppf(0.0025, 3, 2))
  assert hi == pytest.approx(stats.beta.ppf(0.9975, 4, 1)) and hi == pytest.approx(
      0.9975 ** 0.25)
  # Empty subsets: statistics that need them are None.
  none = analysis.accuracy_split({"a": True, "b": False}, set())
  assert none["acc_overlap"] is None and none["overlap_minus_clean"] is None
  assert none["acc_clean"] == 0.5 and none["all_minus_clean"] == 0.0
  with pytest.raises(ValueError, match="empty"):
    analysis.accuracy_split({}, set())


def _embedding_pairs():
  top = TopK(np.asarray([[0.95, 0.7], [0.5, 0.4], [0.91, 0.9]], np.float32),
             np.asarray([[7, 8], [9, 7], [8, -1]], np.int64))
  ids = {7: "s/k7", 8: "s/k8", 9: "s/k9"}
  return analysis.embedding_pairs(["q0", "q1", "q2"], top, ids, 0.9)


def _hash_pairs():
  return analysis.hash_pairs(["q0", "q1", "q2"], ["s/k5", "s/k6"], np.asarray([1]),
                             np.asarray([1]), np.asarray([3]), "phash")


def _summary():
  return analysis.overlap_summary(["q0", "q1", "q2", "q3"], _embedding_pairs() + _hash_pairs())


def test_embedding_pairs_keep_neighbours_above_the_threshold():
  pairs = _embedding_pairs()
  assert [(p.query_id, p.corpus_id, p.rank) for p in pairs] == [("q0", "s/k7", 0),
                                                                ("q2", "s/k8", 0)]


def test_hash_pairs_score_one_minus_distance_over_64():
  pairs = _hash_pairs()
  assert pairs[-1].corpus_id == "s/k6" and pairs[-1].score == pytest.approx(1 - 3 / 64)


def test_overlap_summary_rates_by_method():
  summ = _summary()
  assert summ["overlap_rate"] == 0.75 and summ["rate_by_method"] == {
      "embedding": 0.5, "phash": 0.25}


def test_result_rows_carry_rate_and_accuracy_split():
  summ = _summary()
  split = analysis.accuracy_split({"q0": 1, "q1": 0, "q2": 1, "q3": 0}, {"q0", "q1", "q2"})
  rows = analysis.result_rows(model="m", dataset="d", transform="overlap(k=2)",
                              model_info={"kind": "supervised"}, provenance={},
                              summary=summ, split=split)
  got = {r["metric"]: r["value"] for r in rows}
  assert got == pytest.approx({"overlap_rate": 0.75, "acc_overlap": 2 / 3,
                               "acc_clean_subset": 0.0, "acc_diff": 2 / 3})
  assert all(r["suite"] == "overlap" and r["key"] == f"m|d|overlap(k=2)|{r['metric']}"
             for r in rows)
