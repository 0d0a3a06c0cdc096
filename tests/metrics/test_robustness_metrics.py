"""Effective/relative robustness formulas against hand computations and the testbed data."""
import json
import math

import numpy as np
import pytest
import scipy.stats

from jaxbench.metrics import robustness as rb
from jaxbench.report import fit_coefficients


def sig(z):
  return 1.0 / (1.0 + math.exp(-z))


def test_logit_sigmoid_values():
  assert rb.logit(0.5) == 0.0
  assert rb.logit(0.8) == pytest.approx(math.log(4.0), abs=1e-15)
  assert rb.logit(0.0) == -np.inf and rb.logit(1.0) == np.inf
  p = np.array([1e-6, 0.1, 0.37, 0.9, 1 - 1e-6])
  np.testing.assert_allclose(rb.sigmoid(rb.logit(p)), p, rtol=1e-12)
  np.testing.assert_array_equal(rb.sigmoid(np.array([-np.inf, np.inf, -800.0, 800.0])),
                                [0.0, 1.0, 0.0, 1.0])
  with pytest.raises(ValueError, match=r"fractions in \[0, 1\]"):
    rb.logit(76.1)


def test_ols_hand_and_scipy():
  assert rb.ols([0, 1, 2], [1, 3, 5]) == pytest.approx((2.0, 1.0), abs=1e-14)
  # x = (0, 1, 3), y = (1, 2, 2): xm = 4/3, ym = 5/3,
  # Sxy = (-4/3)(-2/3) + (-1/3)(1/3) + (5/3)(1/3) = 12/9, Sxx = 16/9 + 1/9 + 25/9 = 42/9
  a, b = rb.ols([0, 1, 3], [1, 2, 2])
  assert a == pytest.approx(12 / 42, abs=1e-14)
  assert b == pytest.approx(5 / 3 - (12 / 42) * 4 / 3, abs=1e-14)
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=20), rng.normal(size=20)
  ref = scipy.stats.linregress(x, y)
  assert rb.ols(x, y) == pytest.approx((ref.slope, ref.intercept), abs=1e-12)
  with pytest.raises(ValueError, match="two distinct x"):
    rb.ols([1.0, 1.0], [0.0, 1.0])


def test_effective_robustness_hand():
  # Baselines exactly on logit(y) = 0.5 logit(x) - 0.25.
  lx = [-1.0, 0.0, 1.0]
  fit = rb.fit_baseline([sig(v) for v in lx], [sig(0.5 * v - 0.25) for v in lx],
                        ["a", "b", "c"])
  (a, b), = fit.lines
  assert (a, b) == pytest.approx((0.5, -0.25), abs=1e-12)
  assert fit.pivots == () and fit.baselines == ("a", "b", "c")
  # A model at 50 % ID, 60 % OOD: beta = sigmoid(-0.25) = 1 / (1 + e^0.25).
  beta = 1.0 / (1.0 + math.exp(0.25))
  assert float(fit.beta(0.5)) == pytest.approx(0.43782349911420193, abs=1e-12)
  assert float(rb.effective_robustness(fit, 0.5, 0.6)) == pytest.approx(0.6 - beta,
                                                                         abs=1e-12)
  # Vectorised: a baseline has rho 0.
  rho = rb.effective_robustness(fit, [sig(1.0), 0.5], [sig(0.25), 0.6])
  np.testing.assert_allclose(rho, [0.0, 0.6 - beta], atol=1e-12)


