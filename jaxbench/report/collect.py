"""Groups result rows by what they measure (corruptions, perturbations, attacks, ...).

Every function reads a :class:`jaxbench.report.results.ResultSet` and returns plain
dicts keyed by model label, using the parsers of :mod:`jaxbench.report.conventions`.
A row is claimed by at most one group, in this order: corruption, perturbation,
typographic, attack; :func:`claimed` tells the summaries which rows are taken.
"""
from __future__ import annotations

import collections
from typing import Optional

import numpy as np

from jaxbench.report import conventions as conv
from jaxbench.report.results import ResultSet, Row


def classify(r: Row) -> str:
  """'corruption' | 'perturbation' | 'typographic' | 'attack' | 'overlap' | 'clean' | 'other'."""
  if conv.corruption_of(r.dataset_spec, r.transform, r.details):
    return "corruption"
  if conv.perturbation_of(r.dataset_spec, r.transform, r.details):
    return "perturbation"
  if conv.typographic_of(r.suite, r.dataset_spec, r.transform):
    return "typographic"
  if conv.attack_of(r.transform, r.details):
    return "attack"
  if r.suite == "overlap" and r.metric in ("overlap_rate", "acc_overlap",
                                           "acc_clean_subset", "acc_diff"):
    return "overlap"
  if r.transform == "clean":
    return "clean"
  return "other"


def corruptions(rs: ResultSet, metric: str = "top1") -> dict:
  """{family: {'clean': clean dataset label or name, 'cells': {label: {(c, s): acc}}}}.

  Family 'imagenet_c' / 'cifar10_c' for on-disk sets (clean reference: 'imagenet' /
  'cifar10'), '<dataset label>+generated' for on-the-fly corruptions (clean
  reference: that dataset label).
  """
  out: dict = {}
  for r in rs.known():
    if r.metric != metric or r.value is None:
      continue
    c = conv.corruption_of(r.dataset_spec, r.transform, r.details)
    if not c:
      continue
    family, corruption, severity = c
    fam = out.setdefault(family, {"clean": _clean_reference(family, r), "cells": {}})
    fam["cells"].setdefault(r.label, {})[(corruption, severity)] = r.value
  return out


def settings_mean(cells: dict) -> float:
  """A model's mean top-1 over its corruption settings (``cells``: {(c, s): acc}, one
  model's entry of :func:`corruptions`): the family's y value in effective robustness and
  the "mean (all settings)" column of the corruption tables, one number in both."""
  return float(np.mean(list(cells.values())))


def _clean_reference(family: str, r: Row) -> str:
  if family.endswith("+generated"):
    return r.dataset
  return {"imagenet_c": "imagenet", "imagenet2012_corrupted": "imagenet",
          "cifar10_c": "cifar10", "cifar10_corrupted": "cifar10"}.get(family, family)


def clean_value(rs: ResultSet, label: str, dataset: str, metric: str = "top1"
                ) -> Optional[float]:
  """Clean value on a dataset given by label, or by registry name when unambiguous."""
  v = rs.value(label, dataset, "clean", metric)
  if v is not None:
    return v
  found = [r.value for r in rs.known() if r.label == label and r.dataset_name == dataset
           and r.transform == "clean" and r.metric == metric and r.value is not None]
  return found[0] if len(found) == 1 else None


def perturbations(rs: ResultSet) -> dict:
  """{label: {metric: {(perturbation, difficulty): value}}} for flip_prob and t5d."""
  out: dict = collections.defaultdict(lambda: collections.defaultdict(dict))
  for r in rs.known():
    if r.metric not in ("flip_prob", "t5d") or r.value is None:
      continue
    p = conv.perturbation_of(r.dataset_spec, r.transform, r.details)
    if p:
      out[r.label][r.metric][p] = r.value
  return {k: dict(v) for k, v in out.items()}


def attacks(rs: ResultSet) -> dict:
  """{(dataset label, family): {metric: {label: {eps: value}}}}."""
  out: dict = {}
  for r in rs.known():
    if r.value is None:
      continue
    a = conv.attack_of(r.transform, r.details)
    if not a:
      continue
    family, eps = a
    slot = out.setdefault((r.dataset, family), {})
    slot.setdefault(r.metric, {}).setdefault(r.label, {})[eps] = r.value
  return out


def typographic(rs: ResultSet) -> dict:
  """{set label: {'clean_dataset': name, 'cells': {label: {metric: value}}}}."""
  out: dict = {}
  for r in rs.known():
    if r.value is None:
      continue
    t = conv.typographic_of(r.suite, r.dataset_spec, r.transform)
    if not t:
      continue
    name, clean = t
    metric = r.metric
    if "/" in metric:        # per-variant metrics 'top1/<variant>'
      metric, variant = metric.split("/", 1)
      name = f"{name} [{variant}]"
    slot = out.setdefault(name, {"clean_dataset": clean, "cells": {}})
    slot["cells"].setdefault(r.label, {})[metric] = r.value
  return out


def overlap(rs: ResultSet) -> dict:
  """{dataset label: {label: {metric: value}}} from suite 'overlap'."""
  out: dict = {}
  for r in rs.known():
    if r.suite == "overlap" and r.value is not None and classify(r) == "overlap":
      out.setdefault(r.dataset, {}).setdefault(r.label, {})[r.metric] = r.value
  return out
