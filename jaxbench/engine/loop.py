"""One pass, streamed: resume, input batches, the step loop, checkpoints, preemption.

For each pass the loop:

1. reads the per-example outputs of any earlier, interrupted attempt (refusing or
   restarting when the pass's data changed since) and plans only the examples still
   missing, so a resumed pass never double-counts and may resume with another batch
   size or device count;
2. streams uint8 batches (grain pipeline or prepared cache) to the compiled step
   (:mod:`jaxbench.engine.step`) sharded over the mesh's ``data`` axis;
3. writes per-example outputs every ``checkpoint_every`` batches (atomic) and stops
   at a step boundary when every host agrees on a SIGTERM (:class:`Preempted`);
4. at the end checks that every example was seen exactly once, cross-checks the
   device counters against the per-example outputs and makes the rows.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jaxbench import parallel, progress, stopping, store as store_lib, transforms
from jaxbench.data import pipeline, resample
from jaxbench.data import sources as sources_lib
from jaxbench.data.evalset import EvalSet
from jaxbench.engine import keys, plan as plan_lib, refill as refill_lib, rows as rows_lib
from jaxbench.engine import step as step_lib
from jaxbench.model_setup import ConfigError
from jaxbench.models.api import Model, Preprocess

# SIGTERM (spot preemption): the flag lives in jaxbench.stopping so main.py can install
# the handler before importing jax; checked at every step boundary and between phases.
Preempted = stopping.Preempted
_stop_agreed = stopping.agreed


class DataChanged(ValueError):
  """A pass's data changed since its saved progress was written."""


def _concat(parts: list[dict]) -> dict:
  parts = [p for p in parts if p]
  if not parts:
    return {}
  names = set.intersection(*(set(p) for p in parts))
  return {k: np.concatenate([p[k] for p in parts]) for k in names}


def input_batches(config, evalset: EvalSet, preprocess: Preprocess, the_plan,
                  host_shift, source_fingerprint: Optional[dict] = None) -> Iterator[dict]:
  """The pass's local batches: from the prepared-set cache (``config.prepared_cache``,
  built on first use) when set and no host-side shift alters the pixels, else decoded
  by the grain pipeline. Both give identical batches.

  With ``config.device_resize`` = N (and neither the cache nor a host-side shift in
  use) the pipeline only decodes: batches hold N x N canvases and resampling tables,
  finished on the device by :func:`jaxbench.data.resample.finish` (same pixels).
  """
  threads = int(keys.get(config, "num_workers"))
  canvas = device_canvas(config, preprocess)
  cache = str(keys.get(config, "prepared_cache") or "")
  # Opt-in reduced-DCT JPEG decoding: to at least the resize target, never cached.
  draft = int(preprocess.resize) if keys.get(config, "jpeg_draft") else None
  if draft and cache:
    logging.info("%s: jpeg_draft decoding is not cached; prepared cache not used",
                 evalset.name)
    cache = ""
  if canvas and host_shift is not None:
    logging.info("%s: host-side shift changes the pixels before the crop; resizing on the "
                 "host (config.device_resize not used)", evalset.name)
    canvas = 0
  if cache and host_shift is None:
    from jaxbench.data import prepared
    entry = prepared.get_or_build(cache, evalset, preprocess, num_threads=threads,
                                  source_fingerprint=source_fingerprint)
    if entry is not None:
      logging.info("%s: reading prepared pixels from %s", evalset.name, entry.path)
      return entry.batches(the_plan)
  elif cache:
    logging.info("%s: host-side shift changes the pixels; prepared cache not used",
                 evalset.name)
  return pipeline.batches(evalset, preprocess, the_plan, seed=int(config.seed),
                          host_shift=host_shift, num_threads=threads,
                          num_processes=int(keys.get(config, "decode_processes")),
                          draft=draft, canvas=canvas)


def device_canvas(config, preprocess: Preprocess) -> int:
  """``config.device_resize`` checked against the model's preprocessing (0 = off).

  Raises:
    ConfigError: not 0 or an integer >= the crop size, an interpolation the device
      cannot reproduce, or an installed Pillow whose resampling it does not know.
  """
  value = keys.get(config, "device_resize")
  try:
    n = resample.check_canvas(value, preprocess)
    if n:
      resample.pillow_order()
  except (ValueError, RuntimeError) as e:
    raise ConfigError(str(e)) from None
  return n


def to_device(batch: dict, mesh) -> dict:
  """A host batch -> global arrays on ``mesh``, resized + cropped there when it carries
  resampling tables (decode-only batches, ``config.device_resize``)."""
  return resample.finish(parallel.to_global(batch, mesh))


