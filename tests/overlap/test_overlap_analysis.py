"""Accuracy split (hand-computed), flagged pairs, rows, calibration rule, gallery."""
import math

import numpy as np
import pytest
from scipy import stats

from jaxbench.overlap import analysis, calibrate, gallery
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


def test_pairs_summary_and_rows():
  top = TopK(np.asarray([[0.95, 0.7], [0.5, 0.4], [0.91, 0.9]], np.float32),
             np.asarray([[7, 8], [9, 7], [8, -1]], np.int64))
  ids = {7: "s/k7", 8: "s/k8", 9: "s/k9"}
  pairs = analysis.embedding_pairs(["q0", "q1", "q2"], top, ids, 0.9)
  assert [(p.query_id, p.corpus_id, p.rank) for p in pairs] == [("q0", "s/k7", 0),
                                                                ("q2", "s/k8", 0)]
  pairs += analysis.hash_pairs(["q0", "q1", "q2"], ["s/k5", "s/k6"], np.asarray([1]),
                               np.asarray([1]), np.asarray([3]), "phash")
  assert pairs[-1].corpus_id == "s/k6" and pairs[-1].score == pytest.approx(1 - 3 / 64)
  summ = analysis.overlap_summary(["q0", "q1", "q2", "q3"], pairs)
  assert summ["overlap_rate"] == 0.75 and summ["rate_by_method"] == {
      "embedding": 0.5, "phash": 0.25}
  split = analysis.accuracy_split({"q0": 1, "q1": 0, "q2": 1, "q3": 0}, {"q0", "q1", "q2"})
  rows = analysis.result_rows(model="m", dataset="d", transform="overlap(k=2)",
                              model_info={"kind": "supervised"}, provenance={},
                              summary=summ, split=split)
  got = {r["metric"]: r["value"] for r in rows}
  assert got == pytest.approx({"overlap_rate": 0.75, "acc_overlap": 2 / 3,
                               "acc_clean_subset": 0.0, "acc_diff": 2 / 3})
  assert all(r["suite"] == "overlap" and r["key"] == f"m|d|overlap(k=2)|{r['metric']}"
             for r in rows)


def test_threshold_rule():
  assert calibrate.threshold_rule(np.asarray([0.9, 0.8]), np.asarray([0.1, 0.5])) == (
      pytest.approx(0.65), True)
  thr, sep = calibrate.threshold_rule(np.asarray([0.4, 0.9]), np.asarray([0.5, 0.2]))
  assert not sep and 0.5 < thr < 0.5 + 1e-6
  # fpr > 0 uses a quantile of the negatives instead of their maximum.
  neg = np.linspace(0, 1, 101)
  thr, _ = calibrate.threshold_rule(np.asarray([0.995]), neg, fpr=0.1)
  assert thr == pytest.approx((0.995 + 0.9) / 2)


def test_calibrate_recovers_a_known_detector():
  """A detector that knows which source a copy came from (distinct flat colours): copies
  score 1, unrelated pairs 0, so the threshold is the midpoint 0.5 with recall 1."""
  imgs = [np.full((20, 24, 3), 30 + 45 * i, np.uint8) for i in range(5)]

  def embed(batch):
    src = [int(np.argmin([abs(im.mean() - (30 + 45 * i)) for i in range(5)])) for im in batch]
    return np.eye(5)[src]

  cal = calibrate.calibrate(embed, imgs, [f"id{i}" for i in range(5)], seed=1,
                            transforms=("jpeg", "resize", "crop"), hashes=())
  assert cal.separable and cal.threshold == pytest.approx(0.5)
  assert cal.recall == {"jpeg": 1.0, "resize": 1.0, "crop": 1.0}
  assert cal.false_positive_rate == 0.0
  assert cal.stats["num_negative_pairs"] == 4 * 5 * 4  # originals + 3 copy sets


def test_copies_depend_on_seed_and_id_not_position():
  rng = np.random.default_rng(0)
  imgs = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(3)]
  a = calibrate.make_copies(imgs, ["x", "y", "z"], seed=5)
  b = calibrate.make_copies(imgs[::-1], ["z", "y", "x"], seed=5)
  for t in calibrate.TRANSFORMS:
    np.testing.assert_array_equal(a[t][0], b[t][2])
  c = calibrate.make_copies(imgs, ["x", "y", "z"], seed=6)
  assert any(a[t][0].shape != c[t][0].shape or not np.array_equal(a[t][0], c[t][0])
             for t in calibrate.TRANSFORMS)
  with pytest.raises(ValueError, match="unknown near-duplicate transform"):
    calibrate.near_duplicate(imgs[0], "rotate", rng)


def test_gallery_self_contained_and_escaped(tmp_path):
  img = np.full((20, 30, 3), 128, np.uint8)
  evil = '<script>alert(1)</script>'
  pairs = [analysis.Pair("q/" + evil, "c/1", 0.97, "embedding", rank=0),
           analysis.Pair("q/2", "c/missing", 0.93, "phash", distance=2)]
  path = gallery.write(str(tmp_path / "g" / "gallery.html"), pairs,
                       {"q/" + evil: img, "q/2": img}, {"c/1": img},
                       title="t", summary={"rate": 0.5})
  html = open(path, encoding="utf-8").read()
  assert "<script>" not in html and "&lt;script&gt;" in html
  assert html.count("data:image/jpeg;base64,") == 3
  assert "image not available" in html and "phash distance 2" in html
  assert math.isclose(float(html.split("cosine ")[1].split(" ")[0]), 0.97)
