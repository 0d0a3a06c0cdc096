"""``--dry_run`` shows every phase a config will run (real config files, tiny fixtures):
prompt learning, heads learning, overlap's corpus work, generated sets, the prepared
cache, then the passes. Nothing is written."""
import io
import os

import pytest

from jaxbench import cli
from tests.engine.helpers import _write_folder
from tests.test_configs import _load


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _write_folder(str(tmp_path_factory.mktemp("data")), n_per_class=2)


def _dry_run(name, arg, overrides, workdir):
  c = _load(name, arg, overrides)
  out, err = io.StringIO(), io.StringIO()
  assert cli.execute(c, workdir, dry_run=True, out=out, err=err) == 0, err.getvalue()
  assert workdir is None or not os.path.exists(workdir)   # nothing written
  return out.getvalue().splitlines()


def _common(model_dir, folder, tmp_path, datasets=True):
  out = [f"--config.models=('{model_dir}',)", f"--config.data_root={tmp_path}"]
  if datasets:
    out.append(f"--config.datasets=(\"image_folder(root={folder!r})\",)")
  return out


def test_plain_config_shows_only_the_passes(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  lines = _dry_run("zeroshot.py", None, _common(model_dir, folder, tmp_path),
                   str(tmp_path / "wd"))
  assert lines[0] == f"plan: 1 passes into {tmp_path / 'wd'}" and len(lines) == 4
  # The models' parameters close the plan (tests/models/test_footprint.py checks figures).
  assert lines[2] == "parameters: precision float32, replicated on every device"
  assert lines[3].startswith(f"  model={model_dir}: ") and "[eval_shape of CLIP]" in lines[3]


@pytest.mark.parametrize("arg,method", [("autoprompt", "AutoPrompt: 4 trigger tokens, 4 "
                                         "restart(s) x 100 iterations, 40 candidates"),
                                        ("coop", "CoOp: 4 context vectors, 50 epochs")])
def test_clip_auto_shows_prompt_learning_first(arg, method, tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  train = f"image_folder(root={folder!r})"
  lines = _dry_run("clip_auto.py", arg, _common(model_dir, folder, tmp_path) +
                   [f"--config.clip_auto.train={train}", "--config.clip_auto.k=2"],
                   str(tmp_path / "wd"))
  assert lines[0].startswith(f"learn prompts: {method}")
  assert f"on a 2-shot split (seed 0) of {train} (6 examples)" in lines[0]
  assert lines[1] == (f"  model={model_dir} -> {tmp_path / 'wd' / 'clip_auto'}/<model name>.json"
                      " (an existing file is kept)")
  assert lines[2].startswith("plan: 1 passes")


def test_clip_auto_names_a_missing_training_set(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  lines = _dry_run("clip_auto.py", None, _common(model_dir, folder, tmp_path) + [
      f"--config.clip_auto.train=image_folder(root='{tmp_path}/nowhere')"], None)
  assert "NOT READABLE, the run would stop here" in lines[0] and "nowhere" in lines[0]


def test_linear_probe_shows_heads_learning_then_probe_passes(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  wd = str(tmp_path / "wd")
  lines = _dry_run("linear_probe.py", None, _common(model_dir, folder, tmp_path), wd)
  assert lines[0].startswith("learn: logreg on cifar10_train: logreg C sweep")
  assert lines[1].startswith(f"  backbone={model_dir} -> {wd}/heads/") and \
      lines[1].endswith("(to train)")
  assert lines[2].startswith("  train set: cifar10_train (NOT READABLE")
  assert lines[3] == f"plan: 1 passes into {wd}"
  assert lines[4].startswith(f"  model=probe:{wd}/heads/")


def test_overlap_shows_corpus_embedding_and_search_after_the_passes(tiny_clip, folder,
                                                                    tmp_path):
  model_dir, _ = tiny_clip
  wd = str(tmp_path / "wd")
  lines = _dry_run("overlap.py", None, _common(model_dir, folder, tmp_path) +
                   ["--config.overlap.corpus=/corpus/{00000..00003}.tar"], wd)
  assert lines[0].startswith("plan: 1 passes") and lines[2].startswith("parameters: ")
  assert lines[4] == (f"overlap: embed corpus '/corpus/{{00000..00003}}.tar' with detector "
                      f"{model_dir} (mode 'auto') into {wd}/overlap/embeddings/ (resumed; an "
                      "embedding store is used as is)")
  assert lines[5] == "overlap: embed and hash (phash, dhash) the 1 evaluation set(s)"
  assert lines[6].startswith("overlap: calibrate the threshold and hash radii on about 256")
  assert lines[7].startswith("overlap: exact 10-NN search over the corpus")


def test_typographic_shows_set_generation(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  root = tmp_path / "typo"
  lines = _dry_run("typographic.py", f"cifar_src={folder},imagenet_src=none,root={root}",
                   _common(model_dir, folder, tmp_path, datasets=False), None)
  assert lines[0].startswith("generate: cifar10_t(")
  assert lines[0].endswith(f"from src {folder!r} into '{root}/cifar10_t_seed0' "
                           "(on first use)")
  assert lines[1].startswith("plan: 1 passes")


def test_prepared_cache_is_a_phase(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  pc = str(tmp_path / "pc")
  lines = _dry_run("zeroshot.py", None, _common(model_dir, folder, tmp_path) + [
      f"--config.prepared_cache={pc}",
      "--config.transforms=('clean', \"shift:cifar10_c(corruption='fog', severity=1)\")"],
      None)
  assert lines[0] == (f"prepared cache: image_folder(root={folder!r}): decoded and cropped "
                      f"pixels at the preprocessing of 1 model(s), built in {pc} on first use "
                      "(reused when present)")
  assert lines[1].startswith("plan: 2 passes")
