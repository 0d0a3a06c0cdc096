"""Generating ImageNet-T / CIFAR-10-T sets: accounting, pixels, determinism, refusals, RoZ's record."""
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from jaxbench.typographic import errors, hershey, roz_record, source, vocabulary
from jaxbench.typographic import generate as gen

import typographic_fixtures as fx

VARIANTS = ("roz", "true_class", "random_word")


@pytest.fixture(scope="module")
def imagenet_src(tmp_path_factory):
  return fx.imagenet_folder(str(tmp_path_factory.mktemp("inet_src")))


@pytest.fixture(scope="module")
def imagenet_set(imagenet_src, tmp_path_factory):
  dst = str(tmp_path_factory.mktemp("inet_t") / "set")
  header = gen.generate(imagenet_src["root"], dst, "imagenet_t", seed=3, variants=VARIANTS,
                        image_format="png", log=None)
  with open(os.path.join(dst, gen.MANIFEST)) as f:
    lines = [json.loads(l) for l in f]
  return dst, header, lines


def _read(path):
  return np.asarray(Image.open(path).convert("RGB"))


def test_every_source_is_written_or_skipped_with_a_reason(imagenet_src, imagenet_set):
  dst, header, lines = imagenet_set
  n = imagenet_src["n"]
  assert header["complete"] and header["seed"] == 3 and header["num_source"] == n
  assert len(lines) == n * len(VARIANTS)
  for v in VARIANTS:
    mine = [l for l in lines if l["variant"] == v]
    assert sorted(l["source_id"] for l in mine) == sorted({l["source_id"] for l in lines})
    per = header["counts"]["per_variant"][v]
    assert per["written"] + sum(per["skipped"].values()) == n
    assert per["written"] == sum("file" in l for l in mine)
  by_id = {(l["variant"], l["source_id"]): l for l in lines}
  for v in VARIANTS:
    assert by_id[(v, imagenet_src["broken"])]["skipped"] == "decode_error"
    assert by_id[(v, imagenet_src["tiny"])]["skipped"] == "text_does_not_fit"
  assert header["counts"]["converted_to_rgb"] == {"L": 1, "CMYK": 1}
  assert by_id[("roz", imagenet_src["gray"])]["source_mode"] == "L"
  assert header["counts"]["written"] + header["counts"]["skipped"] == n * len(VARIANTS)
  assert header["fonts"]["roz"]["face"] == "hershey_duplex"
  eligible = set(vocabulary.vocabulary("imagenet_t").eligible)
  for l in lines:
    if "skipped" in l and l["skipped"] == "decode_error":
      continue
    if l["variant"] == "roz":
      assert l["written_label"] in eligible and l["written_label"] != l["label"]
    elif l["variant"] == "true_class":
      assert l["written_label"] == l["label"]
    else:
      assert l["written_label"] == -1 and l["text"] in vocabulary.NON_CLASS_WORDS
  # Variants of one image draw the same positions (paired comparison): the
  # first placement of the true-class control equals RoZ's when boxes agree.
  for sid in {l["source_id"] for l in lines if "file" in l}:
    a, b = by_id[("roz", sid)], by_id[("true_class", sid)]
    if "file" in a and "file" in b and a["box"] == b["box"]:
      assert a["placements"] == b["placements"]


def test_written_pixels_are_the_manifest_text_on_the_source(imagenet_src, imagenet_set):
  dst, _, lines = imagenet_set
  items = {it.id: it for it in source.list_source(imagenet_src["root"], "imagenet_t")}
  checked = 0
  for l in lines:
    if "file" not in l:
      continue
    src, _ = source.load_item(items[l["source_id"]], imagenet_src["root"])
    out = _read(os.path.join(dst, l["file"]))
    assert list(out.shape[1::-1]) == l["image_size"] == l["source_size"]
    ref = src.copy()
    for x, y in l["placements"]:
      hershey.put_text(ref, l["text"], (x, y), "hershey_duplex", 0.8, (255, 255, 255), 1)
    assert np.array_equal(out, ref), l["id"]
    w, h, _ = l["box"]
    for x, y in l["placements"]:   # each placement holds white text
      assert (out[y - h:y, x:x + w] == 255).all(-1).sum() > 15
    checked += 1
  assert checked >= 18


def _files(d):
  out = {}
  for dp, _, fs in os.walk(d):
    for f in fs:
      with open(os.path.join(dp, f), "rb") as fh:
        out[os.path.relpath(os.path.join(dp, f), d)] = fh.read()
  return out


_SEEDED = dict(seed=11, variants=("roz", "large"), max_examples=5, log=None)


