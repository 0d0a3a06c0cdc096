"""Loads results rows from one or more workdirs into a :class:`ResultSet`.

Rows of one model that differ in preprocessing, precision or zero-shot template set
measure different things; they are never merged. (The runner already labels
non-default options as ``spec@option=value``; this guards rows whose model strings
collide anyway, e.g. from workdirs written with different settings.) Head class
names are not part of a variant: a zero-shot model legitimately uses a set's own
class names on some sets. With ``variants='separate'`` each
such variant becomes its own row label (the model spec plus a suffix naming what
differs, e.g. ``clip_b32 [preprocess=resize(224,bilinear)|...]``); with
``variants='refuse'`` loading stops with a message naming the difference.
Rows that repeat a (label, dataset, transform, metric) cell are not averaged either:
the later row wins (later workdir, later line) and a note records both values.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import os
from typing import Optional, Sequence

from jaxbench.report import conventions as conv

REQUIRED_KEYS = ("model", "dataset", "transform", "metric", "value")


class ReportError(ValueError):
  """Bad or inconsistent results input; the message names the file, key and value."""


@dataclasses.dataclass(frozen=True)
class Row:
  label: str             # row label in tables (model spec, + variant suffix)
  model: str             # model spec as written
  kind: str              # 'zeroshot' | 'supervised' | 'unknown'
  suite: str
  dataset: str           # column label (conventions.dataset_label)
  dataset_name: str      # registry name
  dataset_spec: str      # as written
  transform: str         # as written ('clean', 'shift:...', 'attack:...')
  metric: str            # canonical metric name
  value: Optional[float]  # None for NaN
  n: Optional[int]
  details: dict
  model_info: dict
  provenance: dict
  source: str            # 'path:line'


@dataclasses.dataclass
class ModelEntry:
  label: str
  model: str
  kind: str
  preprocess: str
  precision: str
  templates: str
  suites: set
  classnames: set


def _variant(info: dict) -> tuple[str, str, str]:
  """(preprocess, precision, templates) identity of a row's model variant."""
  head = info.get("head") or {}
  templates = head.get("templates", "")
  if isinstance(templates, (list, tuple)):
    digest = hashlib.sha256("\n".join(map(str, templates)).encode()).hexdigest()[:8]
    templates = f"{len(templates)} custom #{digest}"
  return (str(info.get("preprocess", "") or ""), str(info.get("precision", "") or ""),
          str(templates or ""))


_VARIANT_FIELDS = ("preprocess", "precision", "templates")


def _suffix(variant: tuple, differing: Sequence[int]) -> str:
  parts = []
  for i in differing:
    v = variant[i] or "none"
    if _VARIANT_FIELDS[i] == "preprocess":
      v = conv.short_preprocess(v)
    parts.append(f"{_VARIANT_FIELDS[i]}={v}")
  return " [" + ", ".join(parts) + "]"


class ResultSet:
  """All rows of the given workdirs, labelled, deduplicated and indexed.

  Attributes:
    rows: list of :class:`Row` (one per cell after deduplication).
    models: {label: ModelEntry} in first-seen order.
    notes: what loading changed or noticed (duplicates, variants, unknown suites).
    workdirs: the absolute workdir paths read.
  """

  def __init__(self, rows: list[Row], models: dict, notes: list[str],
               workdirs: list[str]):
    self.rows = rows
    self.models = models
    self.notes = notes
    self.workdirs = workdirs
    self._cell = {(r.label, r.dataset, r.transform, r.metric): r for r in rows}

  def labels(self) -> list[str]:
    return list(self.models)

  def kind(self, label: str) -> str:
    return self.models[label].kind

  def value(self, label: str, dataset: str, transform: str, metric: str
            ) -> Optional[float]:
    r = self._cell.get((label, dataset, transform, metric))
    return None if r is None else r.value

  def known(self) -> list[Row]:
    return [r for r in self.rows if r.suite in conv.KNOWN_SUITES]

  def clean_by_name(self, dataset_name: str, metric: str) -> dict[str, dict[str, float]]:
    """{dataset label: {model label: value}} over clean rows of a dataset name."""
    out: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for r in self.known():
      if (r.dataset_name == dataset_name and r.transform == "clean" and r.metric == metric
          and r.value is not None):
        out[r.dataset][r.label] = r.value
    return dict(out)


