"""Every suite config takes the same command-line overrides (models, datasets,
transforms, data_root) through absl/ml_collections flag parsing, and a dry run of
the command line's run step succeeds with them on tiny fixtures."""
import io
import os

import pytest
from absl import flags
from ml_collections import config_flags
from PIL import Image

from jaxbench import cli, configs, labels as labels_lib
from tests.engine.helpers import REPO, _write_folder

# (config file, config argument) -- every file in configs/, with its presets.
CONFIGS = [("adv.py", None), ("adv.py", "min_eps,models=roz"), ("adv.py", "pixel"),
           ("natural.py", "roz,no_controls"), ("synthetic.py", None),
           ("typographic.py", "cifar_src=none,seed=3"), ("clip_auto.py", "coop"),
           ("overlap.py", "roz"), ("demo.py", None), ("demo.py", "adv"),
           ("zeroshot.py", "roz"), ("linear_probe.py", None), ("linear_probe.py", "roz")]


def test_every_config_file_is_covered():
  files = sorted(f for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith(".py"))
  assert sorted({f for f, _ in CONFIGS}) == files


def _load(name, arg, overrides):
  path = os.path.join(REPO, "configs", name) + (f":{arg}" if arg else "")
  argv = ["prog", f"--config={path}", *overrides]
  fv = flags.FlagValues()
  # As jaxbench.main defines it; sys_argv: the overrides to define as flags.
  config_flags.DEFINE_config_file("config", None, "config file", flag_values=fv,
                                  lock_config=True, sys_argv=argv)
  fv(argv)
  return fv.config


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _write_folder(str(tmp_path_factory.mktemp("data")), n_per_class=2)


@pytest.mark.parametrize("name,arg", CONFIGS, ids=[f"{n}:{a}" for n, a in CONFIGS])
def test_config_takes_the_common_overrides(name, arg, tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  dataset = f"image_folder(root={folder!r})"
  overrides = [f"--config.models=('{model_dir}',)",
               f"--config.datasets=(\"{dataset}\",)",
               "--config.transforms=('clean', 'attack:fgsm(eps=1/255)')",
               f"--config.data_root={tmp_path}"]
  c = _load(name, arg, overrides)
  assert tuple(c.models) == (model_dir,)
  assert tuple(c.datasets) == (dataset,)
  assert tuple(c.transforms) == ("clean", "attack:fgsm(eps=1/255)")
  assert c.data_root == str(tmp_path)
  out, err = io.StringIO(), io.StringIO()
  assert cli.execute(c, None, dry_run=True, out=out, err=err) == 0, err.getvalue()
  assert "plan: 2 passes" in out.getvalue()
  assert "transform=attack:fgsm(eps=0.00392156862745098)" in out.getvalue()


def test_adv_finds_imagenet_under_data_root(tiny_clip, tmp_path):
  model_dir, _ = tiny_clip
  wnid = labels_lib.imagenet_wnids()[3]
  os.makedirs(tmp_path / "imagenet" / "val" / wnid)
  Image.new("RGB", (8, 8)).save(tmp_path / "imagenet" / "val" / wnid /
                                "ILSVRC2012_val_00000001.JPEG")
  c = _load("adv.py", None, [f"--config.models=('{model_dir}',)",
                             f"--config.data_root={tmp_path}"])
  assert tuple(c.datasets) == ("imagenet",)
  out, err = io.StringIO(), io.StringIO()
  assert cli.execute(c, None, dry_run=True, out=out, err=err) == 0, err.getvalue()
  assert "plan: 11 passes" in out.getvalue()
  # Without the data there, the dry run says where it looked, in one line.
  c = _load("adv.py", None, [f"--config.models=('{model_dir}',)",
                             f"--config.data_root={tmp_path / 'elsewhere'}"])
  assert cli.execute(c, None, dry_run=True, out=out, err=err) == 2
  assert err.getvalue().count("\n") == 1 and "elsewhere" in err.getvalue()


def test_shared_argument_parser():
  a = configs.parse_args("min_eps,models=roz,max_examples=100", "configs/adv.py",
                         presets=("roz", "min_eps"), default_preset="roz",
                         values=dict(models="x", max_examples=-1))
  assert a.preset == "min_eps" and a.values == {"models": "roz", "max_examples": 100}
  a = configs.parse_args("no_controls, roz", "configs/natural.py",
                         options=("roz", "no_controls"))
  assert a.options == {"roz", "no_controls"} and a.preset is None
  assert configs.parse_args(None, "c.py", presets=("p", "q"), default_preset="q").preset == "q"
  with pytest.raises(ValueError, match="unknown preset 'fast'"):
    configs.parse_args("fast", "c.py", presets=("roz",))
  with pytest.raises(ValueError, match="bad argument 'modelz=a'.*key one of \\['models'\\]"):
    configs.parse_args("modelz=a", "c.py", values=dict(models=""))
  with pytest.raises(ValueError, match="max_examples='ten' is not an integer"):
    configs.parse_args("max_examples=ten", "c.py", values=dict(max_examples=-1))
  with pytest.raises(ValueError, match="accepted: no arguments"):
    configs.parse_args("roz", "configs/synthetic.py")
  assert configs.split_models("a+b") == ("a", "b")
  assert configs.split_models("roz", ("m1", "m2")) == ("m1", "m2")


def test_synthetic_plan_follows_section_overrides_and_is_replaced_by_datasets():
  c = _load("synthetic.py", None, ["--config.imagenet_c.source=generated",
                                   "--config.imagenet_c.corruptions=fog",
                                   "--config.imagenet_c.severities=2,5"])
  assert tuple(c.datasets) == ("imagenet",)
  assert tuple(c.transforms) == ("clean",
                                 "shift:imagenet_c(corruption='fog', severity=2, jpeg_quality=85)",
                                 "shift:imagenet_c(corruption='fog', severity=5, jpeg_quality=85)")
  c = _load("synthetic.py", None, ["--config.parts=stylized",
                                   "--config.stylized.root=/x/stylized"])
  assert tuple(c.datasets) == ("imagenet", "stylized_imagenet(root='/x/stylized')")
  c = _load("synthetic.py", None, ["--config.datasets=('imagenet_r',)",
                                   "--config.imagenet_c.source=generated"])
  assert tuple(c.datasets) == ("imagenet_r",) and len(c.transforms) == 1 + 15 * 5
  # No private ml_collections API: the plan is read through FieldReference.attr.
  with open(os.path.join(REPO, "configs", "synthetic.py")) as f:
    assert "_Op" not in f.read()
