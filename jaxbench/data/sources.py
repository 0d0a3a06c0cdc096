"""What examples exist: random-access record sources.

Every source follows the record contract of :mod:`jaxbench.data.evalset`
(``source[i] -> {'id', 'label', 'image_bytes' | 'image', ['labels']}``) and
grain's ``RandomAccessDataSource`` protocol: ``len``, integer indexing,
deterministic, picklable (no open file handles are kept), with a ``repr``.

* :class:`FileSource`: files listed up front (relative path, label[, multi-hot]);
  reads bytes, never decodes: decoding belongs to the pipeline, so a corrupt
  file is skipped and recorded there instead of killing a run.
* :class:`ImageFolderSource`: ``root/<class folder>/<image>``. Folder names are
  wnids (sorted-ImageNet index), integers (ImageNetV2's ``0..999``, read as
  integers, never sorted as text) or arbitrary names (sorted index); the kind is
  detected. Empty class folders are allowed and reported.
* :class:`TfdsSource`: a prepared TFDS dataset through ``tfds.data_source``
  (array_record or parquet; no TensorFlow needed), images kept encoded.
* :class:`ArraySource`: uint8 image arrays with labels (CIFAR), in memory or a
  memory-mapped ``.npy`` file.

Ids are stable across runs: relative paths, TFDS ``file_name``/``id``, or the
example's index.

Every source has a ``fingerprint()`` (see :func:`fingerprint`): a cheap summary
of *which data* it reads (files with sizes and mtimes, a TFDS name/version/split,
an array file's size and mtime) stored with a pass's progress, so a resumed pass
can tell that the data changed underneath it (:func:`describe_change`).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                    ".ppm", ".pgm", ".pbm")

_WNID = re.compile(r"^n\d{8}$")
_INDEX = re.compile(r"^\d+$")


class LayoutError(ValueError):
  """The data on disk is not in the layout a reader expects (or is empty)."""


class LabelError(ValueError):
  """A label outside the set's label space."""


class DataNotFound(LayoutError):
  """No data given and none found under ``data_root``."""


def locate(dataset: str, root: Optional[str], data_root: Optional[str],
           candidates: Sequence[str], expected: str, tfds_name: Optional[str] = None,
           param: str = "root", alternative: str = "") -> str:
  """The data directory: ``root`` if given, else the first candidate under ``data_root``.

  Args:
    param: the spec argument that gives this directory (``vid_root`` for the
      Vid-Robust metadata of a control set), named in the error.
    alternative: another way to give it, e.g. "metadata_dir= (...)".

  Raises :class:`DataNotFound` naming what to pass and where it looked.
  """
  if root:
    return os.path.expanduser(os.fspath(root))
  tried = []
  if data_root:
    for c in candidates:
      path = os.path.join(os.path.expanduser(os.fspath(data_root)), c)
      if os.path.isdir(path):
        return path
      tried.append(path)
  how = f"pass {param}= (layout: {expected})"
  if alternative:
    how += f" or {alternative}"
  if tfds_name:
    how += f" or tfds_dir= (a prepared array_record TFDS {tfds_name!r})"
  looked = f"; looked for {tried}" if tried else ""
  raise DataNotFound(f"{dataset}: no data: {how}, or data_root= holding one of "
                     f"{list(candidates)}{looked}")


def digest(obj) -> str:
  """A short stable hash of a JSON-able object."""
  return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def file_stats(root: str, rel_paths: Sequence[str]) -> dict[str, list[int]]:
  """{relative path: [size in bytes, mtime in ns]} ([-1, -1] for a missing file)."""
  out = {}
  for rel in sorted(set(rel_paths)):
    try:
      st = os.stat(os.path.join(root, rel))
      out[rel] = [int(st.st_size), int(st.st_mtime_ns)]
    except OSError:
      out[rel] = [-1, -1]
  return out


