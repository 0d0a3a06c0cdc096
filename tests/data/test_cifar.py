"""CIFAR-10 (python pickle and binary batches), CIFAR-10.1 and CIFAR-10-C severity blocks."""
import os
import pickle

import numpy as np
import pytest

from jaxbench.data import catalog, cifar, sources

from tests.data import natural_fixtures as fx


def _test_images(n=6):
  rng = np.random.default_rng(1)
  return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.array([3, 1, 4, 1, 5, 9])[:n]


def _write_python_batch(path, images, labels):
  """The official format: a pickled dict with bytes keys, CHW rows (Python 2 layout)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  batch = {b"batch_label": b"testing batch 1 of 1", b"labels": labels.tolist(),
           b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072),
           b"filenames": [f"img_{i}.png".encode() for i in range(len(images))]}
  with open(path, "wb") as f:
    pickle.dump(batch, f, protocol=2)


@pytest.fixture(scope="module")
def cifar_batches(tmp_path_factory):
  """(images, {"python": eval set, "binary": eval set}) of the same six test images."""
  tmp_path = tmp_path_factory.mktemp("cifar")
  images, labels = _test_images()
  _write_python_batch(str(tmp_path / "cifar-10-batches-py" / "test_batch"), images, labels)
  os.makedirs(tmp_path / "bin")
  rows = np.concatenate([labels[:, None].astype(np.uint8),
                         images.transpose(0, 3, 1, 2).reshape(len(images), 3072)], axis=1)
  rows.tofile(tmp_path / "bin" / "test_batch.bin")
  return images, {"python": catalog.get("cifar10", data_root=str(tmp_path)),
                  "binary": cifar.cifar10(root=str(tmp_path / "bin"))}


def test_cifar10_is_named_with_its_classes(cifar_batches):
  py = cifar_batches[1]["python"]
  assert py.name == "cifar10" and py.num_classes == 10 and py.class_names[0] == "airplane"


@pytest.mark.parametrize("layout", ["python", "binary"])
def test_cifar10_batches_give_the_written_images(cifar_batches, layout):
  images, sets = cifar_batches
  es = sets[layout]
  assert len(es.source) == 6
  rec = es.source[4]
  assert rec["id"] == "test_00004" and rec["label"] == 5
  np.testing.assert_array_equal(rec["image"], images[4])


def test_cifar10_pickle_cannot_run_code(tmp_path):
  class Evil:
    def __reduce__(self):
      return (os.system, ("echo pwned",))
  os.makedirs(tmp_path / "p")
  with open(tmp_path / "p" / "test_batch", "wb") as f:
    pickle.dump({b"data": Evil(), b"labels": [0]}, f, protocol=2)
  with pytest.raises(sources.LayoutError, match="refusing to unpickle global"):
    cifar.cifar10(root=str(tmp_path / "p"))


def test_cifar10_1_versions(tmp_path):
  images, labels = _test_images(4)
  root = tmp_path / "CIFAR-10.1" / "datasets"
  os.makedirs(root)
  np.save(root / "cifar10.1_v6_data.npy", images)
  np.save(root / "cifar10.1_v6_labels.npy", labels)
  es = catalog.get("cifar10_1(version='v6')", data_root=str(tmp_path))
  assert es.name == "cifar10_1(version='v6')" and len(es.source) == 4
  assert es.source[2]["id"] == "0002" and es.source[2]["label"] == 4
  with pytest.raises(sources.LayoutError, match="cifar10.1_v4_data.npy"):
    catalog.get("cifar10_1(version='v4')", data_root=str(tmp_path))
  with pytest.raises(ValueError, match="'v4' or 'v6'"):
    cifar.cifar10_1(version="v7", root=str(root))


def test_cifar10_c_severity_blocks(tmp_path):
  root = tmp_path / "CIFAR-10-C"
  os.makedirs(root)
  block_labels = np.array([3, 1, 4, 1])
  # Image (severity s, index i) is a flat grey of value 10*s + i.
  images = np.zeros((20, 32, 32, 3), np.uint8)
  for s in range(1, 6):
    for i in range(4):
      images[(s - 1) * 4 + i] = 10 * s + i
  np.save(root / "fog.npy", images)
  np.save(root / "labels.npy", np.tile(block_labels, 5).astype(np.uint8))
  es = catalog.get("cifar10_c(corruption='fog', severity=3)", data_root=str(tmp_path))
  assert es.name == "cifar10_c(corruption='fog', severity=3)"
  recs = [es.source[i] for i in range(len(es.source))]
  assert [r["id"] for r in recs] == ["test_00000", "test_00001", "test_00002", "test_00003"]
  assert [int(r["image"][0, 0, 0]) for r in recs] == [30, 31, 32, 33]
  assert [r["label"] for r in recs] == [3, 1, 4, 1]

  # A model that is right below grey level 30 (severities 1 and 2) and wrong above.
  class GreyModel:
    def __call__(self, imgs):
      out = np.zeros((len(imgs), 10), np.float32)
      for n, img in enumerate(imgs):
        v = int(img[0, 0, 0])
        label = block_labels[v % 10]
        out[n, label if v < 30 else (label + 1) % 10] = 1.0
      return out

  accs = [fx.evaluate(cifar.cifar10_c("fog", s, root=str(root)), GreyModel())[0]["top1"]
          for s in range(1, 6)]
  assert accs == [1.0, 1.0, 0.0, 0.0, 0.0]
  with pytest.raises(ValueError, match="severity must be 1..5"):
    cifar.cifar10_c("fog", 6, root=str(root))
  with pytest.raises(ValueError, match="corruption must be one of"):
    cifar.cifar10_c("frosted_glass_blur", 1, root=str(root))
  with pytest.raises(sources.LayoutError, match="snow.npy"):
    cifar.cifar10_c("snow", 1, root=str(root))
  np.save(root / "labels.npy", np.arange(20) % 10)
  with pytest.raises(sources.LayoutError, match="not one label block repeated"):
    cifar.cifar10_c("fog", 1, root=str(root))


def test_cifar10_c_tfds_config_names():
  import tensorflow_datasets as tfds
  seen = []

  def fake(self, split, decoders=None, **kw):
    seen.append(self.builder_config.name)
    return [{"image": fx.image_bytes(0), "label": 2}]

  with tfds.testing.mock_data(as_data_source_fn=fake):
    es = cifar.cifar10_c("glass_blur", 2, tfds_dir="/nonexistent")
    cifar.cifar10_c("elastic_transform", 5, tfds_dir="/nonexistent")
  assert seen == ["frosted_glass_blur_2", "elastic_5"]
  assert es.source[0]["id"] == "0" and es.source[0]["label"] == 2
