"""The ImageNet label space: wnids, class subsets, dataset mappings, projections.

Every ImageNet-derived set is scored in one index space: the 1000 ImageNet-1k
wnids sorted as strings (index 0 is ``n01440764``, tench). TFDS ``labels.txt``,
torchvision ``ImageFolder`` over wnid folders and the CLIP class-name list all
use this order (datasets.md §1.1).

A set whose classes are a subset of ImageNet, or a coarser grouping of ImageNet
classes, is scored by projecting 1000-way logits into the set's K classes with
:func:`project`: column k is the max over the ImageNet classes mapped to class
k (a plain sub-selection when each class maps to one ImageNet class, ImageNet-A
and -R), and ``-inf`` for classes that nothing maps to (YTBB's cow, giraffe,
skateboard, toilet and none). The same function serves supervised models and
zero-shot models with a 1000-class head.

Mappings for ObjectNet, ImageNet-Vid-Robust and YTBB-Robust are read from the
dataset's own metadata files; a missing file is an error that says which file
and where to get it. Nothing here falls back to a silent default.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

RESOURCES = os.path.join(os.path.dirname(__file__), "resources")


class MetadataError(FileNotFoundError):
  """A dataset metadata file is missing or malformed."""


# ---------------------------------------------------------------------------
# ImageNet-1k


def _read_lines(name: str) -> tuple[str, ...]:
  with open(os.path.join(RESOURCES, name)) as f:
    return tuple(line.strip() for line in f if line.strip())


@functools.lru_cache(maxsize=None)
def imagenet_wnids() -> tuple[str, ...]:
  """The 1000 ImageNet-1k wnids in sorted order (the class index space)."""
  wnids = _read_lines("imagenet_wnids.txt")
  assert len(wnids) == 1000 and list(wnids) == sorted(wnids), "corrupt imagenet_wnids.txt"
  return wnids


@functools.lru_cache(maxsize=None)
def wnid_to_index() -> dict[str, int]:
  """Maps each ImageNet-1k wnid to its sorted index 0..999."""
  return {w: i for i, w in enumerate(imagenet_wnids())}


@functools.lru_cache(maxsize=None)
def imagenet_class_names() -> tuple[str, ...]:
  """The 1000 CLIP-curated ImageNet class names, in sorted-wnid order."""
  with open(os.path.join(RESOURCES, "clip_imagenet.json")) as f:
    names = tuple(json.load(f)["classnames"])
  assert len(names) == 1000
  return names


def _subset(name: str) -> tuple[str, ...]:
  wnids = _read_lines(name)
  index = wnid_to_index()
  unknown = [w for w in wnids if w not in index]
  assert len(wnids) == 200 and list(wnids) == sorted(wnids) and not unknown, name
  return wnids


@functools.lru_cache(maxsize=None)
def imagenet_a_wnids() -> tuple[str, ...]:
  """ImageNet-A's 200 wnids, sorted (hendrycks/natural-adv-examples eval.py)."""
  return _subset("imagenet_a_wnids.txt")


@functools.lru_cache(maxsize=None)
def imagenet_r_wnids() -> tuple[str, ...]:
  """ImageNet-R's 200 wnids, sorted (hendrycks/imagenet-r eval.py)."""
  return _subset("imagenet_r_wnids.txt")


def indices_of(wnids: Sequence[str]) -> np.ndarray:
  """Sorted-ImageNet indices (int32) of ``wnids``, in the given order."""
  index = wnid_to_index()
  unknown = [w for w in wnids if w not in index]
  if unknown:
    raise ValueError(f"not ImageNet-1k wnids: {unknown[:5]}")
  return np.asarray([index[w] for w in wnids], np.int32)


# ---------------------------------------------------------------------------
# Projections