def _read_jsonl(path: str) -> list[tuple[int, dict]]:
  out = []
  with open(path) as f:
    for lineno, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ReportError(f"{path}:{lineno}: not a JSON object ({e}); the line starts "
                          f"{line[:80]!r}") from e
      if not isinstance(row, dict):
        raise ReportError(f"{path}:{lineno}: expected a JSON object, got "
                          f"{type(row).__name__}")
      out.append((lineno, row))
  return out


def _parse_row(path: str, lineno: int, raw: dict) -> dict:
  where = f"{path}:{lineno}"
  for k in REQUIRED_KEYS:
    if k not in raw:
      raise ReportError(f"{where}: row lacks required key {k!r} (required: "
                        f"{', '.join(REQUIRED_KEYS)})")
  for k in ("model", "dataset", "transform", "metric"):
    if not isinstance(raw[k], str) or not raw[k].strip():
      raise ReportError(f"{where}: {k!r} must be a non-empty string, got {raw[k]!r}")
  value = raw["value"]
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ReportError(f"{where}: 'value' must be a number, got {value!r}")
  value = float(value)
  metric = conv.canonical_metric(raw["metric"])
  if math.isnan(value):
    value = None
  elif metric in conv.FRACTION_METRICS and not -1e-9 <= value <= 1 + 1e-9:
    raise ReportError(f"{where}: metric {raw['metric']!r} = {value!r} is outside [0, 1]; "
                      "results rows store fractions, not percent")
  info = raw.get("model_info") or {}
  if not isinstance(info, dict):
    raise ReportError(f"{where}: 'model_info' must be an object, got {info!r}")
  kind = str(info.get("kind") or "unknown")
  n = raw.get("n")
  return dict(model=raw["model"].strip(), kind=kind, suite=str(raw.get("suite") or ""),
              dataset_spec=raw["dataset"], transform=raw["transform"].strip(),
              metric=metric, value=value, n=n if isinstance(n, int) else None,
              details=raw.get("details") if isinstance(raw.get("details"), dict) else {},
              model_info=info,
              provenance=raw.get("provenance") if isinstance(raw.get("provenance"),
                                                             dict) else {},
              source=where)


