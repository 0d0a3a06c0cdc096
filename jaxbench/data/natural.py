"""The natural distribution shifts of RoZ / the Taori et al. testbed, as EvalSets.

Each factory reads its set in the official on-disk layout (``root=``), or, where
TFDS has a builder, a prepared array_record TFDS dataset (``tfds_dir=``), or
finds the official folder under ``data_root`` by its usual name. Scoring rules
(datasets.md §1-3, protocol.md §1.1):

=====================  ==========================  ==================================
set                    label space                 rule
=====================  ==========================  ==================================
imagenet (val)         1000                        top-1 / top-5
imagenet_v2 (3)        1000, folders are ints      top-1 / top-5
imagenet_sketch        1000                        top-1 / top-5
imagenet_r, _a         200 (sorted wnids)          logits sub-selected to the 200
objectnet              113 (sorted folders)        2-px border crop; max over the 125
                                                   mapped ImageNet classes; images of
                                                   the other 200 classes excluded
imagenet_vid_robust    30 VID classes, multilabel  max over 288 classes; pm-0, pm-10
ytbb_robust            24 classes (5 unmapped)     max over 231 classes, -inf; pm-0/10
imagenet_val_on_X      X's space                   val images of X's ImageNet classes
=====================  ==========================  ==================================
"""
from __future__ import annotations

import os
import re
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from jaxbench import labels as labels_lib
from jaxbench.data import sources
from jaxbench.data.evalset import EvalSet
from jaxbench.metrics import pmk

LayoutError = sources.LayoutError
LabelError = sources.LabelError
DataNotFound = sources.DataNotFound


def crop_border(image: Image.Image, border: int = 2) -> Image.Image:
  """Removes ``border`` pixels on every side (ObjectNet's red border).

  Same box as testbed's ``PIL.ImageOps.crop(image, border=2)`` and wise-ft's
  ``img.crop((2, 2, w - 2, h - 2))``.
  """
  w, h = image.size
  return image.crop((border, border, w - border, h - border))


def _metadata(source, **extra) -> dict:
  meta = {"source": repr(source), "n": len(source)}
  if isinstance(source, sources.ImageFolderSource):
    meta.update(source.summary())
  if isinstance(source, sources.TfdsSource):
    meta.update(tfds=source.name, split=source.split, dropped=source.dropped)
  meta.update(extra)
  return meta


# ---------------------------------------------------------------------------
# ImageNet val (and the val-on-X-classes controls)

IMAGENET_VAL_EXPECTED = ("val/<wnid>/<image>.JPEG, or a flat folder of "
                         "ILSVRC2012_val_<8 digits>.JPEG with labels_file=")
_VAL_FILE = re.compile(r"^ILSVRC2012_val_(\d{8})\.", re.IGNORECASE)


def _tfds_validation_labels() -> str:
  import importlib.util
  spec = importlib.util.find_spec("tensorflow_datasets")
  if spec is None or not spec.submodule_search_locations:
    return ""
  return os.path.join(spec.submodule_search_locations[0], "datasets", "imagenet2012",
                      "validation_labels.txt")


def _flat_val_source(root: str, labels_file: Optional[str]) -> sources.FileSource:
  """Flat ILSVRC2012_img_val.tar extraction, labelled by a wnid-per-line file.

  Line i of the labels file is the wnid of ILSVRC2012_val_<i>, as TFDS's
  ``validation_labels.txt`` (the default, shipped with tensorflow-datasets).
  """
  labels_file = labels_file or _tfds_validation_labels()
  if not labels_file or not os.path.isfile(labels_file):
    raise labels_lib.MetadataError(
        f"imagenet: {root!r} is a flat val folder, which needs labels_file= (one wnid per "
        "line in file-number order, e.g. tensorflow_datasets/datasets/imagenet2012/"
        f"validation_labels.txt); {labels_file!r} not found")
  with open(labels_file) as f:
    lines = [line.strip() for line in f if line.strip()]
  index = labels_lib.wnid_to_index()
  if lines and lines[0] not in index:
    raise labels_lib.MetadataError(
        f"imagenet: {labels_file!r} must hold one wnid per line (got {lines[0]!r}); devkit "
        "ILSVRC2012_validation_ground_truth.txt ids are in meta.mat order, not sorted order")
  names = sorted(n for n in os.listdir(root) if _VAL_FILE.match(n))
  paths, labels = [], []
  for name in names:
    number = int(_VAL_FILE.match(name).group(1))
    if not 1 <= number <= len(lines) or lines[number - 1] not in index:
      raise LabelError(f"imagenet: no ImageNet label for {name!r} in {labels_file!r}")
    paths.append(name)
    labels.append(index[lines[number - 1]])
  return sources.FileSource(root, paths, labels, description=f"flat val folder {root}")


