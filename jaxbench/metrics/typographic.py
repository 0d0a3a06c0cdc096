"""Typographic-attack metrics: accuracy and attack success rate, per variant.

RoZ (protocol.md §1.4, §3.6): ``Acc`` = P(prediction = true class) and
``Attack success rate`` = P(prediction = written class). Both are pure
functions of per-example predictions, so they apply unchanged to zero-shot and
supervised models and to any label space (1000-way ImageNet-T, 10-way
CIFAR-10-T).

The success rate is over examples whose text names a class *other than the
true one* (as every RoZ example does); ``n_written`` says how many. Examples
with no class text (written label -1: the random-word control) or with the
true class written (the true-class control) count for accuracy only, so a
control variant's success rate is NaN and mixing controls into a set does not
dilute the attack's rate. All values are fractions in [0, 1]; a rate over zero
examples is NaN.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np


def _preds(preds) -> np.ndarray:
  p = np.asarray(preds)
  if p.ndim == 2:  # logits -> argmax
    p = p.argmax(-1)
  if p.ndim != 1:
    raise ValueError(f"predictions must be (N,) class indices or (N, K) logits, got {p.shape}")
  return p.astype(np.int64)


def _rate(hits: np.ndarray) -> float:
  return float(hits.mean()) if hits.size else float("nan")


def accuracy(preds, labels) -> float:
  """P(pred = label).

  Args:
    preds: (N,) int predicted classes or (N, K) logits.
    labels: (N,) int true classes.
  """
  p, y = _preds(preds), np.asarray(labels, np.int64)
  if p.shape != y.shape:
    raise ValueError(f"preds {p.shape} and labels {y.shape} differ in shape")
  return _rate(p == y)


def attack_success_rate(preds, written_labels, labels=None) -> float:
  """P(pred = written class) over examples whose text names another class.

  Args:
    preds: (N,) int predicted classes or (N, K) logits.
    written_labels: (N,) int written classes; -1 = no class (excluded).
    labels: (N,) true classes; examples with the true class written are
      excluded (None: keep them).
  """
  p, w = _preds(preds), np.asarray(written_labels, np.int64)
  if p.shape != w.shape:
    raise ValueError(f"preds {p.shape} and written_labels {w.shape} differ in shape")
  keep = w >= 0
  if labels is not None:
    keep &= w != np.asarray(labels, np.int64)
  return _rate(p[keep] == w[keep])


def summarize(preds, labels, written_labels, variants: Optional[Sequence[str]] = None) -> dict:
  """Accuracy and success rate overall and per variant.

  Args:
    preds: (N,) predicted classes or (N, K) logits.
    labels: (N,) true classes.
    written_labels: (N,) written classes (-1 = no class).
    variants: (N,) variant names, or None (one variant '').

  Returns:
    {'top1', 'success_rate', 'n', 'n_written', 'by_variant': {name: same keys}}.
  """
  p = _preds(preds)
  y = np.asarray(labels, np.int64)
  w = np.asarray(written_labels, np.int64)
  v = np.asarray(variants if variants is not None else [""] * len(p))
  if not (p.shape == y.shape == w.shape == v.shape):
    raise ValueError(f"shapes differ: preds {p.shape}, labels {y.shape}, "
                     f"written {w.shape}, variants {v.shape}")

  def one(sel):
    return {"top1": accuracy(p[sel], y[sel]),
            "success_rate": attack_success_rate(p[sel], w[sel], y[sel]),
            "n": int(sel.sum()), "n_written": int(((w[sel] >= 0) & (w[sel] != y[sel])).sum())}

  out = one(np.ones(len(p), bool))
  out["by_variant"] = {str(name): one(v == name) for name in sorted(set(v.tolist()))}
  return out


def flat_metrics(summary: dict) -> dict:
  """``summarize`` output as metric name -> value: 'top1', 'success_rate' and,
  with several variants, 'top1/<variant>', 'success_rate/<variant>'."""
  out = {"top1": summary["top1"], "success_rate": summary["success_rate"]}
  if len(summary["by_variant"]) > 1:
    for name, s in summary["by_variant"].items():
      out[f"top1/{name}"] = s["top1"]
      out[f"success_rate/{name}"] = s["success_rate"]
  return out


def from_ids(ids: Sequence[str], preds, table: Mapping[str, tuple[int, int, str]]) -> dict:
  """``summarize`` for predictions keyed by example id.

  Args:
    ids: (N,) example ids as the reader returns them.
    preds: (N,) predicted classes or (N, K) logits, aligned with ids.
    table: id -> (label, written_label, variant), from
      :func:`jaxbench.typographic.sets.example_table`.

  Raises:
    KeyError: naming an id the table does not hold.
  """
  missing = [i for i in ids if i not in table]
  if missing:
    raise KeyError(f"{len(missing)} ids not in the typographic manifest, e.g. {missing[:3]}")
  rows = [table[i] for i in ids]
  return summarize(preds, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
