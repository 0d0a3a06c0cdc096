"""pm-k for ImageNet-Vid-Robust and YTBB-Robust (Shankar et al. 2019).

A pm-k set is an anchor frame plus reviewed neighbour frames at most k frames
away. pm-0 is the fraction of anchors classified correctly; pm-k is the
fraction of anchors for which the anchor *and every* neighbour within k frames
are classified correctly (an anchor without neighbours counts iff it is
correct). Both are computed after a pass, from per-example top-1 predictions in
the set's label space, keyed by example id (protocol.md §3.5).

Which labels a neighbour is judged against differs between the two sets and is
encoded in :class:`PmkSets`:
  * Vid-Robust: each frame against its own labels (``labels.json``);
  * YTBB-Robust: every neighbour against its anchor's labels.

The constructors read the sets' metadata in their official formats:
:func:`vid_pmsets` (``labels.json`` + ``pmsets.json``) and :func:`ytbb_pmsets`
(testbed's ``anchor_labels.json``, ``pmk_labels.json`` and
``ytbb_robustness_test_anchors_full.csv``).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class PmkSets:
  """Anchors, their neighbours and the labels each frame is judged against.

  Attributes:
    anchors: sorted anchor ids.
    neighbours: anchor id -> ((offset in frames, neighbour id), ...).
    labels: frame id -> frozenset of correct classes; every anchor has an
      entry, and with ``judge_by_anchor=False`` every neighbour too.
    judge_by_anchor: neighbours are judged against their anchor's labels
      (YTBB-Robust) instead of their own (Vid-Robust).
  """
  anchors: tuple[str, ...]
  neighbours: Mapping[str, tuple[tuple[int, str], ...]]
  labels: Mapping[str, frozenset]
  judge_by_anchor: bool = False

  def labels_for(self, anchor: str, frame: str) -> frozenset:
    """The classes that count as correct for ``frame`` in ``anchor``'s set."""
    return self.labels[anchor if self.judge_by_anchor else frame]

  def frames(self) -> list[str]:
    """All anchor and neighbour ids, sorted."""
    ids = set(self.anchors)
    for a in self.anchors:
      ids.update(f for _, f in self.neighbours.get(a, ()))
    return sorted(ids)

  def __repr__(self):
    n = sum(len(v) for v in self.neighbours.values())
    return f"PmkSets({len(self.anchors)} anchors, {n} neighbours)"


def score(sets: PmkSets, preds: Mapping[str, int], ks: Sequence[int] = (0, 10)) -> dict:
  """pm-k fractions from top-1 predictions keyed by id.

  Args:
    sets: the pm-k sets.
    preds: example id -> predicted class in the set's label space.
    ks: neighbourhood radii (0 = anchor only).

  Returns:
    {'pm0': float, 'pm10': float, ..., 'n': anchors scored,
     'missing_anchors': anchors without a prediction (not scored),
     'missing_frames': neighbours without a prediction (counted as wrong)}.
  """
  hits = {k: 0 for k in ks}
  n = missing_anchors = 0
  missing = set()
  for anchor in sets.anchors:
    if anchor not in preds:
      missing_anchors += 1
      continue
    n += 1
    if int(preds[anchor]) not in sets.labels[anchor]:
      continue
    nearest_wrong = None  # smallest |offset| of a wrong neighbour
    for offset, frame in sets.neighbours.get(anchor, ()):
      if frame not in preds:
        missing.add(frame)
        ok = False
      else:
        ok = int(preds[frame]) in sets.labels_for(anchor, frame)
      if not ok and (nearest_wrong is None or abs(offset) < nearest_wrong):
        nearest_wrong = abs(offset)
    for k in ks:
      if nearest_wrong is None or nearest_wrong > k:
        hits[k] += 1
  out = {f"pm{k}": (hits[k] / n if n else float("nan")) for k in ks}
  out.update(n=n, missing_anchors=missing_anchors, missing_frames=len(missing))
  return out


class PmkMetric:
  """``sequence_metric_fn`` of an EvalSet: ``(ids, preds, correct) -> dict``.

  ``preds`` are top-1 classes in the set's label space; ``correct`` (the
  runner's per-frame correctness against each record's own labels) is not
  needed, because YTBB judges neighbours against the anchor's labels, which the
  sets carry.
  """

  def __init__(self, sets: PmkSets, ks: Sequence[int] = (0, 10)):
    self.sets = sets
    self.ks = tuple(int(k) for k in ks)

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(f"pm{k}" for k in self.ks)

  def details(self, ids: Sequence[str], preds: Sequence[int]) -> dict:
    """:func:`score`'s full output: the pm-k fractions plus anchor/frame counts."""
    preds = np.asarray(preds).reshape(-1)
    if len(ids) != len(preds):
      raise ValueError(f"{len(ids)} ids but {len(preds)} predictions")
    by_id = {str(i): int(p) for i, p in zip(ids, preds)}
    return score(self.sets, by_id, self.ks)

  def __call__(self, ids: Sequence[str], preds: Sequence[int],
               correct: Optional[Sequence[bool]] = None) -> dict:
    """{'pm0': float, 'pm10': float} (only the metric names; see :meth:`details`)."""
    del correct
    out = self.details(ids, preds)
    return {name: out[name] for name in self.names}

  def __repr__(self):
    return f"PmkMetric({self.sets!r}, ks={self.ks})"


# ---------------------------------------------------------------------------
# ImageNet-Vid-Robust


def _frame_number(key: str) -> int:
  stem = os.path.splitext(os.path.basename(key))[0]
  digits = stem.rsplit("-", 1)[-1]
  if not digits.isdigit():
    raise ValueError(f"cannot read a frame number from {key!r}")
  return int(digits)


