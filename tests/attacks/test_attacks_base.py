"""Threat model, bad input, projection, losses, registry, metrics, checks, transfer, config."""
import importlib.util
import math
import os
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxbench import attacks, registry
from jaxbench.attacks import checks, losses, metrics, threat
from jaxbench.attacks.threat import AttackInputError, ThreatModel
from jaxbench.models.api import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, Preprocess
from attack_helpers import keys, linear_apply, softmax_apply, toy2d

CLIP_PRE = Preprocess(size=4, resize=4, mean=CLIP_MEAN, std=CLIP_STD)
IMNET_PRE = Preprocess(size=4, resize=4, mean=IMAGENET_MEAN, std=IMAGENET_STD)
X, P = toy2d(n=32)


# -- bad input ---------------------------------------------------------------
@pytest.mark.parametrize("spec,match", [
    ("bim(eps=8)", r"eps=8 is outside \[0, 1\].*8/255"),
    ("bim(eps=-0.1)", r"eps=-0.1: expected a finite number >= 0"),
    ("pgd(bounds=(0, 255))", r"inconsistent with the model's input range \[0, 1\]"),
    ("pgd(bounds=(1, 0))", r"expected finite lo < hi"),
    ("fgsm(norm='l3')", r"norm='l3'"),
    ("square(norm='l2')", r"square: norm='l2' is not supported"),
    ("cw(norm='linf')", r"cw: norm='linf' is not supported"),
    ("bim(eps=None)", r"eps=None is only allowed for minimal"),
    ("deepfool(targeted='random')", r"deepfool is untargeted"),
    ("bim(eps=5.0, space='normalized')", r"exceeds the width of the bounds"),
    ("bim(step_ratio=0)", r"step_ratio=0"),
    ("dim(diversity_prob=1.5)", r"diversity_prob=1.5"),
    ("apgd(loss='hinge')", r"loss='hinge'"),
    ("transfer(attack='deepfool')", r"transfer: attack must be a gradient attack"),
    ("min_eps(attack='cw', grid=(0.2, 0.1))", r"min_eps: attack must be an iterative"),
    ("min_eps(grid=(0.2, 0.1))", r"expected sorted radii"),
])
def test_bad_hyperparameters_raise_clear_errors(spec, match):
  with pytest.raises(AttackInputError, match=match):
    attacks.get(spec)


def test_non_finite_eps_and_unknown_names():
  with pytest.raises(AttackInputError, match="finite"):
    ThreatModel(eps=math.nan)
  with pytest.raises(registry.SpecError, match="unknown attack 'bimm'.*bim"):
    attacks.get("bimm(eps=0.1)")
  with pytest.raises(registry.SpecError, match="unexpected keyword"):
    attacks.get("bim(epsilon=0.1)")


def test_normalised_bounds_checked_against_model_range():
  a = attacks.get("bim(eps=8/255, space='normalized')")
  with pytest.raises(AttackInputError, match="for_model"):
    a(linear_apply, P, X, np.zeros(32, np.int32))
  a.for_model(CLIP_PRE)          # RoZ's [-1.8, 2.15] covers CLIP's range
  with pytest.raises(AttackInputError, match=r"cut off this model's input range"):
    a.for_model(IMNET_PRE)       # ImageNet stats reach -2.118
  lo, hi = attacks.get("bim(eps=8/255, space='normalized', bounds='auto')").for_model(
      IMNET_PRE).threat.bounds_np()
  np.testing.assert_allclose(lo, (0 - np.asarray(IMAGENET_MEAN)) / IMAGENET_STD, rtol=1e-6)
  np.testing.assert_allclose(hi, (1 - np.asarray(IMAGENET_MEAN)) / IMAGENET_STD, rtol=1e-6)


def test_bad_call_inputs():
  a = attacks.get("fgsm(eps=0.1, targeted='given')")
  y = np.zeros(32, np.int32)
  with pytest.raises(AttackInputError, match="targeted='given' needs targets"):
    a(linear_apply, P, X, y)
  b = attacks.get("fgsm(eps=0.1)")
  with pytest.raises(AttackInputError, match=r"images must be floats in \[0, 1\].*255"):
    b(linear_apply, P, X * 255, y)
  with pytest.raises(AttackInputError, match=r"labels must be \(32,\)"):
    b(linear_apply, P, X, y[:5])
  with pytest.raises(AttackInputError, match="keys: expected shape"):
    b(linear_apply, P, X, y, keys(5))
  with pytest.raises(AttackInputError, match="no surrogate bound"):
    attacks.get("transfer(attack='fgsm', eps=0.1)")(linear_apply, P, X, y)


