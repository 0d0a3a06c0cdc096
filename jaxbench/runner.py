"""config -> plan of passes -> compiled steps -> streamed batches -> store.

A *pass* is one (model, dataset, transform) triple. For each pass the runner:

1. skips it when its rows are already in ``results.jsonl``;
2. reads the per-example outputs of any earlier, interrupted attempt and plans
   only the examples still missing (so a resumed pass never double-counts, and
   may resume with another batch size or device count);
3. streams uint8 batches from the grain pipeline to a ``jax.jit`` step sharded
   over the mesh's ``data`` axis; the step applies the transform, scores the
   model, projects logits to the set's label space and accumulates top-1/top-5
   counts on device;
4. writes per-example outputs every ``checkpoint_every`` batches (atomic), and
   at the end checks that every example was seen exactly once, cross-checks the
   device counters against the per-example outputs and writes the rows.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import platform
import subprocess
import time
from typing import Callable, Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jaxbench import parallel, precision as precision_lib, progress, registry
from jaxbench import refill_pass, stopping, store as store_lib, transforms
from jaxbench.data import pipeline
from jaxbench.data import sources as sources_lib
from jaxbench.data.evalset import EvalSet
from jaxbench.model_setup import ConfigError, load_model
from jaxbench.models.api import Model, Preprocess

# Keys a config may have; anything else is a typo and is refused by name.
KNOWN_KEYS = {
    "suite", "seed", "models", "zeroshot", "preprocess", "datasets", "transforms",
    "batch_size", "mesh", "checkpoint_every", "precision", "max_examples", "report",
    "num_workers", "log_every", "param_sharding", "workdir_policy", "data_root", "tfds_dir",
    "dataset_transforms", "prepared_cache", "decode_processes", "on_data_change",
    "jpeg_draft",
}
# Config keys that may change between runs on one workdir (they do not change results).
VOLATILE_KEYS = {"batch_size", "mesh", "checkpoint_every", "num_workers", "log_every",
                 "report", "param_sharding", "workdir_policy", "prepared_cache",
                 "decode_processes", "on_data_change"}
ZEROSHOT_DEFAULTS = {"classnames": "imagenet", "templates": "clip80", "head": "imagenet",
                     "logit_scale": "model"}


# SIGTERM (spot preemption): the flag lives in jaxbench.stopping so main.py can install
# the handler before importing jax; checked at every step boundary and between phases.
Preempted = stopping.Preempted
_STOP = stopping._STOP   # pylint: disable=protected-access  (same package)
request_stop = stopping.request_stop
_stop_agreed = stopping.agreed


# --- provenance ------------------------------------------------------------------

def _git_revision() -> str:
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    return subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                          text=True, timeout=5).stdout.strip() or "unknown"
  except (OSError, subprocess.SubprocessError):
    return "unknown"


def provenance(config, mesh) -> dict:
  import flax
  from importlib import metadata
  try:
    version = metadata.version("jaxbench")
  except metadata.PackageNotFoundError:
    version = "unknown"
  devices = jax.devices()
  return {"jaxbench": version, "git": _git_revision(), "jax": jax.__version__,
          "flax": flax.__version__, "python": platform.python_version(),
          "device_kind": devices[0].device_kind, "device_count": len(devices),
          "process_count": jax.process_count(), "mesh": dict(mesh.shape),
          "seed": int(config.seed),
          # decode mode: "exact" (default) or "jpeg_draft" (reduced DCT, not pixel-exact)
          "decode": "jpeg_draft" if _get(config, "jpeg_draft", False) else "exact"}


# --- config --------------------------------------------------------------------

def _get(config, key, default):
  return config[key] if key in config else default


def validate(config) -> None:
  unknown = sorted(set(config.keys()) - KNOWN_KEYS - _suite_keys(config))
  if unknown:
    raise ConfigError(f"unknown config keys {unknown}; known keys: {sorted(KNOWN_KEYS)} "
                      "(plus suite sections listed in config.suite_keys)")
  if not list(config.models):
    raise ConfigError("config.models is empty: name at least one model")
  if not list(config.datasets):
    raise ConfigError("config.datasets is empty: name at least one dataset")
  if int(config.batch_size) <= 0:
    raise ConfigError(f"config.batch_size must be positive, got {config.batch_size}")
  if int(_get(config, "checkpoint_every", 50)) < 1:
    raise ConfigError(f"config.checkpoint_every={config.checkpoint_every}: the number of "
                      "batches between progress checkpoints must be >= 1")
  if int(_get(config, "max_examples", -1)) == 0 or int(_get(config, "max_examples", -1)) < -1:
    raise ConfigError(f"config.max_examples={config.max_examples}: use -1 for every example "
                      "of each set, or a positive count")
  if _get(config, "on_data_change", "error") not in ("error", "restart"):
    raise ConfigError(f"config.on_data_change {config.on_data_change!r}: use 'error' (stop "
                      "when a pass's data changed since its saved progress) or 'restart' "
                      "(evaluate that pass again from the start)")
  if _get(config, "precision", "float32") not in precision_lib.POLICIES:
    raise ConfigError(f"config.precision {config.precision!r}: use 'float32' (true float32 "
                      "matmuls on every backend), 'tf32' (TensorFloat-32 matmuls on GPU) "
                      "or 'bfloat16'")
  if _get(config, "preprocess", "") not in ("", "clip"):
    raise ConfigError(f"config.preprocess {config.preprocess!r}: use '' (each model's own) "
                      "or 'clip' (CLIP's for every model, as RoZ)")
  zs = dict(_get(config, "zeroshot", {}) or {})
  bad = sorted(set(zs) - set(ZEROSHOT_DEFAULTS))
  if bad:
    raise ConfigError(f"unknown config.zeroshot keys {bad}; known: {sorted(ZEROSHOT_DEFAULTS)}")


def _suite_keys(config) -> set:
  return set(_get(config, "suite_keys", ())) | {"suite_keys"}


def config_identity(config) -> dict:
  """The part of a config that defines results (compared across reruns)."""
  d = json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") \
      else dict(config)
  return {k: v for k, v in d.items() if k not in VOLATILE_KEYS}


def check_workdir_config(store: store_lib.Store, config) -> None:
  """Refuses a workdir whose finished rows came from a different config, naming the
  differences. Writes nothing: :func:`write_workdir_config` does, when the first pass
  starts, so a run that fails before any work leaves the workdir reusable; a workdir
  with no finished rows (every earlier run failed or was stopped before finishing a
  pass) is reused by any config."""
  path = os.path.join(store.workdir, "config.json")
  ident = config_identity(config)
  if os.path.exists(path) and store.rows():
    with open(path) as f:
      old = json.load(f)
    if old != ident and _get(config, "workdir_policy", "strict") == "strict":
      diff = sorted(k for k in set(old) | set(ident) if old.get(k) != ident.get(k))
      detail = "; ".join(f"{k}: workdir has {old.get(k)!r}, config has {ident.get(k)!r}"
                         for k in diff[:6])
      raise ConfigError(f"workdir {store.workdir} was written by a different config ({detail}). "
                        "Use another --workdir, or --config.workdir_policy=extend to add "
                        "results to it anyway")


def write_workdir_config(store: store_lib.Store, config) -> None:
  """Records the config identity (config.json) when a run starts its first pass
  (:func:`check_workdir_config` has allowed it: same config, no finished rows, or
  workdir_policy='extend')."""
  path = os.path.join(store.workdir, "config.json")
  ident = config_identity(config)
  if not store.writer:
    return
  if os.path.exists(path):
    with open(path) as f:
      if json.load(f) == ident:
        return
  store_lib.atomic_write_json(path, ident)


# --- models and heads ------------------------------------------------------------

def model_label(spec: str, model: Model, config) -> str:
  """The row's model name: canonical spec plus any non-default options."""
  opts = {}
  if _get(config, "preprocess", ""):
    opts["preprocess"] = config.preprocess
  if _get(config, "precision", "float32") != "float32":
    opts["precision"] = config.precision
  if model.is_zeroshot:
    zs = {**ZEROSHOT_DEFAULTS, **dict(_get(config, "zeroshot", {}) or {})}
    opts.update({k: v for k, v in zs.items() if v != ZEROSHOT_DEFAULTS[k] and k != "head"})
  base = registry.canonical(spec)
  if not opts:
    return base
  return base + "@" + ",".join(f"{k}={v}" for k, v in sorted(opts.items()))


