"""The results-row conventions the report reads, and the parsers that apply them.

The runner writes one row per (model, dataset, transform, metric) into
``workdir/results.jsonl`` (:mod:`jaxbench.store`). The report reads these fields:

* ``model``: model spec; ``model_info.kind`` ('zeroshot' | 'supervised'),
  ``model_info.preprocess``, ``model_info.precision``, ``model_info.head``
  (``classnames``, ``templates``) tell variants of one model apart.
* ``suite``: one of :data:`KNOWN_SUITES`; rows of other suites are listed in a
  generic table, with a note, and enter no summary.
* ``dataset``: dataset spec; its registry name (``jaxbench.registry.parse``) plus
  its non-path arguments label the column (``root=``, ``data_dir=`` ... are dropped:
  they only locate a published set). Sets defined by their folder
  (:data:`PATH_DEFINED_DATASETS`, e.g. ``image_folder(root=...)``) keep the folder
  in their identity and are labelled ``image_folder [<folder basename>]``, with more
  of the path where two basenames are equal (:func:`dataset_identity`).
* ``transform``: ``'clean'``, ``'shift:<spec>'`` or ``'attack:<spec>'`` (canonical
  specs, :mod:`jaxbench.transforms`).
* ``metric``: a name from :data:`METRIC_ALIASES` (aliases are mapped); ``value`` a
  float, a fraction in [0, 1] for the accuracy-like metrics of :data:`FRACTION_METRICS`.

What each summary looks for is :data:`CONVENTIONS_MD` (also printed in every report,
so that the runner and the suites can be aligned with it).
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Optional

from jaxbench import registry
from jaxbench.metrics import imagenet_c as _imagenet_c

KNOWN_SUITES = ("zeroshot", "natural", "synthetic", "typographic", "adv", "overlap",
                "clip_auto")

# alias -> canonical metric name
METRIC_ALIASES = {
    "acc": "top1", "accuracy": "top1", "top1_acc": "top1", "top-1": "top1",
    "top-5": "top5", "top5_acc": "top5",
    "pm-0": "pm0", "pm_0": "pm0", "pm-10": "pm10", "pm_10": "pm10",
    "robust_accuracy": "robust_acc", "clean_accuracy": "clean_acc",
    "asr": "success_rate", "attack_success_rate": "success_rate",
    "fp": "flip_prob", "fr": "flip_prob", "flip_rate": "flip_prob",
    "flip_probability": "flip_prob", "top5_dist": "t5d", "top5_distance": "t5d",
    "top1_overlap": "acc_overlap", "top1_clean_subset": "acc_clean_subset",
    "acc_nonoverlap": "acc_clean_subset", "top1_nonoverlap": "acc_clean_subset",
}
FRACTION_METRICS = ("top1", "top5", "pm0", "pm10", "robust_acc", "clean_acc",
                    "success_rate", "acc_overlap", "acc_clean_subset", "overlap_rate")

# Dataset-spec arguments that locate files rather than select data.
PATH_ARGS = ("root", "data_dir", "data_root", "labels_file", "path", "dir", "cache_dir",
             "manifest", "tfds_dir", "download_dir", "frost_dir", "src", "workers")

# Sets whose data is whatever their folder holds: {registry name: path argument}.
# The folder is part of their identity (two image folders are two datasets).
PATH_DEFINED_DATASETS = {"image_folder": "root"}

# Controls: val restricted to a shift's classes (issue 4's catalog names).
CONTROL_OF = {
    "imagenet_r": "imagenet_val_on_r_classes",
    "imagenet_a": "imagenet_val_on_a_classes",
    "objectnet": "imagenet_val_on_objectnet_classes",
}


@dataclasses.dataclass(frozen=True)
class ShiftAxes:
  """Where a shift's effective-robustness coordinates come from (clean rows)."""
  name: str          # shift name; also the key of the shipped testbed fit
  title: str
  x_dataset: str     # dataset registry name of the ID axis
  x_metric: str
  y_dataset: str     # dataset registry name of the OOD axis
  y_metric: str


