"""k-shot splits: counts, seeds, order independence, nesting, uniformity, records, errors."""
import numpy as np
import pytest
from PIL import Image

from jaxbench.data import catalog, kshot, sources


class Records:
  """A source without a labels array: the split must read the records."""

  def __init__(self, ids, labels):
    self.ids_, self.labels_ = list(ids), list(labels)

  def __len__(self):
    return len(self.ids_)

  def __getitem__(self, i):
    return {"id": self.ids_[i], "label": self.labels_[i], "image": np.zeros((2, 2, 3), np.uint8)}

  def __repr__(self):       # stable: the label cache is keyed by it
    return f"Records(n={len(self)})"


def _source(n_per_class=(5, 7, 3), seed=0):
  labels = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
  ids = [f"img{i:03d}.jpg" for i in range(len(labels))]
  order = np.random.default_rng(seed).permutation(len(labels))
  return Records([ids[i] for i in order], labels[order].tolist())


def test_draw_takes_k_per_class_in_class_order():
  split = kshot.draw(_source(), 3, seed=0)
  assert len(split) == 9 and split.num_classes == 3 and split.classes == (0, 1, 2)
  np.testing.assert_array_equal(split.labels, np.repeat([0, 1, 2], 3))


def test_split_indices_point_at_its_records():
  src = _source()
  split = kshot.draw(src, 3, seed=0)
  for i, idx in enumerate(split.indices):
    rec = src[int(idx)]
    assert rec["id"] == split.ids[i] and rec["label"] == split.labels[i]


def test_subset_source_reads_the_split_in_order():
  src = _source()
  split = kshot.draw(src, 3, seed=0)
  sub = kshot.SubsetSource(src, split)
  assert [sub[i]["id"] for i in range(len(sub))] == list(split.ids)


def test_unlabelled_records_are_never_drawn():
  # Unlabelled records (-1) are never drawn.
  src = _source()
  src.labels_[0] = -1
  assert src.ids_[0] not in kshot.draw(src, 2, seed=0).ids


def test_a_class_subset_draws_only_those_classes():
  assert set(kshot.draw(_source(), 2, seed=0, classes=[2]).labels) == {2}


def test_draw_ignores_the_order_of_the_records():
  a = kshot.draw(_source(seed=0), 3, seed=5)
  b = kshot.draw(_source(seed=1), 3, seed=5)           # the same records, shuffled
  assert a.ids == b.ids


def test_another_seed_draws_another_split():
  assert kshot.draw(_source(seed=0), 3, seed=6).ids != kshot.draw(_source(seed=0), 3, seed=5).ids


def test_smaller_splits_are_nested_in_larger_ones():
  a = kshot.draw(_source(seed=0), 3, seed=5)
  small = kshot.draw(_source(seed=0), 1, seed=5)
  big = kshot.draw(_source(seed=0), 2, seed=5)
  assert set(small.ids) <= set(big.ids) <= set(a.ids)    # 1-shot inside 2-shot inside 3-shot


def test_draw_is_uniform_over_a_class():
  """Over many seeds every example of a class is drawn with probability k / n."""
  src = _source((10, 4))
  counts = {}
  seeds = 2000
  for s in range(seeds):
    for i in kshot.draw(src, 3, seed=s, classes=[0]).ids:
      counts[i] = counts.get(i, 0) + 1
  freq = np.asarray(list(counts.values())) / seeds
  assert len(counts) == 10
  # Binomial(2000, 0.3): std 0.0102; 5 sigma.
  np.testing.assert_allclose(freq, 0.3, atol=0.051)


def _saved(tmp_path):
  """A 2-shot split of the toy source, saved and loaded back: (split, loaded)."""
  split = kshot.draw(_source(seed=0), 2, seed=3, name="toy")
  path = str(tmp_path / "split.json")
  split.save(path)
  return split, kshot.KShotSplit.load(path)


