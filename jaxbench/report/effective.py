"""Effective and relative robustness from a ResultSet: per-shift fits, tables, plots.

For every shift with OOD rows (:data:`jaxbench.report.conventions.SHIFT_AXES`, plus
one 'mean over corruptions' shift per corruption family) this module collects the
(ID, OOD) coordinates of every model and scores every model against two named
baselines (issue 18: a baseline is never swapped silently):

* the ImageNet testbed's published fit (:mod:`jaxbench.report.fit_coefficients`, 85
  STANDARD models of the whole testbed), the default and the primary column;
* a fit over the user's own supervised models (at least :data:`MIN_BASELINES`), a
  second, labelled table that lists the models and their kinds.

``baseline='user'`` makes the user fit primary (and the testbed fit the second
table); ``'auto'`` is kept as an alias of ``'testbed'``. Every table says which
baseline its numbers use.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional, Sequence

import numpy as np

from jaxbench.metrics import robustness
from jaxbench.report import collect
from jaxbench.report import conventions as conv
from jaxbench.report import figures
from jaxbench.report import fit_coefficients as testbed
from jaxbench.report.results import ResultSet
from jaxbench.report.tables import Table

MIN_BASELINES = 3
BASELINES = ("testbed", "user", "auto")
SOURCE_TEXT = {"testbed": "ImageNet testbed fit (85 STANDARD models, published "
                          "accuracies)",
               "user": "fit over your supervised models"}

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
# The testbed's published rows for RoZ's architectures (alias -> testbed model name).
TESTBED_PEERS = {"RN50": "resnet50_clip_zeroshot", "ViT-B/32": "vit_b_32_clip_zeroshot",
                 "ResNet-50": "resnet50", "ResNet-101": "resnet101",
                 "EfficientNet-B3": "efficientnet-b3",
                 "ViT-B/32@384": "vit_base_patch32_384"}


@dataclasses.dataclass
class ShiftResult:
  """One shift's coordinates and its scores under both baselines.

  ``fit`` / ``rho`` / ``fit_source`` are the primary baseline's (per ``baseline=``);
  ``fits`` / ``rhos`` / ``messages`` hold both, keyed 'testbed' and 'user'.
  """
  name: str                      # slug
  title: str
  axes_name: str                 # ShiftAxes.name
  x_desc: str
  y_desc: str
  points: dict                   # {label: (acc_x, acc_y)}
  missing: dict                  # {label: reason} for models with only one axis
  fit: Optional[robustness.BaselineFit] = None
  fit_source: str = ""           # 'user' | 'testbed' | ''
  message: str = ""
  rho: dict = dataclasses.field(default_factory=dict)
  drop: dict = dataclasses.field(default_factory=dict)
  testbed_key: str = ""          # key of the shipped testbed fit ('' = none)
  fits: dict = dataclasses.field(default_factory=dict)
  rhos: dict = dataclasses.field(default_factory=dict)
  messages: dict = dataclasses.field(default_factory=dict)
  user_models: list = dataclasses.field(default_factory=list)   # [(label, kind)]
  figure: bool = True            # False: tables only (per-corruption columns)


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
                baseline_models=None):
  """Fills both baselines of ``sr`` and picks the primary one (never swapping)."""
  sup = sorted(l for l in sr.points if kinds.get(l) == "supervised" and
               (baseline_models is None or l in baseline_models))
  found = f"found {len(sup)}" + (f" ({', '.join(sup)})" if sup else "")
  need = (f"effective robustness from your results needs at least {MIN_BASELINES} "
          f"supervised models with both {sr.x_desc} and {sr.y_desc}; {found}")
  if len(sup) >= MIN_BASELINES:
    try:
      sr.fits["user"] = robustness.fit_baseline(
          [sr.points[l][0] for l in sup], [sr.points[l][1] for l in sup], sup,
          source=f"{len(sup)} supervised models of these results: {', '.join(sup)}")
      sr.user_models = [(l, kinds.get(l, "unknown")) for l in sup]
    except ValueError as e:
      sr.messages["user"] = f"the fit over your supervised models failed: {e}"
  else:
    sr.messages["user"] = need
  published = testbed_fits.get(sr.testbed_key) if sr.testbed_key else None
  if published is not None:
    sr.fits["testbed"] = published
  else:
    sr.messages["testbed"] = sr.messages.get("testbed") or (
        "no published testbed fit exists for this shift")
  primary = "user" if baseline == "user" else "testbed"
  sr.fit_source = primary if primary in sr.fits else ""
  sr.fit = sr.fits.get(primary)
  if sr.fit is None:
    other = "testbed" if primary == "user" else "user"
    sr.message = sr.messages[primary] + (
        f" (the {SOURCE_TEXT[other]} is in the second table)" if other in sr.fits else "")


def _testbed_key(ax: conv.ShiftAxes, y_label: str) -> tuple[str, str]:
  """(testbed fit key, why none) for a shift's OOD dataset label."""
  if ax.name == "imagenet_v2":
    low = y_label.lower()
    if "threshold" in low:
      return "imagenet_v2_threshold0.7", ""
    if "top" in low:
      return "imagenet_v2_top_images", ""
    if y_label == ax.y_dataset or "matched" in low:
      return "imagenet_v2", ""
    return "", f"the testbed has no fit for {y_label}"
  if y_label != ax.y_dataset:
    return "", f"the testbed's fit is for {ax.y_dataset} as published, not {y_label}"
  return (ax.name, "") if ax.name in testbed.SHIFT_COLUMNS else (
      "", "no published testbed fit exists for this shift")


