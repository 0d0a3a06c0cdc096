"""Generating ImageNet-T / CIFAR-10-T sets: accounting, pixels, determinism, refusals, CLI."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxbench import typographic as gen
from jaxbench.shifts import typographic as typo

import typographic_fixtures as fx

VARIANTS = ("roz", "true_class", "random_word")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
  eligible = set(typo.vocabulary("imagenet_t").eligible)
  for l in lines:
    if "skipped" in l and l["skipped"] == "decode_error":
      continue
    if l["variant"] == "roz":
      assert l["written_label"] in eligible and l["written_label"] != l["label"]
    elif l["variant"] == "true_class":
      assert l["written_label"] == l["label"]
    else:
      assert l["written_label"] == -1 and l["text"] in typo.NON_CLASS_WORDS
  # Variants of one image draw the same positions (paired comparison): the
  # first placement of the true-class control equals RoZ's when boxes agree.
  for sid in {l["source_id"] for l in lines if "file" in l}:
    a, b = by_id[("roz", sid)], by_id[("true_class", sid)]
    if "file" in a and "file" in b and a["box"] == b["box"]:
      assert a["placements"] == b["placements"]


def test_written_pixels_are_the_manifest_text_on_the_source(imagenet_src, imagenet_set):
  dst, _, lines = imagenet_set
  items = {it.id: it for it in gen.list_source(imagenet_src["root"], "imagenet_t")}
  checked = 0
  for l in lines:
    if "file" not in l:
      continue
    src, _ = gen.load_item(items[l["source_id"]], imagenet_src["root"])
    out = _read(os.path.join(dst, l["file"]))
    assert list(out.shape[1::-1]) == l["image_size"] == l["source_size"]
    ref = src.copy()
    for x, y in l["placements"]:
      typo.put_text(ref, l["text"], (x, y), "hershey_duplex", 0.8, (255, 255, 255), 1)
    assert np.array_equal(out, ref), l["id"]
    w, h, _ = l["box"]
    for x, y in l["placements"]:   # each placement holds white text
      assert (out[y - h:y, x:x + w] == 255).all(-1).sum() > 15
    checked += 1
  assert checked >= 18


def test_same_seed_same_bytes_and_other_seed_differs(imagenet_src, tmp_path):
  def files(d):
    out = {}
    for dp, _, fs in os.walk(d):
      for f in fs:
        with open(os.path.join(dp, f), "rb") as fh:
          out[os.path.relpath(os.path.join(dp, f), d)] = fh.read()
    return out
  kw = dict(seed=11, variants=("roz", "large"), max_examples=5, log=None)
  gen.generate(imagenet_src["root"], str(tmp_path / "a"), "imagenet_t", **kw)
  gen.generate(imagenet_src["root"], str(tmp_path / "b"), "imagenet_t", **kw)
  a, b = files(tmp_path / "a"), files(tmp_path / "b")
  assert a.keys() == b.keys() and len(a) > 5 and all(a[k] == b[k] for k in a)
  gen.generate(imagenet_src["root"], str(tmp_path / "c"), "imagenet_t",
               **dict(kw, seed=12))
  c = files(tmp_path / "c")
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
    assert l["file"].startswith(f"on_image/{typo.vocabulary('cifar10_t').words[l['label']]}/")


def test_refuses_other_seeds_and_foreign_folders_and_resumes(imagenet_src, imagenet_set, tmp_path):
  dst, _, _ = imagenet_set
  with pytest.raises(typo.TypographicError, match="seed=3, but seed=4 was asked"):
    gen.generate(imagenet_src["root"], dst, "imagenet_t", seed=4, variants=VARIANTS,
                 image_format="png", log=None)
  with pytest.raises(typo.TypographicError, match="variants: has"):
    gen.generate(imagenet_src["root"], dst, "imagenet_t", seed=3, variants=("roz",),
                 image_format="png", log=None)
  # Same settings: a no-op that leaves the files alone.
  before = os.path.getmtime(os.path.join(dst, gen.MANIFEST))
  logs = []
  gen.generate(imagenet_src["root"], dst, "imagenet_t", seed=3, variants=VARIANTS,
               image_format="png", log=logs.append)
  assert os.path.getmtime(os.path.join(dst, gen.MANIFEST)) == before
  assert "nothing to do" in logs[-1]
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "notes.txt").write_text("hi")
  with pytest.raises(typo.TypographicError, match="not empty and has no dataset.json"):
    gen.generate(imagenet_src["root"], str(tmp_path / "other"), "imagenet_t", log=None)
  # An interrupted run (complete=false) is redone in full.
  part = tmp_path / "part"
  gen.generate(imagenet_src["root"], str(part), "imagenet_t", max_examples=3, log=None)
  header = json.loads((part / gen.HEADER).read_text())
  full = (part / gen.MANIFEST).read_bytes()
  (part / gen.HEADER).write_text(json.dumps(dict(header, complete=False)))
  (part / gen.MANIFEST).unlink()
  gen.generate(imagenet_src["root"], str(part), "imagenet_t", max_examples=3, log=None)
  assert (part / gen.MANIFEST).read_bytes() == full


def test_bad_sources_are_named(tmp_path):
  (tmp_path / "a" / "dogs").mkdir(parents=True)
  Image.fromarray(fx.smooth(40, 40, 0)).save(tmp_path / "a" / "dogs" / "x.png")
  with pytest.raises(gen.SourceError, match="class folder 'dogs' is not an ImageNet wnid"):
    gen.list_source(str(tmp_path / "a"), "imagenet_t")
  np.savez(tmp_path / "bad.npz", images=np.zeros((2, 32, 32), np.uint8), labels=np.zeros(2))
  with pytest.raises(gen.SourceError, match="uint8 \\(N, H, W, 3\\)"):
    gen.list_source(str(tmp_path / "bad.npz"), "cifar10_t")
  (tmp_path / "c").mkdir()
  (tmp_path / "c" / "test_batch.bin").write_bytes(b"\x00" * 3074)
  with pytest.raises(gen.SourceError, match="not a multiple of 3073"):
    gen.list_source(str(tmp_path / "c"), "cifar10_t")
  with pytest.raises(gen.SourceError, match="does not exist"):
    gen.list_source(str(tmp_path / "nope"), "imagenet_t")
  (tmp_path / "e").mkdir()
  with pytest.raises(gen.SourceError, match="no images found"):
    gen.list_source(str(tmp_path / "e"), "cifar10_t")
  (tmp_path / "f" / "cat").mkdir(parents=True)
  for ext in ("png", "jpeg"):
    Image.fromarray(fx.smooth(40, 40, 0)).save(tmp_path / "f" / "cat" / f"x.{ext}")
  with pytest.raises(gen.SourceError, match="would write the same output file"):
    gen.generate(str(tmp_path / "f"), str(tmp_path / "g"), "cifar10_t", log=None)


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


def test_command_line(tmp_path):
  fx.cifar_bin(str(tmp_path / "cifar-10-batches-bin" / "test_batch.bin"), n=3)
  cmd = [sys.executable, "-m", "jaxbench.typographic", f"--src={tmp_path}",
         f"--dst={tmp_path / 'out'}", "--kind=cifar10_t", "--seed=5", "--variant=roz",
         "--variant=typo(count=2, color=(255, 0, 0))"]
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert r.returncode == 0, r.stderr
  out = r.stdout + r.stderr
  assert "3/3 source images" in out and "wrote 6 images" in out
  header = json.loads((tmp_path / "out" / gen.HEADER).read_text())
  assert header["seed"] == 5 and sorted(header["variants"]) == ["roz", "typo(color=(255,0,0),count=2)"]
  r = subprocess.run(cmd[:-3] + ["--seed=6"], capture_output=True, text=True, cwd=ROOT,
                     timeout=120)
  assert r.returncode == 1 and "generated with seed=5" in r.stderr


# --- RoZ's published record ------------------------------------------------------------


def test_roz_record_reproduces_its_labels(imagenet_src, tmp_path):
  import pickle
  items = gen.list_source(imagenet_src["root"], "imagenet_t")
  names = sorted(it.id.split("/")[-1] for it in items if it.id.split("/")[-1].startswith("ILSVRC"))
  # RoZ's imgNet_record.pickle layout: {val file name: written class}; one image left out
  # (RoZ skipped it); eligible classes whose words fit the 260 px wide sources.
  vocab = typo.vocabulary("imagenet_t")
  fit = [c for c in vocab.eligible
         if typo.text_size(vocab.words[c], "hershey_duplex", 0.8, 2)[0] < 200]
  record = {n: [8, fit[10], fit[150], fit[-1], 8][i] for i, n in enumerate(names[:5])}
  path = tmp_path / "imgNet_record.pickle"
  with open(path, "wb") as f:
    pickle.dump(record, f, protocol=2)
  assert gen.read_roz_record(str(path), "imagenet_t") == {n: (None, c) for n, c in record.items()}
  header = gen.generate(imagenet_src["root"], str(tmp_path / "out"), "imagenet_t", seed=0,
                        variants=("roz", "true_class"), roz_record=str(path), log=None)
  assert header["roz_record"]["entries"] == 5 and len(header["roz_record"]["sha256"]) == 64
  lines = [json.loads(l) for l in (tmp_path / "out" / gen.MANIFEST).read_text().splitlines()]
  words = typo.vocabulary("imagenet_t").words
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
  # CIFAR-10: [(true, written)] in test-set order; a wrong true class is refused.
  src = str(tmp_path / "c" / "test_batch.bin")
  _, labels = fx.cifar_bin(src, n=5)
  rec = [(int(t), (int(t) + 3) % 10) for t in labels]
  cpath = tmp_path / "cifar10_record.pickle"
  cpath.write_bytes(pickle.dumps(rec))
  gen.generate(os.path.dirname(src), str(tmp_path / "cout"), "cifar10_t",
               variants=("on_image",), roz_record=str(cpath), log=None)
  got = [json.loads(l) for l in (tmp_path / "cout" / gen.MANIFEST).read_text().splitlines()]
  assert [l["written_label"] for l in got] == [w for _, w in rec]
  cpath.write_bytes(pickle.dumps([(int(t) + 1, 0) for t in labels]))
  with pytest.raises(gen.SourceError, match="RoZ's record says true class"):
    gen.generate(os.path.dirname(src), str(tmp_path / "cout2"), "cifar10_t",
                 variants=("on_image",), roz_record=str(cpath), log=None)


class _Evil:
  marker = ""

  def __reduce__(self):
    return (os.mkdir, (self.marker,))


def test_roz_record_reader_refuses_anything_but_plain_types(tmp_path):
  import pickle
  evil = _Evil()
  evil.marker = str(tmp_path / "pwned")
  path = tmp_path / "imgNet_record.pickle"
  path.write_bytes(pickle.dumps({"ILSVRC2012_val_00000001.JPEG": evil}))
  with pytest.raises(typo.TypographicError, match=r"refuses to load (posix|os)\.mkdir"):
    gen.read_roz_record(str(path), "imagenet_t")
  assert not os.path.exists(evil.marker)       # nothing ran
  for bad, why in (({"a.JPEG": 1.5}, "is a float"), ({"a.JPEG": {1, 2}}, "is a set"),
                   ({"a.JPEG": 1000}, "class index 0..999"), ([(1, 2)], "image file name")):
    path.write_bytes(pickle.dumps(bad, protocol=4))
    with pytest.raises(typo.TypographicError, match=why):
      gen.read_roz_record(str(path), "imagenet_t")
  path.write_bytes(b"not a pickle")
  with pytest.raises(typo.TypographicError, match="not a readable pickle"):
    gen.read_roz_record(str(path), "imagenet_t")
