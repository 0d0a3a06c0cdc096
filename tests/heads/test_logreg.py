"""Linear probe: equal to scikit-learn's LogisticRegression(lbfgs) on the same features."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from jaxbench.heads import logreg


@pytest.fixture(scope="module")
def digits():
  x, y = load_digits(return_X_y=True)
  return x[:800] / 16.0, y[:800]     # 800 of the 1797 digits keep the test quick


@pytest.mark.parametrize("C", [0.1, 1.0])
def test_matches_sklearn_float64(digits, C):
  x, y = digits
  sk = LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=10000).fit(x, y)
  f = logreg.fit(x, y, 10, C=C, tol=1e-10, max_iter=5000, dtype="float64")
  np.testing.assert_allclose(f.weights, sk.coef_, atol=1e-4)
  np.testing.assert_allclose(f.bias, sk.intercept_, atol=1e-4)
  assert logreg.accuracy(f, x, y) == pytest.approx(sk.score(x, y), abs=1e-12)
  np.testing.assert_array_equal(logreg.predict(f, x), sk.predict(x))


def test_fit_matches_sklearn_in_float32(digits):
  x, y = digits
  sk = LogisticRegression(C=0.1, solver="lbfgs", tol=1e-10, max_iter=10000).fit(x, y)
  f = logreg.fit(x, y, 10, C=0.1, tol=1e-7)
  assert f.weights.dtype == np.float32
  np.testing.assert_allclose(f.weights, sk.coef_, atol=1e-4)
  np.testing.assert_allclose(f.bias, sk.intercept_, atol=2e-4)


def test_fit_without_intercept_matches_sklearn(digits):
  x, y = digits
  sk0 = LogisticRegression(C=0.5, solver="lbfgs", tol=1e-10, max_iter=10000,
                           fit_intercept=False).fit(x, y)
  f0 = logreg.fit(x, y, 10, C=0.5, tol=1e-10, fit_intercept=False, dtype="float64")
  np.testing.assert_allclose(f0.weights, sk0.coef_, atol=1e-4)
  assert not f0.bias.any()


def _validation_mask(y):
  ids = [f"digit_{i}" for i in range(len(y))]
  return ids, logreg.validation_mask(ids, seed=3, fraction=0.25)


def test_validation_mask_depends_on_seed_and_id_only(digits):
  ids, val = _validation_mask(digits[1])
  # The split depends on (seed, id) only: reversing the order reverses the mask.
  np.testing.assert_array_equal(logreg.validation_mask(ids[::-1], 3, 0.25), val[::-1])
  assert 0.15 < val.mean() < 0.35


SWEEP_CS = (1e-3, 1e-1, 10.0)


@pytest.fixture(scope="module")
def swept(digits):
  """(validation mask, sweep result) over SWEEP_CS, run once."""
  x, y = digits
  _, val = _validation_mask(y)
  return val, logreg.sweep(x, y, 10, val_mask=val, Cs=SWEEP_CS, tol=1e-10, dtype="float64")


def test_sweep_picks_the_best_validation_C(digits, swept):
  x, y = digits
  val, res = swept
  Cs = SWEEP_CS
  accs = {}
  for C in Cs:   # independent cold fits with scikit-learn on the training split
    sk = LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=10000).fit(x[~val], y[~val])
    accs[C] = sk.score(x[val], y[val])
    assert res.val_accuracy[C] == pytest.approx(accs[C], abs=1e-12)
  assert res.best_C == max(Cs, key=lambda c: (accs[c], -c))


def test_sweep_refits_the_best_C_on_all_data(digits, swept):
  x, y = digits
  _, res = swept
  sk = LogisticRegression(C=res.best_C, solver="lbfgs", tol=1e-10, max_iter=10000).fit(x, y)
  np.testing.assert_allclose(res.final.weights, sk.coef_, atol=1e-4)


def test_bad_input():
  x = np.zeros((4, 3))
  with pytest.raises(ValueError, match="labels must lie in"):
    logreg.fit(x, np.array([0, 1, 2, 5]), 3, C=1.0)
  with pytest.raises(ValueError, match="C must be > 0"):
    logreg.fit(x, np.array([0, 1, 2, 0]), 3, C=0.0)