def shift_results(rs: ResultSet, baseline: str = "testbed",
                  testbed_fits: Optional[dict] = None,
                  axes_list: Sequence[conv.ShiftAxes] = conv.SHIFT_AXES,
                  baseline_models: Optional[Sequence[str]] = None) -> tuple[list, list]:
  """Computes every shift's coordinates, fit and scores.

  Args:
    rs: the results.
    baseline: the primary baseline: 'testbed' (default; 'auto' is an alias) or 'user'
      (the fit over your supervised models); the other one is always computed too and
      reported in a second, labelled table.
    testbed_fits: {shift name: BaselineFit}; default the shipped file.
    axes_list: the shift axes to look for.
    baseline_models: restrict the user baseline to these model labels or specs (the
      testbed fits only STANDARD models; list yours if some are robustness-trained).

  Returns:
    (list of ShiftResult, notes).
  """
  if baseline not in BASELINES:
    raise ValueError(f"baseline must be 'testbed', 'user' or 'auto' (= 'testbed'), got "
                     f"{baseline!r}")
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
      sr.testbed_key, why = _testbed_key(ax, y_label)
      if why:
        sr.messages["testbed"] = why
      _choose_fit(sr, kinds, baseline, testbed_fits, allowed)
      _score(sr)
      out.append(sr)
  out += _corruption_shifts(rs, kinds, baseline, notes, allowed, testbed_fits)
  return out, notes


def _score(sr: ShiftResult):
  for label, (x, y) in sr.points.items():
    sr.drop[label] = float(robustness.accuracy_drop(x, y))
    for source, fit in sr.fits.items():
      sr.rhos.setdefault(source, {})[label] = float(
          robustness.effective_robustness(fit, x, y))
  sr.rho = sr.rhos.get(sr.fit_source, {}) if sr.fit is not None else {}


def _corruption_key(family: str, keys: set) -> tuple[str, str]:
  """The testbed fit of a corruption family's mean, when it is the same quantity.

  The testbed averages ImageNet-C's released JPEGs ('on-disk') over all 19 of its
  corruptions and 5 severities; a mean over another set is a different quantity.
  """
  if family not in ("imagenet_c", "imagenet2012_corrupted"):
    return "", "no published testbed fit exists for this corruption family"
  want = {(c, s) for c in testbed.CORRUPTIONS for s in range(1, 6)}
  if set(keys) != want:
    return "", ("the testbed's ImageNet-C fit averages all 19 corruptions x 5 "
                f"severities; these results hold {len(keys)} settings")
  return "imagenet_c.avg.on-disk", ""