def _head_builder():
  """build_head, extended with learned prompts (templates='learned:PATH[:N]')."""
  from jaxbench.zeroshot import prompt_learning
  return prompt_learning.head_for


def attach_head(model: Model, evalset: EvalSet, config, cache_dir: str) -> tuple[Model, bool]:
  """Zero-shot head for this set; returns (model, whether to apply evalset.project)."""
  zs = {**ZEROSHOT_DEFAULTS, **dict(_get(config, "zeroshot", {}) or {})}
  if not model.is_zeroshot:
    if (model.head_info or {}).get("trained_head"):
      from jaxbench.heads import learn as heads_learn
      if heads_learn.label_space_error(model, evalset):
        raise ConfigError(heads_learn.label_space_error(model, evalset))
    if model.label_space != evalset.model_label_space and evalset.project is None:
      if model.num_classes != evalset.num_classes:
        raise ConfigError(
            f"supervised model {model.name!r} predicts {model.num_classes} classes "
            f"({model.label_space}), dataset {evalset.name!r} has {evalset.num_classes} "
            f"classes ({evalset.model_label_space}): no projection between them")
    return model, evalset.project is not None and model.label_space == evalset.model_label_space
  scale = zs["logit_scale"] if zs["logit_scale"] == "model" else float(zs["logit_scale"])
  if zs["head"] == "imagenet" and evalset.model_label_space == "imagenet1k":
    head = _head_builder()(model, zs["classnames"], zs["templates"], logit_scale=scale,
                           cache_dir=cache_dir)
    return model.with_head(head), evalset.project is not None
  if not evalset.class_names:
    raise ConfigError(f"dataset {evalset.name!r} has no class names for a zero-shot head")
  templates = zs["templates"]
  head = _head_builder()(model, list(evalset.class_names), templates, logit_scale=scale,
                         label_space=f"{evalset.name}:classes", cache_dir=cache_dir)
  return model.with_head(head), False


