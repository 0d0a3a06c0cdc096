"""Paper-style tables: rows models, columns datasets/attacks, best per column marked.

A :class:`Table` holds raw values (fractions, points, counts); formatting happens at
render time, so the CSV keeps full precision while Markdown and HTML show percent
with the best cell of each column in bold.
"""
from __future__ import annotations

import csv
import dataclasses
import html
import io
import math
from typing import Optional

FORMATS = {
    "pct": lambda v: f"{100 * v:.2f}",             # fraction -> percent
    "pp": lambda v: f"{100 * v:+.2f}",             # fraction difference -> points
    "float": lambda v: f"{v:.4g}",
    "score": lambda v: f"{v:.2f}",                 # already on a 0-100 scale (mCE)
    "int": lambda v: f"{int(v)}",
}


@dataclasses.dataclass
class Table:
  """One table.

  Attributes:
    name: file-name slug (CSV is ``tables/<name>.csv``).
    title: caption.
    columns: column labels, in order.
    rows: row labels, in order.
    values: {(row, column): float | str | None}; None is a missing cell.
    fmt: default format of numeric cells (a key of :data:`FORMATS`).
    col_fmt: per-column format overrides.
    better: default direction for marking the best cell: 'max', 'min' or None.
    col_better: per-column overrides.
    row_header: header of the label column.
    notes: printed under the table.
    missing_reason: {(row, column): why the cell is empty}, for the missing list.
    list_missing: False for sparse raw tables whose empty cells mean nothing.
  """
  name: str
  title: str
  columns: list
  rows: list
  values: dict
  fmt: str = "pct"
  col_fmt: dict = dataclasses.field(default_factory=dict)
  better: Optional[str] = "max"
  col_better: dict = dataclasses.field(default_factory=dict)
  row_header: str = "model"
  notes: list = dataclasses.field(default_factory=list)
  missing_reason: dict = dataclasses.field(default_factory=dict)
  list_missing: bool = True

  def get(self, row, col):
    return self.values.get((row, col))

  def best(self, col) -> set:
    """Rows holding the best numeric value of a column (ties all marked)."""
    direction = self.col_better.get(col, self.better)
    vals = {r: self.get(r, col) for r in self.rows}
    vals = {r: v for r, v in vals.items()
            if isinstance(v, (int, float)) and not math.isnan(v)}
    if direction not in ("max", "min") or len(vals) < 2:
      return set()
    target = max(vals.values()) if direction == "max" else min(vals.values())
    return {r for r, v in vals.items() if abs(v - target) <= 1e-12}

  def cell_text(self, row, col) -> str:
    v = self.get(row, col)
    if v is None or (isinstance(v, float) and math.isnan(v)):
      return "–"
    if isinstance(v, str):
      return v
    return FORMATS[self.col_fmt.get(col, self.fmt)](v)

  def missing(self) -> list[tuple[str, str, str]]:
    """(row, column, reason) for every empty cell."""
    out = []
    if not self.list_missing:
      return out
    for r in self.rows:
      for c in self.columns:
        v = self.get(r, c)
        if v is None or (isinstance(v, float) and math.isnan(v)):
          out.append((r, c, self.missing_reason.get((r, c), "no result row")))
    return out

  # --- rendering -----------------------------------------------------------------
  def to_markdown(self) -> str:
    def esc(s):
      return str(s).replace("|", "\\|")
    best = {c: self.best(c) for c in self.columns}
    lines = [f"**{esc(self.title)}**", "",
             "| " + " | ".join([esc(self.row_header)] + [esc(c) for c in self.columns]) +
             " |", "|" + "---|" * (len(self.columns) + 1)]
    for r in self.rows:
      cells = []
      for c in self.columns:
        t = esc(self.cell_text(r, c))
        cells.append(f"**{t}**" if r in best[c] else t)
      lines.append("| " + " | ".join([esc(r)] + cells) + " |")
    for n in self.notes:
      lines += ["", f"*{esc(n)}*"]
    return "\n".join(lines) + "\n"

  def to_html(self) -> str:
    e = html.escape
    best = {c: self.best(c) for c in self.columns}
    out = [f"<table><caption>{e(self.title)}</caption><thead><tr>",
           f"<th>{e(self.row_header)}</th>"]
    out += [f"<th>{e(str(c))}</th>" for c in self.columns]
    out.append("</tr></thead><tbody>")
    for r in self.rows:
      out.append(f"<tr><th class='row'>{e(str(r))}</th>")
      for c in self.columns:
        t = e(self.cell_text(r, c))
        out.append(f"<td class='best'><b>{t}</b></td>" if r in best[c] else f"<td>{t}</td>")
      out.append("</tr>")
    out.append("</tbody></table>")
    out += [f"<p class='note'>{e(n)}</p>" for n in self.notes]
    return "".join(out)

  def to_csv(self) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([self.row_header] + list(self.columns))
    for r in self.rows:
      row = [r]
      for c in self.columns:
        v = self.get(r, c)
        row.append("" if v is None else (repr(v) if isinstance(v, float) else v))
      w.writerow(row)
    return buf.getvalue()