def test_zero_ood_baseline_splits_the_fit_at_its_id_accuracy():
  # Lower line logit(y) = logit(x) - 1, upper line 2 logit(x) + 1, pivot model at
  # x = 50 % with 0 % OOD (as ResNet-50 on ImageNet-A).
  xs = [sig(-2), sig(-1), 0.5, sig(1), sig(2)]
  ys = [sig(-3), sig(-2), 0.0, sig(3), sig(5)]
  fit = rb.fit_baseline(xs, ys, ["l1", "l2", "pivot", "u1", "u2"])
  assert fit.pivots == (0.5,)
  assert fit.lines[0] == pytest.approx((1.0, -1.0), abs=1e-12)
  assert fit.lines[1] == pytest.approx((2.0, 1.0), abs=1e-12)
  assert "pivot" not in fit.baselines and len(fit.baselines) == 4
  assert any("pivot" in n and "0%" in n for n in fit.notes)
  # x <= pivot uses the lower line (testbed: df[x] > pivot -> line 2).
  assert float(fit.beta(0.5)) == pytest.approx(sig(-1.0), abs=1e-12)
  assert float(fit.beta(sig(1.5))) == pytest.approx(sig(4.0), abs=1e-12)
  assert float(fit.beta(sig(-0.5))) == pytest.approx(sig(-1.5), abs=1e-12)
  # The pivot model's own effective robustness: 0 - sigmoid(-1).
  assert float(rb.effective_robustness(fit, 0.5, 0.0)) == pytest.approx(-sig(-1.0),
                                                                         abs=1e-12)


def test_hundred_percent_and_degenerate_baselines():
  xs = [sig(-1), sig(0.5), sig(1), 0.0, sig(0.2)]
  ys = [sig(-1), sig(0.5), sig(1), 0.3, 1.0]   # 0 % ID dropped; 100 % OOD is a pivot
  fit = rb.fit_baseline(xs, ys, ["a", "b", "c", "zero_id", "perfect_ood"])
  assert fit.pivots == (pytest.approx(sig(0.2)),)
  assert any("zero_id" in n and "no logit" in n for n in fit.notes)
  # Lower segment holds one baseline: it uses the line fitted on all finite ones (y = x).
  assert any("holds 1 baseline" in n for n in fit.notes)
  assert fit.lines[0] == pytest.approx((1.0, 0.0), abs=1e-12)
  assert fit.lines[1] == pytest.approx((1.0, 0.0), abs=1e-12)
  with pytest.raises(ValueError, match="at least two baselines"):
    rb.fit_baseline([0.5, 0.6, 0.7], [0.0, 0.2, 1.0])


def test_scored_model_at_zero_or_full_id_accuracy_takes_the_limit():
  fit = rb.BaselineFit(lines=((0.8, -0.3),))
  np.testing.assert_allclose(fit.beta([0.0, 1.0]), [0.0, 1.0])
  assert float(rb.effective_robustness(fit, 1.0, 0.9)) == pytest.approx(-0.1)
  assert float(rb.effective_robustness(fit, 0.0, 0.05)) == pytest.approx(0.05)
  flat = rb.BaselineFit(lines=((0.0, 0.4),))   # a = 0: beta is sigmoid(b) everywhere
  np.testing.assert_allclose(flat.beta([0.0, 0.3, 1.0]), [sig(0.4)] * 3)


def test_relative_robustness_and_drop_hand():
  fit = rb.BaselineFit(lines=((1.0, 0.0),))     # beta(x) = x
  rel = rb.relative_robustness(0.6, 0.5, 0.7, 0.4, fit=fit)
  assert rel["tau"] == pytest.approx(0.1)
  assert rel["delta_id"] == pytest.approx(-0.1)
  # rho(with) = 0.5 - 0.6 = -0.1, rho(without) = 0.4 - 0.7 = -0.3.
  assert rel["delta_rho"] == pytest.approx(0.2)
  assert rb.relative_robustness(0.6, 0.5, 0.7, 0.4)["delta_rho"] is None
  np.testing.assert_allclose(rb.accuracy_drop([0.76, 0.6], [0.63, 0.7]), [0.13, -0.1])


def test_baseline_fit_validation_and_roundtrip():
  with pytest.raises(ValueError, match="one more line than pivots"):
    rb.BaselineFit(lines=((1.0, 0.0),), pivots=(0.5,))
  with pytest.raises(ValueError, match="ascend"):
    rb.BaselineFit(lines=((1, 0), (1, 0), (1, 0)), pivots=(0.7, 0.5))
  f = rb.BaselineFit(((1.0, 2.0), (3.0, 4.0)), (0.5,), ("m",), "src", ("n",))
  assert rb.BaselineFit.from_dict(json.loads(json.dumps(f.to_dict()))) == f