def _imagenet_val_source(dataset: str, root, tfds_dir, data_root, labels_file,
                         label_map: Optional[np.ndarray] = None):
  """ImageNet val as a source; with ``label_map`` only mapped classes, relabelled."""
  if root is None and tfds_dir:
    return sources.TfdsSource("imagenet2012", "validation", tfds_dir, label_map=label_map,
                              drop_unmapped=label_map is not None)
  root = sources.locate(dataset, root, data_root, ("imagenet/val", "ILSVRC2012_img_val", "val"),
                 IMAGENET_VAL_EXPECTED, "imagenet2012")
  if not os.path.isdir(root):
    raise LayoutError(f"{dataset}: data directory {root!r} does not exist (expected "
                      f"{IMAGENET_VAL_EXPECTED})")
  flat = any(_VAL_FILE.match(n) for n in os.listdir(root))
  if flat:
    src = _flat_val_source(root, labels_file)
  else:
    src = sources.ImageFolderSource(root, folder_kind="wnid", expected=IMAGENET_VAL_EXPECTED)
  if label_map is None:
    return src
  mapped = label_map[src.labels]
  keep = np.flatnonzero(mapped >= 0)
  if not len(keep):
    raise LayoutError(f"{dataset}: none of the {len(src)} images in {root!r} is in this "
                      "set's classes")
  sub = src.select(keep, f"{src.description}, {dataset} classes")
  return sub.relabel(mapped[keep])


def imagenet(root=None, tfds_dir=None, data_root=None, labels_file=None) -> EvalSet:
  """ImageNet-1k validation (50,000 images, 1000 classes)."""
  src = _imagenet_val_source("imagenet", root, tfds_dir, data_root, labels_file)
  return EvalSet(name="", source=src, num_classes=1000,
                 class_names=labels_lib.imagenet_class_names(),
                 metadata=_metadata(src, primary_metrics=("top1", "top5")))


def _control(dataset: str, projection: labels_lib.Projection, class_names, root, tfds_dir,
             data_root, labels_file, **extra) -> EvalSet:
  src = _imagenet_val_source(dataset, root, tfds_dir, data_root, labels_file,
                             label_map=projection.target_of())
  return EvalSet(name="", source=src, num_classes=projection.num_classes,
                 class_names=tuple(class_names), project=projection,
                 metadata=_metadata(src, projection=projection.name,
                                    imagenet_classes=len(projection.source_classes()),
                                    primary_metrics=("top1",), **extra))


def imagenet_val_on_r_classes(root=None, tfds_dir=None, data_root=None,
                              labels_file=None) -> EvalSet:
  """ImageNet val images of ImageNet-R's 200 classes (10,000), scored like ImageNet-R."""
  proj = labels_lib.imagenet_r_projection()
  return _control("imagenet_val_on_r_classes", proj, _subset_names(proj), root, tfds_dir,
                  data_root, labels_file)


def imagenet_val_on_a_classes(root=None, tfds_dir=None, data_root=None,
                              labels_file=None) -> EvalSet:
  """ImageNet val images of ImageNet-A's 200 classes (10,000), scored like ImageNet-A."""
  proj = labels_lib.imagenet_a_projection()
  return _control("imagenet_val_on_a_classes", proj, _subset_names(proj), root, tfds_dir,
                  data_root, labels_file)