def _noting_tables(batches: Iterator[dict], seen: list) -> Iterator[dict]:
  """``batches`` unchanged; appends to ``seen`` once a batch carries resampling tables."""
  for batch in batches:
    if not seen and resample.TABLE_KEYS[0] in batch:
      seen.append(True)
    yield batch


def resized_on_device(batches: Iterator[dict]) -> Iterator[dict]:
  """Host batches, decode-only ones finished by the device program and brought back
  (for consumers that place batches themselves: survivor refill)."""
  for batch in batches:
    if resample.TABLE_KEYS[0] in batch:
      batch = jax.tree.map(np.asarray, jax.device_get(resample.finish(batch)))
    yield batch


def check_data_unchanged(pid: str, evalset: EvalSet, fingerprint: dict,
                         store: store_lib.Store, config, done: dict) -> dict:
  """The saved progress ``done`` if the data is the one it was computed on.

  Otherwise raises :class:`DataChanged` naming what changed, or, with
  ``config.on_data_change='restart'``, drops the progress (returns {}).
  Progress saved before fingerprints existed is kept (nothing to compare).
  """
  old = store.read_source_fingerprint(pid)
  if old is None or old.get("digest") == fingerprint.get("digest"):
    return done
  what = sources_lib.describe_change(old, fingerprint)
  n_done = len(done.get("index", ()))
  if keys.get(config, "on_data_change") == "restart":
    logging.warning("data of %s changed since its %d saved examples (%s): starting the pass "
                    "over (on_data_change='restart')", evalset.name, n_done, what)
    store.clear_pass(pid)
    return {}
  raise DataChanged(
      f"data of {evalset.name!r} changed since this pass saved {n_done} examples in "
      f"{store.pass_dir(pid)}: {what}. Restore the data, use another --workdir, or pass "
      "--config.on_data_change=restart to evaluate the pass again from the start")


