"""Assembles the report: report.md, a self-contained report.html, CSVs and PNGs.

``report.html`` carries its figures as base64 PNG data URIs and its style inline; it
loads nothing from anywhere (no scripts, stylesheets, fonts or remote images), so it
can be mailed or archived as one file.
"""
from __future__ import annotations

import base64
import csv
import dataclasses
import html
import os
import time
from typing import Optional, Sequence

from jaxbench.metrics import robustness
from jaxbench.report import conventions as conv
from jaxbench.report import effective
from jaxbench.report import summaries
from jaxbench.report.results import ResultSet

_CSS = """
body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:12px}
caption{font-weight:bold;text-align:left;padding:4px 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th.row{text-align:left;font-weight:normal}
td.best{background:#e8f4e8}
p.note{font-size:12px;color:#555;margin:2px 0}
figure{margin:1em 0} img{max-width:100%} pre{background:#f6f6f6;padding:1em;
white-space:pre-wrap;font-size:12px}
"""


@dataclasses.dataclass
class Section:
  title: str
  paragraphs: list = dataclasses.field(default_factory=list)
  tables: list = dataclasses.field(default_factory=list)
  figures: list = dataclasses.field(default_factory=list)
  preformatted: str = ""


@dataclasses.dataclass
class Report:
  """What :func:`build` made; :func:`write` puts it on disk."""
  sections: list
  tables: list
  figures: list
  notes: list
  missing: list          # [(table title, row, column, reason)]
  shifts: list           # effective.ShiftResult
  header: list
  out_dir: str = ""
  files: dict = dataclasses.field(default_factory=dict)


def build(rs: ResultSet, *, baseline: str = "testbed",
          pairs: Optional[Sequence[tuple[str, str]]] = None,
          mfr_reference: Optional[str] = None, testbed_fits: Optional[dict] = None,
          shift_axes: Optional[Sequence[conv.ShiftAxes]] = None,
          baseline_models: Optional[Sequence[str]] = None) -> Report:
  """Computes every table and figure the results support."""
  notes = list(rs.notes)
  sections = []
  kinds = {l: m.kind for l, m in rs.models.items()}

  nat = summaries.natural_table(rs)
  if nat is not None:
    sections.append(Section("Clean and natural distribution shifts", tables=[nat]))
  from jaxbench.report import heads as heads_report
  trained = heads_report.heads_table(rs)
  if trained is not None:
    sections.append(Section("Trained heads", tables=[trained]))

  shifts, shift_notes = effective.shift_results(
      rs, baseline, testbed_fits, conv.SHIFT_AXES if shift_axes is None else shift_axes,
      baseline_models)
  notes += shift_notes
  if shifts:
    sec = Section("Effective robustness", paragraphs=[
        "Baselines: logit(OOD) = a logit(ID) + b fitted by least squares; beta(x) = "
        "sigmoid(a logit(x) + b); rho = acc_OOD - beta(acc_ID). Two baselines, never "
        "swapped: the ImageNet testbed's fit over its 85 STANDARD models (published "
        "accuracies, jaxbench/resources/testbed_fits.json) and a fit over your "
        f"supervised models (at least {effective.MIN_BASELINES}); the primary table "
        f"uses the {effective.SOURCE_TEXT['user' if baseline == 'user' else 'testbed']}, "
        "the second table the other one, and each names its baseline and models. A "
        "baseline at 0 % OOD splits the fit at its ID accuracy (testbed rule). Figures "
        "draw the testbed's models behind yours, coloured by testbed type. Points at "
        "0 % or 100 % cannot be drawn on logit axes and are listed under their figure."],
        tables=effective.effective_tables(shifts, baseline, rs.models),
        figures=effective.effective_figures(shifts, kinds))
    sections.append(sec)
    pair_list = list(pairs) if pairs else effective.default_pairs(rs)
    rel = effective.relative_tables(rs, shifts, pair_list)
    if any(t.values for t in rel):
      sections.append(Section("Relative robustness", paragraphs=[
          "tau = acc_OOD(with) - acc_OOD(without) for each pair (Taori et al.); the "
          "second table is the change in effective robustness. Default pairs: RoZ's "
          "CLIP/supervised pairing and CLIP-Auto vs CLIP."], tables=rel))
    else:
      notes.append("relative robustness: no pair has both models on any shift ("
                   + "; ".join(f"{a} => {b}" for a, b in pair_list) + ")")

  ct, cf, cn = summaries.corruption_section(rs)
  notes += cn
  pt, pn = summaries.perturbation_tables(rs, mfr_reference)
  notes += pn
  if ct or pt:
    sections.append(Section("Synthetic distribution shifts", tables=ct + pt, figures=cf))
  at, af = summaries.adversarial_section(rs)
  if at:
    sections.append(Section("Adversarial attacks", tables=at, figures=af))
  tt, tf = summaries.typographic_section(rs)
  if tt:
    sections.append(Section("Typographic attacks", tables=tt, figures=tf))
  ov = summaries.overlap_table(rs)
  if ov is not None:
    sections.append(Section("Data overlap", tables=[ov]))
  other = summaries.other_table(rs)
  if other is not None:
    sections.append(Section("Other results", tables=[other]))

  tables = [t for s in sections for t in s.tables]
  missing = [(t.name, r, c, why) for t in tables for r, c, why in t.missing()]
  prov = summaries.provenance_tables(rs)
  sections.append(Section("Provenance", paragraphs=[
      "Workdirs: " + ", ".join(rs.workdirs)], tables=prov))
  sections.append(Section("Row conventions", preformatted=conv.CONVENTIONS_MD))
  header = [f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from {len(rs.rows)} result "
            f"rows of {len(rs.models)} models in {len(rs.workdirs)} workdir(s).",
            f"Testbed fits: {robustness.TESTBED_FITS_FILE}"]
  figs = [f for s in sections for f in s.figures]
  return Report(sections, tables + prov, figs, notes, missing, shifts, header)