def files_fingerprint(kind: str, root: str, rel_paths: Sequence[str], **extra) -> dict:
  """The fingerprint of a source that reads the files ``root/rel_paths``.

  Returns:
    {'kind', 'root', 'n_files', **extra, 'digest', 'files': {path: [size, mtime_ns]}};
    the digest covers everything else (hash of the sorted (path, size, mtime)).
  """
  files = file_stats(root, rel_paths)
  fp = {"kind": kind, "root": os.fspath(root), "n_files": len(files), **extra}
  fp["digest"] = digest({**fp, "files": files})
  fp["files"] = files
  return fp


def fingerprint(source) -> dict:
  """A source's fingerprint: its own ``fingerprint()``, or a cheap generic one.

  Sources that wrap another (``.source`` or ``.base``, e.g. k-shot subsets,
  generated ImageNet-P sequences) include the wrapped source's fingerprint.

  Returns:
    a JSON-able dict with at least 'kind' and 'digest'.
  """
  if hasattr(source, "fingerprint"):
    return source.fingerprint()
  fp = {"kind": type(source).__name__, "n": len(source), "repr": repr(source)}
  inner = getattr(source, "source", None) or getattr(source, "base", None)
  if inner is not None and hasattr(inner, "__getitem__"):
    fp["inner"] = fingerprint(inner)
  fp["digest"] = digest(fp)
  return fp


def _files_of(fp: dict) -> Optional[dict]:
  while fp is not None:
    if "files" in fp:
      return fp["files"]
    fp = fp.get("inner")
  return None


def describe_change(old: dict, new: dict, max_folders: int = 5) -> str:
  """What differs between two fingerprints, in words.

  For file sources: "6 files added under n01440764/, 0 removed, 0 modified";
  otherwise the fields that differ (e.g. a TFDS version).
  """
  old_files, new_files = _files_of(old), _files_of(new)
  if old_files is not None and new_files is not None:
    added = sorted(set(new_files) - set(old_files))
    removed = sorted(set(old_files) - set(new_files))
    modified = sorted(p for p in set(old_files) & set(new_files)
                      if list(old_files[p]) != list(new_files[p]))

    def where(paths):
      folders = sorted({p.rsplit("/", 1)[0] + "/" if "/" in p else "./" for p in paths})
      more = f" and {len(folders) - max_folders} more folders" if len(folders) > max_folders \
          else ""
      return " under " + ", ".join(folders[:max_folders]) + more if folders else ""

    parts = [f"{len(added)} files added{where(added)}", f"{len(removed)} removed{where(removed)}",
             f"{len(modified)} modified{where(modified)}"]
    if added or removed or modified:
      return ", ".join(parts)
  diffs = []
  for key in sorted(set(old) | set(new)):
    if key in ("digest", "files", "inner"):
      continue
    if old.get(key) != new.get(key):
      diffs.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
  if not diffs and old.get("inner") and new.get("inner"):
    return describe_change(old["inner"], new["inner"], max_folders)
  return "; ".join(diffs) or "the source's contents differ (fingerprint digest changed)"