def test_saved_split_loads_back(tmp_path):
  split, back = _saved(tmp_path)
  assert back.ids == split.ids and back.k == 2 and back.seed == 3 and back.source == "toy"
  np.testing.assert_array_equal(back.indices, split.indices)


def test_subset_source_refuses_a_changed_source(tmp_path):
  _, back = _saved(tmp_path)
  with pytest.raises(ValueError, match="the source changed"):
    kshot.SubsetSource(_source(seed=9), back)[0]


def test_resolve_finds_the_ids_after_reordering(tmp_path):
  split, back = _saved(tmp_path)
  moved = _source(seed=9)
  fixed = kshot.resolve(moved, back)
  assert [moved[int(i)]["id"] for i in fixed.indices] == list(split.ids)


def test_resolve_refuses_missing_ids(tmp_path):
  split, back = _saved(tmp_path)
  moved = _source(seed=9)
  keep = [i for i, x in enumerate(moved.ids_) if x != split.ids[0]]
  gone = Records([moved.ids_[i] for i in keep], [moved.labels_[i] for i in keep])
  with pytest.raises(ValueError, match=r"1 example id\(s\) of the k-shot split are not in"):
    kshot.resolve(gone, back)


def test_resolve_refuses_relabelled_records(tmp_path):
  _, back = _saved(tmp_path)
  moved = _source(seed=9)
  relabelled = Records(moved.ids_, [(x + 1) % 3 for x in moved.labels_])
  with pytest.raises(ValueError, match="has label"):
    kshot.resolve(relabelled, back)


def test_draw_from_an_image_folder(tmp_path):
  root = tmp_path / "train"
  for name, n in (("cat", 3), ("dog", 4)):
    (root / name).mkdir(parents=True)
    for i in range(n):
      Image.new("RGB", (4, 4), (i, 0, 0)).save(root / name / f"{i}.png")
  evalset = catalog.get(f"image_folder(root='{root}')")
  split = kshot.draw(evalset.source, 2, seed=0, num_classes=evalset.num_classes)
  assert all(i.startswith(("cat/", "dog/")) for i in split.ids)
  np.testing.assert_array_equal(split.labels, [0, 0, 1, 1])
  assert [evalset.source[int(i)]["label"] for i in split.indices] == [0, 0, 1, 1]


def test_label_cache_answers_without_reading_the_records(tmp_path):
  # Sources read record by record can cache (id, label) pairs.
  src = _source()
  kshot.draw(src, 2, seed=0, cache_dir=str(tmp_path / "cache"))
  src.__class__ = type("Unreadable", (Records,), {"__getitem__": lambda s, i: 1 / 0})
  # The cache answers without touching the records.
  assert len(kshot.draw(src, 2, seed=0, cache_dir=str(tmp_path / "cache"))) == 6


def test_bad_input_is_named():
  src = _source((5, 2, 3))
  with pytest.raises(ValueError, match=r"k=3 examples per class .* class 1 \('dog'\) has 2"):
    kshot.draw(src, 3, seed=0, class_names=["cat", "dog", "emu"])
  with pytest.raises(ValueError, match="class 3 has 0"):
    kshot.draw(src, 1, seed=0, num_classes=4)
  with pytest.raises(ValueError, match="k must be a positive integer"):
    kshot.draw(src, 0)
  with pytest.raises(ValueError, match=r"labels \[5\] outside \[0, 3\)"):
    kshot.draw(Records(["a", "b"], [0, 5]), 1, num_classes=3)
  with pytest.raises(ValueError, match="repeats example ids"):
    kshot.draw(Records(["a", "a"], [0, 0]), 1)
  with pytest.raises(ValueError, match="needs 'id' and 'label'"):
    kshot.draw([{"id": "x"}], 1)


def test_array_source_draws_from_its_labels():
  arr = sources.ArraySource(np.zeros((4, 2, 2, 3), np.uint8), np.array([0, 0, 1, 1]))
  assert len(kshot.draw(arr, 2)) == 4
