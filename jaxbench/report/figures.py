"""Matplotlib figures for the report; each returns the Figure and the data it plots.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot, no global
backend state), so the report can run inside a training process or a test. Every
builder returns a :class:`FigureResult` whose ``data`` is exactly what was drawn and
``points`` the number of plotted markers or bars, so tests check the plot, not just
the file.
"""
from __future__ import annotations

import dataclasses
import io
import math
from typing import Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxbench.metrics import robustness

KIND_STYLE = {
    "zeroshot": dict(marker="*", color="tab:orange", s=110, label="zero-shot"),
    "supervised": dict(marker="o", color="tab:blue", s=45, label="supervised"),
    "unknown": dict(marker="s", color="tab:gray", s=40, label="kind unknown"),
}
TICKS_PCT = (1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9)


@dataclasses.dataclass
class FigureResult:
  name: str          # file-name slug
  title: str
  figure: Figure
  data: dict
  points: int        # markers / bars actually drawn
  caption: str = ""

  def png(self, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(self.figure)
    self.figure.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _colors(labels):
  cmap = [f"C{i}" for i in range(10)]
  return {l: cmap[i % 10] for i, l in enumerate(labels)}


def _short(label: str, n: int = 32) -> str:
  return label if len(label) <= n else label[: n - 1] + "…"


def _logit_ticks(ax, lo: float, hi: float, axis: str):
  """Percent tick labels on a logit-scaled axis spanning logits [lo, hi]."""
  ticks = [p for p in TICKS_PCT if lo <= float(robustness.logit(p / 100)) <= hi]
  if len(ticks) < 3:      # a narrow range: evenly spaced in logit space instead
    ticks = sorted({round(100 * float(robustness.sigmoid(z)), 1)
                    for z in np.linspace(lo, hi, 6)[1:-1]})
  pos = [float(robustness.logit(p / 100)) for p in ticks]
  labels = [f"{p:g}" for p in ticks]
  if axis == "x":
    ax.set_xticks(pos, labels)
  else:
    ax.set_yticks(pos, labels)


def effective_robustness_figure(name: str, title: str, x_label: str, y_label: str,
                                points: list, fit: Optional[robustness.BaselineFit],
                                fit_label: str = "baseline fit",
                                background: Optional[list] = None,
                                type_styles: Optional[dict] = None,
                                band=None) -> FigureResult:
  """Scatter of OOD vs ID accuracy on logit axes, baseline fit and y = x.

  Drawn as the testbed draws it: the testbed's models (``background``) as small
  points coloured by their testbed type, behind the user's models; the fit line with
  its bootstrap band; y = x.

  Args:
    points: [(label, kind, acc_x, acc_y, used_in_fit)], fractions.
    fit: the baseline fit to draw (None: no line).
    background: [(name, type, acc_x, acc_y)] fractions, e.g. every testbed model.
    type_styles: {type: (legend label, colour)} for the background.
    band: callable(grid logits (G,)) -> (lower, upper) OOD logits, or None.

  Returns:
    FigureResult with data {'points': {kind: [(label, x, y)]}, 'skipped': [labels],
    'fit_x', 'fit_y' (accuracy fractions along the drawn line), 'background':
    {type: [(name, x, y)]}, 'band_lo', 'band_hi' (fractions along fit_x)}.
  """
  fig = Figure(figsize=(6.4, 5.6))
  ax = fig.add_subplot(1, 1, 1)
  drawn = {}
  skipped = []
  lx_all, ly_all = [], []
  back: dict = {}
  for bname, btype, x, y in background or []:
    if robustness.is_finite_accuracy(x) and robustness.is_finite_accuracy(y):
      back.setdefault(btype, []).append((bname, x, y))
  for btype, pts in back.items():
    lbl, color = (type_styles or {}).get(btype, (btype, "tab:gray"))
    ax.scatter([float(robustness.logit(p[1])) for p in pts],
               [float(robustness.logit(p[2])) for p in pts], s=12, color=color,
               alpha=0.45, linewidths=0, zorder=1, label=f"testbed: {lbl}")
    lx_all += [float(robustness.logit(p[1])) for p in pts]
    ly_all += [float(robustness.logit(p[2])) for p in pts]
  n_back = sum(len(v) for v in back.values())
  for label, kind, x, y, used in points:
    if not (robustness.is_finite_accuracy(x) and robustness.is_finite_accuracy(y)):
      skipped.append(label)          # logit axis has no place for 0 % / 100 %
      continue
    drawn.setdefault(kind if kind in KIND_STYLE else "unknown", []).append(
        (label, x, y, used))
    lx_all.append(float(robustness.logit(x)))
    ly_all.append(float(robustness.logit(y)))
  n = 0
  for kind, pts in drawn.items():   # the user's models, in front of the testbed's
    style = dict(KIND_STYLE[kind])
    lx = [float(robustness.logit(p[1])) for p in pts]
    ly = [float(robustness.logit(p[2])) for p in pts]
    edge = ["black" if p[3] else "none" for p in pts]
    ax.scatter(lx, ly, edgecolors=edge, linewidths=1.0, zorder=4, **style)
    n += len(pts)
    for p, a, b in zip(pts, lx, ly):
      ax.annotate(_short(p[0]), (a, b), fontsize=6, xytext=(3, 3),
                  textcoords="offset points")
  fit_x = fit_y = band_lo = band_hi = np.zeros(0)
  if lx_all:
    # Axis ranges follow the data (as the testbed's plots); y = x where it falls inside.
    x_lo, x_hi = min(lx_all) - 0.4, max(lx_all) + 0.4
    y_lo, y_hi = min(ly_all) - 0.4, max(ly_all) + 0.4
    grid = np.linspace(x_lo, x_hi, 200)
    ax.plot(grid, grid, ls="--", color="black", lw=1, label="y = x", zorder=1)
    if fit is not None:
      fit_x = robustness.sigmoid(grid)
      fit_y = fit.beta(fit_x)
      ax.plot(grid, robustness.logit(np.clip(fit_y, 1e-12, 1 - 1e-12)), color="tab:red",
              lw=1.5, label=fit_label, zorder=3)
      if band is not None:
        lo_l, hi_l = band(grid)
        ax.fill_between(grid, lo_l, hi_l, color="tab:red", alpha=0.2, linewidth=0,
                        zorder=2, label="95% bootstrap band")
        band_lo, band_hi = robustness.sigmoid(lo_l), robustness.sigmoid(hi_l)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    _logit_ticks(ax, x_lo, x_hi, "x")
    _logit_ticks(ax, y_lo, y_hi, "y")
  ax.set_xlabel(f"{x_label} (top-1 %, logit scale)")
  ax.set_ylabel(f"{y_label} (top-1 %, logit scale)")
  ax.set_title(title, fontsize=10)
  ax.grid(True, color="0.9")
  if lx_all:
    ax.legend(fontsize=7, loc="upper left")
  # Fixed margins: tight_layout measures every text artist and costs seconds per figure.
  fig.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.93)
  data = {"points": {k: [(p[0], p[1], p[2]) for p in v] for k, v in drawn.items()},
          "skipped": skipped, "fit_x": fit_x, "fit_y": fit_y, "background": back,
          "band_lo": band_lo, "band_hi": band_hi}
  caption = f"{n} models drawn" + (f" over {n_back} testbed models" if n_back else "")
  if skipped:
    caption += f"; not drawable on logit axes (0 % or 100 %): {', '.join(skipped)}"
  return FigureResult(name, title, fig, data, n, caption)