def test_probability_outputs_warn():
  y = np.asarray(linear_apply(P, X)).argmax(-1)
  with pytest.warns(checks.AttackWarning, match="look like probabilities"):
    r = attacks.get("fgsm(eps=0.15)")(softmax_apply, P, X, y, keys(32))
  assert checks.probability_outputs(r)["prob_like_frac"] == 1.0
  # The same checks from stored per-example outputs (what the runner keeps).
  assert checks.summary(metrics.outputs(r)) == checks.summary(r)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    attacks.get("fgsm(eps=0.15)")(linear_apply, P, X, y, keys(32))


# -- projection and losses ----------------------------------------------------
def test_projection():
  rng = np.random.default_rng(0)
  x0 = rng.uniform(size=(6, 3, 3, 2)).astype(np.float32)
  x = x0 + rng.normal(size=x0.shape).astype(np.float32)
  eps = np.array([0.0, 0.05, 0.1, 0.3, 1.0, np.inf], np.float32)
  pl = np.asarray(threat.project(jnp.asarray(x), jnp.asarray(x0), jnp.asarray(eps), "linf", 0, 1))
  e = eps[:, None, None, None]
  np.testing.assert_array_equal(pl, np.clip(np.clip(x, x0 - e, x0 + e), 0, 1))
  p2 = np.asarray(threat.project(jnp.asarray(x), jnp.asarray(x0), jnp.asarray(eps), "l2", 0, 1))
  n = np.linalg.norm((p2 - x0).reshape(6, -1), axis=1)
  assert np.all(n <= eps * (1 + 1e-6) + 1e-7) and p2.min() >= 0 and p2.max() <= 1
  # Points already inside are unchanged; projection is idempotent.
  inside = np.clip(x0 + 0.01, 0, 1)
  np.testing.assert_allclose(np.asarray(threat.project(jnp.asarray(inside), jnp.asarray(x0),
                                                     jnp.full((6,), 0.5), "l2", 0, 1)), inside)
  np.testing.assert_allclose(np.asarray(threat.project(jnp.asarray(p2), jnp.asarray(x0),
                                                     jnp.asarray(eps), "l2", 0, 1)), p2, atol=1e-6)


def test_losses_against_references():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(5, 7)).astype(np.float32)
  y = np.array([0, 3, 6, 2, 2])
  t = np.array([1, 1, 0, 5, 6])
  ce = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y),
                                         reduction="none").numpy()
  np.testing.assert_allclose(np.asarray(losses.cross_entropy(logits, y)), ce, rtol=1e-5)
  s = np.sort(logits, 1)
  zy = logits[np.arange(5), y]
  other = np.where(np.eye(7, dtype=bool)[y], -np.inf, logits).max(1)
  np.testing.assert_allclose(np.asarray(losses.margin(logits, y)), zy - other, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(losses.dlr(logits, y)),
                             (zy - other) / (s[:, -1] - s[:, -3] + 1e-12), rtol=1e-5)
  zt = logits[np.arange(5), t]
  np.testing.assert_allclose(np.asarray(losses.dlr_targeted(logits, y, t)),
                             (zy - zt) / (s[:, -1] - 0.5 * (s[:, -3] + s[:, -4]) + 1e-12),
                             rtol=1e-5)
  np.testing.assert_allclose(np.asarray(losses.attack_loss("ce", logits, y, t, True)),
                             -torch.nn.functional.cross_entropy(
                                 torch.from_numpy(logits), torch.from_numpy(t),
                                 reduction="none").numpy(), rtol=1e-5)
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  assert np.all(np.asarray(losses.looks_like_probabilities(probs)))
  assert not np.any(np.asarray(losses.looks_like_probabilities(logits)))


def test_roz_iteration_rule():
  assert threat.roz_steps(8 / 255) == 10
  assert threat.roz_steps(4 / 255) == 5
  assert threat.roz_steps(1 / 255) == 1
  assert int(threat.roz_steps_array(jnp.float32(8 / 255))) == 10


