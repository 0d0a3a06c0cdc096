"""Calibration of the duplicate threshold (jaxbench/overlap/calibrate.py): the rule, a known
detector recovered, near-duplicate copies keyed by seed and id."""
import numpy as np
import pytest

from jaxbench.overlap import calibrate


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


def _images():
  rng = np.random.default_rng(0)
  return [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(3)]


def test_copies_depend_on_id_not_position():
  imgs = _images()
  a = calibrate.make_copies(imgs, ["x", "y", "z"], seed=5)
  b = calibrate.make_copies(imgs[::-1], ["z", "y", "x"], seed=5)
  for t in calibrate.TRANSFORMS:
    np.testing.assert_array_equal(a[t][0], b[t][2])


def test_copies_depend_on_the_seed():
  imgs = _images()
  a = calibrate.make_copies(imgs, ["x", "y", "z"], seed=5)
  c = calibrate.make_copies(imgs, ["x", "y", "z"], seed=6)
  assert any(a[t][0].shape != c[t][0].shape or not np.array_equal(a[t][0], c[t][0])
             for t in calibrate.TRANSFORMS)


def test_unknown_near_duplicate_transform_is_refused():
  with pytest.raises(ValueError, match="unknown near-duplicate transform"):
    calibrate.near_duplicate(_images()[0], "rotate", np.random.default_rng(0))
