"""configs/linear_probe.py end to end: features stored and resumed, head learned, passes run."""
import os
import pickle

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxbench import models, suites
from jaxbench.engine import heads as engine_heads
from jaxbench.model_setup import ConfigError, load_model
from jaxbench.data import catalog, evalset
from jaxbench.heads import artifact, features, learn, logreg


def _write_batch(path, images, labels):
  """CIFAR-10's python batch format (pickled dict, bytes keys, CHW rows)."""
  batch = {b"labels": labels.tolist(),
           b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072)}
  with open(path, "wb") as f:
    pickle.dump(batch, f, protocol=2)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
  os.makedirs(d)
  rng = np.random.default_rng(0)
  for i in range(1, 6):
    _write_batch(d / f"data_batch_{i}", rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
                 (np.arange(8) + 8 * (i - 1)) % 10)    # 4 images of each class in all
  _write_batch(d / "test_batch", rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8),
               rng.integers(0, 10, 12))
  return str(d)


def _config(model_dir, cifar, **lp):
  from configs import linear_probe
  c = linear_probe.get_config("clip")
  c.models = (model_dir,)
  c.preprocess = ""
  c.datasets = (f"cifar10(root={cifar!r})",)
  c.transforms = ("clean", "attack:fgsm(eps=1/255)")
  c.batch_size = 8
  c.num_workers = 2
  c.linear_probe.train = f"cifar10_train(root={cifar!r})"
  c.linear_probe.test = f"cifar10(root={cifar!r})"
  c.linear_probe.Cs = (0.1, 10.0)
  c.linear_probe.val_fraction = 0.25
  c.linear_probe.shard_size = 16
  c.linear_probe.update(lp)
  return c


def test_learn_then_evaluate(tiny_clip, cifar_dir, tmp_path):
  model_dir, _ = tiny_clip
  cfg = _config(model_dir, cifar_dir)
  wd = str(tmp_path / "run")
  lines = []
  suites.run(cfg, wd, dry_run=True, print_fn=lines.append)
  head = learn.head_path(wd, model_dir)
  assert lines[0].startswith("learn: logreg on cifar10_train")
  assert any(head in l and "to train" in l for l in lines)
  assert f"model=probe:{head}" in "\n".join(lines)
  rows = suites.run(cfg, wd, print_fn=lambda *a: None)
  art = artifact.load(head)
  assert art.label_space == "cifar10" and art.recipe["method"] == "logreg"
  assert art.recipe["best_C"] in (0.1, 10.0) and art.data["n"] == 40
  # The stored train features are the backbone's embeddings; the head is the sweep's.
  backbone = models.load(model_dir)
  train = catalog.get(cfg.linear_probe.train)
  fdir = features.cache_dir(os.path.join(wd, "features"), features.identity(backbone),
                            cfg.linear_probe.train, 40, 16)
  fs = features.load(fdir)
  imgs = np.stack([np.asarray(train.source[i]["image"]) for i in range(40)])
  want = np.asarray(backbone.encode_image(backbone.params, jnp.asarray(imgs / 255.0)))
  np.testing.assert_allclose(fs.features, want, atol=1e-4)
  assert fs.ids[:2] == ("train_00000", "train_00001")
  val = logreg.validation_mask(fs.ids, 0, 0.25)
  sw = logreg.sweep(fs.features, fs.labels, 10, val_mask=val, Cs=(0.1, 10.0))
  assert art.recipe["best_C"] == sw.best_C
  # The run's fit was sharded over 8 devices (another reduction order): solver tolerance.
  np.testing.assert_allclose(art.weight, sw.final.weights, atol=5e-3)
  # The clean row's accuracy is the head on the test images' features.
  test = catalog.get(cfg.datasets[0])
  timgs = np.stack([np.asarray(test.source[i]["image"]) for i in range(12)])
  tl = np.asarray([test.source[i]["label"] for i in range(12)])
  z = np.asarray(backbone.encode_image(backbone.params, jnp.asarray(timgs / 255.0)))
  acc = np.mean(np.argmax(z @ art.weight.T + art.bias, 1) == tl)
  top1 = [r for r in rows if r["metric"] == "top1" and r["transform"] == "clean"]
  assert len(top1) == 1 and top1[0]["value"] == pytest.approx(acc, abs=1e-9)
  assert top1[0]["model_info"]["head"]["recipe"]["method"] == "logreg"
  assert any(r["transform"].startswith("attack:fgsm") for r in rows)
  # A rerun keeps the head; a deleted feature chunk is recomputed to the same values.
  os.remove(os.path.join(fdir, "shard_00001.npz"))
  with pytest.raises(FileNotFoundError, match="chunk 1"):
    features.load(fdir)
  again = features.compute(backbone, train.source, out_dir=fdir, name=cfg.linear_probe.train,
                           batch_size=8, shard_size=16, print_fn=lambda *a: None)
  np.testing.assert_allclose(again.features, fs.features, atol=1e-6)
  with pytest.raises(features.FeatureMismatch, match="bilinear"):
    import dataclasses
    other = backbone.with_preprocess(dataclasses.replace(backbone.preprocess,
                                                         interpolation="bilinear"))
    features.compute(other, train.source, out_dir=fdir, name=cfg.linear_probe.train,
                     batch_size=8, shard_size=16)