def _grid(n: int, ncols: int = 5):
  ncols = max(1, min(ncols, n))
  nrows = math.ceil(n / ncols)
  return nrows, ncols


def curves_figure(name: str, title: str, panels: dict, x_label: str, y_label: str,
                  x_scale: float = 1.0) -> FigureResult:
  """One subplot per panel, one line per model: y (accuracy fraction) against x.

  Args:
    panels: {panel title: {model label: [(x, y)]}}; y fractions, plotted in percent.
    x_scale: x is drawn as x * x_scale (e.g. 255 to show epsilon in 1/255 units).

  Returns:
    FigureResult with data == panels (points sorted by x, unscaled), points = markers.
  """
  titles = list(panels)
  nrows, ncols = _grid(max(1, len(titles)), ncols=4)
  labels = sorted({l for p in panels.values() for l in p})
  legend_w = 2.4 if labels else 0.0
  width = 3.4 * ncols + legend_w
  fig = Figure(figsize=(width, 2.8 * nrows + 0.5))
  colors = _colors(labels)
  n = 0
  data = {}
  handles = {}
  for i, t in enumerate(titles):
    ax = fig.add_subplot(nrows, ncols, i + 1)
    data[t] = {}
    for label in labels:
      pts = sorted(p for p in panels[t].get(label, []) if p[1] is not None)
      if not pts:
        continue
      data[t][label] = pts
      (h,) = ax.plot([x_scale * p[0] for p in pts], [100 * p[1] for p in pts], marker="o",
                     ms=3, lw=1, color=colors[label])
      handles[label] = h
      n += len(pts)
    ax.set_title(_short(t, 48), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_xlabel(x_label, fontsize=7)
    ax.set_ylabel(y_label, fontsize=7)
    ax.grid(True, color="0.9")
  if handles:
    fig.legend(list(handles.values()), [_short(l, 36) for l in handles], fontsize=7,
               loc="center right", frameon=False)
  fig.suptitle(title, fontsize=10)
  height = 2.8 * nrows + 0.5
  fig.subplots_adjust(left=0.6 / width, right=1 - (legend_w + 0.1) / width,
                      bottom=0.5 / height, top=1 - 0.55 / height, wspace=0.35, hspace=0.6)
  return FigureResult(name, title, fig, data, n, f"{n} points")


def bars_figure(name: str, title: str, panels: dict, series: list) -> FigureResult:
  """Grouped bars per panel: one group per model, one bar per series.

  Args:
    panels: {panel title: {model label: {series name: fraction or None}}}.
    series: [(series name, legend label)], in bar order.

  Returns:
    FigureResult with data == panels restricted to drawn bars, points = bars drawn.
  """
  titles = list(panels)
  nrows, ncols = _grid(max(1, len(titles)), ncols=2)
  fig = Figure(figsize=(6.0 * ncols, 3.4 * nrows))
  n = 0
  data = {}
  width = 0.8 / max(1, len(series))
  for i, t in enumerate(titles):
    ax = fig.add_subplot(nrows, ncols, i + 1)
    models = list(panels[t])
    data[t] = {}
    for j, (key, legend) in enumerate(series):
      xs, hs = [], []
      for m_i, m in enumerate(models):
        v = panels[t][m].get(key)
        if v is None:
          continue
        xs.append(m_i + (j - (len(series) - 1) / 2) * width)
        hs.append(100 * v)
        data[t].setdefault(m, {})[key] = v
      if xs:
        ax.bar(xs, hs, width=width, label=legend, color=f"C{j}")
        n += len(xs)
    ax.set_xticks(range(len(models)), [_short(m, 24) for m in models], rotation=30,
                  ha="right", fontsize=7)
    ax.set_ylabel("%", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_title(t, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", color="0.9")
  fig.suptitle(title, fontsize=10)
  fig.subplots_adjust(left=0.1, right=0.98, bottom=0.3, top=0.85, wspace=0.25, hspace=0.9)
  return FigureResult(name, title, fig, data, n, f"{n} bars")
