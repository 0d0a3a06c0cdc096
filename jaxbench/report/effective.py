"""Effective and relative robustness from a ResultSet: per-shift fits, tables, plots.

For every shift with OOD rows (:data:`jaxbench.report.conventions.SHIFT_AXES`, plus
one 'mean over corruptions' shift per corruption family) this module collects the
(ID, OOD) coordinates of every model, picks the baseline fit (the user's supervised
models when there are at least three, else the shipped testbed fit, per
``baseline=``), and scores every model with
:func:`jaxbench.metrics.robustness.effective_robustness`.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional, Sequence

from jaxbench.metrics import robustness
from jaxbench.report import collect
from jaxbench.report import conventions as conv
from jaxbench.report import figures
from jaxbench.report.results import ResultSet
from jaxbench.report.tables import Table

MIN_BASELINES = 3

# Aliases for relative-robustness pairs: name -> (kind, regex on the model spec).
_RN = r"(?<![a-z0-9])(rn|resnet)[-_]?"
ALIASES = {
    "RN50": ("zeroshot", _RN + r"50(?![0-9x])"),
    "RN101": ("zeroshot", _RN + r"101(?![0-9x])"),
    "RN50x4": ("zeroshot", _RN + r"50[-_]?x4(?![0-9])"),
    "RN50x16": ("zeroshot", _RN + r"50[-_]?x16(?![0-9])"),
    "ViT-B/32": ("zeroshot", r"vit[-_/]?b(ase)?[-_/]?(patch)?32(?![0-9])"),
    "ViT-B/16": ("zeroshot", r"vit[-_/]?b(ase)?[-_/]?(patch)?16(?![0-9])"),
    "ResNet-50": ("supervised", _RN + r"50(?![0-9x])"),
    "ResNet-101": ("supervised", _RN + r"101(?![0-9x])"),
    "EfficientNet-B3": ("supervised", r"efficientnet[-_]?b3(?![0-9])"),
    "ViT-B/32@384": ("supervised", r"vit[-_/]?b(ase)?[-_/]?(patch)?32.*384"),
}


@dataclasses.dataclass
class ShiftResult:
  name: str                      # slug
  title: str
  axes_name: str                 # ShiftAxes.name (key of the shipped fit)
  x_desc: str
  y_desc: str
  points: dict                   # {label: (acc_x, acc_y)}
  missing: dict                  # {label: reason} for models with only one axis
  fit: Optional[robustness.BaselineFit] = None
  fit_source: str = ""           # 'user' | 'testbed' | ''
  message: str = ""
  rho: dict = dataclasses.field(default_factory=dict)
  drop: dict = dataclasses.field(default_factory=dict)


def _slug(s: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")[:80]


def _pick_x(options: dict, want: str, notes: list) -> tuple[str, dict]:
  if not options:
    return want, {}
  if want in options:
    return want, options[want]
  key = sorted(options)[0]
  if len(options) > 1:
    notes.append(f"ID axis {want!r} has several dataset variants ({', '.join(sorted(options))}); "
                 f"using {key!r}")
  return key, options[key]


def _choose_fit(sr: ShiftResult, kinds: dict, baseline: str, testbed_fits: dict,
                testbed_ok: bool, baseline_models=None):
  sup = sorted(l for l in sr.points if kinds.get(l) == "supervised" and
               (baseline_models is None or l in baseline_models))
  found = f"found {len(sup)}" + (f" ({', '.join(sup)})" if sup else "")
  published = testbed_fits.get(sr.axes_name) if testbed_ok else None
  need = (f"effective robustness from your results needs at least {MIN_BASELINES} "
          f"supervised models with both {sr.x_desc} and {sr.y_desc}; {found}")
  if baseline in ("auto", "user") and len(sup) >= MIN_BASELINES:
    try:
      sr.fit = robustness.fit_baseline([sr.points[l][0] for l in sup],
                                       [sr.points[l][1] for l in sup], sup,
                                       source=f"{len(sup)} supervised models of these results")
      sr.fit_source = "user"
      return
    except ValueError as e:
      need = f"the fit over your supervised models failed: {e}"
  if baseline == "user":
    sr.message = need + "."
    return
  if published is not None:
    sr.fit, sr.fit_source = published, "testbed"
    if baseline == "auto":
      sr.message = need + "; using the published testbed fit instead."
    return
  sr.message = (need + "; no published fit exists for this shift, so no effective "
                "robustness is reported." if baseline == "auto" else
                "no published testbed fit exists for this shift.")


def shift_results(rs: ResultSet, baseline: str = "auto",
                  testbed_fits: Optional[dict] = None,
                  axes_list: Sequence[conv.ShiftAxes] = conv.SHIFT_AXES,
                  baseline_models: Optional[Sequence[str]] = None) -> tuple[list, list]:
  """Computes every shift's coordinates, fit and scores.

  Args:
    rs: the results.
    baseline: 'auto' (user's supervised models if >= 3, else testbed), 'user', 'testbed'.
    testbed_fits: {shift name: BaselineFit}; default the shipped file.
    axes_list: the shift axes to look for.
    baseline_models: restrict the user baseline to these model labels or specs (the
      testbed fits only STANDARD models; list yours if some are robustness-trained).

  Returns:
    (list of ShiftResult, notes).
  """
  if baseline not in ("auto", "user", "testbed"):
    raise ValueError(f"baseline must be 'auto', 'user' or 'testbed', got {baseline!r}")
  testbed_fits = robustness.load_testbed_fits() if testbed_fits is None else testbed_fits
  kinds = {l: m.kind for l, m in rs.models.items()}
  allowed = None
  if baseline_models is not None:
    allowed = {l for l, m in rs.models.items()
               if l in baseline_models or m.model in baseline_models}
  notes: list = []
  out = []
  for ax in axes_list:
    ys = rs.clean_by_name(ax.y_dataset, ax.y_metric)
    for y_label in sorted(ys):
      if ax.x_dataset == ax.y_dataset:
        x_label = y_label
        xs = rs.clean_by_name(ax.x_dataset, ax.x_metric).get(y_label, {})
      else:
        x_label, xs = _pick_x(rs.clean_by_name(ax.x_dataset, ax.x_metric), ax.x_dataset,
                              notes)
      variant = "" if y_label == ax.y_dataset else f" [{y_label}]"
      sr = ShiftResult(_slug(ax.name + variant), ax.title + variant, ax.name,
                       f"{x_label} {ax.x_metric}", f"{y_label} {ax.y_metric}", {}, {})
      for label in rs.labels():
        x, y = xs.get(label), ys[y_label].get(label)
        if x is not None and y is not None:
          sr.points[label] = (x, y)
        elif y is not None:
          sr.missing[label] = f"no clean {ax.x_metric} row on {x_label} (the ID axis)"
      # The testbed fits matched-frequency V2 and the plain sets only.
      testbed_ok = y_label == ax.y_dataset or "matched" in y_label
      _choose_fit(sr, kinds, baseline, testbed_fits, testbed_ok, allowed)
      _score(sr)
      out.append(sr)
  out += _corruption_shifts(rs, kinds, baseline, notes, allowed)
  return out, notes


def _score(sr: ShiftResult):
  for label, (x, y) in sr.points.items():
    sr.drop[label] = float(robustness.accuracy_drop(x, y))
    if sr.fit is not None:
      sr.rho[label] = float(robustness.effective_robustness(sr.fit, x, y))


def _corruption_shifts(rs: ResultSet, kinds: dict, baseline: str, notes: list,
                       allowed=None) -> list:
  """One shift per corruption family: mean top-1 over its corruption rows vs clean."""
  out = []
  for family, fam in sorted(collect.corruptions(rs).items()):
    keys = set().union(*(set(c) for c in fam["cells"].values()))
    sr = ShiftResult(_slug(f"{family}_mean"), f"{family}: mean over {len(keys)} "
                     "corruption settings", f"{family}_mean", f"{fam['clean']} top1",
                     f"{family} mean top1", {}, {})
    for label, cells in fam["cells"].items():
      x = collect.clean_value(rs, label, fam["clean"])
      if set(cells) != keys:
        sr.missing[label] = (f"has {len(cells)} of the {len(keys)} corruption settings of "
                             f"{family}")
        continue
      if x is None:
        sr.missing[label] = f"no clean top1 row on {fam['clean']} (the ID axis)"
        continue
      sr.points[label] = (x, sum(cells.values()) / len(cells))
    _choose_fit(sr, kinds, baseline if baseline != "testbed" else "user", {}, False, allowed)
    _score(sr)
    out.append(sr)
  return out


def effective_tables(shifts: list) -> list[Table]:
  """Effective robustness, accuracy drop and fit tables."""
  labels = []
  for sr in shifts:
    labels += [l for l in list(sr.points) + list(sr.missing) if l not in labels]
  cols = [sr.title for sr in shifts]
  rho_t = Table("effective_robustness", "Effective robustness rho = acc_OOD - "
                "beta(acc_ID) (percentage points; best per column in bold)", cols, labels,
                {}, fmt="pp", better="max")
  drop_t = Table("accuracy_drop", "Accuracy drop, ID - OOD (percentage points; lower is "
                 "better)", cols, labels, {}, fmt="pp", better="min")
  for sr in shifts:
    for l in labels:
      if l in sr.points:
        drop_t.values[(l, sr.title)] = sr.drop[l]
        if sr.fit is not None:
          rho_t.values[(l, sr.title)] = sr.rho[l]
        else:
          rho_t.missing_reason[(l, sr.title)] = "no baseline fit: " + sr.message
      else:
        reason = sr.missing.get(l, f"no rows for {sr.y_desc}")
        rho_t.missing_reason[(l, sr.title)] = reason
        drop_t.missing_reason[(l, sr.title)] = reason
  fit_rows = [sr.title for sr in shifts]
  fit_cols = ["ID axis", "OOD axis", "baseline", "models", "slope a", "intercept b",
              "pivot (ID)"]
  fit_t = Table("baseline_fits", "Baseline fits: logit(OOD) = a * logit(ID) + b",
                fit_cols, fit_rows, {}, fmt="float", better=None, row_header="shift")
  for sr in shifts:
    f = sr.fit
    fit_t.values[(sr.title, "ID axis")] = sr.x_desc
    fit_t.values[(sr.title, "OOD axis")] = sr.y_desc
    fit_t.values[(sr.title, "baseline")] = (
        {"user": "your supervised models", "testbed": "testbed (published)"}[sr.fit_source]
        if f else "none")
    if f is None:
      fit_t.missing_reason[(sr.title, "slope a")] = sr.message
      continue
    fit_t.values[(sr.title, "models")] = str(len(f.baselines))
    fit_t.values[(sr.title, "slope a")] = " / ".join(f"{a:.4f}" for a, _ in f.lines)
    fit_t.values[(sr.title, "intercept b")] = " / ".join(f"{b:.4f}" for _, b in f.lines)
    fit_t.values[(sr.title, "pivot (ID)")] = (
        " / ".join(f"{100 * p:.2f}%" for p in f.pivots) if f.pivots else "none")
  fit_t.notes = [f"{sr.title}: {sr.message}" for sr in shifts if sr.message]
  fit_t.notes += sorted({n for sr in shifts if sr.fit for n in sr.fit.notes})
  return [rho_t, drop_t, fit_t]


def effective_figures(shifts: list, kinds: dict) -> list:
  out = []
  for sr in shifts:
    if not sr.points:
      continue
    used = set(sr.fit.baselines) if sr.fit is not None and sr.fit_source == "user" else set()
    pts = [(l, kinds.get(l, "unknown"), x, y, l in used) for l, (x, y) in sr.points.items()]
    fit_label = {"user": "fit: your supervised models",
                 "testbed": "fit: testbed standard models"}.get(sr.fit_source, "")
    out.append(figures.effective_robustness_figure(
        f"effrob_{sr.name}", f"Effective robustness: {sr.title}", sr.x_desc, sr.y_desc,
        pts, sr.fit, fit_label))
  return out


# --- relative robustness -----------------------------------------------------------
def base_spec(model: str) -> str:
  """The model spec without the runner's '@option=value,...' suffix."""
  return model.split("@", 1)[0]


def is_learned_prompt(m) -> bool:
  """A CLIP-Auto / learned-prompt variant (suite, head templates or runner label)."""
  t = m.templates.lower()
  return ("clip_auto" in m.suites or "auto" in t or "learned" in t or
          re.search(r"@.*templates=(learned|auto)", m.model) is not None)


def default_pairs(rs: ResultSet) -> list[tuple[str, str]]:
  """RoZ's CLIP => supervised pairs, then CLIP-Auto => CLIP for models that have both."""
  pairs = list(robustness.ROZ_PAIRS)
  by_model: dict = {}
  for label, m in rs.models.items():
    if m.kind != "supervised":
      by_model.setdefault(base_spec(m.model), []).append(m)
  for model, entries in by_model.items():
    auto = [m for m in entries if is_learned_prompt(m)]
    plain = [m for m in entries if m not in auto]
    plain.sort(key=lambda m: ("@" in m.model, m.label))   # the runner's default first
    for a in auto:
      if plain:
        pairs.append((a.label, plain[0].label))
  return pairs


def parse_pair(spec: str) -> tuple[str, str]:
  """'A=>B' -> (A, B): A is the model with the intervention, B the one without."""
  a, sep, b = spec.partition("=>")
  if not sep or not a.strip() or not b.strip():
    raise ValueError(f"pair {spec!r}: expected 'WITH=>WITHOUT' (model labels or aliases "
                     f"{', '.join(ALIASES)})")
  return a.strip(), b.strip()


def _resolve(rs: ResultSet, side: str, sr: ShiftResult) -> tuple[Optional[str], str]:
  if side in rs.models:
    cands = [side]
  elif side in ALIASES:
    kind, pat = ALIASES[side]
    cands = [l for l, m in rs.models.items()
             if m.kind == kind and re.search(pat, m.model.lower())]
    if not cands:
      return None, f"no {kind} model matches alias {side!r}"
  else:
    return None, f"{side!r} is neither a model label nor an alias ({', '.join(ALIASES)})"
  have = [l for l in cands if l in sr.points]
  if not have:
    return None, f"{', '.join(cands)} has no {sr.title} coordinates"
  if len(have) > 1:   # prefer the hand-written-prompt, default-option variant
    plain = [l for l in have if not is_learned_prompt(rs.models[l])] or have
    default = [l for l in plain if "@" not in rs.models[l].model]
    have = default if len(default) == 1 else plain
  if len(have) > 1:
    return None, f"alias {side!r} is ambiguous: {', '.join(have)}"
  return have[0], ""


def relative_tables(rs: ResultSet, shifts: list, pairs: Sequence[tuple[str, str]]
                    ) -> list[Table]:
  """tau (OOD change) and delta-rho tables for each pair across shifts."""
  rows = [f"{a} => {b}" for a, b in pairs]
  cols = [sr.title for sr in shifts]
  tau_t = Table("relative_robustness", "Relative robustness tau = acc_OOD(with) - "
                "acc_OOD(without) (percentage points)", cols, rows, {}, fmt="pp",
                better="max", row_header="pair (with => without)")
  drho_t = Table("relative_effective_robustness", "Change in effective robustness, "
                 "rho(with) - rho(without) (percentage points)", cols, rows, {}, fmt="pp",
                 better="max", row_header="pair (with => without)")
  resolved = {}
  for (a, b), row in zip(pairs, rows):
    for sr in shifts:
      la, why_a = _resolve(rs, a, sr)
      lb, why_b = _resolve(rs, b, sr)
      if la is None or lb is None:
        why = "; ".join(w for w in (why_a, why_b) if w)
        tau_t.missing_reason[(row, sr.title)] = why
        drho_t.missing_reason[(row, sr.title)] = why
        continue
      resolved.setdefault(row, set()).add(f"{la} => {lb}")
      rel = robustness.relative_robustness(*sr.points[la], *sr.points[lb], fit=sr.fit)
      tau_t.values[(row, sr.title)] = rel["tau"]
      if rel["delta_rho"] is not None:
        drho_t.values[(row, sr.title)] = rel["delta_rho"]
      else:
        drho_t.missing_reason[(row, sr.title)] = "no baseline fit for this shift"
  tau_t.notes = [f"{row}: {', '.join(sorted(v))}" for row, v in resolved.items()]
  return [tau_t, drho_t]
