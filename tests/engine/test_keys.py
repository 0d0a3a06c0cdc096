"""Config keys (:mod:`jaxbench.engine.keys`): declared once, unknown ones refused by name."""
import io
import json

import ml_collections
import pytest

from jaxbench import cli, configs, suites
from jaxbench.engine import keys
from jaxbench.model_setup import ConfigError
from tests.engine.helpers import _config


def test_configs_base_is_built_from_the_declared_keys():
  c = configs.base("zeroshot", templates="photo")
  written = {k for k, key in keys.ENGINE.items() if key.in_base}
  assert set(c.keys()) == written
  for name in written:
    default = keys.ENGINE[name].default
    value = c[name].to_dict() if hasattr(c[name], "to_dict") else c[name]
    if isinstance(default, dict):
      default = {k: (v.default if isinstance(v, keys.Key) else v) for k, v in default.items()}
    want = {"suite": "zeroshot"}.get(name, default)
    if name == "zeroshot":
      want = {**want, "templates": "photo"}
    assert value == want, name
  # The keys that may change on one workdir are the declared volatile ones.
  assert keys.VOLATILE == {"batch_size", "mesh", "checkpoint_every", "num_workers",
                           "log_every", "report", "param_sharding", "workdir_policy",
                           "prepared_cache", "decode_processes", "device_resize",
                           "on_data_change", "plugins"}


@pytest.mark.parametrize("key,value,message", [
    ("batchsize", 4, "unknown config key 'config.batchsize'; closest known key: "
                     "'config.batch_size'"),
    ("suite_keys", ("x",), "unknown config key 'config.suite_keys'; closest known key: "
                           "'config.suite'"),
])
def test_unknown_key_is_refused_naming_the_closest(key, value, message):
  c = _config("m", "/tmp", **{key: value})
  with pytest.raises(ConfigError) as e:
    suites.validate(c)
  assert str(e.value) == message


def test_unknown_key_inside_a_section_is_refused():
  c = _config("m", "/tmp")
  c.zeroshot.templats = "photo"
  with pytest.raises(ConfigError, match=r"^unknown config key 'config.zeroshot.templats'; "
                                        r"closest known key: 'config.zeroshot.templates'$"):
    suites.validate(c)
  c = configs.base("clip_auto")
  c.clip_auto = configs.section("clip_auto", "clip_auto")
  c.clip_auto.autoprompt.iteration = 3
  with pytest.raises(ConfigError, match="'config.clip_auto.autoprompt.iteration'; closest "
                                        "known key: 'config.clip_auto.autoprompt.iterations'"):
    suites.validate(c)


def test_another_suites_section_is_refused_naming_that_suite():
  c = _config("m", "/tmp", suite="zeroshot")
  c.attack = configs.section("adv", "attack")
  with pytest.raises(ConfigError, match="^config key 'config.attack' is read by suite 'adv', "
                                        "not by config.suite='zeroshot'"):
    suites.validate(c)
  c.suite = "adv"
  suites.validate(c)   # the adv suite declares it


def test_free_sections_hold_any_keys():
  # config.dataset_transforms maps dataset names (data, not a section).
  suites.validate(_config("m", "/tmp", dataset_transforms={"anything": ("clean",)}))


def test_command_line_run_reports_the_unknown_key_in_one_line(tmp_path):
  c = _config("m", "/tmp", checkpoint_evry=3)
  out, err = io.StringIO(), io.StringIO()
  assert cli.execute(c, str(tmp_path), dry_run=True, out=out, err=err) == 2
  assert err.getvalue() == ("error: unknown config key 'config.checkpoint_evry'; closest "
                            "known key: 'config.checkpoint_every'\n")


def test_every_config_file_key_is_declared():
  # configs/*.py build their sections from the suites' declarations: the JSON of each
  # section has exactly the declared keys written by configs.section.
  for suite, name in [("adv", "attack"), ("clip_auto", "clip_auto"),
                      ("linear_probe", "linear_probe"), ("overlap", "overlap")]:
    section = json.loads(configs.section(suite, name).to_json_best_effort())
    declared = suites.SUITES.get(suite).sections[name].default
    assert set(section) == {k for k, v in declared.items()
                            if not isinstance(v, keys.Key) or v.in_base}, suite
  # A None default of a declared type is an ml_collections placeholder of that type.
  ov = configs.section("overlap", "overlap")
  assert ov.threshold is None
  ov.threshold = 0.9
  with pytest.raises(TypeError):
    ov.threshold = "high"


def test_unknown_suite_is_refused_naming_the_known():
  c = ml_collections.ConfigDict({"suite": "nope", "models": ("m",), "datasets": ("d",),
                                 "batch_size": 1, "seed": 0})
  with pytest.raises(Exception, match="unknown suite 'nope'"):
    suites.validate(c)
