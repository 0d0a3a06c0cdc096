"""CIFAR-10 test, CIFAR-10.1 (v4, v6) and CIFAR-10-C as EvalSets.

Official files (datasets.md §2.12-2.14):
  * CIFAR-10: ``cifar-10-batches-py/test_batch`` (a Python 2 pickle of a dict
    with b'data' (10000, 3072) uint8 CHW rows and b'labels') or
    ``cifar-10-batches-bin/test_batch.bin`` (10000 x [label byte + 3072 bytes]).
    The pickle is read by a restricted unpickler that only rebuilds NumPy arrays.
  * CIFAR-10.1: ``cifar10.1_<v>_data.npy`` (N, 32, 32, 3) uint8 and
    ``cifar10.1_<v>_labels.npy``.
  * CIFAR-10-C: ``CIFAR-10-C/<corruption>.npy`` (50000, 32, 32, 3): severities
    1..5 stacked in blocks of 10,000, each in CIFAR-10 test order, and
    ``labels.npy``.
TFDS builders: ``cifar10``, ``cifar10_1/v4|v6``, ``cifar10_corrupted/<name>_<s>``.
Ids are 'test_<5 digits>' (TFDS's CIFAR-10 ids) for CIFAR-10 and CIFAR-10-C,
so a corrupted image pairs with its clean original.
"""
from __future__ import annotations

import io
import os
import pickle
import numpy as np

from jaxbench.data import sources
from jaxbench.data.evalset import EvalSet

LayoutError = sources.LayoutError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

CIFAR10_C_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression", "speckle_noise", "gaussian_blur",
    "spatter", "saturate")

# TFDS cifar10_corrupted config names that differ from the file names.
_TFDS_C_NAMES = {"glass_blur": "frosted_glass_blur", "elastic_transform": "elastic"}

CIFAR10_EXPECTED = ("cifar-10-batches-py/test_batch (python pickle) or "
                    "cifar-10-batches-bin/test_batch.bin")


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles plain containers and NumPy arrays, nothing else (no code runs)."""

  _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
              ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}")
    return super().find_class(module, name)


def _read_python_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
  with open(path, "rb") as f:
    try:
      batch = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except Exception as e:
      raise LayoutError(f"{path!r} is not a CIFAR-10 python batch: {e}") from e
  batch = {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}
  if "data" not in batch or "labels" not in batch:
    raise LayoutError(f"{path!r}: expected keys 'data' and 'labels', got {sorted(batch)}")
  data = np.asarray(batch["data"], np.uint8)
  if data.ndim != 2 or data.shape[1] != 3072:
    raise LayoutError(f"{path!r}: 'data' must be (N, 3072), got {data.shape}")
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW rows -> HWC
  return np.ascontiguousarray(images), np.asarray(batch["labels"], np.int32)


def read_binary_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 (N, 32, 32, 3), labels int32 (N,)) of a CIFAR-10 binary batch file
  (records of 1 label byte + 3072 CHW pixel bytes)."""
  raw = np.fromfile(path, np.uint8)
  if raw.size % 3073:
    raise LayoutError(f"{path!r}: size {raw.size} is not a multiple of 3073 (label byte + "
                      "3072 pixel bytes)")
  rows = raw.reshape(-1, 3073)
  images = rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), rows[:, 0].astype(np.int32)


def read_cifar10_test(root: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 (N, 32, 32, 3), labels int32 (N,)) of the CIFAR-10 test batch."""
  for name, reader in (("test_batch", _read_python_batch), ("test_batch.bin", read_binary_batch)):
    path = os.path.join(root, name)
    if os.path.isfile(path):
      images, labels = reader(path)
      bad = labels[(labels < 0) | (labels >= 10)]
      if bad.size:
        raise sources.LabelError(f"{path!r}: labels {sorted(set(bad.tolist()))[:5]} outside 0..9")
      return images, labels
  raise LayoutError(f"cifar10: no test_batch or test_batch.bin in {root!r}; expected "
                    f"{CIFAR10_EXPECTED}")


def _evalset(src, **meta) -> EvalSet:
  return EvalSet(name="", source=src, num_classes=10, class_names=CIFAR10_CLASSES,
                 model_label_space="cifar10",
                 metadata={"source": repr(src), "n": len(src), "primary_metrics": ("top1",),
                           **meta})


def _check_labels(labels: np.ndarray, what: str):
  bad = labels[(labels < 0) | (labels >= 10)]
  if bad.size:
    raise sources.LabelError(f"{what}: labels {sorted(set(bad.tolist()))[:5]} outside 0..9")


def cifar10(root=None, tfds_dir=None, data_root=None) -> EvalSet:
  """CIFAR-10 test set (10,000 images, 10 classes)."""
  if root is None and tfds_dir:
    return _evalset(sources.TfdsSource("cifar10", "test", tfds_dir))
  root = sources.locate("cifar10", root, data_root,
                 ("cifar-10-batches-py", "cifar-10-batches-bin", "cifar10/cifar-10-batches-py"),
                 CIFAR10_EXPECTED, "cifar10")
  images, labels = read_cifar10_test(root)
  return _evalset(sources.ArraySource(images, labels, id_format="test_{:05d}"), root=root)


def read_cifar10_train(root: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 (50000, 32, 32, 3), labels int32) of the five CIFAR-10 training batches."""
  parts = []
  for i in range(1, 6):
    for name, reader in ((f"data_batch_{i}", _read_python_batch),
                         (f"data_batch_{i}.bin", read_binary_batch)):
      path = os.path.join(root, name)
      if os.path.isfile(path):
        images, labels = reader(path)
        _check_labels(labels, repr(path))
        parts.append((images, labels))
        break
    else:
      raise LayoutError(f"cifar10_train: no data_batch_{i} or data_batch_{i}.bin in {root!r}; "
                        f"expected {CIFAR10_EXPECTED}")
  return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def cifar10_train(root=None, tfds_dir=None, data_root=None) -> EvalSet:
  """CIFAR-10 training set (50,000 images; ids 'train_00000'...): for probes and heads."""
  if root is None and tfds_dir:
    return _evalset(sources.TfdsSource("cifar10", "train", tfds_dir), split="train")
  root = sources.locate("cifar10", root, data_root,
                 ("cifar-10-batches-py", "cifar-10-batches-bin", "cifar10/cifar-10-batches-py"),
                 CIFAR10_EXPECTED, "cifar10")
  images, labels = read_cifar10_train(root)
  return _evalset(sources.ArraySource(images, labels, id_format="train_{:05d}"), root=root,
                  split="train")


