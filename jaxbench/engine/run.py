"""A whole run: validate, preflight, dry-run description, then every pass into the store.

The engine runs the passes of any suite; a suite adds to a run through
:class:`Hooks` (the config keys it declares, what it prepares before the passes,
how it describes that for ``--dry_run``, and its rows' suite name). The engine
itself knows no suite.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Mapping, Optional

from absl import logging

from jaxbench import parallel, precision as precision_lib, progress, registry
from jaxbench import stopping, store as store_lib, transforms
from jaxbench.data.evalset import EvalSet
from jaxbench.engine import heads as heads_lib, keys, loop, plan as plan_lib, plugins
from jaxbench.engine import provenance as provenance_lib, rows as rows_lib, workdir as wd_lib
from jaxbench.model_setup import ConfigError, load_model


class ValidationError(ConfigError):
  """Every problem :func:`preflight` found, one line each (``problems``)."""

  def __init__(self, problems: list[str]):
    self.problems = list(problems)
    super().__init__("\n".join(self.problems))


@dataclasses.dataclass(frozen=True)
class Hooks:
  """What a suite adds to the engine's run (all optional).

  Attributes:
    sections: config keys the suite declares ({name: keys.Key}), besides the engine's.
    elsewhere: {key: who reads it} for keys other suites declare (named in errors).
    phases: (config, workdir) -> lines describing what ``prepare`` will do (dry run).
    prepare: (config, workdir, mesh) -> None, run after the checks, before the passes.
    row_suite: (transform, evalset) -> the rows' suite (default ``config.suite``).
    refill: survivor-refill settings for attack passes (None: the fixed loop).
  """
  sections: Mapping[str, keys.Key] = dataclasses.field(default_factory=dict)
  elsewhere: Mapping[str, str] = dataclasses.field(default_factory=dict)
  phases: Optional[Callable[..., list[str]]] = None
  prepare: Optional[Callable[..., None]] = None
  row_suite: Optional[Callable[..., str]] = None
  refill: Optional[Any] = None   # jaxbench.engine.refill.Settings


NO_HOOKS = Hooks()


def validate(config, hooks: Hooks = NO_HOOKS) -> None:
  """Checks the config's keys (engine's and ``hooks.sections``) and values.

  Raises:
    ConfigError: the first problem, in one line.
  """
  keys.check(config, {**keys.ENGINE, **hooks.sections}, elsewhere=hooks.elsewhere,
             suite=str(keys.get(config, "suite")))
  if not list(config.models):
    raise ConfigError("config.models is empty: name at least one model")
  if not list(config.datasets):
    raise ConfigError("config.datasets is empty: name at least one dataset")
  if int(config.batch_size) <= 0:
    raise ConfigError(f"config.batch_size must be positive, got {config.batch_size}")
  if int(keys.get(config, "checkpoint_every")) < 1:
    raise ConfigError(f"config.checkpoint_every={config.checkpoint_every}: the number of "
                      "batches between progress checkpoints must be >= 1")
  max_examples = int(keys.get(config, "max_examples"))
  if max_examples == 0 or max_examples < -1:
    raise ConfigError(f"config.max_examples={config.max_examples}: use -1 for every example "
                      "of each set, or a positive count")
  if keys.get(config, "on_data_change") not in ("error", "restart"):
    raise ConfigError(f"config.on_data_change {config.on_data_change!r}: use 'error' (stop "
                      "when a pass's data changed since its saved progress) or 'restart' "
                      "(evaluate that pass again from the start)")
  if keys.get(config, "precision") not in precision_lib.POLICIES:
    raise ConfigError(f"config.precision {config.precision!r}: use 'float32' (true float32 "
                      "matmuls on every backend), 'tf32' (TensorFloat-32 matmuls on GPU) "
                      "or 'bfloat16'")
  if keys.get(config, "param_sharding") not in parallel.PARAM_SHARDINGS:
    raise ConfigError(f"config.param_sharding {config.param_sharding!r}: use 'replicate' "
                      "(every device holds every weight) or 'fsdp' (large weights split over "
                      "the mesh's model axis, config.mesh.model)")
  if keys.get(config, "preprocess") not in ("", "clip"):
    raise ConfigError(f"config.preprocess {config.preprocess!r}: use '' (each model's own) "
                      "or 'clip' (CLIP's for every model, as RoZ)")
  from jaxbench.data import resample
  try:   # the crop-size check waits for each model's preprocessing (engine.loop)
    resample.check_canvas(keys.get(config, "device_resize"), None)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def _catalog_get(spec: str, config) -> EvalSet:
  from jaxbench.data import catalog
  return catalog.get(spec, data_root=keys.get(config, "data_root") or None,
                     tfds_dir=keys.get(config, "tfds_dir") or None)


def preflight(config, *, datasets: Optional[list[str]] = None, dry_run: bool = False,
              hooks: Hooks = NO_HOOKS) -> dict[str, EvalSet]:
  """The validation shared by ``--dry_run`` and the real run, before any work.

  Loads the plugins (:mod:`jaxbench.engine.plugins`), checks the config's keys and
  values (:func:`validate`), every model spec (resolved to a registry name, hub
  prefix or checkpoint directory, no weights read), every transform spec (attacks
  and shifts built, so unknown names and badly typed parameters such as ``eps='x'``
  are refused; transfer surrogates are model specs too), the zero-shot class-name
  and template sets, and every dataset spec (resolved to its folder or TFDS source:
  paths must exist).

  Args:
    config: the run's config.
    datasets: canonical dataset specs to resolve (default: all of the config's).
    dry_run: sets generated on first use (a spec with ``src=``, e.g. ImageNet-T)
      are not generated: their ``src`` must exist.
    hooks: the suite's additions (its declared config keys).

  Returns:
    {canonical dataset spec: EvalSet} of the resolved sets (reused by the run).

  Raises:
    ConfigError: a structural problem (unknown key, bad value) -- the first found.
    ValidationError: one line per bad model, transform, prompt set or dataset.
  """
  plugins.load(config)
  validate(config, hooks)
  problems: list[str] = []
  from jaxbench import models as models_lib

  def model_ok(spec: str, what: str) -> None:
    try:
      models_lib.check(spec)
    except (ValueError, OSError) as e:
      problems.append(f"{what} {spec!r}: {e}")

  for m in dict.fromkeys(config.models):
    model_ok(m, "config.models:")
  for t in plan_lib.transform_specs(config):
    try:
      obj = transforms.get(t).obj
    except (ValueError, TypeError) as e:
      problems.append(f"config.transforms: {t!r}: {e}")
      continue
    for stage in [obj, getattr(obj, "attack", None), *getattr(obj, "attacks", ())]:
      surrogate = getattr(stage, "surrogate", None)
      if isinstance(surrogate, str):
        model_ok(surrogate, f"config.transforms: {t!r}: surrogate")
  zs = keys.zeroshot(config)
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
    plan = plan_lib.plan_passes(config)
  except registry.SpecError as e:   # unparsable model/dataset spec (transforms: above)
    raise ValidationError(problems or [str(e)]) from e
  evalsets: dict[str, EvalSet] = {}
  wanted = dict.fromkeys(d for _, d, _ in plan) if datasets is None else datasets
  for d in wanted:
    src = registry.parse(d)[2].get("src")
    if dry_run and isinstance(src, str):
      if not os.path.exists(os.path.expanduser(src)):
        problems.append(f"config.datasets: {d!r}: src {src!r} does not exist")
      continue
    try:
      evalsets[d] = _catalog_get(d, config)
    except (ValueError, OSError) as e:
      problems.append(f"config.datasets: {d!r}: {e}")
  if problems:
    raise ValidationError(problems)
  return evalsets


def data_phases(config) -> list[str]:
  """The data work a run does before or inside its passes, in words (dry run):
  sets generated on first use (a spec with ``src=``) and the prepared-pixel cache."""
  plan = plan_lib.plan_passes(config)
  out = []
  for d in dict.fromkeys(d for _, d, _ in plan):
    kwargs = registry.parse(d)[2]
    src = kwargs.get("src")
    if isinstance(src, str):
      root = kwargs.get("root")
      there = bool(root) and os.path.isdir(os.path.expanduser(str(root))) and \
          bool(os.listdir(os.path.expanduser(str(root))))
      out.append(f"generate: {d}: from src {src!r}" +
                 (f" into {root!r}" if root else "") +
                 (" (root exists: read as is, regenerated only if incomplete)" if there
                  else " (on first use)"))
  canvas = int(keys.get(config, "device_resize") or 0)
  if canvas or keys.get(config, "jpeg_draft"):   # the default path needs no line
    out.append("input: JPEG decoding " + ("jpeg_draft (reduced DCT, not pixel-exact)"
                                        if keys.get(config, "jpeg_draft") else "exact") +
               ("; resize + center crop on the device from a "
                f"{canvas}x{canvas} canvas (PIL-exact; larger images, host-side shifts and "
                "cached pixels on the host)" if canvas else "; resize + center crop on the host"))
  cache = str(keys.get(config, "prepared_cache") or "")
  if cache:
    if keys.get(config, "jpeg_draft"):
      out.append(f"prepared cache: {cache}: not used (jpeg_draft decoding is never cached)")
    else:
      cached = {}
      for m, d, t in plan:
        if transforms.get(t).host_fn is None:
          cached.setdefault(d, set()).add(m)
      for d, ms in cached.items():
        out.append(f"prepared cache: {d}: decoded and cropped pixels at the preprocessing "
                   f"of {len(ms)} model(s), built in {cache} on first use (reused when "
                   "present)")
      skipped = sorted({t for _, _, t in plan if transforms.get(t).host_fn is not None})
      if skipped:
        out.append(f"prepared cache: not used by {len(skipped)} host-side shift "
                   "transform(s) (they change the pixels)")
  return out


def describe(config, workdir: Optional[str], hooks: Hooks = NO_HOOKS) -> list[str]:
  """Every phase the run will go through, in words: the suite's preparation,
  data generation and caching, then the passes (the ``--dry_run`` output)."""
  lines = list(hooks.phases(config, workdir)) if hooks.phases is not None else []
  lines += data_phases(config)
  plan = plan_lib.plan_passes(config)
  lines.append(f"plan: {len(plan)} passes into {workdir}")
  for m, d, t in plan:
    lines.append(f"  model={m}  dataset={d}  transform={t}")
  return lines + parameter_lines(config)


def parameter_lines(config) -> list[str]:
  """Each model's parameter count and memory per device at the run's precision and
  param_sharding, from its config (no weights read), with a warning where they exceed
  a device's memory (see :mod:`jaxbench.models.footprint`)."""
  import jax
  from jaxbench.models import footprint
  mesh_cfg = dict(keys.get(config, "mesh") or {})
  return footprint.describe(
      list(config.models), precision=str(keys.get(config, "precision")),
      param_sharding=str(keys.get(config, "param_sharding")),
      model_axis=int(mesh_cfg.get("model", 1)), n_devices=jax.device_count(),
      memory=footprint.device_memory())


def plan_rows(config, workdir: str) -> list[dict]:
  """The results.jsonl rows of the config's finished passes, in plan order."""
  store = store_lib.Store(workdir, writer=False, create=False)
  return rows_lib.finished_rows(
      store, [plan_lib.pass_id_for(plan_lib.PassSpec(*p), config)
              for p in plan_lib.plan_passes(config)])


def run(config, workdir: str, *, dry_run: bool = False, print_fn=print,
        hooks: Hooks = NO_HOOKS) -> list[dict]:
  """Runs every pass of ``config`` into ``workdir``; returns the rows written.

  Everything is validated first (:func:`preflight`); the workdir is locked against
  a concurrent run (:class:`jaxbench.store.WorkdirLock`) and its config.json is
  written only when the first pass starts. With ``dry_run``, validates and prints
  every phase (:func:`describe`); nothing is run or written.
  """
  if dry_run:
    preflight(config, dry_run=True, hooks=hooks)
    if workdir and os.path.isdir(os.path.expanduser(workdir)):
      # Would the real run be refused by the workdir's finished rows? Say so now.
      wd_lib.check_workdir_config(store_lib.Store(workdir, writer=False, create=False),
                                  config)
    for line in describe(config, workdir, hooks):
      print_fn(line)
    return []
  plugins.load(config)
  validate(config, hooks)
  plan = plan_lib.plan_passes(config)
  store = store_lib.Store(workdir, writer=parallel.is_writer())
  lock = store_lib.WorkdirLock(store.workdir) if store.writer else None
  if lock is not None:
    lock.acquire()
  try:
    return _run_locked(config, plan, store, hooks)
  finally:
    if lock is not None:
      lock.release()


def _run_locked(config, plan, store: store_lib.Store, hooks: Hooks) -> list[dict]:
  wd_lib.check_shared_workdir(store)
  wd_lib.check_workdir_config(store, config)
  finished = store.finished_keys()
  pending = [p for p in plan
             if not wd_lib.pass_done(store, plan_lib.pass_id_for(plan_lib.PassSpec(*p),
                                                                 config), finished)]
  evalsets = preflight(config, datasets=list(dict.fromkeys(d for _, d, _ in pending)),
                       hooks=hooks)
  if pending:
    stopping.check("before the first pass")
    wd_lib.write_workdir_config(store, config)
  mesh_cfg = dict(keys.get(config, "mesh") or {})
  mesh = parallel.make_mesh(int(mesh_cfg.get("data", -1)), int(mesh_cfg.get("model", 1)))
  prov = provenance_lib.provenance(config, mesh)
  if hooks.prepare is not None:   # the suite's learning phases (prompts, heads)
    hooks.prepare(config, store.workdir, mesh)
  parallel.assert_same_across_hosts(
      json.dumps([plan, wd_lib.config_identity(config), prov["jaxbench"], prov["git"]],
                 sort_keys=True, default=str), "config, plan and package version")
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
    label = rows_lib.model_label(model_spec, base_model, config)
    for dspec in dict.fromkeys(d for _, d, _ in todo):
      if dspec not in evalsets:
        evalsets[dspec] = _catalog_get(dspec, config)
      evalset = evalsets[dspec]
      dname = evalset.name or dspec
      stopping.check(f"before building the head of {model_spec} for {dname}")
      model, use_project = heads_lib.attach_head(base_model, evalset, config,
                                                 os.path.join(store.workdir, "heads"))
      stopping.check(f"after building the head of {model_spec} for {dname}")
      params = parallel.put_params(model.params, mesh, keys.get(config, "param_sharding"))
      for _, _, tspec in [p for p in todo if p[1] == dspec]:
        ps = plan_lib.PassSpec(label, dname, tspec)
        pid = plan_lib.pass_id_for(plan_lib.PassSpec(model_spec, dspec, tspec), config)
        transform = transforms.get(tspec).bind(model)
        suite = (hooks.row_suite(transform, evalset) if hooks.row_suite is not None
                 else str(keys.get(config, "suite")))
        rows, outputs = loop.run_pass(ps, pid, model, evalset, transform, use_project,
                                      config, mesh, store, prov, params, suite=suite,
                                      refill=hooks.refill)
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
  if keys.get(config, "report") and store.writer:
    from jaxbench import report
    report.write_report([store.workdir], os.path.join(store.workdir, "report"))
  return written
