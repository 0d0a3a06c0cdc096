"""The demo CLIP at reduced size: accuracy, robustness trends, and its saved checkpoint.

One CLIP is trained for the module (fewer steps than the demo's default); every
expectation of the issue is measured on it: zero-shot accuracy on the held-out
digits, accuracy falling with corruption severity and with epsilon, BIM at the
largest epsilon, and the transformers-layout checkpoint reproducing the trained
Flax params (checked against transformers' PyTorch CLIPModel too).
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxbench
from jaxbench import attacks, shifts
from jaxbench.demo import digits, export, train
from jaxbench.demo import models as demo_models
from jaxbench.models import clip, hub
from jaxbench.zeroshot import build_head

STEPS = 300
N_EVAL = 256       # held-out digits used for the robustness trends
TOL = 0.02         # "monotonically within noise": a rise of at most 2 points


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """The trained CLIP: its cache, checkpoint directory and in-memory Flax params.

  Under pytest-xdist the workers share one cache (the run's common temporary
  directory) and a lock, so the model is trained once per run; the worker that
  trains also dumps the params it trained, which the others compare against.
  """
  from filelock import FileLock
  base = tmp_path_factory.getbasetemp()
  root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "demo_clip_cache"
  root.mkdir(exist_ok=True)
  dump = root / "trained_params.npz"
  with FileLock(str(root / "train.lock")):
    got = {}
    path = demo_models.checkpoint("clip", str(root), steps=STEPS, trained=got)
    if got:
      flat = {"/".join(str(getattr(k, "key", k)) for k in p): np.asarray(v)
              for p, v in jax.tree_util.tree_leaves_with_path(got["params"])}
      np.savez(dump, **flat)
  params: dict = {}
  with np.load(dump) as z:
    for name in z.files:
      node = params
      parts = name.split("/")
      for part in parts[:-1]:
        node = node.setdefault(part, {})
      node[parts[-1]] = z[name]
  return {"cache": str(root), "path": path, "params": params}


@pytest.fixture(scope="module")
def classifier(trained):
  spec = f"demo_clip(cache={trained['cache']!r}, steps={STEPS})"
  model = jaxbench.models.load(spec)   # from the cache: must not train again
  head = build_head(model, list(digits.WORDS), list(digits.TEMPLATES))
  return model.with_head(head)


@pytest.fixture(scope="module")
def test_set():
  x, y, _ = digits.load("test", 32)
  return x.astype(np.float32) / 255.0, y


def test_loading_the_spec_uses_the_cache(trained, classifier, monkeypatch):
  assert classifier.name.startswith("demo_clip(")
  assert classifier.provenance["demo"]["checkpoint"] == trained["path"]
  assert classifier.provenance["layout"] == "transformers-clip"

  def no_training(*a, **k):
    raise AssertionError("a cached model was trained again")
  monkeypatch.setattr(train, "train_clip", no_training)
  monkeypatch.setitem(demo_models.KINDS, "clip", (train.ClipTrainConfig, no_training))
  again = jaxbench.models.load(f"demo_clip(cache={trained['cache']!r}, steps={STEPS})")
  assert again.provenance["sha256"] == classifier.provenance["sha256"]


def test_zero_shot_accuracy(classifier, test_set):
  x, y = test_set
  logits = np.asarray(jax.jit(classifier.apply)(classifier.params, x))
  acc = float((logits.argmax(1) == y).mean())
  assert acc >= 0.80, acc


def test_checkpoint_reproduces_the_trained_params(trained, classifier):
  path, params = trained["path"], trained["params"]
  with open(os.path.join(path, "config.json")) as f:
    cfg = clip.config_from_transformers(json.load(f))
  assert cfg == train.make_config(train.ClipTrainConfig, steps=STEPS).clip_config()
  # The safetensors file holds exactly the trained arrays, under transformers' names.
  tensors = hub.load_safetensors([os.path.join(path, "model.safetensors")])
  assert set(tensors) == set(export.state_dict(params))
  back = clip.params_from_transformers(tensors, cfg)
  for (p, a), (_, b) in zip(jax.tree_util.tree_leaves_with_path(params),
                            jax.tree_util.tree_leaves_with_path(back)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=str(p))
  # And the loaded model computes what the Flax module computes with them.
  module = clip.CLIP(cfg)
  x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
  ids = classifier.tokenize(["a photo of the number seven.", "a handwritten 3.", "nine", "4"])
  xn = (x - np.asarray(classifier.preprocess.mean, np.float32)) / np.asarray(
      classifier.preprocess.std, np.float32)
  want_i = module.apply({"params": params}, xn, method=clip.CLIP.encode_image)
  want_t = module.apply({"params": params}, ids, method=clip.CLIP.encode_text)
  np.testing.assert_allclose(classifier.encode_image(classifier.params, x), want_i,
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(classifier.encode_text(classifier.params, ids), want_t,
                             rtol=1e-6, atol=1e-6)
  # transformers' PyTorch CLIP reads the directory as a Hugging Face checkpoint.
  import torch
  from transformers import AutoTokenizer, CLIPModel
  ref = CLIPModel.from_pretrained(path).eval()
  hf_ids = AutoTokenizer.from_pretrained(path)(["a handwritten 3."])["input_ids"][0]
  assert list(ids[1][:len(hf_ids)]) == hf_ids
  with torch.no_grad():
    ri = ref.get_image_features(pixel_values=torch.tensor(xn).permute(0, 3, 1, 2))
    rt = ref.get_text_features(input_ids=torch.tensor(np.asarray(ids), dtype=torch.long))
  ri = getattr(ri, "pooler_output", ri).numpy()
  rt = getattr(rt, "pooler_output", rt).numpy()
  np.testing.assert_allclose(np.asarray(want_i), ri, atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(want_t), rt, atol=1e-4, rtol=1e-4)


def _accuracy(apply, params, x, y):
  return float((np.asarray(apply(params, jnp.asarray(x))).argmax(1) == y).mean())


def test_accuracy_falls_with_corruption_severity(classifier, test_set):
  x, y = test_set[0][:N_EVAL], test_set[1][:N_EVAL]
  apply = jax.jit(classifier.apply)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(len(y)))
  for corruption in ("contrast", "fog"):
    accs = [_accuracy(apply, classifier.params, x, y)]
    for s in range(1, 6):
      fn = shifts.get(f"cifar10_c(corruption='{corruption}', severity={s})").device_fn
      accs.append(_accuracy(apply, classifier.params, np.asarray(fn(keys, x)), y))
    assert all(b <= a + TOL for a, b in zip(accs, accs[1:])), (corruption, accs)
    assert accs[-1] < accs[0] - 0.05, (corruption, accs)


EPSILONS = (2, 4, 16)


@pytest.fixture(scope="module")
def bim_sweep(classifier, test_set):
  """(clean then BIM accuracies at EPSILONS, largest L-inf step of each attack), run once."""
  x, y = test_set[0][:N_EVAL], test_set[1][:N_EVAL]
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(len(y)))
  apply = jax.jit(classifier.apply)
  clean = _accuracy(apply, classifier.params, x, y)
  robust, linf = [clean], []
  for eps in EPSILONS:
    attack = attacks.get(f"bim(eps={eps}/255)")
    res = jax.jit(lambda p, xx, yy, kk: attack(classifier.apply, p, xx, yy, kk))(
        classifier.params, jnp.asarray(x), jnp.asarray(y, jnp.int32), keys)
    adv = np.asarray(res.adv_images)
    linf.append(float(np.abs(adv - x).max()))
    robust.append(_accuracy(apply, classifier.params, adv, y))
  return robust, linf


@pytest.mark.parametrize("i,eps", list(enumerate(EPSILONS)))
def test_bim_stays_within_epsilon(bim_sweep, i, eps):
  assert bim_sweep[1][i] <= eps / 255 + 1e-6


def test_accuracy_falls_with_epsilon(bim_sweep):
  robust, _ = bim_sweep
  assert all(b <= a + TOL for a, b in zip(robust, robust[1:])), robust


def test_bim_at_16_over_255_breaks_the_classifier(bim_sweep):
  robust, _ = bim_sweep
  assert robust[-1] < 0.20, robust


def test_demo_driver_runs_a_suite_through_the_runner(trained, classifier, test_set, tmp_path):
  from jaxbench.model_setup import ConfigError
  from jaxbench.demo import __main__ as driver
  spec = f"demo_clip(cache={trained['cache']!r}, steps={STEPS})"
  overrides = {"models": (spec,), "batch_size": 32}
  out = driver.run(str(tmp_path), ["zeroshot"], max_examples=64, overrides=overrides,
                   print_fn=lambda *a: None)
  rows = {r["metric"]: r for r in out["zeroshot"]}
  x, y = test_set[0][:64], test_set[1][:64]
  want = _accuracy(jax.jit(classifier.apply), classifier.params, x, y)
  assert rows["top1"]["value"] == pytest.approx(want) and rows["top1"]["n"] == 64
  assert rows["top1"]["suite"] == "zeroshot" and rows["top1"]["dataset"] == "digits"
  with open(tmp_path / "report" / "report.md") as f:
    assert f"{100 * want:.2f}" in f.read()
  # A rerun finds every row done; another config on the same workdir is refused by name.
  assert driver.run(str(tmp_path), ["zeroshot"], max_examples=64, overrides=overrides,
                    report=False, print_fn=lambda *a: None) == {"zeroshot": []}
  with pytest.raises(ConfigError, match="seed"):
    driver.run(str(tmp_path), ["zeroshot"], max_examples=64,
               overrides={**overrides, "seed": 1}, report=False)
