"""The SUITES registry and what each suite adds to the engine (rows' suite, sections)."""
import dataclasses

import pytest

from jaxbench import registry, suites, transforms
from jaxbench.data.evalset import EvalSet
from tests.engine.helpers import _config

BUILT_IN = ("adv", "auto", "clip_auto", "linear_probe", "natural", "overlap", "synthetic",
            "typographic", "zeroshot")


def test_every_built_in_suite_is_registered_under_its_name():
  assert set(BUILT_IN) <= set(suites.SUITES.names())
  for name in BUILT_IN:
    assert suites.SUITES.get(name).name == name


def test_unknown_suite_names_the_closest():
  with pytest.raises(registry.SpecError, match=r"unknown suite 'advv' \(did you mean 'adv'"):
    suites.get(_config("m", "/tmp", suite="advv"))


def test_sections_belong_to_one_suite_each():
  owners = {}
  for name in suites.SUITES.names():
    for key in suites.SUITES.get(name).sections:
      assert key not in owners, (key, owners.get(key), name)
      owners[key] = name
  assert owners["attack"] == "adv" and owners["clip_auto"] == "clip_auto"
  assert owners["linear_probe"] == "linear_probe" and owners["overlap"] == "overlap"


def _evalset(suite=None):
  es = EvalSet(name="s", source=[], num_classes=10)
  return dataclasses.replace(es, metadata={"suite": suite} if suite else {})


@pytest.mark.parametrize("spec,metadata_suite,want", [
    ("clean", None, "zeroshot"),
    ("attack:fgsm(eps=1/255)", None, "adv"),
    ("shift:cifar10_c(corruption='fog', severity=1)", None, "synthetic"),
    ("clean", "typographic", "typographic"),
    ("attack:fgsm(eps=1/255)", "typographic", "typographic"),   # the set's own suite wins
])
def test_auto_suite_derives_each_rows_suite(spec, metadata_suite, want):
  c = _config("m", "/tmp", suite="auto")
  suite = suites.get(c)
  assert suite.row_suite(c, transforms.get(spec), _evalset(metadata_suite)) == want


def test_named_suites_label_rows_with_their_name_and_linear_probe_as_synthetic():
  t = transforms.get("clean")
  for name in ("zeroshot", "natural", "adv", "synthetic", "typographic", "clip_auto"):
    c = _config("m", "/tmp", suite=name)
    assert suites.get(c).row_suite(c, t, _evalset("typographic")) == name
  # The report reads the linear probes' CIFAR-10(-C) rows under 'synthetic'.
  c = _config("m", "/tmp", suite="linear_probe")
  assert suites.get(c).row_suite(c, t, _evalset()) == "synthetic"


@pytest.mark.parametrize("spec,cls,scores_clean,host", [
    ("clean", transforms.Clean, False, False),
    ("shift:cifar10_c(corruption='fog', severity=1)", transforms.Shift, False, False),
    ("attack:fgsm(eps=1/255)", transforms.Attack, True, False),
])
def test_transforms_are_classes_with_one_protocol(spec, cls, scores_clean, host):
  t = transforms.get(spec)
  assert type(t) is cls and t.scores_clean is scores_clean
  assert (t.host_fn is not None) is host


def test_no_kind_string_switches():
  import os
  import re
  from tests.engine.helpers import REPO
  for path in [os.path.join(REPO, "jaxbench", "transforms.py")] + [
      os.path.join(REPO, "jaxbench", "engine", f)
      for f in os.listdir(os.path.join(REPO, "jaxbench", "engine")) if f.endswith(".py")]:
    with open(path) as f:
      text = f.read()
    assert not re.search(r"\.kind\s*==\s*['\"](clean|shift|attack)", text), path


@pytest.mark.parametrize("suite,section,library_keys", [
    ("linear_probe", "linear_probe", "jaxbench.heads.learn:KEYS"),
    ("clip_auto", "clip_auto", "jaxbench.zeroshot.learned.clip_auto:LEARN_KEYS"),
])
def test_suite_section_declares_exactly_the_keys_its_library_accepts(suite, section,
                                                                     library_keys):
  # The learning libraries refuse unknown keys when called directly; the suite's
  # declaration (defaults + docs) is what configs are built and checked from. The two
  # lists must be the same keys.
  import importlib
  module, name = library_keys.split(":")
  accepted = set(getattr(importlib.import_module(module), name))
  mod = importlib.import_module(f"jaxbench.suites.{suite}")
  declared = set(mod.SECTIONS[section].default)
  assert declared == accepted, (declared ^ accepted)
