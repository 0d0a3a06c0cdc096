"""The examples a typographic set is generated from (``--src``).

Sources:
  * an image folder ``<class>/<image>``; the class folder is an ImageNet wnid
    or an integer index (imagenet_t), or a CIFAR-10 class name or index
    (cifar10_t); example ids are the relative paths;
  * CIFAR-10's binary test batch (``test_batch.bin`` or a folder holding it,
    e.g. ``cifar-10-batches-bin``); ids ``test_%05d`` as TFDS;
  * an ``.npz`` with ``images`` (N, H, W, 3) uint8 and ``labels`` (N,); ids
    ``%05d``.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Optional

import numpy as np

from jaxbench.data import cifar, sources
from jaxbench.typographic.codec import decode_rgb
from jaxbench.typographic.errors import TypographicError
from jaxbench.typographic.vocabulary import Vocabulary, vocabulary



@dataclasses.dataclass(frozen=True)
class Item:
  """One source example: id, true label, class folder, and where to read it."""
  id: str
  label: int
  folder: str
  path: str = ""     # file sources
  index: int = -1    # array sources


class SourceError(TypographicError):
  """A source that cannot be read as the requested kind."""


def _label_of_folder(folder: str, vocab: Vocabulary, src: str) -> int:
  if vocab.wnids and folder in vocab.wnids:
    return vocab.wnids.index(folder)
  if folder in vocab.words:
    return vocab.words.index(folder)
  if folder.isdigit() and int(folder) < vocab.num_classes:
    return int(folder)
  expected = ("an ImageNet wnid (n01440764) or an index 0..999" if vocab.kind == "imagenet_t"
              else f"a CIFAR-10 class name {list(vocab.words)} or an index 0..9")
  raise SourceError(f"{src}: class folder {folder!r} is not {expected}")


def _cifar_bin_path(src: str) -> Optional[str]:
  if os.path.isfile(src) and src.endswith(".bin"):
    return src
  for cand in ("test_batch.bin", os.path.join("cifar-10-batches-bin", "test_batch.bin")):
    p = os.path.join(src, cand)
    if os.path.isfile(p):
      return p
  return None


def list_source(src: str, kind: str) -> list[Item]:
  """Lists a source's examples in a stable (sorted) order.

  Raises:
    SourceError: naming the path and what was expected.
  """
  vocab = vocabulary(kind)
  src = os.path.abspath(os.path.expanduser(src))
  if not os.path.exists(src):
    raise SourceError(f"--src {src} does not exist")
  if src.endswith(".npz"):
    with np.load(src) as d:
      if "images" not in d or "labels" not in d:
        raise SourceError(f"{src}: expected arrays 'images' (N,H,W,3) uint8 and 'labels' (N,), "
                          f"found {sorted(d.keys())}")
      images, labels = d["images"], d["labels"]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
      raise SourceError(f"{src}: 'images' must be uint8 (N, H, W, 3) RGB, got "
                        f"{images.dtype} {images.shape}")
    if labels.shape != images.shape[:1]:
      raise SourceError(f"{src}: 'labels' shape {labels.shape}, expected ({images.shape[0]},)")
    return [Item(f"{i:05d}", _check_label(int(l), vocab, src), _folder(vocab, int(l)), index=i)
            for i, l in enumerate(labels)]
  if kind == "cifar10_t" and (path := _cifar_bin_path(src)):
    try:
      _, labels = _cifar_binary(path)
    except cifar.LayoutError as e:
      raise SourceError(str(e)) from e
    return [Item(f"test_{i:05d}", _check_label(int(l), vocab, path), _folder(vocab, int(l)),
                 path=path, index=i) for i, l in enumerate(labels)]
  if not os.path.isdir(src):
    raise SourceError(f"--src {src}: expected an image folder <class>/<image>, a CIFAR-10 "
                      "test_batch.bin or an .npz with images/labels")
  items = []
  for folder in sorted(os.listdir(src)):
    full = os.path.join(src, folder)
    if not os.path.isdir(full):
      continue
    label = _label_of_folder(folder, vocab, src)
    for name in sorted(os.listdir(full)):
      if sources.is_image_file(name):
        items.append(Item(f"{folder}/{name}", label, folder, path=os.path.join(full, name)))
  if not items:
    raise SourceError(f"--src {src}: no images found in <class>/<image> folders "
                      f"(extensions {sources.IMAGE_EXTENSIONS})")
  return items


def _check_label(label: int, vocab: Vocabulary, src: str) -> int:
  if not 0 <= label < vocab.num_classes:
    raise SourceError(f"{src}: label {label} outside 0..{vocab.num_classes - 1}")
  return label


def _folder(vocab: Vocabulary, label: int) -> str:
  return vocab.wnids[label] if vocab.wnids else vocab.words[label]


@functools.lru_cache(maxsize=4)
def _npz_images(path: str) -> np.ndarray:
  with np.load(path) as d:
    return d["images"]


@functools.lru_cache(maxsize=4)
def _cifar_binary(path: str) -> tuple[np.ndarray, np.ndarray]:
  """The CIFAR-10 binary batch, read once by the data floor's one CIFAR reader."""
  return cifar.read_binary_batch(path)


def load_item(item: Item, src: str) -> tuple[np.ndarray, str]:
  """Reads one example as uint8 RGB and its original colour mode.

  Raises:
    SourceError: undecodable file (the generator records it as a skip).
  """
  if item.index >= 0 and not item.path:           # npz
    return np.ascontiguousarray(_npz_images(src)[item.index]), "RGB"
  if item.index >= 0:                               # CIFAR binary
    return np.ascontiguousarray(_cifar_binary(item.path)[0][item.index]), "RGB"
  with open(item.path, "rb") as f:
    data = f.read()
  try:
    return decode_rgb(data)
  except Exception as e:  # PIL raises several types for broken files
    raise SourceError(f"{item.path}: cannot decode image: {e}") from e
