"""The report: tables, figures and HTML from one or more workdirs' results.jsonl.

``write_report(workdirs, out_dir)`` is what the runner calls when ``config.report``
is set and what ``python -m jaxbench.report --workdir=DIR`` runs. The row
conventions it reads are in :mod:`jaxbench.report.conventions`; the formulas in
:mod:`jaxbench.metrics.robustness` and :mod:`jaxbench.report.summaries`.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from jaxbench.report.results import ReportError  # noqa: F401  (public)


def write_report(workdirs: Union[str, Sequence[str]], out_dir: Optional[str] = None, *,
                 variants: str = "separate", baseline: str = "testbed",
                 pairs: Optional[Sequence] = None, mfr_reference: Optional[str] = None,
                 testbed_fits: Optional[dict] = None, shift_axes=None,
                 baseline_models: Optional[Sequence[str]] = None):
  """Reads the workdirs' results and writes the report.

  Args:
    workdirs: a workdir or a list of them; rows are read in order (later rows win a
      duplicated cell, with a note).
    out_dir: output directory; default ``<first workdir>/report``.
    variants: 'separate' (rows of one model with different preprocessing, precision
      or templates become separate labelled rows) or 'refuse' (raise ReportError).
    baseline: the primary effective-robustness baseline: 'testbed' (the shipped
      testbed fit; 'auto' is an alias) or 'user' (a fit over >= 3 supervised models of
      the results). The other baseline is reported in a second, labelled table.
    pairs: relative-robustness pairs [(with, without)] or ['WITH=>WITHOUT'] of model
      labels or aliases; default RoZ's pairs plus CLIP-Auto vs CLIP.
    mfr_reference: model label normalising ImageNet-P mFR/mT5D (default: AlexNet).
    testbed_fits: override the shipped fits ({shift: BaselineFit}).
    shift_axes: override :data:`jaxbench.report.conventions.SHIFT_AXES`.
    baseline_models: model labels or specs allowed in the user baseline (default: every
      supervised model; the testbed uses standard-trained ones only).

  Returns:
    :class:`jaxbench.report.render.Report` with ``files`` ({relative name: path}),
    ``tables``, ``figures``, ``missing`` and ``notes``.

  Raises:
    ReportError: missing or malformed results, or model variants with 'refuse'.
  """
  from jaxbench.report import effective, render, results  # heavy imports on use
  if isinstance(workdirs, (str, os.PathLike)):
    workdirs = [os.fspath(workdirs)]
  workdirs = list(workdirs)
  if pairs:   # checked before reading anything, so a typo fails fast
    pairs = [effective.parse_pair(p) if isinstance(p, str) else tuple(p) for p in pairs]
  rs = results.load(workdirs, variants=variants)
  report = render.build(rs, baseline=baseline, pairs=pairs, mfr_reference=mfr_reference,
                        testbed_fits=testbed_fits, shift_axes=shift_axes,
                        baseline_models=baseline_models)
  out_dir = out_dir or os.path.join(rs.workdirs[0], "report")
  return render.write(report, out_dir)
