"""Demo checkpoints: interrupted training resumes, half-written directories are rebuilt.

A tiny CNN keeps this fast; the cache code is the same for the CLIP.
"""
import json
import logging
import os

import jax
import numpy as np
import pytest

import jaxbench
from jaxbench.demo import cache, cnn, train
from jaxbench.demo import models as demo_models

TINY = dict(width=4, steps=6, batch_size=16)


def _params(path):
  return cnn.load(path).params["net"]


def _equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y))
                                    for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("cache_b"))
  got = {}
  path = demo_models.checkpoint("cnn", root, checkpoint_every=2, trained=got, **TINY)
  return root, path, got["params"]


def test_killed_training_resumes_to_the_same_params(tmp_path, uninterrupted, caplog):
  _, ref_path, ref_params = uninterrupted
  root = str(tmp_path)
  with pytest.raises(KeyboardInterrupt):
    demo_models.checkpoint("cnn", root, checkpoint_every=2, stop_after=2, **TINY)
  identity = {"kind": "cnn", "recipe": train.RECIPE,
              **train.make_config(train.CnnTrainConfig, **TINY).__dict__}
  path = cache.model_dir(root, "cnn", identity)
  assert os.path.basename(path) == os.path.basename(ref_path)
  assert not os.path.exists(path)                       # nothing final was published
  with np.load(cache.state_path(path)) as z:
    assert int(z["step"]) == 2
  with caplog.at_level(logging.INFO):
    got = {}
    assert demo_models.checkpoint("cnn", root, checkpoint_every=2, trained=got,
                                  **TINY) == path
  assert "resuming training from step 2 of 6" in caplog.text
  assert not os.path.exists(cache.state_path(path))     # removed once complete
  assert cache.check_complete(path, identity) == (True, "")
  assert _equal(got["params"], ref_params)
  assert _equal(_params(path), ref_params)


@pytest.fixture(scope="module", params=["no_marker", "truncated_weights"])
def half_written(request, uninterrupted, tmp_path_factory):
  """A copy of the finished checkpoint, damaged one way, then loaded (rebuilt) once.

  Returns a dict: the reason expected, check_complete before and after loading, the
  warnings logged while loading, the loaded model.
  """
  import io
  damage = request.param
  ref_root, ref_path, ref_params = uninterrupted
  root = str(tmp_path_factory.mktemp(f"half_written_{damage}"))
  path = os.path.join(root, os.path.basename(ref_path))
  os.makedirs(path)
  for name in os.listdir(ref_path):
    with open(os.path.join(ref_path, name), "rb") as f, open(os.path.join(path, name),
                                                             "wb") as g:
      g.write(f.read())
  if damage == "no_marker":
    os.remove(os.path.join(path, cache.MARKER))
    reason = "no COMPLETE.json"
  else:
    weights = os.path.join(path, "model.safetensors")
    with open(weights, "r+b") as f:
      f.truncate(os.path.getsize(weights) // 2)
    reason = "model.safetensors does not match its SHA-256"
  with open(os.path.join(ref_path, cache.MARKER)) as f:
    identity = json.load(f)["config"]
  before = cache.check_complete(path, identity)
  spec = f"demo_cnn(cache={root!r}, width=4, steps=6, batch_size=16)"
  log, rootlog = io.StringIO(), logging.getLogger()
  handler, level = logging.StreamHandler(log), rootlog.level
  handler.setLevel(logging.WARNING)
  rootlog.addHandler(handler)
  rootlog.setLevel(min(level, logging.WARNING) if level else logging.WARNING)
  try:
    model = jaxbench.models.load(spec)
  finally:
    rootlog.removeHandler(handler)
    rootlog.setLevel(level)
  return {"reason": reason, "before": before, "log": log.getvalue(),
          "after": cache.check_complete(path, identity), "model": model,
          "ref_params": ref_params}


def test_half_written_checkpoint_is_detected(half_written):
  ok, why = half_written["before"]
  assert not ok and half_written["reason"] in why


def test_half_written_checkpoint_is_reported_when_loading(half_written):
  text = half_written["log"]
  assert "half-written checkpoint" in text and half_written["reason"] in text


def test_half_written_checkpoint_is_rebuilt_complete(half_written):
  assert half_written["after"] == (True, "")


def test_rebuilt_checkpoint_equals_the_uninterrupted_one(half_written):
  model = half_written["model"]
  assert model.kind == "supervised" and model.label_space == "digits10"
  assert _equal(model.params["net"], half_written["ref_params"])


def test_stale_temporary_directories_are_removed(tmp_path, uninterrupted):
  _, ref_path, _ = uninterrupted
  root = str(tmp_path)
  dead = os.path.join(root, os.path.basename(ref_path) + ".tmp-999999999")
  os.makedirs(dead)
  open(os.path.join(dead, "model.safetensors"), "wb").close()
  demo_models.checkpoint("cnn", root, checkpoint_every=6, **TINY)
  assert not os.path.exists(dead)


def test_bad_options_are_named(tmp_path):
  with pytest.raises(ValueError, match="unknown ClipTrainConfig fields \\['stepz'\\]"):
    demo_models.checkpoint("clip", str(tmp_path), stepz=3)
  with pytest.raises(ValueError, match="steps=-1|non-negative"):
    demo_models.checkpoint("cnn", str(tmp_path), steps=-1)
  with pytest.raises(ValueError, match="unknown demo model 'vit'"):
    demo_models.checkpoint("vit", str(tmp_path))
  with pytest.raises(ValueError, match="no revisions"):
    jaxbench.models.load("demo_cnn(revision='main')")
  # A directory in the CNN layout whose tensors do not fit its config.
  d = tmp_path / "bad"
  cnn.save(str(d), cnn.init_params(4, 10, 32, jax.random.key(0)), width=8, num_classes=10,
           image_size=32, label_space="digits10")
  with pytest.raises(ValueError, match="does not fit a width-8"):
    jaxbench.models.load(str(d))