def imagenet_val_on_objectnet_classes(root=None, tfds_dir=None, data_root=None,
                                      labels_file=None, objectnet_root=None,
                                      mappings_dir=None) -> EvalSet:
  """ImageNet val images of the 125 ObjectNet-mapped classes (6,250), in ObjectNet's space."""
  mapping = labels_lib.objectnet_mapping(_objectnet_mappings_dir(
      objectnet_root, data_root, mappings_dir,
      dataset="imagenet_val_on_objectnet_classes (ObjectNet mappings)", param="objectnet_root"))
  return _control("imagenet_val_on_objectnet_classes", mapping.projection,
                  mapping.class_names, root, tfds_dir, data_root, labels_file)


def imagenet_val_on_vid_robust_classes(root=None, tfds_dir=None, data_root=None,
                                       labels_file=None, vid_root=None) -> EvalSet:
  """ImageNet val images of the 288 VID-mapped classes (14,400), in the 30 VID classes."""
  vid_root = sources.locate("imagenet_val_on_vid_robust_classes (Vid-Robust metadata)", vid_root,
                            data_root, VID_DIRS, VID_EXPECTED, param="vid_root")
  mapping = labels_lib.vid_mapping(vid_root)
  return _control("imagenet_val_on_vid_robust_classes", mapping.projection,
                  mapping.class_names, root, tfds_dir, data_root, labels_file)


def imagenet_val_on_ytbb_robust_classes(root=None, tfds_dir=None, data_root=None,
                                        labels_file=None, ytbb_root=None,
                                        metadata_dir=None) -> EvalSet:
  """ImageNet val images of the 231 YTBB-mapped classes (11,550), in the 24 YTBB classes."""
  mapping = labels_lib.ytbb_mapping(_ytbb_metadata_dir(
      ytbb_root, data_root, metadata_dir,
      dataset="imagenet_val_on_ytbb_robust_classes (YTBB-Robust metadata)", param="ytbb_root"))
  return _control("imagenet_val_on_ytbb_robust_classes", mapping.projection,
                  mapping.class_names, root, tfds_dir, data_root, labels_file)


def _subset_names(projection: labels_lib.Projection) -> tuple[str, ...]:
  names = labels_lib.imagenet_class_names()
  return tuple(names[i] for i in projection.index[:, 0])


# ---------------------------------------------------------------------------
# ImageNetV2, -Sketch, -R, -A

IMAGENET_V2_VARIANTS = {
    # variant: (official folder, TFDS config)
    "matched-frequency": ("imagenetv2-matched-frequency-format-val", "matched-frequency"),
    "threshold-0.7": ("imagenetv2-threshold0.7-format-val", "threshold-0.7"),
    "top-images": ("imagenetv2-top-images-format-val", "topimages"),
}