def test_label_space_mismatch_is_a_clear_error(tiny_clip, cifar_dir, tmp_path):
  model_dir, _ = tiny_clip
  backbone = models.load(model_dir)
  art = artifact.HeadArtifact(
      weight=np.zeros((10, 16), np.float32), bias=np.zeros(10, np.float32), backbone=model_dir,
      preprocess=artifact.preprocess_record(backbone.preprocess),
      features=features.identity(backbone), label_space="cifar10")
  path = str(tmp_path / "h.safetensors")
  artifact.save(art, path)
  m = models.load(f"probe:{path}")
  other = evalset.EvalSet(name="digits", source=[], num_classes=10, model_label_space="digits")
  with pytest.raises(ConfigError,
                     match=r"label space 'cifar10'.*'digits' is labelled in 'digits'"):
    engine_heads.attach_head(m, other, ml_collections.ConfigDict(), str(tmp_path))


def test_kshot_head_training_roz_preset(tiny_clip, cifar_dir, tmp_path):
  """method='head', preset 'roz', k=2: a k-shot split, the test set picks the epoch."""
  model_dir, _ = tiny_clip
  cfg = _config(model_dir, cifar_dir, method="head", preset="roz", k=2, epochs=3)
  cfg.transforms = ("clean",)
  wd = str(tmp_path / "run")
  suites.run(cfg, wd, print_fn=lambda *a: None)
  art = artifact.load(learn.head_path(wd, model_dir))
  rec = art.recipe
  assert rec["method"] == "adamw_head" and rec["preset"] == "roz" and rec["select"] == "test"
  assert rec["epochs"] == 3 and len(rec["history"]) == 3
  assert rec["batchnorm"] == "frozen" and "no BatchNorm" in rec["batchnorm_note"]
  accs = [h["test_accuracy"] for h in rec["history"]]
  assert rec["best_epoch"] == accs.index(max(accs))
  # The 2-shot split: 2 examples of each class present, drawn by (seed, id) as kshot does.
  from jaxbench.data import kshot
  train = catalog.get(cfg.linear_probe.train)
  split = kshot.draw(train.source, 2, 0, num_classes=10)
  assert art.data["k"] == 2 and art.data["n"] == len(split)
  assert art.data["ids_sha256"] == features.ids_hash(split.ids)


