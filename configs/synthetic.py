r"""Synthetic distribution shifts: ImageNet-C, ImageNet-P, Stylized-ImageNet (and cue conflict).

    python -m jaxbench.main --config=configs/synthetic.py --workdir=runs/synthetic \
      --config.data_root=/data --config.models="['clip_vit_b32']"

``--config.imagenet_c.source`` picks where ImageNet-C comes from:

  disk       the official JPEGs, data_root/imagenet-c/<corruption>/<severity>/<wnid>/*.JPEG
             (or --config.imagenet_c.root=...): datasets
             ``imagenet_c(corruption=..., severity=...)``, one per set.
  tfds       TFDS ``imagenet2012_corrupted/<c>_<s>`` from --config.imagenet_c.tfds_dir
             (a TFDS regeneration, keyed ``imagenet2012_corrupted(...)``).
  generated  corruptions computed on the fly on ImageNet val (device-side where
             possible), as transforms ``shift:imagenet_c(corruption=..., severity=...,
             jpeg_quality=85)`` on dataset ``imagenet``: results carry the
             transform, never mixed with the on-disk rows. jpeg_quality=85 adds
             the official files' JPEG save, so that generated and on-disk
             numbers are comparable (row details['shift'] records it).

Clean ImageNet val (``imagenet``, from data_root or --config.imagenet.root /
--config.imagenet.tfds_dir) is always evaluated: relative mCE needs its error.

The runner crosses every dataset with every transform, so in generated mode
only ImageNet-C (on ImageNet val) is planned; run ImageNet-P / Stylized /
cue conflict with another source mode or ``--config.parts=imagenet_p,stylized``.

Sections (all fields overridable on the command line):
  parts            comma list of imagenet_c, imagenet_p, stylized, cue_conflict
                   (default imagenet_c,imagenet_p,stylized: RoZ's ImageNet-C and
                   Stylized-ImageNet, and ImageNet-P, the likely third shift).
  imagenet_c       source, root, tfds_dir, corruptions ('benchmark' = the 15,
                   'all' = + the 4 extra, or a comma list), severities ('1,2,3,4,5'),
                   preprocess ('center_crop' = hendrycks test.py, 'resize_crop').
  imagenet_p       source (disk | generated), root, perturbations ('all' or a
                   comma list), difficulties ('1' or e.g. '1,2,3'), seed and
                   max_images (generated only).
  stylized         root (default: data_root/stylized_imagenet[/val]).
  cue_conflict     tfds_dir of TFDS geirhos_conflict_stimuli (shape bias).
  imagenet         root / tfds_dir of clean ImageNet val.

Metrics: top1 per set (mCE, relative mCE and the severity curves are computed
by the report from these rows with AlexNet's errors), flip_prob and t5d per
ImageNet-P sequence set (the runner must pass top-5 predictions for t5d),
shape_bias / shape_match / texture_match for cue conflict.
"""
import logging

import ml_collections

from jaxbench import configs

BENCHMARK = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
             "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
             "elastic_transform", "pixelate", "jpeg_compression")
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
PERTURBATIONS = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter",
                 "brightness", "translate", "rotate", "tilt", "scale", "speckle_noise",
                 "gaussian_blur", "snow", "shear")
PARTS = ("imagenet_c", "imagenet_p", "stylized", "cue_conflict")
SOURCES = ("disk", "tfds", "generated")
_WARNED = set()


def _list(value, known, what):
  if isinstance(value, (list, tuple)):
    items = [str(v).strip() for v in value]
  else:
    items = [v.strip() for v in str(value).split(",")]
  items = [v for v in items if v]
  bad = [v for v in items if v not in known]
  if bad:
    raise ValueError(f"configs/synthetic.py: unknown {what} {bad}; known: {list(known)}")
  return items


def _corruptions(value):
  if value == "benchmark":
    return list(BENCHMARK)
  if value == "all":
    return list(BENCHMARK + EXTRA)
  return _list(value, BENCHMARK + EXTRA, "corruptions")


def _ints(value, known, what):
  return [int(v) for v in _list(value, [str(k) for k in known], what)]


def _args(**kw):
  parts = [f"{k}={v!r}" for k, v in kw.items() if v not in ("", None)]
  return ", ".join(parts)


def _spec(name, **kw):
  return f"{name}({_args(**kw)})"


def _clean(c):
  im = c["imagenet"]
  if im["root"] or im["tfds_dir"]:
    return _spec("imagenet", root=im["root"], tfds_dir=im["tfds_dir"])
  return "imagenet"


