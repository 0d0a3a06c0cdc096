"""Flip probability and top-5 distance against hand-computed sequences."""
import numpy as np
import pytest
from scipy.stats import rankdata

from jaxbench.metrics import imagenet_p as P

VIDEO = np.array([1, 1, 2, 2, 2, 3, 1])


@pytest.mark.parametrize("noise,difficulty,want", [
    # Consecutive frames: flips at 1->2, 2->3, 3->1 out of 6 pairs.
    (False, 1, 3 / 6),
    # Step 2: [1, 2, 2, 1] -> 2 flips of 3 and [1, 2, 3] -> 2 of 2.
    (False, 2, 4 / 5),
    # Noise: every frame against frame 0 (class 1): 1,2,2,2,3,1 -> 4 of 6, any difficulty.
    (True, 1, 4 / 6),
    (True, 3, 4 / 6)])
def test_flip_probability_by_hand(noise, difficulty, want):
  got = P.video_scores(VIDEO, noise=noise, difficulty=difficulty)["flip_prob"]
  assert got == pytest.approx(want)


def test_flip_probability_is_the_mean_over_videos():
  # Mean over videos (not over pairs).
  out = P.scores([VIDEO, np.array([5, 5, 5])], "rotate", 1)
  assert out["flip_prob"] == pytest.approx((0.5 + 0.0) / 2) and "t5d" not in out


def _reference_t5d(logits_a, logits_b):
  """hendrycks ImageNet-P/test.py dist(perm2[argsort(perm1)], 'top5') on full ranks."""
  cum = np.cumsum(np.asarray([0] + [1] * 5 + [0] * (len(logits_a) - 6)))
  perm1 = rankdata(-logits_a, method="ordinal")
  perm2 = rankdata(-logits_b, method="ordinal")
  sigma = perm2[np.argsort(perm1)]
  return np.sum(np.abs(cum[:5] - cum[sigma - 1][:5]))


@pytest.mark.parametrize("b,want", [
    # Ranks in b of a's top-5 (0, 1, 2, 3, 4): 1, 0, 2, absent, absent -> 1+1+0+2+1.
    ([1, 0, 2, 7, 8], 5),
    ([0, 1, 2, 3, 4], 0),
    ([9, 8, 7, 6, 5], 5 + 4 + 3 + 2 + 1)])
def test_top5_distance_by_hand(b, want):
  assert P.top5_distance([0, 1, 2, 3, 4], b) == want


def test_top5_distance_matches_hendrycks_on_full_ranks():
  rng = np.random.default_rng(0)
  for _ in range(50):
    a = rng.normal(size=20)
    b = a + rng.normal(size=20) * 0.5
    top = lambda z: np.argsort(-z, kind="stable")[:5]
    assert P.top5_distance(top(a), top(b)) == _reference_t5d(a, b)


@pytest.mark.parametrize("noise,want", [
    (False, 2.5),    # consecutive: 5 then 0
    (True, 5.0)])    # noise: both against frame 0
def test_t5d_of_a_sequence(noise, want):
  frames = np.array([[0, 1, 2, 3, 4], [1, 0, 2, 7, 8], [1, 0, 2, 7, 8]])
  assert P.video_scores(frames, noise=noise, difficulty=1)["t5d"] == pytest.approx(want)


def test_sequence_metric_fn_orders_frames_by_id():
  ids = ["rotate/n01/a.mp4/002", "rotate/n01/a.mp4/000", "rotate/n01/a.mp4/001",
         "rotate/n02/b.mp4/000", "rotate/n02/b.mp4/001"]
  preds = np.array([[1, 0, 2, 7, 8], [0, 1, 2, 3, 4], [1, 0, 2, 7, 8],
                    [3, 4, 5, 6, 7], [3, 4, 5, 6, 7]])
  fn = P.make_sequence_metric_fn("rotate", 1)
  out = fn(ids, preds, None)
  assert out["t5d"] == pytest.approx((2.5 + 0.0) / 2)
  assert out["flip_prob"] == pytest.approx((0.5 + 0.0) / 2)


def test_videos_from_ids_refuses_a_gap_in_frames():
  with pytest.raises(ValueError, match="frames"):
    P.videos_from_ids(["v/000", "v/002"], [1, 2])


def test_scores_refuses_an_unknown_difficulty():
  with pytest.raises(ValueError, match="difficulty"):
    P.scores([VIDEO], "rotate", 4)


def test_normalised_rates():
  rates = {("rotate", 1): 0.1, ("rotate", 2): 0.3, ("gaussian_noise", 1): 0.2}
  base = {("rotate", 1): 0.2, ("rotate", 2): 0.6, ("gaussian_noise", 1): 0.8}
  out = P.normalized(rates, base)
  assert out["rotate"] == pytest.approx(0.4 / 0.8)
  assert out["gaussian_noise"] == pytest.approx(0.25)
  assert out["mean"] == pytest.approx((0.5 + 0.25) / 2)
  partial = P.normalized(rates, {("rotate", 1): 0.2})
  assert partial["missing_baseline"] == ["gaussian_noise", "rotate"] and "mean" not in partial


def test_mfr_over_the_ten_test_perturbations_names_the_missing():
  assert len(P.BENCHMARK) == 10 and "shear" not in P.BENCHMARK
  base = {(p, d): 0.1 * (i + 1) for i, p in enumerate(P.BENCHMARK) for d in (1, 2)}
  rates = {k: v / 2 for k, v in base.items()}
  full = P.mfr(rates, base)
  assert full["mfr"] == pytest.approx(0.5) and full["missing"] == []
  # Hand: rotate halved, scale at a quarter, others absent.
  part = P.mfr({("rotate", 1): 0.35, ("scale", 1): 0.25, ("shear", 1): 0.3}, base)
  assert part["mfr"] is None
  assert part["missing"] == [p for p in P.BENCHMARK if p not in ("rotate", "scale")]
  assert part["used"] == ["rotate", "scale"]
  assert part["evaluated_mean"] == pytest.approx((0.35 / 0.8 + 0.25 / 1.0) / 2)
  # The model has a perturbation the reference lacks: named as such.
  lack = P.mfr(rates, {k: v for k, v in base.items() if k[0] != "tilt"})
  assert lack["mfr"] is None and lack["missing_baseline"] == ["tilt"] and lack["missing"] == []