def imagenet_v2(variant="matched-frequency", root=None, tfds_dir=None,
                data_root=None) -> EvalSet:
  """ImageNetV2 (10,000 images); folders ``0..999`` are class indices, read as ints.

  An older release used wnid folders; those are detected and read as wnids.
  """
  if variant not in IMAGENET_V2_VARIANTS:
    raise ValueError(f"imagenet_v2: unknown variant {variant!r}; known: "
                     f"{sorted(IMAGENET_V2_VARIANTS)}")
  folder, config = IMAGENET_V2_VARIANTS[variant]
  expected = f"{folder}/<class index 0..999>/<image>.jpeg"
  if root is None and tfds_dir:
    src = sources.TfdsSource(f"imagenet_v2/{config}", "test", tfds_dir)
  else:
    root = sources.locate("imagenet_v2", root, data_root, (folder, f"imagenetv2/{folder}"), expected,
                   f"imagenet_v2/{config}")
    # The release's kind is what most folders are; ImageFolderSource then names the
    # folders that do not fit (a stray 'tmp' among 0..999), not three valid ones.
    if not os.path.isdir(root):
      raise LayoutError(f"imagenet_v2: data directory {root!r} does not exist (expected "
                        f"{expected})")
    dirs = [e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
    n_index = sum(bool(re.match(r"^\d+$", d)) for d in dirs)
    n_wnid = sum(bool(re.match(r"^n\d{8}$", d)) for d in dirs)
    kind = "wnid" if n_wnid > n_index else "index"
    src = sources.ImageFolderSource(root, folder_kind=kind, num_classes=1000,
                                    expected=expected)
  return EvalSet(name="", source=src, num_classes=1000,
                 class_names=labels_lib.imagenet_class_names(),
                 metadata=_metadata(src, variant=variant, primary_metrics=("top1",)))


def imagenet_sketch(root=None, tfds_dir=None, data_root=None) -> EvalSet:
  """ImageNet-Sketch (50,889 images, 1000 classes): ``sketch/<wnid>/<image>.JPEG``."""
  expected = "sketch/<wnid>/<image>.JPEG"
  if root is None and tfds_dir:
    src = sources.TfdsSource("imagenet_sketch", "test", tfds_dir)
  else:
    root = sources.locate("imagenet_sketch", root, data_root,
                   ("sketch", "imagenet-sketch/sketch", "imagenet-sketch", "ImageNet-Sketch"),
                   expected, "imagenet_sketch")
    src = sources.ImageFolderSource(root, folder_kind="wnid", expected=expected)
  return EvalSet(name="", source=src, num_classes=1000,
                 class_names=labels_lib.imagenet_class_names(),
                 metadata=_metadata(src, primary_metrics=("top1", "top5")))


def _subset_set(dataset: str, projection: labels_lib.Projection, wnids, root, tfds_dir,
                data_root, candidates, tfds_name) -> EvalSet:
  expected = f"{candidates[0]}/<wnid>/<image> (200 wnid folders)"
  if root is None and tfds_dir:
    # TFDS labels these sets in the 1000-way space: map them into the 200.
    src = sources.TfdsSource(tfds_name, "test", tfds_dir, label_map=projection.target_of())
  else:
    root = sources.locate(dataset, root, data_root, candidates, expected, tfds_name)
    src = sources.ImageFolderSource(root, folder_kind="wnid", wnids=wnids, expected=expected)
  return EvalSet(name="", source=src, num_classes=200, class_names=_subset_names(projection),
                 project=projection,
                 metadata=_metadata(src, projection=projection.name,
                                    primary_metrics=("top1",)))


def imagenet_r(root=None, tfds_dir=None, data_root=None) -> EvalSet:
  """ImageNet-R (30,000 renditions of 200 classes); logits sub-selected to the 200."""
  return _subset_set("imagenet_r", labels_lib.imagenet_r_projection(),
                     labels_lib.imagenet_r_wnids(), root, tfds_dir, data_root,
                     ("imagenet-r", "imagenet_r"), "imagenet_r")


def imagenet_a(root=None, tfds_dir=None, data_root=None) -> EvalSet:
  """ImageNet-A (7,500 natural adversarial images, 200 classes); sub-selected logits."""
  return _subset_set("imagenet_a", labels_lib.imagenet_a_projection(),
                     labels_lib.imagenet_a_wnids(), root, tfds_dir, data_root,
                     ("imagenet-a", "imagenet_a"), "imagenet_a")


# ---------------------------------------------------------------------------
# ObjectNet

OBJECTNET_DIRS = ("objectnet-1.0", "objectnet")
OBJECTNET_EXPECTED = ("objectnet-1.0/images/<folder>/<image>.png with "
                      "objectnet-1.0/mappings/*.json")


def _objectnet_mappings_dir(root, data_root, mappings_dir, dataset="objectnet (mappings)",
                            param="root") -> str:
  if mappings_dir:
    return os.path.expanduser(mappings_dir)
  root = sources.locate(dataset, root, data_root, OBJECTNET_DIRS, OBJECTNET_EXPECTED,
                        param=param, alternative="mappings_dir= (objectnet-1.0/mappings)")
  return os.path.join(root, "mappings")


def objectnet(root=None, data_root=None, mappings_dir=None) -> EvalSet:
  """ObjectNet: the 113 classes overlapping ImageNet (18,514 images in 1.0-beta).

  Each image loses a 2-pixel border first; logits are max-pooled over the 125
  ImageNet classes mapped to each class (a prediction is correct when it falls
  in the folder's mapped set). Images of the other 200 classes are excluded and
  counted in the metadata.
  """
  root = sources.locate("objectnet", root, data_root, OBJECTNET_DIRS, OBJECTNET_EXPECTED)
  images = os.path.join(root, "images") if os.path.isdir(os.path.join(root, "images")) else root
  mapping = labels_lib.objectnet_mapping(mappings_dir or os.path.join(root, "mappings"))
  folder_to_label = {folder: k for k, folder in enumerate(mapping.keys)}
  src = sources.ImageFolderSource(images, folder_to_label=folder_to_label,
                                  expected=OBJECTNET_EXPECTED)
  missing = sorted(set(mapping.keys) - set(src.class_folders))
  return EvalSet(name="", source=src, num_classes=len(mapping.keys),
                 class_names=mapping.class_names, project=mapping.projection,
                 pre_transform=crop_border,
                 metadata=_metadata(src, projection=mapping.projection.name,
                                    missing_classes=missing, border_crop=2,
                                    primary_metrics=("top1",)))


# ---------------------------------------------------------------------------
# ImageNet-Vid-Robust and YTBB-Robust

VID_DIRS = ("imagenet_vid_ytbb_robust/imagenet-vid-robust", "imagenet-vid-robust")
VID_EXPECTED = ("imagenet-vid-robust/{val/<video>/<frame>.JPEG, metadata/labels.json, "
                "metadata/pmsets.json, misc/wnid_map.json, misc/imagenet_vid_class_index.json}")


def _multi_hot(label_sets: Sequence[frozenset], k: int, dataset: str, ids) -> tuple:
  hot = np.zeros((len(label_sets), k), bool)
  first = np.zeros((len(label_sets),), np.int32)
  for i, s in enumerate(label_sets):
    bad = [c for c in s if not 0 <= c < k]
    if bad or not s:
      raise LabelError(f"{dataset}: frame {ids[i]!r} has labels {sorted(s)}; expected a "
                       f"non-empty subset of 0..{k - 1}")
    hot[i, sorted(s)] = True
    first[i] = min(s)
  return hot, first


def _check_files(dataset: str, root: str, paths: Sequence[str], expected: str):
  missing = [p for p in paths if not os.path.isfile(os.path.join(root, p))]
  if missing:
    raise LayoutError(f"{dataset}: {len(missing)} of {len(paths)} frames named in the metadata "
                      f"are missing under {root!r}, e.g. {missing[:3]}; expected {expected}")


def imagenet_vid_robust(root=None, data_root=None) -> EvalSet:
  """ImageNet-Vid-Robust: 22,179 frames, 1,109 pm-k sets, 30 VID classes, multi-label.

  Records are keyed by 'val/<video>/<frame>.JPEG' (the metadata's keys); logits
  are max-pooled over the 288 mapped ImageNet classes; pm-0/pm-10 judge each
  frame against its own labels.
  """
  d = "imagenet_vid_robust"
  root = sources.locate(d, root, data_root, VID_DIRS, VID_EXPECTED)
  mapping = labels_lib.vid_mapping(root)
  frame_labels = labels_lib.load_json(os.path.join(root, "metadata", "labels.json"), d,
                                      labels_lib.VID_WHERE)
  pmsets = labels_lib.load_json(os.path.join(root, "metadata", "pmsets.json"), d,
                                labels_lib.VID_WHERE)
  sets = pmk.vid_pmsets(frame_labels, pmsets)
  keys = sorted(frame_labels)
  _check_files(d, root, keys, VID_EXPECTED)
  hot, first = _multi_hot([frozenset(int(c) for c in frame_labels[k]) for k in keys],
                          mapping.projection.num_classes, d, keys)
  src = sources.FileSource(root, keys, first, multi_hot=hot, description=f"Vid-Robust {root}")
  return EvalSet(name="", source=src, num_classes=mapping.projection.num_classes,
                 class_names=mapping.class_names, project=mapping.projection, multilabel=True,
                 sequence_metrics=("pm0", "pm10"), sequence_metric_fn=pmk.PmkMetric(sets),
                 metadata=_metadata(src, projection=mapping.projection.name,
                                    anchors=len(sets.anchors),
                                    primary_metrics=("pm0", "pm10")))


YTBB_DIRS = ("imagenet_vid_ytbb_robust/ytbb-robust", "ytbb-robust")
YTBB_EXPECTED = "ytbb-robust/ytbb_videos/<ytid>_<ms>/frame-<i>.jpg"
YTBB_FILES = ("anchor_labels.json", "pmk_labels.json", "ytbb_robustness_test_anchors_full.csv",
              "ytbb_class_index.json", "rev_class_idx_map.json")


def _ytbb_metadata_dir(root, data_root, metadata_dir, dataset="ytbb_robust (metadata)",
                       param="root") -> str:
  if metadata_dir:
    return os.path.expanduser(metadata_dir)
  root = sources.locate(dataset, root, data_root, YTBB_DIRS, YTBB_EXPECTED, param=param,
                        alternative=f"metadata_dir= (the folder holding {list(YTBB_FILES)})")
  for name in ("ytbb-robust_metadata", "metadata"):
    if os.path.isdir(os.path.join(root, name)):
      return os.path.join(root, name)
  raise labels_lib.MetadataError(
      f"{dataset.split(' ')[0]}: no metadata folder in {root!r} (looked for ytbb-robust_metadata/ and "
      f"metadata/ holding {list(YTBB_FILES)}). {labels_lib.YTBB_WHERE}")


def ytbb_robust(root=None, data_root=None, metadata_dir=None) -> EvalSet:
  """YTBB-Robust: 2,030 reviewed anchors with their valid ±10 neighbours, 24 classes.

  Only frames that some pm-k set uses are read; each carries its anchor's
  labels. Logits are max-pooled over 231 ImageNet classes into 19 classes, the
  other 5 are -inf.
  """
  d = "ytbb_robust"
  root = sources.locate(d, root, data_root, YTBB_DIRS, YTBB_EXPECTED)
  videos = os.path.join(root, "ytbb_videos")
  if not os.path.isdir(videos):
    raise LayoutError(f"{d}: {videos!r} does not exist; expected {YTBB_EXPECTED}")
  md = _ytbb_metadata_dir(root, None, metadata_dir)
  mapping = labels_lib.ytbb_mapping(md)
  where = labels_lib.YTBB_WHERE
  sets = pmk.ytbb_pmsets(
      labels_lib.load_json(os.path.join(md, "anchor_labels.json"), d, where),
      labels_lib.load_json(os.path.join(md, "pmk_labels.json"), d, where),
      labels_lib.read_csv_rows(os.path.join(md, "ytbb_robustness_test_anchors_full.csv"), d,
                               where),
      mapping.class_names)
  if not sets.anchors:
    raise LayoutError(f"{d}: the metadata in {md!r} has no valid anchors")
  # A frame's record carries the labels it is judged by (its anchor's).
  frame_sets: dict[str, frozenset] = {}
  for a in sets.anchors:
    for f in [a] + [f for _, f in sets.neighbours[a]]:
      frame_sets[f] = frame_sets.get(f, frozenset()) | sets.labels[a]
  keys = sorted(frame_sets)
  _check_files(d, videos, keys, YTBB_EXPECTED)
  hot, first = _multi_hot([frame_sets[k] for k in keys], mapping.projection.num_classes, d,
                          keys)
  src = sources.FileSource(videos, keys, first, multi_hot=hot,
                           description=f"YTBB-Robust {videos}")
  return EvalSet(name="", source=src, num_classes=mapping.projection.num_classes,
                 class_names=mapping.class_names, project=mapping.projection, multilabel=True,
                 sequence_metrics=("pm0", "pm10"), sequence_metric_fn=pmk.PmkMetric(sets),
                 metadata=_metadata(src, projection=mapping.projection.name,
                                    anchors=len(sets.anchors), metadata_dir=md,
                                    primary_metrics=("pm0", "pm10")))
