"""Threat model: settings checked with clear errors, bounds, projection, RoZ's step rule."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import attacks
from jaxbench.attacks import threat
from jaxbench.attacks.threat import AttackInputError, ThreatModel
from jaxbench.models.api import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, Preprocess
from attack_helpers import linear_apply, toy2d

CLIP_PRE = Preprocess(size=4, resize=4, mean=CLIP_MEAN, std=CLIP_STD)
IMNET_PRE = Preprocess(size=4, resize=4, mean=IMAGENET_MEAN, std=IMAGENET_STD)
X, P = toy2d(n=32)


# -- settings ------------------------------------------------------------------
@pytest.mark.parametrize("spec,match", [
    ("bim(eps=8)", r"eps=8 is outside \[0, 1\].*8/255"),
    ("bim(eps=-0.1)", r"eps=-0.1: expected a finite number >= 0"),
    ("pgd(bounds=(0, 255))", r"inconsistent with the model's input range \[0, 1\]"),
    ("pgd(bounds=(1, 0))", r"expected finite lo < hi"),
    ("fgsm(norm='l3')", r"norm='l3'"),
    ("bim(eps=5.0, space='normalized')", r"exceeds the width of the bounds"),
])
def test_bad_threat_settings_raise_clear_errors(spec, match):
  with pytest.raises(AttackInputError, match=match):
    attacks.get(spec)


def test_non_finite_eps_raises():
  with pytest.raises(AttackInputError, match="finite"):
    ThreatModel(eps=math.nan)


def test_normalized_space_needs_model_stats():
  a = attacks.get("bim(eps=8/255, space='normalized')")
  with pytest.raises(AttackInputError, match="for_model"):
    a(linear_apply, P, X, np.zeros(32, np.int32))


def test_roz_bounds_cover_clip_range():
  a = attacks.get("bim(eps=8/255, space='normalized')")
  a.for_model(CLIP_PRE)          # RoZ's [-1.8, 2.15] covers CLIP's range


def test_roz_bounds_refuse_stats_they_cut_off():
  a = attacks.get("bim(eps=8/255, space='normalized')")
  with pytest.raises(AttackInputError, match=r"cut off this model's input range"):
    a.for_model(IMNET_PRE)       # ImageNet stats reach -2.118


def test_auto_bounds_are_the_image_of_unit_pixels():
  lo, hi = attacks.get("bim(eps=8/255, space='normalized', bounds='auto')").for_model(
      IMNET_PRE).threat.bounds_np()
  np.testing.assert_allclose(lo, (0 - np.asarray(IMAGENET_MEAN)) / IMAGENET_STD, rtol=1e-6)
  np.testing.assert_allclose(hi, (1 - np.asarray(IMAGENET_MEAN)) / IMAGENET_STD, rtol=1e-6)


# -- projection ----------------------------------------------------------------
_RNG = np.random.default_rng(0)
X0 = _RNG.uniform(size=(6, 3, 3, 2)).astype(np.float32)
XP = X0 + _RNG.normal(size=X0.shape).astype(np.float32)
EPS = np.array([0.0, 0.05, 0.1, 0.3, 1.0, np.inf], np.float32)


def _project(x, eps, norm):
  return np.asarray(threat.project(jnp.asarray(x), jnp.asarray(X0), jnp.asarray(eps), norm,
                                   0, 1))


def test_linf_projection_is_the_box_intersection():
  e = EPS[:, None, None, None]
  np.testing.assert_array_equal(_project(XP, EPS, "linf"),
                                np.clip(np.clip(XP, X0 - e, X0 + e), 0, 1))


def test_l2_projection_lies_in_the_feasible_set():
  p2 = _project(XP, EPS, "l2")
  n = np.linalg.norm((p2 - X0).reshape(6, -1), axis=1)
  assert np.all(n <= EPS * (1 + 1e-6) + 1e-7) and p2.min() >= 0 and p2.max() <= 1


def test_l2_projection_leaves_inside_points_unchanged():
  inside = np.clip(X0 + 0.01, 0, 1)
  np.testing.assert_allclose(_project(inside, np.full((6,), 0.5, np.float32), "l2"), inside)


def test_l2_projection_is_idempotent():
  p2 = _project(XP, EPS, "l2")
  np.testing.assert_allclose(_project(p2, EPS, "l2"), p2, atol=1e-6)


# -- RoZ's iteration rule ------------------------------------------------------
@pytest.mark.parametrize("eps,steps", [(8 / 255, 10), (4 / 255, 5), (1 / 255, 1)])
def test_roz_iteration_rule(eps, steps):
  assert threat.roz_steps(eps) == steps


def test_roz_iteration_rule_in_float32_keeps_the_host_integer():
  assert int(threat.roz_steps_array(jnp.float32(8 / 255))) == 10
