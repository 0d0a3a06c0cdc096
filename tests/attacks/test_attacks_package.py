"""The package API: attacks.prepare binds normalisation and surrogates."""
import pytest

from jaxbench import attacks
from jaxbench.models.api import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, Preprocess

CLIP_PRE = Preprocess(size=4, resize=4, mean=CLIP_MEAN, std=CLIP_STD)
IMNET_PRE = Preprocess(size=4, resize=4, mean=IMAGENET_MEAN, std=IMAGENET_STD)


class FakeModel:
  def __init__(self, name, pre):
    self.name, self.preprocess, self.params = name, pre, {"w": name}

  def apply(self, params, x):
    return x

  def with_preprocess(self, pre):
    return FakeModel(self.name, pre)


def _transfer_stage(a):
  return a if a.name == "transfer" else a.attack if a.name == "min_eps" else a.attacks[1]


@pytest.mark.parametrize("spec,surrogates", [
    ("transfer(attack='bim', eps=8/255, space='normalized')", ["resnet152_tv"]),
    ("min_eps(attack=\"transfer(attack='fgsm')\", grid=(0.001, 0.002), space='normalized')",
     ["resnet152_tv"]),
    ("ensemble(attacks=['fgsm', \"transfer(attack='mim', surrogate='vgg16_tv')\"], "
     "eps=8/255, space='normalized')", ["vgg16_tv"]),
], ids=["transfer", "min_eps", "ensemble"])
def test_prepare_binds_surrogates(spec, surrogates):
  loaded = []

  def load(name):
    loaded.append(name)
    return FakeModel(name, IMNET_PRE)

  victim = FakeModel("victim", CLIP_PRE)
  a = attacks.prepare(attacks.get(spec), victim, load=load)
  t = _transfer_stage(a)
  assert t.surrogate_apply is not None and t.surrogate_params == {"w": t.surrogate}
  # RoZ: the surrogate sees the victim's (CLIP) normalisation.
  assert t.surrogate_apply.__self__.preprocess == CLIP_PRE
  assert a.threat.mean == tuple(CLIP_MEAN) and t.threat.mean == tuple(CLIP_MEAN)
  assert a.spec() == attacks.get(spec).spec()
  assert loaded == surrogates


def test_prepare_loads_nothing_without_a_surrogate():
  def load(name):
    raise AssertionError(f"loaded {name}")
  a = attacks.prepare(attacks.get("bim(eps=8/255, space='normalized')"),
                      FakeModel("victim", CLIP_PRE), load=load)
  assert a.threat.mean == tuple(CLIP_MEAN)