# protocol.md section 3.1: V2/Sketch (and Stylized) on val; R/A/ObjectNet on val
# restricted to their classes; the video sets pm-10 on pm-0.
SHIFT_AXES = (
    ShiftAxes("imagenet_v2", "ImageNetV2", "imagenet", "top1", "imagenet_v2", "top1"),
    ShiftAxes("imagenet_r", "ImageNet-R", CONTROL_OF["imagenet_r"], "top1", "imagenet_r",
              "top1"),
    ShiftAxes("objectnet", "ObjectNet", CONTROL_OF["objectnet"], "top1", "objectnet", "top1"),
    ShiftAxes("imagenet_sketch", "ImageNet-Sketch", "imagenet", "top1", "imagenet_sketch",
              "top1"),
    ShiftAxes("imagenet_a", "ImageNet-A", CONTROL_OF["imagenet_a"], "top1", "imagenet_a",
              "top1"),
    ShiftAxes("imagenet_vid_robust", "ImageNet-Vid-Robust (pm-10 vs pm-0)",
              "imagenet_vid_robust", "pm0", "imagenet_vid_robust", "pm10"),
    ShiftAxes("ytbb_robust", "YTBB-Robust (pm-10 vs pm-0)", "ytbb_robust", "pm0",
              "ytbb_robust", "pm10"),
    ShiftAxes("stylized_imagenet", "Stylized-ImageNet", "imagenet", "top1",
              "stylized_imagenet", "top1"),
    ShiftAxes("cifar10_1", "CIFAR-10.1", "cifar10", "top1", "cifar10_1", "top1"),
)
NATURAL_SHIFTS = ("imagenet_v2", "imagenet_r", "objectnet", "imagenet_sketch",
                  "imagenet_a", "imagenet_vid_robust", "ytbb_robust")

# ImageNet-C: the 15 benchmark corruptions and AlexNet's mean error over severities
# 1-5, and AlexNet's clean error: one home, jaxbench.metrics.imagenet_c.
IMAGENET_C_ALEXNET_ERR = dict(_imagenet_c.ALEXNET_ERR)
EXTRA_CORRUPTIONS = _imagenet_c.EXTRA
ALEXNET_CLEAN_ERR = _imagenet_c.ALEXNET_CLEAN_ERR
IMAGENET_P_PERTURBATIONS = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur",
                            "spatter", "brightness", "translate", "rotate", "tilt", "scale",
                            "speckle_noise", "gaussian_blur", "snow", "shear")

TYPOGRAPHIC_SETS = {"imagenet_t": "imagenet", "cifar10_t": "cifar10", "digits_t": "digits"}


def canonical_metric(name: str) -> str:
  return METRIC_ALIASES.get(name.strip().lower(), name.strip())


def _spec_parts(spec: str) -> tuple[str, tuple, dict]:
  try:
    return registry.parse(spec)
  except registry.SpecError:
    return spec.strip(), (), {}


def _defining_path(name: str, args: tuple, kwargs: dict) -> tuple[Optional[str], tuple, dict]:
  """(the folder that defines a path-defined set, other args, other kwargs)."""
  param = PATH_DEFINED_DATASETS.get(name)
  if param is None:
    return None, args, kwargs
  kwargs = dict(kwargs)
  if param in kwargs:
    path = kwargs.pop(param)
  elif args:
    path, args = args[0], args[1:]
  else:
    return None, args, kwargs
  path = str(path)
  return os.path.normpath(os.path.expanduser(path)) if path else path, args, kwargs


def _tail(path: str, depth: int) -> str:
  parts = [p for p in path.replace("\\", "/").split("/") if p]
  return "/".join(parts[-depth:]) if parts else path


def dataset_identity(spec: str) -> str:
  """What makes two dataset specs the same data: name and non-path arguments, and
  for path-defined sets (``image_folder``) also the (normalised) folder."""
  name, args, kwargs = _spec_parts(spec)
  path, args, kwargs = _defining_path(name, args, kwargs)
  kwargs = {k: v for k, v in kwargs.items() if k not in PATH_ARGS}
  if path is not None:
    kwargs = {**kwargs, PATH_DEFINED_DATASETS[name]: path}
  return registry.format_spec(name, args, kwargs)


