"""The dataset catalog and configs/natural.py: names, errors, plugins, every set resolves."""
import importlib.util
import os
import sys

import pytest

from jaxbench import registry
from jaxbench.data import catalog, sources
from jaxbench.data.evalset import EvalSet

from tests.data import natural_fixtures as fx

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _natural_config(arg=None):
  spec = importlib.util.spec_from_file_location("natural_config",
                                                os.path.join(REPO, "configs", "natural.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  root = tmp_path_factory.mktemp("natural_data")
  fx.write_all(root)
  return str(root)


EXPECTED = {   # name -> (num_classes, examples in the fixture)
    "imagenet_v2(variant='matched-frequency')": (1000, 3), "imagenet_r": (200, 2),
    "objectnet": (3, 2), "imagenet_sketch": (1000, 1), "imagenet_a": (200, 2),
    "imagenet_vid_robust": (30, 3), "ytbb_robust": (24, 3), "imagenet": (1000, 8),
    "imagenet_val_on_r_classes": (200, 3), "imagenet_val_on_a_classes": (200, 3),
    "imagenet_val_on_objectnet_classes": (3, 3),
    "imagenet_val_on_vid_robust_classes": (30, 1),
    "imagenet_val_on_ytbb_robust_classes": (24, 3),
}


def test_natural_config_resolves_every_set(data_root):
  c = _natural_config()
  assert c.suite == "natural" and sorted(c.datasets) == sorted(EXPECTED)
  for spec in c.datasets:
    es = catalog.get(spec, data_root=data_root)
    assert isinstance(es, EvalSet) and es.name == spec
    assert (es.num_classes, len(es.source)) == EXPECTED[spec], spec
    assert es.metadata["spec"] == registry.format_spec(*registry.parse(spec))
  assert _natural_config("roz,no_controls").zeroshot.logit_scale == "100"
  assert len(_natural_config("all_v2").datasets) == len(EXPECTED) + 2
  with pytest.raises(ValueError, match="unknown config args"):
    _natural_config("rozz")


def test_every_dataset_is_named():
  names = catalog.names()
  for n in list(EXPECTED) + ["cifar10", "cifar10_1", "cifar10_c", "image_folder", "tfds"]:
    assert registry.parse(n)[0] in names


@pytest.mark.parametrize("spec,error,match", [
    ("imagenet_q", registry.SpecError, "unknown dataset 'imagenet_q'.*imagenet_r"),
    ("imagenet_r(dir='/x')", registry.SpecError, "imagenet_r accepts: root, tfds_dir, data_root"),
    ("objectnet", sources.DataNotFound, "pass root=")],
    ids=["unknown", "bad_argument", "no_data"])
def test_bad_spec_is_refused_by_name(spec, error, match):
  with pytest.raises(error, match=match):
    catalog.get(spec)


def test_name_of_drops_locations_and_sorts_arguments():
  assert catalog.name_of("imagenet_r(root='/a', tfds_dir='/b')") == "imagenet_r"
  assert catalog.name_of("cifar10_c(severity=2, corruption='fog', root='/c')") == \
      "cifar10_c(corruption='fog', severity=2)"
  assert catalog.name_of("image_folder(root='/d')") == "image_folder(root='/d')"


def test_location_does_not_change_the_name(data_root):
  by_root = catalog.get(f"imagenet_r(root='{os.path.join(data_root, 'imagenet-r')}')")
  by_data_root = catalog.get("imagenet_r", data_root=data_root)
  assert by_root.name == by_data_root.name == "imagenet_r"
  assert by_root.metadata["spec"] != by_data_root.metadata["spec"]


def test_image_folder_generic(data_root):
  es = catalog.get(f"image_folder(root='{os.path.join(data_root, 'imagenet-r')}')")
  assert es.num_classes == 1000 and es.model_label_space == "imagenet1k"
  es = catalog.get("image_folder(root=%r)" % os.path.join(data_root,
                                                         "imagenetv2-top-images-format-val"))
  assert es.num_classes == 11 and [es.source[i]["label"] for i in range(3)] == [0, 2, 10]


def test_plugin_modules_are_imported_on_demand(tmp_path, monkeypatch):
  plugin = tmp_path / "jb_catalog_test_plugin.py"
  plugin.write_text(
      "from jaxbench.data import catalog\n"
      "from jaxbench.data.evalset import EvalSet\n"
      "@catalog.register('jb_test_plugin_set')\n"
      "def make(scale=1):\n"
      "  return EvalSet(name='', source=[{'id': 'a', 'label': 0}] * scale, num_classes=2)\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setattr(catalog, "PLUGINS", ("jb_catalog_test_plugin", "jb_no_such_module"))
  try:
    es = catalog.get("jb_test_plugin_set(scale=3)")   # imported on demand
    assert es.name == "jb_test_plugin_set(scale=3)" and len(es.source) == 3
    assert "jb_test_plugin_set" in catalog.names()
  finally:
    catalog.DATASETS._factories.pop("jb_test_plugin_set", None)
    sys.modules.pop("jb_catalog_test_plugin", None)