# -- registry ----------------------------------------------------------------
@pytest.mark.parametrize("spec", [
    "bim(eps=8/255, space='normalized')", "fgsm", "pgd(eps=0.5, norm='l2', steps=20)",
    "dim(eps=0.03, targeted='least_likely')", "deepfool(candidates=10)", "cw(steps=20)",
    "nes(q=50, sigma=0.01)", "square(n_queries=100)", "apgd_t(eps=4/255)",
    "transfer(attack='mim(steps=9)', surrogate='resnet152_tv', eps=8/255, space='normalized')",
    "min_eps(attack='bim(steps=20)', grid=(0.001, 0.002))",
    "ensemble(attacks=['fgsm', 'bim'], eps=0.1)", "autoattack(eps=4/255, version='fast')"])
def test_spec_round_trip(spec):
  a = attacks.get(spec)
  b = attacks.get(a.spec())
  assert a == b and a.spec() == b.spec()
  assert a.spec() == registry.canonical(a.spec())


# -- metrics and checks ------------------------------------------------------
def test_summarize_hand_computed():
  out = {
      "mask": np.array([1, 1, 1, 1, 0], bool),
      "clean_correct": np.array([1, 1, 0, 1, 1], bool),
      "adv_correct": np.array([0, 1, 0, 0, 0], bool),
      "success": np.array([1, 0, 0, 1, 1], bool),
      "linf": np.array([0.1, 0.0, 0.0, 0.3, 9.0]),
      "l2": np.array([1.0, 0.0, 0.0, 2.0, 9.0]),
      "pixel_linf": np.array([0.1, 0.0, 0.0, 0.3, 9.0]),
      "queries": np.array([10, 20, 1, 30, 99]),
      "in_ball": np.array([1, 1, 1, 0, 0], bool),
      "in_bounds": np.ones(5, bool),
      "min_eps": np.array([0.002, np.inf, 0.0, 0.004, 0.001]),
      "robust_stage": np.array([[1, 0], [1, 1], [0, 0], [0, 0], [1, 1]], bool),
  }
  m = metrics.summarize(out)
  assert m["n"] == 4
  assert m["clean_acc"] == 0.75 and m["robust_acc"] == 0.25
  assert m["success_rate"] == pytest.approx(2 / 3)
  assert m["mean_linf"] == pytest.approx(0.2) and m["median_l2"] == pytest.approx(1.5)
  assert m["mean_queries"] == pytest.approx(20.0)
  assert m["median_min_eps"] == pytest.approx(0.003)     # (0, .002, .004, inf)
  assert m["stage_robust_acc"] == [0.5, 0.25]
  assert m["outside_ball"] == 1


def test_checks():
  assert checks.determinism(linear_apply, P, X)["deterministic"]
  noisy = lambda p, x: linear_apply(p, x) + np.random.normal(size=(x.shape[0], 1))
  d = checks.determinism(noisy, P, X)
  assert not d["deterministic"] and d["max_logit_diff"] > 0
  flag = checks.blackbox_beats_whitebox({"bim(eps=0.1)": 0.4, "pgd(eps=0.1)": 0.35,
                                         "square(eps=0.1)": 0.2})
  assert flag["flag"] and flag["best_blackbox"] == "square(eps=0.1)"
  assert not checks.blackbox_beats_whitebox({"bim": 0.1, "nes": 0.3})["flag"]


# -- transfer ----------------------------------------------------------------
def test_transfer_uses_surrogate_gradient_and_victim_check():
  clean = np.asarray(linear_apply(P, X))
  y = clean.argmax(-1)
  k = keys(32)
  base_t = attacks.get("transfer(attack='fgsm', eps=0.15)")
  # Surrogate = victim: exactly the white-box attack.
  same = base_t.with_surrogate(linear_apply, P)(linear_apply, P, X, y, k)
  white = attacks.get("fgsm(eps=0.15)")(linear_apply, P, X, y, k)
  np.testing.assert_array_equal(np.asarray(same.adv_images), np.asarray(white.adv_images))
  # Another surrogate: the step follows *its* gradient, success is the victim's.
  ps = {"w": jnp.asarray([[0.0, 0.0], [-1.0, 1.0]]), "b": jnp.zeros(2)}   # moves x[1] only
  r = base_t.with_surrogate(linear_apply, ps)(linear_apply, P, X, y, k)
  dws = np.asarray(ps["w"])[:, 1] - np.asarray(ps["w"])[:, 0]        # grad of CE for y=0
  sign = np.where(y == 0, 1.0, -1.0)[:, None] * np.sign(dws)[None]
  want = np.clip(np.asarray(X).reshape(32, 2) + 0.15 * sign, 0, 1)
  np.testing.assert_allclose(np.asarray(r.adv_images).reshape(32, 2), want, atol=1e-6)
  victim_pred = np.asarray(linear_apply(P, r.adv_images)).argmax(-1)
  np.testing.assert_array_equal(np.asarray(r.success), victim_pred != y)
  assert np.asarray(r.success).any() and not np.asarray(r.success).all()