def dataset_label(spec: str, depth: int = 1) -> str:
  """Column label of a dataset spec: name and non-path arguments, canonical; for
  path-defined sets plus ``[last depth components of the folder]``."""
  name, args, kwargs = _spec_parts(spec)
  path, args, kwargs = _defining_path(name, args, kwargs)
  kwargs = {k: v for k, v in kwargs.items() if k not in PATH_ARGS}
  label = registry.format_spec(name, args, kwargs)
  return label if path is None else f"{label} [{_tail(path, depth)}]"


def dataset_labels(specs) -> dict[str, str]:
  """{spec: readable column label}, distinct for distinct :func:`dataset_identity`.

  Two folders with equal basenames get more of their paths ('a/val', 'b/val');
  identities that still collide are numbered.
  """
  ids = {spec: dataset_identity(spec) for spec in specs}
  label_of = {i: dataset_label(s) for s, i in ids.items()}
  spec_of = {i: s for s, i in ids.items()}
  for depth in range(2, 64):
    groups: dict[str, list[str]] = {}
    for i, label in label_of.items():
      groups.setdefault(label, []).append(i)
    clash = [g for g in groups.values() if len(g) > 1]
    if not clash:
      break
    for group in clash:
      for i in group:
        label_of[i] = dataset_label(spec_of[i], depth)
  seen: dict[str, int] = {}
  for i in sorted(label_of):
    label = label_of[i]
    seen[label] = seen.get(label, 0) + 1
    if seen[label] > 1:
      label_of[i] = f"{label} #{seen[label]}"
  return {spec: label_of[i] for spec, i in ids.items()}


def dataset_name(spec: str) -> str:
  return _spec_parts(spec)[0]


@dataclasses.dataclass(frozen=True)
class TransformInfo:
  """A parsed transform column: kind ('clean'|'shift'|'attack'), name, args."""
  kind: str
  name: str = ""
  args: tuple = ()
  kwargs: Any = None          # dict, kept hashable-free on purpose
  spec: str = "clean"         # canonical inner spec ('' for clean)

  def kw(self) -> dict:
    return dict(self.kwargs or {})


def parse_transform(transform: str) -> TransformInfo:
  """'clean' | 'shift:<spec>' | 'attack:<spec>' (a bare spec counts as a shift)."""
  t = (transform or "clean").strip()
  if t == "clean":
    return TransformInfo("clean")
  kind, sep, inner = t.partition(":")
  if not sep or kind not in ("shift", "attack"):
    kind, inner = "shift", t
  name, args, kwargs = _spec_parts(inner)
  return TransformInfo(kind, name, args, kwargs, registry.format_spec(name, args, kwargs))


def _first(d: dict, *keys):
  for k in keys:
    if k in d and d[k] is not None:
      return d[k]
  return None


def corruption_of(dataset_spec: str, transform: str,
                  details: Optional[dict] = None) -> Optional[tuple[str, str, int]]:
  """(family, corruption, severity) of an ImageNet-C / CIFAR-10-C style row, or None.

  Recognised spellings (``details['corruption'/'severity']`` win over spec arguments):
    * dataset ``imagenet_c(corruption='fog', severity=3, ...)`` (also cifar10_c, or a
      name ``imagenet_c/fog`` with ``severity=``): family 'imagenet_c';
    * transform ``shift:<corruption>(severity=3)`` with a known corruption name, or
      ``shift:imagenet_c(corruption='fog', severity=3)`` / ``shift:corrupt(...)``:
      family '<dataset label>+generated'.
  """
  details = details or {}
  dname, dargs, dkw = _spec_parts(dataset_spec)
  t = parse_transform(transform)
  known = set(IMAGENET_C_ALEXNET_ERR) | set(EXTRA_CORRUPTIONS)

  def sev(v):
    try:
      return int(v)
    except (TypeError, ValueError):
      return None

  base = dname.split("/")[0]
  if base in ("imagenet_c", "cifar10_c", "imagenet2012_corrupted", "cifar10_corrupted"):
    c = _first(details, "corruption") or _first(dkw, "corruption") or (
        dname.split("/", 1)[1] if "/" in dname else None)
    s = sev(_first(details, "severity") or _first(dkw, "severity"))
    if c and s is not None:
      return base, str(c), s
  if t.kind == "shift":
    kw = t.kw()
    if t.name in known:
      s = sev(_first(details, "severity") or _first(kw, "severity") or
              (t.args[0] if t.args else None))
      if s is not None:
        return f"{dataset_label(dataset_spec)}+generated", t.name, s
    if t.name in ("imagenet_c", "corrupt", "corruption", "cifar10_c"):
      c = _first(details, "corruption") or _first(kw, "corruption", "name") or (
          t.args[0] if t.args else None)
      s = sev(_first(details, "severity") or _first(kw, "severity") or
              (t.args[1] if len(t.args) > 1 else None))
      if c and s is not None:
        return f"{dataset_label(dataset_spec)}+generated", str(c), s
  return None