def _corruption_shifts(rs: ResultSet, kinds: dict, baseline: str, notes: list,
                       allowed=None, testbed_fits=None) -> list:
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
      sr.points[label] = (x, collect.settings_mean(cells))
    sr.testbed_key, why = _corruption_key(family, keys)
    if why:
      sr.messages["testbed"] = why
    _choose_fit(sr, kinds, baseline, testbed_fits, allowed)
    _score(sr)
    out.append(sr)
    if family in ("imagenet_c", "imagenet2012_corrupted"):
      out += _per_corruption_shifts(rs, family, fam, kinds, baseline, allowed, testbed_fits)
  return out


def _per_corruption_shifts(rs, family, fam, kinds, baseline, allowed, testbed_fits) -> list:
  """ImageNet-C (released JPEGs) per corruption, mean of its 5 severities, against the
  testbed's per-corruption on-disk fit; tables only (no figure per corruption)."""
  out = []
  present = {c for cells in fam["cells"].values() for c, _ in cells}
  for c in [c for c in testbed.CORRUPTIONS if c in present]:
    sr = ShiftResult(_slug(f"{family}_{c}"), f"{family}: {c} (mean of 5 severities)",
                     f"{family}_{c}", f"{fam['clean']} top1", f"{family} {c} top1", {}, {},
                     figure=False)
    for label, cells in fam["cells"].items():
      accs = [cells.get((c, s)) for s in range(1, 6)]
      if all(a is None for a in accs):
        continue
      x = collect.clean_value(rs, label, fam["clean"])
      if any(a is None for a in accs):
        sr.missing[label] = f"{c}: has {sum(a is not None for a in accs)} of 5 severities"
      elif x is None:
        sr.missing[label] = f"no clean top1 row on {fam['clean']} (the ID axis)"
      else:
        sr.points[label] = (x, sum(accs) / 5)
    sr.testbed_key = f"imagenet_c.{c}.on-disk"
    _choose_fit(sr, kinds, baseline, testbed_fits, allowed)
    _score(sr)
    out.append(sr)
  return out


def _rho_table(shifts: list, labels: list, source: str, primary: bool) -> Table:
  name = "effective_robustness" if primary else f"effective_robustness_{source}"
  t = Table(name, f"Effective robustness rho = acc_OOD - beta(acc_ID), baseline: "
            f"{SOURCE_TEXT[source]} (percentage points; best per column in bold)",
            [sr.title for sr in shifts], labels, {}, fmt="pp", better="max")
  for sr in shifts:
    fit = sr.fits.get(source)
    for l in labels:
      if l in sr.points and fit is not None:
        t.values[(l, sr.title)] = sr.rhos[source][l]
      elif l in sr.points:
        t.missing_reason[(l, sr.title)] = f"no {source} baseline: {sr.messages[source]}"
      else:
        t.missing_reason[(l, sr.title)] = sr.missing.get(l, f"no rows for {sr.y_desc}")
    if fit is None:
      continue
    if source == "user":
      t.notes.append(f"{sr.title}: fit over {len(sr.user_models)} models: " + ", ".join(
          f"{l} ({k})" for l, k in sr.user_models))
    else:
      t.notes.append(f"{sr.title}: testbed fit '{sr.testbed_key}' over "
                     f"{len(fit.baselines)} STANDARD models ({testbed.COMMIT[:7]})")
  return t