def test_prepare_binds_normalisation_and_surrogates():
  class FakeModel:
    def __init__(self, name, pre):
      self.name, self.preprocess, self.params = name, pre, {"w": name}

    def apply(self, params, x):
      return x

    def with_preprocess(self, pre):
      return FakeModel(self.name, pre)

  loaded = []

  def load(spec):
    loaded.append(spec)
    return FakeModel(spec, IMNET_PRE)

  victim = FakeModel("victim", CLIP_PRE)
  for spec in ["transfer(attack='bim', eps=8/255, space='normalized')",
               "min_eps(attack=\"transfer(attack='fgsm')\", grid=(0.001, 0.002), "
               "space='normalized')",
               "ensemble(attacks=['fgsm', \"transfer(attack='mim', surrogate='vgg16_tv')\"], "
               "eps=8/255, space='normalized')"]:
    a = attacks.prepare(attacks.get(spec), victim, load=load)
    t = (a if a.name == "transfer" else a.attack if a.name == "min_eps" else a.attacks[1])
    assert t.surrogate_apply is not None and t.surrogate_params == {"w": t.surrogate}
    # RoZ: the surrogate sees the victim's (CLIP) normalisation.
    assert t.surrogate_apply.__self__.preprocess == CLIP_PRE
    assert a.threat.mean == tuple(CLIP_MEAN) and t.threat.mean == tuple(CLIP_MEAN)
    assert a.spec() == attacks.get(spec).spec()
  assert loaded == ["resnet152_tv", "resnet152_tv", "vgg16_tv"]


# -- config ------------------------------------------------------------------
def _config():
  path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "adv.py")
  spec = importlib.util.spec_from_file_location("adv_config", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_config_presets_build_roz_settings():
  mod = _config()
  c = mod.get_config()
  assert c.suite == "adv" and c.preprocess == "clip" and c.zeroshot.logit_scale == "100"
  built = [attacks.get(t.split(":", 1)[1]).for_model(CLIP_PRE) for t in c.transforms]
  assert [a.name for a in built] == ["fgsm", "bim", "mim", "dim", "deepfool", "nes", "spsa",
                                     "transfer", "transfer", "transfer", "transfer"]
  for a in built:
    assert a.threat.eps == 8 / 255 and a.threat.space == "normalized"
    np.testing.assert_allclose(a.threat.bounds_np(), (-1.8, 2.15), rtol=1e-6)
  fgsm, bim, mim, dim, df, nes, spsa = built[:7]
  assert bim.num_steps(8 / 255) == 10 and bim.step_ratio == 0.15 and bim.early_stop
  assert mim.steps == 19 and mim.momentum == 1.0 and dim.diversity_prob == 0.5
  assert df.candidates is None and df.overshoot == 0.02 and df.max_iters == 50
  assert nes.q == spsa.q == 100 and nes.sigma == spsa.sigma == 0.001
  assert nes.distribution == "gaussian" and spsa.distribution == "rademacher"
  for t, inner, steps in zip(built[7:], ("fgsm", "bim", "mim", "dim"), (1, None, 9, 9)):
    assert t.surrogate == "resnet152_tv" and not t.early_stop
    assert t.attack.name == inner and t.attack.steps == steps
  m = mod.get_config("min_eps,models=roz,max_examples=100")
  assert len(m.models) == 12 and m.max_examples == 100
  mins = [attacks.get(t.split(":", 1)[1]) for t in m.transforms]
  assert mins[1].attack.steps == 20 and mins[1].grid == tuple(i / 1000 for i in range(1, 10))
  assert len(mins[5].grid) == 600 and len(mins[4].grid) == 100
  p = mod.get_config("pixel")
  assert p.preprocess == ""
  px = [attacks.get(t.split(":", 1)[1]) for t in p.transforms]
  assert sorted({(a.threat.norm, a.threat.eps) for a in px}) == [
      ("l2", 0.1), ("l2", 0.5), ("linf", 1 / 255), ("linf", 2 / 255), ("linf", 4 / 255)]
  assert all(a.threat.space == "pixel" for a in px)
  with pytest.raises(ValueError, match="unknown preset"):
    mod.get_config("fast")
  with pytest.raises(ValueError, match="bad argument"):
    mod.get_config("roz,epsilon=3")
