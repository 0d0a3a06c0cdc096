"""The attack contract: the registry and spec strings, hyperparameter and call checks."""
import numpy as np
import pytest

from jaxbench import attacks, registry
from jaxbench.attacks.threat import AttackInputError
from attack_helpers import keys, linear_apply, toy2d

X, P = toy2d(n=32)
Y = np.zeros(32, np.int32)


# -- registry and specs --------------------------------------------------------
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


def test_unknown_attack_name_suggests_close_names():
  with pytest.raises(registry.SpecError, match="unknown attack 'bimm'.*bim"):
    attacks.get("bimm(eps=0.1)")


def test_unknown_keyword_raises():
  with pytest.raises(registry.SpecError, match="unexpected keyword"):
    attacks.get("bim(epsilon=0.1)")


# -- hyperparameters the contract checks ---------------------------------------
@pytest.mark.parametrize("spec,match", [
    ("square(norm='l2')", r"square: norm='l2' is not supported"),
    ("cw(norm='linf')", r"cw: norm='linf' is not supported"),
    ("bim(eps=None)", r"eps=None is only allowed for minimal"),
])
def test_unsupported_settings_raise_clear_errors(spec, match):
  with pytest.raises(AttackInputError, match=match):
    attacks.get(spec)


# -- call inputs ---------------------------------------------------------------
@pytest.mark.parametrize("spec,args,match", [
    ("fgsm(eps=0.1, targeted='given')", lambda: (X, Y), "targeted='given' needs targets"),
    ("fgsm(eps=0.1)", lambda: (X * 255, Y), r"images must be floats in \[0, 1\].*255"),
    ("fgsm(eps=0.1)", lambda: (X, Y[:5]), r"labels must be \(32,\)"),
    ("fgsm(eps=0.1)", lambda: (X, Y, keys(5)), "keys: expected shape"),
], ids=["targets_missing", "uint8_range", "labels_shape", "keys_shape"])
def test_bad_call_inputs_raise_clear_errors(spec, args, match):
  with pytest.raises(AttackInputError, match=match):
    attacks.get(spec)(linear_apply, P, *args())
