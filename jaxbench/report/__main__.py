"""``python -m jaxbench.report --workdir=DIR [--workdir=DIR2 ...]``: writes DIR/report/.

Flags select the baseline, the relative-robustness pairs and what happens when one
model has rows with different preprocessing or templates (see
:func:`jaxbench.report.write_report`).
"""
from __future__ import annotations

import sys

from absl import app
from absl import flags

from jaxbench import report

_WORKDIR = flags.DEFINE_multi_string("workdir", None, "Workdir(s) holding results.jsonl; "
                                     "repeat the flag for several.")
_OUT = flags.DEFINE_string("out_dir", None, "Output directory (default: "
                           "<first workdir>/report).")
_VARIANTS = flags.DEFINE_enum("variants", "separate", ["separate", "refuse"],
                              "Rows of one model with different preprocessing, precision "
                              "or templates: report as separate rows, or refuse.")
_BASELINE = flags.DEFINE_enum("baseline", "testbed", ["testbed", "user", "auto"],
                              "Primary effective-robustness baseline: the ImageNet "
                              "testbed's fit (default; 'auto' is an alias) or a fit over "
                              "your supervised models (>= 3); the other is reported in a "
                              "second, labelled table.")
_PAIRS = flags.DEFINE_multi_string("pairs", None, "Relative-robustness pair 'WITH=>WITHOUT' "
                                   "(model labels or aliases such as RN50, ResNet-50); "
                                   "default RoZ's pairs and CLIP-Auto=>CLIP.")
_BASELINE_MODELS = flags.DEFINE_list("baseline_models", None, "Model labels or specs "
                                     "allowed in your baseline (default: all supervised "
                                     "models).")
_MFR_REF = flags.DEFINE_string("mfr_reference", None, "Model label normalising "
                               "ImageNet-P mFR/mT5D (default: an AlexNet).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required (repeat it for several workdirs)")
  try:
    rep = report.write_report(_WORKDIR.value, _OUT.value, variants=_VARIANTS.value,
                              baseline=_BASELINE.value, pairs=_PAIRS.value,
                              mfr_reference=_MFR_REF.value,
                              baseline_models=_BASELINE_MODELS.value)
  except (report.ReportError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"wrote {rep.files['report.md']}")
  print(f"wrote {rep.files['report.html']}")
  print(f"{len(rep.tables)} tables, {len(rep.figures)} figures, "
        f"{len(rep.missing)} missing cells, {len(rep.notes)} notes")


if __name__ == "__main__":
  app.run(main)
