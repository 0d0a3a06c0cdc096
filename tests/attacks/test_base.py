"""The attack contract: the registry and spec strings, hyperparameter and call checks,
and the bookkeeping of iterative attacks."""
import dataclasses
import os
import subprocess
import sys
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import attacks, registry
from jaxbench.attacks import base, losses
from jaxbench.attacks.threat import AttackInputError, ThreatModel
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


# -- registration: a new attack is one module ----------------------------------
@base.register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Probe(base.Iterative):
  """Test attack: evaluates the victim ``evals`` times without moving."""
  evals: int = 2
  name: ClassVar[str] = "jb_test_probe"

  def step(self, models, s):
    t, active = s["t"], ~s["done"]
    logits = models.victim(s["x"])
    s = self.record_clean(s, logits, active & (t == 0))
    fooled = losses.is_adversarial(logits, s["y"], s["target"], False)
    return self.advance(s, active, self.not_attacked(s) | (t + 1 >= self.evals), fooled)


def test_registered_attack_is_built_from_its_spec():
  a = attacks.get("jb_test_probe(evals=3, eps=0.1)")
  assert isinstance(a, Probe) and a.evals == 3 and a.threat == ThreatModel(eps=0.1)
  assert attacks.get(a.spec()) == a


def test_registration_starts_from_the_class_default_threat():
  assert attacks.get("cw").threat == ThreatModel(norm="l2", eps=None)


def test_iterative_bookkeeping_counts_evaluations():
  labels = np.asarray(linear_apply(P, X)).argmax(-1)
  labels[:3] = 1 - labels[:3]                      # misclassified: one evaluation only
  r = attacks.get("jb_test_probe(evals=3)")(linear_apply, P, X, labels, keys(32))
  want = np.full(32, 3)
  want[:3] = 1
  np.testing.assert_array_equal(np.asarray(r.queries), want)
  np.testing.assert_array_equal(np.asarray(r.diagnostics["steps"]), want)
  np.testing.assert_array_equal(np.asarray(r.diagnostics["clean_correct"]),
                                np.arange(32) >= 3)
  np.testing.assert_array_equal(np.asarray(r.adv_images), np.asarray(X))


def test_update_where_replaces_entries_per_example():
  s = {"x": jnp.zeros((3, 2)), "t": jnp.zeros(3, jnp.int32)}
  out = base.update_where(s, jnp.asarray([True, False, True]), {"x": jnp.ones((3, 2))})
  np.testing.assert_array_equal(np.asarray(out["x"]), [[1, 1], [0, 0], [1, 1]])
  assert out["t"] is s["t"] and float(s["x"].sum()) == 0.0


def test_every_attack_module_is_imported_with_the_package():
  # Registration needs no list: importing the package imports its modules.
  code = ("import pkgutil, sys, jaxbench.attacks as a; "
          "print([m.name for m in pkgutil.iter_modules(a.__path__) "
          "if 'jaxbench.attacks.' + m.name not in sys.modules])")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"},
                       cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
  assert out.stdout.strip() == "[]"
