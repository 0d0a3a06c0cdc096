"""The rows of a finished pass (results.jsonl): one per metric, with details and provenance."""
from __future__ import annotations

import json
import os

import numpy as np

from jaxbench import precision as precision_lib, registry, store as store_lib, transforms
from jaxbench.data import pipeline
from jaxbench.data.evalset import EvalSet
from jaxbench.engine import keys
from jaxbench.models.api import Model


def model_label(spec: str, model: Model, config) -> str:
  """The row's model name: canonical spec plus any non-default options."""
  opts = {}
  if keys.get(config, "preprocess"):
    opts["preprocess"] = config.preprocess
  if keys.get(config, "precision") != "float32":
    opts["precision"] = config.precision
  if model.is_zeroshot:
    zs = keys.zeroshot(config)
    opts.update({k: v for k, v in zs.items()
                 if v != keys.ZEROSHOT_DEFAULTS[k] and k != "head"})
  base = registry.canonical(spec)
  if not opts:
    return base
  return base + "@" + ",".join(f"{k}={v}" for k, v in sorted(opts.items()))


def example_id(evalset: EvalSet, index: int) -> str:
  """An example's id without reading its image bytes where the source allows."""
  src = evalset.source
  if hasattr(src, "example_id"):
    return str(src.example_id(index))
  return str(src[index]["id"])


def make_rows(ps, pid: str, model: Model, evalset: EvalSet,
              transform: transforms.Transform, outputs: dict, *, suite: str, prov: dict,
              elapsed: float, evaluated: int) -> list[dict]:
  """One row per metric of a finished pass.

  Args:
    ps: the pass's PassSpec (row model label, dataset name, transform spec).
    pid: the pass id.
    outputs: per-example outputs of the whole pass, sorted by index.
    suite: the rows' suite.
    prov: the run's provenance (the model's precision policy is added).
    elapsed, evaluated: seconds and examples of this attempt (throughput).

  Raises:
    RuntimeError: more than half of the decodable examples gave NaN/inf logits.
  """
  valid = ~outputs["bad"]
  n_valid = int(valid.sum())
  bad_idx = np.nonzero(outputs["bad"])[0]
  bad = [{"id": example_id(evalset, int(i)),
          "error": pipeline.describe_error(evalset, int(i))} for i in bad_idx[:100]]
  nonfinite = int((~outputs["finite"] & valid).sum())
  if n_valid and nonfinite > 0.5 * n_valid:
    raise RuntimeError(f"{model.name} gives NaN/inf logits on {nonfinite} of {n_valid} "
                       f"examples of {evalset.name!r}: check the weights and precision "
                       f"({model.precision})")
  num_classes = evalset.num_classes if evalset.project is not None else model.num_classes
  metrics, extra = transform.metrics(outputs, valid, transforms.MetricInputs(
      evalset, num_classes, lambda i: example_id(evalset, i)))
  details = {"n_bad": int(len(bad_idx)), "bad_files": bad, "nonfinite_logits": nonfinite,
             "seconds": round(elapsed, 3),
             "images_per_s": round(evaluated / max(elapsed, 1e-9), 2),
             "pass_id": pid, "dataset_meta": evalset.metadata, **extra}
  info = model.describe()
  rows = []
  for metric, value in metrics.items():
    rows.append({"key": store_lib.row_key(ps.model, ps.dataset, ps.transform, metric),
                 "model": ps.model, "dataset": ps.dataset, "transform": ps.transform,
                 "suite": suite, "metric": metric,
                 "value": float(value), "n": n_valid, "details": details,
                 "model_info": info,
                 "provenance": {**prov, **precision_lib.describe(model.precision)}})
  return rows


def finished_rows(store: store_lib.Store, pass_ids: list[str]) -> list[dict]:
  """The results.jsonl rows of the finished passes among ``pass_ids``, in that order."""
  by_key = {r["key"]: r for r in store.rows()}
  out = []
  for pid in pass_ids:
    path = os.path.join(store.pass_dir(pid), "done.json")
    if os.path.exists(path):
      with open(path) as f:
        out += [by_key[k] for k in json.load(f).get("keys", []) if k in by_key]
  return out