def test_preprocess_override_of_a_trained_head_is_refused(tiny_clip, tmp_path):
  model_dir, _ = tiny_clip
  backbone = models.load(model_dir)
  import dataclasses
  own = dataclasses.replace(backbone.preprocess, interpolation="bilinear")
  art = artifact.HeadArtifact(
      weight=np.zeros((10, 16), np.float32), bias=np.zeros(10, np.float32), backbone=model_dir,
      preprocess=artifact.preprocess_record(own),
      features=features.identity(backbone.with_preprocess(own)), label_space="cifar10")
  path = str(tmp_path / "h.safetensors")
  artifact.save(art, path)
  cfg = ml_collections.ConfigDict(dict(preprocess="clip", precision="float32"))
  with pytest.raises(ConfigError, match=r"trained with preprocessing resize\(32,bilinear\)"):
    load_model(f"probe:{path}", cfg)
  assert load_model(f"probe:{path}", ml_collections.ConfigDict(
      dict(preprocess="", precision="float32"))).preprocess == own


def test_report_puts_heads_beside_their_backbone(tiny_clip, cifar_dir, tmp_path):
  from jaxbench.report import render, results
  model_dir, _ = tiny_clip
  cfg = _config(model_dir, cifar_dir)
  cfg.transforms = ("clean",)
  wd_probe = str(tmp_path / "probe")
  probe_rows = suites.run(cfg, wd_probe, print_fn=lambda *a: None)
  zs = _config(model_dir, cifar_dir)
  del zs["linear_probe"]
  zs.suite = "synthetic"   # the passes only: no heads learned
  zs.transforms = ("clean",)
  zs.zeroshot.head, zs.zeroshot.templates = "dataset", "photo"
  wd_zs = str(tmp_path / "zs")
  zs_rows = suites.run(zs, wd_zs, print_fn=lambda *a: None)
  rs = results.load([wd_probe, wd_zs])
  rep = render.build(rs)
  (t,) = [t for s in rep.sections if s.title == "Trained heads" for t in s.tables]
  assert len(t.rows) == 2
  zs_label, probe_label = t.rows
  assert t.values[(zs_label, "kind")] == "zeroshot" and t.values[(probe_label, "kind")] == "probe"
  assert t.values[(probe_label, "head")].startswith("logreg, C=")
  (col,) = [c for c in t.columns if c not in ("backbone", "kind", "head")]
  assert t.values[(zs_label, col)] == pytest.approx(zs_rows[0]["value"])
  assert t.values[(probe_label, col)] == pytest.approx(
      [r for r in probe_rows if r["metric"] == "top1"][0]["value"])


def test_roz_preset_on_a_batchnorm_backbone(cifar_dir, tmp_path):
  """preset 'roz' on a (tiny, timm-layout) ResNet: train-mode BatchNorm, statistics saved."""
  import timm
  import torch
  from timm.models._hub import save_for_hf
  torch.manual_seed(0)
  ref = timm.create_model("resnet18.tv_in1k", pretrained=False, layers=[1, 1, 1, 1],
                          num_classes=10).eval()
  d = str(tmp_path / "rn")
  save_for_hf(ref, d, safe_serialization=True, model_args=dict(layers=[1, 1, 1, 1]))
  cfg = _config(d, cifar_dir, method="head", preset="roz", epochs=2)
  cfg.preprocess = "clip"       # RoZ: CLIP preprocessing (224 px) for every model
  lines = []
  (path,) = learn.learn(cfg, str(tmp_path / "run"), print_fn=lines.append).values()
  art = artifact.load(path)
  assert art.recipe["batchnorm"] == "train" and art.recipe["select"] == "test"
  assert "bn1/mean" in art.backbone_state and len(art.recipe["history"]) == 2
  assert any("BatchNorm train" in l for l in lines)
  m = load_model(f"probe:{path}", cfg)
  np.testing.assert_array_equal(np.asarray(m.params["net"]["backbone"]["bn1"]["mean"]),
                                art.backbone_state["bn1/mean"])
  assert m.preprocess.size == 224 and m.describe()["kind"] == "supervised"
