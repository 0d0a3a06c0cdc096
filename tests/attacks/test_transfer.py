"""Transfer attacks: the step follows the surrogate's gradient, success is the victim's."""
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import attacks
from jaxbench.attacks.threat import AttackInputError
from attack_helpers import keys, linear_apply, toy2d

X, P = toy2d(n=32)
Y = np.asarray(linear_apply(P, X)).argmax(-1)
K = keys(32)
FGSM_T = attacks.get("transfer(attack='fgsm', eps=0.15)")
# A surrogate that moves x[1] only.
PS = {"w": jnp.asarray([[0.0, 0.0], [-1.0, 1.0]]), "b": jnp.zeros(2)}


@pytest.fixture(scope="module")
def other():
  return FGSM_T.with_surrogate(linear_apply, PS)(linear_apply, P, X, Y, K)


@pytest.mark.parametrize("spec,match", [
    ("transfer(attack='deepfool')", r"transfer: attack must be a gradient attack"),
])
def test_bad_hyperparameters_raise_clear_errors(spec, match):
  with pytest.raises(AttackInputError, match=match):
    attacks.get(spec)


def test_unbound_surrogate_raises():
  with pytest.raises(AttackInputError, match="no surrogate bound"):
    attacks.get("transfer(attack='fgsm', eps=0.1)")(linear_apply, P, X, np.zeros(32, np.int32))


def test_victim_as_surrogate_is_the_white_box_attack():
  same = FGSM_T.with_surrogate(linear_apply, P)(linear_apply, P, X, Y, K)
  white = attacks.get("fgsm(eps=0.15)")(linear_apply, P, X, Y, K)
  np.testing.assert_array_equal(np.asarray(same.adv_images), np.asarray(white.adv_images))


def test_step_follows_the_surrogate_gradient(other):
  dws = np.asarray(PS["w"])[:, 1] - np.asarray(PS["w"])[:, 0]        # grad of CE for y=0
  sign = np.where(Y == 0, 1.0, -1.0)[:, None] * np.sign(dws)[None]
  want = np.clip(np.asarray(X).reshape(32, 2) + 0.15 * sign, 0, 1)
  np.testing.assert_allclose(np.asarray(other.adv_images).reshape(32, 2), want, atol=1e-6)


def test_success_is_judged_on_the_victim(other):
  victim_pred = np.asarray(linear_apply(P, other.adv_images)).argmax(-1)
  np.testing.assert_array_equal(np.asarray(other.success), victim_pred != Y)
  assert np.asarray(other.success).any() and not np.asarray(other.success).all()
