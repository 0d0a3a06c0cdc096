"""Per-suite summary tables and figures (everything except effective robustness).

Formulas:
  * ImageNet-C (Hendrycks and Dietterich 2019; protocol.md section 3.3):
    E_c = mean over severities 1-5 of the top-1 error on corruption c;
    CE_c = 100 * E_c / E_c^AlexNet; mCE = mean of CE_c over the 15 benchmark
    corruptions; relative CE_c = 100 * (E_c - E_clean) / (E_c^AlexNet -
    E_clean^AlexNet), relative mCE their mean (sum over severities / 5 = mean).
  * ImageNet-P (section 3.4): per perturbation, flip probability and top-5 distance
    averaged over difficulties; mFR = 100 * mean_p FP_p / FP_p^ref and mT5D likewise
    over the perturbations both models have, ref = AlexNet (or the chosen model).
  * Adversarial: robust accuracy, success rate as the suite reports them; curves add
    the attack's clean accuracy at epsilon 0 when a ``clean_acc`` row exists.
  * Typographic: accuracy (prediction = true class), attack success rate (prediction =
    written class), and the drop from the clean set's top-1.
  * Overlap: accuracy on the overlapping and the clean subsets and their difference.
"""
from __future__ import annotations

import collections
import json
import re
from typing import Optional

import numpy as np

from jaxbench.metrics import imagenet_c
from jaxbench.metrics import imagenet_p
from jaxbench.metrics import robustness
from jaxbench.report import collect
from jaxbench.report import conventions as conv
from jaxbench.report import figures
from jaxbench.report.results import ResultSet
from jaxbench.report.tables import Table

_ORDER = ("imagenet", "imagenet_v2", "imagenet_r", "objectnet", "imagenet_sketch",
          "imagenet_a", "imagenet_vid_robust", "ytbb_robust", "stylized_imagenet",
          "imagenet_val_on_r_classes", "imagenet_val_on_a_classes",
          "imagenet_val_on_objectnet_classes", "imagenet_val_on_vid_robust_classes",
          "imagenet_val_on_ytbb_robust_classes", "cifar10", "cifar10_1")
_CLEAN_METRICS = ("top1", "pm0", "pm10")


def _order_key(name: str) -> tuple:
  return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)


def natural_table(rs: ResultSet) -> Optional[Table]:
  """Clean top-1 (pm-0/pm-10 for the video sets) per model and dataset."""
  cols: dict = {}
  values = {}
  for r in rs.known():
    if r.metric not in _CLEAN_METRICS or collect.classify(r) != "clean" or r.value is None:
      continue
    col = r.dataset if r.metric == "top1" else f"{r.dataset} {r.metric}"
    cols[col] = (_order_key(r.dataset_name), r.metric, r.dataset_name)
    values[(r.label, col)] = r.value
  if not cols:
    return None
  columns = sorted(cols, key=lambda c: cols[c][:2])
  rows = [l for l in rs.labels() if any((l, c) in values for c in columns)]
  # Mean over RoZ's 7 natural shifts (pm-0 for the video sets, as the CLIP paper).
  picks = {}
  for name in conv.NATURAL_SHIFTS:
    metric = "pm0" if name in ("imagenet_vid_robust", "ytbb_robust") else "top1"
    cands = [c for c in columns if cols[c][2] == name and cols[c][1] == metric]
    plain = [c for c in cands if c.split(" ")[0] == name or "matched" in c]
    pick = plain[0] if len(plain) == 1 else (cands[0] if len(cands) == 1 else None)
    if pick:
      picks[name] = pick
  mean_col = "mean of 7 natural shifts"
  table = Table("clean_and_natural", "Top-1 accuracy (%) on clean and naturally shifted "
                "sets (pm-0/pm-10 where marked)", columns, rows, values, fmt="pct")
  if len(picks) == len(conv.NATURAL_SHIFTS):
    for l in rows:
      vals = [values.get((l, c)) for c in picks.values()]
      if all(v is not None for v in vals):
        values[(l, mean_col)] = float(np.mean(vals))
      else:
        table.missing_reason[(l, mean_col)] = "not all 7 shifts evaluated"
    table.columns.append(mean_col)
  return table


