"""Properties every attack must have (cleverhans-style table, checked analytically).

On a 2-class linear model in 2-D the optimal L-inf (L2) attack is known in
closed form: an example with margin m = f_y - f_other is breakable iff
m < eps * ||w_y - w_other||_1 (_2). Attacks that reach the optimum on a linear
model (FGSM, BIM, PGD, MIM, NES, SPSA, APGD, DeepFool, C&W) must break exactly
those examples; eps = 0 must return the input bit for bit; every output must
lie in its ball and bounds; initially misclassified examples are untouched.
"""
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import attacks
from attack_helpers import keys, linear_apply, make_linear, toy2d

EPS = 0.15
X, P = toy2d(n=32)
DW = np.asarray(P["w"])[:, 0] - np.asarray(P["w"])[:, 1]
CLEAN = np.asarray(linear_apply(P, X))
PRED = CLEAN.argmax(-1)
MARGIN = np.abs(CLEAN[:, 0] - CLEAN[:, 1])
LABELS = PRED.copy()
LABELS[:3] = 1 - LABELS[:3]            # three initially misclassified examples
KEYS = keys(len(X))


def _l1(v):
  return np.abs(v).sum()


# (spec template, dual-norm length of dw, relative borderline margin to skip)
UNTARGETED = [
    ("fgsm(eps={e})", _l1(DW), 0.01),
    ("bim(eps={e})", _l1(DW), 0.01),
    ("pgd(eps={e})", _l1(DW), 0.01),
    ("mim(eps={e})", _l1(DW), 0.01),
    ("nes(eps={e})", _l1(DW), 0.01),
    ("spsa(eps={e})", _l1(DW), 0.01),
    ("apgd_ce(eps={e}, steps=20)", _l1(DW), 0.01),
    ("deepfool(eps={e})", _l1(DW), 0.03),
    ("pgd(eps={e}, norm='l2')", np.linalg.norm(DW), 0.01),
    ("cw(eps={e}, steps=60, binary_steps=6, lr=0.05)", np.linalg.norm(DW), 0.06),
]


UNTARGETED_CASES = pytest.mark.parametrize(
    "template,dual,border", UNTARGETED,
    ids=[t[0].split("(")[0] + ("_l2" if "l2" in t[0] else "") for t in UNTARGETED])
_RUNS = {}


def _run(template, eps, p=P, x=X, labels=LABELS, k=KEYS, **kw):
  """One attack run per (template, eps, data), shared by the property tests."""
  key = (template, eps, id(p), kw.get("targets") is not None)
  if key not in _RUNS:
    _RUNS[key] = attacks.get(template.format(e=eps))(linear_apply, p, x, labels, k, **kw)
  return _RUNS[key]


@UNTARGETED_CASES
def test_zero_eps_is_the_identity(template, dual, border):
  # eps = 0: the identity, bit for bit, and nothing broken.
  r0 = _run(template, 0.0)
  np.testing.assert_array_equal(np.asarray(r0.adv_images), np.asarray(X))
  assert not np.any(np.asarray(r0.success))


@UNTARGETED_CASES
def test_output_lies_in_the_feasible_set(template, dual, border):
  r = _run(template, EPS)
  adv = np.asarray(r.adv_images)
  delta = (adv - np.asarray(X)).reshape(len(X), -1)
  norm = (np.abs(delta).max(1) if attacks.get(template.format(e=EPS)).threat.norm == "linf"
          else np.linalg.norm(delta, axis=1))
  assert np.all(norm <= EPS * (1 + 1e-5) + 1e-6)
  assert np.all((adv >= 0) & (adv <= 1))
  assert np.all(np.asarray(r.diagnostics["in_ball"]))
  assert np.all(np.asarray(r.diagnostics["in_bounds"]))


@UNTARGETED_CASES
def test_misclassified_examples_are_untouched(template, dual, border):
  # Misclassified before the attack: untouched, never a success.
  r = _run(template, EPS)
  np.testing.assert_array_equal(np.asarray(r.adv_images)[:3], np.asarray(X)[:3])
  assert not np.asarray(r.success)[:3].any()


@UNTARGETED_CASES
def test_breaks_exactly_the_breakable_examples(template, dual, border):
  succ = np.asarray(_run(template, EPS).success)
  breakable = MARGIN < EPS * dual
  clear = np.abs(MARGIN / dual - EPS) > border * EPS
  sel = clear.copy()
  sel[:3] = False
  assert sel.sum() >= 15 and breakable[sel].any() and (~breakable[sel]).any()
  np.testing.assert_array_equal(succ[sel], breakable[sel])


