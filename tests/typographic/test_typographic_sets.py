"""Reading generated typographic sets back, their metrics, and configs/typographic.py."""
import importlib.util
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxbench.data import catalog
from jaxbench.typographic import errors
from jaxbench.typographic import generate as gen
from jaxbench.typographic import sets as ts

import typographic_fixtures as fx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def srcs(tmp_path_factory):
  d = tmp_path_factory.mktemp("typo_srcs")
  inet = fx.imagenet_folder(str(d / "imagenet"))
  images, labels = fx.cifar_bin(str(d / "cifar" / "test_batch.bin"), n=20)
  return {"imagenet": inet["root"], "cifar": str(d / "cifar"), "out": str(d / "sets")}


@pytest.fixture(scope="module")
def inet_set(srcs):
  dst = os.path.join(srcs["out"], "inet")
  gen.generate(srcs["imagenet"], dst, "imagenet_t", seed=0,
               variants=("roz", "true_class", "random_word"), log=None)
  return dst


def _lines(dst):
  with open(os.path.join(dst, gen.MANIFEST)) as f:
    return [json.loads(l) for l in f]


def test_reader_round_trip(inet_set):
  es = ts.load(inet_set)
  written = [l for l in _lines(inet_set) if "file" in l]
  assert len(es) == len(written) > 0
  assert es.num_classes == 1000 and es.model_label_space == "imagenet1k"
  assert len(es.class_names) == 1000 and es.class_names[8] == "hen"
  by_id = {l["id"]: l for l in written}
  for i in range(len(es)):
    r = es.source[i]
    l = by_id[r["id"]]
    assert (r["label"], r["written_label"], r["variant"], r["typographic_text"]) == \
        (l["label"], l["written_label"], l["variant"], l["text"])
    im = Image.open(io.BytesIO(r["image_bytes"]))
    assert list(im.size) == l["image_size"] and im.format == "JPEG"
  table = ts.example_table(es)
  assert table == {l["id"]: (l["label"], l["written_label"], l["variant"]) for l in written}
  assert es.metadata["seed"] == 0 and es.metadata["skipped"] == sum(
      "skipped" in l for l in _lines(inet_set))
  assert set(es.metadata["variants"]) == {"roz", "true_class", "random_word"}


def test_reader_reads_one_variant(inet_set):
  written = [l for l in _lines(inet_set) if "file" in l]
  roz = ts.load(inet_set, variants=["roz"])
  assert len(roz) == sum(l["variant"] == "roz" for l in written)
  assert roz.sequence_metrics == ("success_rate",)


def test_reader_errors(inet_set, tmp_path):
  with pytest.raises(errors.TypographicError, match="seed=0, expected seed=1"):
    ts.load(inet_set, seed=1)
  with pytest.raises(errors.TypographicError, match="holds imagenet_t, expected cifar10_t"):
    ts.load(inet_set, kind="cifar10_t")
  with pytest.raises(errors.TypographicError, match="variants \\['large'\\] not in the set"):
    ts.load(inet_set, variants=["large"])
  with pytest.raises(errors.TypographicError, match="dataset.json missing"):
    ts.load(str(tmp_path))
  # A copy with one image deleted, and one whose generation did not finish.
  import shutil
  broken = tmp_path / "broken"
  shutil.copytree(inet_set, broken)
  first = next(l for l in _lines(inet_set) if "file" in l)
  os.remove(broken / first["file"])
  with pytest.raises(errors.TypographicError, match="1 image files listed in the manifest are missing"):
    ts.load(str(broken))
  header = json.loads((broken / gen.HEADER).read_text())
  (broken / gen.HEADER).write_text(json.dumps(dict(header, complete=False)))
  with pytest.raises(errors.TypographicError, match="complete=false"):
    ts.load(str(broken))


def test_sequence_metrics_with_controlled_predictions(inet_set):
  """A 'model' that reads the written word on half the images and is right on
  the rest: success and accuracy come out as counted by hand."""
  es = ts.load(inet_set)
  table = ts.example_table(es)
  ids = sorted(table)
  preds = []
  for i, eid in enumerate(ids):
    label, written, _ = table[eid]
    preds.append(written if (i % 2 == 0 and written >= 0) else label)
  preds = np.array(preds)
  got = es.sequence_metric_fn(ids, preds, None)
  for v in ("roz", "true_class", "random_word"):
    sel = [i for i, e in enumerate(ids) if table[e][2] == v]
    lab = np.array([table[ids[i]][0] for i in sel])
    wr = np.array([table[ids[i]][1] for i in sel])
    assert got[f"top1/{v}"] == pytest.approx(np.mean(preds[sel] == lab))
    if v == "roz":
      assert got[f"success_rate/{v}"] == pytest.approx(np.mean(preds[sel] == wr))
    else:   # controls: no other class written
      assert np.isnan(got[f"success_rate/{v}"]) and got[f"top1/{v}"] == 1.0
  assert 0 < got["success_rate/roz"] < 1 and got["top1/roz"] == pytest.approx(1 - got["success_rate/roz"])
  assert set(got) == set(es.sequence_metrics)
  assert got["success_rate"] == got["success_rate/roz"]
  details = es.sequence_metric_fn.details(ids, preds)
  assert details["by_variant"]["true_class"]["success_rate"] is None
  assert sum(d["n"] for d in details["by_variant"].values()) == len(ids)