def run_pass(ps: plan_lib.PassSpec, pid: str, model: Model, evalset: EvalSet,
             transform: transforms.Transform, use_project: bool, config, mesh,
             store: store_lib.Store, prov: dict, params_on_mesh, *,
             suite: Optional[str] = None,
             refill: Optional[refill_lib.Settings] = None) -> tuple[list[dict], dict]:
  """Runs (or resumes) one pass; returns (its rows, its per-example outputs).

  Args:
    ps: row labels (model label, dataset name, transform spec).
    pid: the pass id (its store directory).
    model: the model, head attached; ``params_on_mesh`` its params on ``mesh``.
    evalset: the set; ``use_project`` applies ``evalset.project`` to the logits.
    transform: the bound transform.
    suite: the rows' suite (default ``config.suite``).
    refill: survivor-refill settings from the suite (None: the fixed loop).
  """
  n = len(evalset)
  max_examples = int(keys.get(config, "max_examples"))
  if max_examples > 0:
    n = min(n, max_examples)
  if n == 0:
    raise ConfigError(f"dataset {evalset.name!r} has no examples")
  fingerprint = evalset.fingerprint()
  done = store.load_chunks(pid)
  if done:
    done = check_data_unchanged(pid, evalset, fingerprint, store, config, done)
  done_idx = done.get("index", np.zeros(0, np.int64))
  todo = np.setdiff1d(np.arange(n, dtype=np.int64), done_idx)
  if len(done_idx):
    logging.info("resuming %s: %d of %d examples already done", pid, len(done_idx), n)
  store.write_meta(pid, {**dataclasses.asdict(ps), "n": n, "model_name": model.name,
                         "source": store.write_source_fingerprint(pid, fingerprint)})
  batch_size = plan_lib.effective_batch_size(int(config.batch_size), mesh)
  the_plan = pipeline.plan(todo, batch_size, jax.process_index(), jax.process_count())
  project = evalset.project if use_project else None
  num_classes = evalset.num_classes if project is not None else model.num_classes
  step = step_lib.make_step(model, transform, mesh, seed=int(config.seed), project=project,
                            multilabel=evalset.multilabel, num_classes=num_classes,
                            param_shardings=jax.tree.map(lambda a: a.sharding,
                                                         params_on_mesh))
  done_ok = done.get("correct1", np.zeros(0, bool)) & ~done.get("bad", np.zeros(0, bool)) \
      if done else np.zeros(0, bool)
  counts = jax.device_put(
      {"n": jnp.int32(int((~done.get("bad", np.zeros(0, bool))).sum()) if done else 0),
       "correct1": jnp.int32(int(done_ok.sum())),
       "correct5": jnp.int32(int(done.get("correct5", np.zeros(0, bool)).sum()) if done else 0)},
      parallel.replicated(mesh))
  preprocess = model.preprocess
  if evalset.metadata.get("resize_to_crop"):
    # ImageNet-C/-P reference protocol: the stored 224 images are center-cropped only.
    preprocess = dataclasses.replace(preprocess, resize=preprocess.size)
  local = input_batches(config, evalset, preprocess, the_plan, transform.host_fn,
                        source_fingerprint=fingerprint)
  on_device: list = []   # set by the first decode-only batch (config.device_resize)
  local = _noting_tables(local, on_device)
  # Survivor refill: the attack streams the batches through its own slots
  # (jaxbench.engine.refill) and the fixed loop below gets none.
  refill_settings, refill_info = refill_lib.plan(transform, refill)
  # Host-to-device copies of the next 2 batches start while the current step runs
  # (decode-only batches are resized + cropped there by their own program).
  it = pipeline.prefetched(local, 2, lambda b: to_device(b, mesh)) \
      if refill_settings is None else ()
  every = max(1, int(keys.get(config, "checkpoint_every")))
  log_every = max(1, int(keys.get(config, "log_every")))
  chunk_id = int(time.time() * 1000) % 10**12   # unique per attempt; sorted by time
  buffer, new_parts = [], []
  bar = progress.PassBar(f"{model.name} | {evalset.name} | {transform.spec}", len(todo),
                         the_plan.num_batches, log_every=log_every)
  t0 = time.perf_counter()
  seen = 0
  if refill_settings is not None:
    new_parts, counts, refill_info = refill_lib.run(
        refill_settings, transform.obj, model, params_on_mesh,
        pipeline.prefetched(resized_on_device(local), 2),
        batch_size=batch_size, seed=int(config.seed), mesh=mesh, project=project,
        multilabel=evalset.multilabel, num_classes=num_classes, counts=counts, store=store,
        pid=pid, chunk_id=chunk_id, checkpoint_every=every, stop_agreed=lambda: _stop_agreed(),
        bar=bar, what=f"{evalset.name} ({pid})")
  for b, batch in enumerate(it):
    if b == 0:
      t_first, programs = time.perf_counter(), step_lib.programs(step)
    out, counts = step(params_on_mesh, counts, batch)
    host = parallel.to_host(out)
    keep = host["index"] >= 0
    host = {k: v[keep] for k, v in host.items()}
    buffer.append(host)
    seen += int(keep.sum())
    if b == 0:
      bar.first_batch(seen, time.perf_counter() - t_first, step_lib.programs(step) != programs)
    if (b + 1) % every == 0:
      chunk = _concat(buffer)
      store.write_chunk(pid, chunk_id + b, chunk)
      new_parts.append(chunk)
      buffer = []
    if _stop_agreed():
      if buffer:
        store.write_chunk(pid, chunk_id + b, _concat(buffer))
      parallel.sync(f"preempt-{pid}")
      raise Preempted(f"stopped by SIGTERM after batch {b + 1}/{the_plan.num_batches} of "
                      f"{evalset.name} ({seen} new examples checkpointed); rerun the same "
                      "command to resume")
    bar.update(b + 1, seen)
  bar.close()
  if buffer:
    chunk = _concat(buffer)
    store.write_chunk(pid, chunk_id + the_plan.num_batches, chunk)
    new_parts.append(chunk)
  elapsed = time.perf_counter() - t0
  outputs = _concat([done] + new_parts) if done else _concat(new_parts)
  order = np.argsort(outputs["index"], kind="stable")
  outputs = {k: v[order] for k, v in outputs.items()}
  # Every example exactly once.
  idx = outputs["index"]
  if len(idx) != n or not np.array_equal(idx, np.arange(n)):
    dup = int(len(idx) - len(np.unique(idx)))
    missing = int(n - len(np.unique(idx)))
    raise RuntimeError(f"pass {pid}: id coverage check failed: {dup} duplicated and "
                       f"{missing} missing examples out of {n}")
  counts = jax.device_get(counts)
  valid = ~outputs["bad"]
  recount = (int(valid.sum()), int(outputs["correct1"].sum()), int(outputs["correct5"].sum()))
  if (int(counts["n"]), int(counts["correct1"]), int(counts["correct5"])) != recount:
    raise RuntimeError(f"pass {pid}: device counters {counts} disagree with per-example "
                       f"outputs {recount}")
  suite = str(keys.get(config, "suite")) if suite is None else suite
  if "resize" in prov and not on_device:   # the cache or a host-side shift: host pixels
    prov = {**prov, "resize": "host"}
  rows = rows_lib.make_rows(ps, pid, model, evalset, transform, outputs, suite=suite,
                            prov=prov, elapsed=elapsed, evaluated=len(todo))
  if refill_info is not None and rows:   # all rows of a pass share one details dict
    rows[0]["details"]["refill"] = refill_info
  return rows, outputs