# --- the shipped testbed fits --------------------------------------------------------
# protocol.md section 6.2 (testbed robustness_top1s.csv, percent, 2 decimals):
# val, V2 (mf), R, Sketch, ObjectNet, A, Vid pm0, Vid pm10, YTBB pm0, YTBB pm10, Stylized
PROTOCOL_ROWS = {
    "resnet50": (76.13, 63.33, 36.17, 24.09, 35.75, 0.00, 67.54, 52.48, 57.04, 43.84, 20.48),
    "alexnet": (56.52, 43.97, 21.77, 10.72, 13.86, 1.77, 49.41, 32.01, 45.32, 30.54, 7.41),
}
COLS = ("val", "imagenetv2-matched-frequency", "imagenet-r", "imagenet-sketch",
        "objectnet-1.0-beta", "imagenet-a", "imagenet-vid-robust_pm0",
        "imagenet-vid-robust_pm10", "ytbb-robust_pm0", "ytbb-robust_pm10",
        "stylized_imagenet")


def test_shipped_data_matches_the_published_rows():
  table = fit_coefficients.read_published()
  assert len(table) == 13
  for model, values in PROTOCOL_ROWS.items():
    for col, want in zip(COLS, values):
      assert round(100 * table[model][col], 2) == pytest.approx(want, abs=1e-9), (model, col)
  # val-on-classes controls of ResNet-50 (protocol.md 6.2: 92.12 on R, 91.86 on A).
  assert round(100 * table["resnet50"]["val-on-imagenet-r-classes"], 2) == 92.12
  assert round(100 * table["resnet50"]["val-on-imagenet-a-classes"], 2) == 91.86


def _testbed_procedure(x, y):
  """The testbed's format_eff_robust, re-implemented with scipy: [(slope, icpt)], pivot."""
  x, y = np.asarray(x), np.asarray(y)
  t = lambda p: np.log(p / (1 - p))
  if (y == 0).any():
    pivot = x[y == 0][0]
    out = []
    for sel in (x < pivot, x > pivot):
      r = scipy.stats.linregress(t(x[sel]), t(y[sel]))
      out.append((r.slope, r.intercept))
    return out, [pivot]
  r = scipy.stats.linregress(t(x), t(y))
  return [(r.slope, r.intercept)], []


def test_shipped_coefficients_reproduce_from_the_published_accuracies():
  table = fit_coefficients.read_published()
  with open(rb.TESTBED_FITS_FILE) as f:
    shipped = json.load(f)
  assert set(shipped["fits"]) == set(fit_coefficients.SHIFT_COLUMNS)
  names = sorted(table)
  for shift, (xc, yc) in fit_coefficients.SHIFT_COLUMNS.items():
    lines, pivots = _testbed_procedure([table[m][xc] for m in names],
                                       [table[m][yc] for m in names])
    got = shipped["fits"][shift]
    np.testing.assert_allclose(got["lines"], lines, rtol=0, atol=1e-12, err_msg=shift)
    np.testing.assert_allclose(got["pivots"], pivots, rtol=0, atol=1e-15, err_msg=shift)
  # The ImageNet-A split sits at ResNet-50's val-on-A-classes accuracy.
  assert shipped["fits"]["imagenet_a"]["pivots"] == pytest.approx([0.9186], abs=1e-6)
  # And the module's own computation writes exactly the shipped file.
  assert json.loads(json.dumps(fit_coefficients.to_json(
      fit_coefficients.compute_fits(table)))) == shipped
  fits = rb.load_testbed_fits()
  # CLIP RN50 zero-shot on ImageNetV2 (protocol.md 6.2: val 59.81, V2 52.59):
  (a, b), = fits["imagenet_v2"].lines
  want = 0.5259 - sig(a * math.log(0.5981 / 0.4019) + b)
  assert float(rb.effective_robustness(fits["imagenet_v2"], 0.5981, 0.5259)) == \
      pytest.approx(want, abs=1e-12)
  assert want > 0.03   # CLIP lies above the standard models' line