def vid_pmsets(labels: Mapping[str, Iterable[int]],
               pmsets: Mapping[str, Sequence[str]]) -> PmkSets:
  """pm-k sets of ImageNet-Vid-Robust from ``labels.json`` and ``pmsets.json``.

  Args:
    labels: frame key ("val/<video>/<frame>.JPEG") -> list of VID classes.
    pmsets: anchor key -> list of neighbour keys.

  Returns:
    PmkSets judging each frame against its own labels; offsets are frame-number
    differences.
  """
  missing = [k for a, ns in pmsets.items() for k in [a, *ns] if k not in labels]
  if missing:
    raise ValueError(f"pmsets.json names {len(missing)} frames without labels in labels.json, "
                     f"e.g. {missing[:3]}")
  neighbours = {}
  for anchor, ns in pmsets.items():
    a = _frame_number(anchor)
    neighbours[anchor] = tuple(sorted((_frame_number(f) - a, f) for f in ns))
  frames = set(pmsets) | {f for ns in pmsets.values() for f in ns}
  return PmkSets(tuple(sorted(pmsets)), neighbours,
                 {f: frozenset(int(c) for c in labels[f]) for f in frames},
                 judge_by_anchor=False)


# ---------------------------------------------------------------------------
# YTBB-Robust (rules of the testbed's YtbbPmkDataset, datasets.md §2.8)

# A pm-k pair is valid when marked 'similar' and none of these.
YTBB_BAD_PAIR_LABELS = ("dissimilar", "problematic", "incorrect", "dont know", "deformation",
                        "background-change", "occlusion-increased", "blur-increase",
                        "bad-anchor")


def ytbb_key(path: str) -> str:
  """'<video>_<ms>/frame-<i>.jpg' from any path ending in those two parts."""
  parts = path.replace("\\", "/").rstrip("/").split("/")
  return "/".join(parts[-2:])


def _parse_ytbb_key(key: str) -> tuple[str, int]:
  """(anchor folder '<video>_<ms>', frame index) of a frame key."""
  folder, name = key.split("/")
  return folder, int(name.split("-")[1].split(".")[0])


def _annotations(doc: dict, what: str) -> dict[str, set[str]]:
  """{key: label names}, later annotations of a key replacing earlier ones."""
  try:
    names = list(doc["labels"])
    out = {}
    for row in doc["annotations"]:
      out[row["key"]] = {names[i] for i in row["labels"]}
  except (KeyError, IndexError, TypeError) as e:
    raise ValueError(f"{what}: expected {{'labels': [...], 'annotations': [{{'key', "
                     f"'labels': [indices]}}]}}: {e!r}") from e
  return out


def ytbb_pmsets(anchor_labels: dict, pmk_labels: dict, anchors_csv: Sequence[Mapping],
                class_names: Sequence[str], k: int = 10) -> PmkSets:
  """pm-k sets of YTBB-Robust from its reviewed annotations.

  Args:
    anchor_labels: parsed ``anchor_labels.json``.
    pmk_labels: parsed ``pmk_labels.json`` (keys "<anchor key>,<frame key>").
    anchors_csv: rows of ``ytbb_robustness_test_anchors_full.csv``
      (ytid, time_ms, label).
    class_names: the 24 YTBB class names (``ytbb_class_index.json`` order).
    k: neighbour radius to collect.

  Returns:
    PmkSets judging every neighbour against its anchor's labels. Valid
    anchors are 'good' and neither 'bad' nor 'unsure', minus anchors flagged
    'bad-anchor' in the pair review; anchor labels are the reviewed class labels
    plus the CSV label with classes 22 and 23 swapped (as the testbed does);
    neighbours are frames anchor±1..k whose pair review is valid.
  """
  anchors = _annotations(anchor_labels, "anchor_labels.json")
  pairs = _annotations(pmk_labels, "pmk_labels.json")
  class_index = {name: i for i, name in enumerate(class_names)}
  bad_anchors, valid_pairs = set(), set()
  for key, names in pairs.items():
    a, f = key.split(",")
    a, f = ytbb_key(a), ytbb_key(f)
    if "bad-anchor" in names:
      bad_anchors.add(a)
    if "similar" in names and not names.intersection(YTBB_BAD_PAIR_LABELS):
      valid_pairs.add((a, f))
  csv_label = {}
  for row in anchors_csv:
    label = int(row["label"])
    csv_label[f"{row['ytid']}_{row['time_ms']}"] = {22: 23, 23: 22}.get(label, label)
  valid = {}
  for key, names in anchors.items():
    key = ytbb_key(key)
    if "good" in names and not names.intersection({"bad", "unsure"}) and key not in bad_anchors:
      valid[key] = names
  labels, neighbours = {}, {}
  for anchor, names in sorted(valid.items()):
    folder, index = _parse_ytbb_key(anchor)
    if folder not in csv_label:
      raise ValueError(f"anchor {anchor!r} has no row in ytbb_robustness_test_anchors_full.csv")
    anchor_set = frozenset({class_index[n] for n in names if n in class_index}
                           | {csv_label[folder]})
    labels[anchor] = anchor_set
    ns = []
    for off in range(-k, k + 1):
      frame = f"{folder}/frame-{index + off}.jpg"
      if off and (anchor, frame) in valid_pairs:
        ns.append((off, frame))
    neighbours[anchor] = tuple(ns)
  return PmkSets(tuple(sorted(valid)), neighbours, labels, judge_by_anchor=True)
