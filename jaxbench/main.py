"""Command line: ``python -m jaxbench.main --config=configs/NAME.py --workdir=DIR``.

Flags:
  --config        an ml_collections config file; override any field with
                  ``--config.models="['clip_vit_b32']"`` etc. (ml_collections
                  refuses unknown fields, naming them).
  --workdir       where results.jsonl, per-example outputs and checkpoints go.
  --dry_run       print the plan of passes and exit.
  --coordinator, --num_processes, --process_id
                  explicit multi-host start (JAX's own detection is used on TPU
                  VMs and SLURM otherwise).

SIGTERM (spot preemption) makes every host checkpoint at the next step boundary
and exit with status 75; rerunning the same command resumes.
"""
from __future__ import annotations

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


def main(argv):
  del argv
  from jaxbench import parallel, runner, registry
  from jaxbench.models import hub
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. --config=configs/zeroshot.py")
  if not _WORKDIR.value and not _DRY_RUN.value:
    raise app.UsageError("--workdir is required")
  logging.set_verbosity(logging.INFO)
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
