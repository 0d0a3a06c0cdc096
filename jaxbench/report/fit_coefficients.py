"""The ImageNet testbed's data and line-fit rules, and the shipped baselines derived from them.

Input (``jaxbench/resources/imagenet_testbed/``, see its README for the commit):

* ``robustness_top1s.csv``: the testbed's whole table of top-1 accuracies (percent),
  338 models x 213 evaluation settings, as published;
* ``model_types.json``: the testbed's ``plotting/model_types.py`` as data.

Output: ``jaxbench/resources/testbed_fits.json``, one
:class:`jaxbench.metrics.robustness.BaselineFit` per shift the testbed plots.

The testbed's rules (``plotting/paper_appendix_eff_robust.py``, the script that scores
every model's effective robustness, and ``plotting/dataframe.py``):

* line-fit models: ModelTypes.STANDARD whose lower-cased name contains none of
  'aws', 'batch64', 'subsample', among the models that have both columns of the
  shift (``df.dropna()`` on the plotted columns);
* logit(y) = a logit(x) + b by ordinary least squares (``scipy.stats.linregress``);
* a line-fit model with 0 % on the OOD axis (ResNet-50 on ImageNet-A) is a pivot:
  one line is fitted below its ID accuracy and one above; a model at or below the
  pivot is scored on the lower line (:func:`jaxbench.metrics.robustness.fit_baseline`);
* ImageNet-C: a corruption's accuracy is the mean over its five severities, per
  kind ('on-disk': the released JPEGs; 'in-memory': corruptions applied to decoded
  images), NaN when a severity is missing (``aggregate_corruptions_with_metadata``);
  ``avg_corruptions`` averages every per-corruption column of both kinds plus
  Stylized-ImageNet and greyscale; ``avg_pgd`` the four PGD settings.

The paper's figures additionally hide models below an accuracy threshold (e.g.
``val-on-objectnet-classes >= 55``); on the current CSV no line-fit model is below
any of them, so the fits are the same either way (``threshold_check`` verifies it).

Axes per shift (the testbed plot scripts' defaults): ImageNetV2 uses the
``-format-val`` columns (the folders jaxbench's reader opens), ObjectNet
``val-on-objectnet-classes`` (re-scored in ObjectNet's 113-class space), R and A
``val`` on their classes, the video sets pm-10 against pm-0 and pm-0 against ``val``
on their classes; everything else against ``val``.

Run ``python -m jaxbench.report.fit_coefficients`` to regenerate the JSON;
``--check`` verifies the shipped file (the unit test does the same).
"""
from __future__ import annotations

import csv
import functools
import json
import os
import sys

import numpy as np
from absl import app
from absl import flags

from jaxbench.metrics import robustness

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources")
TESTBED_DIR = os.path.join(RESOURCES, "imagenet_testbed")
CSV_FILE = os.path.join(TESTBED_DIR, "robustness_top1s.csv")
TYPES_FILE = os.path.join(TESTBED_DIR, "model_types.json")
COMMIT = "0170eec658d664289d9f61de8f90f967f49abca0"
SOURCE = (f"ImageNet testbed robustness_top1s.csv @ {COMMIT[:7]}: STANDARD models "
          "without 'aws'/'batch64'/'subsample' in their name")

# Name exclusions of the testbed's use_for_line_fit.
EXCLUDED_SUBSTRINGS = ("aws", "batch64", "subsample")

CORRUPTIONS = ("brightness", "contrast", "defocus_blur", "elastic_transform", "fog",
               "frost", "gaussian_blur", "gaussian_noise", "glass_blur", "impulse_noise",
               "jpeg_compression", "motion_blur", "pixelate", "saturate", "shot_noise",
               "snow", "spatter", "speckle_noise", "zoom_blur")
KINDS = ("on-disk", "in-memory")
PGD = ("pgd.l2.eps0.1", "pgd.l2.eps0.5", "pgd.linf.eps0.5", "pgd.linf.eps2")

# Accuracy thresholds of the paper figures' show_in_plot (x column, minimum percent).
FIGURE_THRESHOLDS = {
    "objectnet": ("val-on-objectnet-classes", 55.0),
    "imagenet_a": ("val-on-imagenet-a-classes", 75.0),
    "imagenet_r": ("val-on-imagenet-r-classes", 75.0),
    "imagenet_vid_robust": ("imagenet-vid-robust_pm0", 49.0),
    "ytbb_robust": ("ytbb-robust_pm0", 45.0),
}