def perturbation_of(dataset_spec: str, transform: str,
                    details: Optional[dict] = None) -> Optional[tuple[str, int]]:
  """(perturbation, difficulty) of an ImageNet-P row, or None.

  Dataset ``imagenet_p(perturbation='rotate', difficulty=1)`` (or transform
  ``shift:imagenet_p(...)``); ``details`` win. Difficulty defaults to 1.
  """
  details = details or {}
  dname, _, dkw = _spec_parts(dataset_spec)
  t = parse_transform(transform)
  for name, kw in ((dname, dkw), (t.name, t.kw())):
    if name.split("/")[0] in ("imagenet_p", "imagenet_p_generated"):
      p = _first(details, "perturbation") or _first(kw, "perturbation") or (
          name.split("/", 1)[1] if "/" in name else None)
      d = _first(details, "difficulty") or _first(kw, "difficulty") or 1
      if p:
        return str(p), int(d)
  return None


def attack_of(transform: str, details: Optional[dict] = None
              ) -> Optional[tuple[str, Optional[float]]]:
  """(attack family label, epsilon) of an attack transform, or None.

  The family is the canonical attack spec without its epsilon argument (``eps`` or
  ``epsilon``), so one family's rows at several epsilons form one curve; epsilon
  comes from the spec or from ``details['eps']``.
  """
  t = parse_transform(transform)
  if t.kind != "attack":
    return None
  kw = t.kw()
  eps = None
  for k in ("eps", "epsilon"):
    if k in kw:
      eps = kw.pop(k)
  if eps is None and details:
    eps = _first(details, "eps", "epsilon")
  try:
    eps = None if eps is None else float(eps)
  except (TypeError, ValueError):
    eps = None
  return registry.format_spec(t.name, t.args, kw), eps


def typographic_of(suite: str, dataset_spec: str, transform: str
                   ) -> Optional[tuple[str, str]]:
  """(typographic set label, clean dataset registry name) or None.

  A row is typographic when its dataset is ``imagenet_t``/``cifar10_t`` (clean set:
  ``imagenet``/``cifar10``), or its transform is ``shift:typographic...`` (clean
  set: the row's own dataset), or its suite is 'typographic' with a non-clean
  transform.
  """
  dname = dataset_name(dataset_spec)
  if dname in TYPOGRAPHIC_SETS:
    return dataset_label(dataset_spec), TYPOGRAPHIC_SETS[dname]
  t = parse_transform(transform)
  if (t.kind == "shift" and t.name.startswith("typographic")) or (
      suite == "typographic" and t.kind != "clean"):
    return f"{dataset_label(dataset_spec)}+{t.spec}", dname
  return None


def short_preprocess(spec: str) -> str:
  """Compact preprocessing label: CLIP/ImageNet mean-std named instead of printed."""
  s = spec or "?"
  s = re.sub(r"norm\(mean=\(0\.48145466, 0\.4578275, 0\.40821073\),"
             r"std=\(0\.26862954, 0\.26130258, 0\.27577711\)\)", "norm(clip)", s)
  s = re.sub(r"norm\(mean=\(0\.485, 0\.456, 0\.406\),std=\(0\.229, 0\.224, 0\.225\)\)",
             "norm(imagenet)", s)
  return s


