"""What a finished run prints: a short results table and notes on unreadable files.

The table is for reading at a terminal; the full identity of every row (model
options, template tuples, exact floats) stays in ``results.jsonl``. Shortening:
epsilons that are multiples of 1/255 print as ``k/255``, tuples longer than
:data:`MAX_ITEMS` print as their ends and length, and model options holding a
sequence (``templates=('a photo of {}.', ...)``) print as its length.
"""
from __future__ import annotations

import ast
import math
import re
from typing import Any, Sequence

from jaxbench import registry

COLUMNS = ("model", "dataset", "transform", "metric", "value", "n")
MAX_ITEMS = 4
# Keyword names whose float values are radii (printed as k/255 when they are).
_EPS_KEYS = ("eps", "epsilon")


def eps_text(x: float) -> str:
  """``k/255`` when 0 < x <= 1 is k/255 to float precision, else ``repr(x)``."""
  if 0 < x <= 1:
    k = round(x * 255)
    if k >= 1 and math.isclose(x, k / 255, rel_tol=1e-12, abs_tol=0.0):
      return f"{k}/255"
  return repr(x)


def _value_text(key: str, value: Any) -> str:
  if isinstance(value, float) and key in _EPS_KEYS:
    return eps_text(value)
  if isinstance(value, str) and "(" in value:
    return repr(short_spec(value))
  if isinstance(value, (tuple, list)) and len(value) > MAX_ITEMS:
    first, last = _literal_text(value[0]), _literal_text(value[-1])
    return f"({first}, ..., {last}; {len(value)} values)"
  return _literal_text(value)


def _literal_text(value: Any) -> str:
  """A value as the canonical spec form spells it (floats by repr)."""
  return registry.format_spec("_", (value,))[2:-1]


def short_spec(spec: str) -> str:
  """A readable spelling of a spec string (``kind:`` prefixes kept); the spec itself
  when it does not parse."""
  kind, sep, inner = spec.partition(":")
  if not sep or "(" in kind:
    kind, sep, inner = "", "", spec
  try:
    name, args, kwargs = registry.parse(inner)
  except registry.SpecError:
    return spec
  if not args and not kwargs:
    return spec
  parts = [_value_text("", a) for a in args]
  parts += [f"{k}={_value_text(k, kwargs[k])}" for k in sorted(kwargs)]
  return f"{kind}{sep}{name}({', '.join(parts)})"


_OPT_SPLIT = re.compile(r",(?=[A-Za-z_]\w*=)")


def short_model(label: str) -> str:
  """A runner model label (``spec@k=v,...``) with sequence-valued options shown by
  their length (``demo_clip@templates=(4 items)``)."""
  base, at, opts = label.partition("@")
  base = short_spec(base)
  if not at:
    return base
  out = []
  for opt in _OPT_SPLIT.split(opts):
    key, eq, value = opt.partition("=")
    if eq and value[:1] in "([":
      try:
        seq = ast.literal_eval(value)
        value = f"({len(seq)} items)"
      except (ValueError, SyntaxError):
        pass
    out.append(f"{key}{eq}{value}")
  return base + "@" + ",".join(out)


def table_lines(rows: Sequence[dict]) -> list[str]:
  """The results table: a header and one line per row, columns aligned.

  Args:
    rows: results.jsonl rows (keys model, dataset, transform, metric, value, n).

  Returns:
    Lines without trailing newlines; [] for no rows.
  """
  if not rows:
    return []
  cells = [list(COLUMNS)]
  for r in rows:
    value = r.get("value")
    value = f"{value:.4f}" if isinstance(value, (int, float)) else str(value)
    cells.append([short_model(str(r["model"])), short_spec(str(r["dataset"])),
                  short_spec(str(r["transform"])), str(r["metric"]), value, str(r.get("n", ""))])
  widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
  return ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]


def bad_file_lines(rows: Sequence[dict], results_path: str) -> list[str]:
  """One line per pass with unreadable files: how many, and where they are listed."""
  seen, out = set(), []
  for r in rows:
    d = r.get("details") or {}
    n_bad = int(d.get("n_bad", 0) or 0)
    key = (r.get("model"), r.get("dataset"), r.get("transform"))
    if n_bad and key not in seen:
      seen.add(key)
      out.append(f"{n_bad} unreadable file{'s' if n_bad != 1 else ''} skipped in "
                 f"{short_spec(str(r['dataset']))} ({short_model(str(r['model']))}, "
                 f"{short_spec(str(r['transform']))}): ids and errors in {results_path}, "
                 "field details.bad_files of these rows")
  return out
