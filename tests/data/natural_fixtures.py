"""Writes tiny datasets in their official layouts and metadata formats, and a model
whose predictions the tests control.

Images are flat colours from PALETTE; the test "model" predicts from the mean
colour of the decoded (and pre-transformed) image, so what a test expects can
be computed by hand from which colour each file got.
"""
from __future__ import annotations

import csv
import io
import json
import os

import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxbench import labels as labels_lib
from jaxbench.metrics import accuracy

# Well separated colours: JPEG error (a few units) never changes the nearest one.
PALETTE = np.array([
    [230, 20, 20], [20, 200, 20], [20, 20, 230], [230, 230, 20], [20, 230, 230],
    [230, 20, 230], [120, 60, 10], [10, 120, 60], [60, 10, 120], [250, 250, 250],
    [128, 128, 128], [5, 5, 5], [180, 120, 200], [200, 180, 90], [70, 160, 200]],
    np.float32)
RED_BORDER = (255, 0, 0)
WNIDS = labels_lib.imagenet_wnids()


def write_image(path, colour, size=(8, 8), border=None):
  """A flat image of PALETTE[colour] (format from the extension, PNG otherwise)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  a = np.empty((size[1], size[0], 3), np.uint8)
  a[:] = PALETTE[colour].astype(np.uint8)
  if border:
    a[:border], a[-border:], a[:, :border], a[:, -border:] = RED_BORDER, RED_BORDER, \
        RED_BORDER, RED_BORDER
  ext = os.path.splitext(path)[1].lower()
  fmt = "JPEG" if ext in (".jpg", ".jpeg") else "PNG"
  Image.fromarray(a).save(path, fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def image_bytes(colour, fmt="PNG", size=(6, 5)):
  b = io.BytesIO()
  a = np.empty((size[1], size[0], 3), np.uint8)
  a[:] = PALETTE[colour].astype(np.uint8)
  Image.fromarray(a).save(b, fmt)
  return b.getvalue()


def write_json(path, obj):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(obj, f)


# --- the controlled model -------------------------------------------------------


class ColourModel:
  """Predicts ImageNet classes from the mean colour of an image.

  ``table[c] = (primary, secondary)``: an image nearest to PALETTE[c] gets logit
  10 on ImageNet class ``primary``, 5 on ``secondary`` (if given), 0 elsewhere.
  Colours outside the table get all-zero logits.
  """

  def __init__(self, table, num_classes=1000):
    self.table = dict(table)
    self.num_classes = num_classes

  def colour_of(self, image: np.ndarray) -> int:
    mean = image.reshape(-1, 3).astype(np.float32).mean(0)
    return int(np.argmin(((PALETTE - mean) ** 2).sum(-1)))

  def __call__(self, images) -> np.ndarray:
    out = np.zeros((len(images), self.num_classes), np.float32)
    for n, img in enumerate(images):
      entry = self.table.get(self.colour_of(img))
      if entry is None:
        continue
      primary, secondary = entry if isinstance(entry, tuple) else (entry, None)
      out[n, primary] = 10.0
      if secondary is not None:
        out[n, secondary] = 5.0
    return out


def decoded_images(evalset):
  """(ids, images uint8 list) of every record, decoded with PIL as the pipeline does."""
  ids, images = [], []
  for i in range(len(evalset.source)):
    rec = evalset.source[i]
    if "image_bytes" in rec:
      img = Image.open(io.BytesIO(rec["image_bytes"])).convert("RGB")
    else:
      img = Image.fromarray(rec["image"])
    if evalset.pre_transform is not None:
      img = evalset.pre_transform(img)
    ids.append(rec["id"])
    images.append(np.asarray(img))
  return ids, images


def evaluate(evalset, model, pad_to=16):
  """Scores ``model`` on ``evalset`` the way the runner does: project, accumulate,
  then sequence metrics from per-example predictions.

  Returns:
    (metrics dict, {id: predicted class in the set's space}).
  """
  ids, images = decoded_images(evalset)
  recs = [evalset.source[i] for i in range(len(evalset.source))]
  logits = model(images)
  n = len(ids)
  padded = -(-n // pad_to) * pad_to
  logits = np.concatenate([logits, np.zeros((padded - n, logits.shape[1]), np.float32)])
  mask = np.arange(padded) < n
  if evalset.multilabel:
    labels = np.zeros((padded, evalset.num_classes), bool)
    labels[:n] = np.stack([r["labels"] for r in recs])
  else:
    labels = np.full((padded,), -1, np.int32)
    labels[:n] = [r["label"] for r in recs]
  scored = jnp.asarray(logits)
  if evalset.project is not None:
    scored = evalset.project(scored)
  state = accuracy.update(accuracy.init(), scored, jnp.asarray(labels), jnp.asarray(mask))
  metrics = accuracy.finalize(state)
  preds = np.asarray(accuracy.predictions(scored))[:n]
  if evalset.sequence_metric_fn is not None:
    metrics.update(evalset.sequence_metric_fn(ids, preds, None))
  return metrics, dict(zip(ids, preds.tolist()))


# --- official layouts --------------------------------------------------------------


def write_wnid_tree(root, items, ext=".JPEG"):
  """root/<wnid>/<name><ext> for (wnid, name, colour) items."""
  for wnid, name, colour in items:
    write_image(os.path.join(root, wnid, name + ext), colour)


# ObjectNet: three overlapping classes (one many-to-one), one non-overlapping.
OBJECTNET_CLASSES = {
    # folder: (display name, [ImageNet sorted indices])
    "alarm_clock": ("Alarm clock", [409, 530]),      # analog clock; digital clock
    "banana": ("Banana", [954]),
    "bench": ("Bench", [703]),
}
OBJECTNET_EXTRA = {"air_freshener": "Air freshener"}   # not in ImageNet


def _id2012(p):
  """The fixture's ImageNet 2012 id of sorted index p (a permutation, as in the real file)."""
  return (p * 7 + 3) % 1000


def write_objectnet(root, items, border=2, with_mappings=True):
  """objectnet-1.0/images/<folder>/<name>.png and mappings/ in ObjectNet's formats."""
  for folder, name, colour in items:
    write_image(os.path.join(root, "images", folder, name + ".png"), colour, size=(8, 8),
                border=border)
  if not with_mappings:
    return
  m = os.path.join(root, "mappings")
  folder_to_label = {f: v[0] for f, v in OBJECTNET_CLASSES.items()}
  folder_to_label.update(OBJECTNET_EXTRA)
  write_json(os.path.join(m, "folder_to_objectnet_label.json"), folder_to_label)
  names_2012 = [f"imagenet thing {i}" for i in range(1000)]
  # Real entries hold several comma-separated synonyms; lists are '; '-joined.
  for p, text in {409: "analog clock", 530: "digital clock", 954: "banana",
                  703: "park bench"}.items():
    names_2012[_id2012(p)] = text
  with open(os.path.join(m, "imagenet_to_label_2012_v2"), "w") as f:
    f.write("\n".join(names_2012) + "\n")
  write_json(os.path.join(m, "pytorch_to_imagenet_2012_id.json"),
             {str(p): _id2012(p) for p in range(1000)})
  write_json(os.path.join(m, "objectnet_to_imagenet_1k.json"),
             {"Alarm clock": "analog clock; digital clock", "Banana": "banana",
              "Bench": "park bench"})


VID_CLASSES = ["airplane", "antelope", "bear", "bicycle", "bird", "bus", "car", "cattle", "dog",
               "domestic cat", "elephant", "fox", "giant panda", "hamster", "horse", "lion",
               "lizard", "monkey", "motorcycle", "rabbit", "red panda", "sheep", "snake",
               "squirrel", "tiger", "train", "turtle", "watercraft", "whale", "zebra"]
# VID class -> ImageNet sorted indices (airliner; three birds; two dogs; one stand-in
# class 600 + k for each other class k, so that, as in the real data, every VID class
# has an ImageNet class).
VID_MAP = {k: [600 + k] for k in range(30)}
VID_MAP.update({0: [404], 4: [10, 11, 12], 8: [151, 152]})


def write_vid(root, frames, pmsets):
  """imagenet-vid-robust/{val, metadata, misc} with frames {key: (labels, colour)}."""
  for key, (_, colour) in frames.items():
    write_image(os.path.join(root, key), colour)
  write_json(os.path.join(root, "metadata", "labels.json"),
             {k: list(v[0]) for k, v in frames.items()})
  write_json(os.path.join(root, "metadata", "pmsets.json"), pmsets)
  vid_wnids = [f"n0{9000000 + i}" for i in range(30)]
  write_json(os.path.join(root, "misc", "imagenet_vid_class_index.json"),
             {str(i): [vid_wnids[i], VID_CLASSES[i]] for i in range(30)})
  write_json(os.path.join(root, "misc", "wnid_map.json"),
             {WNIDS[i]: vid_wnids[k] for k, idx in VID_MAP.items() for i in idx})


YTBB_CLASSES = ["person", "bird", "bicycle", "boat", "bus", "bear", "cow", "cat", "giraffe",
                "potted plant", "horse", "motorcycle", "knife", "airplane", "skateboard",
                "train", "truck", "zebra", "toilet", "dog", "elephant", "umbrella", "none",
                "car"]
# YTBB class -> ImageNet indices; 6, 8, 14, 18 and 22 have none.
YTBB_MAP = {0: [0], 1: [10, 11], 13: [404], 19: [151, 152], 23: [436, 817]}


def write_ytbb(root, frames, anchors, pairs, csv_rows, metadata_name="ytbb-robust_metadata",
               skip=()):
  """ytbb-robust/ytbb_videos/<key> frames and the testbed's metadata files.

  Args:
    frames: {key: colour}.
    anchors: [(key, [label names])] for anchor_labels.json.
    pairs: [(anchor key, frame key, [label names])] for pmk_labels.json.
    csv_rows: [(ytid, time_ms, label)].
    skip: metadata file names not to write.
  """
  for key, colour in frames.items():
    write_image(os.path.join(root, "ytbb_videos", key), colour)
  md = os.path.join(root, metadata_name)
  os.makedirs(md, exist_ok=True)
  anchor_names = ["good", "unsure", "bad"] + YTBB_CLASSES
  pair_names = ["similar", "dissimilar", "problematic", "incorrect", "dont know",
                "deformation", "background-change", "occlusion-increased", "blur-increase",
                "bad-anchor", "correct"]
  files = {
      "anchor_labels.json": {"labels": anchor_names, "annotations": [
          {"key": f"/some/where/ytbb_videos/{k}", "labels": [anchor_names.index(n) for n in ns],
           "notes": ""} for k, ns in anchors]},
      "pmk_labels.json": {"labels": pair_names, "annotations": [
          {"key": f"{a},{f}", "labels": [pair_names.index(n) for n in ns]}
          for a, f, ns in pairs]},
      "ytbb_class_index.json": {str(i): n for i, n in enumerate(YTBB_CLASSES)},
      "rev_class_idx_map.json": {str(k): v for k, v in YTBB_MAP.items()},
      "class_idx_map.json": {str(i): k for k, v in YTBB_MAP.items() for i in v},
  }
  for name, obj in files.items():
    if name not in skip:
      write_json(os.path.join(md, name), obj)
  if "ytbb_robustness_test_anchors_full.csv" not in skip:
    with open(os.path.join(md, "ytbb_robustness_test_anchors_full.csv"), "w", newline="") as f:
      w = csv.writer(f)
      w.writerow(["ytid", "time_ms", "label"])
      w.writerows(csv_rows)


def write_all(data_root):
  """One or two images of every natural set and control under their official names."""
  from jaxbench.data import natural
  d = str(data_root)
  a, r = labels_lib.imagenet_a_wnids(), labels_lib.imagenet_r_wnids()
  write_wnid_tree(os.path.join(d, "imagenet", "val"), [
      (WNIDS[i], f"ILSVRC2012_val_{n:08d}", n % 10)
      for n, i in enumerate([0, 1, 409, 530, 152, 817, 6, 954], start=1)])
  for variant, (folder, _) in natural.IMAGENET_V2_VARIANTS.items():
    for cls in ("0", "10", "2"):
      write_image(os.path.join(d, folder, cls, "abc.jpeg"), int(cls) % 10)
  write_wnid_tree(os.path.join(d, "imagenet-r"), [(r[0], "r0", 0), (r[5], "r5", 1)], ".jpg")
  write_wnid_tree(os.path.join(d, "imagenet-a"), [(a[0], "a0", 0), (a[7], "a7", 2)], ".jpg")
  write_wnid_tree(os.path.join(d, "sketch"), [(WNIDS[3], "s3", 3)])
  write_objectnet(os.path.join(d, "objectnet-1.0"), [
      ("alarm_clock", "c", 0), ("banana", "b", 1), ("air_freshener", "x", 2)])
  vid = os.path.join(d, "imagenet_vid_ytbb_robust", "imagenet-vid-robust")
  f = "val/ILSVRC2015_val_00000001/{:06d}.JPEG"
  write_vid(vid, {f.format(1): ([4], 0), f.format(2): ([4, 8], 1), f.format(9): ([0], 2)},
            {f.format(1): [f.format(2)], f.format(9): []})
  ytbb = os.path.join(d, "imagenet_vid_ytbb_robust", "ytbb-robust")
  write_ytbb(ytbb, {"v_10/frame-3.jpg": 0, "v_10/frame-4.jpg": 1, "w_20/frame-3.jpg": 2},
             [("v_10/frame-3.jpg", ["good"]), ("w_20/frame-3.jpg", ["good", "dog"])],
             [("v_10/frame-3.jpg", "v_10/frame-4.jpg", ["similar"])],
             [("v", 10, 1), ("w", 20, 0)])