def _shift_columns() -> dict[str, tuple[str, str, str]]:
  """{fit key: (x column, y column, title)} for every shift the testbed plots."""
  s = {
      "imagenet_v2": ("val", "imagenetv2-matched-frequency-format-val",
                      "ImageNetV2 (matched-frequency)"),
      "imagenet_v2_threshold0.7": ("val", "imagenetv2-threshold-0.7-format-val",
                                   "ImageNetV2 (threshold-0.7)"),
      "imagenet_v2_top_images": ("val", "imagenetv2-top-images-format-val",
                                 "ImageNetV2 (top-images)"),
      "imagenet_sketch": ("val", "imagenet-sketch", "ImageNet-Sketch"),
      "imagenet_r": ("val-on-imagenet-r-classes", "imagenet-r", "ImageNet-R"),
      "imagenet_a": ("val-on-imagenet-a-classes", "imagenet-a", "ImageNet-A"),
      "objectnet": ("val-on-objectnet-classes", "objectnet-1.0-beta", "ObjectNet"),
      "imagenet_vid_robust": ("imagenet-vid-robust_pm0", "imagenet-vid-robust_pm10",
                              "ImageNet-Vid-Robust (pm-10 vs pm-0)"),
      "ytbb_robust": ("ytbb-robust_pm0", "ytbb-robust_pm10", "YTBB-Robust (pm-10 vs pm-0)"),
      "imagenet_vid_robust_pm0": ("val-on-vid-robust-classes", "imagenet-vid-robust_pm0",
                                  "ImageNet-Vid-Robust (pm-0 vs val)"),
      "ytbb_robust_pm0": ("val-on-ytbb-robust-classes", "ytbb-robust_pm0",
                          "YTBB-Robust (pm-0 vs val)"),
      "stylized_imagenet": ("val", "stylized_imagenet", "Stylized-ImageNet"),
      "greyscale": ("val", "greyscale", "Greyscale"),
  }
  for c in CORRUPTIONS:
    for k in KINDS:
      if c == "glass_blur" and k == "in-memory":
        continue   # the testbed has no in-memory glass blur
      s[f"imagenet_c.{c}.{k}"] = ("val", f"{c}_{k}", f"ImageNet-C {c} ({k}, mean of 5)")
  for k in KINDS:
    s[f"imagenet_c.avg.{k}"] = ("val", f"avg_imagenet_c_{k}",
                                f"ImageNet-C ({k}, mean over corruptions)")
  s["avg_corruptions"] = ("val", "avg_corruptions",
                          "Corruptions averaged (testbed avg_corruptions)")
  for p in PGD:
    s[p] = ("val", p, f"PGD {p[4:]}")
  s["avg_pgd"] = ("val", "avg_pgd", "PGD averaged")
  return s


SHIFT_COLUMNS = _shift_columns()


def read_testbed(path: str = CSV_FILE) -> tuple[list[str], dict[str, np.ndarray]]:
  """The testbed CSV as (model names, {column: (M,) float64 percent, NaN = missing}).

  Parsed once per path (the report asks for it per shift); the arrays are read-only.

  Raises:
    ValueError: a cell is neither empty nor a number (names file, row and column).
  """
  names, cols = _read_testbed(os.path.abspath(path))
  return list(names), dict(cols)