@dataclasses.dataclass(frozen=True, eq=False)
class Projection:
  """How K target classes draw on ``num_source`` model classes.

  Attributes:
    index: int32 (K, M) source-class indices for each target class, padded with
      -1; a row of only -1 is a class nothing maps to (its logit is -inf).
    num_source: width of the model's logits (1000 for ImageNet-1k).
    name: what the projection is, recorded with results.
  """
  index: np.ndarray
  num_source: int = 1000
  name: str = ""

  def __post_init__(self):
    index = np.asarray(self.index, np.int32)
    if index.ndim != 2 or index.shape[1] < 1:
      raise ValueError(f"projection index must be (K, M>=1), got {index.shape}")
    if (index >= self.num_source).any() or (index < -1).any():
      raise ValueError(f"projection {self.name!r}: source index outside [0, {self.num_source})")
    object.__setattr__(self, "index", index)

  @classmethod
  def subset(cls, indices: Sequence[int], num_source: int = 1000, name: str = ""):
    """Sub-selection: target class k is source class ``indices[k]``."""
    return cls(np.asarray(indices, np.int32)[:, None], num_source, name)

  @classmethod
  def groups(cls, groups: Sequence[Sequence[int]], num_source: int = 1000, name: str = ""):
    """Max-pooling: target class k is the max over source classes ``groups[k]``."""
    width = max([1] + [len(g) for g in groups])
    index = np.full((len(groups), width), -1, np.int32)
    for k, g in enumerate(groups):
      index[k, :len(g)] = sorted(int(i) for i in g)
    return cls(index, num_source, name)

  @property
  def num_classes(self) -> int:
    return int(self.index.shape[0])

  @property
  def is_subset(self) -> bool:
    return self.index.shape[1] == 1 and bool((self.index >= 0).all())

  def source_classes(self) -> np.ndarray:
    """Sorted source classes that map to some target class."""
    return np.unique(self.index[self.index >= 0])

  def target_of(self) -> np.ndarray:
    """(num_source,) int32: the target class of each source class, -1 if none.

    Used to label ImageNet val images in a set's space (the ``val on X classes``
    controls). Raises if a source class feeds two target classes.
    """
    out = np.full((self.num_source,), -1, np.int32)
    for k, row in enumerate(self.index):
      for i in row[row >= 0]:
        if out[i] not in (-1, k):
          raise ValueError(f"projection {self.name!r}: source class {i} maps to both "
                           f"{out[i]} and {k}")
        out[i] = k
    return out

  def __call__(self, logits: jax.Array) -> jax.Array:
    return project(logits, self)


def project(logits: jax.Array, spec: Projection) -> jax.Array:
  """Projects model logits into a set's label space. Pure and jittable.

  Args:
    logits: (..., num_source) float logits (any float dtype).
    spec: the set's :class:`Projection` (static: its table becomes a constant).

  Returns:
    (..., K) logits of the same dtype: max over each class's source logits,
    -inf for classes with no source class.
  """
  if logits.shape[-1] != spec.num_source:
    raise ValueError(f"projection {spec.name!r} expects {spec.num_source} logits, got "
                     f"shape {logits.shape}")
  valid = spec.index >= 0
  gathered = jnp.take(logits, np.where(valid, spec.index, 0), axis=-1)  # (..., K, M)
  if valid.all() and spec.index.shape[1] == 1:
    return gathered[..., 0]
  neg_inf = jnp.asarray(-jnp.inf, gathered.dtype)
  return jnp.max(jnp.where(valid, gathered, neg_inf), axis=-1)


def imagenet_a_projection() -> Projection:
  return Projection.subset(indices_of(imagenet_a_wnids()), name="imagenet_a_200")


def imagenet_r_projection() -> Projection:
  return Projection.subset(indices_of(imagenet_r_wnids()), name="imagenet_r_200")


# ---------------------------------------------------------------------------
# Dataset mappings read from metadata files


def require_file(path: str, dataset: str, where: str) -> str:
  """``path`` if it is a file; else a MetadataError saying where to get it."""
  if not os.path.isfile(path):
    raise MetadataError(f"{dataset}: metadata file {path!r} is missing. {where}")
  return path


def load_json(path: str, dataset: str, where: str):
  """Parsed JSON metadata file (MetadataError if missing or invalid)."""
  with open(require_file(path, dataset, where)) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise MetadataError(f"{dataset}: {path!r} is not valid JSON: {e}") from e


