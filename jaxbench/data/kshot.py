"""k-shot training splits: k labelled examples per class, drawn by seed, recorded by id.

Prompt learners (CLIP-Auto's AutoPrompt search, CoOp) train on a few images per
class. A split is drawn from any labelled source (records with 'id' and 'label',
see :mod:`jaxbench.data.evalset`):

* every example gets a pseudo-random score from ``(seed, example id)`` alone
  (a SplitMix64 hash of the seed and the id's CRC32), and each class keeps its k
  lowest-scoring examples (ties broken by id). The split therefore does not
  depend on the order the source lists its records in, and the splits of one
  seed are nested: the 1-shot examples are among the 2-shot ones, and so on.
* the split is recorded by example ids (and labels), so it can be saved with a
  learned prompt and re-resolved against a source whose order changed.

Training sources come from :mod:`jaxbench.data.catalog` like evaluation sets:
``image_folder(root='~/data/imagenet/train')`` (wnid folders, the ImageNet label
space) or ``tfds(name='imagenet2012', split='train', data_dir=...)``. Reading the
labels of a folder tree costs a directory listing (its source keeps them); a
TFDS source has to read every record once, so :func:`source_labels` can cache
the (id, label) list in a directory.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zlib
from typing import Optional, Sequence

import numpy as np

from jaxbench import atomic

STANDARD_K = (1, 2, 4, 8, 16)


@dataclasses.dataclass(frozen=True, eq=False)
class KShotSplit:
  """k examples of each class of a labelled source.

  Attributes:
    k: examples per class.
    seed: the seed the split was drawn with.
    indices: int64 (n,) positions in the source, class-major (class 0's k
      examples first), each class in draw order.
    ids: the n example ids (what the split is recorded by).
    labels: int32 (n,) class of each example, in [0, num_classes).
    num_classes: K, the classes the split covers (0..K-1, or ``classes``).
    classes: the class indices drawn from, ascending.
    source: a description of the source (recorded, not used).
  """
  k: int
  seed: int
  indices: np.ndarray
  ids: tuple
  labels: np.ndarray
  num_classes: int
  classes: tuple = ()
  source: str = ""

  def __len__(self) -> int:
    return len(self.ids)

  def to_dict(self) -> dict:
    return {"k": self.k, "seed": self.seed, "num_classes": self.num_classes,
            "classes": list(self.classes), "source": self.source, "ids": list(self.ids),
            "labels": [int(x) for x in self.labels],
            "indices": [int(x) for x in self.indices]}

  @classmethod
  def from_dict(cls, d: dict) -> "KShotSplit":
    missing = [key for key in ("k", "seed", "ids", "labels", "num_classes") if key not in d]
    if missing:
      raise ValueError(f"k-shot split record lacks keys {missing}")
    return cls(k=int(d["k"]), seed=int(d["seed"]),
               indices=np.asarray(d.get("indices", [-1] * len(d["ids"])), np.int64),
               ids=tuple(str(i) for i in d["ids"]), labels=np.asarray(d["labels"], np.int32),
               num_classes=int(d["num_classes"]), classes=tuple(d.get("classes", ())),
               source=d.get("source", ""))

  def save(self, path: str) -> None:
    atomic.atomic_write_bytes(path, json.dumps(self.to_dict()).encode())

  @classmethod
  def load(cls, path: str) -> "KShotSplit":
    with open(path) as f:
      return cls.from_dict(json.load(f))


def _splitmix64(x: np.ndarray) -> np.ndarray:
  """SplitMix64 finaliser on uint64 arrays: a well-mixed, portable integer hash."""
  with np.errstate(over="ignore"):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def draw_scores(seed: int, ids: Sequence[str]) -> np.ndarray:
  """uint64 (n,) pseudo-random score of each example id under ``seed``."""
  uids = np.fromiter((zlib.crc32(str(i).encode("utf-8")) for i in ids), np.uint64,
                     count=len(ids))
  with np.errstate(over="ignore"):
    return _splitmix64(_splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
                                   * np.ones_like(uids)) ^ uids)


def source_labels(source, *, name: str = "",
                  cache_dir: Optional[str] = None) -> tuple[list[str], np.ndarray]:
  """(ids, int64 labels) of every record of ``source``.

  A source with a ``labels`` array and ``example_id(i)`` or ``ids`` (file
  trees, arrays) answers without opening any image; any other source is read
  record by record, and with ``cache_dir`` the result is kept in
  ``cache_dir/labels_<hash of repr(source)>.npz`` for the next draw.

  Raises:
    ValueError: a record without 'id' or 'label', or repeated ids.
  """
  what = name or repr(source)
  cache = None
  if cache_dir:
    digest = hashlib.sha256(f"{source!r}|{len(source)}".encode()).hexdigest()[:16]
    cache = os.path.join(os.path.expanduser(cache_dir), f"labels_{digest}.npz")
  fast = getattr(source, "labels", None)
  if fast is not None and len(fast) == len(source) and (
      getattr(source, "ids", None) is not None or hasattr(source, "example_id")):
    labels = np.asarray(source.labels, np.int64).reshape(-1)
    ids = [str(i) for i in source.ids] if getattr(source, "ids", None) is not None \
        else [str(source.example_id(i)) for i in range(len(source))]
  elif cache and os.path.exists(cache):
    z = np.load(cache)
    ids, labels = [str(i) for i in z["ids"]], z["labels"].astype(np.int64)
  else:
    ids, labels = [], []
    for i in range(len(source)):
      rec = source[i]
      if "label" not in rec or "id" not in rec:
        raise ValueError(f"record {i} of {what} has keys {sorted(rec)}; a k-shot split "
                         "needs 'id' and 'label'")
      ids.append(str(rec["id"]))
      labels.append(int(rec["label"]))
    labels = np.asarray(labels, np.int64)
    if cache:
      atomic.atomic_savez(cache, ids=np.asarray(ids), labels=labels)
  if len(ids) != len(labels):
    raise ValueError(f"{what}: {len(ids)} ids but {len(labels)} labels")
  if len(set(ids)) != len(ids):
    seen, dup = set(), []
    for i in ids:
      if i in seen:
        dup.append(i)
      seen.add(i)
    raise ValueError(f"source {what} repeats example ids {dup[:5]}: ids must be unique to "
                     "record a split")
  return ids, labels


def draw(source, k: int, seed: int = 0, *, num_classes: Optional[int] = None,
         classes: Optional[Sequence[int]] = None,
         class_names: Optional[Sequence[str]] = None, name: str = "",
         cache_dir: Optional[str] = None) -> KShotSplit:
  """Draws k examples of every class from a labelled source.

  Args:
    source: random-access records with 'id' and 'label' (unlabelled records,
      label -1, are ignored).
    k: examples per class, >= 1 (CoOp and CLIP-Auto use 1, 2, 4, 8, 16).
    seed: the draw's seed; the same (seed, ids) always give the same split.
    num_classes: K; default ``max(label) + 1``. Every class 0..K-1 must have
      at least k examples.
    classes: draw only from these class indices (a subset of 0..K-1).
    class_names: names used in error messages.
    name: description of the source, recorded in the split.
    cache_dir: where to cache the labels of sources that must be read.

  Returns:
    a :class:`KShotSplit`.

  Raises:
    ValueError: k < 1, or a class with fewer than k labelled examples (every
      such class is named, with its count).
  """
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"k must be a positive integer (examples per class), got {k!r}")
  k = int(k)
  ids, labels = source_labels(source, name=name, cache_dir=cache_dir)
  if num_classes is None:
    num_classes = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
  bad_labels = labels[(labels >= num_classes) | (labels < -1)]
  if len(bad_labels):
    raise ValueError(f"source {name or repr(source)} has labels "
                     f"{sorted(set(bad_labels.tolist()))[:10]} outside [0, {num_classes})")
  chosen = list(range(num_classes)) if classes is None else sorted(int(c) for c in classes)
  if any(c < 0 or c >= num_classes for c in chosen):
    raise ValueError(f"classes {chosen} are not all in [0, {num_classes})")
  scores = draw_scores(seed, ids)
  id_arr = np.asarray(ids, dtype=object)
  counts = np.bincount(labels[labels >= 0], minlength=num_classes)
  short = [c for c in chosen if counts[c] < k]
  if short:
    def label(c):
      return f"{c} ({class_names[c]!r})" if class_names is not None else str(c)
    listed = ", ".join(f"class {label(c)} has {counts[c]}" for c in short[:10])
    raise ValueError(f"k={k} examples per class requested from "
                     f"{name or repr(source)}, but {len(short)} class(es) have "
                     f"fewer labelled examples: {listed}{' ...' if len(short) > 10 else ''}")
  # Order each class by (score, id): lexsort's last key is the primary one.
  order = np.lexsort((id_arr.astype(str), scores, labels))
  sorted_labels = labels[order]
  starts = np.searchsorted(sorted_labels, np.asarray(chosen), side="left")
  picked = np.concatenate([order[s:s + k] for s in starts]) if chosen else np.zeros(0, int)
  return KShotSplit(k=k, seed=int(seed), indices=picked.astype(np.int64),
                    ids=tuple(ids[i] for i in picked),
                    labels=labels[picked].astype(np.int32), num_classes=int(num_classes),
                    classes=tuple(chosen), source=name)


def resolve(source, split: KShotSplit, *, name: str = "") -> KShotSplit:
  """The split with ``indices`` re-found by id in ``source`` (whose order may differ).

  Raises:
    ValueError: ids of the split missing from the source, or labels that differ.
  """
  ids, labels = source_labels(source, name=name)
  where = {i: n for n, i in enumerate(ids)}
  missing = [i for i in split.ids if i not in where]
  if missing:
    raise ValueError(f"{len(missing)} example id(s) of the k-shot split are not in "
                     f"{name or repr(source)}: {missing[:5]}")
  idx = np.asarray([where[i] for i in split.ids], np.int64)
  changed = np.nonzero(labels[idx] != split.labels)[0]
  if len(changed):
    i = changed[0]
    raise ValueError(f"example {split.ids[i]!r} has label {labels[idx[i]]} in "
                     f"{name or repr(source)} but {split.labels[i]} in the split")
  return dataclasses.replace(split, indices=idx)


class SubsetSource:
  """The records of a split, in split order (a random-access source for the pipeline)."""

  def __init__(self, source, split: KShotSplit):
    self.source = source
    self.split = split

  def __len__(self) -> int:
    return len(self.split)

  def __getitem__(self, i: int) -> dict:
    rec = self.source[int(self.split.indices[i])]
    if str(rec.get("id")) != self.split.ids[i]:
      raise ValueError(f"source record {self.split.indices[i]} has id {rec.get('id')!r}, the "
                       f"split expects {self.split.ids[i]!r}: the source changed; "
                       "use kshot.resolve(source, split) first")
    return rec