# --- the compiled step -------------------------------------------------------------

# Jitted steps by everything their trace depends on (see make_step): passes that
# share a model, transform and projection reuse one program (and jax's compiled
# executables for it) instead of re-jitting a fresh closure per pass.
_STEPS: "collections.OrderedDict[tuple, Callable]" = collections.OrderedDict()
_STEPS_MAX = 32


def _step_key(model: Model, transform: transforms.Transform, mesh, seed, project,
              multilabel, num_classes, param_shardings) -> tuple:
  """What a step's trace depends on, besides argument shapes (jit's own cache key).

  The model enters through its functions, preprocessing, kind and precision;
  params (head included) are arguments, so a new head of the same shape reuses
  the step. Functions are keyed by identity and kept alive by the key.
  """
  leaves, treedef = jax.tree.flatten(param_shardings)
  return (model.kind, model.preprocess, model.precision, model.net_logits, model.net_image,
          transform.spec, transform.kind, mesh, int(seed), project, bool(multilabel),
          int(num_classes), treedef, tuple(leaves))


def make_step(model: Model, transform: transforms.Transform, mesh, *, seed: int,
              project: Optional[Callable], multilabel: bool, num_classes: int,
              param_shardings) -> Callable:
  """A jitted ``(params, counts, batch) -> (per-example outputs, counts)``.

  One jitted function per :func:`_step_key`: a later pass with the same model
  functions, transform, projection and shapes runs the already compiled program.
  """
  key = _step_key(model, transform, mesh, seed, project, multilabel, num_classes,
                  param_shardings)
  try:
    hash(key)
  except TypeError:   # an unhashable projection object: build this step uncached
    return _make_step(model, transform, mesh, seed=seed, project=project,
                      multilabel=multilabel, num_classes=num_classes,
                      param_shardings=param_shardings)
  if key in _STEPS:
    _STEPS.move_to_end(key)
    return _STEPS[key]
  step = _make_step(model, transform, mesh, seed=seed, project=project,
                    multilabel=multilabel, num_classes=num_classes,
                    param_shardings=param_shardings)
  _STEPS[key] = step
  while len(_STEPS) > _STEPS_MAX:
    _STEPS.popitem(last=False)
  return step


def _make_step(model: Model, transform: transforms.Transform, mesh, *, seed: int,
               project: Optional[Callable], multilabel: bool, num_classes: int,
               param_shardings) -> Callable:
  k = min(5, num_classes)

  def scored(params, x):
    logits = model.apply(params, x)
    return project(logits) if project is not None else logits

  def scored_and_finite(params, x):
    # Finiteness is judged on the model's own logits: projections put -inf in
    # columns no ImageNet class maps to (YTBB), which is not a model failure.
    logits = model.apply(params, x)
    finite = jnp.all(jnp.isfinite(logits), axis=1)
    return (project(logits) if project is not None else logits), finite

  def correctness(logits, batch):
    top = jax.lax.top_k(logits, k)[1]
    if multilabel:
      hit = jnp.take_along_axis(batch["labels"], top, axis=1)
    else:
      hit = top == batch["label"][:, None]
    return top, hit[:, 0], hit.any(axis=1)

  def step(params, counts, batch):
    # The precision policy covers the whole step (model, attack, device-side
    # shifts): 'float32' lowers every dot and convolution at HIGHEST.
    with precision_lib.scope(model.precision):
      return step_body(params, counts, batch)

  def step_body(params, counts, batch):
    mask = batch["mask"]
    x = batch["image"].astype(jnp.float32) / 255.0
    keys = transforms.example_keys(seed, batch["uid"])
    out = {}
    if transform.kind == "attack":
      _, clean1, _ = correctness(scored(params, x), batch)
      out["clean_correct1"] = clean1 & mask
    x, extras = transform.device(scored, params, x, batch["label"], keys, mask=mask)
    logits, finite = scored_and_finite(params, x)
    logits = jnp.where(finite[:, None], logits, -jnp.inf)
    top, c1, c5 = correctness(logits, batch)
    c1, c5 = c1 & finite & mask, c5 & finite & mask
    out.update(extras)
    out.update({"index": batch["index"], "bad": batch["bad"], "pred": top[:, 0],
                "top5": top, "correct1": c1, "correct5": c5, "finite": finite | ~mask})
    counts = {"n": counts["n"] + mask.sum(), "correct1": counts["correct1"] + c1.sum(),
              "correct5": counts["correct5"] + c5.sum()}
    return out, counts

  bs = parallel.batch_sharding(mesh)
  rep = parallel.replicated(mesh)
  return jax.jit(step, in_shardings=(param_shardings, rep, bs), out_shardings=(bs, rep),
                 donate_argnums=(1,))


