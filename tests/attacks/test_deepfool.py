"""DeepFool against hand computations on linear models.

Model: f(x) = x @ W + b with W = [[0, 1, 1], [0, 0, 2]], b = (1.5, 0, 0).
At x0 = (0.3, 0.4): f = (1.5, 0.3, 1.1), label 0.
  L-inf (RoZ): |f_1 - f_0| / ||w_1 - w_0||_1 = 1.2 / 1 = 1.2,
               |f_2 - f_0| / ||w_2 - w_0||_1 = 0.4 / 3 = 0.1333 -> class 2,
               r = (0.13333 + 1e-4) * (1, 1), x' = x0 + 1.02 r = (0.436102, 0.536102),
               ||1.02 r||_inf = 0.136102 (the minimal L-inf perturbation is 0.13333).
  L2:          0.4 / sqrt(5) = 0.178885 -> r = 0.178985 * (1, 2) / sqrt(5),
               x' = (0.381646, 0.563291), ||1.02 r||_2 = 0.182565.
At x0 = (0.6, 0.2): f = (1.5, 0.6, 1.0), label 0.
  L-inf: 0.5 / 3 = 0.16667 -> x' = (0.770102, 0.370102), norm 0.170102.
  L2:    0.5 / sqrt(5) = 0.223607 -> x' = (0.702046, 0.404091), norm 0.228181.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import attacks
from jaxbench.attacks import base
from attack_helpers import keys, linear_apply, make_zeroshot, zeroshot_apply

P = {"w": jnp.asarray([[0.0, 1.0, 1.0], [0.0, 0.0, 2.0]]),
     "b": jnp.asarray([1.5, 0.0, 0.0])}
X = jnp.asarray([[[[0.3, 0.4]]], [[[0.6, 0.2]]]], jnp.float32)
Y = np.array([0, 0])


def test_targeted_mode_raises():
  with pytest.raises(attacks.AttackInputError, match=r"deepfool is untargeted"):
    attacks.get("deepfool(targeted='random')")


@pytest.mark.parametrize("norm,adv,norms", [
    ("linf", [[0.436102, 0.536102], [0.770102, 0.370102]], [0.136102, 0.170102]),
    ("l2", [[0.381646, 0.563291], [0.702046, 0.404091]], [0.182565, 0.228181]),
])
def test_deepfool_hand_computed_linear(norm, adv, norms):
  r = attacks.get(f"deepfool(eps=1.0, norm='{norm}')")(linear_apply, P, X, Y)
  np.testing.assert_allclose(np.asarray(r.adv_images).reshape(2, 2), adv, atol=2e-6)
  np.testing.assert_allclose(np.asarray(r.diagnostics["min_eps"]), norms, atol=2e-6)
  assert np.all(np.asarray(r.success))
  np.testing.assert_array_equal(np.asarray(r.diagnostics["iterations"]), [1, 1])
  np.testing.assert_array_equal(np.asarray(r.diagnostics["adv_pred"]), [2, 2])


def test_deepfool_budget_rule():
  # RoZ: robust iff ||(1 + overshoot) r_tot|| > eps; the example is then returned clean.
  r = attacks.get("deepfool(eps=0.15)")(linear_apply, P, X, Y)
  np.testing.assert_array_equal(np.asarray(r.success), [True, False])
  np.testing.assert_array_equal(np.asarray(r.adv_images[1]), np.asarray(X[1]))
  np.testing.assert_allclose(np.asarray(r.diagnostics["min_eps"]), [0.136102, 0.170102],
                             atol=2e-6)


ZP = make_zeroshot(48, 6, 20, seed=1)
ZX = jnp.asarray(np.random.default_rng(2).uniform(size=(5, 4, 4, 3)).astype(np.float32))
ZY = np.asarray(zeroshot_apply(ZP, ZX)).argmax(1)


def test_embedding_path_class_gradients_equal_jacobian():
  a = attacks.get("deepfool(embed='always', class_chunk=7, jac_chunk=4)")

  @jax.jit
  def both(p, x, label):
    logits, grads = a._linearize(base.Models(zeroshot_apply, p, a.threat), x, 20)
    cls = jnp.broadcast_to(jnp.arange(20)[:, None], (20, 5))
    jac = jax.vmap(jax.jacrev(lambda z: zeroshot_apply(p, z[None])[0]))(x)  # (N, K, ...)
    jac = jnp.swapaxes(jac, 0, 1)                                           # (K, N, ...)
    return logits, grads(cls, label), jac - jac[label, jnp.arange(5)][None]

  logits, got, want = both(ZP, ZX, jnp.asarray(ZY))
  np.testing.assert_allclose(np.asarray(logits), np.asarray(zeroshot_apply(ZP, ZX)), atol=1e-5)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4)
  assert np.abs(np.asarray(want)).max() > 0.1


def test_embedding_and_generic_paths_agree():
  r1 = attacks.get("deepfool(eps=0.5, embed='always', class_chunk=7, jac_chunk=4)")(
      zeroshot_apply, ZP, ZX, ZY)
  r2 = attacks.get("deepfool(eps=0.5, embed='never', class_chunk=7)")(zeroshot_apply, ZP, ZX, ZY)
  np.testing.assert_array_equal(np.asarray(r1.success), np.asarray(r2.success))
  np.testing.assert_allclose(np.asarray(r1.adv_images), np.asarray(r2.adv_images), atol=1e-4)
  np.testing.assert_allclose(np.asarray(r1.diagnostics["min_eps"]),
                             np.asarray(r2.diagnostics["min_eps"]), rtol=1e-3)
  assert np.asarray(r1.success).mean() >= 0.6


def test_deepfool_top_k_candidates_equal_all_when_k_is_all():
  r1 = attacks.get("deepfool(eps=0.5, embed='never', class_chunk=7)")(zeroshot_apply, ZP, ZX, ZY)
  r2 = attacks.get("deepfool(eps=0.5, embed='never', class_chunk=7, candidates=20)")(
      zeroshot_apply, ZP, ZX, ZY)
  np.testing.assert_allclose(np.asarray(r1.adv_images), np.asarray(r2.adv_images), atol=1e-6)


def kinked_apply(p, x):
  """Logit 1 - logit 0 = min(x_a, 0.5) + x_b - 0.9 on (N, 1, 1, 2) images.

  DeepFool (L-inf, overshoot 0.02), by hand:
    A = (0.1, 0.1): f = -0.7, w = (1, 1), pert 0.35 -> x = 0.1 + 1.02 * 0.3501
        = (0.457102, 0.457102), f = +0.014204: fooled after 1 step, ||r|| = 0.357102.
    B = (0.45, 0.1): f = -0.35, pert 0.175 -> x = (0.628602, 0.278602), f = -0.121398:
        not fooled after 1 step; step 2 has w = (0, 1) (x_a is past the kink), pert
        0.121398 -> x_b = 0.1 + 1.02 * (0.1751 + 0.121498) = 0.40253, f = +0.00253:
        fooled after 2 steps, ||r|| = 0.30253.
    C = (0.9, 0.9): f = +0.5, misclassified before the attack.
  """
  del p
  f = jnp.minimum(x[:, 0, 0, 0], 0.5) + x[:, 0, 0, 1] - 0.9
  return jnp.stack([jnp.zeros_like(f), f], -1)


KX = jnp.asarray([[[[0.1, 0.1]]], [[[0.45, 0.1]]], [[[0.9, 0.9]]]], jnp.float32)
KY = np.array([0, 0, 0])


@pytest.fixture(scope="module")
def one_step():
  """DeepFool with max_iters=1: B does not converge."""
  from jaxbench.attacks import checks
  with pytest.warns(checks.AttackWarning, match="did not converge within max_iters on 1"):
    return attacks.get("deepfool(eps=0.3, max_iters=1)")(kinked_apply, {}, KX, KY)


@pytest.fixture(scope="module")
def two_steps():
  return attacks.get("deepfool(eps=0.3, max_iters=2)")(kinked_apply, {}, KX, KY)


def test_nonconverged_examples_are_flagged(one_step):
  np.testing.assert_array_equal(np.asarray(one_step.diagnostics["nonconverged"]),
                                [False, True, False])
  np.testing.assert_allclose(np.asarray(one_step.diagnostics["min_eps"]),
                             [0.357102, np.inf, 0.0], atol=2e-6)


def test_unbroken_examples_are_returned_clean(one_step):
  # A exceeds eps (robust, returned clean); B is returned clean but not robust.
  np.testing.assert_array_equal(np.asarray(one_step.adv_images), np.asarray(KX))


def test_nonconverged_examples_are_not_robust(one_step):
  from jaxbench.attacks import metrics
  m = metrics.summarize(one_step)
  assert m["clean_acc"] == pytest.approx(2 / 3) and m["robust_acc"] == pytest.approx(1 / 3)
  assert m["deepfool_nonconverged"] == 1


def test_runner_path_counts_nonconverged_as_not_robust():
  from jaxbench import transforms
  from jaxbench.attacks import checks
  # The runner's path: its own re-evaluation of the returned images.
  t = transforms.get("attack:deepfool(eps=0.3, max_iters=1)")
  with pytest.warns(checks.AttackWarning, match="did not converge"):
    adv, extras = t.device(kinked_apply, {}, KX, jnp.asarray(KY), keys(3))
  correct = np.asarray(kinked_apply({}, adv)).argmax(-1) == KY
  clean = np.asarray(kinked_apply({}, KX)).argmax(-1) == KY
  out = {k: np.asarray(v) for k, v in extras.items()}
  out.update(clean_correct1=clean, correct1=correct)
  values, checks_row = transforms.attack_metrics(out)
  assert values["robust_acc"] == pytest.approx(1 / 3)
  assert values["deepfool_nonconverged"] == 1 and checks_row["deepfool_nonconverged"] == 1


def test_converged_minimal_perturbation_beyond_eps_is_robust(two_steps):
  # With room to converge, B's minimal perturbation 0.30253 > eps: robust.
  from jaxbench.attacks import metrics
  np.testing.assert_array_equal(np.asarray(two_steps.diagnostics["nonconverged"]), [False] * 3)
  np.testing.assert_allclose(np.asarray(two_steps.diagnostics["min_eps"]),
                             [0.357102, 0.30253, 0.0], atol=2e-6)
  np.testing.assert_array_equal(np.asarray(two_steps.diagnostics["iterations"]), [1, 2, 0])
  m2 = metrics.summarize(two_steps)
  assert m2["robust_acc"] == pytest.approx(2 / 3) and m2["deepfool_nonconverged"] == 0