def is_image_file(name: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> bool:
  return not name.startswith(".") and name.lower().endswith(tuple(extensions))


# ---------------------------------------------------------------------------
# Files


class FileSource:
  """Records read from a fixed list of files under ``root``.

  Args:
    root: directory the paths are relative to.
    paths: relative paths ('/'-separated), one per example.
    labels: int (N,) labels in the set's label space (-1 = unlabelled).
    multi_hot: optional bool (N, K) label sets (multi-label sets).
    ids: optional ids (defaults to the relative paths).
    description: what this is, for ``repr`` and results metadata.
  """

  def __init__(self, root: str, paths: Sequence[str], labels: Sequence[int], *,
               multi_hot: Optional[np.ndarray] = None, ids: Optional[Sequence[str]] = None,
               description: str = ""):
    self.root = os.fspath(root)
    self.paths = tuple(paths)
    self.labels = np.asarray(labels, np.int32).reshape(-1)
    if len(self.labels) != len(self.paths):
      raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
    self.multi_hot = None if multi_hot is None else np.asarray(multi_hot, bool)
    if self.multi_hot is not None and self.multi_hot.shape[0] != len(self.paths):
      raise ValueError(f"{len(self.paths)} paths but {self.multi_hot.shape[0]} label sets")
    self.ids = None if ids is None else tuple(ids)
    self.description = description or f"files under {self.root}"

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    rel = self.paths[index]
    record = {"id": self.ids[index] if self.ids is not None else rel,
              "label": int(self.labels[index])}
    try:
      with open(os.path.join(self.root, rel), "rb") as f:
        record["image_bytes"] = f.read()
    except OSError as e:
      # Reported like an undecodable image: the pipeline skips and lists it.
      record["image_bytes"] = b""
      record["error"] = f"cannot read {os.path.join(self.root, rel)!r}: {e}"
    if self.multi_hot is not None:
      record["labels"] = self.multi_hot[index]
    return record

  def example_id(self, index: int) -> str:
    """The id of record ``index`` without reading the file."""
    index = int(index)
    return self.ids[index] if self.ids is not None else self.paths[index]

  def fingerprint(self) -> dict:
    """The files read (relative path, size, mtime) and a hash of the labels/ids.

    One ``stat`` per file (about a second for 50,000 files on a local disk).
    """
    labels = digest([self.labels.tolist(), None if self.multi_hot is None else
                      np.packbits(self.multi_hot).tolist(), self.ids])
    return files_fingerprint(type(self).__name__, self.root, self.paths, n=len(self),
                             labels=labels)

  def select(self, indices: Sequence[int], description: str = "") -> "FileSource":
    """A source over ``self[i] for i in indices`` (same root)."""
    indices = np.asarray(indices, np.int64)
    return FileSource(
        self.root, [self.paths[i] for i in indices], self.labels[indices],
        multi_hot=None if self.multi_hot is None else self.multi_hot[indices],
        ids=None if self.ids is None else [self.ids[i] for i in indices],
        description=description or self.description)

  def relabel(self, labels: Sequence[int]) -> "FileSource":
    """The same files with new labels."""
    return FileSource(self.root, self.paths, labels, multi_hot=self.multi_hot, ids=self.ids,
                      description=self.description)

  def __repr__(self):
    return f"{type(self).__name__}({self.description!r}, n={len(self)})"


def _scan_images(folder: str, extensions) -> tuple[list[str], int, int]:
  """(sorted image names, other files, subdirectories) directly in ``folder``."""
  images, others, subdirs = [], 0, 0
  with os.scandir(folder) as it:
    for entry in it:
      if entry.name.startswith("."):
        continue
      if entry.is_dir():
        subdirs += 1
      elif is_image_file(entry.name, extensions):
        images.append(entry.name)
      else:
        others += 1
  images.sort()
  return images, others, subdirs


def _deeper_example(root: str, dirs: Sequence[str], extensions) -> Optional[str]:
  """A path root/<d>/<sub>/<image> if class folders look one level too deep."""
  for d in dirs[:20]:
    folder = os.path.join(root, d)
    with os.scandir(folder) as it:
      subs = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    for s in subs[:20]:
      images, _, _ = _scan_images(os.path.join(folder, s), extensions)
      if images:
        return os.path.join(folder, s, images[0])
  return None


class ImageFolderSource(FileSource):
  """``root/<class folder>/<image>`` with labels from the folder names.

  Args:
    root: the directory holding the class folders.
    folder_kind: 'auto' (detect), 'wnid' (label = index of the wnid in
      ``wnids``), 'index' (label = int(folder), ImageNetV2) or 'name' (label =
      position of the folder among the sorted folder names).
    wnids: label space for wnid folders, sorted (default the 1000 ImageNet
      wnids); a wnid folder outside it is a :class:`LabelError`.
    num_classes: for 'index' folders, labels must lie in [0, num_classes).
    folder_to_label: overrides the kinds: a mapping or callable from folder
      name to label, None for folders to exclude (they are counted).
    extensions: image file extensions (case-insensitive).
    expected: human description of the layout for error messages.

  Attributes (besides FileSource's):
    folder_kind: the kind used.
    class_folders: the folders read, in label order.
    empty_classes: class folders without images.
    excluded: {folder: number of images} for folders ``folder_to_label`` left out.
    other_files: non-image files inside class folders (ignored).
  """

  def __init__(self, root: str, *, folder_kind: str = "auto",
               wnids: Optional[Sequence[str]] = None, num_classes: Optional[int] = None,
               folder_to_label: Union[Mapping[str, int], Callable[[str], Optional[int]],
                                      None] = None,
               extensions: Sequence[str] = IMAGE_EXTENSIONS, expected: str = ""):
    root = os.path.expanduser(os.fspath(root))
    expected = expected or "root/<class folder>/<image file>"
    if not os.path.isdir(root):
      raise LayoutError(f"data directory {root!r} does not exist (expected {expected})")
    with os.scandir(root) as it:
      entries = [e for e in it if not e.name.startswith(".")]
    dirs = sorted(e.name for e in entries if e.is_dir())
    flat = sorted(e.name for e in entries if e.is_file() and is_image_file(e.name, extensions))
    if not dirs:
      what = (f"{len(flat)} images directly in it (a flat folder)" if flat else "nothing")
      raise LayoutError(f"no class folders in {root!r}: found {what}; expected {expected}")

    kind, label_of = self._labeller(root, dirs, folder_kind, wnids, num_classes,
                                    folder_to_label, extensions, expected)
    labelled = []
    excluded = {}
    for d in dirs:
      label = label_of(d)
      if label is None:
        excluded[d] = len(_scan_images(os.path.join(root, d), extensions)[0])
      else:
        labelled.append((label, d))
    labelled.sort()
    paths, labels, empty, class_folders = [], [], [], []
    other_files = nested = 0
    for label, d in labelled:
      images, others, subdirs = _scan_images(os.path.join(root, d), extensions)
      other_files += others
      nested += subdirs
      class_folders.append(d)
      if not images:
        empty.append(d)
      paths.extend(f"{d}/{name}" for name in images)
      labels.extend([label] * len(images))
    if not paths:
      deeper = _deeper_example(root, [d for _, d in labelled], extensions)
      if deeper:
        raise LayoutError(
            f"no images in the class folders of {root!r}, but images one level deeper, e.g. "
            f"{deeper!r}: the class folders are one level too deep; point root at the "
            f"folder that holds them (expected {expected})")
      raise LayoutError(f"zero images found in {root!r} ({len(class_folders)} class folders "
                        f"read, {len(excluded)} excluded); expected {expected}")
    super().__init__(root, paths, labels, description=f"{kind} folders under {root}")
    self.folder_kind = kind
    self.class_folders = tuple(class_folders)
    self.empty_classes = tuple(empty)
    self.excluded = excluded
    self.other_files = other_files
    self.nested_dirs = nested

  @staticmethod
  def _labeller(root, dirs, folder_kind, wnids, num_classes, folder_to_label, extensions,
                expected):
    if folder_to_label is not None:
      if callable(folder_to_label):
        return "custom", folder_to_label
      mapping = dict(folder_to_label)
      return "custom", mapping.get
    kinds = {"wnid": [d for d in dirs if _WNID.match(d)],
             "index": [d for d in dirs if _INDEX.match(d)]}
    if folder_kind == "auto":
      folder_kind = next((k for k, v in kinds.items() if len(v) == len(dirs)), "name")
    if folder_kind in kinds and len(kinds[folder_kind]) != len(dirs):
      odd = [d for d in dirs if d not in kinds[folder_kind]]
      deeper = _deeper_example(root, odd, extensions)
      hint = (f"; the class folders seem to be one level deeper, e.g. {deeper!r}: point root "
              "at the folder that holds them" if deeper else "")
      raise LayoutError(f"{root!r}: expected {folder_kind} class folders ({expected}), found "
                        f"{len(odd)} other entries, e.g. {odd[:3]}{hint}")
    if folder_kind == "wnid":
      if wnids is None:
        from jaxbench import labels as labels_lib
        wnids = labels_lib.imagenet_wnids()
      index = {w: i for i, w in enumerate(wnids)}
      unknown = [d for d in dirs if d not in index]
      if unknown:
        raise LabelError(f"{root!r}: {len(unknown)} wnid folders are outside this set's "
                         f"{len(index)} classes, e.g. {unknown[:3]}")
      return "wnid", index.get
    if folder_kind == "index":
      bad = [d for d in dirs if num_classes is not None and not 0 <= int(d) < num_classes]
      if bad:
        raise LabelError(f"{root!r}: class index folders {bad[:3]} are outside "
                         f"[0, {num_classes})")
      return "index", int  # int('10') == 10: never the text order of '10' < '2'
    if folder_kind == "name":
      index = {d: i for i, d in enumerate(dirs)}
      return "name", index.get
    raise ValueError(f"folder_kind must be 'auto', 'wnid', 'index' or 'name', got "
                     f"{folder_kind!r}")

  def summary(self) -> dict:
    """Facts about the scan, recorded with results."""
    return {"root": self.root, "folder_kind": self.folder_kind, "images": len(self),
            "class_folders": len(self.class_folders), "empty_classes": list(self.empty_classes),
            "excluded_folders": len(self.excluded),
            "excluded_images": int(sum(self.excluded.values())),
            "other_files": self.other_files}


# ---------------------------------------------------------------------------
# TFDS


def _tfds_searched(name: str, data_dir: Optional[str]) -> tuple[list[str], list[str]]:
  """(folders searched, prepared versions found) for TFDS dataset ``name`` in ``data_dir``.

  TFDS keeps a prepared dataset in ``data_dir/<name>[/<config>]/<version>/`` with a
  ``dataset_info.json``; ``data_dir`` defaults to ``$TFDS_DATA_DIR`` or
  ``~/tensorflow_datasets`` as in TFDS.
  """
  base = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  base = os.path.expanduser(base)
  dataset, _, version = name.partition(":")
  folder = os.path.join(base, *dataset.split("/"))
  patterns = ([os.path.join(folder, version)] if version else
              [os.path.join(folder, "*"), os.path.join(folder, "*", "*")])
  found = sorted(os.path.dirname(p) for pat in patterns
                 for p in glob.glob(os.path.join(pat, "dataset_info.json")))
  return [os.path.join(p, "dataset_info.json") for p in patterns], found


class TfdsSource:
  """A prepared TFDS dataset read through ``tfds.data_source`` (no TensorFlow).

  Images stay encoded (``SkipDecoding``): TFDS's TF-free decoder does not
  convert palette/RGBA/CMYK images to RGB, the pipeline's PIL decode does.

  Args:
    name: TFDS name with config, e.g. 'imagenet_v2/matched-frequency'.
    split: split spec, e.g. 'test' or 'validation[:1000]'.
    data_dir: TFDS data directory (default: TFDS's own default).
    label_map: optional int array (num_tfds_classes,) mapping the dataset's
      labels into the set's space; -1 marks labels outside it.
    drop_unmapped: keep only records whose label maps (scans every record's
      label once, e.g. ImageNet val restricted to 200 classes); otherwise an
      unmapped label is a :class:`LabelError` when read.
    id_keys: record fields tried for the example id; the index otherwise.
  """

  def __init__(self, name: str, split: str, data_dir: Optional[str] = None, *,
               label_map: Optional[np.ndarray] = None, drop_unmapped: bool = False,
               image_key: str = "image", label_key: str = "label",
               id_keys: Sequence[str] = ("file_name", "id")):
    import tensorflow_datasets as tfds  # lazy: TFDS is only needed for TFDS data
    self.name, self.split = name, split
    self.data_dir = None if data_dir is None else os.path.expanduser(os.fspath(data_dir))
    self.image_key, self.label_key, self.id_keys = image_key, label_key, tuple(id_keys)
    self.label_map = None if label_map is None else np.asarray(label_map, np.int32)
    where = f"TFDS dataset {name!r} split {split!r} in data_dir={self.data_dir!r}"
    try:
      self._ds = tfds.data_source(name, split=split, data_dir=self.data_dir, download=False,
                                  decoders={image_key: tfds.decode.SkipDecoding()})
    except NotImplementedError as e:
      searched, found = _tfds_searched(name, self.data_dir)
      if not found:   # TFDS says "TFRECORD not supported" for data that is not there
        raise LayoutError(f"TFDS dataset {name!r} split {split!r} not found: no prepared "
                          f"version (dataset_info.json) in {searched}. Prepare it with "
                          f"`tfds build {name.split('/')[0].split(':')[0]} "
                          "--file_format=array_record --data_dir=DIR` or point tfds_dir= "
                          "at the folder that holds it") from e
      raise LayoutError(f"{where} is not in a random-access format ({e}); convert it with "
                        "`tfds convert_format --out_file_format=array_record` or rebuild with "
                        "`tfds build --file_format=array_record`") from e
    except Exception as e:  # DatasetNotFoundError, AssertionError, ... from TFDS
      searched, found = _tfds_searched(name, self.data_dir)
      where += f" (searched {searched}; found {found or 'no prepared version'})"
      raise LayoutError(f"{where} cannot be read: {type(e).__name__}: {e}. Prepare it with "
                        f"`tfds build {name.split('/')[0]} --file_format=array_record "
                        f"--data_dir=DIR`") from e
    self._indices = None
    self.dropped = 0
    if drop_unmapped and self.label_map is not None:
      keep = [i for i in range(len(self._ds)) if self._mapped(self._raw_label(i)) >= 0]
      self.dropped = len(self._ds) - len(keep)
      self._indices = np.asarray(keep, np.int64)
    if len(self) == 0:
      raise LayoutError(f"{where} has zero examples" +
                        (f" in this set's classes ({self.dropped} dropped)" if self.dropped
                         else ""))

  def fingerprint(self) -> dict:
    """TFDS builder name, version, split and size (TFDS files are immutable per version)."""
    try:
      version = str(self._ds.dataset_info.version)
    except AttributeError:
      version = "unknown"
    fp = {"kind": "tfds", "name": self.name, "version": version, "split": self.split,
          "data_dir": self.data_dir, "n": len(self),
          "label_map": None if self.label_map is None else digest(self.label_map.tolist())}
    fp["digest"] = digest(fp)
    return fp

  def label_names(self) -> tuple[str, ...]:
    """Class names of the dataset's label feature (its ClassLabel), if any."""
    try:
      return tuple(self._ds.dataset_info.features[self.label_key].names)
    except (AttributeError, KeyError, TypeError):
      return ()

  def _raw_label(self, i: int) -> int:
    return int(self._ds[i][self.label_key])

  def _mapped(self, label: int) -> int:
    if self.label_map is None:
      return label
    if not 0 <= label < len(self.label_map):
      return -1
    return int(self.label_map[label])

  def __len__(self) -> int:
    return len(self._ds) if self._indices is None else len(self._indices)

  def example_id(self, index: int) -> str:
    """The id of record ``index`` (reads the record: TFDS has no cheaper way)."""
    return self[index]["id"]

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    raw_index = index if self._indices is None else int(self._indices[index])
    rec = self._ds[raw_index]
    raw_label = int(rec[self.label_key])
    label = self._mapped(raw_label)
    if label < 0:
      raise LabelError(f"{self.name}:{self.split} record {raw_index}: label {raw_label} is "
                       "outside this set's label space")
    example_id = str(raw_index)
    for key in self.id_keys:
      if key in rec:
        value = rec[key]
        example_id = value.decode() if isinstance(value, bytes) else str(value)
        break
    out = {"id": example_id, "label": label}
    image = rec[self.image_key]
    if isinstance(image, (bytes, np.bytes_)):
      out["image_bytes"] = bytes(image)
    else:  # already decoded (e.g. tfds.testing.mock_data): uint8 HWC
      image = np.asarray(image, np.uint8)
      if image.ndim == 2:
        image = image[..., None]
      if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
      out["image"] = image[..., :3]
    return out

  def __repr__(self):
    return (f"TfdsSource({self.name!r}, split={self.split!r}, data_dir={self.data_dir!r}, "
            f"n={len(self)})")


# ---------------------------------------------------------------------------
# Arrays


class ArraySource:
  """uint8 images (N, H, W, 3) with int labels, optionally a slice of them.

  Args:
    images: an array, or a path to a ``.npy`` file (memory-mapped on first
      access, so workers share the page cache and pickling stays cheap).
    labels: int array (N,) or a path to a ``.npy`` file.
    start, stop: the slice of rows this source covers (CIFAR-10-C severity
      blocks).
    id_format: ids are ``id_format.format(row - start)``, e.g. 'test_{:05d}'.
  """

  def __init__(self, images: Union[np.ndarray, str], labels: Union[np.ndarray, str], *,
               start: int = 0, stop: Optional[int] = None, id_format: str = "{}"):
    self._images_path = images if isinstance(images, (str, os.PathLike)) else None
    self._images = None if self._images_path else np.asarray(images)
    labels_arr = np.load(labels) if isinstance(labels, (str, os.PathLike)) else labels
    self.labels = np.asarray(labels_arr).astype(np.int32).reshape(-1)
    images_arr = self._array()
    what = self._images_path or "images array"
    if images_arr.ndim != 4 or images_arr.shape[-1] != 3 or images_arr.dtype != np.uint8:
      raise LayoutError(f"{what}: expected uint8 (N, H, W, 3) images, got "
                        f"{images_arr.dtype} {images_arr.shape}")
    if len(images_arr) != len(self.labels):
      raise LayoutError(f"{what}: {len(images_arr)} images but {len(self.labels)} labels")
    stop = len(images_arr) if stop is None else stop
    if not 0 <= start <= stop <= len(images_arr):
      raise ValueError(f"slice [{start}, {stop}) outside {len(images_arr)} rows of {what}")
    self.start, self.stop, self.id_format = int(start), int(stop), id_format

  def _array(self) -> np.ndarray:
    if self._images is None:
      self._images = np.load(self._images_path, mmap_mode="r")
    return self._images

  def __getstate__(self):
    state = dict(self.__dict__)
    if self._images_path:
      state["_images"] = None  # re-mapped in the worker
    return state

  def __len__(self) -> int:
    return self.stop - self.start

  def example_id(self, index: int) -> str:
    return self.id_format.format(int(index))

  def fingerprint(self) -> dict:
    """The ``.npy`` file's size and mtime, or a hash of the in-memory images; the slice."""
    fp = {"kind": "arrays", "start": self.start, "stop": self.stop,
          "labels": digest(self.labels.tolist())}
    if self._images_path:
      fp["files"] = file_stats(os.path.dirname(os.fspath(self._images_path)) or ".",
                               [os.path.basename(os.fspath(self._images_path))])
    else:
      fp["images_sha256"] = hashlib.sha256(np.ascontiguousarray(self._array())).hexdigest()
    fp["digest"] = digest(fp)
    return fp

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(index)
    row = self.start + index
    return {"id": self.id_format.format(index), "label": int(self.labels[row]),
            "image": np.array(self._array()[row])}

  def __repr__(self):
    what = self._images_path or "array"
    return f"ArraySource({what!r}, rows=[{self.start}, {self.stop}))"