# --- one pass -----------------------------------------------------------------------

@dataclasses.dataclass
class PassSpec:
  model: str
  dataset: str
  transform: str


def pass_id_for(ps: PassSpec, config) -> str:
  """The store directory name of a pass (model spec, dataset spec, transform spec)."""
  opts = json.dumps({"zs": dict(_get(config, "zeroshot", {}) or {}),
                     "pp": _get(config, "preprocess", ""),
                     "prec": _get(config, "precision", "float32"), "seed": int(config.seed),
                     "max": int(_get(config, "max_examples", -1)),
                     # only when on, so existing pass ids stay as they were
                     **({"draft": True} if _get(config, "jpeg_draft", False) else {})},
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


def _concat(parts: list[dict]) -> dict:
  parts = [p for p in parts if p]
  if not parts:
    return {}
  keys = set.intersection(*(set(p) for p in parts))
  return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def input_batches(config, evalset: EvalSet, preprocess: Preprocess, the_plan,
                  host_shift, source_fingerprint: Optional[dict] = None) -> Iterator[dict]:
  """The pass's local batches: from the prepared-set cache (``config.prepared_cache``,
  built on first use) when set and no host-side shift alters the pixels, else decoded
  by the grain pipeline. Both give identical batches."""
  threads = int(_get(config, "num_workers", 8))
  cache = str(_get(config, "prepared_cache", "") or "")
  # Opt-in reduced-DCT JPEG decoding: to at least the resize target, never cached.
  draft = int(preprocess.resize) if _get(config, "jpeg_draft", False) else None
  if draft and cache:
    logging.info("%s: jpeg_draft decoding is not cached; prepared cache not used",
                 evalset.name)
    cache = ""
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
                          num_processes=int(_get(config, "decode_processes", 0)),
                          draft=draft)


class DataChanged(ValueError):
  """A pass's data changed since its saved progress was written."""


