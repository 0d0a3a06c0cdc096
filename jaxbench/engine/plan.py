"""The plan of a run: its passes (model, dataset, transform), their ids, the batch size.

A *pass* is one (model spec, dataset spec, transform spec) triple; its id (the
store directory name) is a hash of the canonical specs and of the config keys that
change its results.
"""
from __future__ import annotations

import dataclasses
import json

import jax
from absl import logging

from jaxbench import registry, store as store_lib, transforms
from jaxbench.engine import keys


@dataclasses.dataclass
class PassSpec:
  model: str
  dataset: str
  transform: str


def plan_passes(config) -> list[tuple[str, str, str]]:
  """(model spec, dataset spec, transform spec) triples, canonical, in run order."""
  out = []
  per_set = dict(keys.get(config, "dataset_transforms") or {})
  for m in config.models:
    for d in config.datasets:
      # dataset_transforms: {dataset name: transforms} replaces config.transforms there.
      tlist = per_set.get(registry.parse(d)[0], keys.get(config, "transforms"))
      for t in (list(tlist) or ["clean"]):
        out.append((registry.canonical(m), registry.canonical(d), transforms.canonical(t)))
  return out


def transform_specs(config) -> list[str]:
  """Every transform spec the config names (config.transforms and per-set lists)."""
  per_set = dict(keys.get(config, "dataset_transforms") or {})
  specs = list(keys.get(config, "transforms") or ["clean"])
  for tlist in per_set.values():
    specs += list(tlist)
  return list(dict.fromkeys(specs))


def pass_id_for(ps: PassSpec, config) -> str:
  """The store directory name of a pass (model spec, dataset spec, transform spec)."""
  opts = json.dumps({"zs": dict(keys.get(config, "zeroshot") or {}),
                     "pp": keys.get(config, "preprocess"),
                     "prec": keys.get(config, "precision"), "seed": int(config.seed),
                     "max": int(keys.get(config, "max_examples")),
                     # only when on, so existing pass ids stay as they were
                     **({"draft": True} if keys.get(config, "jpeg_draft") else {})},
                    sort_keys=True)
  return store_lib.pass_id(registry.canonical(ps.model), ps.dataset, ps.transform, opts)


def effective_batch_size(batch_size: int, mesh) -> int:
  """The global batch rounded up to a multiple of the data-parallel size.

  Padding slots are masked, so this changes throughput, never results.
  """
  data = mesh.shape["data"]
  unit = data * max(1, jax.process_count() // max(1, data)) if data < jax.process_count() \
      else data
  eff = -(-batch_size // unit) * unit
  if eff != batch_size:
    logging.info("batch_size %d rounded up to %d (a multiple of the %d data-parallel "
                 "devices)", batch_size, eff, data)
  return eff
