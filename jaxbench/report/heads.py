"""Trained heads side by side with their backbone: zero-shot, probe and supervised rows.

A trained head's rows carry ``model_info.head`` (``trained_head``, ``backbone``,
``recipe``; see :mod:`jaxbench.heads.model`). For each backbone with at least one
trained head, this table lists the backbone's own rows (zero-shot, or the
ImageNet classifier), then its probes (kind 'probe'), then its new supervised
heads, with clean top-1 per dataset, so "is a probe on the same features more or
less robust?" reads along one block. Effective robustness of these rows against
the supervised fit is in the effective-robustness section (probes are plotted
there but never enter the supervised baseline fit).
"""
from __future__ import annotations

from typing import Optional

from jaxbench.report import collect
from jaxbench.report.results import ResultSet
from jaxbench.report.tables import Table


def _recipe(head: dict) -> str:
  r = head.get("recipe") or {}
  if r.get("method") == "logreg":
    return f"logreg, C={r.get('best_C', '?'):g} (val)" if isinstance(
        r.get("best_C"), (int, float)) else "logreg"
  if r.get("method") == "adamw_head":
    sel = r.get("select", "?")
    return (f"AdamW head ({r.get('preset', '?')}), epoch {r.get('best_epoch', '?')} "
            f"chosen on {sel}" + (" [test-selected]" if sel == "test" else ""))
  return str(r.get("method", "?"))


def heads_table(rs: ResultSet) -> Optional[Table]:
  """Clean top-1 (%) of each backbone and its trained heads, or None without heads."""
  heads: dict = {}          # label -> (backbone, kind, recipe text)
  for r in rs.rows:
    h = (r.model_info or {}).get("head") or {}
    if h.get("trained_head"):
      heads[r.label] = (str(h.get("backbone", "")), r.kind, _recipe(h))
  if not heads:
    return None
  values, cols = {}, {}
  for r in rs.rows:
    if r.metric == "top1" and r.value is not None and collect.classify(r) == "clean":
      cols.setdefault(r.dataset, len(cols))
      values[(r.label, r.dataset)] = r.value
  rows = []
  order = {"zeroshot": 0, "supervised": 1, "unknown": 1}
  for backbone in sorted({b for b, _, _ in heads.values()}):
    # The runner suffixes options to a spec ('spec@templates=photo'): match the spec part.
    base = sorted((l for l, m in rs.models.items()
                   if m.model.split("@")[0] == backbone and l not in heads),
                  key=lambda l: (order.get(rs.models[l].kind, 2), l))
    own = sorted((l for l, (b, _, _) in heads.items() if b == backbone),
                 key=lambda l: (heads[l][1] != "probe", l))
    for l in base:
      values[(l, "backbone")] = backbone
      values[(l, "kind")] = rs.models[l].kind
      values[(l, "head")] = "own (zero-shot / ImageNet)"
    for l in own:
      values[(l, "backbone")] = backbone
      values[(l, "kind")] = heads[l][1]
      values[(l, "head")] = heads[l][2]
    rows += base + own
  columns = ["backbone", "kind", "head"] + sorted(cols, key=cols.get)
  t = Table("trained_heads", "Trained heads beside their backbone: clean top-1 (%)", columns,
            rows, values, fmt="pct", better=None)
  return t