def effective_tables(shifts: list, baseline: str = "testbed",
                     models: Optional[dict] = None) -> list[Table]:
  """Effective robustness under both baselines, accuracy drop and fit tables.

  The first table uses the primary baseline (``baseline``), the second the other one;
  each title names its baseline and each note lists the models a fit used.
  """
  labels = []
  for sr in shifts:
    labels += [l for l in list(sr.points) + list(sr.missing) if l not in labels]
  cols = [sr.title for sr in shifts]
  primary = "user" if baseline == "user" else "testbed"
  other = "testbed" if primary == "user" else "user"
  rho_t = _rho_table(shifts, labels, primary, True)
  alt_t = _rho_table(shifts, labels, other, False)
  drop_t = Table("accuracy_drop", "Accuracy drop, ID - OOD (percentage points; lower is "
                 "better)", cols, labels, {}, fmt="pp", better="min")
  for sr in shifts:
    for l in labels:
      if l in sr.points:
        drop_t.values[(l, sr.title)] = sr.drop[l]
      else:
        drop_t.missing_reason[(l, sr.title)] = sr.missing.get(l, f"no rows for {sr.y_desc}")
  fit_rows = [f"{sr.title} [{src}]" for sr in shifts for src in (primary, other)]
  fit_cols = ["ID axis", "OOD axis", "baseline", "models", "slope a", "intercept b",
              "pivot (ID)"]
  fit_t = Table("baseline_fits", "Baseline fits: logit(OOD) = a * logit(ID) + b",
                fit_cols, fit_rows, {}, fmt="float", better=None, row_header="shift")
  for sr in shifts:
    for src in (primary, other):
      row = f"{sr.title} [{src}]"
      f = sr.fits.get(src)
      fit_t.values[(row, "ID axis")] = sr.x_desc if src == "user" else (
          testbed.SHIFT_COLUMNS[sr.testbed_key][0] if f else sr.x_desc)
      fit_t.values[(row, "OOD axis")] = sr.y_desc if src == "user" else (
          testbed.SHIFT_COLUMNS[sr.testbed_key][1] if f else sr.y_desc)
      fit_t.values[(row, "baseline")] = SOURCE_TEXT[src] + (
          " (primary)" if src == primary else "") if f else "none"
      if f is None:
        fit_t.missing_reason[(row, "slope a")] = sr.messages.get(src, "")
        continue
      fit_t.values[(row, "models")] = str(len(f.baselines))
      fit_t.values[(row, "slope a")] = " / ".join(f"{a:.4f}" for a, _ in f.lines)
      fit_t.values[(row, "intercept b")] = " / ".join(f"{b:.4f}" for _, b in f.lines)
      fit_t.values[(row, "pivot (ID)")] = (
          " / ".join(f"{100 * p:.2f}%" for p in f.pivots) if f.pivots else "none")
  fit_t.notes = [f"{sr.title}: {sr.message}" for sr in shifts if sr.message]
  fit_t.notes += sorted({n for sr in shifts for f in sr.fits.values() for n in f.notes})
  return [rho_t, alt_t, drop_t, fit_t] + testbed_peer_table(shifts, models)


