"""configs/clip_auto.py end to end: k-shot split of an image folder, search on 8 devices,
the artifact, then the runner evaluates with the learned head (the ``head_for`` hook)."""
import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

import clip_auto_testlib as tl
from jaxbench.zeroshot.learned import clip_auto, heads


@pytest.fixture(scope="module")
def t():
  return tl.trained()


@pytest.fixture(scope="module")
def learned(t, tmp_path_factory):
  """(config, workdir, model_dir, artifact path, printed lines) after one learning step."""
  tmp_path = tmp_path_factory.mktemp("clip_auto")
  root = tmp_path / "train"
  for c, name in enumerate(tl.NAMES):
    (root / name).mkdir(parents=True)
    for i in np.nonzero(t.labels == c)[0][:20]:
      Image.fromarray(t.images[i]).save(root / name / f"{i:04d}.png")
  model_dir = tl.save_trained_dir(t, str(tmp_path / "model"))
  spec = importlib.util.spec_from_file_location(
      "clip_auto_config", os.path.join(os.path.dirname(__file__), "..", "..", "..", "configs",
                                       "clip_auto.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  config = mod.get_config("autoprompt")
  config.models = (model_dir,)
  config.datasets = (f"image_folder(root='{root}')",)
  config.clip_auto.train = f"image_folder(root='{root}')"
  config.clip_auto.classnames = "dataset"
  config.clip_auto.autoprompt.update(dict(iterations=10, restarts=2, num_candidates=16,
                                          candidate_chunk=0, batch_size=16,
                                          accumulation_steps=5, top_n=1))
  config.batch_size = 16
  workdir = str(tmp_path / "run")
  lines = []
  paths = clip_auto.learn(config, workdir, print_fn=lines.append)
  return config, workdir, model_dir, paths[model_dir], lines


def test_learn_writes_the_artifact_with_its_provenance(learned):
  _, _, model_dir, path, lines = learned
  doc = json.load(open(path))
  assert doc["method"] == "autoprompt" and doc["data"]["k"] == 16
  assert len(doc["data"]["ids"]) == 80 and doc["data"]["ids"][0].startswith("four/")
  assert doc["model"]["name"] == model_dir and doc["steps"] == 20
  assert doc["metrics"]["train_acc_learned"] >= doc["metrics"]["train_acc_start"] + 0.1
  assert "->" in lines[0]


def test_learn_keeps_an_existing_artifact(learned):
  config, workdir, _, _, _ = learned
  lines = []
  clip_auto.learn(config, workdir, print_fn=lines.append)       # kept, not redone
  assert "keeping it" in lines[-1]


def test_runner_evaluates_with_the_learned_head(t, learned):
  # Evaluation: suites.run learns (kept from above) then evaluates with the learned head.
  from jaxbench import suites
  config, workdir, _, path, _ = learned
  rows = suites.run(config, workdir, print_fn=lambda *a: None)
  top1 = [r for r in rows if r["metric"] == "top1"][0]
  assert top1["n"] == 100 and "templates=learned:auto" in top1["model"]
  assert top1["model_info"]["head"]["templates"] == f"learned:{os.path.basename(path)}:top1"
  # The same number from the learned head on the same images (sorted folder labels).
  names = sorted(tl.NAMES)
  head = heads.load_learned_head(t.model, path, names)
  keep = np.concatenate([np.nonzero(t.labels == c)[0][:20] for c in range(5)])
  labels = np.asarray([names.index(n) for n in tl.NAMES])[t.labels[keep]]
  np.testing.assert_allclose(top1["value"], heads.accuracy(head, t.feats[keep], labels),
                             atol=0.011)
  acc0 = heads.accuracy(heads.trigger_head(t.model, [tl.START], names),
                        t.feats[keep], labels)
  assert top1["value"] >= acc0 + 0.05, (acc0, top1["value"])