def test_same_seed_same_bytes(imagenet_src, tmp_path):
  gen.generate(imagenet_src["root"], str(tmp_path / "a"), "imagenet_t", **_SEEDED)
  gen.generate(imagenet_src["root"], str(tmp_path / "b"), "imagenet_t", **_SEEDED)
  a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
  assert a.keys() == b.keys() and len(a) > 5 and all(a[k] == b[k] for k in a)


def test_other_seed_writes_another_set(imagenet_src, tmp_path):
  gen.generate(imagenet_src["root"], str(tmp_path / "a"), "imagenet_t", **_SEEDED)
  gen.generate(imagenet_src["root"], str(tmp_path / "c"), "imagenet_t",
               **dict(_SEEDED, seed=12))
  a, c = _files(tmp_path / "a"), _files(tmp_path / "c")
  assert c[gen.MANIFEST] != a[gen.MANIFEST]


def test_worker_processes_do_not_change_the_set(tmp_path):
  images, labels = fx.cifar_bin(str(tmp_path / "src" / "test_batch.bin"), n=6)
  src = str(tmp_path / "src")
  # The 32x32 rendering (PNG, lossless): pixels outside the ink boxes are checkable.
  gen.generate(src, str(tmp_path / "w0"), "cifar10_t", seed=1, variants=("on_image",),
               log=None)
  gen.generate(src, str(tmp_path / "w2"), "cifar10_t", seed=1, variants=("on_image",),
               workers=2, log=None)
  for name in (gen.MANIFEST, gen.HEADER):
    assert (tmp_path / "w0" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()
  lines = [json.loads(l) for l in (tmp_path / "w0" / gen.MANIFEST).read_text().splitlines()]
  assert [l["source_id"] for l in lines] == [f"test_{i:05d}" for i in range(6)]
  for l in lines:
    a = (tmp_path / "w0" / l["file"]).read_bytes()
    assert a == (tmp_path / "w2" / l["file"]).read_bytes()
    out = _read(tmp_path / "w0" / l["file"])
    src_img = images[int(l["source_id"][5:])]
    assert out.shape == (32, 32, 3) and l["label"] == labels[int(l["source_id"][5:])]
    # Only pixels inside the ink boxes change (PNG is lossless).
    changed = (out != src_img).any(-1)
    inside = np.zeros_like(changed)
    for x0, y0, x1, y1 in l["ink"]:
      inside[max(int(np.floor(y0)), 0):int(np.ceil(y1)), max(int(np.floor(x0)), 0):int(np.ceil(x1))] = 1
    assert changed.any() and not (changed & ~inside).any()
    assert l["file"].startswith(f"on_image/{vocabulary.vocabulary('cifar10_t').words[l['label']]}/")


def test_refuses_a_set_of_another_seed(imagenet_src, imagenet_set):
  dst, _, _ = imagenet_set
  with pytest.raises(errors.TypographicError, match="seed=3, but seed=4 was asked"):
    gen.generate(imagenet_src["root"], dst, "imagenet_t", seed=4, variants=VARIANTS,
                 image_format="png", log=None)


def test_refuses_a_set_of_other_variants(imagenet_src, imagenet_set):
  dst, _, _ = imagenet_set
  with pytest.raises(errors.TypographicError, match="variants: has"):
    gen.generate(imagenet_src["root"], dst, "imagenet_t", seed=3, variants=("roz",),
                 image_format="png", log=None)


def test_same_settings_are_a_no_op(imagenet_src, imagenet_set):
  # Same settings: a no-op that leaves the files alone.
  dst, _, _ = imagenet_set
  before = os.path.getmtime(os.path.join(dst, gen.MANIFEST))
  logs = []
  gen.generate(imagenet_src["root"], dst, "imagenet_t", seed=3, variants=VARIANTS,
               image_format="png", log=logs.append)
  assert os.path.getmtime(os.path.join(dst, gen.MANIFEST)) == before
  assert "nothing to do" in logs[-1]


def test_refuses_a_foreign_folder(imagenet_src, tmp_path):
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "notes.txt").write_text("hi")
  with pytest.raises(errors.TypographicError, match="not empty and has no dataset.json"):
    gen.generate(imagenet_src["root"], str(tmp_path / "other"), "imagenet_t", log=None)


def test_interrupted_run_is_redone(imagenet_src, tmp_path):
  # An interrupted run (complete=false) is redone in full.
  part = tmp_path / "part"
  gen.generate(imagenet_src["root"], str(part), "imagenet_t", max_examples=3, log=None)
  header = json.loads((part / gen.HEADER).read_text())
  full = (part / gen.MANIFEST).read_bytes()
  (part / gen.HEADER).write_text(json.dumps(dict(header, complete=False)))
  (part / gen.MANIFEST).unlink()
  gen.generate(imagenet_src["root"], str(part), "imagenet_t", max_examples=3, log=None)
  assert (part / gen.MANIFEST).read_bytes() == full