@dataclasses.dataclass(frozen=True)
class ClassMapping:
  """A set's classes and how they map to ImageNet-1k.

  Attributes:
    class_names: K display names, in the set's class order.
    keys: K identifiers (ObjectNet folder names, VID wnids, YTBB names).
    projection: the :class:`Projection` of 1000-way logits into the K classes.
    files: metadata files the mapping was read from.
  """
  class_names: tuple[str, ...]
  keys: tuple[str, ...]
  projection: Projection
  files: tuple[str, ...] = ()


OBJECTNET_WHERE = ("ObjectNet ships these files in objectnet-1.0.zip under "
                   "objectnet-1.0/mappings/ (https://objectnet.dev); copies are in "
                   "github.com/mlfoundations/wise-ft src/datasets/objectnet_metadata/. "
                   "Pass mappings_dir= to point at them.")


def objectnet_mapping(mappings_dir: str) -> ClassMapping:
  """ObjectNet's 113 ImageNet-overlapping classes, from ``mappings/``.

  Files (ObjectNet's own formats):
    folder_to_objectnet_label.json: {folder: display name} (313 folders).
    objectnet_to_imagenet_1k.json: {display name: "imagenet name; imagenet name"}
      for the 113 overlapping classes.
    imagenet_to_label_2012_v2: line i is the name of ImageNet 2012 id i.
    pytorch_to_imagenet_2012_id.json: {sorted-wnid index: ImageNet 2012 id}.

  Classes are ordered by folder name (sorted), names are ObjectNet's display
  names; 125 ImageNet classes map onto them (9 classes take several).
  """
  d = "objectnet"
  folder_to_name = load_json(os.path.join(mappings_dir, "folder_to_objectnet_label.json"),
                              d, OBJECTNET_WHERE)
  to_imagenet = load_json(os.path.join(mappings_dir, "objectnet_to_imagenet_1k.json"), d,
                           OBJECTNET_WHERE)
  pytorch_to_2012 = load_json(os.path.join(mappings_dir, "pytorch_to_imagenet_2012_id.json"),
                               d, OBJECTNET_WHERE)
  names_path = require_file(os.path.join(mappings_dir, "imagenet_to_label_2012_v2"), d,
                        OBJECTNET_WHERE)
  with open(names_path) as f:
    lines_2012 = [line.strip() for line in f]
  # ImageNet 2012 id -> sorted-wnid index; a name can only be resolved if it is unique.
  id2012_to_sorted = {int(v): int(k) for k, v in pytorch_to_2012.items()}
  by_name: dict[str, list[int]] = {}
  for i, name in enumerate(lines_2012):
    if name:
      by_name.setdefault(name, []).append(i)
  name_to_folder = {}
  for folder, name in folder_to_name.items():
    if name in name_to_folder:
      raise MetadataError(f"{d}: display name {name!r} names two folders in "
                          "folder_to_objectnet_label.json")
    name_to_folder[name] = folder
  entries = []
  for name, imagenet_names in to_imagenet.items():
    if name not in name_to_folder:
      raise MetadataError(f"{d}: class {name!r} of objectnet_to_imagenet_1k.json has no "
                          "folder in folder_to_objectnet_label.json")
    ids = []
    for inet in imagenet_names.split("; "):
      hits = by_name.get(inet.strip(), [])
      if len(hits) != 1:
        raise MetadataError(f"{d}: ImageNet name {inet!r} (for {name!r}) occurs {len(hits)} "
                            f"times in {names_path!r}; expected exactly once")
      if hits[0] not in id2012_to_sorted:
        raise MetadataError(f"{d}: ImageNet 2012 id {hits[0]} has no entry in "
                            "pytorch_to_imagenet_2012_id.json")
      ids.append(id2012_to_sorted[hits[0]])
    entries.append((name_to_folder[name], name, ids))
  entries.sort()
  return ClassMapping(
      class_names=tuple(e[1] for e in entries), keys=tuple(e[0] for e in entries),
      projection=Projection.groups([e[2] for e in entries], name="objectnet_113"),
      files=(mappings_dir,))