def _check_data_unchanged(pid: str, evalset: EvalSet, fingerprint: dict,
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
  if _get(config, "on_data_change", "error") == "restart":
    logging.warning("data of %s changed since its %d saved examples (%s): starting the pass "
                    "over (on_data_change='restart')", evalset.name, n_done, what)
    store.clear_pass(pid)
    return {}
  raise DataChanged(
      f"data of {evalset.name!r} changed since this pass saved {n_done} examples in "
      f"{store.pass_dir(pid)}: {what}. Restore the data, use another --workdir, or pass "
      "--config.on_data_change=restart to evaluate the pass again from the start")


def run_pass(ps: PassSpec, pid: str, model: Model, evalset: EvalSet,
             transform: transforms.Transform, use_project: bool, config, mesh,
             store: store_lib.Store, prov: dict, params_on_mesh) -> list[dict]:
  n = len(evalset)
  max_examples = int(_get(config, "max_examples", -1))
  if max_examples > 0:
    n = min(n, max_examples)
  if n == 0:
    raise ConfigError(f"dataset {evalset.name!r} has no examples")
  fingerprint = evalset.fingerprint()
  done = store.load_chunks(pid)
  if done:
    done = _check_data_unchanged(pid, evalset, fingerprint, store, config, done)
  done_idx = done.get("index", np.zeros(0, np.int64))
  todo = np.setdiff1d(np.arange(n, dtype=np.int64), done_idx)
  if len(done_idx):
    logging.info("resuming %s: %d of %d examples already done", pid, len(done_idx), n)
  store.write_meta(pid, {**dataclasses.asdict(ps), "n": n, "model_name": model.name,
                         "source": store.write_source_fingerprint(pid, fingerprint)})
  batch_size = effective_batch_size(int(config.batch_size), mesh)
  the_plan = pipeline.plan(todo, batch_size, jax.process_index(), jax.process_count())
  host_shift = transform.host_fn if transform.kind == "shift" else None
  project = evalset.project if use_project else None
  num_classes = evalset.num_classes if project is not None else model.num_classes
  step = make_step(model, transform, mesh, seed=int(config.seed), project=project,
                   multilabel=evalset.multilabel, num_classes=num_classes,
                   param_shardings=jax.tree.map(lambda a: a.sharding, params_on_mesh))
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
  local = input_batches(config, evalset, preprocess, the_plan, host_shift,
                        source_fingerprint=fingerprint)
  # Survivor refill (config.attack.refill): the attack streams the batches through
  # its own slots (jaxbench.refill_pass) and the fixed loop below gets none.
  refill, refill_info = refill_pass.plan(transform, config)
  # Host-to-device copies of the next 2 batches start while the current step runs.
  it = pipeline.prefetched(local, 2, lambda b: parallel.to_global(b, mesh)) \
      if refill is None else ()
  every = max(1, int(_get(config, "checkpoint_every", 50)))
  log_every = max(1, int(_get(config, "log_every", 10)))
  chunk_id = int(time.time() * 1000) % 10**12   # unique per attempt; sorted by time
  buffer, new_parts = [], []
  bar = progress.PassBar(f"{model.name} | {evalset.name} | {transform.spec}", len(todo),
                         the_plan.num_batches, log_every=log_every)
  t0 = time.perf_counter()
  seen = 0
  if refill is not None:
    new_parts, counts, refill_info = refill_pass.run(
        refill, transform.obj, model, params_on_mesh, pipeline.prefetched(local, 2),
        batch_size=batch_size,
        seed=int(config.seed), mesh=mesh, project=project, multilabel=evalset.multilabel,
        num_classes=num_classes, counts=counts, store=store, pid=pid, chunk_id=chunk_id,
        checkpoint_every=every, stop_agreed=lambda: _stop_agreed(), bar=bar,
        what=f"{evalset.name} ({pid})")
  for b, batch in enumerate(it):
    if b == 0:
      t_first, programs = time.perf_counter(), _programs(step)
    out, counts = step(params_on_mesh, counts, batch)
    host = parallel.to_host(out)
    keep = host["index"] >= 0
    host = {k: v[keep] for k, v in host.items()}
    buffer.append(host)
    seen += int(keep.sum())
    if b == 0:
      bar.first_batch(seen, time.perf_counter() - t_first, _programs(step) != programs)
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
  rows = _rows(ps, pid, model, evalset, transform, outputs, config, prov, elapsed, len(todo))
  if refill_info is not None and rows:   # all rows of a pass share one details dict
    rows[0]["details"]["refill"] = refill_info
  return rows, outputs


def _programs(step) -> int:
  """Compiled specialisations of a jitted step (-1 where jax does not say)."""
  size = getattr(step, "_cache_size", None)
  return int(size()) if size is not None else -1


def _example_id(evalset: EvalSet, index: int) -> str:
  """An example's id without reading its image bytes where the source allows."""
  src = evalset.source
  if hasattr(src, "example_id"):
    return str(src.example_id(index))
  return str(src[index]["id"])


def suite_for(config, transform_spec: str, evalset: Optional[EvalSet] = None) -> str:
  """The row's suite for a transform spec (see :func:`suite_of`)."""
  return suite_of(config, transforms.Transform(transform_spec, transform_spec.split(":")[0]
                                               if ":" in transform_spec else "clean"), evalset)


def suite_of(config, transform: transforms.Transform,
             evalset: Optional[EvalSet] = None) -> str:
  """The row's suite: the config's, or with suite='auto' the dataset's own
  (``metadata['suite']``), else derived from the transform."""
  suite = str(_get(config, "suite", "zeroshot"))
  if suite != "auto":
    return suite
  if evalset is not None and evalset.metadata.get("suite"):
    return str(evalset.metadata["suite"])
  if transform.kind == "attack":
    return "adv"
  if transform.kind == "shift":
    return "typographic" if transform.spec.startswith("shift:typographic") else "synthetic"
  return "zeroshot"


def _rows(ps, pid, model, evalset, transform, outputs, config, prov, elapsed, evaluated):
  valid = ~outputs["bad"]
  n_valid = int(valid.sum())
  bad_idx = np.nonzero(outputs["bad"])[0]
  bad = [{"id": _example_id(evalset, int(i)),
          "error": pipeline.describe_error(evalset, int(i))} for i in bad_idx[:100]]
  nonfinite = int((~outputs["finite"] & valid).sum())
  if n_valid and nonfinite > 0.5 * n_valid:
    raise RuntimeError(f"{model.name} gives NaN/inf logits on {nonfinite} of {n_valid} "
                       f"examples of {evalset.name!r}: check the weights and precision "
                       f"({model.precision})")
  metrics: dict[str, float] = {}
  seq_details = None
  checks_row = None
  if transform.kind == "attack":
    v = {k: a[valid] for k, a in outputs.items()}
    attack_values, checks_row = transforms.attack_metrics(v)
    metrics.update(attack_values)
  else:
    metrics["top1"] = float(outputs["correct1"][valid].mean()) if n_valid else 0.0
    if min(5, evalset.num_classes if evalset.project is not None else model.num_classes) == 5:
      metrics["top5"] = float(outputs["correct5"][valid].mean()) if n_valid else 0.0
    if evalset.sequence_metric_fn is not None:
      ids = [_example_id(evalset, int(i)) for i in outputs["index"][valid]]
      fn = evalset.sequence_metric_fn
      preds = outputs["top5" if getattr(fn, "wants_top5", False) else "pred"][valid]
      seq = fn(ids, preds, outputs["correct1"][valid])
      metrics.update(seq)
      if hasattr(evalset.sequence_metric_fn, "details"):
        seq_details = evalset.sequence_metric_fn.details(ids, outputs["pred"][valid])
  details = {"n_bad": int(len(bad_idx)), "bad_files": bad, "nonfinite_logits": nonfinite,
             "seconds": round(elapsed, 3),
             "images_per_s": round(evaluated / max(elapsed, 1e-9), 2),
             "pass_id": pid, "dataset_meta": evalset.metadata}
  if seq_details is not None:
    details["sequence"] = seq_details
  if checks_row is not None:
    details["checks"] = checks_row
    details["attack"] = transform.spec
  shift_prov = getattr(transform.obj, "provenance", None) if transform.kind == "shift" else None
  if isinstance(shift_prov, dict):
    # What the shift object did (generated vs on disk, JPEG-85 save, ...).
    details["shift"] = shift_prov
  info = model.describe()
  rows = []
  for metric, value in metrics.items():
    rows.append({"key": store_lib.row_key(ps.model, ps.dataset, ps.transform, metric),
                 "model": ps.model, "dataset": ps.dataset, "transform": ps.transform,
                 "suite": suite_of(config, transform, evalset), "metric": metric,
                 "value": float(value), "n": n_valid, "details": details,
                 "model_info": info,
                 "provenance": {**prov, **precision_lib.describe(model.precision)}})
  return rows


# --- the whole run -----------------------------------------------------------------

def plan_passes(config) -> list[tuple[str, str, str]]:
  """(model spec, dataset spec, transform spec) triples, canonical, in run order."""
  out = []
  per_set = dict(_get(config, "dataset_transforms", {}) or {})
  for m in config.models:
    for d in config.datasets:
      # dataset_transforms: {dataset name: transforms} replaces config.transforms there.
      tlist = per_set.get(registry.parse(d)[0], _get(config, "transforms", ["clean"]))
      for t in (list(tlist) or ["clean"]):
        tspec = t if t == "clean" else t.split(":", 1)[0] + ":" + registry.canonical(
            t.split(":", 1)[1]) if ":" in t else t
        out.append((registry.canonical(m), registry.canonical(d), tspec))
  return out


class ValidationError(ConfigError):
  """Every problem :func:`preflight` found, one line each (``problems``)."""

  def __init__(self, problems: list[str]):
    self.problems = list(problems)
    super().__init__("\n".join(self.problems))


def _transform_specs(config) -> list[str]:
  per_set = dict(_get(config, "dataset_transforms", {}) or {})
  specs = list(_get(config, "transforms", ["clean"]) or ["clean"])
  for tlist in per_set.values():
    specs += list(tlist)
  return list(dict.fromkeys(specs))


def preflight(config, *, datasets: Optional[list[str]] = None,
              dry_run: bool = False) -> dict[str, EvalSet]:
  """The validation shared by ``--dry_run`` and the real run, before any work.

  Checks the config's keys and values (:func:`validate`), every model spec
  (resolved to a registry name, hub prefix or checkpoint directory, no weights
  read), every transform spec (attacks and shifts built, so unknown names and
  badly typed parameters such as ``eps='x'`` are refused; transfer surrogates are
  model specs too), the zero-shot class-name and template sets, and every dataset
  spec (resolved to its folder or TFDS source: paths must exist).

  Args:
    config: the run's config.
    datasets: canonical dataset specs to resolve (default: all of the config's).
    dry_run: sets generated on first use (a spec with ``src=``, e.g. ImageNet-T)
      are not generated: their ``src`` must exist.

  Returns:
    {canonical dataset spec: EvalSet} of the resolved sets (reused by the run).

  Raises:
    ConfigError: a structural problem (unknown key, bad value) -- the first found.
    ValidationError: one line per bad model, transform, prompt set or dataset.
  """
  validate(config)
  problems: list[str] = []
  from jaxbench import models as models_lib

  def model_ok(spec: str, what: str) -> None:
    try:
      models_lib.check(spec)
    except (ValueError, OSError) as e:
      problems.append(f"{what} {spec!r}: {e}")

  for m in dict.fromkeys(config.models):
    model_ok(m, "config.models:")
  for t in _transform_specs(config):
    try:
      obj = transforms.get(t).obj
    except (ValueError, TypeError) as e:
      problems.append(f"config.transforms: {t!r}: {e}")
      continue
    for stage in [obj, getattr(obj, "attack", None), *getattr(obj, "attacks", ())]:
      surrogate = getattr(stage, "surrogate", None)
      if isinstance(surrogate, str):
        model_ok(surrogate, f"config.transforms: {t!r}: surrogate")
  zs = {**ZEROSHOT_DEFAULTS, **dict(_get(config, "zeroshot", {}) or {})}
  from jaxbench.zeroshot import prompts
  try:
    prompts.classnames(zs["classnames"])
  except ValueError as e:
    problems.append(f"config.zeroshot.classnames: {e}")
  if not (isinstance(zs["templates"], str) and zs["templates"].startswith("learned:")):
    try:
      prompts.templates(zs["templates"])
    except ValueError as e:
      problems.append(f"config.zeroshot.templates: {e}")
  try:
    plan = plan_passes(config)
  except registry.SpecError as e:   # unparsable model/dataset spec (transforms: above)
    raise ValidationError(problems or [str(e)]) from e
  from jaxbench.data import catalog
  evalsets: dict[str, EvalSet] = {}
  wanted = dict.fromkeys(d for _, d, _ in plan) if datasets is None else datasets
  for d in wanted:
    src = registry.parse(d)[2].get("src")
    if dry_run and isinstance(src, str):
      if not os.path.exists(os.path.expanduser(src)):
        problems.append(f"config.datasets: {d!r}: src {src!r} does not exist")
      continue
    try:
      evalsets[d] = catalog.get(d, data_root=_get(config, "data_root", None) or None,
                                tfds_dir=_get(config, "tfds_dir", None) or None)
    except (ValueError, OSError) as e:
      problems.append(f"config.datasets: {d!r}: {e}")
  if problems:
    raise ValidationError(problems)
  return evalsets


def plan_rows(config, workdir: str) -> list[dict]:
  """The results.jsonl rows of the config's finished passes, in plan order."""
  store = store_lib.Store(workdir, writer=False, create=False)
  by_key = {r["key"]: r for r in store.rows()}
  out = []
  for p in plan_passes(config):
    path = os.path.join(store.pass_dir(pass_id_for(PassSpec(*p), config)), "done.json")
    if os.path.exists(path):
      with open(path) as f:
        out += [by_key[k] for k in json.load(f).get("keys", []) if k in by_key]
  return out


def run(config, workdir: str, *, dry_run: bool = False, print_fn=print) -> list[dict]:
  """Runs every pass of ``config`` into ``workdir``; returns the rows written.

  Everything is validated first (:func:`preflight`); the workdir is locked against
  a concurrent run (:class:`jaxbench.store.WorkdirLock`) and its config.json is
  written only when the first pass starts.
  """
  if "linear_probe" in config:   # trained heads: the passes evaluate probe:PATH, learned first
    from jaxbench.heads import learn as heads_learn
    config = heads_learn.eval_config(config, workdir)
    if dry_run:
      for line in heads_learn.describe(config, workdir):
        print_fn(line)
  if dry_run:
    preflight(config, dry_run=True)
    plan = plan_passes(config)
    if workdir and os.path.isdir(os.path.expanduser(workdir)):
      # Would the real run be refused by the workdir's finished rows? Say so now.
      check_workdir_config(store_lib.Store(workdir, writer=False, create=False), config)
    print_fn(f"plan: {len(plan)} passes into {workdir}")
    for m, d, t in plan:
      print_fn(f"  model={m}  dataset={d}  transform={t}")
    return []
  validate(config)
  plan = plan_passes(config)
  store = store_lib.Store(workdir, writer=parallel.is_writer())
  lock = store_lib.WorkdirLock(store.workdir) if store.writer else None
  if lock is not None:
    lock.acquire()
  try:
    return _run_locked(config, plan, store, print_fn)
  finally:
    if lock is not None:
      lock.release()


def _run_locked(config, plan, store: store_lib.Store, print_fn) -> list[dict]:
  check_shared_workdir(store)
  check_workdir_config(store, config)
  finished = store.finished_keys()
  pending = [p for p in plan
             if not _pass_done(store, pass_id_for(PassSpec(*p), config), finished)]
  evalsets = preflight(config, datasets=list(dict.fromkeys(d for _, d, _ in pending)))
  if pending:
    stopping.check("before the first pass")
    write_workdir_config(store, config)
  mesh_cfg = dict(_get(config, "mesh", {}) or {})
  mesh = parallel.make_mesh(int(mesh_cfg.get("data", -1)), int(mesh_cfg.get("model", 1)))
  prov = provenance(config, mesh)
  if "clip_auto" in config:   # learn prompts first; evaluation then uses them as a head
    from jaxbench.zeroshot import clip_auto
    clip_auto.learn(config, store.workdir, mesh=mesh)
  if "linear_probe" in config:   # learn the heads the passes evaluate (probe:PATH)
    from jaxbench.heads import learn as heads_learn
    heads_learn.learn(config, store.workdir, mesh=mesh)
  parallel.assert_same_across_hosts(
      json.dumps([plan, config_identity(config), prov["jaxbench"], prov["git"]],
                 sort_keys=True, default=str), "config, plan and package version")
  from jaxbench.data import catalog
  progress.start_run(len(pending))
  written = []
  for model_spec in dict.fromkeys(m for m, _, _ in plan):
    todo = [p for p in pending if p[0] == model_spec]
    if not todo:
      logging.info("all passes of %s are finished; skipping", model_spec)
      continue
    stopping.check(f"before loading {model_spec}")
    with progress.Phase(f"loading model {model_spec}"):
      base_model = load_model(model_spec, config)
    label = model_label(model_spec, base_model, config)
    for dspec in dict.fromkeys(d for _, d, _ in todo):
      if dspec not in evalsets:
        evalsets[dspec] = catalog.get(dspec, data_root=_get(config, "data_root", None) or None,
                                      tfds_dir=_get(config, "tfds_dir", None) or None)
      evalset = evalsets[dspec]
      dname = evalset.name or dspec
      stopping.check(f"before building the head of {model_spec} for {dname}")
      model, use_project = attach_head(base_model, evalset, config,
                                       os.path.join(store.workdir, "heads"))
      stopping.check(f"after building the head of {model_spec} for {dname}")
      params = parallel.put_params(model.params, mesh,
                                   _get(config, "param_sharding", "replicate"))
      for _, _, tspec in [p for p in todo if p[1] == dspec]:
        ps = PassSpec(label, dname, tspec)
        pid = pass_id_for(PassSpec(model_spec, dspec, tspec), config)
        transform = transforms.get(tspec).bind(model)
        rows, outputs = run_pass(ps, pid, model, evalset, transform, use_project, config,
                                 mesh, store, prov, params)
        store.finish_pass(pid, outputs)
        store.add_rows(rows)
        n_bad = int(rows[0]["details"]["n_bad"]) if rows else 0
        if n_bad:
          logging.warning("%d unreadable files skipped in %s: listed in %s (details.bad_files "
                          "of the rows of pass %s)", n_bad, dname, store.results_path, pid)
        if store.writer:
          store_lib.atomic_write_json(os.path.join(store.pass_dir(pid), "done.json"),
                                      {"keys": [r["key"] for r in rows]})
        parallel.sync(f"pass-{pid}")
        written.extend(rows)
  if _get(config, "report", False) and store.writer:
    from jaxbench import report
    report.write_report([store.workdir], os.path.join(store.workdir, "report"))
  return written


def check_shared_workdir(store: store_lib.Store) -> None:
  """Multi-host runs need one workdir that every host sees (resume reads it)."""
  if jax.process_count() == 1:
    return
  from jax.experimental import multihost_utils
  token = os.path.join(store.workdir, ".hosts_check")
  nonce = np.asarray(multihost_utils.broadcast_one_to_all(
      np.asarray(int(time.time() * 1e6) % (2**31), np.int64)))
  if store.writer:
    store_lib.atomic_write_bytes(token, str(int(nonce)).encode())
  parallel.sync("workdir-check")
  try:
    with open(token) as f:
      ok = f.read().strip() == str(int(nonce))
  except OSError:
    ok = False
  oks = np.asarray(multihost_utils.process_allgather(np.asarray([ok])))
  if not oks.all():
    bad = [i for i, v in enumerate(oks.reshape(-1)) if not v]
    raise ConfigError(f"workdir {store.workdir} is not shared between hosts: processes {bad} "
                      "do not see process 0's files there. Use a shared filesystem "
                      "(NFS, GCS FUSE) for --workdir")


def _pass_done(store: store_lib.Store, pid: str, finished: set) -> bool:
  path = os.path.join(store.pass_dir(pid), "done.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    keys = json.load(f).get("keys", [])
  return bool(keys) and all(k in finished for k in keys)
