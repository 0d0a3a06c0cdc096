"""Evaluation sets of the demo: ``digits`` and its typographic attack ``digits_t``.

Registered in :data:`jaxbench.data.catalog.DATASETS` when this module is imported:

  digits(split='test', size=32)
      scikit-learn's handwritten digits (:mod:`jaxbench.demo.digits`), records
      {'id': 'digits/0123', 'label', 'image': uint8 (size, size, 3)}; 10 classes
      named by their words; label space 'digits10' (the CNN baseline's).
  digits_t(split='test', size=32, seed=0, variants=('word', 'numeral'))
      the same images with a *different* digit's word ('seven', centred across
      the image) or numeral ('7', at a random place) written on them in white:
      the typographic attack of RoZ on digits. Records add 'written_label',
      'variant' and 'typographic_text'; ids are '<variant>/digits/0123'. Besides
      top-1 (true class) the set reports ``success_rate`` (the written class is
      predicted) and, with several variants, 'top1/<variant>',
      'success_rate/<variant>' (:mod:`jaxbench.metrics.typographic`).

The written class and the position come from (seed, example id) only.
"""
from __future__ import annotations

import functools
import zlib
from typing import Sequence

import numpy as np

from jaxbench.data import catalog
from jaxbench.data.evalset import EvalSet
from jaxbench.demo import digits

LABEL_SPACE = "digits10"
VARIANTS = {
    # name: (text form, write_text keyword arguments)
    "word": ("word", {"placement": "center", "width_frac": 0.9}),
    "numeral": ("numeral", {"placement": "random", "height_frac": 0.45}),
}


class ArraySource:
  """Random-access records over in-memory arrays (grain RandomAccessDataSource)."""

  def __init__(self, images: np.ndarray, labels: np.ndarray, ids: Sequence[str],
               extra: Sequence[dict] = ()):
    if not len(images) == len(labels) == len(ids):
      raise ValueError(f"{len(images)} images, {len(labels)} labels, {len(ids)} ids")
    self._images, self._labels, self._ids = images, labels, list(ids)
    self._extra = list(extra)

  def __len__(self) -> int:
    return len(self._ids)

  def __getitem__(self, index: int) -> dict:
    rec = {"id": self._ids[index], "label": int(self._labels[index]),
           "image": self._images[index]}
    if self._extra:
      rec.update(self._extra[index])
    return rec

  def __repr__(self) -> str:
    return f"ArraySource({len(self)} records)"


def _check(split: str, size) -> None:
  if split not in digits.SPLITS:
    raise ValueError(f"digits split={split!r}: expected one of {digits.SPLITS}")
  if not isinstance(size, int) or isinstance(size, bool) or size < 8:
    raise ValueError(f"digits size={size!r}: expected an int >= 8 (pixels)")


@catalog.register("digits")
def digits_set(split: str = "test", size: int = 32) -> EvalSet:
  """scikit-learn's digits, one split, upscaled to ``size`` (see module docstring)."""
  _check(split, size)
  images, labels, ids = digits.load(split, size)
  return EvalSet(name="", source=ArraySource(images, labels, ids),
                 num_classes=digits.NUM_CLASSES, class_names=digits.WORDS,
                 model_label_space=LABEL_SPACE,
                 metadata={"source": "sklearn.datasets.load_digits", "split": split,
                           "size": size, "n": len(ids)})


def written_label(seed: int, example: str, label: int) -> int:
  """The class written on an example: uniform over the other nine, from (seed, id)."""
  rng = np.random.default_rng([seed, zlib.crc32(example.encode("utf-8")), 1])
  return int((label + 1 + rng.integers(digits.NUM_CLASSES - 1)) % digits.NUM_CLASSES)


@functools.lru_cache(maxsize=4)
def _render(split: str, size: int, seed: int, variants: tuple) -> tuple:
  images, labels, ids = digits.load(split, size)
  out_images, out_labels, out_ids, extra = [], [], [], []
  for v in variants:
    form, kwargs = VARIANTS[v]
    for img, y, i in zip(images, labels, ids):
      w = written_label(seed, i, int(y))
      text = digits.text_of(w, form)
      rng = np.random.default_rng([seed, zlib.crc32(f"{v}/{i}".encode("utf-8")), 2])
      out_images.append(digits.write_text(img, text, rng, **kwargs))
      out_labels.append(int(y))
      out_ids.append(f"{v}/{i}")
      extra.append({"written_label": w, "variant": v, "typographic_text": text})
  arr = np.stack(out_images)
  arr.flags.writeable = False
  return arr, np.asarray(out_labels, np.int64), tuple(out_ids), tuple(extra)


def _typo_metrics(table: dict, ids, preds, correct=None) -> dict:
  """EvalSet.sequence_metric_fn: success rate (and per-variant metrics) from predictions."""
  del correct
  from jaxbench.metrics import typographic as typo_metrics
  rows = [table[i] for i in ids]
  s = typo_metrics.summarize(np.asarray(preds), [r[0] for r in rows], [r[1] for r in rows],
                             [r[2] for r in rows])
  out = typo_metrics.flat_metrics(s)
  out.pop("top1")   # the runner's own top1 row is the same number
  return out


@catalog.register("digits_t")
def digits_t(split: str = "test", size: int = 32, seed: int = 0,
             variants: Sequence[str] = ("word", "numeral")) -> EvalSet:
  """The typographic attack on digits (see module docstring)."""
  _check(split, size)
  variants = (variants,) if isinstance(variants, str) else tuple(variants)
  bad = [v for v in variants if v not in VARIANTS]
  if bad or not variants or len(set(variants)) != len(variants):
    raise ValueError(f"digits_t variants={variants!r}: expected distinct names from "
                     f"{sorted(VARIANTS)}")
  if not isinstance(seed, int) or isinstance(seed, bool):
    raise ValueError(f"digits_t seed={seed!r}: expected an int")
  images, labels, ids, extra = _render(split, size, seed, variants)
  table = {i: (int(y), e["written_label"], e["variant"]) for i, y, e in zip(ids, labels, extra)}
  metrics = ("success_rate",)
  if len(variants) > 1:
    metrics += tuple(f"{m}/{v}" for v in sorted(variants) for m in ("top1", "success_rate"))
  return EvalSet(name="", source=ArraySource(images, labels, ids, extra),
                 num_classes=digits.NUM_CLASSES, class_names=digits.WORDS,
                 model_label_space=LABEL_SPACE, sequence_metrics=metrics,
                 sequence_metric_fn=functools.partial(_typo_metrics, table),
                 metadata={"source": "sklearn.datasets.load_digits", "split": split,
                           "size": size, "seed": seed, "variants": list(variants),
                           "n": len(ids), "suite": "typographic",
                           "clean_dataset": "digits"})