def load(workdirs: Sequence[str], variants: str = "separate") -> ResultSet:
  """Reads ``<workdir>/results.jsonl`` of every workdir (in order).

  Args:
    workdirs: one or more workdir paths.
    variants: 'separate' (label variants apart) or 'refuse' (raise on variants).

  Raises:
    ReportError: missing file, malformed row, no rows, or (refuse) model variants.
  """
  if variants not in ("separate", "refuse"):
    raise ReportError(f"variants must be 'separate' or 'refuse', got {variants!r}")
  if not workdirs:
    raise ReportError("no workdir given")
  parsed = []
  abs_dirs = []
  for wd in workdirs:
    wd = os.path.abspath(os.path.expanduser(wd))
    abs_dirs.append(wd)
    path = os.path.join(wd, "results.jsonl")
    if not os.path.exists(path):
      raise ReportError(f"{path} does not exist: expected the runner's results file in "
                        f"workdir {wd} (python -m jaxbench.main --workdir={wd} ...)")
    parsed += [_parse_row(path, ln, raw) for ln, raw in _read_jsonl(path)]
  if not parsed:
    raise ReportError(f"no result rows in {', '.join(abs_dirs)}")

  notes = []
  # --- model variants --------------------------------------------------------------
  by_model: dict[str, dict[tuple, list[dict]]] = collections.defaultdict(dict)
  for p in parsed:
    by_model[p["model"]].setdefault(_variant(p["model_info"]), []).append(p)
  label_of: dict[tuple, str] = {}
  for model, groups in by_model.items():
    keys = list(groups)
    if len(keys) == 1:
      label_of[(model, keys[0])] = model
      continue
    differing = [i for i in range(3) if len({k[i] for k in keys}) > 1]
    desc = "; ".join(
        f"{_VARIANT_FIELDS[i]}: " + " vs ".join(
            f"{k[i] or 'none'!r} ({len(groups[k])} rows, e.g. {groups[k][0]['source']})"
            for k in keys) for i in differing)
    if variants == "refuse":
      raise ReportError(f"model {model!r} has rows that differ in {desc}. These are "
                        "different measurements and are not averaged; rerun with "
                        "--variants=separate to report them as separate rows")
    used = set()
    for k in keys:
      label = model + _suffix(k, differing)
      j = 2
      while label in used:
        label, j = f"{model + _suffix(k, differing)} #{j}", j + 1
      used.add(label)
      label_of[(model, k)] = label
    notes.append(f"model {model!r} has rows that differ in {desc}; reported as separate "
                 "rows: " + ", ".join(repr(label_of[(model, k)]) for k in keys))

  # --- rows, deduplicated per cell ----------------------------------------------------
  # Columns are keyed by dataset identity (two image folders stay two columns).
  dataset_label = conv.dataset_labels(sorted({p["dataset_spec"] for p in parsed}))
  cells: dict[tuple, Row] = {}
  models: dict[str, ModelEntry] = {}
  unknown_suites = collections.Counter()
  for p in parsed:
    var = _variant(p["model_info"])
    label = label_of[(p["model"], var)]
    row = Row(label=label, model=p["model"], kind=p["kind"], suite=p["suite"],
              dataset=dataset_label[p["dataset_spec"]],
              dataset_name=conv.dataset_name(p["dataset_spec"]),
              dataset_spec=p["dataset_spec"], transform=p["transform"], metric=p["metric"],
              value=p["value"], n=p["n"], details=p["details"], model_info=p["model_info"],
              provenance=p["provenance"], source=p["source"])
    if row.suite not in conv.KNOWN_SUITES:
      unknown_suites[row.suite or "(none)"] += 1
    key = (label, row.dataset, row.transform, row.metric)
    old = cells.get(key)
    if old is not None and old.value != row.value:
      notes.append(f"duplicate cell {label} | {row.dataset} | {row.transform} | "
                   f"{row.metric}: {old.value} ({old.source}) vs {row.value} "
                   f"({row.source}); using the later row")
    cells[key] = row
    entry = models.get(label)
    if entry is None:
      entry = models[label] = ModelEntry(label, row.model, row.kind, var[0], var[1], var[2],
                                         set(), set())
    elif entry.kind != row.kind and row.kind != "unknown":
      if entry.kind == "unknown":
        entry.kind = row.kind
      else:
        notes.append(f"model {label!r}: rows disagree on model_info.kind ({entry.kind!r} "
                     f"vs {row.kind!r} at {row.source}); using {entry.kind!r}")
    entry.suites.add(row.suite)
    head = row.model_info.get("head") or {}
    if head.get("classnames"):
      entry.classnames.add(f"{head['classnames']} ({row.dataset})")
  for suite, count in sorted(unknown_suites.items()):
    notes.append(f"{count} rows of unknown suite {suite!r} (known: "
                 f"{', '.join(conv.KNOWN_SUITES)}) are listed under 'Other results' only")
  # Rows keep the model's resolved kind so summaries see one kind per label.
  rows = [dataclasses.replace(r, kind=models[r.label].kind) for r in cells.values()]
  return ResultSet(rows, models, notes, abs_dirs)