@UNTARGETED_CASES
def test_success_is_a_reevaluation_of_the_returned_images(template, dual, border):
  r = _run(template, EPS)
  pred = np.asarray(linear_apply(P, jnp.asarray(np.asarray(r.adv_images)))).argmax(-1)
  np.testing.assert_array_equal(np.asarray(r.success)[3:], (pred != LABELS)[3:])


X3 = X
# Nearest-centroid classifier (linear) with three regions in the unit square.
_C = np.array([[0.35, 0.35], [0.65, 0.35], [0.5, 0.65]])
P3 = {"w": jnp.asarray((20 * _C.T).astype(np.float32)),
      "b": jnp.asarray((-10 * (_C ** 2).sum(1)).astype(np.float32))}
Y3 = np.asarray(linear_apply(P3, X3)).argmax(-1)
T3 = (Y3 + 1) % 3
TARGETED = ["bim(eps=0.3, targeted='given')",
            "bim(eps=0.3, targeted='random')",
            "pgd(eps=0.3, targeted='least_likely')",
            "cw(targeted='given', steps=60, binary_steps=6, lr=0.05)"]


def _targeted(spec):
  return _run(spec, None, P3, X3, Y3, KEYS, targets=jnp.asarray(T3))


@pytest.mark.parametrize("spec", TARGETED)
def test_targeted_success_rate(spec):
  # 31 of the 32 targets are reachable within eps = 0.3 (brute force).
  assert np.asarray(_targeted(spec).success).mean() >= 0.9


@pytest.mark.parametrize("spec", TARGETED)
def test_targeted_success_means_the_target_is_predicted(spec):
  r = _targeted(spec)
  succ = np.asarray(r.success)
  d = {k: np.asarray(v) for k, v in r.diagnostics.items()}
  np.testing.assert_array_equal(d["adv_pred"][succ], d["target"][succ])


@pytest.mark.parametrize("spec", [s for s in TARGETED if "random" not in s])
def test_targets_follow_the_mode(spec):
  target = np.asarray(_targeted(spec).diagnostics["target"])
  mode = attacks.get(spec).threat.targeted
  clean = np.asarray(linear_apply(P3, X3))
  np.testing.assert_array_equal(target, T3 if mode == "given" else clean.argmin(-1))


def test_random_targets_are_wrong_classes():
  target = np.asarray(_targeted(TARGETED[1]).diagnostics["target"])
  assert np.all(target != Y3) and np.all((target >= 0) & (target < 3))
  assert len(set(target.tolist())) == 3


def test_random_target_is_a_function_of_the_example_key():
  target = np.asarray(_targeted(TARGETED[1]).diagnostics["target"])
  again = attacks.get(TARGETED[1])(linear_apply, P3, X3[5:6], Y3[5:6], KEYS[5:6])
  assert int(again.diagnostics["target"][0]) == target[5]


XS = jnp.asarray(np.random.default_rng(1).uniform(size=(16, 4, 4, 3)).astype(np.float32))
PS = make_linear(48, 5, seed=5, scale=0.5)
YS = np.asarray(linear_apply(PS, XS)).argmax(-1)
KS = keys(16, seed=7)
MULTICLASS = pytest.mark.parametrize("template", [
    "dim(eps={e})", "square(eps={e}, n_queries=200)", "apgd_t(eps={e}, steps=10)"])


def _multiclass(template, eps):
  return _run(template, eps, PS, XS, YS, KS)


@MULTICLASS
def test_multiclass_zero_eps_is_the_identity(template):
  np.testing.assert_array_equal(np.asarray(_multiclass(template, 0.0).adv_images),
                                np.asarray(XS))


@MULTICLASS
def test_multiclass_output_lies_in_the_feasible_set(template):
  adv = np.asarray(_multiclass(template, 0.08).adv_images)
  assert np.abs(adv - np.asarray(XS)).max() <= 0.08 + 1e-6
  assert adv.min() >= 0 and adv.max() <= 1


@MULTICLASS
def test_multiclass_success_rate(template):
  assert np.asarray(_multiclass(template, 0.08).success).mean() >= 0.5


@MULTICLASS
def test_multiclass_success_is_a_reevaluation(template):
  r = _multiclass(template, 0.08)
  pred = np.asarray(linear_apply(PS, jnp.asarray(np.asarray(r.adv_images)))).argmax(-1)
  np.testing.assert_array_equal(np.asarray(r.success), pred != YS)


def test_square_stops_at_its_query_budget():
  r = _multiclass("square(eps={e}, n_queries=200)", 0.08)
  q = np.asarray(r.queries)
  succ = np.asarray(r.success)
  assert q.max() <= 201 and np.all(q[succ] < 201)