def cifar10_1(version="v6", root=None, tfds_dir=None, data_root=None) -> EvalSet:
  """CIFAR-10.1 (v6: 2,000 class-balanced images, recommended; v4: 2,021)."""
  if version not in ("v4", "v6"):
    raise ValueError(f"cifar10_1: version must be 'v4' or 'v6' (released files), got "
                     f"{version!r}")
  if root is None and tfds_dir:
    return _evalset(sources.TfdsSource(f"cifar10_1/{version}", "test", tfds_dir),
                    version=version)
  expected = f"cifar10.1_{version}_data.npy and cifar10.1_{version}_labels.npy"
  root = sources.locate("cifar10_1", root, data_root,
                 ("CIFAR-10.1/datasets", "CIFAR-10.1", "cifar10.1", "cifar10_1"), expected,
                 f"cifar10_1/{version}")
  data = os.path.join(root, f"cifar10.1_{version}_data.npy")
  labels = os.path.join(root, f"cifar10.1_{version}_labels.npy")
  for path in (data, labels):
    if not os.path.isfile(path):
      raise LayoutError(f"cifar10_1: {path!r} not found; expected {expected} in {root!r}")
  src = sources.ArraySource(data, labels, id_format="{:04d}")
  _check_labels(src.labels, labels)
  return _evalset(src, root=root, version=version)


def cifar10_c(corruption=None, severity=None, root=None, tfds_dir=None,
              data_root=None) -> EvalSet:
  """One CIFAR-10-C corruption at one severity (10,000 images).

  Args:
    corruption: one of :data:`CIFAR10_C_CORRUPTIONS` (file names).
    severity: 1..5; selects rows [(s-1)*B, s*B) of the file, B = rows / 5
      (10,000 in the release).
  """
  if corruption not in CIFAR10_C_CORRUPTIONS:
    raise ValueError(f"cifar10_c: corruption must be one of {list(CIFAR10_C_CORRUPTIONS)}, "
                     f"got {corruption!r}")
  if severity not in (1, 2, 3, 4, 5):
    raise ValueError(f"cifar10_c: severity must be 1..5, got {severity!r}")
  if root is None and tfds_dir:
    name = f"cifar10_corrupted/{_TFDS_C_NAMES.get(corruption, corruption)}_{severity}"
    # TFDS stores no id: records cannot be paired with CIFAR-10 test indices.
    return _evalset(sources.TfdsSource(name, "test", tfds_dir), corruption=corruption,
                    severity=severity)
  expected = "CIFAR-10-C/<corruption>.npy and CIFAR-10-C/labels.npy"
  root = sources.locate("cifar10_c", root, data_root, ("CIFAR-10-C", "cifar10_c", "cifar-10-c"),
                 expected, "cifar10_corrupted")
  data = os.path.join(root, f"{corruption}.npy")
  labels_path = os.path.join(root, "labels.npy")
  for path in (data, labels_path):
    if not os.path.isfile(path):
      raise LayoutError(f"cifar10_c: {path!r} not found; expected {expected}")
  labels = np.load(labels_path)
  rows = len(labels)
  if rows % 5:
    raise LayoutError(f"cifar10_c: {labels_path!r} has {rows} rows, not 5 severity blocks")
  block = rows // 5
  blocks = labels.reshape(5, block)
  if not (blocks == blocks[:1]).all():
    raise LayoutError(f"cifar10_c: {labels_path!r} is not one label block repeated for the 5 "
                      "severities")
  _check_labels(labels.astype(np.int64), labels_path)
  src = sources.ArraySource(data, labels, start=(severity - 1) * block, stop=severity * block,
                            id_format="test_{:05d}")
  return _evalset(src, root=root, corruption=corruption, severity=severity, block=block)


__all__ = ["cifar10", "cifar10_1", "cifar10_c", "read_cifar10_test", "CIFAR10_CLASSES",
           "CIFAR10_C_CORRUPTIONS"]