VID_WHERE = ("These files are part of the ImageNet-Vid-Robust download "
             "(imagenet_vid_ytbb_robust.tar.gz, see github.com/modestyachts/"
             "imagenet-vid-robust-example); root= must be its imagenet-vid-robust/ folder "
             "holding val/, metadata/ and misc/.")


def vid_mapping(root: str) -> ClassMapping:
  """ImageNet-Vid-Robust's 30 VID classes and the 288 ImageNet classes feeding them.

  Reads ``misc/imagenet_vid_class_index.json`` ({"0": [vid wnid, name], ...})
  and ``misc/wnid_map.json`` ({imagenet wnid: vid wnid}).
  """
  d = "imagenet_vid_robust"
  vid_index = load_json(os.path.join(root, "misc", "imagenet_vid_class_index.json"), d,
                         VID_WHERE)
  wnid_map = load_json(os.path.join(root, "misc", "wnid_map.json"), d, VID_WHERE)
  k = len(vid_index)
  if sorted(vid_index, key=int) != [str(i) for i in range(k)]:
    raise MetadataError(f"{d}: imagenet_vid_class_index.json keys must be 0..{k - 1}")
  vid_wnids = [vid_index[str(i)][0] for i in range(k)]
  names = [vid_index[str(i)][1] for i in range(k)]
  groups = [[] for _ in range(k)]
  inet = wnid_to_index()
  for imagenet_wnid, vid_wnid in wnid_map.items():
    if imagenet_wnid not in inet or vid_wnid not in vid_wnids:
      raise MetadataError(f"{d}: wnid_map.json entry {imagenet_wnid!r} -> {vid_wnid!r} is not "
                          "an ImageNet-1k wnid mapped to a VID class")
    groups[vid_wnids.index(vid_wnid)].append(inet[imagenet_wnid])
  return ClassMapping(tuple(names), tuple(vid_wnids),
                      Projection.groups(groups, name="vid_robust_30"), (root,))


YTBB_WHERE = ("YTBB-Robust's metadata is distributed with the ImageNet testbed: "
              "github.com/modestyachts/imagenet-testbed src/eval_settings/"
              "ytbb-robust_metadata/ (also github.com/mlfoundations/wise-ft "
              "src/datasets/ytbb-robust_metadata/). Put that folder next to ytbb_videos/ "
              "or pass metadata_dir=.")


def ytbb_mapping(metadata_dir: str) -> ClassMapping:
  """YTBB-Robust's 24 classes; 231 ImageNet classes feed 19 of them.

  Reads ``ytbb_class_index.json`` ({"0": "person", ...}) and
  ``rev_class_idx_map.json`` ({ytbb index: [imagenet indices]}). Classes with no
  ImageNet counterpart project to -inf.
  """
  d = "ytbb_robust"
  class_index = load_json(os.path.join(metadata_dir, "ytbb_class_index.json"), d, YTBB_WHERE)
  rev = load_json(os.path.join(metadata_dir, "rev_class_idx_map.json"), d, YTBB_WHERE)
  k = len(class_index)
  if sorted(class_index, key=int) != [str(i) for i in range(k)]:
    raise MetadataError(f"{d}: ytbb_class_index.json keys must be 0..{k - 1}")
  names = tuple(class_index[str(i)] for i in range(k))
  groups = [[] for _ in range(k)]
  for ytbb, imagenet_ids in rev.items():
    if not 0 <= int(ytbb) < k:
      raise MetadataError(f"{d}: rev_class_idx_map.json class {ytbb} outside 0..{k - 1}")
    groups[int(ytbb)] = [int(i) for i in imagenet_ids]
  return ClassMapping(names, names, Projection.groups(groups, name="ytbb_robust_24"),
                      (metadata_dir,))


def read_csv_rows(path: str, dataset: str, where: str) -> list[dict]:
  """Rows of a CSV metadata file with a header line."""
  with open(require_file(path, dataset, where), newline="") as f:
    return list(csv.DictReader(f))