@functools.lru_cache(maxsize=4)
def _read_testbed(path: str) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
  with open(path, newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    if not header or header[0] != "model":
      raise ValueError(f"{path}: first column must be 'model', got {header[:1]}")
    names, rows = [], []
    for i, rec in enumerate(reader):
      if len(rec) != len(header):
        raise ValueError(f"{path}: row {i + 2} has {len(rec)} cells, header {len(header)}")
      names.append(rec[0])
      try:
        rows.append([float(v) if v else np.nan for v in rec[1:]])
      except ValueError as e:
        raise ValueError(f"{path}: row {i + 2} ({rec[0]}): {e}") from e
  data = np.asarray(rows, np.float64)
  cols = {c: data[:, j] for j, c in enumerate(header[1:])}
  cols.update(derived_columns(cols))
  for v in cols.values():
    v.flags.writeable = False
  return tuple(names), cols


def derived_columns(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The testbed's aggregated columns (``dataframe.aggregate_corruptions_*``).

  Per corruption and kind the mean over severities 1-5 ('{c}_{kind}'), NaN when one
  is missing; 'avg_imagenet_c_{kind}' over the corruptions of one kind;
  'avg_corruptions' over both kinds plus stylized_imagenet and greyscale; 'avg_pgd'.
  """
  out = {}
  for c in CORRUPTIONS:
    for k in KINDS:
      sev = [cols.get(f"imagenet-c.{c}.{s}_{k}") for s in range(1, 6)]
      if all(v is not None for v in sev):
        out[f"{c}_{k}"] = np.mean(np.stack(sev), axis=0)
  for k in KINDS:
    out[f"avg_imagenet_c_{k}"] = np.mean(np.stack(
        [v for n, v in out.items() if n.endswith(k)]), axis=0)
  parts = [v for n, v in out.items() if not n.startswith("avg_")]
  out["avg_corruptions"] = np.mean(np.stack(parts + [cols["stylized_imagenet"],
                                                     cols["greyscale"]]), axis=0)
  out["avg_pgd"] = np.mean(np.stack([cols[p] for p in PGD]), axis=0)
  return out


# Shifts whose testbed figure colours models by NatModelTypes (Lp-adversarial merged
# into 'Robustness intervention'): paper_nat_shift_imagenetv2, paper_objectnet,
# paper_imagenet_a. The others use ModelTypes.
NAT_TYPE_SHIFTS = ("imagenet_v2", "imagenet_v2_threshold0.7", "imagenet_v2_top_images",
                   "objectnet", "imagenet_a")


def read_model_types(path: str = TYPES_FILE, nat: bool = False) -> dict[str, str]:
  """{model name: ModelTypes (or NatModelTypes) member name}, e.g. 'STANDARD'."""
  with open(path) as f:
    return dict(json.load(f)["nat_model_types" if nat else "model_types"])


def type_colors(path: str = TYPES_FILE, nat: bool = False) -> dict[str, tuple[str, str]]:
  """{type member name: (legend label, matplotlib colour)} as the testbed draws."""
  with open(path) as f:
    return {k: tuple(v) for k, v in
            json.load(f)["colors"]["nat_model_types" if nat else "model_types"].items()}


def is_line_fit_model(name: str, mtype: str) -> bool:
  """The testbed's use_for_line_fit, before the per-shift 'has both columns' test."""
  low = name.lower()
  return mtype == "STANDARD" and not any(s in low for s in EXCLUDED_SUBSTRINGS)


def shift_points(shift: str, names=None, cols=None) -> list[tuple[str, float, float]]:
  """[(model, x, y)] percent, every testbed model with both columns of ``shift``."""
  if names is None:
    names, cols = read_testbed()
  xc, yc, _ = SHIFT_COLUMNS[shift]
  x, y = cols[xc], cols[yc]
  return [(n, float(x[i]), float(y[i])) for i, n in enumerate(names)
          if np.isfinite(x[i]) and np.isfinite(y[i])]


def compute_fits(names=None, cols=None, types=None) -> dict[str, robustness.BaselineFit]:
  """One fit per shift of :data:`SHIFT_COLUMNS` over the testbed's line-fit models."""
  if names is None:
    names, cols = read_testbed()
  types = read_model_types() if types is None else types
  missing = [n for n in names if n not in types]
  if missing:
    raise ValueError(f"{TYPES_FILE}: no type for testbed models {missing[:5]}")
  fits = {}
  for shift in SHIFT_COLUMNS:
    pts = [p for p in shift_points(shift, names, cols) if is_line_fit_model(p[0], types[p[0]])]
    fits[shift] = robustness.fit_baseline([p[1] / 100 for p in pts],
                                          [p[2] / 100 for p in pts],
                                          [p[0] for p in pts], source=SOURCE)
  return fits


def line_fit_points(shift: str, names=None, cols=None, types=None):
  """[(model, x, y)] percent of the testbed's line-fit models on ``shift``."""
  if names is None:
    names, cols = read_testbed()
  types = read_model_types() if types is None else types
  return [p for p in shift_points(shift, names, cols) if is_line_fit_model(p[0], types[p[0]])]


def plotted_points(shift: str, names=None, cols=None, types=None):
  """[(model, type, x, y)] percent of the testbed models its figure shows for ``shift``.

  Types are the figure's: NatModelTypes for :data:`NAT_TYPE_SHIFTS`, else ModelTypes.

  The plot scripts' show_in_plot: no 'subsample' in the name, ``val >= 55`` and, for
  the shifts of :data:`FIGURE_THRESHOLDS`, their own x threshold instead.
  """
  if names is None:
    names, cols = read_testbed()
  types = read_model_types(nat=shift in NAT_TYPE_SHIFTS) if types is None else types
  col, low = FIGURE_THRESHOLDS.get(shift, ("val", 55.0))
  row = {n: i for i, n in enumerate(names)}
  return [(n, types[n], x, y) for n, x, y in shift_points(shift, names, cols)
          if "subsample" not in n.lower() and cols[col][row[n]] >= low]


BOOTSTRAP_SEED = 720257663   # the testbed's plotter.py seed


def bootstrap_band(shift: str, grid: np.ndarray, fit: robustness.BaselineFit,
                   num_samples: int = 1000, seed: int = BOOTSTRAP_SEED,
                   level: float = 95.0) -> tuple[np.ndarray, np.ndarray]:
  """The testbed's 95 % bootstrap band around the fit line (``plotter.get_bootstrap_cis``).

  Resamples the line-fit models with replacement ``num_samples`` times
  (``np.random.RandomState(seed).choice``), refits by least squares in logit space and
  takes, per grid point, the lower/upper percentiles ('lower'/'higher' interpolation).
  With a pivot (ImageNet-A) each side is bootstrapped on its own models.

  Args:
    shift: a key of :data:`SHIFT_COLUMNS`.
    grid: (G,) ID logits to evaluate at.
    fit: the shift's fit (for its pivots).

  Returns:
    (lower, upper), each (G,) OOD logits.
  """
  pts = line_fit_points(shift)
  lx = np.array([robustness.logit(p[1] / 100) for p in pts])
  ly = np.array([robustness.logit(p[2] / 100) for p in pts])
  grid = np.asarray(grid, np.float64)
  lo_p, hi_p = (100.0 - level) / 2, 100.0 - (100.0 - level) / 2
  bounds = [-np.inf] + [float(robustness.logit(p)) for p in fit.pivots] + [np.inf]
  lower, upper = np.empty_like(grid), np.empty_like(grid)
  for lo, hi in zip(bounds[:-1], bounds[1:]):
    sel = np.isfinite(ly) & (lx > lo) & (lx < hi) if fit.pivots else np.isfinite(ly)
    xs, ys = lx[sel], ly[sel]
    rng = np.random.RandomState(seed)
    padded = np.stack([np.ones_like(grid), grid], axis=1)
    vals = []
    for _ in range(num_samples):
      idx = rng.choice(len(xs), len(xs))
      coef = np.linalg.lstsq(np.stack([np.ones(len(xs)), xs[idx]], 1), ys[idx],
                             rcond=None)[0]
      vals.append(padded @ coef)
    vals = np.stack(vals)
    on = (grid <= hi) & (grid > lo) if fit.pivots else np.ones(grid.shape, bool)
    lower[on] = np.percentile(vals, lo_p, axis=0, method="lower")[on]
    upper[on] = np.percentile(vals, hi_p, axis=0, method="higher")[on]
  return lower, upper


def threshold_check(names=None, cols=None, types=None) -> list[str]:
  """Line-fit models the paper figures' accuracy thresholds would hide (expected: none)."""
  if names is None:
    names, cols = read_testbed()
  types = read_model_types() if types is None else types
  out = []
  for shift, (col, low) in FIGURE_THRESHOLDS.items():
    for n, _, _ in shift_points(shift, names, cols):
      if is_line_fit_model(n, types[n]) and cols[col][names.index(n)] < low:
        out.append(f"{shift}: {n}")
  return out


def to_json(fits: dict[str, robustness.BaselineFit]) -> dict:
  return {
      "description": ("Effective-robustness baselines: logit(OOD) = a * logit(ID) + b "
                      "per segment, accuracies as fractions; see "
                      "jaxbench/report/fit_coefficients.py"),
      "source": SOURCE,
      "data": "jaxbench/resources/imagenet_testbed/robustness_top1s.csv",
      "commit": COMMIT,
      "axes": {k: {"x": v[0], "y": v[1], "title": v[2]} for k, v in SHIFT_COLUMNS.items()},
      "fits": {k: f.to_dict() for k, f in fits.items()},
  }


_OUT = flags.DEFINE_string("out", robustness.TESTBED_FITS_FILE, "JSON file to write.")
_CHECK = flags.DEFINE_bool("check", False, "Verify the file instead of writing it.")


def main(argv):
  del argv
  blob = json.loads(json.dumps(to_json(compute_fits())))
  if _CHECK.value:
    with open(_OUT.value) as f:
      shipped = json.load(f)
    if shipped != blob:
      diff = sorted(k for k in set(blob["fits"]) | set(shipped.get("fits", {}))
                    if blob["fits"].get(k) != shipped.get("fits", {}).get(k))
      print(f"{_OUT.value} differs from the fits computed from {CSV_FILE}: {diff or 'header'}")
      sys.exit(1)
    print(f"{_OUT.value} matches {CSV_FILE} ({len(blob['fits'])} shifts)")
    return
  with open(_OUT.value, "w") as f:
    json.dump(blob, f, indent=1)
    f.write("\n")
  for k, d in blob["fits"].items():
    print(f"{k:40s} n={len(d['baselines']):3d} lines={d['lines']} pivots={d['pivots']}")


if __name__ == "__main__":
  app.run(main)
