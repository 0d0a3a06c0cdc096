"""Command line: ``python -m jaxbench.main --config=configs/NAME.py --workdir=DIR``.

Flags:
  --config        an ml_collections config file; override any field with
                  ``--config.models="('clip_vit_b32',)"`` etc. (an unknown field is
                  refused in one line, naming the closest known one).
  --workdir       where results.jsonl, per-example outputs and checkpoints go.
  --dry_run       validate models, data paths, attack/shift specs and prompt sets,
                  print every phase the run would go through (prompt or heads
                  learning, overlap's corpus work, sets generated on first use,
                  the prepared cache) and the plan of passes, and exit (2 on any
                  bad spec).
  --xla_cache_dir persistent XLA compilation cache (default $JAXBENCH_XLA_CACHE or
                  ~/.cache/jaxbench/xla; 'none' turns it off): a rerun with the
                  same models and shapes skips compilation.
  --head_cache_dir zero-shot heads shared across workdirs (default
                  $JAXBENCH_HEAD_CACHE or ~/.cache/jaxbench/heads; 'none' off): a
                  rerun in a new workdir reads the 1000 x 80-prompt head instead of
                  building it (models whose weights carry a sha256 only).
  --coordinator, --num_processes, --process_id
                  explicit multi-host start (JAX's own detection is used on TPU
                  VMs and SLURM otherwise).

SIGTERM (spot preemption) makes every host checkpoint at the next step boundary
(or stop before the next phase while imports, model loading or head building are
under way) and exit with status 75; rerunning the same command resumes. A
finished run prints a short results table (the full rows are in results.jsonl);
rerunning a finished workdir prints it again.
"""
from __future__ import annotations

# First of all: remember a SIGTERM that arrives while jax and the models import.
import os
import signal

from jaxbench import stopping

signal.signal(signal.SIGTERM, stopping.request_stop)

import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

# Exit status after a SIGTERM checkpoint (EX_TEMPFAIL): rerun the command to resume.
PREEMPTED_EXIT_CODE = 75

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output directory")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "validate, print every phase and the plan, "
                             "and exit")
_COORD = flags.DEFINE_string("coordinator", "", "host:port of process 0 (multi-host)")
_NPROC = flags.DEFINE_integer("num_processes", 0, "number of processes (multi-host)")
_PID = flags.DEFINE_integer("process_id", -1, "this process's index (multi-host)")
_INIT_TIMEOUT = flags.DEFINE_integer("init_timeout", 300,
                                     "seconds to wait for the coordinator")
_XLA_CACHE = flags.DEFINE_string(
    "xla_cache_dir", None, "persistent XLA compilation cache directory ('none': off; "
    "default $JAXBENCH_XLA_CACHE or ~/.cache/jaxbench/xla)")

_HEAD_CACHE = flags.DEFINE_string(
    "head_cache_dir", None, "zero-shot head cache shared across workdirs ('none': off; "
    "default $JAXBENCH_HEAD_CACHE or ~/.cache/jaxbench/heads)")


def _user_cache(env: str, name: str) -> str:
  """$``env``, else jaxbench/``name`` under $XDG_CACHE_HOME (~/.cache)."""
  if os.environ.get(env):
    return os.environ[env]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "jaxbench", name)


def default_compilation_cache_dir() -> str:
  """$JAXBENCH_XLA_CACHE, else jaxbench/xla under $XDG_CACHE_HOME (~/.cache)."""
  return _user_cache("JAXBENCH_XLA_CACHE", "xla")


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
  import jax   # here, not at the top: SIGTERM handling comes before jax imports
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_secs))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path

_HELP_FLAGS = ("--help", "-help", "-h", "--helpshort", "--helpfull", "--helpxml", "-?")


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors (exit 2) and ``--help`` exiting 0.

  Config-file errors (a bad preset argument) and overrides of unknown config keys
  (``--config.batchsize=4``) surface here, before main runs.
  """
  try:
    return flags.FLAGS(argv)
  except SystemExit as e:
    if any(a.split("=")[0] in _HELP_FLAGS for a in argv[1:]) and e.code in (0, 1, None):
      sys.exit(0)   # absl exits 1 after printing help; asking for help is not a failure
    raise
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError, OSError) as e:
    text = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split()).strip("'\"")
    if isinstance(e, (AttributeError, KeyError)):
      # ml_collections: "'batchsize' Did you mean "batch_size" instead of "batchsize"?"
      key, _, hint = text.partition("' ")
      text = f"unknown config key '{key.strip(chr(39))}'" + (f"; {hint}" if hint else "")
    print(f"error: {text}", file=sys.stderr)
    print(f"(run {argv[0] if argv else 'jaxbench.main'} --help for the flags)",
          file=sys.stderr)
    sys.exit(2)


def main(argv):
  del argv
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. --config=configs/zeroshot.py")
  if not _WORKDIR.value and not _DRY_RUN.value:
    raise app.UsageError("--workdir is required")
  logging.set_verbosity(logging.INFO)
  if stopping.requested():   # local flag only: jax must not start before initialize()
    raise stopping.Preempted("stopped by SIGTERM while starting up; nothing was run")
  import jax
  from jaxbench import cli, parallel
  cache = configure_compilation_cache(
      _XLA_CACHE.value if _XLA_CACHE.value is not None else default_compilation_cache_dir())
  logging.info("XLA compilation cache: %s", cache or "off")
  from jaxbench.zeroshot import head as head_lib
  heads = _HEAD_CACHE.value if _HEAD_CACHE.value is not None else \
      _user_cache("JAXBENCH_HEAD_CACHE", "heads")
  head_lib.set_shared_cache_dir("" if heads.lower() == "none" else heads)
  try:
    parallel.initialize(_COORD.value, _NPROC.value, _PID.value, _INIT_TIMEOUT.value)
  except Exception as e:  # noqa: BLE001 -- JAX raises several types for this
    print(f"error: could not start the multi-host runtime (coordinator "
          f"{_COORD.value or 'auto-detected'}, {_NPROC.value} processes, this is process "
          f"{_PID.value}) within {_INIT_TIMEOUT.value}s: {e}", file=sys.stderr)
    sys.exit(3)
  # Again: jax.distributed.initialize installs its own SIGTERM handler (preemption
  # notifier); the runner's checkpoint-and-exit-75 protocol needs ours.
  signal.signal(signal.SIGTERM, stopping.request_stop)
  code = cli.execute(_CONFIG.value, _WORKDIR.value, dry_run=_DRY_RUN.value,
                     is_lead=lambda: jax.process_index() == 0)
  if code:
    sys.exit(code)


if __name__ == "__main__":
  try:
    app.run(main, flags_parser=parse_flags)
  except stopping.Preempted as e:   # SIGTERM before the runner started
    print(f"preempted: {e}", file=sys.stderr)
    sys.exit(PREEMPTED_EXIT_CODE)
