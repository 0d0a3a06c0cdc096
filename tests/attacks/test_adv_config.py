"""configs/adv.py presets build RoZ's attack settings."""
import importlib.util
import os

import numpy as np
import pytest

from jaxbench import attacks
from jaxbench.models.api import CLIP_MEAN, CLIP_STD, Preprocess

CLIP_PRE = Preprocess(size=4, resize=4, mean=CLIP_MEAN, std=CLIP_STD)


def _config():
  path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "adv.py")
  spec = importlib.util.spec_from_file_location("adv_config", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


@pytest.fixture(scope="module")
def mod():
  return _config()


@pytest.fixture(scope="module")
def roz(mod):
  c = mod.get_config()
  return c, [attacks.get(t.split(":", 1)[1]).for_model(CLIP_PRE) for t in c.transforms]


def test_roz_preset_suite_settings(roz):
  c, _ = roz
  assert c.suite == "adv" and c.preprocess == "clip" and c.zeroshot.logit_scale == "100"


def test_roz_preset_attack_list(roz):
  _, built = roz
  assert [a.name for a in built] == ["fgsm", "bim", "mim", "dim", "deepfool", "nes", "spsa",
                                     "transfer", "transfer", "transfer", "transfer"]


def test_roz_preset_threat_model(roz):
  for a in roz[1]:
    assert a.threat.eps == 8 / 255 and a.threat.space == "normalized"
    np.testing.assert_allclose(a.threat.bounds_np(), (-1.8, 2.15), rtol=1e-6)


def test_roz_preset_white_box_hyperparameters(roz):
  fgsm, bim, mim, dim, df = roz[1][:5]
  assert bim.num_steps(8 / 255) == 10 and bim.step_ratio == 0.15 and bim.early_stop
  assert mim.steps == 19 and mim.momentum == 1.0 and dim.diversity_prob == 0.5
  assert df.candidates is None and df.overshoot == 0.02 and df.max_iters == 50


def test_roz_preset_black_box_hyperparameters(roz):
  nes, spsa = roz[1][5:7]
  assert nes.q == spsa.q == 100 and nes.sigma == spsa.sigma == 0.001
  assert nes.distribution == "gaussian" and spsa.distribution == "rademacher"


def test_roz_preset_transfer_hyperparameters(roz):
  for t, inner, steps in zip(roz[1][7:], ("fgsm", "bim", "mim", "dim"), (1, None, 9, 9)):
    assert t.surrogate == "resnet152_tv" and not t.early_stop
    assert t.attack.name == inner and t.attack.steps == steps


def test_min_eps_preset(mod):
  m = mod.get_config("min_eps,models=roz,max_examples=100")
  assert len(m.models) == 12 and m.max_examples == 100
  mins = [attacks.get(t.split(":", 1)[1]) for t in m.transforms]
  assert mins[1].attack.steps == 20 and mins[1].grid == tuple(i / 1000 for i in range(1, 10))
  assert len(mins[5].grid) == 600 and len(mins[4].grid) == 100


def test_pixel_preset(mod):
  p = mod.get_config("pixel")
  assert p.preprocess == ""
  px = [attacks.get(t.split(":", 1)[1]) for t in p.transforms]
  assert sorted({(a.threat.norm, a.threat.eps) for a in px}) == [
      ("l2", 0.1), ("l2", 0.5), ("linf", 1 / 255), ("linf", 2 / 255), ("linf", 4 / 255)]
  assert all(a.threat.space == "pixel" for a in px)


@pytest.mark.parametrize("arg,match", [("fast", "unknown preset"),
                                       ("roz,epsilon=3", "bad argument")])
def test_bad_config_arguments_raise(mod, arg, match):
  with pytest.raises(ValueError, match=match):
    mod.get_config(arg)
