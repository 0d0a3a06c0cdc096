"""Computes the shipped effective-robustness baselines from published testbed accuracies.

Input: ``jaxbench/resources/testbed_standard_top1.csv``: top-1 accuracies (percent)
of 13 models the ImageNet testbed classes as STANDARD (ImageNet-trained, no extra
data, no robustness intervention), copied verbatim from the testbed's
``robustness_top1s.csv`` at commit b9067fc (the file's header says which rows and
columns, and why). Output: ``jaxbench/resources/testbed_fits.json``, one
:class:`jaxbench.metrics.robustness.BaselineFit` per shift, fitted as the testbed
does (logit OLS; ImageNet-A splits at ResNet-50's 0 %, see
:mod:`jaxbench.metrics.robustness`).

Run ``python -m jaxbench.report.fit_coefficients`` to regenerate the JSON;
``--check`` verifies the shipped file instead (the unit test does the same).

Axes per shift (protocol.md section 3.1): ImageNetV2 (matched-frequency, the raw
images our reader reads, not the testbed's ``-format-val`` re-encode), Sketch and
Stylized-ImageNet against ``val``; R, A and ObjectNet against ``val`` restricted to
their classes; the video sets pm-10 against pm-0.
"""
from __future__ import annotations

import csv
import json
import os
import sys

from absl import app
from absl import flags

from jaxbench.metrics import robustness

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources")
DATA_FILE = os.path.join(RESOURCES, "testbed_standard_top1.csv")
SOURCE = ("ImageNet testbed robustness_top1s.csv @ b9067fc13ea5b3cbf25e37a144d2a6fe437164f1, "
          "13 STANDARD models (jaxbench/resources/testbed_standard_top1.csv)")

# shift name (as the report names it) -> (x column, y column) in the testbed CSV.
SHIFT_COLUMNS = {
    "imagenet_v2": ("val", "imagenetv2-matched-frequency"),
    "imagenet_sketch": ("val", "imagenet-sketch"),
    "stylized_imagenet": ("val", "stylized_imagenet"),
    "imagenet_r": ("val-on-imagenet-r-classes", "imagenet-r"),
    "imagenet_a": ("val-on-imagenet-a-classes", "imagenet-a"),
    "objectnet": ("val-on-objectnet-classes", "objectnet-1.0-beta"),
    "imagenet_vid_robust": ("imagenet-vid-robust_pm0", "imagenet-vid-robust_pm10"),
    "ytbb_robust": ("ytbb-robust_pm0", "ytbb-robust_pm10"),
}


def read_published(path: str = DATA_FILE) -> dict[str, dict[str, float]]:
  """{model: {column: accuracy fraction}} from the shipped CSV ('#' lines are comments)."""
  with open(path) as f:
    lines = [l for l in f if l.strip() and not l.startswith("#")]
  table = {}
  for i, rec in enumerate(csv.DictReader(lines)):
    name = rec.pop("model")
    try:
      table[name] = {k: float(v) / 100.0 for k, v in rec.items()}
    except ValueError as e:
      raise ValueError(f"{path}: data row {i + 1} ({name}): {e}") from e
  return table


def compute_fits(table: dict[str, dict[str, float]]) -> dict[str, robustness.BaselineFit]:
  """One fit per shift in :data:`SHIFT_COLUMNS` over all models of ``table``."""
  fits = {}
  names = sorted(table)
  for shift, (xc, yc) in SHIFT_COLUMNS.items():
    xs = [table[m][xc] for m in names]
    ys = [table[m][yc] for m in names]
    fit = robustness.fit_baseline(xs, ys, names, source=SOURCE)
    fits[shift] = fit
  return fits


def to_json(fits: dict[str, robustness.BaselineFit]) -> dict:
  return {
      "description": ("Effective-robustness baselines: logit(OOD) = a * logit(ID) + b "
                      "per segment, accuracies as fractions; see "
                      "jaxbench/report/fit_coefficients.py"),
      "source": SOURCE,
      "axes": {k: {"x": v[0], "y": v[1]} for k, v in SHIFT_COLUMNS.items()},
      "fits": {k: f.to_dict() for k, f in fits.items()},
  }


_OUT = flags.DEFINE_string("out", robustness.TESTBED_FITS_FILE, "JSON file to write.")
_CHECK = flags.DEFINE_bool("check", False, "Verify the file instead of writing it.")


def main(argv):
  del argv
  blob = to_json(compute_fits(read_published()))
  if _CHECK.value:
    with open(_OUT.value) as f:
      shipped = json.load(f)
    if shipped != json.loads(json.dumps(blob)):
      print(f"{_OUT.value} differs from the fits computed from {DATA_FILE}")
      sys.exit(1)
    print(f"{_OUT.value} matches {DATA_FILE}")
    return
  with open(_OUT.value, "w") as f:
    json.dump(blob, f, indent=1)
    f.write("\n")
  for k, d in blob["fits"].items():
    print(k, d["lines"], d["pivots"])


if __name__ == "__main__":
  app.run(main)