# --- ImageNet-C ----------------------------------------------------------------------
def _is_imagenet_family(family: str) -> bool:
  return family in ("imagenet_c", "imagenet2012_corrupted") or (
      family.startswith("imagenet") and family.endswith("+generated") and
      not family.startswith("imagenet_p"))


def mce(cells: dict, clean_acc: Optional[float]) -> dict:
  """CE, relative CE per corruption and their means for one model (0-100 scale).

  The computation lives in :func:`jaxbench.metrics.imagenet_c.mce_table_row` (one
  home for mCE); see there for the returned keys.
  """
  return imagenet_c.mce_table_row(cells, clean_acc)


def corruption_section(rs: ResultSet) -> tuple[list, list, list]:
  """(tables, figures, notes) for every corruption family."""
  tables, figs, notes = [], [], []
  for family, fam in sorted(collect.corruptions(rs).items()):
    cells_by_label = fam["cells"]
    corrs = sorted({c for cells in cells_by_label.values() for c, _ in cells},
                   key=lambda c: (list(conv.IMAGENET_C_ALEXNET_ERR).index(c)
                                  if c in conv.IMAGENET_C_ALEXNET_ERR else 99, c))
    keys = set().union(*(set(c) for c in cells_by_label.values()))
    cols = [f"{c}" for c in corrs] + ["mean (all settings)"]
    rows = [l for l in rs.labels() if l in cells_by_label]
    t = Table(f"corruptions_{_slug(family)}", f"{family}: top-1 accuracy (%) per corruption, "
              "mean over severities", cols, rows, {}, fmt="pct")
    imagenet = _is_imagenet_family(family)
    if imagenet:
      t.columns += ["mCE", "relative mCE"]
      t.col_fmt.update({"mCE": "score", "relative mCE": "score"})
      t.col_better.update({"mCE": "min", "relative mCE": "min"})
    panels: dict = {c: {} for c in corrs}
    for l in rows:
      cells = cells_by_label[l]
      for c in corrs:
        accs = [v for (cc, _), v in cells.items() if cc == c]
        if accs:
          t.values[(l, c)] = float(np.mean(accs))
        panels[c][l] = sorted((s, v) for (cc, s), v in cells.items() if cc == c)
      if set(cells) == keys:
        t.values[(l, "mean (all settings)")] = collect.settings_mean(cells)
      else:
        t.missing_reason[(l, "mean (all settings)")] = (
            f"{len(keys) - len(cells)} of {len(keys)} settings missing")
      clean = collect.clean_value(rs, l, fam["clean"])
      if clean is not None:
        for c in corrs:
          if panels[c][l]:      # a lone clean point would claim data the model lacks
            panels[c][l] = [(0, clean)] + panels[c][l]
      if imagenet:
        m = mce(cells, clean)
        if m["mce"] is not None:
          t.values[(l, "mCE")] = m["mce"]
        else:
          t.missing_reason[(l, "mCE")] = ("mCE needs all 15 benchmark corruptions at "
                                          "severities 1-5; missing " + ", ".join(m["missing"]))
        if m["rel_mce"] is not None:
          t.values[(l, "relative mCE")] = m["rel_mce"]
        else:
          t.missing_reason[(l, "relative mCE")] = (
              "needs complete mCE and a clean top1 row on " + fam["clean"])
    t.notes.append(f"clean reference: {fam['clean']} (severity 0 in the figure)")
    if imagenet:
      t.notes.append("mCE: CE_c = 100 E_c / E_c(AlexNet) with AlexNet's published mean "
                     "errors; relative mCE subtracts the clean error (AlexNet clean error "
                     f"{conv.ALEXNET_CLEAN_ERR:.5f}: torchvision's AlexNet, 56.522 % "
                     "top-1, as Hendrycks evaluated)")
    else:
      notes.append(f"{family}: no mCE (AlexNet's reference errors exist for ImageNet-C "
                   "only)")
    if family.endswith("+generated"):
      t.notes.append("generated on the fly: not comparable to the official on-disk JPEGs")
    tables.append(t)
    figs.append(figures.curves_figure(f"severity_{_slug(family)}",
                                      f"{family}: top-1 vs severity", panels, "severity",
                                      "top-1 %"))
  return tables, figs, notes