def _missing_md(missing: list) -> str:
  if not missing:
    return "No missing cells.\n"
  lines = ["| table | row | column | reason |", "|---|---|---|---|"]
  for t, r, c, why in missing:
    lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in (t, r, c, why)) + " |")
  return "\n".join(lines) + "\n"


def write(report: Report, out_dir: str) -> Report:
  """Writes report.md, report.html, tables/*.csv, figures/*.png, missing.csv."""
  os.makedirs(os.path.join(out_dir, "tables"), exist_ok=True)
  os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
  files = {}
  pngs = {}
  for f in report.figures:
    data = f.png()
    pngs[f.name] = data
    path = os.path.join(out_dir, "figures", f"{f.name}.png")
    with open(path, "wb") as fh:
      fh.write(data)
    files[f"figures/{f.name}.png"] = path
  for t in report.tables:
    path = os.path.join(out_dir, "tables", f"{t.name}.csv")
    with open(path, "w", newline="") as fh:
      fh.write(t.to_csv())
    files[f"tables/{t.name}.csv"] = path
  path = os.path.join(out_dir, "missing.csv")
  with open(path, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["table", "row", "column", "reason"])
    w.writerows(report.missing)
  files["missing.csv"] = path

  md = ["# jaxbench report", ""] + [f"{h}  " for h in report.header] + [""]
  hx = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>jaxbench report</title>"
        f"<style>{_CSS}</style></head><body><h1>jaxbench report</h1>"]
  hx += [f"<p>{html.escape(h)}</p>" for h in report.header]
  if report.notes:
    md += ["## Notes", ""] + [f"* {n}" for n in report.notes] + [""]
    hx.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>"
                                             for n in report.notes) + "</ul>")
  for s in report.sections:
    if s.title == "Provenance":
      md += ["## Missing cells", "", _missing_md(report.missing)]
      hx.append("<h2>Missing cells</h2>" + _missing_html(report.missing))
    md += [f"## {s.title}", ""]
    hx.append(f"<h2>{html.escape(s.title)}</h2>")
    for p in s.paragraphs:
      md += [p, ""]
      hx.append(f"<p>{html.escape(p)}</p>")
    for t in s.tables:
      md += [t.to_markdown(), ""]
      hx.append(t.to_html())
    for f in s.figures:
      md += [f"![{f.title}](figures/{f.name}.png)", "", f"*{f.caption}*", ""]
      b64 = base64.b64encode(pngs[f.name]).decode()
      hx.append(f"<figure><img alt='{html.escape(f.title)}' src='data:image/png;base64,"
                f"{b64}'><figcaption>{html.escape(f.caption)}</figcaption></figure>")
    if s.preformatted:
      md += [s.preformatted, ""]
      hx.append(f"<pre>{html.escape(s.preformatted)}</pre>")
  hx.append("</body></html>")
  for name, text in (("report.md", "\n".join(md)), ("report.html", "".join(hx))):
    path = os.path.join(out_dir, name)
    with open(path, "w") as fh:
      fh.write(text)
    files[name] = path
  report.out_dir = out_dir
  report.files = files
  return report


def _missing_html(missing: list) -> str:
  if not missing:
    return "<p>No missing cells.</p>"
  rows = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(x))}</td>"
                                  for x in m) + "</tr>" for m in missing)
  return ("<table><thead><tr><th>table</th><th>row</th><th>column</th><th>reason</th>"
          f"</tr></thead><tbody>{rows}</tbody></table>")
