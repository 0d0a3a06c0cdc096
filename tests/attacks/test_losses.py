"""Attack losses against PyTorch and hand formulas on random logits."""
import numpy as np
import torch

from jaxbench.attacks import losses

_RNG = np.random.default_rng(0)
LOGITS = _RNG.normal(size=(5, 7)).astype(np.float32)
Y = np.array([0, 3, 6, 2, 2])
T = np.array([1, 1, 0, 5, 6])
SORTED = np.sort(LOGITS, 1)
ZY = LOGITS[np.arange(5), Y]
OTHER = np.where(np.eye(7, dtype=bool)[Y], -np.inf, LOGITS).max(1)


def _torch_ce(cls):
  return torch.nn.functional.cross_entropy(torch.from_numpy(LOGITS), torch.from_numpy(cls),
                                           reduction="none").numpy()


def test_cross_entropy_matches_torch():
  np.testing.assert_allclose(np.asarray(losses.cross_entropy(LOGITS, Y)), _torch_ce(Y),
                             rtol=1e-5)


def test_margin_is_label_minus_best_other():
  np.testing.assert_allclose(np.asarray(losses.margin(LOGITS, Y)), ZY - OTHER, rtol=1e-6)


def test_dlr_formula():
  np.testing.assert_allclose(np.asarray(losses.dlr(LOGITS, Y)),
                             (ZY - OTHER) / (SORTED[:, -1] - SORTED[:, -3] + 1e-12), rtol=1e-5)


def test_targeted_dlr_formula():
  zt = LOGITS[np.arange(5), T]
  np.testing.assert_allclose(
      np.asarray(losses.dlr_targeted(LOGITS, Y, T)),
      (ZY - zt) / (SORTED[:, -1] - 0.5 * (SORTED[:, -3] + SORTED[:, -4]) + 1e-12), rtol=1e-5)


def test_targeted_ce_attack_loss_is_minus_ce_of_target():
  np.testing.assert_allclose(np.asarray(losses.attack_loss("ce", LOGITS, Y, T, True)),
                             -_torch_ce(T), rtol=1e-5)


def test_softmax_outputs_look_like_probabilities():
  probs = np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)
  assert np.all(np.asarray(losses.looks_like_probabilities(probs)))


def test_logits_do_not_look_like_probabilities():
  assert not np.any(np.asarray(losses.looks_like_probabilities(LOGITS)))
