"""Plugins (:mod:`jaxbench.engine.plugins`): a config names the modules that register
what it uses; the core registries name none of them."""
import os
import sys

import pytest

from jaxbench import registry, suites
from jaxbench.engine import run as engine_run
from jaxbench.model_setup import ConfigError
from tests.engine.helpers import REPO, _config, _write_folder

PLUGIN = '''
"""A test plugin: registers the dataset 'plugin_set' (an image folder) when imported."""
from jaxbench.data import catalog

ROOT = {root!r}


@catalog.register("plugin_set")
def plugin_set():
  return catalog.image_folder(ROOT)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
  folder = _write_folder(str(tmp_path / "data"), n_per_class=2)
  name = f"jaxbench_test_plugin_{os.getpid()}"
  (tmp_path / f"{name}.py").write_text(PLUGIN.format(root=folder))
  monkeypatch.syspath_prepend(str(tmp_path))
  yield name
  sys.modules.pop(name, None)


def test_config_plugins_are_imported_before_anything_is_resolved(plugin, tiny_clip):
  model_dir, _ = tiny_clip
  c = _config(model_dir, "/unused", datasets=("plugin_set",))
  with pytest.raises(engine_run.ValidationError, match="unknown dataset 'plugin_set'"):
    engine_run.preflight(c)
  c.plugins = (plugin,)
  sets = suites.get(c).preflight(c)
  assert len(sets["plugin_set"]) == 6


def test_missing_plugin_is_refused_by_name():
  c = _config("m", "/tmp", plugins=("jaxbench_no_such_plugin",))
  with pytest.raises(ConfigError, match="config.plugins: no module 'jaxbench_no_such_plugin'"):
    suites.get(c)


def test_core_registries_name_no_higher_floor():
  # models/ and data/catalog load only their own package's modules; the demo and the
  # trained heads register themselves when a config (or the engine) imports them.
  from jaxbench import models
  from jaxbench.data import catalog
  for mod in list(models._PLUGINS) + list(catalog.PLUGINS):   # pylint: disable=protected-access
    assert mod.startswith(("jaxbench.models.", "jaxbench.data.")), mod
  with open(os.path.join(REPO, "configs", "demo.py")) as f:
    text = f.read()
  assert 'c.plugins = ("jaxbench.demo",)' in text
  assert "hasattr(" not in text and "getattr(" not in text   # no probing of the engine


def test_plugin_may_register_a_suite(tmp_path, monkeypatch):
  name = f"jaxbench_test_suite_plugin_{os.getpid()}"
  (tmp_path / f"{name}.py").write_text(
      "from jaxbench.suites.base import SUITES, Suite\n\n"
      "class Mine(Suite):\n  name = 'mine_suite'\n  sections = {'mine': {'x': 1}}\n\n"
      "SUITES.register('mine_suite', Mine)\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  c = _config("m", "/tmp", suite="mine_suite", mine={"x": 2})
  with pytest.raises(registry.SpecError, match="unknown suite 'mine_suite'"):
    suites.get(c)
  c.plugins = (name,)
  assert suites.get(c).name == "mine_suite"
  suites.validate(c)
  c.mine.y = 3
  with pytest.raises(ConfigError, match="'config.mine.y'"):
    suites.validate(c)
