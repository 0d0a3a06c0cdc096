"""The demo's image set: split by id, upscaling, digits / digits_t evaluation sets."""
import zlib

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from jaxbench import registry
from jaxbench.data import catalog
from jaxbench.demo import digits, sources


def _splits():
  return digits.indices("train"), digits.indices("test")


def test_splits_partition_the_1797_digits():
  train_idx, test_idx = _splits()
  assert len(train_idx) + len(test_idx) == 1797
  assert not set(train_idx) & set(test_idx)


def test_split_is_fixed_by_id():
  _, test_idx = _splits()
  # The rule, recomputed by hand from the ids.
  want = [i for i in range(1797) if zlib.crc32(f"digits/{i:04d}".encode()) % 100 < 30]
  assert list(test_idx) == want
  assert 0.25 < len(test_idx) / 1797 < 0.35


def test_split_covers_every_digit():
  train_idx, test_idx = _splits()
  # Every class is in both splits.
  y = load_digits().target
  assert set(y[test_idx]) == set(y[train_idx]) == set(range(10))


def test_images_are_the_sklearn_digits_upscaled():
  d = load_digits()
  x, y, ids = digits.load("test", 32)
  i = int(ids[5].split("/")[1])
  assert y[5] == d.target[i]
  ref = Image.fromarray(np.uint8(np.round(d.images[i] * 255 / 16)), "L").resize(
      (32, 32), Image.BICUBIC)
  assert x.dtype == np.uint8 and x.shape == (len(ids), 32, 32, 3)
  np.testing.assert_array_equal(x[5, ..., 0], np.asarray(ref))
  np.testing.assert_array_equal(x[5, ..., 0], x[5, ..., 2])
  x8, _, _ = digits.load("test", 8)
  np.testing.assert_array_equal(x8[5, ..., 0], np.uint8(np.round(d.images[i] * 255 / 16)))


def test_digits_evalset_records():
  es = catalog.get("digits")
  assert es.name == "digits" and es.num_classes == 10
  assert es.model_label_space == "digits10" and es.class_names[7] == "seven"
  rec = es.source[0]
  assert set(rec) == {"id", "label", "image"} and rec["id"].startswith("digits/")
  assert len(catalog.get("digits(split='train')")) == 1797 - len(es)
  assert catalog.get("digits(size=16)").source[0]["image"].shape == (16, 16, 3)


def test_digits_t_writes_another_digit_deterministically():
  es = catalog.get("digits_t")
  clean = catalog.get("digits")
  n = len(clean)
  assert len(es) == 2 * n
  assert "success_rate" in es.sequence_metrics and "top1/word" in es.sequence_metrics
  changed = 0
  for k in (0, 1, n, n + 1):
    rec = es.source[k]
    variant, cid = rec["id"].split("/", 1)
    base = clean.source[k % n]
    assert cid == base["id"] and rec["label"] == base["label"]
    assert rec["written_label"] != rec["label"]
    assert rec["written_label"] == sources.written_label(0, cid, rec["label"])
    form = "word" if variant == "word" else "numeral"
    assert rec["typographic_text"] == digits.text_of(rec["written_label"], form)
    changed += int((rec["image"] != base["image"]).any())
  assert changed == 4
  # Written labels are uniform over the other nine classes (roughly).
  w = np.array([es.source[k]["written_label"] for k in range(n)])
  y = np.array([es.source[k]["label"] for k in range(n)])
  assert (w != y).all() and len(set(((w - y) % 10).tolist())) == 9
  # Another seed writes other digits; the same seed the same pixels.
  again = sources.digits_t(seed=0)
  np.testing.assert_array_equal(again.source[3]["image"], es.source[3]["image"])
  other = sources.digits_t(seed=1, variants=("word",))
  assert any(other.source[k]["written_label"] != es.source[k]["written_label"]
             for k in range(20))


def test_digits_t_metrics_by_hand():
  es = sources.digits_t(variants=("word", "numeral"))
  ids = [es.source[k]["id"] for k in (0, 1, len(es) - 1)]
  recs = [es.source[k] for k in (0, 1, len(es) - 1)]
  # Predict: the written class, the true class, the written class.
  preds = np.array([recs[0]["written_label"], recs[1]["label"], recs[2]["written_label"]])
  m = es.sequence_metric_fn(ids, preds, None)
  assert m["success_rate"] == pytest.approx(2 / 3)
  assert m["success_rate/word"] == pytest.approx(1 / 2)
  assert m["success_rate/numeral"] == pytest.approx(1.0)
  assert m["top1/word"] == pytest.approx(1 / 2) and m["top1/numeral"] == 0.0


@pytest.mark.parametrize("spec, match", [
    ("digits(split='val')", "split"),
    ("digits(size=4)", "size"),
    ("digits_t(variants=('word', 'bold'))", "variants"),
    ("digits_t(seed=0.5)", "seed"),
])
def test_bad_input_is_named(spec, match):
  with pytest.raises((ValueError, registry.SpecError), match=match):
    catalog.get(spec)