def plan(c):
  """(datasets, transforms) the config's sections describe."""
  parts = _list(c["parts"], PARTS, "parts")
  ic = c["imagenet_c"]
  if ic["source"] not in SOURCES:
    raise ValueError(f"configs/synthetic.py: imagenet_c.source={ic['source']!r}; use one of "
                     f"{SOURCES}")
  datasets, transforms = [_clean(c)], ["clean"]
  cs = [(name, s) for name in _corruptions(ic["corruptions"])
        for s in _ints(ic["severities"], range(1, 6), "severities")]
  if ic["source"] == "generated":
    if "imagenet_c" in parts:
      # jpeg_quality=85: the official files' JPEG save, spelled out so that the
      # key differs from rows generated without it.
      transforms += [f"shift:imagenet_c(corruption={n!r}, severity={s}, jpeg_quality=85)"
                     for n, s in cs]
    dropped = [p for p in parts if p != "imagenet_c"]
    if dropped and tuple(dropped) not in _WARNED:
      _WARNED.add(tuple(dropped))
      logging.warning("configs/synthetic.py: imagenet_c.source='generated' plans ImageNet-C "
                      "as transforms on ImageNet val only; %s left out (run them with "
                      "another source or --config.parts)", dropped)
    return datasets, transforms
  if "imagenet_c" in parts:
    for n, s in cs:
      if ic["source"] == "disk":
        datasets.append(_spec("imagenet_c", corruption=n, severity=s, root=ic["root"],
                              preprocess=None if ic["preprocess"] == "center_crop"
                              else ic["preprocess"]))
      else:
        datasets.append(_spec("imagenet2012_corrupted", corruption=n, severity=s,
                              tfds_dir=ic["tfds_dir"]))
  if "imagenet_p" in parts:
    ip = c["imagenet_p"]
    if ip["source"] not in ("disk", "generated"):
      raise ValueError(f"configs/synthetic.py: imagenet_p.source={ip['source']!r}; use "
                       "'disk' or 'generated'")
    names = list(PERTURBATIONS) if ip["perturbations"] == "all" else _list(
        ip["perturbations"], PERTURBATIONS, "perturbations")
    for p in names:
      for d in _ints(ip["difficulties"], (1, 2, 3), "difficulties"):
        if ip["source"] == "disk":
          datasets.append(_spec("imagenet_p", perturbation=p, difficulty=d, root=ip["root"]))
        else:
          im = c["imagenet"]
          datasets.append(_spec("imagenet_p_generated", perturbation=p, difficulty=d,
                                root=im["root"], tfds_dir=im["tfds_dir"],
                                seed=ip["seed"] or None,
                                max_images=ip["max_images"] if ip["max_images"] > 0 else None))
  if "stylized" in parts:
    root = c["stylized"]["root"]
    datasets.append(_spec("stylized_imagenet", root=root) if root else "stylized_imagenet")
  if "cue_conflict" in parts:
    tfds_dir = c["cue_conflict"]["tfds_dir"]
    datasets.append(_spec("geirhos_conflict", tfds_dir=tfds_dir) if tfds_dir
                    else "geirhos_conflict")
  return datasets, transforms


class _Plan:
  """The plan of a config's sections, recomputed on every read.

  ``c.datasets``/``c.transforms`` are references to these properties (through the
  public ``FieldReference.attr``), so command-line overrides of the sections,
  applied after get_config, take effect; overriding ``--config.datasets`` or
  ``--config.transforms`` replaces the computed value.
  """

  def __init__(self, c):
    self._c = c

  @property
  def datasets(self) -> tuple:
    return tuple(plan(self._c)[0])

  @property
  def transforms(self) -> tuple:
    return tuple(plan(self._c)[1])


def get_config(arg=None):
  # No arguments (override fields instead, e.g. --config.imagenet_c.source=tfds).
  configs.parse_args(arg, "configs/synthetic.py")
  c = configs.base("synthetic")
  # datasets/transforms are computed lazily from the sections below (so command-line
  # overrides of e.g. imagenet_c.source take effect): drop the base's plain tuples.
  del c["datasets"]
  del c["transforms"]
  # The sections' keys and defaults: jaxbench.suites.synthetic.
  for name in ("parts", "imagenet_c", "imagenet_p", "stylized", "cue_conflict", "imagenet"):
    c[name] = configs.section("synthetic", name)
  planned = ml_collections.FieldReference(_Plan(c), field_type=object)
  c.datasets = planned.attr("datasets")
  c.transforms = planned.attr("transforms")
  return c