def test_roz_matplotlib_figures(tmp_path):
  fx.cifar_bin(str(tmp_path / "src" / "test_batch.bin"), n=2)
  header = gen.generate(str(tmp_path / "src"), str(tmp_path / "out"), "cifar10_t",
                        variants=("roz_matplotlib",), log=None)
  lines = [json.loads(l) for l in (tmp_path / "out" / gen.MANIFEST).read_text().splitlines()]
  assert header["image_formats"] == {"roz_matplotlib": "jpeg_matplotlib"}
  assert header["fonts"]["roz_matplotlib"]["family"] == "Times New Roman"
  for l in lines:
    data = (tmp_path / "out" / l["file"]).read_bytes()
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG" and im.size == (960, 720) and l["file"].endswith(".JPEG")
    assert len(l["placements"]) == 4 and l["written_label"] != l["label"]


def test_roz_imagenet_record_reproduces_its_labels(imagenet_src, tmp_path):
  import pickle
  items = source.list_source(imagenet_src["root"], "imagenet_t")
  names = sorted(it.id.split("/")[-1] for it in items if it.id.split("/")[-1].startswith("ILSVRC"))
  # RoZ's imgNet_record.pickle layout: {val file name: written class}; one image left out
  # (RoZ skipped it); eligible classes whose words fit the 260 px wide sources.
  vocab = vocabulary.vocabulary("imagenet_t")
  fit = [c for c in vocab.eligible
         if hershey.text_size(vocab.words[c], "hershey_duplex", 0.8, 2)[0] < 200]
  record = {n: [8, fit[10], fit[150], fit[-1], 8][i] for i, n in enumerate(names[:5])}
  path = tmp_path / "imgNet_record.pickle"
  with open(path, "wb") as f:
    pickle.dump(record, f, protocol=2)
  assert roz_record.read_roz_record(str(path), "imagenet_t") == {n: (None, c) for n, c in record.items()}
  header = gen.generate(imagenet_src["root"], str(tmp_path / "out"), "imagenet_t", seed=0,
                        variants=("roz", "true_class"), roz_record=str(path), log=None)
  assert header["roz_record"]["entries"] == 5 and len(header["roz_record"]["sha256"]) == 64
  lines = [json.loads(l) for l in (tmp_path / "out" / gen.MANIFEST).read_text().splitlines()]
  words = vocabulary.vocabulary("imagenet_t").words
  for l in lines:
    name = l["source_id"].split("/")[-1]
    if l["variant"] == "true_class":      # controls are not RoZ's attack: untouched
      assert l.get("skipped") in (None, "decode_error", "text_does_not_fit")
      continue
    if name in record:
      assert not l.get("skipped") and l["written_label"] == record[name]
      assert l["text"] == words[record[name]]
    elif l["source_id"] == imagenet_src["broken"]:
      assert l["skipped"] == "decode_error"
    else:
      assert l["skipped"] == "not_in_roz_record"
  assert sum(l.get("skipped") == "not_in_roz_record" for l in lines) == 4  # 1 + gray/cmyk/tiny


def _cifar_record(tmp_path):
  """A CIFAR-10 batch of 5 and RoZ's record layout for it: [(true, written)] in order."""
  import pickle
  src = str(tmp_path / "c" / "test_batch.bin")
  _, labels = fx.cifar_bin(src, n=5)
  rec = [(int(t), (int(t) + 3) % 10) for t in labels]
  cpath = tmp_path / "cifar10_record.pickle"
  cpath.write_bytes(pickle.dumps(rec))
  return src, labels, rec, cpath


def test_roz_cifar_record_reproduces_its_labels(tmp_path):
  # CIFAR-10: [(true, written)] in test-set order.
  src, _, rec, cpath = _cifar_record(tmp_path)
  gen.generate(os.path.dirname(src), str(tmp_path / "cout"), "cifar10_t",
               variants=("on_image",), roz_record=str(cpath), log=None)
  got = [json.loads(l) for l in (tmp_path / "cout" / gen.MANIFEST).read_text().splitlines()]
  assert [l["written_label"] for l in got] == [w for _, w in rec]


def test_roz_cifar_record_of_another_source_is_refused(tmp_path):
  # A wrong true class is refused.
  import pickle
  src, labels, _, cpath = _cifar_record(tmp_path)
  cpath.write_bytes(pickle.dumps([(int(t) + 1, 0) for t in labels]))
  with pytest.raises(source.SourceError, match="RoZ's record says true class"):
    gen.generate(os.path.dirname(src), str(tmp_path / "cout2"), "cifar10_t",
                 variants=("on_image",), roz_record=str(cpath), log=None)