def _slug(s: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")[:80]


# --- ImageNet-P ----------------------------------------------------------------------
def perturbation_tables(rs: ResultSet, reference: Optional[str] = None
                        ) -> tuple[list, list]:
  """Flip probability / top-5 distance tables with mFR / mT5D; (tables, notes)."""
  data = collect.perturbations(rs)
  if not data:
    return [], []
  notes = []
  ref = reference
  if ref is None:
    alex = [l for l in data if "alexnet" in rs.models[l].model.lower()]
    ref = alex[0] if alex else None
  elif ref not in data:
    notes.append(f"mFR reference {ref!r} has no ImageNet-P rows; mFR/mT5D not normalised")
    ref = None
  tables = []
  for metric, title, summary in (("flip_prob", "flip probability", "mFR"),
                                 ("t5d", "top-5 distance", "mT5D")):
    per = {}
    for l, d in data.items():
      by_p = collections.defaultdict(list)
      for (p, _), v in d.get(metric, {}).items():
        by_p[p].append(v)
      if by_p:
        per[l] = {p: float(np.mean(v)) for p, v in by_p.items()}
    if not per:
      continue
    perts = sorted({p for d in per.values() for p in d})
    partial = f"{summary} (evaluated perturbations)"
    cols = perts + [f"mean {title}"] + ([summary, partial] if ref in per else [])
    rows = [l for l in rs.labels() if l in per]
    t = Table(f"imagenet_p_{metric}", f"ImageNet-P {title} per perturbation (mean over "
              "difficulties; lower is better)", cols, rows, {}, fmt="float", better="min")
    t.col_fmt[summary] = "score"
    for l in rows:
      for p in perts:
        if p in per[l]:
          t.values[(l, p)] = per[l][p]
      t.values[(l, f"mean {title}")] = float(np.mean(list(per[l].values())))
      if ref in per:
        # One home for mFR / mT5D: jaxbench.metrics.imagenet_p.mfr.
        m = imagenet_p.mfr(data[l].get(metric, {}), data[ref].get(metric, {}))
        if m["mfr"] is not None:
          t.values[(l, summary)] = 100.0 * m["mfr"]
        else:
          why = []
          if m["missing"]:
            why.append(f"missing perturbations {', '.join(m['missing'])}")
          if m["missing_baseline"]:
            why.append(f"{ref} lacks {', '.join(m['missing_baseline'])}")
          t.missing_reason[(l, summary)] = (
              f"{summary} averages the {len(imagenet_p.BENCHMARK)} ImageNet-P test "
              "perturbations; " + "; ".join(why))
        if m["evaluated_mean"] is not None:
          t.values[(l, partial)] = 100.0 * m["evaluated_mean"]
          if m["missing"] or m["missing_baseline"]:
            t.notes.append(f"{l}: {partial} over {', '.join(m['used'])} only; missing: "
                           f"{', '.join(m['missing'] + m['missing_baseline'])}")
    if ref in per:
      t.notes.append(f"{summary} normalised by {ref} (100 = the reference)")
    else:
      t.notes.append(f"{summary} not computed: no reference model (AlexNet or "
                     "--mfr_reference) with ImageNet-P rows")
    tables.append(t)
  return tables, notes


# --- adversarial ---------------------------------------------------------------------
def _eps_text(eps: Optional[float]) -> str:
  if eps is None:
    return "eps=?"
  k = eps * 255
  if abs(k - round(k)) < 1e-6 and eps > 0:
    return f"eps={round(k)}/255"
  return f"eps={eps:g}"


def adversarial_section(rs: ResultSet) -> tuple[list, list]:
  data = collect.attacks(rs)
  if not data:
    return [], []
  multi_ds = len({ds for ds, _ in data}) > 1
  groups = sorted(data)

  def col(ds, fam, eps):
    return (f"{ds}: " if multi_ds else "") + f"{fam} {_eps_text(eps)}"

  rows = [l for l in rs.labels()
          if any(l in m for g in data.values() for m in g.values())]
  tables = []
  for metric, title, better in (("robust_acc", "Robust accuracy (%)", "max"),
                                ("success_rate", "Attack success rate (%)", "min")):
    cols, values = [], {}
    for ds, fam in groups:
      per = data[(ds, fam)].get(metric, {})
      for eps in sorted({e for v in per.values() for e in v}, key=lambda e: (e is None, e)):
        c = col(ds, fam, eps)
        cols.append(c)
        for l, v in per.items():
          if eps in v:
            values[(l, c)] = v[eps]
    if cols:
      t = Table(f"adv_{metric}", title + " by attack and epsilon", cols, rows, values,
                fmt="pct", better=better)
      clean_col = "clean accuracy"
      for ds, fam in groups:
        for l, v in data[(ds, fam)].get("clean_acc", {}).items():
          values.setdefault((l, (f"{ds}: " if multi_ds else "") + clean_col),
                            next(iter(v.values())))
      extra = sorted({c for (_, c) in values if c.endswith(clean_col)})
      t.columns = extra + t.columns
      t.col_better.update({c: "max" for c in extra})
      tables.append(t)
  others = {}
  for (ds, fam), per_metric in data.items():
    for metric, per in per_metric.items():
      if metric in ("robust_acc", "success_rate", "clean_acc"):
        continue
      for l, v in per.items():
        for eps, val in v.items():
          others[(l, f"{col(ds, fam, eps)} {metric}")] = val
  if others:
    cols = sorted({c for _, c in others})
    tables.append(Table("adv_other_metrics", "Further attack metrics (raw values)", cols,
                        rows, others, fmt="float", better=None, list_missing=False))
  panels = {}
  for ds, fam in groups:
    per = data[(ds, fam)].get("robust_acc", {})
    clean = data[(ds, fam)].get("clean_acc", {})
    title = (f"{ds}: " if multi_ds else "") + fam
    panels[title] = {}
    for l, v in per.items():
      pts = [(e, a) for e, a in v.items() if e is not None]
      if l in clean and 0.0 not in v:
        pts.append((0.0, next(iter(clean[l].values()))))
      panels[title][l] = sorted(pts)
  all_eps = [e for p in panels.values() for pts in p.values() for e, _ in pts]
  in_255 = all(abs(e * 255 - round(e * 255)) < 1e-6 for e in all_eps)
  figs = [figures.curves_figure("robust_acc_vs_eps", "Robust accuracy vs epsilon", panels,
                                "epsilon (x 1/255)" if in_255 else "epsilon",
                                "robust accuracy %", x_scale=255.0 if in_255 else 1.0)]
  return tables, figs


# --- typographic ---------------------------------------------------------------------
def typographic_section(rs: ResultSet) -> tuple[list, list]:
  data = collect.typographic(rs)
  if not data:
    return [], []
  cols, values, reasons = [], {}, {}
  better = {}
  rows = [l for l in rs.labels() if any(l in d["cells"] for d in data.values())]
  panels = {}
  for name in sorted(data):
    d = data[name]
    c_clean, c_acc, c_drop, c_asr = (f"{name} clean", f"{name} acc", f"{name} drop",
                                     f"{name} ASR")
    cols += [c_clean, c_acc, c_drop, c_asr]
    better.update({c_clean: "max", c_acc: "max", c_drop: "min", c_asr: "min"})
    panels[name] = {}
    for l in rows:
      cell = d["cells"].get(l, {})
      clean = collect.clean_value(rs, l, d["clean_dataset"])
      acc, asr = cell.get("top1"), cell.get("success_rate")
      values[(l, c_clean)] = clean
      if clean is None:
        reasons[(l, c_clean)] = reasons[(l, c_drop)] = (
            f"no clean top1 row on {d['clean_dataset']}")
      values[(l, c_acc)] = acc
      values[(l, c_asr)] = asr
      if clean is not None and acc is not None:
        values[(l, c_drop)] = float(robustness.accuracy_drop(clean, acc))
      if l in d["cells"]:
        panels[name][l] = {"clean": clean, "typographic": acc, "success_rate": asr}
  values = {k: v for k, v in values.items() if v is not None}
  t = Table("typographic", "Typographic attacks: clean and attacked top-1, drop (points) "
            "and attack success rate (prediction = written class), %", cols, rows, values,
            fmt="pct", col_better=better, missing_reason=reasons)
  for c in cols:
    if c.endswith(" drop"):
      t.col_fmt[c] = "pp"
  fig = figures.bars_figure("typographic_bars", "Typographic attacks", panels,
                            [("clean", "clean top-1"), ("typographic", "typographic top-1"),
                             ("success_rate", "attack success")])
  return [t], [fig]


# --- overlap -------------------------------------------------------------------------
def overlap_table(rs: ResultSet) -> Optional[Table]:
  data = collect.overlap(rs)
  if not data:
    return None
  cols, values, better = [], {}, {}
  rows = [l for l in rs.labels() if any(l in d for d in data.values())]
  for ds in sorted(data):
    names = {"overlap_rate": f"{ds} overlap rate", "all": f"{ds} all",
             "acc_clean_subset": f"{ds} clean subset", "acc_overlap": f"{ds} overlapping",
             "diff": f"{ds} overlapping - clean"}
    cols += list(names.values())
    better.update({names["overlap_rate"]: None, names["all"]: "max",
                   names["acc_clean_subset"]: "max", names["acc_overlap"]: "max",
                   names["diff"]: None})
    for l in rows:
      cell = data[ds].get(l, {})
      for k in ("overlap_rate", "acc_clean_subset", "acc_overlap"):
        if k in cell:
          values[(l, names[k])] = cell[k]
      v = rs.value(l, ds, "clean", "top1")
      if v is not None:
        values[(l, names["all"])] = v
      if "acc_overlap" in cell and "acc_clean_subset" in cell:
        values[(l, names["diff"])] = cell["acc_overlap"] - cell["acc_clean_subset"]
  t = Table("overlap", "Data overlap: accuracy (%) on the full set, the clean (non-"
            "overlapping) and the overlapping subsets", cols, rows, values, fmt="pct",
            col_better=better)
  for ds in data:
    t.col_fmt[f"{ds} overlapping - clean"] = "pp"
  return t


# --- other rows ----------------------------------------------------------------------
def other_table(rs: ResultSet) -> Optional[Table]:
  """Rows no summary claims: unknown suites, other shifts, extra clean metrics."""
  values = {}
  for r in rs.rows:
    if r.value is None:
      continue
    cls = collect.classify(r) if r.suite in conv.KNOWN_SUITES else "unknown"
    if cls in ("corruption", "perturbation", "typographic", "attack", "overlap"):
      continue
    if cls == "clean" and r.metric in _CLEAN_METRICS + ("top5",):
      continue
    suite = r.suite if r.suite in conv.KNOWN_SUITES else f"{r.suite or '?'} (unknown suite)"
    values[(r.label, f"{suite}: {r.dataset} | {r.transform} | {r.metric}")] = r.value
  if not values:
    return None
  cols = sorted({c for _, c in values})
  rows = [l for l in rs.labels() if any((l, c) in values for c in cols)]
  return Table("other_results", "Other results (raw values, no summary applies)", cols,
               rows, values, fmt="float", better=None, list_missing=False)


# --- provenance ----------------------------------------------------------------------
def provenance_tables(rs: ResultSet) -> list[Table]:
  counts: dict = collections.defaultdict(collections.Counter)
  for r in rs.rows:
    for k, v in _flatten(r.provenance).items():
      counts[k][v] += 1
    counts["suite"][r.suite or "(none)"] += 1
  keys = sorted(counts)
  prov = Table("provenance", "Provenance of the rows (distinct values, with row counts)",
               ["values"], keys, {}, fmt="float", better=None, row_header="field")
  for k in keys:
    prov.values[(k, "values")] = "; ".join(f"{v} ({n})" for v, n in
                                           counts[k].most_common(8)) + (
        f"; ... {len(counts[k]) - 8} more" if len(counts[k]) > 8 else "")
  models = Table("models", "Models: kind, preprocessing, precision, templates",
                 ["kind", "preprocess", "precision", "templates", "classnames", "suites"],
                 rs.labels(), {}, better=None)
  for l, m in rs.models.items():
    models.values.update({
        (l, "kind"): m.kind, (l, "preprocess"): conv.short_preprocess(m.preprocess),
        (l, "precision"): m.precision or "?", (l, "templates"): m.templates or "-",
        (l, "classnames"): "; ".join(sorted(m.classnames)) or "-",
        (l, "suites"): ", ".join(sorted(s or "(none)" for s in m.suites))})
  return [models, prov]


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in (d or {}).items():
    key = f"{prefix}{k}"
    if isinstance(v, dict) and len(prefix) < 40:
      out.update(_flatten(v, key + "."))
    else:
      out[key] = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
  return out