CONVENTIONS_MD = """\
Rows are read from each workdir's `results.jsonl` (one JSON object per line).

| field | how the report uses it |
|---|---|
| `model` | row label (the runner's `spec@option=value` labels are kept as they are); rows of one `model` string with different `model_info.preprocess`, `model_info.precision` or head `templates` become separate labelled rows (`--variants=separate`, default) or stop the report (`--variants=refuse`); head `classnames` may differ per dataset (a set's own class names) and are listed in Provenance |
| `model_info.kind` | `zeroshot` or `supervised`: marks the scatter plots; supervised models make the second (user) effective-robustness baseline |
| `suite` | one of `zeroshot natural synthetic typographic adv overlap clip_auto`; other suites are shown raw in *Other results* and enter no summary |
| `dataset` | column label = registry name + non-path args (`root`, `data_dir`, `path` ... dropped); `image_folder(root=...)` sets are told apart by their folder: `image_folder [basename]` (more of the path when basenames are equal) |
| `transform` | `clean`, `shift:<spec>`, `attack:<spec>` (canonical specs) |
| `metric`, `value` | fractions in [0, 1] for `top1 top5 pm0 pm10 robust_acc clean_acc success_rate acc_overlap acc_clean_subset overlap_rate`; aliases such as `acc`, `pm-10`, `asr` are mapped |

What each summary looks for:

* **Clean and natural shifts**: `transform=clean`, metric `top1` (`pm0`, `pm10` for `imagenet_vid_robust`, `ytbb_robust`) on `imagenet`, `imagenet_v2`, `imagenet_r`, `objectnet`, `imagenet_sketch`, `imagenet_a`, `imagenet_vid_robust`, `ytbb_robust`, `stylized_imagenet` and the controls `imagenet_val_on_{r,a,objectnet,vid_robust,ytbb_robust}_classes` (any other clean dataset gets a column too).
* **Effective robustness** (per shift): x = ID axis, y = OOD axis, both clean rows: V2, Sketch, Stylized on `imagenet` top1; R, A, ObjectNet on `imagenet_val_on_<r|a|objectnet>_classes` top1; Vid-Robust and YTBB-Robust pm10 on pm0; CIFAR-10.1 on `cifar10`; corruptions (mean top1 over all corruption rows of a dataset) on that dataset's clean top1. Baselines, both reported and named: the ImageNet testbed's fit (85 STANDARD models, primary by default) and a fit over >= 3 supervised models of the results (second table); `--baseline=user` makes the latter primary. ImageNetV2 variants and ImageNet-C corruptions (mean of 5 severities, on-disk) use the testbed's matching fits.
* **Relative robustness**: pairs `A=>B` (`--pairs`); default RoZ's RN50=>ResNet-50, RN101=>ResNet-101, RN50x4=>EfficientNet-B3, ViT-B/32=>ViT-B/32@384 (matched on the model spec and kind; among several matches the one with hand-written prompts and no runner `@option` suffix), plus CLIP-Auto=>CLIP for each zero-shot model with a learned-prompt variant (suite `clip_auto`, head `templates` containing `auto`/`learned`, or a runner label `spec@templates=learned:...`) and a plain one.
* **ImageNet-C** (suite `synthetic`): corruption and severity from `details.corruption/severity`, or dataset `imagenet_c(corruption='fog', severity=3)` (also `cifar10_c`, `imagenet_c/fog`), or transform `shift:fog(severity=3)` / `shift:imagenet_c(corruption='fog', severity=3)` (labelled *generated*, never mixed with on-disk rows); metric `top1`. mCE and relative mCE over the 15 benchmark corruptions with AlexNet's errors; clean error from the same dataset's clean `top1` (`imagenet` for on-disk ImageNet-C).
* **ImageNet-P**: dataset (or transform) `imagenet_p(perturbation='rotate', difficulty=1)`, metrics `flip_prob` and `t5d`; mFR/mT5D normalised by the model named by `--mfr_reference` (default: a model whose name contains `alexnet`), else unnormalised means.
* **Adversarial** (transform `attack:<spec>`): family = spec without `eps`/`epsilon`, epsilon from the spec or `details.eps`; metrics `robust_acc`, `clean_acc`, `success_rate`, anything else shown raw.
* **Typographic**: dataset `imagenet_t`/`cifar10_t` (clean reference `imagenet`/`cifar10`) or transform `shift:typographic...` (clean reference: same dataset); metrics `top1` (true class) and `success_rate` (written class); per-variant `top1/<variant>`, `success_rate/<variant>` get a column group each. The clean reference must come from the same model label (same preprocessing), else the cell is listed as missing.
* **Overlap** (suite `overlap`): metrics `overlap_rate`, `acc_overlap`, `acc_clean_subset` per (model, dataset); the full-set accuracy from the clean `top1` row.
"""
