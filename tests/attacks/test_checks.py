"""Sanity checks on attack results: probability outputs, determinism, black box vs white box."""
import warnings

import numpy as np
import pytest

from jaxbench import attacks
from jaxbench.attacks import checks, metrics
from attack_helpers import keys, linear_apply, softmax_apply, toy2d

X, P = toy2d(n=32)
Y = np.asarray(linear_apply(P, X)).argmax(-1)


@pytest.fixture(scope="module")
def prob_result():
  with pytest.warns(checks.AttackWarning, match="look like probabilities"):
    return attacks.get("fgsm(eps=0.15)")(softmax_apply, P, X, Y, keys(32))


def test_probability_outputs_warn(prob_result):
  assert checks.probability_outputs(prob_result)["prob_like_frac"] == 1.0


def test_checks_from_stored_outputs_equal_checks_from_result(prob_result):
  # The same checks from stored per-example outputs (what the runner keeps).
  assert checks.summary(metrics.outputs(prob_result)) == checks.summary(prob_result)


def test_logits_do_not_warn():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    attacks.get("fgsm(eps=0.15)")(linear_apply, P, X, Y, keys(32))


def test_determinism_passes_a_deterministic_model():
  assert checks.determinism(linear_apply, P, X)["deterministic"]


def test_determinism_flags_a_noisy_model():
  noisy = lambda p, x: linear_apply(p, x) + np.random.normal(size=(x.shape[0], 1))
  d = checks.determinism(noisy, P, X)
  assert not d["deterministic"] and d["max_logit_diff"] > 0


def test_blackbox_beating_every_whitebox_is_flagged():
  flag = checks.blackbox_beats_whitebox({"bim(eps=0.1)": 0.4, "pgd(eps=0.1)": 0.35,
                                         "square(eps=0.1)": 0.2})
  assert flag["flag"] and flag["best_blackbox"] == "square(eps=0.1)"


def test_weaker_blackbox_is_not_flagged():
  assert not checks.blackbox_beats_whitebox({"bim": 0.1, "nes": 0.3})["flag"]


def test_registered_score_based_attacks_count_as_black_box():
  assert checks.BLACKBOX == {"nes", "spsa", "square"}
