"""Command line: ``python -m jaxbench.main --config=configs/NAME.py --workdir=DIR``.

Flags:
  --config        an ml_collections config file; override any field with
                  ``--config.models="['clip_vit_b32']"`` etc. (ml_collections
                  refuses unknown fields, naming them).
  --workdir       where results.jsonl, per-example outputs and checkpoints go.
  --dry_run       print the plan of passes and exit.
  --xla_cache_dir persistent XLA compilation cache (default $JAXBENCH_XLA_CACHE or
                  ~/.cache/jaxbench/xla; 'none' turns it off): a rerun with the
                  same models and shapes skips compilation.
  --coordinator, --num_processes, --process_id
                  explicit multi-host start (JAX's own detection is used on TPU
                  VMs and SLURM otherwise).

SIGTERM (spot preemption) makes every host checkpoint at the next step boundary
and exit with status 75; rerunning the same command resumes.
"""
from __future__ import annotations

import os
import signal
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

# Exit status after a SIGTERM checkpoint (EX_TEMPFAIL): rerun the command to resume.
PREEMPTED_EXIT_CODE = 75

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output directory")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "print the plan and exit")
_COORD = flags.DEFINE_string("coordinator", "", "host:port of process 0 (multi-host)")
_NPROC = flags.DEFINE_integer("num_processes", 0, "number of processes (multi-host)")
_PID = flags.DEFINE_integer("process_id", -1, "this process's index (multi-host)")
_INIT_TIMEOUT = flags.DEFINE_integer("init_timeout", 300,
                                     "seconds to wait for the coordinator")
_XLA_CACHE = flags.DEFINE_string(
    "xla_cache_dir", None, "persistent XLA compilation cache directory ('none': off; "
    "default $JAXBENCH_XLA_CACHE or ~/.cache/jaxbench/xla)")


def default_compilation_cache_dir() -> str:
  """$JAXBENCH_XLA_CACHE, else jaxbench/xla under $XDG_CACHE_HOME (~/.cache)."""
  if os.environ.get("JAXBENCH_XLA_CACHE"):
    return os.environ["JAXBENCH_XLA_CACHE"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "jaxbench", "xla")


def configure_compilation_cache(path: str | None, *, min_compile_secs: float = 0.2) -> str:
  """Turns on JAX's persistent compilation cache in ``path`` ('' / 'none': off).

  Compiled steps, head buckets and attacks are written there and reused by
  later runs with the same programs (the cache key covers the program, the
  backend and the jax version), which takes most of the compilation time off
  the time to first batch. Programs faster to compile than ``min_compile_secs``
  are not worth a disk write. A directory that cannot be created turns the
  cache off with a warning: the run itself does not need it.

  Returns:
    the directory in use, or '' when off.
  """
  if not path or path.lower() == "none":
    return ""
  path = os.path.abspath(os.path.expanduser(path))
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    logging.warning("compilation cache %s unusable (%s); compiling without it", path, e)
    return ""
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_secs))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def main(argv):
  del argv
  from jaxbench import parallel, runner, registry
  from jaxbench.models import hub
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. --config=configs/zeroshot.py")
  if not _WORKDIR.value and not _DRY_RUN.value:
    raise app.UsageError("--workdir is required")
  logging.set_verbosity(logging.INFO)
  cache = configure_compilation_cache(
      _XLA_CACHE.value if _XLA_CACHE.value is not None else default_compilation_cache_dir())
  logging.info("XLA compilation cache: %s", cache or "off")
  try:
    parallel.initialize(_COORD.value, _NPROC.value, _PID.value, _INIT_TIMEOUT.value)
  except Exception as e:  # noqa: BLE001 -- JAX raises several types for this
    print(f"error: could not start the multi-host runtime (coordinator "
          f"{_COORD.value or 'auto-detected'}, {_NPROC.value} processes, this is process "
          f"{_PID.value}) within {_INIT_TIMEOUT.value}s: {e}", file=sys.stderr)
    sys.exit(3)
  signal.signal(signal.SIGTERM, runner.request_stop)
  config = _CONFIG.value
  try:
    if "suite" in config and config.suite == "overlap" and not _DRY_RUN.value:
      from jaxbench.overlap import run as overlap_run   # evaluation + overlap search
      rows = overlap_run.run(config, _WORKDIR.value)
    else:
      rows = runner.run(config, _WORKDIR.value, dry_run=_DRY_RUN.value)
  except runner.Preempted as e:
    logging.warning("%s", e)
    print(f"preempted: {e}", file=sys.stderr)
    sys.exit(PREEMPTED_EXIT_CODE)
  except (runner.ConfigError, registry.SpecError, hub.WeightsError, FileNotFoundError,
          NotADirectoryError, ValueError) as e:
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  if rows and jax.process_index() == 0:
    width = max(len(r["key"]) for r in rows)
    for r in rows:
      print(f"{r['key']:<{width}}  {r['value']:.4f}  (n={r['n']})")


if __name__ == "__main__":
  app.run(main)