def testbed_peer_table(shifts: list, rs_models: Optional[dict] = None) -> list[Table]:
  """The user's rows beside the testbed's published rows for RoZ's architectures.

  Rows: for each architecture of :data:`TESTBED_PEERS`, every user model whose spec
  matches the alias, then the testbed's row ('testbed: <name>').

  Returns:
    [effective robustness under the testbed baseline (points), accuracies: '<shift>
     ID' and '<shift> OOD' columns (percent)]; the testbed rows are its published
    accuracies, scored by the same fit.
  """
  names, cols = testbed.read_testbed()
  row_of = {n: i for i, n in enumerate(names)}
  shifts = [sr for sr in shifts if "testbed" in sr.fits]
  rows, values, accs = [], {}, {}
  labels = []
  for sr in shifts:
    labels += [l for l in sr.points if l not in labels]
  for alias, peer in TESTBED_PEERS.items():
    kind, pat = ALIASES[alias]
    for l in labels:
      spec = (rs_models[l].model if rs_models and l in rs_models else l).lower()
      if re.search(pat, spec) and l not in rows and (
          rs_models is None or rs_models[l].kind == kind):
        rows.append(l)
    tb_row = f"testbed: {peer}"
    rows.append(tb_row)
    for sr in shifts:
      xc, yc, _ = testbed.SHIFT_COLUMNS[sr.testbed_key]
      x, y = cols[xc][row_of[peer]], cols[yc][row_of[peer]]
      if np.isfinite(x) and np.isfinite(y):
        values[(tb_row, sr.title)] = float(robustness.effective_robustness(
            sr.fits["testbed"], x / 100, y / 100))
        accs[(tb_row, f"{sr.title} ID")] = float(x) / 100
        accs[(tb_row, f"{sr.title} OOD")] = float(y) / 100
  for sr in shifts:
    for l in rows:
      if l in sr.rhos.get("testbed", {}):
        values[(l, sr.title)] = sr.rhos["testbed"][l]
      if l in sr.points:
        accs[(l, f"{sr.title} ID")], accs[(l, f"{sr.title} OOD")] = sr.points[l]
  notes = [f"testbed rows: published accuracies of robustness_top1s.csv @ "
           f"{testbed.COMMIT[:7]} ({', '.join(f'{a} = {p}' for a, p in TESTBED_PEERS.items())})"]
  return [Table("effective_robustness_vs_testbed", "Your models beside the testbed's "
                "published rows (effective robustness, testbed baseline, percentage points)",
                [sr.title for sr in shifts], rows, values, fmt="pp", better=None,
                notes=list(notes), list_missing=False),
          Table("accuracy_vs_testbed", "Your models beside the testbed's published rows "
                "(top-1 %, ID and OOD axis of each shift)",
                [f"{sr.title} {a}" for sr in shifts for a in ("ID", "OOD")], rows, accs,
                fmt="pct", better=None, notes=list(notes), list_missing=False)]


def effective_figures(shifts: list, kinds: dict, background: bool = True) -> list:
  """One figure per shift: the testbed's models behind the user's, fit, band, y = x.

  Args:
    shifts: ShiftResults.
    kinds: {label: 'zeroshot' | 'supervised'}.
    background: draw the testbed's models (those its own figure shows) when the shift
      has a testbed fit.
  """
  out = []
  for sr in shifts:
    if not sr.points or not sr.figure:
      continue
    used = set(sr.fit.baselines) if sr.fit is not None and sr.fit_source == "user" else set()
    pts = [(l, kinds.get(l, "unknown"), x, y, l in used) for l, (x, y) in sr.points.items()]
    fit_label = {"user": "fit: your supervised models",
                 "testbed": "fit: testbed standard models"}.get(sr.fit_source, "")
    back, band = None, None
    if background and "testbed" in sr.fits:
      back = [(n, t, x / 100, y / 100) for n, t, x, y in testbed.plotted_points(sr.testbed_key)]
    if sr.fit_source == "testbed":
      band = (lambda key, fit: lambda grid: testbed.bootstrap_band(key, grid, fit))(
          sr.testbed_key, sr.fit)
    out.append(figures.effective_robustness_figure(
        f"effrob_{sr.name}", f"Effective robustness: {sr.title}", sr.x_desc, sr.y_desc,
        pts, sr.fit, fit_label, background=back,
        type_styles=testbed.type_colors(nat=sr.testbed_key in testbed.NAT_TYPE_SHIFTS),
        band=band))
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
  sources = sorted({sr.fit_source for sr in shifts if sr.fit is not None})
  drho_t = Table("relative_effective_robustness", "Change in effective robustness, "
                 "rho(with) - rho(without) (percentage points; baseline: "
                 + (", ".join(SOURCE_TEXT[s] for s in sources) or "none") + ")", cols,
                 rows, {}, fmt="pp", better="max", row_header="pair (with => without)")
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