def _config(arg):
  spec = importlib.util.spec_from_file_location("typographic_config",
                                                os.path.join(ROOT, "configs", "typographic.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


@pytest.fixture(scope="module")
def config_sets(srcs):
  """configs/typographic.py with both sources; its sets resolved once (generated)."""
  root = os.path.join(srcs["out"], "cfg")
  config = _config(f"imagenet_src={srcs['imagenet']},cifar_src={srcs['cifar']},root={root},"
                   "variants=roz+true_class,max_examples=8")
  sets = [catalog.get(spec) for spec in config.datasets]       # generates, then reads
  return config, root, sets


def test_config_is_roz_protocol(config_sets):
  from jaxbench import suites
  config, _, _ = config_sets
  suites.validate(config)
  assert config.preprocess == "clip" and config.zeroshot.templates == "clip80"
  assert len(config.datasets) == 2


def test_config_generates_and_reads_both_sets(config_sets):
  _, root, sets = config_sets
  assert [es.name for es in sets] == [
      "imagenet_t(max_examples=8, seed=0, variants=('roz', 'true_class'))",
      "cifar10_t(max_examples=8, seed=0, variants=('roz', 'true_class'))"]
  inet, cifar = sets
  assert os.path.exists(os.path.join(root, "imagenet_t_seed0", gen.HEADER))
  assert cifar.num_classes == 10 and cifar.class_names[1] == "automobile"
  assert cifar.model_label_space == "cifar10" and len(cifar) == 16
  img = Image.open(io.BytesIO(cifar.source[0]["image_bytes"]))
  assert img.size == (960, 720) and img.format == "JPEG"   # RoZ's figures, the default


def test_config_sets_score_by_the_manifest(config_sets):
  _, _, sets = config_sets
  for es in sets:
    table = ts.example_table(es)
    ids = sorted(table)
    got = es.sequence_metric_fn(ids, np.array([table[i][1] for i in ids]), None)
    assert got["success_rate/roz"] == 1.0 and np.isnan(got["success_rate/true_class"])
    assert got["top1/roz"] == 0.0 and got["top1/true_class"] == 1.0


def test_config_sets_are_not_regenerated(config_sets):
  # A second resolution reuses the sets (no regeneration).
  config, root, _ = config_sets
  t0 = os.path.getmtime(os.path.join(root, "cifar10_t_seed0", gen.MANIFEST))
  catalog.get(config.datasets[1])
  assert os.path.getmtime(os.path.join(root, "cifar10_t_seed0", gen.MANIFEST)) == t0


def test_config_templates(config_sets):
  # CLIP's CIFAR-10 templates are the other zero-shot setting.
  from jaxbench.zeroshot import prompts
  config, _, _ = config_sets
  assert len(prompts.templates(_config("templates=cifar10").zeroshot.templates)) == 18
  assert len(prompts.templates(config.zeroshot.templates)) == 80


def test_config_refuses_a_bad_argument():
  with pytest.raises(ValueError, match="bad argument 'colour=red'"):
    _config("colour=red")


def test_runner_scores_cifar10_t_from_the_config(srcs, tiny_clip, tmp_path):
  """configs/typographic.py through the real runner with a tiny random CLIP: the
  set is generated, scored, and the typographic rows written."""
  from absl import flags
  from jaxbench import suites
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  clip_dir, _ = tiny_clip
  config = _config(f"cifar_src={srcs['cifar']},imagenet_src=none,root={tmp_path / 'sets'},"
                   f"variants=roz+true_class,models={clip_dir},batch_size=8,templates=cifar10")
  config.num_workers = 0
  rows = suites.run(config, str(tmp_path / "wd"), print_fn=lambda *a: None)
  got = {r["metric"]: r for r in rows}
  assert {"top1", "success_rate", "top1/roz", "success_rate/roz", "top1/true_class",
          "success_rate/true_class"} <= set(got)
  assert all(r["n"] == 40 and r["suite"] == "typographic" for r in rows)
  v = {k: r["value"] for k, r in got.items()}
  # The runner's top1 (its own labels) equals the mean of the per-variant top1s
  # computed from the manifest by id (equal-size variants): ids and predictions line up.
  assert v["top1"] == pytest.approx((v["top1/roz"] + v["top1/true_class"]) / 2)
  assert v["success_rate"] == v["success_rate/roz"] and np.isnan(v["success_rate/true_class"])
  seq = got["top1"]["details"]["sequence"]["by_variant"]
  assert seq["roz"]["n"] == seq["true_class"]["n"] == 20
  with open(tmp_path / "wd" / "results.jsonl") as f:
    assert len(f.read().splitlines()) == len(rows)


def test_catalog_set_from_roz_record(srcs, tmp_path):
  import pickle
  labels = [int(l) for l in np.arange(20) % 10]       # fx.cifar_bin's labels
  rec = [(t, (t + 7) % 10) for t in labels]
  path = tmp_path / "cifar10_record.pickle"
  path.write_bytes(pickle.dumps(rec))
  es = catalog.get(f"cifar10_t(root={str(tmp_path / 'set')!r}, src={srcs['cifar']!r}, "
              f"variants=('on_image',), roz_record={str(path)!r})")
  assert "roz_record='cifar10_record.pickle'" in es.name
  got = {es.source[i]["id"]: es.source[i]["written_label"] for i in range(len(es))}
  assert got == {f"on_image/test_{i:05d}": w for i, (_, w) in enumerate(rec)}


def test_catalog_finds_the_sets_without_importing_them_first():
  # The data floor does not name this package; the catalog finds 'imagenet_t' and
  # 'cifar10_t' through jaxbench.PLUGINS['datasets'] in a fresh interpreter.
  code = ("from jaxbench.data import catalog; "
          "print('imagenet_t' in catalog.names(), 'cifar10_t' in catalog.names())")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                     env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
  assert r.returncode == 0, r.stderr
  assert r.stdout.split() == ["True", "True"]
